//! The PID table: one row per standardised PID, in PID order (J1979-DA / ISO 15031-5 Annex B).
//!
//! Rows are data: a linear row lists its fields (`value = raw · num / den + offset`), written
//! with the standard's own fractions (`100/255`, `100/128 − 100`) so they can be checked
//! against it by eye.

use super::{Custom, Field, Formula, PidInfo, Sentinel};

/// What O2 trim byte `0xFF` means (J1979 PIDs `0x14`–`0x1B`, byte B).
const NOT_USED_IN_TRIM: &str = "sensor not used in trim calculation";

/// An unsigned big-endian field: `raw · num / den + offset`.
#[allow(clippy::too_many_arguments)]
const fn lin(
    key: &'static str,
    name: &'static str,
    unit: &'static str,
    byte: usize,
    width: usize,
    num: i64,
    den: i64,
    offset: i64,
) -> Field {
    Field {
        key,
        name,
        unit,
        byte,
        width,
        signed: false,
        num,
        den,
        offset,
        support_bit: None,
        sentinel: None,
    }
}

/// The same field read as two's complement.
const fn signed(field: Field) -> Field {
    Field {
        signed: true,
        ..field
    }
}

/// The same field, reported only when bit `bit` of byte A is set.
const fn when(bit: u8, field: Field) -> Field {
    Field {
        support_bit: Some(bit),
        ..field
    }
}

/// The same field, with a raw value that means something other than a number.
const fn sentinel(field: Field, raw: i64, meaning: &'static str) -> Field {
    Field {
        sentinel: Some(Sentinel { raw, meaning }),
        ..field
    }
}

/// `A · 100/255` %: positions, loads, duty cycles.
const fn percent(key: &'static str, name: &'static str, byte: usize) -> Field {
    lin(key, name, "%", byte, 1, 100, 255, 0)
}

/// `A − 40` °C: the one-byte temperatures.
const fn celsius(key: &'static str, name: &'static str, byte: usize) -> Field {
    lin(key, name, "°C", byte, 1, 1, 1, -40)
}

/// `A · 100/128 − 100` %: trims and errors centred on `0x80`.
const fn trim(key: &'static str, name: &'static str, byte: usize) -> Field {
    lin(key, name, "%", byte, 1, 100, 128, -100)
}

/// O2 sensor short-term fuel trim: [`trim`], with `0xFF` meaning the sensor is not used.
const fn o2_trim(key: &'static str, name: &'static str, byte: usize) -> Field {
    sentinel(trim(key, name, byte), 0xFF, NOT_USED_IN_TRIM)
}

/// `A − 125` %: engine torque as a percentage of the reference torque.
const fn torque(key: &'static str, name: &'static str, byte: usize) -> Field {
    lin(key, name, "%", byte, 1, 1, 1, -125)
}

/// A row with one linear field; the row takes the field's key, name and unit.
const fn single(pid: u8, len: usize, fields: &'static [Field]) -> PidInfo {
    let (key, name, unit) = match fields {
        [field, ..] => (field.key, field.name, field.unit),
        [] => ("", "", ""),
    };
    PidInfo {
        pid,
        key,
        name,
        unit,
        len,
        formula: Formula::Linear(fields),
    }
}

/// A row with several linear fields.
const fn multi(
    pid: u8,
    key: &'static str,
    name: &'static str,
    unit: &'static str,
    len: usize,
    fields: &'static [Field],
) -> PidInfo {
    PidInfo {
        pid,
        key,
        name,
        unit,
        len,
        formula: Formula::Linear(fields),
    }
}

/// A row decoded by a named rule.
const fn custom(
    pid: u8,
    key: &'static str,
    name: &'static str,
    len: usize,
    rule: Custom,
) -> PidInfo {
    PidInfo {
        pid,
        key,
        name,
        unit: "",
        len,
        formula: Formula::Custom(rule),
    }
}

/// A supported-PIDs bitmap row.
const fn bitmap(pid: u8, key: &'static str, name: &'static str) -> PidInfo {
    custom(pid, key, name, 4, Custom::SupportedPids)
}

/// Every PID this crate knows, ordered by PID (the lookup is a binary search).
#[rustfmt::skip]
pub(super) static PIDS: &[PidInfo] = &[
    bitmap(0x00, "pids_supported_01_20", "PIDs supported [01-20]"),
    custom(0x01, "monitor_status", "Monitor status since DTCs cleared", 4, Custom::MonitorStatusSinceClear),
    // Mode 02 only: the DTC that caused the freeze frame, two raw bytes for `dtc` to render.
    single(0x02, 2, &[lin("freeze_frame_dtc", "DTC that caused the freeze frame", "", 0, 2, 1, 1, 0)]),
    custom(0x03, "fuel_system_status", "Fuel system status", 2, Custom::FuelSystemStatus),
    single(0x04, 1, &[percent("engine_load", "Calculated engine load", 0)]),
    single(0x05, 1, &[celsius("coolant_temperature", "Engine coolant temperature", 0)]),
    single(0x06, 1, &[trim("short_term_fuel_trim_bank1", "Short-term fuel trim bank 1", 0)]),
    single(0x07, 1, &[trim("long_term_fuel_trim_bank1", "Long-term fuel trim bank 1", 0)]),
    single(0x08, 1, &[trim("short_term_fuel_trim_bank2", "Short-term fuel trim bank 2", 0)]),
    single(0x09, 1, &[trim("long_term_fuel_trim_bank2", "Long-term fuel trim bank 2", 0)]),
    single(0x0A, 1, &[lin("fuel_pressure", "Fuel pressure (gauge)", "kPa", 0, 1, 3, 1, 0)]),
    single(0x0B, 1, &[lin("intake_map", "Intake manifold absolute pressure", "kPa", 0, 1, 1, 1, 0)]),
    single(0x0C, 2, &[lin("engine_speed", "Engine speed", "rpm", 0, 2, 1, 4, 0)]),
    single(0x0D, 1, &[lin("vehicle_speed", "Vehicle speed", "km/h", 0, 1, 1, 1, 0)]),
    single(0x0E, 1, &[lin("timing_advance", "Ignition timing advance for cylinder 1", "°", 0, 1, 1, 2, -64)]),
    single(0x0F, 1, &[celsius("intake_air_temperature", "Intake air temperature", 0)]),
    single(0x10, 2, &[lin("maf_rate", "Mass air flow rate", "g/s", 0, 2, 1, 100, 0)]),
    single(0x11, 1, &[percent("throttle_position", "Absolute throttle position", 0)]),
    custom(0x12, "secondary_air_status", "Commanded secondary air status", 1, Custom::SecondaryAirStatus),
    custom(0x13, "o2_sensors_present", "Oxygen sensors present (2 banks)", 1, Custom::O2SensorsTwoBanks),
    multi(0x14, "o2_b1s1_voltage_trim", "O2 sensor bank 1 sensor 1: voltage and fuel trim", "", 2, &[
        lin("o2_b1s1_voltage", "Oxygen sensor bank 1 sensor 1 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b1s1_fuel_trim", "Oxygen sensor bank 1 sensor 1 short-term fuel trim", 1),
    ]),
    multi(0x15, "o2_b1s2_voltage_trim", "O2 sensor bank 1 sensor 2: voltage and fuel trim", "", 2, &[
        lin("o2_b1s2_voltage", "Oxygen sensor bank 1 sensor 2 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b1s2_fuel_trim", "Oxygen sensor bank 1 sensor 2 short-term fuel trim", 1),
    ]),
    multi(0x16, "o2_b1s3_voltage_trim", "O2 sensor bank 1 sensor 3: voltage and fuel trim", "", 2, &[
        lin("o2_b1s3_voltage", "Oxygen sensor bank 1 sensor 3 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b1s3_fuel_trim", "Oxygen sensor bank 1 sensor 3 short-term fuel trim", 1),
    ]),
    multi(0x17, "o2_b1s4_voltage_trim", "O2 sensor bank 1 sensor 4: voltage and fuel trim", "", 2, &[
        lin("o2_b1s4_voltage", "Oxygen sensor bank 1 sensor 4 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b1s4_fuel_trim", "Oxygen sensor bank 1 sensor 4 short-term fuel trim", 1),
    ]),
    multi(0x18, "o2_b2s1_voltage_trim", "O2 sensor bank 2 sensor 1: voltage and fuel trim", "", 2, &[
        lin("o2_b2s1_voltage", "Oxygen sensor bank 2 sensor 1 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b2s1_fuel_trim", "Oxygen sensor bank 2 sensor 1 short-term fuel trim", 1),
    ]),
    multi(0x19, "o2_b2s2_voltage_trim", "O2 sensor bank 2 sensor 2: voltage and fuel trim", "", 2, &[
        lin("o2_b2s2_voltage", "Oxygen sensor bank 2 sensor 2 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b2s2_fuel_trim", "Oxygen sensor bank 2 sensor 2 short-term fuel trim", 1),
    ]),
    multi(0x1A, "o2_b2s3_voltage_trim", "O2 sensor bank 2 sensor 3: voltage and fuel trim", "", 2, &[
        lin("o2_b2s3_voltage", "Oxygen sensor bank 2 sensor 3 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b2s3_fuel_trim", "Oxygen sensor bank 2 sensor 3 short-term fuel trim", 1),
    ]),
    multi(0x1B, "o2_b2s4_voltage_trim", "O2 sensor bank 2 sensor 4: voltage and fuel trim", "", 2, &[
        lin("o2_b2s4_voltage", "Oxygen sensor bank 2 sensor 4 voltage", "V", 0, 1, 1, 200, 0),
        o2_trim("o2_b2s4_fuel_trim", "Oxygen sensor bank 2 sensor 4 short-term fuel trim", 1),
    ]),
    custom(0x1C, "obd_standard", "OBD standard this vehicle conforms to", 1, Custom::ObdStandard),
    custom(0x1D, "o2_sensors_present_4_banks", "Oxygen sensors present (4 banks)", 1, Custom::O2SensorsFourBanks),
    custom(0x1E, "auxiliary_input_status", "Auxiliary input status", 1, Custom::AuxiliaryInput),
    single(0x1F, 2, &[lin("run_time", "Run time since engine start", "s", 0, 2, 1, 1, 0)]),
    bitmap(0x20, "pids_supported_21_40", "PIDs supported [21-40]"),
    single(0x21, 2, &[lin("distance_with_mil", "Distance travelled with MIL on", "km", 0, 2, 1, 1, 0)]),
    single(0x22, 2, &[lin("fuel_rail_pressure_relative", "Fuel rail pressure (relative to manifold vacuum)", "kPa", 0, 2, 79, 1000, 0)]),
    single(0x23, 2, &[lin("fuel_rail_gauge_pressure", "Fuel rail gauge pressure", "kPa", 0, 2, 10, 1, 0)]),
    multi(0x24, "o2_b1s1_lambda_voltage", "O2 sensor bank 1 sensor 1: equivalence ratio and voltage", "", 4, &[
        lin("o2_b1s1_lambda", "Oxygen sensor bank 1 sensor 1 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s1_wide_range_voltage", "Oxygen sensor bank 1 sensor 1 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x25, "o2_b1s2_lambda_voltage", "O2 sensor bank 1 sensor 2: equivalence ratio and voltage", "", 4, &[
        lin("o2_b1s2_lambda", "Oxygen sensor bank 1 sensor 2 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s2_wide_range_voltage", "Oxygen sensor bank 1 sensor 2 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x26, "o2_b1s3_lambda_voltage", "O2 sensor bank 1 sensor 3: equivalence ratio and voltage", "", 4, &[
        lin("o2_b1s3_lambda", "Oxygen sensor bank 1 sensor 3 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s3_wide_range_voltage", "Oxygen sensor bank 1 sensor 3 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x27, "o2_b1s4_lambda_voltage", "O2 sensor bank 1 sensor 4: equivalence ratio and voltage", "", 4, &[
        lin("o2_b1s4_lambda", "Oxygen sensor bank 1 sensor 4 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s4_wide_range_voltage", "Oxygen sensor bank 1 sensor 4 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x28, "o2_b2s1_lambda_voltage", "O2 sensor bank 2 sensor 1: equivalence ratio and voltage", "", 4, &[
        lin("o2_b2s1_lambda", "Oxygen sensor bank 2 sensor 1 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s1_wide_range_voltage", "Oxygen sensor bank 2 sensor 1 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x29, "o2_b2s2_lambda_voltage", "O2 sensor bank 2 sensor 2: equivalence ratio and voltage", "", 4, &[
        lin("o2_b2s2_lambda", "Oxygen sensor bank 2 sensor 2 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s2_wide_range_voltage", "Oxygen sensor bank 2 sensor 2 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x2A, "o2_b2s3_lambda_voltage", "O2 sensor bank 2 sensor 3: equivalence ratio and voltage", "", 4, &[
        lin("o2_b2s3_lambda", "Oxygen sensor bank 2 sensor 3 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s3_wide_range_voltage", "Oxygen sensor bank 2 sensor 3 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    multi(0x2B, "o2_b2s4_lambda_voltage", "O2 sensor bank 2 sensor 4: equivalence ratio and voltage", "", 4, &[
        lin("o2_b2s4_lambda", "Oxygen sensor bank 2 sensor 4 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s4_wide_range_voltage", "Oxygen sensor bank 2 sensor 4 voltage", "V", 2, 2, 8, 65536, 0),
    ]),
    single(0x2C, 1, &[percent("commanded_egr", "Commanded EGR", 0)]),
    single(0x2D, 1, &[trim("egr_error", "EGR error", 0)]),
    single(0x2E, 1, &[percent("commanded_evap_purge", "Commanded evaporative purge", 0)]),
    single(0x2F, 1, &[percent("fuel_tank_level", "Fuel tank level input", 0)]),
    single(0x30, 1, &[lin("warmups_since_clear", "Warm-ups since DTCs cleared", "count", 0, 1, 1, 1, 0)]),
    single(0x31, 2, &[lin("distance_since_clear", "Distance travelled since DTCs cleared", "km", 0, 2, 1, 1, 0)]),
    single(0x32, 2, &[signed(lin("evap_vapor_pressure", "Evaporative system vapour pressure", "Pa", 0, 2, 1, 4, 0))]),
    single(0x33, 1, &[lin("barometric_pressure", "Absolute barometric pressure", "kPa", 0, 1, 1, 1, 0)]),
    multi(0x34, "o2_b1s1_lambda_current", "O2 sensor bank 1 sensor 1: equivalence ratio and current", "", 4, &[
        lin("o2_b1s1_lambda", "Oxygen sensor bank 1 sensor 1 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s1_current", "Oxygen sensor bank 1 sensor 1 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x35, "o2_b1s2_lambda_current", "O2 sensor bank 1 sensor 2: equivalence ratio and current", "", 4, &[
        lin("o2_b1s2_lambda", "Oxygen sensor bank 1 sensor 2 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s2_current", "Oxygen sensor bank 1 sensor 2 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x36, "o2_b1s3_lambda_current", "O2 sensor bank 1 sensor 3: equivalence ratio and current", "", 4, &[
        lin("o2_b1s3_lambda", "Oxygen sensor bank 1 sensor 3 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s3_current", "Oxygen sensor bank 1 sensor 3 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x37, "o2_b1s4_lambda_current", "O2 sensor bank 1 sensor 4: equivalence ratio and current", "", 4, &[
        lin("o2_b1s4_lambda", "Oxygen sensor bank 1 sensor 4 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b1s4_current", "Oxygen sensor bank 1 sensor 4 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x38, "o2_b2s1_lambda_current", "O2 sensor bank 2 sensor 1: equivalence ratio and current", "", 4, &[
        lin("o2_b2s1_lambda", "Oxygen sensor bank 2 sensor 1 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s1_current", "Oxygen sensor bank 2 sensor 1 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x39, "o2_b2s2_lambda_current", "O2 sensor bank 2 sensor 2: equivalence ratio and current", "", 4, &[
        lin("o2_b2s2_lambda", "Oxygen sensor bank 2 sensor 2 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s2_current", "Oxygen sensor bank 2 sensor 2 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x3A, "o2_b2s3_lambda_current", "O2 sensor bank 2 sensor 3: equivalence ratio and current", "", 4, &[
        lin("o2_b2s3_lambda", "Oxygen sensor bank 2 sensor 3 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s3_current", "Oxygen sensor bank 2 sensor 3 current", "mA", 2, 2, 1, 256, -128),
    ]),
    multi(0x3B, "o2_b2s4_lambda_current", "O2 sensor bank 2 sensor 4: equivalence ratio and current", "", 4, &[
        lin("o2_b2s4_lambda", "Oxygen sensor bank 2 sensor 4 equivalence ratio", "ratio", 0, 2, 2, 65536, 0),
        lin("o2_b2s4_current", "Oxygen sensor bank 2 sensor 4 current", "mA", 2, 2, 1, 256, -128),
    ]),
    single(0x3C, 2, &[lin("catalyst_temperature_b1s1", "Catalyst temperature bank 1 sensor 1", "°C", 0, 2, 1, 10, -40)]),
    single(0x3D, 2, &[lin("catalyst_temperature_b2s1", "Catalyst temperature bank 2 sensor 1", "°C", 0, 2, 1, 10, -40)]),
    single(0x3E, 2, &[lin("catalyst_temperature_b1s2", "Catalyst temperature bank 1 sensor 2", "°C", 0, 2, 1, 10, -40)]),
    single(0x3F, 2, &[lin("catalyst_temperature_b2s2", "Catalyst temperature bank 2 sensor 2", "°C", 0, 2, 1, 10, -40)]),
    bitmap(0x40, "pids_supported_41_60", "PIDs supported [41-60]"),
    custom(0x41, "monitor_status_this_cycle", "Monitor status this drive cycle", 4, Custom::MonitorStatusThisCycle),
    single(0x42, 2, &[lin("control_module_voltage", "Control module voltage", "V", 0, 2, 1, 1000, 0)]),
    single(0x43, 2, &[lin("absolute_load", "Absolute load value", "%", 0, 2, 100, 255, 0)]),
    single(0x44, 2, &[lin("commanded_lambda", "Commanded equivalence ratio", "ratio", 0, 2, 2, 65536, 0)]),
    single(0x45, 1, &[percent("relative_throttle_position", "Relative throttle position", 0)]),
    single(0x46, 1, &[celsius("ambient_air_temperature", "Ambient air temperature", 0)]),
    single(0x47, 1, &[percent("throttle_position_b", "Absolute throttle position B", 0)]),
    single(0x48, 1, &[percent("throttle_position_c", "Absolute throttle position C", 0)]),
    single(0x49, 1, &[percent("accelerator_position_d", "Accelerator pedal position D", 0)]),
    single(0x4A, 1, &[percent("accelerator_position_e", "Accelerator pedal position E", 0)]),
    single(0x4B, 1, &[percent("accelerator_position_f", "Accelerator pedal position F", 0)]),
    single(0x4C, 1, &[percent("commanded_throttle_actuator", "Commanded throttle actuator", 0)]),
    single(0x4D, 2, &[lin("time_with_mil", "Time run with MIL on", "min", 0, 2, 1, 1, 0)]),
    single(0x4E, 2, &[lin("time_since_clear", "Time since DTCs cleared", "min", 0, 2, 1, 1, 0)]),
    multi(0x4F, "maximum_values", "Maximum values for equivalence ratio, O2 voltage, O2 current and intake MAP", "", 4, &[
        lin("max_lambda", "Maximum equivalence ratio", "ratio", 0, 1, 1, 1, 0),
        lin("max_o2_voltage", "Maximum oxygen sensor voltage", "V", 1, 1, 1, 1, 0),
        lin("max_o2_current", "Maximum oxygen sensor current", "mA", 2, 1, 1, 1, 0),
        lin("max_intake_map", "Maximum intake manifold absolute pressure", "kPa", 3, 1, 10, 1, 0),
    ]),
    // Bytes B, C and D are reserved (sent as zero).
    single(0x50, 4, &[lin("max_maf_rate", "Maximum mass air flow rate", "g/s", 0, 1, 10, 1, 0)]),
    custom(0x51, "fuel_type", "Fuel type", 1, Custom::FuelType),
    single(0x52, 1, &[percent("ethanol_percent", "Ethanol fuel percentage", 0)]),
    single(0x53, 2, &[lin("evap_vapor_pressure_absolute", "Absolute evaporative system vapour pressure", "kPa", 0, 2, 1, 200, 0)]),
    single(0x54, 2, &[signed(lin("evap_vapor_pressure_wide", "Evaporative system vapour pressure (wide range)", "Pa", 0, 2, 1, 1, 0))]),
    multi(0x55, "short_term_secondary_o2_trim_b1_b3", "Short-term secondary O2 sensor trim, banks 1 and 3", "%", 2, &[
        trim("short_term_secondary_o2_trim_bank1", "Short-term secondary O2 trim bank 1", 0),
        trim("short_term_secondary_o2_trim_bank3", "Short-term secondary O2 trim bank 3", 1),
    ]),
    multi(0x56, "long_term_secondary_o2_trim_b1_b3", "Long-term secondary O2 sensor trim, banks 1 and 3", "%", 2, &[
        trim("long_term_secondary_o2_trim_bank1", "Long-term secondary O2 trim bank 1", 0),
        trim("long_term_secondary_o2_trim_bank3", "Long-term secondary O2 trim bank 3", 1),
    ]),
    multi(0x57, "short_term_secondary_o2_trim_b2_b4", "Short-term secondary O2 sensor trim, banks 2 and 4", "%", 2, &[
        trim("short_term_secondary_o2_trim_bank2", "Short-term secondary O2 trim bank 2", 0),
        trim("short_term_secondary_o2_trim_bank4", "Short-term secondary O2 trim bank 4", 1),
    ]),
    multi(0x58, "long_term_secondary_o2_trim_b2_b4", "Long-term secondary O2 sensor trim, banks 2 and 4", "%", 2, &[
        trim("long_term_secondary_o2_trim_bank2", "Long-term secondary O2 trim bank 2", 0),
        trim("long_term_secondary_o2_trim_bank4", "Long-term secondary O2 trim bank 4", 1),
    ]),
    single(0x59, 2, &[lin("fuel_rail_absolute_pressure", "Fuel rail absolute pressure", "kPa", 0, 2, 10, 1, 0)]),
    single(0x5A, 1, &[percent("relative_accelerator_position", "Relative accelerator pedal position", 0)]),
    single(0x5B, 1, &[percent("hybrid_battery_remaining_life", "Hybrid battery pack remaining life", 0)]),
    single(0x5C, 1, &[celsius("engine_oil_temperature", "Engine oil temperature", 0)]),
    single(0x5D, 2, &[lin("fuel_injection_timing", "Fuel injection timing", "°", 0, 2, 1, 128, -210)]),
    single(0x5E, 2, &[lin("engine_fuel_rate", "Engine fuel rate", "L/h", 0, 2, 1, 20, 0)]),
    custom(0x5F, "emission_requirements", "Emission requirements to which vehicle is designed", 1, Custom::EmissionRequirements),
    bitmap(0x60, "pids_supported_61_80", "PIDs supported [61-80]"),
    single(0x61, 1, &[torque("driver_demand_torque", "Driver's demand engine percent torque", 0)]),
    single(0x62, 1, &[torque("actual_engine_torque", "Actual engine percent torque", 0)]),
    single(0x63, 2, &[lin("engine_reference_torque", "Engine reference torque", "N·m", 0, 2, 1, 1, 0)]),
    multi(0x64, "engine_torque_data", "Engine percent torque data", "%", 5, &[
        torque("engine_torque_idle", "Engine percent torque at idle", 0),
        torque("engine_torque_point1", "Engine percent torque at point 1", 1),
        torque("engine_torque_point2", "Engine percent torque at point 2", 2),
        torque("engine_torque_point3", "Engine percent torque at point 3", 3),
        torque("engine_torque_point4", "Engine percent torque at point 4", 4),
    ]),
    custom(0x65, "auxiliary_io", "Auxiliary inputs and outputs", 2, Custom::AuxiliaryIo),
    multi(0x66, "maf_sensors", "Mass air flow sensors A and B", "g/s", 5, &[
        when(0, lin("maf_rate_a", "Mass air flow rate sensor A", "g/s", 1, 2, 1, 32, 0)),
        when(1, lin("maf_rate_b", "Mass air flow rate sensor B", "g/s", 3, 2, 1, 32, 0)),
    ]),
    multi(0x67, "coolant_temperature_sensors", "Engine coolant temperature sensors 1 and 2", "°C", 3, &[
        when(0, celsius("coolant_temperature_1", "Engine coolant temperature sensor 1", 1)),
        when(1, celsius("coolant_temperature_2", "Engine coolant temperature sensor 2", 2)),
    ]),
    multi(0x68, "intake_air_temperature_sensors", "Intake air temperature sensors", "°C", 7, &[
        when(0, celsius("intake_air_temperature_b1s1", "Intake air temperature bank 1 sensor 1", 1)),
        when(1, celsius("intake_air_temperature_b1s2", "Intake air temperature bank 1 sensor 2", 2)),
        when(2, celsius("intake_air_temperature_b1s3", "Intake air temperature bank 1 sensor 3", 3)),
        when(3, celsius("intake_air_temperature_b2s1", "Intake air temperature bank 2 sensor 1", 4)),
        when(4, celsius("intake_air_temperature_b2s2", "Intake air temperature bank 2 sensor 2", 5)),
        when(5, celsius("intake_air_temperature_b2s3", "Intake air temperature bank 2 sensor 3", 6)),
    ]),
    multi(0x69, "egr_commanded_actual_error", "Commanded EGR, actual EGR and EGR error", "%", 7, &[
        when(0, percent("egr_a_commanded", "EGR A commanded duty cycle", 1)),
        when(1, percent("egr_a_actual", "EGR A actual duty cycle", 2)),
        when(2, trim("egr_a_error", "EGR A error", 3)),
        when(3, percent("egr_b_commanded", "EGR B commanded duty cycle", 4)),
        when(4, percent("egr_b_actual", "EGR B actual duty cycle", 5)),
        when(5, trim("egr_b_error", "EGR B error", 6)),
    ]),
    multi(0x6A, "diesel_intake_air_flow", "Commanded diesel intake air flow control and relative intake air flow position", "%", 5, &[
        when(0, percent("intake_air_flow_a_commanded", "Commanded intake air flow A", 1)),
        when(1, percent("intake_air_flow_a_position", "Relative intake air flow position A", 2)),
        when(2, percent("intake_air_flow_b_commanded", "Commanded intake air flow B", 3)),
        when(3, percent("intake_air_flow_b_position", "Relative intake air flow position B", 4)),
    ]),
    multi(0x6C, "throttle_actuator_control", "Commanded throttle actuator control and relative throttle position", "%", 5, &[
        when(0, percent("throttle_actuator_a_commanded", "Commanded throttle actuator A", 1)),
        when(1, percent("throttle_a_relative_position", "Relative throttle position A", 2)),
        when(2, percent("throttle_actuator_b_commanded", "Commanded throttle actuator B", 3)),
        when(3, percent("throttle_b_relative_position", "Relative throttle position B", 4)),
    ]),
    multi(0x6F, "turbo_compressor_inlet_pressure", "Turbocharger compressor inlet pressure", "kPa", 3, &[
        when(0, lin("turbo_inlet_pressure_a", "Turbocharger compressor inlet pressure A", "kPa", 1, 1, 1, 1, 0)),
        when(1, lin("turbo_inlet_pressure_b", "Turbocharger compressor inlet pressure B", "kPa", 2, 1, 1, 1, 0)),
    ]),
    bitmap(0x80, "pids_supported_81_a0", "PIDs supported [81-A0]"),
    bitmap(0xA0, "pids_supported_a1_c0", "PIDs supported [A1-C0]"),
    single(0xA6, 4, &[lin("odometer", "Odometer", "km", 0, 4, 1, 10, 0)]),
    bitmap(0xC0, "pids_supported_c1_e0", "PIDs supported [C1-E0]"),
    bitmap(0xE0, "pids_supported_e1_ff", "PIDs supported [E1-FF]"),
];
