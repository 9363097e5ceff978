//! The access log: one JSON line per proxied request, written without the generic formatter.
//!
//! The line has the same shape as every other JSON log line (`timestamp`, `level`, `target`,
//! `message`, then the fields at the top level), but it is formatted straight into a shared
//! batch buffer, which goes to the log writer thread when it holds 32 KiB or every 500 ms (and
//! at shutdown) — like NGINX's `access_log ... buffer=64k flush=1s`. Handing over each line on
//! its own woke the writer thread and cost a `write` per request: about 7 µs of CPU per request
//! on the benchmark, against about 2 µs now (docs/performance.md). With the pretty format, or
//! before [`crate::logging::init`], entries go through `tracing` as ordinary events. Either
//! way the `palisade::access` target obeys the log filter.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use tracing::Level;
use tracing_appender::non_blocking::NonBlocking;

use crate::logging::ACCESS_LOG_TARGET;

/// Lines are handed to the writer thread in batches of about this many bytes.
const BATCH_BYTES: usize = 32 * 1024;

/// Longest time a line waits in the batch.
const FLUSH_EVERY: Duration = Duration::from_millis(500);

/// The batch of formatted lines and the writer they go to; set up by [`crate::logging::init`]
/// when the format is JSON.
static BATCH: OnceLock<Mutex<(String, NonBlocking)>> = OnceLock::new();

pub(crate) fn install_json_writer(writer: NonBlocking) {
    if BATCH
        .set(Mutex::new((String::with_capacity(BATCH_BYTES * 2), writer)))
        .is_ok()
    {
        let flusher = std::thread::Builder::new()
            .name("palisade-access-log".into())
            .spawn(|| {
                loop {
                    std::thread::sleep(FLUSH_EVERY);
                    flush();
                }
            });
        if let Err(error) = flusher {
            tracing::warn!(%error, "cannot start the access-log flusher; lines go out as batches fill");
        }
    }
}

/// Hands every batched line to the writer thread. Called periodically and at shutdown.
pub fn flush() {
    if let Some(batch) = BATCH.get()
        && let Ok(mut guard) = batch.lock()
    {
        let (buf, writer) = &mut *guard;
        hand_over(buf, writer);
    }
}

fn hand_over(buf: &mut String, writer: &mut NonBlocking) {
    if !buf.is_empty() {
        // One message for the whole batch; the writer never blocks (lossy when stuck).
        let _ = writer.write_all(buf.as_bytes());
        buf.clear();
    }
}

/// What the access log records about one request.
#[derive(Debug, Clone, Copy)]
pub struct AccessEntry<'a> {
    pub route: &'a str,
    pub method: &'a str,
    /// The path without its query string (queries often carry tokens).
    pub path: &'a str,
    pub status: u16,
    pub duration: Duration,
    pub bytes_in: Option<u64>,
    pub bytes_out: u64,
    /// False when the client went away before the whole response body was sent.
    pub complete: bool,
    pub client_ip: IpAddr,
    pub request_id: &'a str,
    pub trace_id: &'a str,
    pub span_id: &'a str,
}

/// Writes one access-log entry, if the log filter lets `palisade::access` INFO through.
pub fn write(entry: &AccessEntry<'_>) {
    if !tracing::enabled!(target: ACCESS_LOG_TARGET, Level::INFO) {
        return;
    }
    match BATCH.get().and_then(|b| b.lock().ok()) {
        Some(mut guard) => {
            let (buf, writer) = &mut *guard;
            format_json(buf, entry, SystemTime::now());
            if buf.len() >= BATCH_BYTES {
                hand_over(buf, writer);
            }
        }
        None => tracing::info!(
            target: ACCESS_LOG_TARGET,
            route = entry.route,
            method = entry.method,
            path = entry.path,
            status = entry.status,
            duration_ms = entry.duration.as_secs_f64() * 1000.0,
            bytes_in = entry.bytes_in,
            bytes_out = entry.bytes_out,
            complete = entry.complete,
            client_ip = %entry.client_ip,
            request_id = entry.request_id,
            trace_id = entry.trace_id,
            span_id = entry.span_id,
            "request"
        ),
    }
}

/// Formats `entry` as one JSON line (with the trailing newline) into `out`.
pub fn format_json(out: &mut String, e: &AccessEntry<'_>, now: SystemTime) {
    let _ = write!(
        out,
        "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"target\":\"{ACCESS_LOG_TARGET}\",\"message\":\"request\",\"route\":",
        humantime::format_rfc3339_micros(now)
    );
    json_str(out, e.route);
    out.push_str(",\"method\":");
    json_str(out, e.method);
    out.push_str(",\"path\":");
    json_str(out, e.path);
    // Milliseconds with microsecond precision, by integer arithmetic (float formatting with a
    // precision costs thousands of instructions).
    let micros = e.duration.as_micros();
    let _ = write!(
        out,
        ",\"status\":{},\"duration_ms\":{}.{:03}",
        e.status,
        micros / 1000,
        micros % 1000
    );
    if let Some(n) = e.bytes_in {
        let _ = write!(out, ",\"bytes_in\":{n}");
    }
    let _ = write!(
        out,
        ",\"bytes_out\":{},\"complete\":{},\"client_ip\":\"{}\",\"request_id\":",
        e.bytes_out, e.complete, e.client_ip
    );
    json_str(out, e.request_id);
    out.push_str(",\"trace_id\":");
    json_str(out, e.trace_id);
    out.push_str(",\"span_id\":");
    json_str(out, e.span_id);
    out.push_str("}\n");
}

/// Appends `s` as a JSON string literal.
fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(path: &str) -> AccessEntry<'_> {
        AccessEntry {
            route: "api",
            method: "GET",
            path,
            status: 200,
            duration: Duration::from_micros(1500),
            bytes_in: None,
            bytes_out: 459,
            complete: true,
            client_ip: "127.0.0.1".parse().unwrap(),
            request_id: "r-1",
            trace_id: "4bf92f3577b34da6a3ce929d0e0e4736",
            span_id: "00f067aa0ba902b7",
        }
    }

    #[test]
    fn line_is_one_json_object_shaped_like_other_log_lines() {
        let mut line = String::new();
        format_json(&mut line, &entry("/users/7"), SystemTime::UNIX_EPOCH);
        assert!(line.ends_with("}\n"));
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["timestamp"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], ACCESS_LOG_TARGET);
        assert_eq!(v["message"], "request");
        assert_eq!(v["route"], "api");
        assert_eq!(v["path"], "/users/7");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.5);
        assert_eq!(v["bytes_out"], 459);
        assert!(v.get("bytes_in").is_none());
        assert_eq!(v["complete"], true);
        assert_eq!(v["client_ip"], "127.0.0.1");
        assert_eq!(v["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    }

    #[test]
    fn client_controlled_text_cannot_break_the_line() {
        let mut line = String::new();
        let nasty = "/a\"b\\c\nd\u{1}é";
        format_json(&mut line, &entry(nasty), SystemTime::UNIX_EPOCH);
        assert_eq!(line.matches('\n').count(), 1);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["path"], nasty);
    }
}
