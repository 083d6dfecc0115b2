//! Verification of every recording a run made, read from the catalog the server writes
//! (SQLite in its data directory, or PostgreSQL): two legs, each leg's packet count equal to
//! what was sent, each WAV holding at least the audio sent and no more than the call lasted
//! (200 OK to BYE, plus a second: a late pacer stretches a call, and its WAV with it, since the
//! timeline follows the wall clock).

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use callvault_catalog::{Catalog, Scope};
use serde_json::Value;

use crate::calls::Outcome;

/// Samples per 20 ms PCMU packet.
const SAMPLES_PER_PACKET: u64 = 160;
/// A WAV may end up to one packet short: the recording ends when the BYE comes, and a late
/// generator sends its last packet less than 20 ms before it.
const SHORT_BY_AT_MOST: u64 = SAMPLES_PER_PACKET;

#[derive(Debug, Default)]
pub struct Verified {
    pub recordings: u64,
    /// Recordings with something wrong (the first few are in `problems`).
    pub failed: u64,
    pub packets_received: u64,
    /// The most and the least audio a WAV held beyond what its stream sent, in samples
    /// (negative: less than sent).
    pub wav_excess: Option<(i64, i64)>,
    pub problems: Vec<String>,
}

/// Waits (up to `wait`) for each recording to leave "active", then checks it.
pub(crate) async fn verify(
    database_url: &str,
    data_dir: &Path,
    outcomes: &[Outcome],
    wait: Duration,
) -> anyhow::Result<Verified> {
    let catalog = Catalog::open(database_url).await.with_context(|| {
        format!(
            "opening the catalog {}",
            callvault_catalog::redact_url(database_url)
        )
    })?;
    let deadline = Instant::now() + wait;
    let mut verified = Verified::default();
    for outcome in outcomes {
        let Some(id) = &outcome.recording_id else {
            continue;
        };
        verified.recordings += 1;
        let recording = loop {
            let details = catalog.recording_details(&Scope::All, id).await?;
            let value = details
                .map(|d| serde_json::to_value(&d))
                .transpose()?
                .unwrap_or(Value::Null);
            let done = value["state"].as_str().is_some_and(|s| s != "active");
            if done || Instant::now() >= deadline {
                break value;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let problems = check(&recording, outcome, data_dir, &mut verified);
        if !problems.is_empty() {
            verified.failed += 1;
            if verified.problems.len() < 10 {
                verified
                    .problems
                    .push(format!("{id}: {}", problems.join("; ")));
            }
        }
    }
    catalog.close().await;
    Ok(verified)
}

fn check(
    recording: &Value,
    outcome: &Outcome,
    data_dir: &Path,
    verified: &mut Verified,
) -> Vec<String> {
    let mut problems = Vec::new();
    match recording["state"].as_str() {
        Some("complete") => {}
        other => problems.push(format!("state {other:?}")),
    }
    let legs = recording["legs"].as_array().cloned().unwrap_or_default();
    if legs.len() != 2 {
        problems.push(format!("{} legs, not 2", legs.len()));
    }
    for leg in &legs {
        let position = leg["position"].as_u64().unwrap_or(u64::MAX);
        let Some(&sent) = outcome.sent.get(position as usize) else {
            problems.push(format!("a leg at position {position}"));
            continue;
        };
        let received = leg["packets"].as_u64().unwrap_or(0);
        verified.packets_received += received;
        if received != u64::from(sent) {
            problems.push(format!(
                "leg {position}: {received} packets received of {sent} sent"
            ));
        }
        let path = data_dir.join(leg["path"].as_str().unwrap_or_default());
        match hound::WavReader::open(&path) {
            Ok(wav) => {
                let samples = u64::from(wav.duration());
                let rate = u64::from(wav.spec().sample_rate.max(1));
                let audio = u64::from(sent) * SAMPLES_PER_PACKET;
                let lasted = outcome
                    .answered_for
                    .map_or(audio, |d| (d.as_secs_f64() * rate as f64) as u64)
                    .max(audio);
                let excess = samples as i64 - audio as i64;
                verified.wav_excess = Some(match verified.wav_excess {
                    Some((least, most)) => (least.min(excess), most.max(excess)),
                    None => (excess, excess),
                });
                if samples + SHORT_BY_AT_MOST < audio || samples > lasted + rate {
                    problems.push(format!(
                        "leg {position}: {samples} samples in the WAV for {audio} sent in a call of {lasted}"
                    ));
                }
            }
            Err(error) => problems.push(format!("leg {position}: {}: {error}", path.display())),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(dir: &Path, name: &str, samples: u32) {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut writer = hound::WavWriter::create(dir.join(name), spec).unwrap();
        for _ in 0..samples {
            writer.write_sample(0i16).unwrap();
        }
        writer.finalize().unwrap();
    }

    fn recording(packets: [u64; 2]) -> Value {
        serde_json::json!({
            "state": "complete",
            "legs": [
                {"position": 0, "packets": packets[0], "path": "a.wav"},
                {"position": 1, "packets": packets[1], "path": "b.wav"},
            ]
        })
    }

    #[test]
    fn a_recording_with_every_packet_and_its_audio_passes() {
        let dir = tempfile::tempdir().unwrap();
        wav(dir.path(), "a.wav", 100 * 160 + 80);
        wav(dir.path(), "b.wav", 100 * 160 - 40);
        let outcome = Outcome {
            sent: [100, 100],
            ..Outcome::default()
        };
        let mut verified = Verified::default();
        let problems = check(&recording([100, 100]), &outcome, dir.path(), &mut verified);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(verified.packets_received, 200);
        assert_eq!(verified.wav_excess, Some((-40, 80)));
    }

    #[test]
    fn a_wav_longer_than_the_call_is_reported_and_one_as_long_as_a_slow_call_is_not() {
        let dir = tempfile::tempdir().unwrap();
        wav(dir.path(), "a.wav", 100 * 160 + 8_000 * 3);
        wav(dir.path(), "b.wav", 100 * 160 + 8_000 * 3);
        let mut outcome = Outcome {
            sent: [100, 100],
            ..Outcome::default()
        };
        let mut verified = Verified::default();
        let problems = check(&recording([100, 100]), &outcome, dir.path(), &mut verified);
        assert_eq!(problems.len(), 2, "{problems:?}");
        // The pacer ran late: the call lasted 4.5 s for 2 s of audio.
        outcome.answered_for = Some(Duration::from_millis(4_500));
        let problems = check(&recording([100, 100]), &outcome, dir.path(), &mut verified);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn a_lost_packet_a_short_wav_and_a_missing_file_are_each_reported() {
        let dir = tempfile::tempdir().unwrap();
        wav(dir.path(), "a.wav", 98 * 160);
        let outcome = Outcome {
            sent: [100, 100],
            ..Outcome::default()
        };
        let mut verified = Verified::default();
        let problems = check(&recording([99, 100]), &outcome, dir.path(), &mut verified);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("99 packets received of 100"));
        assert!(problems[1].contains("15680 samples"));
        assert!(problems[2].contains("b.wav"));
    }
}
