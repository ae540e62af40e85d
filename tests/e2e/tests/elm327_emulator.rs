//! Telltale against an ELM327 emulator written by others: the PyPI `ELM327-emulator` (Ircama,
//! pinned by `scripts/python-env`), as a new user would try a cheap Wi-Fi dongle. Its default
//! `car` scenario (a Toyota on 11-bit CAN) with stored, pending and permanent codes set through
//! the lists its `obd_message` module documents (`tests/e2e/python/elm327_emulator.py`).
//!
//! It answers the DTC services without the count byte (`43 04 20 01 43 ...`), multi-frame when
//! more than three codes are stored, which the agent once threw away whole on every poll.

use std::collections::BTreeSet;
use std::time::Duration;

use prost::Message;
use telltale_e2e::mqtt::{Broker, Collector};
use telltale_e2e::python::{Python, Script};
use telltale_e2e::rig::AgentRig;
use telltale_e2e::{free_port, telltale_json};
use telltale_wire::v1;

/// The VIN of the emulator's `car` scenario.
const VIN: &str = "WP0ZZZ99ZTS390000";
const STORED: [&str; 4] = ["P0420", "P0143", "P0300", "P0171"];
const PENDING: [&str; 2] = ["P0301", "P0455"];
const PERMANENT: [&str; 1] = ["P0420"];

/// SAE J2012 text to the emulator's four hex digits (`P0420` is `0420`, `C0300` is `4300`).
fn raw(code: &str) -> String {
    let letter = match code.as_bytes().first() {
        Some(b'P') => 0,
        Some(b'C') => 4,
        Some(b'B') => 8,
        _ => 0xC,
    };
    let first = u8::from_str_radix(&code[1..2], 16).expect("a digit") + letter;
    format!("{first:X}{}", &code[2..])
}

fn list(codes: &[&str]) -> String {
    codes.iter().map(|c| raw(c)).collect::<Vec<_>>().join(",")
}

/// The emulator on a free port, listening.
fn emulator(python: &Python) -> (Script, String) {
    let port = free_port().to_string();
    let mut emulator = python.start(
        "elm327_emulator.py",
        &[&port, &list(&STORED), &list(&PENDING), &list(&PERMANENT)],
    );
    emulator.wait_for_line("listening", Duration::from_secs(30));
    (emulator, format!("elm327+tcp:127.0.0.1:{port}"))
}

fn set(codes: &[&str]) -> BTreeSet<String> {
    codes.iter().map(|c| (*c).to_owned()).collect()
}

fn json_set(value: &serde_json::Value) -> BTreeSet<String> {
    value
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {value}"))
        .iter()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

#[test]
fn telltale_scan_reads_every_code_the_vin_and_live_data() {
    let python = Python::with_stubs();
    let (_emulator, link) = emulator(&python);

    let dtcs = telltale_json(&["scan", "--link", &link, "--json", "dtcs"]);
    let ecus = dtcs["ecus"].as_array().expect("ECUs");
    assert_eq!(ecus.len(), 1, "{dtcs}");
    assert_eq!(ecus[0]["ecu"], "7E8");
    assert_eq!(json_set(&ecus[0]["stored"]), set(&STORED), "{dtcs}");
    assert_eq!(json_set(&ecus[0]["pending"]), set(&PENDING), "{dtcs}");
    assert_eq!(json_set(&ecus[0]["permanent"]), set(&PERMANENT), "{dtcs}");

    let info = telltale_json(&["scan", "--link", &link, "--json", "info"]);
    assert_eq!(info["vin"], VIN, "{info}");

    // Every PID it says it supports, read six to a request; none is lost to a damaged one.
    let pids = telltale_json(&["scan", "--link", &link, "--json", "pids"]);
    let values = pids["ecus"][0]["values"].as_array().expect("values");
    let read: BTreeSet<u64> = values.iter().filter_map(|v| v["pid"].as_u64()).collect();
    for pid in [0x04, 0x05, 0x0C, 0x0D, 0x0F, 0x11] {
        assert!(read.contains(&pid), "PID {pid:02X} missing from {pids}");
    }
    let dtc_count = values
        .iter()
        .find(|v| v["key"] == "dtc_count")
        .and_then(|v| v["value"].as_f64());
    assert_eq!(dtc_count, Some(STORED.len() as f64), "{pids}");
}

#[test]
fn the_agent_reports_every_stored_and_pending_code() {
    let python = Python::with_stubs();
    let (_emulator, link) = emulator(&python);
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = Broker::start();
    let watch = Collector::start(broker.port, "watch-emulator", "telltale/v1/#");
    let rig = AgentRig::new(
        dir.path(),
        "emulated",
        &link,
        &broker.url(),
        "[obd]\nbatch_max_samples = 10\nbatch_max_age = \"1s\"\n[dtc]\nperiod = \"1s\"\n",
    );
    let _agent = rig.start();
    let report = watch.wait_for("a DTC report", Duration::from_secs(60), |msgs| {
        msgs.iter()
            .filter(|r| r.topic == rig.topic("dtc"))
            .find_map(|r| v1::DtcReport::decode(r.payload.as_slice()).ok())
    });
    assert_eq!(report.vin, VIN);
    assert_eq!(report.ecus.len(), 1, "{report:?}");
    let engine = &report.ecus[0];
    assert_eq!(engine.ecu_can_id, 0x7E8);
    let of = |kind: v1::DtcKind| -> BTreeSet<String> {
        engine
            .current
            .iter()
            .filter(|d| d.kind == kind as i32)
            .map(|d| d.code.clone())
            .collect()
    };
    assert_eq!(of(v1::DtcKind::Stored), set(&STORED), "{report:?}");
    assert_eq!(of(v1::DtcKind::Pending), set(&PENDING), "{report:?}");
    assert_eq!(of(v1::DtcKind::Permanent), set(&PERMANENT), "{report:?}");
    assert!(engine.mil_on, "{report:?}");

    // Live data flows. The emulator's answer to the agent's request for speed, rpm, load,
    // throttle and air flow (01 0D 0C 04 11 10) carries a stray `41 04 00` after the load;
    // every PID of it still arrives, and the stray bytes are counted as a damaged part.
    let wanted = [0x0D, 0x0C, 0x04, 0x11, 0x10];
    let pids = watch.wait_for(
        "samples of speed, rpm, load, throttle and air flow",
        Duration::from_secs(30),
        |msgs| {
            let seen: BTreeSet<u32> = msgs
                .iter()
                .filter(|r| r.topic == rig.topic("telemetry"))
                .filter_map(|r| v1::TelemetryBatch::decode(r.payload.as_slice()).ok())
                .flat_map(|b| b.samples)
                .filter(|s| s.ecu_can_id == 0x7E8)
                .map(|s| s.pid)
                .collect();
            wanted.iter().all(|p| seen.contains(p)).then_some(seen)
        },
    );
    assert!(pids.contains(&0x05), "coolant too: {pids:02X?}");
    let status = rig.status();
    assert_eq!(status["vehicle"]["vin"], VIN, "{status}");
    assert_eq!(
        status["vehicle"]["bus"], "ISO 15765-4 CAN 11-bit",
        "{status}"
    );
    let unusable = status["vehicle"]["unusable_answers"]
        .as_object()
        .expect("counts");
    assert!(
        unusable.keys().all(|k| k == "damaged_pid"),
        "only the stray bytes: {status}"
    );
}

#[test]
fn codes_are_written_as_the_emulator_expects() {
    assert_eq!(raw("P0420"), "0420");
    assert_eq!(raw("C0300"), "4300");
    assert_eq!(raw("U0100"), "C100");
    assert_eq!(raw("P2135"), "2135");
}
