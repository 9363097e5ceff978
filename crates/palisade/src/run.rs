//! `palisade run`: load the config, bind the listeners, serve, and shut down gracefully.
//!
//! Order on SIGTERM/SIGINT: `/ready` turns 503 → drain delay (still accepting, HTTP/1
//! responses say `Connection: close`) → stop accepting → in-flight requests finish within the
//! grace period → audit sink and logs flushed → exit 0. Past the grace period the remaining
//! connections are closed, the log says how many, and the exit code is 1.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use palisade_config::LoadedConfig;
use palisade_layers::{Proxy, Snapshot};
use palisade_telemetry::audit::{AuditCategory, AuditEvent, AuditOutcome, AuditSink};
use palisade_telemetry::logging;
use palisade_telemetry::metrics::Metrics;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::cli::{self, ConfigArg};
use crate::lifecycle::{Request, Signals};
use crate::ops::{self, OpsState};
use crate::readiness::{Readiness, unix};
use crate::server;

const VERSION: &str = env!("CARGO_PKG_VERSION");

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
    drop(log_guard);
    rt.shutdown_timeout(Duration::from_millis(100));
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
    let snapshot = match Snapshot::build(&loaded, &metrics) {
        Ok(s) => s,
        Err(error) => {
            tracing::error!(%error, "config cannot be applied");
            return ExitCode::from(2);
        }
    };
    audit.emit(config_event("load", AuditOutcome::Success, &loaded));
    let cfg = loaded.config.clone();
    let proxy = Proxy::new(snapshot, metrics.clone());

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
    let checker = tokio::spawn(readiness.clone().run(
        proxy.clone(),
        metrics.clone(),
        cfg.ops.ready_check_interval.get(),
    ));
    let ops_state = Arc::new(OpsState {
        metrics: metrics.clone(),
        readiness: readiness.clone(),
        proxy: proxy.clone(),
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
    let builder = Arc::new(server::builder(&cfg.server));
    let limits = palisade_layers::direct::Limits {
        header_read_timeout: cfg.server.header_read_timeout.get(),
        keepalive_timeout: cfg.server.keepalive_timeout.get(),
    };
    let mut accept = tokio::spawn(server::accept_loop(
        proxy_listener,
        builder,
        limits,
        cfg.server.direct_path,
        proxy.clone(),
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

    let reason = loop {
        match signals.next().await {
            Request::Shutdown(name) => break name,
            Request::Reload => reload(&args, &proxy, &metrics, &audit),
        }
    };

    let shutdown_started = Instant::now();
    let drain = cfg.lifecycle.drain_delay.get();
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

/// SIGHUP: load the config again and swap it in only if it is valid and can be applied;
/// otherwise keep serving the old one. Listener and log settings need a restart.
fn reload(args: &ConfigArg, proxy: &Proxy, metrics: &Metrics, audit: &AuditSink) {
    let result = cli::load(args)
        .map_err(|e| e.to_string())
        .and_then(|loaded| {
            let snapshot = Snapshot::build(&loaded, metrics).map_err(|e| e.to_string())?;
            Ok((loaded, snapshot))
        });
    match result {
        Ok((loaded, snapshot)) => {
            proxy.swap(snapshot);
            metrics.config_reload(true);
            audit.emit(config_event("reload", AuditOutcome::Success, &loaded));
            tracing::info!(config_version = %loaded.version, "config reloaded");
        }
        Err(errors) => {
            metrics.config_reload(false);
            audit.emit(
                AuditEvent::now(AuditCategory::Config, "reload", AuditOutcome::Failure)
                    .details(json!({ "errors": errors })),
            );
            tracing::error!(%errors, "config reload rejected; the previous config keeps serving");
        }
    }
}

fn config_event(action: &str, outcome: AuditOutcome, loaded: &LoadedConfig) -> AuditEvent {
    AuditEvent::now(AuditCategory::Config, action, outcome).details(json!({
        "source": loaded.source,
        "config_version": loaded.version,
        "routes": loaded.config.routes.len(),
        "upstreams": loaded.config.upstreams.len(),
    }))
}
