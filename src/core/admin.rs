//! Operator actions behind the admin CLI: users, tokens, repositories and membership.

use super::audit::{Actor, Change, record};
use super::{Core, Error, Field, Missing, Problem, Repository, Result, Role, Scope, Token, User};
use crate::auth;
use serde_json::json;

/// Longest repository or namespace path accepted, in characters.
const MAX_PATH_CHARS: usize = 1024;

impl Core {
    pub fn add_user(&self, username: &str, admin: bool) -> Result<i64> {
        check_name(username, Field::Username)?;
        self.store.write(|db| {
            let id = db.insert_user(username, admin)?;
            let user = db
                .user_by_id(id)?
                .ok_or_else(|| Error::Internal("user vanished inside its transaction".into()))?;
            record(
                db,
                Actor::Cli,
                Change::on_user("user.add", &user, json!({"after": {"admin": admin}})),
            )?;
            Ok(id)
        })
    }

    pub fn users(&self) -> Result<Vec<User>> {
        self.store.read(|db| Ok(db.list_users()?))
    }

    /// Deletes a user and their tokens; keys they added stay where they are attached.
    pub fn remove_user(&self, username: &str) -> Result<()> {
        self.store.write(|db| {
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            db.delete_user(user.id)?;
            record(
                db,
                Actor::Cli,
                Change::on_user(
                    "user.remove",
                    &user,
                    json!({"before": {"admin": user.admin}}),
                ),
            )
        })
    }

    /// Creates a personal token and returns it: the only time it is ever visible.
    pub fn add_token(
        &self,
        username: &str,
        scope: Scope,
        expires_at: Option<i64>,
    ) -> Result<String> {
        let token = auth::new_token();
        let hash = auth::token_hash(&token);
        self.store.write(|db| {
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            let id = db.insert_token(user.id, &hash, scope, expires_at)?;
            record(
                db,
                Actor::Cli,
                Change::on_user(
                    "token.issue",
                    &user,
                    json!({"token_id": id, "scope": scope.as_str(), "expires_at": expires_at}),
                ),
            )
        })?;
        Ok(token)
    }

    pub fn tokens(&self, username: &str) -> Result<Vec<Token>> {
        self.store.read(|db| {
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            Ok(db.list_tokens(user.id)?)
        })
    }

    pub fn revoke_token(&self, id: i64) -> Result<()> {
        self.store.write(|db| {
            let (token, user) = db.token_by_id(id)?.ok_or(Error::NotFound(Missing::Token))?;
            db.delete_token(id)?;
            record(
                db,
                Actor::Cli,
                Change::on_user(
                    "token.revoke",
                    &user,
                    json!({"token_id": id, "scope": token.scope.as_str()}),
                ),
            )
        })
    }

    /// Creates a repository at `namespace[/subgroup…]/name`, creating missing namespaces.
    pub fn add_repo(&self, path: &str, id: Option<i64>) -> Result<i64> {
        let segments = split_path(path)?;
        if segments.len() < 2 {
            return Err(Error::invalid(
                Field::Path,
                Problem::Format("namespace/name"),
            ));
        }
        if let Some(id) = id
            && !(1..=i64::from(i32::MAX)).contains(&id)
        {
            return Err(Error::invalid(
                Field::Id,
                Problem::Format("an integer from 1 to 2147483647"),
            ));
        }
        let (name, namespaces) = segments.split_last().expect("at least two segments");
        self.store.write(|db| {
            let mut parent: Option<i64> = None;
            let mut created = Vec::new();
            for depth in 0..namespaces.len() {
                let full = namespaces[..=depth].join("/");
                parent = Some(match db.namespace_by_path(&full)? {
                    Some(ns) => ns.id,
                    None => {
                        let uuid = hex::encode(auth::random_bytes::<16>());
                        created.push(full.clone());
                        db.insert_namespace(parent, namespaces[depth], &full, &uuid)?
                    }
                });
            }
            let namespace_id = parent.expect("at least one namespace");
            let repo_id = db.insert_repo(id, namespace_id, name, &segments.join("/"))?;
            let repo = db.repo_by_id(repo_id)?.ok_or_else(|| {
                Error::Internal("repository vanished inside its transaction".into())
            })?;
            record(
                db,
                Actor::Cli,
                Change {
                    action: "repository.add",
                    repo: Some(&repo),
                    details: json!({"namespaces_created": created}),
                    ..Change::default()
                },
            )?;
            Ok(repo_id)
        })
    }

    pub fn repos(&self) -> Result<Vec<Repository>> {
        self.store.read(|db| Ok(db.list_repos()?))
    }

    /// Deletes a repository and its key links; keys left private and unused go with it.
    pub fn remove_repo(&self, path: &str) -> Result<()> {
        self.store.write(|db| {
            let repo = db
                .repo_by_path(path)?
                .ok_or(Error::NotFound(Missing::Repository))?;
            let keys = db.count_linked_keys(repo.id, u64::MAX)?;
            db.delete_repo(repo.id)?;
            record(
                db,
                Actor::Cli,
                Change {
                    action: "repository.remove",
                    repo: Some(&repo),
                    details: json!({"keys_detached": keys}),
                    ..Change::default()
                },
            )
        })
    }

    pub fn grant(&self, path: &str, username: &str, role: Role) -> Result<()> {
        self.store.write(|db| {
            let repo = db
                .repo_by_path(path)?
                .ok_or(Error::NotFound(Missing::Repository))?;
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            let before = db.role_of(repo.id, user.id)?;
            if before == Some(role) {
                return Ok(());
            }
            db.set_role(repo.id, user.id, role)?;
            record(
                db,
                Actor::Cli,
                Change {
                    action: "role.grant",
                    repo: Some(&repo),
                    user: Some(&user),
                    details: json!({
                        "before": {"role": before.map(Role::as_str)},
                        "after": {"role": role.as_str()},
                    }),
                    ..Change::default()
                },
            )
        })
    }

    pub fn revoke(&self, path: &str, username: &str) -> Result<()> {
        self.store.write(|db| {
            let repo = db
                .repo_by_path(path)?
                .ok_or(Error::NotFound(Missing::Repository))?;
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            let Some(before) = db.role_of(repo.id, user.id)? else {
                return Ok(());
            };
            db.delete_role(repo.id, user.id)?;
            record(
                db,
                Actor::Cli,
                Change {
                    action: "role.revoke",
                    repo: Some(&repo),
                    user: Some(&user),
                    details: json!({"before": {"role": before.as_str()}}),
                    ..Change::default()
                },
            )
        })
    }
}

fn check_name(name: &str, field: Field) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(field, Problem::Blank));
    }
    if name.len() > 255 {
        return Err(Error::invalid(field, Problem::TooLong { max: 255 }));
    }
    // The characters GitLab allows in user and project paths, so every dialect can address them.
    let ok = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.starts_with(['.', '-']);
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(
            field,
            Problem::Format("letters, digits, '_', '-' and '.'"),
        ))
    }
}

fn split_path(path: &str) -> Result<Vec<&str>> {
    if path.len() > MAX_PATH_CHARS {
        return Err(Error::invalid(
            Field::Path,
            Problem::TooLong {
                max: MAX_PATH_CHARS,
            },
        ));
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    for segment in &segments {
        check_name(segment, Field::Path)?;
    }
    Ok(segments)
}
