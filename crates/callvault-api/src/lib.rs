//! The HTTP API of callvault. For now: its audio export, the pure parts the routes will call.
//!
//! # Design note
//!
//! **What it does.** [`audio`] turns a recording's leg files into what a browser or a download
//! wants: one leg played with seeking (`Range`, RFC 9110 §14: 206 / 416 / 200); the legs mixed
//! to mono (every leg summed) or stereo (caller left, callee right, a leg of neither party on
//! both), as WAV (with ranges too) or MP3; several files in one zip; and file names from an
//! operator's pattern (`{queue}_{yyyymmdd}-{hhmm}_{from}_{to}_{session_id}_{n}`) with the
//! `Content-Disposition` that carries them (RFC 6266). The routes (axum) come later; they get
//! `http::Response<StreamBody>` values and map [`Error`] to statuses.
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
mod error;
mod extract;
mod files;
mod live;
mod openapi;
mod rate_limit;
mod reason;
mod response;
mod router;
mod routes;
mod session;
mod settings;
mod state;

pub use clock::{Clock, SystemClock};
pub use error::{Error, PatternProblem, Result};
pub use files::{RemovedFiles, remove_deleted_files};
pub use live::{BoxFuture, LiveError, LiveRecordings, NoLiveRecordings};
pub use openapi::{PREFIX, openapi};
pub use reason::REASON_HEADER;
pub use router::router;
pub use session::{CSRF_HEADER, SESSION_COOKIE};
pub use settings::{ApiSettings, ReasonAction};
pub use state::ApiState;

#[cfg(test)]
mod testing;
