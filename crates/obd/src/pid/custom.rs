//! The named decoding rules for bit-encoded and enumerated PIDs (J1979-DA / ISO 15031-5
//! Annex B). Each rule turns the PID's bytes into readings with names, never raw numbers;
//! reserved or invalid codes read as a text saying so, never as an error, because an ECU that
//! sends them has still answered.

use super::{Custom, PidInfo, Reading, Value};

/// Decodes `data` (already checked to be `row.len` bytes) by `rule`.
pub(super) fn decode(row: &PidInfo, rule: Custom, data: &[u8]) -> Vec<Reading> {
    let pid = row.pid;
    match rule {
        Custom::SupportedPids => supported_pids(row, data),
        Custom::MonitorStatusSinceClear => monitor_status(pid, data, Cycle::SinceClear),
        Custom::MonitorStatusThisCycle => monitor_status(pid, data, Cycle::ThisDrive),
        Custom::FuelSystemStatus => fuel_system_status(pid, data),
        Custom::SecondaryAirStatus => one_text(pid, data, SECONDARY_AIR_KEY, secondary_air),
        Custom::O2SensorsTwoBanks => flags(pid, byte(data, 0), &O2_TWO_BANKS),
        Custom::O2SensorsFourBanks => flags(pid, byte(data, 0), &O2_FOUR_BANKS),
        Custom::ObdStandard => one_text(pid, data, OBD_STANDARD_KEY, obd_standard),
        Custom::AuxiliaryInput => flags(pid, byte(data, 0) & 0x01, &AUX_IO[..1]),
        Custom::FuelType => one_text(pid, data, FUEL_TYPE_KEY, fuel_type),
        Custom::EmissionRequirements => {
            one_text(pid, data, EMISSION_REQUIREMENTS_KEY, emission_requirements)
        }
        Custom::AuxiliaryIo => auxiliary_io(pid, data),
    }
}

fn byte(data: &[u8], index: usize) -> u8 {
    data.get(index).copied().unwrap_or(0)
}

fn bit(value: u8, bit: u8) -> bool {
    value.checked_shr(u32::from(bit)).unwrap_or(0) & 1 == 1
}

fn reading(pid: u8, (key, name): (&'static str, &'static str), value: Value) -> Reading {
    Reading {
        pid,
        key,
        name,
        value,
        unit: "",
    }
}

/// The PIDs flagged in a bitmap PID's four bytes (bit 7 of A = PID + 1 ... bit 0 of D =
/// PID + 0x20), as one reading.
fn supported_pids(row: &PidInfo, data: &[u8]) -> Vec<Reading> {
    let mut set = super::SupportedPids::new();
    let bitmap = [byte(data, 0), byte(data, 1), byte(data, 2), byte(data, 3)];
    // The table only routes bitmap PIDs here, so this cannot fail; an empty set if it did.
    let pids = match set.add_bitmap(row.pid, bitmap) {
        Ok(()) => set.iter().collect(),
        Err(_) => Vec::new(),
    };
    vec![Reading {
        pid: row.pid,
        key: row.key,
        name: row.name,
        value: Value::Pids(pids),
        unit: "",
    }]
}

/// One bit per reading, for the "present" and status bytes.
fn flags(pid: u8, value: u8, names: &[(&'static str, &'static str)]) -> Vec<Reading> {
    (0u8..)
        .zip(names)
        .map(|(index, &key_name)| reading(pid, key_name, Value::Bool(bit(value, index))))
        .collect()
}

fn one_text(
    pid: u8,
    data: &[u8],
    key_name: (&'static str, &'static str),
    meaning: fn(u8) -> &'static str,
) -> Vec<Reading> {
    vec![reading(pid, key_name, Value::Text(meaning(byte(data, 0))))]
}

// --- 0x01 and 0x41: monitor status ------------------------------------------------------

/// Which monitor-status PID is being read; they share a layout but not a meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cycle {
    /// `0x01`: byte A is MIL and DTC count; "supported" bits say which monitors exist.
    SinceClear,
    /// `0x41`: byte A is reserved; the same bits say which monitors are enabled this drive.
    ThisDrive,
}

/// A readiness monitor: its bit, and the key and name of each reading about it.
#[derive(Debug, Clone, Copy)]
struct Monitor {
    bit: u8,
    available: (&'static str, &'static str),
    enabled: (&'static str, &'static str),
    complete: (&'static str, &'static str),
}

const fn monitor(bit: u8, keys: [&'static str; 3], names: [&'static str; 3]) -> Monitor {
    Monitor {
        bit,
        available: (keys[0], names[0]),
        enabled: (keys[1], names[1]),
        complete: (keys[2], names[2]),
    }
}

/// Byte B, bits 0-2 (supported/enabled) and 4-6 (incomplete): the continuous monitors.
const CONTINUOUS: [Monitor; 3] = [
    monitor(
        0,
        ["misfire_available", "misfire_enabled", "misfire_complete"],
        [
            "Misfire monitor available",
            "Misfire monitor enabled",
            "Misfire monitor complete",
        ],
    ),
    monitor(
        1,
        [
            "fuel_system_available",
            "fuel_system_enabled",
            "fuel_system_complete",
        ],
        [
            "Fuel system monitor available",
            "Fuel system monitor enabled",
            "Fuel system monitor complete",
        ],
    ),
    monitor(
        2,
        [
            "components_available",
            "components_enabled",
            "components_complete",
        ],
        [
            "Comprehensive component monitor available",
            "Comprehensive component monitor enabled",
            "Comprehensive component monitor complete",
        ],
    ),
];

/// Bytes C (supported/enabled) and D (incomplete), spark ignition (byte B bit 3 clear).
const SPARK: [Monitor; 8] = [
    monitor(
        0,
        [
            "catalyst_available",
            "catalyst_enabled",
            "catalyst_complete",
        ],
        [
            "Catalyst monitor available",
            "Catalyst monitor enabled",
            "Catalyst monitor complete",
        ],
    ),
    monitor(
        1,
        [
            "heated_catalyst_available",
            "heated_catalyst_enabled",
            "heated_catalyst_complete",
        ],
        [
            "Heated catalyst monitor available",
            "Heated catalyst monitor enabled",
            "Heated catalyst monitor complete",
        ],
    ),
    monitor(
        2,
        [
            "evap_system_available",
            "evap_system_enabled",
            "evap_system_complete",
        ],
        [
            "Evaporative system monitor available",
            "Evaporative system monitor enabled",
            "Evaporative system monitor complete",
        ],
    ),
    monitor(
        3,
        [
            "secondary_air_available",
            "secondary_air_enabled",
            "secondary_air_complete",
        ],
        [
            "Secondary air system monitor available",
            "Secondary air system monitor enabled",
            "Secondary air system monitor complete",
        ],
    ),
    monitor(
        4,
        [
            "ac_refrigerant_available",
            "ac_refrigerant_enabled",
            "ac_refrigerant_complete",
        ],
        [
            "A/C refrigerant monitor available",
            "A/C refrigerant monitor enabled",
            "A/C refrigerant monitor complete",
        ],
    ),
    monitor(
        5,
        [
            "o2_sensor_available",
            "o2_sensor_enabled",
            "o2_sensor_complete",
        ],
        [
            "Oxygen sensor monitor available",
            "Oxygen sensor monitor enabled",
            "Oxygen sensor monitor complete",
        ],
    ),
    monitor(
        6,
        [
            "o2_heater_available",
            "o2_heater_enabled",
            "o2_heater_complete",
        ],
        [
            "Oxygen sensor heater monitor available",
            "Oxygen sensor heater monitor enabled",
            "Oxygen sensor heater monitor complete",
        ],
    ),
    monitor(
        7,
        [
            "egr_system_available",
            "egr_system_enabled",
            "egr_system_complete",
        ],
        [
            "EGR and/or VVT system monitor available",
            "EGR and/or VVT system monitor enabled",
            "EGR and/or VVT system monitor complete",
        ],
    ),
];

/// Bytes C and D, compression ignition (byte B bit 3 set); bits 2 and 4 are reserved.
const COMPRESSION: [Monitor; 6] = [
    monitor(
        0,
        [
            "nmhc_catalyst_available",
            "nmhc_catalyst_enabled",
            "nmhc_catalyst_complete",
        ],
        [
            "NMHC catalyst monitor available",
            "NMHC catalyst monitor enabled",
            "NMHC catalyst monitor complete",
        ],
    ),
    monitor(
        1,
        [
            "nox_aftertreatment_available",
            "nox_aftertreatment_enabled",
            "nox_aftertreatment_complete",
        ],
        [
            "NOx/SCR aftertreatment monitor available",
            "NOx/SCR aftertreatment monitor enabled",
            "NOx/SCR aftertreatment monitor complete",
        ],
    ),
    monitor(
        3,
        [
            "boost_pressure_available",
            "boost_pressure_enabled",
            "boost_pressure_complete",
        ],
        [
            "Boost pressure monitor available",
            "Boost pressure monitor enabled",
            "Boost pressure monitor complete",
        ],
    ),
    monitor(
        5,
        [
            "exhaust_gas_sensor_available",
            "exhaust_gas_sensor_enabled",
            "exhaust_gas_sensor_complete",
        ],
        [
            "Exhaust gas sensor monitor available",
            "Exhaust gas sensor monitor enabled",
            "Exhaust gas sensor monitor complete",
        ],
    ),
    monitor(
        6,
        [
            "pm_filter_available",
            "pm_filter_enabled",
            "pm_filter_complete",
        ],
        [
            "PM filter monitor available",
            "PM filter monitor enabled",
            "PM filter monitor complete",
        ],
    ),
    monitor(
        7,
        [
            "egr_vvt_system_available",
            "egr_vvt_system_enabled",
            "egr_vvt_system_complete",
        ],
        [
            "EGR and/or VVT system monitor available",
            "EGR and/or VVT system monitor enabled",
            "EGR and/or VVT system monitor complete",
        ],
    ),
];

/// `0x01` / `0x41`. Byte A (0x01 only): bit 7 MIL on, bits 0-6 number of confirmed DTCs.
/// Byte B: bits 0-2 continuous monitors supported (enabled), bit 3 compression ignition,
/// bits 4-6 the same monitors *incomplete*. Bytes C/D: the non-continuous monitors, supported
/// (enabled) and incomplete; which set depends on bit B3. J1979 reports a monitor that is not
/// supported as complete, so `*_complete` is meaningful only where `*_available` is true.
fn monitor_status(pid: u8, data: &[u8], cycle: Cycle) -> Vec<Reading> {
    let (a, b, c, d) = (byte(data, 0), byte(data, 1), byte(data, 2), byte(data, 3));
    let compression = bit(b, 3);
    let mut readings = Vec::with_capacity(32);
    if cycle == Cycle::SinceClear {
        readings.push(reading(
            pid,
            ("mil_on", "Malfunction indicator lamp on"),
            Value::Bool(bit(a, 7)),
        ));
        readings.push(Reading {
            pid,
            key: "dtc_count",
            name: "Confirmed emission-related DTCs",
            value: Value::Number(f64::from(a & 0x7F)),
            unit: "count",
        });
    }
    let ignition = if compression {
        "compression ignition"
    } else {
        "spark ignition"
    };
    readings.push(reading(
        pid,
        ("ignition_type", "Ignition type"),
        Value::Text(ignition),
    ));
    for m in &CONTINUOUS {
        push_monitor(
            &mut readings,
            pid,
            cycle,
            m,
            bit(b, m.bit),
            !bit(b, m.bit + 4),
        );
    }
    let set: &[Monitor] = if compression { &COMPRESSION } else { &SPARK };
    for m in set {
        push_monitor(&mut readings, pid, cycle, m, bit(c, m.bit), !bit(d, m.bit));
    }
    readings
}

fn push_monitor(
    readings: &mut Vec<Reading>,
    pid: u8,
    cycle: Cycle,
    monitor: &Monitor,
    available: bool,
    complete: bool,
) {
    let first = match cycle {
        Cycle::SinceClear => monitor.available,
        Cycle::ThisDrive => monitor.enabled,
    };
    readings.push(reading(pid, first, Value::Bool(available)));
    readings.push(reading(pid, monitor.complete, Value::Bool(complete)));
}

// --- 0x03: fuel system status -----------------------------------------------------------

/// `0x03`: byte A is fuel system 1, byte B fuel system 2 (`0x00` when there is none). Exactly
/// one state bit is set in a valid byte.
fn fuel_system_status(pid: u8, data: &[u8]) -> Vec<Reading> {
    vec![
        reading(
            pid,
            ("fuel_system_1_status", "Fuel system 1 status"),
            Value::Text(fuel_system(byte(data, 0))),
        ),
        reading(
            pid,
            ("fuel_system_2_status", "Fuel system 2 status"),
            Value::Text(fuel_system(byte(data, 1))),
        ),
    ]
}

fn fuel_system(state: u8) -> &'static str {
    match state {
        0x00 => "not present",
        0x01 => "open loop, conditions for closed loop not yet met",
        0x02 => "closed loop, using oxygen sensor feedback",
        0x04 => "open loop due to driving conditions (power enrichment, deceleration)",
        0x08 => "open loop due to detected system fault",
        0x10 => "closed loop, fault in at least one oxygen sensor",
        _ => "invalid (not exactly one state bit set)",
    }
}

// --- 0x12: commanded secondary air --------------------------------------------------------

const SECONDARY_AIR_KEY: (&str, &str) = ("secondary_air_status", "Commanded secondary air status");

fn secondary_air(state: u8) -> &'static str {
    match state {
        0x01 => "upstream of first catalytic converter",
        0x02 => "downstream of first catalytic converter inlet",
        0x04 => "from the outside atmosphere or off",
        0x08 => "pump commanded on for diagnostics",
        _ => "invalid (not exactly one state bit set)",
    }
}

// --- 0x13 and 0x1D: O2 sensors present ----------------------------------------------------

/// `0x13`: bits 0-3 bank 1 sensors 1-4, bits 4-7 bank 2 sensors 1-4.
const O2_TWO_BANKS: [(&str, &str); 8] = [
    ("o2_b1s1_present", "Oxygen sensor bank 1 sensor 1 present"),
    ("o2_b1s2_present", "Oxygen sensor bank 1 sensor 2 present"),
    ("o2_b1s3_present", "Oxygen sensor bank 1 sensor 3 present"),
    ("o2_b1s4_present", "Oxygen sensor bank 1 sensor 4 present"),
    ("o2_b2s1_present", "Oxygen sensor bank 2 sensor 1 present"),
    ("o2_b2s2_present", "Oxygen sensor bank 2 sensor 2 present"),
    ("o2_b2s3_present", "Oxygen sensor bank 2 sensor 3 present"),
    ("o2_b2s4_present", "Oxygen sensor bank 2 sensor 4 present"),
];

/// `0x1D`: bits 0-1 bank 1, 2-3 bank 2, 4-5 bank 3, 6-7 bank 4, sensors 1-2 each.
const O2_FOUR_BANKS: [(&str, &str); 8] = [
    ("o2_b1s1_present", "Oxygen sensor bank 1 sensor 1 present"),
    ("o2_b1s2_present", "Oxygen sensor bank 1 sensor 2 present"),
    ("o2_b2s1_present", "Oxygen sensor bank 2 sensor 1 present"),
    ("o2_b2s2_present", "Oxygen sensor bank 2 sensor 2 present"),
    ("o2_b3s1_present", "Oxygen sensor bank 3 sensor 1 present"),
    ("o2_b3s2_present", "Oxygen sensor bank 3 sensor 2 present"),
    ("o2_b4s1_present", "Oxygen sensor bank 4 sensor 1 present"),
    ("o2_b4s2_present", "Oxygen sensor bank 4 sensor 2 present"),
];

// --- 0x1C: OBD standard -------------------------------------------------------------------

const OBD_STANDARD_KEY: (&str, &str) = ("obd_standard", "OBD standard this vehicle conforms to");

/// J1979-DA table of OBD requirements. `0x0E`-`0x10` are the heavy-duty Euro IV/V/EEV codes
/// of the 2002 edition; `0xFB`-`0xFF` are not available for assignment (J1939 special values).
fn obd_standard(code: u8) -> &'static str {
    match code {
        0x01 => "OBD-II as defined by CARB",
        0x02 => "OBD as defined by the EPA",
        0x03 => "OBD and OBD-II",
        0x04 => "OBD-I",
        0x05 => "Not OBD compliant",
        0x06 => "EOBD",
        0x07 => "EOBD and OBD-II",
        0x08 => "EOBD and OBD",
        0x09 => "EOBD, OBD and OBD-II",
        0x0A => "JOBD",
        0x0B => "JOBD and OBD-II",
        0x0C => "JOBD and EOBD",
        0x0D => "JOBD, EOBD and OBD-II",
        0x0E => "Heavy duty vehicles (Euro IV) B1",
        0x0F => "Heavy duty vehicles (Euro V) B2",
        0x10 => "Heavy duty vehicles (Euro EEV) C",
        0x11 => "Engine manufacturer diagnostics (EMD)",
        0x12 => "Engine manufacturer diagnostics enhanced (EMD+)",
        0x13 => "Heavy duty OBD child/partial (HD OBD-C)",
        0x14 => "Heavy duty OBD (HD OBD)",
        0x15 => "World-wide harmonised OBD (WWH OBD)",
        0x17 => "Heavy duty Euro OBD stage I without NOx control (HD EOBD-I)",
        0x18 => "Heavy duty Euro OBD stage I with NOx control (HD EOBD-I N)",
        0x19 => "Heavy duty Euro OBD stage II without NOx control (HD EOBD-II)",
        0x1A => "Heavy duty Euro OBD stage II with NOx control (HD EOBD-II N)",
        0x1C => "Brazil OBD phase 1 (OBDBr-1)",
        0x1D => "Brazil OBD phase 2 (OBDBr-2)",
        0x1E => "Korean OBD (KOBD)",
        0x1F => "India OBD I (IOBD I)",
        0x20 => "India OBD II (IOBD II)",
        0x21 => "Heavy duty Euro OBD stage VI (HD EOBD-IV)",
        0xFB..=0xFF => "not available for assignment",
        _ => "reserved",
    }
}

// --- 0x1E and 0x65: auxiliary inputs and outputs ------------------------------------------

/// Bit n of `0x65` byte A says whether the state in bit n of byte B is reported; `0x1E` has
/// only bit 0 (PTO).
const AUX_IO: [(&str, &str); 4] = [
    ("pto_active", "Power take-off active"),
    (
        "automatic_transmission_in_drive",
        "Automatic transmission in drive or reverse",
    ),
    ("manual_transmission_in_gear", "Manual transmission in gear"),
    ("glow_plug_lamp_on", "Glow plug lamp on"),
];

fn auxiliary_io(pid: u8, data: &[u8]) -> Vec<Reading> {
    let (supported, state) = (byte(data, 0), byte(data, 1));
    (0u8..)
        .zip(&AUX_IO)
        .filter(|(index, _)| bit(supported, *index))
        .map(|(index, &key_name)| reading(pid, key_name, Value::Bool(bit(state, index))))
        .collect()
}

// --- 0x51: fuel type ----------------------------------------------------------------------

const FUEL_TYPE_KEY: (&str, &str) = ("fuel_type", "Fuel type");

fn fuel_type(code: u8) -> &'static str {
    match code {
        0x00 => "not available",
        0x01 => "gasoline",
        0x02 => "methanol",
        0x03 => "ethanol",
        0x04 => "diesel",
        0x05 => "LPG",
        0x06 => "CNG",
        0x07 => "propane",
        0x08 => "electric",
        0x09 => "bi-fuel running gasoline",
        0x0A => "bi-fuel running methanol",
        0x0B => "bi-fuel running ethanol",
        0x0C => "bi-fuel running LPG",
        0x0D => "bi-fuel running CNG",
        0x0E => "bi-fuel running propane",
        0x0F => "bi-fuel running electricity",
        0x10 => "bi-fuel running electric and combustion engine",
        0x11 => "hybrid gasoline",
        0x12 => "hybrid ethanol",
        0x13 => "hybrid diesel",
        0x14 => "hybrid electric",
        0x15 => "hybrid running electric and combustion engine",
        0x16 => "hybrid regenerative",
        0x17 => "bi-fuel running diesel",
        _ => "reserved",
    }
}

// --- 0x5F: emission requirements ----------------------------------------------------------

const EMISSION_REQUIREMENTS_KEY: (&str, &str) = (
    "emission_requirements",
    "Emission requirements to which vehicle is designed",
);

fn emission_requirements(code: u8) -> &'static str {
    match code {
        0x0E => "Heavy duty vehicles (Euro IV) B1",
        0x0F => "Heavy duty vehicles (Euro V) B2",
        0x10 => "Heavy duty vehicles (Euro EEV) C",
        _ => "reserved",
    }
}
