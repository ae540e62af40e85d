//! UDS trouble-code services, ISO 14229-1: ReadDTCInformation (0x19) and
//! ClearDiagnosticInformation (0x14), both in the stored-data-transmission functional unit.
//!
//! Where things are: the DTC, its status byte and the DTC formats in `dtc.rs`; the request
//! builders in `request.rs`; the answers and their parsers in `response.rs`; byte-level tests
//! in `tests.rs`.
//!
//! # DTCs and their status (Annex D.1, D.2)
//!
//! A UDS DTC is 3 bytes: the first two are the SAE J2012 code exactly as in OBD-II
//! ([`crate::dtc::Dtc`]), the third is the failure type byte (FTB, SAE J2012-DA) saying *how*
//! it failed (0x1F "circuit intermittent", 0x87 "missing message"…). Each DTC travels with a
//! status byte:
//!
//! | bit | mask | name |
//! |---|---|---|
//! | 0 | 0x01 | testFailed |
//! | 1 | 0x02 | testFailedThisOperationCycle |
//! | 2 | 0x04 | pendingDTC |
//! | 3 | 0x08 | confirmedDTC |
//! | 4 | 0x10 | testNotCompletedSinceLastClear |
//! | 5 | 0x20 | testFailedSinceLastClear |
//! | 6 | 0x40 | testNotCompletedThisOperationCycle |
//! | 7 | 0x80 | warningIndicatorRequested |
//!
//! # Requests and positive responses handled here
//!
//! | request | positive response |
//! |---|---|
//! | `19 01 mask` reportNumberOfDTCByStatusMask | `59 01 availMask formatId countHi countLo` |
//! | `19 02 mask` reportDTCByStatusMask | `59 02 availMask {DTC(3) status}*` |
//! | `19 04 DTC(3) recNo` reportDTCSnapshotRecordByDTCNumber | `59 04 DTC(3) status {recNo n {DID(2) data}*n}*` |
//! | `19 06 DTC(3) recNo` reportDTCExtDataRecordByDTCNumber | `59 06 DTC(3) status {recNo data}*` |
//! | `19 0A` reportSupportedDTC | `59 0A availMask {DTC(3) status}*` |
//! | `14 group(3)` ClearDiagnosticInformation | `54` |
//!
//! Record number 0xFF asks for all snapshot or extended data records.
//!
//! # Choices made here
//!
//! - **suppressPosRspMsgIndicationBit** (bit 7 of the sub-function): the request builders never
//!   set it, since a 0x19 request is only useful for its answer. The positive response echoes
//!   bits 6–0 of the sub-function; the parser ignores bit 7 so a server that echoes it anyway is
//!   still understood.
//! - **Snapshot data** (0x04): the length of each data identifier's value is defined by the
//!   manufacturer, not by ISO 14229-1, so [`parse_read_dtc_response_with`] takes a lookup
//!   `did_len`. At the first DID it cannot size, decoding stops: that DID and everything after it
//!   (possibly later records too) is kept in [`SnapshotRecords::undecoded`] rather than guessed.
//!   A record whose identifier count is 0 (the count is not stated, as when a record holds more
//!   identifiers than one byte can count) is decoded until the end of the response, as it can
//!   only be the last one.
//! - **Extended data** (0x06): record lengths are manufacturer-defined too, and there is no count
//!   at all, so the bytes after the first record number are kept raw.
//! - **Negative responses** (`7F 19 nrc`) are for the caller to check first with
//!   [`crate::nrc::NegativeResponse::parse`]; handed one, the parser returns
//!   [`UdsError::NegativeResponse`].
//!
//! # Text form of a UDS DTC
//!
//! `P0420-1F`: the J2012 code, a hyphen, the FTB as two upper-case hex digits. Parsing also
//! accepts the run-together form `P04201F` and lower case.

use crate::dtc::DtcError;
use crate::nrc::{NegativeResponse, NrcError};

/// ClearDiagnosticInformation request service identifier.
pub const CLEAR_DIAGNOSTIC_INFORMATION: u8 = 0x14;
/// ClearDiagnosticInformation positive response service identifier.
pub const CLEAR_DIAGNOSTIC_INFORMATION_RESPONSE: u8 = 0x54;
/// ReadDTCInformation request service identifier.
pub const READ_DTC_INFORMATION: u8 = 0x19;
/// ReadDTCInformation positive response service identifier.
pub const READ_DTC_INFORMATION_RESPONSE: u8 = 0x59;
/// Bit 7 of a sub-function byte: suppressPosRspMsgIndicationBit.
pub const SUPPRESS_POSITIVE_RESPONSE: u8 = 0x80;

/// ReadDTCInformation sub-function (reportType) values handled by this module.
pub const REPORT_NUMBER_OF_DTC_BY_STATUS_MASK: u8 = 0x01;
pub const REPORT_DTC_BY_STATUS_MASK: u8 = 0x02;
pub const REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER: u8 = 0x04;
pub const REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER: u8 = 0x06;
pub const REPORT_SUPPORTED_DTC: u8 = 0x0A;

/// Snapshot or extended data record number that asks for every record.
pub const ALL_RECORDS: u8 = 0xFF;

/// Why a UDS DTC text or a 0x19 / 0x14 response could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UdsError {
    #[error("empty response")]
    Empty,
    #[error("not a positive response: {0}")]
    NegativeResponse(NegativeResponse),
    #[error(transparent)]
    MalformedNegativeResponse(#[from] NrcError),
    #[error("expected response service 0x{expected:02X}, got 0x{got:02X}")]
    UnexpectedService { expected: u8, got: u8 },
    #[error("ReadDTCInformation response has no report type byte")]
    MissingReportType,
    #[error("report type 0x{0:02X} is not decoded by this module")]
    UnsupportedReportType(u8),
    #[error("report type 0x{report_type:02X} response is {expected} bytes, got {got}")]
    WrongLength {
        report_type: u8,
        expected: usize,
        got: usize,
    },
    #[error("report type 0x{report_type:02X} response needs at least {needed} bytes, got {got}")]
    Truncated {
        report_type: u8,
        needed: usize,
        got: usize,
    },
    #[error("{0} bytes left over after the last 4-byte DTC record")]
    PartialDtcRecord(usize),
    #[error("snapshot record 0x{record:02X} stops after its record number")]
    SnapshotHeaderTruncated { record: u8 },
    #[error("snapshot record 0x{record:02X} has {got} byte(s) where a 2-byte DID was expected")]
    SnapshotDidTruncated { record: u8, got: usize },
    #[error("DID 0x{did:04X} in snapshot record 0x{record:02X} needs {needed} bytes, {got} left")]
    SnapshotDataTruncated {
        record: u8,
        did: u16,
        needed: usize,
        got: usize,
    },
    #[error("ClearDiagnosticInformation positive response is 1 byte, got {0}")]
    ClearResponseLength(usize),
    #[error("a UDS DTC is 7 or 8 characters (like P0420-1F), got {0}")]
    WrongTextLength(usize),
    #[error("character 6 of an 8-character UDS DTC must be '-', got {0:?}")]
    MissingSeparator(char),
    #[error("character {position} of a UDS DTC must be a hex digit, got {found:?}")]
    NotHex { position: usize, found: char },
    #[error("bad J2012 part: {0}")]
    Code(#[from] DtcError),
}

mod dtc;
mod request;
mod response;
#[cfg(test)]
mod tests;

pub use dtc::{DtcFormat, DtcStatus, UdsDtc};
pub use request::*;
pub use response::*;
