//! Test helpers, for this crate's tests and (with the `testing` feature) its dependents': a
//! throwaway database on the test PostgreSQL server, and a small filesystem that can be filled
//! to test a full disk for real.
//!
//! Both skip (returning `None` with a note on stderr) where the environment cannot provide
//! them, except in CI (`CI` set), where a skip would hide a missing test: there they panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use callvault_types::{DtmfSource, EndReason, LegCounters};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::model::{
    Completion, DtmfEvent, LegCompletion, NewLeg, NewParticipant, NewRecording, RecordingState,
};

/// A throwaway database on the PostgreSQL server named by `CALLVAULT_TEST_POSTGRES_URL`
/// (`./scripts/test` starts one); [`PostgresDb::drop`] removes it.
pub struct PostgresDb {
    admin_url: String,
    name: String,
    /// The URL of the new database.
    pub url: String,
}

impl PostgresDb {
    pub const ENV: &str = "CALLVAULT_TEST_POSTGRES_URL";

    /// Creates an empty database; `None` (with a note) when no server is configured.
    pub async fn create() -> Option<PostgresDb> {
        let Ok(admin_url) = std::env::var(Self::ENV) else {
            // The project's test command always provides a server; only a bare `cargo test`
            // may skip, and never silently in CI.
            assert!(
                std::env::var_os("CI").is_none(),
                "{} is not set: CI must run the PostgreSQL catalog tests (use ./scripts/test)",
                Self::ENV
            );
            eprintln!(
                "skipped: set {} to run the PostgreSQL catalog tests",
                Self::ENV
            );
            return None;
        };
        let name = format!("callvault_test_{}", uuid::Uuid::new_v4().simple());
        let admin = sqlx::PgPool::connect(&admin_url).await.unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = with_database(&admin_url, &name);
        Some(PostgresDb {
            admin_url,
            name,
            url,
        })
    }

    /// A connection pool on the server's admin database, to act on this database from outside
    /// (terminate its connections, hold its locks).
    pub async fn admin(&self) -> sqlx::PgPool {
        sqlx::PgPool::connect(&self.admin_url).await.unwrap()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database, closing whatever connections are still open on it.
    pub async fn drop(self) {
        let admin = sqlx::PgPool::connect(&self.admin_url).await.unwrap();
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.name))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
    }
}

/// `url` with its database (path) replaced by `name`, keeping any `?query`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{name}?{query}"),
        None => format!("{base}/{name}"),
    }
}

/// A tmpfs of a few MiB mounted on a temporary folder (root only), unmounted on drop: a real
/// filesystem that fills up, to test what a full disk does.
pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB; `None` (with a note) where mounting is not allowed.
    pub fn mount(mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(dir.path())
            .output();
        match mounted {
            Ok(output) if output.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(output) => String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                    Err(e) => e.to_string(),
                };
                // CI runs as root: there a full-disk test must not vanish silently.
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot mount a tmpfs in CI ({why}): the full-disk tests need root"
                );
                eprintln!("skipped: mounting a tmpfs needs root ({why})");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the filesystem with `filler` until a write fails for lack of space; returns the
    /// filler's path (delete it to free the space).
    pub fn fill(&self, filler: &str) -> PathBuf {
        use std::io::Write as _;
        let path = self.path().join(filler);
        let mut file = std::fs::File::create(&path).unwrap();
        let block = vec![0xA5_u8; 64 * 1024];
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::StorageFull => break,
                Err(e) => panic!("filling {}: {e}", path.display()),
            }
        }
        // The last partial block: byte by byte until nothing fits.
        while let Ok(1) = file.write(&block[..1]) {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a file still open (a pool closing late) must not keep the mount forever.
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// The node the builders below record on.
pub const NODE: &str = "node-a";

pub fn participant(id: &str, aor: Option<&str>, name: Option<&str>) -> NewParticipant {
    NewParticipant {
        id: id.to_owned(),
        aor: aor.map(str::to_owned),
        name: name.map(str::to_owned),
    }
}

pub fn leg(position: i64, label: &str, participant: Option<&str>) -> NewLeg {
    NewLeg {
        position,
        label: label.to_owned(),
        participant: participant.map(str::to_owned),
        binding_rule: "metadata".to_owned(),
        codec: "PCMA".to_owned(),
        sample_rate: 8000,
        path: format!("recordings/2026/11/30/rec/{position}-{label}.wav"),
        added_at_ms: 0,
    }
}

pub fn new_recording(id: &str, started_at: OffsetDateTime) -> NewRecording {
    NewRecording {
        mode: callvault_types::RecordingMode::Siprec,
        route: None,
        id: id.to_owned(),
        node_id: NODE.to_owned(),
        session_id: format!("session-{id}"),
        ingress_call_id: format!("ingress-{id}@src.example"),
        egress_call_id: None,
        from: "sip:src@sbc.example".to_owned(),
        to: "sip:srs@callvault.example".to_owned(),
        started_at,
        participants: vec![participant("p1", Some("sip:alice@example.com"), None)],
        legs: vec![leg(0, "1", Some("p1"))],
        metadata: None,
        correlation_ids: Vec::new(),
        warnings: Vec::new(),
        source_address: "192.0.2.10:5060".to_owned(),
        transport: "udp".to_owned(),
        tenant: None,
    }
}

pub fn counters(packets: u64) -> LegCounters {
    LegCounters {
        packets,
        lost: 3,
        duplicates: 1,
        out_of_order: 2,
        late: 4,
        ..LegCounters::default()
    }
}

pub fn completion(id: &str, position: i64, packets: u64, sha256: &str) -> Completion {
    Completion {
        final_status: None,
        hung_up_by: None,
        recording_id: id.to_owned(),
        state: RecordingState::Complete,
        ended_at: datetime!(2026-11-30 10:05:00.250 UTC),
        duration_ms: 300_250,
        end_reason: EndReason::Bye,
        legs: vec![LegCompletion {
            position,
            samples: i64::try_from(packets).unwrap() * 160,
            sha256: Some(sha256.to_owned()),
            error: None,
            counters: counters(packets),
        }],
        warnings: Vec::new(),
    }
}

pub fn dtmf(seq: i64, digit: &str, leg: &str, offset_ms: i64) -> DtmfEvent {
    DtmfEvent {
        seq,
        digit: digit.to_owned(),
        leg: leg.to_owned(),
        offset_ms,
        duration_ms: 80,
        source: DtmfSource::Rfc4733,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(
            with_database("postgres://u:p@h:5432/postgres?sslmode=disable", "t1"),
            "postgres://u:p@h:5432/t1?sslmode=disable"
        );
        assert_eq!(with_database("postgres://h", "t1"), "postgres://h/t1");
    }
}
