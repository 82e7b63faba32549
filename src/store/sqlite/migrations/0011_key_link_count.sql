-- The SSH door's lookup (`AuthorizedKeysCommand`, every connection) asks for the key with a SHA256
-- fingerprint that is attached to at least one repository. The attachment was an EXISTS probe of
-- `key_links_key`: at a million keys a third random leaf (with its interior page) to read, beside
-- the fingerprint index and the key's row, and 1.45-1.65x the lookup's cost at a thousand
-- (docs/benchmarks.md). Each key's row now counts its links, kept by the triggers that already
-- count a repository's links, in the transaction of each change (cascades fire them too, and
-- every connection sets recursive_triggers, so the rows a REPLACE deletes fire them as well). A
-- link's key_id never changes (the trigger below refuses it): the count follows the links.
ALTER TABLE deploy_keys ADD COLUMN links INTEGER NOT NULL DEFAULT 0;
UPDATE deploy_keys SET links = (SELECT COUNT(*) FROM key_links l WHERE l.key_id = deploy_keys.id)
    WHERE id IN (SELECT key_id FROM key_links);

DROP TRIGGER link_counts_insert;
CREATE TRIGGER link_counts_insert AFTER INSERT ON key_links
BEGIN
    INSERT INTO link_counts (repo_id, n) VALUES (NEW.repo_id, 1)
        ON CONFLICT (repo_id) DO UPDATE SET n = n + 1;
    UPDATE deploy_keys SET links = links + 1 WHERE id = NEW.key_id;
END;

DROP TRIGGER link_counts_delete;
CREATE TRIGGER link_counts_delete AFTER DELETE ON key_links
BEGIN
    UPDATE link_counts SET n = n - 1 WHERE repo_id = OLD.repo_id;
    UPDATE deploy_keys SET links = links - 1 WHERE id = OLD.key_id;
END;

-- A link moved to another key would leave both counts wrong: refuse it rather than count it.
CREATE TRIGGER key_links_key_fixed BEFORE UPDATE OF key_id ON key_links
WHEN OLD.key_id <> NEW.key_id
BEGIN
    SELECT RAISE(ABORT, 'a link''s key_id never changes');
END;
