use std::io::Cursor;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

use super::*;
use crate::audio::mix::Party;
use crate::testing::{dominant, drain, tone, write_leg};

const TONES: [f64; 6] = [220.0, 440.0, 880.0, 1000.0, 2000.0, 500.0];
/// LAME's encoder delay (576 + 529 samples), which a stream without a LAME tag keeps.
const ENCODER_DELAY: usize = 1105;

/// Decodes MP3 bytes with symphonia: the rate and each channel's samples.
fn decode(bytes: Vec<u8>) -> (u32, Vec<Vec<i16>>) {
    let stream = MediaSourceStream::new(Box::new(Cursor::new(bytes)), Default::default());
    let mut hint = Hint::new();
    hint.with_extension("mp3");
    let mut format = symphonia::default::get_probe()
        .probe(
            &hint,
            stream,
            FormatOptions::default(),
            MetadataOptions::default(),
        )
        .unwrap();
    let track = format.default_track(TrackType::Audio).unwrap();
    let track_id = track.id;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(
            track.codec_params.as_ref().unwrap().audio().unwrap(),
            &AudioDecoderOptions::default(),
        )
        .unwrap();
    let mut rate = 0;
    let mut channels: Vec<Vec<i16>> = Vec::new();
    let mut interleaved: Vec<i16> = Vec::new();
    while let Some(packet) = format.next_packet().unwrap() {
        if packet.track_id != track_id {
            continue;
        }
        let audio = decoder.decode(&packet).unwrap();
        rate = audio.spec().rate();
        let count = audio.spec().channels().count();
        channels.resize(count, Vec::new());
        interleaved.resize(audio.samples_interleaved(), 0);
        audio.copy_to_slice_interleaved(&mut interleaved);
        for (i, sample) in interleaved.iter().enumerate() {
            channels[i % count].push(*sample);
        }
    }
    (rate, channels)
}

fn leg(dir: &std::path::Path, name: &str, rate: u32, samples: &[i16], party: Party) -> MixLeg {
    let path = dir.join(name);
    write_leg(&path, rate, samples);
    MixLeg::new(path, party)
}

/// The decoded length is the input's plus LAME's delay and the last frame's padding.
fn assert_length(decoded: usize, input: usize, frame: usize) {
    assert!(
        decoded >= input + ENCODER_DELAY && decoded <= input + ENCODER_DELAY + frame,
        "decoded {decoded} samples for {input} in"
    );
}

#[test]
fn a_stereo_mix_decodes_back_with_each_tone_on_its_side() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "caller.wav",
            8000,
            &tone(440.0, 8000, 3.0, 0.5),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "callee.wav",
            16000,
            &tone(1000.0, 16000, 3.0, 0.5),
            Party::Callee,
        ),
    ];
    let mut stream = Mp3Stream::open(&legs, Channels::Stereo).unwrap();
    assert_eq!(stream.sample_rate(), 16000);
    assert_eq!(stream.bitrate_kbps(), 64);
    let (bytes, _) = drain(&mut stream);
    // 3 s at 64 kbit/s, give or take a frame.
    assert!((23_000..=25_000).contains(&bytes.len()), "{}", bytes.len());
    let (rate, channels) = decode(bytes);
    assert_eq!(rate, 16000);
    assert_eq!(channels.len(), 2);
    // MPEG-2 frames at 16 kHz hold 576 samples.
    assert_length(channels[0].len(), 48000, 576);
    let body = |samples: &[i16]| samples[4000..44000].to_vec();
    let (left, left_margin) = dominant(&body(&channels[0]), 16000, &TONES);
    let (right, right_margin) = dominant(&body(&channels[1]), 16000, &TONES);
    assert_eq!((left, right), (440.0, 1000.0));
    assert!(
        left_margin > 100.0 && right_margin > 100.0,
        "{left_margin} {right_margin}"
    );
}

#[test]
fn a_mono_8_khz_leg_decodes_back_to_its_tone_and_length() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 8000, &tone(440.0, 8000, 2.0, 0.5));
    let mut stream = leg_mp3(&path).unwrap();
    assert_eq!((stream.sample_rate(), stream.bitrate_kbps()), (8000, 16));
    let (bytes, _) = drain(&mut stream);
    let (rate, channels) = decode(bytes);
    assert_eq!(rate, 8000);
    assert_eq!(channels.len(), 1);
    // MPEG-2.5 frames at 8 kHz hold 576 samples.
    assert_length(channels[0].len(), 16000, 576);
    let (frequency, margin) = dominant(&channels[0][2000..15000], 8000, &TONES);
    assert_eq!(frequency, 440.0);
    assert!(margin > 100.0, "{margin}");
}

#[test]
fn a_48_khz_mix_is_mpeg_1() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [leg(
        dir.path(),
        "opus.wav",
        48000,
        &tone(1000.0, 48000, 1.0, 0.5),
        Party::Caller,
    )];
    let mut stream = Mp3Stream::open(&legs, Channels::Mono).unwrap();
    assert_eq!((stream.sample_rate(), stream.bitrate_kbps()), (48000, 64));
    let (bytes, _) = drain(&mut stream);
    let (rate, channels) = decode(bytes);
    assert_eq!(rate, 48000);
    // MPEG-1 frames hold 1152 samples.
    assert_length(channels[0].len(), 48000, 1152);
    assert_eq!(dominant(&channels[0][5000..45000], 48000, &TONES).0, 1000.0);
}

#[test]
fn the_encoder_streams_chunk_by_chunk() {
    // Ten seconds give many chunks, each about one mixer chunk's worth of MP3.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("leg.wav");
    write_leg(&path, 8000, &tone(440.0, 8000, 10.0, 0.5));
    let mixer = Mixer::open(&[MixLeg::new(&path, Party::Caller)], Channels::Mono, 800).unwrap();
    let mut stream = Mp3Stream::new(mixer).unwrap();
    let held = stream.buffered();
    let mut sizes = Vec::new();
    while let Some(chunk) = stream.next_chunk().unwrap() {
        sizes.push(chunk.len());
        assert_eq!(stream.buffered(), held);
    }
    assert!(sizes.len() >= 90, "{}", sizes.len());
    // 100 ms at 16 kbit/s is 200 bytes, give or take a frame held back; the flush at the end
    // puts out what LAME held.
    let (last, rest) = sizes.split_last().unwrap();
    assert!(rest.iter().all(|&size| size <= 600), "{rest:?}");
    assert!(*last <= FLUSH_ROOM, "{last}");
}
