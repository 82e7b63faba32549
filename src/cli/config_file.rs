//! `--config FILE`: a TOML file whose keys become the defaults of the flags of the same name.
//!
//! Nothing here names a flag: a key is looked up among clap's own argument definitions, so a
//! flag added to `serve` or to the SSH commands can be set from the file with no code of its own.
//! The file's value replaces the flag's default before parsing, so clap's order decides the
//! rest: the command line, then the flag's environment variable, then the file, then the default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Arg, ArgAction, ArgMatches, Command, CommandFactory};

/// The tables a file may hold: each sets the flags of the subcommand of that name and of the
/// commands under it (`[ssh]` serves both `ssh authorized-keys` and `ssh git-shell`). Keys
/// outside any table set the global flags (`db`, `log-format`).
pub const SECTIONS: [&str; 2] = ["serve", "ssh"];

/// A config file, read and checked against every flag it may set.
pub struct ConfigFile {
    settings: Vec<Setting>,
}

/// One key of the file: the flag it sets and its values, already accepted by that flag's parser.
struct Setting {
    section: Option<&'static str>,
    long: String,
    values: Vec<String>,
}

/// Parses `argv` as `T`, with the config file's values as defaults when `--config` (or
/// `KEYGATE_CONFIG`) names one; without one the command line is parsed once, as ever.
/// `section` is `None` when `T` is the whole `keygate` command, else the table `T` reads.
pub fn parse<T: clap::Parser>(argv: &[OsString], section: Option<&str>) -> Result<T, String> {
    let first = T::command().get_matches_from(argv);
    let Some(path) = config_path(&first) else {
        return Ok(T::from_arg_matches(&first).unwrap_or_else(|e| e.exit()));
    };
    let file = ConfigFile::load(&path)?;
    let command = match section {
        None => file.apply(T::command()),
        Some(section) => file.apply_section(section, T::command()),
    };
    let matches = command.get_matches_from(argv);
    Ok(T::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()))
}

/// `--config` wherever it was given: it is global, so any level of the matches may hold it.
fn config_path(matches: &ArgMatches) -> Option<PathBuf> {
    let mut found = None;
    let mut level = Some(matches);
    while let Some(m) = level {
        if let Ok(Some(path)) = m.try_get_one::<PathBuf>("config") {
            found = Some(path.clone());
        }
        level = m.subcommand().map(|(_, sub)| sub);
    }
    found
}

impl ConfigFile {
    /// Reads `path` and checks every key against the flags of the `keygate` command: an unknown
    /// key or section, or a value its flag would refuse, is an error naming it.
    pub fn load(path: &Path) -> Result<ConfigFile, String> {
        ConfigFile::load_for(path, &super::Cli::command())
    }

    /// `load`, against the flags of `cli` (the unit tests give it commands of their own).
    fn load_for(path: &Path, cli: &Command) -> Result<ConfigFile, String> {
        let fail = |message: String| format!("config file {}: {message}", path.display());
        let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
        let table: toml::Table = text.parse().map_err(|e| fail(syntax_error(&text, &e)))?;
        let mut settings = Vec::new();
        for (key, value) in &table {
            match value {
                toml::Value::Table(_) if top_level_arg(cli, key).is_some() => {
                    return Err(fail(format!("{key}: expected a value, not a table")));
                }
                toml::Value::Table(keys) => {
                    let section = SECTIONS
                        .into_iter()
                        .find(|s| s == key)
                        .ok_or_else(|| fail(unknown_section(key)))?;
                    let sub = cli
                        .find_subcommand(section)
                        .expect("every section is a subcommand");
                    for (key, value) in keys {
                        let arg = find_in_tree(sub, key).ok_or_else(|| {
                            let hint = match top_level_arg(cli, key) {
                                Some(_) => " (it is a top-level key, before any [section])",
                                None => "",
                            };
                            fail(format!("unknown key `{key}` in [{section}]{hint}"))
                        })?;
                        settings.push(
                            Setting::new(Some(section), arg, value)
                                .map_err(|e| fail(format!("[{section}] {key}: {e}")))?,
                        );
                    }
                }
                _ => {
                    let arg = top_level_arg(cli, key)
                        .ok_or_else(|| fail(format!("unknown key `{key}`")))?;
                    settings.push(
                        Setting::new(None, arg, value).map_err(|e| fail(format!("{key}: {e}")))?,
                    );
                }
            }
        }
        // `min-rsa-bits` and `min_rsa_bits` are one key.
        for (i, a) in settings.iter().enumerate() {
            if settings[..i]
                .iter()
                .any(|b| b.section == a.section && b.long == a.long)
            {
                let place = a.section.map_or(String::new(), |s| format!(" in [{s}]"));
                return Err(fail(format!("`{}` is set twice{place}", a.long)));
            }
        }
        Ok(ConfigFile { settings })
    }

    /// The whole `keygate` command with the file's values as its flags' defaults.
    pub fn apply(&self, mut cli: Command) -> Command {
        for setting in &self.settings {
            cli = match setting.section {
                None => set_default(cli, setting, false),
                Some(section) => cli.mut_subcommand(section, |sub| set_default(sub, setting, true)),
            };
        }
        cli
    }

    /// `command`, one command of `section` parsed on its own, with that table's values applied.
    pub fn apply_section(&self, section: &str, mut command: Command) -> Command {
        for setting in self.settings.iter().filter(|s| s.section == Some(section)) {
            command = set_default(command, setting, true);
        }
        command
    }
}

impl Setting {
    fn new(
        section: Option<&'static str>,
        arg: &Arg,
        value: &toml::Value,
    ) -> Result<Setting, String> {
        let values = check(arg, value)?;
        Ok(Setting {
            section,
            long: arg
                .get_long()
                .expect("only long flags are keys")
                .to_string(),
            values,
        })
    }
}

/// Makes the file's value `cmd`'s default for the flag (and, with `deep`, that of every command
/// under it that has the flag).
fn set_default(mut cmd: Command, setting: &Setting, deep: bool) -> Command {
    let id = cmd
        .get_arguments()
        .find(|a| a.get_long() == Some(setting.long.as_str()))
        .map(|a| a.get_id().clone());
    if let Some(id) = id {
        let values = setting.values.clone();
        cmd = cmd.mut_arg(id, |a| a.default_values(values));
    }
    if deep {
        let names: Vec<String> = cmd
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for name in names {
            cmd = cmd.mut_subcommand(name, |sub| set_default(sub, setting, true));
        }
    }
    cmd
}

/// The flag `key` names: its long name (`min-rsa-bits`), or that with underscores.
fn matches_key(arg: &Arg, key: &str) -> bool {
    arg.get_long()
        .is_some_and(|long| long == key || long.replace('-', "_") == key)
        && arg.get_id() != "config"
}

fn top_level_arg<'a>(cli: &'a Command, key: &str) -> Option<&'a Arg> {
    cli.get_arguments().find(|a| matches_key(a, key))
}

fn find_in_tree<'a>(cmd: &'a Command, key: &str) -> Option<&'a Arg> {
    cmd.get_arguments()
        .find(|a| matches_key(a, key))
        .or_else(|| cmd.get_subcommands().find_map(|s| find_in_tree(s, key)))
}

fn unknown_section(key: &str) -> String {
    let known: Vec<String> = SECTIONS.iter().map(|s| format!("[{s}]")).collect();
    format!(
        "unknown section [{key}] (the sections are {})",
        known.join(" and ")
    )
}

/// The flag's values for `value`, as its own parser accepts them. A flag whose environment value
/// `--help` hides (the database URL may hold a password) is secret: its value is never shown.
fn check(arg: &Arg, value: &toml::Value) -> Result<Vec<String>, String> {
    let switch = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse);
    let many = matches!(arg.get_action(), ArgAction::Append)
        || arg.get_num_args().is_some_and(|n| n.max_values() > 1);
    let values = match value {
        toml::Value::Boolean(b) if switch => return Ok(vec![b.to_string()]),
        _ if switch => return Err("expected true or false".into()),
        toml::Value::Array(items) if many => items.iter().map(scalar).collect::<Result<_, _>>()?,
        toml::Value::Array(_) => return Err("expected one value, not a list".into()),
        other => vec![scalar(other)?],
    };
    // The flag's own parser, ranges and possible values included: run a command of that one flag.
    let long = arg.get_long().expect("only long flags are keys");
    let mut argv: Vec<OsString> = vec!["keygate".into()];
    // `--flag=value`, so that a value such as `-1` is not taken for a flag.
    if values.len() == 1 || matches!(arg.get_action(), ArgAction::Append) {
        argv.extend(
            values
                .iter()
                .map(|v| OsString::from(format!("--{long}={v}"))),
        );
    } else {
        argv.push(format!("--{long}").into());
        argv.extend(values.iter().map(OsString::from));
    }
    let probe = Command::new("keygate").arg(alone(arg));
    match probe.try_get_matches_from(argv) {
        Ok(_) => Ok(values),
        Err(err) => Err(refusal(&err, arg.is_hide_env_values_set())),
    }
}

/// `arg` fit to be parsed without the other flags: what it requires or conflicts with is not
/// there (clap's debug checks panic on a reference to a missing flag), and the command line
/// decides those relations afterwards anyway.
pub fn alone(arg: &Arg) -> Arg {
    use clap::builder::Resettable::Reset as RESET;
    arg.clone()
        .required(false)
        .requires(RESET)
        .conflicts_with(RESET)
        .overrides_with(RESET)
        .required_unless_present(RESET)
}

fn scalar(value: &toml::Value) -> Result<String, String> {
    match value {
        toml::Value::String(s) => Ok(s.clone()),
        toml::Value::Integer(n) => Ok(n.to_string()),
        toml::Value::Float(x) => Ok(x.to_string()),
        toml::Value::Boolean(b) => Ok(b.to_string()),
        toml::Value::Datetime(d) => Ok(d.to_string()),
        toml::Value::Array(_) => Err("expected a value, not a list".into()),
        toml::Value::Table(_) => Err("expected a value, not a table".into()),
    }
}

/// Why the flag's parser refused a value, without clap's `--flag` wording (it came from a file)
/// and without the value itself: a password put under the wrong key must not be shown either.
fn refusal(err: &clap::Error, secret: bool) -> String {
    if secret {
        return "invalid value".into();
    }
    if let Some(ContextValue::Strings(valid)) = err.get(ContextKind::ValidValue) {
        return format!("invalid value; expected one of: {}", valid.join(", "));
    }
    match std::error::Error::source(err) {
        Some(reason) if err.kind() == ErrorKind::ValueValidation => {
            format!("invalid value: {reason}")
        }
        _ => "invalid value".into(),
    }
}

/// A TOML syntax error by line and column only: toml's own message quotes the line, which may
/// hold a password.
fn syntax_error(text: &str, err: &toml::de::Error) -> String {
    let Some(span) = err.span() else {
        return format!("not valid TOML: {}", err.message());
    };
    let before = &text[..span.start.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
    format!(
        "not valid TOML at line {line}, column {column}: {}",
        err.message()
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::parser::ValueSource;

    /// A `keygate` with the kinds of flag no command has yet: repeated, multi-valued, a switch.
    fn cli() -> Command {
        Command::new("keygate").subcommand(
            Command::new("serve")
                .arg(
                    Arg::new("allow")
                        .long("metrics-allow")
                        .action(ArgAction::Append),
                )
                .arg(Arg::new("pair").long("pair").num_args(2))
                .arg(Arg::new("dsa").long("allow-dsa").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("n")
                        .long("n")
                        .value_parser(clap::value_parser!(u8))
                        .env("KEYGATE_TEST_CONFIG_FILE_N"),
                ),
        )
    }

    fn load(body: &str) -> Result<ConfigFile, String> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.toml");
        std::fs::write(&path, body).unwrap();
        ConfigFile::load_for(&path, &cli())
    }

    fn serve(file: &ConfigFile, argv: &[&str]) -> ArgMatches {
        let matches = file.apply(cli()).get_matches_from(argv);
        matches.subcommand_matches("serve").unwrap().clone()
    }

    #[test]
    fn lists_repeated_and_multi_valued_flags_and_switches() {
        let file = load(
            "[serve]\nmetrics-allow = [\"10.0.0.0/8\", \"::1\"]\npair = [\"a\", \"b\"]\nallow_dsa = true\nn = 7\n",
        )
        .unwrap();
        let m = serve(&file, &["keygate", "serve"]);
        let all: Vec<&String> = m.get_many("allow").unwrap().collect();
        assert_eq!(all, ["10.0.0.0/8", "::1"]);
        let pair: Vec<&String> = m.get_many("pair").unwrap().collect();
        assert_eq!(pair, ["a", "b"]);
        assert!(m.get_flag("dsa"));
        assert_eq!(m.get_one::<u8>("n"), Some(&7));
        assert_eq!(m.value_source("allow"), Some(ValueSource::DefaultValue));
        // The command line replaces the file's list rather than adding to it.
        let m = serve(&file, &["keygate", "serve", "--metrics-allow", "127.0.0.1"]);
        let all: Vec<&String> = m.get_many("allow").unwrap().collect();
        assert_eq!(all, ["127.0.0.1"]);
        assert_eq!(m.value_source("allow"), Some(ValueSource::CommandLine));
    }

    #[test]
    fn refuses_what_the_flag_would_refuse_naming_the_key() {
        for (body, wanted) in [
            (
                "[serve]\nn = 300\n",
                "[serve] n: invalid value: 300 is not in 0..=255",
            ),
            (
                "[serve]\nn = [1, 2]\n",
                "[serve] n: expected one value, not a list",
            ),
            ("[serve]\npair = [\"a\"]\n", "[serve] pair: invalid value"),
            (
                "[serve]\nallow-dsa = \"true\"\n",
                "[serve] allow-dsa: expected true or false",
            ),
            (
                "[serve]\nmetrics-allow = [[\"x\"]]\n",
                "[serve] metrics-allow: expected a value, not a list",
            ),
        ] {
            let err = load(body).err().unwrap_or_else(|| panic!("{body} loaded"));
            assert!(err.ends_with(wanted), "{body}: {err}");
        }
    }
}
