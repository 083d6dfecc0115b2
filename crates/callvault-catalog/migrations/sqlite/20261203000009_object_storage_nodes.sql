-- The recordings catalog: where each leg lives (the object storage tier, [storage] backend =
-- "s3"). Same text as the file of the same name in the other engine's folder; only adds, with
-- NULL meaning "as before" (on the node's disk only).
--
-- The catalog is the upload queue: a node uploads the closed legs of its own final recordings
-- whose `object_key` is NULL, so what is still to upload survives a crash or a restart with no
-- spool of its own, and several nodes sharing a PostgreSQL catalog never upload each other's.
--
-- legs.object_key        the object's key in the bucket (the configured prefix + the leg's
--                         path); NULL until the upload is complete and its SHA-256 checked
-- legs.uploaded_at       when it was (unix ms)
-- legs.local_removed_at  when the node removed its local copy ([storage] local_grace later);
--                        NULL while the file is on the node's disk
-- legs.upload_error      why the leg cannot be uploaded (its file no longer matches the
--                        SHA-256 kept at its close): not retried, shown by `recordings show`
-- recordings.uploaded_at every leg and recording.json are in the bucket
ALTER TABLE legs ADD COLUMN object_key TEXT;
ALTER TABLE legs ADD COLUMN uploaded_at BIGINT;
ALTER TABLE legs ADD COLUMN local_removed_at BIGINT;
ALTER TABLE legs ADD COLUMN upload_error TEXT;
ALTER TABLE recordings ADD COLUMN uploaded_at BIGINT;
-- A node's upload queue: its final, kept recordings not yet wholly uploaded.
CREATE INDEX recordings_node_upload ON recordings (node_id, uploaded_at);
