//! The operator CLI on the real binary: users and tokens bootstrapped without the HTTP server,
//! the audit chain verified and caught after tampering (SQLite and PostgreSQL), locks blocking
//! deletion, deletion removing files and keeping a tombstone, files re-hashed, tenants matched
//! to calls, and what the CLI prints kept safe for a terminal.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use callvault_catalog::testing::PostgresDb;
use serde_json::Value;
use sqlx::Connection as _;

use crate::support::client::{Call, CallSpec, Transport};
use crate::support::{BIN, Server};

/// The login the CLI's changes are audited under in these tests.
const OPERATOR: &str = "e2e-operator";

/// Where a CLI run finds its catalog: `--data-dir`, and `--database-url` for PostgreSQL.
struct Catalog {
    data_dir: PathBuf,
    database_url: Option<String>,
}

impl Catalog {
    fn of(server: &Server) -> Catalog {
        Catalog {
            data_dir: server.data_dir.clone(),
            database_url: None,
        }
    }

    /// `callvault ARGS` against this catalog, with `stdin` as standard input.
    fn run_with(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .env("USER", OPERATOR)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(url) = &self.database_url {
            command.arg("--database-url").arg(url);
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, "")
    }

    /// Runs and requires success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        serde_json::from_str(&self.ok(args)).expect("--json prints JSON")
    }

    /// A statement run on the catalog's database behind callvault's back.
    async fn tamper(&self, sql: &str) {
        match &self.database_url {
            Some(url) => {
                let mut db = sqlx::PgConnection::connect(url).await.unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
            None => {
                let url = callvault_catalog::Catalog::sqlite_url(&self.data_dir);
                let mut db = sqlx::SqliteConnection::connect(&url).await.unwrap();
                sqlx::query(sql).execute(&mut db).await.unwrap();
            }
        }
    }

    async fn open(&self) -> callvault_catalog::Catalog {
        let url = match &self.database_url {
            Some(url) => url.clone(),
            None => callvault_catalog::Catalog::sqlite_url(&self.data_dir),
        };
        callvault_catalog::Catalog::open(&url).await.unwrap()
    }
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A two-party call of half a second, hung up and catalogued: its recording as `show --json`.
async fn recorded_call(server: &Server) -> Value {
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(500), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id)
}

fn leg_paths(server: &Server, recording: &Value) -> Vec<PathBuf> {
    recording["legs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| server.path_of(l))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Users, tokens and the audit trail: no server needed, on both engines.

async fn users_tokens_and_the_audit_chain(catalog: &Catalog) {
    let out = catalog.run_with(
        &[
            "users",
            "add",
            "alice",
            "--role",
            "admin",
            "--password-stdin",
        ],
        "correct horse battery staple\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("added user alice with role admin"));

    // A weak password is refused before anything is stored.
    let weak = catalog.run_with(
        &[
            "users",
            "add",
            "bob",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "password123\n",
    );
    assert!(!weak.status.success());
    assert!(
        stderr(&weak).contains("password refused"),
        "{}",
        stderr(&weak)
    );
    let empty = catalog.run_with(
        &[
            "users",
            "add",
            "bob",
            "--role",
            "viewer",
            "--password-stdin",
        ],
        "\n",
    );
    assert!(stderr(&empty).contains("empty"), "{}", stderr(&empty));
    let users = catalog.json(&["users", "list", "--json"]);
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice"]);
    assert_eq!(users[0]["role"], "admin");

    // `tokens create` prints one token and nothing else.
    let out = catalog.run(&[
        "tokens",
        "create",
        "alice",
        "--label",
        "ci",
        "--expires-in",
        "30",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    let token = printed.strip_suffix('\n').expect("one line");
    assert!(
        token.starts_with("cv_") && token.len() == 46 && !token.contains(char::is_whitespace),
        "{printed:?}"
    );
    let tokens = catalog.json(&["tokens", "list", "alice", "--json"]);
    assert_eq!(tokens.as_array().unwrap().len(), 1);
    assert_eq!(tokens[0]["label"], "ci");
    assert!(tokens[0]["expires_at"].is_string());
    // The token is alice's, as the API will see it; revoked, it is no one's.
    let db = catalog.open().await;
    let now = time::OffsetDateTime::now_utc();
    let found = db.authenticate(token, now).await.unwrap().unwrap();
    assert_eq!(found.user.name, "alice");
    let id = tokens[0]["id"].as_str().unwrap();
    assert!(
        catalog
            .ok(&["tokens", "revoke", id])
            .contains("revoked token")
    );
    assert_eq!(db.authenticate(token, now).await.unwrap(), None);
    db.close().await;

    // Three audited changes, by the operator.
    let entries = catalog.json(&["audit", "list", "--action", "users", "--json"]);
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 3);
    assert!(
        entries
            .iter()
            .all(|e| e["user"] == format!("cli:{OPERATOR}") && e["client"] == "cli")
    );
    let verified = catalog.run(&["audit", "verify"]);
    assert!(verified.status.success(), "{}", stdout(&verified));
    assert!(
        stdout(&verified).starts_with("intact: 3 entries"),
        "{}",
        stdout(&verified)
    );

    // A changed entry: the chain breaks there.
    catalog
        .tamper("UPDATE audit SET detail = 'added user mallory with role admin' WHERE seq = 1")
        .await;
    let broken = catalog.run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1), "{}", stdout(&broken));
    assert!(
        stdout(&broken).contains("entry 1 is changed"),
        "{}",
        stdout(&broken)
    );
    catalog
        .tamper("UPDATE audit SET detail = 'added user alice with role admin' WHERE seq = 1")
        .await;
    assert!(catalog.run(&["audit", "verify"]).status.success());
    // A removed entry, the last one: the head still counts it.
    catalog.tamper("DELETE FROM audit WHERE seq = 3").await;
    let broken = catalog.run(&["audit", "verify"]);
    assert_eq!(broken.status.code(), Some(1));
    assert!(
        stdout(&broken).contains("entry 3 is missing"),
        "{}",
        stdout(&broken)
    );
}

#[tokio::test]
async fn users_tokens_and_a_tampered_audit_trail_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // No server has run: `users add` creates the catalog (the first admin before `serve`).
    let catalog = Catalog {
        data_dir: dir.path().join("data"),
        database_url: None,
    };
    let refused = catalog.run(&["users", "list"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("no catalog at"),
        "{}",
        stderr(&refused)
    );
    users_tokens_and_the_audit_chain(&catalog).await;
}

#[tokio::test]
async fn users_tokens_and_a_tampered_audit_trail_on_postgres() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog {
        data_dir: dir.path().join("unused"),
        database_url: Some(db.url.clone()),
    };
    users_tokens_and_the_audit_chain(&catalog).await;
    db.drop().await;
}

// ---------------------------------------------------------------------------------------------
// Locks, deletion and verification of recorded files.

#[tokio::test]
async fn a_lock_blocks_deletion_until_removed_then_delete_removes_the_files_and_keeps_a_tombstone()
{
    let server = Server::start();
    let catalog = Catalog::of(&server);
    let rec = recorded_call(&server).await;
    let id = rec["id"].as_str().unwrap();
    let files = leg_paths(&server, &rec);
    let folder = files[0].parent().unwrap().to_owned();
    assert!(folder.join("metadata-1.xml").exists());

    let lock = catalog.json(&[
        "recordings",
        "lock",
        id,
        "--reason",
        "LegalHold#245",
        "--json",
    ]);
    let lock_id = lock["id"].as_str().unwrap();
    let listed = catalog.json(&["recordings", "list", "--json"]);
    assert_eq!(listed[0]["locked"], true);
    assert!(
        catalog
            .ok(&["recordings", "list"])
            .lines()
            .nth(1)
            .unwrap()
            .contains(" yes ")
    );

    let refused = catalog.run(&["recordings", "delete", id, "--reason", "cleanup", "--yes"]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).contains("is locked (1 lock(s) in force)"),
        "{}",
        stderr(&refused)
    );
    assert!(
        files.iter().all(|f| f.exists()),
        "nothing removed while locked"
    );

    let out = catalog.ok(&[
        "recordings",
        "unlock",
        id,
        lock_id,
        "--reason",
        "matter closed",
    ]);
    assert!(out.contains("0 lock(s) still in force"), "{out}");

    // Not a terminal and no --yes: nothing is deleted.
    let unconfirmed = catalog.run(&["recordings", "delete", id, "--reason", "GDPR request 17"]);
    assert_eq!(unconfirmed.status.code(), Some(1));
    assert!(
        stderr(&unconfirmed).contains("--yes"),
        "{}",
        stderr(&unconfirmed)
    );
    assert_eq!(
        catalog.json(&["recordings", "show", id, "--json"])["state"],
        "complete"
    );

    let out = catalog.ok(&[
        "recordings",
        "delete",
        id,
        "--reason",
        "GDPR request 17",
        "--yes",
    ]);
    assert!(out.contains("2 leg file(s) removed"), "{out}");
    assert!(
        !folder.exists(),
        "the recording's folder (metadata too) is gone"
    );

    let tombstone = catalog.json(&["recordings", "show", id, "--json"]);
    assert_eq!(tombstone["state"], "deleted");
    assert_eq!(tombstone["deleted_by"], format!("cli:{OPERATOR}"));
    assert_eq!(tombstone["delete_reason"], "GDPR request 17");
    assert_eq!(tombstone["legs"].as_array().unwrap().len(), 0);
    let kept: Vec<&Value> = tombstone["deleted_legs"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    assert_eq!(kept.len(), 2);
    for (deleted, leg) in kept.iter().zip(rec["legs"].as_array().unwrap()) {
        assert_eq!(deleted["sha256"], leg["sha256"]);
    }
    assert_eq!(
        tombstone["locks"][0]["removed_by"],
        format!("cli:{OPERATOR}")
    );
    let text = catalog.ok(&["recordings", "show", id]);
    assert!(
        text.contains(&format!("by cli:{OPERATOR}: GDPR request 17")),
        "{text}"
    );
    let listed = catalog.json(&["recordings", "list", "--state", "deleted", "--json"]);
    assert_eq!(listed[0]["id"], id);

    let again = catalog.run(&["recordings", "delete", id, "--reason", "twice", "--yes"]);
    assert!(
        stderr(&again).contains("already deleted"),
        "{}",
        stderr(&again)
    );
    let actions: Vec<String> = catalog
        .json(&["audit", "list", "--recording-id", id, "--json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["delete", "unlock", "lock"]);
    assert!(
        catalog
            .ok(&["audit", "verify"])
            .starts_with("intact: 3 entries")
    );

    // A crash between the catalog's commit and the removal leaves files: verify finds them,
    // --fix removes them.
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(&files[0], b"left behind").unwrap();
    let found = catalog.run(&["recordings", "verify"]);
    assert_eq!(found.status.code(), Some(1));
    assert!(
        stdout(&found).contains(&format!("LEFTOVER  {id} (deleted)")),
        "{}",
        stdout(&found)
    );
    let fixed = catalog.run(&["recordings", "verify", "--fix"]);
    assert!(fixed.status.success(), "{}", stdout(&fixed));
    assert!(stdout(&fixed).contains("REMOVED"), "{}", stdout(&fixed));
    assert!(!folder.exists());
    assert!(catalog.run(&["recordings", "verify"]).status.success());
}

#[tokio::test]
async fn verify_rehashes_every_leg_and_names_a_changed_or_missing_file() {
    let server = Server::start();
    let catalog = Catalog::of(&server);
    let rec = recorded_call(&server).await;
    let id = rec["id"].as_str().unwrap();
    let files = leg_paths(&server, &rec);

    let out = catalog.run(&["recordings", "verify"]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("1 recording(s), 2 file(s) verified: 0 missing"),
        "{}",
        stdout(&out)
    );

    // One sample changed at the end of leg 1: same size, another digest.
    flip_last_byte(&files[0]);
    let out = catalog.run(&["recordings", "verify", id]);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout(&out);
    let relative = rec["legs"][0]["path"].as_str().unwrap();
    assert!(
        report.contains(&format!("CHANGED   {id} leg 1 {relative}")),
        "{report}"
    );
    std::fs::remove_file(&files[1]).unwrap();
    let report = stdout(&catalog.run(&["recordings", "verify", "--fix"]));
    assert!(report.contains("MISSING   "), "{report}");
    assert!(
        report.contains("1 missing") && report.contains("1 changed"),
        "{report}"
    );
    assert!(
        files[0].exists(),
        "--fix never touches a kept recording's files"
    );
    let unknown = catalog.run(&["recordings", "verify", "no-such-recording"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(stdout(&unknown).contains("UNKNOWN"));
}

fn flip_last_byte(path: &Path) {
    let mut bytes = std::fs::read(path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x55;
    std::fs::write(path, bytes).unwrap();
}

// ---------------------------------------------------------------------------------------------
// Tenants

#[tokio::test]
async fn a_call_whose_request_uri_user_matches_a_tenant_belongs_to_it() {
    // The test client's Request-URI is sip:srs@…; it comes from 127.0.0.1.
    let server = Server::start_with(
        "[[tenants]]\nname = \"elsewhere\"\nrequest_user = \"^srs$\"\nsource = \"203.0.113.0/24\"\n\n\
         [[tenants]]\nname = \"acme\"\nrequest_user = \"^srs$\"\nsource = \"127.0.0.0/8\"\n",
    );
    let catalog = Catalog::of(&server);
    let rec = recorded_call(&server).await;
    let id = rec["id"].as_str().unwrap();
    assert_eq!(rec["tenant"], "acme");
    assert!(
        catalog
            .ok(&["recordings", "show", id])
            .contains("tenant       acme")
    );
    let only_acme = catalog.json(&["recordings", "list", "--tenant", "acme", "--json"]);
    assert_eq!(only_acme.as_array().unwrap().len(), 1);
    let none = catalog.json(&["recordings", "list", "--tenant", "elsewhere", "--json"]);
    assert!(none.as_array().unwrap().is_empty());
}

#[test]
fn an_invalid_tenant_pattern_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("callvault.toml");
    std::fs::write(
        &config,
        "[[tenants]]\nname = \"acme\"\nrequest_user = \"^acme-(\"\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args([
            "serve",
            "--sip-listen",
            "127.0.0.1:0",
            "--http-listen",
            "127.0.0.1:0",
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("[[tenants]] #1 (\"acme\")")
            && err.contains("request_user \"^acme-(\" is not a valid regular expression"),
        "{err}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "refused before creating anything"
    );
}

// ---------------------------------------------------------------------------------------------
// What the CLI prints

#[tokio::test]
async fn control_characters_from_the_network_are_escaped_in_recordings_list_and_show() {
    let server = Server::start();
    let catalog = Catalog::of(&server);
    // A C1 CSI (U+009B, legal in XML) in the caller's AOR: the recording's `from`.
    let mut spec = CallSpec::two_parties(440.0, 1000.0);
    spec.streams[0].aor = "sip:ali\u{9b}2Jce@example.com".to_owned();
    let mut call = Call::answered(Transport::Udp, server.sip, spec).await;
    call.play(Duration::from_millis(300), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    let rec = server.completed(&call.call_id);
    assert_eq!(
        rec["from"], "sip:ali\u{9b}2Jce@example.com",
        "stored as received"
    );
    let id = rec["id"].as_str().unwrap();

    for args in [
        &["recordings", "list"][..],
        &["recordings", "list", "--json"],
        &["recordings", "show", id],
        &["recordings", "show", id, "--json"],
    ] {
        let out = catalog.ok(args);
        assert!(
            !out.chars().any(|c| c.is_control() && c != '\n'),
            "{args:?} printed a raw control character: {out:?}"
        );
        assert!(out.contains("ali\\u"), "{args:?}: {out}");
    }
    assert!(
        catalog
            .ok(&["recordings", "list"])
            .contains("sip:ali\\u{9b}2Jce@exam")
    );
}

#[test]
fn a_database_password_never_appears_in_an_error() {
    for password in ["pa#ss", "pa/ss", "pa?ss", "s3cr#t/x?y"] {
        let url = format!("postgres://vault:{password}@127.0.0.1:1/callvault");
        for args in [
            &["recordings", "list"][..],
            &["users", "list"],
            &["audit", "verify"],
        ] {
            let out = Command::new(BIN)
                .args(args)
                .args(["--database-url", &url])
                .output()
                .unwrap();
            assert!(!out.status.success());
            let err = stderr(&out);
            assert!(
                !err.contains(password),
                "{args:?} printed the password: {err}"
            );
            assert!(
                err.contains("postgres://***@127.0.0.1:1/callvault"),
                "{err}"
            );
        }
    }
}
