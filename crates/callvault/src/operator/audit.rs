//! `callvault audit verify|list`: the hash-chained audit trail, checked and read without the
//! HTTP server.

use std::fmt::Write as _;
use std::process::ExitCode;

use callvault_catalog::{AuditAction, AuditEntry, AuditQuery, AuditVerification, Scope};
use clap::{Args, Subcommand};
use time::OffsetDateTime;

use super::{Missing, StorageArgs, clip, open, parse_instant, print_json, timestamp};

/// `audit …`
#[derive(Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain: exit 0 with "intact: N entries" (and the head hash, worth
    /// keeping elsewhere), or 1 naming the first entry where the chain breaks.
    Verify(VerifyArgs),
    /// The audit trail, newest first.
    List(ListArgs),
}

#[derive(Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct ListArgs {
    /// Only entries about this recording.
    #[arg(long)]
    recording_id: Option<String>,
    /// Only entries of this user (`cli:<login>` for the CLI).
    #[arg(long)]
    user: Option<String>,
    /// Only this action: login, play, download, lock, unlock, delete, annotate, update, pause,
    /// resume, users, fields.
    #[arg(long)]
    action: Option<AuditAction>,
    /// Entries at or after this instant (RFC 3339, or a date: midnight UTC).
    #[arg(long, value_parser = parse_instant)]
    since: Option<OffsetDateTime>,
    /// Entries before this instant (RFC 3339, or a date: midnight UTC).
    #[arg(long, value_parser = parse_instant)]
    until: Option<OffsetDateTime>,
    /// How many entries at most.
    #[arg(long, default_value_t = 100)]
    limit: usize,
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Verify(args) => {
            let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
            let verification = catalog.verify_audit().await;
            catalog.close().await;
            match verification? {
                AuditVerification::Intact { entries, head } => {
                    println!("intact: {entries} entries (head {head})");
                    Ok(ExitCode::SUCCESS)
                }
                AuditVerification::Broken { seq, problem } => {
                    println!(
                        "broken: entry {seq} is {problem} (the first entry where the chain \
                         breaks; every entry from it on is unproven)"
                    );
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        AuditCommand::List(args) => list(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
    let mut query = AuditQuery {
        recording_id: args.recording_id,
        user: args.user,
        action: args.action,
        reason: None,
        since: args.since,
        until: args.until,
        cursor: None,
        limit: AuditQuery::MAX_LIMIT,
    };
    let mut entries: Vec<AuditEntry> = Vec::new();
    let result = loop {
        if entries.len() >= args.limit {
            break Ok(());
        }
        match catalog.audit(&Scope::All, &query).await {
            Ok(page) => {
                entries.extend(page.items);
                match page.next_cursor {
                    Some(cursor) => query.cursor = Some(cursor),
                    None => break Ok(()),
                }
            }
            Err(e) => break Err(e),
        }
    };
    catalog.close().await;
    result?;
    entries.truncate(args.limit);
    if args.json {
        print_json(&entries)?;
    } else {
        print!("{}", table(&entries));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(entries: &[AuditEntry]) -> String {
    let mut out = format!(
        "{:>6}  {:<19}  {:<20}  {:<9}  {:<36}  {:<24}  DETAIL\n",
        "SEQ", "AT", "USER", "ACTION", "RECORDING", "REASON"
    );
    for e in entries {
        let _ = writeln!(
            out,
            "{:>6}  {:<19}  {:<20}  {:<9}  {:<36}  {:<24}  {}",
            e.seq,
            timestamp(e.at),
            clip(&e.user, 20),
            e.action,
            clip(e.recording_id.as_deref().unwrap_or("-"), 36),
            clip(e.reason.as_deref().unwrap_or("-"), 24),
            clip(e.detail.as_deref().unwrap_or(""), 80)
        );
    }
    if entries.is_empty() {
        out.push_str("(no entries)\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_escapes_what_users_wrote() {
        let entry: AuditEntry = serde_json::from_value(serde_json::json!({
            "seq": 7, "at": "2026-12-01T09:00:00Z", "user": "cli:ops", "action": "lock",
            "recording_id": "r1", "tenant": null, "reason": "hold\u{1b}[2J", "client": "cli",
            "detail": "lock L1", "hash": "00"
        }))
        .unwrap();
        let text = table(&[entry]);
        let row = text.lines().nth(1).unwrap();
        assert!(
            row.trim_start()
                .starts_with("7  2026-12-01 09:00:00  cli:ops"),
            "{row}"
        );
        assert!(row.contains("hold\\x1b[2J"), "{row}");
        assert!(!text.chars().any(|c| c.is_control() && c != '\n'));
    }
}
