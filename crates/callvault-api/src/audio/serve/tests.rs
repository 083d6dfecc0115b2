use std::io::Write;
use std::path::Path;

use http::StatusCode;
use http::header::CONTENT_DISPOSITION;

use super::*;
use crate::audio::mix::Party;
use crate::testing::{decode_wav, drain, leg_header, read_response, tone, write_leg};

fn range(text: &str) -> HeaderValue {
    HeaderValue::from_str(text).unwrap()
}

fn header(parts: &http::response::Parts, name: http::header::HeaderName) -> &str {
    parts.headers[name].to_str().unwrap()
}

#[tokio::test]
async fn a_leg_is_served_whole_and_by_ranges_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 8000, &tone(440.0, 8000, 3.0, 0.5));
    let file = std::fs::read(&path).unwrap();
    let len = file.len();
    assert_eq!(len, 80 + 48000);

    let (parts, body) = read_response(leg_response(&path, None).unwrap()).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(header(&parts, CONTENT_TYPE), "audio/wav");
    assert_eq!(header(&parts, ACCEPT_RANGES), "bytes");
    assert_eq!(header(&parts, CONTENT_LENGTH), len.to_string());
    assert!(!parts.headers.contains_key(CONTENT_RANGE));
    assert_eq!(body, file);

    for (asked, first, last) in [
        ("bytes=0-99", 0, 99),
        ("bytes=-500", len - 500, len - 1),
        ("bytes=100-", 100, len - 1),
        ("bytes=48000-48999", 48000, len - 1),
        ("bytes=12345-12345", 12345, 12345),
    ] {
        let (parts, body) = read_response(leg_response(&path, Some(&range(asked))).unwrap()).await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT, "{asked}");
        assert_eq!(
            header(&parts, CONTENT_RANGE),
            format!("bytes {first}-{last}/{len}"),
            "{asked}"
        );
        assert_eq!(
            header(&parts, CONTENT_LENGTH),
            (last - first + 1).to_string()
        );
        assert_eq!(body, &file[first..=last], "{asked}");
    }
}

#[tokio::test]
async fn a_range_past_the_end_gets_416_with_the_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 8000, &[1, 2, 3]);
    let (parts, body) =
        read_response(leg_response(&path, Some(&range("bytes=86-"))).unwrap()).await;
    assert_eq!(parts.status, StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(header(&parts, CONTENT_RANGE), "bytes */86");
    assert_eq!(header(&parts, CONTENT_LENGTH), "0");
    assert!(body.is_empty());
}

#[tokio::test]
async fn a_leg_still_being_recorded_plays_with_a_header_that_matches() {
    // As the writer leaves it between two header updates: the header counts 1000 samples,
    // 1600 are on disk, and half of the next one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("live.wav");
    let samples = tone(440.0, 8000, 0.2, 0.5);
    let mut bytes = leg_header(8000, 2000).to_vec();
    for sample in &samples {
        bytes.extend_from_slice(&sample.to_le_bytes());
    }
    bytes.push(0x12);
    std::fs::write(&path, &bytes).unwrap();

    let response = leg_response(&path, None).unwrap();
    // More audio arrives while the response is under way: it is not part of this response.
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    file.write_all(&[0x34; 3201]).unwrap();

    let (parts, body) = read_response(response).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(header(&parts, CONTENT_LENGTH), "3280");
    let decoded = decode_wav(&body);
    assert_eq!(decoded.rate, 8000);
    assert_eq!(decoded.channels[0], samples);

    // A seek into it gets the bytes on disk; the header's range gets the rewritten header.
    let (parts, body) =
        read_response(leg_response(&path, Some(&range("bytes=0-79"))).unwrap()).await;
    assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
    // 1600 samples, the half one completed by the append, 1600 more: 3201 samples.
    assert_eq!(header(&parts, CONTENT_RANGE), "bytes 0-79/6482");
    assert_eq!(body, leg_header(8000, 6402).to_vec());
}

#[tokio::test]
async fn a_missing_leg_is_told_apart() {
    let dir = tempfile::tempdir().unwrap();
    let error = leg_response(dir.path().join("gone.wav"), None).unwrap_err();
    assert!(error.is_missing_file());
}

fn two_legs(dir: &Path, callee_rate: u32) -> Vec<MixLeg> {
    let caller = dir.join("caller.wav");
    let callee = dir.join("callee.wav");
    write_leg(&caller, 8000, &tone(440.0, 8000, 2.0, 0.5));
    write_leg(&callee, callee_rate, &tone(1000.0, callee_rate, 1.5, 0.5));
    vec![
        MixLeg::new(caller, Party::Caller),
        MixLeg::new(callee, Party::Callee),
    ]
}

#[tokio::test]
async fn the_mixed_wav_answers_ranges_like_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let legs = two_legs(dir.path(), 8000);
    let (parts, whole) =
        read_response(mix_response(&legs, ExportFormat::Wav, Channels::Stereo, None).unwrap())
            .await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(header(&parts, ACCEPT_RANGES), "bytes");
    let len = 80 + 16000 * 4;
    assert_eq!(whole.len(), len);
    assert_eq!(header(&parts, CONTENT_LENGTH), len.to_string());

    // Legs at one rate: every range is exactly that part of the whole, wherever it starts
    // (mid-header, mid-frame, mid-chunk).
    for (first, last) in [(0, 99), (3, 40), (80, 80), (1001, 30001), (40000, len - 1)] {
        let asked = range(&format!("bytes={first}-{last}"));
        let response =
            mix_response(&legs, ExportFormat::Wav, Channels::Stereo, Some(&asked)).unwrap();
        let (parts, body) = read_response(response).await;
        assert_eq!(parts.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(
            header(&parts, CONTENT_RANGE),
            format!("bytes {first}-{last}/{len}")
        );
        assert_eq!(body, &whole[first..=last], "{first}-{last}");
    }
    let too_far = range(&format!("bytes={len}-"));
    let response = mix_response(&legs, ExportFormat::Wav, Channels::Mono, Some(&too_far)).unwrap();
    // Mono is half the size: the same offset is further past its end.
    assert_eq!(response.status(), StatusCode::RANGE_NOT_SATISFIABLE);
}

#[tokio::test]
async fn a_range_of_a_resampled_mix_matches_the_whole_mix() {
    let dir = tempfile::tempdir().unwrap();
    let legs = two_legs(dir.path(), 16000);
    let (_, whole) =
        read_response(mix_response(&legs, ExportFormat::Wav, Channels::Stereo, None).unwrap())
            .await;
    let whole = decode_wav(&whole);
    assert_eq!(whole.rate, 16000);
    // Seek 1.2345 s in: the 8 kHz leg's resampler restarts there.
    let frame = 19752;
    let asked = range(&format!("bytes={}-", 80 + frame * 4));
    let (_, tail) = read_response(
        mix_response(&legs, ExportFormat::Wav, Channels::Stereo, Some(&asked)).unwrap(),
    )
    .await;
    let tail: Vec<i16> = tail
        .chunks_exact(2)
        .map(|pair| i16::from_le_bytes([pair[0], pair[1]]))
        .collect();
    assert_eq!(tail.len(), (32000 - frame) * 2);
    for (i, pair) in tail.chunks_exact(2).enumerate() {
        let left = i32::from(whole.channels[0][frame + i]);
        let right = i32::from(whole.channels[1][frame + i]);
        assert!((i32::from(pair[0]) - left).abs() <= 2, "left at {i}");
        assert_eq!(i32::from(pair[1]), right, "right at {i}");
    }
}

#[tokio::test]
async fn an_mp3_mix_is_a_download_without_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let legs = two_legs(dir.path(), 16000);
    let asked = range("bytes=0-99");
    let mut response =
        mix_response(&legs, ExportFormat::Mp3, Channels::Mono, Some(&asked)).unwrap();
    response.headers_mut().insert(
        CONTENT_DISPOSITION,
        crate::audio::content_disposition("call.mp3"),
    );
    let (parts, body) = read_response(response).await;
    assert_eq!(parts.status, StatusCode::OK);
    assert_eq!(header(&parts, CONTENT_TYPE), "audio/mpeg");
    assert_eq!(header(&parts, ACCEPT_RANGES), "none");
    assert!(!parts.headers.contains_key(CONTENT_LENGTH));
    // An MPEG audio frame sync at the start, and about 2 s at 32 kbit/s.
    assert_eq!((body[0], body[1] & 0xE0), (0xFF, 0xE0));
    assert!((7000..10000).contains(&body.len()), "{}", body.len());
}

#[test]
fn a_leg_source_is_the_whole_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 16000, &tone(1000.0, 16000, 5.0, 0.5));
    let (bytes, largest) = drain(&mut *leg_source(&path).unwrap());
    assert_eq!(bytes, std::fs::read(&path).unwrap());
    assert_eq!(largest, FILE_CHUNK as usize);
}

#[tokio::test]
async fn an_axum_body_carries_the_response() {
    // What the routes will do with these responses: `response.map(axum::body::Body::new)`.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 8000, &tone(440.0, 8000, 1.0, 0.5));
    let response: axum::response::Response = leg_response(&path, Some(&range("bytes=-100")))
        .unwrap()
        .map(axum::body::Body::new);
    assert_eq!(response.status(), StatusCode::PARTIAL_CONTENT);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(body, std::fs::read(&path).unwrap()[16080 - 100..]);
}
