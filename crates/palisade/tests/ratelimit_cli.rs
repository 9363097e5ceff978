//! `palisade ratelimit simulate`, run as a user would: arrival times in, the proxy's own
//! decisions out, one JSON object a line; bad input exits 2 naming the file and line.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

struct Run {
    code: i32,
    lines: Vec<Value>,
    stderr: String,
}

/// Runs `palisade ratelimit simulate ARGS --times -` with `times` on stdin.
fn simulate(args: &[&str], times: &str) -> Run {
    let mut child = Command::new(common::bin())
        .args(["ratelimit", "simulate"])
        .args(args)
        .args(["--times", "-"])
        .env_remove("PALISADE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading (a bad flag): a broken pipe is its answer.
    let _ = child.stdin.take().unwrap().write_all(times.as_bytes());
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        lines: stdout
            .lines()
            .map(|line| serde_json::from_str(line).expect("one JSON object a line"))
            .collect(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn decisions(run: &Run) -> Vec<(bool, u64, u64)> {
    run.lines
        .iter()
        .map(|d| {
            (
                d["allowed"].as_bool().unwrap(),
                d["retry_after"].as_u64().unwrap(),
                d["remaining"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// A config file with policies, removed on drop.
struct ConfigFile(PathBuf);

impl ConfigFile {
    fn new(tag: &str, policies: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "palisade-simulate-{tag}-{}.toml",
            std::process::id()
        ));
        let text = format!(
            "{policies}\n[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\n\
             [[routes]]\nname = \"api\"\npath = \"/api\"\nupstream = \"app\"\n"
        );
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const TIMES: &str = "0\n0\n0\n30\n59.5\n60\n";

#[test]
fn two_per_minute_admits_a_burst_of_two_then_one_every_30_seconds() {
    let run = simulate(&["--limit", "2", "--per", "1m"], TIMES);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // One cell every 60 s / 2 = 30 s, two back to back from idle. At 0 the third waits 30 s;
    // at 30 one cell is back; at 59.5 the next is 0.5 s away, rounded up to 1.
    assert_eq!(
        decisions(&run),
        [
            (true, 0, 1),
            (true, 0, 0),
            (false, 30, 0),
            (true, 0, 0),
            (false, 1, 0),
            (true, 0, 0),
        ]
    );
    let times: Vec<String> = run.lines.iter().map(|d| d["t"].to_string()).collect();
    assert_eq!(times, ["0", "0", "0", "30", "59.5", "60"]);
    assert!(
        run.lines.iter().all(|d| d.get("key").is_none()),
        "no key on the line, none in the output"
    );
    assert_eq!(run.stderr.trim(), "admitted 4 of 6");
}

#[test]
fn the_output_is_one_object_a_line_in_the_promised_shape() {
    let dir = std::env::temp_dir().join(format!("palisade-simulate-file-{}", std::process::id()));
    std::fs::write(&dir, "# a comment\n\n0.25 alice\n").unwrap();
    let out = Command::new(common::bin())
        .args(["ratelimit", "simulate", "--limit", "5", "--per", "1s"])
        .arg("--times")
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&dir);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        "{\"t\":0.25,\"key\":\"alice\",\"allowed\":true,\"retry_after\":0,\"remaining\":4}\n"
    );
    assert_eq!(String::from_utf8(out.stderr).unwrap(), "admitted 1 of 1\n");
}

#[test]
fn each_key_has_its_own_bucket() {
    let run = simulate(
        &["--limit", "1", "--per", "1h"],
        "0 alice\n0 bob\n1 alice\n2 bob\n3\n4\n",
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let seen: Vec<(Option<&str>, bool)> = run
        .lines
        .iter()
        .map(|d| (d["key"].as_str(), d["allowed"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("alice"), true),
            (Some("bob"), true),
            (Some("alice"), false),
            (Some("bob"), false),
            (None, true),
            (None, false),
        ]
    );
    assert_eq!(run.lines[2]["retry_after"], 3599);
}

#[test]
fn burst_spaces_requests_as_the_config_s_burst_does() {
    let run = simulate(
        &["--limit", "10", "--per", "1s", "--burst", "1"],
        "0\n0.05\n0.1\n",
    );
    assert_eq!(decisions(&run), [(true, 0, 0), (false, 1, 0), (true, 0, 0)]);
}

#[test]
fn a_policy_from_a_config_file_answers_as_the_same_flags_do() {
    let config = ConfigFile::new(
        "same",
        "[rate_limits.login]\nkey = \"header:x-user\"\nlimit = 2\nper = \"1m\"\n\
         tier_header = \"x-plan\"\n[rate_limits.login.tiers.pro]\nlimit = 10\nburst = 1\n",
    );
    let times = "0 alice\n0 alice\n0 alice\n0 bob\n30 alice\n59.5 alice\n60 alice\n";
    let from_config = simulate(&["--config", config.arg(), "--policy", "login"], times);
    assert_eq!(from_config.code, 0, "{}", from_config.stderr);
    let from_flags = simulate(&["--limit", "2", "--per", "1m"], times);
    assert_eq!(from_config.lines, from_flags.lines);
    assert_eq!(from_config.stderr, "admitted 5 of 7\n");

    // A tier: its own limit and burst, the policy's per.
    let tier = simulate(
        &[
            "--config",
            config.arg(),
            "--policy",
            "login",
            "--tier",
            "pro",
        ],
        times,
    );
    let flags = simulate(&["--limit", "10", "--per", "1m", "--burst", "1"], times);
    assert_eq!(tier.code, 0, "{}", tier.stderr);
    assert_eq!(tier.lines, flags.lines);
}

#[test]
fn bad_lines_exit_2_naming_the_file_and_line() {
    let run = simulate(&["--limit", "1", "--per", "1s"], "0\n# fine\n1\nsoon\n");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("<stdin>:4:"), "{}", run.stderr);
    assert!(
        run.stderr.contains("\"soon\" is not a time"),
        "{}",
        run.stderr
    );

    let run = simulate(&["--limit", "1", "--per", "1s"], "5\n\n4.5 alice\n");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("<stdin>:3: time 4.5 is before the previous line's 5"),
        "{}",
        run.stderr
    );

    let path = std::env::temp_dir().join(format!("palisade-simulate-bad-{}", std::process::id()));
    std::fs::write(&path, "1\n-2\n").unwrap();
    let out = Command::new(common::bin())
        .args(["ratelimit", "simulate", "--limit", "1", "--per", "1s"])
        .arg("--times")
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&path);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr.contains(&format!("{}:2: \"-2\" is not a time", path.display())),
        "{stderr}"
    );
}

#[test]
fn invalid_flags_exit_2_with_the_config_s_own_rules() {
    let run = simulate(&["--limit", "0", "--per", "0s", "--burst", "0"], "0\n");
    assert_eq!(run.code, 2);
    assert!(run.lines.is_empty());
    for flag in [
        "--limit: must be at least 1",
        "--per: must be longer than 0",
        "--burst: must be at least 1",
    ] {
        assert!(run.stderr.contains(flag), "{flag}: {}", run.stderr);
    }
    let run = simulate(&["--limit", "1", "--per", "soon"], "0\n");
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("invalid duration"), "{}", run.stderr);
    let run = simulate(&["--limit", "1"], "0\n");
    assert_eq!(run.code, 2, "--per is required with --limit");
}

#[test]
fn an_unknown_policy_or_tier_exits_2_listing_the_defined_ones() {
    let config = ConfigFile::new(
        "unknown",
        "[rate_limits.per-ip]\nlimit = 100\nper = \"1m\"\n\n[rate_limits.login]\nlimit = 5\nper = \"1m\"\n",
    );
    let run = simulate(&["--config", config.arg(), "--policy", "logon"], "0\n");
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("no rate-limit policy \"logon\"")
            && run.stderr.contains("defined: login, per-ip"),
        "{}",
        run.stderr
    );
    let run = simulate(
        &[
            "--config",
            config.arg(),
            "--policy",
            "login",
            "--tier",
            "pro",
        ],
        "0\n",
    );
    assert_eq!(run.code, 2);
    assert!(
        run.stderr
            .contains("policy \"login\" has no tier \"pro\"; it has none"),
        "{}",
        run.stderr
    );
}
