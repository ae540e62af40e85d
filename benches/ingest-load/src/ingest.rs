//! `telltale-ingest` as the benchmark runs it: a child process with a generated TOML file
//! (broker, scratch database, batch size, a metrics port of its own), and its Prometheus
//! counters read over plain HTTP.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::proc::free_port;

/// How the ingest under test is configured (the rest is its defaults).
#[derive(Debug, Clone)]
pub struct IngestConfig {
    pub binary: PathBuf,
    pub mqtt_url: String,
    /// `3.1.1` or `5`.
    pub protocol: String,
    pub database_url: String,
    pub batch_max_messages: usize,
    pub batch_max_age: String,
    pub max_in_flight: u16,
    pub max_connections: u32,
    /// `batch.writers`: batches written at once.
    pub writers: usize,
    /// `database.timescaledb`: `off` for plain PostgreSQL, `on` for a TimescaleDB server.
    pub timescaledb: String,
}

/// A running `telltale-ingest`; killed when dropped.
#[derive(Debug)]
pub struct Ingest {
    child: Child,
    pub metrics_port: u16,
    dir: tempfile::TempDir,
}

/// The `telltale-ingest` next to this executable (both are built into the same target
/// directory), or `None`.
pub fn sibling_binary(name: &str) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let mut dir = exe.parent()?.to_path_buf();
    // Test executables live one level down, in deps/.
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    path.exists().then_some(path)
}

impl Ingest {
    pub fn start(cfg: &IngestConfig) -> anyhow::Result<Ingest> {
        if !cfg.binary.exists() {
            bail!(
                "{} not found: build it with `cargo build --release -p telltale-ingest` or pass --ingest-bin",
                cfg.binary.display()
            );
        }
        let dir = tempfile::tempdir().context("a temporary directory for the ingest")?;
        let metrics_port = free_port()?;
        let toml = format!(
            "[mqtt]\nurl = {url:?}\nprotocol = {proto:?}\nclient_id = \"telltale-load-ingest\"\n\
             share_group = \"ingest\"\nshared = true\nmax_in_flight = {inflight}\n\n\
             [database]\nurl = {db:?}\nmigrate_on_start = true\nmax_connections = {conns}\n\
             timescaledb = {tsdb:?}\n\n\
             [batch]\nmax_messages = {batch}\nmax_age = {age:?}\nwriters = {writers}\n\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n\n\
             [log]\nfilter = \"warn\"\n",
            url = cfg.mqtt_url,
            proto = cfg.protocol,
            inflight = cfg.max_in_flight,
            db = cfg.database_url,
            conns = cfg.max_connections.max(cfg.writers as u32 + 2),
            tsdb = cfg.timescaledb,
            writers = cfg.writers,
            batch = cfg.batch_max_messages,
            age = cfg.batch_max_age,
        );
        let conf = dir.path().join("ingest.toml");
        std::fs::write(&conf, toml).with_context(|| format!("writing {}", conf.display()))?;
        let log = std::fs::File::create(dir.path().join("stderr.log"))
            .context("the ingest's log file")?;
        let child = Command::new(&cfg.binary)
            .arg("--config")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", cfg.binary.display()))?;
        Ok(Ingest {
            child,
            metrics_port,
            dir,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the ingest wrote to stderr.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Fails with the log if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!("telltale-ingest exited with {status}:\n{}", self.log());
        }
        Ok(())
    }

    /// The Prometheus text from `/metrics`.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let text = http_get(self.metrics_port, "/metrics").await?;
        Ok(Metrics(text))
    }

    /// Waits until the metrics endpoint answers and the MQTT session is up.
    pub async fn wait_connected(&mut self, limit: Duration) -> anyhow::Result<()> {
        let start = tokio::time::Instant::now();
        loop {
            self.check_running()?;
            if let Ok(m) = self.metrics().await
                && m.value("telltale_ingest_mqtt_connected") == Some(1.0)
            {
                return Ok(());
            }
            if start.elapsed() > limit {
                bail!(
                    "telltale-ingest was not connected within {limit:?}:\n{}",
                    self.log()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the process (SIGKILL: everything measured is committed by then) and reaps it.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn config_path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Ingest {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Prometheus text exposition.
#[derive(Debug, Clone)]
pub struct Metrics(pub String);

impl Metrics {
    /// The value of an unlabelled series, or of `name{labels}` written exactly.
    pub fn value(&self, series: &str) -> Option<f64> {
        self.0.lines().find_map(|line| {
            let rest = line.strip_prefix(series)?;
            let value = rest.strip_prefix(' ')?;
            value.trim().parse().ok()
        })
    }
}

/// `GET path` on 127.0.0.1:port over HTTP/1.0; the body.
pub async fn http_get(port: u16, path: &str) -> anyhow::Result<String> {
    let fetch = async {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
        s.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes())
            .await?;
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    };
    let buf = tokio::time::timeout(Duration::from_secs(5), fetch)
        .await
        .context("metrics request timed out")?
        .with_context(|| format!("GET 127.0.0.1:{port}{path}"))?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        bail!("GET {path}: no HTTP response");
    };
    if !head.starts_with("HTTP/1.1 200") && !head.starts_with("HTTP/1.0 200") {
        bail!(
            "GET {path}: {}",
            head.lines().next().unwrap_or("no status line")
        );
    }
    Ok(body.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metric_values() {
        let m = Metrics(
            "# TYPE x counter\ntelltale_ingest_samples_total 1200\n\
             telltale_ingest_messages_total{kind=\"status\"} 3\n\
             telltale_ingest_samples_total_bogus 9\n"
                .into(),
        );
        assert_eq!(m.value("telltale_ingest_samples_total"), Some(1200.0));
        assert_eq!(
            m.value("telltale_ingest_messages_total{kind=\"status\"}"),
            Some(3.0)
        );
        assert_eq!(m.value("telltale_ingest_missing"), None);
    }
}
