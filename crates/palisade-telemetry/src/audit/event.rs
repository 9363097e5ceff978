//! The audit event: what happened, to whom, where, and how it ended.

use serde::{Deserialize, Serialize};

/// One security-relevant event. Build it with [`AuditEvent::now`] and the chained setters,
/// then hand it to [`AuditSink::emit`](super::AuditSink::emit).
///
/// It is written as one JSON object per line with these fields, plus `"type":"audit"`;
/// absent optional fields are written as `null` so every line has the same shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEvent {
    /// When it happened: RFC 3339, UTC, millisecond precision (`2026-01-02T03:04:05.678Z`).
    pub time: String,
    /// The area of the event.
    pub category: AuditCategory,
    /// What was attempted, in snake_case, e.g. `config_reload`, `shutdown`, `request_limited`.
    pub action: String,
    /// How it ended.
    pub outcome: AuditOutcome,
    /// Who did it, when known: an API key's name, a client address, an admin user.
    pub actor: Option<String>,
    /// The route involved, when there is one.
    pub route: Option<String>,
    /// The request's id (the `x-request-id` header), when a request caused the event.
    pub request_id: Option<String>,
    /// The W3C trace id of that request, when there is one.
    pub trace_id: Option<String>,
    /// Facts particular to the action, e.g. `{"limit": "100/s"}`; `{}` when there are none.
    /// Never put a secret here.
    pub details: serde_json::Value,
}

/// The area an audit event belongs to; written in snake_case (`rate_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditCategory {
    /// Configuration loaded or reloaded.
    Config,
    /// The process started, became ready or shut down.
    Lifecycle,
    /// A request was refused by a rate limit.
    RateLimit,
    /// A credential was checked.
    Authentication,
    /// A webhook signature was checked.
    Signature,
    /// An operator used the admin API.
    Admin,
    /// A maintenance job ran (or was refused its lock, or failed).
    Job,
}

/// How an audited action ended; written in snake_case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditOutcome {
    /// It was done.
    Success,
    /// It was attempted and went wrong (a reload with an invalid file).
    Failure,
    /// A policy refused it (a rate limit, a bad credential or signature).
    Denied,
}

impl AuditEvent {
    /// An event stamped with the current time, with no optional fields and empty details.
    pub fn now(category: AuditCategory, action: impl Into<String>, outcome: AuditOutcome) -> Self {
        AuditEvent {
            time: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            category,
            action: action.into(),
            outcome,
            actor: None,
            route: None,
            request_id: None,
            trace_id: None,
            details: serde_json::Value::Object(serde_json::Map::new()),
        }
    }

    /// Sets who did it.
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// Sets the route involved.
    pub fn route(mut self, route: impl Into<String>) -> Self {
        self.route = Some(route.into());
        self
    }

    /// Sets the id of the request that caused it.
    pub fn request_id(mut self, request_id: impl Into<String>) -> Self {
        self.request_id = Some(request_id.into());
        self
    }

    /// Sets the trace id of the request that caused it.
    pub fn trace_id(mut self, trace_id: impl Into<String>) -> Self {
        self.trace_id = Some(trace_id.into());
        self
    }

    /// Sets the action's particular facts.
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }
}

/// An event as written: its fields beside `"type":"audit"`, which tells audit lines from log
/// lines when both go to stdout.
#[derive(Serialize)]
pub(super) struct AuditLine<'a> {
    #[serde(rename = "type")]
    pub(super) kind: &'static str,
    #[serde(flatten)]
    pub(super) event: &'a AuditEvent,
}

impl<'a> AuditLine<'a> {
    pub(super) fn new(event: &'a AuditEvent) -> Self {
        AuditLine {
            kind: "audit",
            event,
        }
    }
}
