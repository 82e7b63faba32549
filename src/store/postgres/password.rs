//! The password of a PostgreSQL URL that has none: `PGPASSWORD`, else the pgpass file, as libpq finds them.

use std::path::PathBuf;

use postgres::config::Host;

/// Fills in `config`'s password when the URL gave none and the environment or pgpass has one.
pub(super) fn fill(config: &mut postgres::Config) {
    if config.get_password().is_some() {
        return;
    }
    if let Some(password) = std::env::var_os("PGPASSWORD").filter(|p| !p.is_empty()) {
        config.password(password.as_encoded_bytes());
        return;
    }
    let Some(file) = pgpass_file() else { return };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return;
    };
    if !private(&file) {
        // libpq refuses such a file too: anyone on the host could read the password.
        log::warn!(
            "ignoring {}: it is readable by group or others (chmod 0600 it)",
            file.display()
        );
        return;
    }
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(name)) => name.clone(),
        // libpq matches a socket connection against "localhost".
        _ => "localhost".to_string(),
    };
    let port = config
        .get_ports()
        .first()
        .copied()
        .unwrap_or(5432)
        .to_string();
    let user = config.get_user().unwrap_or("").to_string();
    let dbname = config.get_dbname().unwrap_or(&user).to_string();
    if let Some(password) = lookup(&text, [&host, &port, &dbname, &user]) {
        config.password(password);
    }
}

fn pgpass_file() -> Option<PathBuf> {
    if let Some(file) = std::env::var_os("PGPASSFILE") {
        return Some(PathBuf::from(file));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pgpass"))
}

#[cfg(unix)]
fn private(file: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o077 == 0)
        .unwrap_or(false)
}

#[cfg(not(unix))]
fn private(_file: &std::path::Path) -> bool {
    true
}

/// The password of the first line whose four fields match (`*` matches anything), libpq's rule.
fn lookup(text: &str, want: [&str; 4]) -> Option<String> {
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line);
        if fields.len() != 5 {
            continue;
        }
        if fields[..4]
            .iter()
            .zip(want)
            .all(|(field, wanted)| field == "*" || field == wanted)
        {
            return Some(fields[4].clone());
        }
    }
    None
}

/// Splits on unescaped `:`; `\:` and `\\` stand for `:` and `\`.
fn split_fields(line: &str) -> Vec<String> {
    let mut fields = vec![String::new()];
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    fields.last_mut().expect("one field").push(next);
                }
            }
            ':' if fields.len() < 5 => fields.push(String::new()),
            c => fields.last_mut().expect("one field").push(c),
        }
    }
    fields
}

#[cfg(test)]
mod tests {
    use super::lookup;

    #[test]
    fn pgpass_matches_like_libpq() {
        let text =
            "# comment\nother:5432:*:kg:wrong\ndb.internal:5432:keygate:kg:pa\\:ss\n*:*:*:*:any\n";
        assert_eq!(
            lookup(text, ["db.internal", "5432", "keygate", "kg"]).as_deref(),
            Some("pa:ss")
        );
        assert_eq!(
            lookup(text, ["elsewhere", "5433", "x", "y"]).as_deref(),
            Some("any")
        );
        assert_eq!(lookup("a:1:b:c:d\n", ["a", "1", "b", "z"]), None);
    }
}
