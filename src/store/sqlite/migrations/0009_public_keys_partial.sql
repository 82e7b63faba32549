-- keygate schema, version 9: the index of instance-wide keys holds those keys only. Every key's
-- create and delete wrote an entry of `deploy_keys_public` (schema 5), private keys too, though
-- only `?public=true` pages read it (`public = 1 AND id` ranges, in id order): on SQLite one
-- B-tree page more in every group-commit batch, one insert and one delete more in every
-- create and delete. Instance-wide keys are few, so this index stays a page or two.
DROP INDEX deploy_keys_public;
CREATE INDEX deploy_keys_public ON deploy_keys(id) WHERE public = 1;
