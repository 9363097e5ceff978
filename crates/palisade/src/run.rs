//! `palisade run`: load the config, bind the listeners, serve, and shut down gracefully.
//!
//! Order on SIGTERM/SIGINT: `/ready` turns 503 → drain delay (still accepting, HTTP/1
//! responses say `Connection: close`) → stop accepting → in-flight requests finish within the
//! grace period → audit sink and logs flushed → exit 0. Past the grace period the remaining
//! connections are closed, the log says how many, and the exit code is 1.
//!
//! On SIGHUP the config is loaded again and, when valid, swapped in: routes, upstreams and the
//! settings in [`APPLIED_ON_RELOAD`] take effect at once; every other changed setting keeps its
//! running value until a restart, and the reload says which (log, audit event, `/health`).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use arc_swap::ArcSwap;
use palisade_config::{Config, LoadedConfig};
use palisade_layers::ratelimit::redis::RedisBackend;
use palisade_layers::{Proxy, Snapshot};
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::logging;
use palisade_telemetry::metrics::Metrics;
use serde::Serialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::caps;
use crate::cli::{self, ConfigArg};
use crate::lifecycle::{Request, Signals};
use crate::ops::{self, OpsState};
use crate::readiness::{Readiness, unix};
use crate::server;

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings a reload applies to the running process: they live in the proxy's snapshot or are
/// read where they are used. Any other changed setting waits for a restart and the reload names
/// it, so a setting added to the config counts as restart-only until it is listed here.
const APPLIED_ON_RELOAD: &[&str] = &[
    "mode",
    "upstreams",
    "rate_limits",
    "auth",
    "routes",
    "server.trusted_proxies",
    "server.request_body_timeout",
    "server.send_timeout",
    "log.access_log",
    "ops.ready_check_interval",
    "lifecycle.drain_delay",
    "databases",
    "jobs",
];

/// What `/health` says about the config the process runs.
#[derive(Debug, Clone)]
pub struct ConfigStatus {
    /// Version of the last config in force in full: the one started with, or a later reload
    /// that changed no restart-only setting.
    pub config_version: String,
    /// Set while the last reload changed settings that take effect only on restart.
    pub pending_restart: Option<PendingRestart>,
}

/// A reloaded config whose routes and live settings serve, but part of which waits for a restart.
#[derive(Debug, Clone, Serialize)]
pub struct PendingRestart {
    /// Version of the reloaded config; a restart brings it in force in full.
    pub config_version: String,
    /// The settings, as field paths (`server.listen`, `log.format`), that keep their running
    /// values until then.
    pub fields: Vec<&'static str>,
}

/// The settings that differ between the config the process started with and `new` and that a
/// reload cannot apply, in file order.
fn restart_required(started: &Config, new: &Config) -> Vec<&'static str> {
    palisade_config::changed_settings(started, new)
        .into_iter()
        .filter(|field| !APPLIED_ON_RELOAD.contains(field))
        .collect()
}

pub fn run(args: ConfigArg, started: Instant) -> ExitCode {
    let loaded = match cli::load(&args) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s); nothing was started", errors.0.len());
            return ExitCode::from(2);
        }
    };
    let cfg = &loaded.config;
    // One worker: a current-thread runtime does the same work without cross-thread
    // scheduling (measured: fewer context switches per request than multi-thread with 1 worker).
    let mut rt = if cfg.server.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if cfg.server.worker_threads > 1 {
        rt.worker_threads(cfg.server.worker_threads);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(error) => {
            eprintln!("palisade: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let log_guard = match logging::init(cfg.log.format, &cfg.log.level) {
        Ok(guard) => guard,
        Err(error) => {
            eprintln!("palisade: {}: log.level: {error}", loaded.source);
            return ExitCode::from(2);
        }
    };
    let code = rt.block_on(serve(args, loaded, started));
    // The runtime first: connections cut by a forced shutdown drop their requests' records
    // here, which write their access lines (499); dropping the log guard then flushes them.
    rt.shutdown_timeout(Duration::from_millis(100));
    drop(log_guard);
    code
}

async fn serve(args: ConfigArg, loaded: LoadedConfig, started: Instant) -> ExitCode {
    let metrics = Metrics::new(VERSION);
    metrics.set_process_start_time(unix(SystemTime::now()) - started.elapsed().as_secs_f64());
    let (audit, audit_writer) = match AuditSink::start(&loaded.config.audit, metrics.clone()) {
        Ok(sink) => sink,
        Err(error) => {
            tracing::error!(%error, "cannot open the audit sink");
            return ExitCode::from(2);
        }
    };
    let audit_task = audit_writer.spawn();
    if args.config.is_none() {
        tracing::warn!(
            proxy = %loaded.config.server.listen,
            ops = %loaded.config.ops.listen,
            "no config given (--config or PALISADE_CONFIG): serving the built-in example config \
             (`palisade config example`) on loopback only, 127.0.0.1 with the example's ports, \
             unless PALISADE_SERVER__LISTEN or PALISADE_OPS__LISTEN set the addresses"
        );
    }
    // The connection is made on first use: a Redis that is down at start is a fallback, not
    // a failed start. Only a URL that cannot be used stops it.
    let redis = match loaded
        .config
        .redis
        .as_ref()
        .map(RedisBackend::new)
        .transpose()
    {
        Ok(redis) => redis.map(Arc::new),
        Err(error) => {
            tracing::error!(%error, "redis.url cannot be used");
            return ExitCode::from(2);
        }
    };
    let retained = Arc::new(palisade_layers::Retained::new(audit.clone(), redis));
    let snapshot = match Snapshot::build(&loaded, &metrics, &retained) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "config cannot be applied");
            return ExitCode::from(2);
        }
    };
    audit.emit(
        AuditEvent::now(AuditCategory::Config, "load", AuditOutcome::Success)
            .details(config_details(&loaded)),
    );
    let cfg = loaded.config.clone();
    let config_status = Arc::new(ArcSwap::from_pointee(ConfigStatus {
        config_version: loaded.version.clone(),
        pending_restart: None,
    }));
    let proxy = Proxy::new(snapshot, metrics.clone(), retained);
    // Maintenance jobs connect on first use: a database that is down fails runs, not start-up.
    let mut scheduler = match palisade_jobs::Jobs::build(&loaded.config) {
        Ok(jobs) => palisade_jobs::Scheduler::start(&jobs, &metrics, &audit),
        Err(error) => {
            tracing::error!(%error, "the jobs' databases cannot be used");
            return ExitCode::from(2);
        }
    };
    // Idle rate-limit keys are swept on a timer, so memory follows the active keys only.
    let sweeper = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(palisade_layers::ratelimit::SWEEP_INTERVAL);
            loop {
                every.tick().await;
                proxy.retained().limiters.sweep();
            }
        })
    };

    let (proxy_listener, ops_listener) = match (
        TcpListener::bind(cfg.server.listen).await,
        TcpListener::bind(cfg.ops.listen).await,
    ) {
        (Ok(p), Ok(o)) => (p, o),
        (Err(error), _) | (_, Err(error)) => {
            tracing::error!(%error, proxy = %cfg.server.listen, ops = %cfg.ops.listen, "cannot bind a listener");
            audit.close(Duration::from_secs(2)).await;
            return ExitCode::FAILURE;
        }
    };
    let mut signals = match Signals::install() {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "cannot install signal handlers");
            return ExitCode::FAILURE;
        }
    };

    let readiness = Arc::new(Readiness::default());
    let (ready_interval, ready_interval_rx) = watch::channel(cfg.ops.ready_check_interval.get());
    let checker = tokio::spawn(readiness.clone().run(
        proxy.clone(),
        metrics.clone(),
        ready_interval_rx,
    ));
    let ops_state = Arc::new(OpsState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        proxy: proxy.clone(),
        config: config_status.clone(),
        started,
    });
    let (ops_stop_tx, mut ops_stop) = watch::channel(false);
    let ops_task = tokio::spawn(async move {
        let shutdown = async move {
            let _ = ops_stop.wait_for(|s| *s).await;
        };
        if let Err(error) = axum::serve(ops_listener, ops::router(ops_state))
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(%error, "ops listener failed");
        }
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let grace = cfg.lifecycle.grace_period.get();
    let builders = Arc::new(server::builders(&cfg.server));
    let limits = palisade_layers::direct::Limits {
        header_read_timeout: cfg.server.header_read_timeout.get(),
        keepalive_timeout: cfg.server.keepalive_timeout.get(),
    };
    let mut accept = tokio::spawn(server::accept_loop(
        proxy_listener,
        builders,
        limits,
        cfg.server.direct_path,
        proxy.clone(),
        caps::Caps::new(
            cfg.server.max_connections,
            cfg.server.max_connections_per_ip,
            metrics.clone(),
        ),
        stop_rx,
        grace,
    ));

    metrics.set_startup_duration(started.elapsed().as_secs_f64());
    tracing::info!(
        proxy = %cfg.server.listen,
        ops = %cfg.ops.listen,
        config = %loaded.source,
        config_version = %loaded.version,
        routes = cfg.routes.len(),
        upstreams = cfg.upstreams.len(),
        startup_ms = started.elapsed().as_millis() as u64,
        "palisade started"
    );

    let reloader = Reloader {
        args: &args,
        started: &cfg,
        proxy: &proxy,
        metrics: &metrics,
        audit: &audit,
        status: &config_status,
        ready_interval: &ready_interval,
    };
    let mut current = loaded;
    let reason = loop {
        match signals.next().await {
            Request::Shutdown(name) => break name,
            Request::Reload => {
                if let Some(jobs) = reloader.reload(&mut current) {
                    // Jobs changed: the old scheduler stops (a run in progress ends after its
                    // batch) before the new one starts, so no firing is run twice.
                    let old = std::mem::replace(&mut scheduler, palisade_jobs::Scheduler::idle());
                    old.stop(Duration::from_secs(2)).await;
                    scheduler = palisade_jobs::Scheduler::start(&jobs, &metrics, &audit);
                }
            }
        }
    };

    let shutdown_started = Instant::now();
    // The drain delay is read now, so a reload can change it; the grace period was handed to
    // the accept loop at start.
    let drain = current.config.lifecycle.drain_delay.get();
    tracing::info!(
        signal = reason,
        drain_ms = drain.as_millis() as u64,
        grace_ms = grace.as_millis() as u64,
        "shutdown requested; draining"
    );
    readiness.set_draining();
    proxy.set_draining();
    metrics.set_ready(false, unix(SystemTime::now()));
    let mut cut_short = tokio::select! {
        _ = tokio::time::sleep(drain) => false,
        name = signals.next_shutdown() => {
            tracing::warn!(signal = name, "second signal: skipping the rest of the drain");
            true
        }
    };
    let _ = stop_tx.send(true);
    let cut = if cut_short {
        accept.abort();
        1
    } else {
        tokio::select! {
            result = &mut accept => result.unwrap_or(1),
            name = signals.next_shutdown() => {
                tracing::warn!(signal = name, "second signal: closing connections now");
                cut_short = true;
                accept.abort();
                1
            }
        }
    };
    checker.abort();
    sweeper.abort();
    scheduler.stop(Duration::from_secs(2)).await;
    let _ = ops_stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(1), ops_task).await;

    let elapsed = shutdown_started.elapsed();
    metrics.set_shutdown_duration(elapsed.as_secs_f64());
    let clean = cut == 0 && !cut_short;
    let outcome = if clean {
        AuditOutcome::Success
    } else {
        AuditOutcome::Failure
    };
    audit.emit(
        AuditEvent::now(AuditCategory::Lifecycle, "shutdown", outcome).details(json!({
            "signal": reason,
            "duration_ms": elapsed.as_millis() as u64,
            "connections_closed_by_force": cut,
        })),
    );
    audit.close(Duration::from_secs(2)).await;
    let _ = tokio::time::timeout(Duration::from_secs(1), audit_task).await;
    if clean {
        tracing::info!(
            duration_ms = elapsed.as_millis() as u64,
            "shutdown complete: all in-flight requests finished"
        );
        ExitCode::SUCCESS
    } else {
        tracing::error!(
            duration_ms = elapsed.as_millis() as u64,
            connections = cut,
            "shutdown forced: grace period elapsed or second signal; remaining connections were closed"
        );
        ExitCode::FAILURE
    }
}

/// What a SIGHUP reload reads and updates.
struct Reloader<'a> {
    args: &'a ConfigArg,
    /// The config the process started with: its restart-only settings are the ones in force.
    started: &'a Config,
    proxy: &'a Proxy,
    metrics: &'a Metrics,
    audit: &'a AuditSink,
    status: &'a ArcSwap<ConfigStatus>,
    ready_interval: &'a watch::Sender<Duration>,
}

impl Reloader<'_> {
    /// Loads the config again and swaps it in (as `current` too) only if it is valid and can be
    /// applied; otherwise the old one keeps serving. Settings that need a restart are named in
    /// the log line, the audit event and `/health`. Returns the new jobs when the reload
    /// changed `[databases]` or `[jobs]`, for the caller to reschedule.
    fn reload(&self, current: &mut LoadedConfig) -> Option<palisade_jobs::Jobs> {
        let jobs_changed = |loaded: &LoadedConfig| {
            loaded.config.jobs != current.config.jobs
                || loaded.config.databases != current.config.databases
        };
        let result = cli::load(self.args)
            .map_err(|e| e.to_string())
            .and_then(|loaded| {
                let snapshot = Snapshot::build(&loaded, self.metrics, self.proxy.retained())
                    .map_err(|e| e.to_string())?;
                let jobs = jobs_changed(&loaded)
                    .then(|| palisade_jobs::Jobs::build(&loaded.config))
                    .transpose()
                    .map_err(|e| e.to_string())?;
                Ok((loaded, snapshot, jobs))
            });
        let (loaded, snapshot, jobs) = match result {
            Ok(applied) => applied,
            Err(errors) => {
                self.metrics.config_reload(false);
                self.audit.emit(
                    AuditEvent::now(AuditCategory::Config, "reload", AuditOutcome::Failure)
                        .details(json!({ "errors": errors })),
                );
                tracing::error!(
                    %errors,
                    "config reload rejected; the previous config keeps serving"
                );
                return None;
            }
        };
        let restart = restart_required(self.started, &loaded.config);
        self.proxy.swap(snapshot);
        let interval = loaded.config.ops.ready_check_interval.get();
        self.ready_interval.send_if_modified(|running| {
            let changed = *running != interval;
            *running = interval;
            changed
        });
        self.metrics.config_reload(true);
        self.metrics.set_restart_required(&restart);
        let mut details = config_details(&loaded);
        details["restart_required"] = json!(restart);
        self.audit.emit(
            AuditEvent::now(AuditCategory::Config, "reload", AuditOutcome::Success)
                .details(details),
        );
        let status = if restart.is_empty() {
            tracing::info!(
                config_version = %loaded.version,
                restart_required = ?restart,
                "config reloaded"
            );
            ConfigStatus {
                config_version: loaded.version.clone(),
                pending_restart: None,
            }
        } else {
            tracing::warn!(
                config_version = %loaded.version,
                restart_required = ?restart,
                "config reloaded; the settings in restart_required keep their running values \
                 until a restart"
            );
            ConfigStatus {
                config_version: self.status.load().config_version.clone(),
                pending_restart: Some(PendingRestart {
                    config_version: loaded.version.clone(),
                    fields: restart,
                }),
            }
        };
        self.status.store(Arc::new(status));
        *current = loaded;
        jobs
    }
}

fn config_details(loaded: &LoadedConfig) -> serde_json::Value {
    json!({
        "source": loaded.source,
        "config_version": loaded.version,
        "routes": loaded.config.routes.len(),
        "upstreams": loaded.config.upstreams.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_config::LogFormat;

    #[test]
    fn restart_required_names_only_what_a_reload_cannot_apply() {
        let started = Config::default();
        let mut new = started.clone();
        new.log.format = LogFormat::Pretty;
        new.log.access_log = false;
        new.server.http2 = false;
        new.server.trusted_proxies = vec!["10.0.0.0/8".parse().unwrap()];
        new.lifecycle.drain_delay = palisade_config::Duration::from_secs(1);
        new.lifecycle.grace_period = palisade_config::Duration::from_secs(1);
        new.audit.queue_capacity = 1;
        new.routes.clear();
        assert_eq!(
            restart_required(&started, &new),
            [
                "server.http2",
                "log.format",
                "audit.queue_capacity",
                "lifecycle.grace_period"
            ]
        );
        assert!(restart_required(&started, &started.clone()).is_empty());
    }
}
