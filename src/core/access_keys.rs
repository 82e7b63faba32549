//! CodeArts access keys (AK/SK pairs) and the principals behind them.

use time::OffsetDateTime;

use super::audit::{Actor, Change, record};
use super::{Core, Error, Missing, Principal, Result, Scope, SingleUse};
use crate::auth::aksk::{self, SignError, SignedRequest};
use crate::auth::random_bytes;
use serde_json::json;

/// Huawei Cloud's shapes, so the values look familiar and fit every SDK's expectations:
/// a 20-character upper-case AK (about 103 random bits) and a 40-character SK (about 238 bits).
const AK_LEN: usize = 20;
const SK_LEN: usize = 40;
const AK_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const SK_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A header of the signed request, by lower-case name.
fn header<'a>(req: &SignedRequest<'a>, name: &str) -> Option<&'a str> {
    req.headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| *v)
}

impl Core {
    /// Creates an access key for a user and returns `(AK, SK)`: the only time the SK is shown.
    pub fn add_access_key(&self, username: &str) -> Result<(String, String)> {
        let access_key = random_string(AK_ALPHABET, AK_LEN);
        let secret_key = random_string(SK_ALPHABET, SK_LEN);
        self.store.write(|db| {
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            db.insert_access_key(user.id, &access_key, &secret_key)?;
            // The AK names the pair, as a username does; the SK never leaves this function's caller.
            record(
                db,
                Actor::Cli,
                Change::on_user("access_key.issue", &user, json!({"access_key": access_key})),
            )
        })?;
        Ok((access_key, secret_key))
    }

    /// A user's access keys, oldest first; secrets are never read back out.
    pub fn access_keys(&self, username: &str) -> Result<Vec<String>> {
        self.store.read(|db| {
            let user = db
                .user_by_name(username)?
                .ok_or(Error::NotFound(Missing::User))?;
            Ok(db.access_keys_of(user.id)?)
        })
    }

    /// Deletes an access key; requests signed with it fail from then on.
    pub fn revoke_access_key(&self, access_key: &str) -> Result<()> {
        self.store.write(|db| {
            let (user, _secret) = db
                .access_key_owner(access_key)?
                .ok_or(Error::NotFound(Missing::Token))?;
            db.delete_access_key(access_key)?;
            record(
                db,
                Actor::Cli,
                Change::on_user(
                    "access_key.revoke",
                    &user,
                    json!({"access_key": access_key}),
                ),
            )
        })
    }

    /// The user behind an access key, and the secret that signs their requests. An access key
    /// carries its user's full rights: CodeArts has no read-only AK.
    pub fn authenticate_access_key(&self, access_key: &str) -> Result<(Principal, Vec<u8>)> {
        match self.store.read(|db| db.access_key_owner(access_key))? {
            Some((user, secret)) => Ok((
                Principal {
                    user,
                    scope: Scope::Api,
                    origin: None,
                },
                secret.into_bytes(),
            )),
            None => Err(Error::Unauthorized),
        }
    }

    /// Checks an SDK-HMAC-SHA256 signature. The outer error is the store failing (busy, broken);
    /// the inner one is the verdict on the request, whose reason is safe to log. On success comes
    /// the request's `SingleUse` when it may change something (every method but GET, except the
    /// read-only check-key POSTs): the caller runs the change under `Core::single_use`.
    pub fn authenticate_signature(
        &self,
        req: &SignedRequest,
        now: OffsetDateTime,
    ) -> Result<std::result::Result<(Principal, Option<SingleUse>), SignError>> {
        // The SDK leaves the body unsigned only for bodies that are not JSON, which no route here
        // takes; accepting it would let a captured request carry another body.
        if header(req, "x-sdk-content-sha256").is_some_and(|v| v.trim() == "UNSIGNED-PAYLOAD")
            && !req.body.is_empty()
        {
            return Ok(Err(SignError::UnsignedBody));
        }
        // A token beside a signature narrows what the signer may do; unsigned, it could be dropped.
        if header(req, "x-auth-token").is_some()
            && !header(req, "authorization")
                .and_then(aksk::parse_authorization)
                .is_some_and(|auth| auth.signed_headers.contains(&"x-auth-token"))
        {
            return Ok(Err(SignError::HeaderNotSigned("x-auth-token")));
        }
        let mut principal = None;
        let mut failure = None;
        let verdict = aksk::verify(req, now, aksk::DEFAULT_MAX_SKEW, |access_key| {
            match self.authenticate_access_key(access_key) {
                Ok((who, secret)) => {
                    principal = Some(who);
                    Some(secret)
                }
                Err(Error::Unauthorized) => None,
                Err(other) => {
                    failure = Some(other);
                    None
                }
            }
        });
        if let Some(err) = failure {
            return Err(err);
        }
        let who = match (verdict, principal) {
            (Ok(_), Some(who)) => who,
            (Ok(_), None) => return Ok(Err(SignError::UnknownAccessKey)),
            (Err(err), _) => return Ok(Err(err)),
        };
        let changes = req.method != "GET"
            && req.method != "HEAD"
            && !req.raw_path.trim_end_matches('/').ends_with("/check-key");
        let single_use = changes.then(|| {
            // The verifier takes hex in either case, so the record must not tell `ab` from `AB`:
            // otherwise each captured request could be replayed once per spelling. The AK is
            // looked up exactly, so only its stored spelling verifies.
            let signature = header(req, "authorization")
                .and_then(aksk::parse_authorization)
                .map(|auth| format!("{}:{}", auth.access, auth.signature.to_ascii_lowercase()))
                .unwrap_or_default();
            SingleUse::new(signature)
        });
        Ok(Ok((who, single_use)))
    }
}

/// `len` characters drawn uniformly from `alphabet`: bytes past the largest multiple of its
/// length are thrown away, since keeping them would make the first letters more likely.
fn random_string(alphabet: &[u8], len: usize) -> String {
    let n = alphabet.len();
    let cutoff = 256 - 256 % n;
    let mut out = String::with_capacity(len);
    while out.len() < len {
        for byte in random_bytes::<64>() {
            if usize::from(byte) < cutoff && out.len() < len {
                out.push(char::from(alphabet[usize::from(byte) % n]));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_strings_have_the_shape_asked_for() {
        let ak = random_string(AK_ALPHABET, AK_LEN);
        assert_eq!(ak.len(), 20);
        assert!(
            ak.bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
        );
        let sk = random_string(SK_ALPHABET, SK_LEN);
        assert_eq!(sk.len(), 40);
        assert!(sk.bytes().all(|b| b.is_ascii_alphanumeric()));
        assert_ne!(sk, random_string(SK_ALPHABET, SK_LEN));
    }

    #[test]
    fn every_letter_of_the_alphabet_turns_up() {
        let drawn = random_string(AK_ALPHABET, 4000);
        for &letter in AK_ALPHABET {
            assert!(drawn.contains(char::from(letter)), "{}", char::from(letter));
        }
    }
}
