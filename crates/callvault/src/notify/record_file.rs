//! `recording.json` beside the WAVs: the recording as `recordings show --json` prints it,
//! written when the recording is final, so a job that finds the folder needs no catalog.
//!
//! Written to a temporary name in the folder, synced, then renamed over `recording.json`:
//! a reader sees the old file or the new, never half of one. Only the recording's own folder
//! (`recordings/…/<id>`, named after the id) is ever written.

use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};

use callvault_catalog::RecordingDetails;

pub const NAME: &str = "recording.json";

/// The recording's folder: the one its legs are in, else where the recorder puts it
/// (`recordings/YYYY/MM/DD/<id>`, the UTC date it started).
pub fn folder(data_dir: &Path, details: &RecordingDetails) -> PathBuf {
    let recording = &details.item.recording;
    let from_legs = recording.legs.iter().find_map(|leg| {
        let parent = Path::new(&leg.path).parent()?;
        let own = parent.file_name()? == recording.id.as_str()
            && parent.starts_with("recordings")
            && parent
                .components()
                .all(|c| matches!(c, Component::Normal(_)));
        own.then(|| parent.to_path_buf())
    });
    let relative = from_legs.unwrap_or_else(|| {
        let started = recording.started_at;
        PathBuf::from(format!(
            "recordings/{:04}/{:02}/{:02}/{}",
            started.year(),
            u8::from(started.month()),
            started.day(),
            recording.id
        ))
    });
    data_dir.join(relative)
}

pub fn contents(details: &RecordingDetails) -> Vec<u8> {
    let mut json = serde_json::to_string_pretty(details).expect("a recording serializes");
    json.push('\n');
    crate::log::escape_json(json).into_bytes()
}

/// Writes `folder/recording.json` atomically. A folder that does not exist is not created (the
/// recording has no files: deleted, or never written).
pub fn write(folder: &Path, json: &[u8]) -> io::Result<()> {
    if !folder.is_dir() {
        return Ok(());
    }
    let temporary = folder.join(format!(".{NAME}.{}.partial", uuid::Uuid::new_v4().simple()));
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temporary)?;
        file.write_all(json)?;
        file.sync_all()?;
        std::fs::rename(&temporary, folder.join(NAME))?;
        std::fs::File::open(folder)?.sync_all()
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}
