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
