//! `recordings.csv` and `recordings.json`: every catalog field of every recording in a package.
//!
//! The JSON holds each recording exactly as `GET /api/v1/recordings/{id}` answers it (ids,
//! participants, legs with their digests, DTMF, correlation ids, locks, annotations, the
//! review, pauses; a tombstone with who deleted it, when and why) plus the package's files of
//! it and its SIPREC metadata revisions as received. The CSV is one row per recording for a
//! spreadsheet: lists are joined with `; ` into one cell, and any text cell that a spreadsheet
//! would take for a formula (starting with `=`, `+`, `-`, `@`, a tab or a carriage return:
//! names and ids come from the network) is prefixed with `'` (OWASP's advice on CSV
//! injection); the JSON keeps every value untouched.

use callvault_catalog::{MetadataRevision, RecordingDetails};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::error::Result;

/// One recording of a package, with what the package holds of it.
pub(crate) struct Item {
    pub(crate) details: RecordingDetails,
    pub(crate) revisions: Vec<MetadataRevision>,
    /// The archive's names of its audio files (none for a tombstone).
    pub(crate) files: Vec<String>,
    /// Why audio that should be there is not (a leg file missing on disk).
    pub(crate) problems: Vec<String>,
}

const HEADER: [&str; 38] = [
    "id",
    "state",
    "deleted",
    "deleted_at",
    "deleted_by",
    "delete_reason",
    "tenant",
    "mode",
    "route",
    "session_id",
    "ingress_call_id",
    "egress_call_id",
    "correlation_ids",
    "from",
    "to",
    "participants",
    "started_at",
    "ended_at",
    "duration_ms",
    "end_reason",
    "final_status",
    "hung_up_by",
    "legs",
    "dtmf_digits",
    "dtmf",
    "locked",
    "locks",
    "annotations",
    "score",
    "complete",
    "categories",
    "custom",
    "paused",
    "warnings",
    "node_id",
    "source",
    "files",
    "file_problems",
];

fn time(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

fn opt_time(at: Option<OffsetDateTime>) -> String {
    at.map(time).unwrap_or_default()
}

fn opt<T: ToString>(value: Option<T>) -> String {
    value.map(|v| v.to_string()).unwrap_or_default()
}

/// A text cell a spreadsheet will not run as a formula.
fn text(value: &str) -> String {
    match value.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{value}"),
        _ => value.to_owned(),
    }
}

fn cells(item: &Item) -> Vec<String> {
    let d = &item.details;
    let r = &d.item.recording;
    let deleted = d.item.deleted_at.is_some();
    let participants = r
        .participants
        .iter()
        .map(|p| {
            let mut s = p.id.clone();
            if let Some(name) = &p.name {
                s.push_str(&format!(": {name}"));
            }
            if let Some(aor) = &p.aor {
                s.push_str(&format!(" <{aor}>"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ");
    let correlation = r
        .correlation_ids
        .iter()
        .map(|c| format!("{}={}", c.kind, c.value))
        .collect::<Vec<_>>()
        .join("; ");
    let legs = r
        .legs
        .iter()
        .map(|leg| {
            format!(
                "{} {} {} {}Hz participant={} sha256={}{}",
                leg.position,
                leg.label,
                leg.codec,
                leg.sample_rate,
                leg.participant.as_deref().unwrap_or("-"),
                leg.sha256.as_deref().unwrap_or("-"),
                leg.error
                    .as_deref()
                    .map(|e| format!(" error={e}"))
                    .unwrap_or_default()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let dtmf_digits = r.dtmf.iter().map(|e| e.digit.as_str()).collect::<String>();
    let dtmf = r
        .dtmf
        .iter()
        .map(|e| {
            format!(
                "{}@{}ms/{}ms leg={} {}",
                e.digit,
                e.offset_ms,
                e.duration_ms,
                e.leg,
                e.source.as_str()
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let locks = d
        .locks
        .iter()
        .map(|lock| match lock.removed_at {
            None => format!(
                "{} (by {} at {}, in force)",
                lock.reason,
                lock.by,
                time(lock.at)
            ),
            Some(removed) => format!(
                "{} (by {} at {}, removed by {} at {}{})",
                lock.reason,
                lock.by,
                time(lock.at),
                lock.removed_by.as_deref().unwrap_or("-"),
                time(removed),
                lock.remove_reason
                    .as_deref()
                    .map(|why| format!(": {why}"))
                    .unwrap_or_default()
            ),
        })
        .collect::<Vec<_>>()
        .join("; ");
    let annotations = d
        .annotations
        .iter()
        .map(|a| {
            format!(
                "[{}] {} (by {} at {})",
                a.offset_ms
                    .map(|ms| format!("{ms}ms"))
                    .unwrap_or_else(|| "-".to_owned()),
                a.text,
                a.by,
                time(a.at)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let paused = d
        .paused
        .iter()
        .map(|p| format!("{}-{}ms by {}", p.from_ms, opt(p.to_ms), p.by))
        .collect::<Vec<_>>()
        .join("; ");
    vec![
        r.id.clone(),
        r.state.as_str().to_owned(),
        deleted.to_string(),
        opt_time(d.item.deleted_at),
        opt(d.item.deleted_by.as_deref()),
        opt(d.item.delete_reason.as_deref()),
        opt(d.item.tenant.as_deref()),
        serde_json::to_value(r.mode)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        opt(r.route.as_deref()),
        r.session_id.clone(),
        r.ingress_call_id.clone(),
        opt(r.egress_call_id.as_deref()),
        correlation,
        r.from.clone(),
        r.to.clone(),
        participants,
        time(r.started_at),
        opt_time(r.ended_at),
        opt(r.duration_ms),
        opt(r.end_reason.map(|e| e.as_str())),
        opt(r.final_status),
        r.hung_up_by
            .and_then(|p| serde_json::to_value(p).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        legs,
        dtmf_digits,
        dtmf,
        d.item.locked.to_string(),
        locks,
        annotations,
        opt(d.item.score),
        opt(d.complete),
        d.categories.join("; "),
        if d.custom.is_empty() {
            String::new()
        } else {
            Value::Object(d.custom.clone()).to_string()
        },
        paused,
        r.warnings.join("; "),
        opt(r.node_id.as_deref()),
        format!("{} {}", r.transport, r.source_address),
        item.files.join("; "),
        item.problems.join("; "),
    ]
}

/// `recordings.csv`: a header and one row per recording, in the package's order.
pub(crate) fn csv(items: &[Item]) -> Result<Vec<u8>> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer.write_record(HEADER)?;
    for item in items {
        let row = cells(item);
        debug_assert_eq!(row.len(), HEADER.len());
        writer.write_record(row.iter().map(|cell| text(cell)))?;
    }
    writer
        .into_inner()
        .map_err(|e| crate::error::Error::Csv(e.into_error().into()))
}

/// `recordings.json`: the package (`export`) and every recording in full.
pub(crate) fn json(export: Value, items: &[Item]) -> Vec<u8> {
    let recordings: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut value = serde_json::to_value(&item.details)
                .expect("a recording serializes (the API answers it)");
            if let Some(object) = value.as_object_mut() {
                object.insert("export_files".to_owned(), json!(item.files));
                object.insert("export_file_problems".to_owned(), json!(item.problems));
                object.insert(
                    "metadata".to_owned(),
                    serde_json::to_value(&item.revisions).unwrap_or(Value::Null),
                );
            }
            value
        })
        .collect();
    let mut bytes = serde_json::to_vec_pretty(&json!({
        "export": export,
        "recordings": recordings,
    }))
    .expect("JSON values serialize");
    bytes.push(b'\n');
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_like_text_is_defused_and_the_rest_kept() {
        assert_eq!(text("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(text("+441234"), "'+441234");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("-1"), "'-1");
        assert_eq!(text("sip:alice@example.com"), "sip:alice@example.com");
        assert_eq!(text(""), "");
    }
}
