//! The quickstart's `scripts/demo.sh`, run as a newcomer runs it: Ctrl-C stops Palisade first,
//! lets it drain and finish the requests in flight, and only then stops the sample service
//! those requests are waiting on. It uses the demo's fixed ports (8080, 9090, 3000).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// The running demo script; dropping it asks the script to stop (it stops its children).
struct Demo {
    child: Child,
}

impl Demo {
    fn pid(&self) -> String {
        self.child.id().map(|p| p.to_string()).unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let status = std::process::Command::new("kill")
            .args(["-s", sig, &self.pid()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {sig} failed");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = std::process::Command::new("kill")
                .args(["-s", "TERM", &self.pid()])
                .status();
        }
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn ctrl_c_lets_requests_in_flight_finish_before_the_sample_stops() {
    let bins = Path::new(env!("CARGO_BIN_EXE_palisade"))
        .parent()
        .expect("the binaries' directory")
        .to_path_buf();
    assert!(
        bins.join("palisade-upstream").exists(),
        "palisade-upstream is not built next to palisade; run the suite with `cargo test --workspace`"
    );
    let child = Command::new("bash")
        .arg("scripts/demo.sh")
        .current_dir(repo_root())
        .env("DEMO_BIN_DIR", &bins)
        .env("PALISADE_LOG__FORMAT", "json")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("the demo starts");
    let mut demo = Demo { child };

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(resp) = client.get("http://127.0.0.1:9090/ready").send().await
            && resp.status() == 200
        {
            break;
        }
        assert!(
            demo.child.try_wait().unwrap().is_none(),
            "the demo exited before it was ready (are ports 8080, 9090 and 3000 free?)"
        );
        assert!(
            Instant::now() < deadline,
            "the demo was not ready within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let slow = tokio::spawn({
        let client = client.clone();
        async move {
            let resp = client
                .get("http://127.0.0.1:8080/api/slow?latency=2s")
                .send()
                .await?;
            let status = resp.status().as_u16();
            resp.bytes().await.map(|_| status)
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stopping = Instant::now();
    demo.signal("INT");

    let status = slow
        .await
        .unwrap()
        .expect("the request in flight is answered");
    assert_eq!(
        status, 200,
        "the sample service stopped before Palisade drained"
    );
    let exit = tokio::time::timeout(Duration::from_secs(30), demo.child.wait())
        .await
        .expect("the demo exits after the drain")
        .unwrap();
    assert!(exit.success(), "{exit}");
    // The drain delay of the example config (5 s) passed before Palisade stopped.
    assert!(stopping.elapsed() >= Duration::from_secs(4));
    assert!(
        tokio::net::TcpStream::connect("127.0.0.1:3000")
            .await
            .is_err(),
        "the sample service is stopped at the end"
    );
}
