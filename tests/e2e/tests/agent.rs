//! `telltale-agent` end to end: the real agent binary reading `firmware-sim` (another process,
//! over an SLCAN adapter on a pty, so the agent speaks ISO-TP itself) and publishing to a real
//! Mosquitto broker, watched by a subscriber. Broker outages, `kill -9`, a full spool, TLS.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector, Received};
use telltale_e2e::rig::{AgentRig, simulator};
use telltale_e2e::wait_for;
use telltale_wire::v1;

/// The header of any spooled uplink message.
fn header(r: &Received) -> Option<v1::UplinkHeader> {
    let kind = r.topic.rsplit('/').next().unwrap_or("");
    let p = r.payload.as_slice();
    match kind {
        "telemetry" => v1::TelemetryBatch::decode(p).ok()?.header,
        "dtc" => v1::DtcReport::decode(p).ok()?.header,
        "info" => v1::VehicleInfo::decode(p).ok()?.header,
        "cmd-result" => v1::CommandResult::decode(p).ok()?.header,
        _ => None,
    }
}

/// Spooled messages by boot id and seq; panics if two copies of one (boot, seq) differ.
fn by_seq(msgs: &[Received]) -> BTreeMap<(Vec<u8>, u64), Received> {
    let mut out: BTreeMap<(Vec<u8>, u64), Received> = BTreeMap::new();
    for r in msgs {
        let Some(h) = header(r) else { continue };
        let key = (h.boot_id.clone(), h.seq);
        if let Some(prev) = out.get(&key) {
            assert_eq!(prev, r, "two different messages share boot/seq {}", h.seq);
        }
        out.insert(key, r.clone());
    }
    out
}

fn seqs_of_boot(msgs: &[Received], boot: &[u8]) -> BTreeSet<u64> {
    by_seq(msgs)
        .keys()
        .filter(|(b, _)| b == boot)
        .map(|(_, s)| *s)
        .collect()
}

fn boot_hex(boot: &[u8]) -> String {
    boot.iter().map(|b| format!("{b:02x}")).collect()
}

fn boot_of_status(st: &serde_json::Value) -> Vec<u8> {
    let hex = st["boot_id"].as_str().expect("boot_id in /status");
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex boot id"))
        .collect()
}

fn last_seq(st: &serde_json::Value) -> u64 {
    st["last_seq"].as_u64().expect("last_seq in /status")
}

const FAST: &str = r#"
[obd]
batch_max_samples = 20
batch_max_age = "1s"
[dtc]
period = "1s"
"#;

#[test]
fn agent_reports_vehicle_info_telemetry_status_and_a_new_fault() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-fault", "telltale/v1/#");
    // At 400x the catalyst scenario sets P0420 pending after ~0.7 s and stored after ~2 s.
    let (_sim, link) = simulator(dir.path(), "catalyst", "400");
    let rig = AgentRig::new(dir.path(), "car-fault", &link, &broker.url(), FAST);
    let _agent = rig.start();

    let info = watch.wait_for("vehicle info", Duration::from_secs(30), |m| {
        m.iter()
            .find(|r| r.topic == rig.topic("info"))
            .map(|r| v1::VehicleInfo::decode(r.payload.as_slice()).expect("VehicleInfo"))
    });
    assert_eq!(info.vin.len(), 17, "VIN {:?}", info.vin);
    let ecus: Vec<u32> = info.ecus.iter().map(|e| e.can_id).collect();
    assert!(
        ecus.contains(&0x7E8) && ecus.contains(&0x7E9),
        "ECUs {ecus:X?}"
    );
    let engine = info
        .ecus
        .iter()
        .find(|e| e.can_id == 0x7E8)
        .expect("engine ECU");
    assert!(
        engine.supported_pids.contains(&0x0C),
        "engine PIDs {:X?}",
        engine.supported_pids
    );
    assert!(!engine.calibration_ids.is_empty(), "calibration ids");
    assert_eq!(
        info.header.as_ref().map(|h| h.device_id.as_str()),
        Some("car-fault")
    );

    let speed = watch.wait_for("a vehicle speed sample", Duration::from_secs(30), |m| {
        m.iter()
            .filter(|r| r.topic == rig.topic("telemetry"))
            .filter_map(|r| v1::TelemetryBatch::decode(r.payload.as_slice()).ok())
            .flat_map(|b| b.samples)
            .find(|s| s.signal == "Vehicle.Speed")
    });
    assert_eq!(
        (speed.service, speed.pid, speed.ecu_can_id),
        (1, 0x0D, 0x7E8)
    );
    assert!(
        (0.0..=255.0).contains(&speed.value),
        "speed {}",
        speed.value
    );
    assert_eq!(speed.unit, "km/h");
    assert!(
        speed.device_unix_ms > 1_600_000_000_000,
        "device time {}",
        speed.device_unix_ms
    );

    let report = watch.wait_for(
        "a DTC report with P0420 stored",
        Duration::from_secs(60),
        |m| {
            m.iter()
                .filter(|r| r.topic == rig.topic("dtc"))
                .filter_map(|r| v1::DtcReport::decode(r.payload.as_slice()).ok())
                .find(|d| {
                    d.ecus.iter().any(|e| {
                        e.current
                            .iter()
                            .any(|c| c.code == "P0420" && c.kind == v1::DtcKind::Stored as i32)
                    })
                })
        },
    );
    let ecu = report
        .ecus
        .iter()
        .find(|e| e.ecu_can_id == 0x7E8)
        .expect("engine in report");
    assert!(ecu.mil_on, "MIL on with a stored emissions fault: {ecu:?}");
    let ff = ecu
        .freeze_frame
        .as_ref()
        .expect("freeze frame with the report");
    assert_eq!(ff.trigger_code, "P0420");
    assert!(!ff.values.is_empty(), "freeze frame values");
    assert!(report.distance_since_cleared_km.is_some() || report.warmups_since_cleared.is_some());

    // The earlier reports: the start-up picture, then P0420 pending before it was stored.
    let dtcs: Vec<v1::DtcReport> = watch
        .of_kind("dtc")
        .iter()
        .filter_map(|r| v1::DtcReport::decode(r.payload.as_slice()).ok())
        .collect();
    let pending_first = dtcs.iter().position(|d| {
        d.ecus.iter().any(|e| {
            e.current
                .iter()
                .any(|c| c.code == "P0420" && c.kind == v1::DtcKind::Pending as i32)
        })
    });
    let stored_first = dtcs.iter().position(|d| d.header == report.header);
    assert!(
        pending_first < stored_first,
        "pending P0420 reported before stored"
    );

    // The first status goes out at connect, before the car answered; a new one follows when
    // the vehicle side reports it awake.
    let status = watch.wait_for(
        "an online status with the car awake",
        Duration::from_secs(10),
        |m| {
            m.iter()
                .filter(|r| r.topic == rig.topic("status"))
                .filter_map(|r| v1::Status::decode(r.payload.as_slice()).ok())
                .find(|s| s.presence == v1::Presence::Online as i32 && s.vehicle_awake)
        },
    );
    assert_eq!(status.link_state, "up", "{status:?}");
    let st = rig.status();
    assert_eq!(st["mqtt"]["connected"], true, "{st}");
    assert_eq!(st["vehicle"]["awake"], true, "{st}");
    // Status goes out at connect, every status_period (2 s) and when the car wakes or sleeps,
    // not with every request the vehicle side makes.
    let statuses = watch.of_kind("status").len() as u64;
    let bound = 4 + st["uptime_s"].as_u64().unwrap_or(0) / 2;
    assert!(
        statuses <= bound,
        "{statuses} status messages in {}s",
        st["uptime_s"]
    );
}

#[test]
fn broker_outage_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-outage", "telltale/v1/+/+");
    let (_sim, link) = simulator(dir.path(), "healthy", "40");
    let rig = AgentRig::new(dir.path(), "car-outage", &link, &broker.url(), FAST);
    let _agent = rig.start();
    watch.wait_for("first telemetry", Duration::from_secs(30), |m| {
        m.iter()
            .find(|r| r.topic == rig.topic("telemetry"))
            .map(|_| ())
    });

    broker.stop();
    let before = rig.status();
    wait_for("a backlog in the spool", Duration::from_secs(30), || {
        let st = rig.status();
        st["mqtt"]["connected"] == false && st["spool"]["messages"].as_u64().unwrap_or(0) >= 3
    });
    broker.restart();

    let boot = boot_of_status(&before);
    wait_for(
        "the agent to reconnect and drain",
        Duration::from_secs(30),
        || {
            let st = rig.status();
            st["mqtt"]["connected"] == true && st["spool"]["messages"] == 0
        },
    );
    let target = last_seq(&rig.status());
    watch.wait_for(
        &format!("every message 1..={target} of boot {}", boot_hex(&boot)),
        Duration::from_secs(30),
        |m| {
            let got = seqs_of_boot(m, &boot);
            (1..=target).all(|s| got.contains(&s)).then_some(())
        },
    );
}

#[test]
fn kill_9_in_the_middle_of_a_backlog_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-kill", "telltale/v1/+/+");
    let (_sim, link) = simulator(dir.path(), "healthy", "40");
    let rig = AgentRig::new(dir.path(), "car-kill", &link, &broker.url(), FAST);
    let mut first = rig.start();
    watch.wait_for("first telemetry", Duration::from_secs(30), |m| {
        m.iter()
            .find(|r| r.topic == rig.topic("telemetry"))
            .map(|_| ())
    });
    broker.stop();
    wait_for("a backlog in the spool", Duration::from_secs(30), || {
        rig.status()["spool"]["messages"].as_u64().unwrap_or(0) >= 5
    });
    let st = rig.status();
    let boot1 = boot_of_status(&st);
    // Everything up to here was stored (fsync "always") before the status could count it.
    let stored1 = last_seq(&st);
    first.kill9();

    let _second = rig.start();
    let boot2 = boot_of_status(&rig.status());
    assert_ne!(boot1, boot2, "a new boot id after restart");
    broker.restart();

    watch.wait_for(
        &format!("messages 1..={stored1} of the killed agent"),
        Duration::from_secs(60),
        |m| {
            let got = seqs_of_boot(m, &boot1);
            (1..=stored1).all(|s| got.contains(&s)).then_some(())
        },
    );
    wait_for("the new agent to drain", Duration::from_secs(30), || {
        rig.status()["spool"]["messages"] == 0
    });
    let target2 = last_seq(&rig.status());
    watch.wait_for("the new boot's messages", Duration::from_secs(30), |m| {
        let got = seqs_of_boot(m, &boot2);
        (1..=target2).all(|s| got.contains(&s)).then_some(())
    });
    // by_seq has already checked that any duplicate is byte-identical.
    by_seq(&watch.all());
}

#[test]
fn a_full_spool_drops_oldest_telemetry_and_keeps_every_dtc_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-full", "telltale/v1/+/+");
    broker.stop();
    let (_sim, link) = simulator(dir.path(), "catalyst", "400");
    let rig = AgentRig::new(
        dir.path(),
        "car-full",
        &link,
        &broker.url(),
        r#"
[spool]
max_size = "64KiB"
[obd]
batch_max_samples = 1
max_requests_per_second = 50
[dtc]
period = "500ms"
# Six signals ten times a second, one sample a message: the 64 KiB spool fills in seconds.
[[signals]]
pid = 0x0C
period = "100ms"
[[signals]]
pid = 0x0D
period = "100ms"
[[signals]]
pid = 0x05
period = "100ms"
[[signals]]
pid = 0x0F
period = "100ms"
[[signals]]
pid = 0x11
period = "100ms"
[[signals]]
pid = 0x04
period = "100ms"
"#,
    );
    let _agent = rig.start();
    wait_for(
        "the spool to overflow and two DTC reports",
        Duration::from_secs(60),
        || {
            let st = rig.status();
            st["spool"]["dropped"][0].as_u64().unwrap_or(0) > 20
                && st["vehicle"]["dtc_reports_made"].as_u64().unwrap_or(0) >= 2
        },
    );
    let st = rig.status();
    assert_eq!(st["spool"]["dropped"][3], 0, "no DTC report dropped: {st}");
    assert!(
        st["spool"]["bytes"].as_u64().unwrap_or(u64::MAX) <= 64 * 1024,
        "{st}"
    );
    let boot = boot_of_status(&st);
    broker.restart();
    wait_for("the agent to drain", Duration::from_secs(60), || {
        let st = rig.status();
        st["mqtt"]["connected"] == true && st["spool"]["messages"] == 0
    });
    // Everything stored during the outage has seq <= outage_last.
    let after = rig.status();
    let outage_last = last_seq(&after);
    let reports = after["vehicle"]["dtc_reports_made"]
        .as_u64()
        .expect("dtc_reports_made");
    // Telemetry made after the drain arrives after everything published before it (MQTT keeps
    // the order of one publisher's QoS 1 messages on a topic).
    let got = watch.wait_for(
        "the drained backlog and newer telemetry",
        Duration::from_secs(60),
        |m| {
            let dtc = m.iter().filter(|r| r.topic == rig.topic("dtc")).count() as u64;
            let newer = seqs_of_boot(m, &boot).iter().any(|s| *s > outage_last);
            (dtc >= reports && newer).then(|| m.to_vec())
        },
    );
    let all = by_seq(&got);
    let kept: BTreeMap<u64, &Received> = all
        .iter()
        .filter(|((b, s), _)| *b == boot && *s <= outage_last)
        .map(|((_, s), r)| (*s, r))
        .collect();
    let missing: Vec<u64> = (1..=outage_last)
        .filter(|s| !kept.contains_key(s))
        .collect();
    assert!(
        !missing.is_empty(),
        "the spool overflowed, so something was dropped"
    );
    // What is missing is telemetry, and only the oldest: every lost seq precedes every
    // telemetry message that survived.
    let oldest_kept_telemetry = kept
        .iter()
        .filter(|(_, r)| r.topic.ends_with("/telemetry"))
        .map(|(s, _)| *s)
        .min()
        .expect("some telemetry kept");
    let newest_missing = missing.iter().max().copied().unwrap_or(0);
    assert!(
        newest_missing < oldest_kept_telemetry,
        "dropped seqs {missing:?} should all precede the oldest kept telemetry {oldest_kept_telemetry}"
    );
    let dtc_kept = kept.values().filter(|r| r.topic.ends_with("/dtc")).count() as u64;
    assert!(
        dtc_kept >= 2,
        "the DTC reports made during the outage were kept"
    );
    let status = got
        .iter()
        .filter(|r| r.topic == rig.topic("status"))
        .filter_map(|r| v1::Status::decode(r.payload.as_slice()).ok())
        .next_back()
        .expect("a status message");
    assert!(
        status.dropped_telemetry > 0,
        "status counts the drops: {status:?}"
    );
    assert_eq!(status.dropped_dtc_reports, 0);
}

/// `telltale command send` to a running agent: signed commands run, an unsigned one and one
/// signed with an unknown key get BAD_SIGNATURE results.
#[test]
fn signed_commands_run_and_unsigned_ones_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-cmd", "telltale/v1/+/cmd-result");
    let (_sim, link) = simulator(dir.path(), "catalyst", "400");
    let secret = dir.path().join("cloud.key");
    let secret_s = secret.to_str().expect("utf-8").to_owned();
    let keygen = telltale_e2e::telltale(&["command", "keygen", "--secret", &secret_s]);
    assert!(
        keygen.status.success(),
        "{}",
        String::from_utf8_lossy(&keygen.stderr)
    );
    let public = String::from_utf8_lossy(&keygen.stdout).trim().to_owned();
    let rig = AgentRig::new(
        dir.path(),
        "car-cmd",
        &link,
        &broker.url(),
        &format!(
            "{FAST}[commands]\ntrusted_keys = [{{ id = \"cloud\", public_key = \"{public}\" }}]\n"
        ),
    );
    let _agent = rig.start();
    wait_for(
        "the agent to connect and wake",
        Duration::from_secs(30),
        || {
            let st = rig.status();
            st["mqtt"]["connected"] == true && st["vehicle"]["awake"] == true
        },
    );
    let url = broker.url();
    let send = |secret: &str, action: &[&str]| {
        let mut args = vec![
            "command", "send", "--mqtt", &url, "--device", "car-cmd", "--secret", secret,
            "--key-id", "cloud", "--wait", "20s",
        ];
        args.extend_from_slice(action);
        let out = telltale_e2e::telltale(&args);
        let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        (out.status.code(), doc)
    };

    let (code, doc) = send(&secret_s, &["read-pids", "0C,0D"]);
    assert_eq!(code, Some(0), "{doc}");
    let signals: Vec<&str> = doc["samples"]
        .as_array()
        .expect("samples")
        .iter()
        .filter_map(|s| s["signal"].as_str())
        .collect();
    assert!(signals.contains(&"Vehicle.Speed"), "{doc}");
    assert!(
        signals.contains(&"Vehicle.Powertrain.CombustionEngine.Speed"),
        "{doc}"
    );

    let (code, doc) = send(&secret_s, &["read-dtcs"]);
    assert_eq!(code, Some(0), "{doc}");
    assert!(
        doc["dtcs"]["ecus"]
            .as_array()
            .is_some_and(|e| !e.is_empty()),
        "{doc}"
    );

    // A key the agent does not trust: exit 2, BAD_SIGNATURE.
    let other = dir.path().join("other.key");
    let other_s = other.to_str().expect("utf-8").to_owned();
    assert!(
        telltale_e2e::telltale(&["command", "keygen", "--secret", &other_s])
            .status
            .success()
    );
    let (code, doc) = send(&other_s, &["read-dtcs"]);
    assert_eq!(code, Some(2), "{doc}");
    assert_eq!(doc["error_code"], "BAD_SIGNATURE", "{doc}");

    // No signature at all, published by hand.
    let command = v1::Command {
        command_id: "unsigned-1".into(),
        device_id: "car-cmd".into(),
        issued_unix_ms: 0,
        expires_unix_ms: i64::MAX,
        action: Some(v1::command::Action::ClearDtcs(v1::ClearDtcs {})),
    };
    let signed = v1::SignedCommand {
        command: command.encode_to_vec(),
        signature: Vec::new(),
        key_id: "cloud".into(),
    };
    watch.publish(&rig.topic("cmd"), signed.encode_to_vec());
    let result = watch.wait_for(
        "the unsigned command's result",
        Duration::from_secs(20),
        |m| {
            m.iter()
                .filter_map(|r| v1::CommandResult::decode(r.payload.as_slice()).ok())
                .find(|r| r.command_id == "unsigned-1")
        },
    );
    assert!(!result.ok);
    assert_eq!(
        result.error_code,
        v1::CommandError::BadSignature as i32,
        "{result:?}"
    );
    assert_eq!(rig.status()["mqtt"]["commands_received"], 4);
}
