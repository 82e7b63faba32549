//! The `keygate` command line: the clap types of every subcommand, and the dispatch to them.

mod admin;
mod audit;
mod completions;
pub mod config_file;
mod db;
mod keyfile;
pub mod logging;
mod man;
mod serve;
mod ssh;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use logging::LogFormat;

pub use admin::{AccessKeyCmd, GroupCmd, RepoCmd, TokenCmd, UserCmd};
pub use db::DbCmd;
pub use serve::ServeArgs;
pub use ssh::SshCmd;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "A multi-dialect deploy-key gateway"
)]
pub struct Cli {
    /// SQLite database file, or a postgres:// (postgresql://) URL; a URL's password may also come
    /// from PGPASSWORD or ~/.pgpass.
    // hide_env_values: a URL in KEYGATE_DB may hold a password, and --help would print it.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_DB",
        hide_env_values = true,
        default_value = "keygate.db"
    )]
    pub db: PathBuf,
    /// TOML file of settings: top-level `db` and `log-format`, and a [serve] and an [ssh] table
    /// of the flags of those commands by their long names (docs/operations.md). A flag or its
    /// environment variable wins over the file.
    #[arg(long, global = true, env = "KEYGATE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// How log lines are written to stderr: env_logger's text, or one JSON object per line.
    #[arg(
        long,
        global = true,
        env = "KEYGATE_LOG_FORMAT",
        value_enum,
        default_value_t = LogFormat::Text
    )]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run the HTTP gateway.
    Serve(ServeArgs),
    /// Manage users.
    #[command(subcommand)]
    User(UserCmd),
    /// Manage personal access tokens.
    #[command(subcommand)]
    Token(TokenCmd),
    /// Manage repositories and who may manage their deploy keys.
    #[command(subcommand)]
    Repo(RepoCmd),
    /// Manage CodeArts access keys (AK/SK pairs that sign SDK requests).
    #[command(subcommand)]
    AccessKey(AccessKeyCmd),
    /// List groups (namespaces): their CodeArts group and project ids.
    #[command(subcommand)]
    Group(GroupCmd),
    /// The SSH door's two commands, which sshd runs (see docs/ssh.md). They ask the gateway and
    /// never open the database.
    #[command(subcommand)]
    Ssh(SshCmd),
    /// Database maintenance.
    #[command(subcommand)]
    Db(DbCmd),
    /// Read the audit trail (every change, oldest first).
    #[command(subcommand)]
    Audit(audit::AuditCmd),
    /// Add deploy keys in bulk from a file.
    #[command(subcommand)]
    Import(keyfile::ImportCmd),
    /// Write deploy keys out in another program's format.
    #[command(subcommand)]
    Export(keyfile::ExportCmd),
    /// Print a completion script for SHELL on stdout (e.g. `keygate completions bash >
    /// /etc/bash_completion.d/keygate`).
    Completions { shell: clap_complete::Shell },
    /// Print keygate's man page (roff) on stdout, or write one page per command into --out DIR.
    Man {
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
    },
}

/// The whole program: `src/main.rs` only calls this.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = ssh::fast_path(&argv) {
        return code;
    }
    let cli = match config_file::parse::<Cli>(&argv, None) {
        Ok(cli) => cli,
        Err(message) => {
            eprintln!("keygate: {message}");
            return ExitCode::FAILURE;
        }
    };
    if let Command::Ssh(cmd) = cli.command {
        return ssh::run(cmd);
    }
    logging::init(cli.log_format);
    match cli.command {
        Command::Import(cmd) => return keyfile::import(&cli.db, cmd),
        Command::Export(cmd) => return keyfile::export(&cli.db, cmd),
        _ => {}
    }
    match run(cli) {
        Ok(Some(out)) => {
            println!("{out}");
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keygate: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<Option<String>, String> {
    match cli.command {
        Command::Serve(args) => serve::run(cli.db, args)
            .map(|_| None)
            .map_err(|e| e.to_string()),
        Command::Db(cmd) => db::run(&cli.db, cmd),
        Command::Audit(cmd) => audit::run(&cli.db, cmd),
        Command::Completions { shell } => completions::run(shell),
        Command::Man { out } => man::run(out.as_deref()),
        Command::Import(_) | Command::Export(_) => unreachable!("main runs them"),
        Command::Ssh(_) => unreachable!("main runs the SSH side without a log or a database"),
        command => admin::run(&cli.db, command),
    }
}
