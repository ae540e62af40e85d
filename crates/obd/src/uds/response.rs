//! ReadDTCInformation and ClearDiagnosticInformation answers, decoded.

use serde::Serialize;

use super::*;
use crate::nrc::NegativeResponse;

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
