//! Checks of an upstream's `[retry]`, `[breaker]`, `[fallback]` and `[health_check]`.

use std::collections::BTreeMap;

use crate::error::{FieldPath, Issue};
use crate::model::UpstreamConfig;
use crate::validate::{check_positive, valid_header_value};

/// The resilience settings of upstream `name`; `upstreams` are all of them, for a fallback.
pub(crate) fn check(
    name: &str,
    upstream: &UpstreamConfig,
    upstreams: &BTreeMap<String, Option<UpstreamConfig>>,
    path: &FieldPath,
    issues: &mut Vec<Issue>,
) {
    let retry = &upstream.retry;
    let at = path.key("retry");
    if retry.attempts == 0 || retry.attempts > 10 {
        issues.push(Issue::new(
            at.key("attempts"),
            "must be from 1 (no retries) to 10, e.g. 2",
        ));
    }
    for (i, on) in retry.on.iter().enumerate() {
        let status = on.parse::<u16>().is_ok_and(|s| (400..=599).contains(&s)) && on.len() == 3;
        if !status && !["connect", "reset", "timeout"].contains(&on.as_str()) {
            issues.push(Issue::new(
                at.key("on").index(i),
                format!("{on:?} is not retryable; valid: \"connect\", \"reset\", \"timeout\" or a status from 400 to 599"),
            ));
        }
    }
    check_positive(retry.backoff, at.key("backoff"), issues);
    if retry.max_backoff.get() < retry.backoff.get() {
        issues.push(Issue::new(
            at.key("max_backoff"),
            "must be at least backoff",
        ));
    }
    if !(retry.budget >= 0.0 && retry.budget <= 10.0) {
        issues.push(Issue::new(
            at.key("budget"),
            "must be from 0 to 10, e.g. 0.2 for 20 % more requests",
        ));
    }
    check_positive(retry.budget_window, at.key("budget_window"), issues);
    if let Some(try_timeout) = retry.try_timeout {
        check_positive(try_timeout, at.key("try_timeout"), issues);
    }
    if let Some(breaker) = &upstream.breaker {
        let at = path.key("breaker");
        if !(breaker.failure_rate > 0.0 && breaker.failure_rate <= 1.0) {
            issues.push(Issue::new(
                at.key("failure_rate"),
                "must be more than 0 and at most 1, e.g. 0.5 for half of the calls",
            ));
        }
        if breaker.min_requests == 0 {
            issues.push(Issue::new(
                at.key("min_requests"),
                "must be at least 1, e.g. 20",
            ));
        }
        if breaker.consecutive_failures == Some(0) {
            issues.push(Issue::new(
                at.key("consecutive_failures"),
                "must be at least 1, e.g. 5",
            ));
        }
        if breaker.half_open_probes == 0 {
            issues.push(Issue::new(
                at.key("half_open_probes"),
                "must be at least 1, e.g. 3",
            ));
        }
        check_positive(breaker.window, at.key("window"), issues);
        check_positive(breaker.open_for, at.key("open_for"), issues);
        for (i, on) in breaker.failure_on.iter().enumerate() {
            if !["5xx", "timeout", "connect"].contains(&on.as_str()) {
                issues.push(Issue::new(
                    at.key("failure_on").index(i),
                    format!("{on:?} is not a failure; valid: \"5xx\", \"timeout\", \"connect\""),
                ));
            }
        }
    }
    if let Some(check) = &upstream.health_check {
        let at = path.key("health_check");
        if !check.path.starts_with('/')
            || !valid_header_value(&check.path)
            || check.path.contains(' ')
        {
            issues.push(Issue::new(
                at.key("path"),
                "must be a path starting with \"/\", e.g. \"/healthz\"",
            ));
        }
        check_positive(check.interval, at.key("interval"), issues);
        check_positive(check.timeout, at.key("timeout"), issues);
        for (field, n) in [
            ("unhealthy_threshold", check.unhealthy_threshold),
            ("healthy_threshold", check.healthy_threshold),
        ] {
            if n == 0 {
                issues.push(Issue::new(at.key(field), "must be at least 1, e.g. 2"));
            }
        }
    }
    if let Some(fallback) = &upstream.fallback {
        let at = path.key("fallback");
        if !(200..=599).contains(&fallback.status) {
            issues.push(Issue::new(
                at.key("status"),
                "must be a status from 200 to 599, e.g. 503",
            ));
        }
        if !valid_header_value(&fallback.content_type) || fallback.content_type.is_empty() {
            issues.push(Issue::new(
                at.key("content_type"),
                "must be a media type, e.g. \"application/json\"",
            ));
        }
        if upstream.breaker.is_none() {
            issues.push(Issue::new(
                at.clone(),
                "a fallback answers while the breaker is open: add [upstreams.NAME.breaker]",
            ));
        }
        if let Some(other) = &fallback.upstream {
            match upstreams.get(other) {
                _ if other == name => issues.push(Issue::new(
                    at.key("upstream"),
                    "an upstream cannot be its own fallback",
                )),
                None => issues.push(Issue::new(
                    at.key("upstream"),
                    format!("upstream {other:?} is not defined under [upstreams]"),
                )),
                Some(Some(o)) if o.http2 || upstream.http2 => issues.push(Issue::new(
                    at.key("upstream"),
                    "a fallback upstream and its upstream must both speak HTTP/1.1",
                )),
                Some(_) => {}
            }
        }
    }
}
