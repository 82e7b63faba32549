//! Public-key parsing over `fixtures/keys/`: fingerprints equal OpenSSH's, normalisation, refusals.

use std::path::Path;
use std::process::Command;

use keygate::core::{KeyError, KeyPolicy, PublicKey};

struct Row {
    file: String,
    expect: String,
    kind: String,
    bits: String,
    md5: String,
    sha256: String,
    normalized: String,
}

fn dir() -> &'static Path {
    Box::leak(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/keys")
            .into_boxed_path(),
    )
}

fn manifest() -> Vec<Row> {
    let text = std::fs::read_to_string(dir().join("manifest.tsv")).expect("manifest");
    text.lines()
        .skip(1)
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 7, "manifest row: {line}");
            Row {
                file: f[0].into(),
                expect: f[1].into(),
                kind: f[2].into(),
                bits: f[3].into(),
                md5: f[4].into(),
                sha256: f[5].into(),
                normalized: f[6].into(),
            }
        })
        .collect()
}

fn read(file: &str) -> String {
    std::fs::read_to_string(dir().join(file)).expect("fixture")
}

/// What `ssh-keygen -l [-E md5] -f FILE` prints as its fingerprint, for a one-line key.
fn ssh_keygen_fingerprint(line: &str, md5: bool) -> Option<String> {
    let tmp = tempfile::NamedTempFile::new().ok()?;
    std::fs::write(tmp.path(), format!("{line}\n")).ok()?;
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-l");
    if md5 {
        cmd.args(["-E", "md5"]);
    }
    let out = cmd.arg("-f").arg(tmp.path()).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let fp = text.split_whitespace().nth(1)?.to_string();
    Some(fp.strip_prefix("MD5:").map(str::to_string).unwrap_or(fp))
}

#[test]
fn manifest_covers_every_fixture_and_every_accepted_type() {
    let rows = manifest();
    let mut files: Vec<String> = std::fs::read_dir(dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".pub") || n.ends_with(".key"))
        .collect();
    files.sort();
    let mut listed: Vec<String> = rows.iter().map(|r| r.file.clone()).collect();
    listed.sort();
    assert_eq!(files, listed);
    for kind in [
        "ssh-ed25519",
        "ssh-rsa",
        "ecdsa-sha2-nistp256",
        "ecdsa-sha2-nistp384",
        "ecdsa-sha2-nistp521",
        "sk-ssh-ed25519@openssh.com",
        "sk-ecdsa-sha2-nistp256@openssh.com",
    ] {
        assert!(
            rows.iter().any(|r| r.expect == "ok" && r.kind == kind),
            "no {kind} fixture"
        );
    }
    for bits in ["2048", "3072", "4096"] {
        assert!(
            rows.iter()
                .any(|r| r.kind == "ssh-rsa" && r.bits == bits && r.expect == "ok")
        );
    }
}

#[test]
fn accepted_keys_parse_with_openssh_fingerprints() {
    let policy = KeyPolicy::default();
    let have_ssh_keygen = Command::new("ssh-keygen").arg("-?").output().is_ok();
    let mut checked_live = 0;
    for row in manifest().iter().filter(|r| r.expect == "ok") {
        let key = PublicKey::parse(&read(&row.file), &policy)
            .unwrap_or_else(|e| panic!("{} refused: {e}", row.file));
        assert_eq!(key.kind(), row.kind, "{}", row.file);
        assert_eq!(key.bits().to_string(), row.bits, "{}", row.file);
        assert_eq!(key.md5(), row.md5, "{} md5", row.file);
        assert_eq!(key.sha256(), row.sha256, "{} sha256", row.file);
        assert_eq!(key.text(), row.normalized, "{} normalised text", row.file);
        // The manifest was made with ssh-keygen; where it is installed, ask it again now.
        if have_ssh_keygen {
            assert_eq!(
                ssh_keygen_fingerprint(&key.text(), true).as_deref(),
                Some(key.md5())
            );
            assert_eq!(
                ssh_keygen_fingerprint(&key.text(), false).as_deref(),
                Some(key.sha256())
            );
            checked_live += 1;
        }
    }
    if have_ssh_keygen {
        assert!(checked_live >= 12);
    }
}

#[test]
fn normalisation_joins_wrapped_base64_drops_options_and_keeps_one_comment_token() {
    let policy = KeyPolicy::default();
    let plain = PublicKey::parse(&read("ed25519.pub"), &policy).unwrap();
    for file in [
        "wrapped-ed25519.pub",
        "options-ed25519.pub",
        "spaced-comment-ed25519.pub",
    ] {
        let key = PublicKey::parse(&read(file), &policy).unwrap();
        assert_eq!(key.sha256(), plain.sha256(), "{file}");
        assert_eq!(key.bare_text(), plain.bare_text(), "{file}");
    }
    let spaced = PublicKey::parse(&read("spaced-comment-ed25519.pub"), &policy).unwrap();
    assert!(spaced.text().ends_with(" first"), "{}", spaced.text());
    assert_eq!(plain.bare_text().split(' ').count(), 2);
}

#[test]
fn refusals_name_their_reason() {
    let policy = KeyPolicy::default();
    for row in manifest().iter().filter(|r| r.expect != "ok") {
        let err = PublicKey::parse(&read(&row.file), &policy).expect_err(&row.file);
        let expected = match row.expect.as_str() {
            "dsa" => KeyError::ForbiddenType,
            "weak-rsa" => KeyError::TooSmall { min: 2048 },
            "mismatch" => KeyError::TypeMismatch,
            "private" => KeyError::Private,
            "invalid" if row.file == "empty.pub" => KeyError::Blank,
            "invalid" => KeyError::Malformed,
            other => panic!("unknown expectation {other}"),
        };
        assert_eq!(err, expected, "{}", row.file);
    }
}

#[test]
fn policy_settings_admit_dsa_and_small_rsa() {
    let lax = KeyPolicy {
        min_rsa_bits: 1024,
        allow_dsa: true,
    };
    assert_eq!(
        PublicKey::parse(&read("dsa-1024.pub"), &lax)
            .unwrap()
            .bits(),
        1024
    );
    assert_eq!(
        PublicKey::parse(&read("rsa-1024.pub"), &lax)
            .unwrap()
            .bits(),
        1024
    );
    let strict = KeyPolicy {
        min_rsa_bits: 3072,
        allow_dsa: false,
    };
    assert_eq!(
        PublicKey::parse(&read("rsa-2048.pub"), &strict),
        Err(KeyError::TooSmall { min: 3072 })
    );
    assert!(PublicKey::parse(&read("rsa-3072.pub"), &strict).is_ok());
}

#[test]
fn length_limit_and_trailing_garbage() {
    let policy = KeyPolicy::default();
    let key = read("ed25519.pub");
    let long = format!("{} {}", key.trim(), "x".repeat(5000));
    assert_eq!(PublicKey::parse(&long, &policy), Err(KeyError::TooLong));
    // Bytes appended inside the blob must not be silently accepted.
    let b64 = key.split_whitespace().nth(1).unwrap();
    use base64::Engine;
    let mut blob = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    blob.extend_from_slice(b"tail");
    let padded = format!(
        "ssh-ed25519 {}",
        base64::engine::general_purpose::STANDARD.encode(&blob)
    );
    assert_eq!(PublicKey::parse(&padded, &policy), Err(KeyError::Malformed));
}

#[test]
fn options_field_follows_the_authorized_keys_grammar() {
    let policy = KeyPolicy::default();
    let real = PublicKey::parse(&read("ed25519.pub"), &policy).unwrap();
    let decoy = PublicKey::parse(&read("ecdsa-256.pub"), &policy).unwrap();
    // A type word and a key inside a quoted option are part of the option, not the key.
    let line = format!(
        "command=\"/bin/x {}\",no-pty {} real",
        decoy.bare_text(),
        real.bare_text()
    );
    let parsed = PublicKey::parse(&line, &policy).unwrap();
    assert_eq!(parsed.sha256(), real.sha256());
    assert_eq!(parsed.text(), format!("{} real", real.bare_text()));
    // Escaped quotes do not end the option.
    let line = format!("command=\"echo \\\" ssh-rsa x\" {}", real.bare_text());
    assert_eq!(
        PublicKey::parse(&line, &policy).unwrap().sha256(),
        real.sha256()
    );
    // Only one options field: free words in front of the key are not options.
    let line = format!("hello world {}", real.bare_text());
    assert_eq!(PublicKey::parse(&line, &policy), Err(KeyError::Malformed));
    // An unterminated quote never reaches a key.
    let line = format!("command=\"oops {}", real.bare_text());
    assert_eq!(PublicKey::parse(&line, &policy), Err(KeyError::Malformed));
}

#[test]
fn whitespace_variants_and_odd_comments() {
    let policy = KeyPolicy::default();
    let real = PublicKey::parse(&read("ed25519.pub"), &policy).unwrap();
    let (kind, b64) = real
        .bare_text()
        .split_once(' ')
        .map(|(k, b)| (k.to_string(), b.to_string()))
        .unwrap();
    for line in [
        format!("{kind}\t{b64}\tme@host\r\n"),
        format!("  {kind} {b64}\r\n"),
        format!("{kind}\u{a0}{b64}"),
    ] {
        assert_eq!(
            PublicKey::parse(&line, &policy).unwrap().sha256(),
            real.sha256(),
            "{line:?}"
        );
    }
    // Unpadded base64 is not the canonical form OpenSSH writes; it is refused, not guessed at.
    let unpadded = format!("{kind} {}", b64.trim_end_matches('='));
    if unpadded != real.bare_text() {
        assert_eq!(
            PublicKey::parse(&unpadded, &policy),
            Err(KeyError::Malformed)
        );
    }
    // A comment is kept as its first token, never more.
    let parsed = PublicKey::parse(&format!("{kind} {b64} a@b second"), &policy).unwrap();
    assert_eq!(parsed.text(), format!("{kind} {b64} a@b"));
    // One carrying control or bidi characters is dropped whole (core::text's rule); the key stays.
    for comment in [
        "a\u{7}b",
        "ci\u{1b}]0;x\u{7}",
        "nul\u{0}",
        "x\u{202e}y",
        "i\u{2066}",
    ] {
        let parsed = PublicKey::parse(&format!("{kind} {b64} {comment} second"), &policy).unwrap();
        assert_eq!(parsed.text(), real.bare_text(), "{comment:?}");
        assert_eq!(parsed.sha256(), real.sha256());
    }
}

#[test]
fn off_curve_ecdsa_keys_are_malformed_and_ssh_keygen_agrees() {
    let policy = KeyPolicy::default();
    let have_ssh_keygen = Command::new("ssh-keygen").arg("-?").output().is_ok();
    for bits in [256, 384, 521] {
        let file = format!("ecdsa-{bits}-off-curve.pub");
        let text = read(&file);
        assert!(
            text.starts_with(&format!("ecdsa-sha2-nistp{bits} ")),
            "{file}"
        );
        assert_eq!(
            PublicKey::parse(&text, &policy),
            Err(KeyError::Malformed),
            "{file}"
        );
        if have_ssh_keygen {
            let out = Command::new("ssh-keygen")
                .arg("-l")
                .arg("-f")
                .arg(dir().join(&file))
                .output()
                .unwrap();
            assert!(!out.status.success(), "ssh-keygen -l accepted {file}");
        }
    }
    // The same curves' real keys still pass: the check is the curve equation, not the type.
    for bits in [256, 384, 521] {
        assert!(PublicKey::parse(&read(&format!("ecdsa-{bits}.pub")), &policy).is_ok());
    }
}

#[test]
fn an_ed25519_blob_of_the_wrong_length_is_malformed() {
    use base64::Engine;
    let policy = KeyPolicy::default();
    for len in [0usize, 1, 31, 33, 64] {
        let mut blob = Vec::new();
        blob.extend_from_slice(&11u32.to_be_bytes());
        blob.extend_from_slice(b"ssh-ed25519");
        blob.extend_from_slice(&(len as u32).to_be_bytes());
        blob.extend(std::iter::repeat_n(1u8, len));
        let line = format!(
            "ssh-ed25519 {}",
            base64::engine::general_purpose::STANDARD.encode(&blob)
        );
        assert_eq!(
            PublicKey::parse(&line, &policy),
            Err(KeyError::Malformed),
            "{len}"
        );
    }
}
