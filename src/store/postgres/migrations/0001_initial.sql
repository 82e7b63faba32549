-- keygate PostgreSQL schema, version 1: what SQLite's versions 1 to 4 hold, in PostgreSQL's types.
-- Times are BIGINT milliseconds since the Unix epoch, UTC. Ids come from sequences that never hand
-- out a number twice, as SQLite's AUTOINCREMENT: a stale id must never reach a new row.
-- Constraint names are spelled out: the store maps them to the core's conflicts (see mod.rs).
-- Case-insensitive names (SQLite's COLLATE NOCASE) are unique indexes on lower(...); the cluster
-- is expected to use the C collation or a UTF-8 one, where lower() folds ASCII as NOCASE does.

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    username    TEXT NOT NULL,
    admin       BOOLEAN NOT NULL DEFAULT FALSE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_username_nocase ON users (lower(username));

CREATE TABLE tokens (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    hash        BYTEA NOT NULL CONSTRAINT tokens_hash_unique UNIQUE,
    scope       TEXT NOT NULL CHECK (scope IN ('api', 'read_api')),
    expires_at  BIGINT,
    created_at  BIGINT NOT NULL
);
CREATE INDEX tokens_user ON tokens(user_id);

CREATE TABLE namespaces (
    id          BIGSERIAL PRIMARY KEY,
    parent_id   BIGINT REFERENCES namespaces(id) ON DELETE RESTRICT,
    name        TEXT NOT NULL,
    full_path   TEXT NOT NULL,
    uuid        TEXT NOT NULL CONSTRAINT namespaces_uuid_unique UNIQUE,
    created_at  BIGINT NOT NULL
);
CREATE UNIQUE INDEX namespaces_full_path_nocase ON namespaces (lower(full_path));
CREATE INDEX namespaces_parent ON namespaces(parent_id);

CREATE TABLE repositories (
    id           BIGSERIAL CONSTRAINT repositories_pkey PRIMARY KEY CHECK (id BETWEEN 1 AND 2147483647),
    namespace_id BIGINT NOT NULL REFERENCES namespaces(id) ON DELETE RESTRICT,
    name         TEXT NOT NULL,
    full_path    TEXT NOT NULL,
    created_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX repositories_full_path_nocase ON repositories (lower(full_path));
CREATE INDEX repositories_namespace ON repositories(namespace_id);

CREATE TABLE memberships (
    repo_id     BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role        TEXT NOT NULL CHECK (role IN ('maintainer', 'reporter')),
    PRIMARY KEY (repo_id, user_id)
);
CREATE INDEX memberships_user ON memberships(user_id);

CREATE TABLE deploy_keys (
    id                  BIGSERIAL PRIMARY KEY,
    fingerprint_sha256  TEXT NOT NULL CONSTRAINT deploy_keys_sha256_unique UNIQUE,
    fingerprint_md5     TEXT NOT NULL,
    key_text            TEXT NOT NULL,
    kind                TEXT NOT NULL,
    bits                INTEGER NOT NULL,
    title               TEXT NOT NULL,
    public              BOOLEAN NOT NULL DEFAULT FALSE,
    owner_id            BIGINT REFERENCES users(id) ON DELETE SET NULL,
    expires_at          BIGINT,
    last_used_at        BIGINT,
    created_at          BIGINT NOT NULL
);
CREATE INDEX deploy_keys_md5 ON deploy_keys(fingerprint_md5);
CREATE INDEX deploy_keys_owner ON deploy_keys(owner_id);

CREATE TABLE key_links (
    id          BIGSERIAL PRIMARY KEY,
    repo_id     BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    key_id      BIGINT NOT NULL REFERENCES deploy_keys(id) ON DELETE CASCADE,
    can_push    BOOLEAN NOT NULL,
    added_by    BIGINT REFERENCES users(id) ON DELETE SET NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    CONSTRAINT key_links_repo_key_unique UNIQUE (repo_id, key_id)
);
CREATE INDEX key_links_key ON key_links(key_id);
-- Lists page through a repository's keys in the order they were attached: walk this index, no sort.
CREATE INDEX key_links_repo_order ON key_links(repo_id, id);

-- AK/SK pairs; the secret is stored as given (the HMAC verifier needs it). See docs/codearts.md.
CREATE TABLE access_keys (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_key  TEXT NOT NULL CONSTRAINT access_keys_access_key_unique UNIQUE,
    secret_key  TEXT NOT NULL,
    created_at  BIGINT NOT NULL
);
CREATE INDEX access_keys_user ON access_keys(user_id);

CREATE TABLE submodules (
    parent_id   BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    child_id    BIGINT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id != child_id)
);
CREATE INDEX submodules_child ON submodules(child_id);

CREATE TABLE key_link_applications (
    repo_id     BIGINT NOT NULL,
    key_id      BIGINT NOT NULL,
    application TEXT NOT NULL,
    PRIMARY KEY (repo_id, key_id),
    FOREIGN KEY (repo_id, key_id) REFERENCES key_links(repo_id, key_id) ON DELETE CASCADE
);

-- Signatures of CodeArts requests that changed something, kept until they can no longer verify.
CREATE TABLE used_signatures (
    signature   TEXT PRIMARY KEY,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX used_signatures_expiry ON used_signatures(expires_at);
