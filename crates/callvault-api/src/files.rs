//! Removing a deleted recording's files once the catalog has kept its tombstone.

use std::io;
use std::path::{Component, Path, PathBuf};

use callvault_catalog::Deletion;
use callvault_objects::Objects;

/// What [`remove_deleted_files`] did.
#[derive(Debug, Default)]
pub struct RemovedFiles {
    /// Leg files removed (relative to the data dir).
    pub removed: Vec<PathBuf>,
    /// Leg files that were already gone.
    pub already_gone: Vec<PathBuf>,
    /// Paths that could not be removed, with why (the caller logs them; `recordings verify`
    /// finds them again).
    pub failed: Vec<(PathBuf, io::Error)>,
}

/// Removes what [`callvault_catalog::Catalog::delete`] left to the caller: every leg file of
/// `deletion`, and the recording's folder with whatever else it holds (the SIPREC metadata
/// documents): `recordings/YYYY/MM/DD/<id>/` of its start (UTC), and any folder a leg file
/// lies in that is named after the recording.
///
/// Files already gone count as removed (a retry, or `recordings verify --fix` first). A path
/// that is absolute or climbs out of `data_dir` (`..`) is never touched: the catalog's paths
/// are relative to it, and one that is not was not written by callvault.
pub fn remove_deleted_files(data_dir: &Path, deletion: &Deletion) -> RemovedFiles {
    remove(data_dir, deletion, true)
}

/// Removes only the leg files of `deletion` (what [`callvault_catalog::Catalog::delete_media`]
/// leaves to the caller): the recording's folder stays, with its SIPREC metadata documents
/// and `recording.json`, which are metadata.
pub fn remove_media_files(data_dir: &Path, deletion: &Deletion) -> RemovedFiles {
    remove(data_dir, deletion, false)
}

fn remove(data_dir: &Path, deletion: &Deletion, with_folder: bool) -> RemovedFiles {
    let mut outcome = RemovedFiles::default();
    let mut folders: Vec<PathBuf> = recording_folder(deletion).into_iter().collect();
    for leg in &deletion.legs {
        let relative = PathBuf::from(&leg.path);
        if !stays_inside(&relative) {
            outcome.failed.push((
                relative,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "not a path inside the data directory",
                ),
            ));
            continue;
        }
        match std::fs::remove_file(data_dir.join(&relative)) {
            Ok(()) => outcome.removed.push(relative.clone()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                outcome.already_gone.push(relative.clone());
            }
            Err(e) => outcome.failed.push((relative.clone(), e)),
        }
        if let Some(parent) = relative.parent()
            && parent.file_name() == Some(deletion.recording_id.as_ref())
            && !folders.iter().any(|f| f == parent)
        {
            folders.push(parent.to_owned());
        }
    }
    if !with_folder {
        return outcome;
    }
    for folder in folders {
        match std::fs::remove_dir_all(data_dir.join(&folder)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => outcome.failed.push((folder, e)),
        }
    }
    outcome
}

/// `recordings/YYYY/MM/DD/<id>` of the recording's start (UTC); `None` for an id that is not
/// one plain path component (never written by callvault).
fn recording_folder(deletion: &Deletion) -> Option<PathBuf> {
    if !is_one_component(&deletion.recording_id) {
        return None;
    }
    let at = deletion.started_at.to_offset(time::UtcOffset::UTC);
    Some(PathBuf::from(format!(
        "recordings/{:04}/{:02}/{:02}/{}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        deletion.recording_id
    )))
}

/// Removes a deleted recording's objects from the bucket: every object under its folder's
/// key (legs, `recording.json`) and each leg's own key (kept in the tombstone, in case the
/// prefix changed since). Returns the keys removed; objects already gone are no error.
pub async fn remove_deleted_objects(
    objects: &Objects,
    deletion: &Deletion,
) -> callvault_objects::Result<Vec<String>> {
    let mut removed = Vec::new();
    if let Some(folder) = recording_folder(deletion) {
        removed.extend(objects.delete_under(&folder.to_string_lossy()).await?);
    }
    for key in deletion
        .legs
        .iter()
        .filter_map(|leg| leg.object_key.as_deref())
    {
        if !removed.iter().any(|k| k == key) {
            objects.delete(key).await?;
            removed.push(key.to_owned());
        }
    }
    Ok(removed)
}

/// Removes the leg objects of a recording whose media retention deleted (its metadata, and
/// `recording.json` with it, stay). Returns the keys removed; objects already gone are no error.
pub async fn remove_media_objects(
    objects: &Objects,
    deletion: &Deletion,
) -> callvault_objects::Result<Vec<String>> {
    let mut removed = Vec::new();
    for key in deletion
        .legs
        .iter()
        .filter_map(|leg| leg.object_key.as_deref())
    {
        objects.delete(key).await?;
        removed.push(key.to_owned());
    }
    Ok(removed)
}

/// A single, ordinary path component (a recording id names one folder).
fn is_one_component(name: &str) -> bool {
    let mut components = Path::new(name).components();
    matches!(components.next(), Some(Component::Normal(_))) && components.next().is_none()
}

/// Relative, with no `..`, `/` or prefix: stays inside the folder it is joined to.
fn stays_inside(path: &Path) -> bool {
    !path.as_os_str().is_empty()
        && path
            .components()
            .all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use callvault_catalog::DeletedLeg;
    use time::macros::datetime;

    fn leg(position: i64, path: &str) -> DeletedLeg {
        DeletedLeg {
            position,
            label: position.to_string(),
            path: path.to_owned(),
            sha256: None,
            object_key: None,
        }
    }

    #[test]
    fn removes_the_legs_and_the_folder_and_tolerates_what_is_gone() {
        let data = tempfile::tempdir().unwrap();
        let folder = "recordings/2026/11/30/rec-1";
        std::fs::create_dir_all(data.path().join(folder)).unwrap();
        for name in ["0-a.wav", "metadata-1.xml"] {
            std::fs::write(data.path().join(folder).join(name), b"x").unwrap();
        }
        let outside = data.path().join("keep.wav");
        std::fs::write(&outside, b"x").unwrap();
        let deletion = Deletion {
            recording_id: "rec-1".to_owned(),
            // 01:30 on the 1st at +02:00 is the 30th in UTC, which names the folder.
            started_at: datetime!(2026-12-01 01:30 +02:00),
            legs: vec![
                leg(0, &format!("{folder}/0-a.wav")),
                leg(1, &format!("{folder}/1-b.wav")),
                leg(2, "../keep.wav"),
                leg(3, "/etc/passwd"),
            ],
        };
        let outcome = remove_deleted_files(data.path(), &deletion);
        assert_eq!(
            outcome.removed,
            vec![PathBuf::from(format!("{folder}/0-a.wav"))]
        );
        assert_eq!(
            outcome.already_gone,
            vec![PathBuf::from(format!("{folder}/1-b.wav"))]
        );
        assert_eq!(outcome.failed.len(), 2, "{:?}", outcome.failed);
        assert!(!data.path().join(folder).exists(), "the folder is gone");
        assert!(outside.exists(), "nothing outside the data dir is touched");
        assert!(data.path().join("recordings/2026/11/30").exists());

        // Again: everything is already gone, nothing fails but the refused paths.
        let again = remove_deleted_files(data.path(), &deletion);
        assert!(again.removed.is_empty());
        assert_eq!(again.already_gone.len(), 2);
        assert_eq!(again.failed.len(), 2);
    }

    /// Retention's media expiry takes the legs out of the bucket and leaves `recording.json`
    /// (the metadata stays); a full deletion then takes the rest of the folder.
    #[tokio::test]
    async fn media_expiry_removes_only_the_leg_objects_and_deletion_the_rest() {
        let objects = Objects::in_memory("site-a");
        let folder = "recordings/2026/11/30/rec-1";
        let mut legs = Vec::new();
        for (position, name) in [(1, "1.wav"), (2, "2.wav")] {
            let path = format!("{folder}/{name}");
            let key = objects.put_bytes(&path, &b"RIFF"[..]).await.unwrap();
            legs.push(DeletedLeg {
                object_key: Some(key),
                ..leg(position, &path)
            });
        }
        let json = objects
            .put_bytes(&format!("{folder}/recording.json"), &b"{}"[..])
            .await
            .unwrap();
        let deletion = Deletion {
            recording_id: "rec-1".to_owned(),
            started_at: datetime!(2026-11-30 08:00 UTC),
            legs,
        };

        let removed = remove_media_objects(&objects, &deletion).await.unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        for leg in &deletion.legs {
            let key = leg.object_key.as_deref().unwrap();
            assert!(objects.get(key).await.is_err(), "{key} is still there");
        }
        assert!(objects.get(&json).await.is_ok(), "recording.json is kept");

        let removed = remove_deleted_objects(&objects, &deletion).await.unwrap();
        assert!(removed.contains(&json), "{removed:?}");
        assert!(objects.get(&json).await.is_err());
    }
}
