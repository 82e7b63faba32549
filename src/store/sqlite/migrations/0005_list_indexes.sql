-- keygate schema, version 5: the admin list at a million keys (issue 10). Instance-wide keys are few:
-- without this, `?public=true` walked every key to fill a page, and counting them walked the table.
-- It is also the narrowest index on deploy_keys (a byte and the rowid a key), so a count of all keys
-- that stops at GitLab's 10,000 reads a handful of pages.
CREATE INDEX deploy_keys_public ON deploy_keys(public);
