//! Cars older than CAN OBD, end to end: `firmware-sim` serves a car on SAE J1850 PWM and VPW,
//! ISO 9141-2 and ISO 14230-4 KWP2000 (5-baud and fast init) behind its ELM327 emulation (TCP,
//! as a Wi-Fi dongle), the real `telltale-agent` reads it through the adapter's automatic
//! protocol search and publishes to a real Mosquitto. Every stored and pending code the car
//! holds comes out exactly, per ECU by source address (four on the engine, which takes two
//! messages on these buses), with the bus named in the info message.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::rig::{AgentRig, elm327_dongle};
use telltale_e2e::{Running, telltale_json, wait_for};
use telltale_wire::v1;

/// Four engine codes (two messages of three slots on these buses) and one transmission code,
/// all set in the first drive at 400x. (A catalyst fault would not do: its monitor waits while
/// the engine misfires, as real ones do.)
const SCENARIO: &str = r#"
name = "older-bus"
description = "a 1999 car on a pre-CAN bus with four engine codes and one transmission code"

[vehicle]
vin = "1HGCG5656XA012345"
make = "Honda"
model = "Accord"
year = 1999

[drive]
displacement_l = 2.3
odometer_km = 248_210

[[fault]]
kind = "misfire"
ecu = "engine"
dtcs = ["P0301", "P0302"]
start_s = 0

[[fault]]
kind = "thermostat"
ecu = "engine"
dtcs = ["P0128"]
start_s = 0

[[fault]]
kind = "evap_leak"
ecu = "engine"
dtcs = ["P0442"]
start_s = 0

[[fault]]
kind = "lost_comm"
ecu = "transmission"
dtcs = ["U0100"]
start_s = 0
"#;

const ENGINE: u32 = 0x10;
const TRANSMISSION: u32 = 0x18;
const ENGINE_CODES: [&str; 4] = ["P0128", "P0301", "P0302", "P0442"];

const FAST: &str = r#"
[obd]
batch_max_samples = 10
batch_max_age = "1s"
[dtc]
period = "1s"
"#;

/// The simulator as an ELM327 Wi-Fi dongle plugged into a car on `protocol`.
fn dongle(dir: &Path, protocol: &str) -> (Running, String) {
    let scenario = dir.join("older-bus.toml");
    std::fs::write(&scenario, SCENARIO).expect("write the scenario");
    let scenario = scenario.to_str().expect("a UTF-8 path");
    elm327_dongle(&[
        "--protocol",
        protocol,
        "--scenario",
        scenario,
        "--time-scale",
        "400",
    ])
}

fn codes(ecu: &v1::EcuDtcs, kind: v1::DtcKind) -> BTreeSet<String> {
    ecu.current
        .iter()
        .filter(|d| d.kind == kind as i32)
        .map(|d| d.code.clone())
        .collect()
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

/// The agent reads the car on `protocol` (the `--protocol` name) and reports `bus`.
fn agent_reads_every_code(protocol: &str, bus: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let device = format!("old-{protocol}");
    let watch = Collector::start(broker.port, &format!("watch-{protocol}"), "telltale/v1/#");
    let (_sim, link) = dongle(dir.path(), protocol);

    // What the car holds once the first drive set every code, read through the same dongle by
    // `telltale scan` (the emulator serves one host at a time, so before the agent connects).
    let mut scan = serde_json::Value::Null;
    wait_for("every code to be stored", Duration::from_secs(60), || {
        scan = telltale_json(&["scan", "--link", &link, "--json", "dtcs"]);
        let engine = scan["ecus"]
            .as_array()
            .and_then(|e| e.iter().find(|e| e["ecu"] == "10"))
            .unwrap_or_else(|| panic!("no engine (10) in {scan}"));
        engine["stored"] == serde_json::json!(ENGINE_CODES)
    });
    let engine = scan["ecus"]
        .as_array()
        .and_then(|e| e.iter().find(|e| e["ecu"] == "10"))
        .unwrap_or_else(|| panic!("no engine (10) in {scan}"));
    assert_eq!(engine["pending"], serde_json::json!(ENGINE_CODES), "{scan}");

    let rig = AgentRig::new(dir.path(), &device, &link, &broker.url(), FAST);
    let _agent = rig.start();
    let report = watch.wait_for(
        &format!("a DTC report from the {protocol} car"),
        Duration::from_secs(60),
        |msgs| {
            msgs.iter()
                .filter(|r| r.topic == rig.topic("dtc"))
                .filter_map(|r| v1::DtcReport::decode(r.payload.as_slice()).ok())
                .find(|r| r.ecus.iter().any(|e| e.ecu_can_id == TRANSMISSION))
        },
    );
    let engine = report
        .ecus
        .iter()
        .find(|e| e.ecu_can_id == ENGINE)
        .unwrap_or_else(|| panic!("no engine in {report:?}"));
    assert_eq!(
        codes(engine, v1::DtcKind::Stored),
        set(&ENGINE_CODES),
        "{report:?}"
    );
    assert_eq!(
        codes(engine, v1::DtcKind::Pending),
        set(&ENGINE_CODES),
        "{report:?}"
    );
    assert!(engine.mil_on, "MIL: {report:?}");
    let transmission = report
        .ecus
        .iter()
        .find(|e| e.ecu_can_id == TRANSMISSION)
        .expect("the transmission");
    assert_eq!(codes(transmission, v1::DtcKind::Stored), set(&["U0100"]));
    assert_eq!(codes(transmission, v1::DtcKind::Pending), set(&["U0100"]));
    // These buses know no UDS; nothing else was read.
    for e in &report.ecus {
        assert!(
            e.current.iter().all(|d| d.kind != v1::DtcKind::Uds as i32),
            "{report:?}"
        );
    }

    let info = watch
        .of_kind("info")
        .iter()
        .find_map(|r| v1::VehicleInfo::decode(r.payload.as_slice()).ok())
        .expect("an info message");
    assert_eq!(info.vin, "1HGCG5656XA012345");
    assert_eq!(info.bus, bus);
    let ecus: Vec<u32> = info.ecus.iter().map(|e| e.can_id).collect();
    assert!(ecus.starts_with(&[ENGINE, TRANSMISSION]), "{ecus:02X?}");

    // Live data, one PID per request, from the engine by its source address.
    let speed = watch.wait_for("a speed sample", Duration::from_secs(30), |msgs| {
        msgs.iter()
            .filter(|r| r.topic == rig.topic("telemetry"))
            .filter_map(|r| v1::TelemetryBatch::decode(r.payload.as_slice()).ok())
            .flat_map(|b| b.samples)
            .find(|s| s.pid == 0x0D)
    });
    assert_eq!(speed.ecu_can_id, ENGINE);
    let status = rig.status();
    assert_eq!(status["vehicle"]["bus"], bus, "{status}");
    assert_eq!(
        status["vehicle"]["unusable_answers"],
        serde_json::json!({}),
        "{status}"
    );
}

#[test]
fn sae_j1850_pwm() {
    agent_reads_every_code("j1850-pwm", "SAE J1850 PWM");
}

#[test]
fn sae_j1850_vpw() {
    agent_reads_every_code("j1850-vpw", "SAE J1850 VPW");
}

#[test]
fn iso_9141_2() {
    agent_reads_every_code("iso9141", "ISO 9141-2");
}

#[test]
fn iso_14230_4_kwp_5_baud_init() {
    agent_reads_every_code("kwp-5baud", "ISO 14230-4 (KWP 5BAUD)");
}

#[test]
fn iso_14230_4_kwp_fast_init() {
    agent_reads_every_code("kwp-fast", "ISO 14230-4 (KWP FAST)");
}
