//! SQLite SQL for users, tokens, repositories, keys and links, one method per statement.

use rusqlite::{OptionalExtension, Row, params};

use super::SqliteDb;
use super::memo::memoized;
use crate::store::{
    DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, NewKey, Repository, Role, Scope,
    StoreError, Token, User, now_ms,
};

type Result<T> = std::result::Result<T, StoreError>;

// Paged queries write `LIMIT ?n + 0 OFFSET ?m + 0`. SQLite peeks at a bare bound LIMIT to plan the
// query and marks the statement stale whenever that value is bound again, so a cached statement was
// compiled anew on every request (seen in its RePrepare counter; about 300 µs of CPU per list).
//
// The column lists are macros, so that `concat!` writes each statement's text at compile time: a
// `format!` built it anew on every call, and the statement cache then hashed the fresh String.
macro_rules! key_cols {
    () => {
        "k.id, k.fingerprint_sha256, k.fingerprint_md5, k.key_text, k.kind, k.bits, \
         k.title, k.public, k.owner_id, k.expires_at, k.last_used_at, k.created_at"
    };
}
pub(in crate::store::sqlite) use key_cols;
pub(in crate::store::sqlite) const KEY_COLS: &str = key_cols!();

macro_rules! repo_cols {
    () => {
        "r.id, r.name, r.full_path, r.created_at, \
         n.id, n.parent_id, n.name, n.full_path, n.uuid, n.created_at"
    };
}

pub(in crate::store::sqlite) fn key_at(row: &Row, at: usize) -> rusqlite::Result<DeployKey> {
    Ok(DeployKey {
        id: row.get(at)?,
        fingerprint_sha256: row.get(at + 1)?,
        fingerprint_md5: row.get(at + 2)?,
        key_text: row.get(at + 3)?,
        kind: row.get(at + 4)?,
        bits: row.get(at + 5)?,
        title: row.get(at + 6)?,
        public: row.get(at + 7)?,
        owner_id: row.get(at + 8)?,
        expires_at: row.get(at + 9)?,
        last_used_at: row.get(at + 10)?,
        created_at: row.get(at + 11)?,
    })
}

/// A count or offset as SQLite's signed LIMIT takes it; anything larger is as good as unbounded.
fn bound(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn repo_at(row: &Row, at: usize) -> rusqlite::Result<Repository> {
    Ok(Repository {
        id: row.get(at)?,
        name: row.get(at + 1)?,
        full_path: row.get(at + 2)?,
        created_at: row.get(at + 3)?,
        namespace: namespace_at(row, at + 4)?,
    })
}

fn namespace_at(row: &Row, at: usize) -> rusqlite::Result<Namespace> {
    Ok(Namespace {
        id: row.get(at)?,
        parent_id: row.get(at + 1)?,
        name: row.get(at + 2)?,
        full_path: row.get(at + 3)?,
        uuid: row.get(at + 4)?,
        created_at: row.get(at + 5)?,
    })
}

fn user_at(row: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get(0)?,
        username: row.get(1)?,
        admin: row.get(2)?,
        created_at: row.get(3)?,
    })
}

fn linked_at(row: &Row) -> rusqlite::Result<LinkedKey> {
    Ok(LinkedKey {
        key: key_at(row, 0)?,
        repo_id: row.get(12)?,
        can_push: row.get(13)?,
        added_by: row.get(14)?,
        linked_at: row.get(15)?,
        updated_at: row.get(16)?,
    })
}

impl SqliteDb<'_> {
    // ---- users and tokens ----

    pub(super) fn insert_user(&self, username: &str, admin: bool) -> Result<i64> {
        self.conn()
            .prepare_cached("INSERT INTO users (username, admin, created_at) VALUES (?1, ?2, ?3)")?
            .execute(params![username, admin, now_ms()])?;
        Ok(self.conn().last_insert_rowid())
    }

    pub(super) fn user_by_name(&self, username: &str) -> Result<Option<User>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, username, admin, created_at FROM users WHERE username = ?1",
            )?
            .query_row([username], user_at)
            .optional()?)
    }

    pub(super) fn user_by_id(&self, id: i64) -> Result<Option<User>> {
        Ok(self
            .conn()
            .prepare_cached("SELECT id, username, admin, created_at FROM users WHERE id = ?1")?
            .query_row([id], user_at)
            .optional()?)
    }

    /// One page of users by id, optionally only the one with this username (any case, as GitLab).
    pub(super) fn users_page(
        &self,
        username: Option<&str>,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<User>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, username, admin, created_at FROM users WHERE (?1 IS NULL OR username = ?1) \
             ORDER BY id LIMIT ?2 + 0 OFFSET ?3 + 0",
        )?;
        let rows = stmt.query_map(params![username, limit, offset as i64], user_at)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn count_users(&self, username: Option<&str>) -> Result<u64> {
        Ok(self
            .conn()
            .prepare_cached("SELECT COUNT(*) FROM users WHERE (?1 IS NULL OR username = ?1)")?
            .query_row([username], |r| r.get::<_, i64>(0))? as u64)
    }

    pub(super) fn list_users(&self) -> Result<Vec<User>> {
        let mut stmt = self
            .conn()
            .prepare_cached("SELECT id, username, admin, created_at FROM users ORDER BY id")?;
        let rows = stmt.query_map([], user_at)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn delete_user(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM users WHERE id = ?1")?
            .execute([id])?
            > 0)
    }

    pub(super) fn insert_token(
        &self,
        user_id: i64,
        hash: &[u8],
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT INTO tokens (user_id, hash, scope, expires_at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![user_id, hash, scope.as_str(), expires_at, now_ms()])?;
        Ok(self.conn().last_insert_rowid())
    }

    /// The token with this hash and its user.
    pub(super) fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(Token, User)>> {
        memoized(
            self.memo,
            |m| &mut m.tokens,
            hash,
            || {
                Ok(self
                    .conn()
                    .prepare_cached(
                        "SELECT u.id, u.username, u.admin, u.created_at, \
                        t.id, t.scope, t.expires_at, t.created_at \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.hash = ?1",
                    )?
                    .query_row([hash], |row| {
                        let user = user_at(row)?;
                        let scope: String = row.get(5)?;
                        Ok((
                            Token {
                                id: row.get(4)?,
                                user_id: user.id,
                                scope: if scope == "api" {
                                    Scope::Api
                                } else {
                                    Scope::ReadApi
                                },
                                expires_at: row.get(6)?,
                                created_at: row.get(7)?,
                            },
                            user,
                        ))
                    })
                    .optional()?)
            },
        )
    }

    pub(super) fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>> {
        let mut stmt = self.conn().prepare_cached(
            "SELECT id, user_id, scope, expires_at, created_at FROM tokens WHERE user_id = ?1 ORDER BY id",
        )?;
        let rows = stmt.query_map([user_id], |row| {
            let scope: String = row.get(2)?;
            Ok(Token {
                id: row.get(0)?,
                user_id: row.get(1)?,
                scope: if scope == "api" {
                    Scope::Api
                } else {
                    Scope::ReadApi
                },
                expires_at: row.get(3)?,
                created_at: row.get(4)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn delete_token(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM tokens WHERE id = ?1")?
            .execute([id])?
            > 0)
    }

    // ---- namespaces and repositories ----

    pub(super) fn namespace_by_path(&self, full_path: &str) -> Result<Option<Namespace>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, parent_id, name, full_path, uuid, created_at FROM namespaces WHERE full_path = ?1",
            )?
            .query_row([full_path], |r| namespace_at(r, 0))
            .optional()?)
    }

    pub(super) fn namespace_by_id(&self, id: i64) -> Result<Option<Namespace>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, parent_id, name, full_path, uuid, created_at FROM namespaces WHERE id = ?1",
            )?
            .query_row([id], |r| namespace_at(r, 0))
            .optional()?)
    }

    pub(super) fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT id, parent_id, name, full_path, uuid, created_at FROM namespaces WHERE uuid = ?1",
            )?
            .query_row([uuid], |r| namespace_at(r, 0))
            .optional()?)
    }

    pub(super) fn insert_namespace(
        &self,
        parent_id: Option<i64>,
        name: &str,
        full_path: &str,
        uuid: &str,
    ) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT INTO namespaces (parent_id, name, full_path, uuid, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![parent_id, name, full_path, uuid, now_ms()])?;
        Ok(self.conn().last_insert_rowid())
    }

    pub(super) fn insert_repo(
        &self,
        id: Option<i64>,
        namespace_id: i64,
        name: &str,
        full_path: &str,
    ) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT INTO repositories (id, namespace_id, name, full_path, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![id, namespace_id, name, full_path, now_ms()])?;
        Ok(self.conn().last_insert_rowid())
    }

    pub(super) fn repo_by_id(&self, id: i64) -> Result<Option<Repository>> {
        memoized(
            self.memo,
            |m| &mut m.repos_by_id,
            &id,
            || {
                Ok(self
                    .conn()
                    .prepare_cached(concat!(
                        "SELECT ",
                        repo_cols!(),
                        " FROM repositories r JOIN namespaces n ON n.id = r.namespace_id \
                 WHERE r.id = ?1"
                    ))?
                    .query_row([id], |r| repo_at(r, 0))
                    .optional()?)
            },
        )
    }

    pub(super) fn repo_by_path(&self, full_path: &str) -> Result<Option<Repository>> {
        memoized(
            self.memo,
            |m| &mut m.repos_by_path,
            full_path,
            || {
                Ok(self
                    .conn()
                    .prepare_cached(concat!(
                        "SELECT ",
                        repo_cols!(),
                        " FROM repositories r JOIN namespaces n ON n.id = r.namespace_id \
                 WHERE r.full_path = ?1"
                    ))?
                    .query_row([full_path], |r| repo_at(r, 0))
                    .optional()?)
            },
        )
    }

    pub(super) fn count_repos(&self) -> Result<u64> {
        Ok(self
            .conn()
            .prepare_cached("SELECT COUNT(*) FROM repositories")?
            .query_row([], |r| r.get::<_, i64>(0))? as u64)
    }

    pub(super) fn list_repos(&self) -> Result<Vec<Repository>> {
        let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT ",
            repo_cols!(),
            " FROM repositories r JOIN namespaces n ON n.id = r.namespace_id ORDER BY r.id"
        ))?;
        let rows = stmt.query_map([], |r| repo_at(r, 0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes the repository; its links go with it, and keys left private and unlinked go too.
    pub(super) fn delete_repo(&self, id: i64) -> Result<bool> {
        let gone = self
            .conn()
            .prepare_cached("DELETE FROM repositories WHERE id = ?1")?
            .execute([id])?
            > 0;
        self.conn()
            .prepare_cached("DELETE FROM deploy_keys WHERE public = 0 AND links = 0")?
            .execute([])?;
        Ok(gone)
    }

    pub(super) fn set_role(&self, repo_id: i64, user_id: i64, role: Role) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO memberships (repo_id, user_id, role) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (repo_id, user_id) DO UPDATE SET role = excluded.role",
            )?
            .execute(params![repo_id, user_id, role.as_str()])?;
        Ok(())
    }

    pub(super) fn delete_role(&self, repo_id: i64, user_id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM memberships WHERE repo_id = ?1 AND user_id = ?2")?
            .execute([repo_id, user_id])?
            > 0)
    }

    pub(super) fn role_of(&self, repo_id: i64, user_id: i64) -> Result<Option<Role>> {
        memoized(
            self.session_memo(),
            |m| &mut m.roles,
            &(repo_id, user_id),
            || {
                Ok(self
                    .conn()
                    .prepare_cached(
                        "SELECT role FROM memberships WHERE repo_id = ?1 AND user_id = ?2",
                    )?
                    .query_row([repo_id, user_id], |r| {
                        Ok(Role::from_str(&r.get::<_, String>(0)?))
                    })
                    .optional()?)
            },
        )
    }

    // ---- keys and links ----

    pub(super) fn key_by_id(&self, id: i64) -> Result<Option<DeployKey>> {
        Ok(self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                key_cols!(),
                " FROM deploy_keys k WHERE k.id = ?1"
            ))?
            .query_row([id], |r| key_at(r, 0))
            .optional()?)
    }

    pub(super) fn key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                key_cols!(),
                " FROM deploy_keys k WHERE k.fingerprint_sha256 = ?1"
            ))?
            .query_row([fingerprint], |r| key_at(r, 0))
            .optional()?)
    }

    pub(super) fn key_by_md5(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
        Ok(self
            .conn()
            .prepare_cached(concat!(
                "SELECT ",
                key_cols!(),
                " FROM deploy_keys k WHERE substr(k.fingerprint_md5, 1, 11) = substr(?1, 1, 11) \
                 AND k.fingerprint_md5 = ?1 ORDER BY k.id LIMIT 1"
            ))?
            .query_row([fingerprint], |r| key_at(r, 0))
            .optional()?)
    }

    pub(super) fn insert_key(&self, new: &NewKey) -> Result<i64> {
        self.conn()
            .prepare_cached(
                "INSERT INTO deploy_keys (fingerprint_sha256, fingerprint_md5, key_text, kind, bits, \
                 title, public, owner_id, expires_at, created_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                new.fingerprint_sha256,
                new.fingerprint_md5,
                new.key_text,
                new.kind,
                new.bits,
                new.title,
                new.public,
                new.owner_id,
                new.expires_at,
                new.created_at
            ])?;
        Ok(self.conn().last_insert_rowid())
    }

    pub(super) fn update_key_title(&self, key_id: i64, title: &str) -> Result<()> {
        self.conn()
            .prepare_cached("UPDATE deploy_keys SET title = ?2 WHERE id = ?1")?
            .execute(params![key_id, title])?;
        Ok(())
    }

    /// Removes a private key that no repository uses any more; public keys stay.
    pub(super) fn delete_key_if_orphaned(&self, key_id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM deploy_keys WHERE id = ?1 AND public = 0 AND links = 0")?
            .execute([key_id])?
            > 0)
    }

    pub(super) fn insert_link(
        &self,
        repo_id: i64,
        key_id: i64,
        can_push: bool,
        added_by: Option<i64>,
        at: i64,
    ) -> Result<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO key_links (repo_id, key_id, can_push, added_by, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
            )?
            .execute(params![repo_id, key_id, can_push, added_by, at])?;
        Ok(())
    }

    /// Sets a link's push permission; `updated_at` moves only when the value really changes, as
    /// ActiveRecord leaves an unchanged row (and its timestamp) alone.
    pub(super) fn set_can_push(&self, repo_id: i64, key_id: i64, can_push: bool) -> Result<()> {
        self.conn()
            .prepare_cached(
                "UPDATE key_links SET can_push = ?3, updated_at = ?4 \
                 WHERE repo_id = ?1 AND key_id = ?2 AND can_push != ?3",
            )?
            .execute(params![repo_id, key_id, can_push, now_ms()])?;
        Ok(())
    }

    pub(super) fn delete_link(&self, repo_id: i64, key_id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM key_links WHERE repo_id = ?1 AND key_id = ?2")?
            .execute([repo_id, key_id])?
            > 0)
    }

    pub(super) fn link_count(&self, key_id: i64) -> Result<i64> {
        Ok(self
            .conn()
            .prepare_cached("SELECT COUNT(*) FROM key_links WHERE key_id = ?1")?
            .query_row([key_id], |r| r.get(0))?)
    }

    pub(super) fn linked_key(&self, repo_id: i64, key_id: i64) -> Result<Option<LinkedKey>> {
        memoized(
            self.session_memo(),
            |m| &mut m.linked,
            &(repo_id, key_id),
            || {
                Ok(self
                    .conn()
                    .prepare_cached(concat!(
                        "SELECT ",
                        key_cols!(),
                        ", l.repo_id, l.can_push, u.username, l.created_at, l.updated_at \
                 FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
                 LEFT JOIN users u ON u.id = l.added_by \
                 WHERE l.repo_id = ?1 AND l.key_id = ?2"
                    ))?
                    .query_row([repo_id, key_id], linked_at)
                    .optional()?)
            },
        )
    }

    /// One page of a repository's keys in the order they were attached.
    pub(super) fn linked_keys(
        &self,
        repo_id: i64,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<LinkedKey>> {
        memoized(
            self.session_memo(),
            |m| &mut m.pages,
            &(repo_id, offset, limit),
            || {
                let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT ", key_cols!(), ", l.repo_id, l.can_push, u.username, l.created_at, l.updated_at \
             FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
             LEFT JOIN users u ON u.id = l.added_by \
             WHERE l.id IN (SELECT id FROM key_links WHERE repo_id = ?1 ORDER BY id LIMIT ?2 + 0 OFFSET ?3 + 0) \
             ORDER BY l.id"
        ))?;
                // The subquery skips OFFSET rows on the (repo_id, id) index alone; only the page is joined.
                let rows = stmt.query_map(params![repo_id, limit, offset as i64], linked_at)?;
                Ok(rows.collect::<rusqlite::Result<_>>()?)
            },
        )
    }

    pub(super) fn count_linked_keys(&self, repo_id: i64, upto: u64) -> Result<u64> {
        // From the counters of migration 6: walking the links cost half of a list of 20.
        let n = memoized(
            self.session_memo(),
            |m| &mut m.link_counts,
            &repo_id,
            || {
                let n: Option<i64> = self
                    .conn()
                    .prepare_cached("SELECT n FROM link_counts WHERE repo_id = ?1")?
                    .query_row([repo_id], |r| r.get(0))
                    .optional()?;
                Ok::<_, StoreError>(n.unwrap_or(0).max(0) as u64)
            },
        )?;
        Ok(n.min(upto))
    }

    /// Every repository a key is attached to, with its push permission there.
    pub(super) fn links_of_key(&self, key_id: i64) -> Result<Vec<KeyLink>> {
        let mut stmt = self.conn().prepare_cached(concat!(
            "SELECT ",
            repo_cols!(),
            ", l.can_push, l.created_at, l.id, l.updated_at FROM key_links l \
             JOIN repositories r ON r.id = l.repo_id JOIN namespaces n ON n.id = r.namespace_id \
             WHERE l.key_id = ?1 ORDER BY l.id"
        ))?;
        let rows = stmt.query_map([key_id], |r| {
            Ok(KeyLink {
                repo: repo_at(r, 0)?,
                can_push: r.get(10)?,
                created_at: r.get(11)?,
                id: r.get(12)?,
                updated_at: r.get(13)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// One page of the keys in `range`, in its id order, `offset` rows in.
    pub(super) fn list_keys(
        &self,
        range: KeyRange,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<DeployKey>> {
        // Four statements (public or not, either direction), each a range on the primary key or on
        // `deploy_keys_public`, walked in index order: a keyset page costs its rows, not its depth.
        let public = if range.public_only {
            "k.public = 1 AND "
        } else {
            ""
        };
        let order = if range.descending { "DESC" } else { "ASC" };
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {KEY_COLS} FROM deploy_keys k WHERE {public}k.id > ?1 AND k.id < ?2 \
             ORDER BY k.id {order} LIMIT ?3 + 0 OFFSET ?4 + 0"
        ))?;
        let rows = stmt.query_map(
            params![
                range.after.unwrap_or(i64::MIN),
                range.before.unwrap_or(i64::MAX),
                limit,
                bound(offset)
            ],
            |r| key_at(r, 0),
        )?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn count_keys(&self, public_only: bool, upto: u64) -> Result<u64> {
        // Read from the counters the triggers of migration 0006 keep, not by walking an index:
        // the cost stays the same however many keys the instance holds.
        let n: i64 = self
            .conn()
            .prepare_cached("SELECT COALESCE(SUM(n), 0) FROM key_counts WHERE public IN (?1, 1)")?
            .query_row([public_only], |r| r.get(0))?;
        Ok((n.max(0) as u64).min(upto))
    }

    /// Whether a user may reuse a key: their own, an instance key, or one on a repository they maintain.
    pub(super) fn key_accessible(&self, key_id: i64, user_id: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM deploy_keys k WHERE k.id = ?1 AND (k.public = 1 OR k.owner_id = ?2 \
                 OR EXISTS (SELECT 1 FROM key_links l JOIN memberships m ON m.repo_id = l.repo_id \
                            WHERE l.key_id = k.id AND m.user_id = ?2 AND m.role = 'maintainer')))",
            )?
            .query_row([key_id, user_id], |r| r.get(0))?)
    }

    /// Keys on repositories that `target` maintains and `viewer` maintains too (`None`: an admin, who sees all).
    /// Like GitLab, a key attached to several such repositories is listed once per repository.
    pub(super) fn keys_in_common_repos(
        &self,
        target: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DeployKey>, u64)> {
        const FROM: &str = "FROM key_links l JOIN deploy_keys k ON k.id = l.key_id \
             JOIN memberships t ON t.repo_id = l.repo_id AND t.user_id = ?1 AND t.role = 'maintainer' \
             WHERE (?2 IS NULL OR EXISTS (SELECT 1 FROM memberships v WHERE v.repo_id = l.repo_id \
                    AND v.user_id = ?2 AND v.role = 'maintainer'))";
        let total: i64 = self
            .conn()
            .prepare_cached(&format!("SELECT COUNT(*) {FROM}"))?
            .query_row(params![target, viewer], |r| r.get(0))?;
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {KEY_COLS} {FROM} ORDER BY l.id LIMIT ?3 + 0 OFFSET ?4 + 0"
        ))?;
        let rows = stmt.query_map(params![target, viewer, limit, offset as i64], |r| {
            key_at(r, 0)
        })?;
        Ok((rows.collect::<rusqlite::Result<_>>()?, total as u64))
    }

    /// Whether `target` and `viewer` maintain at least one repository together.
    pub(super) fn share_maintained_repo(&self, target: i64, viewer: i64) -> Result<bool> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM memberships t JOIN memberships v ON v.repo_id = t.repo_id \
                 WHERE t.user_id = ?1 AND t.role = 'maintainer' AND v.user_id = ?2 AND v.role = 'maintainer')",
            )?
            .query_row([target, viewer], |r| r.get(0))?)
    }
}
