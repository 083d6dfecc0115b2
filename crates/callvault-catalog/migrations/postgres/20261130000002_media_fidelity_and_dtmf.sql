-- The recordings catalog, version 2: media fidelity and DTMF.
--
-- Same shape as migrations/sqlite/20261130000002_media_fidelity_and_dtmf.sql (one SQL text for
-- both engines). Databases in the field have version 1: this file only adds, and every added
-- column has a default (or is nullable) so the rows of version 1 read back unchanged.
-- jitter_ms is the schema's one floating point column (DOUBLE PRECISION, REAL on SQLite); it is
-- NULL until the leg is completed.

-- When a leg was added, from the start of the recording (0 for the streams of the initial offer).
ALTER TABLE legs ADD COLUMN added_at_ms BIGINT NOT NULL DEFAULT 0;
-- Per-leg quality figures, written by complete_recording.
ALTER TABLE legs ADD COLUMN jitter_ms DOUBLE PRECISION;
ALTER TABLE legs ADD COLUMN gaps_filled_ms BIGINT NOT NULL DEFAULT 0;
ALTER TABLE legs ADD COLUMN ssrcs_seen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE legs ADD COLUMN codec_changes BIGINT NOT NULL DEFAULT 0;
ALTER TABLE legs ADD COLUMN unknown_payload BIGINT NOT NULL DEFAULT 0;
ALTER TABLE legs ADD COLUMN rtcp_packets BIGINT NOT NULL DEFAULT 0;

-- Which participant was heard on which leg, and when (transfers and conferences change it).
-- An open association has no disassociated_at_ms. seq numbers the rows of a recording in the
-- order they were opened; revision is the metadata revision that opened the association.
CREATE TABLE participant_associations (
    recording_id        TEXT   NOT NULL REFERENCES recordings (id) ON DELETE CASCADE,
    seq                 BIGINT NOT NULL,
    participant_id      TEXT   NOT NULL,
    leg_label           TEXT   NOT NULL,
    associated_at_ms    BIGINT NOT NULL,
    disassociated_at_ms BIGINT,
    revision            BIGINT NOT NULL,
    PRIMARY KEY (recording_id, seq)
);

-- Version 1 rows: the participant a leg was bound to, associated from the start.
INSERT INTO participant_associations (recording_id, seq, participant_id, leg_label,
    associated_at_ms, disassociated_at_ms, revision)
SELECT recording_id, position, participant_id, label, 0, NULL, 0
FROM legs WHERE participant_id IS NOT NULL;

-- The recording's DTMF digits concatenated in offset order (all legs), for the digits search
-- (LIKE '%…%'). Maintained by add_dtmf in the transaction that adds a digit. NULL means "not
-- computed yet": version 1 rows without digits get '' here, the others are computed by the
-- catalog when it opens (portable SQL has no ordered string aggregate).
ALTER TABLE recordings ADD COLUMN dtmf_digits TEXT;
UPDATE recordings SET dtmf_digits = ''
WHERE NOT EXISTS (SELECT 1 FROM dtmf_events WHERE dtmf_events.recording_id = recordings.id);
