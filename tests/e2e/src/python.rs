//! Python peers: clients that others wrote (grpcio with its reflection and health packages,
//! paho-mqtt) driven by the scripts in `tests/e2e/python/`, on Python classes that
//! `grpc_tools.protoc` compiles from `proto/` for each test, as their users would.
//!
//! The interpreter is the one `scripts/python-env` prints: a virtualenv with the pinned
//! packages, made on first use. When Python or a package cannot be had the test fails with what
//! that script said; it never skips. A script reports a failed check by raising (its traceback
//! is in the panic message) and its result as one JSON line, the last on its stdout.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use crate::rig::repo;

/// Where the scripts are; `proto/` below it holds the protos we compile but do not own (the
/// canonical `grpc.reflection.v1`, which grpcio-reflection does not ship).
fn scripts() -> PathBuf {
    repo().join("tests/e2e/python")
}

/// The interpreter, and a temporary directory of modules generated from the protos.
#[derive(Debug)]
pub struct Python {
    interpreter: PathBuf,
    stubs: tempfile::TempDir,
}

impl Python {
    /// Gets the interpreter from `scripts/python-env` and compiles every `.proto` under
    /// `proto/` and `tests/e2e/python/proto/` (messages and gRPC stubs).
    pub fn with_stubs() -> Python {
        let env = repo().join("scripts/python-env");
        let out = Command::new(&env)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", env.display()));
        assert!(
            out.status.success(),
            "scripts/python-env could not provide Python with the interop packages:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let interpreter = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        let stubs = tempfile::tempdir().expect("a temporary directory");
        let roots = [repo().join("proto"), scripts().join("proto")];
        let mut protos = Vec::new();
        for root in &roots {
            protos_under(root, &mut protos);
        }
        let mut protoc = Command::new(&interpreter);
        protoc.args(["-m", "grpc_tools.protoc"]);
        for root in &roots {
            protoc.arg(format!("-I{}", root.display()));
        }
        let out = protoc
            .arg(format!("--python_out={}", stubs.path().display()))
            .arg(format!("--grpc_python_out={}", stubs.path().display()))
            .args(&protos)
            .output()
            .expect("run grpc_tools.protoc");
        assert!(
            out.status.success(),
            "grpc_tools.protoc could not compile {protos:?}:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        Python { interpreter, stubs }
    }

    /// Starts `tests/e2e/python/{script} args..` with the generated modules and the scripts'
    /// own on its path.
    pub fn start(&self, script: &str, args: &[&str]) -> Script {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let stderr = dir.path().join("stderr.log");
        let path = std::env::join_paths([self.stubs.path(), &scripts()])
            .expect("paths without separators");
        let mut child = Command::new(&self.interpreter)
            .arg(scripts().join(script))
            .args(args)
            .env("PYTHONPATH", path)
            .env("PYTHONUNBUFFERED", "1")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a log file"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {script}: {e}"));
        let lines = crate::lines_of(child.stdout.take().expect("its stdout"));
        Script {
            name: script.to_owned(),
            child,
            lines,
            stderr,
            _dir: dir,
        }
    }

    /// Runs a script to its end within `limit`; its result (see [`Script::finish`]).
    pub fn run(&self, script: &str, args: &[&str], limit: Duration) -> serde_json::Value {
        self.start(script, args).finish(limit)
    }
}

/// Every `.proto` file below `dir`.
fn protos_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            protos_under(&path, out);
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
}

/// A running script: its stdout as lines, its stderr kept for the failure message; killed
/// when dropped.
#[derive(Debug)]
pub struct Script {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
    _dir: tempfile::TempDir,
}

impl Script {
    /// Waits until the script prints the line `want` (a script says so when it is ready).
    pub fn wait_for_line(&mut self, want: &str, limit: Duration) {
        let start = Instant::now();
        loop {
            let left = limit.saturating_sub(start.elapsed());
            match self.lines.recv_timeout(left) {
                Ok(line) if line == want => return,
                Ok(_) => {}
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("did not print {want:?} within {limit:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = self.child.wait().map(|s| s.to_string());
                    self.fail(&format!("ended ({status:?}) before printing {want:?}"))
                }
            }
        }
    }

    /// Waits for the script to exit within `limit` and parses the last line of its stdout as
    /// JSON. A non-zero exit, a timeout or no JSON fails the test with the script's stderr.
    pub fn finish(mut self, limit: Duration) -> serde_json::Value {
        let start = Instant::now();
        let status = loop {
            match self.child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if start.elapsed() < limit => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Ok(None) => self.fail(&format!("did not finish within {limit:?}")),
                Err(e) => self.fail(&format!("cannot be waited for: {e}")),
            }
        };
        if !status.success() {
            self.fail(&format!("failed ({status})"));
        }
        // The reader thread ends at the end of the stream, which exit has closed.
        let last = self
            .lines
            .iter()
            .filter(|l| !l.trim().is_empty())
            .last()
            .unwrap_or_default();
        serde_json::from_str(&last).unwrap_or_else(|e| {
            self.fail(&format!(
                "ended without a JSON result ({e}); last line {last:?}"
            ))
        })
    }

    fn fail(&mut self, what: &str) -> ! {
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "tests/e2e/python/{} {what}; its stderr:\n{}",
            self.name,
            std::fs::read_to_string(&self.stderr).unwrap_or_default()
        );
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
