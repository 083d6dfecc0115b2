//! `callvault recordings list|show`: the catalog as JSON (a contract for scripts) or as text
//! for a person at a terminal.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use callvault_catalog::{Catalog, ListQuery, Recording, RecordingState};

use crate::config::{Config, Overrides};

pub struct Storage {
    pub config: Option<PathBuf>,
    pub overrides: Overrides,
}

/// What `recordings list` narrows the catalog to.
#[derive(Default)]
pub struct Filter {
    pub digits: Option<String>,
    pub state: Option<RecordingState>,
    pub call_id: Option<String>,
}

pub enum Request {
    List {
        storage: Storage,
        json: bool,
        limit: i64,
        offset: i64,
        filter: Filter,
    },
    Show {
        id: String,
        storage: Storage,
        json: bool,
    },
}

pub async fn run(request: Request) -> anyhow::Result<ExitCode> {
    match request {
        Request::List {
            storage,
            json,
            limit,
            offset,
            filter,
        } => {
            let catalog = open(&storage).await?;
            let recordings = catalog
                .list_recordings(&ListQuery {
                    limit: limit.clamp(1, ListQuery::MAX_LIMIT),
                    offset: offset.max(0),
                    digits: filter.digits,
                    state: filter.state,
                    call_id: filter.call_id,
                })
                .await?;
            catalog.close().await;
            if json {
                println!("{}", serde_json::to_string_pretty(&recordings)?);
            } else {
                print!("{}", table(&recordings));
            }
            Ok(ExitCode::SUCCESS)
        }
        Request::Show { id, storage, json } => {
            let catalog = open(&storage).await?;
            let recording = catalog.get_recording(&id).await?;
            catalog.close().await;
            match recording {
                Some(r) if json => println!("{}", serde_json::to_string_pretty(&r)?),
                Some(r) => print!("{}", details(&r)),
                None => {
                    eprintln!("error: no recording {id}");
                    return Ok(ExitCode::from(2));
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn open(storage: &Storage) -> anyhow::Result<Catalog> {
    let config = Config::load(storage.config.as_deref(), &storage.overrides)?;
    config.apply_umask();
    let url = config.database_url();
    if config.storage.database_url.is_none() {
        let db = config.storage.data_dir.join("callvault.db");
        anyhow::ensure!(
            db.exists(),
            "no catalog at {} (is --data-dir right? `callvault serve` creates it)",
            db.display()
        );
    }
    Ok(Catalog::open(&url).await?)
}

fn table(recordings: &[Recording]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<20}  {:>9}  {:<11}  {:<24}  {:<24}  LEGS",
        "ID", "STARTED", "DURATION", "STATE", "FROM", "TO"
    );
    for r in recordings {
        let _ = writeln!(
            out,
            "{:<36}  {:<20}  {:>9}  {:<11}  {:<24}  {:<24}  {}",
            r.id,
            started(r),
            r.duration_ms.map(seconds).unwrap_or_else(|| "-".to_owned()),
            r.state.as_str(),
            clip(&r.from, 24),
            clip(&r.to, 24),
            r.legs.len()
        );
    }
    if recordings.is_empty() {
        out.push_str("(no recordings)\n");
    }
    out
}

fn details(r: &Recording) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "recording    {}", r.id);
    let _ = writeln!(out, "state        {}", r.state.as_str());
    let _ = writeln!(out, "started      {}", started(r));
    let _ = writeln!(
        out,
        "duration     {}",
        r.duration_ms.map(seconds).unwrap_or_else(|| "-".to_owned())
    );
    let _ = writeln!(out, "from         {}", r.from);
    let _ = writeln!(out, "to           {}", r.to);
    let _ = writeln!(out, "session      {}", r.session_id);
    let _ = writeln!(out, "call-id in   {}", r.ingress_call_id);
    if let Some(egress) = &r.egress_call_id {
        let _ = writeln!(out, "call-id out  {egress}");
    }
    for c in &r.correlation_ids {
        let _ = writeln!(out, "correlation  {} = {}", c.kind, c.value);
    }
    let _ = writeln!(out, "participants");
    for p in &r.participants {
        let _ = writeln!(
            out,
            "  {:<16} {:<32} {}",
            p.id,
            p.aor.as_deref().unwrap_or("-"),
            p.name.as_deref().unwrap_or("")
        );
    }
    let _ = writeln!(out, "legs");
    for l in &r.legs {
        let _ = writeln!(
            out,
            "  {:<12} {:<16} {} {}Hz  {}",
            l.label,
            l.participant.as_deref().unwrap_or("-"),
            l.codec,
            l.sample_rate,
            l.path
        );
        let _ = writeln!(
            out,
            "  {:<12} packets={} lost={} late={} jitter={} gaps={}ms ssrcs={} codec_changes={}",
            "",
            l.counters.packets,
            l.counters.lost,
            l.counters.late,
            l.counters
                .jitter_ms
                .map(|j| format!("{j:.1}ms"))
                .unwrap_or_else(|| "-".to_owned()),
            l.counters.gaps_filled_ms,
            l.counters.ssrcs_seen,
            l.counters.codec_changes
        );
        if let Some(error) = &l.error {
            let _ = writeln!(out, "  {:<12} error: {error}", "");
        }
    }
    if r.associations
        .iter()
        .any(|a| a.from_ms > 0 || a.to_ms.is_some())
    {
        let _ = writeln!(out, "who was on which leg");
        for a in &r.associations {
            let until = a.to_ms.map(seconds).unwrap_or_else(|| "end".to_owned());
            let _ = writeln!(
                out,
                "  {:<12} {:<16} {} – {}",
                a.leg,
                a.participant,
                seconds(a.from_ms),
                until
            );
        }
    }
    if !r.dtmf.is_empty() {
        let _ = writeln!(out, "dtmf");
        for d in &r.dtmf {
            let _ = writeln!(
                out,
                "  {} leg={} at {} for {}ms ({})",
                d.digit,
                d.leg,
                seconds(d.offset_ms),
                d.duration_ms,
                d.source
            );
        }
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning      {w}");
    }
    out
}

fn started(r: &Recording) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    r.started_at
        .format(&format)
        .unwrap_or_else(|_| r.started_at.to_string())
}

fn seconds(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, (ms % 1000).abs())
}

fn clip(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        s.to_owned()
    } else {
        let mut c: String = s.chars().take(width - 1).collect();
        c.push('…');
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recording() -> Recording {
        serde_json::from_value(serde_json::json!({
            "id": "0193a1b2-0000-7000-8000-000000000001",
            "session_id": "s1", "ingress_call_id": "c1@sbc", "egress_call_id": null,
            "from": "sip:alice@example.com", "to": "sip:a-very-long-callee-address@example.com",
            "started_at": "2026-11-30T10:00:00Z", "ended_at": "2026-11-30T10:00:05.5Z",
            "duration_ms": 5500, "state": "complete", "end_reason": "bye",
            "participants": [{"id": "p1", "aor": "sip:alice@example.com", "name": "Alice"}],
            "legs": [{"position": 0, "label": "1", "participant": "p1", "binding_rule": "association",
                      "codec": "G722", "sample_rate": 16000, "path": "recordings/x/1.wav",
                      "packets": 275, "lost": 2, "duplicates": 0, "out_of_order": 1, "late": 0,
                      "jitter_ms": 1.25, "gaps_filled_ms": 40, "ssrcs_seen": 1,
                      "codec_changes": 0, "unknown_payload": 0, "rtcp_packets": 5,
                      "added_at_ms": 0, "sha256": null}],
            "dtmf": [{"seq": 0, "digit": "5", "leg": "1", "offset_ms": 2040, "duration_ms": 160,
                      "source": "rfc4733"}],
            "associations": [
                {"participant": "p1", "leg": "1", "from_ms": 0, "to_ms": 3000},
                {"participant": "p3", "leg": "1", "from_ms": 3000, "to_ms": null}],
            "correlation_ids": [{"kind": "ucid", "value": "00FA080018803B69"}],
            "warnings": ["m-line 2 declined"], "metadata_revisions": 2,
            "source_address": "192.0.2.1:5060", "transport": "tcp"
        }))
        .expect("the contract JSON reads back")
    }

    #[test]
    fn the_table_has_one_row_per_recording_with_clipped_parties() {
        let text = table(&[recording()]);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[1].starts_with("0193a1b2-0000-7000-8000-000000000001"));
        assert!(rows[1].contains("5.500s") && rows[1].contains("complete"));
        assert!(rows[1].contains("sip:a-very-long-callee-…"), "{}", rows[1]);
        assert_eq!(table(&[]).lines().nth(1), Some("(no recordings)"));
    }

    #[test]
    fn details_show_quality_digits_and_who_was_on_which_leg() {
        let text = details(&recording());
        for expected in [
            "G722 16000Hz",
            "packets=275 lost=2 late=0 jitter=1.2ms gaps=40ms",
            "5 leg=1 at 2.040s for 160ms (rfc4733)",
            "p3",
            "3.000s – end",
            "correlation  ucid = 00FA080018803B69",
            "warning      m-line 2 declined",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }
}
