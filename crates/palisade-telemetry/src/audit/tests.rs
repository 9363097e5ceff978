//! Tests of the audit sink and writer against a real file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use palisade_config::{AuditConfig, AuditSinkKind};
use serde_json::json;

use crate::metrics::Format;

use super::*;

/// A fresh path in the system temp dir, unique to this test process and name.
fn temp_path(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!(
        "palisade-audit-{}-{name}.jsonl",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&path);
    path
}

fn file_config(path: &Path, queue_capacity: usize) -> AuditConfig {
    AuditConfig {
        sink: AuditSinkKind::File,
        path: Some(path.display().to_string()),
        queue_capacity,
    }
}

fn read_lines(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn sample(metrics: &Metrics, series: &str) -> Option<String> {
    metrics
        .encode(Format::OpenMetrics)
        .lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.to_owned())
        })
}

#[tokio::test]
async fn events_arrive_in_order_as_json_lines_with_every_field() {
    let path = temp_path("order");
    let metrics = Metrics::new("dev");
    let (sink, writer) = AuditSink::start(&file_config(&path, 64), metrics.clone()).unwrap();
    let task = writer.spawn();

    let first = AuditEvent::now(
        AuditCategory::RateLimit,
        "request_limited",
        AuditOutcome::Denied,
    )
    .actor("203.0.113.7")
    .route("api")
    .request_id("req-1")
    .trace_id("4bf92f3577b34da6a3ce929d0e0e4736")
    .details(json!({"limit": "100/s"}));
    sink.emit(first.clone());
    for i in 0..20 {
        sink.clone().emit(AuditEvent::now(
            AuditCategory::Config,
            format!("reload_{i}"),
            AuditOutcome::Success,
        ));
    }
    sink.close(Duration::from_secs(5)).await;
    task.await.unwrap();

    let lines = read_lines(&path);
    assert_eq!(lines.len(), 21);
    let line = &lines[0];
    assert_eq!(line["type"], "audit");
    assert_eq!(line["category"], "rate_limit");
    assert_eq!(line["action"], "request_limited");
    assert_eq!(line["outcome"], "denied");
    assert_eq!(line["actor"], "203.0.113.7");
    assert_eq!(line["route"], "api");
    assert_eq!(line["request_id"], "req-1");
    assert_eq!(line["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["details"], json!({"limit": "100/s"}));
    assert_eq!(
        serde_json::from_value::<AuditEvent>(line.clone()).unwrap(),
        first
    );
    let time = line["time"].as_str().unwrap();
    assert!(
        time.ends_with('Z') && humantime::parse_rfc3339(time).is_ok(),
        "{time}"
    );
    for (i, line) in lines[1..].iter().enumerate() {
        assert_eq!(line["action"], format!("reload_{i}"));
        assert_eq!(line["actor"], serde_json::Value::Null);
        assert_eq!(line["details"], json!({}));
    }
    assert_eq!(
        sample(&metrics, "palisade_audit_events_total").as_deref(),
        Some("21")
    );
    assert_eq!(
        sample(&metrics, "palisade_audit_events_dropped_total").as_deref(),
        Some("0")
    );
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_and_close_flushes_the_rest() {
    let path = temp_path("full");
    let metrics = Metrics::new("dev");
    let (sink, writer) = AuditSink::start(&file_config(&path, 2), metrics.clone()).unwrap();

    // Nothing drains the queue yet: two fit, three are dropped.
    for i in 0..5 {
        sink.emit(AuditEvent::now(
            AuditCategory::Admin,
            format!("a{i}"),
            AuditOutcome::Success,
        ));
    }
    assert_eq!(
        sample(&metrics, "palisade_audit_events_total").as_deref(),
        Some("2")
    );
    assert_eq!(
        sample(&metrics, "palisade_audit_events_dropped_total").as_deref(),
        Some("3")
    );

    let task = writer.spawn();
    sink.close(Duration::from_secs(5)).await;
    task.await.unwrap();
    let actions: Vec<_> = read_lines(&path)
        .iter()
        .map(|l| l["action"].clone())
        .collect();
    assert_eq!(actions, [json!("a0"), json!("a1")]);

    // After close the writer is gone; emitting is still safe and counts as dropped.
    sink.emit(AuditEvent::now(
        AuditCategory::Admin,
        "late",
        AuditOutcome::Success,
    ));
    assert_eq!(
        sample(&metrics, "palisade_audit_events_dropped_total").as_deref(),
        Some("4")
    );
    sink.close(Duration::from_secs(1)).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn the_file_is_appended_to_not_truncated() {
    let path = temp_path("append");
    std::fs::write(&path, "{\"type\":\"audit\",\"action\":\"earlier\"}\n").unwrap();
    let metrics = Metrics::new("dev");
    let (sink, writer) = AuditSink::start(&file_config(&path, 8), metrics).unwrap();
    let task = writer.spawn();
    sink.emit(AuditEvent::now(
        AuditCategory::Lifecycle,
        "shutdown",
        AuditOutcome::Success,
    ));
    sink.close(Duration::from_secs(5)).await;
    task.await.unwrap();
    let actions: Vec<_> = read_lines(&path)
        .iter()
        .map(|l| l["action"].clone())
        .collect();
    assert_eq!(actions, [json!("earlier"), json!("shutdown")]);
    let _ = std::fs::remove_file(&path);
}

#[tokio::test(start_paused = true)]
async fn close_gives_up_after_its_timeout_when_nothing_drains() {
    let path = temp_path("timeout");
    let (sink, _writer) = AuditSink::start(&file_config(&path, 1), Metrics::new("dev")).unwrap();
    sink.emit(AuditEvent::now(
        AuditCategory::Admin,
        "stuck",
        AuditOutcome::Success,
    ));
    // The queue is full and no writer runs: close must still return.
    sink.close(Duration::from_secs(2)).await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn off_writes_and_counts_nothing() {
    let metrics = Metrics::new("dev");
    let cfg = AuditConfig {
        sink: AuditSinkKind::Off,
        path: None,
        queue_capacity: 1,
    };
    let (sink, writer) = AuditSink::start(&cfg, metrics.clone()).unwrap();
    writer.spawn().await.unwrap();
    for _ in 0..3 {
        sink.emit(AuditEvent::now(
            AuditCategory::Admin,
            "x",
            AuditOutcome::Success,
        ));
    }
    sink.close(Duration::from_secs(1)).await;
    assert_eq!(
        sample(&metrics, "palisade_audit_events_total").as_deref(),
        Some("0")
    );
    assert_eq!(
        sample(&metrics, "palisade_audit_events_dropped_total").as_deref(),
        Some("0")
    );
}

#[test]
fn file_errors_name_the_path() {
    let metrics = Metrics::new("dev");
    let missing_dir = std::env::temp_dir().join("palisade-no-such-dir/audit.jsonl");
    let err = AuditSink::start(&file_config(&missing_dir, 8), metrics.clone()).unwrap_err();
    assert!(err.to_string().contains("palisade-no-such-dir"), "{err}");

    let cfg = AuditConfig {
        sink: AuditSinkKind::File,
        path: None,
        queue_capacity: 8,
    };
    let err = AuditSink::start(&cfg, metrics).unwrap_err();
    assert!(matches!(err, AuditError::MissingPath));
}

#[test]
fn a_zero_capacity_does_not_panic() {
    let path = temp_path("zero");
    let metrics = Metrics::new("dev");
    let (sink, _writer) = AuditSink::start(&file_config(&path, 0), Arc::clone(&metrics)).unwrap();
    sink.emit(AuditEvent::now(
        AuditCategory::Admin,
        "x",
        AuditOutcome::Success,
    ));
    let _ = std::fs::remove_file(&path);
}
