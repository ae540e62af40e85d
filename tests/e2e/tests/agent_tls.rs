//! The agent over MQTT 5 with mutual TLS, against Mosquitto configured with the shipped ACL
//! (`deploy/mosquitto/acl`) and certificates from `deploy/mosquitto/make-certs.sh`: the agent
//! publishes under its own id; another device's certificate can neither publish as it nor read
//! its commands.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::{Running, free_port, wait_for};
use telltale_wire::v1;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn make_certs(dir: &Path, devices: &[&str]) {
    let status = Command::new(repo().join("deploy/mosquitto/make-certs.sh"))
        .arg(dir)
        .arg("127.0.0.1")
        .args(devices)
        .status()
        .expect("run make-certs.sh");
    assert!(status.success(), "make-certs.sh failed");
}

#[test]
fn mutual_tls_mqtt5_and_per_device_acl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let certs = dir.path().join("certs");
    make_certs(&certs, &["car-tls", "car-rogue", "telltale-cloud"]);
    // The shipped ACL, plus read access for the test's anonymous watcher on the plain port.
    let acl = dir.path().join("acl");
    let shipped =
        std::fs::read_to_string(repo().join("deploy/mosquitto/acl")).expect("shipped ACL");
    std::fs::write(&acl, format!("topic read telltale/v1/#\n{shipped}")).expect("write acl");
    let tls_port = free_port();
    let c = |f: &str| certs.join(f).display().to_string();
    let broker = Broker::start_with(&format!(
        "acl_file {}\nlistener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
         require_certificate true\nuse_identity_as_username true\n",
        acl.display(),
        c("ca.crt"),
        c("broker.crt"),
        c("broker.key"),
    ));
    let watch = Collector::start(broker.port, "watch-tls", "telltale/v1/#");

    let sim_dir = dir.path().join("sim");
    std::fs::create_dir_all(&sim_dir).expect("mkdir");
    let pty = sim_dir.join("canable");
    let pty_s = pty.display().to_string();
    let mut sim = Running::start(
        "firmware-sim",
        &["slcan", "--pty-link", &pty_s, "--scenario", "healthy"],
    );
    wait_for("the SLCAN pty", Duration::from_secs(20), || {
        sim.assert_running();
        pty.exists()
    });
    let status_port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
device_id = "car-tls"
link = "slcan:{pty_s}"
state_dir = "{state}"
[mqtt]
url = "mqtts://127.0.0.1:{tls_port}"
protocol = "5"
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
reconnect_min = "100ms"
[status]
listen = "127.0.0.1:{status_port}"
"#,
            state = dir.path().join("state").display(),
            ca = c("ca.crt"),
            cert = c("car-tls.crt"),
            key = c("car-tls.key"),
        ),
    )
    .expect("write config");
    let mut agent = Running::start(
        "telltale-agent",
        &["--config", config.to_str().expect("utf-8")],
    );

    let info = watch.wait_for("info from the TLS agent", Duration::from_secs(30), |m| {
        agent.assert_running();
        m.iter()
            .find(|r| r.topic == "telltale/v1/car-tls/info")
            .and_then(|r| v1::VehicleInfo::decode(r.payload.as_slice()).ok())
    });
    assert_eq!(info.vin.len(), 17);

    // Another device's certificate: it may publish under its own id only, and may not read
    // car-tls's commands.
    let rogue = Collector::start_tls(
        tls_port,
        "car-rogue",
        "telltale/v1/car-tls/cmd",
        &certs.join("ca.crt"),
        &certs.join("car-rogue.crt"),
        &certs.join("car-rogue.key"),
    );
    rogue.publish("telltale/v1/car-tls/dtc", b"forged".to_vec());
    rogue.publish("telltale/v1/car-rogue/info", b"own".to_vec());
    watch.wait_for(
        "the rogue's message under its own id",
        Duration::from_secs(10),
        |m| {
            m.iter()
                .find(|r| r.topic == "telltale/v1/car-rogue/info")
                .map(|_| ())
        },
    );
    assert!(
        !watch.all().iter().any(|r| r.payload == b"forged"),
        "a device published under another device's id"
    );

    // The cloud sends car-tls a command (garbage, so the agent answers with an error result):
    // car-tls gets it, the rogue does not.
    let cloud = Collector::start_tls(
        tls_port,
        "telltale-cloud",
        "telltale/v1/car-tls/cmd-result",
        &certs.join("ca.crt"),
        &certs.join("telltale-cloud.crt"),
        &certs.join("telltale-cloud.key"),
    );
    cloud.publish("telltale/v1/car-tls/cmd", b"not a command".to_vec());
    let result = cloud.wait_for("car-tls's command result", Duration::from_secs(20), |m| {
        m.iter()
            .find(|r| r.topic == "telltale/v1/car-tls/cmd-result")
            .and_then(|r| v1::CommandResult::decode(r.payload.as_slice()).ok())
    });
    assert!(!result.ok);
    assert_eq!(result.error_code, v1::CommandError::Malformed as i32);
    assert!(
        rogue.all().is_empty(),
        "the rogue read another device's command: {:?}",
        rogue.all()
    );
}
