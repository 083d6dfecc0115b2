//! The files of a deleted recording: where they are, which are still on disk, removing them.
//!
//! The catalog deletes first and hands back the files (`Catalog::delete` returns them in a
//! `Deletion`, a tombstone keeps them as `deleted_legs`); removing them is ours, after the
//! commit. A crash in between leaves files behind, which `recordings verify` reports and
//! `--fix` removes with the same code.

use std::io;
use std::path::{Component, Path, PathBuf};

use callvault_catalog::DeletedLeg;
use time::OffsetDateTime;

/// What a deleted recording may have left on disk, relative to the data dir: its leg files,
/// then its folder (with the metadata documents the recorder wrote beside the legs).
pub fn leftovers_of(id: &str, started_at: OffsetDateTime, legs: &[DeletedLeg]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = legs
        .iter()
        .map(|leg| PathBuf::from(&leg.path))
        .filter(|path| is_ours(path))
        .collect();
    let mut folders = vec![recording_dir(id, started_at)];
    // The folder the legs are in, in case it was not named after the start (a recording
    // catalogued from its files after a crash).
    for path in &paths {
        if let Some(parent) = path.parent()
            && parent.file_name().is_some_and(|name| name == id)
            && !folders.iter().any(|f| f == parent)
        {
            folders.push(parent.to_owned());
        }
    }
    paths.extend(folders);
    paths
}

/// The recorder's folder of a recording: `recordings/YYYY/MM/DD/<id>` by its start in UTC.
fn recording_dir(id: &str, started_at: OffsetDateTime) -> PathBuf {
    let t = started_at.to_offset(time::UtcOffset::UTC);
    PathBuf::from(format!(
        "recordings/{:04}/{:02}/{:02}/{id}",
        t.year(),
        u8::from(t.month()),
        t.day()
    ))
}

/// Only paths under `recordings/`, without `..` or a root, are ever removed: a catalog row
/// edited by hand must not make `delete` remove anything else.
fn is_ours(path: &Path) -> bool {
    let mut components = path.components();
    components.next() == Some(Component::Normal("recordings".as_ref()))
        && components.all(|c| matches!(c, Component::Normal(_)))
}

/// Which of `paths` (relative to `data_dir`) still exist.
pub fn still_there(data_dir: &Path, paths: &[PathBuf]) -> Vec<PathBuf> {
    paths
        .iter()
        .filter(|p| data_dir.join(p).symlink_metadata().is_ok())
        .cloned()
        .collect()
}

/// Removes `paths` (files, then folders with whatever they hold), skipping what is already
/// gone. Returns what was removed and what could not be.
pub fn remove(data_dir: &Path, paths: &[PathBuf]) -> Removal {
    let mut removal = Removal::default();
    for path in paths {
        let full = data_dir.join(path);
        let result = match full.symlink_metadata() {
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => Err(e),
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&full),
            Ok(_) => std::fs::remove_file(&full),
        };
        match result {
            Ok(()) => removal.removed.push(path.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => removal.failed.push((path.clone(), e)),
        }
    }
    removal
}

#[derive(Debug, Default)]
pub struct Removal {
    pub removed: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, io::Error)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn leg(path: &str) -> DeletedLeg {
        DeletedLeg {
            position: 0,
            label: "1".to_owned(),
            path: path.to_owned(),
            sha256: None,
            object_key: None,
        }
    }

    #[test]
    fn leftovers_are_the_legs_then_the_folder_never_outside_recordings() {
        let at = datetime!(2026-11-30 23:30 -02:00);
        let paths = leftovers_of(
            "r1",
            at,
            &[
                leg("recordings/2026/12/01/r1/1.wav"),
                leg("../etc/passwd"),
                leg("/etc/passwd"),
                leg("recordings/../../x"),
                leg("recordings/2026/11/30/r1/2.wav"),
            ],
        );
        assert_eq!(
            paths,
            [
                PathBuf::from("recordings/2026/12/01/r1/1.wav"),
                PathBuf::from("recordings/2026/11/30/r1/2.wav"),
                PathBuf::from("recordings/2026/12/01/r1"),
                PathBuf::from("recordings/2026/11/30/r1"),
            ]
        );
    }

    #[test]
    fn removing_skips_what_is_gone_and_takes_folders_whole() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("recordings/2026/12/01/r1");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(folder.join("1.wav"), b"RIFF").unwrap();
        std::fs::write(folder.join("metadata-1.xml"), b"<x/>").unwrap();
        let paths = [
            PathBuf::from("recordings/2026/12/01/r1/1.wav"),
            PathBuf::from("recordings/2026/12/01/r1/2.wav"),
            PathBuf::from("recordings/2026/12/01/r1"),
        ];
        assert_eq!(
            still_there(dir.path(), &paths),
            [paths[0].clone(), paths[2].clone()]
        );
        let removal = remove(dir.path(), &paths);
        assert!(removal.failed.is_empty(), "{:?}", removal.failed);
        assert_eq!(removal.removed, [paths[0].clone(), paths[2].clone()]);
        assert!(!folder.exists());
        assert!(dir.path().join("recordings/2026/12/01").exists());
        // Again: nothing left, nothing to do.
        let again = remove(dir.path(), &paths);
        assert!(again.removed.is_empty() && again.failed.is_empty());
    }
}
