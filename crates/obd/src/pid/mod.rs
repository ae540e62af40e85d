//! Mode 01 / Mode 02 parameter IDs (SAE J1979 / ISO 15031-5 Annex B, J1979-DA) and their
//! formulas.
//!
//! A Mode 01 request is `01 PID [PID ...]`; the answer is `41 PID A B C ...`, where the number
//! of data bytes (A, B, ...) is fixed by the PID. Mode 02 (freeze frame) uses the same PIDs and
//! formulas, with a frame number after each PID; its PID `0x02` carries the DTC that caused the
//! freeze frame to be stored (two bytes, rendered as text by [`crate::dtc`]).
//!
//! Most PIDs are *linear*: each value is an unsigned (or two's-complement) big-endian integer
//! of one, two or four bytes, scaled by an exact rational and offset:
//!
//! | PID | meaning | bytes | formula | unit |
//! |---|---|---|---|---|
//! | `0x04` | calculated load | A | A·100/255 | % |
//! | `0x05` | coolant temperature | A | A − 40 | °C |
//! | `0x06`–`0x09` | fuel trims | A | A·100/128 − 100 | % |
//! | `0x0C` | engine speed | A B | (256A + B)/4 | rpm |
//! | `0x0D` | vehicle speed | A | A | km/h |
//! | `0x10` | mass air flow | A B | (256A + B)/100 | g/s |
//! | `0x14`–`0x1B` | O2 voltage, trim | A, B | A/200; B·100/128 − 100 (`FF`: not in trim) | V, % |
//! | `0x24`–`0x2B` | wide O2 | A B, C D | (256A + B)·2/65536; (256C + D)·8/65536 | ratio, V |
//! | `0x34`–`0x3B` | wide O2 | A B, C D | (256A + B)·2/65536; (256C + D)/256 − 128 | ratio, mA |
//! | `0x32`, `0x54` | EVAP vapour pressure | A B signed | /4, ·1 | Pa |
//! | `0x42` | control module voltage | A B | (256A + B)/1000 | V |
//!
//! The whole list lives in one table ([`all`], [`info`]), so [`decode`] and [`encode`] (its
//! inverse, used by the simulator) are computed from the same row and cannot drift apart.
//! PIDs whose bytes are bit fields or enumerations are decoded by named rules ([`Custom`]) into
//! several [`Reading`]s with names instead of numbers: monitor status (`0x01`, `0x41`), fuel
//! system status (`0x03`), secondary air (`0x12`), O2 sensor locations (`0x13`, `0x1D`), OBD
//! standard (`0x1C`), PTO (`0x1E`, `0x65`), fuel type (`0x51`), emission requirements
//! (`0x5F`), and the supported-PID bitmaps (`0x00`, `0x20`, ... `0xE0`, see [`SupportedPids`]).
//!
//! Some PIDs from `0x64` on start with a byte of "sensor supported" flags (bit n = field n is
//! reported); their linear fields carry [`Field::support_bit`], and unsupported fields yield
//! no reading.
//!
//! O2 sensor PIDs `0x14`–`0x1B`, `0x24`–`0x2B` and `0x34`–`0x3B` are keyed by the two-bank
//! layout of PID `0x13` (`0x14` = bank 1 sensor 1 ... `0x1B` = bank 2 sensor 4); a vehicle that
//! reports PID `0x1D` instead uses the four-bank layout, which [`o2_sensor_location`] maps.

mod custom;
mod supported;
mod table;

use std::fmt;

use serde::Serialize;

pub use supported::{SupportedPids, is_bitmap_pid};

/// Most PIDs one Mode 01 request may carry. ISO 15765-4 (OBD on CAN) lets a tester ask for up
/// to six PIDs in one request (`01 P1 P2 P3 P4 P5 P6`) and the ECU answers them all in one
/// (multi-frame) response; a seventh would be a malformed request.
pub const MAX_PIDS_PER_REQUEST: usize = 6;

/// What went wrong decoding or encoding a PID.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PidError {
    #[error("PID 0x{0:02X} is not a known Mode 01/02 parameter")]
    UnknownPid(u8),
    #[error("PID 0x{pid:02X} carries {expected} data bytes, got {actual}")]
    WrongLength {
        pid: u8,
        expected: usize,
        actual: usize,
    },
    #[error("PID 0x{pid:02X} encodes {expected} values, got {actual}")]
    WrongValueCount {
        pid: u8,
        expected: usize,
        actual: usize,
    },
    #[error("{key} = {value} is outside {min}..={max}, the range PID 0x{pid:02X} can carry")]
    OutOfRange {
        pid: u8,
        key: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
    #[error("{key} (PID 0x{pid:02X}) cannot encode the non-finite value {value}")]
    NotFinite {
        pid: u8,
        key: &'static str,
        value: f64,
    },
    #[error("PID 0x{0:02X} is bit-encoded or enumerated and has no numeric encoder")]
    NotEncodable(u8),
    #[error("0x{0:02X} is not a supported-PIDs bitmap PID (0x00, 0x20, ..., 0xE0)")]
    NotBitmapPid(u8),
}

/// One row of the PID table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PidInfo {
    pub pid: u8,
    /// Stable machine key, snake_case (`engine_speed`).
    pub key: &'static str,
    /// Human name (`Engine speed`).
    pub name: &'static str,
    /// Unit of the value for single-value PIDs; empty when each field has its own.
    pub unit: &'static str,
    /// Data bytes after the PID byte in a Mode 01 answer.
    pub len: usize,
    pub formula: Formula,
}

/// How a PID's bytes become values.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Formula {
    /// Scaled integers, one reading per field, in field order (the order [`encode`] expects).
    Linear(&'static [Field]),
    /// Bit-encoded or enumerated bytes with a named decoding rule.
    Custom(Custom),
}

/// One linear value inside a PID's data: `value = raw · num / den + offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Field {
    pub key: &'static str,
    pub name: &'static str,
    pub unit: &'static str,
    /// Index of the first byte in the data (0 = A).
    pub byte: usize,
    /// Width in bytes (1, 2 or 4), big-endian.
    pub width: usize,
    /// Two's complement rather than unsigned.
    pub signed: bool,
    pub num: i64,
    pub den: i64,
    pub offset: i64,
    /// Bit of data byte A that says whether this field is reported (PIDs `0x66` on).
    pub support_bit: Option<u8>,
    /// A raw value that means "no value" rather than a number.
    pub sentinel: Option<Sentinel>,
}

/// A reserved raw value with a meaning of its own (O2 trim `0xFF`: sensor not used in trim).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Sentinel {
    pub raw: i64,
    pub meaning: &'static str,
}

/// The named decoding rules for PIDs that are not plain numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Custom {
    /// `0x00`, `0x20`, ... `0xE0`: which of the next 32 PIDs are supported.
    SupportedPids,
    /// `0x01`: MIL, DTC count and readiness since DTCs were cleared.
    MonitorStatusSinceClear,
    /// `0x41`: monitors enabled and complete this drive cycle.
    MonitorStatusThisCycle,
    /// `0x03`: open/closed loop state of fuel systems 1 and 2.
    FuelSystemStatus,
    /// `0x12`: where secondary air is commanded.
    SecondaryAirStatus,
    /// `0x13`: O2 sensors present, two banks of up to four.
    O2SensorsTwoBanks,
    /// `0x1D`: O2 sensors present, four banks of up to two.
    O2SensorsFourBanks,
    /// `0x1C`: the OBD standard the vehicle conforms to.
    ObdStandard,
    /// `0x1E`: auxiliary input status (power take-off).
    AuxiliaryInput,
    /// `0x51`: fuel type.
    FuelType,
    /// `0x5F`: emission requirements the vehicle is designed to.
    EmissionRequirements,
    /// `0x65`: auxiliary inputs/outputs, supported flags and states.
    AuxiliaryIo,
}

/// One decoded value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Reading {
    pub pid: u8,
    pub key: &'static str,
    pub name: &'static str,
    pub value: Value,
    pub unit: &'static str,
}

/// A decoded value, serialised as a plain JSON number, bool, string or list.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Value {
    Number(f64),
    Bool(bool),
    /// An enumeration or a sentinel, by name (`"closed loop, using oxygen sensor feedback"`).
    Text(&'static str),
    /// PIDs flagged in a supported-PIDs bitmap.
    Pids(Vec<u8>),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Three decimals are finer than any J1979 resolution a person reads (0.005 V,
            // 0.0039 %); JSON keeps the exact value.
            Value::Number(n) => {
                let text = format!("{n:.3}");
                let text = text.trim_end_matches('0').trim_end_matches('.');
                f.write_str(if text == "-0" { "0" } else { text })
            }
            Value::Bool(b) => write!(f, "{}", if *b { "yes" } else { "no" }),
            Value::Text(t) => f.write_str(t),
            Value::Pids(pids) => {
                let hex: Vec<String> = pids.iter().map(|p| format!("{p:02X}")).collect();
                f.write_str(&hex.join(" "))
            }
        }
    }
}

/// `Engine speed: 1726 rpm`.
impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.value)?;
        if !self.unit.is_empty() && matches!(self.value, Value::Number(_)) {
            write!(f, " {}", self.unit)?;
        }
        Ok(())
    }
}

/// Bank and sensor position of an O2 sensor (bank 1 holds cylinder 1; sensor 1 is upstream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct O2Location {
    pub bank: u8,
    pub sensor: u8,
}

/// Which O2 sensor numbering the vehicle uses: it supports PID `0x13` or PID `0x1D`, not both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum O2Layout {
    /// PID `0x13`: two banks of up to four sensors.
    TwoBanks,
    /// PID `0x1D`: four banks of up to two sensors.
    FourBanks,
}

/// The table row for a PID, if the standard defines it (and this table knows it).
pub fn info(pid: u8) -> Option<&'static PidInfo> {
    let rows = table::PIDS;
    rows.binary_search_by_key(&pid, |row| row.pid)
        .ok()
        .and_then(|index| rows.get(index))
}

/// Every row of the table, ordered by PID.
pub fn all() -> &'static [PidInfo] {
    table::PIDS
}

/// Data bytes after the PID byte in a Mode 01 answer; `None` for unknown PIDs. This is what
/// splits a multi-PID answer (`41 0C 1A F8 0D 3C`) into its parts.
pub fn data_len(pid: u8) -> Option<usize> {
    info(pid).map(|row| row.len)
}

/// Decodes exactly a PID's data bytes (A, B, ...) into named readings.
pub fn decode(pid: u8, data: &[u8]) -> Result<Vec<Reading>, PidError> {
    let row = info(pid).ok_or(PidError::UnknownPid(pid))?;
    if data.len() != row.len {
        return Err(PidError::WrongLength {
            pid,
            expected: row.len,
            actual: data.len(),
        });
    }
    match row.formula {
        Formula::Linear(fields) => decode_linear(pid, fields, data),
        Formula::Custom(rule) => Ok(custom::decode(row, rule, data)),
    }
}

/// Encodes values (in field order) into a linear PID's data bytes, rounding to the nearest
/// step. Values outside the representable range are an error, never clamped. For fields with
/// a [`Sentinel`], `NaN` encodes the sentinel. Fields with a support bit are all flagged
/// supported. Bit-encoded PIDs answer [`PidError::NotEncodable`] (use [`SupportedPids::bitmap`]
/// for the bitmaps).
pub fn encode(pid: u8, values: &[f64]) -> Result<Vec<u8>, PidError> {
    let row = info(pid).ok_or(PidError::UnknownPid(pid))?;
    let Formula::Linear(fields) = row.formula else {
        return Err(PidError::NotEncodable(pid));
    };
    if values.len() != fields.len() {
        return Err(PidError::WrongValueCount {
            pid,
            expected: fields.len(),
            actual: values.len(),
        });
    }
    let mut out = vec![0u8; row.len];
    for (field, &value) in fields.iter().zip(values) {
        let raw = field.raw_for(pid, value)?;
        write_raw(pid, &mut out, field, raw)?;
        if let Some(bit) = field.support_bit
            && let Some(flags) = out.first_mut()
        {
            *flags |= 1u8.checked_shl(u32::from(bit)).unwrap_or(0);
        }
    }
    Ok(out)
}

/// The DTC that caused a freeze frame (Mode 02 PID `0x02`) as its two raw bytes, big-endian;
/// `0x0000` means no freeze frame is stored. [`crate::dtc`] renders it as text.
pub fn freeze_frame_dtc(data: &[u8]) -> Result<u16, PidError> {
    match data {
        [high, low] => Ok(u16::from_be_bytes([*high, *low])),
        _ => Err(PidError::WrongLength {
            pid: 0x02,
            expected: 2,
            actual: data.len(),
        }),
    }
}

/// Where the O2 sensor behind PID `0x14`–`0x1B`, `0x24`–`0x2B` or `0x34`–`0x3B` sits, given the
/// layout the vehicle reports (PID `0x13` or `0x1D`); `None` for other PIDs.
pub fn o2_sensor_location(pid: u8, layout: O2Layout) -> Option<O2Location> {
    let index = [0x14u8, 0x24, 0x34]
        .iter()
        .find_map(|&first| pid.checked_sub(first).filter(|i| *i < 8))?;
    let (per_bank, bank_index) = match layout {
        O2Layout::TwoBanks => (4, index / 4),
        O2Layout::FourBanks => (2, index / 2),
    };
    Some(O2Location {
        bank: bank_index + 1,
        sensor: index % per_bank + 1,
    })
}

impl Field {
    /// Smallest and largest raw value a value may encode to (the sentinel excluded).
    pub fn raw_range(&self) -> (i64, i64) {
        let bits = 8 * u32::try_from(self.width.clamp(1, 4)).unwrap_or(4);
        let (mut min, mut max) = if self.signed {
            (-(1i64 << (bits - 1)), (1i64 << (bits - 1)) - 1)
        } else {
            (0, (1i64 << bits) - 1)
        };
        match self.sentinel {
            Some(s) if s.raw == max => max -= 1,
            Some(s) if s.raw == min => min += 1,
            _ => {}
        }
        (min, max)
    }

    /// The physical value of a raw integer.
    pub fn physical(&self, raw: i64) -> f64 {
        raw as f64 * self.num as f64 / self.den as f64 + self.offset as f64
    }

    /// One step of the raw integer in physical units: the resolution.
    pub fn step(&self) -> f64 {
        self.num as f64 / self.den as f64
    }

    fn raw_for(self, pid: u8, value: f64) -> Result<i64, PidError> {
        if value.is_nan()
            && let Some(sentinel) = self.sentinel
        {
            return Ok(sentinel.raw);
        }
        if !value.is_finite() {
            return Err(PidError::NotFinite {
                pid,
                key: self.key,
                value,
            });
        }
        let raw = ((value - self.offset as f64) * self.den as f64 / self.num as f64).round();
        let (min, max) = self.raw_range();
        if raw < min as f64 || raw > max as f64 {
            return Err(PidError::OutOfRange {
                pid,
                key: self.key,
                value,
                min: self.physical(min),
                max: self.physical(max),
            });
        }
        // In range of an at most 32-bit integer, so the conversion is exact.
        Ok(raw as i64)
    }
}

fn decode_linear(pid: u8, fields: &[Field], data: &[u8]) -> Result<Vec<Reading>, PidError> {
    let flags = data.first().copied().unwrap_or(0);
    let mut readings = Vec::with_capacity(fields.len());
    for field in fields {
        let reported = field
            .support_bit
            .is_none_or(|bit| flags.checked_shr(u32::from(bit)).unwrap_or(0) & 1 == 1);
        if !reported {
            continue;
        }
        let raw = read_raw(pid, data, field)?;
        let value = match field.sentinel {
            Some(sentinel) if sentinel.raw == raw => Value::Text(sentinel.meaning),
            _ => Value::Number(field.physical(raw)),
        };
        readings.push(Reading {
            pid,
            key: field.key,
            name: field.name,
            value,
            unit: field.unit,
        });
    }
    Ok(readings)
}

/// The bytes of a field within the data; a field reaching past the data is reported as the
/// length the data would need.
fn field_bytes<'a>(pid: u8, data: &'a [u8], field: &Field) -> Result<&'a [u8], PidError> {
    let end = field
        .byte
        .checked_add(field.width)
        .filter(|_| field.width <= 4);
    end.and_then(|end| data.get(field.byte..end))
        .ok_or(PidError::WrongLength {
            pid,
            expected: end.unwrap_or(usize::MAX),
            actual: data.len(),
        })
}

fn read_raw(pid: u8, data: &[u8], field: &Field) -> Result<i64, PidError> {
    let bytes = field_bytes(pid, data, field)?;
    let unsigned = bytes.iter().fold(0i64, |acc, &b| (acc << 8) | i64::from(b));
    let bits = 8 * bytes.len();
    let negative = bits > 0 && (unsigned >> (bits - 1)) & 1 == 1;
    Ok(if field.signed && negative {
        unsigned - (1i64 << bits)
    } else {
        unsigned
    })
}

fn write_raw(pid: u8, out: &mut [u8], field: &Field, raw: i64) -> Result<(), PidError> {
    let len = out.len();
    let end = field
        .byte
        .checked_add(field.width)
        .filter(|_| field.width <= 4);
    let bytes = end
        .and_then(|end| out.get_mut(field.byte..end))
        .ok_or(PidError::WrongLength {
            pid,
            expected: end.unwrap_or(usize::MAX),
            actual: len,
        })?;
    // Two's complement bits of `raw`, lowest byte last.
    let bits = raw as u64;
    for (i, byte) in bytes.iter_mut().rev().enumerate() {
        *byte = (bits >> (8 * i)) as u8;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
