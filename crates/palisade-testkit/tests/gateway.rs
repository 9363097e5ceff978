//! The gateway harness, driven with a stand-in for the palisade binary: `sh` runs a script
//! named `run` from the gateway's directory, which execs the test upstream on the ops port,
//! so `/live` answers 200 exactly as palisade's would.

use std::time::Duration;

use palisade_testkit::GatewayBuilder;
use palisade_testkit::client;

const STAND_IN: &str = r#"echo "args: $*"
echo "log format: $PALISADE_LOG__FORMAT, extra: $EXTRA" >&2
exec "$UPSTREAM" --listen "$PALISADE_OPS__LISTEN"
"#;

#[tokio::test]
async fn spawns_waits_for_live_captures_output_and_signals() {
    let mut gateway = GatewayBuilder::new("sh")
        .file("run", STAND_IN)
        .config_with(|dir| format!("# lives in {}\n", dir.display()))
        .env("UPSTREAM", env!("CARGO_BIN_EXE_palisade-upstream"))
        .env("EXTRA", "yes")
        .wait_ready(true)
        .spawn()
        .await
        .unwrap();

    let config = std::fs::read_to_string(gateway.config_path()).unwrap();
    assert_eq!(config, format!("# lives in {}\n", gateway.dir.display()));
    let live = client::get(&gateway.ops_url("/live")).await.unwrap();
    assert_eq!(live.json().unwrap()["path"], "/live");

    let wait = Duration::from_secs(5);
    let args = gateway
        .wait_for_line(|line| line.starts_with("args:"), wait)
        .await
        .unwrap();
    assert!(
        args.ends_with(&format!("--config {}", gateway.config_path().display())),
        "{args}"
    );
    gateway
        .wait_for_line(|line| line == "log format: json, extra: yes", wait)
        .await
        .unwrap();
    gateway
        .wait_for_line(|line| line.contains("listening on"), wait)
        .await
        .unwrap();
    assert!(gateway.rss_kb().is_some_and(|kb| kb > 0));
    assert!(gateway.peak_rss_kb() >= gateway.rss_kb());

    gateway.signal("TERM").unwrap();
    let status = gateway.wait_exit(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "{status}");
    assert!(gateway.signal("bad name").is_err());

    let dir = gateway.dir.clone();
    drop(gateway);
    assert!(!dir.exists());
}
