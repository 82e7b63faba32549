//! PostgreSQL SQL for users, tokens, namespaces, repositories, keys and links, one method per statement; groups.rs and ssh.rs hold the rest, as in the SQLite module.

use postgres::Row;

use super::{PgDb, Result};
use crate::store::{
    DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, NewKey, Repository, Role, Scope,
    StoreError, Token, User, now_ms,
};

pub(super) const KEY_COLS: &str = "k.id, k.fingerprint_sha256, k.fingerprint_md5, k.key_text, k.kind, k.bits, \
     k.title, k.public, k.owner_id, k.expires_at, k.last_used_at, k.created_at";

const REPO_COLS: &str = "r.id, r.name, r.full_path, r.created_at, \
     n.id, n.parent_id, n.name, n.full_path, n.uuid, n.created_at";

pub(super) const NAMESPACE_COLS: &str = "id, parent_id, name, full_path, uuid, created_at";

const LINKED_COLS: &str = "l.repo_id, l.can_push, u.username, l.created_at, l.updated_at";

/// A count or offset as PostgreSQL's BIGINT LIMIT takes it; anything larger is as good as unbounded.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

pub(super) fn key_at(row: &Row, at: usize) -> DeployKey {
    DeployKey {
        id: row.get(at),
        fingerprint_sha256: row.get::<_, &str>(at + 1).into(),
        fingerprint_md5: row.get::<_, &str>(at + 2).into(),
        key_text: row.get::<_, &str>(at + 3).into(),
        kind: row.get::<_, &str>(at + 4).into(),
        bits: row.get::<_, i32>(at + 5) as u32,
        title: row.get::<_, &str>(at + 6).into(),
        public: row.get(at + 7),
        owner_id: row.get(at + 8),
        expires_at: row.get(at + 9),
        last_used_at: row.get(at + 10),
        created_at: row.get(at + 11),
    }
}

pub(super) fn namespace_at(row: &Row, at: usize) -> Namespace {
    Namespace {
        id: row.get(at),
        parent_id: row.get(at + 1),
        name: row.get(at + 2),
        full_path: row.get(at + 3),
        uuid: row.get(at + 4),
        created_at: row.get(at + 5),
    }
}

fn repo_at(row: &Row, at: usize) -> Repository {
    Repository {
        id: row.get(at),
        name: row.get(at + 1),
        full_path: row.get(at + 2),
        created_at: row.get(at + 3),
        namespace: namespace_at(row, at + 4),
    }
}

pub(super) fn user_at(row: &Row, at: usize) -> User {
    User {
        id: row.get(at),
        username: row.get(at + 1),
        admin: row.get(at + 2),
        created_at: row.get(at + 3),
    }
}

fn linked_at(row: &Row) -> LinkedKey {
    LinkedKey {
        key: key_at(row, 0),
        repo_id: row.get(12),
        can_push: row.get(13),
        added_by: row.get::<_, Option<&str>>(14).map(Into::into),
        linked_at: row.get(15),
        updated_at: row.get(16),
    }
}

fn scope_of(text: &str) -> Scope {
    if text == "api" {
        Scope::Api
    } else {
        Scope::ReadApi
    }
}

fn token_at(row: &Row, at: usize) -> Token {
    Token {
        id: row.get(at),
        user_id: row.get(at + 1),
        scope: scope_of(row.get(at + 2)),
        expires_at: row.get(at + 3),
        created_at: row.get(at + 4),
    }
}

impl PgDb<'_> {
    // ---- users and tokens ----

    pub(super) fn insert_user(&self, username: &str, admin: bool) -> Result<i64> {
        Ok(self
            .one(
                "INSERT INTO users (username, admin, created_at) VALUES ($1, $2, $3) RETURNING id",
                &[&username, &admin, &now_ms()],
            )?
            .get(0))
    }

    // Names compare as SQLite's COLLATE NOCASE does; the lower() index serves the lookup.
    pub(super) fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .opt(
                "SELECT id, username, admin, created_at FROM users WHERE lower(username) = lower($1::text)",
                &[&username],
            )?
            .map(|r| user_at(&r, 0)))
    }

    pub(super) fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        Ok(self
            .opt(
                "SELECT id, username, admin, created_at FROM users WHERE id = $1",
                &[&id],
            )?
            .map(|r| user_at(&r, 0)))
    }

    pub(super) fn users_page(
        &self,
        username: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<User>> {
        Ok(self
            .rows(
                "SELECT id, username, admin, created_at FROM users \
                 WHERE ($1::text IS NULL OR lower(username) = lower($1::text)) \
                 ORDER BY id LIMIT $2 OFFSET $3",
                &[&username, &i64::from(limit), &(offset as i64)],
            )?
            .iter()
            .map(|r| user_at(r, 0))
            .collect())
    }

    pub(super) fn count_users(&self, username: Option<&str>) -> Result<u64> {
        Ok(self
            .one(
                "SELECT COUNT(*) FROM users WHERE ($1::text IS NULL OR lower(username) = lower($1::text))",
                &[&username],
            )?
            .get::<_, i64>(0) as u64)
    }

    pub(super) fn list_users(&self) -> Result<Vec<User>> {
        Ok(self
            .rows(
                "SELECT id, username, admin, created_at FROM users ORDER BY id",
                &[],
            )?
            .iter()
            .map(|r| user_at(r, 0))
            .collect())
    }

    pub(super) fn delete_user(&self, id: i64) -> Result<bool> {
        Ok(self.exec("DELETE FROM users WHERE id = $1", &[&id])? > 0)
    }

    pub(super) fn insert_token(
        &self,
        user_id: i64,
        hash: &[u8],
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        Ok(self
            .one(
                "INSERT INTO tokens (user_id, hash, scope, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&user_id, &hash, &scope.as_str(), &expires_at, &now_ms()],
            )?
            .get(0))
    }

    pub(super) fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(Token, User)>> {
        Ok(self
            .opt(
                "SELECT u.id, u.username, u.admin, u.created_at, \
                        t.id, t.user_id, t.scope, t.expires_at, t.created_at \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = $1",
                &[&hash],
            )?
            .map(|r| (token_at(&r, 4), user_at(&r, 0))))
    }

    pub(super) fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        Ok(self
            .rows(
                "SELECT id, user_id, scope, expires_at, created_at FROM tokens \
                 WHERE user_id = $1 ORDER BY id",
                &[&user_id],
            )?
            .iter()
            .map(|r| token_at(r, 0))
            .collect())
    }

    pub(super) fn delete_token(&self, id: i64) -> Result<bool> {
        Ok(self.exec("DELETE FROM tokens WHERE id = $1", &[&id])? > 0)
    }

    // ---- namespaces and repositories ----

    pub(super) fn namespace_by_path(&self, full_path: &str) -> Result<Option<Namespace>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {NAMESPACE_COLS} FROM namespaces WHERE lower(full_path) = lower($1::text)"
                ),
                &[&full_path],
            )?
            .map(|r| namespace_at(&r, 0)))
    }

    pub(super) fn namespace_by_id(&self, id: i64) -> Result<Option<Namespace>> {
        Ok(self
            .opt(
                &format!("SELECT {NAMESPACE_COLS} FROM namespaces WHERE id = $1"),
                &[&id],
            )?
            .map(|r| namespace_at(&r, 0)))
    }

    pub(super) fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
        Ok(self
            .opt(
                &format!("SELECT {NAMESPACE_COLS} FROM namespaces WHERE uuid = $1"),
                &[&uuid],
            )?
            .map(|r| namespace_at(&r, 0)))
    }

    pub(super) fn insert_namespace(
        &self,
        parent_id: Option<i64>,
        name: &str,
        full_path: &str,
        uuid: &str,
    ) -> Result<i64> {
        Ok(self
            .one(
                "INSERT INTO namespaces (parent_id, name, full_path, uuid, created_at) \
                 VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&parent_id, &name, &full_path, &uuid, &now_ms()],
            )?
            .get(0))
    }

    pub(super) fn insert_repo(
        &self,
        id: Option<i64>,
        namespace_id: i64,
        name: &str,
        full_path: &str,
    ) -> Result<i64> {
        let id: i64 = self
            .one(
                "INSERT INTO repositories (id, namespace_id, name, full_path, created_at) \
                 VALUES (COALESCE($1, nextval('repositories_id_seq')), $2, $3, $4, $5) RETURNING id",
                &[&id, &namespace_id, &name, &full_path, &now_ms()],
            )?
            .get(0);
        // A chosen id moves the sequence past it, as SQLite's AUTOINCREMENT does, so a later
        // repository without one never collides with it.
        self.exec(
            "SELECT setval('repositories_id_seq', $1) \
             WHERE $1 >= (SELECT last_value FROM repositories_id_seq)",
            &[&id],
        )?;
        Ok(id)
    }

    pub(super) fn repo_by_id(&self, id: i64) -> Result<Option<Repository>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {REPO_COLS} FROM repositories r JOIN namespaces n ON n.id = r.namespace_id \
                     WHERE r.id = $1"
                ),
                &[&id],
            )?
            .map(|r| repo_at(&r, 0)))
    }

    pub(super) fn repo_by_path(&self, full_path: &str) -> Result<Option<Repository>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {REPO_COLS} FROM repositories r JOIN namespaces n ON n.id = r.namespace_id \
                     WHERE lower(r.full_path) = lower($1::text)"
                ),
                &[&full_path],
            )?
            .map(|r| repo_at(&r, 0)))
    }

    pub(super) fn count_repos(&self) -> Result<u64> {
        Ok(self
            .one("SELECT COUNT(*) FROM repositories", &[])?
            .get::<_, i64>(0) as u64)
    }

    pub(super) fn list_repos(&self) -> Result<Vec<Repository>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {REPO_COLS} FROM repositories r JOIN namespaces n ON n.id = r.namespace_id \
                     ORDER BY r.id"
                ),
                &[],
            )?
            .iter()
            .map(|r| repo_at(r, 0))
            .collect())
    }

    pub(super) fn delete_repo(&self, id: i64) -> Result<bool> {
        let gone = self.exec("DELETE FROM repositories WHERE id = $1", &[&id])? > 0;
        self.exec(
            "DELETE FROM deploy_keys WHERE NOT public \
             AND NOT EXISTS (SELECT 1 FROM key_links l WHERE l.key_id = deploy_keys.id)",
            &[],
        )?;
        Ok(gone)
    }

    pub(super) fn set_role(&self, repo_id: i64, user_id: i64, role: Role) -> Result<()> {
        self.exec(
            "INSERT INTO memberships (repo_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (repo_id, user_id) DO UPDATE SET role = excluded.role",
            &[&repo_id, &user_id, &role.as_str()],
        )?;
        Ok(())
    }

    pub(super) fn delete_role(&self, repo_id: i64, user_id: i64) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM memberships WHERE repo_id = $1 AND user_id = $2",
            &[&repo_id, &user_id],
        )? > 0)
    }

    pub(super) fn role_of(&self, repo_id: i64, user_id: i64) -> Result<Option<Role>> {
        Ok(self
            .opt(
                "SELECT role FROM memberships WHERE repo_id = $1 AND user_id = $2",
                &[&repo_id, &user_id],
            )?
            .map(|r| Role::from_str(r.get(0))))
    }

    // ---- keys and links ----

    pub(super) fn key_by_id(&self, id: i64) -> Result<Option<DeployKey>> {
        Ok(self
            .opt(
                &format!("SELECT {KEY_COLS} FROM deploy_keys k WHERE k.id = $1"),
                &[&id],
            )?
            .map(|r| key_at(&r, 0)))
    }

    pub(super) fn key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .opt(
                &format!("SELECT {KEY_COLS} FROM deploy_keys k WHERE k.fingerprint_sha256 = $1"),
                &[&fingerprint],
            )?
            .map(|r| key_at(&r, 0)))
    }

    pub(super) fn keys_by_sha256_many(&self, fingerprints: &[&str]) -> Result<Vec<DeployKey>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {KEY_COLS} FROM deploy_keys k WHERE k.fingerprint_sha256 = ANY($1)"
                ),
                &[&fingerprints],
            )?
            .iter()
            .map(|r| key_at(r, 0))
            .collect())
    }

    pub(super) fn linked_key_ids(&self, repo_id: i64, key_ids: &[i64]) -> Result<Vec<i64>> {
        Ok(self
            .rows(
                "SELECT key_id FROM key_links WHERE repo_id = $1 AND key_id = ANY($2)",
                &[&repo_id, &key_ids],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    /// One INSERT of every key, each column sent as one array.
    ///
    /// `ON CONFLICT DO NOTHING` is for the import's race with another gateway: the caller looked
    /// the fingerprints up in this snapshot and found none, so a conflicting row can only be one
    /// committed since by a writer that inserted without looking first (an instance-wide key).
    /// A plain INSERT would report that as a unique violation, which the retry loop does not
    /// retry; DO NOTHING under SERIALIZABLE reports a row the snapshot cannot see as a
    /// serialization failure, so the chunk runs again and finds the key. A row it skipped that
    /// the snapshot can see (a fingerprint given twice, or not looked up) is still refused.
    pub(super) fn insert_keys<'k>(&self, new: &[NewKey<'k>]) -> Result<()> {
        let column = |f: fn(&NewKey<'k>) -> &'k str| new.iter().map(f).collect::<Vec<_>>();
        let bits: Vec<i32> = new.iter().map(|k| k.bits as i32).collect();
        let public: Vec<bool> = new.iter().map(|k| k.public).collect();
        let owner: Vec<Option<i64>> = new.iter().map(|k| k.owner_id).collect();
        let expires: Vec<Option<i64>> = new.iter().map(|k| k.expires_at).collect();
        let created: Vec<i64> = new.iter().map(|k| k.created_at).collect();
        let inserted = self.exec(
            "INSERT INTO deploy_keys (fingerprint_sha256, fingerprint_md5, key_text, kind, bits, \
             title, public, owner_id, expires_at, created_at) \
             SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], \
             $5::int4[], $6::text[], $7::bool[], $8::int8[], $9::int8[], $10::int8[]) \
             ON CONFLICT (fingerprint_sha256) DO NOTHING",
            &[
                &column(|k| k.fingerprint_sha256),
                &column(|k| k.fingerprint_md5),
                &column(|k| k.key_text),
                &column(|k| k.kind),
                &bits,
                &column(|k| k.title),
                &public,
                &owner,
                &expires,
                &created,
            ],
        )?;
        all_inserted(inserted, new.len(), "deploy_keys.fingerprint_sha256")
    }

    pub(super) fn key_by_md5(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {KEY_COLS} FROM deploy_keys k WHERE k.fingerprint_md5 = $1 \
                     ORDER BY k.id LIMIT 1"
                ),
                &[&fingerprint],
            )?
            .map(|r| key_at(&r, 0)))
    }

    pub(super) fn insert_key(&self, new: &NewKey) -> Result<i64> {
        Ok(self
            .one(
                "INSERT INTO deploy_keys (fingerprint_sha256, fingerprint_md5, key_text, kind, bits, \
                 title, public, owner_id, expires_at, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                &[
                    &new.fingerprint_sha256,
                    &new.fingerprint_md5,
                    &new.key_text,
                    &new.kind,
                    &(new.bits as i32),
                    &new.title,
                    &new.public,
                    &new.owner_id,
                    &new.expires_at,
                    &new.created_at,
                ],
            )?
            .get(0))
    }

    pub(super) fn update_key_title(&self, key_id: i64, title: &str) -> Result<()> {
        self.exec(
            "UPDATE deploy_keys SET title = $2 WHERE id = $1",
            &[&key_id, &title],
        )?;
        Ok(())
    }

    pub(super) fn delete_key_if_orphaned(&self, key_id: i64) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM deploy_keys WHERE id = $1 AND NOT public \
             AND NOT EXISTS (SELECT 1 FROM key_links WHERE key_id = $1)",
            &[&key_id],
        )? > 0)
    }

    pub(super) fn insert_link(
        &self,
        repo_id: i64,
        key_id: i64,
        can_push: bool,
        added_by: Option<i64>,
        at: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO key_links (repo_id, key_id, can_push, added_by, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $5)",
            &[&repo_id, &key_id, &can_push, &added_by, &at],
        )?;
        Ok(())
    }

    pub(super) fn insert_links(
        &self,
        repo_id: i64,
        key_ids: &[i64],
        can_push: bool,
        added_by: Option<i64>,
    ) -> Result<()> {
        // Conflict-safe as `insert_keys` is, against a link committed since the caller's
        // `linked_key_ids` found none.
        let inserted = self.exec(
            "INSERT INTO key_links (repo_id, key_id, can_push, added_by, created_at, updated_at) \
             SELECT $1, key_id, $3, $4, $5, $5 FROM unnest($2::int8[]) AS key_id \
             ON CONFLICT (repo_id, key_id) DO NOTHING",
            &[&repo_id, &key_ids, &can_push, &added_by, &now_ms()],
        )?;
        all_inserted(
            inserted,
            key_ids.len(),
            "key_links.repo_id, key_links.key_id",
        )
    }

    pub(super) fn set_can_push(&self, repo_id: i64, key_id: i64, can_push: bool) -> Result<()> {
        self.exec(
            "UPDATE key_links SET can_push = $3, updated_at = $4 \
             WHERE repo_id = $1 AND key_id = $2 AND can_push != $3",
            &[&repo_id, &key_id, &can_push, &now_ms()],
        )?;
        Ok(())
    }

    pub(super) fn delete_link(&self, repo_id: i64, key_id: i64) -> Result<bool> {
        Ok(self.exec(
            "DELETE FROM key_links WHERE repo_id = $1 AND key_id = $2",
            &[&repo_id, &key_id],
        )? > 0)
    }

    pub(super) fn link_count(&self, key_id: i64) -> Result<i64> {
        Ok(self
            .one(
                "SELECT COUNT(*) FROM key_links WHERE key_id = $1",
                &[&key_id],
            )?
            .get(0))
    }

    pub(super) fn linked_key(&self, repo_id: i64, key_id: i64) -> Result<Option<LinkedKey>> {
        Ok(self
            .opt(
                &format!(
                    "SELECT {KEY_COLS}, {LINKED_COLS} \
                     FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
                     LEFT JOIN users u ON u.id = l.added_by \
                     WHERE l.repo_id = $1 AND l.key_id = $2"
                ),
                &[&repo_id, &key_id],
            )?
            .map(|r| linked_at(&r)))
    }

    pub(super) fn linked_keys(
        &self,
        repo_id: i64,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<LinkedKey>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {KEY_COLS}, {LINKED_COLS} \
                     FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
                     LEFT JOIN users u ON u.id = l.added_by \
                     WHERE l.repo_id = $1 ORDER BY l.id LIMIT $2 OFFSET $3"
                ),
                &[&repo_id, &i64::from(limit), &(offset as i64)],
            )?
            .iter()
            .map(linked_at)
            .collect())
    }

    pub(super) fn count_linked_keys(&self, repo_id: i64, upto: u64) -> Result<u64> {
        // The LIMIT stops the walk of `key_links_repo_order` at `upto` rows.
        Ok(self
            .one(
                "SELECT COUNT(*) FROM (SELECT 1 FROM key_links WHERE repo_id = $1 LIMIT $2) c",
                &[&repo_id, &bound(upto)],
            )?
            .get::<_, i64>(0) as u64)
    }

    pub(super) fn links_of_key(&self, key_id: i64) -> Result<Vec<KeyLink>> {
        Ok(self
            .rows(
                &format!(
                    "SELECT {REPO_COLS}, l.can_push, l.created_at, l.id, l.updated_at FROM key_links l \
                     JOIN repositories r ON r.id = l.repo_id JOIN namespaces n ON n.id = r.namespace_id \
                     WHERE l.key_id = $1 ORDER BY l.id"
                ),
                &[&key_id],
            )?
            .iter()
            .map(|r| KeyLink {
                repo: repo_at(r, 0),
                can_push: r.get(10),
                created_at: r.get(11),
                id: r.get(12),
                updated_at: r.get(13),
            })
            .collect())
    }

    pub(super) fn list_keys(
        &self,
        range: KeyRange,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<DeployKey>> {
        // Four statements (public or not, either direction), each a range scan of the primary key
        // or of `deploy_keys_public` in index order: a keyset page costs its rows, not its depth.
        let public = if range.public_only {
            "k.public AND "
        } else {
            ""
        };
        let order = if range.descending { "DESC" } else { "ASC" };
        Ok(self
            .rows(
                &format!(
                    "SELECT {KEY_COLS} FROM deploy_keys k WHERE {public}k.id > $1 AND k.id < $2 \
                     ORDER BY k.id {order} LIMIT $3 OFFSET $4"
                ),
                &[
                    &range.after.unwrap_or(i64::MIN),
                    &range.before.unwrap_or(i64::MAX),
                    &i64::from(limit),
                    &bound(offset),
                ],
            )?
            .iter()
            .map(|r| key_at(r, 0))
            .collect())
    }

    pub(super) fn count_keys(&self, public_only: bool, upto: u64) -> Result<u64> {
        let sql = if public_only {
            "SELECT COUNT(*) FROM (SELECT 1 FROM deploy_keys WHERE public LIMIT $1) c"
        } else {
            "SELECT COUNT(*) FROM (SELECT 1 FROM deploy_keys LIMIT $1) c"
        };
        Ok(self.one(sql, &[&bound(upto)])?.get::<_, i64>(0) as u64)
    }

    pub(super) fn key_accessible(&self, key_id: i64, user_id: i64) -> Result<bool> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM deploy_keys k WHERE k.id = $1 AND (k.public OR k.owner_id = $2 \
                 OR EXISTS (SELECT 1 FROM key_links l JOIN memberships m ON m.repo_id = l.repo_id \
                            WHERE l.key_id = k.id AND m.user_id = $2 AND m.role = 'maintainer')))",
                &[&key_id, &user_id],
            )?
            .get(0))
    }

    pub(super) fn keys_in_common_repos(
        &self,
        target: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DeployKey>, u64)> {
        const FROM: &str = "FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
             JOIN memberships t ON t.repo_id = l.repo_id AND t.user_id = $1 AND t.role = 'maintainer' \
             WHERE ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM memberships v WHERE v.repo_id = l.repo_id \
                    AND v.user_id = $2 AND v.role = 'maintainer'))";
        let total: i64 = self
            .one(&format!("SELECT COUNT(*) {FROM}"), &[&target, &viewer])?
            .get(0);
        let keys = self
            .rows(
                &format!("SELECT {KEY_COLS} {FROM} ORDER BY l.id LIMIT $3 OFFSET $4"),
                &[&target, &viewer, &i64::from(limit), &(offset as i64)],
            )?
            .iter()
            .map(|r| key_at(r, 0))
            .collect();
        Ok((keys, total as u64))
    }

    pub(super) fn share_maintained_repo(&self, target: i64, viewer: i64) -> Result<bool> {
        Ok(self
            .one(
                "SELECT EXISTS (SELECT 1 FROM memberships t JOIN memberships v ON v.repo_id = t.repo_id \
                 WHERE t.user_id = $1 AND t.role = 'maintainer' AND v.user_id = $2 AND v.role = 'maintainer')",
                &[&target, &viewer],
            )?
            .get(0))
    }
}

/// A many-row INSERT ... ON CONFLICT DO NOTHING that skipped a row this transaction can see
/// fails as the plain INSERT (and SQLite's row-by-row default) would: a unique violation.
fn all_inserted(inserted: u64, wanted: usize, unique: &str) -> Result<()> {
    if inserted == wanted as u64 {
        Ok(())
    } else {
        Err(StoreError::Unique(unique.to_string()))
    }
}
