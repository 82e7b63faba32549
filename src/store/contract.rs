//! The storage contract: every query the core may run, one method each, implemented once per backend.

use super::{
    AuditEvent, AuditFilter, DeployKey, KeyLink, KeyRange, LinkedKey, Namespace, NewKey,
    Repository, Role, Scope, StoreError, Token, User, now_ms,
};

type Result<T> = std::result::Result<T, StoreError>;

/// A connection inside a transaction opened by `Store::read` or `Store::write`. The core sees
/// only this, so its rules run unchanged on every backend; each backend keeps its SQL to itself.
pub trait Queries {
    // ---- savepoints (see `Db::savepoint`) ----
    fn savepoint_begin(&self) -> Result<()>;
    fn savepoint_release(&self) -> Result<()>;
    fn savepoint_rollback(&self) -> Result<()>;

    // ---- users and tokens ----
    fn insert_user(&self, username: &str, admin: bool) -> Result<i64>;
    fn user_by_name(&self, username: &str) -> Result<Option<User>>;
    fn user_by_id(&self, id: i64) -> Result<Option<User>>;
    /// One page of users by id, optionally only the one with this username (any case, as GitLab).
    fn users_page(&self, username: Option<&str>, offset: u64, limit: u32) -> Result<Vec<User>>;
    fn count_users(&self, username: Option<&str>) -> Result<u64>;
    fn list_users(&self) -> Result<Vec<User>>;
    fn delete_user(&self, id: i64) -> Result<bool>;
    fn insert_token(
        &self,
        user_id: i64,
        hash: &[u8],
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<i64>;
    /// The token with this hash and its user.
    fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(Token, User)>>;
    fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>>;
    fn delete_token(&self, id: i64) -> Result<bool>;

    // ---- namespaces and repositories ----
    fn namespace_by_path(&self, full_path: &str) -> Result<Option<Namespace>>;
    fn namespace_by_id(&self, id: i64) -> Result<Option<Namespace>>;
    fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>>;
    fn insert_namespace(
        &self,
        parent_id: Option<i64>,
        name: &str,
        full_path: &str,
        uuid: &str,
    ) -> Result<i64>;
    fn insert_repo(
        &self,
        id: Option<i64>,
        namespace_id: i64,
        name: &str,
        full_path: &str,
    ) -> Result<i64>;
    fn repo_by_id(&self, id: i64) -> Result<Option<Repository>>;
    fn repo_by_path(&self, full_path: &str) -> Result<Option<Repository>>;
    fn list_repos(&self) -> Result<Vec<Repository>>;
    /// How many repositories there are (the `/-/metrics` gauge).
    fn count_repos(&self) -> Result<u64>;
    /// Deletes the repository; its links go with it, and keys left private and unlinked go too.
    fn delete_repo(&self, id: i64) -> Result<bool>;
    fn set_role(&self, repo_id: i64, user_id: i64, role: Role) -> Result<()>;
    fn delete_role(&self, repo_id: i64, user_id: i64) -> Result<bool>;
    fn role_of(&self, repo_id: i64, user_id: i64) -> Result<Option<Role>>;

    // ---- keys and links ----
    fn key_by_id(&self, id: i64) -> Result<Option<DeployKey>>;
    fn key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>>;
    fn key_by_md5(&self, fingerprint: &str) -> Result<Option<DeployKey>>;
    fn insert_key(&self, new: &NewKey) -> Result<i64>;
    fn update_key_title(&self, key_id: i64, title: &str) -> Result<()>;
    /// Removes a private key that no repository uses any more; public keys stay.
    fn delete_key_if_orphaned(&self, key_id: i64) -> Result<bool>;
    /// A link made at `at` (milliseconds), its creation and last change.
    fn insert_link(
        &self,
        repo_id: i64,
        key_id: i64,
        can_push: bool,
        added_by: Option<i64>,
        at: i64,
    ) -> Result<()>;
    /// Sets a link's push permission; `updated_at` moves only when the value really changes, as
    /// ActiveRecord leaves an unchanged row (and its timestamp) alone.
    fn set_can_push(&self, repo_id: i64, key_id: i64, can_push: bool) -> Result<()>;
    fn delete_link(&self, repo_id: i64, key_id: i64) -> Result<bool>;
    fn link_count(&self, key_id: i64) -> Result<i64>;
    fn linked_key(&self, repo_id: i64, key_id: i64) -> Result<Option<LinkedKey>>;
    /// One page of a repository's keys in the order they were attached.
    fn linked_keys(&self, repo_id: i64, offset: u64, limit: u32) -> Result<Vec<LinkedKey>>;
    /// How many keys the repository has, counting no further than `upto`: a list that only needs
    /// to know whether there are more than so many must not walk them all.
    fn count_linked_keys(&self, repo_id: i64, upto: u64) -> Result<u64>;
    /// Every repository a key is attached to, with its push permission there.
    fn links_of_key(&self, key_id: i64) -> Result<Vec<KeyLink>>;
    /// One page of the keys in `range`, in its id order, `offset` rows in.
    fn list_keys(&self, range: KeyRange, offset: u64, limit: u32) -> Result<Vec<DeployKey>>;
    /// How many keys there are (optionally only instance-wide ones), counting no further than `upto`.
    fn count_keys(&self, public_only: bool, upto: u64) -> Result<u64>;
    /// Whether a user may reuse a key: their own, an instance key, or one on a repository they maintain.
    fn key_accessible(&self, key_id: i64, user_id: i64) -> Result<bool>;
    /// Keys on repositories that `target` maintains and `viewer` maintains too (`None`: an admin, who sees all).
    /// Like GitLab, a key attached to several such repositories is listed once per repository.
    fn keys_in_common_repos(
        &self,
        target: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<DeployKey>, u64)>;
    /// Whether `target` and `viewer` maintain at least one repository together.
    fn share_maintained_repo(&self, target: i64, viewer: i64) -> Result<bool>;

    // ---- signatures already used ----
    /// Records a signature as used until `expires_at`; false if it was used before. Forgets
    /// signatures that have expired, which can no longer verify anyway.
    fn claim_signature(&self, signature: &str, expires_at: i64) -> Result<bool>;

    // ---- access keys ----
    fn insert_access_key(&self, user_id: i64, access_key: &str, secret_key: &str) -> Result<i64>;
    /// The user an access key belongs to, and its secret.
    fn access_key_owner(&self, access_key: &str) -> Result<Option<(User, String)>>;
    /// A user's access keys (never the secrets), oldest first.
    fn access_keys_of(&self, user_id: i64) -> Result<Vec<String>>;
    fn delete_access_key(&self, access_key: &str) -> Result<bool>;

    // ---- submodules ----
    /// Declares `child` a submodule of `parent`; declaring it twice changes nothing.
    fn insert_submodule(&self, parent_id: i64, child_id: i64) -> Result<()>;
    fn delete_submodule(&self, parent_id: i64, child_id: i64) -> Result<bool>;
    /// The ids of a repository's submodules, in id order.
    fn submodule_ids(&self, parent_id: i64) -> Result<Vec<i64>>;

    // ---- link labels ----
    fn set_link_application(&self, repo_id: i64, key_id: i64, application: &str) -> Result<()>;
    fn link_application(&self, repo_id: i64, key_id: i64) -> Result<Option<String>>;

    // ---- namespaces ----
    /// Every namespace, by path.
    fn list_namespaces(&self) -> Result<Vec<Namespace>>;
    /// Whether the user holds any role, and whether the maintainer role, on a repository in the
    /// namespace or below it.
    fn namespace_roles(&self, namespace_id: i64, user_id: i64) -> Result<(bool, bool)>;
    /// One page of the distinct keys on repositories in the namespace or below it that `viewer`
    /// maintains (`None`: all of them), by key id, and how many there are in all.
    fn namespace_key_ids(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        offset: u64,
        limit: u32,
    ) -> Result<(Vec<i64>, u64)>;
    /// Whether the key is attached to a repository in the namespace or below it that `viewer`
    /// maintains (`None`: any repository).
    fn namespace_has_key(
        &self,
        namespace_id: i64,
        viewer: Option<i64>,
        key_id: i64,
    ) -> Result<bool>;
    /// The key with this SHA256 fingerprint, if it is attached to at least one repository: one
    /// lookup on the fingerprint's unique index, then the key's count of links (SQLite) or a
    /// probe of the links' index on `key_id` (PostgreSQL).
    fn linked_key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>>;
    /// Up to `limit` keys attached to at least one repository (to `repo_id`, when given) with ids
    /// above `after`, in id order: a keyset page of the keys that may log in at all.
    fn login_keys(&self, repo_id: Option<i64>, after: i64, limit: u32) -> Result<Vec<DeployKey>>;
    /// Sets a key's last use to `now` unless it was set after `fresh_after`; true if it changed.
    fn touch_key_used(&self, key_id: i64, now: i64, fresh_after: i64) -> Result<bool>;

    // ---- the audit trail (append-only: nothing updates a row; only pruning deletes) ----
    /// A token by id, with its user (for the record of its revocation).
    fn token_by_id(&self, id: i64) -> Result<Option<(Token, User)>>;
    /// Records `event` in the caller's write transaction: it commits with the change or not at all.
    fn insert_audit_event(&self, event: AuditEvent) -> Result<()>;
    fn audit_event(&self, id: i64) -> Result<Option<AuditEvent>>;
    /// One page of the events `filter` selects, newest first (or oldest first, as it says).
    fn audit_events(
        &self,
        filter: &AuditFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>>;
    /// How many events `filter` selects, counting no further than `upto`.
    fn count_audit_events(&self, filter: &AuditFilter, upto: u64) -> Result<u64>;
    /// Deletes the events created before `before`; returns how many.
    fn prune_audit_events(&self, before: i64) -> Result<u64>;

    // ---- many rows at once (an import chunk) ----
    // Each default is the single-row query in a loop, which costs nothing extra in-process on
    // SQLite; PostgreSQL overrides them with one statement each, so a chunk of 1000 keys is a
    // handful of round trips instead of thousands.
    /// The keys with these SHA256 fingerprints, in no particular order; absent ones are left out.
    fn keys_by_sha256_many(&self, fingerprints: &[&str]) -> Result<Vec<DeployKey>> {
        let mut found = Vec::with_capacity(fingerprints.len());
        for fingerprint in fingerprints {
            found.extend(self.key_by_sha256(fingerprint)?);
        }
        Ok(found)
    }
    /// Which of `key_ids` are attached to the repository.
    fn linked_key_ids(&self, repo_id: i64, key_ids: &[i64]) -> Result<Vec<i64>> {
        let mut linked = Vec::new();
        for &key_id in key_ids {
            if self.linked_key(repo_id, key_id)?.is_some() {
                linked.push(key_id);
            }
        }
        Ok(linked)
    }
    /// Inserts every key, or fails as `insert_key` would on the first duplicate. Where another
    /// writer committed one of them since the caller looked (PostgreSQL, several gateways) the
    /// transaction is retried, never failed with a unique violation.
    fn insert_keys(&self, new: &[NewKey]) -> Result<()> {
        for key in new {
            self.insert_key(key)?;
        }
        Ok(())
    }
    /// Attaches every key to the repository, or fails as `insert_link` would; a link another
    /// writer committed since the caller looked is retried as `insert_keys` says.
    fn insert_links(
        &self,
        repo_id: i64,
        key_ids: &[i64],
        can_push: bool,
        added_by: Option<i64>,
    ) -> Result<()> {
        for &key_id in key_ids {
            self.insert_link(repo_id, key_id, can_push, added_by, now_ms())?;
        }
        Ok(())
    }
    fn insert_audit_events(&self, events: Vec<AuditEvent>) -> Result<()> {
        for event in events {
            self.insert_audit_event(event)?;
        }
        Ok(())
    }
}

/// `impl Queries for $ty<'_>` in which every query calls `$ty`'s inherent method of the same name,
/// the savepoints (whose SQL differs) given as `$extra`. Each backend keeps each statement once,
/// as an inherent method beside its kin in its own module; this keeps the forwarding once too.
/// The compiler holds this list to the trait: a query missing here, or extra, does not build.
macro_rules! forward_queries {
    ($ty:ident { $($extra:item)* }) => {
        impl $crate::store::contract::Queries for $ty<'_> {
            $($extra)*
            fn insert_user(&self, username: &str, admin: bool) -> Result<i64> {
                $ty::insert_user(self, username, admin)
            }
            fn user_by_name(&self, username: &str) -> Result<Option<User>> {
                $ty::user_by_name(self, username)
            }
            fn user_by_id(&self, id: i64) -> Result<Option<User>> {
                $ty::user_by_id(self, id)
            }
            fn users_page(&self, username: Option<&str>, offset: u64, limit: u32) -> Result<Vec<User>> {
                $ty::users_page(self, username, offset, limit)
            }
            fn count_users(&self, username: Option<&str>) -> Result<u64> {
                $ty::count_users(self, username)
            }
            fn list_users(&self) -> Result<Vec<User>> {
                $ty::list_users(self)
            }
            fn delete_user(&self, id: i64) -> Result<bool> {
                $ty::delete_user(self, id)
            }
            fn insert_token(
                &self,
                user_id: i64,
                hash: &[u8],
                scope: Scope,
                expires_at: Option<i64>,
            ) -> Result<i64> {
                $ty::insert_token(self, user_id, hash, scope, expires_at)
            }
            fn token_by_hash(&self, hash: &[u8]) -> Result<Option<(Token, User)>> {
                $ty::token_by_hash(self, hash)
            }
            fn list_tokens(&self, user_id: i64) -> Result<Vec<Token>> {
                $ty::list_tokens(self, user_id)
            }
            fn delete_token(&self, id: i64) -> Result<bool> {
                $ty::delete_token(self, id)
            }
            fn namespace_by_path(&self, full_path: &str) -> Result<Option<Namespace>> {
                $ty::namespace_by_path(self, full_path)
            }
            fn namespace_by_id(&self, id: i64) -> Result<Option<Namespace>> {
                $ty::namespace_by_id(self, id)
            }
            fn namespace_by_uuid(&self, uuid: &str) -> Result<Option<Namespace>> {
                $ty::namespace_by_uuid(self, uuid)
            }
            fn insert_namespace(
                &self,
                parent_id: Option<i64>,
                name: &str,
                full_path: &str,
                uuid: &str,
            ) -> Result<i64> {
                $ty::insert_namespace(self, parent_id, name, full_path, uuid)
            }
            fn insert_repo(
                &self,
                id: Option<i64>,
                namespace_id: i64,
                name: &str,
                full_path: &str,
            ) -> Result<i64> {
                $ty::insert_repo(self, id, namespace_id, name, full_path)
            }
            fn repo_by_id(&self, id: i64) -> Result<Option<Repository>> {
                $ty::repo_by_id(self, id)
            }
            fn repo_by_path(&self, full_path: &str) -> Result<Option<Repository>> {
                $ty::repo_by_path(self, full_path)
            }
            fn list_repos(&self) -> Result<Vec<Repository>> {
                $ty::list_repos(self)
            }
            fn count_repos(&self) -> Result<u64> {
                $ty::count_repos(self)
            }
            fn delete_repo(&self, id: i64) -> Result<bool> {
                $ty::delete_repo(self, id)
            }
            fn set_role(&self, repo_id: i64, user_id: i64, role: Role) -> Result<()> {
                $ty::set_role(self, repo_id, user_id, role)
            }
            fn delete_role(&self, repo_id: i64, user_id: i64) -> Result<bool> {
                $ty::delete_role(self, repo_id, user_id)
            }
            fn role_of(&self, repo_id: i64, user_id: i64) -> Result<Option<Role>> {
                $ty::role_of(self, repo_id, user_id)
            }
            fn key_by_id(&self, id: i64) -> Result<Option<DeployKey>> {
                $ty::key_by_id(self, id)
            }
            fn key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
                $ty::key_by_sha256(self, fingerprint)
            }
            fn key_by_md5(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
                $ty::key_by_md5(self, fingerprint)
            }
            fn insert_key(&self, new: &NewKey) -> Result<i64> {
                $ty::insert_key(self, new)
            }
            fn update_key_title(&self, key_id: i64, title: &str) -> Result<()> {
                $ty::update_key_title(self, key_id, title)
            }
            fn delete_key_if_orphaned(&self, key_id: i64) -> Result<bool> {
                $ty::delete_key_if_orphaned(self, key_id)
            }
            fn insert_link(
                &self,
                repo_id: i64,
                key_id: i64,
                can_push: bool,
                added_by: Option<i64>,
                at: i64,
            ) -> Result<()> {
                $ty::insert_link(self, repo_id, key_id, can_push, added_by, at)
            }
            fn set_can_push(&self, repo_id: i64, key_id: i64, can_push: bool) -> Result<()> {
                $ty::set_can_push(self, repo_id, key_id, can_push)
            }
            fn delete_link(&self, repo_id: i64, key_id: i64) -> Result<bool> {
                $ty::delete_link(self, repo_id, key_id)
            }
            fn link_count(&self, key_id: i64) -> Result<i64> {
                $ty::link_count(self, key_id)
            }
            fn linked_key(&self, repo_id: i64, key_id: i64) -> Result<Option<LinkedKey>> {
                $ty::linked_key(self, repo_id, key_id)
            }
            fn linked_keys(&self, repo_id: i64, offset: u64, limit: u32) -> Result<Vec<LinkedKey>> {
                $ty::linked_keys(self, repo_id, offset, limit)
            }
            fn count_linked_keys(&self, repo_id: i64, upto: u64) -> Result<u64> {
                $ty::count_linked_keys(self, repo_id, upto)
            }
            fn links_of_key(&self, key_id: i64) -> Result<Vec<KeyLink>> {
                $ty::links_of_key(self, key_id)
            }
            fn list_keys(&self, range: KeyRange, offset: u64, limit: u32) -> Result<Vec<DeployKey>> {
                $ty::list_keys(self, range, offset, limit)
            }
            fn count_keys(&self, public_only: bool, upto: u64) -> Result<u64> {
                $ty::count_keys(self, public_only, upto)
            }
            fn key_accessible(&self, key_id: i64, user_id: i64) -> Result<bool> {
                $ty::key_accessible(self, key_id, user_id)
            }
            fn keys_in_common_repos(
                &self,
                target: i64,
                viewer: Option<i64>,
                offset: u64,
                limit: u32,
            ) -> Result<(Vec<DeployKey>, u64)> {
                $ty::keys_in_common_repos(self, target, viewer, offset, limit)
            }
            fn share_maintained_repo(&self, target: i64, viewer: i64) -> Result<bool> {
                $ty::share_maintained_repo(self, target, viewer)
            }
            fn claim_signature(&self, signature: &str, expires_at: i64) -> Result<bool> {
                $ty::claim_signature(self, signature, expires_at)
            }
            fn insert_access_key(&self, user_id: i64, access_key: &str, secret_key: &str) -> Result<i64> {
                $ty::insert_access_key(self, user_id, access_key, secret_key)
            }
            fn access_key_owner(&self, access_key: &str) -> Result<Option<(User, String)>> {
                $ty::access_key_owner(self, access_key)
            }
            fn access_keys_of(&self, user_id: i64) -> Result<Vec<String>> {
                $ty::access_keys_of(self, user_id)
            }
            fn delete_access_key(&self, access_key: &str) -> Result<bool> {
                $ty::delete_access_key(self, access_key)
            }
            fn insert_submodule(&self, parent_id: i64, child_id: i64) -> Result<()> {
                $ty::insert_submodule(self, parent_id, child_id)
            }
            fn delete_submodule(&self, parent_id: i64, child_id: i64) -> Result<bool> {
                $ty::delete_submodule(self, parent_id, child_id)
            }
            fn submodule_ids(&self, parent_id: i64) -> Result<Vec<i64>> {
                $ty::submodule_ids(self, parent_id)
            }
            fn set_link_application(&self, repo_id: i64, key_id: i64, application: &str) -> Result<()> {
                $ty::set_link_application(self, repo_id, key_id, application)
            }
            fn link_application(&self, repo_id: i64, key_id: i64) -> Result<Option<String>> {
                $ty::link_application(self, repo_id, key_id)
            }
            fn list_namespaces(&self) -> Result<Vec<Namespace>> {
                $ty::list_namespaces(self)
            }
            fn namespace_roles(&self, namespace_id: i64, user_id: i64) -> Result<(bool, bool)> {
                $ty::namespace_roles(self, namespace_id, user_id)
            }
            fn namespace_key_ids(
                &self,
                namespace_id: i64,
                viewer: Option<i64>,
                offset: u64,
                limit: u32,
            ) -> Result<(Vec<i64>, u64)> {
                $ty::namespace_key_ids(self, namespace_id, viewer, offset, limit)
            }
            fn namespace_has_key(
                &self,
                namespace_id: i64,
                viewer: Option<i64>,
                key_id: i64,
            ) -> Result<bool> {
                $ty::namespace_has_key(self, namespace_id, viewer, key_id)
            }
            fn linked_key_by_sha256(&self, fingerprint: &str) -> Result<Option<DeployKey>> {
                $ty::linked_key_by_sha256(self, fingerprint)
            }
            fn login_keys(&self, repo_id: Option<i64>, after: i64, limit: u32) -> Result<Vec<DeployKey>> {
                $ty::login_keys(self, repo_id, after, limit)
            }
            fn touch_key_used(&self, key_id: i64, now: i64, fresh_after: i64) -> Result<bool> {
                $ty::touch_key_used(self, key_id, now, fresh_after)
            }
            fn token_by_id(&self, id: i64) -> Result<Option<(Token, User)>> {
                $ty::token_by_id(self, id)
            }
            fn insert_audit_event(&self, event: AuditEvent) -> Result<()> {
                $ty::insert_audit_event(self, event)
            }
            fn audit_event(&self, id: i64) -> Result<Option<AuditEvent>> {
                $ty::audit_event(self, id)
            }
            fn audit_events(&self, filter: &AuditFilter, offset: u64, limit: u32) -> Result<Vec<AuditEvent>> {
                $ty::audit_events(self, filter, offset, limit)
            }
            fn count_audit_events(&self, filter: &AuditFilter, upto: u64) -> Result<u64> {
                $ty::count_audit_events(self, filter, upto)
            }
            fn prune_audit_events(&self, before: i64) -> Result<u64> {
                $ty::prune_audit_events(self, before)
            }
        }
    };
}
pub(crate) use forward_queries;
