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
//!   both engines; SQLite has no unsigned types and PostgreSQL no `u32`). The one float,
//!   `legs.jitter_ms`, is DOUBLE PRECISION (`f64`; REAL on SQLite), NULL until completion.
//! - **Timestamps are BIGINT unix milliseconds, UTC**, not RFC 3339 TEXT: they compare and sort
//!   as numbers on both engines (TEXT sorts right only if every writer formats identically),
//!   need no engine date functions, and range queries are plain index scans. Millisecond
//!   precision is what the dashboard and offsets use; anything finer is floored.
//! - **Children keep their order** in an explicit `position`/`seq` column, numbered inside the
//!   transaction that first locks the parent `recordings` row (see `db::Pool::begin`).
//! - **Reads cost a fixed number of queries**: a page of recordings, then each child table once
//!   for the whole page (`WHERE recording_id IN (…)`), inside one read snapshot.
//! - **Migrations only add.** A migration that databases in the field have is never edited; a
//!   schema change is a new file in both folders (version 2 adds the leg quality figures,
//!   `legs.added_at_ms`, `participant_associations` and `recordings.dtmf_digits`), with defaults
//!   so older rows read back unchanged.
//! - **DTMF search is a denormalised column.** `recordings.dtmf_digits` holds the recording's
//!   digits concatenated in offset order across all legs (uppercased); [`Catalog::add_dtmf`]
//!   recomputes it from `dtmf_events` in the transaction that adds a digit, so a late-reported
//!   digit lands in its place. [`ListQuery::digits`] is then a portable
//!   `LIKE '%…%' ESCAPE '\'` (digits are validated to `0-9*#A-D!`, and `%`, `_`, `\` escaped
//!   anyway). NULL means "not computed": rows of schema version 1 that had digits are computed
//!   by [`Catalog::open`] (portable SQL has no ordered string aggregate).
//! - Queries use runtime `sqlx::query` with binds, never the `query!` macros: no database is
//!   needed at build time.
//!
//! # Limits
//! - [`Catalog::mark_interrupted`] marks *every* `active` row; on a PostgreSQL catalog shared by
//!   several nodes it needs a node id column first (not in schema version 2).
//! - The digits search scans `recordings` (a `LIKE '%…%'` cannot use an index); other filters
//!   narrow it first. Fine for the catalog sizes of one deployment, not for millions of rows.
//! - During a rolling upgrade on a shared PostgreSQL catalog, a node still running version 1
//!   writes DTMF without updating `dtmf_digits` (and new recordings with it NULL until the next
//!   open of a version-2 catalog).

#![forbid(unsafe_code)]

mod catalog;
mod db;
mod error;
mod model;

pub use catalog::{Catalog, SQLITE_FILE_NAME};
pub use error::{Error, Result};
pub use model::{
    Association, Completion, CorrelationId, DtmfEvent, Leg, LegCompletion, ListQuery,
    MetadataRevision, NewLeg, NewMetadataRevision, NewParticipant, NewRecording, Participant,
    Recording, RecordingState, UnknownRecordingState,
};
