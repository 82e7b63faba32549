-- keygate PostgreSQL schema, version 3: SQLite's version 7, the audit trail (issue 11). See the
-- SQLite migration for why there are no foreign keys and what never goes in a row.
CREATE TABLE audit_events (
    id           BIGSERIAL PRIMARY KEY,
    created_at   BIGINT NOT NULL,
    actor_kind   TEXT NOT NULL CHECK (actor_kind IN ('user', 'cli', 'system')),
    actor_id     BIGINT,
    actor_name   TEXT NOT NULL,
    dialect      TEXT,
    method       TEXT,
    route        TEXT,
    request_id   TEXT,
    client_addr  TEXT,
    action       TEXT NOT NULL,
    repo_id      BIGINT,
    repo_path    TEXT,
    key_id       BIGINT,
    fingerprint  TEXT,
    user_id      BIGINT,
    user_name    TEXT,
    details      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_created ON audit_events (created_at);
CREATE INDEX audit_events_repo ON audit_events (repo_id, id);
CREATE INDEX audit_events_repo_path ON audit_events (lower(repo_path), id);
