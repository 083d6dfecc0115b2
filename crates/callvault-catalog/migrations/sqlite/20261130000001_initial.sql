-- The recordings catalog, version 1.
--
-- This file and migrations/postgres/20261130000001_initial.sql have the same shape on purpose
-- (one SQL text that both engines accept): ids are TEXT (UUIDs chosen by the caller), every
-- integer and every timestamp is BIGINT (timestamps are unix milliseconds, UTC), and nothing
-- relies on SQLite-only behaviour (no rowid, no AUTOINCREMENT, no type affinity tricks).
-- Child rows keep their order in an explicit `position`/`seq` column instead of a serial id.

CREATE TABLE recordings (
    id              TEXT    NOT NULL PRIMARY KEY,
    session_id      TEXT    NOT NULL,
    ingress_call_id TEXT    NOT NULL,
    egress_call_id  TEXT,
    from_uri        TEXT    NOT NULL,
    to_uri          TEXT    NOT NULL,
    started_at      BIGINT  NOT NULL,
    ended_at        BIGINT,
    duration_ms     BIGINT,
    state           TEXT    NOT NULL
        CHECK (state IN ('active', 'complete', 'interrupted', 'failed')),
    end_reason      TEXT,
    source_address  TEXT    NOT NULL,
    transport       TEXT    NOT NULL
);
-- Listing is newest first with `id` as the tie breaker.
CREATE INDEX recordings_started_at ON recordings (started_at, id);
CREATE INDEX recordings_ingress_call_id ON recordings (ingress_call_id);
CREATE INDEX recordings_session_id ON recordings (session_id);
-- Startup marks the `active` leftovers of a previous run as interrupted.
CREATE INDEX recordings_state ON recordings (state);

-- Child tables: the primary key starts with recording_id, so it doubles as the lookup index.
CREATE TABLE participants (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    id           TEXT   NOT NULL,
    position     BIGINT NOT NULL,
    aor          TEXT,
    name         TEXT,
    PRIMARY KEY (recording_id, id)
);

CREATE TABLE legs (
    recording_id   TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    label          TEXT   NOT NULL,
    position       BIGINT NOT NULL,
    participant_id TEXT,
    binding_rule   TEXT   NOT NULL,
    codec          TEXT   NOT NULL,
    sample_rate    BIGINT NOT NULL,
    path           TEXT   NOT NULL,
    packets        BIGINT NOT NULL DEFAULT 0,
    lost           BIGINT NOT NULL DEFAULT 0,
    duplicates     BIGINT NOT NULL DEFAULT 0,
    out_of_order   BIGINT NOT NULL DEFAULT 0,
    late           BIGINT NOT NULL DEFAULT 0,
    samples        BIGINT NOT NULL DEFAULT 0,
    sha256         TEXT,
    PRIMARY KEY (recording_id, label)
);

CREATE TABLE metadata_revisions (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    revision     BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    datamode     TEXT,
    raw_xml      TEXT   NOT NULL,
    PRIMARY KEY (recording_id, revision)
);

CREATE TABLE correlation_ids (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL,
    value        TEXT   NOT NULL,
    position     BIGINT NOT NULL,
    PRIMARY KEY (recording_id, kind, value)
);
-- "Find the recording of this UCID / Cisco-Guid / sipSessionID".
CREATE INDEX correlation_ids_value ON correlation_ids (value);

CREATE TABLE recording_warnings (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    message      TEXT   NOT NULL,
    PRIMARY KEY (recording_id, position)
);

CREATE TABLE dtmf_events (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    digit        TEXT   NOT NULL,
    leg_label    TEXT   NOT NULL,
    offset_ms    BIGINT NOT NULL,
    duration_ms  BIGINT NOT NULL,
    source       TEXT   NOT NULL,
    PRIMARY KEY (recording_id, seq)
);
