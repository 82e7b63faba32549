-- keygate schema, version 4: when a key link last changed (its creation, or a change of can_push), so a
-- conditional delete (GitLab's If-Unmodified-Since) can refuse to remove a link changed since the client saw it.
-- Existing links were last changed when they were made, as far as anyone can tell.
ALTER TABLE key_links ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
UPDATE key_links SET updated_at = created_at;
