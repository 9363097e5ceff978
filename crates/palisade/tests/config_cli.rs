//! `palisade validate`, `palisade config example` and `palisade config schema`, run as a user
//! would: every error at once, each naming file, line, field and what would be valid.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

fn write(dir: &tempdir::Dir, name: &str, text: &str) -> PathBuf {
    let path = dir.0.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

mod tempdir {
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Self {
            let p = std::env::temp_dir().join(format!("palisade-cli-{tag}-{}", std::process::id()));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn validate(path: &PathBuf, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.arg("validate")
        .arg("--config")
        .arg(path)
        .env_remove("PALISADE_CONFIG");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// Runs `validate` from the file's own directory so messages name it as `palisade.toml`.
fn validate_text(tag: &str, text: &str, env: &[(&str, &str)]) -> (i32, String) {
    let dir = tempdir::Dir::new(tag);
    write(&dir, "palisade.toml", text);
    let mut cmd = Command::new(common::bin());
    cmd.current_dir(&dir.0)
        .args(["validate", "--config", "palisade.toml"])
        .env_remove("PALISADE_CONFIG")
        .env_remove("APP_TOKEN");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const GOOD_BASE: &str = r#"
[upstreams.app]
endpoints = ["127.0.0.1:3000"]

[upstreams.billing]
endpoints = ["127.0.0.1:3001"]

[[routes]]
name = "api"
path = "/api"
upstream = "app"
"#;

#[test]
fn bad_toml_names_the_line_and_the_problem() {
    let (code, err) = validate_text(
        "syntax",
        "[server]\nlisten = \"0.0.0.0:8080\nhttp2 = true\n",
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "palisade.toml:2: invalid TOML at column 23: invalid basic string, expected '\"'"
        ),
        "{err}"
    );
}

#[test]
fn unknown_field_lists_the_valid_ones() {
    let (code, err) = validate_text("unknown", "[server]\nlistn = \"0.0.0.0:8080\"\n", &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "palisade.toml:2: server: unknown field \"listn\"; valid fields: listen, worker_threads, trusted_proxies, header_read_timeout, keepalive_timeout, http2"
        ),
        "{err}"
    );
}

#[test]
fn dangling_upstream_reference_lists_the_defined_upstreams() {
    let (code, err) = validate_text(
        "dangling",
        &GOOD_BASE.replace("upstream = \"app\"", "upstream = \"ap\""),
        &[],
    );
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "palisade.toml:11: routes[0].upstream: route \"api\" refers to upstream \"ap\", which is not defined; defined upstreams: app, billing"
        ),
        "{err}"
    );
}

#[test]
fn bad_duration_says_what_a_duration_looks_like() {
    let text = format!("{GOOD_BASE}timeout = \"3 parsecs\"\n");
    let (code, err) = validate_text("duration", &text, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains("palisade.toml:12: routes[0].timeout: invalid duration \"3 parsecs\""),
        "{err}"
    );
    assert!(
        err.contains("expected a number and a unit such as \"500ms\", \"30s\", \"5m\" or \"1h\""),
        "{err}"
    );
}

#[test]
fn missing_env_secret_names_the_variable_and_never_a_value() {
    let text = "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n[upstreams.app.request_headers]\nAuthorization = \"${env:APP_TOKEN}\"\n[[routes]]\nname = \"api\"\nupstream = \"app\"\n";
    let (code, err) = validate_text("secret", text, &[]);
    assert_eq!(code, 1);
    assert!(
        err.contains(
            "palisade.toml:4: upstreams.app.request_headers.Authorization: environment variable \"APP_TOKEN\" is not set; set it or change the reference"
        ),
        "{err}"
    );
    let (code, out) = validate_text("secret-set", text, &[("APP_TOKEN", "Bearer s3cr3t-value")]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("s3cr3t"));
}

#[test]
fn every_error_is_reported_at_once() {
    let text = "[server]\nlistn = 1\n\n[lifecycle]\ngrace_period = \"soon\"\n\n[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n\n[[routes]]\nname = \"api\"\nupstream = \"nope\"\n";
    let (code, err) = validate_text("many", text, &[]);
    assert_eq!(code, 1);
    assert!(err.contains("server: unknown field \"listn\""), "{err}");
    assert!(
        err.contains("lifecycle.grace_period: invalid duration \"soon\""),
        "{err}"
    );
    assert!(err.contains("refers to upstream \"nope\""), "{err}");
    assert!(err.contains("3 error(s)"), "{err}");
}

#[test]
fn the_example_config_validates_and_the_schema_is_json() {
    let out = Command::new(common::bin())
        .args(["config", "example"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let dir = tempdir::Dir::new("example");
    let path = write(
        &dir,
        "example.toml",
        &String::from_utf8(out.stdout).unwrap(),
    );
    let out = validate(&path, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("valid"));

    let out = Command::new(common::bin())
        .args(["config", "schema"])
        .output()
        .unwrap();
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema is JSON");
    assert!(schema["properties"]["routes"].is_object(), "{schema}");
}

#[test]
fn env_overrides_apply_and_bad_ones_name_the_variable() {
    let dir = tempdir::Dir::new("env");
    let path = write(&dir, "palisade.toml", GOOD_BASE);
    let out = validate(&path, &[("PALISADE_SERVER__LISTN", "0.0.0.0:1")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("env PALISADE_SERVER__LISTN: server: unknown field \"listn\""),
        "{err}"
    );
}

#[test]
fn request_headers_palisade_manages_are_refused() {
    let text =
        format!("{GOOD_BASE}\n[upstreams.app.request_headers]\nX-Forwarded-For = \"10.0.0.1\"\n");
    let (code, err) = validate_text("managed", &text, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "palisade.toml:14: upstreams.app.request_headers.X-Forwarded-For: header \"X-Forwarded-For\" cannot be set here: Palisade sets the forwarding headers from the client connection"
        ),
        "{err}"
    );
}

#[test]
fn validate_without_a_config_is_a_usage_error_that_says_how_to_name_one() {
    let out = Command::new(common::bin())
        .arg("validate")
        .env_remove("PALISADE_CONFIG")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("no config file given"), "{err}");
    assert!(
        err.contains("--config FILE") && err.contains("PALISADE_CONFIG"),
        "{err}"
    );
    assert!(err.contains("palisade config example"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("valid"));

    // PALISADE_CONFIG names the file as well as --config does.
    let dir = tempdir::Dir::new("env-config");
    let path = write(&dir, "palisade.toml", GOOD_BASE);
    let out = Command::new(common::bin())
        .arg("validate")
        .env("PALISADE_CONFIG", &path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_config_without_routes_is_refused() {
    let (code, err) = validate_text("empty", "", &[]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "palisade.toml: routes: no routes are defined, so every request would get 404; add at \
             least one, e.g. [[routes]] with name = \"default\", path = \"/\", upstream = \"app\""
        ),
        "{err}"
    );
}

#[test]
fn run_without_a_config_serves_the_example_on_loopback_and_warns() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    use std::time::{Duration, Instant};

    let mut child = Command::new(common::bin())
        .arg("run")
        .env_remove("PALISADE_CONFIG")
        .env_remove("PALISADE_SERVER__LISTEN")
        .env_remove("PALISADE_OPS__LISTEN")
        .env_remove("RUST_LOG")
        .env("PALISADE_LOG__FORMAT", "json")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let warning = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains("no config given") => break Some(line),
            Ok(line) => seen.push(line),
            Err(_) => break None,
        }
    };
    // Killed by its own handle; the example's ports may be taken on this machine, which does
    // not matter: the warning comes before the listeners are bound.
    let _ = child.kill();
    let _ = child.wait();
    let warning = warning.unwrap_or_else(|| panic!("no warning; output:\n{}", seen.join("\n")));
    let line: serde_json::Value = serde_json::from_str(&warning).unwrap();
    assert_eq!(line["level"], "WARN", "{warning}");
    assert_eq!(line["proxy"], "127.0.0.1:8080", "{warning}");
    assert_eq!(line["ops"], "127.0.0.1:9090", "{warning}");
    assert!(
        line["message"].as_str().unwrap().contains("loopback only"),
        "{warning}"
    );
}

#[test]
fn schema_check_names_each_failing_pointer() {
    let dir = std::env::temp_dir().join(format!("palisade-schema-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let schema = dir.join("order.json");
    std::fs::write(
        &schema,
        r#"{"type":"object","required":["sku"],"properties":{"quantity":{"type":"integer","minimum":1}}}"#,
    )
    .unwrap();
    let check = |instance: &str| {
        let path = dir.join("instance.json");
        std::fs::write(&path, instance).unwrap();
        let out = Command::new(common::bin())
            .args(["schema", "check", "--schema"])
            .arg(&schema)
            .arg("--instance")
            .arg(&path)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, _) = check(r#"{"sku":"a","quantity":2}"#);
    assert_eq!(code, Some(0));
    let (code, out) = check(r#"{"quantity":0}"#);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.lines().any(|l| l.starts_with("/quantity: ")), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("/: ") && l.contains("sku")),
        "{out}"
    );
    let (code, _) = check("{not json");
    assert_eq!(code, Some(2));
}

/// `palisade schema check` gives the JSON-Schema-Test-Suite's answer (draft 2020-12): every
/// test of the first group of each file whose schema compiles without the network
/// (`palisade-config`'s suite test runs all of them through the same code).
#[test]
fn schema_check_agrees_with_the_json_schema_test_suite() {
    let suite = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../palisade-config/tests/json-schema-test-suite/draft2020-12");
    let dir = std::env::temp_dir().join(format!("palisade-schema-suite-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (schema_path, instance_path) = (dir.join("schema.json"), dir.join("instance.json"));
    let mut files: Vec<_> = std::fs::read_dir(&suite)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut checked = 0;
    for file in &files {
        let groups: Vec<serde_json::Value> =
            serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let Some(group) = groups
            .iter()
            .find(|g| palisade_config::compile_schema(&g["schema"]).is_ok())
        else {
            continue;
        };
        std::fs::write(&schema_path, group["schema"].to_string()).unwrap();
        for test in group["tests"].as_array().unwrap() {
            std::fs::write(&instance_path, test["data"].to_string()).unwrap();
            let out = Command::new(common::bin())
                .args(["schema", "check", "--schema"])
                .arg(&schema_path)
                .arg("--instance")
                .arg(&instance_path)
                .output()
                .unwrap();
            let expected = if test["valid"] == true { 0 } else { 1 };
            assert_eq!(
                out.status.code(),
                Some(expected),
                "{file:?} / {} / {}: {}",
                group["description"],
                test["description"],
                String::from_utf8_lossy(&out.stdout)
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} checked");
}
