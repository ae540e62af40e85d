//! A UDS DTC (3 bytes: the SAE J2012 code and a failure type) and its status byte.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::UdsError;
use crate::dtc::Dtc;

/// A 3-byte UDS DTC: J2012 code in the high 16 bits, failure type byte in the low 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdsDtc(u32);

impl UdsDtc {
    /// groupOfDTC value 0xFFFFFF: every DTC group, for [`super::clear_diagnostic_information`].
    pub const ALL_GROUPS: UdsDtc = UdsDtc(0x00FF_FFFF);

    pub fn new(code: Dtc, failure_type: u8) -> Self {
        UdsDtc((u32::from(code.raw()) << 8) | u32::from(failure_type))
    }

    /// The DTC from its three bytes, high byte first.
    pub fn from_bytes(bytes: [u8; 3]) -> Self {
        let [high, mid, low] = bytes;
        UdsDtc(u32::from_be_bytes([0, high, mid, low]))
    }

    pub fn to_bytes(self) -> [u8; 3] {
        let [_, high, mid, low] = self.0.to_be_bytes();
        [high, mid, low]
    }

    /// The 24-bit value (the top byte of the `u32` is always 0).
    pub fn raw(self) -> u32 {
        self.0
    }

    /// The SAE J2012 part, as OBD-II would report it.
    pub fn code(self) -> Dtc {
        let [_, high, mid, _] = self.0.to_be_bytes();
        Dtc::from_bytes([high, mid])
    }

    /// The failure type byte (SAE J2012-DA): 0x00 means no subtype information.
    pub fn failure_type(self) -> u8 {
        let [.., low] = self.0.to_be_bytes();
        low
    }
}

/// `P0420-1F`
impl fmt::Display for UdsDtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{:02X}", self.code(), self.failure_type())
    }
}

/// Accepts `P0420-1F`, `P04201F`, any case.
impl FromStr for UdsDtc {
    type Err = UdsError;

    fn from_str(s: &str) -> Result<Self, UdsError> {
        let chars: Vec<char> = s.chars().collect();
        let (code, hi, lo) = match chars.as_slice() {
            [a, b, c, d, e, sep, hi, lo] => {
                if *sep != '-' {
                    return Err(UdsError::MissingSeparator(*sep));
                }
                ([*a, *b, *c, *d, *e], *hi, *lo)
            }
            [a, b, c, d, e, hi, lo] => ([*a, *b, *c, *d, *e], *hi, *lo),
            _ => return Err(UdsError::WrongTextLength(chars.len())),
        };
        let code: Dtc = code.iter().collect::<String>().parse()?;
        let digit = |position: usize, found: char| {
            found
                .to_digit(16)
                .ok_or(UdsError::NotHex { position, found })
        };
        let ftb = digit(chars.len() - 1, hi)? * 16 + digit(chars.len(), lo)?;
        Ok(UdsDtc::new(code, ftb as u8))
    }
}

/// Serialized as the text form, `"P0420-1F"`.
impl Serialize for UdsDtc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The status byte of a DTC (ISO 14229-1 Annex D.2), also used as a mask in requests and as the
/// DTCStatusAvailabilityMask in responses (the bits the server supports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct DtcStatus(pub u8);

/// Bit names in bit order, as ISO 14229-1 writes them.
pub(super) const STATUS_BIT_NAMES: [&str; 8] = [
    "testFailed",
    "testFailedThisOperationCycle",
    "pendingDTC",
    "confirmedDTC",
    "testNotCompletedSinceLastClear",
    "testFailedSinceLastClear",
    "testNotCompletedThisOperationCycle",
    "warningIndicatorRequested",
];

impl DtcStatus {
    pub const TEST_FAILED: u8 = 0x01;
    pub const TEST_FAILED_THIS_OPERATION_CYCLE: u8 = 0x02;
    pub const PENDING_DTC: u8 = 0x04;
    pub const CONFIRMED_DTC: u8 = 0x08;
    pub const TEST_NOT_COMPLETED_SINCE_LAST_CLEAR: u8 = 0x10;
    pub const TEST_FAILED_SINCE_LAST_CLEAR: u8 = 0x20;
    pub const TEST_NOT_COMPLETED_THIS_OPERATION_CYCLE: u8 = 0x40;
    pub const WARNING_INDICATOR_REQUESTED: u8 = 0x80;

    fn bit(self, mask: u8) -> bool {
        self.0 & mask != 0
    }

    /// The most recent test result was a failure.
    pub fn test_failed(self) -> bool {
        self.bit(Self::TEST_FAILED)
    }

    pub fn test_failed_this_operation_cycle(self) -> bool {
        self.bit(Self::TEST_FAILED_THIS_OPERATION_CYCLE)
    }

    /// Failed in the current or last completed cycle, not yet confirmed.
    pub fn pending_dtc(self) -> bool {
        self.bit(Self::PENDING_DTC)
    }

    /// Failed often enough to be stored (the OBD "stored" code).
    pub fn confirmed_dtc(self) -> bool {
        self.bit(Self::CONFIRMED_DTC)
    }

    pub fn test_not_completed_since_last_clear(self) -> bool {
        self.bit(Self::TEST_NOT_COMPLETED_SINCE_LAST_CLEAR)
    }

    pub fn test_failed_since_last_clear(self) -> bool {
        self.bit(Self::TEST_FAILED_SINCE_LAST_CLEAR)
    }

    pub fn test_not_completed_this_operation_cycle(self) -> bool {
        self.bit(Self::TEST_NOT_COMPLETED_THIS_OPERATION_CYCLE)
    }

    /// The server asks for a warning lamp (the MIL for emissions codes).
    pub fn warning_indicator_requested(self) -> bool {
        self.bit(Self::WARNING_INDICATOR_REQUESTED)
    }

    /// The names of the set bits, lowest bit first.
    pub fn names(self) -> Vec<&'static str> {
        STATUS_BIT_NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1 << i) != 0)
            .map(|(_, name)| *name)
            .collect()
    }
}

/// `0x09 (testFailed, confirmedDTC)`
impl fmt::Display for DtcStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X} ({})", self.0, self.names().join(", "))
    }
}

/// Serialized as the list of set-bit names: `["testFailed", "confirmedDTC"]`.
impl Serialize for DtcStatus {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.names())
    }
}

/// DTCFormatIdentifier: how the server's DTC values are to be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum DtcFormat {
    /// 0x00 ISO_15031-6 (SAE J2012 with the FTB)
    Iso15031_6,
    /// 0x01 ISO_14229-1 (manufacturer-defined three bytes)
    Iso14229_1,
    /// 0x02 SAE_J1939-73 (SPN and FMI)
    SaeJ1939_73,
    /// 0x03 ISO_11992-4 (truck/trailer)
    Iso11992_4,
    /// 0x04 SAE_J2012-DA_DTCFormat_04 (WWH-OBD)
    SaeJ2012DaWwhObd,
    /// Any other value (reserved by ISO 14229-1).
    Reserved(u8),
}

impl DtcFormat {
    pub fn from_byte(b: u8) -> Self {
        match b {
            0x00 => DtcFormat::Iso15031_6,
            0x01 => DtcFormat::Iso14229_1,
            0x02 => DtcFormat::SaeJ1939_73,
            0x03 => DtcFormat::Iso11992_4,
            0x04 => DtcFormat::SaeJ2012DaWwhObd,
            other => DtcFormat::Reserved(other),
        }
    }

    pub fn to_byte(self) -> u8 {
        match self {
            DtcFormat::Iso15031_6 => 0x00,
            DtcFormat::Iso14229_1 => 0x01,
            DtcFormat::SaeJ1939_73 => 0x02,
            DtcFormat::Iso11992_4 => 0x03,
            DtcFormat::SaeJ2012DaWwhObd => 0x04,
            DtcFormat::Reserved(b) => b,
        }
    }
}
