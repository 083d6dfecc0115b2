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
            "  {:<12} {:<16} {} {}Hz packets={} lost={}  {}",
            l.label,
            l.participant.as_deref().unwrap_or("-"),
            l.codec,
            l.sample_rate,
            l.packets,
            l.lost,
            l.path
        );
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
