//! The `keygate` command line: the clap types of every subcommand, and the dispatch to them.

mod admin;
mod db;
mod serve;
mod ssh;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

/// The whole program: `src/main.rs` only calls this.
pub fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(code) = ssh::fast_path(&argv) {
        return code;
    }
    let cli = Cli::parse_from(argv);
    if let Command::Ssh(cmd) = cli.command {
        return ssh::run(cmd);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
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
        Command::Ssh(_) => unreachable!("main runs the SSH side without a log or a database"),
        command => admin::run(&cli.db, command),
    }
}
