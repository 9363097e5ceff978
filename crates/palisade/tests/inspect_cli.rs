//! `palisade jwt verify`, `palisade webhook verify` and `palisade webhook sign`, run as a user
//! would on the published examples (keys and bodies in tests/data, see its README): exit 0 and
//! the identity or `valid: ...` line, 1 and `invalid: REASON (why)` with the library's stable
//! reason, 2 and a message naming what would be valid.

mod common;
// Beside this file rather than in tests/, where cargo would take each for a test of its own.
#[path = "inspect_cli/jwt.rs"]
mod jwt;
#[path = "inspect_cli/webhook.rs"]
mod webhook;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[derive(Debug)]
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn palisade(args: &[&str]) -> Run {
    palisade_with_stdin(args, "")
}

fn palisade_with_stdin(args: &[&str], stdin: &str) -> Run {
    let mut child = Command::new(common::bin())
        .args(args)
        .env_remove("PALISADE_CONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before reading: a broken pipe is then its answer.
    let _ = child.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = child.wait_with_output().unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A file of tests/data.
fn data(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    path.join(name).display().to_string()
}

/// Files one test writes, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("palisade-inspect-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, bytes: &[u8]) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Asserts a bad-usage exit: code 2, nothing on stdout, `expected` in the message.
fn assert_usage(run: &Run, expected: &str) {
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "", "{run:?}");
    assert!(
        run.stderr.contains(expected),
        "wanted {expected:?} in {run:?}"
    );
}

/// The exit code and stdout, where the verdict is.
fn verdict(run: &Run) -> (i32, &str) {
    (run.code, run.stdout.as_str())
}
