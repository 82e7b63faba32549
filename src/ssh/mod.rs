//! The SSH side of the door: the two commands sshd runs, as clients of the gateway. They hold no
//! database and cache nothing, so a revocation on any gateway shuts the door at the next login.

pub mod command;
pub mod gateway;
pub mod keyline;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::auth::internal::InternalSecret;
use crate::core::PublicKey;
use gateway::{Gateway, Verdict};

/// Where the SSH side finds the gateway, the secret and the repositories.
#[derive(Debug, Clone)]
pub struct Door {
    pub gateway: String,
    pub secret_file: PathBuf,
    pub git_root: PathBuf,
}

impl Door {
    fn client(&self) -> Result<Gateway, String> {
        let secret = InternalSecret::read(&self.secret_file).map_err(|e| {
            format!(
                "cannot read the internal secret {}: {e}",
                self.secret_file.display()
            )
        })?;
        Ok(Gateway::new(&self.gateway, secret))
    }

    /// This program and the options stage 2 needs, made absolute: sshd runs the forced command
    /// in the git user's home directory.
    pub fn forced_command(&self) -> Result<Vec<String>, String> {
        let absolute = |p: &Path| {
            std::path::absolute(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|p| {
                    p.into_os_string()
                        .into_string()
                        .map_err(|_| "a path is not UTF-8".to_string())
                })
        };
        let exe = std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .map_err(|e| format!("cannot find this program's path: {e}"))?;
        Ok(vec![
            absolute(&exe)?,
            "ssh".into(),
            "git-shell".into(),
            "--gateway".into(),
            self.gateway.clone(),
            "--secret-file".into(),
            absolute(&self.secret_file)?,
            "--git-root".into(),
            absolute(&self.git_root)?,
        ])
    }
}

/// Stage 1 (`AuthorizedKeysCommand … %u %t %k`): the line that lets the offered key in, or
/// `None` to print nothing, which makes sshd refuse the key. An `Err` (the gateway is down, the
/// secret is wrong) prints nothing either: the door never fails open.
pub fn authorized_keys(
    door: &Door,
    ssh_user: &str,
    user: &str,
    key_type: &str,
    key_b64: &str,
) -> Result<Option<String>, String> {
    if user != ssh_user {
        return Ok(None);
    }
    let Some(key) = keyline::offered_key(key_type, key_b64) else {
        return Ok(None);
    };
    let program = door.forced_command()?;
    let Some(key_id) = door
        .client()?
        .login_key(key.sha256())
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    key_line(&program, key_id, &key).map(Some)
}

/// The `authorized_keys` line of deploy key `key_id` for the forced command `program`
/// (`Door::forced_command`): what stage 1 prints and `keygate export authorized-keys` writes.
pub fn key_line(program: &[String], key_id: i64, key: &PublicKey) -> Result<String, String> {
    keyline::line(program, key_id, key).ok_or_else(|| {
        "the gateway URL, --secret-file or --git-root holds a quote, a backslash or a control \
         character, which cannot go into a forced command"
            .to_string()
    })
}

/// A repository's bare directory: by id, so a rename or another spelling of the path finds
/// the same one, hashed as GitLab's hashed storage spreads them (`@hashed/6b/86/6b86….git`).
pub fn repository_dir(git_root: &Path, repository_id: i64) -> PathBuf {
    let hash = hex::encode(Sha256::digest(repository_id.to_string().as_bytes()));
    git_root
        .join("@hashed")
        .join(&hash[0..2])
        .join(&hash[2..4])
        .join(format!("{hash}.git"))
}

/// Stage 2 (the forced command): checks `SSH_ORIGINAL_COMMAND`, asks the gateway, and on
/// success becomes the git program. Returns only on refusal, with the message for the user.
pub fn git_shell(door: &Door, key: &str, original: Option<&str>) -> String {
    let key_id = match key
        .strip_prefix("key-")
        .filter(|id| !id.is_empty() && id.len() <= 18 && id.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|id| id.parse::<i64>().ok())
    {
        Some(id) => id,
        None => return "this SSH door was set up wrongly (expected key-<ID>)".into(),
    };
    let git = match command::parse(original) {
        Ok(git) => git,
        Err(err) => return err.to_string(),
    };
    let gateway = match door.client() {
        Ok(gateway) => gateway,
        Err(message) => return format!("access denied: {message}"),
    };
    let (repository_id, path) = match gateway.access(key_id, &git.path, git.verb.action()) {
        Ok(Verdict::Allowed {
            repository_id,
            path,
        }) => (repository_id, path),
        Ok(Verdict::Denied { message }) => return message,
        Err(err) => return format!("access denied: {err}"),
    };
    let dir = repository_dir(&door.git_root, repository_id);
    if let Err(message) = ensure_bare(&dir) {
        return message;
    }
    use std::os::unix::process::CommandExt;
    // Hooks learn which key and repository they run for, as Gitea passes them.
    let err = Command::new("git")
        .arg(git.verb.subcommand())
        .arg(&dir)
        .env("KEYGATE_KEY_ID", key_id.to_string())
        .env("KEYGATE_REPOSITORY", &path)
        .exec();
    format!("cannot start git {}: {err}", git.verb.subcommand())
}

/// A repository keygate knows but the git host has not seen yet starts empty, so `keygate repo
/// add` followed by a push just works.
fn ensure_bare(dir: &Path) -> Result<(), String> {
    if dir.join("HEAD").exists() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    }
    // `git init` on a directory another connection has just initialised changes nothing.
    let status = Command::new("git")
        .args(["init", "--bare", "--quiet", "--initial-branch=main"])
        .arg(dir)
        .status()
        .map_err(|e| format!("cannot run git init: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("git init --bare {} failed", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repository_directories_are_hashed_by_id() {
        let dir = repository_dir(Path::new("/srv/git"), 1);
        // sha256("1"), as GitLab's hashed storage names project 1.
        assert_eq!(
            dir,
            Path::new(
                "/srv/git/@hashed/6b/86/6b86b273ff34fce19d6b804eff5a3f5747ada4eaa22f1d49c01e52ddb7875b4b.git"
            )
        );
        assert_ne!(repository_dir(Path::new("/srv/git"), 2), dir);
    }
}
