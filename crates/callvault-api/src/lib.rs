//! The HTTP API of callvault: [`router`] serves `/api/v1` (recordings, audio, waveform peaks,
//! metadata revisions, locks, deletion, review, pause/resume, audit, users, tokens, sessions,
//! export packages built in the background (see `export`), share links, the OpenAPI document),
//! the public share pages at `/share/{token}`, and the browser dashboard at `/` (see `dashboard`), over
//! the catalog ([`callvault_catalog::Catalog`]) and the recordings' files; [`audio`] is the
//! export underneath (ranges, mixes, MP3, zip, file names).
//!
//! # Design note: the routes
//!
//! **Shape.** [`ApiState`] holds the catalog, the data dir (leg paths in the catalog are
//! relative to it), the validated [`ApiSettings`] (`[api]` of the configuration), the node's
//! [`LiveRecordings`] (pause/resume, implemented by the binary over its SIP loop), a [`Clock`],
//! the browser sessions and the sign-in rate limit. One module per resource in `routes`; each
//! handler declares its path and method once, in `#[utoipa::path]`, and `utoipa-axum` both
//! registers it and documents it, so the OpenAPI document (`GET /api/v1/openapi.json`) cannot
//! drift from the router (a test also compares it with the contract's list and calls every
//! documented route).
//!
//! **Who may.** `auth` resolves every request to a catalog user: `Authorization: Bearer` (the
//! catalog's tokens) or the session cookie (`POST /api/v1/session`); the user is re-read on
//! each request, so disabling takes effect at once. Roles come from the catalog
//! ([`callvault_catalog::Role::allows`]); each handler names the permission it needs (403
//! otherwise). Tenants are enforced by the catalog: every call passes the user's
//! [`callvault_catalog::Scope`], so another tenant's recording is 404 as if absent, in
//! searches, details, audio, locks, deletion, review, exports and the audit trail alike.
//!
//! **Browser sessions and CSRF.** A session is 256 random bits in an `HttpOnly;
//! SameSite=Strict; Path=/api` cookie (`Secure` with `[api] cookie_secure`), expiring after
//! `[api] session_lifetime_s`. Cookie-authenticated requests other than GET/HEAD/OPTIONS must
//! send `X-Callvault-CSRF` equal to the `csrf_token` that sign-in (and `GET /api/v1/session`)
//! answers — a synchronizer token another site can neither read nor send (custom headers need
//! a CORS preflight, never granted). Sign-in takes JSON only, so a cross-site form cannot log a
//! browser in either. Bearer requests need no CSRF token. Sessions live in this process's
//! memory: a restart signs browsers out, and several nodes behind one name need sticky routing
//! (or bearer tokens) — a catalog table would lift that, at the price of a write per sign-in.
//!
//! **Sign-in rate limit.** GCRA buckets (`governor`) per client address and per user name
//! (`[api] login_attempts_per_minute_per_*`), on the API's clock; 429 with `Retry-After`. Every
//! attempt that reaches the password check is audited (`login`, with the name as typed).
//!
//! **Reasons and audit.** `[api] require_reason` lists actions whose requests must give a
//! reason (`reason` in the JSON body; for GETs the `X-Callvault-Reason` header or `reason`
//! query parameter, as an `<audio>` element cannot send headers): 422 `reason_required`, or
//! `reason_not_allowed` when `[api] reasons` is a pick list. Locks, unlocks, deletions,
//! annotations and review changes are audited by the catalog in the same transaction; plays,
//! downloads, pauses, resumes and sign-ins by the route, after they succeed (a play once per
//! request from byte 0, not per seek). Entries carry the reason and the client's address.
//!
//! **Deletion.** The catalog keeps the tombstone and returns the files; the route then removes
//! them with [`remove_deleted_files`] (the leg files and the recording's folder, metadata
//! included; files already gone are fine). A file that cannot be removed is logged; the
//! deletion stands (`recordings verify --fix` finds it).
//!
//! **Compliance.** Retention policies and the dry run (`routes/retention.rs`, applied by
//! [`sweep`] in `retention`, which the binary's sweeper and CLI call too), legal matters, the
//! never-expire and restricted flags, transcripts: thin routes over the catalog, which audits
//! each change in its transaction. A role's view (`Scope::Limited`: restricted recordings,
//! `[api.roles.<role>] max_age_days`) is resolved once per request in `auth`.
//!
//! **Errors.** One [`Error`] for the crate; [`Error::status`] and [`Error::code`] map it in one
//! place to `{"error": {"code", "message"}}` with 400/401/403/404/409/410/415/422/429, and
//! 500/503 for what the server did wrong — logged in full, answered only as `internal` /
//! `unavailable`. axum's own rejections (a bad query, JSON, path) are mapped too (`extract`).
//!
//! **Client address.** The peer of the TCP connection (axum's `ConnectInfo`), so the binary
//! must serve with `into_make_service_with_connect_info::<SocketAddr>()`. Behind a reverse
//! proxy every client is the proxy (audit entries and the per-client sign-in bucket then name
//! it): trusting `X-Forwarded-For` from configured proxies is not done yet.
//!
//! # Design note: the audio export
//!
//! **What it does.** [`audio`] turns a recording's leg files into what a browser or a download
//! wants: one leg played with seeking (`Range`, RFC 9110 §14: 206 / 416 / 200); the legs mixed
//! to mono (every leg summed) or stereo (caller left, callee right, a leg of neither party on
//! both), as WAV (with ranges too) or MP3; several files in one zip; and file names from an
//! operator's pattern (`{queue}_{yyyymmdd}-{hhmm}_{from}_{to}_{session_id}_{n}`) with the
//! `Content-Disposition` that carries them (RFC 6266). The routes get `http::Response<StreamBody>`
//! values and map [`Error`] to statuses.
//!
//! **Leg files as they are.** A leg is the media engine's 16-bit PCM mono WAV (80-byte header
//! with a `JUNK` chunk that becomes `ds64`, RF64 past 4 GiB), at its codec's rate. A file still
//! being recorded has a header up to 50 ms behind its samples, and one left by a crash may be
//! further behind: every file is taken as its length on disk says (whole samples), and served
//! with its own header's sizes rewritten to match, so a live recording plays and seeks; a closed
//! file is served byte for byte. The length is a snapshot at open, so `Content-Length` and
//! `Content-Range` hold while the file grows. Every leg starts at the recording's offset 0 (the
//! media engine fills a stream added mid-call with silence from the answer on), so legs are
//! mixed sample for sample; the catalog's `added_at_ms` is not an offset into the file.
//!
//! **Streaming and memory.** Nothing reads a whole file. A body is a [`audio::ChunkSource`]:
//! blocking work (positioned reads, resampling, mixing, LAME) producing one chunk per call;
//! [`audio::StreamBody`] runs each call on tokio's blocking pool and hands the chunk to the
//! server, so at most one chunk per response is in flight and a slow client holds no thread. A
//! leg is read 64 KiB at a time; a mix holds, per leg, one chunk of samples plus its resampler's
//! fixed buffers, and one chunk of output ([`audio::Mixer::buffered_samples`] counts it, and a
//! test mixes an hour-long call checking it never grows); a zip holds one chunk of its current
//! entry and opens each entry only when it gets there. A mixed WAV's length is known before the
//! first byte (every leg's length is), so it gets `Content-Length` and ranges; an MP3 or a zip
//! does not.
//!
//! **Why these crates.** Resampling: `rubato`'s synchronous FFT resampler (fixed rate ratios, its
//! sinc quality at a fraction of the cost; a hand-written linear interpolator would alias and
//! dull the audio). Range parsing: `http-range-header`, the strict, fuzzed parser under
//! tower-http's `ServeDir`. MP3: LAME through `mp3lame-encoder`, which builds LAME 3.100 from the
//! source it ships (a C compiler and `make`, no Debian package; LGPL, linked statically). Zip:
//! `zip`'s streaming writer, entries stored. The WAV header reader and writer are small and
//! ours: hound trusts a stale header and cannot do RF64, and the media crate keeps its own
//! private.
//!
//! **Errors vs bugs.** Every failure (a missing or foreign file, a refused pattern, an encoder
//! or archive error) is an [`Error`]; [`Error::is_missing_file`] lets the routes answer 404/410.
//! A body that fails midway ends the response with an error (the client sees a cut transfer),
//! never a panic. `expect` marks internal invariants only.

#![warn(unreachable_pub)]

pub mod audio;
mod auth;
mod clock;
mod dashboard;
mod error;
mod events;
mod export;
mod extract;
mod files;
mod live;
mod openapi;
mod rate_limit;
mod reason;
mod response;
pub mod retention;
mod router;
mod routes;
mod session;
mod settings;
mod state;

pub use clock::{Clock, SystemClock};
pub use dashboard::CONTENT_SECURITY_POLICY_VALUE;
pub use error::{Error, PatternProblem, Result};
pub use events::{NoRecordingEvents, RecordingChange, RecordingEvents};
pub use files::{
    RemovedFiles, remove_deleted_files, remove_deleted_objects, remove_media_files,
    remove_media_objects,
};
pub use live::{BoxFuture, LiveError, LiveRecordings, NoLiveRecordings};
pub use openapi::{PREFIX, openapi};
pub use reason::REASON_HEADER;
pub use retention::{RetentionSettings, SweepReport, sweep};
pub use router::router;
pub use session::{CSRF_HEADER, SESSION_COOKIE};
pub use settings::{ApiSettings, ReasonAction, RoleSettings};
pub use state::ApiState;

#[cfg(test)]
mod testing;
