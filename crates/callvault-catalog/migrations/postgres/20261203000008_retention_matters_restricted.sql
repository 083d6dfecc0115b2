-- The recordings catalog, version 8: compliance at scale — retention policies, the "never
-- expire" flag, legal matters, restricted recordings, transcripts, and audit pruning with a
-- checkpoint. Same text as the file of the same name in the other engine's folder; it only
-- adds, with defaults, so older rows read back unchanged. Booleans are BIGINT 0/1.

-- Never deleted by retention (a policy or [retention] days/max_bytes), whatever its age.
ALTER TABLE recordings ADD COLUMN never_expire BIGINT NOT NULL DEFAULT 0
    CHECK (never_expire IN (0, 1));
-- Seen only by roles with the view_restricted permission: 404 for everyone else.
ALTER TABLE recordings ADD COLUMN restricted BIGINT NOT NULL DEFAULT 0
    CHECK (restricted IN (0, 1));
-- The media's expiry: the leg files are gone (retention's media period), the catalog's
-- metadata stays until its own period; deleted_legs then already holds the files' digests.
ALTER TABLE recordings ADD COLUMN media_deleted_at BIGINT;
-- A transcript (from an external speech-to-text service, through the API): its plain text
-- (what the search matches), its segments (JSON array of {start_ms, end_ms, text, speaker?,
-- leg?}) and when it was written. A deletion clears them with the rest of the metadata.
ALTER TABLE recordings ADD COLUMN transcript TEXT;
ALTER TABLE recordings ADD COLUMN transcript_segments TEXT;
ALTER TABLE recordings ADD COLUMN transcript_at BIGINT;

-- The legal matter whose hold a lock is (NULL: a lock a user placed). Releasing the matter
-- removes exactly its locks.
ALTER TABLE locks ADD COLUMN matter_id TEXT;
CREATE INDEX locks_matter ON locks (matter_id) WHERE matter_id IS NOT NULL;

-- Legal matters: a named hold with a saved search (the filter of GET /api/v1/recordings, as
-- JSON). Every recording the filter matches, within the matter's tenant, is locked by the
-- matter, those recorded later too, until the matter is released.
CREATE TABLE matters (
    id             TEXT   NOT NULL PRIMARY KEY,
    name           TEXT   NOT NULL,
    case_id        TEXT,
    owner          TEXT,
    description    TEXT,
    filter         TEXT   NOT NULL,
    tenant         TEXT,
    created_by     TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    released_at    BIGINT,
    released_by    TEXT,
    release_reason TEXT
);
CREATE INDEX matters_open ON matters (created_at) WHERE released_at IS NULL;

-- Retention policies: which recordings (any of tenant, route, participant substring, custom
-- field = value; all given must match) lose their media after media_days and everything but
-- their tombstone after metadata_days; audit_days prunes the audit trail.
CREATE TABLE retention_policies (
    id            TEXT   NOT NULL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    tenant        TEXT,
    route         TEXT,
    participant   TEXT,
    field         TEXT,
    field_value   TEXT,
    media_days    BIGINT CHECK (media_days >= 0),
    metadata_days BIGINT CHECK (metadata_days >= 0),
    audit_days    BIGINT CHECK (audit_days >= 0),
    created_by    TEXT   NOT NULL,
    created_at    BIGINT NOT NULL
);

-- Where the audit chain starts after pruning: entries up to seq are gone, hash was the last
-- one's, so the chain from seq + 1 still verifies. One row, id 0; absent: nothing pruned.
CREATE TABLE audit_checkpoint (
    id        BIGINT NOT NULL PRIMARY KEY CHECK (id = 0),
    seq       BIGINT NOT NULL,
    hash      TEXT   NOT NULL,
    pruned_at BIGINT NOT NULL
);
