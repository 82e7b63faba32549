//! `keygate import authorized-keys` and `keygate export authorized-keys`: deploy keys in and out
//! of OpenSSH's own file format.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::core::{Core, Error, KeyPolicy, Refusal};
use crate::store::Store;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::ssh::DoorArgs;

#[derive(Subcommand)]
pub enum ImportCmd {
    /// Attach every public key of an authorized_keys FILE to one repository, as deploy keys.
    /// Options are dropped; refused lines are reported as `line N: reason` on stderr, and the
    /// exit status is 1 if any line was refused. Running it again changes nothing.
    AuthorizedKeys(ImportArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The authorized_keys file, or `-` for standard input.
    file: PathBuf,
    /// The repository (namespace/name) the keys are attached to.
    #[arg(long)]
    repo: String,
    /// Let the keys push (newly attached keys only; a key already on the repository keeps its
    /// permission).
    #[arg(long)]
    can_push: bool,
    /// Smallest RSA key accepted, in bits (as `serve`).
    #[arg(long, env = "KEYGATE_MIN_RSA_BITS", default_value_t = 2048)]
    min_rsa_bits: u32,
    /// Accept ssh-dss (DSA) keys (as `serve`).
    #[arg(long, env = "KEYGATE_ALLOW_DSA")]
    allow_dsa: bool,
}

#[derive(Subcommand)]
pub enum ExportCmd {
    /// Print an authorized_keys line for every deploy key that may log in, carrying the forced
    /// command `keygate ssh authorized-keys` prints, for an sshd without AuthorizedKeysCommand.
    AuthorizedKeys {
        #[command(flatten)]
        door: DoorArgs,
        /// Only the keys attached to this repository (namespace/name).
        #[arg(long)]
        repo: Option<String>,
    },
}

pub fn import(db: &Path, cmd: ImportCmd) -> ExitCode {
    let ImportCmd::AuthorizedKeys(args) = cmd;
    match run_import(db, args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("keygate: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Whether every line was taken.
fn run_import(db: &Path, args: ImportArgs) -> Result<bool, String> {
    let mut bytes = Vec::new();
    let read = if args.file.as_os_str() == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(&args.file).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    read.map_err(|e| format!("{}: {e}", args.file.display()))?;
    // A line that is not UTF-8 is not a key either; it is refused like any other.
    let text = String::from_utf8_lossy(&bytes);
    let policy = KeyPolicy {
        min_rsa_bits: args.min_rsa_bits,
        allow_dsa: args.allow_dsa,
    };
    let core = Core::new(Store::open(db).map_err(|e| e.to_string())?, policy);
    let file = core.read_authorized_keys(&text);
    // On stderr, which indicatif leaves alone unless it is a terminal.
    let bar =
        ProgressBar::with_draw_target(Some(file.keys.len() as u64), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template("importing {bar:40} {pos}/{len} keys, {eta} left")
                    .expect("a valid template"),
            );
    bar.tick();
    let imported = core.import_keys(&args.repo, &file.keys, args.can_push, |done| {
        bar.set_position(done as u64)
    });
    bar.finish_and_clear();
    let imported = imported.map_err(super::admin::describe)?;
    for refusal in &file.refused {
        eprintln!("{}", report(refusal));
    }
    println!(
        "imported {}, already present {}, refused {}",
        imported.created + imported.joined,
        imported.present,
        file.refused.len()
    );
    Ok(file.refused.is_empty())
}

/// `line N: reason`, or `lines N-M: reason` for a block; never the line itself.
fn report(refusal: &Refusal) -> String {
    if refusal.first == refusal.last {
        format!("line {}: {}", refusal.first, refusal.reason)
    } else {
        format!(
            "lines {}-{}: {}",
            refusal.first, refusal.last, refusal.reason
        )
    }
}

pub fn export(db: &Path, cmd: ExportCmd) -> ExitCode {
    let ExportCmd::AuthorizedKeys { door, repo } = cmd;
    match run_export(db, door, repo.as_deref()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("keygate: {message}");
            ExitCode::FAILURE
        }
    }
}

enum ExportError {
    Core(Error),
    Other(String),
}

impl From<Error> for ExportError {
    fn from(err: Error) -> Self {
        ExportError::Core(err)
    }
}

fn run_export(db: &Path, door: DoorArgs, repo: Option<&str>) -> Result<(), String> {
    let door = crate::ssh::Door {
        gateway: door.gateway,
        secret_file: door.secret_file,
        git_root: door.git_root,
    };
    // The same forced command and the same line as stage 1, so both doors behave alike.
    let program = door.forced_command()?;
    let core = Core::new(
        Store::open(db).map_err(|e| e.to_string())?,
        KeyPolicy::default(),
    );
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let written = core.login_keys(repo, |key| {
        let mut words = key.key_text.split_whitespace();
        let (kind, blob) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let Some(parsed) = crate::ssh::keyline::offered_key(kind, blob) else {
            // Stage 1 would not let this key in either.
            return Ok(());
        };
        let line = crate::ssh::key_line(&program, key.id, &parsed).map_err(ExportError::Other)?;
        writeln!(out, "{line}").map_err(|e| ExportError::Other(format!("stdout: {e}")))
    });
    match written {
        Ok(()) => out.flush().map_err(|e| format!("stdout: {e}")),
        Err(ExportError::Core(err)) => Err(super::admin::describe(err)),
        Err(ExportError::Other(message)) => Err(message),
    }
}
