//! `callvault recordings lock|unlock|delete`: legal holds and deletion without the HTTP
//! server, audited like the API's (as `cli:<login>`).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use callvault_catalog::{Error, Scope};
use clap::Args;

use super::{Missing, StorageArgs, actor, esc, now, open, print_json, timestamp, tombstone};

#[derive(Args)]
pub struct LockArgs {
    /// Recording id.
    id: String,
    /// Why it is held, e.g. LegalHold#245 (kept with the lock and in the audit trail).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    storage: StorageArgs,
    /// Print the lock as JSON (its `id` is what `unlock` takes).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct UnlockArgs {
    /// Recording id.
    id: String,
    /// The lock's id (as `lock` printed it, or `recordings show ID` lists it).
    lock_id: String,
    /// Why the hold ends.
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    storage: StorageArgs,
}

#[derive(Args)]
pub struct DeleteArgs {
    /// Recording id.
    id: String,
    /// Why it is deleted (kept in its tombstone and in the audit trail).
    #[arg(long)]
    reason: String,
    /// Do not ask for confirmation (needed when standard input is not a terminal).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    storage: StorageArgs,
}

pub async fn lock(args: LockArgs) -> anyhow::Result<ExitCode> {
    let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
    let result = catalog
        .lock(&Scope::All, &args.id, &args.reason, &actor(), now())
        .await;
    catalog.close().await;
    let lock = match result {
        Ok(lock) => lock,
        Err(e) => return refused(&args.id, e),
    };
    if args.json {
        print_json(&lock)?;
    } else {
        println!(
            "locked recording {} with lock {} ({})",
            esc(&lock.recording_id),
            esc(&lock.id),
            esc(&lock.reason)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn unlock(args: UnlockArgs) -> anyhow::Result<ExitCode> {
    let (_, catalog) = open(&args.storage, Missing::Refuse).await?;
    let result = catalog
        .unlock(
            &Scope::All,
            &args.id,
            &args.lock_id,
            Some(&args.reason),
            &actor(),
            now(),
        )
        .await;
    let still = catalog
        .recording_details(&Scope::All, &args.id)
        .await
        .ok()
        .flatten()
        .map(|d| d.locks.iter().filter(|l| l.removed_at.is_none()).count());
    catalog.close().await;
    let lock = match result {
        Ok(lock) => lock,
        Err(e) => return refused(&args.id, e),
    };
    println!(
        "removed lock {} from recording {} ({} lock(s) still in force)",
        esc(&lock.id),
        esc(&lock.recording_id),
        still.unwrap_or(0)
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn delete(args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let (config, catalog) = open(&args.storage, Missing::Refuse).await?;
    let Some(details) = catalog.recording_details(&Scope::All, &args.id).await? else {
        catalog.close().await;
        return refused(
            &args.id,
            Error::NotFound {
                id: args.id.clone(),
            },
        );
    };
    // Refused before asking, when it would be anyway (the catalog checks again as it deletes).
    let in_force = details
        .locks
        .iter()
        .filter(|l| l.removed_at.is_none())
        .count();
    let refusal = if details.item.deleted_at.is_some() {
        Some(Error::Deleted {
            id: args.id.clone(),
        })
    } else if in_force > 0 {
        Some(Error::Locked {
            id: args.id.clone(),
            locks: u64::try_from(in_force).unwrap_or(u64::MAX),
        })
    } else {
        None
    };
    if let Some(error) = refusal {
        catalog.close().await;
        return refused(&args.id, error);
    }
    if !args.yes {
        let r = &details.item.recording;
        let question = format!(
            "Delete recording {} ({} from {} to {}, {} leg file(s)) for good? Its media and \
             metadata are removed; only a tombstone stays.\nType yes to delete: ",
            esc(&r.id),
            timestamp(r.started_at),
            esc(&r.from),
            esc(&r.to),
            r.legs.len()
        );
        match confirm(&question) {
            Confirmation::Yes => {}
            Confirmation::No => {
                catalog.close().await;
                eprintln!("not deleted");
                return Ok(ExitCode::FAILURE);
            }
            Confirmation::NoTerminal => {
                catalog.close().await;
                eprintln!(
                    "error: not deleting without confirmation: standard input is not a \
                     terminal (pass --yes)"
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let result = catalog
        .delete(&Scope::All, &args.id, &args.reason, &actor(), now())
        .await;
    catalog.close().await;
    let deletion = match result {
        Ok(deletion) => deletion,
        Err(e) => return refused(&args.id, e),
    };
    // The catalog has committed: the objects (with [storage] backend = "s3") and the files go
    // now. Already gone is fine.
    if let Some(settings) = config.s3_settings(std::env::vars()) {
        let objects = callvault_objects::Objects::s3(&settings)?;
        match callvault_api::remove_deleted_objects(&objects, &deletion).await {
            Ok(keys) => println!("{} object(s) removed from {}", keys.len(), objects.shown()),
            Err(e) => {
                eprintln!(
                    "error: recording {} is deleted from the catalog, but its objects in {} \
                     could not all be removed ({e}); their keys are in the tombstone",
                    esc(&deletion.recording_id),
                    objects.shown()
                );
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    let paths =
        tombstone::leftovers_of(&deletion.recording_id, deletion.started_at, &deletion.legs);
    let removal = tombstone::remove(&config.storage.data_dir, &paths);
    let files = removal
        .removed
        .iter()
        .filter(|p| {
            deletion
                .legs
                .iter()
                .any(|l| p.as_os_str() == l.path.as_str())
        })
        .count();
    if !removal.failed.is_empty() {
        for (path, e) in &removal.failed {
            eprintln!("error: cannot remove {}: {e}", path.display());
        }
        eprintln!(
            "recording {} is deleted from the catalog, but files remain: `callvault recordings \
             verify --fix` removes them",
            esc(&deletion.recording_id)
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "deleted recording {}: {files} leg file(s) removed, tombstone kept",
        esc(&deletion.recording_id)
    );
    Ok(ExitCode::SUCCESS)
}

/// A refusal of the catalog as the operator should read it: what happened and what to do.
fn refused(id: &str, error: Error) -> anyhow::Result<ExitCode> {
    let id = esc(id);
    let (message, code) = match &error {
        Error::NotFound { .. } => (format!("no recording {id}"), 2),
        Error::Locked { locks, .. } => (
            format!(
                "recording {id} is locked ({locks} lock(s) in force): nothing can delete it \
                 until every lock is removed (`callvault recordings show {id}` lists them, \
                 `callvault recordings unlock {id} LOCK_ID --reason …` removes one)"
            ),
            1,
        ),
        Error::Active { .. } => (
            format!("recording {id} is still being recorded: delete it once it has ended"),
            1,
        ),
        Error::Deleted { .. } => (format!("recording {id} is already deleted"), 1),
        Error::UnknownLock { lock_id, .. } => (
            format!(
                "recording {id} has no lock {} in force (`callvault recordings show {id}` \
                 lists its locks)",
                esc(lock_id)
            ),
            2,
        ),
        Error::InvalidInput { .. } => (error.to_string(), 1),
        _ => return Err(error.into()),
    };
    eprintln!("error: {message}");
    Ok(ExitCode::from(code))
}

enum Confirmation {
    Yes,
    No,
    NoTerminal,
}

/// Asks on the terminal; anything but `yes` is a no.
fn confirm(question: &str) -> Confirmation {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Confirmation::NoTerminal;
    }
    let mut stderr = std::io::stderr();
    let _ = write!(stderr, "{question}");
    let _ = stderr.flush();
    let mut answer = String::new();
    if stdin.lock().read_line(&mut answer).is_err() {
        return Confirmation::No;
    }
    if answer.trim().eq_ignore_ascii_case("yes") {
        Confirmation::Yes
    } else {
        Confirmation::No
    }
}
