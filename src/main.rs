//! The `keygate` command: serve the gateway, or administer users, tokens and repositories.

mod keyfile;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};
use keygate::config::Settings;
use keygate::core::{Core, Error, KeyPolicy, Role, Scope};
use keygate::server::Application;
use keygate::store::Store;

#[derive(Parser)]
#[command(
    name = "keygate",
    version,
    about = "A multi-dialect deploy-key gateway"
)]
struct Cli {
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
    db: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    /// Add deploy keys in bulk from a file.
    #[command(subcommand)]
    Import(keyfile::ImportCmd),
    /// Write deploy keys out in another program's format.
    #[command(subcommand)]
    Export(keyfile::ExportCmd),
}

#[derive(Subcommand)]
enum DbCmd {
    /// Copy the database, consistently even while serving, to a new file PATH readable by its
    /// owner only (it holds token hashes and CodeArts secret keys).
    Backup { path: PathBuf },
    /// Copy every row of a SQLite database into an empty PostgreSQL database, keeping ids, so
    /// an instance moves to PostgreSQL with every id, token and access key intact. Stop the
    /// gateways first: writes after the copy began would not be in it.
    Copy {
        /// The SQLite file to copy from.
        #[arg(long)]
        from: PathBuf,
        /// The PostgreSQL URL to copy into (its schema is created if missing).
        #[arg(long)]
        to: PathBuf,
    },
}

/// Where the SSH side finds the gateway, the shared secret and the repositories.
#[derive(Args, Clone)]
struct DoorArgs {
    /// The gateway's base URL.
    #[arg(
        long,
        env = "KEYGATE_GATEWAY_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    gateway: String,
    /// The internal secret the gateway wrote (a copy readable by the SSH user).
    #[arg(
        long,
        env = "KEYGATE_INTERNAL_SECRET_FILE",
        default_value = "/etc/keygate/internal.secret"
    )]
    secret_file: PathBuf,
    /// Where the bare repositories live on this host.
    #[arg(long, env = "KEYGATE_GIT_ROOT", default_value = "/srv/git")]
    git_root: PathBuf,
}

#[derive(Subcommand)]
enum SshCmd {
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
struct AuthorizedKeysArgs {
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
    #[command(flatten)]
    args: AuthorizedKeysArgs,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, env = "KEYGATE_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Base URL clients use to reach keygate (for Link, url and Location), e.g. https://keys.example.com
    #[arg(long, env = "KEYGATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// Smallest RSA key accepted, in bits.
    #[arg(long, env = "KEYGATE_MIN_RSA_BITS", default_value_t = 2048)]
    min_rsa_bits: u32,
    /// Accept ssh-dss (DSA) keys, which OpenSSH has disabled by default since 7.0.
    #[arg(long, env = "KEYGATE_ALLOW_DSA")]
    allow_dsa: bool,
    /// HTTP worker threads (0: one per core).
    #[arg(long, env = "KEYGATE_WORKERS", default_value_t = 0)]
    workers: usize,
    /// The secret SSH hosts present on /internal/ routes (created 0600 when missing) [default:
    /// internal.secret beside the database]
    #[arg(long, env = "KEYGATE_INTERNAL_SECRET_FILE")]
    internal_secret_file: Option<PathBuf>,
    /// Most connections open at once, over all workers; default and ceiling: the open-file limit
    /// (ulimit -n) less 128 descriptors kept for the database and the server itself.
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Most connections open at once from one client address (0: no limit, e.g. behind a proxy,
    /// where every client has the proxy's address) [default: half of --max-connections]
    #[arg(long, env = "KEYGATE_MAX_CONNECTIONS_PER_IP")]
    max_connections_per_ip: Option<usize>,
    /// Seconds a client may take to send a request body once its headers are in (then 408).
    #[arg(long, env = "KEYGATE_BODY_TIMEOUT", value_name = "SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
}

#[derive(Subcommand)]
enum UserCmd {
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
enum TokenCmd {
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
enum RepoCmd {
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
enum SubmoduleCmd {
    /// Make CHILD a submodule of PARENT (both paths); adding it twice changes nothing.
    Add { parent: String, child: String },
    /// Stop treating CHILD as a submodule of PARENT; keys already synced stay on CHILD.
    Remove { parent: String, child: String },
    /// List PARENT's submodules: `id path`, one per line.
    List { parent: String },
}

#[derive(Subcommand)]
enum AccessKeyCmd {
    /// Create an access key for USER and print `AK SK` (the SK is shown only this once).
    Add { user: String },
    /// List USER's access keys, one AK per line (never the SK).
    List { user: String },
    /// Delete an access key; requests signed with it fail from then on.
    Revoke { access_key: String },
}

#[derive(Subcommand)]
enum GroupCmd {
    /// List namespaces: `group_id project_id path`, one per line; project_id is the 32-hex id of a
    /// top-level namespace (a CodeArts project) and `-` for subgroups.
    List,
}

#[derive(Clone, Copy, ValueEnum)]
enum RoleArg {
    Maintainer,
    Reporter,
}

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv.len() > 2 && argv[1] == "ssh" && argv[2] == "authorized-keys" {
        let rest = argv[..1].iter().chain(&argv[3..]);
        return ssh(SshCmd::AuthorizedKeys(
            AuthorizedKeysCli::parse_from(rest).args,
        ));
    }
    let cli = Cli::parse_from(argv);
    if let Command::Ssh(cmd) = cli.command {
        return ssh(cmd);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = match cli {
        Cli {
            db,
            command: Command::Import(cmd),
        } => return keyfile::import(&db, cmd),
        Cli {
            db,
            command: Command::Export(cmd),
        } => return keyfile::export(&db, cmd),
        cli => cli,
    };
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
    if let Command::Serve(args) = cli.command {
        return serve(cli.db, args).map(|_| None).map_err(|e| e.to_string());
    }
    if let Command::Db(DbCmd::Backup { path }) = &cli.command {
        if cli.db.to_str().is_some_and(keygate::store::is_postgres_url) {
            return Err(
                "db backup copies a SQLite file; back PostgreSQL up with pg_dump or pg_basebackup \
                 (docs/scale-out.md)"
                    .into(),
            );
        }
        // Opening would create a mistyped --db, and the backup would be of an empty database.
        if !cli.db.is_file() {
            return Err(format!("no database at {}", cli.db.display()));
        }
        let store = Store::open(&cli.db).map_err(|e| e.to_string())?;
        return store
            .backup_to(path)
            .map(|_| None)
            .map_err(|e| format!("backup to {}: {e}", path.display()));
    }
    if let Command::Db(DbCmd::Copy { from, to }) = &cli.command {
        if !to.to_str().is_some_and(keygate::store::is_postgres_url) {
            return Err("db copy --to takes a postgres:// URL".into());
        }
        // Opening would create a mistyped --from, and the copy would be of an empty database.
        if from.to_str().is_some_and(keygate::store::is_postgres_url) || !from.is_file() {
            return Err(format!(
                "db copy --from takes an existing SQLite file; there is none at {}",
                keygate::store::redact(&from.to_string_lossy())
            ));
        }
        let source = Store::open(from).map_err(|e| format!("{}: {e}", from.display()))?;
        let shown = keygate::store::redact(&to.to_string_lossy());
        let target = Store::open(to).map_err(|e| format!("{shown}: {e}"))?;
        return source
            .copy_into(&target)
            .map(|report| Some(report.to_string()))
            .map_err(|e| format!("copy to {shown}: {e}"));
    }
    let store = Store::open(&cli.db).map_err(|e| e.to_string())?;
    let core = Core::new(store, KeyPolicy::default());
    let out = match cli.command {
        Command::Serve(_)
        | Command::Ssh(_)
        | Command::Db(_)
        | Command::Import(_)
        | Command::Export(_) => unreachable!("handled above"),
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
                    keygate::dialect::parse_time(&text)
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
                    .map(keygate::dialect::iso_millis)
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

/// Runs an SSH-side command. Its stdout belongs to sshd (stage 1) or to git (stage 2), and its
/// stderr reaches the git user, so nothing is logged here; the gateway logs every decision.
fn ssh(cmd: SshCmd) -> ExitCode {
    let door = |args: DoorArgs| keygate::ssh::Door {
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
            match keygate::ssh::authorized_keys(&door(args), &ssh_user, user, key_type, key) {
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
            let message = keygate::ssh::git_shell(&door(args), &key, original.as_deref());
            eprintln!("ERROR: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Prints nothing at all for an empty list, so scripts can test for emptiness.
fn lines(items: impl Iterator<Item = String>) -> Option<String> {
    let all: Vec<String> = items.collect();
    (!all.is_empty()).then(|| all.join("\n"))
}

fn describe(err: Error) -> String {
    use keygate::core::{Conflict, Missing};
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

#[actix_web::main]
async fn serve(db: PathBuf, args: ServeArgs) -> std::io::Result<()> {
    let settings = Settings {
        listen: args.listen,
        public_url: args.public_url,
        policy: KeyPolicy {
            min_rsa_bits: args.min_rsa_bits,
            allow_dsa: args.allow_dsa,
        },
        workers: args.workers,
        internal_secret_file: args.internal_secret_file,
        max_connections: args
            .max_connections
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        body_timeout: std::time::Duration::from_secs(args.body_timeout),
        max_connections_per_ip: args.max_connections_per_ip,
        ..Settings::new(db)
    };
    let app = Application::build(settings.clone())?;
    // Tests and scripts wait for this exact line to learn the port.
    let host = settings
        .listen
        .rsplit_once(':')
        .map_or("127.0.0.1", |(h, _)| h);
    eprintln!("keygate listening on http://{host}:{}", app.port());
    app.run().await?;
    log::info!("keygate stopped");
    Ok(())
}
