//! `telltale decode` run as a user runs it, on a recorded session with every service, two
//! ECUs, 11- and 29-bit ids, other bus traffic and broken input.

use std::path::PathBuf;

use assert_cmd::Command;
use serde_json::Value;

fn sample() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/data/sample.log")
}

fn decode(args: &[&str], stdin: Option<Vec<u8>>) -> Vec<Value> {
    let mut cmd = Command::cargo_bin("telltale").expect("binary");
    cmd.arg("decode").args(args);
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let out = cmd.assert().success().get_output().stdout.clone();
    String::from_utf8(out)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn find(lines: &[Value], pred: impl Fn(&Value) -> bool) -> &Value {
    lines
        .iter()
        .find(|v| pred(v))
        .unwrap_or_else(|| panic!("no such line in {lines:#?}"))
}

#[test]
fn decodes_a_recorded_session() {
    let lines = decode(&[sample().to_str().unwrap()], None);

    // Multi-PID answer split by the PID table: 0x1AF8 / 4 = 1726 rpm, 0x3C = 60 km/h.
    let rpm = find(&lines, |v| {
        v["values"].as_array().is_some_and(|a| a.len() == 2)
    });
    assert_eq!(rpm["ts"], "1700000000.108000");
    assert_eq!(rpm["can_id"], "7E8");
    assert_eq!(rpm["service"], "01");
    assert_eq!(rpm["values"][0]["pid"], "0C");
    assert_eq!(rpm["values"][0]["value"], 1726.0);
    assert_eq!(rpm["values"][0]["unit"], "rpm");
    assert_eq!(rpm["values"][1]["value"], 60.0);

    // The VIN, reassembled from three frames across a flow control on another id.
    let vin = find(&lines, |v| v.get("vin").is_some());
    assert_eq!(vin["vin"], "1HGCM82633A004352");
    assert_eq!(vin["ts"], "1700000000.210500");

    // Stored, pending and permanent codes.
    let dtcs: Vec<(&str, &Value)> = lines
        .iter()
        .filter(|v| {
            v.get("dtcs").is_some() && ["03", "07", "0A"].contains(&v["service"].as_str().unwrap())
        })
        .map(|v| (v["service"].as_str().unwrap(), &v["dtcs"]))
        .collect();
    assert_eq!(
        dtcs,
        [
            ("03", &serde_json::json!(["P0133", "P0420"])),
            ("07", &serde_json::json!(["P0300"])),
            ("0A", &serde_json::json!([]))
        ]
    );

    // Freeze frame 0 was stored by P0133.
    let ff = find(&lines, |v| {
        v["service"] == "02" && v["direction"] == "response"
    });
    assert_eq!(ff["frame"], 0);
    assert_eq!(ff["pid"], "02");
    assert_eq!(ff["dtcs"], serde_json::json!(["P0133"]));

    // Calibration id over ISO-TP, NUL padding removed.
    let cal = find(&lines, |v| v.get("calibration_ids").is_some());
    assert_eq!(cal["calibration_ids"], serde_json::json!(["JMB*36761500"]));

    // A negative response from the transmission.
    let nrc = find(&lines, |v| v.get("nrc").is_some());
    assert_eq!(
        (nrc["can_id"].as_str(), nrc["nrc"].as_str()),
        (Some("7E9"), Some("0x31"))
    );
    assert_eq!(nrc["nrc_name"], "requestOutOfRange");

    // 29-bit: functional request and a coolant temperature answer (0x7B - 40 = 83 °C).
    let coolant = find(&lines, |v| {
        v["can_id"] == "18DAF110" && v["service"] == "01"
    });
    assert_eq!(
        (coolant["value"].as_f64(), coolant["unit"].as_str()),
        (Some(83.0), Some("°C"))
    );
    let uds = find(&lines, |v| v.get("uds").is_some());
    assert_eq!(uds["service"], "19");
    assert_eq!(uds["dtcs"], serde_json::json!(["P0300-00"]));
    assert_eq!(
        uds["uds"]["DtcsByStatusMask"]["dtcs"][0]["status"][3],
        "confirmedDTC"
    );

    // Broken traffic is reported and decoding goes on to the last frame.
    let errors: Vec<&Value> = lines.iter().filter(|v| v.get("error").is_some()).collect();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("expected SN 1, got 3"),
        "{errors:#?}"
    );
    assert_eq!(errors[1]["line"], 34);
    let last = lines.last().unwrap();
    assert_eq!(
        (last["ts"].as_str(), last["value"].as_f64()),
        (Some("1700000001.200000"), Some(60.0))
    );

    // Nothing from the broadcast frame 0x123 or the error frame.
    assert!(
        lines
            .iter()
            .all(|v| v["can_id"] != "123" && v["can_id"] != "20000080")
    );
    // Requests are decoded too: functional 01 00, physical 01 0C 0D, 09 02 ...
    let requests = lines.iter().filter(|v| v["direction"] == "request").count();
    assert_eq!(requests, 11);
}

#[test]
fn reads_stdin_and_survives_garbage() {
    let mut input = b"\xff\xfe not text\n\n(1.000000) vcan0 7E8#03410D3C\n".to_vec();
    input.extend_from_slice(b"(1.1) vcan0 7E8#0341\n");
    let lines = decode(&["-"], Some(input));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["error"], "line is not UTF-8 text");
    assert_eq!(lines[1]["value"], 60.0);
    assert!(lines[2]["error"].is_string());
}

#[test]
fn a_missing_file_is_a_clear_error() {
    let out = Command::cargo_bin("telltale")
        .unwrap()
        .args(["decode", "/no/such/file.log"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot open /no/such/file.log"), "{stderr}");
}
