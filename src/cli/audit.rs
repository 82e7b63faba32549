//! `keygate audit list`: the audit trail, read straight from the database.

use std::path::Path;

use clap::Subcommand;

use crate::core::{AuditFilter, Core, KeyPolicy};
use crate::store::Store;

#[derive(Subcommand)]
pub enum AuditCmd {
    /// One event per line: `time actor action target`; with --json, one JSON object per line.
    List {
        /// Only events on this repository (by its path then, so a removed one's too).
        #[arg(long)]
        repo: Option<String>,
        /// Only events at or after this date, e.g. 2027-01-31 or 2027-01-31T12:00:00Z.
        #[arg(long)]
        since: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(db: &Path, cmd: AuditCmd) -> Result<Option<String>, String> {
    let AuditCmd::List { repo, since, json } = cmd;
    let since = match since {
        Some(text) => Some(
            crate::dialect::parse_time(&text)
                .ok_or_else(|| format!("--since {text:?} is not a date"))?,
        ),
        None => None,
    };
    let store = Store::open(db).map_err(|e| e.to_string())?;
    let core = Core::new(store, KeyPolicy::default());
    let filter = AuditFilter {
        repo_path: repo,
        since,
        ..Default::default()
    };
    crate::core::audit::print_log(&core, &filter, json)
        .map(|_| None)
        .map_err(super::admin::describe)
}
