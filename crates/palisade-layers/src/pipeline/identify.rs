//! Who is calling: a route's `auth` checked on the request head, on both codecs, before its
//! per-identity rate limits. The caller's identity goes upstream in configured headers (copies
//! a client sends are removed on every route), feeds rate-limit keys and tiers, and names the
//! actor of audit events. A refusal is 401 with `WWW-Authenticate` (RFC 6750) or, for missing
//! scopes, 403; each is counted and audited.

use std::time::{SystemTime, UNIX_EPOCH};

use http::HeaderName;
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::metrics::SecurityMetrics;

use super::RequestCtx;
use super::head::RequestHead;
use crate::identity::{AuthError, Authenticator, Identity, JwksCache};
use crate::problem::ProxyError;

/// A route's credential check.
#[derive(Debug)]
pub struct RouteAuth {
    pub authenticator: Authenticator,
    /// Scopes the caller must all have (403 otherwise).
    pub scopes: Vec<String>,
    pub metrics: SecurityMetrics,
    pub audit: AuditSink,
}

/// The request headers a route writes from its own decisions: the verified identity, what a
/// webhook signature proved, and the upstream's `deadline_header`. A client's copies never go
/// on.
#[derive(Debug, Clone)]
pub struct IdentityHeaders {
    pub user: HeaderName,
    pub tier: HeaderName,
    pub method: HeaderName,
    /// The upstream's `deadline_header` ([`IdentityHeaders::with_deadline`]).
    deadline: Option<HeaderName>,
    /// Bit `n` set when one of the managed names is `n` bytes long: most client headers are
    /// told apart by their length alone, on every request of every route.
    lengths: u64,
}

/// The scheme of a verified webhook delivery, or `skipped`.
pub static WEBHOOK_VERIFIED: HeaderName = HeaderName::from_static("x-webhook-verified");
/// The id of a verified webhook delivery, when its scheme has one.
pub static WEBHOOK_ID: HeaderName = HeaderName::from_static("x-webhook-id");

impl IdentityHeaders {
    pub fn new(user: HeaderName, tier: HeaderName, method: HeaderName) -> Self {
        Self {
            user,
            tier,
            method,
            deadline: None,
            lengths: 0,
        }
        .measured()
    }

    /// The same, with a route's upstream's `deadline_header` among them.
    pub fn with_deadline(&self, deadline: Option<HeaderName>) -> Self {
        Self {
            deadline,
            ..self.clone()
        }
        .measured()
    }

    fn measured(mut self) -> Self {
        let lengths: Vec<u32> = self.names().map(|n| n.as_str().len() as u32).collect();
        self.lengths = lengths
            .into_iter()
            .fold(0, |mask, len| mask | 1u64.checked_shl(len).unwrap_or(0));
        self
    }

    fn names(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.user,
            &self.tier,
            &self.method,
            &WEBHOOK_VERIFIED,
            &WEBHOOK_ID,
        ]
        .into_iter()
        .chain(&self.deadline)
    }

    /// Whether a client's header `name` is one of these (or a webhook one): it is dropped.
    pub fn managed(&self, name: &[u8]) -> bool {
        // Names of 64 bytes or more are compared one by one.
        let bit = 1u64.checked_shl(name.len() as u32).unwrap_or(u64::MAX);
        self.lengths & bit != 0
            && self
                .names()
                .any(|h| h.as_str().as_bytes().eq_ignore_ascii_case(name))
    }
}

impl Default for IdentityHeaders {
    fn default() -> Self {
        Self::new(
            HeaderName::from_static("x-user-id"),
            HeaderName::from_static("x-user-tier"),
            HeaderName::from_static("x-auth-method"),
        )
    }
}

/// What the check decided when it did not admit the caller.
pub enum Refused {
    /// 401 or 403: the context holds the challenge and the reason.
    Answer(ProxyError),
    /// The token names a key the cached JWK Set lacks: fetch the set and ask again; if the set
    /// did not change, answer as the 401 says.
    Refresh(JwksCache, ProxyError),
}

/// Checks the request's credential against `auth`; on success the identity is in `ctx`.
pub fn identify(
    auth: &RouteAuth,
    head: &RequestHead<'_>,
    ctx: &mut RequestCtx,
    route: &str,
) -> Result<(), Refused> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let lines = head.lines.iter().map(|l| (l.name, l.value));
    let checked = auth.authenticator.authenticate_cached(lines, now);
    let identity = match checked {
        Ok(Some(identity)) => identity,
        Ok(None) => return Err(refuse(auth, ctx, route, None)),
        Err(error) => {
            let refused = refuse(auth, ctx, route, Some(error));
            return match (auth.authenticator.refreshable(&error), refused) {
                (Some(jwks), Refused::Answer(answer)) => {
                    Err(Refused::Refresh(jwks.clone(), answer))
                }
                (_, refused) => Err(refused),
            };
        }
    };
    // The identity goes upstream in header values: a claim that cannot be one is refused.
    let header_safe = |v: &str| v.bytes().all(|b| (b >= 0x20 && b != 0x7f) || b == b'\t');
    if !header_safe(&identity.subject) || !identity.tier.as_deref().is_none_or(header_safe) {
        let error = AuthError::Jwt(crate::identity::JwtError::InvalidClaim);
        return Err(refuse(auth, ctx, route, Some(error)));
    }
    if !identity.has_scopes(&auth.scopes) {
        auth.metrics.auth(identity.method.as_str(), "forbidden");
        let scope = auth.scopes.join(" ");
        ctx.challenge = Some(format!(
            "Bearer realm=\"palisade\", error=\"insufficient_scope\", scope=\"{scope}\""
        ));
        ctx.reason = Some("insufficient_scope");
        audit(
            auth,
            ctx,
            route,
            "auth_forbidden",
            &identity.subject,
            "insufficient_scope",
        );
        return Err(Refused::Answer(ProxyError::Forbidden));
    }
    auth.metrics.auth(identity.method.as_str(), "ok");
    ctx.identity = Some(Box::new(identity));
    Ok(())
}

/// A 401: counted, audited, with the challenge that tells the client what to send. A refresh
/// that finds the key later counts the request again; the count says how often that happens.
fn refuse(
    auth: &RouteAuth,
    ctx: &mut RequestCtx,
    route: &str,
    error: Option<AuthError>,
) -> Refused {
    let reason = error.map_or("missing", AuthError::as_str);
    let method = match error {
        Some(AuthError::Jwt(_)) => "jwt",
        Some(AuthError::UnknownApiKey) => "api_key",
        _ => "none",
    };
    auth.metrics.auth(method, reason);
    // RFC 6750 §3.1: no error code when the request carried no credential.
    ctx.challenge = Some(match error {
        None => "Bearer realm=\"palisade\"".to_owned(),
        Some(_) => format!(
            "Bearer realm=\"palisade\", error=\"invalid_token\", error_description=\"{reason}\""
        ),
    });
    ctx.reason = Some(reason);
    let actor = ctx.record.client_ip.to_string();
    audit(auth, ctx, route, "auth_failed", &actor, reason);
    Refused::Answer(ProxyError::Unauthorized)
}

fn audit(auth: &RouteAuth, ctx: &RequestCtx, route: &str, action: &str, actor: &str, reason: &str) {
    tracing::info!(
        request_id = ctx.record.request_id.to_str().unwrap_or_default(),
        route,
        client_ip = %ctx.record.client_ip,
        reason,
        "request refused: {action}"
    );
    // Built only when written: refusals under attack should cost no more than they must.
    if auth.audit.is_on() {
        auth.audit.emit(
            AuditEvent::now(AuditCategory::Authentication, action, AuditOutcome::Denied)
                .actor(actor)
                .route(route)
                .request_id(ctx.record.request_id.to_str().unwrap_or_default())
                .trace_id(ctx.record.trace.trace_id())
                .details(serde_json::json!({ "reason": reason })),
        );
    }
}

/// Writes the identity headers of a verified caller.
pub fn write_identity(
    headers: &IdentityHeaders,
    identity: &Identity,
    sink: &mut impl super::forward::HeaderSink,
) {
    sink.header(
        headers.user.as_str().as_bytes(),
        identity.subject.as_bytes(),
    );
    if let Some(tier) = &identity.tier {
        sink.header(headers.tier.as_str().as_bytes(), tier.as_bytes());
    }
    sink.header(
        headers.method.as_str().as_bytes(),
        identity.method.as_str().as_bytes(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_names_are_found_in_any_case_and_others_pass() {
        let long = HeaderName::from_bytes(&[b'x'; 70]).unwrap();
        let headers = IdentityHeaders::new(
            HeaderName::from_static("x-caller"),
            long.clone(),
            HeaderName::from_static("x-auth-method"),
        );
        for name in [
            "x-caller",
            "X-Caller",
            "x-auth-method",
            "x-webhook-verified",
            "X-Webhook-Id",
        ] {
            assert!(headers.managed(name.as_bytes()), "{name}");
        }
        assert!(headers.managed(long.as_str().to_ascii_uppercase().as_bytes()));
        for name in ["x-user-id", "content-type", "x-callers", "user-agent", ""] {
            assert!(!headers.managed(name.as_bytes()), "{name}");
        }
        assert!(!headers.managed(&[b'y'; 70]));
        // A route's upstream's deadline header joins them.
        let deadline = HeaderName::from_static("x-request-timeout-ms");
        assert!(!headers.managed(b"X-Request-Timeout-Ms"));
        let with = headers.with_deadline(Some(deadline));
        assert!(with.managed(b"X-Request-Timeout-Ms") && with.managed(b"x-caller"));
    }
}
