//! Loss concealment, checked in the WAVs of the real binary: one lost packet in twelve leaves no
//! silent 10 ms window inside a tone in any codec; hold and a loss longer than the bound stay
//! silence; `[media] conceal_loss = false` keeps every loss silent.

use std::time::Duration;

use serde_json::Value;

use crate::support::audio::{Wav, rms};
use crate::support::client::{Call, CallSpec, Impairment, Transport};
use crate::support::codec::TestCodec;
use crate::support::{Server, leg};

/// 10 ms windows of `samples` whose RMS is below 100 (the tones are sent at half scale, RMS
/// about 11600).
fn silent_windows(wav: &Wav, from_ms: u64, to_ms: u64) -> usize {
    (from_ms..to_ms)
        .step_by(10)
        .filter(|at| rms(wav.window(*at, at + 10)) < 100.0)
        .count()
}

/// A 2 s two-party call in `codec` whose stream 1 loses packets as `impairment` says.
async fn lossy_call(server: &Server, codec: TestCodec, impairment: Impairment) -> (Value, Wav) {
    let mut spec = CallSpec::two_parties(700.0, 1000.0);
    spec.codec = codec;
    let mut call = Call::answered(Transport::Udp, server.sip, spec).await;
    call.play(Duration::from_secs(2), &[impairment]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    let wav = server.wav(leg(&rec, "1"));
    (rec, wav)
}

#[tokio::test]
async fn one_packet_in_twelve_lost_leaves_no_silent_10_ms_window_in_any_codec() {
    let concealing = Server::start();
    let raw = Server::start_with("[media]\nconceal_loss = false\n");
    let one_in_12 = Impairment {
        drop_every: 12,
        ..Impairment::default()
    };
    #[allow(unused_mut)]
    let mut codecs = vec![TestCodec::Pcmu, TestCodec::G722, TestCodec::Opus];
    // G.729 is built only with its feature (docs/LICENSING.md).
    #[cfg(feature = "g729")]
    codecs.push(TestCodec::G729);
    for codec in codecs {
        let (rec, wav) = lossy_call(&concealing, codec, one_in_12).await;
        let (raw_rec, raw_wav) = lossy_call(&raw, codec, one_in_12).await;
        // Inside the tone: from 200 ms (codec start-up) to 1800 ms (before the last packets).
        let (holes, raw_holes) = (
            silent_windows(&wav, 200, 1800),
            silent_windows(&raw_wav, 200, 1800),
        );
        let (l, raw_l) = (leg(&rec, "1"), leg(&raw_rec, "1"));
        println!(
            "{codec:?}, 1 packet in 12 lost: {raw_holes} of 160 windows of 10 ms silent without \
             concealment, {holes} with it ({} ms concealed, {} lost)",
            l["concealed_ms"], l["lost"]
        );
        assert_eq!(
            holes, 0,
            "{codec:?}: {holes} silent windows with concealment"
        );
        // Each lost 20 ms packet silences at least one whole 10 ms window.
        assert!(
            raw_holes >= 5,
            "{codec:?}: {raw_holes} silent windows without"
        );
        let lost = l["lost"].as_u64().unwrap();
        assert!(lost >= 7, "{codec:?}: lost {lost}");
        let concealed = l["concealed_ms"].as_u64().unwrap();
        assert!(
            concealed.abs_diff(lost * 20) <= 25,
            "{codec:?}: {concealed} ms concealed for {lost} lost"
        );
        assert_eq!(raw_l["concealed_ms"], 0);
        // The other leg lost nothing and needed nothing.
        assert_eq!(leg(&rec, "2")["concealed_ms"], 0);
    }
}

#[tokio::test]
async fn hold_and_a_loss_beyond_the_bound_stay_silence() {
    let server = Server::start();
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(700.0, 1000.0),
    )
    .await;
    // 200 ms lost on stream 1, from 500 to 700 ms.
    let burst = Impairment {
        drop_range: Some((25, 35)),
        ..Impairment::default()
    };
    call.play(Duration::from_secs(1), &[burst]).await;
    // Hold for 600 ms, then resume.
    assert_eq!(call.reinvite("inactive").await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    call.skip(Duration::from_millis(600));
    assert_eq!(call.reinvite("sendonly").await.status, 200);
    call.play(Duration::from_millis(600), &[]).await;
    assert_eq!(call.bye().await.status, 200);

    let rec = server.completed(&call.call_id);
    let l1 = leg(&rec, "1");
    let wav = server.wav(l1);
    let concealed = l1["concealed_ms"].as_u64().unwrap();
    let (start, beyond) = (
        silent_windows(&wav, 510, 550),
        silent_windows(&wav, 580, 690),
    );
    println!(
        "200 ms lost: {concealed} ms concealed; {start} of 4 windows silent in its first 50 ms, \
         {beyond} of 11 from 80 ms on"
    );
    assert!((50..=70).contains(&concealed), "{concealed} ms concealed");
    assert_eq!(start, 0, "the loss's start is concealed");
    assert_eq!(beyond, 11, "silence beyond the bound");
    // The hold, from about 1 s to 1.6 s (its re-INVITEs take a few ms): silence.
    let hold = silent_windows(&wav, 1100, 1550);
    assert_eq!(hold, 45, "the hold stays silence");
    assert!(
        rms(wav.window(1800, 2100)) > 5000.0,
        "the tone after the resume"
    );
}
