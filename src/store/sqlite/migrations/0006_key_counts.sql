-- How many deploy keys the instance holds, public and not, kept by triggers in the transaction
-- of each change. The admin list's X-Total needs the count (up to 10,001) on every page; counting
-- index entries made page 1 cost ten times more at a million keys than at a thousand. SQLite has
-- one writer, so the counter rows are never contended.
CREATE TABLE key_counts (
    public INTEGER PRIMARY KEY CHECK (public IN (0, 1)),
    n      INTEGER NOT NULL
);
INSERT INTO key_counts (public, n)
    SELECT 0, COUNT(*) FROM deploy_keys WHERE public = 0;
INSERT INTO key_counts (public, n)
    SELECT 1, COUNT(*) FROM deploy_keys WHERE public <> 0;

CREATE TRIGGER key_counts_insert AFTER INSERT ON deploy_keys
BEGIN
    UPDATE key_counts SET n = n + 1 WHERE public = (NEW.public <> 0);
END;

CREATE TRIGGER key_counts_delete AFTER DELETE ON deploy_keys
BEGIN
    UPDATE key_counts SET n = n - 1 WHERE public = (OLD.public <> 0);
END;

CREATE TRIGGER key_counts_update AFTER UPDATE OF public ON deploy_keys
WHEN (OLD.public <> 0) <> (NEW.public <> 0)
BEGIN
    UPDATE key_counts SET n = n - 1 WHERE public = (OLD.public <> 0);
    UPDATE key_counts SET n = n + 1 WHERE public = (NEW.public <> 0);
END;

-- And how many keys each repository holds, for every list's X-Total (GitLab, GitHub's pages,
-- CodeArts' total): the capped count walked up to 10,001 links per list, half a list's cost.
-- Link rows are only ever inserted and deleted (cascades from a repository or a key fire these
-- triggers too); repository ids are never reused, so a removed repository's row is harmless.
CREATE TABLE link_counts (
    repo_id INTEGER PRIMARY KEY,
    n       INTEGER NOT NULL
);
INSERT INTO link_counts (repo_id, n)
    SELECT repo_id, COUNT(*) FROM key_links GROUP BY repo_id;

CREATE TRIGGER link_counts_insert AFTER INSERT ON key_links
BEGIN
    INSERT INTO link_counts (repo_id, n) VALUES (NEW.repo_id, 1)
        ON CONFLICT (repo_id) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER link_counts_delete AFTER DELETE ON key_links
BEGIN
    UPDATE link_counts SET n = n - 1 WHERE repo_id = OLD.repo_id;
END;

CREATE TRIGGER link_counts_move AFTER UPDATE OF repo_id ON key_links
WHEN OLD.repo_id <> NEW.repo_id
BEGIN
    UPDATE link_counts SET n = n - 1 WHERE repo_id = OLD.repo_id;
    INSERT INTO link_counts (repo_id, n) VALUES (NEW.repo_id, 1)
        ON CONFLICT (repo_id) DO UPDATE SET n = n + 1;
END;
