//! Per-upstream metrics: failed upstream requests by kind of failure.

use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// Why a request to an upstream failed; the `kind` label of
/// `palisade_upstream_request_errors_total`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UpstreamErrorKind {
    /// The connection could not be established (refused, unreachable, DNS, TLS handshake).
    Connect,
    /// The upstream did not answer in time.
    Timeout,
    /// The upstream broke the HTTP protocol or closed the connection mid-response.
    Protocol,
    /// Anything else.
    Other,
}

impl UpstreamErrorKind {
    const ALL: [UpstreamErrorKind; 4] = [Self::Connect, Self::Timeout, Self::Protocol, Self::Other];

    /// The label value: `connect`, `timeout`, `protocol` or `other`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::Protocol => "protocol",
            Self::Other => "other",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// The labels of `palisade_upstream_request_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct UpstreamLabels {
    upstream: Arc<str>,
    kind: &'static str,
}

/// The labels of `palisade_upstream_failovers_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct FailoverLabels {
    upstream: Arc<str>,
}

/// The labels of `palisade_upstream_ejections_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct EjectionLabels {
    upstream: Arc<str>,
    reason: &'static str,
}

/// One upstream's metrics. Cheap to clone; create it once per upstream per config snapshot.
#[derive(Clone, Debug)]
pub struct UpstreamMetrics {
    inner: Arc<UpstreamInner>,
}

#[derive(Debug)]
struct UpstreamInner {
    upstream: Arc<str>,
    errors: Family<UpstreamLabels, Counter>,
    failovers: Counter,
    ejections: Family<EjectionLabels, Counter>,
    /// Each kind's series, looked up on first use.
    series: [OnceLock<Counter>; UpstreamErrorKind::ALL.len()],
}

impl UpstreamMetrics {
    pub(super) fn new(
        upstream: &str,
        errors: Family<UpstreamLabels, Counter>,
        failovers: &Family<FailoverLabels, Counter>,
        ejections: Family<EjectionLabels, Counter>,
    ) -> Self {
        let failovers = failovers
            .get_or_create(&FailoverLabels {
                upstream: Arc::from(upstream),
            })
            .clone();
        UpstreamMetrics {
            inner: Arc::new(UpstreamInner {
                upstream: Arc::from(upstream),
                errors,
                failovers,
                ejections,
                series: Default::default(),
            }),
        }
    }

    /// The upstream name this handle labels its series with.
    pub fn upstream(&self) -> &str {
        &self.inner.upstream
    }

    /// Counts an endpoint taken out of the rotation: `5xx` (server errors in a row) or
    /// `health_check` (failed active checks).
    pub fn ejected(&self, reason: &'static str) {
        let labels = EjectionLabels {
            upstream: self.inner.upstream.clone(),
            reason,
        };
        self.inner.ejections.get_or_create(&labels).inc();
    }

    /// Counts a request moved to the next endpoint because its endpoint was unreachable.
    pub fn failover(&self) {
        self.inner.failovers.inc();
    }

    /// Counts one failed upstream request.
    pub fn error(&self, kind: UpstreamErrorKind) {
        self.inner.series[kind.index()]
            .get_or_init(|| {
                self.inner.errors.get_or_create_owned(&UpstreamLabels {
                    upstream: self.inner.upstream.clone(),
                    kind: kind.as_str(),
                })
            })
            .inc();
    }
}
