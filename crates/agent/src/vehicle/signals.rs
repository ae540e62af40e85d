//! Signal names for Mode 01 PIDs, and the schedules the agent ships with.
//!
//! Names follow COVESA VSS 4.x where VSS has the quantity: a signal of the main tree when its
//! meaning is the same (`Vehicle.Speed`, `Vehicle.Powertrain.CombustionEngine.ECT`), else the
//! one-signal-per-PID `Vehicle.OBD.*` branch. A PID VSS does not name (or whose answer is
//! several values or words) is called `obd.<key>` after telltale-obd's PID table, so every PID
//! the agent can decode has exactly one name, and every name resolves back to its PID. The
//! cloud receives the PID beside the name in every sample either way.
//!
//! A PID that decodes into several readings (PID 01, the O2 sensor pairs) produces one sample
//! per reading, named `<signal>.<reading key>`; see [`sample_name`].

use std::time::Duration;

use telltale_obd::pid::{self, Reading, Value};
use telltale_wire::v1;

use super::SignalSpec;

/// PID → VSS 4.x name, for the PIDs VSS covers. Checked against the VSS 4.x vspec files
/// (`Vehicle.vspec`, `Powertrain/*.vspec`, `OBD/OBD.vspec`).
const VSS: &[(u8, &str)] = &[
    (0x04, "Vehicle.OBD.EngineLoad"),
    (0x05, "Vehicle.Powertrain.CombustionEngine.ECT"),
    (0x06, "Vehicle.OBD.ShortTermFuelTrim1"),
    (0x07, "Vehicle.OBD.LongTermFuelTrim1"),
    (0x08, "Vehicle.OBD.ShortTermFuelTrim2"),
    (0x09, "Vehicle.OBD.LongTermFuelTrim2"),
    (0x0A, "Vehicle.OBD.FuelPressure"),
    (0x0B, "Vehicle.Powertrain.CombustionEngine.MAP"),
    (0x0C, "Vehicle.Powertrain.CombustionEngine.Speed"),
    (0x0D, "Vehicle.Speed"),
    (0x0E, "Vehicle.OBD.TimingAdvance"),
    (0x0F, "Vehicle.OBD.IntakeTemp"),
    (0x10, "Vehicle.Powertrain.CombustionEngine.MAF"),
    (0x11, "Vehicle.OBD.ThrottlePosition"),
    (0x1F, "Vehicle.OBD.RunTime"),
    (0x21, "Vehicle.OBD.DistanceWithMIL"),
    (0x22, "Vehicle.OBD.FuelRailPressureVac"),
    (0x23, "Vehicle.OBD.FuelRailPressureDirect"),
    (0x2C, "Vehicle.OBD.CommandedEGR"),
    (0x2D, "Vehicle.OBD.EGRError"),
    (0x2E, "Vehicle.OBD.CommandedEVAP"),
    (0x2F, "Vehicle.Powertrain.FuelSystem.RelativeLevel"),
    (0x30, "Vehicle.OBD.WarmupsSinceDTCClear"),
    (0x31, "Vehicle.OBD.DistanceSinceDTCClear"),
    (0x32, "Vehicle.OBD.EVAPVaporPressure"),
    (0x33, "Vehicle.OBD.BarometricPressure"),
    (0x3C, "Vehicle.OBD.Catalyst.Bank1.Temperature1"),
    (0x3D, "Vehicle.OBD.Catalyst.Bank2.Temperature1"),
    (0x3E, "Vehicle.OBD.Catalyst.Bank1.Temperature2"),
    (0x3F, "Vehicle.OBD.Catalyst.Bank2.Temperature2"),
    (0x42, "Vehicle.LowVoltageBattery.CurrentVoltage"),
    (0x43, "Vehicle.OBD.AbsoluteLoad"),
    (0x44, "Vehicle.OBD.CommandedEquivalenceRatio"),
    (0x45, "Vehicle.OBD.RelativeThrottlePosition"),
    (0x46, "Vehicle.Exterior.AirTemperature"),
    (0x47, "Vehicle.OBD.ThrottlePositionB"),
    (0x48, "Vehicle.OBD.ThrottlePositionC"),
    (0x49, "Vehicle.OBD.AcceleratorPositionD"),
    (0x4A, "Vehicle.OBD.AcceleratorPositionE"),
    (0x4B, "Vehicle.OBD.AcceleratorPositionF"),
    (0x4C, "Vehicle.OBD.ThrottleActuator"),
    (0x4D, "Vehicle.OBD.RunTimeMIL"),
    (0x4E, "Vehicle.OBD.TimeSinceDTCCleared"),
    (0x50, "Vehicle.OBD.MaxMAF"),
    (0x52, "Vehicle.OBD.EthanolPercent"),
    (0x53, "Vehicle.OBD.EVAPVaporPressureAbsolute"),
    (0x54, "Vehicle.OBD.EVAPVaporPressureAlternate"),
    (0x59, "Vehicle.OBD.FuelRailPressureAbsolute"),
    (0x5A, "Vehicle.OBD.RelativeAcceleratorPosition"),
    (0x5B, "Vehicle.OBD.HybridBatteryRemaining"),
    (0x5C, "Vehicle.Powertrain.CombustionEngine.EOT"),
    (0x5E, "Vehicle.OBD.FuelRate"),
    (0xA6, "Vehicle.TraveledDistance"),
];

/// Prefix of the names telltale gives PIDs VSS does not cover.
const OBD_PREFIX: &str = "obd.";

/// Whether `pid` is a Mode 01 PID the agent can sample: known to telltale-obd and not a
/// supported-PIDs bitmap.
pub fn is_sampleable(pid: u8) -> bool {
    pid::info(pid).is_some() && !pid::is_bitmap_pid(pid)
}

/// The signal name of a sampleable PID: its VSS name, else `obd.<key>`. `None` for PIDs the
/// agent cannot decode.
pub fn name_for(pid: u8) -> Option<String> {
    if !is_sampleable(pid) {
        return None;
    }
    if let Some((_, name)) = VSS.iter().find(|(p, _)| *p == pid) {
        return Some((*name).to_owned());
    }
    pid::info(pid).map(|row| format!("{OBD_PREFIX}{}", row.key))
}

/// The PID behind a signal name (either form [`name_for`] gives, or a PID written as hex:
/// `0D`, `0x0D`). Case matters for names, as in VSS.
pub fn pid_for(name: &str) -> Option<u8> {
    if let Some((pid, _)) = VSS.iter().find(|(_, n)| *n == name) {
        return Some(*pid);
    }
    if let Some(key) = name.strip_prefix(OBD_PREFIX) {
        return pid::all()
            .iter()
            .find(|row| row.key == key)
            .map(|row| row.pid)
            .filter(|&p| is_sampleable(p));
    }
    let hex = name
        .strip_prefix("0x")
        .or_else(|| name.strip_prefix("0X"))
        .unwrap_or(name);
    if hex.len() <= 2 {
        return u8::from_str_radix(hex, 16)
            .ok()
            .filter(|&p| is_sampleable(p));
    }
    None
}

/// A signal to sample every `period`, named as [`name_for`] names it.
fn spec(pid: u8, period_ms: u64) -> Option<SignalSpec> {
    Some(SignalSpec {
        name: name_for(pid)?,
        pid,
        period: Duration::from_millis(period_ms),
    })
}

/// What the agent samples when the configuration names nothing: the signals a fleet
/// dashboard and the cloud's rules use, each as often as it usefully changes.
pub fn default_schedule() -> Vec<SignalSpec> {
    [
        (0x0D, 1_000),  // vehicle speed
        (0x0C, 1_000),  // engine speed
        (0x04, 2_000),  // engine load
        (0x11, 2_000),  // throttle
        (0x10, 2_000),  // air flow
        (0x05, 10_000), // coolant
        (0x0F, 10_000), // intake air
        (0x42, 10_000), // battery voltage
        (0x2F, 60_000), // fuel level
        (0x46, 60_000), // ambient air
        (0xA6, 60_000), // odometer
    ]
    .into_iter()
    .filter_map(|(pid, ms)| spec(pid, ms))
    .collect()
}

/// Twenty engine PIDs at 1 Hz: the fixed load the footprint benchmark measures (on the
/// simulator all are the engine's, so four physical requests a second: 6 + 6 + 6 + 2 PIDs).
pub fn benchmark_schedule() -> Vec<SignalSpec> {
    [
        0x04, 0x05, 0x06, 0x07, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x1F, 0x2F, 0x33, 0x3C,
        0x42, 0x43, 0x46, 0x5C, 0xA6,
    ]
    .into_iter()
    .filter_map(|pid| spec(pid, 1_000))
    .collect()
}

/// The name of the sample made from `reading` of signal `signal`: the signal's own name when
/// the PID decodes into one reading, else `<signal>.<reading key>`.
pub fn sample_name(signal: &str, reading: &Reading, readings_in_pid: usize) -> String {
    if readings_in_pid <= 1 {
        signal.to_owned()
    } else {
        format!("{signal}.{}", reading.key)
    }
}

/// A reading's number as the wire carries it (booleans as 0/1) and its text; `None` for
/// values that are not a signal (supported-PID lists).
pub fn wire_value(value: &Value) -> Option<(f64, String)> {
    match value {
        Value::Number(n) => Some((*n, String::new())),
        Value::Bool(b) => Some((if *b { 1.0 } else { 0.0 }, String::new())),
        Value::Text(t) => Some((0.0, (*t).to_owned())),
        Value::Pids(_) => None,
    }
}

/// Samples for one PID's readings, named after `signal`.
pub fn samples(
    signal: &str,
    pid: u8,
    readings: &[Reading],
    ecu_can_id: u32,
    device_unix_ms: i64,
) -> Vec<v1::Sample> {
    readings
        .iter()
        .filter_map(|r| {
            let (value, text) = wire_value(&r.value)?;
            Some(v1::Sample {
                signal: sample_name(signal, r, readings.len()),
                value,
                device_unix_ms,
                service: 0x01,
                pid: u32::from(pid),
                ecu_can_id,
                unit: r.unit.to_owned(),
                text,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_from_the_brief_and_both_directions() {
        assert_eq!(name_for(0x0D).as_deref(), Some("Vehicle.Speed"));
        assert_eq!(
            name_for(0x0C).as_deref(),
            Some("Vehicle.Powertrain.CombustionEngine.Speed")
        );
        assert_eq!(
            name_for(0x05).as_deref(),
            Some("Vehicle.Powertrain.CombustionEngine.ECT")
        );
        assert_eq!(name_for(0xA6).as_deref(), Some("Vehicle.TraveledDistance"));
        assert_eq!(
            name_for(0x03).as_deref(),
            Some("obd.fuel_system_status"),
            "no VSS name: telltale's key"
        );
        assert_eq!(name_for(0x00), None, "bitmaps are not signals");
        assert_eq!(name_for(0x6B), None, "unknown PID");
        for p in 0u8..=0xFF {
            if let Some(name) = name_for(p) {
                assert_eq!(pid_for(&name), Some(p), "{name}");
            }
        }
        assert_eq!(pid_for("0x0d"), Some(0x0D));
        assert_eq!(pid_for("42"), Some(0x42));
        assert_eq!(pid_for("20"), None, "bitmap");
        assert_eq!(pid_for("Vehicle.Nothing"), None);
        assert_eq!(pid_for("obd.pids_supported_01_20"), None);
    }

    #[test]
    fn every_vss_row_is_a_known_pid_once() {
        let mut seen = std::collections::HashSet::new();
        for (pid, name) in VSS {
            assert!(is_sampleable(*pid), "{pid:02X}");
            assert!(name.starts_with("Vehicle."), "{name}");
            assert!(seen.insert(*name), "{name} twice");
        }
    }

    #[test]
    fn schedules() {
        let d = default_schedule();
        assert!((8..=12).contains(&d.len()), "{}", d.len());
        let b = benchmark_schedule();
        assert_eq!(b.len(), 20);
        assert!(b.iter().all(|s| s.period == Duration::from_secs(1)));
        let mut pids: Vec<u8> = b.iter().map(|s| s.pid).collect();
        pids.dedup();
        assert_eq!(pids.len(), 20);
    }

    #[test]
    fn multi_reading_pids_name_each_reading() {
        let Some(readings) = pid::decode(0x14, &[0x80, 0x90]).ok() else {
            panic!("decode 14")
        };
        let s = samples("obd.o2_b1s1_voltage_trim", 0x14, &readings, 0x7E8, 5);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].signal, "obd.o2_b1s1_voltage_trim.o2_b1s1_voltage");
        assert!((s[0].value - 0.64).abs() < 1e-9);
        assert_eq!(s[0].ecu_can_id, 0x7E8);
        let Some(speed) = pid::decode(0x0D, &[88]).ok() else {
            panic!("decode 0D")
        };
        let s = samples("Vehicle.Speed", 0x0D, &speed, 0x7E9, 5);
        assert_eq!(s[0].signal, "Vehicle.Speed");
        assert_eq!(s[0].value, 88.0);
        assert_eq!(s[0].unit, "km/h");
        assert_eq!((s[0].service, s[0].pid), (1, 0x0D));
    }
}
