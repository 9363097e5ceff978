//! Which settings differ between two configs, by field path: what a reload changes.
//!
//! The binary applies some settings to a running process and others only at start; it compares
//! the config it started with and a reloaded one with [`changed_settings`] to name, rather than
//! silently ignore, the settings that wait for a restart. Each section is destructured without
//! `..`, so a field added to the model does not compile until it is listed here.

use crate::model::{AuditConfig, Config, LifecycleConfig, LogConfig, OpsConfig, ServerConfig};

/// The settings whose values differ between `old` and `new`, as field paths in file order:
/// `server.listen`, `log.format`, ... and `upstreams` or `routes` for any change in those.
pub fn changed_settings(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    let mut check = |path: &'static str, same: bool| {
        if !same {
            changed.push(path);
        }
    };

    let ServerConfig {
        listen,
        worker_threads,
        trusted_proxies,
        header_read_timeout,
        keepalive_timeout,
        http2,
        direct_path,
        request_body_timeout,
        send_timeout,
        max_connections,
        max_connections_per_ip,
    } = &old.server;
    let server = &new.server;
    check("server.listen", *listen == server.listen);
    check(
        "server.worker_threads",
        *worker_threads == server.worker_threads,
    );
    check(
        "server.trusted_proxies",
        *trusted_proxies == server.trusted_proxies,
    );
    check(
        "server.header_read_timeout",
        *header_read_timeout == server.header_read_timeout,
    );
    check(
        "server.keepalive_timeout",
        *keepalive_timeout == server.keepalive_timeout,
    );
    check("server.http2", *http2 == server.http2);
    check("server.direct_path", *direct_path == server.direct_path);
    check(
        "server.request_body_timeout",
        *request_body_timeout == server.request_body_timeout,
    );
    check("server.send_timeout", *send_timeout == server.send_timeout);
    check(
        "server.max_connections",
        *max_connections == server.max_connections,
    );
    check(
        "server.max_connections_per_ip",
        *max_connections_per_ip == server.max_connections_per_ip,
    );

    let OpsConfig {
        listen,
        ready_check_interval,
    } = &old.ops;
    check("ops.listen", *listen == new.ops.listen);
    check(
        "ops.ready_check_interval",
        *ready_check_interval == new.ops.ready_check_interval,
    );

    let LogConfig {
        format,
        level,
        access_log,
    } = &old.log;
    check("log.format", *format == new.log.format);
    check("log.level", *level == new.log.level);
    check("log.access_log", *access_log == new.log.access_log);

    let AuditConfig {
        sink,
        path,
        queue_capacity,
    } = &old.audit;
    check("audit.sink", *sink == new.audit.sink);
    check("audit.path", *path == new.audit.path);
    check(
        "audit.queue_capacity",
        *queue_capacity == new.audit.queue_capacity,
    );

    let LifecycleConfig {
        drain_delay,
        grace_period,
    } = &old.lifecycle;
    check(
        "lifecycle.drain_delay",
        *drain_delay == new.lifecycle.drain_delay,
    );
    check(
        "lifecycle.grace_period",
        *grace_period == new.lifecycle.grace_period,
    );

    let Config {
        mode,
        server: _,
        ops: _,
        log: _,
        audit: _,
        lifecycle: _,
        upstreams,
        redis,
        rate_limits,
        auth,
        routes,
        databases,
        jobs,
    } = old;
    check("mode", *mode == new.mode);
    check("upstreams", *upstreams == new.upstreams);
    check("redis", *redis == new.redis);
    check("rate_limits", *rate_limits == new.rate_limits);
    check("auth", *auth == new.auth);
    check("routes", *routes == new.routes);
    check("databases", *databases == new.databases);
    check("jobs", *jobs == new.jobs);
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::LogFormat;

    #[test]
    fn names_each_changed_field_and_nothing_else() {
        let old = Config::default();
        assert!(changed_settings(&old, &old.clone()).is_empty());

        let mut new = old.clone();
        new.log.format = LogFormat::Pretty;
        new.server.listen = "127.0.0.1:8081".parse().unwrap();
        new.lifecycle.drain_delay = crate::Duration::from_secs(1);
        new.upstreams.insert(
            "app".to_owned(),
            serde_json::from_str(r#"{"endpoints": ["127.0.0.1:3000"]}"#).unwrap(),
        );
        assert_eq!(
            changed_settings(&old, &new),
            [
                "server.listen",
                "log.format",
                "lifecycle.drain_delay",
                "upstreams"
            ]
        );
    }
}
