-- The audit trail (issue 11): one row per change, written in the change's own transaction.
-- Append-only: no route updates or deletes a row; only retention pruning deletes, and it records
-- itself. No foreign keys: a record outlives the user, repository or key it names, so the path
-- and fingerprint are snapshots. Never a token, secret key or key text; fingerprints only.
CREATE TABLE audit_events (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at   INTEGER NOT NULL,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('user', 'cli', 'system')),
    actor_id     INTEGER,
    actor_name   TEXT NOT NULL,
    dialect      TEXT,
    method       TEXT,
    route        TEXT,
    request_id   TEXT,
    client_addr  TEXT,
    action       TEXT NOT NULL,
    repo_id      INTEGER,
    repo_path    TEXT,
    key_id       INTEGER,
    fingerprint  TEXT,
    user_id      INTEGER,
    user_name    TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
-- Date filters and pruning walk this; per-repository lists walk the next two (newest first).
CREATE INDEX audit_events_created ON audit_events(created_at);
CREATE INDEX audit_events_repo ON audit_events(repo_id, id);
CREATE INDEX audit_events_repo_path ON audit_events(repo_path COLLATE NOCASE, id);
