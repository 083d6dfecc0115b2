-- The recordings catalog, version 4: managing recordings (tenants, review, locks, deletion
-- with tombstones, annotations, custom fields, pauses, users, tokens, the audit trail).
--
-- Same text as the file of the same name in the other engine's folder. Databases in the field
-- have version 3: this file only adds, and every added column is nullable or has a default, so
-- the rows of version 3 read back unchanged. Booleans are BIGINT 0/1 and lists/objects JSON
-- TEXT, as everywhere in this schema (one type vocabulary for both engines).
--
-- DELETED IS NOT A STATE VALUE. Version 1 put `CHECK (state IN ('active', 'complete',
-- 'interrupted', 'failed'))` on recordings.state. PostgreSQL could drop and re-add that
-- constraint, but SQLite cannot alter a CHECK: it would have to rebuild `recordings`, which
-- seven tables reference with ON DELETE CASCADE (a rebuild drops the old table, and with
-- foreign keys on, dropping it would cascade into every child row; with them off, the
-- rebuild is a copy of the largest table on every node's start). So a tombstone is a row whose
-- `deleted_at` is set: `state` keeps the state the recording ended in, the catalog reports
-- `state: "deleted"` for it, and a search for state `deleted` is `deleted_at IS NOT NULL`
-- (every other state search adds `deleted_at IS NULL`). The row itself stays, so its id is
-- never reused and its audit entries keep pointing at something.

-- The tenant a recording belongs to, set when it starts (from [[tenants]]); NULL: none.
ALTER TABLE recordings ADD COLUMN tenant TEXT;
-- Review: a 1-5 score, the "complete transaction" flag (0/1), categories (JSON array of
-- strings), custom data (JSON object of admin-defined fields), time spent reviewing.
ALTER TABLE recordings ADD COLUMN score BIGINT CHECK (score BETWEEN 1 AND 5);
ALTER TABLE recordings ADD COLUMN complete_transaction BIGINT
    CHECK (complete_transaction IN (0, 1));
ALTER TABLE recordings ADD COLUMN categories TEXT NOT NULL DEFAULT '[]';
ALTER TABLE recordings ADD COLUMN custom TEXT NOT NULL DEFAULT '{}';
ALTER TABLE recordings ADD COLUMN review_seconds BIGINT CHECK (review_seconds >= 0);
-- The tombstone: who deleted it, when and why, and each deleted leg file's position, label,
-- path and SHA-256 (JSON array), so the media's digest outlives the media.
ALTER TABLE recordings ADD COLUMN deleted_at BIGINT;
ALTER TABLE recordings ADD COLUMN deleted_by TEXT;
ALTER TABLE recordings ADD COLUMN delete_reason TEXT;
ALTER TABLE recordings ADD COLUMN deleted_legs TEXT;

-- Search: a tenant's recordings newest first, Call-IDs of either side, tombstones, durations.
CREATE INDEX recordings_tenant_started_at ON recordings (tenant, started_at, id);
CREATE INDEX recordings_egress_call_id ON recordings (egress_call_id);
CREATE INDEX recordings_deleted ON recordings (started_at, id) WHERE deleted_at IS NOT NULL;
CREATE INDEX recordings_duration ON recordings (duration_ms);

-- Legal holds. Several per recording; a recording with any lock whose removed_at is NULL
-- cannot be deleted. Removing a lock keeps its row (who removed it, when, why).
CREATE TABLE locks (
    id            TEXT   NOT NULL PRIMARY KEY,
    recording_id  TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    reason        TEXT   NOT NULL,
    locked_by     TEXT   NOT NULL,
    locked_at     BIGINT NOT NULL,
    removed_at    BIGINT,
    removed_by    TEXT,
    remove_reason TEXT
);
CREATE INDEX locks_recording ON locks (recording_id, locked_at);
CREATE INDEX locks_active ON locks (recording_id) WHERE removed_at IS NULL;

-- Notes on a recording, optionally at an offset into its audio (the legs' common timeline).
CREATE TABLE annotations (
    id           TEXT   NOT NULL PRIMARY KEY,
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    body         TEXT   NOT NULL,
    offset_ms    BIGINT,
    author       TEXT   NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE INDEX annotations_recording ON annotations (recording_id, created_at);

-- The custom data fields an admin defines; recordings.custom is validated against them.
CREATE TABLE custom_fields (
    name       TEXT   NOT NULL PRIMARY KEY,
    kind       TEXT   NOT NULL CHECK (kind IN ('text', 'number', 'boolean', 'date')),
    created_at BIGINT NOT NULL
);

-- Paused intervals of a live recording (milliseconds on the legs' timeline), numbered by
-- the recorder like DTMF events; to_ms is NULL while the pause lasts.
CREATE TABLE pauses (
    recording_id TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq          BIGINT NOT NULL,
    from_ms      BIGINT NOT NULL,
    to_ms        BIGINT,
    paused_by    TEXT   NOT NULL,
    PRIMARY KEY (recording_id, seq)
);

-- People and scripts that use the API. password_hash is an argon2id PHC string.
CREATE TABLE users (
    name          TEXT   NOT NULL PRIMARY KEY,
    password_hash TEXT   NOT NULL,
    role          TEXT   NOT NULL CHECK (role IN ('viewer', 'reviewer', 'compliance', 'admin')),
    tenant        TEXT,
    created_at    BIGINT NOT NULL,
    disabled_at   BIGINT
);

-- Bearer tokens: only the SHA-256 of a token is stored, never the token.
CREATE TABLE tokens (
    id           TEXT   NOT NULL PRIMARY KEY,
    user_name    TEXT   NOT NULL REFERENCES users (name),
    token_sha256 TEXT   NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX tokens_user ON tokens (user_name);

-- The audit trail: append-only and hash-chained (hash = SHA-256 of prev_hash and the entry).
-- No foreign key: entries outlive the recordings and users they name. seq is allocated under
-- the lock of the one audit_head row, which also holds the last entry's hash, so concurrent
-- appenders (several nodes) chain one after the other and a removed last entry is noticed.
CREATE TABLE audit (
    seq          BIGINT NOT NULL PRIMARY KEY,
    occurred_at  BIGINT NOT NULL,
    user_name    TEXT   NOT NULL,
    action       TEXT   NOT NULL,
    recording_id TEXT,
    tenant       TEXT,
    reason       TEXT,
    client       TEXT,
    detail       TEXT,
    prev_hash    TEXT   NOT NULL,
    hash         TEXT   NOT NULL
);
CREATE INDEX audit_recording ON audit (recording_id, seq);
CREATE INDEX audit_user ON audit (user_name, seq);
CREATE INDEX audit_action ON audit (action, seq);
CREATE INDEX audit_tenant ON audit (tenant, seq);
CREATE INDEX audit_occurred_at ON audit (occurred_at);

CREATE TABLE audit_head (
    id   BIGINT NOT NULL PRIMARY KEY CHECK (id = 0),
    seq  BIGINT NOT NULL,
    hash TEXT   NOT NULL
);
INSERT INTO audit_head (id, seq, hash)
VALUES (0, 0, '0000000000000000000000000000000000000000000000000000000000000000');
