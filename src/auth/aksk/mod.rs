//! Verifies the SDK-HMAC-SHA256 (AK/SK) signatures Huawei Cloud SDKs put on CodeArts requests.

// The canonicalisation mirrors `huaweicloudsdkcore/signer/signer.py:Signer` (3.1.219) byte for
// byte, quirks included, because a signature only verifies if both sides build the same string.
// It works on the request exactly as received, since any framework normalisation could change it.

mod canonical;
#[cfg(test)]
mod tests;

pub use canonical::{canonical_request, sign, string_to_sign};

use std::ops::Range;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use time::{Date, Duration, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// The scheme word opening the `Authorization` value, and the first line of the `StringToSign`.
pub const ALGORITHM: &str = "SDK-HMAC-SHA256";
/// The header carrying the signing time, `YYYYMMDDTHHMMSSZ` in UTC.
pub const DATE_HEADER: &str = "x-sdk-date";
/// The clock skew Huawei's API Gateway tolerates; callers normally pass this to [`verify`].
pub const DEFAULT_MAX_SKEW: Duration = Duration::minutes(15);

type HmacSha256 = Hmac<Sha256>;

/// A request exactly as it arrived, before any framework normalisation.
#[derive(Clone, Copy)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// As received, still percent-encoded, without the query.
    pub raw_path: &'a str,
    /// As received, without the `?`; may be empty.
    pub raw_query: &'a str,
    /// Every header as received, names in whatever case the client used.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
}

impl std::fmt::Debug for SignedRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Header values (X-Auth-Token) and the body (a pasted private key) may be secrets.
        let names: Vec<&str> = self.headers.iter().map(|(n, _)| *n).collect();
        f.debug_struct("SignedRequest")
            .field("method", &self.method)
            .field("raw_path", &self.raw_path)
            .field("header_names", &names)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

/// The parts of an `SDK-HMAC-SHA256 Access=…, SignedHeaders=…, Signature=…` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization<'a> {
    pub access: &'a str,
    /// Lower-case header names, in the order the client signed them.
    pub signed_headers: Vec<&'a str>,
    /// 64 hex digits.
    pub signature: &'a str,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignError {
    #[error("no Authorization header")]
    Missing,
    #[error("the Authorization header is not a well-formed SDK-HMAC-SHA256 value")]
    Malformed,
    #[error("X-Sdk-Date is not in YYYYMMDDTHHMMSSZ form")]
    BadDate,
    #[error("X-Sdk-Date is outside the allowed clock skew")]
    StaleDate,
    #[error("the `{0}` header must be signed")]
    HeaderNotSigned(&'static str),
    #[error("signed header `{0}` is missing from the request")]
    MissingSignedHeader(String),
    #[error("header `{0}` occurs more than once")]
    DuplicateHeader(String),
    #[error("unknown access key")]
    UnknownAccessKey,
    #[error("signature mismatch")]
    BadSignature,
    #[error("UNSIGNED-PAYLOAD with a body: the body would not be covered by the signature")]
    UnsignedBody,
}

/// Parses `SDK-HMAC-SHA256 Access=AK, SignedHeaders=a;b, Signature=hex`. The three fields may come
/// in any order but each exactly once; header names must be lower-case and unique.
pub fn parse_authorization(value: &str) -> Option<Authorization<'_>> {
    let fields = value.trim().strip_prefix(ALGORITHM)?;
    if !fields.starts_with([' ', '\t']) {
        return None;
    }
    let (mut access, mut signed, mut signature) = (None, None, None);
    for field in fields.split(',') {
        let (key, val) = field.trim().split_once('=')?;
        let slot = match key {
            "Access" => &mut access,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => return None,
        };
        if slot.replace(val).is_some() {
            return None;
        }
    }
    let access = access.filter(|a| !a.is_empty())?;
    let signature =
        signature.filter(|s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()))?;
    let signed_headers: Vec<&str> = signed?.split(';').collect();
    // The SDK lower-cases names before signing, and the canonical form repeats them verbatim, so
    // any other spelling could never have come from it.
    let name_ok = |n: &str| !n.is_empty() && n.bytes().all(is_lower_token_byte);
    if !signed_headers.iter().all(|n| name_ok(n)) {
        return None;
    }
    for (i, name) in signed_headers.iter().enumerate() {
        if signed_headers[..i].contains(name) {
            return None;
        }
    }
    Some(Authorization {
        access,
        signed_headers,
        signature,
    })
}

/// The whole check: header present and well-formed, X-Sdk-Date parses (format YYYYMMDDTHHMMSSZ)
/// and is within `max_skew` of `now`, `host` and `x-sdk-date` are among the signed headers and
/// present, the secret is found via `lookup(access_key)`, and the signature matches in constant
/// time. Returns the access key on success.
pub fn verify<'a, F>(
    req: &SignedRequest<'a>,
    now: OffsetDateTime,
    max_skew: Duration,
    lookup: F,
) -> Result<&'a str, SignError>
where
    F: FnOnce(&str) -> Option<Vec<u8>>,
{
    let value = find_header(req.headers, "authorization")?.ok_or(SignError::Missing)?;
    let auth = parse_authorization(value).ok_or(SignError::Malformed)?;

    // Without these two signed, a captured signature could be replayed forever or at another host.
    for required in ["host", DATE_HEADER] {
        if !auth.signed_headers.contains(&required) {
            return Err(SignError::HeaderNotSigned(required));
        }
    }
    let date = find_header(req.headers, DATE_HEADER)?
        .map(py_strip)
        .ok_or_else(|| SignError::MissingSignedHeader(DATE_HEADER.to_owned()))?;
    let signed_at = parse_sdk_date(date).ok_or(SignError::BadDate)?;
    if (now - signed_at).abs() > max_skew {
        return Err(SignError::StaleDate);
    }

    // Everything that depends only on the request is checked before the key store is touched.
    let canonical = canonical_request(req, &auth.signed_headers)?;
    let mut claimed = [0u8; 32];
    hex::decode_to_slice(auth.signature, &mut claimed).map_err(|_| SignError::Malformed)?;

    let secret = lookup(auth.access).ok_or(SignError::UnknownAccessKey)?;
    // The SDK re-formats its parsed date for the StringToSign; the strict parse above makes the
    // header text identical to that.
    mac(&secret, &string_to_sign(date, &canonical))
        .verify_slice(&claimed)
        .map_err(|_| SignError::BadSignature)?;
    Ok(auth.access)
}

pub(super) fn mac(secret: &[u8], string_to_sign: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(string_to_sign.as_bytes());
    mac
}

/// The value of a header that may occur at most once. A repeated signed header is refused rather
/// than picking one, since the signer and this side could otherwise disagree on which was meant.
pub(super) fn find_header<'a>(
    headers: &[(&'a str, &'a str)],
    name: &str,
) -> Result<Option<&'a str>, SignError> {
    let mut found = None;
    for &(n, v) in headers {
        if n.eq_ignore_ascii_case(name) && found.replace(v).is_some() {
            return Err(SignError::DuplicateHeader(name.to_ascii_lowercase()));
        }
    }
    Ok(found)
}

/// Python's `str.strip()`, which also treats the ASCII separators 0x1C..=0x1F as whitespace.
pub(super) fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// RFC 9110 token characters, minus upper case.
fn is_lower_token_byte(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Strict `%Y%m%dT%H%M%SZ`, always UTC.
fn parse_sdk_date(s: &str) -> Option<OffsetDateTime> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |r: Range<usize>| {
        b[r].iter().try_fold(0u16, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + u16::from(d - b'0'))
        })
    };
    let two = |r: Range<usize>| u8::try_from(num(r)?).ok();
    let month = Month::try_from(two(4..6)?).ok()?;
    let date = Date::from_calendar_date(i32::from(num(0..4)?), month, two(6..8)?).ok()?;
    let time = Time::from_hms(two(9..11)?, two(11..13)?, two(13..15)?).ok()?;
    Some(PrimitiveDateTime::new(date, time).assume_utc())
}
