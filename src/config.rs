//! Server settings, from CLI flags with `KEYGATE_*` environment fallbacks.

use std::path::PathBuf;

use crate::core::KeyPolicy;

#[derive(Clone)]
pub struct Settings {
    pub db: PathBuf,
    /// `host:port`; port 0 asks the OS for a free port (tests).
    pub listen: String,
    /// The client-visible base URL (`https://keys.example.com`), used in `Link`, `url` and
    /// `Location`; when absent, built from the request's Host header.
    pub public_url: Option<String>,
    pub policy: KeyPolicy,
    /// Worker threads; 0 means one per core.
    pub workers: usize,
    /// The secret the SSH hosts present on `/internal/` routes; `None` means `internal.secret`
    /// beside the database. Created (mode 0600) on first start when missing.
    pub internal_secret_file: Option<PathBuf>,
}

impl Settings {
    pub fn internal_secret_path(&self) -> PathBuf {
        self.internal_secret_file.clone().unwrap_or_else(|| {
            self.db
                .parent()
                .unwrap_or_else(|| std::path::Path::new("."))
                .join("internal.secret")
        })
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Nothing secret lives here today; listing fields by hand keeps it that way on purpose.
        f.debug_struct("Settings")
            .field("db", &self.db)
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("policy", &self.policy)
            .field("workers", &self.workers)
            .field("internal_secret_file", &self.internal_secret_file)
            .finish()
    }
}
