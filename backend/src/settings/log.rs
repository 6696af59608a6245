//! `[log]`: the format of log lines and which are written, and its check.

use serde::{Deserialize, Serialize};

/// `[log]`: the format of log lines on stderr, and which are written.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// `text` for people; `json`: one JSON object a line (level, target, message, fields,
    /// spans) for log collectors. No token reaches a log line in either format.
    pub format: LogFormat,
    /// Which lines are written, in `RUST_LOG`'s syntax (`info`, `warn,login_bridge=debug`).
    /// `RUST_LOG`, when set, wins. Changes on a reload (SIGHUP).
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            level: "info".to_owned(),
        }
    }
}

/// `text` for people, `json` (one object a line) for log collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[cfg_attr(test, derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl LogSettings {
    /// The level must be a filter `tracing_subscriber` understands.
    pub(super) fn check(&self, problems: &mut Vec<String>) {
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.level) {
            problems.push(format!(
                "log.level: {:?} is not a log filter ({e}); e.g. \"info\" or \"warn,login_bridge=debug\"",
                self.level
            ));
        }
    }
}
