//! The WHERE clause of an audit list, built once for both backends from the clauses each writes its own way.

use super::AuditFilter;

/// A value bound to one placeholder of the clause.
pub(crate) enum Arg {
    Int(i64),
    Text(String),
}

/// What differs between the backends' SQL for the same filter.
pub(crate) struct Dialect {
    /// The placeholder of the n-th value, counting from 1 (`?n` or `$n`).
    pub placeholder: fn(usize) -> String,
    /// `repo_path` equals one value, in any case.
    pub path_is: &'static str,
    /// `repo_path` begins with a prefix of the given length, lower-cased: two values.
    pub path_under: &'static str,
}

/// The WHERE clause of `filter` and its values: only the filters given, so each shape of list is
/// its own statement and can use its index. Empty when nothing filters.
pub(crate) fn conditions(filter: &AuditFilter, dialect: &Dialect) -> (String, Vec<Arg>) {
    let mut sql: Vec<String> = Vec::new();
    let mut values: Vec<Arg> = Vec::new();
    // Each `?` of a clause takes the next value, numbered as the backend numbers them.
    let mut push = |clause: &str, given: Vec<Arg>| {
        let mut text = String::new();
        for (i, part) in clause.split('?').enumerate() {
            if i > 0 {
                text.push_str(&(dialect.placeholder)(values.len() + i));
            }
            text.push_str(part);
        }
        values.extend(given);
        sql.push(text);
    };
    if let Some(id) = filter.repo_id {
        push("repo_id = ?", vec![Arg::Int(id)]);
    }
    if let Some(path) = &filter.repo_path {
        push(dialect.path_is, vec![Arg::Text(path.clone())]);
    }
    if let Some(under) = &filter.under {
        // Paths are ASCII, so lower() folds case as a case-blind comparison does.
        let prefix = format!("{}/", under.to_ascii_lowercase());
        let len = prefix.len() as i64;
        push(dialect.path_under, vec![Arg::Int(len), Arg::Text(prefix)]);
    }
    if let Some(user) = filter.maintained_by {
        push(
            "repo_id IN (SELECT repo_id FROM memberships WHERE user_id = ? AND role = 'maintainer')",
            vec![Arg::Int(user)],
        );
    }
    if let Some(user) = filter.user_id {
        push("user_id = ?", vec![Arg::Int(user)]);
    }
    if let Some(since) = filter.since {
        push("created_at >= ?", vec![Arg::Int(since)]);
    }
    if let Some(until) = filter.until {
        push("created_at <= ?", vec![Arg::Int(until)]);
    }
    let clause = if sql.is_empty() {
        String::new()
    } else {
        format!("WHERE {}", sql.join(" AND "))
    };
    (clause, values)
}
