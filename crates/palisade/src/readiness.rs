//! Readiness: a cached verdict, refreshed in the background, that `/ready` only reads.
//!
//! Not ready while starting (before the first check), while draining for shutdown, or while a
//! required upstream has no endpoint accepting connections. Checks never run on a request's
//! critical path, so a slow upstream cannot make the kubelet's probe time out.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use palisade_layers::Proxy;
use palisade_telemetry::metrics::Metrics;
use serde::Serialize;
use tokio::sync::watch;

/// Result of checking one upstream.
#[derive(Debug, Clone, Serialize)]
pub struct UpstreamStatus {
    pub name: String,
    pub required: bool,
    pub reachable: bool,
}

#[derive(Debug, Clone, Default)]
struct Report {
    /// None until the first check has finished.
    checked_at: Option<SystemTime>,
    upstreams: Vec<UpstreamStatus>,
}

/// The verdict `/ready` and `/health` serve.
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub ready: bool,
    /// "starting", "ready", "not_ready" or "draining".
    pub state: &'static str,
    pub reasons: Vec<String>,
    pub upstreams: Vec<UpstreamStatus>,
    pub last_check_unix: Option<f64>,
}

#[derive(Default)]
pub struct Readiness {
    draining: AtomicBool,
    report: RwLock<Report>,
}

impl Readiness {
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::SeqCst);
    }

    pub fn verdict(&self) -> Verdict {
        let report = self.report.read().map(|r| r.clone()).unwrap_or_default();
        let last_check_unix = report.checked_at.map(unix);
        let mut reasons = Vec::new();
        let state = if self.draining.load(Ordering::SeqCst) {
            reasons.push("draining: shutting down".to_owned());
            "draining"
        } else if report.checked_at.is_none() {
            reasons.push("starting: first upstream check not finished".to_owned());
            "starting"
        } else {
            for u in report
                .upstreams
                .iter()
                .filter(|u| u.required && !u.reachable)
            {
                reasons.push(format!(
                    "upstream {:?} unreachable: no endpoint accepts connections",
                    u.name
                ));
            }
            if reasons.is_empty() {
                "ready"
            } else {
                "not_ready"
            }
        };
        Verdict {
            ready: state == "ready",
            state,
            reasons,
            upstreams: report.upstreams,
            last_check_unix,
        }
    }

    /// Checks every upstream of the current snapshot once and stores the result.
    pub async fn check(&self, proxy: &Proxy, metrics: &Metrics) {
        let snapshot = proxy.snapshot();
        let mut upstreams = Vec::with_capacity(snapshot.upstreams.len());
        for up in &snapshot.upstreams {
            upstreams.push(UpstreamStatus {
                name: up.name.clone(),
                required: up.required,
                reachable: up.probe().await,
            });
        }
        let now = SystemTime::now();
        if let Ok(mut report) = self.report.write() {
            *report = Report {
                checked_at: Some(now),
                upstreams,
            };
        }
        let verdict = self.verdict();
        metrics.set_ready(verdict.ready, unix(now));
    }

    /// Runs [`Readiness::check`] at once and then `interval` after each check until the task
    /// is dropped. A new interval (from a reload) ends the current wait: the next check runs at
    /// once and the new pace follows.
    pub async fn run(
        self: Arc<Self>,
        proxy: Arc<Proxy>,
        metrics: Arc<Metrics>,
        mut interval: watch::Receiver<Duration>,
    ) {
        loop {
            self.check(&proxy, &metrics).await;
            let wait = *interval.borrow_and_update();
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                Ok(()) = interval.changed() => {}
            }
        }
    }
}

pub fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}
