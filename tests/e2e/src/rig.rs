//! Rigs for tests that run a vehicle: `firmware-sim` behind an SLCAN adapter on a pty, and
//! `telltale-agent` reading it with a config file written for the test.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Running, free_port, wait_for};

/// The simulator behind an SLCAN adapter on a pty.
pub fn simulator(dir: &Path, scenario: &str, time_scale: &str) -> (Running, String) {
    let link_path = dir.join("canable");
    let path = link_path.to_str().expect("utf-8 path").to_owned();
    let mut sim = Running::start(
        "firmware-sim",
        &[
            "slcan",
            "--pty-link",
            &path,
            "--scenario",
            scenario,
            "--time-scale",
            time_scale,
        ],
    );
    wait_for("the SLCAN pty", Duration::from_secs(20), || {
        sim.assert_running();
        link_path.exists()
    });
    (sim, format!("slcan:{path}"))
}

#[derive(Debug)]
pub struct AgentRig {
    pub device: String,
    pub config: PathBuf,
    pub status_port: u16,
}

impl AgentRig {
    pub fn new(dir: &Path, device: &str, link: &str, mqtt_url: &str, extra: &str) -> AgentRig {
        let status_port = free_port();
        let state = dir.join(format!("state-{device}"));
        let config = dir.join(format!("{device}.toml"));
        let text = format!(
            r#"
device_id = "{device}"
link = "{link}"
state_dir = "{state}"
[mqtt]
url = "{mqtt_url}"
reconnect_min = "100ms"
reconnect_max = "500ms"
status_period = "2s"
[status]
listen = "127.0.0.1:{status_port}"
{extra}
"#,
            state = state.display()
        );
        std::fs::write(&config, text).expect("write the agent config");
        AgentRig {
            device: device.to_owned(),
            config,
            status_port,
        }
    }

    pub fn start(&self) -> Running {
        let cfg = self.config.to_str().expect("utf-8 path");
        let agent = Running::start("telltale-agent", &["--config", cfg]);
        wait_for(
            "the agent's status endpoint",
            Duration::from_secs(20),
            || std::net::TcpStream::connect(("127.0.0.1", self.status_port)).is_ok(),
        );
        agent
    }

    /// GET /status as JSON.
    pub fn status(&self) -> serde_json::Value {
        status_of(self.status_port).unwrap_or_else(|e| panic!("agent /status: {e}"))
    }

    pub fn topic(&self, kind: &str) -> String {
        format!("telltale/v1/{}/{kind}", self.device)
    }
}

/// The repository's root (for the shipped files under `deploy/`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the shipped `deploy/mosquitto/make-certs.sh`: a CA, a broker certificate for
/// 127.0.0.1 and one client certificate per name, in `dir`.
pub fn make_certs(dir: &Path, names: &[&str]) {
    let status = std::process::Command::new(repo().join("deploy/mosquitto/make-certs.sh"))
        .arg(dir)
        .arg("127.0.0.1")
        .args(names)
        .status()
        .expect("run make-certs.sh");
    assert!(status.success(), "make-certs.sh failed");
}

/// `GET path` on 127.0.0.1:`port`; the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes())?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    Ok(text.split("\r\n\r\n").nth(1).unwrap_or("").to_owned())
}

/// An agent's `/status` document.
pub fn status_of(port: u16) -> std::io::Result<serde_json::Value> {
    serde_json::from_str(&http_get(port, "/status")?).map_err(std::io::Error::other)
}

/// A Prometheus counter or gauge (summed over its labels) from `/metrics` on `port`.
pub fn metric(port: u16, name: &str) -> std::io::Result<f64> {
    let text = http_get(port, "/metrics")?;
    Ok(text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{'))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum())
}
