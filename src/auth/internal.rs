//! The shared secret between the gateway and its SSH hosts: created once, read by both, compared
//! in constant time.

use std::io::{self, Write};
use std::path::Path;

use subtle::ConstantTimeEq;

/// Shorter than this is a truncated or hand-typed file, not a secret keygate wrote.
const MIN_SECRET_CHARS: usize = 32;

/// A secret as read from its file. `Debug` never shows it.
#[derive(Clone)]
pub struct InternalSecret(String);

impl std::fmt::Debug for InternalSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InternalSecret(<redacted>)")
    }
}

impl InternalSecret {
    /// Reads the secret at `path`; an empty or short file is refused rather than trusted.
    pub fn read(path: &Path) -> io::Result<InternalSecret> {
        let text = std::fs::read_to_string(path)?;
        let secret = text.trim();
        if secret.len() < MIN_SECRET_CHARS || !secret.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "{} does not hold a keygate internal secret (at least {MIN_SECRET_CHARS} printable characters)",
                    path.display()
                ),
            ));
        }
        Ok(InternalSecret(secret.to_string()))
    }

    /// Reads the secret at `path`, first writing a new random one (mode 0600) if there is none.
    pub fn read_or_create(path: &Path) -> io::Result<InternalSecret> {
        match create_private(path) {
            Ok(mut file) => {
                let secret = hex::encode(super::random_bytes::<32>());
                file.write_all(format!("{secret}\n").as_bytes())?;
                file.sync_all()?;
                log::info!("wrote a new internal secret to {}", path.display());
            }
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(err),
        }
        InternalSecret::read(path)
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether `offered` is this secret, in time that does not depend on where they differ.
    pub fn matches(&self, offered: &str) -> bool {
        bool::from(self.0.as_bytes().ct_eq(offered.as_bytes()))
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_secret_is_private_random_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("internal.secret");
        let first = InternalSecret::read_or_create(&path).unwrap();
        assert_eq!(first.expose().len(), 64);
        assert!(first.matches(first.expose()));
        assert!(!first.matches(&first.expose()[..63]));
        assert!(!first.matches(""));
        // A second start keeps the secret the SSH hosts already have.
        let again = InternalSecret::read_or_create(&path).unwrap();
        assert!(again.matches(first.expose()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let other = dir.path().join("other.secret");
        assert_ne!(
            InternalSecret::read_or_create(&other).unwrap().expose(),
            first.expose()
        );
        assert!(!format!("{first:?}").contains(first.expose()));
    }

    #[test]
    fn short_or_empty_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        std::fs::write(&path, "short\n").unwrap();
        assert!(InternalSecret::read(&path).is_err());
        std::fs::write(&path, "").unwrap();
        assert!(InternalSecret::read_or_create(&path).is_err());
    }
}
