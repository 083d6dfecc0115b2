-- The recordings catalog, version 3: legs keyed by position, counters stored whole, node ids.
--
-- Same text as the file of the same name in the other engine's folder. Databases in the field
-- have version 2: this file only adds (the legs table is rebuilt with every old column kept).

-- The node that records a recording ([node] id). A node repairs only its own `active` rows
-- at start; rows from before version 3 have none (NULL) and are repaired by whichever node
-- starts first after the upgrade (every node was stopped for it: see the crate docs).
ALTER TABLE recordings ADD COLUMN node_id TEXT;
CREATE INDEX recordings_state_node ON recordings (state, node_id);

-- Legs were keyed by (recording_id, label), but labels come from outside and repeat: two
-- m-lines labelled alike were one row. A leg is now keyed by its position (the index of its
-- m-line in the session, chosen by the recorder). Portable rebuild: new table, copy, drop,
-- rename. Old rows keep their position (already unique per recording: it was numbered
-- MAX + 1). `counters` holds the leg's counters as one JSON document (NULL on copied rows
-- until the catalog computes it from the old per-counter columns at its next open; those
-- columns are kept but no longer written). `error` says why a leg's file failed.
CREATE TABLE legs_v3 (
    recording_id   TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    position       BIGINT NOT NULL,
    label          TEXT   NOT NULL,
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
    added_at_ms    BIGINT NOT NULL DEFAULT 0,
    jitter_ms      DOUBLE PRECISION,
    gaps_filled_ms BIGINT NOT NULL DEFAULT 0,
    ssrcs_seen     BIGINT NOT NULL DEFAULT 0,
    codec_changes  BIGINT NOT NULL DEFAULT 0,
    unknown_payload BIGINT NOT NULL DEFAULT 0,
    rtcp_packets   BIGINT NOT NULL DEFAULT 0,
    counters       TEXT,
    error          TEXT,
    PRIMARY KEY (recording_id, position)
);
INSERT INTO legs_v3 (recording_id, position, label, participant_id, binding_rule, codec,
    sample_rate, path, packets, lost, duplicates, out_of_order, late, samples, sha256,
    added_at_ms, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, unknown_payload,
    rtcp_packets, counters, error)
SELECT recording_id, position, label, participant_id, binding_rule, codec,
    sample_rate, path, packets, lost, duplicates, out_of_order, late, samples, sha256,
    added_at_ms, jitter_ms, gaps_filled_ms, ssrcs_seen, codec_changes, unknown_payload,
    rtcp_packets, NULL, NULL
FROM legs;
DROP TABLE legs;
ALTER TABLE legs_v3 RENAME TO legs;
