//! The agent over MQTT 5 with mutual TLS, against Mosquitto configured with the shipped ACL
//! (`deploy/mosquitto/acl`) and certificates from `deploy/mosquitto/make-certs.sh`: the agent
//! publishes under its own id; another device's certificate can neither publish as it nor read
//! its commands.

use std::process::Command;
use std::time::Duration;

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::rig::{make_certs, repo, simulator, status_of};
use telltale_e2e::{Running, free_port, wait_for};
use telltale_wire::v1;

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
    let (_sim, link) = simulator(&sim_dir, "healthy", "1");
    let status_port = free_port();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            r#"
device_id = "car-tls"
link = "{link}"
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

/// A broker that wants a user name and password: the agent gets in with the right ones (from
/// a password file), and with a wrong one it stays out, says why on /status, and keeps its
/// messages in the spool.
#[test]
fn username_and_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let passwd = dir.path().join("passwd");
    let status = Command::new("mosquitto_passwd")
        .args(["-b", "-c"])
        .arg(&passwd)
        .args(["car-pw", "right-horse-battery"])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(status.success());
    let plain = free_port();
    // The anonymous watcher keeps the first listener; the agent uses the second, which needs a
    // password (per_listener_settings is off, so allow_anonymous applies broker-wide: the watcher
    // logs in as a second user instead).
    Command::new("mosquitto_passwd")
        .args(["-b"])
        .arg(&passwd)
        .args(["watcher", "watch-pw"])
        .status()
        .expect("mosquitto_passwd");
    let broker = Broker::start_with(&format!(
        "allow_anonymous false\npassword_file {}\nlistener {plain} 127.0.0.1\n",
        passwd.display()
    ));
    let mut opts = rumqttc::MqttOptions::new("watch-pw", "127.0.0.1", broker.port);
    opts.set_credentials("watcher", "watch-pw");
    let watch = Collector::with_options(opts, "telltale/v1/#");

    let sim_dir = dir.path().join("sim");
    std::fs::create_dir_all(&sim_dir).expect("mkdir");
    let (_sim, link) = simulator(&sim_dir, "healthy", "1");
    let pw_file = dir.path().join("agent-password");
    std::fs::write(&pw_file, "right-horse-battery\n").expect("write password file");
    let run = |name: &str, password_line: &str| {
        let status_port = free_port();
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(
            &config,
            format!(
                "device_id = \"car-pw\"\nlink = \"{link}\"\nstate_dir = \"{}\"\n[mqtt]\n\
                 url = \"mqtt://127.0.0.1:{plain}\"\nusername = \"car-pw\"\n{password_line}\n\
                 reconnect_min = \"100ms\"\n[status]\nlisten = \"127.0.0.1:{status_port}\"\n",
                dir.path().join(format!("state-{name}")).display()
            ),
        )
        .expect("write config");
        let agent = Running::start(
            "telltale-agent",
            &["--config", config.to_str().expect("utf-8")],
        );
        (agent, status_port)
    };

    let (mut wrong, wrong_port) = run("wrong", "password = \"wrong\"");
    let mut last_error = String::new();
    wait_for(
        "the refused agent to say why",
        Duration::from_secs(20),
        || {
            wrong.assert_running();
            let Ok(st) = status_of(wrong_port) else {
                return false;
            };
            last_error = st["mqtt"]["last_error"].as_str().unwrap_or("").to_owned();
            st["mqtt"]["connected"] == false
                && !last_error.is_empty()
                && st["spool"]["messages"].as_u64() > Some(0)
        },
    );
    assert!(
        last_error.to_lowercase().contains("refused"),
        "{last_error}"
    );
    wrong.kill9();

    let (_right, _) = run(
        "right",
        &format!("password_file = \"{}\"", pw_file.display()),
    );
    watch.wait_for(
        "info from the agent with the right password",
        Duration::from_secs(30),
        |m| {
            m.iter()
                .find(|r| r.topic == "telltale/v1/car-pw/info")
                .map(|_| ())
        },
    );
}
