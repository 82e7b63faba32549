//! `SSH_ORIGINAL_COMMAND`, parsed strictly: one of three git verbs and one repository path.

/// The git programs a deploy key may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    UploadPack,
    UploadArchive,
    ReceivePack,
}

impl Verb {
    /// The name git sends, and the internal route's `action`.
    pub fn action(self) -> &'static str {
        match self {
            Verb::UploadPack => "git-upload-pack",
            Verb::UploadArchive => "git-upload-archive",
            Verb::ReceivePack => "git-receive-pack",
        }
    }

    /// The `git` subcommand that serves it.
    pub fn subcommand(self) -> &'static str {
        &self.action()["git-".len()..]
    }
}

/// A git command as the client asked for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCommand {
    pub verb: Verb,
    /// `namespace/…/name`: no leading `/`, no `.git`, every segment checked.
    pub path: String,
}

/// Why a command is refused; the message is shown to the SSH user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "interactive logins are not allowed: keygate serves git over SSH only (clone, fetch, push, archive)"
    )]
    Interactive,
    #[error("only git-upload-pack, git-upload-archive and git-receive-pack may run here")]
    NotGit,
    #[error("the git command takes exactly one repository path")]
    Arguments,
    #[error("the repository path is not valid")]
    BadPath,
}

/// Longest command and path accepted; a repository path is a few segments of at most 255 bytes.
const MAX_COMMAND_BYTES: usize = 4096;
const MAX_PATH_BYTES: usize = 1024;

/// Parses `SSH_ORIGINAL_COMMAND` (`None`: the client asked for a shell).
pub fn parse(original: Option<&str>) -> Result<GitCommand, CommandError> {
    let text = original.map(str::trim).unwrap_or_default();
    if text.is_empty() {
        return Err(CommandError::Interactive);
    }
    if text.len() > MAX_COMMAND_BYTES {
        return Err(CommandError::Arguments);
    }
    let (verb, rest) = text.split_once(' ').unwrap_or((text, ""));
    let verb = match verb {
        "git-upload-pack" => Verb::UploadPack,
        "git-upload-archive" => Verb::UploadArchive,
        "git-receive-pack" => Verb::ReceivePack,
        _ => return Err(CommandError::NotGit),
    };
    let argument = rest.trim_start_matches(' ');
    let raw = if argument.is_empty() {
        return Err(CommandError::Arguments);
    } else if argument.starts_with('\'') {
        sq_dequote(argument)?
    } else if argument
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b"'\"\\".contains(&b))
    {
        return Err(CommandError::Arguments);
    } else {
        argument.to_string()
    };
    Ok(GitCommand {
        verb,
        path: repository_path(&raw)?,
    })
}

/// Undoes git's `sq_quote_buf`: `'…'` pieces, with `'` and `!` written as `'\''` and `'\!'`.
/// Anything after the closing quote (a second argument, say) is refused.
fn sq_dequote(quoted: &str) -> Result<String, CommandError> {
    let mut out = String::new();
    let mut chars = quoted.chars();
    if chars.next() != Some('\'') {
        return Err(CommandError::Arguments);
    }
    loop {
        match chars.next() {
            None => return Err(CommandError::Arguments),
            Some('\'') => match chars.next() {
                None => return Ok(out),
                Some('\\') => {
                    let escaped = chars.next().filter(|c| *c == '\'' || *c == '!');
                    match (escaped, chars.next()) {
                        (Some(c), Some('\'')) => out.push(c),
                        _ => return Err(CommandError::Arguments),
                    }
                }
                Some(_) => return Err(CommandError::Arguments),
            },
            Some(c) => out.push(c),
        }
    }
}

/// `acme/widgets`, from `acme/widgets`, `/acme/widgets.git`, `acme/widgets.git/` and the like.
/// Segments are GitLab path characters only, so nothing here can name an option, a parent
/// directory or a home directory; the repository's directory is found by id later anyway.
fn repository_path(raw: &str) -> Result<String, CommandError> {
    if raw.len() > MAX_PATH_BYTES {
        return Err(CommandError::BadPath);
    }
    let trimmed = raw.strip_prefix('/').unwrap_or(raw);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
    let segments: Vec<&str> = trimmed.split('/').collect();
    let good = |segment: &&str| {
        !segment.is_empty()
            && segment.len() <= 255
            && !segment.starts_with(['-', '.'])
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b))
    };
    if segments.len() < 2 || !segments.iter().all(good) {
        return Err(CommandError::BadPath);
    }
    Ok(segments.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(command: &str) -> (Verb, String) {
        let parsed = parse(Some(command)).unwrap_or_else(|e| panic!("{command:?}: {e}"));
        (parsed.verb, parsed.path)
    }

    fn refused(command: &str) -> CommandError {
        parse(Some(command)).expect_err(command)
    }

    #[test]
    fn git_commands_as_git_sends_them() {
        let widgets = || "acme/widgets".to_string();
        assert_eq!(
            ok("git-upload-pack 'acme/widgets.git'"),
            (Verb::UploadPack, widgets())
        );
        assert_eq!(
            ok("git-upload-pack '/acme/widgets.git'"),
            (Verb::UploadPack, widgets())
        );
        assert_eq!(
            ok("git-receive-pack 'acme/widgets'"),
            (Verb::ReceivePack, widgets())
        );
        assert_eq!(
            ok("git-upload-archive '/acme/widgets'"),
            (Verb::UploadArchive, widgets())
        );
        assert_eq!(
            ok("git-upload-pack acme/widgets.git"),
            (Verb::UploadPack, widgets())
        );
        assert_eq!(
            ok("git-upload-pack 'acme/widgets.git/'"),
            (Verb::UploadPack, widgets())
        );
        assert_eq!(
            ok("git-upload-pack 'acme/tools/cli.git'"),
            (Verb::UploadPack, "acme/tools/cli".into())
        );
        // Case is kept: the gateway matches paths without regard to case.
        assert_eq!(ok("git-upload-pack 'Acme/Widgets.git'").1, "Acme/Widgets");
        assert_eq!(Verb::ReceivePack.subcommand(), "receive-pack");
    }

    #[test]
    fn no_command_is_an_interactive_login() {
        assert_eq!(parse(None), Err(CommandError::Interactive));
        assert_eq!(parse(Some("")), Err(CommandError::Interactive));
        assert_eq!(parse(Some("   ")), Err(CommandError::Interactive));
    }

    #[test]
    fn other_programs_are_refused() {
        for command in [
            "sh",
            "id",
            "bash -c id",
            "git-upload-pack",
            "scp -t /tmp",
            "git upload-pack 'acme/widgets.git'",
            "git-shell -c 'git-upload-pack acme/widgets'",
            "rsync --server . /srv/git",
            "GIT-UPLOAD-PACK 'acme/widgets'",
        ] {
            let err = refused(command);
            assert!(
                matches!(err, CommandError::NotGit | CommandError::Arguments),
                "{command}: {err:?}"
            );
        }
    }

    #[test]
    fn hostile_arguments_are_refused() {
        for command in [
            "git-upload-pack --upload-pack=touch /tmp/x",
            "git-upload-pack '--upload-pack=touch /tmp/x'",
            "git-upload-pack -h",
            "git-upload-pack 'acme/widgets' 'other/repo'",
            "git-upload-pack 'acme/widgets' --strict",
            "git-upload-pack 'acme/widgets'; id",
            "git-upload-pack 'acme/widgets'$(id)",
            "git-upload-pack acme/widgets;id",
            "git-upload-pack `id`",
            "git-upload-pack \"acme/widgets\"",
            "git-upload-pack 'acme/widgets",
            "git-upload-pack 'acme'\\''/widgets'",
            "git-upload-pack '../../etc/passwd'",
            "git-upload-pack 'acme/../../etc'",
            "git-upload-pack '/etc/passwd/..'",
            "git-upload-pack 'acme//widgets'",
            "git-upload-pack 'acme/./widgets'",
            "git-upload-pack '~root/x'",
            "git-upload-pack 'widgets'",
            "git-upload-pack '/'",
            "git-upload-pack ''",
            "git-upload-pack 'acme/wid\\gets'",
            "git-upload-pack 'acme/wid\ngets'",
            "git-upload-pack 'acme/wid\0gets'",
            "git-upload-pack 'acme/.hidden'",
            "git-upload-pack 'acme/-rf'",
            "git-upload-pack 'acme/wídgets'",
        ] {
            let err = refused(command);
            assert!(
                matches!(err, CommandError::Arguments | CommandError::BadPath),
                "{command:?}: {err:?}"
            );
        }
        let long = format!("git-upload-pack 'acme/{}'", "a".repeat(5000));
        assert!(parse(Some(&long)).is_err());
    }

    #[test]
    fn quoting_follows_git() {
        // git writes ' and ! inside a quoted path as '\'' and '\!'; neither is a path character,
        // so the dequoted path is still refused, but as a path, not as a second argument.
        assert_eq!(sq_dequote("'a'\\''b'"), Ok("a'b".into()));
        assert_eq!(sq_dequote("'a'\\!'b'"), Ok("a!b".into()));
        assert_eq!(sq_dequote("'a'\\x'b'"), Err(CommandError::Arguments));
        assert_eq!(sq_dequote("'a' 'b'"), Err(CommandError::Arguments));
        assert_eq!(
            refused("git-upload-pack 'acme/it'\\''s'"),
            CommandError::BadPath
        );
    }
}
