//! SSH public keys parsed once into a value known to be good, with its fingerprints.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use md5::{Digest, Md5};
use sha2::Sha256;
use ssh_key::public::{EcdsaPublicKey, KeyData};

/// Longest key text accepted, in characters (GitLab's limit).
pub const MAX_KEY_CHARS: usize = 5000;

/// Which key types and sizes an instance accepts.
#[derive(Debug, Clone)]
pub struct KeyPolicy {
    pub min_rsa_bits: u32,
    pub allow_dsa: bool,
}

impl Default for KeyPolicy {
    fn default() -> Self {
        KeyPolicy {
            min_rsa_bits: 2048,
            allow_dsa: false,
        }
    }
}

/// Why a text is not an acceptable public key. No variant carries the input: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("key is blank")]
    Blank,
    #[error("key is too long (maximum is {MAX_KEY_CHARS} characters)")]
    TooLong,
    #[error("this is a private key; paste the public key (the .pub file) instead")]
    Private,
    #[error("key is not a valid OpenSSH public key")]
    Malformed,
    #[error("the key type word does not match the type inside the key")]
    TypeMismatch,
    #[error("key type is forbidden")]
    ForbiddenType,
    #[error("key must be at least {min} bits")]
    TooSmall { min: u32 },
}

/// A public key that parsed, matched its type word and passed the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    kind: &'static str,
    bits: u32,
    blob_b64: String,
    comment: Option<String>,
    md5: String,
    sha256: String,
}

const PRIVATE_MARKERS: [&str; 4] = [
    "PRIVATE KEY-----",
    "OPENSSH PRIVATE KEY",
    "PuTTY-User-Key-File",
    "ENCRYPTED PRIVATE KEY",
];

impl PublicKey {
    /// Parses `authorized_keys`-style text: leading options are dropped, base64 wrapped over
    /// several lines is joined and only the first comment token is kept, as GitLab stores it.
    pub fn parse(input: &str, policy: &KeyPolicy) -> Result<PublicKey, KeyError> {
        if input.chars().count() > MAX_KEY_CHARS {
            return Err(KeyError::TooLong);
        }
        // Checked before anything else so a pasted private key is named as such, whatever its shape.
        if PRIVATE_MARKERS.iter().any(|m| input.contains(m)) {
            return Err(KeyError::Private);
        }
        let text = input.trim();
        if text.is_empty() {
            return Err(KeyError::Blank);
        }
        let first = text.split_whitespace().next().unwrap_or_default();
        let key_part = if type_word(first).is_some() {
            text
        } else {
            skip_options(text).ok_or(KeyError::Malformed)?
        };
        let tokens: Vec<&str> = key_part.split_whitespace().collect();
        let kind = tokens
            .first()
            .and_then(|t| type_word(t))
            .ok_or(KeyError::Malformed)?;
        let rest = &tokens[1..];
        // Wrapped keys arrive as several base64 fragments: join them until the blob parses.
        let mut joined = String::new();
        for (used, fragment) in rest.iter().enumerate() {
            joined.push_str(fragment);
            let Some(blob) = decode_blob(&joined) else {
                continue;
            };
            let Ok(parsed) = ssh_key::PublicKey::from_bytes(&blob) else {
                continue;
            };
            // A blob that does not re-encode to itself carries padding or trailing bytes.
            if parsed.to_bytes().ok().as_deref() != Some(blob.as_slice()) {
                return Err(KeyError::Malformed);
            }
            if parsed.algorithm().as_str() != kind {
                return Err(KeyError::TypeMismatch);
            }
            let bits = check_policy(parsed.key_data(), policy)?;
            return Ok(PublicKey {
                kind,
                bits,
                blob_b64: STANDARD.encode(&blob),
                // A comment is decoration, and is echoed wherever the key is shown: one carrying
                // terminal escapes or bidi controls is dropped (the key itself is still good),
                // by the same rule that refuses such titles.
                comment: rest
                    .get(used + 1)
                    .filter(|c| super::text::is_safe(c))
                    .map(|c| c.to_string()),
                md5: md5_fingerprint(&blob),
                sha256: format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(&blob))),
            });
        }
        Err(KeyError::Malformed)
    }

    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// `type base64 [comment]`: the form every dialect stores and shows.
    pub fn text(&self) -> String {
        match &self.comment {
            Some(c) => format!("{} {} {}", self.kind, self.blob_b64, c),
            None => self.bare_text(),
        }
    }

    /// `type base64`, without the comment.
    pub fn bare_text(&self) -> String {
        format!("{} {}", self.kind, self.blob_b64)
    }

    /// The first word of the key's comment, if it had one safe to show.
    pub fn comment(&self) -> Option<&str> {
        self.comment.as_deref()
    }

    /// `aa:bb:…`, as `ssh-keygen -l -E md5` prints it without its `MD5:` prefix.
    pub fn md5(&self) -> &str {
        &self.md5
    }

    /// `SHA256:…`, as `ssh-keygen -l` prints it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

/// What follows the options field of an `authorized_keys` line (`opt,opt="a b" type base64 …`):
/// the field ends at the first blank outside double quotes, where `\"` does not close a quote.
fn skip_options(line: &str) -> Option<&str> {
    let mut quoted = false;
    let mut escaped = false;
    for (at, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => return Some(line[at..].trim_start()),
            _ => {}
        }
    }
    None
}

/// The names of an `authorized_keys` line's options (`no-pty`, `command`, …), lower-cased as
/// sshd matches them; none when the line starts with its key type.
pub fn option_names(line: &str) -> Vec<String> {
    let text = line.trim();
    let first = text.split_whitespace().next().unwrap_or_default();
    if type_word(first).is_some() {
        return Vec::new();
    }
    let Some(rest) = skip_options(text) else {
        return Vec::new();
    };
    let field = &text[..text.len() - rest.len()];
    let mut names = Vec::new();
    let (mut quoted, mut escaped, mut start) = (false, false, 0);
    for (at, c) in field.char_indices().chain([(field.len(), ',')]) {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ',' if !quoted => {
                let option = field[start..at].trim();
                let name = option.split('=').next().unwrap_or_default();
                names.push(name.to_ascii_lowercase());
                start = at + 1;
            }
            _ => {}
        }
    }
    names
}

/// The canonical spelling of a supported (or at least recognised) key type word.
fn type_word(token: &str) -> Option<&'static str> {
    const KNOWN: [&str; 8] = [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
        "ssh-dss",
    ];
    KNOWN.iter().copied().find(|k| *k == token)
}

fn decode_blob(b64: &str) -> Option<Vec<u8>> {
    STANDARD.decode(b64).ok().filter(|b| !b.is_empty())
}

fn check_policy(data: &KeyData, policy: &KeyPolicy) -> Result<u32, KeyError> {
    match data {
        KeyData::Ed25519(_) | KeyData::SkEd25519(_) => Ok(256),
        KeyData::SkEcdsaSha2NistP256(sk) => on_curve(
            p256::PublicKey::from_sec1_bytes(sk.ec_point().as_bytes()),
            256,
        ),
        KeyData::Ecdsa(EcdsaPublicKey::NistP256(point)) => {
            on_curve(p256::PublicKey::from_sec1_bytes(point.as_bytes()), 256)
        }
        KeyData::Ecdsa(EcdsaPublicKey::NistP384(point)) => {
            on_curve(p384::PublicKey::from_sec1_bytes(point.as_bytes()), 384)
        }
        KeyData::Ecdsa(EcdsaPublicKey::NistP521(point)) => {
            on_curve(p521::PublicKey::from_sec1_bytes(point.as_bytes()), 521)
        }
        KeyData::Rsa(rsa) => {
            let bits = mpint_bits(rsa.n.as_positive_bytes().ok_or(KeyError::Malformed)?);
            if bits < policy.min_rsa_bits {
                return Err(KeyError::TooSmall {
                    min: policy.min_rsa_bits,
                });
            }
            Ok(bits)
        }
        KeyData::Dsa(dsa) if policy.allow_dsa => Ok(mpint_bits(
            dsa.p.as_positive_bytes().ok_or(KeyError::Malformed)?,
        )),
        KeyData::Dsa(_) => Err(KeyError::ForbiddenType),
        _ => Err(KeyError::ForbiddenType),
    }
}

/// `bits` if the key's SEC1 point was found on its curve (and not the identity). ssh-key only
/// checks the point's length, but a point off its curve can never verify a signature (and
/// `ssh-keygen -l` refuses it), so such a key is malformed, not merely useless.
fn on_curve<E>(point: Result<impl Sized, E>, bits: u32) -> Result<u32, KeyError> {
    point.map(|_| bits).map_err(|_| KeyError::Malformed)
}

fn mpint_bits(bytes: &[u8]) -> u32 {
    let Some(first) = bytes.iter().position(|b| *b != 0) else {
        return 0;
    };
    (bytes.len() - first - 1) as u32 * 8 + (8 - bytes[first].leading_zeros())
}

fn md5_fingerprint(blob: &[u8]) -> String {
    // One `format!` per byte cost twice the digest itself on every key added.
    let hex = hex::encode(Md5::digest(blob));
    let mut out = String::with_capacity(47);
    for (i, digit) in hex.chars().enumerate() {
        if i > 0 && i % 2 == 0 {
            out.push(':');
        }
        out.push(digit);
    }
    out
}
