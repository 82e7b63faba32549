//! `--config FILE` and the command line around it: precedence, every flag from the file, errors
//! naming the key, JSON logs, shell completions, the man page, the example config and the unit.

mod common;

use std::collections::BTreeMap;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use clap::parser::ValueSource;
use clap::{Arg, ArgAction, CommandFactory};
use common::Gateway;
use keygate::cli::Cli;
use keygate::cli::config_file::ConfigFile;
use serde_json::{Value, json};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/keygate.example.toml");

/// The binary, with no `KEYGATE_*` variable of the test's environment leaking in.
fn keygate() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keygate"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("KEYGATE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).unwrap();
    path
}

/// `keygate serve` on port 0 in `dir`, killed when dropped; `stderr` holds what it printed up to
/// and including the line announcing its address.
struct Serve {
    child: Child,
    url: String,
    stderr: Vec<String>,
    rest: Option<std::io::Lines<BufReader<std::process::ChildStderr>>>,
}

impl Serve {
    fn start(mut cmd: Command) -> Serve {
        let mut child = cmd.stderr(Stdio::piped()).spawn().expect("keygate starts");
        let (url, stderr, lines) = common::listening(&mut child);
        Serve {
            child,
            url,
            stderr,
            rest: Some(lines),
        }
    }

    /// Stops it with SIGTERM (a clean shutdown) and returns every stderr line it printed.
    fn stop(mut self) -> Vec<String> {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let rest = self.rest.take().unwrap();
        let mut all = std::mem::take(&mut self.stderr);
        all.extend(rest.map_while(Result::ok));
        let _ = self.child.wait();
        all
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `keygate serve` in a fresh directory, with `args` after `serve`.
fn serve_in(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = keygate();
    cmd.current_dir(dir)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(dir.join("k.db"))
        .args(["--internal-secret-file", "internal.secret"])
        .args(args)
        .env("RUST_LOG", "info");
    cmd
}

/// The body timeout the server says it runs with, from its startup line.
fn body_timeout(cmd: Command) -> String {
    let server = Serve::start(cmd);
    let line = server
        .stderr
        .iter()
        .find(|l| l.contains("body timeout"))
        .expect("the startup line")
        .clone();
    line.rsplit(' ').next().unwrap().to_string()
}

#[test]
fn precedence_is_flag_then_environment_then_file_then_default() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = write(d, "k.toml", "[serve]\nbody-timeout = 20\n");
    let file = file.to_str().unwrap();
    assert_eq!(body_timeout(serve_in(d, &[])), "10s", "the default");
    assert_eq!(body_timeout(serve_in(d, &["--config", file])), "20s");
    let mut from_env = serve_in(d, &[]);
    from_env.env("KEYGATE_CONFIG", file);
    assert_eq!(
        body_timeout(from_env),
        "20s",
        "KEYGATE_CONFIG names the file"
    );
    let mut env_over_file = serve_in(d, &["--config", file]);
    env_over_file.env("KEYGATE_BODY_TIMEOUT", "30");
    assert_eq!(body_timeout(env_over_file), "30s");
    let mut flag_over_env = serve_in(d, &["--body-timeout", "40", "--config", file]);
    flag_over_env.env("KEYGATE_BODY_TIMEOUT", "30");
    assert_eq!(body_timeout(flag_over_env), "40s");
}

#[test]
fn admin_commands_take_the_database_from_the_file_and_the_environment_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let in_file = d.join("file.db");
    let file = write(
        d,
        "k.toml",
        &format!("db = {:?}\n", in_file.to_str().unwrap()),
    );
    let out = keygate()
        .args(["user", "add", "alice", "--config"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(in_file.is_file(), "the file's db was used");
    let in_env = d.join("env.db");
    let out = keygate()
        .args(["--config"])
        .arg(&file)
        .args(["user", "add", "bob"])
        .env("KEYGATE_DB", &in_env)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let list = |db: &Path| {
        text(
            &keygate()
                .args(["user", "list", "--db"])
                .arg(db)
                .output()
                .unwrap()
                .stdout,
        )
    };
    assert_eq!(list(&in_file).trim(), "1 alice user");
    assert_eq!(list(&in_env).trim(), "1 bob user");
}

/// A value `arg`'s own parser accepts, found by trying a few: the flag's default first. A new
/// flag whose values none of these fit needs one more candidate here.
fn valid_value(arg: &Arg) -> toml::Value {
    if matches!(arg.get_action(), ArgAction::SetTrue) {
        return toml::Value::Boolean(true);
    }
    let mut candidates: Vec<String> = arg
        .get_default_values()
        .iter()
        .map(|v| v.to_string_lossy().into_owned())
        .collect();
    candidates.extend(
        arg.get_possible_values()
            .iter()
            .map(|p| p.get_name().to_string()),
    );
    candidates.extend(
        [
            "7",
            "127.0.0.1:9",
            "127.0.0.1/32",
            "https://keys.example.com",
            "/tmp/x",
        ]
        .map(String::from),
    );
    let long = arg.get_long().unwrap();
    let value = candidates
        .into_iter()
        .find(|v| {
            clap::Command::new("probe")
                .arg(keygate::cli::config_file::alone(arg))
                .try_get_matches_from(["probe".to_string(), format!("--{long}={v}")])
                .is_ok()
        })
        .unwrap_or_else(|| panic!("no candidate value fits --{long}: add one to valid_value"));
    let scalar = match value.parse::<i64>() {
        Ok(n) => toml::Value::Integer(n),
        Err(_) => toml::Value::String(value),
    };
    match arg.get_action() {
        ArgAction::Append => toml::Value::Array(vec![scalar]),
        _ => scalar,
    }
}

/// Every long flag of `cmd` and of the commands under it, by long name.
fn flags(cmd: &clap::Command, into: &mut BTreeMap<String, Arg>) {
    for arg in cmd.get_arguments() {
        if let Some(long) = arg.get_long() {
            into.entry(long.to_string()).or_insert_with(|| arg.clone());
        }
    }
    for sub in cmd.get_subcommands() {
        flags(sub, into);
    }
}

fn section_flags(section: &str) -> BTreeMap<String, Arg> {
    let mut all = BTreeMap::new();
    flags(Cli::command().find_subcommand(section).unwrap(), &mut all);
    all
}

#[test]
fn every_serve_and_ssh_flag_is_accepted_from_the_file() {
    let dir = tempfile::tempdir().unwrap();
    for (section, argv) in [
        ("serve", vec!["keygate", "serve"]),
        (
            "ssh",
            vec!["keygate", "ssh", "authorized-keys", "git", "t", "k"],
        ),
    ] {
        let all = section_flags(section);
        assert!(all.len() >= 4, "{section}: {all:?}");
        for snake in [false, true] {
            let mut table = toml::Table::new();
            for (long, arg) in &all {
                let key = if snake {
                    long.replace('-', "_")
                } else {
                    long.clone()
                };
                table.insert(key, valid_value(arg));
            }
            let body = toml::to_string(&toml::Table::from_iter([(
                section.to_string(),
                toml::Value::Table(table.clone()),
            )]))
            .unwrap();
            let path = write(dir.path(), "all.toml", &body);
            let file = ConfigFile::load(&path).unwrap_or_else(|e| panic!("{e}\n{body}"));
            let matches = file.apply(Cli::command()).get_matches_from(&argv);
            let mut level = &matches;
            for name in &argv[1..] {
                match level.subcommand() {
                    Some((sub, m)) if sub == *name => level = m,
                    _ => break,
                }
            }
            let run = Cli::command();
            let mut cmd = &run;
            for name in &argv[1..] {
                match cmd.find_subcommand(name) {
                    Some(sub) => cmd = sub,
                    None => break,
                }
            }
            for arg in cmd.get_arguments().filter(|a| a.get_long().is_some()) {
                let long = arg.get_long().unwrap();
                if !all.contains_key(long) {
                    continue; // a global flag: top-level keys
                }
                let id = arg.get_id().as_str();
                assert_eq!(
                    level.value_source(id),
                    Some(ValueSource::DefaultValue),
                    "--{long} from the file"
                );
                let got: Vec<String> = level
                    .get_raw(id)
                    .unwrap()
                    .map(|v| v.to_string_lossy().into_owned())
                    .collect();
                let want: Vec<String> = match valid_value(arg) {
                    toml::Value::Array(items) => items.iter().map(plain).collect(),
                    one => vec![plain(&one)],
                };
                assert_eq!(got, want, "--{long} has the file's value");
            }
        }
    }
}

fn plain(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The failure `keygate ARGS --config FILE` ends with, the file holding `body`.
fn refusal(body: &str, args: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = write(dir.path(), "k.toml", body);
    let out = keygate()
        .current_dir(dir.path())
        .args(args)
        .arg("--config")
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{body}: {}", text(&out.stderr));
    assert!(out.stdout.is_empty());
    assert!(
        !dir.path().join("keygate.db").exists(),
        "nothing ran: {body}"
    );
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("keygate: config file "), "{stderr}");
    stderr
}

#[test]
fn unknown_keys_and_sections_are_errors_naming_them() {
    let e = refusal("[serve]\nlisten = \"127.0.0.1:0\"\nlistn = 1\n", &["serve"]);
    assert!(e.contains("unknown key `listn` in [serve]"), "{e}");
    let e = refusal("colour = true\n", &["user", "list"]);
    assert!(e.contains("unknown key `colour`"), "{e}");
    let e = refusal("[serve]\ndb = \"x.db\"\n", &["serve"]);
    assert!(
        e.contains("unknown key `db` in [serve]") && e.contains("top-level"),
        "{e}"
    );
    let e = refusal("[tls]\ncert = \"x\"\n", &["serve"]);
    assert!(e.contains("unknown section [tls]"), "{e}");
    // An [ssh] key is not a serve setting, and the file is checked whole, whatever the command.
    let e = refusal("[serve]\ngit-root = \"/srv/git\"\n", &["user", "list"]);
    assert!(e.contains("unknown key `git-root` in [serve]"), "{e}");
    let e = refusal("[db]\nurl = \"x\"\n", &["user", "list"]);
    assert!(e.contains("db: expected a value, not a table"), "{e}");
    let e = refusal("config = \"other.toml\"\n", &["user", "list"]);
    assert!(e.contains("unknown key `config`"), "{e}");
    let e = refusal("[serve]\nworkers = 2\nworkers_ = 2\n", &["serve"]);
    assert!(e.contains("`workers_`"), "{e}");
    let e = refusal(
        "[serve]\nmin-rsa-bits = 2048\nmin_rsa_bits = 3072\n",
        &["serve"],
    );
    assert!(e.contains("`min-rsa-bits` is set twice in [serve]"), "{e}");
}

#[test]
fn wrong_types_and_refused_values_are_errors_naming_the_key() {
    for (body, key) in [
        ("[serve]\nworkers = \"four\"\n", "[serve] workers"),
        ("[serve]\nallow-dsa = \"yes\"\n", "[serve] allow-dsa"),
        ("[serve]\nallow-dsa = 1\n", "[serve] allow-dsa"),
        ("[serve]\nlisten = [\"a:1\", \"b:2\"]\n", "[serve] listen"),
        ("[serve]\nbody-timeout = 0\n", "[serve] body-timeout"),
        ("[serve]\nmax-connections = -1\n", "[serve] max-connections"),
        ("[serve]\npublic-url = { a = 1 }\n", "[serve] public-url"),
        ("log-format = \"xml\"\n", "log-format"),
        ("[ssh]\ngateway = true\nssh-user = [1]\n", "[ssh] ssh-user"),
    ] {
        let e = refusal(body, &["serve"]);
        assert!(e.contains(&format!("{key}: ")), "{body}: {e}");
    }
    let e = refusal("log-format = \"xml\"\n", &["serve"]);
    assert!(e.contains("expected one of: text, json"), "{e}");
    let e = refusal("[serve]\nbody-timeout = 5000\n", &["serve"]);
    assert!(e.contains("1..=3600"), "{e}");
    let e = refusal("[serve]\nlisten = \"x\"\n[serve]\n", &["serve"]);
    assert!(e.contains("not valid TOML at line 3"), "{e}");
}

#[test]
fn the_file_never_shows_a_secret_value() {
    let url = "postgres://keygate:hunter2@db.example/keygate";
    for body in [
        format!("db = \"{url}\n"),
        format!("db = [\"{url}\"]\n"),
        format!("db = {{ url = \"{url}\" }}\n"),
        format!("[serve]\ndb = \"{url}\"\n"),
        // Under the wrong key, a password is still not shown.
        format!("db = \"{url}\"\n[serve]\nworkers = \"{url}\"\n"),
    ] {
        let e = refusal(&body, &["serve"]);
        assert!(!e.contains("hunter2"), "{body}: {e}");
    }
}

#[test]
fn json_logs_are_one_object_per_line_with_the_request_fields() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let file = write(d, "k.toml", "log-format = \"json\"\n");
    for args in [
        vec!["--log-format", "json"],
        vec!["--config", file.to_str().unwrap()],
    ] {
        let server = Serve::start(serve_in(d, &args));
        let resp = ureq::get(format!(
            "{}/api/v4/user?private_token=glpat-secret",
            server.url
        ))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
        assert_eq!(resp.status().as_u16(), 401);
        let id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
        let lines = server.stop();
        let objects: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        for o in &objects {
            for field in ["time", "level", "target", "message"] {
                assert!(o[field].is_string(), "{field} in {o}");
            }
        }
        let listening = objects
            .iter()
            .find(|o| {
                o["message"]
                    .as_str()
                    .unwrap()
                    .starts_with("keygate listening on http://")
            })
            .expect("the address line is a JSON line too");
        assert_eq!(listening["level"], "INFO");
        let request = objects
            .iter()
            .find(|o| o["request_id"] == json!(id))
            .expect("the request's line");
        assert_eq!(request["method"], "GET");
        assert_eq!(request["path"], "/api/v4/user");
        assert_eq!(request["status"], 401);
        assert!(request["latency_ms"].as_f64().unwrap() >= 0.0);
        assert_eq!(request["target"], "keygate::http");
        assert!(
            lines.iter().all(|l| !l.contains("glpat-secret")),
            "no token in the log"
        );
        assert!(objects.iter().any(|o| o["message"] == "keygate stopped"));
    }
    // Text stays as it was: the address line plain, the request line its message alone.
    let server = Serve::start(serve_in(d, &[]));
    assert!(
        server
            .stderr
            .last()
            .unwrap()
            .starts_with("keygate listening on http://127.0.0.1:")
    );
    let _ = ureq::get(format!("{}/nowhere", server.url)).call();
    let lines = server.stop();
    let request = lines.iter().find(|l| l.contains("GET /nowhere")).unwrap();
    let last = request.rsplit(' ').next().unwrap();
    assert!(last.starts_with("id=") && last.len() == 35, "{request}");
    assert!(
        request.starts_with('[') && request.contains("] GET /nowhere 404 "),
        "{request}"
    );
}

#[test]
fn the_ssh_commands_read_the_ssh_table() {
    let gw = Gateway::start();
    let seed = gw.seed();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, gw.internal_secret()).unwrap();
    let public = common::fresh_key("from-the-file");
    let id = gw
        .req(
            "POST",
            &format!("/api/v4/projects/{}/deploy_keys", seed.widgets),
        )
        .token(&seed.alice)
        .json(&json!({"title": "t", "key": public}))
        .send()
        .expect(201)
        .json()["id"]
        .as_i64()
        .unwrap();
    let file = write(
        dir.path(),
        "ssh.toml",
        &format!(
            "[ssh]\ngateway = {:?}\nsecret-file = {:?}\ngit-root = \"/srv/repos\"\nssh-user = \"deploy\"\n",
            gw.url,
            secret.to_str().unwrap()
        ),
    );
    let mut words = public.split_whitespace();
    let (kind, b64) = (words.next().unwrap(), words.next().unwrap());
    // Stage 1 (its own fast parser) with nothing but the file: sshd passes no environment.
    let stage1 = |user: &str| -> Output {
        keygate()
            .args(["ssh", "authorized-keys", "--config"])
            .arg(&file)
            .args([user, kind, b64])
            .env_clear()
            .output()
            .unwrap()
    };
    let out = stage1("deploy");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(
        line.contains(&format!("--gateway {} ", gw.url))
            && line.contains("--git-root /srv/repos ")
            && line.contains(&format!("key-{id}\",restrict {kind} {b64}")),
        "{line}"
    );
    let out = stage1("git");
    assert!(out.status.success());
    assert_eq!(text(&out.stdout), "", "ssh-user came from the file");
    // Stage 2 finds the gateway through the file too: it answers that key-999999 is gone.
    let out = keygate()
        .args(["ssh", "git-shell", "--config"])
        .arg(&file)
        .arg("key-999999")
        .env_clear()
        .env("SSH_ORIGINAL_COMMAND", "git-upload-pack 'acme/widgets'")
        .output()
        .unwrap();
    assert!(
        text(&out.stderr).contains("no longer exists"),
        "{}",
        text(&out.stderr)
    );
    // A mistake in the file fails stage 1 closed, naming the key.
    let bad = write(dir.path(), "bad.toml", "[ssh]\ngatway = \"x\"\n");
    let out = keygate()
        .args(["ssh", "authorized-keys", "--config"])
        .arg(&bad)
        .args(["git", kind, b64])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(text(&out.stderr).contains("unknown key `gatway` in [ssh]"));
}

#[test]
fn bash_completion_loads_and_registers_keygate() {
    let out = keygate().args(["completions", "bash"]).output().unwrap();
    assert!(out.status.success());
    let script = text(&out.stdout);
    assert!(script.contains("serve") && script.contains("--config"));
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "keygate.bash", &script);
    let out = Command::new("bash")
        .arg("-c")
        .arg("source \"$1\" && complete -p keygate")
        .arg("bash")
        .arg(&path)
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("keygate"),
        "{}",
        text(&out.stdout)
    );
    for shell in ["zsh", "fish"] {
        let out = keygate().args(["completions", shell]).output().unwrap();
        assert!(out.status.success());
        assert!(text(&out.stdout).contains("access-key"), "{shell}");
    }
    let out = keygate().args(["completions", "tcsh"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn the_man_page_names_every_subcommand() {
    let out = keygate().arg("man").output().unwrap();
    assert!(out.status.success());
    let page = text(&out.stdout);
    assert!(page.contains(".TH keygate 1"), "{page}");
    let cli = Cli::command();
    let names: Vec<&str> = cli.get_subcommands().map(|s| s.get_name()).collect();
    assert!(names.contains(&"serve") && names.contains(&"man"));
    for name in &names {
        let roff = format!("keygate\\-{}(1)", name.replace('-', "\\-"));
        assert!(page.contains(&roff), "{roff} in the man page");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = keygate()
        .args(["man", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    for name in &names {
        let file = dir.path().join(format!("keygate-{name}.1"));
        assert!(file.is_file(), "{}", file.display());
    }
    let serve = std::fs::read_to_string(dir.path().join("keygate-serve.1")).unwrap();
    assert!(serve.contains("body\\-timeout"), "{serve}");
    assert!(serve.contains("KEYGATE_BODY_TIMEOUT"), "{serve}");
    // groff, where installed, reads it without a warning.
    if let Ok(out) = Command::new("groff")
        .args(["-man", "-Tutf8", "-z", "-ww"])
        .arg(dir.path().join("keygate.1"))
        .output()
    {
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{}",
            text(&out.stderr)
        );
    }
}

/// The example's keys by section ("" for the top level), commented-out ones included.
fn example_keys() -> BTreeMap<String, Vec<String>> {
    let mut keys: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut section = String::new();
    for line in std::fs::read_to_string(EXAMPLE).unwrap().lines() {
        if let Some(name) = line.strip_prefix('[') {
            section = name.trim_end_matches(']').to_string();
            continue;
        }
        let setting = line.strip_prefix("# ").unwrap_or(line);
        if let Some((key, _)) = setting.split_once(" = ")
            && key.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        {
            keys.entry(section.clone())
                .or_default()
                .push(key.to_string());
        }
    }
    keys
}

#[test]
fn the_example_config_lists_every_setting_with_its_default() {
    let keys = example_keys();
    for section in keygate::cli::config_file::SECTIONS {
        let listed = keys.get(section).cloned().unwrap_or_default();
        let flags: Vec<String> = section_flags(section).into_keys().collect();
        let mut sorted = listed.clone();
        sorted.sort();
        assert_eq!(sorted, flags, "[{section}] of docs/keygate.example.toml");
    }
    let cli = Cli::command();
    let mut top: Vec<String> = cli
        .get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != "config")
        .map(String::from)
        .collect();
    top.sort();
    let mut listed = keys[""].clone();
    listed.sort();
    assert_eq!(listed, top, "top-level keys of docs/keygate.example.toml");
    // The keys it sets are the defaults, so the comment at its top stays true.
    let example: toml::Table = std::fs::read_to_string(EXAMPLE).unwrap().parse().unwrap();
    for (section, table) in &example {
        let Some(table) = table.as_table() else {
            continue;
        };
        let flags = section_flags(section);
        for (key, value) in table {
            let defaults: Vec<String> = flags[key]
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            let default = match flags[key].get_action() {
                ArgAction::SetTrue => vec!["false".to_string()],
                _ => defaults,
            };
            assert_eq!(default, vec![plain(value)], "[{section}] {key}");
        }
    }
    // Uncommented, the keys without a fixed default are valid too.
    let uncommented: String = std::fs::read_to_string(EXAMPLE)
        .unwrap()
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(s) if s.split_once(" = ").is_some_and(|(k, _)| !k.contains(' ')) => s,
            _ => l,
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "all.toml", &uncommented);
    ConfigFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_example_config_serves() {
    let dir = tempfile::tempdir().unwrap();
    let server = Serve::start(serve_in(dir.path(), &["--config", EXAMPLE]));
    let resp = ureq::get(format!("{}/api/v4/user", server.url))
        .config()
        .http_status_as_error(false)
        .build()
        .call()
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert!(dir.path().join("k.db").is_file(), "--db beat the file's db");
}

/// The ```ini block under "## systemd" in docs/operations.md.
fn systemd_unit() -> String {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/operations.md"))
        .unwrap();
    let from = doc.find("\n## systemd\n").expect("a systemd section");
    let block = &doc[from..];
    let start = block.find("```ini\n").expect("an ini block") + "```ini\n".len();
    let end = start + block[start..].find("```").unwrap();
    block[start..end].to_string()
}

#[test]
fn the_systemd_unit_runs_serve_with_the_config_and_verifies() {
    let unit = systemd_unit();
    assert!(
        unit.contains("ExecStart=/usr/local/bin/keygate serve --config /etc/keygate/keygate.toml")
    );
    for line in [
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
        "LimitNOFILE=",
    ] {
        assert!(unit.lines().any(|l| l.starts_with(line)), "{line}");
    }
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("skipped: no systemd-analyze to verify the unit with");
        return;
    };
    assert!(probe.status.success());
    let dir = tempfile::tempdir().unwrap();
    let unit = unit.replace("/usr/local/bin/keygate", env!("CARGO_BIN_EXE_keygate"));
    let path = write(dir.path(), "keygate.service", &unit);
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = text(&out.stderr);
    let complaints: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("keygate.service"))
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{stderr}");
}
