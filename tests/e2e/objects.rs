//! The object storage tier against a real S3 server (moto's, installed by `scripts/setup
//! --tests` in ~/.cache/callvault-tools): a recorded call's legs and recording.json land in the
//! bucket, checked; the local copies go; playback with a Range comes from the bucket; a
//! delete removes the objects; an upload that fails while the bucket is down is retried when
//! it is back; a `kill -9` with uploads pending resumes them at the next start.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use crate::support::audio::dominant_frequency;
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::request;
use crate::support::{Server, leg};

pub(crate) const BUCKET: &str = "recordings";
pub(crate) const ENV: &[(&str, &str)] = &[
    ("AWS_ACCESS_KEY_ID", "testing"),
    ("AWS_SECRET_ACCESS_KEY", "testing"),
    ("AWS_REGION", "us-east-1"),
];

/// A moto S3 server on loopback; killed when dropped. Its objects live in its memory, so a
/// restarted one starts empty.
pub(crate) struct S3 {
    child: Child,
    pub(crate) addr: SocketAddr,
}

fn moto_server() -> PathBuf {
    if let Some(path) = std::env::var_os("CALLVAULT_MOTO_SERVER") {
        return path.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let path = cache.join("callvault-tools/bin/moto_server");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup --tests",
        path.display()
    );
    path
}

pub(crate) fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

impl S3 {
    pub(crate) fn start(addr: SocketAddr) -> S3 {
        let child = Command::new(moto_server())
            .args(["-H", "127.0.0.1", "-p", &addr.port().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "moto did not listen on {addr}");
            std::thread::sleep(Duration::from_millis(100));
        }
        let s3 = S3 { child, addr };
        let created = request(addr, "PUT", &format!("/{BUCKET}"), &[], None);
        assert_eq!(
            created.status,
            200,
            "{}",
            String::from_utf8_lossy(&created.body)
        );
        s3
    }

    /// The object `key` as a signed S3 client reads it: `None` when there is none.
    pub(crate) async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let objects = callvault_objects::Objects::s3(&callvault_objects::S3Settings {
            bucket: BUCKET.to_owned(),
            prefix: String::new(),
            region: Some("us-east-1".to_owned()),
            endpoint: Some(format!("http://{}", self.addr)),
            allow_http: true,
            environment: ENV
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        })
        .unwrap();
        match objects.get(key).await {
            Ok(bytes) => Some(bytes.to_vec()),
            Err(callvault_objects::Error::NotFound { .. }) => None,
            Err(e) => panic!("reading {key}: {e}"),
        }
    }
}

impl Drop for S3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn config(s3: SocketAddr, local_grace_secs: u64) -> String {
    format!(
        "[storage]\nbackend = \"s3\"\nbucket = \"{BUCKET}\"\nprefix = \"site-a\"\n\
         endpoint = \"http://{s3}\"\nallow_http = true\nlocal_grace_secs = {local_grace_secs}\n\
         upload_interval_ms = 100\nupload_retry_initial_ms = 200\nupload_retry_max_ms = 1000\n"
    )
}

async fn recorded_call(server: &Server) -> Value {
    let mut call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(440.0, 1000.0),
    )
    .await;
    call.play(Duration::from_millis(800), &[]).await;
    assert_eq!(call.bye().await.status, 200);
    server.completed(&call.call_id)
}

/// Waits until every leg of `id` has an object key (read with the CLI).
fn wait_uploaded(server: &Server, id: &str, wait: Duration) -> Value {
    let deadline = Instant::now() + wait;
    loop {
        let shown = server.show(id);
        let legs = shown["legs"].as_array().unwrap();
        if !legs.is_empty() && legs.iter().all(|l| l["object_key"].is_string()) {
            return shown;
        }
        assert!(Instant::now() < deadline, "not uploaded: {shown:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn token(server: &Server) -> String {
    let out = server.operator(
        &[
            "users",
            "add",
            "ada",
            "--role",
            "compliance",
            "--password-stdin",
        ],
        "correct horse battery staple 42\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.operator(&["tokens", "create", "ada"], "");
    format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim())
}

fn samples(wav: &[u8]) -> Vec<i16> {
    wav[80..]
        .chunks_exact(2)
        .map(|p| i16::from_le_bytes([p[0], p[1]]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_goes_to_the_bucket_plays_from_it_by_range_and_its_delete_removes_the_objects() {
    let s3 = S3::start(free_port());
    let server = Server::start_with_options(&config(s3.addr, 0), &[], ENV);
    let recording = recorded_call(&server).await;
    let id = recording["id"].as_str().unwrap().to_owned();
    let shown = wait_uploaded(&server, &id, Duration::from_secs(30));

    // Each leg is in the bucket, byte for byte what was recorded (its SHA-256), and its local
    // copy is gone (grace 0).
    for leg in shown["legs"].as_array().unwrap() {
        let key = leg["object_key"].as_str().unwrap();
        assert!(key.starts_with("site-a/recordings/"), "{key}");
        let object = s3
            .get(key)
            .await
            .unwrap_or_else(|| panic!("no object {key}"));
        assert_eq!(
            hex::encode(Sha256::digest(&object)),
            leg["sha256"].as_str().unwrap()
        );
        let local = server.data_dir.join(leg["path"].as_str().unwrap());
        let deadline = Instant::now() + Duration::from_secs(10);
        while local.exists() {
            assert!(Instant::now() < deadline, "{} was kept", local.display());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let folder = std::path::Path::new(shown["legs"][0]["object_key"].as_str().unwrap())
        .parent()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    let document = loop {
        if let Some(got) = s3.get(&format!("{folder}/recording.json")).await {
            break serde_json::from_slice::<Value>(&got).unwrap();
        }
        assert!(Instant::now() < deadline, "no recording.json in the bucket");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(document["id"], id.as_str());

    // Playback through the API, from the bucket: a seek (Range) and the whole leg.
    let auth = token(&server);
    let caller = leg(&shown, "1");
    let object = s3
        .get(caller["object_key"].as_str().unwrap())
        .await
        .unwrap();
    let path = format!("/api/v1/recordings/{id}/legs/1/audio");
    let ranged = request(
        server.http,
        "GET",
        &path,
        &[("Authorization", &auth), ("Range", "bytes=1000-1999")],
        None,
    );
    assert_eq!(ranged.status, 206);
    assert_eq!(
        ranged.header("Content-Range"),
        Some(format!("bytes 1000-1999/{}", object.len()).as_str())
    );
    assert_eq!(ranged.body, object[1000..2000]);
    let whole = request(server.http, "GET", &path, &[("Authorization", &auth)], None);
    assert_eq!(whole.status, 200);
    assert_eq!(whole.body, object);
    let tone = dominant_frequency(&samples(&whole.body)[1600..], 8000);
    assert!(
        (tone - 440.0).abs() < 20.0,
        "the caller's leg holds {tone} Hz"
    );
    // The mix and the peaks read the bucket too.
    let mix = request(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{id}/audio?channels=stereo"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(mix.status, 200, "{}", String::from_utf8_lossy(&mix.body));
    let peaks = request(
        server.http,
        "GET",
        &format!("/api/v1/recordings/{id}/peaks?buckets=10"),
        &[("Authorization", &auth)],
        None,
    );
    assert_eq!(peaks.status, 200);
    assert_eq!(peaks.json()["legs"].as_array().unwrap().len(), 2);

    // `recordings verify` checks the legs whose local copy is gone in the bucket.
    let verified = Command::new(crate::support::BIN)
        .args(["recordings", "verify", &id, "--data-dir"])
        .arg(&server.data_dir)
        .arg("--config")
        .arg(server.config_path())
        .envs(ENV.iter().copied())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains("2 file(s) verified: 0 missing"),
        "{said}"
    );

    // A delete removes the objects; the tombstone keeps where they were.
    let deleted = request(
        server.http,
        "DELETE",
        &format!("/api/v1/recordings/{id}"),
        &[("Authorization", &auth)],
        Some(&json!({"reason": "customer request"})),
    );
    assert_eq!(deleted.status, 204);
    for leg in shown["legs"].as_array().unwrap() {
        assert_eq!(s3.get(leg["object_key"].as_str().unwrap()).await, None);
    }
    assert_eq!(s3.get(&format!("{folder}/recording.json")).await, None);
    let tombstone = server.show(&id);
    assert_eq!(tombstone["state"], "deleted");
    assert_eq!(
        tombstone["deleted_legs"][0]["object_key"],
        shown["legs"][0]["object_key"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_wait_out_a_bucket_that_is_down_and_survive_a_kill_9() {
    let addr = free_port();
    let toml = config(addr, 3600);
    // The bucket's server is not running: the upload fails and is retried.
    let mut server = Server::start_with_options(&toml, &[], ENV);
    let first = recorded_call(&server).await;
    let first_id = first["id"].as_str().unwrap().to_owned();
    server.wait_for_log(
        &format!("leg upload failed; retrying recording_id={first_id}"),
        Duration::from_secs(20),
    );
    let s3 = S3::start(addr);
    let shown = wait_uploaded(&server, &first_id, Duration::from_secs(30));
    let key = shown["legs"][0]["object_key"].as_str().unwrap();
    assert!(s3.get(key).await.is_some(), "no object {key}");
    // The grace is an hour: the local copy stays, and is what plays.
    assert!(server.path_of(&shown["legs"][0]).exists());

    // Down again; a second call waits; kill -9; the bucket comes back; the next start uploads.
    drop(s3);
    let second = recorded_call(&server).await;
    let second_id = second["id"].as_str().unwrap().to_owned();
    server.wait_for_log(
        &format!("leg upload failed; retrying recording_id={second_id}"),
        Duration::from_secs(20),
    );
    let dir = server.into_dir(); // SIGKILL
    let s3 = S3::start(addr);
    let server = Server::start_in_with_options(dir, &toml, &[], ENV);
    let shown = wait_uploaded(&server, &second_id, Duration::from_secs(30));
    for leg in shown["legs"].as_array().unwrap() {
        let object = s3.get(leg["object_key"].as_str().unwrap()).await.unwrap();
        assert_eq!(
            hex::encode(Sha256::digest(&object)),
            leg["sha256"].as_str().unwrap()
        );
    }
}
