-- The recordings catalog, version 6: pass-through recording (callvault as a B2BUA on a
-- `[[routes]]` route). `mode` says how the call reached us ('siprec' for every older row),
-- `route` the route's name, `final_status` the SIP status the caller got (200 when answered;
-- NULL for SIPREC), `hung_up_by` who ended an answered call ('caller' or 'callee').
ALTER TABLE recordings ADD COLUMN mode TEXT NOT NULL DEFAULT 'siprec';
ALTER TABLE recordings ADD COLUMN route TEXT;
ALTER TABLE recordings ADD COLUMN final_status BIGINT;
ALTER TABLE recordings ADD COLUMN hung_up_by TEXT;
