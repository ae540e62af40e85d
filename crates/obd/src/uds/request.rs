//! ReadDTCInformation and ClearDiagnosticInformation requests, as bytes.

use super::*;

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
