//! Storage health: is there room (and a working disk) for new recordings?
//!
//! A low-water mark on the data directory's filesystem: below `min_free_bytes` free, new calls
//! are refused (503, OPTIONS 503, `/ready` says why) so a recording is never started into a disk
//! that is about to fill; calls in progress go on. Recovery needs no restart: once free space is
//! back above the mark plus a margin, calls are taken again. The margin (a tenth of the mark)
//! keeps a disk hovering at the mark from flapping. The first reading is logged here; changes are
//! logged once each by the recorder, which weighs the disk and the catalog together.
//!
//! [`LowWater`] is the pure rule, fed readings; [`monitor`] takes the readings on its own thread
//! (a `statvfs` and a probe write can block on a sick disk or a hung network mount — never in the
//! SIP loop) and publishes a [`StorageStatus`] on a watch channel.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;
use tracing::{info, warn};

/// The default mark: the smaller of 1 GiB and 5% of the filesystem.
pub fn default_mark(total_bytes: u64) -> u64 {
    (1u64 << 30).min(total_bytes / 20)
}

/// One look at the data directory's filesystem.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reading {
    pub free_bytes: u64,
    pub total_bytes: u64,
    /// Whether a small file could be written there (catches read-only remounts and I/O errors
    /// that free space does not show).
    pub writable: Result<(), String>,
}

/// What the rest of the server sees.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StorageStatus {
    pub free_bytes: u64,
    pub total_bytes: u64,
    pub mark_bytes: u64,
    /// `Err(why)` while new recordings must be refused.
    pub verdict: Result<(), String>,
    /// How many times the verdict went from healthy to refusing.
    pub refusals: u64,
}

/// The low-water rule, with hysteresis.
#[derive(Debug)]
pub struct LowWater {
    /// Configured mark; `None`: [`default_mark`] of the filesystem's size.
    configured: Option<u64>,
    low: bool,
    refusals: u64,
    last: Option<Result<(), String>>,
}

impl LowWater {
    pub fn new(configured: Option<u64>) -> LowWater {
        LowWater {
            configured,
            low: false,
            refusals: 0,
            last: None,
        }
    }

    /// The status after `reading`, and whether the verdict changed (to log once).
    pub fn assess(&mut self, reading: &Reading) -> (StorageStatus, bool) {
        let mark = self
            .configured
            .unwrap_or_else(|| default_mark(reading.total_bytes));
        let resume_at = mark.saturating_add(mark / 10);
        self.low = if self.low {
            reading.free_bytes < resume_at
        } else {
            reading.free_bytes < mark
        };
        let verdict = match &reading.writable {
            Err(why) => Err(format!("data directory not writable: {why}")),
            Ok(()) if self.low => Err(format!(
                "free space {} below the low-water mark {}",
                bytes(reading.free_bytes),
                bytes(mark)
            )),
            Ok(()) => Ok(()),
        };
        let changed = self.last.as_ref().map(Result::is_ok) != Some(verdict.is_ok());
        if changed && verdict.is_err() {
            self.refusals += 1;
        }
        self.last = Some(verdict.clone());
        let status = StorageStatus {
            free_bytes: reading.free_bytes,
            total_bytes: reading.total_bytes,
            mark_bytes: mark,
            verdict,
            refusals: self.refusals,
        };
        (status, changed)
    }
}

/// A size for people: bytes, or MiB with one decimal.
pub fn bytes(n: u64) -> String {
    const MIB: u64 = 1 << 20;
    if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else {
        format!("{n} B")
    }
}

/// Reads the filesystem of `dir`: free space for unprivileged writers, total size, and a probe
/// write.
pub fn read(dir: &Path) -> std::io::Result<Reading> {
    let (free_bytes, total_bytes) = space(dir)?;
    Ok(Reading {
        free_bytes,
        total_bytes,
        writable: probe(dir).map_err(|e| e.to_string()),
    })
}

/// Free bytes (for unprivileged writers) and total bytes of the filesystem holding `dir`,
/// writing nothing.
pub fn space(dir: &Path) -> std::io::Result<(u64, u64)> {
    let stat = rustix::fs::statvfs(dir)?;
    let unit = stat.f_frsize.max(1);
    Ok((
        stat.f_bavail.saturating_mul(unit),
        stat.f_blocks.saturating_mul(unit),
    ))
}

fn probe(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let path = dir.join(".callvault-probe");
    let result = (|| {
        let mut file = std::fs::File::create(&path)?;
        file.write_all(b"probe")?;
        file.sync_data()
    })();
    let _ = std::fs::remove_file(&path);
    result
}

/// Watches `dir` every `every` on its own thread; the first reading is taken before this
/// returns, so the server never starts taking calls on a disk it has not looked at.
pub fn monitor(
    dir: PathBuf,
    configured_mark: Option<u64>,
    every: Duration,
) -> std::io::Result<watch::Receiver<StorageStatus>> {
    let mut rule = LowWater::new(configured_mark);
    let first = read(&dir)?;
    let (status, _) = rule.assess(&first);
    log_first(&status);
    let (tx, rx) = watch::channel(status);
    std::thread::Builder::new()
        .name("storage-monitor".to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(every);
                let reading = match read(&dir) {
                    Ok(reading) => reading,
                    Err(error) => Reading {
                        free_bytes: 0,
                        total_bytes: 0,
                        writable: Err(format!("cannot read the filesystem: {error}")),
                    },
                };
                let (status, _) = rule.assess(&reading);
                if tx.send(status).is_err() {
                    return;
                }
            }
        })?;
    Ok(rx)
}

fn log_first(status: &StorageStatus) {
    match &status.verdict {
        Ok(()) => info!(
            free_bytes = status.free_bytes,
            mark_bytes = status.mark_bytes,
            "data directory: free space above the low-water mark"
        ),
        Err(why) => warn!(
            free_bytes = status.free_bytes,
            mark_bytes = status.mark_bytes,
            reason = %why,
            "data directory unhealthy at start: new recordings refused (503) until it recovers"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn reading(free: u64) -> Reading {
        Reading {
            free_bytes: free,
            total_bytes: 100 * MIB,
            writable: Ok(()),
        }
    }

    #[test]
    fn refuses_below_the_mark_and_resumes_above_it_plus_a_margin() {
        let mut rule = LowWater::new(Some(10 * MIB));
        let (status, changed) = rule.assess(&reading(50 * MIB));
        assert_eq!(status.verdict, Ok(()));
        assert!(changed, "the first reading is a state");
        let (status, changed) = rule.assess(&reading(9 * MIB));
        assert!(status.verdict.is_err());
        assert!(changed);
        assert_eq!(status.refusals, 1);
        // Back at the mark is not enough: the margin keeps a hovering disk from flapping.
        let (status, changed) = rule.assess(&reading(10 * MIB + 1));
        assert!(status.verdict.is_err());
        assert!(!changed, "no new log line while the state holds");
        let (status, changed) = rule.assess(&reading(11 * MIB));
        assert_eq!(status.verdict, Ok(()));
        assert!(changed);
        let (status, _) = rule.assess(&reading(10 * MIB + 1));
        assert_eq!(
            status.verdict,
            Ok(()),
            "healthy until it drops below the mark"
        );
        assert_eq!(status.refusals, 1);
    }

    #[test]
    fn the_default_mark_is_a_gibibyte_or_five_percent() {
        assert_eq!(default_mark(1 << 40), 1 << 30);
        assert_eq!(default_mark(100 * MIB), 5 * MIB);
        let mut rule = LowWater::new(None);
        let (status, _) = rule.assess(&reading(4 * MIB));
        assert_eq!(status.mark_bytes, 5 * MIB);
        assert!(status.verdict.is_err());
    }

    #[test]
    fn a_disk_that_cannot_be_written_is_refused_whatever_its_free_space() {
        let mut rule = LowWater::new(Some(MIB));
        let (status, _) = rule.assess(&Reading {
            writable: Err("Read-only file system (os error 30)".to_owned()),
            ..reading(50 * MIB)
        });
        let why = status.verdict.unwrap_err();
        assert!(why.contains("not writable"), "{why}");
    }

    #[test]
    fn a_real_directory_reads_as_writable_with_space() {
        let dir = tempfile::tempdir().unwrap();
        let reading = read(dir.path()).unwrap();
        assert!(reading.total_bytes > 0);
        assert!(reading.free_bytes <= reading.total_bytes);
        assert_eq!(reading.writable, Ok(()));
        assert!(!dir.path().join(".callvault-probe").exists());
    }
}
