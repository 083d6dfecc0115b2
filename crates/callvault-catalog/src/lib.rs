//! The recordings catalog: what was recorded, from whom, where its files are and how it ended.
//!
//! # Design
//! - **Two engines, one schema.** SQLite (one file in the data dir, WAL) is the embedded default;
//!   PostgreSQL serves several nodes. `migrations/sqlite` and `migrations/postgres` hold the same
//!   SQL text, so a change to one is a change to both, and the queries (in `catalog`) are written
//!   once in the dialect both accept: `$N` placeholders, `ON CONFLICT`, no `RETURNING`, no rowid.
//!   `db` hides which engine runs them.
//! - **Types.** Ids are TEXT: recording ids are UUIDs chosen by the caller (they also name the
//!   recording's folder, so they exist before any row does). Every integer is BIGINT (`i64` on
//!   both engines; SQLite has no unsigned types and PostgreSQL no `u32`).
//! - **Timestamps are BIGINT unix milliseconds, UTC**, not RFC 3339 TEXT: they compare and sort
//!   as numbers on both engines (TEXT sorts right only if every writer formats identically),
//!   need no engine date functions, and range queries are plain index scans. Millisecond
//!   precision is what the dashboard and offsets use; anything finer is floored.
//! - **Children keep their order** in an explicit `position`/`seq` column, numbered inside the
//!   transaction that first locks the parent `recordings` row (see `db::Pool::begin`).
//! - **Reads cost a fixed number of queries**: a page of recordings, then each child table once
//!   for the whole page (`WHERE recording_id IN (…)`), inside one read snapshot.
//! - Queries use runtime `sqlx::query` with binds, never the `query!` macros: no database is
//!   needed at build time.
//!
//! # Limits
//! - [`Catalog::mark_interrupted`] marks *every* `active` row; on a PostgreSQL catalog shared by
//!   several nodes it needs a node id column first (not in schema version 1).

#![forbid(unsafe_code)]

mod catalog;
mod db;
mod error;
mod model;

pub use catalog::{Catalog, SQLITE_FILE_NAME};
pub use error::{Error, Result};
pub use model::{
    Completion, CorrelationId, DtmfEvent, Leg, LegCompletion, ListQuery, NewLeg,
    NewMetadataRevision, NewParticipant, NewRecording, Participant, Recording, RecordingState,
    UnknownRecordingState,
};
