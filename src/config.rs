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
            .finish()
    }
}
