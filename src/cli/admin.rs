//! The admin commands: users, tokens, repositories and their roles, access keys and groups.

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use super::Command;
use crate::core::{Core, Error, KeyPolicy, Role, Scope};
use crate::store::Store;

#[derive(Subcommand)]
pub enum UserCmd {
    /// Create a user.
    Add {
        name: String,
        #[arg(long)]
        admin: bool,
    },
    /// List users: `id name admin|user`, one per line.
    List,
    /// Delete a user and their tokens.
    Remove { name: String },
}

#[derive(Subcommand)]
pub enum TokenCmd {
    /// Create a token and print it (it is shown only once).
    Add {
        user: String,
        /// GET-only token (GitLab's read_api scope).
        #[arg(long)]
        read_only: bool,
        /// Expiry date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z.
        #[arg(long)]
        expires_at: Option<String>,
    },
    /// List a user's tokens: `id scope expires_at`, one per line (never the token).
    List { user: String },
    /// Revoke a token by id.
    Revoke { id: i64 },
}

#[derive(Subcommand)]
pub enum RepoCmd {
    /// Create a repository and print its numeric id.
    Add {
        path: String,
        #[arg(long)]
        id: Option<i64>,
    },
    /// List repositories: `id path`, one per line.
    List,
    /// Delete a repository and detach its keys.
    Remove { path: String },
    /// Give a user a role on a repository.
    Grant {
        path: String,
        user: String,
        #[arg(long, value_enum)]
        role: RoleArg,
    },
    /// Take a user's role on a repository away.
    Revoke { path: String, user: String },
    /// Declare which repositories are a repository's submodules (for CodeArts key sync).
    #[command(subcommand)]
    Submodule(SubmoduleCmd),
}

#[derive(Subcommand)]
pub enum SubmoduleCmd {
    /// Make CHILD a submodule of PARENT (both paths); adding it twice changes nothing.
    Add { parent: String, child: String },
    /// Stop treating CHILD as a submodule of PARENT; keys already synced stay on CHILD.
    Remove { parent: String, child: String },
    /// List PARENT's submodules: `id path`, one per line.
    List { parent: String },
}

#[derive(Subcommand)]
pub enum AccessKeyCmd {
    /// Create an access key for USER and print `AK SK` (the SK is shown only this once).
    Add { user: String },
    /// List USER's access keys, one AK per line (never the SK).
    List { user: String },
    /// Delete an access key; requests signed with it fail from then on.
    Revoke { access_key: String },
}

#[derive(Subcommand)]
pub enum GroupCmd {
    /// List namespaces: `group_id project_id path`, one per line; project_id is the 32-hex id of a
    /// top-level namespace (a CodeArts project) and `-` for subgroups.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum RoleArg {
    Maintainer,
    Reporter,
}

/// Runs one admin command on the database `db`; `Ok(Some)` is what to print.
pub fn run(db: &Path, command: Command) -> Result<Option<String>, String> {
    let store = Store::open(db).map_err(|e| e.to_string())?;
    let core = Core::new(store, KeyPolicy::default());
    let out = match command {
        Command::Serve(_)
        | Command::Ssh(_)
        | Command::Db(_)
        | Command::Audit(_)
        | Command::Import(_)
        | Command::Export(_)
        | Command::Completions { .. }
        | Command::Man { .. } => unreachable!("not an admin command"),
        Command::User(UserCmd::Add { name, admin }) => core.add_user(&name, admin).map(|_| None),
        Command::User(UserCmd::List) => core.users().map(|users| {
            lines(users.iter().map(|u| {
                format!(
                    "{} {} {}",
                    u.id,
                    u.username,
                    if u.admin { "admin" } else { "user" }
                )
            }))
        }),
        Command::User(UserCmd::Remove { name }) => core.remove_user(&name).map(|_| None),
        Command::Token(TokenCmd::Add {
            user,
            read_only,
            expires_at,
        }) => {
            let expires = match expires_at {
                Some(text) => Some(
                    crate::dialect::parse_time(&text)
                        .ok_or_else(|| format!("--expires-at {text:?} is not a date"))?,
                ),
                None => None,
            };
            let scope = if read_only {
                Scope::ReadApi
            } else {
                Scope::Api
            };
            core.add_token(&user, scope, expires).map(Some)
        }
        Command::Token(TokenCmd::List { user }) => core.tokens(&user).map(|tokens| {
            lines(tokens.iter().map(|t| {
                let expires = t
                    .expires_at
                    .map(crate::dialect::iso_millis)
                    .unwrap_or_else(|| "never".into());
                format!("{} {} {}", t.id, t.scope.as_str(), expires)
            }))
        }),
        Command::Token(TokenCmd::Revoke { id }) => core.revoke_token(id).map(|_| None),
        Command::Repo(RepoCmd::Add { path, id }) => {
            core.add_repo(&path, id).map(|id| Some(id.to_string()))
        }
        Command::Repo(RepoCmd::List) => core
            .repos()
            .map(|repos| lines(repos.iter().map(|r| format!("{} {}", r.id, r.full_path)))),
        Command::Repo(RepoCmd::Remove { path }) => core.remove_repo(&path).map(|_| None),
        Command::Repo(RepoCmd::Grant { path, user, role }) => {
            let role = match role {
                RoleArg::Maintainer => Role::Maintainer,
                RoleArg::Reporter => Role::Reporter,
            };
            core.grant(&path, &user, role).map(|_| None)
        }
        Command::Repo(RepoCmd::Revoke { path, user }) => core.revoke(&path, &user).map(|_| None),
        Command::Repo(RepoCmd::Submodule(SubmoduleCmd::Add { parent, child })) => {
            return core
                .add_submodule(&parent, &child)
                .map(|_| None)
                .map_err(|e| match e {
                    Error::Invalid { .. } => "a repository cannot be its own submodule".into(),
                    other => describe(other),
                });
        }
        Command::Repo(RepoCmd::Submodule(SubmoduleCmd::Remove { parent, child })) => {
            core.remove_submodule(&parent, &child).map(|_| None)
        }
        Command::Repo(RepoCmd::Submodule(SubmoduleCmd::List { parent })) => core
            .submodules(&parent)
            .map(|repos| lines(repos.iter().map(|r| format!("{} {}", r.id, r.full_path)))),
        Command::AccessKey(AccessKeyCmd::Add { user }) => core
            .add_access_key(&user)
            .map(|(ak, sk)| Some(format!("{ak} {sk}"))),
        Command::AccessKey(AccessKeyCmd::List { user }) => {
            core.access_keys(&user).map(|aks| lines(aks.into_iter()))
        }
        Command::AccessKey(AccessKeyCmd::Revoke { access_key }) => {
            return core
                .revoke_access_key(&access_key)
                .map(|_| None)
                .map_err(|e| match e {
                    Error::NotFound(_) => "no such access key".into(),
                    other => describe(other),
                });
        }
        Command::Group(GroupCmd::List) => core.namespaces().map(|namespaces| {
            lines(namespaces.iter().map(|ns| {
                let project = if ns.parent_id.is_none() {
                    ns.uuid.as_str()
                } else {
                    "-"
                };
                format!("{} {project} {}", ns.id, ns.full_path)
            }))
        }),
    };
    out.map_err(describe)
}

/// Prints nothing at all for an empty list, so scripts can test for emptiness.
fn lines(items: impl Iterator<Item = String>) -> Option<String> {
    let all: Vec<String> = items.collect();
    (!all.is_empty()).then(|| all.join("\n"))
}

pub(super) fn describe(err: Error) -> String {
    use crate::core::{Conflict, Missing};
    match err {
        Error::NotFound(Missing::User) => "no such user".into(),
        Error::NotFound(Missing::Repository) => "no such repository".into(),
        Error::NotFound(Missing::Token) => "no such token".into(),
        Error::Conflict(Conflict::UserExists) => "that user already exists".into(),
        Error::Conflict(Conflict::RepositoryExists) => "that repository path or id is taken".into(),
        Error::Invalid { field, problem } => format!("invalid {}: it {problem}", field.as_str()),
        Error::Busy => "the database is busy; try again".into(),
        other => other.to_string(),
    }
}
