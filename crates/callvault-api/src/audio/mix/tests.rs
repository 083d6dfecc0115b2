use std::path::Path;

use super::*;
use crate::audio::MixedWav;
use crate::testing::{decode_wav, dominant, drain, goertzel, tone, write_leg, write_silent_leg};

const TONES: [f64; 6] = [220.0, 440.0, 880.0, 1000.0, 2000.0, 500.0];

fn mix(legs: &[MixLeg], channels: Channels) -> crate::testing::Decoded {
    let (bytes, _) = drain(&mut *MixedWav::open(legs, channels).unwrap().into_full_body());
    decode_wav(&bytes)
}

fn leg(dir: &Path, name: &str, rate: u32, samples: &[i16], party: Party) -> MixLeg {
    let path = dir.join(name);
    write_leg(&path, rate, samples);
    MixLeg::new(path, party)
}

#[test]
fn stereo_puts_the_caller_left_and_the_callee_right() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "caller.wav",
            8000,
            &tone(440.0, 8000, 2.0, 0.5),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "callee.wav",
            8000,
            &tone(1000.0, 8000, 2.0, 0.5),
            Party::Callee,
        ),
    ];
    let stereo = mix(&legs, Channels::Stereo);
    assert_eq!(stereo.rate, 8000);
    assert_eq!(stereo.channels.len(), 2);
    let (left, left_margin) = dominant(&stereo.channels[0], 8000, &TONES);
    let (right, right_margin) = dominant(&stereo.channels[1], 8000, &TONES);
    assert_eq!((left, right), (440.0, 1000.0));
    // The other party's tone is absent from each channel, not merely weaker.
    assert!(
        left_margin > 1e6 && right_margin > 1e6,
        "{left_margin} {right_margin}"
    );
}

#[test]
fn a_leg_of_neither_party_is_on_both_channels() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "caller.wav",
            8000,
            &tone(440.0, 8000, 1.0, 0.3),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "other.wav",
            8000,
            &tone(2000.0, 8000, 1.0, 0.3),
            Party::Unknown,
        ),
    ];
    let stereo = mix(&legs, Channels::Stereo);
    let strong = |samples: &[i16], f| goertzel(samples, 8000, f) > 0.01;
    assert!(strong(&stereo.channels[0], 440.0) && strong(&stereo.channels[0], 2000.0));
    assert!(!strong(&stereo.channels[1], 440.0) && strong(&stereo.channels[1], 2000.0));
}

#[test]
fn mono_holds_both_parties() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "caller.wav",
            8000,
            &tone(440.0, 8000, 2.0, 0.4),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "callee.wav",
            8000,
            &tone(1000.0, 8000, 2.0, 0.4),
            Party::Callee,
        ),
    ];
    let mono = mix(&legs, Channels::Mono);
    assert_eq!(mono.channels.len(), 1);
    let samples = &mono.channels[0];
    let caller = goertzel(samples, 8000, 440.0);
    let callee = goertzel(samples, 8000, 1000.0);
    let absent = goertzel(samples, 8000, 2000.0);
    assert!((caller / callee - 1.0).abs() < 0.05, "{caller} {callee}");
    assert!(caller > absent * 1e6);
}

#[test]
fn one_leg_below_the_knee_passes_through_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let samples = tone(440.0, 8000, 0.5, 0.8);
    let legs = [leg(dir.path(), "only.wav", 8000, &samples, Party::Caller)];
    assert_eq!(mix(&legs, Channels::Mono).channels[0], samples);
}

#[test]
fn legs_at_8_and_16_khz_mix_at_16_without_changing_pitch() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "pcmu.wav",
            8000,
            &tone(440.0, 8000, 2.0, 0.5),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "g722.wav",
            16000,
            &tone(1000.0, 16000, 2.0, 0.5),
            Party::Callee,
        ),
    ];
    let stereo = mix(&legs, Channels::Stereo);
    assert_eq!(stereo.rate, 16000);
    assert_eq!(stereo.channels[0].len(), 32000);
    // Read as 16 kHz samples, 8 kHz ones would sound an octave up (880 Hz).
    let (left, margin) = dominant(&stereo.channels[0], 16000, &TONES);
    assert_eq!(left, 440.0);
    assert!(margin > 1e4, "{margin}");
    assert_eq!(dominant(&stereo.channels[1], 16000, &TONES).0, 1000.0);
    // The resampled tone keeps its level (no gain, no loss).
    let peak = stereo.channels[0][4000..28000]
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap();
    assert!((16000..=16700).contains(&peak), "{peak}");
}

#[test]
fn a_resampled_leg_keeps_its_timing() {
    // A click 0.5 s into an 8 kHz leg lands 0.5 s into the 48 kHz mix: the resampler's delay
    // is taken off, so legs, DTMF and annotations stay aligned.
    let dir = tempfile::tempdir().unwrap();
    let mut clicked = vec![0i16; 8000];
    clicked[4000] = 20000;
    let legs = [
        leg(dir.path(), "click.wav", 8000, &clicked, Party::Caller),
        leg(
            dir.path(),
            "wide.wav",
            48000,
            &vec![0; 48000],
            Party::Callee,
        ),
    ];
    let stereo = mix(&legs, Channels::Stereo);
    let left = &stereo.channels[0];
    let peak = (0..left.len())
        .max_by_key(|&i| left[i].unsigned_abs())
        .unwrap();
    assert!((23_998..=24_002).contains(&peak), "peak at {peak}");
}

#[test]
fn the_mix_is_as_long_as_the_longest_leg() {
    let dir = tempfile::tempdir().unwrap();
    let legs = [
        leg(
            dir.path(),
            "short.wav",
            8000,
            &tone(440.0, 8000, 1.0, 0.5),
            Party::Caller,
        ),
        leg(
            dir.path(),
            "long.wav",
            16000,
            &tone(1000.0, 16000, 3.0, 0.5),
            Party::Callee,
        ),
    ];
    let stereo = mix(&legs, Channels::Stereo);
    assert_eq!(stereo.channels[0].len(), 48000);
    assert_eq!(stereo.channels[1].len(), 48000);
    let loudest = |samples: &[i16]| samples.iter().map(|s| s.unsigned_abs()).max().unwrap();
    // The short leg fills its first second, then its channel is silent.
    assert!(loudest(&stereo.channels[0][1000..15000]) > 15000);
    assert!(loudest(&stereo.channels[0][16100..]) < 50);
    assert!(loudest(&stereo.channels[1][46000..]) > 15000);
}

#[test]
fn a_loud_sum_bends_below_full_scale_instead_of_wrapping() {
    let dir = tempfile::tempdir().unwrap();
    let loud = tone(440.0, 8000, 0.5, 0.9);
    let legs = [
        leg(dir.path(), "a.wav", 8000, &loud, Party::Caller),
        leg(dir.path(), "b.wav", 8000, &loud, Party::Callee),
    ];
    let mono = mix(&legs, Channels::Mono);
    for (out, input) in mono.channels[0].iter().zip(&loud) {
        // Same sign as the sum (a wrapped sample would flip), never quieter than one leg.
        assert_eq!(out.signum(), input.signum());
        assert!(out.unsigned_abs() >= input.unsigned_abs());
    }
    let peak = mono.channels[0]
        .iter()
        .map(|s| s.unsigned_abs())
        .max()
        .unwrap();
    assert!(peak > 32000, "{peak}");
}

#[test]
fn a_mix_of_nothing_or_of_a_foreign_file_is_an_error() {
    assert!(matches!(
        Mixer::open(&[], Channels::Mono, 256),
        Err(Error::NoLegs)
    ));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stereo.wav");
    let mut bytes = crate::testing::leg_header(8000, 4).to_vec();
    bytes[58] = 2; // two channels
    bytes[68] = 4; // block align
    bytes.extend_from_slice(&[0; 4]);
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        Mixer::open(&[MixLeg::new(&path, Party::Caller)], Channels::Mono, 256),
        Err(Error::NotMixable { .. })
    ));
}

#[test]
fn a_long_call_is_mixed_in_fixed_memory() {
    // Two silent legs of ten minutes (sparse files), one resampled; chunks of 256 frames. The
    // length only has to dwarf a chunk: what is checked is that nothing grows, chunk after chunk.
    let dir = tempfile::tempdir().unwrap();
    let seconds = 600;
    let narrow = dir.path().join("narrow.wav");
    let wide = dir.path().join("wide.wav");
    write_silent_leg(&narrow, 8000, 8000 * seconds);
    write_silent_leg(&wide, 16000, 16000 * seconds);
    let legs = [
        MixLeg::new(&narrow, Party::Caller),
        MixLeg::new(&wide, Party::Callee),
    ];
    let mut mixer = Mixer::open(&legs, Channels::Stereo, 256).unwrap();
    assert_eq!(mixer.frames(), 16000 * seconds);
    let held = mixer.buffered_samples();
    let mut frames = 0u64;
    while let Some(chunk) = mixer.next_frames().unwrap() {
        assert!(chunk.len() <= 2 * 256);
        frames += chunk.len() as u64 / 2;
        // What the mixer set up at open stays put to the last chunk.
        assert_eq!(mixer.buffered_samples(), held, "after {frames} frames");
    }
    assert_eq!(frames, 16000 * seconds);
    // A few thousand samples (chunks, read buffers, one resampler's blocks), not the call's
    // 19 million.
    assert!(held < 16 * 1024, "{held}");
}
