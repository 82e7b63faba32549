-- GitLab's `GET /keys?fingerprint=` finds a key by its MD5 fingerprint, the only reader of this
-- index. It held the whole 47-character text ("aa:bb:…"), about 56 bytes an entry, and every
-- create and delete writes one of its leaves at a random place: a fifth of the WAL frames of a
-- batch of writes (docs/benchmarks.md). The first 11 characters (32 bits) find a key as surely at
-- a million keys (two keys share them once in 4,000 lookups there, and the full comparison after
-- the index picks the right one), at about 20 bytes an entry: a third of the pages to keep at
-- scale, and half the leaves a batch of creates and deletes writes (6.7 -> 3.0-3.8 WAL frames).
-- Lookups say `substr(fingerprint_md5, 1, 11) = substr(?, 1, 11)` to use it.
DROP INDEX deploy_keys_md5;
CREATE INDEX deploy_keys_md5 ON deploy_keys(substr(fingerprint_md5, 1, 11));
