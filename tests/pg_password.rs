//! A PostgreSQL password reaches the server from the URL, from `PGPASSWORD` or from a pgpass file,
//! and never reaches a log. Runs only on the cluster the test command owns (`KEYGATE_TEST_PG_DIR`),
//! whose pg_hba.conf makes the role `kg_password` log in with SCRAM while every other role is trusted.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn keygate(db: &str, args: &[&str], env: &[(&str, &str)], home: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_keygate"))
        .arg("--db")
        .arg(db)
        .args(args)
        .env_remove("PGPASSWORD")
        .env_remove("PGPASSFILE")
        .env("HOME", home)
        .env("RUST_LOG", "debug")
        .envs(env.iter().copied())
        .output()
        .expect("keygate runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn a_password_from_the_url_pgpassword_or_pgpass_logs_in_and_is_never_logged() {
    if std::env::var_os("KEYGATE_TEST_PG_DIR").is_none() {
        eprintln!(
            "skipped: KEYGATE_TEST_PG_DIR is unset (scripts/test.sh sets it for its own cluster)"
        );
        return;
    }
    let admin_url = common::postgres_url();
    let mut admin = postgres::Client::connect(&admin_url, postgres::NoTls).expect("PostgreSQL up");
    let password = format!("pw-{}", hex::encode(keygate::auth::random_bytes::<12>()));
    let schema = format!("kg_pw_{}", hex::encode(keygate::auth::random_bytes::<6>()));
    admin
        .batch_execute(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'kg_password') THEN \
             CREATE ROLE kg_password LOGIN; END IF; END $$; \
             ALTER ROLE kg_password PASSWORD '{password}'; \
             CREATE SCHEMA {schema} AUTHORIZATION kg_password;"
        ))
        .expect("role and schema");
    // postgres://postgres@127.0.0.1:PORT/postgres → the same server as kg_password.
    let authority = admin_url
        .split_once('@')
        .map(|(_, rest)| rest)
        .and_then(|rest| rest.split_once('/'))
        .map(|(host_port, _)| host_port.to_string())
        .expect("host:port in KEYGATE_TEST_POSTGRES_URL");
    let query = format!("postgres?options=-csearch_path%3D{schema}");
    let bare = format!("postgres://kg_password@{authority}/{query}");
    let with = format!("postgres://kg_password:{password}@{authority}/{query}");
    let wrong = format!("postgres://kg_password:not-{password}@{authority}/{query}");
    let home = tempfile::tempdir().unwrap();

    // No password anywhere: refused by the server, said plainly, no panic.
    let out = keygate(&bare, &["user", "list"], &[], home.path());
    assert!(!out.status.success());
    assert!(
        !text(&out.stderr).contains("panicked"),
        "{}",
        text(&out.stderr)
    );
    // A wrong one is refused and not repeated.
    let out = keygate(&wrong, &["user", "list"], &[], home.path());
    assert!(!out.status.success());
    assert!(
        !text(&out.stderr).contains(&password),
        "{}",
        text(&out.stderr)
    );

    // From the URL, from PGPASSWORD, from a private pgpass file.
    let out = keygate(&with, &["user", "add", "alice"], &[], home.path());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let out = keygate(
        &bare,
        &["user", "list"],
        &[("PGPASSWORD", &password)],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("alice"));
    let pgpass = home.path().join("pgpass");
    let (host, port) = authority.rsplit_once(':').unwrap();
    std::fs::write(
        &pgpass,
        format!("{host}:{port}:postgres:kg_password:{password}\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = pgpass.to_str().unwrap();
    let out = keygate(
        &bare,
        &["user", "list"],
        &[("PGPASSFILE", file)],
        home.path(),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("alice"));
    // A pgpass file others can read is ignored, as libpq ignores it.
    std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = keygate(
        &bare,
        &["user", "list"],
        &[("PGPASSFILE", file)],
        home.path(),
    );
    assert!(!out.status.success());

    // Commands that refuse a PostgreSQL URL do not repeat it.
    let copy_to = home.path().join("copy.db");
    for args in [
        vec!["db", "backup", copy_to.to_str().unwrap()],
        vec!["db", "copy", "--from", &with, "--to", &with],
    ] {
        let out = keygate(&with, &args, &[], home.path());
        assert!(!out.status.success(), "{args:?}");
        assert!(
            !text(&out.stderr).contains(&password),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }

    // A serving gateway, at debug level, never logs the password either.
    let mut serve = Command::new(env!("CARGO_BIN_EXE_keygate"))
        .args(["--db", &with, "serve", "--listen", "127.0.0.1:0"])
        .arg("--internal-secret-file")
        .arg(home.path().join("internal.secret"))
        .env("RUST_LOG", "debug")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("keygate serves");
    let mut stderr = std::io::BufReader::new(serve.stderr.take().unwrap());
    let mut log = String::new();
    loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line).unwrap_or(0) == 0 {
            break;
        }
        log.push_str(&line);
        if line.contains("keygate listening on") {
            break;
        }
    }
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(log.contains("keygate listening on"), "{log}");
    assert!(!log.contains(&password), "{log}");

    let _ = admin.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"));
}
