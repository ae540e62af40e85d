//! `telltale command` run as an operator runs it. The `send` tests need the Mosquitto broker at
//! 127.0.0.1:1883 (running on every development and CI machine, see ARCHITECTURE.md); a small
//! responder stands in for the agent (the agent's own handler is tested in telltale-agent).

use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use prost::Message as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::Value;
use telltale_wire::signing::{self, Policy, TrustedKey};
use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;
use tokio::sync::oneshot;

const BROKER: &str = "mqtt://127.0.0.1:1883";

/// A fresh directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("command-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        panic!("{}: {e}", dir.display());
    }
    dir
}

/// A device id no other test (or earlier run) uses.
fn device(name: &str) -> String {
    format!("cli-test-{}-{name}", std::process::id())
}

fn telltale(args: &[&str]) -> Output {
    let mut cmd = match Command::cargo_bin("telltale") {
        Ok(c) => c,
        Err(e) => panic!("binary: {e}"),
    };
    match cmd.arg("command").args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("run telltale: {e}"),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Makes a key in `dir` and returns (secret file, public key text).
fn keygen(dir: &std::path::Path) -> (PathBuf, String) {
    let secret = dir.join("ops.key");
    let out = telltale(&["keygen", "--secret", &secret.to_string_lossy()]);
    assert!(out.status.success(), "keygen: {}", text(&out.stderr));
    (secret, text(&out.stdout).trim().to_owned())
}

#[test]
fn keygen_writes_a_private_secret_and_never_overwrites_it() {
    let dir = scratch("keygen");
    let (secret, public) = keygen(&dir);
    let Ok(meta) = std::fs::metadata(&secret) else {
        panic!("no secret file");
    };
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let Ok(key_text) = std::fs::read_to_string(&secret) else {
        panic!("unreadable secret file");
    };
    let Ok(key) = signing::parse_signing_key(&key_text) else {
        panic!("secret file is not a key: {key_text:?}");
    };
    assert_eq!(signing::encode_verifying_key(&key.verifying_key()), public);

    let out = telltale(&["public-key", "--secret", &secret.to_string_lossy()]);
    assert!(out.status.success());
    assert_eq!(text(&out.stdout).trim(), public);

    let again = telltale(&["keygen", "--secret", &secret.to_string_lossy()]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text(&again.stderr).contains("refusing to overwrite"),
        "{}",
        text(&again.stderr)
    );
    assert!(again.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&secret).ok(), Some(key_text));
}

#[test]
fn send_without_an_agent_times_out_and_says_what_to_check() {
    let dir = scratch("timeout");
    let (secret, _) = keygen(&dir);
    let device = device("nobody");
    let out = telltale(&[
        "send",
        "--mqtt",
        BROKER,
        "--device",
        &device,
        "--secret",
        &secret.to_string_lossy(),
        "--key-id",
        "ops",
        "--wait",
        "1s",
        "read-dtcs",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(stderr.contains("no result for command"), "{stderr}");
    assert!(stderr.contains(&device), "{stderr}");
    assert!(stderr.contains("agent is running"), "{stderr}");
    assert!(stderr.contains("\"ops\""), "names the key id: {stderr}");
}

#[test]
fn send_to_a_broker_that_is_not_there_says_so() {
    let dir = scratch("nobroker");
    let (secret, _) = keygen(&dir);
    // Port 1 on loopback: nothing listens, the connection is refused at once.
    let out = telltale(&[
        "send",
        "--mqtt",
        "mqtt://127.0.0.1:1",
        "--device",
        &device("x"),
        "--secret",
        &secret.to_string_lossy(),
        "--wait",
        "5s",
        "read-dtcs",
    ]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot reach the MQTT broker at 127.0.0.1:1"),
        "{stderr}"
    );
}

#[test]
fn bad_arguments_are_refused_before_anything_is_sent() {
    let dir = scratch("badargs");
    let (secret, _) = keygen(&dir);
    let secret = secret.to_string_lossy().into_owned();
    for (args, needle) in [
        (vec!["--mqtt", "tcp://h:1"], "mqtt://HOST"),
        (vec!["--mqtt", BROKER, "--ttl", "soon"], "not a duration"),
    ] {
        let mut all = vec!["send", "--device", "d1", "--secret", &secret];
        all.extend(args);
        all.push("read-dtcs");
        let out = telltale(&all);
        assert_ne!(out.status.code(), Some(0));
        assert!(text(&out.stderr).contains(needle), "{}", text(&out.stderr));
    }
    let out = telltale(&[
        "send",
        "--mqtt",
        BROKER,
        "--device",
        "d1",
        "--secret",
        &secret,
        "read-pids",
        "1FF",
    ]);
    assert!(
        text(&out.stderr).contains("not a PID"),
        "{}",
        text(&out.stderr)
    );
}

/// Stands in for an agent: verifies the one command it receives on the device's `cmd` topic
/// with `public_key`, publishes `answers(command)` on `cmd-result`, and returns the command.
/// `ready` fires once its subscription is in place.
async fn responder(
    device: String,
    public_key: String,
    answers: impl Fn(&v1::Command) -> Vec<v1::CommandResult>,
    ready: oneshot::Sender<()>,
) -> Result<v1::Command, String> {
    let key = signing::parse_verifying_key(&public_key).map_err(|e| e.to_string())?;
    let policy = Policy {
        device_id: device.clone(),
        trusted_keys: vec![TrustedKey {
            id: "ops".into(),
            key,
        }],
        max_ttl: Duration::from_secs(300),
        max_clock_skew: Duration::from_secs(30),
    };
    let options = MqttOptions::new(format!("{device}-agent"), "127.0.0.1", 1883);
    let (client, mut events) = AsyncClient::new(options, 10);
    let cmd_topic = topic::topic(&device, Kind::Cmd);
    client
        .subscribe(cmd_topic.clone(), QoS::AtLeastOnce)
        .await
        .map_err(|e| e.to_string())?;
    let mut ready = Some(ready);
    let mut command = None;
    let mut unacked = 0usize;
    loop {
        let event = events
            .poll()
            .await
            .map_err(|e| format!("responder mqtt: {e}"))?;
        match event {
            Event::Incoming(Packet::SubAck(_)) => {
                if let Some(r) = ready.take() {
                    let _ = r.send(());
                }
            }
            Event::Incoming(Packet::Publish(p)) if p.topic == cmd_topic && command.is_none() => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_err(|e| e.to_string())?
                    .as_millis() as i64;
                let c = signing::verify(&p.payload, now, &policy)
                    .map_err(|r| format!("responder refused: {r}"))?;
                let results = answers(&c);
                unacked = results.len();
                for r in results {
                    client
                        .publish(
                            topic::topic(&device, Kind::CmdResult),
                            QoS::AtLeastOnce,
                            false,
                            r.encode_to_vec(),
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                }
                command = Some(c);
            }
            Event::Incoming(Packet::PubAck(_)) if command.is_some() => {
                unacked = unacked.saturating_sub(1);
                if unacked == 0 {
                    break;
                }
            }
            _ => {}
        }
    }
    let _ = client.disconnect().await;
    command.ok_or_else(|| "no command".to_string())
}

/// Runs `telltale command send` against a responder; returns the CLI's output and the
/// command the responder received.
async fn round_trip(
    name: &str,
    action: &[&str],
    answers: impl Fn(&v1::Command) -> Vec<v1::CommandResult> + Send + 'static,
) -> (Output, v1::Command) {
    let dir = scratch(name);
    let (secret, public) = keygen(&dir);
    let device = device(name);
    let (ready_tx, ready_rx) = oneshot::channel();
    let agent = tokio::spawn(responder(device.clone(), public, answers, ready_tx));
    let Ok(()) = ready_rx.await else {
        panic!("responder did not subscribe: {:?}", agent.await);
    };
    let mut args: Vec<String> = [
        "send",
        "--mqtt",
        BROKER,
        "--device",
        &device,
        "--secret",
        &secret.to_string_lossy(),
        "--key-id",
        "ops",
        "--wait",
        "20s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(action.iter().map(|s| s.to_string()));
    let cli = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        telltale(&args)
    });
    let Ok(out) = cli.await else {
        panic!("cli task failed");
    };
    let command = match agent.await {
        Ok(Ok(c)) => c,
        other => panic!("responder: {other:?}; cli stderr: {}", text(&out.stderr)),
    };
    (out, command)
}

fn json(out: &Output) -> Value {
    match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => panic!("stdout is not JSON ({e}): {}", text(&out.stdout)),
    }
}

#[tokio::test]
async fn a_result_comes_back_as_json_with_exit_status_0() {
    let (out, command) = round_trip("ok", &["read-pids", "0C,0D"], |c| {
        vec![
            // Another command's result on the same topic is not ours.
            v1::CommandResult {
                command_id: "someone-else".into(),
                ok: false,
                error: "not yours".into(),
                ..Default::default()
            },
            v1::CommandResult {
                command_id: c.command_id.clone(),
                ok: true,
                samples: vec![v1::Sample {
                    signal: "Vehicle.Speed".into(),
                    value: 42.0,
                    pid: 0x0D,
                    ecu_can_id: 0x7E8,
                    unit: "km/h".into(),
                    ..Default::default()
                }],
                ..Default::default()
            },
        ]
    })
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        command.action,
        Some(v1::command::Action::ReadPids(v1::ReadPids {
            pids: vec![0x0C, 0x0D]
        }))
    );
    assert_eq!(command.command_id.len(), 32, "16 random bytes in hex");
    assert!(
        command.expires_unix_ms - command.issued_unix_ms == 60_000,
        "default ttl 60s"
    );
    let v = json(&out);
    assert_eq!(v["command_id"], command.command_id.as_str());
    assert_eq!(v["ok"], true);
    assert_eq!(v["error_code"], Value::Null);
    assert_eq!(v["samples"][0]["signal"], "Vehicle.Speed");
    assert_eq!(v["samples"][0]["value"], 42.0);
    assert_eq!(v["samples"][0]["ecu"], "7E8");
}

#[tokio::test]
async fn a_refusal_is_printed_with_exit_status_2() {
    let (out, command) = round_trip("refused", &["--ttl", "2m", "clear-dtcs"], |c| {
        vec![v1::CommandResult {
            command_id: c.command_id.clone(),
            ok: false,
            error: "vehicle speed is 37 km/h".into(),
            error_code: v1::CommandError::VehicleMoving as i32,
            ..Default::default()
        }]
    })
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert_eq!(
        command.action,
        Some(v1::command::Action::ClearDtcs(v1::ClearDtcs {}))
    );
    assert_eq!(command.expires_unix_ms - command.issued_unix_ms, 120_000);
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["error_code"], "VEHICLE_MOVING");
    assert_eq!(v["error"], "vehicle speed is 37 km/h");
}
