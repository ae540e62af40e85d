//! The older buses on real bytes. Where a vector comes from:
//!
//! - "capture": logic-analyser captures between an ELM327 clone and a Freematics OBD
//!   emulator (m0agx.eu, "Reading OBD2 data without ELM327, part 2 – K-Line", 2018), and a
//!   J1850 VPW request captured on a bus (`68 6A F1 01 00 17`);
//! - "scantool.net": answers of the ScanTool.net simulator quoted in libvoyager's DTC tests
//!   (the same three ECU answers in each protocol);
//! - "LTOBD2": J1850 PWM and VPW answers quoted in LTOBD2's J1850 decoder;
//! - "data sheet": the ELM327 data sheet's examples.
//!
//! Every check byte below was verified independently of this module (by hand computation)
//! before it was written down.

use proptest::prelude::*;

use super::*;
use crate::dtc::Dtc;
use crate::service::{Response, VehicleInfo};
use crate::vin::Vin;

fn bytes(hex: &str) -> Vec<u8> {
    hex.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

fn dtcs_of(payload: &[u8]) -> Vec<String> {
    match Response::parse(payload).unwrap() {
        Response::Dtcs { dtcs, .. } => dtcs.iter().map(Dtc::to_string).collect(),
        other => panic!("{other:?}"),
    }
}

// ---- check bytes ----

#[test]
fn j1850_crc_matches_the_catalogue_and_real_messages() {
    // CRC-8/SAE-J1850 check value.
    assert_eq!(Protocol::J1850Vpw.check_byte(b"123456789"), 0x4B);
    // capture: the VPW request for 01 00.
    assert_eq!(
        Protocol::J1850Vpw.check_byte(&bytes("68 6A F1 01 00")),
        0x17
    );
    // LTOBD2: two ECUs answering 01 00 on PWM, and on VPW.
    assert_eq!(
        Protocol::J1850Pwm.check_byte(&bytes("41 6B 10 41 00 B8 7B 30 10")),
        0x9E
    );
    assert_eq!(
        Protocol::J1850Pwm.check_byte(&bytes("41 6B 17 41 00 80 00 80 03")),
        0xC9
    );
    assert_eq!(
        Protocol::J1850Vpw.check_byte(&bytes("48 6B 10 41 00 B8 7B 30 10")),
        0xF4
    );
    assert_eq!(Protocol::J1850Vpw.check_byte(&[]), 0x00);
}

#[test]
fn k_line_check_byte_is_the_sum() {
    // capture: ISO 9141-2 and KWP requests for 01 00, and answers to them.
    assert_eq!(Protocol::Iso9141.check_byte(&bytes("68 6A F1 01 00")), 0xC4);
    assert_eq!(
        Protocol::Iso9141.check_byte(&bytes("48 6B 11 41 00 FF FF FF FF")),
        0x01
    );
    assert_eq!(Protocol::KwpFast.check_byte(&bytes("C2 33 F1 01 00")), 0xE7);
    assert_eq!(
        Protocol::Kwp5Baud.check_byte(&bytes("86 F1 11 41 00 FF FF FF FF")),
        0xC5
    );
}

#[test]
fn numbers_names_and_headers() {
    for (n, p) in (1..).zip(Protocol::ALL) {
        assert_eq!(p.elm_number(), n);
        assert_eq!(Protocol::from_elm_number(n), Some(p));
    }
    assert_eq!(Protocol::from_elm_number(0), None);
    assert_eq!(Protocol::from_elm_number(6), None);
    assert_eq!(Protocol::Kwp5Baud.to_string(), "ISO 14230-4 (KWP 5BAUD)");
    assert_eq!(Protocol::J1850Pwm.request_header(2), [0x61, 0x6A, 0xF1]);
    assert_eq!(Protocol::Iso9141.request_header(2), [0x68, 0x6A, 0xF1]);
    assert_eq!(Protocol::KwpFast.request_header(2), [0xC2, 0x33, 0xF1]);
    assert_eq!(
        Protocol::J1850Pwm.response_header(0x10, 6),
        [0x41, 0x6B, 0x10]
    );
    assert_eq!(
        Protocol::J1850Vpw.response_header(0x18, 6),
        [0x48, 0x6B, 0x18]
    );
    assert_eq!(
        Protocol::KwpFast.response_header(0x10, 6),
        [0x86, 0xF1, 0x10]
    );
    assert_eq!(Protocol::Iso9141.functional_target(), 0x6A);
    assert_eq!(Protocol::Kwp5Baud.functional_target(), 0x33);
    assert!(!Protocol::J1850Vpw.needs_bus_init());
    assert!(Protocol::KwpFast.needs_bus_init());
}

// ---- one message ----

/// Real answers in each protocol, with their sender and data.
const REAL_ANSWERS: [(Protocol, &str, u8, &str); 8] = [
    // LTOBD2
    (
        Protocol::J1850Pwm,
        "41 6B 10 41 00 B8 7B 30 10 9E",
        0x10,
        "41 00 B8 7B 30 10",
    ),
    (
        Protocol::J1850Vpw,
        "48 6B 17 41 00 80 00 80 03 A3",
        0x17,
        "41 00 80 00 80 03",
    ),
    // scantool.net
    (
        Protocol::J1850Pwm,
        "41 6B 18 43 01 01 00 00 00 00 18",
        0x18,
        "43 01 01 00 00 00 00",
    ),
    // capture
    (
        Protocol::Iso9141,
        "48 6B 10 41 00 BE 1F B8 11 AA",
        0x10,
        "41 00 BE 1F B8 11",
    ),
    (
        Protocol::Iso9141,
        "48 6B 11 49 02 01 00 00 00 31 41",
        0x11,
        "49 02 01 00 00 00 31",
    ),
    (
        Protocol::KwpFast,
        "86 F1 18 41 00 80 00 00 01 51",
        0x18,
        "41 00 80 00 00 01",
    ),
    (Protocol::KwpFast, "83 F1 11 41 0D 64 37", 0x11, "41 0D 64"),
    // scantool.net, KWP 5-baud
    (
        Protocol::Kwp5Baud,
        "87 F1 10 43 43 00 82 00 C1 00 51",
        0x10,
        "43 43 00 82 00 C1 00",
    ),
];

#[test]
fn real_answers_decode_and_encode_back() {
    for (protocol, line, source, data) in REAL_ANSWERS {
        let raw = bytes(line);
        let frame = protocol
            .decode(&raw)
            .unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(frame.source(), source, "{line}");
        assert_eq!(frame.data, bytes(data), "{line}");
        assert_eq!(protocol.encode(source, &frame.data), Ok(raw), "{line}");
    }
}

#[test]
fn a_bad_check_byte_is_named() {
    let err = Protocol::Iso9141
        .decode(&bytes("48 6B 10 41 00 BE 1F B8 11 AB"))
        .unwrap_err();
    assert_eq!(
        err,
        FrameError::CheckByte {
            protocol: Protocol::Iso9141,
            expected: 0xAA,
            got: 0xAB
        }
    );
    assert!(err.to_string().contains("0xAB"), "{err}");
    // The right message read with the other check rule.
    assert!(matches!(
        Protocol::J1850Vpw.decode(&bytes("48 6B 10 41 00 BE 1F B8 11 AA")),
        Err(FrameError::CheckByte { .. })
    ));
    assert!(matches!(
        Protocol::Iso9141.decode(&bytes("48 6B 10 41 00 B8 7B 30 10 F4")),
        Err(FrameError::CheckByte { .. })
    ));
}

#[test]
fn short_messages_and_kwp_lengths() {
    assert_eq!(
        Protocol::Iso9141.decode(&bytes("48 6B 10 C3")),
        Err(FrameError::TooShort { len: 4 })
    );
    assert_eq!(
        Protocol::Iso9141.decode(&[]),
        Err(FrameError::TooShort { len: 0 })
    );
    // Format byte 85 says five data bytes; six follow (check byte made consistent).
    let mut raw = bytes("85 F1 10 41 00 BE 3F E8 11");
    raw.push(Protocol::KwpFast.check_byte(&raw));
    assert_eq!(
        Protocol::KwpFast.decode(&raw),
        Err(FrameError::FormatLength {
            declared: 5,
            actual: 6
        })
    );
    assert_eq!(
        Protocol::J1850Pwm.encode(0x10, &[]),
        Err(FrameError::DataLength { len: 0 })
    );
    assert_eq!(
        Protocol::J1850Pwm.encode(0x10, &[0; 8]),
        Err(FrameError::DataLength { len: 8 })
    );
}

// ---- split ----

#[test]
fn dtc_lists_split_into_three_slots_per_message() {
    // scantool.net: six codes from ECU 10 (43 06 ... on CAN) and one from ECU 18.
    let can = bytes("43 06 01 00 02 00 03 00 43 00 82 00 C1 00");
    assert_eq!(
        split(&can),
        Ok(vec![
            bytes("43 01 00 02 00 03 00"),
            bytes("43 43 00 82 00 C1 00")
        ])
    );
    assert_eq!(
        split(&bytes("43 01 01 01")),
        Ok(vec![bytes("43 01 01 00 00 00 00")])
    );
    // Four codes: two messages, the second padded.
    assert_eq!(
        split(&bytes("47 04 01 33 04 20 03 00 01 71")),
        Ok(vec![
            bytes("47 01 33 04 20 03 00"),
            bytes("47 01 71 00 00 00 00")
        ])
    );
    // None: one message of empty slots (a real Nissan's `43 00 00 00 00 00 00`).
    assert_eq!(
        split(&bytes("4A 00")),
        Ok(vec![bytes("4A 00 00 00 00 00 00")])
    );
    // Without a count byte, as some CAN ECUs send it.
    assert_eq!(
        split(&bytes("43 04 20 01 43")),
        Ok(vec![bytes("43 04 20 01 43 00 00")])
    );
    assert_eq!(
        split(&bytes("43 02 01 33")),
        Err(SplitError::Dtcs(crate::service::ServiceError::DtcCount {
            count: 2,
            bytes: 2
        }))
    );
}

/// capture: the ISO 9141-2 VIN answer, data bytes only.
const VIN_MESSAGES: [&str; 5] = [
    "49 02 01 00 00 00 31",
    "49 02 02 41 31 4A 43",
    "49 02 03 35 34 34 34",
    "49 02 04 52 37 32 35",
    "49 02 05 32 33 36 37",
];
const VIN_TEXT: &[u8; 17] = b"1A1JC5444R7252367";

fn vin_payload(vin: &[u8]) -> Vec<u8> {
    let mut can = vec![0x49, 0x02, 0x01];
    can.extend_from_slice(vin);
    can
}

#[test]
fn vin_splits_into_five_numbered_messages() {
    let messages: Vec<Vec<u8>> = VIN_MESSAGES.iter().map(|m| bytes(m)).collect();
    assert_eq!(split(&vin_payload(VIN_TEXT)), Ok(messages));
}

#[test]
fn other_infotypes_split() {
    // Two calibration ids: eight messages.
    let mut can = vec![0x49, 0x04, 0x02];
    can.extend_from_slice(b"JMB*36761500\0\0\0\0JMB*47872611\0\0\0\0");
    let messages = split(&can).unwrap();
    assert_eq!(messages.len(), 8);
    assert_eq!(messages[0], b"\x49\x04\x01JMB*");
    assert_eq!(messages[4], b"\x49\x04\x05JMB*");
    assert_eq!(messages[7], b"\x49\x04\x08\0\0\0\0");
    // Two CVNs: one message each.
    assert_eq!(
        split(&bytes("49 06 02 17 91 BC 82 3E 91 D0 A2")),
        Ok(vec![
            bytes("49 06 01 17 91 BC 82"),
            bytes("49 06 02 3E 91 D0 A2")
        ])
    );
    assert_eq!(
        split(&bytes("49 00 55 40 00 00")),
        Ok(vec![bytes("49 00 01 55 40 00 00")])
    );
    assert_eq!(split(&bytes("49 01 05")), Ok(vec![bytes("49 01 05")]));
    assert_eq!(split(&bytes("49 04 00")), Ok(vec![]));
    assert_eq!(
        split(&bytes("49 00 55 40")),
        Err(SplitError::InfoLength {
            infotype: 0,
            len: 2,
            expected: "4"
        })
    );
    assert_eq!(split(&bytes("49")), Err(SplitError::NoInfotype));
    assert!(
        split(
            &vec![0x49, 0x0A, 0x01]
                .into_iter()
                .chain([0x41; 1100])
                .collect::<Vec<_>>()
        )
        .is_err()
    );
}

#[test]
fn single_message_answers_split_unchanged() {
    for one in [
        "41 0C 1A F8",
        "42 02 00 04 20",
        "44",
        "7F 01 12",
        "7F 03 78",
    ] {
        assert_eq!(split(&bytes(one)), Ok(vec![bytes(one)]), "{one}");
    }
    // A CAN multi-PID answer does not fit; nor does anything else of 8 bytes or more.
    assert_eq!(
        split(&bytes("41 0C 1A F8 0D 3C 05 7B")),
        Err(SplitError::TooLong { sid: 0x41, len: 8 })
    );
    assert_eq!(split(&[]), Err(SplitError::Empty));
}

// ---- join ----

#[test]
fn dtc_messages_join_without_a_count_byte() {
    // scantool.net, ISO 9141-2: ECU 10's two messages.
    let lines = [
        "48 6B 10 43 01 00 02 00 03 00 0C",
        "48 6B 10 43 43 00 82 00 C1 00 8C",
    ];
    let messages: Vec<Vec<u8>> = lines
        .iter()
        .map(|l| Protocol::Iso9141.decode(&bytes(l)).unwrap().data)
        .collect();
    let joined = join(&messages).unwrap();
    assert_eq!(joined, bytes("43 01 00 02 00 03 00 43 00 82 00 C1 00"));
    assert_eq!(
        dtcs_of(&joined),
        ["P0100", "P0200", "P0300", "C0300", "B0200", "U0100"]
    );
    // A 2001 Dodge Dakota (J1850 VPW): two codes and an empty slot.
    let dakota = Protocol::J1850Vpw
        .decode(&bytes("48 6B 10 43 03 06 03 56 00 00 DC"))
        .unwrap();
    assert_eq!(dtcs_of(&join(&[dakota.data]).unwrap()), ["P0306", "P0356"]);
    // Nothing stored: the SID alone, which the service parser reads as no codes.
    let none = join(&[bytes("43 00 00 00 00 00 00")]).unwrap();
    assert_eq!(none, [0x43]);
    assert!(dtcs_of(&none).is_empty());
}

#[test]
fn vin_joins_in_any_order() {
    let mut messages: Vec<Vec<u8>> = VIN_MESSAGES.iter().map(|m| bytes(m)).collect();
    messages.swap(0, 4);
    messages.swap(1, 3);
    let joined = join(&messages).unwrap();
    assert_eq!(joined, vin_payload(VIN_TEXT));
    assert_eq!(
        Response::parse(&joined).unwrap(),
        Response::VehicleInfo(VehicleInfo::Vin(Vin::from_bytes(VIN_TEXT).unwrap()))
    );
    // LTOBD2's J1850 VIN (a simulator's, with a `-` no real VIN has): the bytes still join.
    let j1850: Vec<Vec<u8>> = [
        "48 6B 10 49 02 01 00 00 00 57 B3",
        "48 6B 10 49 02 02 44 58 2D 53 99",
        "48 6B 10 49 02 03 49 4D 30 30 11",
        "48 6B 10 49 02 04 31 39 32 31 B6",
        "48 6B 10 49 02 05 32 33 34 35 A8",
    ]
    .iter()
    .map(|l| Protocol::J1850Vpw.decode(&bytes(l)).unwrap().data)
    .collect();
    assert_eq!(join(&j1850), Ok(vin_payload(b"WDX-SIM0019212345")));
}

#[test]
fn other_infotypes_join_with_their_item_count() {
    let mut can = vec![0x49, 0x04, 0x02];
    can.extend_from_slice(b"JMB*36761500\0\0\0\0JMB*47872611\0\0\0\0");
    let mut messages = split(&can).unwrap();
    messages.reverse();
    assert_eq!(join(&messages), Ok(can.clone()));
    assert_eq!(
        Response::parse(&can).unwrap(),
        Response::VehicleInfo(VehicleInfo::CalibrationIds(vec![
            "JMB*36761500".into(),
            "JMB*47872611".into()
        ]))
    );
    assert_eq!(
        join(&[bytes("49 06 01 17 91 BC 82")]),
        Ok(bytes("49 06 01 17 91 BC 82"))
    );
    assert_eq!(
        join(&[bytes("49 00 01 55 40 00 00")]),
        Ok(bytes("49 00 55 40 00 00"))
    );
    assert_eq!(join(&[bytes("49 01 05")]), Ok(bytes("49 01 05")));
    assert_eq!(
        Response::parse(&join(&[bytes("49 01 05")]).unwrap()).unwrap(),
        Response::VehicleInfo(VehicleInfo::MessageCount(5))
    );
    // An infotype this module does not know: one item per message.
    assert_eq!(
        join(&[bytes("49 0C 02 05 06 07 08"), bytes("49 0C 01 01 02 03 04")]),
        Ok(bytes("49 0C 02 01 02 03 04 05 06 07 08"))
    );
}

#[test]
fn single_messages_and_pid_answers_join() {
    assert_eq!(join(&[bytes("41 0C 1A F8")]), Ok(bytes("41 0C 1A F8")));
    assert_eq!(
        join(&[bytes("41 0C 1A F8"), bytes("41 0D 3C")]),
        Ok(bytes("41 0C 1A F8 0D 3C"))
    );
    assert_eq!(join(&[bytes("7F 01 12")]), Ok(bytes("7F 01 12")));
    assert_eq!(
        join(&[bytes("44"), bytes("44")]),
        Err(JoinError::NotSegmented {
            sid: 0x44,
            count: 2
        })
    );
}

#[test]
fn join_errors_say_what_is_wrong() {
    let vin: Vec<Vec<u8>> = VIN_MESSAGES.iter().map(|m| bytes(m)).collect();
    let missing: Vec<&Vec<u8>> = vin.iter().filter(|m| m[2] != 3).collect();
    let err = join(&missing).unwrap_err();
    assert_eq!(
        err,
        JoinError::MissingPart {
            infotype: 2,
            number: 3,
            count: 4
        }
    );
    assert!(err.to_string().contains("part 3"), "{err}");
    let twice = [vin[0].clone(), vin[1].clone(), vin[1].clone()];
    assert_eq!(
        join(&twice),
        Err(JoinError::DuplicatePart {
            infotype: 2,
            number: 2
        })
    );
    let mut filler = vin.clone();
    filler[0] = bytes("49 02 01 20 00 00 31");
    assert_eq!(
        join(&filler),
        Err(JoinError::VinFiller {
            fillers: vec![0x20, 0, 0]
        })
    );
    assert_eq!(join(&vin[..3]), Err(JoinError::VinLength { len: 12 }));
    assert_eq!(
        join(&[bytes("49 02 01 00 00 31")]),
        Err(JoinError::PartLength {
            infotype: 2,
            index: 0,
            len: 6
        })
    );
    assert_eq!(
        join(&[bytes("49 02 01 00 00 00 31"), bytes("49 04 01 4A 4D 42 2A")]),
        Err(JoinError::OtherInfotype {
            index: 1,
            expected: 2,
            got: 4
        })
    );
    assert_eq!(
        join(&[bytes("43 01 33 00 00 00 00"), bytes("41 0C 1A F8")]),
        Err(JoinError::OtherService {
            index: 1,
            expected: 0x43,
            got: 0x41
        })
    );
    assert_eq!(
        join(&[bytes("43 01 33 00 00 00")]),
        Err(JoinError::OddDtcBytes { index: 0, len: 5 })
    );
    assert_eq!(
        join(&[bytes("49 04 01 4A 4D 42 2A")]),
        Err(JoinError::ItemLength {
            infotype: 4,
            len: 4,
            item: 16
        })
    );
    assert_eq!(join::<Vec<u8>>(&[]), Err(JoinError::NoMessages));
    assert_eq!(
        join(&[bytes("43 00 00 00 00 00 00"), vec![]]),
        Err(JoinError::EmptyMessage { index: 1 })
    );
    assert_eq!(
        join(&[bytes("49")]),
        Err(JoinError::NoInfotype { index: 0 })
    );
}

#[test]
fn answers_are_grouped_by_what_belongs_together() {
    // A KWP ECU asked for its codes: response pending first, then two messages of codes.
    let messages = [
        bytes("7F 03 78"),
        bytes("43 01 33 04 20 03 00"),
        bytes("43 01 71 00 00 00 00"),
    ];
    assert_eq!(
        join_answers(&messages),
        vec![
            Ok(bytes("7F 03 78")),
            Ok(bytes("43 01 33 04 20 03 00 01 71"))
        ]
    );
    // Headers off, two ECUs answering 01 00: two answers, not one.
    let two = [bytes("41 00 BE 1F B8 11"), bytes("41 00 80 00 00 01")];
    assert_eq!(
        join_answers(&two),
        vec![Ok(two[0].clone()), Ok(two[1].clone())]
    );
    // A broken VIN beside a good bitmap: only the VIN is lost.
    let mixed = [
        bytes("49 00 01 55 40 00 00"),
        bytes("49 02 01 00 00 00 31"),
        bytes("49 02 03 35 34 34 34"),
    ];
    let answers = join_answers(&mixed);
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0], Ok(bytes("49 00 55 40 00 00")));
    assert!(matches!(
        answers[1],
        Err(JoinError::MissingPart { number: 2, .. })
    ));
    assert_eq!(
        join_answers(&[Vec::<u8>::new()]),
        vec![Err(JoinError::EmptyMessage { index: 0 })]
    );
}

// ---- properties ----

fn protocol() -> impl Strategy<Value = Protocol> {
    prop::sample::select(Protocol::ALL.to_vec())
}

/// A VIN of the VIN alphabet (no I, O, Q).
fn vin() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop::sample::select(b"ABCDEFGHJKLMNPRSTUVWXYZ0123456789".to_vec()),
        17,
    )
}

proptest! {
    #[test]
    fn messages_round_trip(p in protocol(), source: u8, data in prop::collection::vec(any::<u8>(), 1..=7)) {
        let raw = p.encode(source, &data).unwrap();
        prop_assert_eq!(raw.len(), data.len() + 4);
        let frame = p.decode(&raw).unwrap();
        prop_assert_eq!(frame.source(), source);
        prop_assert_eq!(frame.data, data);
    }

    /// Both check rules catch every single-bit error.
    #[test]
    fn one_flipped_bit_is_caught(p in protocol(), source: u8, data in prop::collection::vec(any::<u8>(), 1..=7), at: prop::sample::Index, bit in 0u8..8) {
        let mut raw = p.encode(source, &data).unwrap();
        let i = at.index(raw.len());
        raw[i] ^= 1 << bit;
        prop_assert!(p.decode(&raw).is_err());
    }

    /// Any list of codes, with the count byte as on CAN, comes back exactly through the
    /// messages an older ECU sends, read without the count byte.
    #[test]
    fn dtc_lists_round_trip(raw in prop::collection::vec(1u16..=u16::MAX, 0..30), sid in prop::sample::select(vec![0x43u8, 0x47, 0x4A])) {
        let mut can = vec![sid, raw.len() as u8];
        for code in &raw {
            can.extend(code.to_be_bytes());
        }
        let messages = split(&can).unwrap();
        prop_assert_eq!(messages.len(), raw.len().div_ceil(3).max(1));
        prop_assert!(messages.iter().all(|m| m.len() == MAX_DATA_LEN && m[0] == sid));
        let joined = join(&messages).unwrap();
        prop_assert_eq!((joined.len() - 1) % 2, 0);
        prop_assert_eq!(dtcs_of(&joined), dtcs_of(&can));
        let mut without_count = vec![sid];
        for code in &raw {
            without_count.extend(code.to_be_bytes());
        }
        prop_assert_eq!(joined, without_count);
    }

    #[test]
    fn vins_round_trip_in_any_order(vin in vin(), order in Just((0..5usize).collect::<Vec<_>>()).prop_shuffle()) {
        let can = vin_payload(&vin);
        let messages = split(&can).unwrap();
        prop_assert_eq!(messages.len(), 5);
        let shuffled: Vec<&Vec<u8>> = order.iter().map(|&i| &messages[i]).collect();
        prop_assert_eq!(join(&shuffled), Ok(can.clone()));
        let parsed = Response::parse(&can);
        prop_assert!(parsed.is_ok(), "{parsed:?}");
    }

    #[test]
    fn items_round_trip(infotype in prop::sample::select(vec![0x04u8, 0x06, 0x0A]), count in 1usize..6, fill: u8) {
        let size = match infotype { 0x04 => 16, 0x06 => 4, _ => 20 };
        let mut can = vec![0x49, infotype, count as u8];
        can.extend((0..count * size).map(|i| fill.wrapping_add(i as u8)));
        let messages = split(&can).unwrap();
        prop_assert_eq!(messages.len(), count * size / 4);
        prop_assert_eq!(join(&messages), Ok(can));
    }

    #[test]
    fn nothing_panics(p in protocol(), raw in prop::collection::vec(any::<u8>(), 0..40), messages in prop::collection::vec(prop::collection::vec(prop_oneof![Just(0x43u8), Just(0x49), Just(0x02), Just(0x01), any::<u8>()], 0..9), 0..8)) {
        let _ = p.decode(&raw);
        let _ = split(&raw);
        let _ = join(&messages);
        let _ = join_answers(&messages);
        if let Ok(parts) = split(&raw) {
            prop_assert!(parts.iter().all(|m| !m.is_empty() && m.len() <= MAX_DATA_LEN));
        }
    }
}
