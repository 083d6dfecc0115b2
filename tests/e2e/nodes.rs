//! Two nodes, one PostgreSQL catalog, one bucket: calls recorded on both; each node's API
//! serves the other's recordings from the bucket (and answers 503 `not_archived` for a call
//! still live on the other); a lock taken through A blocks a delete through B; the audit
//! chain verifies after plays on both at once; `kill -9` and a restart of A leave B's live
//! call alone.

use std::time::{Duration, Instant};

use callvault_catalog::testing::PostgresDb;
use serde_json::{Value, json};

use crate::objects::{ENV, S3, config, free_port};
use crate::support::Server;
use crate::support::client::{Call, CallSpec, Transport};
use crate::support::http::{HttpResponse, request};

fn node(toml: &str, id: &str) -> Server {
    Server::start_with_options(toml, &["--node-id", id], ENV)
}

fn api(server: &Server, auth: &str, method: &str, path: &str, body: Option<Value>) -> HttpResponse {
    request(
        server.http,
        method,
        &format!("/api/v1{path}"),
        &[("Authorization", auth)],
        body.as_ref(),
    )
}

async fn answered(server: &Server, hz: f64) -> (Call, String) {
    let call = Call::answered(
        Transport::Udp,
        server.sip,
        CallSpec::two_parties(hz, 1000.0),
    )
    .await;
    let id = call
        .answer
        .as_ref()
        .and_then(|a| a.header("X-Callvault-Recording-Id"))
        .expect("the 200 names the recording")
        .to_owned();
    (call, id)
}

/// Waits until the recording's legs are all in the bucket, as the API on `server` says.
fn uploaded(server: &Server, auth: &str, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = api(server, auth, "GET", &format!("/recordings/{id}"), None);
        if got.status == 200 {
            let body = got.json();
            let legs = body["legs"].as_array().cloned().unwrap_or_default();
            if !legs.is_empty() && legs.iter().all(|l| l["object_key"].is_string()) {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{id} not uploaded: {}",
            got.status
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_one_catalog_and_one_bucket() {
    let Some(db) = PostgresDb::create().await else {
        return;
    };
    let s3 = S3::start(free_port());
    let toml = format!("{}database_url = \"{}\"\n", config(s3.addr, 0), db.url);
    let a = node(&toml, "node-a");
    let b = node(&toml, "node-b");
    let url = db.url.clone();
    let out = a.operator(
        &[
            "users",
            "add",
            "ada",
            "--role",
            "compliance",
            "--password-stdin",
            "--database-url",
            &url,
        ],
        "correct horse battery staple 42\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = b.operator(&["tokens", "create", "ada", "--database-url", &url], "");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let auth = format!("Bearer {}", String::from_utf8(out.stdout).unwrap().trim());

    // A call on each node.
    let (mut on_a, id_a) = answered(&a, 440.0).await;
    let (mut on_b, id_b) = answered(&b, 600.0).await;
    on_a.play(Duration::from_millis(600), &[]).await;
    on_b.play(Duration::from_millis(600), &[]).await;
    // Still live on A: B cannot read it yet, and says when to come back.
    let live = api(
        &b,
        &auth,
        "GET",
        &format!("/recordings/{id_a}/legs/1/audio"),
        None,
    );
    assert_eq!(live.status, 503);
    assert_eq!(live.json()["error"]["code"], "not_archived");
    assert!(live.header("Retry-After").is_some());
    assert_eq!(on_a.bye().await.status, 200);
    assert_eq!(on_b.bye().await.status, 200);

    // Each node serves the other's recording, from the bucket.
    for (server, id, recorded_by) in [(&b, &id_a, "node-a"), (&a, &id_b, "node-b")] {
        let shown = uploaded(server, &auth, id);
        assert_eq!(shown["node_id"], recorded_by);
        let key = shown["legs"][0]["object_key"].as_str().unwrap();
        let object = s3.get(key).await.unwrap();
        let label = shown["legs"][0]["label"].as_str().unwrap();
        let played = api(
            server,
            &auth,
            "GET",
            &format!("/recordings/{id}/legs/{label}/audio"),
            None,
        );
        assert_eq!(played.status, 200);
        assert_eq!(played.body, object);
    }

    // A lock through A blocks a delete through B.
    let lock = api(
        &a,
        &auth,
        "POST",
        &format!("/recordings/{id_b}/locks"),
        Some(json!({"reason": "LegalHold#7"})),
    );
    assert_eq!(lock.status, 201, "{}", String::from_utf8_lossy(&lock.body));
    let refused = api(
        &b,
        &auth,
        "DELETE",
        &format!("/recordings/{id_b}"),
        Some(json!({"reason": "retention"})),
    );
    assert_eq!(refused.status, 409);
    assert_eq!(refused.json()["error"]["code"], "locked");

    // Plays on both nodes at once; the audit chain stays one unbroken chain.
    let plays: Vec<_> = (0..8)
        .map(|i| {
            let (addr, id) = if i % 2 == 0 {
                (a.http, id_a.clone())
            } else {
                (b.http, id_b.clone())
            };
            let auth = auth.clone();
            std::thread::spawn(move || {
                request(
                    addr,
                    "GET",
                    &format!("/api/v1/recordings/{id}/audio?play=true"),
                    &[("Authorization", &auth)],
                    None,
                )
                .status
            })
        })
        .collect();
    for play in plays {
        assert_eq!(play.join().unwrap(), 200);
    }
    let verified = a.operator(&["audit", "verify", "--database-url", &url], "");
    let said = String::from_utf8_lossy(&verified.stdout);
    assert!(
        verified.status.success() && said.contains("intact"),
        "{said}"
    );

    // kill -9 of A and its restart: B's live call goes on untouched.
    let (mut live_b, live_id) = answered(&b, 800.0).await;
    live_b.play(Duration::from_millis(300), &[]).await;
    let dir = a.into_dir();
    let a = Server::start_in_with_options(dir, &toml, &["--node-id", "node-a"], ENV);
    live_b.play(Duration::from_millis(300), &[]).await;
    let still = api(&a, &auth, "GET", &format!("/recordings/{live_id}"), None).json();
    assert_eq!(still["state"], "active", "{still}");
    assert_eq!(live_b.bye().await.status, 200);
    let deadline = Instant::now() + Duration::from_secs(10);
    let ended = loop {
        let got = api(&a, &auth, "GET", &format!("/recordings/{live_id}"), None).json();
        if got["state"] != "active" {
            break got;
        }
        assert!(Instant::now() < deadline, "{got}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        (ended["state"].as_str(), ended["end_reason"].as_str()),
        (Some("complete"), Some("bye"))
    );
    drop((a, b));
    db.drop().await;
}
