//! `--log-format text|json`: how log lines, and the line announcing the port, reach stderr.

use std::io::Write;
use std::sync::OnceLock;

use clap::ValueEnum;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// env_logger's lines: `[time LEVEL target] message`.
    #[default]
    Text,
    /// One JSON object per line: time, level, target, message, and the request line's fields.
    Json,
}

static FORMAT: OnceLock<LogFormat> = OnceLock::new();

/// Installs the logger (level from `RUST_LOG`, `info` by default) writing in `format`.
pub fn init(format: LogFormat) {
    let _ = FORMAT.set(format);
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if format == LogFormat::Json {
        builder.format(|buf, record| {
            let message = record.args().to_string();
            let head = head(record.level(), record.target(), &message);
            let mut line = head;
            let _ = record.key_values().visit(&mut Fields(&mut line));
            writeln!(buf, "{line}}}")
        });
    }
    builder.init();
}

/// Prints a line that scripts wait for (`keygate listening on …`) whatever `RUST_LOG` says: as
/// is in text mode, as an `INFO` object with that message in JSON mode, so every line is JSON.
pub fn announce(message: &str) {
    if FORMAT.get() == Some(&LogFormat::Json) {
        eprintln!("{}}}", head(log::Level::Info, "keygate", message));
    } else {
        eprintln!("{message}");
    }
}

/// UTC, to the millisecond: `2026-12-02T13:40:00.123Z`.
fn now() -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::now_utc()
        .format(&format)
        .unwrap_or_default()
}

/// `{"time":…,"level":…,"target":…,"message":…` (the caller adds the record's key-values, such
/// as the request line's method, path, status, latency_ms and request_id, and the `}`).
fn head(level: log::Level, target: &str, message: &str) -> String {
    let text = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"time\":{},\"level\":{},\"target\":{},\"message\":{}",
        text(&now()),
        text(level.as_str()),
        text(target),
        text(message)
    )
}

struct Fields<'a>(&'a mut String);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        if ["time", "level", "target", "message"].contains(&key.as_str()) {
            return Ok(());
        }
        let json = if let Some(n) = value.to_u64() {
            serde_json::Value::from(n)
        } else if let Some(n) = value.to_i64() {
            serde_json::Value::from(n)
        } else if let Some(x) = value.to_f64() {
            serde_json::Number::from_f64(x).map_or(serde_json::Value::Null, Into::into)
        } else if let Some(b) = value.to_bool() {
            serde_json::Value::from(b)
        } else {
            serde_json::Value::from(value.to_string())
        };
        self.0.push(',');
        self.0
            .push_str(&serde_json::Value::from(key.as_str()).to_string());
        self.0.push(':');
        self.0.push_str(&json.to_string());
        Ok(())
    }
}
