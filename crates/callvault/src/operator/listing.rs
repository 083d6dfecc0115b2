//! `callvault recordings list|show`: the catalog as JSON (a contract for scripts) or as text
//! for a person at a terminal.

use std::fmt::Write as _;
use std::process::ExitCode;

use callvault_catalog::{RecordingDetails, RecordingItem, RecordingState, Scope, SearchQuery};
use clap::Args;

use super::{Missing, StorageArgs, clip, esc, open, print_json, seconds, timestamp};

#[derive(Args)]
pub struct ListArgs {
    #[command(flatten)]
    storage: StorageArgs,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// How many recordings at most.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Skip this many of the newest.
    #[arg(long, default_value_t = 0)]
    offset: usize,
    /// Only recordings whose DTMF digits (in time order, all legs) contain these, e.g. 1234#.
    #[arg(long)]
    digits: Option<String>,
    /// Only recordings in this state: active, complete, interrupted, failed or deleted.
    #[arg(long)]
    state: Option<RecordingState>,
    /// Only the recording of this Call-ID (ingress or egress).
    #[arg(long)]
    call_id: Option<String>,
    /// Only this tenant's recordings.
    #[arg(long)]
    tenant: Option<String>,
    /// Only recordings with (true) or without (false) a lock in force.
    #[arg(long)]
    locked: Option<bool>,
}

#[derive(Args)]
pub struct ShowArgs {
    /// Recording id (as printed by `recordings list`).
    id: String,
    #[command(flatten)]
    storage: StorageArgs,
    /// Print a JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
    let mut query = SearchQuery {
        digits: args.digits,
        state: args.state,
        call_id: args.call_id,
        tenant: args.tenant,
        locked: args.locked,
        limit: SearchQuery::MAX_LIMIT,
        ..SearchQuery::default()
    };
    // The catalog pages by cursor: walk the pages up to offset + limit.
    let wanted = args.offset.saturating_add(args.limit);
    let mut items: Vec<RecordingItem> = Vec::new();
    while items.len() < wanted {
        let page = catalog.search(&Scope::All, &query).await?;
        items.extend(page.items);
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    catalog.close().await;
    let items: Vec<RecordingItem> = items
        .into_iter()
        .skip(args.offset)
        .take(args.limit)
        .collect();
    if args.json {
        print_json(&items)?;
    } else {
        print!("{}", table(&items));
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
    let found = catalog.recording_details(&Scope::All, &args.id).await;
    catalog.close().await;
    match found? {
        Some(d) if args.json => print_json(&d)?,
        Some(d) => print!("{}", details(&d)),
        None => {
            eprintln!("error: no recording {}", esc(&args.id));
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(items: &[RecordingItem]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<36}  {:<19}  {:>9}  {:<11}  {:<11}  {:<6}  {:<6}  {:<12}  {:<24}  {:<24}  LEGS",
        "ID", "STARTED", "DURATION", "STATE", "MODE", "STATUS", "LOCKED", "TENANT", "FROM", "TO"
    );
    for item in items {
        let r = &item.recording;
        let _ = writeln!(
            out,
            "{:<36}  {:<19}  {:>9}  {:<11}  {:<11}  {:<6}  {:<6}  {:<12}  {:<24}  {:<24}  {}",
            clip(&r.id, 36),
            timestamp(r.started_at),
            r.duration_ms.map(seconds).unwrap_or_else(|| "-".to_owned()),
            r.state.as_str(),
            r.mode.as_str(),
            r.final_status
                .map(|s| s.to_string())
                .unwrap_or_else(|| "-".to_owned()),
            if item.locked { "yes" } else { "-" },
            clip(item.tenant.as_deref().unwrap_or("-"), 12),
            clip(&r.from, 24),
            clip(&r.to, 24),
            r.legs.len()
        );
    }
    if items.is_empty() {
        out.push_str("(no recordings)\n");
    }
    out
}

fn details(d: &RecordingDetails) -> String {
    let item = &d.item;
    let r = &item.recording;
    let mut out = String::new();
    let _ = writeln!(out, "recording    {}", esc(&r.id));
    let _ = writeln!(out, "state        {}", r.state.as_str());
    let _ = writeln!(out, "mode         {}", r.mode.as_str());
    if let Some(route) = &r.route {
        let _ = writeln!(out, "route        {}", esc(route));
    }
    if let Some(status) = r.final_status {
        let _ = writeln!(out, "final status {status}");
    }
    if let Some(party) = r.hung_up_by {
        let _ = writeln!(out, "hung up by   {}", party.as_str());
    }
    if let (Some(at), Some(by)) = (item.deleted_at, &item.deleted_by) {
        let _ = writeln!(
            out,
            "deleted      {} by {}: {}",
            timestamp(at),
            esc(by),
            esc(item.delete_reason.as_deref().unwrap_or("-"))
        );
    }
    let _ = writeln!(
        out,
        "tenant       {}",
        esc(item.tenant.as_deref().unwrap_or("-"))
    );
    let _ = writeln!(
        out,
        "locked       {}",
        if item.locked { "yes" } else { "no" }
    );
    let _ = writeln!(out, "started      {}", timestamp(r.started_at));
    let _ = writeln!(
        out,
        "duration     {}",
        r.duration_ms.map(seconds).unwrap_or_else(|| "-".to_owned())
    );
    let _ = writeln!(out, "from         {}", esc(&r.from));
    let _ = writeln!(out, "to           {}", esc(&r.to));
    let _ = writeln!(out, "session      {}", esc(&r.session_id));
    let _ = writeln!(out, "call-id in   {}", esc(&r.ingress_call_id));
    if let Some(egress) = &r.egress_call_id {
        let _ = writeln!(out, "call-id out  {}", esc(egress));
    }
    for c in &r.correlation_ids {
        let _ = writeln!(out, "correlation  {} = {}", esc(&c.kind), esc(&c.value));
    }
    if !r.participants.is_empty() {
        let _ = writeln!(out, "participants");
    }
    for p in &r.participants {
        let _ = writeln!(
            out,
            "  {:<16} {:<32} {}",
            esc(&p.id),
            esc(p.aor.as_deref().unwrap_or("-")),
            esc(p.name.as_deref().unwrap_or(""))
        );
    }
    if !r.legs.is_empty() {
        let _ = writeln!(out, "legs");
    }
    for l in &r.legs {
        let _ = writeln!(
            out,
            "  {:<12} {:<16} {} {}Hz  {}",
            esc(&l.label),
            esc(l.participant.as_deref().unwrap_or("-")),
            esc(&l.codec),
            l.sample_rate,
            esc(&l.path)
        );
        let _ = writeln!(
            out,
            "  {:<12} packets={} lost={} late={} jitter={} gaps={}ms concealed={}ms ssrcs={} \
             codec_changes={}",
            "",
            l.counters.packets,
            l.counters.lost,
            l.counters.late,
            l.counters
                .jitter_ms
                .map(|j| format!("{j:.1}ms"))
                .unwrap_or_else(|| "-".to_owned()),
            l.counters.gaps_filled_ms,
            l.counters.concealed_ms,
            l.counters.ssrcs_seen,
            l.counters.codec_changes
        );
        if let Some(error) = &l.error {
            let _ = writeln!(out, "  {:<12} error: {}", "", esc(error));
        }
    }
    if !d.deleted_legs.is_empty() {
        let _ = writeln!(out, "deleted files");
    }
    for l in &d.deleted_legs {
        let _ = writeln!(
            out,
            "  {:<12} {}  sha256 {}",
            esc(&l.label),
            esc(&l.path),
            l.sha256.as_deref().unwrap_or("-")
        );
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
                esc(&a.leg),
                esc(&a.participant),
                seconds(a.from_ms),
                until
            );
        }
    }
    if !r.dtmf.is_empty() {
        let _ = writeln!(out, "dtmf");
        for e in &r.dtmf {
            let _ = writeln!(
                out,
                "  {} leg={} at {} for {}ms ({})",
                esc(&e.digit),
                esc(&e.leg),
                seconds(e.offset_ms),
                e.duration_ms,
                e.source
            );
        }
    }
    if !d.locks.is_empty() {
        let _ = writeln!(out, "locks");
    }
    for lock in &d.locks {
        let _ = writeln!(
            out,
            "  {}  {} by {}: {}",
            esc(&lock.id),
            timestamp(lock.at),
            esc(&lock.by),
            esc(&lock.reason)
        );
        if let Some(removed) = lock.removed_at {
            let _ = writeln!(
                out,
                "  {:<36}  removed {} by {}: {}",
                "",
                timestamp(removed),
                esc(lock.removed_by.as_deref().unwrap_or("-")),
                esc(lock.remove_reason.as_deref().unwrap_or("-"))
            );
        }
    }
    if !d.annotations.is_empty() {
        let _ = writeln!(out, "annotations");
    }
    for a in &d.annotations {
        let _ = writeln!(
            out,
            "  {} {} at {}: {}",
            timestamp(a.at),
            esc(&a.by),
            a.offset_ms.map(seconds).unwrap_or_else(|| "-".to_owned()),
            esc(&a.text)
        );
    }
    if let Some(score) = item.score {
        let _ = writeln!(out, "score        {score}");
    }
    for p in &d.paused {
        let until = p.to_ms.map(seconds).unwrap_or_else(|| "now".to_owned());
        let _ = writeln!(
            out,
            "paused       {} – {} by {}",
            seconds(p.from_ms),
            until,
            esc(&p.by)
        );
    }
    for w in &r.warnings {
        let _ = writeln!(out, "warning      {}", esc(w));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details_json() -> serde_json::Value {
        serde_json::json!({
            "id": "0193a1b2-0000-7000-8000-000000000001",
            "session_id": "s1", "ingress_call_id": "c1@sbc\u{1b}[2J", "egress_call_id": null,
            "from": "sip:alice@example.com", "to": "sip:a-very-long-callee-address@example.com",
            "started_at": "2026-11-30T10:00:00Z", "ended_at": "2026-11-30T10:00:05.5Z",
            "duration_ms": 5500, "state": "complete", "end_reason": "bye", "node_id": "n1",
            "participants": [{"id": "p1", "aor": "sip:alice@example.com", "name": "Alice\u{9b}31m"}],
            "legs": [{"position": 0, "label": "1\u{1b}]0;owned\u{7}", "participant": "p1",
                      "binding_rule": "association",
                      "codec": "G722", "sample_rate": 16000, "path": "recordings/x/1.wav",
                      "packets": 275, "lost": 2, "duplicates": 0, "out_of_order": 1, "late": 0,
                      "jitter_ms": 1.25, "gaps_filled_ms": 40, "ssrcs_seen": 1,
                      "codec_changes": 0, "unknown_payload": 0, "rtcp_packets": 5,
                      "added_at_ms": 0, "sha256": null, "error": null}],
            "dtmf": [{"seq": 0, "digit": "5", "leg": "1", "offset_ms": 2040, "duration_ms": 160,
                      "source": "rfc4733"}],
            "associations": [
                {"participant": "p1", "leg": "1", "from_ms": 0, "to_ms": 3000},
                {"participant": "p3", "leg": "1", "from_ms": 3000, "to_ms": null}],
            "correlation_ids": [{"kind": "ucid", "value": "00FA080018803B69"}],
            "warnings": ["m-line 2 declined"], "metadata_revisions": 2,
            "source_address": "192.0.2.1:5060", "transport": "tcp",
            "tenant": "acme", "locked": true, "score": null, "annotation_count": 0,
            "pause_count": 0, "paused_now": false,
            "deleted_at": null, "deleted_by": null, "delete_reason": null,
            "locks": [{"id": "L1", "recording_id": "0193a1b2-0000-7000-8000-000000000001",
                       "reason": "LegalHold#245", "by": "cli:ops", "at": "2026-11-30T11:00:00Z",
                       "removed_at": null, "removed_by": null, "remove_reason": null}],
            "annotations": [], "complete": null, "categories": [], "custom": {},
            "review_seconds": null, "paused": [], "deleted_legs": []
        })
    }

    fn recording() -> RecordingDetails {
        serde_json::from_value(details_json()).expect("the contract JSON reads back")
    }

    #[test]
    fn the_table_has_one_row_per_recording_with_tenant_lock_and_clipped_parties() {
        let text = table(&[recording().item]);
        let rows: Vec<&str> = text.lines().collect();
        assert_eq!(rows.len(), 2);
        assert!(rows[0].contains("LOCKED") && rows[0].contains("TENANT"));
        assert!(rows[1].starts_with("0193a1b2-0000-7000-8000-000000000001"));
        assert!(rows[1].contains("5.500s") && rows[1].contains("complete"));
        assert!(
            rows[1].contains(" yes ") && rows[1].contains(" acme "),
            "{}",
            rows[1]
        );
        assert!(rows[1].contains("sip:a-very-long-callee-…"), "{}", rows[1]);
        assert_eq!(table(&[]).lines().nth(1), Some("(no recordings)"));
    }

    #[test]
    fn details_show_quality_digits_locks_and_who_was_on_which_leg() {
        let text = details(&recording());
        for expected in [
            "tenant       acme",
            "locked       yes",
            "G722 16000Hz",
            "packets=275 lost=2 late=0 jitter=1.2ms gaps=40ms concealed=0ms",
            "5 leg=1 at 2.040s for 160ms (rfc4733)",
            "p3",
            "3.000s – end",
            "correlation  ucid = 00FA080018803B69",
            "L1  2026-11-30 11:00:00 by cli:ops: LegalHold#245",
            "warning      m-line 2 declined",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn control_characters_from_the_network_are_escaped_in_text() {
        let text = details(&recording()) + &table(&[recording().item]);
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(text.contains("c1@sbc\\x1b[2J"), "{text}");
        assert!(text.contains("1\\x1b]0;owned\\x07"), "{text}");
        assert!(text.contains("Alice\\u{9b}31m"), "{text}");
    }

    #[test]
    fn a_tombstone_shows_who_deleted_it_when_and_why() {
        let mut json = details_json();
        json["state"] = "deleted".into();
        json["deleted_at"] = "2026-12-01T09:00:00Z".into();
        json["deleted_by"] = "cli:ops".into();
        json["delete_reason"] = "GDPR request 17".into();
        json["legs"] = serde_json::json!([]);
        json["deleted_legs"] = serde_json::json!([
            {"position": 0, "label": "1", "path": "recordings/x/1.wav", "sha256": "ab12"}]);
        let d: RecordingDetails = serde_json::from_value(json).unwrap();
        let text = details(&d);
        assert!(
            text.contains("deleted      2026-12-01 09:00:00 by cli:ops: GDPR request 17"),
            "{text}"
        );
        assert!(text.contains("recordings/x/1.wav  sha256 ab12"), "{text}");
    }
}
