//! The signer's test vectors and every refusal `verify` makes.

use super::canonical::{UNSIGNED_PAYLOAD, canonical_query, canonical_uri};
use super::*;
use serde_json::Value;
use time::macros::datetime;

const VECTORS: &str = include_str!("../../../fixtures/codearts/signature_test_vectors.json");
const AK: &str = "TESTAK";
const SK: &[u8] = b"TESTSK";
const SKEW: Duration = DEFAULT_MAX_SKEW;

/// An owned request that tests can mutate and then borrow as a `SignedRequest`.
#[derive(Clone)]
struct Req {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn with<T>(&self, f: impl FnOnce(&SignedRequest) -> T) -> T {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        f(&SignedRequest {
            method: &self.method,
            raw_path: &self.path,
            raw_query: &self.query,
            headers: &headers,
            body: &self.body,
        })
    }

    fn verify_at(&self, now: OffsetDateTime) -> Result<String, SignError> {
        self.with(|r| verify(r, now, SKEW, |ak| (ak == AK).then(|| SK.to_vec())).map(str::to_owned))
    }

    fn header(&self, name: &str) -> &str {
        let (_, v) = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .unwrap();
        v
    }

    fn set_header(&mut self, name: &str, value: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_owned(), value.to_owned()));
    }

    fn date(&self) -> OffsetDateTime {
        parse_sdk_date(self.header(DATE_HEADER)).unwrap()
    }

    /// Replaces the Authorization header with a correct signature over `signed`, so a test
    /// can show that a rule other than the signature check is what rejects the request.
    fn resign(&mut self, access: &str, secret: &[u8], signed: &[&str]) {
        let canonical = self.with(|r| canonical_request(r, signed)).unwrap();
        let sts = string_to_sign(self.header(DATE_HEADER), &canonical);
        let value = format!(
            "{ALGORITHM} Access={access}, SignedHeaders={}, Signature={}",
            signed.join(";"),
            sign(secret, &sts)
        );
        self.set_header("Authorization", &value);
    }
}

fn vectors() -> Vec<(Req, Value)> {
    let doc: Value = serde_json::from_str(VECTORS).unwrap();
    doc["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let s = |k: &str| v[k].as_str().unwrap().to_owned();
            let headers = v["headers"]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| (h[0].as_str().unwrap().into(), h[1].as_str().unwrap().into()))
                .collect();
            let req = Req {
                method: s("method"),
                path: s("path"),
                query: s("query"),
                headers,
                body: s("body").into_bytes(),
            };
            (req, v.clone())
        })
        .collect()
}

/// The GET with a query and the POST with a body, the two most useful tampering targets.
fn get_and_post() -> (Req, Req) {
    let mut v = vectors().into_iter().map(|(r, _)| r);
    (v.next().unwrap(), v.next().unwrap())
}

fn assert_rejected(req: &Req, expected: SignError) {
    assert_eq!(req.verify_at(req.date()), Err(expected));
}

#[test]
fn fixture_vectors_match_the_python_sdk() {
    let vectors = vectors();
    assert_eq!(vectors.len(), 3);
    for (req, v) in vectors {
        assert_eq!(v["ak"], AK);
        assert_eq!(v["sk"].as_str().unwrap().as_bytes(), SK);
        let auth = parse_authorization(req.header("authorization")).unwrap();
        assert_eq!(auth.access, AK);
        assert_eq!(auth.signature, v["expected_signature"]);

        let canonical = req
            .with(|r| canonical_request(r, &auth.signed_headers))
            .unwrap();
        assert_eq!(canonical, v["canonical_request"]);
        let sts = string_to_sign(req.header(DATE_HEADER), &canonical);
        assert_eq!(sts, v["string_to_sign"]);
        assert_eq!(sign(SK, &sts), v["expected_signature"]);

        assert_eq!(req.verify_at(req.date()), Ok(AK.to_owned()));
    }
}

/// Made with huaweicloudsdkcore 3.1.219's own `Signer` (AK TESTAK, SK TESTSK): the path and
/// query are what it put on the wire, the canonical request and signature what it computed.
struct SdkCase {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    query: &'static str,
    /// Besides X-Sdk-Date and Host, which all cases share.
    headers: &'static [(&'static str, &'static str)],
    body: &'static str,
    canonical: &'static str,
    signature: &'static str,
}

const SDK_CASES: &[SdkCase] = &[
    SdkCase {
        name: "encoded slash in a segment",
        method: "DELETE",
        path: "/v4/repositories/a%2Fb/deploy-keys",
        query: "",
        headers: &[("Content-Type", "application/json")],
        body: "",
        canonical: "DELETE\n/v4/repositories/a/b/deploy-keys/\n\ncontent-type:application/json\nhost:127.0.0.1:38735\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "d401a4ea062e9a613d391abecb3195498ab64d512c135a1a1753f1973a6ee20e",
    },
    SdkCase {
        name: "space, tilde, plus, non-ASCII and percent in a segment",
        method: "GET",
        path: "/v4/groups/g%20r~p%2B%C3%A9%25/deploy-keys",
        query: "",
        headers: &[("Content-Type", "application/json")],
        body: "",
        canonical: "GET\n/v4/groups/g%20r~p%2B%C3%A9%25/deploy-keys/\n\ncontent-type:application/json\nhost:127.0.0.1:38735\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "d52bd3a1b9322c0a79be19c112f5238c721352227f2db24b12e085081475bf22",
    },
    SdkCase {
        name: "repeated keys, empty value, reserved characters in the query",
        method: "GET",
        path: "/v4/x",
        query: "a=A&a=b%20c%2Bd%2F%C3%A9&e=&m~=~&z=1",
        headers: &[("Content-Type", "application/json")],
        body: "",
        canonical: "GET\n/v4/x/\na=A&a=b%20c%2Bd%2F%C3%A9&e=&m~=~&z=1\ncontent-type:application/json\nhost:127.0.0.1:38735\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "ed806cdfef405c44b1e309703991de09585f4afcda23b9d1533c836d371e90dd",
    },
    SdkCase {
        name: "query sorted on decoded values",
        method: "GET",
        path: "/v4/x",
        query: "k=~&k=%C3%A9&k=%C3%A9~",
        headers: &[("Content-Type", "application/json")],
        body: "",
        canonical: "GET\n/v4/x/\nk=~&k=%C3%A9&k=%C3%A9~\ncontent-type:application/json\nhost:127.0.0.1:38735\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "83d2172050549fb88f5e67b83cdb15c1c8a9ac5b84da54931dd22b5c5fc2da69",
    },
    SdkCase {
        name: "non-JSON body sent as UNSIGNED-PAYLOAD",
        method: "POST",
        path: "/v4/upload",
        query: "",
        headers: &[
            ("Content-Type", "application/octet-stream"),
            ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
        ],
        body: "hello",
        canonical: "POST\n/v4/upload/\n\ncontent-type:application/octet-stream\nhost:127.0.0.1:38735\nx-sdk-content-sha256:UNSIGNED-PAYLOAD\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-content-sha256;x-sdk-date\nUNSIGNED-PAYLOAD",
        signature: "07bdf4b89d7115ab019aae773526bdfaac1a2e11d9f2b7255d8c36e51a5b9b9c",
    },
    SdkCase {
        name: "UNSIGNED-PAYLOAD with an empty body still hashes as empty",
        method: "POST",
        path: "/v4/upload",
        query: "",
        headers: &[
            ("Content-Type", "text/plain"),
            ("X-Sdk-Content-Sha256", "UNSIGNED-PAYLOAD"),
        ],
        body: "",
        canonical: "POST\n/v4/upload/\n\ncontent-type:text/plain\nhost:127.0.0.1:38735\nx-sdk-content-sha256:UNSIGNED-PAYLOAD\nx-sdk-date:20261122T025252Z\n\ncontent-type;host;x-sdk-content-sha256;x-sdk-date\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        signature: "42f145488d3c0efa8fdb9ad0d5cc3521e2ead733475c2d19e6ad8de343674926",
    },
];

#[test]
fn python_sdk_edge_cases() {
    for case in SDK_CASES {
        let mut headers: Vec<(String, String)> = case
            .headers
            .iter()
            .map(|&(n, v)| (n.to_owned(), v.to_owned()))
            .collect();
        headers.push(("X-Sdk-Date".into(), "20261122T025252Z".into()));
        headers.push(("Host".into(), "127.0.0.1:38735".into()));
        let mut signed: Vec<String> = headers.iter().map(|(n, _)| n.to_lowercase()).collect();
        signed.sort();
        headers.push((
            "Authorization".into(),
            format!(
                "{ALGORITHM} Access={AK}, SignedHeaders={}, Signature={}",
                signed.join(";"),
                case.signature
            ),
        ));
        let req = Req {
            method: case.method.into(),
            path: case.path.into(),
            query: case.query.into(),
            headers,
            body: case.body.into(),
        };
        let signed: Vec<&str> = signed.iter().map(String::as_str).collect();
        let got = req.with(|r| canonical_request(r, &signed)).unwrap();
        assert_eq!(got, case.canonical, "{}", case.name);
        assert_eq!(
            req.verify_at(req.date()),
            Ok(AK.to_owned()),
            "{}",
            case.name
        );
    }
}

#[test]
fn encoded_segment_canonicalises_like_the_python_sdk() {
    // quote(unquote(path).split('/')) in Python: the %2F is decoded before the split.
    assert_eq!(
        canonical_uri("/v4/repositories/a%2Fb/deploy-keys"),
        "/v4/repositories/a/b/deploy-keys/"
    );
    assert_eq!(
        canonical_uri("/v4/repositories/a%2fb/"),
        "/v4/repositories/a/b/"
    );
    assert_eq!(canonical_uri("/a%20b/c d/%7e~"), "/a%20b/c%20d/~~/");
    assert_eq!(canonical_uri("/a+b/%2B"), "/a%2Bb/%2B/");
    assert_eq!(canonical_uri("/"), "/");
    assert_eq!(canonical_uri(""), "/");
    // unquote keeps a malformed escape literally and replaces invalid UTF-8 with U+FFFD.
    assert_eq!(canonical_uri("/%zz/%FF"), "/%25zz/%EF%BF%BD/");
}

#[test]
fn query_canonicalisation() {
    assert_eq!(canonical_query(""), "");
    assert_eq!(canonical_query("offset=0&limit=20"), "limit=20&offset=0");
    assert_eq!(canonical_query("b=2&a=2&a=1"), "a=1&a=2&b=2");
    // A bare key means an empty value; stray separators are not parameters.
    assert_eq!(canonical_query("flag&&a=1&"), "a=1&flag=");
    // unquote, not unquote_plus: a literal + is data, not a space.
    assert_eq!(canonical_query("q=a+b&r=a%20b"), "q=a%2Bb&r=a%20b");
    assert_eq!(canonical_query("k=a=b"), "k=a%3Db");
}

#[test]
fn dates_parse_strictly() {
    assert_eq!(
        parse_sdk_date("20261122T025252Z"),
        Some(datetime!(2026-11-22 02:52:52 UTC))
    );
    for bad in [
        "",
        "20261122T025252",
        "20261122 025252Z",
        "2026-11-22T02:52:52Z",
        "20261322T025252Z",
        "20261122T245252Z",
        "+0261122T025252Z",
        "2026112T0252520Z",
    ] {
        assert_eq!(parse_sdk_date(bad), None, "{bad}");
    }
}

#[test]
fn parses_authorization() {
    let value = format!(
        "{ALGORITHM} Signature={}, Access=AK, SignedHeaders=host;x-sdk-date",
        "ab".repeat(32)
    );
    let auth = parse_authorization(&value).unwrap();
    assert_eq!(auth.access, "AK");
    assert_eq!(auth.signed_headers, ["host", "x-sdk-date"]);
    let sig = "0".repeat(64);
    for bad in [
        String::new(),
        "Bearer abc".to_owned(),
        format!("SDK-HMAC-SM3 Access=AK, SignedHeaders=host, Signature={sig}"),
        format!("{ALGORITHM}Access=AK, SignedHeaders=host, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, SignedHeaders=host"),
        format!("{ALGORITHM} Access=, SignedHeaders=host, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, SignedHeaders=host, Signature=abc"),
        format!(
            "{ALGORITHM} Access=AK, SignedHeaders=host, Signature={}",
            "g".repeat(64)
        ),
        format!("{ALGORITHM} Access=AK, SignedHeaders=Host, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, SignedHeaders=host;;a, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, SignedHeaders=host;host, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, Access=AK, SignedHeaders=host, Signature={sig}"),
        format!("{ALGORITHM} Access=AK, SignedHeaders=host, Signature={sig}, Extra=1"),
        format!("{ALGORITHM} Access=AK SignedHeaders=host Signature={sig}"),
    ] {
        assert_eq!(parse_authorization(&bad), None, "{bad}");
    }
}

#[test]
fn header_names_are_case_insensitive_and_unsigned_headers_are_free() {
    let (mut req, _) = get_and_post();
    for (name, _) in &mut req.headers {
        *name = name.to_ascii_lowercase();
    }
    req.set_header("Accept", "text/html");
    assert_eq!(req.verify_at(req.date()), Ok(AK.to_owned()));
    // The SDK sends the method upper-case, but the canonical form upper-cases it anyway.
    req.method = "get".into();
    assert_eq!(req.verify_at(req.date()), Ok(AK.to_owned()));
}

#[test]
fn tampered_requests_are_rejected() {
    let (get, post) = get_and_post();

    let mut r = get.clone();
    r.method = "DELETE".into();
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.path = "/v4/repositories/2111855749/deploy-keys".into();
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.query = "limit=100&offset=0".into();
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.query = "limit=20&offset=0&extra=1".into();
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.set_header("Host", "gateway.example:443");
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.set_header("Content-Type", "text/plain");
    assert_rejected(&r, SignError::BadSignature);

    let mut r = post.clone();
    let body = std::str::from_utf8(&post.body).unwrap();
    assert!(body.contains("\"can_push\": false"));
    r.body = body
        .replace("\"can_push\": false", "\"can_push\": true")
        .into();
    assert_rejected(&r, SignError::BadSignature);

    let mut r = post.clone();
    r.body.clear();
    assert_rejected(&r, SignError::BadSignature);

    // Claiming an unsigned payload after the fact changes what was signed.
    let mut r = post.clone();
    r.set_header("X-Sdk-Content-Sha256", UNSIGNED_PAYLOAD);
    assert_rejected(&r, SignError::BadSignature);

    // A different X-Sdk-Date changes the string to sign even within the skew window.
    let mut r = get.clone();
    r.set_header("X-Sdk-Date", "20261122T025253Z");
    assert_rejected(&r, SignError::BadSignature);
}

#[test]
fn dates_outside_the_window_are_rejected() {
    let (get, _) = get_and_post();
    let signed_at = get.date();
    let fifteen = Duration::minutes(15);
    let second = Duration::seconds(1);
    assert_eq!(get.verify_at(signed_at + fifteen), Ok(AK.to_owned()));
    assert_eq!(get.verify_at(signed_at - fifteen), Ok(AK.to_owned()));
    // Signed more than 15 minutes ago, or more than 15 minutes in the future.
    assert_eq!(
        get.verify_at(signed_at + fifteen + second),
        Err(SignError::StaleDate)
    );
    assert_eq!(
        get.verify_at(signed_at - fifteen - second),
        Err(SignError::StaleDate)
    );

    // The same with correctly signed requests whose date itself is off.
    let now = signed_at;
    let signed = ["content-type", "host", "user-agent", "x-sdk-date"];
    for date in ["20261122T023751Z", "20261122T030753Z"] {
        let mut r = get.clone();
        r.set_header("X-Sdk-Date", date);
        r.resign(AK, SK, &signed);
        assert_eq!(r.verify_at(now), Err(SignError::StaleDate), "{date}");
    }
    for date in ["20261122T023752Z", "20261122T030752Z"] {
        let mut r = get.clone();
        r.set_header("X-Sdk-Date", date);
        r.resign(AK, SK, &signed);
        assert_eq!(r.verify_at(now), Ok(AK.to_owned()), "{date}");
    }

    let mut r = get.clone();
    r.set_header("X-Sdk-Date", "2026-11-22T02:52:52Z");
    r.resign(AK, SK, &signed);
    assert_eq!(r.verify_at(now), Err(SignError::BadDate));
}

#[test]
fn wrong_or_unknown_keys_are_rejected() {
    let (get, _) = get_and_post();
    let signed = ["content-type", "host", "user-agent", "x-sdk-date"];

    let mut r = get.clone();
    r.resign(AK, b"NOTTESTSK", &signed);
    assert_rejected(&r, SignError::BadSignature);

    let mut r = get.clone();
    r.resign("OTHERAK", SK, &signed);
    assert_rejected(&r, SignError::UnknownAccessKey);

    // The key store is asked once, and only for the access key the client named.
    let lookups = std::cell::Cell::new(0);
    let result = get.with(|req| {
        verify(req, get.date(), SKEW, |ak| {
            lookups.set(lookups.get() + 1);
            assert_eq!(ak, AK);
            None
        })
        .map(str::to_owned)
    });
    assert_eq!(result, Err(SignError::UnknownAccessKey));
    assert_eq!(lookups.get(), 1);
}

#[test]
fn missing_or_garbled_authorization_is_rejected() {
    let (get, _) = get_and_post();

    let mut r = get.clone();
    r.headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("authorization"));
    assert_rejected(&r, SignError::Missing);

    for garbled in [
        "",
        "Basic VEVTVEFLOlRFU1RTSw==",
        "SDK-HMAC-SHA256 Access=TESTAK",
        "SDK-HMAC-SHA256 Access=TESTAK, SignedHeaders=host;x-sdk-date, Signature=xyz",
    ] {
        let mut r = get.clone();
        r.set_header("Authorization", garbled);
        assert_rejected(&r, SignError::Malformed);
    }

    let mut r = get.clone();
    let value = r.header("authorization").to_owned();
    r.headers.push(("authorization".into(), value));
    assert_rejected(&r, SignError::DuplicateHeader("authorization".into()));
}

#[test]
fn host_and_date_must_be_signed_and_present() {
    let (get, _) = get_and_post();

    let mut r = get.clone();
    r.resign(AK, SK, &["content-type", "user-agent", "x-sdk-date"]);
    assert_rejected(&r, SignError::HeaderNotSigned("host"));

    let mut r = get.clone();
    r.resign(AK, SK, &["content-type", "host", "user-agent"]);
    assert_rejected(&r, SignError::HeaderNotSigned("x-sdk-date"));

    let mut r = get.clone();
    r.headers.retain(|(n, _)| n != "Host");
    assert_rejected(&r, SignError::MissingSignedHeader("host".into()));

    let mut r = get.clone();
    r.headers.retain(|(n, _)| n != "User-Agent");
    assert_rejected(&r, SignError::MissingSignedHeader("user-agent".into()));

    let mut r = get.clone();
    r.headers.push(("host".into(), "evil.example".into()));
    assert_rejected(&r, SignError::DuplicateHeader("host".into()));
}
