//! One `callvault serve` per data directory.
//!
//! Two servers on one data directory would each believe the other's live recordings were left
//! by a crash and mark them interrupted, and could write into the same folders. An advisory lock
//! (`flock`) on `DATA/callvault.lock` is taken before anything else happens; the kernel releases
//! it when the process ends, however it ends (kill -9 included), so a stale lock file never
//! blocks a restart. The file holds the owner's pid, node id and start time, for the error a
//! second server prints.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use anyhow::{Context, bail};
use rustix::fs::{FlockOperation, flock};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

const LOCK_FILE_NAME: &str = "callvault.lock";

/// Held for the life of the server; dropping it releases the lock.
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    previous_start: Option<OffsetDateTime>,
}

impl DataDirLock {
    /// Takes the lock or fails at once, saying who holds it.
    pub fn acquire(data_dir: &Path, node_id: &str) -> anyhow::Result<DataDirLock> {
        let path = data_dir.join(LOCK_FILE_NAME);
        // Not truncated on open: if another server holds it, its contents are the message.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        if let Err(error) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if error == rustix::io::Errno::WOULDBLOCK {
                let mut owner = String::new();
                let _ = file.read_to_string(&mut owner);
                bail!(
                    "data directory {} is in use by another callvault ({}); one server per data directory",
                    data_dir.display(),
                    owner.trim()
                );
            }
            return Err(std::io::Error::from(error))
                .with_context(|| format!("locking {}", path.display()));
        }
        let mut previous = String::new();
        let _ = file.read_to_string(&mut previous);
        let previous_start = previous
            .split_whitespace()
            .skip_while(|word| *word != "since")
            .nth(1)
            .and_then(|since| OffsetDateTime::parse(since, &Rfc3339).ok());
        let now = OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_else(|_| "unknown".to_owned());
        file.set_len(0)?;
        file.seek(SeekFrom::Start(0))?;
        writeln!(
            file,
            "pid {} node {} since {now}",
            std::process::id(),
            node_id
        )?;
        file.sync_data()?;
        Ok(DataDirLock {
            _file: file,
            previous_start,
        })
    }

    /// When the previous server on this data directory started, as its lock file said
    /// (`None` on a first start). What it recorded and did not finish lies after this.
    pub fn previous_start(&self) -> Option<OffsetDateTime> {
        self.previous_start
    }
}

/// The pid and node id of the server holding `data_dir`'s lock (for `callvault drain`); an
/// error when none does (the lock is free: nothing to signal).
pub fn running_server(data_dir: &Path) -> anyhow::Result<(i32, String)> {
    let path = data_dir.join(LOCK_FILE_NAME);
    let mut file = File::open(&path)
        .with_context(|| format!("no callvault has run on {}", data_dir.display()))?;
    match flock(&file, FlockOperation::NonBlockingLockShared) {
        Err(error) if error == rustix::io::Errno::WOULDBLOCK => {}
        Ok(()) => bail!("no callvault is running on {}", data_dir.display()),
        Err(error) => {
            return Err(std::io::Error::from(error))
                .with_context(|| format!("checking the lock {}", path.display()));
        }
    }
    let mut owner = String::new();
    file.read_to_string(&mut owner)?;
    let mut words = owner.split_whitespace();
    let mut pid = None;
    let mut node = None;
    while let Some(word) = words.next() {
        match word {
            "pid" => pid = words.next().and_then(|p| p.parse::<i32>().ok()),
            "node" => node = words.next().map(str::to_owned),
            _ => {}
        }
    }
    match (pid, node) {
        (Some(pid), Some(node)) => Ok((pid, node)),
        _ => bail!("{} does not name its server: {owner:?}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_on_the_same_directory_is_refused_and_names_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path(), "node-a").unwrap();
        let error = DataDirLock::acquire(dir.path(), "node-b").unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("in use by another callvault"), "{text}");
        assert!(text.contains("node node-a"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        // The owner's file is untouched by the refused attempt.
        let path = dir.path().join(LOCK_FILE_NAME);
        assert!(std::fs::read_to_string(&path).unwrap().contains("node-a"));
        assert_eq!(
            first.previous_start(),
            None,
            "a first start has no predecessor"
        );
        drop(first);
        let second = DataDirLock::acquire(dir.path(), "node-b").unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains("node-b"));
        let previous = second
            .previous_start()
            .expect("the first server's start is read back");
        assert!(OffsetDateTime::now_utc() - previous < time::Duration::minutes(1));
    }
}
