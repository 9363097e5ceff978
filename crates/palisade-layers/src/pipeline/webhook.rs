//! Inbound webhook signatures on a route with `[routes.webhook]`: the body is read whole
//! (within `max_request_body`), its signature checked over the exact bytes received, and a
//! delivery already accepted is refused (409) while its key is kept. The upstream gets the
//! same bytes plus `X-Webhook-Verified` (the scheme) and `X-Webhook-Id`. Such requests are the
//! general codec's: the fast codec hands them over before a byte is forwarded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::metrics::SecurityMetrics;

use super::RequestCtx;
use crate::problem::ProxyError;
use crate::ratelimit::redis::RedisBackend;
use crate::webhook::{Headers, Scheme, Verifier};

/// How long a delivery key is kept when its scheme has no timestamp bounding replays.
const KEEP_UNTIMED: Duration = Duration::from_secs(24 * 3600);
/// Most delivery keys one route keeps in memory; past it the oldest expire first.
const MEMORY_KEYS: usize = 100_000;

/// A route's webhook check.
pub struct RouteWebhook {
    /// `None`: development mode and no secret; deliveries pass unverified, with a warning.
    pub verifier: Option<Verifier>,
    pub scheme: Scheme,
    pub replay: Replay,
    pub metrics: SecurityMetrics,
    pub audit: AuditSink,
}

impl std::fmt::Debug for RouteWebhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteWebhook")
            .field("scheme", &self.scheme)
            .field("verified", &self.verifier.is_some())
            .finish_non_exhaustive()
    }
}

/// Where accepted deliveries are remembered.
pub enum Replay {
    Off,
    Memory(MemoryReplay),
    /// Shared by the replicas; while Redis cannot answer, this replica's memory decides.
    Redis(Arc<RedisBackend>, MemoryReplay),
}

/// Delivery keys with their expiry, bounded in number.
#[derive(Default)]
pub struct MemoryReplay(Mutex<HashMap<String, Instant>>);

impl MemoryReplay {
    /// True the first time `key` is seen within `keep`.
    fn first_seen(&self, key: &str, keep: Duration) -> bool {
        let now = Instant::now();
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.get(key).is_some_and(|until| *until > now) {
            return false;
        }
        if seen.len() >= MEMORY_KEYS {
            seen.retain(|_, until| *until > now);
            if seen.len() >= MEMORY_KEYS {
                // Still full of live keys: drop the ones closest to expiring.
                let mut expiries: Vec<Instant> = seen.values().copied().collect();
                expiries.sort_unstable();
                let cut = expiries[MEMORY_KEYS / 10];
                seen.retain(|_, until| *until > cut);
            }
        }
        seen.insert(key.to_owned(), now + keep);
        true
    }
}

/// What the upstream is told: the scheme (or `skipped`) and the delivery id.
pub struct Delivery {
    pub verified: &'static str,
    pub id: Option<String>,
}

/// Checks a delivery's signature and freshness; the answer when it may not go on.
pub async fn verify(
    hook: &RouteWebhook,
    headers: &(impl Headers + ?Sized),
    body: &[u8],
    ctx: &mut RequestCtx,
    route: &str,
) -> Result<Delivery, ProxyError> {
    let scheme = hook.scheme.as_str();
    let Some(verifier) = &hook.verifier else {
        hook.metrics.webhook(scheme, "skipped");
        tracing::warn!(
            request_id = ctx.record.request_id.to_str().unwrap_or_default(),
            route,
            scheme,
            "webhook delivery passed UNVERIFIED: development mode and no secret configured"
        );
        return Ok(Delivery {
            verified: "skipped",
            id: None,
        });
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let verified = match verifier.verify(headers, body, now) {
        Ok(verified) => verified,
        Err(failure) => {
            let reason = failure.as_str();
            refused(hook, ctx, route, "signature_invalid", reason);
            return Err(ProxyError::BadSignature);
        }
    };
    let key = verifier.replay_key(&verified);
    let keep = key.keep_for.unwrap_or(KEEP_UNTIMED);
    let scoped = format!("{route}:{}", key.key);
    let first = match &hook.replay {
        Replay::Off => true,
        Replay::Memory(memory) => memory.first_seen(&scoped, keep),
        Replay::Redis(redis, memory) => match redis.first_seen(scoped.as_bytes(), keep).await {
            Ok(first) => first,
            Err(error) => {
                tracing::warn!(route, %error, "webhook replay check without redis: this replica's memory decides");
                memory.first_seen(&scoped, keep)
            }
        },
    };
    if !first {
        refused(hook, ctx, route, "signature_replayed", "replayed");
        return Err(ProxyError::Replayed);
    }
    hook.metrics.webhook(scheme, "valid");
    Ok(Delivery {
        verified: scheme,
        id: verified.message_id,
    })
}

fn refused(
    hook: &RouteWebhook,
    ctx: &mut RequestCtx,
    route: &str,
    action: &str,
    reason: &'static str,
) {
    let scheme = hook.scheme.as_str();
    hook.metrics.webhook(scheme, reason);
    ctx.reason = Some(reason);
    let request_id = ctx.record.request_id.to_str().unwrap_or_default();
    tracing::info!(request_id, route, scheme, reason, client_ip = %ctx.record.client_ip, "webhook delivery refused");
    if hook.audit.is_on() {
        hook.audit.emit(
            AuditEvent::now(AuditCategory::Signature, action, AuditOutcome::Denied)
                .actor(ctx.record.client_ip.to_string())
                .route(route)
                .request_id(request_id)
                .trace_id(ctx.record.trace.trace_id())
                .details(serde_json::json!({ "scheme": scheme, "reason": reason })),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_replay_refuses_a_second_delivery_until_the_key_expires() {
        let memory = MemoryReplay::default();
        assert!(memory.first_seen("a", Duration::from_secs(60)));
        assert!(!memory.first_seen("a", Duration::from_secs(60)));
        assert!(memory.first_seen("b", Duration::from_secs(60)));
        assert!(memory.first_seen("gone", Duration::ZERO));
        assert!(memory.first_seen("gone", Duration::from_secs(60)));
    }

    #[test]
    fn memory_replay_stays_bounded() {
        let memory = MemoryReplay::default();
        for i in 0..MEMORY_KEYS + 10 {
            memory.first_seen(&i.to_string(), Duration::from_secs(60));
        }
        assert!(memory.0.lock().unwrap().len() <= MEMORY_KEYS);
    }
}
