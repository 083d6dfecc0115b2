-- The recordings catalog, version 7: export packages and share links.
--
-- An export is a package (a zip, or a zip encrypted to an age recipient) of chosen recordings,
-- built in the background by the API node that took the request (`node_id`; its file lives in
-- that node's data directory). `recording_ids` is the JSON array of the recordings chosen when
-- it was asked for (by ids, by a search filter, or all the owner may see), so what it holds does
-- not depend on when it is built. `state`: queued, running, ready, failed or expired;
-- `done`/`total` its progress in files; `expires_at` is set when it becomes ready.
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    tenant TEXT,
    node_id TEXT NOT NULL,
    state TEXT NOT NULL,
    format TEXT NOT NULL,
    channels TEXT NOT NULL,
    encrypt_to TEXT,
    recording_ids TEXT NOT NULL,
    done BIGINT NOT NULL DEFAULT 0,
    total BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    finished_at BIGINT,
    expires_at BIGINT,
    files BIGINT,
    bytes BIGINT,
    sha256 TEXT,
    error TEXT
);
CREATE INDEX exports_owner_created ON exports (owner, created_at);
CREATE INDEX exports_state ON exports (state, expires_at);

-- A link to one recording for someone without an account. Only the SHA-256 (hex) of the
-- link's token is stored: the token itself is shown once, to whoever made the link.
CREATE TABLE share_links (
    id TEXT PRIMARY KEY,
    token_sha256 TEXT NOT NULL UNIQUE,
    recording_id TEXT NOT NULL REFERENCES recordings (id),
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    allow_download BIGINT NOT NULL,
    note TEXT,
    revoked_at BIGINT,
    revoked_by TEXT
);
CREATE INDEX share_links_recording ON share_links (recording_id, created_at);
