//! The ops listener: `/live`, `/ready`, `/health` and `/metrics`. Read-only and cheap, safe to
//! expose to the kubelet and Prometheus; everything it serves is cached or in memory.

use std::sync::Arc;
use std::time::Instant;

use arc_swap::ArcSwap;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use palisade_layers::Proxy;
use palisade_telemetry::metrics::{Format, Metrics};
use serde_json::json;

use crate::readiness::Readiness;
use crate::run::ConfigStatus;

pub struct OpsState {
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub proxy: Arc<Proxy>,
    /// The config version in force and any reload waiting for a restart.
    pub config: Arc<ArcSwap<ConfigStatus>>,
    pub started: Instant,
}

pub fn router(state: Arc<OpsState>) -> Router {
    Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/breakers", get(breakers))
        .with_state(state)
}

async fn live() -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({"status": "live"})),
    )
        .into_response()
}

async fn ready(State(state): State<Arc<OpsState>>) -> Response {
    let v = state.readiness.verdict();
    let status = if v.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({"status": v.state, "reasons": v.reasons});
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

async fn health(State(state): State<Arc<OpsState>>) -> Response {
    let v = state.readiness.verdict();
    let status = if v.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let snapshot = state.proxy.snapshot();
    let config = state.config.load();
    let body = json!({
        "status": v.state,
        "reasons": v.reasons,
        "version": env!("CARGO_PKG_VERSION"),
        "config_version": config.config_version,
        "pending_restart": config.pending_restart,
        "uptime_seconds": state.started.elapsed().as_secs(),
        "components": {
            "upstreams": v.upstreams,
            "endpoints": state.proxy.endpoint_health().into_iter().collect::<std::collections::BTreeMap<_, _>>(),
            "routes": snapshot.router.routes().len(),
            "last_check_unix": v.last_check_unix,
            // Not part of readiness: while Redis cannot answer, each policy's
            // on_backend_error does, so taking the replica out of service would help no one.
            "redis": state.proxy.retained().limiters.redis().map(|r| r.state()),
            // Each upstream's circuit breaker: closed, open or half_open. An open breaker
            // does not make the replica unready: its fallback or 503 answers meanwhile.
            "breakers": state
                .proxy
                .retained()
                .breakers
                .states()
                .into_iter()
                .map(|(upstream, breaker)| (upstream, breaker.as_str()))
                .collect::<std::collections::BTreeMap<_, _>>(),
        },
    });
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(body),
    )
        .into_response()
}

/// Each upstream circuit breaker in detail: its state, the calls and failures in its window
/// (while closed), failures in a row, and the seconds left open.
async fn breakers(State(state): State<Arc<OpsState>>) -> Response {
    let breakers: std::collections::BTreeMap<String, serde_json::Value> = state
        .proxy
        .retained()
        .breakers
        .snapshots()
        .into_iter()
        .map(|(upstream, b)| {
            let detail = json!({
                "state": b.state.as_str(),
                "requests": b.requests,
                "failures": b.failures,
                "consecutive_failures": b.consecutive_failures,
                "open_remaining_seconds": b.open_remaining.map(|d| d.as_secs_f64()),
            });
            (upstream, detail)
        })
        .collect();
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(json!({ "breakers": breakers })),
    )
        .into_response()
}

/// The metrics page in the format the scraper's `Accept` header asks for: OpenMetrics for
/// Prometheus, the Prometheus text format 0.0.4 for everything else (`promtool`, `curl`).
async fn metrics(State(state): State<Arc<OpsState>>, headers: HeaderMap) -> Response {
    // Several `Accept` lines mean the same as one joined with commas.
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let format = Format::negotiate((!accept.is_empty()).then(|| accept.join(",")).as_deref());
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, format.content_type()),
            (header::VARY, "accept"),
        ],
        state.metrics.encode(format),
    )
        .into_response()
}
