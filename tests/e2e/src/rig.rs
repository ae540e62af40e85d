//! Rigs for tests that run a vehicle: `firmware-sim` behind an SLCAN adapter on a pty, and
//! `telltale-agent` reading it with a config file written for the test.

use std::io::{BufRead as _, Read, Write};
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

/// `firmware-sim elm327` as a Wi-Fi dongle on a free TCP port, with `args` (`--scenario`,
/// `--protocol`, `--quirk` ...), and its `elm327+tcp:` link. Ready when its log says it
/// listens: the emulator serves one host at a time, so a probing connection would itself be a
/// session the first client could collide with.
pub fn elm327_dongle(args: &[&str]) -> (Running, String) {
    let addr = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["elm327", "--tcp", &addr];
    all.extend_from_slice(args);
    let mut sim = Running::start("firmware-sim", &all);
    wait_for(
        "the ELM327 emulator to listen",
        Duration::from_secs(20),
        || {
            sim.assert_running();
            sim.log().contains("ELM327 adapter listening")
        },
    );
    (sim, format!("elm327+tcp:{addr}"))
}

/// `firmware-sim elm327` as a USB adapter on a pty at `dir/obd`, with `args`, and the path.
pub fn elm327_usb(dir: &Path, args: &[&str]) -> (Running, String) {
    let link_path = dir.join("obd");
    let path = link_path.to_str().expect("a UTF-8 path").to_owned();
    let mut all = vec!["elm327", "--pty-link", &path];
    all.extend_from_slice(args);
    let mut sim = Running::start("firmware-sim", &all);
    wait_for("the ELM327 pty", Duration::from_secs(20), || {
        sim.assert_running();
        link_path.exists()
    });
    (sim, path)
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
        self.start_with_env(&[])
    }

    /// Starts the agent with `env` added (`LD_PRELOAD` for a slow disk, say), once its status
    /// endpoint answers.
    pub fn start_with_env(&self, env: &[(&str, &str)]) -> Running {
        let cfg = self.config.to_str().expect("utf-8 path");
        let agent =
            Running::start_with_env(&crate::binary("telltale-agent"), &["--config", cfg], env);
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
    http_request(port, "GET", path, None).map(|(_, body)| body)
}

/// An HTTP/1.1 request on 127.0.0.1:`port` (`Connection: close`), with a JSON body when
/// given; the status code and the body. The body is read by its length or its chunks, not to
/// the end of the stream: chromedriver keeps the connection open and does not answer 1.0.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    json: Option<&str>,
) -> std::io::Result<(u16, String)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(60)))?;
    let body = json.unwrap_or("");
    let kind = if json.is_some() {
        "Content-Type: application/json\r\n"
    } else {
        ""
    };
    s.write_all(
        format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost:{port}\r\nConnection: close\r\n\
             {kind}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )?;
    let mut reader = std::io::BufReader::new(s);
    let mut status_line = String::new();
    reader.read_line(&mut status_line)?;
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (mut length, mut chunked) = (None, false);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line.trim().is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
    }
    let mut out = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size)?;
            let n = usize::from_str_radix(size.trim(), 16).map_err(std::io::Error::other)?;
            if n == 0 {
                break;
            }
            let mut chunk = vec![0; n + 2];
            reader.read_exact(&mut chunk)?;
            out.extend_from_slice(&chunk[..n]);
        }
    } else if let Some(n) = length {
        out.resize(n, 0);
        reader.read_exact(&mut out)?;
    } else {
        reader.read_to_end(&mut out)?;
    }
    Ok((status, String::from_utf8_lossy(&out).into_owned()))
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
