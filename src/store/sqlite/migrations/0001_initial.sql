-- keygate schema, version 1. Times are integer milliseconds since the Unix epoch, UTC.
-- AUTOINCREMENT everywhere an id is shown to clients: SQLite would otherwise reuse the id of
-- the newest deleted row, and a stale id (a retried DELETE, a cached URL) must never reach a new key.

CREATE TABLE users (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    username    TEXT NOT NULL UNIQUE COLLATE NOCASE,
    admin       INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL
);

CREATE TABLE tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash        BLOB NOT NULL UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('api', 'read_api')),
    expires_at  INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE namespaces (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    parent_id   INTEGER REFERENCES namespaces(id) ON DELETE RESTRICT,
    name        TEXT NOT NULL,
    full_path   TEXT NOT NULL UNIQUE COLLATE NOCASE,
    uuid        TEXT NOT NULL UNIQUE,
    created_at  INTEGER NOT NULL
);

CREATE TABLE repositories (
    id           INTEGER PRIMARY KEY AUTOINCREMENT CHECK (id BETWEEN 1 AND 2147483647),
    namespace_id INTEGER NOT NULL REFERENCES namespaces(id) ON DELETE RESTRICT,
    name         TEXT NOT NULL,
    full_path    TEXT NOT NULL UNIQUE COLLATE NOCASE,
    created_at   INTEGER NOT NULL
);
CREATE INDEX repositories_namespace ON repositories(namespace_id);

CREATE TABLE memberships (
    repo_id     INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('maintainer', 'reporter')),
    PRIMARY KEY (repo_id, user_id)
) WITHOUT ROWID;
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE deploy_keys (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    fingerprint_sha256  TEXT NOT NULL UNIQUE,
    fingerprint_md5     TEXT NOT NULL,
    key_text            TEXT NOT NULL,
    kind                TEXT NOT NULL,
    bits                INTEGER NOT NULL,
    title               TEXT NOT NULL,
    public              INTEGER NOT NULL DEFAULT 0,
    owner_id            INTEGER REFERENCES users(id) ON DELETE SET NULL,
    expires_at          INTEGER,
    last_used_at        INTEGER,
    created_at          INTEGER NOT NULL
);
CREATE INDEX deploy_keys_md5 ON deploy_keys(fingerprint_md5);

CREATE TABLE key_links (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id     INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    key_id      INTEGER NOT NULL REFERENCES deploy_keys(id) ON DELETE CASCADE,
    can_push    INTEGER NOT NULL,
    added_by    INTEGER REFERENCES users(id) ON DELETE SET NULL,
    created_at  INTEGER NOT NULL,
    UNIQUE (repo_id, key_id)
);
CREATE INDEX key_links_key ON key_links(key_id);
-- Lists page through a repository's keys in the order they were attached: walk this index, no sort.
CREATE INDEX key_links_repo_order ON key_links(repo_id, id);
