-- The recordings catalog, version 5: what a bearer token is for (`callvault tokens create
-- --label`) and when it stops working (`--expires-in`). NULL: no label, never expires.
ALTER TABLE tokens ADD COLUMN label TEXT;
ALTER TABLE tokens ADD COLUMN expires_at BIGINT;
