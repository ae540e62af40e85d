//! `telltale scan` as a user runs it: the errors that tell them what to fix, and the JSON
//! shapes read through a (tiny, scripted) ELM327 Wi-Fi dongle on 127.0.0.1.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use assert_cmd::Command;
use serde_json::Value;

fn scan(args: &[&str]) -> assert_cmd::assert::Assert {
    Command::cargo_bin("telltale")
        .expect("binary")
        .arg("scan")
        .args(args)
        .timeout(Duration::from_secs(60))
        .assert()
}

fn stderr(a: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&a.get_output().stderr).into_owned()
}

#[test]
fn no_ecu_on_the_bus_is_a_clear_error_quickly() {
    let t0 = Instant::now();
    let a = scan(&["--link", "sim:nobody-here", "info"]).failure();
    let err = stderr(&a);
    assert!(err.contains("no ECU answered"), "{err}");
    assert!(err.contains("is the ignition on"), "{err}");
    assert!(a.get_output().stdout.is_empty());
    assert!(t0.elapsed() < Duration::from_secs(10), "{:?}", t0.elapsed());
    let a = scan(&["--link", "sim:nobody-here", "--json", "dtcs"]).failure();
    assert!(stderr(&a).contains("no ECU answered"));
    assert!(a.get_output().stdout.is_empty());
}

#[test]
fn a_bad_link_shows_the_accepted_forms() {
    let a = scan(&["--link", "can0", "info"]).failure();
    let err = stderr(&a);
    assert!(err.contains("bad link \"can0\""), "{err}");
    assert!(err.contains("socketcan:IFACE"), "{err}");
    assert!(err.contains("elm327+tcp:HOST:PORT"), "{err}");
}

#[test]
fn clearing_needs_yes() {
    let a = scan(&["--link", "sim:x", "clear"]).failure();
    assert!(stderr(&a).contains("add --yes"), "{}", stderr(&a));
}

#[test]
fn bad_pids_are_refused() {
    let a = scan(&["--link", "sim:x", "pids", "0C", "zz"]).failure();
    assert!(stderr(&a).contains("not a PID"), "{}", stderr(&a));
}

/// A minimal ELM327 on TCP: headers on, no spaces, one engine ECU at 7E8 with VIN, PIDs 0C
/// and 0D, stored P0301 and pending P0420. Serves one connection.
fn fake_dongle() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    std::thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else {
            return;
        };
        let mut out = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        while reader.read_until(b'\r', &mut line).is_ok_and(|n| n > 0) {
            let cmd = String::from_utf8_lossy(&line).trim().to_ascii_uppercase();
            line.clear();
            let reply = match cmd.as_str() {
                "ATZ" => "ELM327 v1.5",
                "ATDPN" => "A6",
                c if c.starts_with("AT") => "OK",
                "0100" => "7E8064100081800 01",
                "0120" => "7E806412000000000",
                "010C0D" => "7E806410C1AF80D3C",
                "0902" => "7E81014490201314731\r7E8214A433534343452\r7E82237323532333637",
                "03" => "7E80443010301",
                "07" => "7E80447010420",
                _ => "NO DATA",
            };
            let reply = if reply.starts_with("7E8") {
                reply.replace(' ', "")
            } else {
                reply.to_owned()
            };
            if out.write_all(format!("{reply}\r\r>").as_bytes()).is_err() {
                return;
            }
        }
    });
    addr
}

fn json_of(a: &assert_cmd::assert::Assert) -> Value {
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{text}: {e}"))
}

#[test]
fn json_through_an_elm327_dongle() {
    let link = format!("elm327+tcp:{}", fake_dongle());
    let a = scan(&["--link", &link, "--json", "info"]).success();
    let info = json_of(&a);
    assert_eq!(info["vin"], "1G1JC5444R7252367");
    assert_eq!(info["link"], link);
    assert_eq!(info["ecus"][0]["ecu"], "7E8");
    let pids: Vec<u64> = info["ecus"][0]["supported_pids"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert_eq!(pids, [0x05, 0x0C, 0x0D, 0x20]);

    let link = format!("elm327+tcp:{}", fake_dongle());
    let a = scan(&["--link", &link, "--json", "pids", "0C", "0x0D"]).success();
    let v = json_of(&a);
    let values = &v["ecus"][0]["values"];
    assert_eq!(values[0]["pid"], 12);
    assert_eq!(values[0]["value"], 1726.0);
    assert_eq!(values[0]["unit"], "rpm");
    assert_eq!(values[1]["value"], 60.0);

    let link = format!("elm327+tcp:{}", fake_dongle());
    let a = scan(&["--link", &link, "--json", "dtcs"]).success();
    let v = json_of(&a);
    assert_eq!(
        v["ecus"][0],
        serde_json::json!({"ecu": "7E8", "stored": ["P0301"], "pending": ["P0420"], "permanent": []})
    );

    let link = format!("elm327+tcp:{}", fake_dongle());
    let a = scan(&["--link", &link, "dtcs"]).success();
    let text = String::from_utf8_lossy(&a.get_output().stdout).into_owned();
    assert!(text.contains("ECU 7E8"), "{text}");
    assert!(text.contains("stored    P0301"), "{text}");
}
