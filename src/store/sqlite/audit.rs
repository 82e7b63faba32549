//! SQLite SQL for the audit trail: the insert each change makes, the filtered lists, pruning.

use rusqlite::types::Value;
use rusqlite::{OptionalExtension, Row, params, params_from_iter};

use super::SqliteDb;
use crate::store::audit_filter::{self, Arg, Dialect};
use crate::store::{AuditEvent, AuditFilter, Scope, StoreError, Token, User};

type Result<T> = std::result::Result<T, StoreError>;

const COLS: &str = "id, created_at, actor_kind, actor_id, actor_name, dialect, method, route, \
     request_id, client_addr, action, repo_id, repo_path, key_id, fingerprint, user_id, user_name, details";

fn event_at(row: &Row) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        id: row.get(0)?,
        created_at: row.get(1)?,
        actor_kind: row.get(2)?,
        actor_id: row.get(3)?,
        actor_name: row.get(4)?,
        dialect: row.get(5)?,
        method: row.get(6)?,
        route: row.get(7)?,
        request_id: row.get(8)?,
        client_addr: row.get(9)?,
        action: row.get(10)?,
        repo_id: row.get(11)?,
        repo_path: row.get(12)?,
        key_id: row.get(13)?,
        fingerprint: row.get(14)?,
        user_id: row.get(15)?,
        user_name: row.get(16)?,
        details: row.get(17)?,
    })
}

const SQL: Dialect = Dialect {
    placeholder: |n| format!("?{n}"),
    path_is: "repo_path = ? COLLATE NOCASE",
    path_under: "lower(substr(repo_path, 1, ?)) = ?",
};

/// The WHERE clause of `filter` and its values, as rusqlite binds them.
fn conditions(filter: &AuditFilter) -> (String, Vec<Value>) {
    let (clause, args) = audit_filter::conditions(filter, &SQL);
    let values = args
        .into_iter()
        .map(|arg| match arg {
            Arg::Int(n) => Value::Integer(n),
            Arg::Text(text) => Value::Text(text),
        })
        .collect();
    (clause, values)
}

impl SqliteDb<'_> {
    pub(super) fn token_by_id(&self, id: i64) -> Result<Option<(Token, User)>> {
        Ok(self
            .conn()
            .prepare_cached(
                "SELECT t.id, t.user_id, t.scope, t.expires_at, t.created_at, u.username, u.admin, u.created_at \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = ?1",
            )?
            .query_row([id], |row| {
                let scope: String = row.get(2)?;
                let token = Token {
                    id: row.get(0)?,
                    user_id: row.get(1)?,
                    scope: if scope == "api" {
                        Scope::Api
                    } else {
                        Scope::ReadApi
                    },
                    expires_at: row.get(3)?,
                    created_at: row.get(4)?,
                };
                let user = User {
                    id: token.user_id,
                    username: row.get(5)?,
                    admin: row.get(6)?,
                    created_at: row.get(7)?,
                };
                Ok((token, user))
            })
            .optional()?)
    }

    /// Holds `event` until the writer's transaction commits (deferred_audit.rs), or inserts it
    /// at once on a connection that is not the writer's.
    pub(super) fn insert_audit_event(&self, event: AuditEvent) -> Result<()> {
        match self.audit {
            Some(deferred) => deferred.hold(std::iter::once(event)),
            None => insert_event(self.conn(), &event)?,
        }
        Ok(())
    }

    pub(super) fn insert_audit_events(&self, events: Vec<AuditEvent>) -> Result<()> {
        match self.audit {
            Some(deferred) => deferred.hold(events),
            None => {
                for event in &events {
                    insert_event(self.conn(), event)?;
                }
            }
        }
        Ok(())
    }

    pub(super) fn audit_event(&self, id: i64) -> Result<Option<AuditEvent>> {
        Ok(self
            .conn()
            .prepare_cached(&format!("SELECT {COLS} FROM audit_events WHERE id = ?1"))?
            .query_row([id], event_at)
            .optional()?)
    }

    pub(super) fn audit_events(
        &self,
        filter: &AuditFilter,
        offset: u64,
        limit: u32,
    ) -> Result<Vec<AuditEvent>> {
        let (clause, mut values) = conditions(filter);
        let order = if filter.oldest_first { "ASC" } else { "DESC" };
        let n = values.len();
        values.push(Value::Integer(i64::from(limit)));
        values.push(Value::Integer(i64::try_from(offset).unwrap_or(i64::MAX)));
        let mut stmt = self.conn().prepare_cached(&format!(
            "SELECT {COLS} FROM audit_events {clause} ORDER BY id {order} LIMIT ?{} + 0 OFFSET ?{} + 0",
            n + 1,
            n + 2
        ))?;
        let rows = stmt.query_map(params_from_iter(values), event_at)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub(super) fn count_audit_events(&self, filter: &AuditFilter, upto: u64) -> Result<u64> {
        let (clause, mut values) = conditions(filter);
        values.push(Value::Integer(i64::try_from(upto).unwrap_or(i64::MAX)));
        let n: i64 = self
            .conn()
            .prepare_cached(&format!(
                "SELECT COUNT(*) FROM (SELECT 1 FROM audit_events {clause} LIMIT ?{} + 0)",
                values.len()
            ))?
            .query_row(params_from_iter(values), |r| r.get(0))?;
        Ok(n.max(0) as u64)
    }

    pub(super) fn prune_audit_events(&self, before: i64) -> Result<u64> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM audit_events WHERE created_at < ?1")?
            .execute([before])? as u64)
    }
}

/// One record's INSERT.
pub(super) fn insert_event(conn: &rusqlite::Connection, e: &AuditEvent) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO audit_events (created_at, actor_kind, actor_id, actor_name, dialect, method, \
             route, request_id, client_addr, action, repo_id, repo_path, key_id, fingerprint, \
             user_id, user_name, details) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17)",
    )?
    .execute(params![
        e.created_at,
        e.actor_kind,
        e.actor_id,
        e.actor_name,
        e.dialect,
        e.method,
        e.route,
        e.request_id,
        e.client_addr,
        e.action,
        e.repo_id,
        e.repo_path,
        e.key_id,
        e.fingerprint,
        e.user_id,
        e.user_name,
        e.details
    ])?;
    Ok(())
}
