//! Per-route credential and webhook signature metrics. Every label value is bounded: routes
//! come from the config, reasons and schemes from fixed lists in the verifiers.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;

/// The labels of `palisade_auth_decisions_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct AuthLabels {
    route: Arc<str>,
    method: &'static str,
    result: &'static str,
}

/// The labels of `palisade_webhook_verifications_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(super) struct WebhookLabels {
    route: Arc<str>,
    scheme: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Default)]
pub(super) struct SecurityFamilies {
    pub(super) auth: Family<AuthLabels, Counter>,
    pub(super) webhooks: Family<WebhookLabels, Counter>,
}

/// One route's handle; cheap to clone, built with the route.
#[derive(Clone, Debug)]
pub struct SecurityMetrics {
    route: Arc<str>,
    families: SecurityFamilies,
}

impl SecurityMetrics {
    pub(super) fn new(route: &str, families: &SecurityFamilies) -> Self {
        Self {
            route: Arc::from(route),
            families: families.clone(),
        }
    }

    /// Counts a credential check: `method` is `jwt`, `api_key` or `none` (nothing presented),
    /// `result` is `ok`, `forbidden` (scopes) or the verifier's reason.
    pub fn auth(&self, method: &'static str, result: &'static str) {
        let labels = AuthLabels {
            route: self.route.clone(),
            method,
            result,
        };
        self.families.auth.get_or_create(&labels).inc();
    }

    /// Counts a webhook verification: `result` is `valid`, `skipped` (development mode, no
    /// secret), `replayed` or the verifier's reason.
    pub fn webhook(&self, scheme: &'static str, result: &'static str) {
        let labels = WebhookLabels {
            route: self.route.clone(),
            scheme,
            result,
        };
        self.families.webhooks.get_or_create(&labels).inc();
    }
}
