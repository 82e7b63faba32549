//! The audit trail: every change recorded with who, from where and on what, in the change's own
//! write transaction, so a refused or rolled-back change leaves no record.

use std::sync::{Arc, OnceLock};

use serde_json::{Value, json};

use super::{
    Core, DeployKey, Error, GroupRef, Missing, Paged, Principal, RepoRef, Repository, Result, User,
    Window, managed_repo, require_admin,
};
use crate::store::{AuditEvent, AuditFilter, Db, now_ms};

/// Where a request came from, as the HTTP layer saw it. Built only for requests that may change
/// something, so reads pay nothing for it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origin {
    /// `gitlab`, `github` or `codearts`.
    pub dialect: &'static str,
    pub method: String,
    /// The route template, never the raw path: the concrete target is in the record's fields.
    pub route: String,
    pub request_id: String,
    /// The peer's IP address (behind a proxy, the proxy's).
    pub client_addr: Option<String>,
}

/// Who made a change.
pub(super) enum Actor<'a> {
    /// A dialect's authenticated caller.
    User(&'a Principal),
    /// The admin CLI, run by an OS user.
    Cli,
    /// The gateway itself (retention pruning).
    System,
}

/// What changed; the actor and the origin are added by `record`.
#[derive(Default)]
pub(super) struct Change<'a> {
    pub action: &'static str,
    pub repo: Option<&'a Repository>,
    pub key: Option<&'a DeployKey>,
    pub user: Option<&'a User>,
    pub details: Value,
}

impl<'a> Change<'a> {
    /// A change to `key`, on `repo` when it concerns one repository.
    pub(super) fn on_key(
        action: &'static str,
        repo: Option<&'a Repository>,
        key: &'a DeployKey,
        details: Value,
    ) -> Change<'a> {
        Change {
            action,
            repo,
            key: Some(key),
            details,
            ..Change::default()
        }
    }

    /// A change to `user`'s account, tokens or access keys.
    pub(super) fn on_user(action: &'static str, user: &'a User, details: Value) -> Change<'a> {
        Change {
            action,
            user: Some(user),
            details,
            ..Change::default()
        }
    }
}

/// The OS user running this process, for records the admin CLI writes: the name of the real
/// uid's passwd entry, else `$USER`, else the uid itself.
pub fn os_user() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| {
        // SAFETY: getuid cannot fail; getpwuid returns NULL or a pointer to a static entry whose
        // name is a NUL-terminated string, copied out at once (this runs once, under OnceLock).
        let uid = unsafe { libc::getuid() };
        let from_passwd = unsafe {
            let entry = libc::getpwuid(uid);
            if entry.is_null() || (*entry).pw_name.is_null() {
                None
            } else {
                Some(
                    std::ffi::CStr::from_ptr((*entry).pw_name)
                        .to_string_lossy()
                        .into_owned(),
                )
            }
        };
        from_passwd
            .filter(|n| !n.is_empty())
            .or_else(|| std::env::var("USER").ok().filter(|n| !n.is_empty()))
            .unwrap_or_else(|| format!("uid {uid}"))
    })
}

/// Writes one record of `change` inside the caller's write transaction.
pub(super) fn record(db: &Db, actor: Actor<'_>, change: Change<'_>) -> Result<()> {
    db.insert_audit_event(event(actor, change))?;
    Ok(())
}

/// The record of `change` by `actor`, for `record` or for writing many at once.
pub(super) fn event(actor: Actor<'_>, change: Change<'_>) -> AuditEvent {
    let mut event = AuditEvent {
        created_at: now_ms(),
        action: change.action.to_string(),
        repo_id: change.repo.map(|r| r.id),
        repo_path: change.repo.map(|r| r.full_path.clone()),
        key_id: change.key.map(|k| k.id),
        fingerprint: change.key.map(|k| k.fingerprint_sha256.to_string()),
        user_id: change.user.map(|u| u.id),
        user_name: change.user.map(|u| u.username.clone()),
        details: if change.details.is_null() {
            "{}".to_string()
        } else {
            change.details.to_string()
        },
        ..AuditEvent::default()
    };
    match actor {
        Actor::User(who) => {
            event.actor_kind = "user".into();
            event.actor_id = Some(who.user.id);
            event.actor_name = who.user.username.clone();
            if let Some(origin) = &who.origin {
                event.dialect = Some(origin.dialect.to_string());
                event.method = Some(origin.method.clone());
                event.route = Some(origin.route.clone());
                event.request_id = Some(origin.request_id.clone());
                event.client_addr = origin.client_addr.clone();
            }
        }
        Actor::Cli => {
            event.actor_kind = "cli".into();
            event.actor_name = os_user().to_string();
            event.dialect = Some("cli".into());
        }
        Actor::System => {
            event.actor_kind = "system".into();
            event.actor_name = "keygate".into();
        }
    }
    event
}

/// Whose audit events a list reads.
#[derive(Debug, Clone)]
pub enum AuditScope {
    /// Every event (admins only).
    Instance,
    /// One repository's (its maintainers and admins).
    Project(RepoRef),
    /// The repositories under a namespace that the caller maintains (all of them, for an admin).
    Group(GroupRef),
}

impl Principal {
    /// This caller, with where its request came from (for the audit trail).
    pub fn from_origin(mut self, origin: Option<Arc<Origin>>) -> Principal {
        self.origin = origin;
        self
    }
}

impl Core {
    /// A page of audit events, newest first, within `filter`'s dates (and target user); its
    /// total counted no further than `count_to`.
    pub fn audit_events(
        &self,
        who: &Principal,
        scope: &AuditScope,
        mut filter: AuditFilter,
        window: Window,
        count_to: u64,
    ) -> Result<Paged<AuditEvent>> {
        self.store.read(|db| {
            scoped(db, who, scope, &mut filter)?;
            Ok(Paged {
                items: db.audit_events(&filter, window.offset, window.limit)?,
                total: db.count_audit_events(&filter, count_to)?,
            })
        })
    }

    /// One audit event, if it lies within `scope` for this caller.
    pub fn audit_event(&self, who: &Principal, scope: &AuditScope, id: i64) -> Result<AuditEvent> {
        self.store.read(|db| {
            let mut filter = AuditFilter::default();
            scoped(db, who, scope, &mut filter)?;
            let event = db
                .audit_event(id)?
                .ok_or(Error::NotFound(Missing::AuditEvent))?;
            if in_filter(db, &event, &filter)? {
                Ok(event)
            } else {
                Err(Error::NotFound(Missing::AuditEvent))
            }
        })
    }

    /// Audit events for the admin CLI, oldest first, every page of them.
    pub fn audit_log(&self, filter: &AuditFilter, window: Window) -> Result<Vec<AuditEvent>> {
        let filter = AuditFilter {
            oldest_first: true,
            ..filter.clone()
        };
        self.store
            .read(|db| Ok(db.audit_events(&filter, window.offset, window.limit)?))
    }

    /// Deletes the audit events older than `cutoff` (milliseconds) and records that it did, in
    /// the same transaction; returns how many went. Nothing to delete records nothing.
    pub fn prune_audit(&self, cutoff: i64) -> Result<u64> {
        self.store.write(|db| {
            let count = db.prune_audit_events(cutoff)?;
            if count > 0 {
                record(
                    db,
                    Actor::System,
                    Change {
                        action: "audit.prune",
                        details: json!({"count": count, "cutoff": cutoff}),
                        ..Change::default()
                    },
                )?;
            }
            Ok(count)
        })
    }
}

/// Narrows `filter` to what `who` may read of `scope`, refusing as the scope's resource does.
fn scoped(db: &Db, who: &Principal, scope: &AuditScope, filter: &mut AuditFilter) -> Result<()> {
    match scope {
        AuditScope::Instance => require_admin(who),
        AuditScope::Project(repo) => {
            filter.repo_id = Some(managed_repo(db, who, repo)?.id);
            Ok(())
        }
        AuditScope::Group(group) => {
            let (namespace, viewer) =
                super::managed_namespace(db, who, super::find_namespace(db, group)?)?;
            filter.under = Some(namespace.full_path);
            filter.maintained_by = viewer;
            Ok(())
        }
    }
}

/// Whether a single event passes the scope's filter (for `GET …/audit_events/:id`).
fn in_filter(db: &Db, event: &AuditEvent, filter: &AuditFilter) -> Result<bool> {
    if filter.repo_id.is_some() && event.repo_id != filter.repo_id {
        return Ok(false);
    }
    if let Some(under) = &filter.under {
        let prefix = format!("{}/", under.to_ascii_lowercase());
        let path = event.repo_path.as_deref().unwrap_or_default();
        if !path.to_ascii_lowercase().starts_with(&prefix) {
            return Ok(false);
        }
    }
    if let Some(user) = filter.maintained_by {
        let Some(repo) = event.repo_id else {
            return Ok(false);
        };
        if db.role_of(repo, user)? != Some(super::Role::Maintainer) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// One line of `keygate audit list`: time, actor, action, target.
pub fn text_line(e: &AuditEvent) -> String {
    let actor = format!("{}:{}", e.actor_kind, e.actor_name);
    let mut target = Vec::new();
    if let Some(path) = &e.repo_path {
        target.push(path.clone());
    }
    if let Some(id) = e.key_id {
        target.push(format!("key={id}"));
    }
    if let Some(fp) = &e.fingerprint {
        target.push(fp.clone());
    }
    if let Some(user) = &e.user_name {
        target.push(format!("user={user}"));
    }
    let target = if target.is_empty() {
        "-".to_string()
    } else {
        target.join(" ")
    };
    format!("{} {actor} {} {target}", iso(e.created_at), e.action)
}

/// One JSON line of `keygate audit list --json`: every column, `details` as an object.
pub fn json_line(e: &AuditEvent) -> String {
    let details: Value = serde_json::from_str(&e.details).unwrap_or(Value::Null);
    json!({
        "id": e.id,
        "created_at": iso(e.created_at),
        "actor": {"kind": e.actor_kind, "id": e.actor_id, "name": e.actor_name},
        "dialect": e.dialect,
        "method": e.method,
        "route": e.route,
        "request_id": e.request_id,
        "client_addr": e.client_addr,
        "action": e.action,
        "repo_id": e.repo_id,
        "repo_path": e.repo_path,
        "key_id": e.key_id,
        "fingerprint": e.fingerprint,
        "user_id": e.user_id,
        "user_name": e.user_name,
        "details": details,
    })
    .to_string()
}

/// `2024-10-03T01:32:21.992Z`, the CLI's (and GitLab's) time format.
fn iso(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default()
}

/// Prints the audit log `filter` selects to stdout, a page at a time (the log may be long).
pub fn print_log(core: &Core, filter: &AuditFilter, as_json: bool) -> Result<()> {
    use std::io::Write;
    const PAGE: u32 = 1000;
    let mut out = std::io::stdout().lock();
    let mut offset = 0u64;
    loop {
        let page = core.audit_log(
            filter,
            Window {
                offset,
                limit: PAGE,
            },
        )?;
        for event in &page {
            let line = if as_json {
                json_line(event)
            } else {
                text_line(event)
            };
            // A closed pipe (`| head`) ends the listing; it is not an error of ours.
            if writeln!(out, "{line}").is_err() {
                return Ok(());
            }
        }
        if page.len() < PAGE as usize {
            return Ok(());
        }
        offset += u64::from(PAGE);
    }
}
