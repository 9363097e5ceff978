//! Runs the real `palisade` binary for integration tests.
//!
//! [`GatewayBuilder`] writes the config into a fresh temporary directory, picks two free
//! loopback ports for the proxy and ops listeners (passed as `PALISADE_SERVER__LISTEN` and
//! `PALISADE_OPS__LISTEN`), starts `palisade run --config FILE` there and waits until
//! `GET /live` on the ops port answers 200. The child's stdout and stderr are captured line by
//! line so tests can assert on logs; set `PALISADE_TESTKIT_ECHO=1` to also copy them to the
//! test's stderr. Dropping the [`Gateway`] kills the child (by its own handle, never by name)
//! and removes the directory.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use http::StatusCode;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::client;

/// How long [`GatewayBuilder::spawn`] waits for the gateway to become live, by default.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause between readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);
/// How long one readiness probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long to wait for the output readers to drain once the child has exited.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// The config file's name inside the gateway's directory.
const CONFIG_FILE: &str = "palisade.toml";

/// Lines of the child's output, shared by the reader tasks and waiters.
type Output = Arc<watch::Sender<Vec<String>>>;

/// Configures and starts a [`Gateway`].
pub struct GatewayBuilder {
    bin: PathBuf,
    config: Box<dyn FnOnce(&Path) -> String + Send>,
    env: Vec<(String, String)>,
    files: Vec<(PathBuf, Vec<u8>)>,
    wait_ready: bool,
    startup_timeout: Duration,
}

impl GatewayBuilder {
    /// A builder for the palisade binary at `bin` (in the `palisade` crate's integration
    /// tests: `env!("CARGO_BIN_EXE_palisade")`), with an empty config.
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            config: Box::new(|_| String::new()),
            env: Vec::new(),
            files: Vec::new(),
            wait_ready: false,
            startup_timeout: STARTUP_TIMEOUT,
        }
    }

    /// The config file's body. It must not set `server.listen` or `ops.listen`: the builder
    /// picks those ports itself.
    pub fn config(self, toml: &str) -> Self {
        let toml = toml.to_owned();
        self.config_with(move |_| toml)
    }

    /// The config file's body, built from the gateway's temporary directory, for configs
    /// that refer to files placed there with [`GatewayBuilder::file`].
    pub fn config_with(mut self, toml: impl FnOnce(&Path) -> String + Send + 'static) -> Self {
        self.config = Box::new(toml);
        self
    }

    /// Writes `contents` to `name` (relative) in the gateway's directory before it starts.
    pub fn file(mut self, name: impl Into<PathBuf>, contents: impl Into<Vec<u8>>) -> Self {
        self.files.push((name.into(), contents.into()));
        self
    }

    /// An extra environment variable for the child. `PALISADE_LOG__FORMAT` defaults to `json`
    /// and can be overridden here; the two listen variables cannot.
    pub fn env(mut self, key: &str, val: &str) -> Self {
        self.env.push((key.to_owned(), val.to_owned()));
        self
    }

    /// Whether [`GatewayBuilder::spawn`] also waits for `/ready` to answer 200 (by default it
    /// waits only for `/live`).
    pub fn wait_ready(mut self, yes: bool) -> Self {
        self.wait_ready = yes;
        self
    }

    /// How long to wait for the gateway to become live (and ready); 30 s by default.
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the gateway and waits until it is live (and ready, if asked). If it exits or
    /// times out first, the error includes everything it printed.
    pub async fn spawn(mut self) -> anyhow::Result<Gateway> {
        let dir = make_temp_dir()?;
        let prepared = self.prepare_dir(&dir);
        if let Err(error) = prepared {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error);
        }
        let [proxy_port, ops_port] = free_ports::<2>().context("picking free ports")?;
        let proxy_addr = SocketAddr::from(([127, 0, 0, 1], proxy_port));
        let ops_addr = SocketAddr::from(([127, 0, 0, 1], ops_port));

        let mut command = Command::new(&self.bin);
        command
            .arg("run")
            .arg("--config")
            .arg(dir.join(CONFIG_FILE))
            .current_dir(&dir)
            .env("PALISADE_LOG__FORMAT", "json")
            .envs(self.env.iter().map(|(key, val)| (key, val)))
            .env("PALISADE_SERVER__LISTEN", proxy_addr.to_string())
            .env("PALISADE_OPS__LISTEN", ops_addr.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let _ = std::fs::remove_dir_all(&dir);
                let bin = self.bin.display();
                return Err(error).with_context(|| format!("starting {bin}"));
            }
        };

        let output: Output = Arc::new(watch::Sender::new(Vec::new()));
        let echo = std::env::var_os("PALISADE_TESTKIT_ECHO").is_some();
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            readers.push(tokio::spawn(capture(stdout, Arc::clone(&output), echo)));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(tokio::spawn(capture(stderr, Arc::clone(&output), echo)));
        }
        let pid = child.id().unwrap_or_default();
        let mut gateway = Gateway {
            proxy_addr,
            ops_addr,
            dir,
            child,
            pid,
            output,
            readers,
        };

        let deadline = Instant::now() + self.startup_timeout;
        gateway.wait_for_ok("/live", deadline).await?;
        if self.wait_ready {
            gateway.wait_for_ok("/ready", deadline).await?;
        }
        Ok(gateway)
    }

    fn prepare_dir(&mut self, dir: &Path) -> anyhow::Result<()> {
        for (name, contents) in &self.files {
            let path = dir.join(name);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            std::fs::write(&path, contents)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        let config = std::mem::replace(&mut self.config, Box::new(|_| String::new()));
        let path = dir.join(CONFIG_FILE);
        std::fs::write(&path, config(dir)).with_context(|| format!("writing {}", path.display()))
    }
}

/// A running palisade child process.
pub struct Gateway {
    /// Where the proxy listener accepts traffic.
    pub proxy_addr: SocketAddr,
    /// Where the ops listener serves `/live`, `/ready` and `/metrics`.
    pub ops_addr: SocketAddr,
    /// The temporary directory holding the config and any extra files; the child's working
    /// directory. Removed on drop.
    pub dir: PathBuf,
    child: Child,
    pid: u32,
    output: Output,
    readers: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// The child's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// `http://PROXY_ADDR{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.proxy_addr)
    }

    /// `http://OPS_ADDR{path}`.
    pub fn ops_url(&self, path: &str) -> String {
        format!("http://{}{path}", self.ops_addr)
    }

    /// The config file's path.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join(CONFIG_FILE)
    }

    /// Sends a signal by name ("TERM", "INT", "HUP", ...) with `kill -s SIG PID`.
    pub fn signal(&self, sig: &str) -> anyhow::Result<()> {
        if sig.is_empty() || !sig.bytes().all(|byte| byte.is_ascii_alphanumeric()) {
            bail!("signal name {sig:?} is not a name like TERM, INT or HUP");
        }
        let pid = self.pid.to_string();
        let status = std::process::Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .context("running kill")?;
        if !status.success() {
            bail!("kill -s {sig} {pid} failed with {status}");
        }
        Ok(())
    }

    /// Waits up to `timeout` for the child to exit, then for its output to be read to the end.
    pub async fn wait_exit(&mut self, timeout: Duration) -> anyhow::Result<ExitStatus> {
        let status = tokio::time::timeout(timeout, self.child.wait())
            .await
            .with_context(|| format!("palisade did not exit within {timeout:?}"))?
            .context("waiting for palisade")?;
        self.drain_output().await;
        Ok(status)
    }

    /// Every line the child printed so far, stdout and stderr interleaved as they arrived.
    pub fn output_lines(&self) -> Vec<String> {
        self.output.borrow().clone()
    }

    /// Waits up to `timeout` for a line (already printed or still to come) matching `pred`.
    pub async fn wait_for_line(
        &self,
        pred: impl Fn(&str) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let mut updates = self.output.subscribe();
        let mut checked = 0;
        let search = async {
            loop {
                {
                    let lines = updates.borrow_and_update();
                    if let Some(line) = lines[checked..].iter().find(|line| pred(line)) {
                        return line.clone();
                    }
                    checked = lines.len();
                }
                if updates.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        };
        match tokio::time::timeout(timeout, search).await {
            Ok(line) => Ok(line),
            Err(_) => bail!(
                "no matching line within {timeout:?}; output:\n{}",
                self.output_text()
            ),
        }
    }

    /// Resident set size in KiB (`VmRSS` from `/proc/PID/status`), if readable.
    pub fn rss_kb(&self) -> Option<u64> {
        self.proc_status_kb("VmRSS:")
    }

    /// Peak resident set size in KiB (`VmHWM`), if readable.
    pub fn peak_rss_kb(&self) -> Option<u64> {
        self.proc_status_kb("VmHWM:")
    }

    fn proc_status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        let line = status.lines().find(|line| line.starts_with(field))?;
        line[field.len()..].split_whitespace().next()?.parse().ok()
    }

    fn output_text(&self) -> String {
        self.output.borrow().join("\n")
    }

    /// Polls `GET ops{path}` until 200, failing early if the child exits.
    async fn wait_for_ok(&mut self, path: &str, deadline: Instant) -> anyhow::Result<()> {
        let url = self.ops_url(path);
        loop {
            if let Some(status) = self.child.try_wait().context("checking on palisade")? {
                self.drain_output().await;
                bail!(
                    "palisade exited with {status} before {path} answered 200; output:\n{}",
                    self.output_text()
                );
            }
            let probe = tokio::time::timeout(PROBE_TIMEOUT, client::get(&url)).await;
            if let Ok(Ok(response)) = probe
                && response.status == StatusCode::OK
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{url} did not answer 200 in time; output:\n{}",
                    self.output_text()
                );
            }
            tokio::time::sleep(PROBE_INTERVAL).await;
        }
    }

    async fn drain_output(&mut self) {
        for reader in &mut self.readers {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, reader).await;
        }
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        for reader in &self.readers {
            reader.abort();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Reads `pipe` line by line into `output`, tolerating invalid UTF-8.
async fn capture(pipe: impl AsyncRead + Unpin, output: Output, echo: bool) {
    let mut reader = BufReader::new(pipe);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {
                let line = String::from_utf8_lossy(&buf)
                    .trim_end_matches(['\n', '\r'])
                    .to_owned();
                if echo {
                    eprintln!("[palisade] {line}");
                }
                output.send_modify(|lines| lines.push(line));
            }
        }
    }
}

/// A loopback port that was free a moment ago (bound to port 0, read, released).
pub fn free_port() -> u16 {
    let [port] = free_ports::<1>().expect("binding 127.0.0.1:0 to find a free port");
    port
}

/// `N` distinct free loopback ports: all are held at once, so they differ.
fn free_ports<const N: usize>() -> std::io::Result<[u16; N]> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0; N];
    for port in &mut ports {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        *port = listener.local_addr()?.port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// A fresh, empty directory under the system temp dir.
fn make_temp_dir() -> anyhow::Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.subsec_nanos());
    let name = format!(
        "palisade-test-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports::<3>().unwrap();
        assert!(a != b && b != c && a != c);
        assert_ne!(free_port(), 0);
    }

    /// A child that exits at once (here `sh`, which cannot find a script named `run`) fails
    /// the spawn with its output in the error, and leaves no directory behind.
    #[tokio::test]
    async fn early_exit_reports_the_output() {
        let error = GatewayBuilder::new("sh")
            .config("# empty")
            .startup_timeout(Duration::from_secs(10))
            .spawn()
            .await
            .err()
            .unwrap();
        let message = format!("{error:#}");
        assert!(message.contains("palisade exited"), "{message}");
        assert!(message.contains("run"), "{message}");
    }
}
