//! Graceful shutdown under load: every request the gateway accepted gets its answer, the
//! process exits 0 within the grace period, and the shutdown is in the audit log. Past the
//! grace period connections are cut and the exit says so.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use palisade_testkit::upstream::UpstreamServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_fails_no_accepted_request() {
    let upstream = UpstreamServer::start().await.unwrap();
    // One worker thread: the single-threaded runtime the benchmark and small sidecars use.
    let config = common::config_for(upstream.addr(), "")
        .replace("[lifecycle]", "[server]\nworker_threads = 1\n\n[lifecycle]")
        .replace("drain_delay = \"0s\"", "drain_delay = \"500ms\"")
        .replace("timeout = \"1s\"", "timeout = \"5s\"");
    let mut gw = common::spawn(common::Codec::Fast, &config, true).await;

    let ok = Arc::new(AtomicU64::new(0));
    let ok_after_signal = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let signalled = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let url = gw.url("/work?latency=150ms");
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (ok, ok_after, failed, signalled, url) = (
            ok.clone(),
            ok_after_signal.clone(),
            failed.clone(),
            signalled.clone(),
            url.clone(),
        );
        workers.push(tokio::spawn(async move {
            let client = common::client();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                match client.get(&url).send().await {
                    Ok(resp) if resp.status() == 200 => {
                        if resp.bytes().await.is_ok() {
                            ok.fetch_add(1, Ordering::SeqCst);
                            if signalled.load(Ordering::SeqCst) {
                                ok_after.fetch_add(1, Ordering::SeqCst);
                            }
                        } else {
                            failed.lock().unwrap().push("body cut".into());
                        }
                    }
                    Ok(resp) => failed
                        .lock()
                        .unwrap()
                        .push(format!("status {}", resp.status())),
                    // Refused: the listener is closed, so the request was never accepted.
                    Err(e) if e.is_connect() => break,
                    Err(e) => failed.lock().unwrap().push(format!("{e:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    signalled.store(true, Ordering::SeqCst);
    let signalled_at = Instant::now();
    gw.signal("TERM").unwrap();
    let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
    let took = signalled_at.elapsed();
    for w in workers {
        w.await.unwrap();
    }

    assert!(status.success(), "exit status {status:?}");
    assert!(
        took < Duration::from_secs(5),
        "exit took {took:?}, past drain + grace"
    );
    assert!(
        failed.lock().unwrap().is_empty(),
        "failed requests: {:?}",
        failed.lock().unwrap()
    );
    assert!(
        ok.load(Ordering::SeqCst) > 20,
        "load ran: {} requests",
        ok.load(Ordering::SeqCst)
    );
    assert!(
        ok_after_signal.load(Ordering::SeqCst) > 0,
        "requests in flight at SIGTERM completed"
    );
    let lines = gw.output_lines();
    assert!(
        lines.iter().any(|l| l.contains("\"type\":\"audit\"")
            && l.contains("\"action\":\"shutdown\"")
            && l.contains("\"outcome\":\"success\"")),
        "shutdown audit event: {lines:#?}"
    );
}

#[tokio::test]
async fn past_the_grace_period_connections_are_cut_and_the_exit_says_so() {
    let upstream = UpstreamServer::start().await.unwrap();
    let config = common::config_for(upstream.addr(), "")
        .replace("grace_period = \"5s\"", "grace_period = \"500ms\"")
        .replace("timeout = \"1s\"", "timeout = \"30s\"");
    let mut gw = common::spawn(common::Codec::Fast, &config, true).await;
    let url = gw.url("/stuck?latency=20s");
    let stuck = tokio::spawn(async move {
        common::client()
            .get(url)
            .header("x-request-id", "cut-by-shutdown")
            .send()
            .await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    gw.signal("TERM").unwrap();
    let status = gw.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert_eq!(status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        stuck.await.unwrap().is_err(),
        "the stuck request's connection was closed"
    );
    let lines = gw.output_lines();
    assert!(
        lines.iter().any(|l| l.contains("shutdown forced")),
        "{lines:#?}"
    );
    assert!(
        lines.iter().any(|l| l.contains("\"action\":\"shutdown\"") && l.contains("\"outcome\":\"failure\"")),
        "{lines:#?}"
    );
    // The cut request still has its access line, as NGINX's 499.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("cut-by-shutdown") && l.contains("\"status\":499")),
        "{lines:#?}"
    );
}

#[tokio::test]
async fn config_load_is_an_audit_event() {
    let (_up, gw) = common::start(common::Codec::Fast, "").await;
    let line = gw
        .wait_for_line(
            |l| l.contains("\"type\":\"audit\"") && l.contains("\"action\":\"load\""),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["category"], "config");
    assert_eq!(v["outcome"], "success");
    assert_eq!(v["details"]["routes"], 1);
    assert!(v["time"].as_str().unwrap().ends_with('Z'));
}
