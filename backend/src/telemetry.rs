//! Logging setup. Handlers touching tokens are `#[instrument(skip_all)]`, so tokens never
//! reach a log line, in either format.
//!
//! One library line is kept out: tower-sessions' "possibly suspicious activity: record not
//! found in store" WARN for every request with the cookie of an ended session (logout, back-
//! channel logout, timeout), an ordinary event that `crate::session::ended` counts instead.
//!
//! The level (`log.level`, unless `RUST_LOG` is set) changes on a configuration reload through
//! tracing-subscriber's reload layer; the format stays what the process started with.

use std::sync::OnceLock;

use tracing::Dispatch;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, util::SubscriberInitExt};

use crate::settings::LogFormat;

/// Replaces the filter of the installed subscriber.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The filter of the process's one subscriber (a global like the subscriber itself); unset
/// where [`init`] did not run (tests that build the server in-process).
static SET_FILTER: OnceLock<SetFilter> = OnceLock::new();

/// Logs to stderr in `format`; level from `RUST_LOG`, else `level` (`log.level`).
pub fn init(format: LogFormat, level: &str) {
    let env = std::env::var(EnvFilter::DEFAULT_ENV).ok();
    let directives = env.as_deref().unwrap_or(level);
    let (dispatch, set) = reloadable(format, filter(Some(directives)), std::io::stderr);
    if dispatch.try_init().is_ok() {
        let _ = SET_FILTER.set(set);
    }
}

/// What a reload did with `log.level`.
#[derive(Debug, PartialEq, Eq)]
pub enum LevelChange {
    Applied,
    /// `RUST_LOG` is set and wins over `log.level`.
    EnvWins,
    /// No reloadable subscriber in this process (the server built in-process by tests).
    NoSubscriber,
    Failed(String),
}

/// Sets the level to `level` (`log.level`'s syntax, checked when the settings were), unless
/// `RUST_LOG` is set.
pub fn set_level(level: &str) -> LevelChange {
    if std::env::var_os(EnvFilter::DEFAULT_ENV).is_some() {
        return LevelChange::EnvWins;
    }
    match SET_FILTER.get() {
        None => LevelChange::NoSubscriber,
        Some(set) => match set(filter(Some(level))) {
            Ok(()) => LevelChange::Applied,
            Err(e) => LevelChange::Failed(e),
        },
    }
}

/// Where tower-sessions logs a session cookie without a stored session (at WARN), and its
/// other notes on loading (errors stay, at ERROR).
const SESSION_LOAD_TARGET: &str = "tower_sessions_core::session";

/// The filter of `directives` (`RUST_LOG`'s syntax; `info` when absent or invalid), with
/// [`SESSION_LOAD_TARGET`] at `error` unless the directives name tower-sessions themselves.
pub fn filter(directives: Option<&str>) -> EnvFilter {
    let base = directives
        .and_then(|d| EnvFilter::try_new(d).ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    if directives.is_some_and(|d| d.contains("tower_sessions")) {
        return base;
    }
    match format!("{SESSION_LOAD_TARGET}=error").parse() {
        Ok(quiet) => base.add_directive(quiet),
        Err(_) => base,
    }
}

/// The subscriber of [`init`], writing to `writer` (tests give it a buffer).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    reloadable(format, filter, writer).0
}

/// [`subscriber`], and the function that replaces its filter.
fn reloadable<W>(format: LogFormat, filter: EnvFilter, writer: W) -> (Dispatch, SetFilter)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => {
            let builder = builder.with_filter_reloading();
            let handle = builder.reload_handle();
            let set: SetFilter = Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()));
            (Dispatch::new(builder.finish()), set)
        }
        // One JSON object a line: the event's fields and the spans it happened in.
        LogFormat::Json => {
            let builder = builder.json().with_filter_reloading();
            let handle = builder.reload_handle();
            let set: SetFilter = Box::new(move |f| handle.reload(f).map_err(|e| e.to_string()));
            (Dispatch::new(builder.finish()), set)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write,
        sync::{Arc, Mutex},
    };

    use super::*;

    /// A `MakeWriter` into a shared buffer.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            match self.0.lock() {
                Ok(mut b) => b.extend_from_slice(bytes),
                Err(p) => p.into_inner().extend_from_slice(bytes),
            }
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    /// The lines `filter(directives)` lets through of tower-sessions' notes on a cookie of an
    /// ended session and on a malformed one, and of the bridge's own warnings.
    fn filtered(directives: Option<&str>) -> String {
        let buffer = Buffer::default();
        let dispatch = subscriber(LogFormat::Text, filter(directives), buffer.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::warn!(
                target: "tower_sessions_core::session",
                "possibly suspicious activity: record not found in store"
            );
            tracing::error!(target: "tower_sessions_core::session", "store failed");
            tracing::warn!(
                target: "tower_sessions::service",
                "possibly suspicious activity: malformed session id"
            );
            tracing::warn!("the provider does not answer");
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn a_cookie_of_an_ended_session_is_not_logged_as_suspicious() {
        for directives in [
            None,
            Some("info"),
            Some("debug"),
            Some("warn,login_bridge=debug"),
        ] {
            let text = filtered(directives);
            assert!(!text.contains("record not found"), "{directives:?}: {text}");
            assert!(text.contains("store failed"), "{directives:?}: {text}");
            assert!(
                text.contains("malformed session id"),
                "{directives:?}: {text}"
            );
            assert!(
                text.contains("the provider does not answer"),
                "{directives:?}: {text}"
            );
        }
        // An operator who names tower-sessions decides.
        let text = filtered(Some("info,tower_sessions_core=warn"));
        assert!(text.contains("record not found"), "{text}");
    }

    fn logged(format: LogFormat) -> String {
        let buffer = Buffer::default();
        let dispatch = subscriber(format, EnvFilter::new("info"), buffer.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::info_span!("request", class = "api");
            let _entered = span.enter();
            tracing::info!(user = "alice", "signed in");
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[test]
    fn the_json_format_writes_one_json_object_per_line() {
        let text = logged(LogFormat::Json);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let Ok(line) = serde_json::from_str::<serde_json::Value>(lines[0]) else {
            panic!("not JSON: {text}");
        };
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["fields"]["message"], "signed in");
        assert_eq!(line["fields"]["user"], "alice");
        assert_eq!(line["span"]["class"], "api");
    }

    /// A reload's new `log.level` takes effect in the running subscriber.
    #[test]
    fn a_new_level_applies_to_the_running_subscriber() {
        let buffer = Buffer::default();
        let (dispatch, set) = reloadable(LogFormat::Text, filter(Some("warn")), buffer.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("before the reload");
            assert_eq!(set(filter(Some("info"))), Ok(()));
            tracing::info!("after the reload");
        });
        let bytes = buffer.0.lock().map(|b| b.clone()).unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes);
        assert!(!text.contains("before the reload"), "{text}");
        assert!(text.contains("after the reload"), "{text}");
    }

    #[test]
    fn the_text_format_is_not_json() {
        let text = logged(LogFormat::Text);
        assert!(text.contains("signed in"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
