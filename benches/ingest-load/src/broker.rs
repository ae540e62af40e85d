//! A `mosquitto` of the benchmark's own on a free 127.0.0.1 port, configured for a load
//! test: no persistence (nothing is restarted), unlimited queues for a slow subscriber (a full
//! queue would drop QoS 1 messages and the count would never add up), and an in-flight window
//! as large as the ingest's batch.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

use crate::proc::free_port;

/// A running broker; killed when dropped.
#[derive(Debug)]
pub struct Broker {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

fn mosquitto_path() -> anyhow::Result<PathBuf> {
    [
        "/usr/sbin/mosquitto",
        "/usr/bin/mosquitto",
        "/usr/local/sbin/mosquitto",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
    .context("mosquitto is not installed (apt-get install mosquitto)")
}

impl Broker {
    /// Starts the broker; `max_inflight` is how many unacknowledged QoS 1 messages it sends a
    /// subscriber at once (MQTT 3.1.1; an MQTT 5 client's receive maximum wins).
    pub fn start(max_inflight: u16) -> anyhow::Result<Broker> {
        let dir = tempfile::tempdir().context("a temporary directory for mosquitto")?;
        let port = free_port()?;
        let conf = dir.path().join("mosquitto.conf");
        // `user root`: started as root mosquitto would otherwise switch to the `mosquitto` user
        // and could not write its log in our directory; as anyone else the line is ignored.
        let text = format!(
            "user root\n\
             allow_anonymous true\n\
             persistence false\n\
             log_dest file {log}\n\
             log_type error\n\
             log_type warning\n\
             max_inflight_messages {max_inflight}\n\
             max_queued_messages 0\n\
             max_queued_bytes 0\n\
             listener {port} 127.0.0.1\n",
            log = dir.path().join("mosquitto.log").display(),
        );
        std::fs::write(&conf, text).with_context(|| format!("writing {}", conf.display()))?;
        let child = Command::new(mosquitto_path()?)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mosquitto")?;
        let mut broker = Broker { port, child, dir };
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = broker.child.try_wait() {
                bail!("mosquitto exited with {status}: {}", broker.log());
            }
            if start.elapsed() > Duration::from_secs(10) {
                bail!(
                    "mosquitto did not listen on {port} within 10 s: {}",
                    broker.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(broker)
    }

    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The broker's own log (errors and warnings).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
