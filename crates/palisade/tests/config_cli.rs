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
    let text = "[upstreams.app]\nendpoints = [\"127.0.0.1:3000\"]\n[upstreams.app.request_headers]\nAuthorization = \"${env:APP_TOKEN}\"\n";
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
