//! The harness of the router tests: a catalog on SQLite and on PostgreSQL for each scenario
//! (`on_both_engines!`), a data dir with real WAV legs, users of every role (some in tenant
//! `acme`) with their tokens, a clock moved by hand, an in-memory live recorder, and requests
//! sent through the real router (`tower::ServiceExt::oneshot`) from a client address.

mod audio;
mod audit;
mod auth;
mod compliance;
mod exports;
mod live;
mod locks;
mod openapi;
mod permissions;
mod recordings;
mod review;
mod session;
mod shares;
mod users;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use callvault_catalog::testing::{completion, leg, new_recording, participant};
use callvault_catalog::{Actor, Catalog, NewUser, Role};
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::Value;
use time::OffsetDateTime;
use time::macros::datetime;
use tower::ServiceExt as _;

use crate::settings::ApiSettings;
use crate::state::ApiState;
use crate::testing::{FakeLive, ManualClock, tone, write_leg};

/// When the tests' clock starts.
pub(crate) const T0: OffsetDateTime = datetime!(2026-12-01 09:00 UTC);
/// The address requests come from unless a test says otherwise.
pub(crate) const CLIENT: [u8; 4] = [192, 0, 2, 7];
/// Every user's password.
pub(crate) const PASSWORD: &str = "correct horse battery";

/// The users every scenario has: (name, role, tenant).
pub(crate) const USERS: [(&str, Role, Option<&str>); 7] = [
    ("viewer", Role::Viewer, None),
    ("reviewer", Role::Reviewer, None),
    ("compliance", Role::Compliance, None),
    ("admin", Role::Admin, None),
    ("acme-viewer", Role::Viewer, Some("acme")),
    ("acme-compliance", Role::Compliance, Some("acme")),
    ("acme-admin", Role::Admin, Some("acme")),
];

/// A `RecordingEvents` listener that keeps what it is told.
#[derive(Default)]
pub(crate) struct FakeEvents(std::sync::Mutex<Vec<(String, crate::RecordingChange)>>);

impl FakeEvents {
    pub(crate) fn taken(&self) -> Vec<(String, crate::RecordingChange)> {
        std::mem::take(&mut *self.0.lock().unwrap())
    }
}

impl crate::RecordingEvents for FakeEvents {
    fn recording_changed(&self, recording_id: &str, change: crate::RecordingChange) {
        self.0
            .lock()
            .unwrap()
            .push((recording_id.to_owned(), change));
    }
}

pub(crate) struct Harness {
    pub(crate) catalog: Catalog,
    pub(crate) data: tempfile::TempDir,
    pub(crate) clock: Arc<ManualClock>,
    pub(crate) live: Arc<FakeLive>,
    /// What the routes told the state's `RecordingEvents`, in order.
    pub(crate) events: Arc<FakeEvents>,
    pub(crate) api: Api,
    tokens: HashMap<&'static str, String>,
}

impl Harness {
    pub(crate) async fn open(url: Option<&str>) -> Harness {
        let data = tempfile::tempdir().unwrap();
        let url = url.map_or_else(|| Catalog::sqlite_url(data.path()), str::to_owned);
        let catalog = Catalog::open(&url).await.unwrap();
        let cli = Actor::new("cli:test", Some("cli".to_owned()));
        let mut tokens = HashMap::new();
        for (name, role, tenant) in USERS {
            catalog
                .add_user(
                    &NewUser {
                        name: name.to_owned(),
                        password: PASSWORD.to_owned(),
                        role,
                        tenant: tenant.map(str::to_owned),
                    },
                    &cli,
                    T0,
                )
                .await
                .unwrap();
            let token = catalog.create_token(name, &cli, T0).await.unwrap();
            tokens.insert(name, token.token);
        }
        let clock = Arc::new(ManualClock::new(T0));
        let live = Arc::new(FakeLive::default());
        let mut harness = Harness {
            catalog,
            data,
            clock,
            live,
            events: Arc::default(),
            api: Api::dummy(),
            tokens,
        };
        harness.api = harness.api_with(ApiSettings::default());
        harness
    }

    /// The API over this harness's catalog, files, clock and live recorder, with `settings`.
    pub(crate) fn api_with(&self, settings: ApiSettings) -> Api {
        let state = ApiState::with_clock(
            self.catalog.clone(),
            self.data.path(),
            settings,
            Arc::clone(&self.live) as _,
            Arc::clone(&self.clock) as _,
        )
        .unwrap()
        .with_events(Arc::clone(&self.events) as _);
        Api {
            router: crate::router(state.clone()),
            state: Some(state),
        }
    }

    /// The bearer token of one of [`USERS`].
    pub(crate) fn token(&self, user: &str) -> &str {
        &self.tokens[user]
    }

    /// A GET as `user` through the default API.
    pub(crate) async fn get(&self, user: &str, path: &str) -> Reply {
        self.api
            .call(Call::new(Method::GET, path).bearer(self.token(user)))
            .await
    }

    /// A request as `user` through the default API.
    pub(crate) async fn send(
        &self,
        user: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let mut call = Call::new(method, path).bearer(self.token(user));
        if let Some(body) = body {
            call = call.json(body);
        }
        self.api.call(call).await
    }

    /// Records an ended recording `id` of `tenant`, started at `started_at`, whose legs (one
    /// per tone: label, participant, frequency) are real WAV files of 1 s at 8 kHz.
    pub(crate) async fn recording(
        &self,
        id: &str,
        tenant: Option<&str>,
        started_at: OffsetDateTime,
        legs: &[(&str, &str, f64)],
    ) {
        self.start(id, tenant, started_at, legs).await;
        let mut done = completion(id, 0, 50, &"ab".repeat(32));
        done.ended_at = started_at + time::Duration::seconds(1);
        done.duration_ms = 1000;
        done.legs = (0_i64..)
            .zip(legs)
            .map(|(position, _)| {
                let mut l = completion(id, position, 50, &"cd".repeat(32))
                    .legs
                    .remove(0);
                l.position = position;
                l
            })
            .collect();
        self.catalog.complete_recording(&done).await.unwrap();
    }

    /// Starts a recording (state `active`) as [`Harness::recording`] does, without ending it.
    pub(crate) async fn start(
        &self,
        id: &str,
        tenant: Option<&str>,
        started_at: OffsetDateTime,
        legs: &[(&str, &str, f64)],
    ) {
        let mut rec = new_recording(id, started_at);
        rec.tenant = tenant.map(str::to_owned);
        rec.from = format!("sip:alice-{id}@example.com");
        rec.to = "sip:bob@example.com".to_owned();
        rec.participants = vec![
            participant("p-caller", Some("sip:alice@example.com"), Some("Alice")),
            participant("p-callee", Some("sip:bob@example.com"), Some("Bob")),
        ];
        let folder = format!(
            "recordings/{:04}/{:02}/{:02}/{id}",
            started_at.year(),
            u8::from(started_at.month()),
            started_at.day()
        );
        std::fs::create_dir_all(self.data.path().join(&folder)).unwrap();
        std::fs::write(
            self.data.path().join(&folder).join("metadata-1.xml"),
            "<recording/>",
        )
        .unwrap();
        rec.legs = (0_i64..)
            .zip(legs)
            .map(|(position, (label, participant, frequency))| {
                let mut l = leg(position, label, Some(participant));
                l.path = format!("{folder}/{position}-{label}.wav");
                write_leg(
                    &self.data.path().join(&l.path),
                    8000,
                    &tone(*frequency, 8000, 1.0, 0.5),
                );
                l
            })
            .collect();
        self.catalog.insert_recording(&rec).await.unwrap();
    }

    /// The absolute path of a file of the data dir.
    pub(crate) fn path(&self, relative: &str) -> std::path::PathBuf {
        self.data.path().join(relative)
    }

    /// The audit entries with `action`, oldest first, read from the catalog.
    pub(crate) async fn audit(
        &self,
        action: callvault_catalog::AuditAction,
    ) -> Vec<callvault_catalog::AuditEntry> {
        let mut items = self
            .catalog
            .audit(
                &callvault_catalog::Scope::All,
                &callvault_catalog::AuditQuery {
                    action: Some(action),
                    limit: 500,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
            .items;
        items.reverse();
        items
    }

    pub(crate) async fn close(self) {
        self.catalog.close().await;
    }
}

/// Two legs, caller 440 Hz and callee 1000 Hz: what most scenarios record.
pub(crate) const TWO_LEGS: &[(&str, &str, f64)] = &[
    ("caller", "p-caller", 440.0),
    ("callee", "p-callee", 1000.0),
];

/// The router under test.
#[derive(Clone)]
pub(crate) struct Api {
    router: Router,
    state: Option<ApiState>,
}

impl Api {
    fn dummy() -> Api {
        Api {
            router: Router::new(),
            state: None,
        }
    }

    /// The state behind the router.
    pub(crate) fn state(&self) -> &ApiState {
        self.state.as_ref().expect("a harness's API has a state")
    }

    pub(crate) async fn call(&self, call: Call) -> Reply {
        let response = self.router.clone().oneshot(call.request()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes().to_vec();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }
}

/// A request being built.
pub(crate) struct Call {
    method: Method,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    client: SocketAddr,
}

impl Call {
    pub(crate) fn new(method: Method, path: &str) -> Call {
        Call {
            method,
            path: path.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            client: SocketAddr::from((CLIENT, 40_000)),
        }
    }

    pub(crate) fn header(mut self, name: &str, value: &str) -> Call {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    pub(crate) fn bearer(self, token: &str) -> Call {
        self.header("authorization", &format!("Bearer {token}"))
    }

    pub(crate) fn json(mut self, body: Value) -> Call {
        self.body = serde_json::to_vec(&body).unwrap();
        self.header("content-type", "application/json")
    }

    /// A body as it is, with its content type.
    pub(crate) fn raw(mut self, content_type: &str, body: &str) -> Call {
        self.body = body.as_bytes().to_vec();
        self.header("content-type", content_type)
    }

    pub(crate) fn from(mut self, client: [u8; 4]) -> Call {
        self.client = SocketAddr::from((client, 40_000));
        self
    }

    fn request(self) -> Request<Body> {
        let mut builder = Request::builder().method(self.method).uri(self.path);
        // What every HTTP/1.1 client sends (share links are built from it).
        if !self
            .headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("host"))
        {
            builder = builder.header("host", "callvault.test");
        }
        for (name, value) in self.headers {
            builder = builder.header(name, value);
        }
        let mut request = builder.body(Body::from(self.body)).unwrap();
        request.extensions_mut().insert(ConnectInfo(self.client));
        request
    }
}

/// A response, read whole.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Reply {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The `error.code` of an error body.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }

    /// Asserts the status (showing the body when it differs) and returns the reply.
    #[track_caller]
    pub(crate) fn expect(self, status: StatusCode) -> Reply {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        self
    }
}

/// The ids of a JSON page's items, in order.
pub(crate) fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Whether a file of the data dir exists.
pub(crate) fn exists(path: &Path) -> bool {
    path.exists()
}

/// Runs each scenario (an `async fn(&Harness)`) on SQLite and, when a server is configured,
/// on PostgreSQL.
macro_rules! on_both_engines {
    ($($scenario:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let harness = $crate::routes::tests::Harness::open(None).await;
                    super::$scenario(&harness).await;
                    harness.close().await;
                }
            )*
        }

        mod on_postgres {
            $(
                #[tokio::test]
                async fn $scenario() {
                    let Some(db) = callvault_catalog::testing::PostgresDb::create().await else {
                        return;
                    };
                    let harness = $crate::routes::tests::Harness::open(Some(&db.url)).await;
                    super::$scenario(&harness).await;
                    harness.close().await;
                    db.drop().await;
                }
            )*
        }
    };
}
pub(crate) use on_both_engines;
