-- keygate PostgreSQL schema, version 2: SQLite's version 5, the admin list at a million keys (issue 10).
-- `?public=true` pages and counts instance-wide keys in id order on this index instead of scanning
-- deploy_keys; PostgreSQL has no rowid in its indexes, so the id is spelled out.
CREATE INDEX deploy_keys_public ON deploy_keys (public, id);
-- A key's repositories in link order (the admin list asks for them per key): the index already in
-- that order, not a sort of what key_links_key finds. It replaces key_links_key, its prefix.
CREATE INDEX key_links_key_order ON key_links (key_id, id);
DROP INDEX key_links_key;
