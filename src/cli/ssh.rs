//! `keygate ssh`: the two commands sshd runs, and stage 1's fast path past the full parser.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Where the SSH side finds the gateway, the shared secret and the repositories.
#[derive(Args, Clone)]
pub struct DoorArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "KEYGATE_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub(super) gateway: String,
    /// The internal secret the gateway wrote (a copy readable by the SSH user).
    #[arg(
        long,
        env = "KEYGATE_INTERNAL_SECRET_FILE",
        default_value = "/etc/keygate/internal.secret"
    )]
    pub(super) secret_file: PathBuf,
    /// Where the bare repositories live on this host.
    #[arg(long, env = "KEYGATE_GIT_ROOT", default_value = "/srv/git")]
    pub(super) git_root: PathBuf,
}

#[derive(Subcommand)]
pub enum SshCmd {
    /// sshd's AuthorizedKeysCommand: `… %u %t %k`. Prints the forced-command line for an active
    /// deploy key, and nothing otherwise.
    AuthorizedKeys(AuthorizedKeysArgs),
    /// The forced command: checks SSH_ORIGINAL_COMMAND, asks the gateway, then runs git.
    GitShell {
        #[command(flatten)]
        door: DoorArgs,
        /// key-<ID>, as stage 1 wrote it.
        key: String,
    },
}

#[derive(Args)]
pub struct AuthorizedKeysArgs {
    #[command(flatten)]
    door: DoorArgs,
    /// The account git connects as; any other user gets nothing.
    #[arg(long, default_value = "git")]
    ssh_user: String,
    /// USER TYPE BASE64, as sshd expands %u %t %k. Taken as plain values, whatever they
    /// start with: the client chose the key.
    #[arg(
        value_names = ["USER", "TYPE", "BASE64"],
        num_args = 3,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    offered: Vec<String>,
}

// Stage 1 alone: sshd runs it once per offered key on every login, and building the parser of
// every other command first was a sixth of its instructions.
#[derive(Parser)]
#[command(
    name = "keygate ssh authorized-keys",
    bin_name = "keygate ssh authorized-keys",
    about = "sshd's AuthorizedKeysCommand: `… %u %t %k`. Prints the forced-command line for an active deploy key, and nothing otherwise"
)]
struct AuthorizedKeysCli {
    /// TOML file of settings; this command reads its [ssh] table (docs/ssh.md). sshd gives the
    /// command no environment, so this replaces the KEYGATE_* variables.
    #[arg(long, env = "KEYGATE_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(flatten)]
    args: AuthorizedKeysArgs,
}

/// Runs `keygate ssh authorized-keys …` with its own small parser; `None` for any other command.
pub fn fast_path(argv: &[OsString]) -> Option<ExitCode> {
    if argv.len() > 2 && argv[1] == "ssh" && argv[2] == "authorized-keys" {
        let rest: Vec<OsString> = argv[..1].iter().chain(&argv[3..]).cloned().collect();
        return Some(
            match super::config_file::parse::<AuthorizedKeysCli>(&rest, Some("ssh")) {
                Ok(cli) => run(SshCmd::AuthorizedKeys(cli.args)),
                Err(message) => {
                    eprintln!("keygate: {message}");
                    ExitCode::FAILURE
                }
            },
        );
    }
    None
}

/// Runs an SSH-side command. Its stdout belongs to sshd (stage 1) or to git (stage 2), and its
/// stderr reaches the git user, so nothing is logged here; the gateway logs every decision.
pub fn run(cmd: SshCmd) -> ExitCode {
    let door = |args: DoorArgs| crate::ssh::Door {
        gateway: args.gateway,
        secret_file: args.secret_file,
        git_root: args.git_root,
    };
    match cmd {
        SshCmd::AuthorizedKeys(AuthorizedKeysArgs {
            door: args,
            ssh_user,
            offered,
        }) => {
            let [user, key_type, key] = offered.as_slice() else {
                eprintln!("keygate: expected USER TYPE BASE64 (%u %t %k)");
                return ExitCode::FAILURE;
            };
            match crate::ssh::authorized_keys(&door(args), &ssh_user, user, key_type, key) {
                Ok(Some(line)) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Ok(None) => ExitCode::SUCCESS,
                Err(message) => {
                    eprintln!("keygate: {message}");
                    ExitCode::FAILURE
                }
            }
        }
        SshCmd::GitShell { door: args, key } => {
            let original = std::env::var("SSH_ORIGINAL_COMMAND").ok();
            let message = crate::ssh::git_shell(&door(args), &key, original.as_deref());
            eprintln!("ERROR: {message}");
            ExitCode::FAILURE
        }
    }
}
