//! Groups, CodeArts projects and submodules: deploy-key rules that span more than one repository.

use super::audit::{Actor, Change, record};
use super::{
    Added, Core, Denied, DeployKey, Error, Field, LinkedKey, Missing, Namespace, Paged,
    ParsedSubmission, Principal, Problem, PublicKey, RepoRef, Repository, Result, Reuse, Window,
    managed_repo, require_write,
};
use crate::store::{Db, now_ms};
use serde_json::json;

impl Core {
    /// `add_key` (joining an existing key, as GitLab does) that also keeps the client's
    /// `application` label with the new link. A key already on the repository is returned as
    /// `Added::Existing` with its label untouched.
    pub fn add_key_with_application(
        &self,
        who: &Principal,
        repo: &RepoRef,
        submission: &ParsedSubmission,
        application: &str,
    ) -> Result<(LinkedKey, Added)> {
        require_write(who)?;
        // One transaction: the label is never missing from a link that was acknowledged.
        self.write(|db| {
            let (linked, added) = self.add_key_in(db, who, repo, submission, Reuse::Join)?;
            // Judged even when the label would be ignored, so a request is refused or accepted
            // whatever the key's history; returning the error rolls the link back.
            if !super::text::is_safe(application) {
                return Err(Error::invalid(
                    Field::Application,
                    Problem::Format(super::text::SAFE_TEXT),
                ));
            }
            if added != Added::Existing {
                db.set_link_application(linked.repo_id, linked.key.id, application)?;
            }
            Ok((linked, added))
        })
    }

    /// Whether this exact key (by SHA256 fingerprint) is a deploy key of the repository.
    pub fn repo_has_key(&self, who: &Principal, repo: &RepoRef, key_text: &str) -> Result<bool> {
        self.store.read(|db| {
            // Who may ask comes first: a stranger learns nothing about the key from the answer.
            let repo = managed_repo(db, who, repo)?;
            let parsed = PublicKey::parse(key_text, &self.policy)?;
            Ok(match db.key_by_sha256(parsed.sha256())? {
                Some(key) => db.linked_key(repo.id, key.id)?.is_some(),
                None => false,
            })
        })
    }

    /// Distinct keys on the repositories of a namespace and its subgroups that the caller manages.
    pub fn group_keys(
        &self,
        who: &Principal,
        group_id: i64,
        window: Window,
    ) -> Result<Paged<DeployKey>> {
        self.store.read(|db| {
            let namespace = db.namespace_by_id(group_id)?;
            namespace_keys(db, who, namespace, window)
        })
    }

    /// `group_keys` for a top-level namespace named by its 32-hex uuid (a CodeArts "project").
    pub fn project_keys(
        &self,
        who: &Principal,
        uuid: &str,
        window: Window,
    ) -> Result<Paged<DeployKey>> {
        let uuid = uuid.to_ascii_lowercase();
        self.store.read(|db| {
            let namespace = db
                .namespace_by_uuid(&uuid)?
                .filter(|ns| ns.parent_id.is_none());
            namespace_keys(db, who, namespace, window)
        })
    }

    /// Whether this exact key is a deploy key of any repository in the namespace or its
    /// subgroups that the caller manages.
    pub fn group_has_key(&self, who: &Principal, group_id: i64, key_text: &str) -> Result<bool> {
        self.store.read(|db| {
            let namespace = db.namespace_by_id(group_id)?;
            let (namespace, viewer) = super::managed_namespace(db, who, namespace)?;
            let parsed = PublicKey::parse(key_text, &self.policy)?;
            Ok(match db.key_by_sha256(parsed.sha256())? {
                Some(key) => db.namespace_has_key(namespace.id, viewer, key.id)?,
                None => false,
            })
        })
    }

    /// Attaches a key of the repository to each of its submodules with the repository's push
    /// permission (updating a submodule that has the key with another). All or nothing: the
    /// caller must manage every submodule. Returns how many submodules changed.
    pub fn sync_key_to_submodules(
        &self,
        who: &Principal,
        repo: &RepoRef,
        key_id: i64,
    ) -> Result<usize> {
        require_write(who)?;
        self.write(|db| {
            let (parent, children) = parent_and_children(db, who, repo)?;
            let linked = db
                .linked_key(parent.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))?;
            let mut changed = 0;
            for child in &children {
                let before = match db.linked_key(child.id, key_id)? {
                    None => {
                        db.insert_link(
                            child.id,
                            key_id,
                            linked.can_push,
                            Some(who.user.id),
                            now_ms(),
                        )?;
                        json!(null)
                    }
                    Some(there) if there.can_push != linked.can_push => {
                        db.set_can_push(child.id, key_id, linked.can_push)?;
                        json!({"can_push": there.can_push})
                    }
                    Some(_) => continue,
                };
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.sync",
                        Some(child),
                        &linked.key,
                        json!({
                            "parent": parent.full_path,
                            "before": before,
                            "after": {"can_push": linked.can_push},
                        }),
                    ),
                )?;
                changed += 1;
            }
            Ok(changed)
        })
    }

    /// Detaches a key of the repository from each of its submodules; the repository keeps it.
    /// All or nothing, like `sync_key_to_submodules`. Returns how many submodules had it.
    pub fn remove_key_from_submodules(
        &self,
        who: &Principal,
        repo: &RepoRef,
        key_id: i64,
    ) -> Result<usize> {
        require_write(who)?;
        self.write(|db| {
            let (parent, children) = parent_and_children(db, who, repo)?;
            let linked = db
                .linked_key(parent.id, key_id)?
                .ok_or(Error::NotFound(Missing::Key))?;
            let mut removed = 0;
            for child in &children {
                let Some(there) = db.linked_key(child.id, key_id)? else {
                    continue;
                };
                db.delete_link(child.id, key_id)?;
                record(
                    db,
                    Actor::User(who),
                    Change::on_key(
                        "deploy_key.unsync",
                        Some(child),
                        &linked.key,
                        json!({
                            "parent": parent.full_path,
                            "before": {"can_push": there.can_push},
                        }),
                    ),
                )?;
                removed += 1;
            }
            Ok(removed)
        })
    }

    // ---- operator actions (admin CLI) ----

    /// Declares `child` a submodule of `parent` (both paths); declaring it twice changes nothing.
    pub fn add_submodule(&self, parent: &str, child: &str) -> Result<()> {
        self.store.write(|db| {
            let (parent, child) = repo_pair(db, parent, child)?;
            if parent.id == child.id {
                return Err(Error::invalid(
                    Field::Path,
                    Problem::Format("a repository other than the parent"),
                ));
            }
            db.insert_submodule(parent.id, child.id)?;
            record(
                db,
                Actor::Cli,
                Change {
                    action: "submodule.add",
                    repo: Some(&parent),
                    details: json!({"child": child.full_path, "child_id": child.id}),
                    ..Change::default()
                },
            )
        })
    }

    /// Removes a submodule declaration; keys already synced to the child stay there.
    pub fn remove_submodule(&self, parent: &str, child: &str) -> Result<()> {
        self.store.write(|db| {
            let (parent, child) = repo_pair(db, parent, child)?;
            if db.delete_submodule(parent.id, child.id)? {
                record(
                    db,
                    Actor::Cli,
                    Change {
                        action: "submodule.remove",
                        repo: Some(&parent),
                        details: json!({"child": child.full_path, "child_id": child.id}),
                        ..Change::default()
                    },
                )?;
            }
            Ok(())
        })
    }

    pub fn submodules(&self, parent: &str) -> Result<Vec<Repository>> {
        self.store.read(|db| {
            let parent = db
                .repo_by_path(parent)?
                .ok_or(Error::NotFound(Missing::Repository))?;
            repos_by_id(db, &db.submodule_ids(parent.id)?)
        })
    }

    pub fn namespaces(&self) -> Result<Vec<Namespace>> {
        self.store.read(|db| Ok(db.list_namespaces()?))
    }
}

fn namespace_keys(
    db: &Db,
    who: &Principal,
    namespace: Option<Namespace>,
    window: Window,
) -> Result<Paged<DeployKey>> {
    let (namespace, viewer) = super::managed_namespace(db, who, namespace)?;
    let (ids, total) = db.namespace_key_ids(namespace.id, viewer, window.offset, window.limit)?;
    let mut items = Vec::with_capacity(ids.len());
    for id in ids {
        // Read in the same snapshot as the ids, so a key cannot vanish in between.
        items.push(
            db.key_by_id(id)?
                .ok_or_else(|| Error::Internal("listed key vanished".into()))?,
        );
    }
    Ok(Paged { items, total })
}

/// The repository (which the caller must manage) and its submodules (each of which they must
/// manage too: a submodule they cannot manage is forbidden, not hidden, since its parent names it).
fn parent_and_children(
    db: &Db,
    who: &Principal,
    repo: &RepoRef,
) -> Result<(Repository, Vec<Repository>)> {
    let parent = managed_repo(db, who, repo)?;
    let ids = db.submodule_ids(parent.id)?;
    let mut children = Vec::with_capacity(ids.len());
    for id in ids {
        match managed_repo(db, who, &RepoRef::Id(id)) {
            Ok(child) => children.push(child),
            Err(Error::NotFound(Missing::Repository)) => {
                return Err(Error::Forbidden(Denied::NotMaintainer));
            }
            Err(other) => return Err(other),
        }
    }
    Ok((parent, children))
}

fn repo_pair(db: &Db, parent: &str, child: &str) -> Result<(Repository, Repository)> {
    let find = |path: &str| {
        db.repo_by_path(path)?
            .ok_or(Error::NotFound(Missing::Repository))
    };
    Ok((find(parent)?, find(child)?))
}

fn repos_by_id(db: &Db, ids: &[i64]) -> Result<Vec<Repository>> {
    ids.iter()
        .map(|&id| {
            db.repo_by_id(id)?
                .ok_or_else(|| Error::Internal("submodule vanished".into()))
        })
        .collect()
}
