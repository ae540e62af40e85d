//! Each built-in scenario plays out to its expected DTC states at the expected times, in
//! deterministic time (no sleeping): the vehicle is advanced and queried through the same
//! `handle` the serving layers use.

use std::time::Duration;

use firmware_sim::{Vehicle, load_scenario, scenarios};
use telltale_obd::dtc::Dtc;
use telltale_obd::service::{PidData, Response};

fn vehicle(name: &str) -> Vehicle {
    Vehicle::from_scenario(&load_scenario(name).expect("built-in scenario loads"))
}

/// Moves to `vehicle_s` seconds of vehicle time.
fn at(v: &mut Vehicle, vehicle_s: f64) {
    let t = v.serving_time_of(vehicle_s);
    v.advance_to(t);
}

fn ask(v: &mut Vehicle, ecu: &str, request: &[u8]) -> Option<Response> {
    let index = v.ecu_index(ecu).expect("ECU exists");
    let replies = v.handle(index, request, false);
    let last = replies.last()?;
    Some(Response::parse(&last.payload).expect("ECU answers parse"))
}

fn codes(v: &mut Vehicle, ecu: &str, service: u8) -> Vec<String> {
    match ask(v, ecu, &[service]) {
        Some(Response::Dtcs { dtcs, .. }) => dtcs.iter().map(Dtc::to_string).collect(),
        other => panic!("service {service:02X} answered {other:?}"),
    }
}

fn pid(v: &mut Vehicle, ecu: &str, request: &[u8]) -> Vec<PidData> {
    match ask(v, ecu, request) {
        Some(Response::CurrentData(d) | Response::FreezeFrame(d)) => d,
        other => panic!("{request:02X?} answered {other:?}"),
    }
}

fn mil(v: &mut Vehicle, ecu: &str) -> bool {
    pid(v, ecu, &[0x01, 0x01])[0].data[0] & 0x80 != 0
}

/// (pending, stored, permanent) codes of an ECU.
fn state(v: &mut Vehicle, ecu: &str) -> (Vec<String>, Vec<String>, Vec<String>) {
    (
        codes(v, ecu, 0x07),
        codes(v, ecu, 0x03),
        codes(v, ecu, 0x0A),
    )
}

fn s(list: &[&str]) -> Vec<String> {
    list.iter().map(|c| (*c).to_owned()).collect()
}

#[test]
fn every_built_in_scenario_loads_and_is_listed() {
    let listed = scenarios();
    for name in [
        "healthy",
        "misfire",
        "catalyst",
        "evap-leak",
        "thermostat",
        "lost-comm",
        "hybrid",
    ] {
        assert!(listed.iter().any(|(n, _)| n == name), "{name} not listed");
        let v = vehicle(name);
        assert!(v.vin().check_digit_valid(), "{name}: VIN check digit");
    }
}

#[test]
fn healthy_car_sets_nothing_and_completes_readiness_in_the_first_drive() {
    let mut v = vehicle("healthy");
    at(&mut v, 10.0);
    // Fresh: all non-continuous monitors incomplete.
    let status = pid(&mut v, "engine", &[0x01, 0x01])[0].data.clone();
    assert_eq!(status[0], 0x00, "no MIL, no codes");
    assert_ne!(status[3], 0x00, "monitors incomplete at the start");
    at(&mut v, 478.0);
    let status = pid(&mut v, "engine", &[0x01, 0x01])[0].data.clone();
    assert_eq!(
        status[3], 0x00,
        "all monitors complete by the end of drive 1"
    );
    assert_eq!(status[1] & 0x70, 0x00);
    for t in [500.0, 1000.0, 1500.0] {
        at(&mut v, t);
        for ecu in ["engine", "transmission", "hybrid"] {
            assert_eq!(state(&mut v, ecu), (vec![], vec![], vec![]), "{ecu} at {t}");
        }
    }
    // One warm-up per drive: drives 1-3 warmed up; drive 4 is one minute old and still cold.
    let warmups = pid(&mut v, "engine", &[0x01, 0x30])[0].data[0];
    assert_eq!(warmups, 3);
}

#[test]
fn misfire_p0301_pending_confirmed_then_p0300() {
    let mut v = vehicle("misfire");
    at(&mut v, 119.0);
    assert_eq!(state(&mut v, "engine"), (vec![], vec![], vec![]));
    at(&mut v, 140.0);
    assert_eq!(state(&mut v, "engine"), (s(&["P0301"]), vec![], vec![]));
    assert!(!mil(&mut v, "engine"));
    at(&mut v, 479.0);
    assert_eq!(codes(&mut v, "engine", 0x03), Vec::<String>::new());
    at(&mut v, 520.0);
    assert_eq!(
        state(&mut v, "engine"),
        (s(&["P0301"]), s(&["P0301"]), s(&["P0301"]))
    );
    assert!(mil(&mut v, "engine"));
    // Freeze frame: P0301 with the engine running at that moment.
    let ff = pid(
        &mut v,
        "engine",
        &[0x02, 0x02, 0x00, 0x0C, 0x00, 0x05, 0x00],
    );
    assert_eq!(
        ff[0]
            .freeze_frame_trigger()
            .map(|d| d.to_string())
            .as_deref(),
        Some("P0301")
    );
    let rpm = u16::from_be_bytes([ff[1].data[0], ff[1].data[1]]) / 4;
    assert!((500..3000).contains(&rpm), "freeze frame rpm {rpm}");
    // P0300 starts at 1100 s (drive 3): pending, then confirmed in drive 4.
    at(&mut v, 1099.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0301"]));
    at(&mut v, 1130.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0300", "P0301"]));
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0301"]));
    at(&mut v, 1480.0);
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0300", "P0301"]));
    // The freeze frame stays with the first misfire code.
    let ff = pid(&mut v, "engine", &[0x02, 0x02, 0x00]);
    assert_eq!(
        ff[0]
            .freeze_frame_trigger()
            .map(|d| d.to_string())
            .as_deref(),
        Some("P0301")
    );
    // Misfire shows in the data: lean-corrected long-term trim.
    let ltft = pid(&mut v, "engine", &[0x01, 0x07])[0].data[0];
    assert!(ltft > 0x80 + 8, "LTFT byte {ltft:#x}");
}

#[test]
fn catalyst_p0420_once_per_drive_on_the_warm_cruise() {
    let mut v = vehicle("catalyst");
    at(&mut v, 287.0);
    assert_eq!(state(&mut v, "engine"), (vec![], vec![], vec![]));
    at(&mut v, 290.0);
    assert_eq!(state(&mut v, "engine"), (s(&["P0420"]), vec![], vec![]));
    at(&mut v, 767.0);
    assert_eq!(codes(&mut v, "engine", 0x03), Vec::<String>::new());
    at(&mut v, 770.0);
    assert_eq!(
        state(&mut v, "engine"),
        (s(&["P0420"]), s(&["P0420"]), s(&["P0420"]))
    );
}

#[test]
fn evap_leak_p0455_in_the_final_idle() {
    let mut v = vehicle("evap-leak");
    at(&mut v, 460.0);
    assert_eq!(codes(&mut v, "engine", 0x07), Vec::<String>::new());
    at(&mut v, 470.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0455"]));
    at(&mut v, 940.0);
    assert_eq!(codes(&mut v, "engine", 0x03), Vec::<String>::new());
    at(&mut v, 950.0);
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0455"]));
}

#[test]
fn thermostat_p0128_and_a_cold_engine() {
    let mut v = vehicle("thermostat");
    at(&mut v, 330.0);
    let coolant = i16::from(pid(&mut v, "engine", &[0x01, 0x05])[0].data[0]) - 40;
    assert!(coolant < 71, "coolant {coolant}");
    assert_eq!(codes(&mut v, "engine", 0x07), Vec::<String>::new());
    at(&mut v, 340.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0128"]));
    at(&mut v, 820.0);
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0128"]));
    // No warm-up is ever counted with the thermostat stuck open.
    assert_eq!(pid(&mut v, "engine", &[0x01, 0x30])[0].data[0], 0);
}

#[test]
fn lost_comm_u0100_in_the_tcm_u0101_in_the_ecm_then_the_tcm_goes_silent() {
    let mut v = vehicle("lost-comm");
    at(&mut v, 45.0);
    assert_eq!(codes(&mut v, "transmission", 0x07), s(&["U0100"]));
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["U0101"]));
    at(&mut v, 500.0);
    assert_eq!(codes(&mut v, "transmission", 0x03), s(&["U0100"]));
    assert!(mil(&mut v, "transmission"));
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["U0101"]));
    at(&mut v, 1499.0);
    assert!(ask(&mut v, "transmission", &[0x01, 0x00]).is_some());
    at(&mut v, 1501.0);
    let tcm = v.ecu_index("transmission").expect("tcm");
    assert!(v.handle(tcm, &[0x01, 0x00], false).is_empty());
    assert!(v.handle(tcm, &[0x03], true).is_empty());
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["U0101"]));
}

#[test]
fn hybrid_several_codes_across_three_ecus() {
    let mut v = vehicle("hybrid");
    at(&mut v, 300.0);
    assert_eq!(codes(&mut v, "hybrid", 0x07), s(&["P0A80"]));
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0420"]));
    at(&mut v, 800.0);
    assert_eq!(codes(&mut v, "hybrid", 0x03), s(&["P0A80"]));
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0420"]));
    at(&mut v, 950.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0420", "P0455"]));
    at(&mut v, 1430.0);
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0420", "P0455"]));
    let life = pid(&mut v, "hybrid", &[0x01, 0x5B])[0].data[0];
    assert!(u32::from(life) * 100 / 255 < 30, "battery life byte {life}");
    let fuel = pid(&mut v, "engine", &[0x01, 0x51])[0].data[0];
    assert_eq!(fuel, 0x11, "hybrid gasoline");
}

#[test]
fn clearing_resets_codes_and_readiness_but_not_permanent_and_the_code_comes_back() {
    let mut v = vehicle("misfire");
    at(&mut v, 600.0);
    let engine = v.ecu_index("engine").expect("engine");
    let replies = v.handle(engine, &[0x04], false);
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[0].payload, vec![0x7F, 0x04, 0x78]);
    assert_eq!(replies[1].payload, vec![0x44]);
    assert!(replies[1].delay > Duration::from_millis(200));
    assert_eq!(state(&mut v, "engine"), (vec![], vec![], s(&["P0301"])));
    assert!(!mil(&mut v, "engine"));
    let status = pid(&mut v, "engine", &[0x01, 0x01])[0].data.clone();
    assert_eq!(
        status[2], 0b1110_0101,
        "supported: catalyst, EVAP, O2, heater, EGR"
    );
    assert_eq!(status[3], status[2], "every monitor incomplete after clear");
    let since = pid(&mut v, "engine", &[0x01, 0x31, 0x30]);
    assert_eq!(since[0].data, vec![0, 0], "distance since clear");
    assert_eq!(since[1].data, vec![0], "warm-ups since clear");
    let ff = pid(&mut v, "engine", &[0x02, 0x02, 0x00]);
    assert_eq!(ff[0].data, vec![0, 0], "no freeze frame after clear");
    // The misfire persists: pending again within seconds.
    at(&mut v, 620.0);
    assert_eq!(codes(&mut v, "engine", 0x07), s(&["P0301"]));
    // And the distance since clear grows again.
    at(&mut v, 900.0);
    let km = pid(&mut v, "engine", &[0x01, 0x31])[0].data[1];
    assert!(km > 0);
}

/// Bit 0 of PID 01 byte D: the catalyst monitor has not completed since the codes were cleared.
fn catalyst_incomplete(v: &mut Vehicle) -> bool {
    pid(v, "engine", &[0x01, 0x01])[0].data[3] & 0x01 != 0
}

#[test]
fn after_a_clear_the_code_and_its_monitor_come_back_together() {
    // Cleared in drive 2 after the catalyst check (phase 0.6 = 768 s, P0420 confirmed then).
    let mut v = vehicle("catalyst");
    at(&mut v, 800.0);
    assert_eq!(codes(&mut v, "engine", 0x03), s(&["P0420"]));
    assert!(!catalyst_incomplete(&mut v));
    let engine = v.ecu_index("engine").expect("engine");
    assert_eq!(v.handle(engine, &[0x04], false).len(), 2);
    // The rest of drive 2 is too short for the catalyst monitor to run again: no verdict, so
    // no pending code, and readiness says so too.
    for t in [801.0, 850.0, 900.0, 955.0] {
        at(&mut v, t);
        assert_eq!(
            state(&mut v, "engine"),
            (vec![], vec![], s(&["P0420"])),
            "at {t} s"
        );
        assert!(catalyst_incomplete(&mut v), "at {t} s");
    }
    // Drive 3 reaches its catalyst check (960 + 288 s): the monitor completes and fails,
    // pending again; the stored code needs one more failing drive.
    at(&mut v, 1240.0);
    assert!(catalyst_incomplete(&mut v));
    assert_eq!(codes(&mut v, "engine", 0x07), s(&[]));
    at(&mut v, 1260.0);
    assert!(!catalyst_incomplete(&mut v));
    assert_eq!(
        state(&mut v, "engine"),
        (s(&["P0420"]), vec![], s(&["P0420"]))
    );
}

/// Writes `text` to a scenario file of its own and loads it.
fn load_text(name: &str, text: &str) -> Result<firmware_sim::Scenario, String> {
    let dir = std::env::temp_dir().join(format!("firmware-sim-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).expect("write scenario");
    load_scenario(path.to_str().expect("utf-8 path")).map_err(|e| e.to_string())
}

const GOOD: &str = r#"
name = "custom"
description = "a custom scenario"
[vehicle]
vin = "2HGFC2F58JH512345"
make = "Honda"
model = "Civic"
year = 2018
[[fault]]
kind = "catalyst"
ecu = "engine"
dtcs = ["P0420"]
start_s = 0
"#;

#[test]
fn a_scenario_file_by_path_loads() {
    let s = load_text("good", GOOD).expect("loads");
    assert_eq!(s.faults.len(), 1);
    assert_eq!(s.time_scale, 40.0);
}

#[test]
fn bad_scenario_files_name_the_file_the_key_and_the_problem() {
    let cases: &[(&str, String, &[&str])] = &[
        (
            "unknown-key",
            GOOD.replace("year = 2018", "year = 2018\ncolour = \"red\""),
            &["unknown-key.toml", "colour"],
        ),
        (
            "check-digit",
            GOOD.replace("2HGFC2F58JH512345", "2HGFC2F50JH512345"),
            &["check-digit.toml", "vehicle.vin", "check digit"],
        ),
        (
            "bad-dtc",
            GOOD.replace("P0420", "Q0420"),
            &["bad-dtc.toml", "fault[0].dtcs[0]", "Q0420"],
        ),
        (
            "bad-kind",
            GOOD.replace("\"catalyst\"", "\"flat_tyre\""),
            &["bad-kind.toml", "flat_tyre"],
        ),
        (
            "bad-time",
            GOOD.replace("start_s = 0", "start_s = 50\nend_s = 10"),
            &["bad-time.toml", "fault[0].end_s", "start_s = 50"],
        ),
        (
            "bad-scale",
            GOOD.replace("name = \"custom\"", "name = \"custom\"\ntime_scale = -1"),
            &["bad-scale.toml", "time_scale"],
        ),
        (
            "bad-cvn",
            format!(
                "{GOOD}\n[ecus.engine]\nacronym = \"ECM\"\nname = \"Engine\"\n\
                 calibration_ids = [\"ABC\"]\ncvns = [\"XYZ\"]\n"
            ),
            &["bad-cvn.toml", "ecus.engine.cvns[0]", "hexadecimal"],
        ),
        ("syntax", "name = \"x".to_owned(), &["syntax.toml"]),
    ];
    for (name, text, wanted) in cases {
        let err = load_text(name, text).expect_err(name);
        for w in *wanted {
            assert!(err.contains(w), "{name}: {err:?} lacks {w:?}");
        }
    }
    let err = load_scenario("no-such-scenario")
        .expect_err("unknown")
        .to_string();
    assert!(
        err.contains("no-such-scenario") && err.contains("misfire"),
        "{err}"
    );
}

#[test]
fn garbage_requests_get_errors_not_panics() {
    let mut v = vehicle("hybrid");
    at(&mut v, 100.0);
    let requests: &[&[u8]] = &[
        &[],
        &[0x01],
        &[0x02, 0x0C],
        &[0x03, 0x00],
        &[0x09],
        &[0x09, 0x02, 0x04],
        &[0x19],
        &[0x19, 0x04, 0x01],
        &[0x19, 0x06, 0xFF, 0xFF, 0xFF, 0x01],
        &[0x14, 0x01],
        &[0x14, 0x12, 0x34, 0x56],
        &[0xFF; 64],
    ];
    for ecu in 0..v.ecus().len() {
        for r in requests {
            let physical = v.handle(ecu, r, false);
            assert_eq!(physical.len(), 1, "{r:02X?}: {physical:?}");
            assert_eq!(physical[0].payload[0], 0x7F, "{r:02X?}");
            assert!(v.handle(ecu, r, true).is_empty(), "functional {r:02X?}");
        }
    }
    // Every byte value as a one-PID request: answers parse, or a clean NRC.
    for p in 0..=255u8 {
        for r in v.handle(0, &[0x01, p], false) {
            if r.payload[0] != 0x7F {
                Response::parse(&r.payload).unwrap_or_else(|e| panic!("PID {p:02X}: {e}"));
            }
        }
    }
}

#[test]
fn supported_pid_bitmaps_match_what_each_ecu_answers() {
    let mut v = vehicle("hybrid");
    at(&mut v, 200.0);
    for ecu in 0..v.ecus().len() {
        let mut supported = telltale_obd::pid::SupportedPids::new();
        let mut base = 0x00u8;
        loop {
            let replies = v.handle(ecu, &[0x01, base], false);
            let payload = &replies[0].payload;
            assert_eq!(&payload[..2], &[0x41, base]);
            let bitmap = [payload[2], payload[3], payload[4], payload[5]];
            supported.add_bitmap(base, bitmap).expect("bitmap");
            match supported.next_bitmap_pid(base) {
                Some(next) => base = next,
                None => break,
            }
        }
        for p in 1..=255u8 {
            if telltale_obd::pid::is_bitmap_pid(p) {
                continue;
            }
            let answered = v.handle(ecu, &[0x01, p], false)[0].payload[0] == 0x41;
            assert_eq!(answered, supported.contains(p), "ECU {ecu} PID {p:02X}");
        }
    }
}
