//! The security audit log: typed events, queued without blocking, written as JSON lines.
//!
//! Code on the request path holds a cheap [`AuditSink`] clone and calls [`AuditSink::emit`],
//! which only tries to put the event in a bounded queue: when the queue is full the event is
//! dropped and counted in `palisade_audit_events_dropped_total`, so a slow disk never slows a
//! request. One [`AuditWriter`] task takes whatever has queued, serialises it, writes it in one
//! go to stdout or the configured file, and flushes. At shutdown [`AuditSink::close`] waits
//! (bounded) for everything queued to be written.
//!
//! [`AuditSink::start`] only opens the output; the writer runs once it is spawned
//! ([`AuditWriter::spawn`]), which also lets tests fill the queue before anything drains it.

mod event;
#[cfg(test)]
mod tests;

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use palisade_config::{AuditConfig, AuditSinkKind};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot};

use crate::metrics::Metrics;
use event::AuditLine;
pub use event::{AuditCategory, AuditEvent, AuditOutcome};

/// Events the writer takes off the queue at most per write.
const BATCH: usize = 512;

/// Why the audit log could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// `sink = "file"` needs a path.
    #[error("audit.sink is \"file\" but audit.path is not set; set it to the file to append to")]
    MissingPath,
    /// The file could not be opened for appending.
    #[error("cannot open audit log file {path} for appending: {source}", path = path.display())]
    Open {
        /// The configured `audit.path`.
        path: PathBuf,
        /// The operating system's reason.
        #[source]
        source: io::Error,
    },
}

/// What travels through the queue.
enum Msg {
    Event(AuditEvent),
    /// Write everything queued, flush, acknowledge and stop.
    Close(oneshot::Sender<()>),
}

/// The handle events are emitted through. Cheap to clone; every clone feeds the same queue.
#[derive(Clone, Debug)]
pub struct AuditSink {
    /// `None` when the audit log is off.
    inner: Option<Arc<SinkInner>>,
}

#[derive(Debug)]
struct SinkInner {
    queue: mpsc::Sender<Msg>,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Msg::Event(event) => f.debug_tuple("Event").field(event).finish(),
            Msg::Close(_) => f.write_str("Close"),
        }
    }
}

impl AuditSink {
    /// Opens the configured output (creating the file if missing) and returns the sink with
    /// its writer, which does nothing until spawned. With `sink = "off"` the sink discards
    /// events without counting them and the writer returns at once.
    pub fn start(
        cfg: &AuditConfig,
        metrics: Arc<Metrics>,
    ) -> Result<(AuditSink, AuditWriter), AuditError> {
        let output: Output = match cfg.sink {
            AuditSinkKind::Off => return Ok((AuditSink::off(), AuditWriter::idle())),
            AuditSinkKind::Stdout => Box::pin(tokio::io::stdout()),
            AuditSinkKind::File => {
                let path = PathBuf::from(cfg.path.as_deref().ok_or(AuditError::MissingPath)?);
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(|source| AuditError::Open { path, source })?;
                Box::pin(tokio::fs::File::from_std(file))
            }
        };
        Ok(Self::with_output(cfg.queue_capacity, metrics, output))
    }

    /// A sink that discards every event; for tests and for `sink = "off"`.
    pub fn off() -> AuditSink {
        AuditSink { inner: None }
    }

    /// Whether events are written: build an event only when it is, where building it costs.
    pub fn is_on(&self) -> bool {
        self.inner.is_some()
    }

    fn with_output(capacity: usize, metrics: Arc<Metrics>, output: Output) -> (Self, AuditWriter) {
        // A zero capacity would panic in tokio; config validation should refuse it anyway.
        let (queue, receiver) = mpsc::channel(capacity.max(1));
        let writer = AuditWriter {
            state: Some(WriterState {
                receiver,
                output,
                metrics: metrics.clone(),
            }),
        };
        let sink = AuditSink {
            inner: Some(Arc::new(SinkInner { queue, metrics })),
        };
        (sink, writer)
    }

    /// Queues an event for writing. Never blocks or waits: when the queue is full, or the
    /// writer has stopped, the event is dropped and counted in
    /// `palisade_audit_events_dropped_total`.
    pub fn emit(&self, event: AuditEvent) {
        let Some(inner) = &self.inner else { return };
        match inner.queue.try_send(Msg::Event(event)) {
            Ok(()) => inner.metrics.audit_event(),
            Err(_) => inner.metrics.audit_dropped(1),
        }
    }

    /// Has the writer write and flush everything queued so far, then stop; waits at most
    /// `timeout`. Call it once at shutdown; events emitted afterwards are dropped and counted.
    pub async fn close(&self, timeout: Duration) {
        let Some(inner) = &self.inner else { return };
        let (ack, done) = oneshot::channel();
        let closed = async {
            // A send error means the writer is gone already: nothing is left to wait for.
            if inner.queue.send(Msg::Close(ack)).await.is_ok() {
                let _ = done.await;
            }
        };
        if tokio::time::timeout(timeout, closed).await.is_err() {
            tracing::warn!(
                timeout_ms = timeout.as_millis() as u64,
                "audit log not flushed before the shutdown timeout; queued events may be lost"
            );
        }
    }
}

/// Where the writer writes.
type Output = Pin<Box<dyn AsyncWrite + Send>>;

/// The task that drains the queue into the output. Spawn it with [`AuditWriter::spawn`] inside
/// a tokio runtime, or `.run().await` it.
#[must_use = "audit events are only written once the writer is spawned"]
pub struct AuditWriter {
    /// `None` when the audit log is off.
    state: Option<WriterState>,
}

struct WriterState {
    receiver: mpsc::Receiver<Msg>,
    output: Output,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for AuditWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditWriter")
            .field("enabled", &self.state.is_some())
            .finish()
    }
}

impl AuditWriter {
    fn idle() -> Self {
        AuditWriter { state: None }
    }

    /// Runs the writer on the current tokio runtime.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    /// Writes queued events until [`AuditSink::close`] is called or every sink is dropped.
    pub async fn run(self) {
        let Some(mut state) = self.state else { return };
        let mut batch = Vec::with_capacity(BATCH);
        let mut buf = Vec::with_capacity(64 * 1024);
        loop {
            if state.receiver.recv_many(&mut batch, BATCH).await == 0 {
                return; // every sink is gone and the queue is empty
            }
            let mut ack = None;
            let mut events = 0;
            for msg in batch.drain(..) {
                match msg {
                    Msg::Event(event) => events += encode_line(&event, &mut buf, &state.metrics),
                    Msg::Close(sender) => ack = Some(sender),
                }
            }
            if let Some(ack) = ack {
                // Refuse new events, then write the ones that got in before the door shut.
                state.receiver.close();
                while let Some(msg) = state.receiver.recv().await {
                    if let Msg::Event(event) = msg {
                        events += encode_line(&event, &mut buf, &state.metrics);
                    }
                }
                state.write(&mut buf, events).await;
                let _ = ack.send(());
                return;
            }
            state.write(&mut buf, events).await;
        }
    }
}

impl WriterState {
    /// Writes and flushes `buf`, which holds `events` lines, and empties it. A failure is
    /// logged and the events counted as dropped; the writer carries on with the next batch.
    async fn write(&mut self, buf: &mut Vec<u8>, events: u64) {
        if buf.is_empty() {
            return;
        }
        let written = async {
            self.output.write_all(buf).await?;
            self.output.flush().await
        };
        if let Err(error) = written.await {
            tracing::error!(%error, events, "failed to write audit events");
            self.metrics.audit_dropped(events);
        }
        buf.clear();
    }
}

/// Appends `event` as one JSON line to `buf`; returns 1, or 0 if it could not be serialised
/// (counted as dropped).
fn encode_line(event: &AuditEvent, buf: &mut Vec<u8>, metrics: &Metrics) -> u64 {
    let start = buf.len();
    match serde_json::to_writer(&mut *buf, &AuditLine::new(event)) {
        Ok(()) => {
            buf.push(b'\n');
            1
        }
        Err(error) => {
            buf.truncate(start);
            tracing::error!(%error, action = %event.action, "failed to serialise an audit event");
            metrics.audit_dropped(1);
            0
        }
    }
}
