//! Upstream error bodies that leak internals. On a route with `sanitize_errors` (the default in
//! production mode) a 5xx body is read before anything goes to the client, up to
//! [`HOLD_MAX`]; when it looks like a stack trace or an HTML error page, or cannot be checked,
//! the client gets a problem body with the upstream's status instead, and the original is
//! logged at debug level with the request id. Both codecs hold the body and ask [`judge`].
//!
//! The checks are patterns, not proof: a body that passes them goes on unchanged. They look
//! for what frameworks print by default (Python tracebacks, Java, .NET, Node, Go, Rust, PHP and
//! Ruby traces, SQL error codes, `stack` members of JSON errors), also inside JSON strings
//! where line breaks are escaped.

use super::RequestCtx;

/// Most body bytes held for the check; a longer 5xx body is replaced unread.
pub const HOLD_MAX: usize = 64 * 1024;

/// Why an error body did not go to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leak {
    Html,
    StackTrace,
    /// Compressed, longer than [`HOLD_MAX`], or broken off: nothing vouches for it.
    Unchecked,
}

impl Leak {
    pub fn as_str(self) -> &'static str {
        match self {
            Leak::Html => "html",
            Leak::StackTrace => "stack_trace",
            Leak::Unchecked => "unchecked",
        }
    }
}

/// Whether a response of `status` is held for the check on a route that sanitizes.
pub fn holds(status: u16) -> bool {
    (500..600).contains(&status)
}

/// Judges a complete 5xx body by its `Content-Type` and `Content-Encoding` and its bytes.
pub fn judge(
    content_type: Option<&[u8]>,
    content_encoding: Option<&[u8]>,
    body: &[u8],
) -> Option<Leak> {
    if body.is_empty() {
        return None;
    }
    if content_encoding.is_some_and(|e| !e.trim_ascii().eq_ignore_ascii_case(b"identity")) {
        return Some(Leak::Unchecked);
    }
    let media = content_type
        .and_then(|t| t.split(|b| *b == b';').next())
        .map(<[u8]>::trim_ascii);
    let html_type = media.is_some_and(|m| {
        m.eq_ignore_ascii_case(b"text/html") || m.eq_ignore_ascii_case(b"application/xhtml+xml")
    });
    if html_type || looks_like_html(body) {
        return Some(Leak::Html);
    }
    looks_like_trace(body).then_some(Leak::StackTrace)
}

/// An HTML document, whatever its `Content-Type` says.
fn looks_like_html(body: &[u8]) -> bool {
    let start = &body[..body.len().min(1024)];
    ["<!doctype html", "<html", "<head>", "<body", "<title>"]
        .iter()
        .any(|tag| contains_ignore_case(start, tag.as_bytes()))
}

/// Markers that a runtime or a database printed its internals.
const MARKERS: [&str; 12] = [
    "Traceback (most recent call last)",
    "Exception in thread \"",
    "[running]:",
    "panicked at ",
    "stack backtrace:",
    "Stack trace:",
    "PHP Fatal error",
    "Fatal error: Uncaught",
    "--- End of stack trace",
    "--- End of inner exception",
    "SQLSTATE",
    ":in `",
];

/// JSON members frameworks put a stack into (matched without regard to case).
const MEMBERS: [&str; 5] = [
    "\"stack\":",
    "\"stacktrace\":",
    "\"stack_trace\":",
    "\"backtrace\":",
    "\"traceback\":",
];

fn looks_like_trace(body: &[u8]) -> bool {
    MARKERS.iter().any(|m| contains(body, m.as_bytes()))
        || MEMBERS
            .iter()
            .any(|m| contains_ignore_case(body, m.as_bytes()))
        || frames(body) >= 2
}

/// Lines shaped like a stack frame: `at name(file:line)` (Java, Node, .NET) or
/// `File "x.py", line 3` (Python), counted across real line breaks and escaped ones (`\n` in a
/// JSON string).
fn frames(body: &[u8]) -> usize {
    body.split(|b| *b == b'\n')
        .flat_map(split_escaped_newlines)
        .filter(|line| {
            let mut rest = *line;
            loop {
                let trimmed = rest.trim_ascii_start();
                match trimmed.strip_prefix(b"\\t") {
                    Some(after) => rest = after,
                    None => {
                        rest = trimmed;
                        break;
                    }
                }
            }
            let frame_at =
                rest.starts_with(b"at ") && (contains(rest, b"(") || contains(rest, b":line "));
            let frame_file = rest.starts_with(b"File \"") && contains(rest, b", line ");
            frame_at || frame_file
        })
        .count()
}

fn split_escaped_newlines(line: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(line);
    std::iter::from_fn(move || {
        let line = rest?;
        match line.windows(2).position(|w| w == b"\\n") {
            Some(i) => {
                rest = Some(&line[i + 2..]);
                Some(&line[..i])
            }
            None => {
                rest = None;
                Some(line)
            }
        }
    })
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn contains_ignore_case(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// Logs the replaced body for the operator: at debug level, with the request id, at most
/// 4 KiB of it.
pub fn log_replaced(ctx: &RequestCtx, route: &str, status: u16, leak: Leak, body: &[u8]) {
    tracing::debug!(
        request_id = ctx.record.request_id.to_str().unwrap_or_default(),
        route,
        status,
        reason = leak.as_str(),
        body = %String::from_utf8_lossy(&body[..body.len().min(4096)]),
        "replaced the upstream's error body"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn judged(content_type: &str, body: &str) -> Option<Leak> {
        judge(Some(content_type.as_bytes()), None, body.as_bytes())
    }

    #[test]
    fn html_error_pages_are_caught_by_type_or_by_look() {
        assert_eq!(judged("text/html; charset=utf-8", "oops"), Some(Leak::Html));
        let page = "\n<!DOCTYPE html><html><title>500 Internal Server Error</title>";
        assert_eq!(judged("text/plain", page), Some(Leak::Html));
        assert_eq!(judged("application/xhtml+xml", "x"), Some(Leak::Html));
    }

    #[test]
    fn stack_traces_of_common_runtimes_are_caught() {
        let traces = [
            // Python
            "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\nKeyError: 'x'",
            // Java, and Spring's JSON error with its trace member escaped
            "java.lang.NullPointerException\n\tat com.shop.Orders.get(Orders.java:42)\n\tat com.shop.Api.call(Api.java:7)",
            "{\"status\":500,\"trace\":\"java.lang.IllegalStateException\\n\\tat com.x.A.b(A.java:1)\\n\\tat com.x.C.d(C.java:2)\"}",
            // Node
            "TypeError: x is undefined\n    at Object.<anonymous> (/app/index.js:1:7)\n    at Module._compile (node:internal/modules/cjs/loader:1256:14)",
            "{\"error\":\"boom\",\"stack\":\"Error: boom\"}",
            // .NET
            "System.Exception: boom\n   at Shop.Orders.Get() in /src/Orders.cs:line 42\n   at Shop.Api.Call() in /src/Api.cs:line 7",
            // Go and Rust
            "panic: runtime error\n\ngoroutine 1 [running]:\nmain.main()",
            "thread 'main' panicked at src/main.rs:2:5:\nboom",
            // PHP, Ruby, SQL
            "PHP Fatal error:  Uncaught Exception: boom in /var/www/index.php:3",
            "/app/orders.rb:12:in `show': boom (RuntimeError)",
            "SQLSTATE[42S02]: Base table or view not found",
        ];
        for body in traces {
            assert_eq!(judged("text/plain", body), Some(Leak::StackTrace), "{body}");
        }
    }

    #[test]
    fn plain_error_messages_pass() {
        for (content_type, body) in [
            (
                "application/json",
                "{\"error\":\"temporarily unavailable\",\"retry\":true}",
            ),
            (
                "application/problem+json",
                "{\"title\":\"Service Unavailable\",\"status\":503}",
            ),
            (
                "text/plain",
                "upstream is down for maintenance; we will be back at 10:00",
            ),
            ("text/plain", "please meet us at the station (north exit)"),
        ] {
            assert_eq!(judged(content_type, body), None, "{body}");
        }
        assert_eq!(judge(None, None, b""), None);
    }

    #[test]
    fn a_compressed_body_cannot_be_checked() {
        let leak = judge(Some(b"application/json"), Some(b"gzip"), b"\x1f\x8b...");
        assert_eq!(leak, Some(Leak::Unchecked));
        assert_eq!(judge(None, Some(b"identity"), b"fine"), None);
    }

    #[test]
    fn only_server_errors_are_held() {
        assert!(holds(500) && holds(503) && holds(599));
        assert!(!holds(404) && !holds(499) && !holds(200));
    }
}
