//! Credential primitives: generating and hashing tokens, verifying CodeArts request signatures, and
//! the secret the SSH hosts share with the gateway.

pub mod aksk;
pub mod internal;

use sha2::{Digest, Sha256};

/// Prefix of every personal token, so leaked tokens are recognisable by secret scanners.
pub const TOKEN_PREFIX: &str = "kgt_";

/// A fresh personal token: the prefix and 32 random bytes as hex.
pub fn new_token() -> String {
    format!("{TOKEN_PREFIX}{}", hex::encode(random_bytes::<32>()))
}

/// What is stored instead of the token. Tokens are 256 random bits, so a plain SHA-256 cannot be
/// brute-forced and needs no salt or slow hash; it lets a lookup be one indexed equality.
pub fn token_hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}
