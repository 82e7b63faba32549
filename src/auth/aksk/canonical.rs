//! The SDK's `CanonicalRequest` and `StringToSign`, built from the request exactly as it arrived.

use std::borrow::Cow;

use hmac::Mac;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use sha2::{Digest, Sha256};

use super::{ALGORITHM, SignError, SignedRequest, find_header, mac, py_strip};

const CONTENT_HASH_HEADER: &str = "x-sdk-content-sha256";
pub(super) const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
const EMPTY_BODY_HASH: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// Python's `quote(s, safe='~')`: since 3.7 its always-safe set is exactly RFC 3986 unreserved.
const QUOTE_SAFE_TILDE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The SDK's `CanonicalRequest`. `signed_headers` are lower-case names in signing order; each must
/// occur exactly once in the request.
pub fn canonical_request(
    req: &SignedRequest,
    signed_headers: &[&str],
) -> Result<String, SignError> {
    let mut out = String::with_capacity(256 + req.raw_path.len() + req.raw_query.len());
    out.push_str(&req.method.to_ascii_uppercase());
    out.push('\n');
    out.push_str(&canonical_uri(req.raw_path));
    out.push('\n');
    out.push_str(&canonical_query(req.raw_query));
    out.push('\n');
    for &name in signed_headers {
        let value = find_header(req.headers, name)?
            .ok_or_else(|| SignError::MissingSignedHeader(name.to_owned()))?;
        out.push_str(name);
        out.push(':');
        out.push_str(py_strip(value));
        out.push('\n');
    }
    // Python builds this part as '\n'.join(lines) + '\n': a lone newline when nothing is signed.
    if signed_headers.is_empty() {
        out.push('\n');
    }
    out.push('\n');
    out.push_str(&signed_headers.join(";"));
    out.push('\n');
    out.push_str(&payload_hash(req)?);
    Ok(out)
}

/// `SDK-HMAC-SHA256\n<date>\n<hex sha256 of the canonical request>`.
pub fn string_to_sign(date: &str, canonical_request: &str) -> String {
    format!(
        "{ALGORITHM}\n{date}\n{}",
        hex::encode(Sha256::digest(canonical_request.as_bytes()))
    )
}

/// Lower-case hex HMAC-SHA256 of the `StringToSign` under the secret key.
pub fn sign(secret: &[u8], string_to_sign: &str) -> String {
    hex::encode(mac(secret, string_to_sign).finalize().into_bytes())
}

/// The SDK unquotes the whole path *before* splitting on `/`, so an encoded `%2F` inside a
/// segment is signed as a separator: `/a%2Fb` canonicalises to `/a/b/`.
pub(super) fn canonical_uri(raw_path: &str) -> String {
    let decoded = py_unquote(raw_path);
    let mut out = decoded
        .split('/')
        .map(py_quote)
        .collect::<Vec<_>>()
        .join("/");
    if !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The SDK sorts its (key, value) pairs *before* quoting, so sorting happens on decoded text
/// (`~` sorts before `é`, although `%C3%A9` would sort before `~`).
pub(super) fn canonical_query(raw_query: &str) -> String {
    let mut pairs: Vec<(Cow<str>, Cow<str>)> = raw_query
        .split('&')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            (py_unquote(k), py_unquote(v))
        })
        .collect();
    // Rust compares UTF-8 bytewise, which orders like Python's code-point comparison of str.
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", py_quote(k), py_quote(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Body hash as the SDK computes it: an empty body always hashes as empty, even when the client
/// declared UNSIGNED-PAYLOAD. Only that exact declaration is honoured; any other claimed hash is
/// ignored for the real one, so a wrong claim fails the signature instead of being trusted.
fn payload_hash(req: &SignedRequest) -> Result<String, SignError> {
    if req.body.is_empty() {
        return Ok(EMPTY_BODY_HASH.to_owned());
    }
    if find_header(req.headers, CONTENT_HASH_HEADER)?
        .is_some_and(|v| py_strip(v) == UNSIGNED_PAYLOAD)
    {
        return Ok(UNSIGNED_PAYLOAD.to_owned());
    }
    Ok(hex::encode(Sha256::digest(req.body)))
}

/// Python's `unquote`: `+` stays as is, malformed escapes are kept literally and invalid UTF-8
/// becomes U+FFFD (its default `errors='replace'`).
fn py_unquote(s: &str) -> Cow<'_, str> {
    percent_decode_str(s).decode_utf8_lossy()
}

fn py_quote(s: &str) -> String {
    utf8_percent_encode(s, QUOTE_SAFE_TILDE).to_string()
}
