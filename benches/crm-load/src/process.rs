//! Child processes of the benchmark: started with their stderr in a file of their own (read
//! for failures and, for the simulator, for its timestamps), killed and reaped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};

/// A running child; SIGKILLed when dropped.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `program args..` with `env` added, stderr to `log`.
    pub fn start(
        name: &str,
        program: &Path,
        args: &[&str],
        env: &[(&str, &str)],
        log: PathBuf,
    ) -> anyhow::Result<Process> {
        if !program.exists() {
            bail!(
                "{} not found: `cargo build --release -p telltale-crm -p telltale-ingest -p telltale-agent -p firmware-sim -p telltale-crm-load`, or pass its path",
                program.display()
            );
        }
        let file =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = Command::new(program);
        command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(file);
        for (k, v) in env {
            command.env(k, v);
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {}", program.display()))?;
        Ok(Process {
            name: name.to_owned(),
            child,
            log,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it wrote to stderr so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Fails with the end of its log if it has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            let log = self.log();
            let tail: String = log
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join("\n");
            bail!("{} exited with {status}:\n{tail}", self.name);
        }
        Ok(())
    }

    /// Waits until `ready` holds, failing if the process exits or `limit` passes.
    pub async fn wait_until(
        &mut self,
        what: &str,
        limit: Duration,
        mut ready: impl FnMut() -> bool,
    ) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            self.check_running()?;
            if ready() {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "{}: {what} not within {limit:?}:\n{}",
                    self.name,
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGKILL and reap.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether something accepts TCP connections on 127.0.0.1:`port`.
pub fn listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// The workspace binary `name` next to this executable (both are built into the same target
/// directory; a test executable lives one level down, in deps/).
pub fn sibling(name: &str) -> PathBuf {
    telltale_load::ingest::sibling_binary(name).unwrap_or_else(|| {
        let exe = std::env::current_exe().unwrap_or_default();
        exe.parent().map_or_else(PathBuf::new, |d| d.join(name))
    })
}
