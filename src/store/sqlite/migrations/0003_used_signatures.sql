-- keygate schema, version 3: signatures of CodeArts requests that changed something, kept until they could
-- no longer verify (X-Sdk-Date plus the allowed skew), so a captured request cannot be replayed: a replayed
-- "add" would otherwise bring a revoked key back.
CREATE TABLE used_signatures (
    signature   TEXT PRIMARY KEY,
    expires_at  INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX used_signatures_expiry ON used_signatures(expires_at);
