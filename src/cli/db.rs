//! `keygate db`: back a SQLite database up, or copy it into PostgreSQL.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::store::Store;

#[derive(Subcommand)]
pub enum DbCmd {
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

pub fn run(db: &Path, cmd: DbCmd) -> Result<Option<String>, String> {
    match cmd {
        DbCmd::Backup { path } => {
            if db.to_str().is_some_and(crate::store::is_postgres_url) {
                return Err(
                    "db backup copies a SQLite file; back PostgreSQL up with pg_dump or pg_basebackup \
                     (docs/scale-out.md)"
                        .into(),
                );
            }
            // Opening would create a mistyped --db, and the backup would be of an empty database.
            if !db.is_file() {
                return Err(format!("no database at {}", db.display()));
            }
            let store = Store::open(db).map_err(|e| e.to_string())?;
            store
                .backup_to(&path)
                .map(|_| None)
                .map_err(|e| format!("backup to {}: {e}", path.display()))
        }
        DbCmd::Copy { from, to } => {
            if !to.to_str().is_some_and(crate::store::is_postgres_url) {
                return Err("db copy --to takes a postgres:// URL".into());
            }
            // Opening would create a mistyped --from, and the copy would be of an empty database.
            if from.to_str().is_some_and(crate::store::is_postgres_url) || !from.is_file() {
                return Err(format!(
                    "db copy --from takes an existing SQLite file; there is none at {}",
                    crate::store::redact(&from.to_string_lossy())
                ));
            }
            let source = Store::open(&from).map_err(|e| format!("{}: {e}", from.display()))?;
            let shown = crate::store::redact(&to.to_string_lossy());
            let target = Store::open(&to).map_err(|e| format!("{shown}: {e}"))?;
            source
                .copy_into(&target)
                .map(|report| Some(report.to_string()))
                .map_err(|e| format!("copy to {shown}: {e}"))
        }
    }
}
