//! `telltale scan` against `firmware-sim` in another process, over the links a person would
//! plug in: an ELM327 Wi-Fi dongle (TCP) and an SLCAN USB adapter (a pseudo-terminal).

use std::time::Duration;

use serde_json::Value;
use telltale_e2e::rig::{elm327_dongle, elm327_usb};
use telltale_e2e::{Running, free_port, telltale, telltale_json, wait_for};

/// North American VIN check digit (49 CFR 565), computed independently of the crate under
/// test so a wrong VIN cannot pass by agreeing with itself.
fn vin_check_digit_ok(vin: &str) -> bool {
    const WEIGHTS: [u32; 17] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];
    let value = |c: char| match c {
        '0'..='9' => c.to_digit(10),
        'A' | 'J' => Some(1),
        'B' | 'K' | 'S' => Some(2),
        'C' | 'L' | 'T' => Some(3),
        'D' | 'M' | 'U' => Some(4),
        'E' | 'N' | 'V' => Some(5),
        'F' | 'W' => Some(6),
        'G' | 'P' | 'X' => Some(7),
        'H' | 'Y' => Some(8),
        'R' | 'Z' => Some(9),
        _ => None,
    };
    let chars: Vec<char> = vin.chars().collect();
    if chars.len() != 17 {
        return false;
    }
    let Some(sum) = chars
        .iter()
        .zip(WEIGHTS)
        .map(|(&c, w)| value(c).map(|v| v * w))
        .sum::<Option<u32>>()
    else {
        return false;
    };
    let expected = match sum % 11 {
        10 => 'X',
        d => char::from_digit(d, 10).unwrap_or('?'),
    };
    chars[8] == expected
}

fn engine(doc: &Value) -> &Value {
    doc["ecus"]
        .as_array()
        .and_then(|ecus| ecus.iter().find(|e| e["ecu"] == "7E8"))
        .unwrap_or_else(|| panic!("no engine ECU 7E8 in {doc}"))
}

fn reading(ecu: &Value, key: &str) -> f64 {
    ecu["values"]
        .as_array()
        .and_then(|v| v.iter().find(|r| r["key"] == key))
        .and_then(|r| r["value"].as_f64())
        .unwrap_or_else(|| panic!("no numeric {key} in {ecu}"))
}

#[test]
fn elm327_wifi_dongle_reads_vin_live_data_and_a_new_fault() {
    // At 400x a catalyst scenario sets P0420 within seconds (firmware-sim/README.md).
    let (_sim, link) = elm327_dongle(&["--scenario", "catalyst", "--time-scale", "400"]);

    let info = telltale_json(&["scan", "--link", &link, "--json", "info"]);
    let vin = info["vin"]
        .as_str()
        .unwrap_or_else(|| panic!("no VIN in {info}"));
    assert!(vin_check_digit_ok(vin), "VIN {vin} fails its check digit");
    let ecus: Vec<&str> = info["ecus"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ecu"].as_str())
        .collect();
    assert_eq!(ecus, ["7E8", "7E9"], "{info}");

    let pids = telltale_json(&["scan", "--link", &link, "--json", "pids", "0C", "0D", "05"]);
    let rpm = reading(engine(&pids), "engine_speed");
    let coolant = reading(engine(&pids), "coolant_temperature");
    assert!((500.0..7000.0).contains(&rpm), "engine speed {rpm} rpm");
    assert!((-40.0..130.0).contains(&coolant), "coolant {coolant} °C");

    let mut stored = Vec::new();
    wait_for("P0420 to be stored", Duration::from_secs(60), || {
        let dtcs = telltale_json(&["scan", "--link", &link, "--json", "dtcs"]);
        stored = engine(&dtcs)["stored"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        stored.iter().any(|c| c == "P0420")
    });
    let freeze = telltale_json(&["scan", "--link", &link, "--json", "freeze"]);
    assert_eq!(engine(&freeze)["dtc"], "P0420", "{freeze}");
}

#[test]
fn slcan_usb_adapter_on_a_pty_reads_live_data() {
    let dir = tempfile::tempdir().unwrap();
    let link_path = dir.path().join("canable");
    let path = link_path.to_str().unwrap().to_owned();
    let mut sim = Running::start(
        "firmware-sim",
        &["slcan", "--pty-link", &path, "--scenario", "healthy"],
    );
    wait_for("the SLCAN pty", Duration::from_secs(20), || {
        sim.assert_running();
        link_path.exists()
    });
    let link = format!("slcan:{path}");
    let pids = telltale_json(&["scan", "--link", &link, "--json", "pids", "0C", "0D"]);
    let rpm = reading(engine(&pids), "engine_speed");
    assert!((500.0..7000.0).contains(&rpm), "engine speed {rpm} rpm");
    let dtcs = telltale_json(&["scan", "--link", &link, "--json", "dtcs"]);
    assert_eq!(
        engine(&dtcs)["stored"],
        serde_json::json!([]),
        "a healthy car: {dtcs}"
    );
    // The adapter survives a second session on the same port.
    let again = telltale_json(&["scan", "--link", &link, "--json", "info"]);
    assert!(again["vin"].is_string(), "{again}");
}

/// The simulator as a USB ELM327 on a pty, with a clone's `quirks` (`--quirk` values).
fn usb_elm327(dir: &std::path::Path, quirks: &[&str]) -> (Running, String) {
    let mut args = vec!["--scenario", "misfire"];
    for q in quirks {
        args.extend(["--quirk", q]);
    }
    elm327_usb(dir, &args)
}

#[test]
fn a_usb_elm327_is_raised_to_a_faster_rate_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let (sim, path) = usb_elm327(dir.path(), &[]);
    // Power-up 38400 baud, then AT BRD to 115200 (divisor 23: 114285 baud).
    let link = format!("elm327:{path}@38400:115200");
    let info = telltale_json(&["scan", "--link", &link, "--json", "info"]);
    assert!(
        info["vin"].as_str().is_some_and(vin_check_digit_ok),
        "{info}"
    );
    let pids = telltale_json(&["scan", "--link", &link, "--json", "pids", "0C", "0D"]);
    let rpm = reading(engine(&pids), "engine_speed");
    assert!((500.0..7000.0).contains(&rpm), "engine speed {rpm} rpm");
    let log = sim.log();
    assert!(log.contains("the host confirmed the new rate"), "{log}");
}

#[test]
fn a_clone_with_every_quirk_is_read_as_well() {
    // Echo that stays on after ATE0, no spaces whatever ATS1 says, a 1.5 s ATZ, and no AT BRD
    // (asked for anyway: the client stays at the power-up rate).
    let dir = tempfile::tempdir().unwrap();
    let (sim, path) = usb_elm327(
        dir.path(),
        &["stuck-echo", "no-spaces", "slow-reset", "no-brd"],
    );
    let link = format!("elm327:{path}@38400:115200");
    let info = telltale_json(&["scan", "--link", &link, "--json", "info"]);
    assert!(
        info["vin"].as_str().is_some_and(vin_check_digit_ok),
        "{info}"
    );
    let ecus: Vec<&str> = info["ecus"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["ecu"].as_str())
        .collect();
    assert_eq!(ecus, ["7E8", "7E9"], "{info}");
    let pids = telltale_json(&["scan", "--link", &link, "--json", "pids", "0C", "0D", "05"]);
    let rpm = reading(engine(&pids), "engine_speed");
    assert!((500.0..7000.0).contains(&rpm), "engine speed {rpm} rpm");
    let dtcs = telltale_json(&["scan", "--link", &link, "--json", "dtcs"]);
    assert!(engine(&dtcs)["stored"].is_array(), "{dtcs}");
    assert!(!sim.log().contains("AT BRD:"), "{}", sim.log());
}

#[test]
fn a_port_with_nothing_behind_it_is_a_clear_error() {
    let port = free_port();
    let out = telltale(&[
        "scan",
        "--link",
        &format!("elm327+tcp:127.0.0.1:{port}"),
        "info",
    ]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(&port.to_string()), "{stderr}");
}
