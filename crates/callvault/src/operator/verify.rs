//! `callvault recordings verify [ID…] [--fix]`: every closed leg file re-hashed against the
//! SHA-256 the catalog kept when it was closed, and every tombstone checked for files its
//! deletion left behind.
//!
//! A leg without a digest (still recording, or its file failed; the leg's `error` says why)
//! has nothing to compare and is counted apart. `--fix` only removes what deletions left
//! behind: a missing or changed file of a kept recording is evidence, never touched.

use std::fs::File;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use callvault_catalog::{Catalog, RecordingDetails, RecordingItem, Scope, SearchQuery};
use clap::Args;
use sha2::{Digest as _, Sha256};

use super::{Missing, StorageArgs, esc, open, tombstone};

#[derive(Args)]
pub struct VerifyArgs {
    /// Recording ids (default: every recording in the catalog).
    ids: Vec<String>,
    /// Remove files left behind by deletions (a crash between the catalog's commit and the
    /// removal). Missing or changed files of kept recordings are only reported.
    #[arg(long)]
    fix: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Default)]
struct Tally {
    recordings: usize,
    verified: usize,
    unclosed: usize,
    missing: usize,
    unreadable: usize,
    changed: usize,
    unknown: usize,
    /// Files and folders of tombstones found on disk.
    left_behind: usize,
    /// Of those, removed by `--fix`.
    removed: usize,
    /// Of those, still there when the command ends.
    remaining: usize,
    /// Legs whose local copy was removed after their upload and that no bucket was given to
    /// check (`[storage] backend` is not `s3` in this configuration).
    in_bucket: usize,
    /// Where uploaded legs are checked once their local copy is gone.
    bucket: Option<callvault_objects::Objects>,
}

impl Tally {
    fn problems(&self) -> usize {
        self.missing + self.unreadable + self.changed + self.unknown + self.remaining
    }
}

pub async fn verify(args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let (config, catalog) = open(&args.storage, Missing::Refuse).await?;
    let data_dir = config.storage.data_dir.clone();
    let mut tally = Tally {
        bucket: config
            .s3_settings(std::env::vars())
            .map(|settings| callvault_objects::Objects::s3(&settings))
            .transpose()?,
        ..Tally::default()
    };
    let result = if args.ids.is_empty() {
        verify_all(&catalog, &data_dir, args.fix, &mut tally).await
    } else {
        verify_ids(&catalog, &data_dir, &args.ids, args.fix, &mut tally).await
    };
    catalog.close().await;
    result?;
    println!(
        "{} recording(s), {} file(s) verified: {} missing, {} unreadable, {} changed, {} left \
         behind by deletions{}; {} leg(s) without a digest not checked{}{}",
        tally.recordings,
        tally.verified,
        tally.missing,
        tally.unreadable,
        tally.changed,
        tally.left_behind,
        if args.fix {
            format!(" ({} removed)", tally.removed)
        } else {
            String::new()
        },
        tally.unclosed,
        if tally.in_bucket > 0 {
            format!(
                "; {} uploaded leg(s) not checked (give the [storage] s3 settings)",
                tally.in_bucket
            )
        } else {
            String::new()
        },
        if tally.unknown > 0 {
            format!("; {} unknown recording(s)", tally.unknown)
        } else {
            String::new()
        }
    );
    Ok(if tally.problems() == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

async fn verify_all(
    catalog: &Catalog,
    data_dir: &Path,
    fix: bool,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let mut query = SearchQuery {
        limit: SearchQuery::MAX_LIMIT,
        ..SearchQuery::default()
    };
    loop {
        let page = catalog.search(&Scope::All, &query).await?;
        for item in &page.items {
            if item.deleted_at.is_some() {
                // Its deleted files are only in the full record.
                if let Some(details) = catalog
                    .recording_details(&Scope::All, &item.recording.id)
                    .await?
                {
                    check_tombstone(&details, data_dir, fix, tally);
                }
            } else {
                check_legs(item, data_dir, tally).await?;
            }
        }
        match page.next_cursor {
            Some(cursor) => query.cursor = Some(cursor),
            None => return Ok(()),
        }
    }
}

async fn verify_ids(
    catalog: &Catalog,
    data_dir: &Path,
    ids: &[String],
    fix: bool,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    for id in ids {
        match catalog.recording_details(&Scope::All, id).await? {
            None => {
                tally.unknown += 1;
                println!("UNKNOWN   {}: no such recording", esc(id));
            }
            Some(details) if details.item.deleted_at.is_some() => {
                check_tombstone(&details, data_dir, fix, tally);
            }
            Some(details) => check_legs(&details.item, data_dir, tally).await?,
        }
    }
    Ok(())
}

async fn check_legs(
    item: &RecordingItem,
    data_dir: &Path,
    tally: &mut Tally,
) -> anyhow::Result<()> {
    tally.recordings += 1;
    let r = &item.recording;
    for leg in &r.legs {
        let Some(expected) = &leg.sha256 else {
            tally.unclosed += 1;
            continue;
        };
        let path = data_dir.join(&leg.path);
        let mut hashed = tokio::task::spawn_blocking({
            let path = path.clone();
            move || sha256_of(&path)
        })
        .await
        .context("hashing a leg file")?;
        // Uploaded, and its local copy removed after its grace: the bucket holds the leg.
        if let (Err(e), Some(key)) = (&hashed, &leg.object_key)
            && e.kind() == io::ErrorKind::NotFound
        {
            let Some(bucket) = &tally.bucket else {
                tally.in_bucket += 1;
                continue;
            };
            hashed = match bucket.sha256(key).await {
                Ok(digest) => Ok(digest),
                Err(callvault_objects::Error::NotFound { .. }) => {
                    Err(io::Error::new(io::ErrorKind::NotFound, "not in the bucket"))
                }
                Err(e) => Err(io::Error::other(e)),
            };
        }
        let what = format!("{} leg {} {}", esc(&r.id), esc(&leg.label), esc(&leg.path));
        match hashed {
            Ok(actual) if actual.eq_ignore_ascii_case(expected) => tally.verified += 1,
            Ok(actual) => {
                tally.changed += 1;
                println!(
                    "CHANGED   {what}: sha256 {actual}, the catalog has {}",
                    esc(expected)
                );
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                tally.missing += 1;
                println!("MISSING   {what}");
            }
            Err(e) => {
                tally.unreadable += 1;
                println!("UNREADABLE {what}: {e}");
            }
        }
    }
    Ok(())
}

fn check_tombstone(details: &RecordingDetails, data_dir: &Path, fix: bool, tally: &mut Tally) {
    tally.recordings += 1;
    let r = &details.item.recording;
    let paths = tombstone::leftovers_of(&r.id, r.started_at, &details.deleted_legs);
    let left: Vec<PathBuf> = tombstone::still_there(data_dir, &paths);
    if left.is_empty() {
        return;
    }
    tally.left_behind += left.len();
    let show = |path: &Path| format!("{} (deleted) {}", esc(&r.id), esc(&path.to_string_lossy()));
    if !fix {
        for path in &left {
            println!("LEFTOVER  {}", show(path));
        }
        tally.remaining += left.len();
        return;
    }
    let removal = tombstone::remove(data_dir, &left);
    for (path, e) in &removal.failed {
        println!("LEFTOVER  {}: cannot remove: {e}", show(path));
    }
    // A file inside a folder removed whole went with it: what is still there is what counts.
    let remaining = tombstone::still_there(data_dir, &left);
    for path in left.iter().filter(|p| !remaining.contains(p)) {
        println!("REMOVED   {}", show(path));
    }
    tally.removed += left.len() - remaining.len();
    tally.remaining += remaining.len();
}

/// Hex SHA-256 of a file's bytes, read in blocks.
fn sha256_of(path: &Path) -> io::Result<String> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 64 * 1024];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
