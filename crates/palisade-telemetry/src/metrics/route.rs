//! Per-route request metrics: the counter and latency histogram of every request.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

/// The `route` label of requests that matched no route.
pub const NO_ROUTE: &str = "none";

/// Upper bounds of the latency histogram's buckets, in seconds: roughly ×2–2.5 apart, from
/// half a millisecond (a cached or refused request) to 30 s (a slow upstream near its timeout).
const DURATION_BUCKETS: [f64; 15] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The method label values, in the order [`method_index`] numbers them.
const METHODS: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "other",
];

/// The status class label values, in the order [`status_index`] numbers them.
const STATUS_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The labels of `palisade_http_requests_total` and `palisade_http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RequestLabels {
    route: Arc<str>,
    method: &'static str,
    status_class: &'static str,
}

/// Builds one latency histogram; the constructor of the duration family.
pub(super) fn request_duration_histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The `method` label value of a method: its name for the nine standard methods, else `other`
/// (so that clients cannot create series at will).
pub fn method_label(method: &Method) -> &'static str {
    METHODS[method_index(method)]
}

/// The `status_class` label value of a status code: `1xx` to `5xx`. Codes below 200 count as
/// `1xx` and codes of 500 and above as `5xx`, so every value maps to one of the five.
pub fn status_class(status: u16) -> &'static str {
    STATUS_CLASSES[status_index(status)]
}

fn method_index(method: &Method) -> usize {
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::DELETE => 4,
        Method::PATCH => 5,
        Method::OPTIONS => 6,
        Method::CONNECT => 7,
        Method::TRACE => 8,
        _ => 9,
    }
}

fn status_index(status: u16) -> usize {
    match status {
        ..200 => 0,
        200..300 => 1,
        300..400 => 2,
        400..500 => 3,
        _ => 4,
    }
}

/// One route's request metrics. Cheap to clone; create it once per route per config snapshot.
#[derive(Clone, Debug)]
pub struct RouteMetrics {
    inner: Arc<RouteInner>,
}

/// The labels of `palisade_http_rejections_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct RejectionLabels {
    route: Arc<str>,
    reason: &'static str,
}

#[derive(Debug)]
struct RouteInner {
    route: Arc<str>,
    requests: Family<RequestLabels, Counter>,
    rejections: Family<RejectionLabels, Counter>,
    durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
    /// The series of each (method, status class), looked up in the families on first use so
    /// that only combinations that happened appear, and never looked up again.
    series: [[OnceLock<(Counter, Histogram)>; STATUS_CLASSES.len()]; METHODS.len()],
}

impl RouteMetrics {
    pub(super) fn new(
        route: &str,
        requests: Family<RequestLabels, Counter>,
        durations: Family<RequestLabels, Histogram, fn() -> Histogram>,
        rejections: Family<RejectionLabels, Counter>,
    ) -> Self {
        RouteMetrics {
            inner: Arc::new(RouteInner {
                route: Arc::from(route),
                requests,
                rejections,
                durations,
                series: Default::default(),
            }),
        }
    }

    /// The route name this handle labels its series with.
    pub fn route(&self) -> &str {
        &self.inner.route
    }

    /// Counts a request Palisade answered itself, by the problem type's slug (`bad-request`,
    /// `no-route`, `payload-too-large`, ...: a fixed set, so the label stays bounded).
    pub fn rejected(&self, reason: &'static str) {
        self.inner
            .rejections
            .get_or_create(&RejectionLabels {
                route: self.inner.route.clone(),
                reason,
            })
            .inc();
    }

    /// Records one answered request: counts it and observes its duration.
    ///
    /// This is the hot path. After the first request of a (method, status class) it allocates
    /// nothing and looks nothing up: an atomic add and the histogram's own short lock.
    pub fn observe(&self, method: &Method, status: u16, elapsed: Duration) {
        let (m, s) = (method_index(method), status_index(status));
        let (counter, histogram) = self.inner.series[m][s].get_or_init(|| {
            let labels = RequestLabels {
                route: self.inner.route.clone(),
                method: METHODS[m],
                status_class: STATUS_CLASSES[s],
            };
            (
                self.inner.requests.get_or_create_owned(&labels),
                self.inner.durations.get_or_create_owned(&labels),
            )
        });
        counter.inc();
        histogram.observe(elapsed.as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_nine_are_other() {
        assert_eq!(method_label(&Method::GET), "GET");
        assert_eq!(method_label(&Method::TRACE), "TRACE");
        let custom = Method::from_bytes(b"PROPFIND").unwrap();
        assert_eq!(method_label(&custom), "other");
    }

    #[test]
    fn every_status_falls_in_one_of_five_classes() {
        assert_eq!(status_class(0), "1xx");
        assert_eq!(status_class(101), "1xx");
        assert_eq!(status_class(200), "2xx");
        assert_eq!(status_class(304), "3xx");
        assert_eq!(status_class(499), "4xx");
        assert_eq!(status_class(500), "5xx");
        assert_eq!(status_class(u16::MAX), "5xx");
    }

    #[test]
    fn buckets_increase() {
        assert!(DURATION_BUCKETS.windows(2).all(|w| w[0] < w[1]));
    }
}
