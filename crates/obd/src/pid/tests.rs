use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

/// The value of the reading with `key`, failing the test if there is none.
fn value(readings: &[Reading], key: &str) -> Value {
    readings
        .iter()
        .find(|r| r.key == key)
        .unwrap_or_else(|| panic!("no reading {key} in {readings:?}"))
        .value
        .clone()
}

fn number(pid: u8, data: &[u8]) -> f64 {
    let readings = decode(pid, data).unwrap();
    assert_eq!(readings.len(), 1, "{readings:?}");
    match readings[0].value {
        Value::Number(n) => n,
        ref other => panic!("PID {pid:02X}: expected a number, got {other:?}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

fn linear_rows() -> Vec<(&'static PidInfo, &'static [Field])> {
    all()
        .iter()
        .filter_map(|row| match row.formula {
            Formula::Linear(fields) => Some((row, fields)),
            Formula::Custom(_) => None,
        })
        .collect()
}

// --- single linear PIDs, vectors from the J1979 examples and worked by hand ---------------

#[test]
fn engine_speed_example() {
    // J1979: 41 0C 1A F8 -> (0x1AF8 = 6904) / 4 = 1726 rpm.
    assert_eq!(number(0x0C, &[0x1A, 0xF8]), 1726.0);
    assert_eq!(decode(0x0C, &[0x1A, 0xF8]).unwrap()[0].unit, "rpm");
    assert_eq!(number(0x0C, &[0xFF, 0xFF]), 16383.75);
}

#[test]
fn coolant_temperature_example() {
    // J1979: 41 05 7B -> 123 - 40 = 83 °C.
    assert_eq!(number(0x05, &[0x7B]), 83.0);
    assert_eq!(number(0x05, &[0x00]), -40.0);
    assert_eq!(number(0x05, &[0xFF]), 215.0);
}

#[test]
fn vehicle_speed_example() {
    // J1979: 41 0D 3C -> 60 km/h.
    assert_eq!(number(0x0D, &[0x3C]), 60.0);
}

#[test]
fn maf_and_voltage() {
    // 0x0BB8 = 3000 -> 30.00 g/s; 0x30D4 = 12500 -> 12.500 V.
    assert_eq!(number(0x10, &[0x0B, 0xB8]), 30.0);
    assert_eq!(number(0x42, &[0x30, 0xD4]), 12.5);
}

#[test]
fn percentages_trims_and_timing() {
    assert_eq!(number(0x04, &[0xFF]), 100.0);
    assert!(close(number(0x11, &[0x80]), 128.0 * 100.0 / 255.0));
    // Trims: 0x80 = 0 %, 0x00 = -100 %, 0xFF = +99.22 %.
    assert_eq!(number(0x06, &[0x80]), 0.0);
    assert_eq!(number(0x07, &[0x00]), -100.0);
    assert_eq!(number(0x09, &[0xFF]), 99.21875);
    // Timing advance: A/2 - 64, so 0x80 = 0° and 0x00 = -64°.
    assert_eq!(number(0x0E, &[0x80]), 0.0);
    assert_eq!(number(0x0E, &[0x00]), -64.0);
    assert_eq!(number(0x0A, &[0xFF]), 765.0);
}

#[test]
fn two_byte_quantities() {
    assert_eq!(number(0x1F, &[0x01, 0x00]), 256.0);
    // 0x1194 = 4500 -> 450.0 - 40 = 410 °C.
    assert_eq!(number(0x3C, &[0x11, 0x94]), 410.0);
    // 0x8000 = 32768 * 2/65536 = lambda 1.0.
    assert_eq!(number(0x44, &[0x80, 0x00]), 1.0);
    // 0x6900 = 26880 / 128 = 210, minus 210 = 0°.
    assert_eq!(number(0x5D, &[0x69, 0x00]), 0.0);
    // 0x0028 = 40 / 20 = 2 L/h.
    assert_eq!(number(0x5E, &[0x00, 0x28]), 2.0);
    // 0x0064 = 100 * 0.079 = 7.9 kPa.
    assert!(close(number(0x22, &[0x00, 0x64]), 7.9));
    assert_eq!(number(0x63, &[0x01, 0x40]), 320.0);
}

#[test]
fn signed_vapour_pressures() {
    // 0x32: two's complement quarter pascals; 0x8000 = -8192 Pa, 0x7FFF = 8191.75 Pa.
    assert_eq!(number(0x32, &[0x80, 0x00]), -8192.0);
    assert_eq!(number(0x32, &[0x7F, 0xFF]), 8191.75);
    assert_eq!(number(0x32, &[0xFF, 0xFC]), -1.0);
    // 0x54: two's complement pascals.
    assert_eq!(number(0x54, &[0x80, 0x00]), -32768.0);
    assert_eq!(number(0x54, &[0x7F, 0xFF]), 32767.0);
}

#[test]
fn odometer() {
    // 0x0001E240 = 123456 -> 12345.6 km.
    assert!(close(number(0xA6, &[0x00, 0x01, 0xE2, 0x40]), 12345.6));
}

#[test]
fn freeze_frame_dtc_raw() {
    // Mode 02 PID 02 = 01 43: the DTC P0143, as its raw two bytes.
    assert_eq!(freeze_frame_dtc(&[0x01, 0x43]), Ok(0x0143));
    assert_eq!(number(0x02, &[0x01, 0x43]), 323.0);
    assert_eq!(
        freeze_frame_dtc(&[0x01]),
        Err(PidError::WrongLength {
            pid: 0x02,
            expected: 2,
            actual: 1
        })
    );
}

// --- multi-field linear PIDs -------------------------------------------------------------

#[test]
fn o2_voltage_and_trim() {
    // J1979 example: 41 14 8C 80 -> 140/200 = 0.700 V, (128-128)·100/128 = 0 %.
    let readings = decode(0x14, &[0x8C, 0x80]).unwrap();
    assert_eq!(value(&readings, "o2_b1s1_voltage"), Value::Number(0.7));
    assert_eq!(value(&readings, "o2_b1s1_fuel_trim"), Value::Number(0.0));
    assert_eq!(readings[0].unit, "V");
    assert_eq!(readings[1].unit, "%");
    // Trim byte 0xFF: the sensor is not used in the trim calculation.
    let readings = decode(0x1B, &[0x00, 0xFF]).unwrap();
    assert_eq!(value(&readings, "o2_b2s4_voltage"), Value::Number(0.0));
    assert_eq!(
        value(&readings, "o2_b2s4_fuel_trim"),
        Value::Text("sensor not used in trim calculation")
    );
}

#[test]
fn wide_range_o2_voltage() {
    // 41 24 80 00 40 00: lambda 0x8000·2/65536 = 1.0, voltage 0x4000·8/65536 = 2.0 V.
    let readings = decode(0x24, &[0x80, 0x00, 0x40, 0x00]).unwrap();
    assert_eq!(value(&readings, "o2_b1s1_lambda"), Value::Number(1.0));
    assert_eq!(
        value(&readings, "o2_b1s1_wide_range_voltage"),
        Value::Number(2.0)
    );
}

#[test]
fn wide_range_o2_current() {
    // 41 34 80 00 80 00: lambda 1.0, current 0x8000/256 - 128 = 0 mA.
    let readings = decode(0x34, &[0x80, 0x00, 0x80, 0x00]).unwrap();
    assert_eq!(value(&readings, "o2_b1s1_lambda"), Value::Number(1.0));
    assert_eq!(value(&readings, "o2_b1s1_current"), Value::Number(0.0));
    // A slightly rich sensor: 7B D1 7F CC -> lambda 31697/32768, 32716/256 - 128 = -0.203125 mA.
    let readings = decode(0x3B, &[0x7B, 0xD1, 0x7F, 0xCC]).unwrap();
    assert_eq!(
        value(&readings, "o2_b2s4_lambda"),
        Value::Number(31697.0 / 32768.0)
    );
    assert_eq!(
        value(&readings, "o2_b2s4_current"),
        Value::Number(-0.203125)
    );
}

#[test]
fn maximum_values() {
    // 41 4F 01 05 06 19: lambda 1, 5 V, 6 mA, 25·10 = 250 kPa.
    let readings = decode(0x4F, &[0x01, 0x05, 0x06, 0x19]).unwrap();
    assert_eq!(value(&readings, "max_lambda"), Value::Number(1.0));
    assert_eq!(value(&readings, "max_o2_voltage"), Value::Number(5.0));
    assert_eq!(value(&readings, "max_o2_current"), Value::Number(6.0));
    assert_eq!(value(&readings, "max_intake_map"), Value::Number(250.0));
    // 41 50 0A 00 00 00: 10·10 = 100 g/s; B-D reserved.
    assert_eq!(number(0x50, &[0x0A, 0x00, 0x00, 0x00]), 100.0);
}

#[test]
fn secondary_o2_trims_and_torque_data() {
    let readings = decode(0x55, &[0x80, 0x7E]).unwrap();
    assert_eq!(
        value(&readings, "short_term_secondary_o2_trim_bank1"),
        Value::Number(0.0)
    );
    assert_eq!(
        value(&readings, "short_term_secondary_o2_trim_bank3"),
        Value::Number(-1.5625)
    );
    let readings = decode(0x64, &[0x7D, 0x8C, 0x96, 0xA0, 0xAA]).unwrap();
    let values: Vec<Value> = readings.into_iter().map(|r| r.value).collect();
    let expected = [0.0, 15.0, 25.0, 35.0, 45.0].map(Value::Number);
    assert_eq!(values, expected);
}

#[test]
fn support_byte_selects_fields() {
    // 41 66 03 00 40 00 20: both MAF sensors, 64/32 = 2 g/s and 32/32 = 1 g/s.
    let readings = decode(0x66, &[0x03, 0x00, 0x40, 0x00, 0x20]).unwrap();
    assert_eq!(value(&readings, "maf_rate_a"), Value::Number(2.0));
    assert_eq!(value(&readings, "maf_rate_b"), Value::Number(1.0));
    // Only sensor A supported: sensor B's bytes are ignored.
    let readings = decode(0x66, &[0x01, 0x00, 0x40, 0x00, 0x20]).unwrap();
    assert_eq!(readings.len(), 1);
    assert_eq!(readings[0].key, "maf_rate_a");
    // 41 68 09 82 00 00 50 00 00: IAT bank 1 sensor 1 = 90 °C, bank 2 sensor 1 = 40 °C.
    let readings = decode(0x68, &[0x09, 0x82, 0, 0, 0x50, 0, 0]).unwrap();
    let keys: Vec<&str> = readings.iter().map(|r| r.key).collect();
    assert_eq!(
        keys,
        ["intake_air_temperature_b1s1", "intake_air_temperature_b2s1"]
    );
    assert_eq!(
        value(&readings, "intake_air_temperature_b2s1"),
        Value::Number(40.0)
    );
}

// --- bit-encoded and enumerated PIDs -----------------------------------------------------

#[test]
fn monitor_status_spark() {
    // 41 01 81 07 65 04: MIL on, 1 DTC; spark ignition; misfire, fuel system and components
    // supported and complete; catalyst (C0), EVAP (C2), O2 sensor (C5) and O2 heater (C6)
    // supported, EVAP incomplete (D2).
    let r = decode(0x01, &[0x81, 0x07, 0x65, 0x04]).unwrap();
    assert_eq!(value(&r, "mil_on"), Value::Bool(true));
    assert_eq!(value(&r, "dtc_count"), Value::Number(1.0));
    assert_eq!(value(&r, "ignition_type"), Value::Text("spark ignition"));
    for key in [
        "misfire",
        "fuel_system",
        "components",
        "catalyst",
        "o2_sensor",
        "o2_heater",
    ] {
        assert_eq!(
            value(&r, &format!("{key}_available")),
            Value::Bool(true),
            "{key}"
        );
        assert_eq!(
            value(&r, &format!("{key}_complete")),
            Value::Bool(true),
            "{key}"
        );
    }
    assert_eq!(value(&r, "evap_system_available"), Value::Bool(true));
    assert_eq!(value(&r, "evap_system_complete"), Value::Bool(false));
    for key in [
        "heated_catalyst",
        "secondary_air",
        "ac_refrigerant",
        "egr_system",
    ] {
        assert_eq!(
            value(&r, &format!("{key}_available")),
            Value::Bool(false),
            "{key}"
        );
    }
    assert!(r.iter().all(|reading| !reading.key.starts_with("nmhc")));
    // 3 for byte A/B + 2 x (3 + 8) monitors.
    assert_eq!(r.len(), 3 + 2 * 11);
}

#[test]
fn monitor_status_compression() {
    // 41 01 00 1F 63 02: no MIL, 0 DTCs; compression ignition (B3); misfire incomplete (B4);
    // NMHC (C0), NOx (C1), exhaust gas sensor (C5), PM filter (C6) supported, NOx incomplete.
    let r = decode(0x01, &[0x00, 0x1F, 0x63, 0x02]).unwrap();
    assert_eq!(value(&r, "mil_on"), Value::Bool(false));
    assert_eq!(value(&r, "dtc_count"), Value::Number(0.0));
    assert_eq!(
        value(&r, "ignition_type"),
        Value::Text("compression ignition")
    );
    assert_eq!(value(&r, "misfire_complete"), Value::Bool(false));
    assert_eq!(value(&r, "fuel_system_complete"), Value::Bool(true));
    assert_eq!(value(&r, "nmhc_catalyst_available"), Value::Bool(true));
    assert_eq!(value(&r, "nox_aftertreatment_complete"), Value::Bool(false));
    assert_eq!(value(&r, "pm_filter_available"), Value::Bool(true));
    assert_eq!(value(&r, "boost_pressure_available"), Value::Bool(false));
    assert!(r.iter().all(|reading| reading.key != "catalyst_available"));
}

#[test]
fn monitor_status_this_drive_cycle() {
    // 41 41 00 05 21 20: misfire and components enabled; catalyst and O2 sensor enabled,
    // O2 sensor not yet complete this cycle. Byte A is reserved: no MIL or DTC count.
    let r = decode(0x41, &[0x00, 0x05, 0x21, 0x20]).unwrap();
    assert!(
        r.iter()
            .all(|reading| reading.key != "mil_on" && reading.key != "dtc_count")
    );
    assert_eq!(value(&r, "misfire_enabled"), Value::Bool(true));
    assert_eq!(value(&r, "fuel_system_enabled"), Value::Bool(false));
    assert_eq!(value(&r, "catalyst_enabled"), Value::Bool(true));
    assert_eq!(value(&r, "catalyst_complete"), Value::Bool(true));
    assert_eq!(value(&r, "o2_sensor_complete"), Value::Bool(false));
}

#[test]
fn fuel_system_status() {
    let r = decode(0x03, &[0x02, 0x00]).unwrap();
    assert_eq!(
        value(&r, "fuel_system_1_status"),
        Value::Text("closed loop, using oxygen sensor feedback")
    );
    assert_eq!(
        value(&r, "fuel_system_2_status"),
        Value::Text("not present")
    );
    let r = decode(0x03, &[0x01, 0x04]).unwrap();
    assert_eq!(
        value(&r, "fuel_system_1_status"),
        Value::Text("open loop, conditions for closed loop not yet met")
    );
    assert_eq!(
        value(&r, "fuel_system_2_status"),
        Value::Text("open loop due to driving conditions (power enrichment, deceleration)")
    );
    let r = decode(0x03, &[0x08, 0x10]).unwrap();
    assert_eq!(
        value(&r, "fuel_system_1_status"),
        Value::Text("open loop due to detected system fault")
    );
    assert_eq!(
        value(&r, "fuel_system_2_status"),
        Value::Text("closed loop, fault in at least one oxygen sensor")
    );
    let r = decode(0x03, &[0x03, 0xFF]).unwrap();
    assert_eq!(
        value(&r, "fuel_system_1_status"),
        Value::Text("invalid (not exactly one state bit set)")
    );
}

#[test]
fn secondary_air_status() {
    let r = decode(0x12, &[0x04]).unwrap();
    assert_eq!(
        value(&r, "secondary_air_status"),
        Value::Text("from the outside atmosphere or off")
    );
    let r = decode(0x12, &[0x01]).unwrap();
    assert_eq!(
        value(&r, "secondary_air_status"),
        Value::Text("upstream of first catalytic converter")
    );
}

#[test]
fn o2_sensors_present_layouts() {
    // 0x33 = 0011 0011: two-bank layout -> B1S1, B1S2, B2S1, B2S2.
    let r = decode(0x13, &[0x33]).unwrap();
    let present: Vec<&str> = r
        .iter()
        .filter(|x| x.value == Value::Bool(true))
        .map(|x| x.key)
        .collect();
    assert_eq!(
        present,
        [
            "o2_b1s1_present",
            "o2_b1s2_present",
            "o2_b2s1_present",
            "o2_b2s2_present"
        ]
    );
    // The same byte in the four-bank layout -> B1S1, B1S2, B3S1, B3S2.
    let r = decode(0x1D, &[0x33]).unwrap();
    let present: Vec<&str> = r
        .iter()
        .filter(|x| x.value == Value::Bool(true))
        .map(|x| x.key)
        .collect();
    assert_eq!(
        present,
        [
            "o2_b1s1_present",
            "o2_b1s2_present",
            "o2_b3s1_present",
            "o2_b3s2_present"
        ]
    );
}

#[test]
fn o2_locations() {
    let two = O2Layout::TwoBanks;
    let four = O2Layout::FourBanks;
    assert_eq!(
        o2_sensor_location(0x14, two),
        Some(O2Location { bank: 1, sensor: 1 })
    );
    assert_eq!(
        o2_sensor_location(0x18, two),
        Some(O2Location { bank: 2, sensor: 1 })
    );
    assert_eq!(
        o2_sensor_location(0x1B, two),
        Some(O2Location { bank: 2, sensor: 4 })
    );
    assert_eq!(
        o2_sensor_location(0x16, four),
        Some(O2Location { bank: 2, sensor: 1 })
    );
    assert_eq!(
        o2_sensor_location(0x2B, four),
        Some(O2Location { bank: 4, sensor: 2 })
    );
    assert_eq!(
        o2_sensor_location(0x39, four),
        Some(O2Location { bank: 3, sensor: 2 })
    );
    assert_eq!(o2_sensor_location(0x1C, two), None);
    assert_eq!(o2_sensor_location(0x13, four), None);
}

#[test]
fn obd_standard_names() {
    let name = |code: u8| value(&decode(0x1C, &[code]).unwrap(), "obd_standard");
    assert_eq!(name(0x06), Value::Text("EOBD"));
    assert_eq!(name(0x01), Value::Text("OBD-II as defined by CARB"));
    assert_eq!(name(0x0D), Value::Text("JOBD, EOBD and OBD-II"));
    assert_eq!(name(0x50), Value::Text("reserved"));
    assert_eq!(name(0xFF), Value::Text("not available for assignment"));
}

#[test]
fn fuel_types_and_emission_requirements() {
    let fuel = |code: u8| value(&decode(0x51, &[code]).unwrap(), "fuel_type");
    assert_eq!(fuel(0x01), Value::Text("gasoline"));
    assert_eq!(fuel(0x04), Value::Text("diesel"));
    assert_eq!(fuel(0x13), Value::Text("hybrid diesel"));
    assert_eq!(fuel(0x30), Value::Text("reserved"));
    let r = decode(0x5F, &[0x0E]).unwrap();
    assert_eq!(
        value(&r, "emission_requirements"),
        Value::Text("Heavy duty vehicles (Euro IV) B1")
    );
}

#[test]
fn auxiliary_inputs() {
    assert_eq!(
        value(&decode(0x1E, &[0x01]).unwrap(), "pto_active"),
        Value::Bool(true)
    );
    assert_eq!(
        value(&decode(0x1E, &[0xFE]).unwrap(), "pto_active"),
        Value::Bool(false)
    );
    // 41 65 0F 0A: all four supported; PTO off, automatic in drive, manual not in gear,
    // glow plug lamp on.
    let r = decode(0x65, &[0x0F, 0x0A]).unwrap();
    assert_eq!(value(&r, "pto_active"), Value::Bool(false));
    assert_eq!(
        value(&r, "automatic_transmission_in_drive"),
        Value::Bool(true)
    );
    assert_eq!(value(&r, "manual_transmission_in_gear"), Value::Bool(false));
    assert_eq!(value(&r, "glow_plug_lamp_on"), Value::Bool(true));
    // Nothing supported: nothing reported.
    assert!(decode(0x65, &[0x00, 0xFF]).unwrap().is_empty());
}

#[test]
fn bitmap_pid_decodes_to_list() {
    let r = decode(0x20, &[0x80, 0x00, 0x00, 0x01]).unwrap();
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].key, "pids_supported_21_40");
    assert_eq!(r[0].value, Value::Pids(vec![0x21, 0x40]));
    assert_eq!(encode(0x20, &[1.0]), Err(PidError::NotEncodable(0x20)));
}

// --- errors ------------------------------------------------------------------------------

#[test]
fn wrong_length_and_unknown_pid() {
    assert_eq!(
        decode(0x0C, &[0x1A]),
        Err(PidError::WrongLength {
            pid: 0x0C,
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(
        decode(0x05, &[0x7B, 0x00]),
        Err(PidError::WrongLength {
            pid: 0x05,
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(
        decode(0x01, &[]),
        Err(PidError::WrongLength {
            pid: 0x01,
            expected: 4,
            actual: 0
        })
    );
    assert_eq!(decode(0xFF, &[0x00]), Err(PidError::UnknownPid(0xFF)));
    assert_eq!(data_len(0xFF), None);
    assert_eq!(data_len(0x0C), Some(2));
    assert_eq!(data_len(0x64), Some(5));
}

#[test]
fn every_row_decodes_all_zero_and_all_ff() {
    for row in all() {
        for fill in [0x00, 0xFF] {
            let data = vec![fill; row.len];
            let readings = decode(row.pid, &data)
                .unwrap_or_else(|e| panic!("PID {:02X} fill {fill:02X}: {e}", row.pid));
            assert!(readings.iter().all(|r| r.pid == row.pid));
            if fill == 0xFF {
                assert!(!readings.is_empty(), "PID {:02X} said nothing", row.pid);
            }
        }
        let short = vec![0u8; row.len.saturating_sub(1)];
        assert!(decode(row.pid, &short).is_err());
        let long = vec![0u8; row.len + 1];
        assert!(decode(row.pid, &long).is_err());
    }
}

// --- encode ------------------------------------------------------------------------------

#[test]
fn encode_inverts_examples() {
    assert_eq!(encode(0x0C, &[1726.0]), Ok(vec![0x1A, 0xF8]));
    assert_eq!(encode(0x05, &[83.0]), Ok(vec![0x7B]));
    assert_eq!(encode(0x0D, &[60.0]), Ok(vec![0x3C]));
    assert_eq!(encode(0x14, &[0.7, 0.0]), Ok(vec![0x8C, 0x80]));
    assert_eq!(encode(0x32, &[-8192.0]), Ok(vec![0x80, 0x00]));
    assert_eq!(encode(0x32, &[-1.0]), Ok(vec![0xFF, 0xFC]));
    assert_eq!(encode(0x50, &[100.0]), Ok(vec![0x0A, 0x00, 0x00, 0x00]));
    assert_eq!(encode(0xA6, &[12345.6]), Ok(vec![0x00, 0x01, 0xE2, 0x40]));
    // Rounds to the nearest step: 1726.1 rpm is 6904.4 quarter-rpm.
    assert_eq!(encode(0x0C, &[1726.1]), Ok(vec![0x1A, 0xF8]));
    // Support flags are set for every encoded field.
    assert_eq!(
        encode(0x66, &[2.0, 1.0]),
        Ok(vec![0x03, 0x00, 0x40, 0x00, 0x20])
    );
}

#[test]
fn encode_rejects_out_of_range() {
    assert_eq!(
        encode(0x05, &[216.0]),
        Err(PidError::OutOfRange {
            pid: 0x05,
            key: "coolant_temperature",
            value: 216.0,
            min: -40.0,
            max: 215.0
        })
    );
    assert!(matches!(
        encode(0x05, &[-41.0]),
        Err(PidError::OutOfRange { .. })
    ));
    // Within half a step of the top still rounds into range; beyond does not.
    assert_eq!(encode(0x0D, &[255.4]), Ok(vec![0xFF]));
    assert!(matches!(
        encode(0x0D, &[255.6]),
        Err(PidError::OutOfRange { .. })
    ));
    // O2 trim 0xFF is the "not used" sentinel, so the largest trim is 0xFE.
    let top_trim = encode(0x14, &[0.7, 99.21875]);
    assert!(matches!(top_trim, Err(PidError::OutOfRange { max, .. }) if max == 98.4375));
    assert_eq!(encode(0x14, &[0.7, f64::NAN]), Ok(vec![0x8C, 0xFF]));
    assert!(matches!(
        encode(0x0C, &[f64::NAN]),
        Err(PidError::NotFinite { .. })
    ));
    assert!(matches!(
        encode(0x0C, &[f64::INFINITY]),
        Err(PidError::NotFinite { .. })
    ));
}

#[test]
fn encode_rejects_wrong_shape() {
    assert_eq!(
        encode(0x14, &[0.7]),
        Err(PidError::WrongValueCount {
            pid: 0x14,
            expected: 2,
            actual: 1
        })
    );
    assert_eq!(encode(0x01, &[0.0]), Err(PidError::NotEncodable(0x01)));
    assert_eq!(encode(0x6B, &[0.0]), Err(PidError::UnknownPid(0x6B)));
}

// --- table ---------------------------------------------------------------------------------

#[test]
fn table_is_sorted_unique_and_complete() {
    let rows = all();
    assert!(
        rows.windows(2).all(|w| w[0].pid < w[1].pid),
        "rows must be sorted and unique"
    );
    let keys: HashSet<&str> = rows.iter().map(|r| r.key).collect();
    assert_eq!(keys.len(), rows.len(), "duplicate keys");
    // J1979 defines every PID from 0x00 to 0x64 (0x02 in Mode 02 only).
    for pid in 0x00..=0x64u8 {
        assert!(info(pid).is_some(), "PID {pid:02X} missing");
    }
    for pid in [
        0x66, 0x67, 0x68, 0x69, 0x6A, 0x6C, 0x6F, 0x80, 0xA0, 0xA6, 0xC0, 0xE0,
    ] {
        assert_eq!(info(pid).map(|r| r.pid), Some(pid));
    }
    for row in rows {
        assert!(
            !row.key.is_empty() && !row.name.is_empty(),
            "PID {:02X}",
            row.pid
        );
        let snake = row
            .key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        assert!(snake, "key {} is not snake_case", row.key);
        if is_bitmap_pid(row.pid) {
            assert_eq!(row.formula, Formula::Custom(Custom::SupportedPids));
        }
    }
}

#[test]
fn linear_fields_are_well_formed() {
    for (row, fields) in linear_rows() {
        assert!(!fields.is_empty(), "PID {:02X}", row.pid);
        let mut used = vec![false; row.len];
        let mut keys = HashSet::new();
        for field in fields {
            assert!([1, 2, 4].contains(&field.width), "{}", field.key);
            assert!(field.num > 0 && field.den > 0, "{}", field.key);
            assert!(keys.insert(field.key), "duplicate field {}", field.key);
            if field.support_bit.is_some() {
                assert!(field.byte >= 1, "{} overlaps its support byte", field.key);
            }
            let end = field.byte + field.width;
            assert!(
                end <= row.len,
                "{} reaches past PID {:02X}",
                field.key,
                row.pid
            );
            for slot in &mut used[field.byte..end] {
                assert!(!*slot, "{} overlaps another field", field.key);
                *slot = true;
            }
        }
        if fields.len() == 1 {
            assert_eq!(row.unit, fields[0].unit, "PID {:02X}", row.pid);
            assert_eq!(row.key, fields[0].key, "PID {:02X}", row.pid);
        }
    }
}

#[test]
fn json_shape() {
    let r = decode(0x0C, &[0x1A, 0xF8]).unwrap();
    assert_eq!(
        serde_json::to_string(&r[0]).unwrap(),
        r#"{"pid":12,"key":"engine_speed","name":"Engine speed","value":1726.0,"unit":"rpm"}"#
    );
    let r = decode(0x01, &[0x81, 0x07, 0x65, 0x04]).unwrap();
    assert_eq!(
        serde_json::to_value(&r[0].value).unwrap(),
        serde_json::json!(true)
    );
    let r = decode(0x51, &[0x04]).unwrap();
    assert_eq!(
        serde_json::to_value(&r[0].value).unwrap(),
        serde_json::json!("diesel")
    );
    let info_json = serde_json::to_value(info(0x05).unwrap()).unwrap();
    assert_eq!(
        info_json["formula"]["linear"][0]["offset"],
        serde_json::json!(-40)
    );
}

#[test]
fn display() {
    let r = decode(0x0C, &[0x1A, 0xF8]).unwrap();
    assert_eq!(r[0].to_string(), "Engine speed: 1726 rpm");
    let r = decode(0x03, &[0x02, 0x00]).unwrap();
    assert_eq!(
        r[0].to_string(),
        "Fuel system 1 status: closed loop, using oxygen sensor feedback"
    );
}

// --- properties --------------------------------------------------------------------------

proptest! {
    /// For every linear PID, any value in range survives encode then decode within one step.
    #[test]
    fn linear_round_trip(row_pick in any::<prop::sample::Index>(),
                         fractions in prop::collection::vec(0.0f64..=1.0, 6)) {
        let rows = linear_rows();
        let (row, fields) = rows[row_pick.index(rows.len())];
        let values: Vec<f64> = fields
            .iter()
            .zip(&fractions)
            .map(|(f, t)| {
                let (min, max) = f.raw_range();
                let (lo, hi) = (f.physical(min), f.physical(max));
                lo + (hi - lo) * t
            })
            .collect();
        let bytes = encode(row.pid, &values).unwrap();
        prop_assert_eq!(bytes.len(), row.len);
        let readings = decode(row.pid, &bytes).unwrap();
        prop_assert_eq!(readings.len(), fields.len());
        for ((reading, field), x) in readings.iter().zip(fields.iter()).zip(&values) {
            let Value::Number(y) = reading.value else {
                return Err(TestCaseError::fail(format!("{} not a number", field.key)));
            };
            prop_assert!((x - y).abs() <= field.step() * 0.5 + 1e-9, "{}: {x} -> {y}", field.key);
        }
    }

    /// Exact raw values round-trip to the same bytes.
    #[test]
    fn bytes_round_trip(row_pick in any::<prop::sample::Index>(), seed in any::<[u8; 8]>()) {
        let rows = linear_rows();
        let (row, fields) = rows[row_pick.index(rows.len())];
        let mut data: Vec<u8> = seed.iter().copied().cycle().take(row.len).collect();
        // Bytes no field covers are reserved and encoded as zero.
        for (i, byte) in data.iter_mut().enumerate() {
            if !fields.iter().any(|f| (f.byte..f.byte + f.width).contains(&i)) {
                *byte = 0;
            }
        }
        if fields.iter().any(|f| f.support_bit.is_some()) {
            data[0] = fields.iter().filter_map(|f| f.support_bit).fold(0, |a, b| a | 1 << b);
        }
        let readings = decode(row.pid, &data).unwrap();
        let values: Vec<f64> = readings
            .iter()
            .map(|r| match r.value { Value::Number(n) => n, _ => f64::NAN })
            .collect();
        prop_assert_eq!(encode(row.pid, &values).unwrap(), data);
    }

    #[test]
    fn decode_never_panics(pid in any::<u8>(), data in prop::collection::vec(any::<u8>(), 0..12)) {
        let _ = decode(pid, &data);
        let _ = freeze_frame_dtc(&data);
    }

    #[test]
    fn encode_never_panics(pid in any::<u8>(), values in
        prop::collection::vec(any::<f64>(), 0..8)) {
        let _ = encode(pid, &values);
    }
}
