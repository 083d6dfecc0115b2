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
//!   both engines; SQLite has no unsigned types and PostgreSQL no `u32`). The one float
//!   column, `legs.jitter_ms` of version 2, is no longer written: a leg's counters (jitter
//!   included) are one JSON document.
//! - **Timestamps are BIGINT unix milliseconds, UTC**, not RFC 3339 TEXT: they compare and sort
//!   as numbers on both engines (TEXT sorts right only if every writer formats identically),
//!   need no engine date functions, and range queries are plain index scans. Millisecond
//!   precision is what the dashboard and offsets use; anything finer is floored.
//! - **Children keep their order** in an explicit `position`/`seq` column. Legs, DTMF events
//!   and metadata revisions are numbered by the caller (a leg's position is the index of its
//!   m-line in the session; digits and revisions are counted per recording by the recorder),
//!   because that number is also what makes a replayed write recognisable: it is the row's key.
//!   Participants, warnings and associations are numbered inside the transaction that first
//!   locks the parent `recordings` row (see `db::Pool::begin`).
//! - **A leg's key is its position, never its label.** Labels come from outside and repeat;
//!   two m-lines labelled alike are two legs with two rows. Associations and DTMF events name
//!   the leg by label because that is what a user sees; nothing keys on it.
//! - **Every write can be replayed.** The binary's archive re-applies commands after a crash or
//!   a lost connection, so applying a write twice (or a run of writes twice, in order) leaves
//!   the catalog as applying it once: `insert_recording` of a known id is
//!   [`Error::AlreadyExists`] (the caller counts it as applied); `add_legs`, `add_dtmf` and
//!   `add_metadata_revision` skip a position/seq/number already stored; `complete_recording`
//!   overwrites and adds only warnings not yet stored; `set_associations` ignores a change
//!   older than the latest stored. [`Error::is_transient`] tells the caller whether to retry.
//! - **One counters struct.** A leg's counters are [`callvault_types::LegCounters`], stored whole
//!   as JSON in `legs.counters` and flattened into the leg's JSON; a new counter is a new field
//!   there, with no migration. The vocabulary is typed too: [`callvault_types::EndReason`] and
//!   [`callvault_types::DtmfSource`] are stored with their `as_str` spellings, and a stored
//!   name this build does not know reads as [`Error::Corrupt`].
//! - **Nodes.** Each recording stores the node that records it (`node_id`). At its start a node
//!   repairs only what [`Catalog::active_recordings`] returns for its own id, so nodes sharing a
//!   PostgreSQL catalog never touch each other's live calls. **The NULL rule:** rows from before
//!   schema version 3 have no node; they are returned to every node, and the first node to
//!   start after the upgrade repairs them (the upgrade needs every node stopped, see Limits, so
//!   such a row cannot be a live call). The object storage upload queue
//!   ([`Catalog::pending_uploads`] and the marks beside it) is filtered the same way, without
//!   the NULL rule: rows with no node are never uploaded by anyone.
//! - **Reads cost a fixed number of queries**: a page of recordings, then each child table once
//!   for the whole page (`WHERE recording_id IN (…)`), inside one read snapshot.
//! - **Migrations only add.** A migration that databases in the field have is never edited; a
//!   schema change is a new file in both folders (version 2 adds the leg quality figures,
//!   `legs.added_at_ms`, `participant_associations` and `recordings.dtmf_digits`; version 3
//!   adds `recordings.node_id`, rebuilds `legs` keyed by `(recording_id, position)` with every
//!   old column kept, and adds `legs.counters` and `legs.error`; version 4 everything for
//!   managing recordings; version 5 a token's `label` and `expires_at`; version 6 pass-through
//!   recordings; version 7 export packages and share links; version 8 retention policies, legal
//!   matters, the never-expire and restricted flags, transcripts, media-only deletion and the
//!   audit checkpoint; version 9 where each leg lives (local or object storage) and the node's
//!   upload queue, see `catalog/objects.rs`), with defaults so older rows
//!   read back unchanged. What portable SQL cannot compute is done once by [`Catalog::open`]:
//!   `dtmf_digits` of version-1 rows, `counters` of version 1-2 legs (from the old per-counter
//!   columns, which nothing writes or reads otherwise any more).
//! - **DTMF search is a denormalised column.** `recordings.dtmf_digits` holds the recording's
//!   digits concatenated in offset order across all legs (uppercased); [`Catalog::add_dtmf`]
//!   recomputes it from `dtmf_events` in the transaction that adds a digit, so a late-reported
//!   digit lands in its place. [`ListQuery::digits`] is then a portable
//!   `LIKE '%…%' ESCAPE '\'` (digits are validated to `0-9*#A-D!`, and `%`, `_`, `\` escaped
//!   anyway). NULL means "not computed": rows of schema version 1 that had digits are computed
//!   by [`Catalog::open`] (portable SQL has no ordered string aggregate).
//! - Queries use runtime `sqlx::query` with binds, never the `query!` macros: no database is
//!   needed at build time.
//! - **Looking is not opening.** [`Catalog::parse_url`] parses a URL without connecting and
//!   [`Catalog::schema_version`] reads `_sqlx_migrations` over one read-only connection (for
//!   `callvault check-config`): neither creates, migrates nor backfills anything, so checking a
//!   shared catalog never upgrades it under older nodes.
//!
//! # Limits
//! - **Upgrading a shared PostgreSQL catalog to version 3 needs every node stopped.** The legs
//!   table is rebuilt with a new key, which the inserts of version 2 (`ON CONFLICT (recording_id,
//!   label)`) cannot use; and sqlx refuses to start an older build on a catalog with a
//!   migration it does not know. Rows recorded before the upgrade have no node (the NULL
//!   rule above).
//! - Two nodes configured with the same node id are one node to the catalog: each would repair
//!   the other's live calls at its start. Node ids must be unique per catalog.
//! - Replays converge, with one approximation: association changes are ordered by `at_ms`, so
//!   a replay of a change older than the latest stored is ignored; the recorder's `at_ms` never
//!   goes back within a recording, which makes this exact for it.
//! - SQLite on a full disk: reads keep working (WAL; nothing is written to read), writes fail
//!   with SQLITE_FULL ([`Error::is_transient`]) and succeed again, at their first attempt,
//!   once space is back. SQLite rolls a transaction back by itself when its COMMIT fails so;
//!   sqlx then believes the connection still inside it, so the pool closes such a connection
//!   instead of reusing it (see `db::sqlite_connection_reusable`).
//! - The digits search scans `recordings` (a `LIKE '%…%'` cannot use an index); other filters
//!   narrow it first. Fine for the catalog sizes of one deployment, not for millions of rows.
//! - During a rolling upgrade from version 1 to 2 on a shared PostgreSQL catalog, a node still
//!   running version 1 writes DTMF without updating `dtmf_digits` (and new recordings with it
//!   NULL until the next open of a version-2 catalog).

#![forbid(unsafe_code)]

mod catalog;
mod cursor;
mod db;
mod error;
mod inspect;
mod model;
mod scope;
mod sql;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use callvault_types::{DtmfSource, EndReason, LegCounters};
pub use catalog::{
    Annotation, AuditAction, AuditEntry, AuditPage, AuditProblem, AuditQuery, AuditVerification,
    Authenticated, Catalog, CustomField, CustomFieldKind, DeletedLeg, Deletion, Expiry, Export,
    ExportState, FinishedExport, Hold, LocalCopy, Lock, Matter, MediaUsage, NewAnnotation,
    NewAuditEntry, NewExport, NewMatter, NewShare, NewShareLink, NewToken, NewUser, PendingUpload,
    Permission, RecordingDetails, RecordingFlag, RecordingItem, RetentionDefaults, RetentionItem,
    RetentionPlan, RetentionPolicy, RetentionRule, Review, ReviewUpdate, Role, SQLITE_FILE_NAME,
    SearchPage, SearchQuery, ShareLink, TOKEN_PREFIX, Token, TokenOptions, Transcript,
    TranscriptSegment, UnknownAuditAction, UnknownCustomFieldKind, UnknownRole, User,
};
pub use error::{Error, Result, redact_url};
pub use inspect::{CatalogUrl, SchemaVersion};
pub use model::{
    Association, Completion, CorrelationId, DtmfEvent, Leg, LegCompletion, ListQuery,
    MetadataRevision, NewLeg, NewMetadataRevision, NewParticipant, NewRecording, Participant,
    Pause, Recording, RecordingState, UnknownRecordingState,
};
pub use scope::{Actor, Limits, Scope};
