//! Logging setup. Handlers touching tokens are `#[instrument(skip_all)]`, so tokens never
//! reach a log line, in either format.

use tracing::Dispatch;
use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter, util::SubscriberInitExt};

use crate::settings::LogFormat;

/// Logs to stderr in `format`; level from `RUST_LOG` (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = subscriber(format, filter, std::io::stderr).try_init();
}

/// The subscriber of [`init`], writing to `writer` (tests give it a buffer).
pub fn subscriber<W>(format: LogFormat, filter: EnvFilter, writer: W) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = fmt().with_env_filter(filter).with_writer(writer);
    match format {
        LogFormat::Text => Dispatch::new(builder.finish()),
        // One JSON object a line: the event's fields and the spans it happened in.
        LogFormat::Json => Dispatch::new(builder.json().finish()),
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

    #[test]
    fn the_text_format_is_not_json() {
        let text = logged(LogFormat::Text);
        assert!(text.contains("signed in"), "{text}");
        assert!(serde_json::from_str::<serde_json::Value>(text.trim()).is_err());
    }
}
