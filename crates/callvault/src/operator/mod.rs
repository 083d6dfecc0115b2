//! The operator's commands: `recordings …`, `users …`, `tokens …` and `audit …`.
//!
//! They open the catalog the configuration names (SQLite in the data dir, or PostgreSQL)
//! themselves, so they work with or without a server running, on either engine.
//!
//! - **Output.** Text for a person at a terminal, `--json` for scripts (a contract). Every
//!   string that may have come from outside — Call-IDs, labels, display names, reasons, user
//!   names — goes through [`crate::log::escape`] before it reaches the terminal as text, and
//!   JSON through [`crate::log::escape_json`]: an ESC sequence in a label must not rewrite the
//!   operator's screen.
//! - **Who.** Changes are audited as `cli:<login>` (the login from `$USER`), client `cli`.
//! - **Exit codes.** 0 done; 1 refused, failed, or a problem found (`audit verify`,
//!   `recordings verify`); 2 the recording (or user, token, lock) named does not exist.

pub mod audit;
pub mod listing;
pub mod manage;
pub mod retention;
mod tombstone;
pub mod users;
pub mod verify;

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use callvault_catalog::{Actor, Catalog};
use clap::{Args, Subcommand};
use serde::Serialize;
use time::OffsetDateTime;

use crate::config::{Config, Overrides};

/// Where the data and the catalog are: the same keys `serve` reads.
#[derive(Args, Debug, Clone, Default)]
pub struct StorageArgs {
    /// Data directory: recordings and the embedded catalog ([storage] data_dir; default ./data).
    #[arg(long, env = "CALLVAULT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Catalog database, sqlite://PATH or postgres://… ([storage] database_url;
    /// default: SQLite in the data directory).
    #[arg(long, env = "CALLVAULT_DATABASE_URL")]
    pub database_url: Option<String>,
    /// TOML configuration file (see config/callvault.toml); flags and CALLVAULT_* variables
    /// override its keys.
    #[arg(long, env = "CALLVAULT_CONFIG")]
    pub config: Option<PathBuf>,
}

impl StorageArgs {
    pub fn overrides(&self) -> Overrides {
        Overrides {
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            ..Overrides::default()
        }
    }

    pub fn load(&self) -> anyhow::Result<Config> {
        Config::load(self.config.as_deref(), &self.overrides())
    }
}

/// Whether a missing embedded catalog may be created.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Missing {
    /// Refuse: a wrong `--data-dir` must not leave an empty catalog behind.
    Refuse,
    /// Create it (adding the first user before the first `serve`).
    Create,
}

/// The configuration and its catalog, opened (and migrated) for one command.
pub async fn open(storage: &StorageArgs, missing: Missing) -> anyhow::Result<(Config, Catalog)> {
    let config = storage.load()?;
    config.apply_umask();
    if config.storage.database_url.is_none() {
        let db = config
            .storage
            .data_dir
            .join(callvault_catalog::SQLITE_FILE_NAME);
        if !db.exists() {
            anyhow::ensure!(
                missing == Missing::Create,
                "no catalog at {} (is --data-dir right? `callvault serve` creates it)",
                db.display()
            );
            std::fs::create_dir_all(&config.storage.data_dir).with_context(|| {
                format!(
                    "creating data directory {}",
                    config.storage.data_dir.display()
                )
            })?;
            eprintln!("note: creating the catalog at {}", db.display());
        }
    }
    let catalog = Catalog::open(&config.database_url()).await?;
    Ok((config, catalog))
}

/// `recordings …`
#[derive(Subcommand)]
pub enum RecordingsCommand {
    /// List recordings, newest first (tombstones of deleted ones included).
    List(listing::ListArgs),
    /// Show one recording with its participants, legs, DTMF digits, locks and annotations.
    Show(listing::ShowArgs),
    /// Put a lock (legal hold) on a recording: nothing can delete it while a lock is in force.
    Lock(manage::LockArgs),
    /// Remove one lock from a recording (kept as history).
    Unlock(manage::UnlockArgs),
    /// Delete a recording's media and metadata for good, keeping a tombstone (who, when, why,
    /// the files' SHA-256).
    Delete(manage::DeleteArgs),
    /// Re-hash every closed leg file against the SHA-256 the catalog kept; report missing and
    /// changed files, and files left behind by deletions (`--fix` removes those).
    Verify(verify::VerifyArgs),
}

pub async fn recordings(command: RecordingsCommand) -> anyhow::Result<ExitCode> {
    match command {
        RecordingsCommand::List(args) => listing::list(args).await,
        RecordingsCommand::Show(args) => listing::show(args).await,
        RecordingsCommand::Lock(args) => manage::lock(args).await,
        RecordingsCommand::Unlock(args) => manage::unlock(args).await,
        RecordingsCommand::Delete(args) => manage::delete(args).await,
        RecordingsCommand::Verify(args) => verify::verify(args).await,
    }
}

/// Who the CLI acts as in the audit trail: `cli:<login>`, client `cli`.
pub fn actor() -> Actor {
    let login = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .ok()
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("uid{}", rustix::process::getuid().as_raw()));
    // A login is whatever the environment says: keep it to a name's characters.
    let login: String = login
        .chars()
        .take(60)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    Actor::new(format!("cli:{login}"), Some("cli".to_owned()))
}

pub fn now() -> OffsetDateTime {
    OffsetDateTime::now_utc()
}

/// Text from outside, safe for the terminal.
pub fn esc(text: &str) -> Cow<'_, str> {
    crate::log::escape(text)
}

/// Prints `value` as pretty JSON on stdout, with every control character escaped.
pub fn print_json<T: Serialize + ?Sized>(value: &T) -> anyhow::Result<()> {
    println!(
        "{}",
        crate::log::escape_json(serde_json::to_string_pretty(value)?)
    );
    Ok(())
}

/// `2026-11-30 10:00:00` (UTC).
pub fn timestamp(t: OffsetDateTime) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    t.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_else(|_| t.to_string())
}

/// `5.500s`
pub fn seconds(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, (ms % 1000).abs())
}

/// `s` escaped, then cut to `width` characters (an ellipsis marks the cut).
pub fn clip(s: &str, width: usize) -> String {
    let s = esc(s);
    if s.chars().count() <= width {
        s.into_owned()
    } else {
        let mut c: String = s.chars().take(width.saturating_sub(1)).collect();
        c.push('…');
        c
    }
}

/// An instant given on the command line: RFC 3339 (`2026-11-30T10:00:00Z`) or a date
/// (`2026-11-30`, midnight UTC).
pub fn parse_instant(text: &str) -> Result<OffsetDateTime, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Ok(t);
    }
    let format = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(text, &format)
        .map(|date| date.midnight().assume_utc())
        .map_err(|_| {
            format!("{text:?} is neither RFC 3339 (2026-11-30T10:00:00Z) nor a date (2026-11-30)")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_parse_as_rfc3339_or_dates() {
        assert_eq!(
            parse_instant("2026-11-30T10:00:00+01:00").unwrap(),
            time::macros::datetime!(2026-11-30 09:00 UTC)
        );
        assert_eq!(
            parse_instant("2026-11-30").unwrap(),
            time::macros::datetime!(2026-11-30 00:00 UTC)
        );
        assert!(parse_instant("yesterday").is_err());
    }

    #[test]
    fn clipping_escapes_first_and_marks_the_cut() {
        assert_eq!(clip("sip:alice@example.com", 30), "sip:alice@example.com");
        assert_eq!(clip("abcdef", 4), "abc…");
        assert_eq!(clip("a\u{1b}[2J", 30), "a\\x1b[2J");
    }
}
