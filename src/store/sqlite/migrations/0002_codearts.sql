-- keygate schema, version 2: what the CodeArts Repo dialect adds.

-- AK/SK pairs. The secret is stored as given: the SDK-HMAC-SHA256 verifier recomputes the HMAC
-- with it, so a hash would be useless. The database file is created 0600 (see docs/codearts.md).
CREATE TABLE access_keys (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    access_key  TEXT NOT NULL UNIQUE,
    secret_key  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX access_keys_user ON access_keys(user_id);

-- A repository's submodules: the repositories "sync deploy key to submodules" reaches.
CREATE TABLE submodules (
    parent_id   INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    child_id    INTEGER NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (parent_id, child_id),
    CHECK (parent_id != child_id)
) WITHOUT ROWID;
CREATE INDEX submodules_child ON submodules(child_id);

-- The `application` a CodeArts client names when it adds a key, kept with the link it made.
-- Cascades from the link, so however the key is detached (any dialect), its label goes too.
CREATE TABLE key_link_applications (
    repo_id     INTEGER NOT NULL,
    key_id      INTEGER NOT NULL,
    application TEXT NOT NULL,
    PRIMARY KEY (repo_id, key_id),
    FOREIGN KEY (repo_id, key_id) REFERENCES key_links(repo_id, key_id) ON DELETE CASCADE
) WITHOUT ROWID;
