//! UDS trouble-code services, ISO 14229-1: ReadDTCInformation (0x19) and
//! ClearDiagnosticInformation (0x14), both in the stored-data-transmission functional unit.
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

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::dtc::{Dtc, DtcError};
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

// ---------------------------------------------------------------------------------------------
// DTC and status
// ---------------------------------------------------------------------------------------------

/// A 3-byte UDS DTC: J2012 code in the high 16 bits, failure type byte in the low 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UdsDtc(u32);

impl UdsDtc {
    /// groupOfDTC value 0xFFFFFF: every DTC group, for [`clear_diagnostic_information`].
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
const STATUS_BIT_NAMES: [&str; 8] = [
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

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// `19 01 mask`: how many DTCs have any of the `mask` bits set.
pub fn report_number_of_dtc_by_status_mask(mask: DtcStatus) -> Vec<u8> {
    vec![
        READ_DTC_INFORMATION,
        REPORT_NUMBER_OF_DTC_BY_STATUS_MASK,
        mask.0,
    ]
}

/// `19 02 mask`: the DTCs with any of the `mask` bits set, with their status.
pub fn report_dtc_by_status_mask(mask: DtcStatus) -> Vec<u8> {
    vec![READ_DTC_INFORMATION, REPORT_DTC_BY_STATUS_MASK, mask.0]
}

/// `19 04 DTC(3) record`: freeze-frame data stored for `dtc` ([`ALL_RECORDS`] for every record).
pub fn report_dtc_snapshot_record_by_dtc_number(dtc: UdsDtc, record_number: u8) -> Vec<u8> {
    dtc_record_request(REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER, dtc, record_number)
}

/// `19 06 DTC(3) record`: extended data (counters, aging…) for `dtc` ([`ALL_RECORDS`] for all).
pub fn report_dtc_ext_data_record_by_dtc_number(dtc: UdsDtc, record_number: u8) -> Vec<u8> {
    dtc_record_request(REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER, dtc, record_number)
}

/// `19 0A`: every DTC the server supports, whatever its status.
pub fn report_supported_dtc() -> Vec<u8> {
    vec![READ_DTC_INFORMATION, REPORT_SUPPORTED_DTC]
}

/// `14 group(3)`: clear stored DTCs and their data; [`UdsDtc::ALL_GROUPS`] clears everything.
pub fn clear_diagnostic_information(group: UdsDtc) -> Vec<u8> {
    let mut req = vec![CLEAR_DIAGNOSTIC_INFORMATION];
    req.extend_from_slice(&group.to_bytes());
    req
}

fn dtc_record_request(report_type: u8, dtc: UdsDtc, record_number: u8) -> Vec<u8> {
    let mut req = vec![READ_DTC_INFORMATION, report_type];
    req.extend_from_slice(&dtc.to_bytes());
    req.push(record_number);
    req
}

// ---------------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------------

/// A decoded ReadDTCInformation positive response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ReadDtcResponse {
    /// 0x01 reportNumberOfDTCByStatusMask
    NumberOfDtcs(DtcCount),
    /// 0x02 reportDTCByStatusMask
    DtcsByStatusMask(DtcList),
    /// 0x04 reportDTCSnapshotRecordByDTCNumber
    SnapshotRecords(SnapshotRecords),
    /// 0x06 reportDTCExtDataRecordByDTCNumber
    ExtendedData(ExtendedData),
    /// 0x0A reportSupportedDTC
    SupportedDtcs(DtcList),
}

/// Answer to 0x01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DtcCount {
    /// The status bits the server supports.
    pub availability_mask: DtcStatus,
    pub format: DtcFormat,
    pub count: u16,
}

/// Answer to 0x02 and 0x0A.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DtcList {
    /// The status bits the server supports.
    pub availability_mask: DtcStatus,
    pub dtcs: Vec<DtcRecord>,
}

/// A DTC and its status byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DtcRecord {
    pub dtc: UdsDtc,
    pub status: DtcStatus,
}

/// Answer to 0x04.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRecords {
    pub dtc: UdsDtc,
    pub status: DtcStatus,
    /// The records decoded so far; the last may hold fewer values than its `identifier_count`
    /// when decoding stopped at a DID of unknown length.
    pub records: Vec<SnapshotRecord>,
    /// Everything from the first DID whose length the lookup did not know to the end of the
    /// response (its two DID bytes included); empty when all was decoded.
    pub undecoded: Vec<u8>,
}

/// One DTCSnapshotRecord.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotRecord {
    pub number: u8,
    /// DTCSnapshotRecordNumberOfIdentifiers as sent; 0 means "not stated".
    pub identifier_count: u8,
    pub values: Vec<DidValue>,
}

/// A data identifier and its raw value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DidValue {
    pub did: u16,
    pub data: Vec<u8>,
}

/// Answer to 0x06.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtendedData {
    pub dtc: UdsDtc,
    pub status: DtcStatus,
    /// Number of the first record; `None` when the server has no record for this DTC.
    pub record_number: Option<u8>,
    /// The bytes after the first record number, raw: that record and, when several were
    /// requested, the following records with their numbers.
    pub data: Vec<u8>,
}

/// Decodes a ReadDTCInformation positive response (starting with 0x59) without snapshot DID
/// lengths: a 0x04 answer keeps every record's data in [`SnapshotRecords::undecoded`].
pub fn parse_read_dtc_response(payload: &[u8]) -> Result<ReadDtcResponse, UdsError> {
    parse_read_dtc_response_with(payload, &|_| None)
}

/// Decodes a ReadDTCInformation positive response; `did_len` gives the length of a snapshot
/// DID's value when known (see the module documentation).
pub fn parse_read_dtc_response_with(
    payload: &[u8],
    did_len: &dyn Fn(u16) -> Option<usize>,
) -> Result<ReadDtcResponse, UdsError> {
    let body = strip_service(payload, READ_DTC_INFORMATION_RESPONSE)?;
    let (&sub_function, body) = body.split_first().ok_or(UdsError::MissingReportType)?;
    match sub_function & !SUPPRESS_POSITIVE_RESPONSE {
        REPORT_NUMBER_OF_DTC_BY_STATUS_MASK => parse_count(body).map(ReadDtcResponse::NumberOfDtcs),
        REPORT_DTC_BY_STATUS_MASK => {
            parse_list(body, REPORT_DTC_BY_STATUS_MASK).map(ReadDtcResponse::DtcsByStatusMask)
        }
        REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER => {
            parse_snapshots(body, did_len).map(ReadDtcResponse::SnapshotRecords)
        }
        REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER => {
            parse_extended(body).map(ReadDtcResponse::ExtendedData)
        }
        REPORT_SUPPORTED_DTC => {
            parse_list(body, REPORT_SUPPORTED_DTC).map(ReadDtcResponse::SupportedDtcs)
        }
        other => Err(UdsError::UnsupportedReportType(other)),
    }
}

/// Checks a ClearDiagnosticInformation positive response: the single byte 0x54.
pub fn parse_clear_response(payload: &[u8]) -> Result<(), UdsError> {
    let rest = strip_service(payload, CLEAR_DIAGNOSTIC_INFORMATION_RESPONSE)?;
    if rest.is_empty() {
        Ok(())
    } else {
        Err(UdsError::ClearResponseLength(payload.len()))
    }
}

/// Checks the service byte and returns what follows it.
fn strip_service(payload: &[u8], expected: u8) -> Result<&[u8], UdsError> {
    if let Some(negative) = NegativeResponse::parse(payload)? {
        return Err(UdsError::NegativeResponse(negative));
    }
    match payload.split_first() {
        None => Err(UdsError::Empty),
        Some((&got, rest)) if got == expected => Ok(rest),
        Some((&got, _)) => Err(UdsError::UnexpectedService { expected, got }),
    }
}

/// Takes `n` bytes off the front of `data`.
fn take<'a>(data: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
    let (head, tail) = data.split_at_checked(n)?;
    *data = tail;
    Some(head)
}

/// Reads the DTC(3) + status(1) that starts 0x04 and 0x06 answers.
fn take_dtc_record(data: &mut &[u8]) -> Option<DtcRecord> {
    match take(data, 4)? {
        &[high, mid, low, status] => Some(DtcRecord {
            dtc: UdsDtc::from_bytes([high, mid, low]),
            status: DtcStatus(status),
        }),
        _ => None,
    }
}

/// Bytes in the payload before `body` starts: service and report type.
const HEADER_LEN: usize = 2;

fn parse_count(body: &[u8]) -> Result<DtcCount, UdsError> {
    match body {
        &[mask, format, hi, lo] => Ok(DtcCount {
            availability_mask: DtcStatus(mask),
            format: DtcFormat::from_byte(format),
            count: u16::from_be_bytes([hi, lo]),
        }),
        _ => Err(UdsError::WrongLength {
            report_type: REPORT_NUMBER_OF_DTC_BY_STATUS_MASK,
            expected: HEADER_LEN + 4,
            got: HEADER_LEN + body.len(),
        }),
    }
}

fn parse_list(body: &[u8], report_type: u8) -> Result<DtcList, UdsError> {
    let (&mask, records) = body.split_first().ok_or(UdsError::Truncated {
        report_type,
        needed: HEADER_LEN + 1,
        got: HEADER_LEN,
    })?;
    let chunks = records.chunks_exact(4);
    if !chunks.remainder().is_empty() {
        return Err(UdsError::PartialDtcRecord(chunks.remainder().len()));
    }
    let dtcs = chunks
        .filter_map(|mut chunk| take_dtc_record(&mut chunk))
        .collect();
    Ok(DtcList {
        availability_mask: DtcStatus(mask),
        dtcs,
    })
}

fn parse_snapshots(
    mut body: &[u8],
    did_len: &dyn Fn(u16) -> Option<usize>,
) -> Result<SnapshotRecords, UdsError> {
    let got = HEADER_LEN + body.len();
    let DtcRecord { dtc, status } = take_dtc_record(&mut body).ok_or(UdsError::Truncated {
        report_type: REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER,
        needed: HEADER_LEN + 4,
        got,
    })?;
    let mut out = SnapshotRecords {
        dtc,
        status,
        records: Vec::new(),
        undecoded: Vec::new(),
    };
    while let Some((&number, rest)) = body.split_first() {
        let (&identifier_count, rest) = rest
            .split_first()
            .ok_or(UdsError::SnapshotHeaderTruncated { record: number })?;
        body = rest;
        let mut record = SnapshotRecord {
            number,
            identifier_count,
            values: Vec::new(),
        };
        let complete = parse_snapshot_values(&mut record, &mut body, did_len)?;
        out.records.push(record);
        if !complete {
            out.undecoded = body.to_vec();
            break;
        }
    }
    Ok(out)
}

/// Decodes one record's DIDs from `body`. Returns false when it met a DID of unknown length,
/// leaving `body` at that DID.
fn parse_snapshot_values(
    record: &mut SnapshotRecord,
    body: &mut &[u8],
    did_len: &dyn Fn(u16) -> Option<usize>,
) -> Result<bool, UdsError> {
    // A count of 0 means "not stated": decode until the response ends.
    let stated = usize::from(record.identifier_count);
    while record.values.len() < stated || (stated == 0 && !body.is_empty()) {
        let &[hi, lo, ref rest @ ..] = *body else {
            return Err(UdsError::SnapshotDidTruncated {
                record: record.number,
                got: body.len(),
            });
        };
        let did = u16::from_be_bytes([hi, lo]);
        let Some(len) = did_len(did) else {
            return Ok(false);
        };
        let (value, tail) = rest
            .split_at_checked(len)
            .ok_or(UdsError::SnapshotDataTruncated {
                record: record.number,
                did,
                needed: len,
                got: rest.len(),
            })?;
        record.values.push(DidValue {
            did,
            data: value.to_vec(),
        });
        *body = tail;
    }
    Ok(true)
}

fn parse_extended(mut body: &[u8]) -> Result<ExtendedData, UdsError> {
    let got = HEADER_LEN + body.len();
    let DtcRecord { dtc, status } = take_dtc_record(&mut body).ok_or(UdsError::Truncated {
        report_type: REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER,
        needed: HEADER_LEN + 4,
        got,
    })?;
    let (record_number, data) = match body.split_first() {
        Some((&number, data)) => (Some(number), data.to_vec()),
        None => (None, Vec::new()),
    };
    Ok(ExtendedData {
        dtc,
        status,
        record_number,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nrc::Nrc;
    use proptest::prelude::*;

    fn udtc(s: &str) -> UdsDtc {
        s.parse().expect("valid UDS DTC")
    }

    #[test]
    fn dtc_parts_and_text() {
        // 04 20 1F: J2012 P0420 (J2012 bit layout), FTB 0x1F
        let d = UdsDtc::from_bytes([0x04, 0x20, 0x1F]);
        assert_eq!(d.raw(), 0x04201F);
        assert_eq!(d.code().to_string(), "P0420");
        assert_eq!(d.failure_type(), 0x1F);
        assert_eq!(d.to_string(), "P0420-1F");
        assert_eq!(d.to_bytes(), [0x04, 0x20, 0x1F]);
        // C1 00 87: U0100 "lost communication with ECM/PCM", FTB 0x87 missing message
        assert_eq!(
            UdsDtc::from_bytes([0xC1, 0x00, 0x87]).to_string(),
            "U0100-87"
        );
        assert_eq!(udtc("U0100-87"), UdsDtc::from_bytes([0xC1, 0x00, 0x87]));
        assert_eq!(udtc("u010087"), UdsDtc::from_bytes([0xC1, 0x00, 0x87]));
        assert_eq!(udtc("b1234-0a").to_bytes(), [0x92, 0x34, 0x0A]);
        assert_eq!(UdsDtc::new("P0420".parse().expect("dtc"), 0x1F), d);
        assert_eq!(serde_json::to_string(&d).expect("json"), "\"P0420-1F\"");
    }

    #[test]
    fn dtc_text_errors() {
        assert_eq!("P0420".parse::<UdsDtc>(), Err(UdsError::WrongTextLength(5)));
        assert_eq!(
            "P0420-1F0".parse::<UdsDtc>(),
            Err(UdsError::WrongTextLength(9))
        );
        assert_eq!(
            "P0420:1F".parse::<UdsDtc>(),
            Err(UdsError::MissingSeparator(':'))
        );
        assert_eq!(
            "P0420-1G".parse::<UdsDtc>(),
            Err(UdsError::NotHex {
                position: 8,
                found: 'G'
            })
        );
        assert_eq!(
            "P0420X1".parse::<UdsDtc>(),
            Err(UdsError::NotHex {
                position: 6,
                found: 'X'
            })
        );
        assert_eq!(
            "Q0420-1F".parse::<UdsDtc>(),
            Err(UdsError::Code(DtcError::BadSystemLetter('Q')))
        );
        assert_eq!(
            "P5420-1F".parse::<UdsDtc>(),
            Err(UdsError::Code(DtcError::BadFirstDigit('5')))
        );
    }

    #[test]
    fn status_bits_are_named_per_d2() {
        let s = DtcStatus(0x09);
        assert!(s.test_failed() && s.confirmed_dtc());
        assert!(!s.pending_dtc() && !s.warning_indicator_requested());
        assert_eq!(s.names(), vec!["testFailed", "confirmedDTC"]);
        assert_eq!(s.to_string(), "0x09 (testFailed, confirmedDTC)");
        assert_eq!(
            serde_json::to_string(&DtcStatus(0xAF)).expect("json"),
            r#"["testFailed","testFailedThisOperationCycle","pendingDTC","confirmedDTC","testFailedSinceLastClear","warningIndicatorRequested"]"#
        );
        assert_eq!(DtcStatus(0).names(), Vec::<&str>::new());
        let all = DtcStatus(0xFF);
        let each = [
            all.test_failed(),
            all.test_failed_this_operation_cycle(),
            all.pending_dtc(),
            all.confirmed_dtc(),
            all.test_not_completed_since_last_clear(),
            all.test_failed_since_last_clear(),
            all.test_not_completed_this_operation_cycle(),
            all.warning_indicator_requested(),
        ];
        assert!(each.iter().all(|b| *b));
        assert_eq!(all.names().len(), 8);
        for (bit, name) in STATUS_BIT_NAMES.iter().enumerate() {
            assert_eq!(DtcStatus(1 << bit).names(), vec![*name]);
        }
        assert!(DtcStatus(0x40).test_not_completed_this_operation_cycle());
        assert!(DtcStatus(0x10).test_not_completed_since_last_clear());
        assert!(DtcStatus(0x20).test_failed_since_last_clear());
        assert!(DtcStatus(0x02).test_failed_this_operation_cycle());
    }

    #[test]
    fn request_bytes() {
        // request layouts from the ISO 14229-1 0x19 request message definitions
        assert_eq!(
            report_number_of_dtc_by_status_mask(DtcStatus(0x09)),
            [0x19, 0x01, 0x09]
        );
        assert_eq!(
            report_dtc_by_status_mask(DtcStatus(0xFF)),
            [0x19, 0x02, 0xFF]
        );
        let d = udtc("P0420-1F");
        assert_eq!(
            report_dtc_snapshot_record_by_dtc_number(d, ALL_RECORDS),
            [0x19, 0x04, 0x04, 0x20, 0x1F, 0xFF]
        );
        assert_eq!(
            report_dtc_ext_data_record_by_dtc_number(d, 0x01),
            [0x19, 0x06, 0x04, 0x20, 0x1F, 0x01]
        );
        assert_eq!(report_supported_dtc(), [0x19, 0x0A]);
        assert_eq!(
            clear_diagnostic_information(UdsDtc::ALL_GROUPS),
            [0x14, 0xFF, 0xFF, 0xFF]
        );
    }

    #[test]
    fn number_of_dtcs() {
        // 59 01 availMask=FF format=01 (ISO 14229-1) count=0x0003
        let r = parse_read_dtc_response(&[0x59, 0x01, 0xFF, 0x01, 0x00, 0x03]).expect("valid");
        assert_eq!(
            r,
            ReadDtcResponse::NumberOfDtcs(DtcCount {
                availability_mask: DtcStatus(0xFF),
                format: DtcFormat::Iso14229_1,
                count: 3,
            })
        );
        let r = parse_read_dtc_response(&[0x59, 0x01, 0x2F, 0x04, 0x01, 0x02]).expect("valid");
        let ReadDtcResponse::NumberOfDtcs(c) = r else {
            panic!("wrong variant {r:?}")
        };
        assert_eq!((c.format, c.count), (DtcFormat::SaeJ2012DaWwhObd, 0x0102));
        for (b, f) in [
            (0x00, DtcFormat::Iso15031_6),
            (0x02, DtcFormat::SaeJ1939_73),
            (0x03, DtcFormat::Iso11992_4),
            (0x05, DtcFormat::Reserved(0x05)),
        ] {
            assert_eq!(DtcFormat::from_byte(b), f);
            assert_eq!(f.to_byte(), b);
        }
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x01, 0xFF, 0x01, 0x00]),
            Err(UdsError::WrongLength {
                report_type: 0x01,
                expected: 6,
                got: 5
            })
        );
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x01, 0xFF, 0x01, 0x00, 0x03, 0x00]),
            Err(UdsError::WrongLength {
                report_type: 0x01,
                expected: 6,
                got: 7
            })
        );
    }

    #[test]
    fn dtcs_by_status_mask() {
        // 59 02 availMask=FF, P0420-1F status 0x09 (testFailed|confirmed), U0100-87 status 0x2C
        let payload = [
            0x59, 0x02, 0xFF, 0x04, 0x20, 0x1F, 0x09, 0xC1, 0x00, 0x87, 0x2C,
        ];
        let r = parse_read_dtc_response(&payload).expect("valid");
        let expected = DtcList {
            availability_mask: DtcStatus(0xFF),
            dtcs: vec![
                DtcRecord {
                    dtc: udtc("P0420-1F"),
                    status: DtcStatus(0x09),
                },
                DtcRecord {
                    dtc: udtc("U0100-87"),
                    status: DtcStatus(0x2C),
                },
            ],
        };
        assert_eq!(r, ReadDtcResponse::DtcsByStatusMask(expected.clone()));
        // the same body under 0x0A, and with bit 7 echoed in the sub-function
        let mut supported = payload;
        supported[1] = 0x0A;
        assert_eq!(
            parse_read_dtc_response(&supported),
            Ok(ReadDtcResponse::SupportedDtcs(expected.clone()))
        );
        supported[1] = 0x8A;
        assert_eq!(
            parse_read_dtc_response(&supported),
            Ok(ReadDtcResponse::SupportedDtcs(expected))
        );
        // no DTCs at all: just the availability mask
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x02, 0x7F]),
            Ok(ReadDtcResponse::DtcsByStatusMask(DtcList {
                availability_mask: DtcStatus(0x7F),
                dtcs: vec![]
            }))
        );
        assert_eq!(
            serde_json::to_string(&parse_read_dtc_response(&payload[..7]).expect("valid"))
                .expect("json"),
            r#"{"DtcsByStatusMask":{"availability_mask":["testFailed","testFailedThisOperationCycle","pendingDTC","confirmedDTC","testNotCompletedSinceLastClear","testFailedSinceLastClear","testNotCompletedThisOperationCycle","warningIndicatorRequested"],"dtcs":[{"dtc":"P0420-1F","status":["testFailed","confirmedDTC"]}]}}"#
        );
    }

    #[test]
    fn dtc_list_errors() {
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x02, 0xFF, 0x04, 0x20, 0x1F]),
            Err(UdsError::PartialDtcRecord(3))
        );
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x0A, 0xFF, 0x04, 0x20, 0x1F, 0x09, 0x01]),
            Err(UdsError::PartialDtcRecord(1))
        );
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x02]),
            Err(UdsError::Truncated {
                report_type: 0x02,
                needed: 3,
                got: 2
            })
        );
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(parse_read_dtc_response(&[]), Err(UdsError::Empty));
        assert_eq!(
            parse_read_dtc_response(&[0x59]),
            Err(UdsError::MissingReportType)
        );
        assert_eq!(
            parse_read_dtc_response(&[0x62, 0xF1, 0x90]),
            Err(UdsError::UnexpectedService {
                expected: 0x59,
                got: 0x62
            })
        );
        assert_eq!(
            parse_read_dtc_response(&[0x59, 0x03, 0x00]),
            Err(UdsError::UnsupportedReportType(0x03))
        );
        assert_eq!(
            parse_read_dtc_response(&[0x7F, 0x19, 0x31]),
            Err(UdsError::NegativeResponse(NegativeResponse {
                service: 0x19,
                nrc: Nrc(0x31)
            }))
        );
        assert_eq!(
            parse_read_dtc_response(&[0x7F, 0x19]),
            Err(UdsError::MalformedNegativeResponse(NrcError::WrongLength(
                2
            )))
        );
    }

    /// DID lengths of the test vehicle: F40D vehicle speed (1 byte), F40C engine speed (2).
    fn test_did_len(did: u16) -> Option<usize> {
        match did {
            0xF40D => Some(1),
            0xF40C => Some(2),
            _ => None,
        }
    }

    #[test]
    fn snapshot_records_with_known_dids() {
        // 59 04 P0420-1F status 0x09; record 01 with 2 DIDs (F40D=0x32, F40C=0x1AF8);
        // record 02 with 1 DID (F40D=0x00)
        let payload = [
            0x59, 0x04, 0x04, 0x20, 0x1F, 0x09, //
            0x01, 0x02, 0xF4, 0x0D, 0x32, 0xF4, 0x0C, 0x1A, 0xF8, //
            0x02, 0x01, 0xF4, 0x0D, 0x00,
        ];
        let r = parse_read_dtc_response_with(&payload, &test_did_len).expect("valid");
        let ReadDtcResponse::SnapshotRecords(s) = r else {
            panic!("wrong variant {r:?}")
        };
        assert_eq!(s.dtc, udtc("P0420-1F"));
        assert_eq!(s.status, DtcStatus(0x09));
        assert_eq!(
            s.records,
            vec![
                SnapshotRecord {
                    number: 1,
                    identifier_count: 2,
                    values: vec![
                        DidValue {
                            did: 0xF40D,
                            data: vec![0x32]
                        },
                        DidValue {
                            did: 0xF40C,
                            data: vec![0x1A, 0xF8]
                        },
                    ],
                },
                SnapshotRecord {
                    number: 2,
                    identifier_count: 1,
                    values: vec![DidValue {
                        did: 0xF40D,
                        data: vec![0x00]
                    }],
                },
            ]
        );
        assert!(s.undecoded.is_empty());

        // count 0 ("not stated"): decoded until the end
        let payload = [
            0x59, 0x04, 0x04, 0x20, 0x1F, 0x09, 0x01, 0x00, 0xF4, 0x0D, 0x32,
        ];
        let r = parse_read_dtc_response_with(&payload, &test_did_len).expect("valid");
        let ReadDtcResponse::SnapshotRecords(s) = r else {
            panic!("wrong variant {r:?}")
        };
        assert_eq!(
            s.records[0].values,
            vec![DidValue {
                did: 0xF40D,
                data: vec![0x32]
            }]
        );

        // a DTC without snapshot data: only DTC and status
        let r = parse_read_dtc_response(&[0x59, 0x04, 0x04, 0x20, 0x1F, 0x09]).expect("valid");
        let ReadDtcResponse::SnapshotRecords(s) = r else {
            panic!("wrong variant {r:?}")
        };
        assert!(s.records.is_empty() && s.undecoded.is_empty());
    }

    #[test]
    fn snapshot_records_stop_at_unknown_did() {
        // record 01, 2 DIDs: F40D known, 1234 unknown; record 02 follows but cannot be found
        let payload = [
            0x59, 0x04, 0x04, 0x20, 0x1F, 0x09, //
            0x01, 0x02, 0xF4, 0x0D, 0x32, 0x12, 0x34, 0xAA, 0xBB, //
            0x02, 0x01, 0xF4, 0x0D, 0x00,
        ];
        let r = parse_read_dtc_response_with(&payload, &test_did_len).expect("valid");
        let ReadDtcResponse::SnapshotRecords(s) = r else {
            panic!("wrong variant {r:?}")
        };
        assert_eq!(
            s.records,
            vec![SnapshotRecord {
                number: 1,
                identifier_count: 2,
                values: vec![DidValue {
                    did: 0xF40D,
                    data: vec![0x32]
                }],
            }]
        );
        assert_eq!(s.undecoded, payload[11..].to_vec());

        // without a lookup everything after the record header is raw
        let r = parse_read_dtc_response(&payload).expect("valid");
        let ReadDtcResponse::SnapshotRecords(s) = r else {
            panic!("wrong variant {r:?}")
        };
        assert_eq!(s.records.len(), 1);
        assert!(s.records[0].values.is_empty());
        assert_eq!(s.undecoded, payload[8..].to_vec());
    }

    #[test]
    fn snapshot_errors() {
        let head = [0x59, 0x04, 0x04, 0x20, 0x1F, 0x09];
        let with = |tail: &[u8]| {
            let mut p = head.to_vec();
            p.extend_from_slice(tail);
            parse_read_dtc_response_with(&p, &test_did_len)
        };
        assert_eq!(
            parse_read_dtc_response(&head[..5]),
            Err(UdsError::Truncated {
                report_type: 0x04,
                needed: 6,
                got: 5
            })
        );
        assert_eq!(
            with(&[0x01]),
            Err(UdsError::SnapshotHeaderTruncated { record: 1 })
        );
        assert_eq!(
            with(&[0x01, 0x01]),
            Err(UdsError::SnapshotDidTruncated { record: 1, got: 0 })
        );
        assert_eq!(
            with(&[0x01, 0x02, 0xF4, 0x0D, 0x32, 0xF4]),
            Err(UdsError::SnapshotDidTruncated { record: 1, got: 1 })
        );
        assert_eq!(
            with(&[0x01, 0x01, 0xF4, 0x0C, 0x1A]),
            Err(UdsError::SnapshotDataTruncated {
                record: 1,
                did: 0xF40C,
                needed: 2,
                got: 1
            })
        );
    }

    #[test]
    fn extended_data_kept_raw() {
        // 59 06 P0420-1F status 0x09, record 01 = occurrence counter 0x05, record 02 = 0x10 0x20
        let payload = [
            0x59, 0x06, 0x04, 0x20, 0x1F, 0x09, 0x01, 0x05, 0x02, 0x10, 0x20,
        ];
        assert_eq!(
            parse_read_dtc_response(&payload),
            Ok(ReadDtcResponse::ExtendedData(ExtendedData {
                dtc: udtc("P0420-1F"),
                status: DtcStatus(0x09),
                record_number: Some(1),
                data: vec![0x05, 0x02, 0x10, 0x20],
            }))
        );
        assert_eq!(
            parse_read_dtc_response(&payload[..6]),
            Ok(ReadDtcResponse::ExtendedData(ExtendedData {
                dtc: udtc("P0420-1F"),
                status: DtcStatus(0x09),
                record_number: None,
                data: vec![],
            }))
        );
        assert_eq!(
            parse_read_dtc_response(&payload[..4]),
            Err(UdsError::Truncated {
                report_type: 0x06,
                needed: 6,
                got: 4
            })
        );
    }

    #[test]
    fn clear_response() {
        assert_eq!(parse_clear_response(&[0x54]), Ok(()));
        assert_eq!(
            parse_clear_response(&[0x54, 0x00]),
            Err(UdsError::ClearResponseLength(2))
        );
        assert_eq!(parse_clear_response(&[]), Err(UdsError::Empty));
        assert_eq!(
            parse_clear_response(&[0x59]),
            Err(UdsError::UnexpectedService {
                expected: 0x54,
                got: 0x59
            })
        );
        assert_eq!(
            parse_clear_response(&[0x7F, 0x14, 0x22]),
            Err(UdsError::NegativeResponse(NegativeResponse {
                service: 0x14,
                nrc: Nrc(0x22)
            }))
        );
    }

    proptest! {
        #[test]
        fn uds_dtc_round_trips(raw in 0u32..=0xFF_FFFF) {
            let [_, a, b, c] = raw.to_be_bytes();
            let d = UdsDtc::from_bytes([a, b, c]);
            prop_assert_eq!(d.raw(), raw);
            prop_assert_eq!(d.to_bytes(), [a, b, c]);
            prop_assert_eq!(UdsDtc::new(d.code(), d.failure_type()), d);
            let text = d.to_string();
            prop_assert_eq!(text.parse::<UdsDtc>(), Ok(d));
            prop_assert_eq!(text.replace('-', "").to_ascii_lowercase().parse::<UdsDtc>(), Ok(d));
        }

        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64), text in "\\PC{0,10}") {
            let _ = parse_read_dtc_response(&bytes);
            let _ = parse_read_dtc_response_with(&bytes, &|did| Some(usize::from(did & 0x7)));
            let _ = parse_read_dtc_response_with(&bytes, &|_| Some(usize::MAX));
            let _ = parse_clear_response(&bytes);
            let _ = text.parse::<UdsDtc>();
        }

        #[test]
        fn structured_bodies_never_panic(
            sub in prop::sample::select(vec![0x01u8, 0x02, 0x04, 0x06, 0x0A]),
            body in proptest::collection::vec(any::<u8>(), 0..48),
        ) {
            let mut payload = vec![0x59, sub];
            payload.extend_from_slice(&body);
            let _ = parse_read_dtc_response_with(&payload, &test_did_len);
        }
    }
}
