//! Helpers for end-to-end tests that run Telltale's binaries as separate processes.
//!
//! The binaries come from the same cargo target directory as the test (`cargo nextest run
//! --workspace` builds every package's binaries before any test runs). A missing binary is a
//! test failure that says how to build it, never a skip.

pub mod browser;
pub mod crm;
pub mod ingest;
pub mod mqtt;
pub mod pg;
pub mod python;
pub mod rig;
pub mod uplink;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// Path of a workspace binary next to the running test executable.
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("a target directory");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the suite with `cargo nextest run --workspace` (or `cargo build -p {name}` first)",
        path.display()
    );
    path
}

/// A child process killed when dropped, with its stderr kept for failure messages.
#[derive(Debug)]
pub struct Running {
    child: Child,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Starts the workspace binary `bin args..`, logging to a temporary file.
    pub fn start(bin: &str, args: &[&str]) -> Running {
        Running::start_program(&binary(bin), args)
    }

    /// Starts the program at `path` (a system tool such as chromedriver) the same way.
    pub fn start_program(path: &Path, args: &[&str]) -> Running {
        Running::start_with_env(path, args, &[])
    }

    /// Starts the program at `path` with `env` added to its environment.
    pub fn start_with_env(path: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let log = dir.path().join("stderr.log");
        let file = std::fs::File::create(&log).expect("a log file");
        let child = Command::new(path)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", path.display()));
        Running {
            child,
            log,
            _dir: dir,
        }
    }

    /// What the process wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process with SIGKILL, as a power cut or the OOM killer would, and reaps it.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Panics (with the log) if the process has already exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("process exited early with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The lines of a child's output as they come, read by a thread of their own (so a test can
/// wait for one with a timeout).
pub fn lines_of(output: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead as _;
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(output)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    lines
}

pub use telltale_testdb::{free_port, wait_for};

/// Runs `telltale args..` to completion.
pub fn telltale(args: &[&str]) -> Output {
    Command::new(binary("telltale"))
        .args(args)
        .output()
        .expect("run telltale")
}

/// Runs `telltale args..`, requires success, and parses its stdout as one JSON document.
pub fn telltale_json(args: &[&str]) -> serde_json::Value {
    let out = telltale(args);
    assert!(
        out.status.success(),
        "telltale {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "telltale {args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}
