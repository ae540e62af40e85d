//! UDS requests and answers byte by byte.

use proptest::prelude::*;

use super::dtc::STATUS_BIT_NAMES;
use super::*;
use crate::nrc::Nrc;

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
