//! The global `tracing` subscriber: structured logs on stdout.
//!
//! [`init`] installs it once at start-up. Lines are formatted on the thread that logs and handed
//! to a background thread (tracing-appender's non-blocking writer), which writes whatever has
//! queued into a large buffer and flushes it once the queue is empty. So the access log, one
//! line per request, costs a request thread no system call, and a burst of lines costs one
//! `write` per buffer-full. If the queue ever fills (the terminal or pipe is stuck), lines are
//! dropped rather than stalling requests. Keep the returned [`LogGuard`] alive for the life of
//! the process; dropping it flushes what is queued.

use std::io::{self, IsTerminal};

use palisade_config::LogFormat;
use tracing::Subscriber;
use tracing_appender::non_blocking::{NonBlockingBuilder, WorkerGuard};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer;
use tracing_subscriber::filter::ParseError;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::{SubscriberInitExt, TryInitError};

/// The `target` of access-log events, one per proxied request. Filter on it, e.g.
/// `RUST_LOG=info,palisade::access=off` turns the access log off.
pub const ACCESS_LOG_TARGET: &str = "palisade::access";

/// Lines the background writer may hold before new ones are dropped.
const QUEUE_LINES: usize = 128_000;

/// Bytes the background writer gathers before writing them to stdout.
const WRITE_BUFFER_BYTES: usize = 64 * 1024;

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LogInitError {
    /// The filter is not valid `tracing` env-filter syntax.
    #[error(
        "invalid log filter {filter:?} in {origin}: {source}; expected e.g. \"info\" or \"info,palisade=debug\""
    )]
    Filter {
        /// Where the filter came from: `RUST_LOG` or `log.level`.
        origin: &'static str,
        /// The filter as given.
        filter: String,
        /// What is wrong with it.
        #[source]
        source: ParseError,
    },
    /// A global subscriber (or `log` logger) was already installed.
    #[error("a global log subscriber is already installed")]
    AlreadyInstalled(#[source] TryInitError),
}

/// Keeps the background log writer running; dropping it flushes every queued line (waiting
/// up to a second) and stops the writer.
#[derive(Debug)]
#[must_use = "logs are flushed and the writer stopped when the guard is dropped"]
pub struct LogGuard {
    _worker: WorkerGuard,
}

impl LogGuard {
    /// Flushes every queued line and stops the writer; the same as dropping the guard.
    pub fn flush(self) {
        drop(self);
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        // Batched access-log lines first; then the worker guard (dropped after this) drains
        // the writer's queue.
        crate::access_log::flush();
    }
}

/// Installs the global subscriber writing to stdout in `format`, keeping events `filter`
/// allows (env-filter syntax). `RUST_LOG`, when set and not empty, is used instead of `filter`.
/// ANSI colours are used in the pretty format only when stdout is a terminal.
pub fn init(format: LogFormat, filter: &str) -> Result<LogGuard, LogInitError> {
    let filter = match std::env::var("RUST_LOG") {
        Ok(env) if !env.trim().is_empty() => parse_filter("RUST_LOG", &env)?,
        _ => parse_filter("log.level", filter)?,
    };
    // Stdout is line-buffered (a write per line); the BufWriter gathers a batch first. The
    // worker flushes whenever its queue runs empty, so lines are never held back for long.
    let stdout = io::BufWriter::with_capacity(WRITE_BUFFER_BYTES, io::stdout());
    let (writer, worker) = NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUE_LINES)
        .lossy(true)
        .thread_name("palisade-log")
        .finish(stdout);
    let ansi = io::stdout().is_terminal();
    if format == LogFormat::Json {
        crate::access_log::install_json_writer(writer.clone());
    }
    subscriber(format, filter, writer, ansi)
        .try_init()
        .map_err(LogInitError::AlreadyInstalled)?;
    Ok(LogGuard { _worker: worker })
}

fn parse_filter(origin: &'static str, filter: &str) -> Result<EnvFilter, LogInitError> {
    EnvFilter::try_new(filter).map_err(|source| LogInitError::Filter {
        origin,
        filter: filter.to_owned(),
        source,
    })
}

/// The subscriber [`init`] installs, writing to `writer`; separate so tests can capture lines.
fn subscriber<W>(
    format: LogFormat,
    filter: EnvFilter,
    writer: W,
    ansi: bool,
) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    use tracing_subscriber::layer::SubscriberExt;
    tracing_subscriber::registry()
        .with(filter)
        .with(format_layer(format, writer, ansi))
}

fn format_layer<S, W>(format: LogFormat, writer: W, ansi: bool) -> Box<dyn Layer<S> + Send + Sync>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let layer = tracing_subscriber::fmt::layer().with_writer(writer);
    match format {
        // Fields sit at the top level beside timestamp, level, target and message; request,
        // trace and span ids are fields of the events themselves, so span lists are left out.
        LogFormat::Json => layer
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .with_target(true)
            .boxed(),
        LogFormat::Pretty => layer.compact().with_target(true).with_ansi(ansi).boxed(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what it is given.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Capture {
        type Writer = Capture;
        fn make_writer(&'w self) -> Capture {
            self.clone()
        }
    }

    impl Capture {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    #[test]
    fn json_lines_carry_flat_fields_target_level_and_rfc3339_time() {
        let capture = Capture::default();
        let filter = EnvFilter::try_new("info").unwrap();
        let subscriber = subscriber(LogFormat::Json, filter, capture.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            let _span = tracing::info_span!("connection").entered();
            tracing::info!(
                target: ACCESS_LOG_TARGET,
                route = "api",
                method = "GET",
                status = 200u16,
                duration_ms = 1.5,
                request_id = "r-1",
                "request"
            );
            tracing::debug!("filtered out");
        });

        let text = capture.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let line: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(line["target"], ACCESS_LOG_TARGET);
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["message"], "request");
        assert_eq!(line["route"], "api");
        assert_eq!(line["status"], 200);
        assert_eq!(line["request_id"], "r-1");
        assert!(
            line.get("spans").is_none() && line.get("span").is_none(),
            "{line}"
        );
        let time = line["timestamp"].as_str().unwrap();
        assert!(humantime::parse_rfc3339(time).is_ok(), "{time}");
    }

    #[test]
    fn pretty_lines_are_plain_text_without_ansi_when_not_a_terminal() {
        let capture = Capture::default();
        let filter = EnvFilter::try_new("info").unwrap();
        let subscriber = subscriber(LogFormat::Pretty, filter, capture.clone(), false);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(upstream = "users", "upstream request failed");
        });
        let text = capture.text();
        assert!(
            text.contains("WARN") && text.contains("upstream=\"users\""),
            "{text}"
        );
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn a_bad_filter_names_its_origin() {
        let err = parse_filter("log.level", "info,[[[").unwrap_err();
        assert!(err.to_string().contains("log.level"), "{err}");
    }
}
