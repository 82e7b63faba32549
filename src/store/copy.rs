//! `keygate db copy`: every row of a SQLite database into an empty PostgreSQL one, ids and id counters kept.

/// How a column's values travel between the backends.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Int,
    /// An INTEGER column PostgreSQL stores as 32-bit (`deploy_keys.bits`).
    Int32,
    /// 0/1 in SQLite, BOOLEAN in PostgreSQL.
    Bool,
    Text,
    Blob,
}

/// One table, its columns in both schemas, and whether an id sequence counts its rows.
pub(crate) struct Table {
    pub name: &'static str,
    pub cols: &'static [(&'static str, Kind)],
    pub has_id_sequence: bool,
}

use Kind::*;

/// In an order the foreign keys accept (namespaces also need parents first; see `parents_first`).
pub(crate) const TABLES: &[Table] = &[
    Table {
        name: "users",
        cols: &[
            ("id", Int),
            ("username", Text),
            ("admin", Bool),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "tokens",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("hash", Blob),
            ("scope", Text),
            ("expires_at", Int),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "namespaces",
        cols: &[
            ("id", Int),
            ("parent_id", Int),
            ("name", Text),
            ("full_path", Text),
            ("uuid", Text),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "repositories",
        cols: &[
            ("id", Int),
            ("namespace_id", Int),
            ("name", Text),
            ("full_path", Text),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "memberships",
        cols: &[("repo_id", Int), ("user_id", Int), ("role", Text)],
        has_id_sequence: false,
    },
    Table {
        name: "deploy_keys",
        cols: &[
            ("id", Int),
            ("fingerprint_sha256", Text),
            ("fingerprint_md5", Text),
            ("key_text", Text),
            ("kind", Text),
            ("bits", Int32),
            ("title", Text),
            ("public", Bool),
            ("owner_id", Int),
            ("expires_at", Int),
            ("last_used_at", Int),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "key_links",
        cols: &[
            ("id", Int),
            ("repo_id", Int),
            ("key_id", Int),
            ("can_push", Bool),
            ("added_by", Int),
            ("created_at", Int),
            ("updated_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "access_keys",
        cols: &[
            ("id", Int),
            ("user_id", Int),
            ("access_key", Text),
            ("secret_key", Text),
            ("created_at", Int),
        ],
        has_id_sequence: true,
    },
    Table {
        name: "submodules",
        cols: &[("parent_id", Int), ("child_id", Int), ("created_at", Int)],
        has_id_sequence: false,
    },
    Table {
        name: "key_link_applications",
        cols: &[("repo_id", Int), ("key_id", Int), ("application", Text)],
        has_id_sequence: false,
    },
    Table {
        name: "used_signatures",
        cols: &[("signature", Text), ("expires_at", Int)],
        has_id_sequence: false,
    },
    Table {
        name: "audit_events",
        cols: &[
            ("id", Int),
            ("created_at", Int),
            ("actor_kind", Text),
            ("actor_id", Int),
            ("actor_name", Text),
            ("dialect", Text),
            ("method", Text),
            ("route", Text),
            ("request_id", Text),
            ("client_addr", Text),
            ("action", Text),
            ("repo_id", Int),
            ("repo_path", Text),
            ("key_id", Int),
            ("fingerprint", Text),
            ("user_id", Int),
            ("user_name", Text),
            ("details", Text),
        ],
        has_id_sequence: true,
    },
];

/// One column value on its way from one backend to the other.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Null,
    Int(i64),
    Bool(bool),
    Text(String),
    Blob(Vec<u8>),
}

/// Every row of a database, table by table in `TABLES` order, and each id sequence's high-water
/// mark (the largest id ever handed out, which may exceed the largest id left).
pub(crate) struct Snapshot {
    pub rows: Vec<Vec<Vec<Value>>>,
    pub high_water: Vec<(String, i64)>,
}

/// Puts every namespace after its parent: ids usually do, but nothing promises it.
pub(crate) fn parents_first(rows: Vec<Vec<Value>>) -> Vec<Vec<Value>> {
    let mut placed = std::collections::HashSet::new();
    let mut pending = rows;
    let mut out = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let before = pending.len();
        let mut rest = Vec::new();
        for row in pending {
            let ready = match &row[1] {
                Value::Int(parent) => placed.contains(parent),
                _ => true,
            };
            if ready {
                if let Value::Int(id) = row[0] {
                    placed.insert(id);
                }
                out.push(row);
            } else {
                rest.push(row);
            }
        }
        if rest.len() == before {
            // A cycle cannot pass SQLite's foreign keys; keep the rows and let the target refuse.
            out.extend(rest);
            break;
        }
        pending = rest;
    }
    out
}

/// What a copy moved: rows per table.
#[derive(Debug)]
pub struct CopyReport {
    pub tables: Vec<(&'static str, usize)>,
}

impl std::fmt::Display for CopyReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let total: usize = self.tables.iter().map(|(_, n)| n).sum();
        write!(f, "copied {total} rows:")?;
        for (name, n) in &self.tables {
            write!(f, " {name} {n}")?;
        }
        Ok(())
    }
}
