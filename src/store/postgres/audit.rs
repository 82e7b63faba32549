//! PostgreSQL SQL for the audit trail, mirroring the SQLite module.

use postgres::Row;
use postgres::types::ToSql;

use super::{PgDb, Result};
use crate::store::audit_filter::{self, Arg, Dialect};
use crate::store::{AuditEvent, AuditFilter, Scope, Token, User};

const COLS: &str = "id, created_at, actor_kind, actor_id, actor_name, dialect, method, route, \
     request_id, client_addr, action, repo_id, repo_path, key_id, fingerprint, user_id, user_name, details";

type Param = Box<dyn ToSql + Sync>;

fn event_at(row: &Row) -> AuditEvent {
    AuditEvent {
        id: row.get(0),
        created_at: row.get(1),
        actor_kind: row.get(2),
        actor_id: row.get(3),
        actor_name: row.get(4),
        dialect: row.get(5),
        method: row.get(6),
        route: row.get(7),
        request_id: row.get(8),
        client_addr: row.get(9),
        action: row.get(10),
        repo_id: row.get(11),
        repo_path: row.get(12),
        key_id: row.get(13),
        fingerprint: row.get(14),
        user_id: row.get(15),
        user_name: row.get(16),
        details: row.get(17),
    }
}

const SQL: Dialect = Dialect {
    placeholder: |n| format!("${n}"),
    path_is: "lower(repo_path) = lower(?::text)",
    path_under: "lower(substr(repo_path, 1, ?::bigint::int)) = ?::text",
};

/// The WHERE clause of `filter` and its values, as the driver binds them.
fn conditions(filter: &AuditFilter) -> (String, Vec<Param>) {
    let (clause, args) = audit_filter::conditions(filter, &SQL);
    let values = args
        .into_iter()
        .map(|arg| -> Param {
            match arg {
                Arg::Int(n) => Box::new(n),
                Arg::Text(text) => Box::new(text),
            }
        })
        .collect();
    (clause, values)
}

fn refs(values: &[Param]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|p| p.as_ref()).collect()
}

impl PgDb<'_> {
    pub(super) fn token_by_id(&self, id: i64) -> Result<Option<(Token, User)>> {
        Ok(self
            .opt(
                "SELECT t.id, t.user_id, t.scope, t.expires_at, t.created_at, u.username, u.admin, u.created_at \
                 FROM tokens t JOIN users u ON u.id = t.user_id WHERE t.id = $1",
                &[&id],
            )?
            .map(|row| {
                let scope: &str = row.get(2);
                let token = Token {
                    id: row.get(0),
                    user_id: row.get(1),
                    scope: if scope == "api" {
                        Scope::Api
                    } else {
                        Scope::ReadApi
                    },
                    expires_at: row.get(3),
                    created_at: row.get(4),
                };
                let user = User {
                    id: token.user_id,
                    username: row.get(5),
                    admin: row.get(6),
                    created_at: row.get(7),
                };
                (token, user)
            }))
    }

    pub(super) fn insert_audit_event(&self, e: AuditEvent) -> Result<()> {
        self.exec(
                "INSERT INTO audit_events (created_at, actor_kind, actor_id, actor_name, dialect, method, \
                 route, request_id, client_addr, action, repo_id, repo_path, key_id, fingerprint, \
                 user_id, user_name, details) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
                &[
                    &e.created_at,
                    &e.actor_kind,
                    &e.actor_id,
                    &e.actor_name,
                    &e.dialect,
                    &e.method,
                    &e.route,
                    &e.request_id,
                    &e.client_addr,
                    &e.action,
                    &e.repo_id,
                    &e.repo_path,
                    &e.key_id,
                    &e.fingerprint,
                    &e.user_id,
                    &e.user_name,
                    &e.details,
                ],
            )?;
        Ok(())
    }

    /// One INSERT of every event, each column sent as one array.
    pub(super) fn insert_audit_events(&self, events: &[AuditEvent]) -> Result<()> {
        let text = |f: fn(&AuditEvent) -> &str| events.iter().map(f).collect::<Vec<_>>();
        let maybe = |f: fn(&AuditEvent) -> Option<&str>| events.iter().map(f).collect::<Vec<_>>();
        let id = |f: fn(&AuditEvent) -> Option<i64>| events.iter().map(f).collect::<Vec<_>>();
        let created: Vec<i64> = events.iter().map(|e| e.created_at).collect();
        self.exec(
            "INSERT INTO audit_events (created_at, actor_kind, actor_id, actor_name, dialect, method, \
             route, request_id, client_addr, action, repo_id, repo_path, key_id, fingerprint, \
             user_id, user_name, details) \
             SELECT * FROM unnest($1::int8[], $2::text[], $3::int8[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::int8[], \
             $12::text[], $13::int8[], $14::text[], $15::int8[], $16::text[], $17::text[])",
            &[
                &created,
                &text(|e| &e.actor_kind),
                &id(|e| e.actor_id),
                &text(|e| &e.actor_name),
                &maybe(|e| e.dialect.as_deref()),
                &maybe(|e| e.method.as_deref()),
                &maybe(|e| e.route.as_deref()),
                &maybe(|e| e.request_id.as_deref()),
                &maybe(|e| e.client_addr.as_deref()),
                &text(|e| &e.action),
                &id(|e| e.repo_id),
                &maybe(|e| e.repo_path.as_deref()),
                &id(|e| e.key_id),
                &maybe(|e| e.fingerprint.as_deref()),
                &id(|e| e.user_id),
                &maybe(|e| e.user_name.as_deref()),
                &text(|e| &e.details),
            ],
        )?;
        Ok(())
    }

    pub(super) fn audit_event(&self, id: i64) -> Result<Option<AuditEvent>> {
        Ok(self
            .opt(
                &format!("SELECT {COLS} FROM audit_events WHERE id = $1"),
                &[&id],
            )?
            .map(|r| event_at(&r)))
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
        values.push(Box::new(i64::from(limit)));
        values.push(Box::new(i64::try_from(offset).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT {COLS} FROM audit_events {clause} ORDER BY id {order} LIMIT ${} OFFSET ${}",
            n + 1,
            n + 2
        );
        Ok(self
            .rows(&sql, &refs(&values))?
            .iter()
            .map(event_at)
            .collect())
    }

    pub(super) fn count_audit_events(&self, filter: &AuditFilter, upto: u64) -> Result<u64> {
        let (clause, mut values) = conditions(filter);
        values.push(Box::new(i64::try_from(upto).unwrap_or(i64::MAX)));
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM audit_events {clause} LIMIT ${}) AS page",
            values.len()
        );
        let n: i64 = self.one(&sql, &refs(&values))?.get(0);
        Ok(n.max(0) as u64)
    }

    pub(super) fn prune_audit_events(&self, before: i64) -> Result<u64> {
        self.exec("DELETE FROM audit_events WHERE created_at < $1", &[&before])
    }
}
