//! What a start finishes for the run before it, after a crash (kill -9, power cut, OOM).
//!
//! 1. **Recordings this node left active** are completed `interrupted` / `crash`. Each leg's file
//!    is repaired first (`callvault_media::repair`: the header made to match the whole samples
//!    on disk, then hashed), so what the catalog says — samples, length, SHA-256 — is exactly
//!    the file. Only this node's rows are touched (`[node] id`): nodes sharing a PostgreSQL
//!    catalog never finish each other's live calls.
//! 2. **Recording folders the catalog does not know** (their row was lost: the process died
//!    while the catalog was down, before the row reached the spool) are catalogued from their
//!    files — the leg WAVs, repaired, and the raw metadata documents beside them — as
//!    `interrupted` / `recovered`, with a warning saying so.
//!
//! It runs in the background once the server takes calls: hashing the files of many long calls
//! can take minutes, and nothing it touches belongs to a call of this run. It first waits until
//! the archive has replayed the spool of the previous run (a spooled completion must land
//! before this decides a recording was left active). Recordings of this run are told apart by
//! their start: they began after `this_start` (recording ids are UUIDv7, whose first 48 bits are
//! the answer's time). Folders are looked for only in the day folders changed since the previous
//! run started (the lock file says when), so a start does not walk years of recordings.

use std::path::{Path, PathBuf};

use callvault_catalog::{
    Catalog, Completion, EndReason, LegCompletion, NewLeg, NewMetadataRevision, NewParticipant,
    NewRecording, Recording, RecordingState,
};
use callvault_siprec::Limits;
use time::OffsetDateTime;
use tracing::{error, info, warn};

use crate::archive::{ArchiveCommand, ArchiveHealth, ArchiveQueue};

/// What the recovery found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Recordings left active by an earlier run, completed `interrupted`.
    pub interrupted: usize,
    /// Recording folders without a catalog row, catalogued `recovered`.
    pub orphans: usize,
    /// Leg files whose header was rewritten or which could not be read.
    pub legs: usize,
}

pub struct Recovery {
    pub catalog: Catalog,
    pub archive: ArchiveQueue,
    pub health: ArchiveHealth,
    pub data_dir: PathBuf,
    pub node_id: String,
    /// When this run started: recordings begun since are this run's own.
    pub this_start: OffsetDateTime,
    /// When the previous run started (from the lock file); `None`: look everywhere.
    pub previous_start: Option<OffsetDateTime>,
    pub limits: Limits,
}

impl Recovery {
    pub async fn run(mut self) -> Recovered {
        self.health.wait_for(|s| s.startup_replayed).await;
        let mut recovered = Recovered::default();
        match self.catalog.active_recordings(&self.node_id).await {
            Ok(active) => {
                for recording in active {
                    if recording.started_at >= self.this_start {
                        continue;
                    }
                    recovered.legs += recording.legs.len();
                    let completion = self.interrupted(&recording).await;
                    let notify = notify_final(&completion);
                    self.archive.send(ArchiveCommand::Complete(completion));
                    self.archive.send(notify);
                    recovered.interrupted += 1;
                }
            }
            Err(error) => {
                error!(%error, "cannot list the recordings an earlier run left active; the next start tries again");
            }
        }
        for folder in self.unknown_folders().await {
            match self.catalogue_orphan(&folder).await {
                Ok(legs) => {
                    recovered.orphans += 1;
                    recovered.legs += legs;
                }
                Err(error) => {
                    warn!(folder = %folder.display(), %error, "cannot catalogue a recording folder")
                }
            }
        }
        if recovered != Recovered::default() {
            warn!(
                interrupted = recovered.interrupted,
                recovered_folders = recovered.orphans,
                legs = recovered.legs,
                "an earlier run ended without closing its recordings: their files are repaired and catalogued"
            );
        }
        recovered
    }

    /// The completion of a recording a crash cut off, its files repaired.
    async fn interrupted(&self, recording: &Recording) -> Completion {
        let mut legs = Vec::new();
        let mut end_ms = 0_i64;
        for leg in &recording.legs {
            let (completion, length_ms) =
                repaired(self.data_dir.join(&leg.path), leg.position).await;
            end_ms = end_ms.max(leg.added_at_ms + length_ms);
            legs.push(LegCompletion {
                counters: leg.counters.clone(),
                ..completion
            });
        }
        info!(
            recording_id = %recording.id,
            duration_ms = end_ms,
            "completing a recording an earlier run left active"
        );
        Completion {
            final_status: None,
            hung_up_by: None,
            recording_id: recording.id.clone(),
            state: RecordingState::Interrupted,
            ended_at: recording.started_at + time::Duration::milliseconds(end_ms),
            duration_ms: end_ms,
            end_reason: EndReason::Crash,
            legs,
            warnings: vec![
                "the server stopped during the call without closing it (crash or kill); its files were repaired at the next start"
                    .to_owned(),
            ],
        }
    }

    /// Recording folders (`recordings/Y/M/D/<uuid>`) of earlier runs that the catalog lacks.
    async fn unknown_folders(&self) -> Vec<PathBuf> {
        let root = self.data_dir.join("recordings");
        let since = self
            .previous_start
            .map(|start| start - time::Duration::days(1));
        let candidates = tokio::task::spawn_blocking(move || recording_folders(&root, since))
            .await
            .unwrap_or_default();
        let mut unknown = Vec::new();
        for folder in candidates {
            let Some(id) = folder.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let Some(started) = uuid_v7_time(id) else {
                continue;
            };
            if started >= self.this_start {
                continue;
            }
            match self.catalog.get_recording(id).await {
                Ok(Some(_)) => {}
                Ok(None) => unknown.push(folder),
                Err(error) => {
                    error!(%error, "cannot look recording folders up in the catalog; the next start tries again");
                    return Vec::new();
                }
            }
        }
        unknown
    }

    /// Catalogues one folder from its files; returns how many legs it had.
    async fn catalogue_orphan(&self, folder: &Path) -> anyhow::Result<usize> {
        let id = folder
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let started_at = uuid_v7_time(&id).unwrap_or(self.this_start);
        let rel_dir = folder.strip_prefix(&self.data_dir)?.to_path_buf();
        let FolderContents { wavs, documents } = {
            let folder = folder.to_path_buf();
            tokio::task::spawn_blocking(move || folder_contents(&folder)).await??
        };
        let first = documents
            .first()
            .and_then(|(_, xml)| callvault_siprec::parse_metadata(xml, &self.limits).ok());
        let participants: Vec<NewParticipant> = first
            .iter()
            .flat_map(|m| &m.participants)
            .map(|p| NewParticipant {
                id: p.id.clone(),
                aor: p.aor.clone(),
                name: p.name.clone(),
            })
            .collect();
        let mut aors = participants.iter().filter_map(|p| p.aor.clone());
        let (from, to) = (
            aors.next().unwrap_or_default(),
            aors.next().unwrap_or_default(),
        );
        let mut new_legs = Vec::new();
        let mut completions = Vec::new();
        let mut end_ms = 0_i64;
        for (position, wav) in (0_i64..).zip(&wavs) {
            let (completion, length_ms) = repaired(self.data_dir.join(wav), position).await;
            end_ms = end_ms.max(length_ms);
            let label = wav
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            new_legs.push(NewLeg {
                position,
                label,
                participant: None,
                binding_rule: "unbound".to_owned(),
                codec: "unknown".to_owned(),
                sample_rate: wav_rate(&self.data_dir.join(wav)).unwrap_or(0),
                path: wav.to_string_lossy().into_owned(),
                added_at_ms: 0,
            });
            completions.push(completion);
        }
        let revisions: Vec<NewMetadataRevision> = documents
            .iter()
            .map(|(number, xml)| NewMetadataRevision {
                number: *number,
                received_at: started_at,
                datamode: None,
                raw_xml: xml.clone(),
                participants: Vec::new(),
            })
            .collect();
        info!(recording_id = %id, legs = new_legs.len(), folder = %rel_dir.display(), "cataloguing a recording folder the catalog did not know");
        let leg_count = new_legs.len();
        self.archive
            .send(ArchiveCommand::Insert(Box::new(NewRecording {
                mode: callvault_types::RecordingMode::Siprec,
                route: None,
                id: id.clone(),
                node_id: self.node_id.clone(),
                session_id: first
                    .as_ref()
                    .and_then(|m| m.sessions.first())
                    .map(|s| s.id.clone())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| id.clone()),
                ingress_call_id: String::new(),
                egress_call_id: None,
                from,
                to,
                started_at,
                participants,
                legs: new_legs,
                metadata: revisions.first().cloned(),
                correlation_ids: first
                    .iter()
                    .flat_map(|m| &m.correlation_ids)
                    .map(|c| (c.kind.clone(), c.value.clone()))
                    .collect(),
                warnings: vec![
                    "catalogued from its files at a start: its catalog row was lost (the server stopped while the catalog was unreachable); Call-ID, source and codecs are unknown"
                        .to_owned(),
                ],
                source_address: String::new(),
                transport: String::new(),
                tenant: None,
            })));
        for revision in revisions.into_iter().skip(1) {
            self.archive.send(ArchiveCommand::Revision {
                recording_id: id.clone(),
                revision,
            });
        }
        let completion = Completion {
            final_status: None,
            hung_up_by: None,
            recording_id: id,
            state: RecordingState::Interrupted,
            ended_at: started_at + time::Duration::milliseconds(end_ms),
            duration_ms: end_ms,
            end_reason: EndReason::Recovered,
            legs: completions,
            warnings: Vec::new(),
        };
        let notify = notify_final(&completion);
        self.archive.send(ArchiveCommand::Complete(completion));
        self.archive.send(notify);
        Ok(leg_count)
    }
}

/// The announcement that follows a completion (see `notify`).
fn notify_final(completion: &Completion) -> ArchiveCommand {
    ArchiveCommand::Notify {
        recording_id: completion.recording_id.clone(),
        event: crate::notify::Event::of_final(completion.state),
        lock_id: None,
    }
}

/// Repairs one leg file: its completion (samples, digest or error) and its length in ms.
async fn repaired(path: PathBuf, position: i64) -> (LegCompletion, i64) {
    let shown = path.display().to_string();
    match tokio::task::spawn_blocking(move || callvault_media::repair(&path)).await {
        Ok(Ok(repaired)) => {
            let length_ms = (repaired.samples * 1000)
                .checked_div(u64::from(repaired.sample_rate))
                .unwrap_or(0);
            (
                LegCompletion {
                    position,
                    samples: i64::try_from(repaired.samples).unwrap_or(i64::MAX),
                    sha256: Some(repaired.sha256),
                    error: None,
                    counters: Default::default(),
                },
                i64::try_from(length_ms).unwrap_or(i64::MAX),
            )
        }
        Ok(Err(error)) => {
            warn!(path = %shown, %error, "a leg file could not be repaired");
            (
                LegCompletion {
                    position,
                    samples: 0,
                    sha256: None,
                    error: Some(format!("not repaired after a crash: {error}")),
                    counters: Default::default(),
                },
                0,
            )
        }
        Err(join) => (
            LegCompletion {
                position,
                samples: 0,
                sha256: None,
                error: Some(format!("repair did not finish: {join}")),
                counters: Default::default(),
            },
            0,
        ),
    }
}

/// The sample rate a WAV header names (bytes 24..28 of the fmt chunk, which our writer puts
/// first).
fn wav_rate(path: &Path) -> Option<u32> {
    use std::io::Read;
    let mut head = [0u8; 80];
    let mut file = std::fs::File::open(path).ok()?;
    let read = file.read(&mut head).ok()?;
    let head = &head[..read];
    let fmt = head.windows(4).position(|w| w == b"fmt ")?;
    let rate = head.get(fmt + 12..fmt + 16)?;
    Some(u32::from_le_bytes(rate.try_into().ok()?))
}

/// The time a UUIDv7 names (when the recording was answered); `None` for anything else.
fn uuid_v7_time(id: &str) -> Option<OffsetDateTime> {
    let uuid = uuid::Uuid::parse_str(id).ok()?;
    if uuid.get_version_num() != 7 {
        return None;
    }
    let (seconds, nanos) = uuid.get_timestamp()?.to_unix();
    let nanos = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    OffsetDateTime::from_unix_timestamp_nanos(nanos).ok()
}

/// Every `recordings/Y/M/D/<id>` folder whose day folder changed at or after `since`.
fn recording_folders(root: &Path, since: Option<OffsetDateTime>) -> Vec<PathBuf> {
    let since = since.map(std::time::SystemTime::from);
    let mut folders = Vec::new();
    let children = |dir: &Path| -> Vec<PathBuf> {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect()
            })
            .unwrap_or_default();
        entries.sort();
        entries
    };
    for year in children(root) {
        for month in children(&year) {
            for day in children(&month) {
                let changed = std::fs::metadata(&day).and_then(|m| m.modified()).ok();
                if let (Some(since), Some(changed)) = (since, changed)
                    && changed < since
                {
                    continue;
                }
                folders.extend(children(&day));
            }
        }
    }
    folders
}

/// What a recording folder holds: its leg files (relative to the data directory, sorted) and its
/// metadata documents by revision number.
struct FolderContents {
    wavs: Vec<PathBuf>,
    documents: Vec<(i64, String)>,
}

fn folder_contents(folder: &Path) -> std::io::Result<FolderContents> {
    let data_dir = folder
        .ancestors()
        .nth(5)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let mut wavs = Vec::new();
    let mut documents = Vec::new();
    for entry in std::fs::read_dir(folder)? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".wav") {
            wavs.push(path.strip_prefix(&data_dir).unwrap_or(&path).to_path_buf());
        } else if let Some(number) = name
            .strip_prefix("metadata-")
            .and_then(|rest| rest.strip_suffix(".xml"))
            .and_then(|n| n.parse::<i64>().ok())
            && let Ok(xml) = std::fs::read_to_string(&path)
        {
            documents.push((number, xml));
        }
    }
    wavs.sort();
    documents.sort();
    Ok(FolderContents { wavs, documents })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uuid_v7_names_the_time_it_was_made() {
        let before = OffsetDateTime::now_utc() - time::Duration::milliseconds(1);
        let id = uuid::Uuid::now_v7().to_string();
        let made = uuid_v7_time(&id).unwrap();
        assert!(made >= before && made <= OffsetDateTime::now_utc());
        assert_eq!(uuid_v7_time(&uuid::Uuid::new_v4().to_string()), None);
        assert_eq!(uuid_v7_time("../../etc"), None);
    }

    #[test]
    fn only_day_folders_changed_since_the_previous_start_are_searched() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("recordings");
        let old = root.join("2026/11/01/0193aaaa-0000-7000-8000-000000000001");
        let new = root.join("2026/12/02/0193bbbb-0000-7000-8000-000000000002");
        std::fs::create_dir_all(&old).unwrap();
        std::fs::create_dir_all(&new).unwrap();
        let long_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86_400);
        std::fs::File::open(root.join("2026/11/01"))
            .unwrap()
            .set_modified(long_ago)
            .unwrap();
        let all = recording_folders(&root, None);
        assert_eq!(all, [old.clone(), new.clone()]);
        let recent = recording_folders(
            &root,
            Some(OffsetDateTime::now_utc() - time::Duration::days(2)),
        );
        assert_eq!(recent, [new]);
    }

    use callvault_catalog::ListQuery;
    use sha2::Digest as _;

    use crate::archive::{self, ArchiveConfig};

    const METADATA: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
  <datamode>complete</datamode>
  <session session_id="sess-orphan"><sipSessionID>abc;remote=def</sipSessionID></session>
  <participant participant_id="p1"><nameID aor="sip:alice@example.com"/></participant>
  <participant participant_id="p2"><nameID aor="sip:bob@example.com"/></participant>
</recording>"#;

    /// A WAV as a crash leaves it: the header still says 0 samples (44-byte canonical header),
    /// `samples` whole samples of data and half of another.
    fn crashed_wav(path: &Path, samples: u32) {
        let mut bytes = Vec::new();
        bytes.extend_from_slice(b"RIFF");
        bytes.extend_from_slice(&36u32.to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&8000u32.to_le_bytes());
        bytes.extend_from_slice(&16000u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&0u32.to_le_bytes());
        for n in 0..samples {
            bytes.extend_from_slice(&((n % 1000) as i16).to_le_bytes());
        }
        bytes.push(0x7f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }

    fn v7_at(at: OffsetDateTime) -> String {
        let nanos = at.unix_timestamp_nanos();
        let ts = uuid::Timestamp::from_unix(
            uuid::NoContext,
            (nanos / 1_000_000_000) as u64,
            (nanos % 1_000_000_000) as u32,
        );
        uuid::Uuid::new_v7(ts).to_string()
    }

    fn active(id: &str, node: &str, started_at: OffsetDateTime, path: &str) -> NewRecording {
        NewRecording {
            mode: callvault_types::RecordingMode::Siprec,
            route: None,
            id: id.to_owned(),
            node_id: node.to_owned(),
            session_id: format!("s-{id}"),
            ingress_call_id: format!("{id}@sbc"),
            egress_call_id: None,
            from: "sip:a@example.com".to_owned(),
            to: "sip:b@example.com".to_owned(),
            started_at,
            participants: Vec::new(),
            legs: vec![NewLeg {
                position: 0,
                label: "1".to_owned(),
                participant: None,
                binding_rule: "order".to_owned(),
                codec: "PCMU".to_owned(),
                sample_rate: 8000,
                path: path.to_owned(),
                added_at_ms: 0,
            }],
            metadata: None,
            correlation_ids: Vec::new(),
            warnings: Vec::new(),
            source_address: "192.0.2.1:5060".to_owned(),
            transport: "udp".to_owned(),
            tenant: None,
        }
    }

    #[tokio::test]
    async fn a_start_finishes_what_this_node_left_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path();
        let catalog = Catalog::open(&Catalog::sqlite_url(data)).await.unwrap();
        let this_start = OffsetDateTime::now_utc();
        let an_hour_ago = this_start - time::Duration::hours(1);

        // Left active by this node's last run (a crash): its file's header says nothing.
        let crashed = v7_at(an_hour_ago);
        let crashed_path = format!("recordings/2026/12/01/{crashed}/1.wav");
        crashed_wav(&data.join(&crashed_path), 8000);
        catalog
            .insert_recording(&active(&crashed, "node-a", an_hour_ago, &crashed_path))
            .await
            .unwrap();
        // Another node's live call on the same catalog, and one of this run.
        let elsewhere = v7_at(an_hour_ago);
        catalog
            .insert_recording(&active(
                &elsewhere,
                "node-b",
                an_hour_ago,
                "recordings/x/1.wav",
            ))
            .await
            .unwrap();
        let ours_now = v7_at(this_start + time::Duration::seconds(1));
        catalog
            .insert_recording(&active(
                &ours_now,
                "node-a",
                this_start + time::Duration::seconds(1),
                "recordings/y/1.wav",
            ))
            .await
            .unwrap();
        // A folder whose row never reached the catalog, and one of this run's (row queued).
        let orphan = v7_at(an_hour_ago + time::Duration::minutes(5));
        let orphan_dir = data.join(format!("recordings/2026/12/01/{orphan}"));
        crashed_wav(&orphan_dir.join("1.wav"), 4000);
        crashed_wav(&orphan_dir.join("2.wav"), 2000);
        std::fs::write(orphan_dir.join("metadata-1.xml"), METADATA).unwrap();
        let fresh = v7_at(this_start + time::Duration::seconds(2));
        crashed_wav(
            &data.join(format!("recordings/2026/12/02/{fresh}/1.wav")),
            10,
        );

        let (queue, archive, health) = archive::start(
            catalog.clone(),
            data.to_path_buf(),
            ArchiveConfig::default(),
        );
        let recovered = Recovery {
            catalog: catalog.clone(),
            archive: queue.clone(),
            health,
            data_dir: data.to_path_buf(),
            node_id: "node-a".to_owned(),
            this_start,
            previous_start: None,
            limits: Limits {
                max_streams: 16,
                max_metadata_bytes: 65_536,
            },
        }
        .run()
        .await;
        assert_eq!(
            recovered,
            Recovered {
                interrupted: 1,
                orphans: 1,
                legs: 3
            }
        );
        drop(queue);
        archive
            .close(tokio::time::Instant::now() + std::time::Duration::from_secs(10))
            .await;

        let done = catalog.get_recording(&crashed).await.unwrap().unwrap();
        assert_eq!(done.state, RecordingState::Interrupted);
        assert_eq!(done.end_reason, Some(EndReason::Crash));
        assert_eq!(done.duration_ms, Some(1000));
        let file = std::fs::read(data.join(&crashed_path)).unwrap();
        assert_eq!(file.len(), 44 + 16_000, "the half sample is cut");
        assert_eq!(
            done.legs[0].sha256.as_deref(),
            Some(hex::encode(sha2::Sha256::digest(&file)).as_str()),
            "the catalog's digest is the repaired file's"
        );
        for untouched in [&elsewhere, &ours_now] {
            let row = catalog.get_recording(untouched).await.unwrap().unwrap();
            assert_eq!(row.state, RecordingState::Active, "{untouched}");
        }
        let found = catalog.get_recording(&orphan).await.unwrap().unwrap();
        assert_eq!(found.state, RecordingState::Interrupted);
        assert_eq!(found.end_reason, Some(EndReason::Recovered));
        assert_eq!(found.session_id, "sess-orphan");
        assert_eq!(
            (found.from.as_str(), found.to.as_str()),
            ("sip:alice@example.com", "sip:bob@example.com")
        );
        assert_eq!(found.legs.len(), 2);
        assert_eq!(found.legs[0].sample_rate, 8000);
        assert_eq!(found.duration_ms, Some(500));
        assert_eq!(found.metadata_revisions, 1);
        assert!(found.warnings[0].contains("catalogued from its files"));
        assert!(
            catalog.get_recording(&fresh).await.unwrap().is_none(),
            "this run's folder is left alone"
        );
        assert_eq!(
            catalog
                .list_recordings(&ListQuery::default())
                .await
                .unwrap()
                .len(),
            4
        );
    }
}
