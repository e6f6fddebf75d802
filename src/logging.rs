//! Log lines: a timestamp, the level, the shard that wrote it (or `main`), the module and the
//! message; as text (env_logger's layout) or, with `log_format = "json"`, one JSON object a line
//! for log shippers. `RUST_LOG` sets the levels as before.

use std::io::Write;

use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Who wrote a line: `shard N` on a shard's thread (glommio names it `warren-shard-N-<executor>`),
/// else the thread's name.
fn writer() -> String {
    let thread = std::thread::current();
    match thread.name() {
        Some(name) => match name.strip_prefix("warren-shard-") {
            Some(rest) => format!("shard {}", rest.split('-').next().unwrap_or(rest)),
            None => name.to_string(),
        },
        None => "thread".to_string(),
    }
}

pub fn init(format: LogFormat) {
    let mut builder = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(|buf, record| {
            let ts = buf.timestamp_millis();
            writeln!(buf, "{ts} {:<5} [{}] {}: {}", record.level(), writer(), record.target(), record.args())
        }),
        LogFormat::Json => builder.format(|buf, record| {
            let line = serde_json::json!({
                "ts": buf.timestamp_millis().to_string(),
                "level": record.level().as_str(),
                "thread": writer(),
                "target": record.target(),
                "msg": record.args().to_string(),
            });
            writeln!(buf, "{line}")
        }),
    };
    builder.init();
}
