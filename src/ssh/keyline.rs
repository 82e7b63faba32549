//! Stage 1: the `authorized_keys` line sshd gets for an offered key, from `%u %t %k` taken as the
//! untrusted input they are.

use crate::core::{KeyPolicy, PublicKey};

/// Longest `%t` and `%k` looked at: a 16384-bit RSA key is under 3 KB of base64.
const MAX_TYPE_BYTES: usize = 64;
const MAX_KEY_BYTES: usize = 8192;

/// The offered key, checked: its type word agrees with its blob.
pub fn offered_key(key_type: &str, key_b64: &str) -> Option<PublicKey> {
    let type_ok = !key_type.is_empty()
        && key_type.len() <= MAX_TYPE_BYTES
        && key_type
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"@.-".contains(&b));
    let key_ok = !key_b64.is_empty()
        && key_b64.len() <= MAX_KEY_BYTES
        && key_b64
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    if !type_ok || !key_ok {
        return None;
    }
    // Any key that is stored passed the gateway's policy when it was added; here only the
    // fingerprint matters, so no size or type rule may hide a key that is on the instance.
    let lenient = KeyPolicy {
        min_rsa_bits: 0,
        allow_dsa: true,
    };
    PublicKey::parse(&format!("{key_type} {key_b64}"), &lenient).ok()
}

/// An argument of the forced command, quoted for the shell sshd runs it with. `None` for text
/// that cannot sit inside `command="…"`: a quote of either kind (shlex quotes a `'` with `"`,
/// which would end the option), a backslash, a control character.
pub fn shell_word(text: &str) -> Option<String> {
    if text.is_empty()
        || text
            .chars()
            .any(|c| matches!(c, '"' | '\'' | '\\') || c.is_control())
    {
        return None;
    }
    shlex::try_quote(text).ok().map(|q| q.into_owned())
}

/// `command="<program> ssh git-shell <args…> key-<id>",restrict <type> <base64>`: the forced
/// command runs instead of whatever the client asked for, and `restrict` turns off forwarding,
/// the pty and `~/.ssh/rc`.
pub fn line(program: &[String], key_id: i64, key: &PublicKey) -> Option<String> {
    let mut words = Vec::with_capacity(program.len() + 1);
    for word in program {
        words.push(shell_word(word)?);
    }
    words.push(format!("key-{key_id}"));
    Some(format!(
        "command=\"{}\",restrict {}",
        words.join(" "),
        key.bare_text()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILO4hyj9CG1h2cW8N+PKv+OIvws9v5HoWLJDq+muNf7p";

    #[test]
    fn a_good_key_gives_one_forced_command_line() {
        let key = offered_key("ssh-ed25519", ED25519).unwrap();
        let program: Vec<String> = [
            "/usr/local/bin/keygate",
            "ssh",
            "git-shell",
            "--gateway",
            "http://127.0.0.1:8080",
            "--secret-file",
            "/etc/keygate/internal.secret",
            "--git-root",
            "/srv/git",
        ]
        .map(String::from)
        .to_vec();
        let line = line(&program, 42, &key).unwrap();
        assert_eq!(
            line,
            format!(
                "command=\"/usr/local/bin/keygate ssh git-shell --gateway http://127.0.0.1:8080 \
                 --secret-file /etc/keygate/internal.secret --git-root /srv/git key-42\",restrict \
                 ssh-ed25519 {ED25519}"
            )
        );
        assert!(!line.contains('\n'));
    }

    #[test]
    fn words_the_shell_would_split_are_quoted_and_unquotable_ones_refused() {
        assert_eq!(shell_word("/srv/my git").as_deref(), Some("'/srv/my git'"));
        assert_eq!(shell_word("/srv/$HOME").as_deref(), Some("'/srv/$HOME'"));
        for bad in ["", "a\"b", "/srv/o'brien", "a\\b", "a\nb", "a\u{1b}b"] {
            assert_eq!(shell_word(bad), None, "{bad:?}");
        }
        let key = offered_key("ssh-ed25519", ED25519).unwrap();
        assert_eq!(line(&["/bin/k\"x".to_string()], 1, &key), None);
    }

    #[test]
    fn hostile_or_broken_offers_are_not_keys() {
        for (t, k) in [
            ("ssh-rsa", ED25519),
            ("ssh-ed25519", "AAAA"),
            ("ssh-ed25519", ""),
            ("", ED25519),
            ("ssh-ed25519 x", ED25519),
            ("ssh-ed25519", &format!("{ED25519} evil")),
            (
                "ssh-ed25519",
                &format!("{ED25519}\ncommand=\"sh\" ssh-ed25519 {ED25519}"),
            ),
            ("ssh-ed25519\"", ED25519),
            ("ssh-ed25519-cert-v01@openssh.com", ED25519),
            ("ssh-ed25519", &"A".repeat(10_000)),
            (&"a".repeat(100), ED25519),
            ("ssh-ed25519", &format!("{ED25519}$(id)")),
        ] {
            assert!(offered_key(t, k).is_none(), "{t:?} {k:?}");
        }
    }
}
