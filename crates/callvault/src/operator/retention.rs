//! `callvault retention --dry-run | run`: what retention would delete now and why, or delete
//! it, without the server (the same [`callvault_api::sweep`] as the server's sweeper).

use std::process::ExitCode;

use callvault_api::retention::{Outcome, SweepReport, hold_text};
use callvault_api::{NoRecordingEvents, sweep};
use clap::{Args, Subcommand};

use super::{Missing, StorageArgs, esc, now, open, print_json, timestamp};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RetentionArgs {
    /// List what would be deleted now and why (and what is held back), deleting nothing.
    #[arg(long)]
    dry_run: bool,
    #[command(subcommand)]
    command: Option<RetentionCommand>,
    #[command(flatten)]
    storage: StorageArgs,
    /// Print the report as JSON (the API's dry-run document).
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum RetentionCommand {
    /// Delete what retention says is due now (policies, [retention] days and max_bytes), prune
    /// the audit trail, and print what was done.
    Run {
        #[command(flatten)]
        storage: StorageArgs,
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(args: RetentionArgs) -> anyhow::Result<ExitCode> {
    let (storage, json, run) = match args.command {
        Some(RetentionCommand::Run { storage, json }) => (storage, json, true),
        None if args.dry_run => (args.storage, args.json, false),
        None => {
            eprintln!(
                "error: say what to do: `callvault retention --dry-run` or `callvault retention run`"
            );
            return Ok(ExitCode::from(2));
        }
    };
    let (config, catalog) = open(&storage, Missing::Refuse).await?;
    // With [storage] backend = "s3", what retention deletes leaves the bucket too.
    let objects = match config.s3_settings(std::env::vars()) {
        Some(settings) => Some(callvault_objects::Objects::s3(&settings)?),
        None => None,
    };
    let report = sweep(
        &catalog,
        &config.storage.data_dir,
        objects.as_ref(),
        &config.retention,
        &NoRecordingEvents,
        now(),
        run,
    )
    .await;
    catalog.close().await;
    let report = report?;
    if json {
        print_json(&report)?;
    } else {
        print_report(&report);
    }
    let failed = report.items.iter().any(|i| i.outcome == Outcome::Failed);
    Ok(if failed || report.over_max_bytes {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_report(report: &SweepReport) {
    if report.items.is_empty() {
        println!("nothing is due");
    }
    for i in &report.items {
        let what = match (i.outcome, i.item.held) {
            (Outcome::Held, Some(hold)) => format!("kept ({})", hold_text(hold)),
            (Outcome::WouldDelete, _) => "would delete".to_owned(),
            (Outcome::Deleted, _) => "deleted".to_owned(),
            (Outcome::Failed, _) => {
                format!("refused: {}", esc(i.error.as_deref().unwrap_or("unknown")))
            }
            (Outcome::Held, None) => "kept".to_owned(),
        };
        println!(
            "{}  {}  {:?} by {} ({} days old, period {} days): {what}",
            esc(&i.item.recording_id),
            timestamp(i.item.started_at),
            i.item.expiry,
            esc(&i.item.rule),
            i.item.age_days,
            i.item.period_days,
        );
    }
    if let Some(max) = report.max_bytes {
        println!(
            "media: {} bytes (max_bytes {max}){}",
            report.media_bytes,
            if report.over_max_bytes {
                ": CANNOT get under the cap, the rest is held"
            } else {
                ""
            }
        );
    }
    if let Some(before) = report.audit_before {
        println!(
            "audit entries before {}: {}",
            timestamp(before),
            if report.dry_run {
                "would be pruned".to_owned()
            } else {
                format!("{} pruned", report.audit_pruned)
            }
        );
    }
}
