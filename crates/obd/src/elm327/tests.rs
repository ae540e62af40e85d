//! The reply parser on real reply texts.

use proptest::prelude::*;

use super::*;
use crate::isotp;

fn data(cmd: &str) -> ParseOptions {
    ParseOptions::new(cmd)
}

fn headers(cmd: &str, width: IdWidth) -> ParseOptions {
    ParseOptions {
        headers: true,
        bus: Bus::Can(width),
        ..ParseOptions::new(cmd)
    }
}

fn msg(header: Option<CanId>, payload: &[u8]) -> Message {
    Message {
        header: header.map(EcuId::Can),
        payload: payload.to_vec(),
    }
}

fn std_id(id: u16) -> Option<CanId> {
    Some(CanId::Standard(id))
}

/// "1D4GP00R55B123456": the VIN bytes of the data sheet's multi-line example layout.
const VIN_PAYLOAD: [u8; 20] = [
    0x49, 0x02, 0x01, 0x31, 0x44, 0x34, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35, 0x42, 0x31, 0x32,
    0x33, 0x34, 0x35, 0x36,
];

// ---- ReplyBuffer ----

#[test]
fn buffer_cuts_at_prompts_and_drops_nul() {
    let mut b = ReplyBuffer::new();
    assert!(b.push(b"41 0C").is_empty());
    assert_eq!(b.pending(), 5);
    let out = b.push(b" 1A F8 \r\r>\0ATZ\r\r\rELM327 v1.5\r\r>");
    assert_eq!(
        out,
        vec![
            Ok("41 0C 1A F8 \r\r".to_owned()),
            Ok("ATZ\r\r\rELM327 v1.5\r\r".to_owned())
        ]
    );
    assert_eq!(b.pending(), 0);
    assert_eq!(b.push(b"\0\0O\0K\r\r>"), vec![Ok("OK\r\r".to_owned())]);
}

#[test]
fn buffer_rejects_non_text() {
    let mut b = ReplyBuffer::new();
    assert_eq!(
        b.push(b"4\xFF1\r>"),
        vec![Err(Elm327Error::NotText {
            byte: 0xFF,
            offset: 1
        })]
    );
    assert_eq!(b.push(b"OK\r>"), vec![Ok("OK\r".to_owned())]);
}

#[test]
fn buffer_is_bounded_and_resynchronises() {
    let mut b = ReplyBuffer::new();
    let garbage = vec![b'A'; MAX_REPLY_LEN + 100];
    assert_eq!(
        b.push(&garbage),
        vec![Err(Elm327Error::Overlong {
            limit: MAX_REPLY_LEN
        })]
    );
    assert_eq!(b.pending(), 0);
    assert!(
        b.push(&garbage).is_empty(),
        "still discarding, no second error"
    );
    assert_eq!(b.pending(), 0);
    assert_eq!(
        b.push(b"tail>NO DATA\r\r>"),
        vec![Ok("NO DATA\r\r".to_owned())]
    );
    // Exactly the limit is still a reply.
    let mut full = vec![b'7'; MAX_REPLY_LEN];
    full.push(PROMPT);
    assert_eq!(b.push(&full).len(), 1);
    assert!(b.push(&full).first().is_some_and(Result::is_ok));
}

#[test]
fn buffer_clear_forgets_partial_reply() {
    let mut b = ReplyBuffer::new();
    b.push(b"41 0C");
    b.clear();
    assert_eq!(b.push(b"OK\r>"), vec![Ok("OK\r".to_owned())]);
}

// ---- AT replies ----

#[test]
fn at_replies() {
    assert_eq!(parse_reply("OK\r\r", &data("ATE0")), Ok(Reply::Ok));
    // ATE0 sent while echo is still on: its reply carries the echo.
    let echo = ParseOptions {
        echo: true,
        ..data("ATE0\r")
    };
    assert_eq!(parse_reply("ATE0\rOK\r\r", &echo), Ok(Reply::Ok));
    let atz = ParseOptions {
        echo: true,
        ..data("AT Z")
    };
    assert_eq!(
        parse_reply("ATZ\r\r\rELM327 v1.5\r\r", &atz),
        Ok(Reply::Text("ELM327 v1.5".into()))
    );
    assert_eq!(
        parse_reply("12.3V\r\r", &data("ATRV")),
        Ok(Reply::Text("12.3V".into()))
    );
    assert_eq!(
        parse_reply("AUTO, ISO 15765-4 (CAN 11/500)\r\r", &data("ATDP")),
        Ok(Reply::Text("AUTO, ISO 15765-4 (CAN 11/500)".into()))
    );
    // "A6" and "6" look like hex, but an AT command's answer is text.
    assert_eq!(
        parse_reply("A6\r\r", &data("ATDPN")),
        Ok(Reply::Text("A6".into()))
    );
    assert_eq!(
        parse_reply("6\r\n\r\n", &data("atdpn")),
        Ok(Reply::Text("6".into()))
    );
    assert_eq!(
        parse_reply("?\r\r", &data("ATXYZ")),
        Err(Elm327Error::Adapter(Condition::UnknownCommand))
    );
    assert_eq!(
        parse_reply("\r\r", &data("ATI")),
        Err(Elm327Error::EmptyReply)
    );
}

#[test]
fn echo_must_match_when_on() {
    let opts = ParseOptions {
        echo: true,
        ..data("010C\r")
    };
    assert_eq!(
        parse_reply("010C\r41 0C 1A F8 \r\r", &opts),
        Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
    );
    // Typed with a space, echoed as typed.
    let opts = ParseOptions {
        echo: true,
        ..data("01 0C")
    };
    assert_eq!(
        parse_reply("01 0C\r410C1AF8\r\r", &opts),
        Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
    );
    assert_eq!(
        parse_reply(
            "010D\r41 0D 00\r\r",
            &ParseOptions {
                echo: true,
                ..data("010C")
            }
        ),
        Err(Elm327Error::EchoMismatch {
            expected: "010C".into(),
            got: "010D".into()
        })
    );
    // Echo present although the caller thinks it is off: still dropped.
    assert_eq!(
        parse_reply("010C\r410C1AF8\r\r", &data("010C")),
        Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
    );
    // Repeat-last-command (empty line): no echo to drop.
    let repeat = ParseOptions {
        echo: true,
        ..data("\r")
    };
    assert_eq!(
        parse_reply("\r410C1AF8\r\r", &repeat),
        Ok(Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]))
    );
}

// ---- headers off ----

#[test]
fn headers_off_single_frames() {
    let want = Reply::messages(vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])]);
    assert_eq!(
        parse_reply("41 0C 1A F8 \r\r", &data("010C")),
        Ok(want.clone())
    );
    assert_eq!(parse_reply("410C1AF8\r\r", &data("010C")), Ok(want));
    // Two ECUs answer the functional 0100: one message per line, indistinguishable.
    let two = "41 00 BE 3F A8 13 \r41 00 98 18 80 10 \r\r";
    assert_eq!(
        parse_reply(two, &data("0100")),
        Ok(Reply::messages(vec![
            msg(None, &[0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13]),
            msg(None, &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10]),
        ]))
    );
}

// Data sheet "Multiline Responses": VIN with CAF1 and headers off, byte count 0x014 = 20.
#[test]
fn headers_off_multi_frame_vin() {
    let want = Ok(Reply::messages(vec![msg(None, &VIN_PAYLOAD)]));
    let spaced =
        "014\r0: 49 02 01 31 44 34 \r1: 47 50 30 30 52 35 35 \r2: 42 31 32 33 34 35 36 \r\r";
    assert_eq!(parse_reply(spaced, &data("0902")), want);
    let compact = "014\r0:490201314434\r1:47503030523535\r2:42313233343536\r\r";
    assert_eq!(parse_reply(compact, &data("0902")), want);
    // A count of 0x013 drops the last byte as padding.
    let padded = "013\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r";
    assert_eq!(
        parse_reply(padded, &data("0902")),
        Ok(Reply::messages(vec![msg(
            None,
            VIN_PAYLOAD.get(..19).unwrap()
        )]))
    );
}

#[test]
fn headers_off_multi_frame_then_single_frame() {
    let text = "SEARCHING...\r014\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r49 02 01 00 \r\r";
    assert_eq!(
        parse_reply(text, &data("0902")),
        Ok(Reply::messages(vec![
            msg(None, &VIN_PAYLOAD),
            msg(None, &[0x49, 0x02, 0x01, 0x00])
        ]))
    );
}

#[test]
fn headers_off_multi_frame_errors() {
    let short = "014\r0: 49 02 01 31 44 34\r1: 47 50 30 30 52 35 35\r\r";
    assert_eq!(
        parse_reply(short, &data("0902")),
        Err(Elm327Error::IsoTp {
            header: None,
            source: IsoTpError::Incomplete {
                got: 13,
                expected: 20
            }
        })
    );
    let skipped = "014\r0: 49 02 01 31 44 34\r2: 42 31 32 33 34 35 36\r\r";
    assert_eq!(
        parse_reply(skipped, &data("0902")),
        Err(Elm327Error::IsoTp {
            header: None,
            source: IsoTpError::WrongSequence {
                expected: 1,
                got: 2
            }
        })
    );
    assert_eq!(
        parse_reply("1: 47 50\r", &data("0902")),
        Err(Elm327Error::OrphanSegment {
            line: "1: 47 50".into()
        })
    );
    assert_eq!(
        parse_reply("014\r0: 49 02 01 31 44 34 47\r", &data("0902")),
        Err(Elm327Error::SegmentTooLong {
            index: 0,
            len: 7,
            max: 6,
            what: "first frame"
        })
    );
    assert!(matches!(
        parse_reply("014\r1: 49 02 01 31 44 34\r", &data("0902")),
        Err(Elm327Error::IsoTp { header: None, .. })
    ));
}

#[test]
fn bad_hex_is_named() {
    assert_eq!(
        parse_reply("41 0C 1A F\r", &data("010C")),
        Err(Elm327Error::OddDigits {
            line: "41 0C 1A F".into(),
            digits: 7
        })
    );
    assert_eq!(
        parse_reply("41 0C ZZ\r", &data("010C")),
        Err(Elm327Error::NotHex("41 0C ZZ".into()))
    );
    assert_eq!(
        parse_reply("OK\r", &data("010C")),
        Err(Elm327Error::NotHex("OK".into()))
    );
}

// ---- headers on ----

// Data sheet "Setting the Headers": `01 00` with headers on, padding after the SF payload.
#[test]
fn headers_on_11_bit_single_frames() {
    let want = Ok(Reply::messages(vec![msg(
        std_id(0x7E8),
        &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13],
    )]));
    let opts = headers("0100", IdWidth::Bits11);
    assert_eq!(parse_reply("7E8 06 41 00 BE 3F B8 13 00 \r\r", &opts), want);
    assert_eq!(parse_reply("7E8064100BE3FB81300\r\r", &opts), want);
    assert_eq!(
        parse_reply(
            "7E8 03 41 05 46 00 00 00 00 \r\r",
            &headers("0105", IdWidth::Bits11)
        ),
        Ok(Reply::messages(vec![msg(
            std_id(0x7E8),
            &[0x41, 0x05, 0x46]
        )]))
    );
}

// Data sheet "Multiline Responses" (0904 answered by two ECUs), here interleaved on the bus
// and with a single-frame answer from a third ECU.
#[test]
fn headers_on_multi_ecu_interleaved() {
    let text = "7E8 10 13 49 04 01 35 36 30 \r\
                7E9 10 13 49 04 01 35 36 30 \r\
                7EA 03 7F 09 11 \r\
                7E8 21 32 38 39 34 39 41 43 \r\
                7E9 21 32 38 39 35 34 41 43 \r\
                7E9 22 00 00 00 00 00 00 00 \r\
                7E8 22 00 00 00 00 00 00 31 \r\r";
    let ecu1 = [
        0x49, 0x04, 0x01, 0x35, 0x36, 0x30, 0x32, 0x38, 0x39, 0x34, 0x39, 0x41, 0x43, 0, 0, 0, 0,
        0, 0,
    ];
    let ecu2 = [
        0x49, 0x04, 0x01, 0x35, 0x36, 0x30, 0x32, 0x38, 0x39, 0x35, 0x34, 0x41, 0x43, 0, 0, 0, 0,
        0, 0,
    ];
    assert_eq!(
        parse_reply(text, &headers("0904", IdWidth::Bits11)),
        Ok(Reply::messages(vec![
            msg(std_id(0x7E8), &ecu1),
            msg(std_id(0x7E9), &ecu2),
            msg(std_id(0x7EA), &[0x7F, 0x09, 0x11]),
        ]))
    );
}

#[test]
fn headers_on_vin_spaces_off() {
    let text = "7E81014490201314434\r7E82147503030523535\r7E82242313233343536\r\r";
    assert_eq!(
        parse_reply(text, &headers("0902", IdWidth::Bits11)),
        Ok(Reply::messages(vec![msg(std_id(0x7E8), &VIN_PAYLOAD)]))
    );
}

#[test]
fn headers_on_29_bit() {
    let want = Ok(Reply::messages(vec![msg(
        Some(CanId::Extended(0x18DA_F110)),
        &[0x41, 0x0C, 0x1A, 0xF8],
    )]));
    let opts = headers("010C", IdWidth::Bits29);
    assert_eq!(
        parse_reply("18 DA F1 10 04 41 0C 1A F8 AA AA AA \r\r", &opts),
        want
    );
    assert_eq!(parse_reply("18DAF11004410C1AF8AAAAAA\r\r", &opts), want);
    // An 11-bit line while 29-bit is expected, and the other way round.
    assert_eq!(
        parse_reply("7E8 04 41 0C 1A F8\r", &opts),
        Err(Elm327Error::BadHeader {
            line: "7E8 04 41 0C 1A F8".into(),
            width: IdWidth::Bits29
        })
    );
    assert!(matches!(
        parse_reply(
            "18 DA F1 10 04 41 0C 1A F8\r",
            &headers("010C", IdWidth::Bits11)
        ),
        Err(Elm327Error::BadHeader { .. })
    ));
    // Compact 11-bit text misread as 29-bit overflows 29 bits.
    assert!(matches!(
        parse_reply("7E804410C1AF8\r", &opts),
        Err(Elm327Error::BadHeader { .. })
    ));
}

#[test]
fn headers_on_wrong_lengths_are_errors() {
    let opts = headers("0100", IdWidth::Bits11);
    // PCI says 6 bytes, the line holds 3 after it.
    let err = parse_reply("7E8 06 41 00 BE\r", &opts).unwrap_err();
    assert_eq!(
        err,
        Elm327Error::IsoTp {
            header: std_id(0x7E8),
            source: IsoTpError::FrameTooShort {
                kind: isotp::FrameKind::Single,
                needed: 7,
                got: 4
            }
        }
    );
    assert!(err.to_string().contains("7E8"), "{err}");
    assert_eq!(
        parse_reply("7E8 06 41 00 BE 3F B8 13 00 00\r", &opts),
        Err(Elm327Error::FrameTooLong {
            header: CanId::Standard(0x7E8),
            len: 9
        })
    );
    // First frame announcing 20 bytes, only one consecutive frame.
    assert_eq!(
        parse_reply(
            "7E8 10 14 49 02 01 31 44 34\r7E8 21 47 50 30 30 52 35 35\r",
            &opts
        ),
        Err(Elm327Error::IsoTp {
            header: std_id(0x7E8),
            source: IsoTpError::Incomplete {
                got: 13,
                expected: 20
            }
        })
    );
    assert!(matches!(
        parse_reply("7E8\r", &opts),
        Err(Elm327Error::IsoTp {
            source: IsoTpError::EmptyFrame,
            ..
        })
    ));
    assert!(matches!(
        parse_reply("7E\r", &opts),
        Err(Elm327Error::BadHeader { .. })
    ));
    assert!(matches!(
        parse_reply("7E8 21 47 50\r", &opts),
        Err(Elm327Error::IsoTp { .. })
    ));
}

// ---- the older buses ----

fn legacy_opts(cmd: &str, protocol: legacy::Protocol, headers: bool) -> ParseOptions {
    ParseOptions {
        headers,
        bus: Bus::Legacy(protocol),
        ..ParseOptions::new(cmd)
    }
}

fn node(address: u8, payload: &str) -> Message {
    Message {
        header: Some(EcuId::Node(address)),
        payload: hexes(payload),
    }
}

fn hexes(text: &str) -> Vec<u8> {
    text.split_whitespace()
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect()
}

#[test]
fn bus_from_protocol_number() {
    use legacy::Protocol as P;
    let cases = [
        ("1", Some(Bus::Legacy(P::J1850Pwm))),
        ("A2", Some(Bus::Legacy(P::J1850Vpw))),
        ("3\r", Some(Bus::Legacy(P::Iso9141))),
        ("A3", Some(Bus::Legacy(P::Iso9141))),
        ("4", Some(Bus::Legacy(P::Kwp5Baud))),
        ("A5", Some(Bus::Legacy(P::KwpFast))),
        ("6", Some(Bus::Can(IdWidth::Bits11))),
        ("A7", Some(Bus::Can(IdWidth::Bits29))),
        ("A", Some(Bus::Can(IdWidth::Bits29))),
        ("AA", Some(Bus::Can(IdWidth::Bits29))),
        ("0", None),
        ("B", None),
        ("A0", None),
        ("", None),
    ];
    for (answer, want) in cases {
        assert_eq!(Bus::from_protocol_number(answer), want, "{answer:?}");
    }
    assert_eq!(Bus::Legacy(P::Iso9141).to_string(), "ISO 9141-2");
    assert_eq!(Bus::default().to_string(), "ISO 15765-4 CAN 11-bit");
}

// Two ECUs answering 01 00, in each protocol (LTOBD2 on J1850, a capture on KWP).
#[test]
fn legacy_headers_on_two_ecus() {
    use legacy::Protocol as P;
    let cases = [
        (
            P::J1850Pwm,
            "41 6B 10 41 00 B8 7B 30 10 9E \r41 6B 17 41 00 80 00 80 03 C9 \r\r",
            [(0x10, "41 00 B8 7B 30 10"), (0x17, "41 00 80 00 80 03")],
        ),
        (
            P::J1850Vpw,
            "486B104100B87B3010F4\r486B17410080008003A3\r",
            [(0x10, "41 00 B8 7B 30 10"), (0x17, "41 00 80 00 80 03")],
        ),
        (
            P::KwpFast,
            "86 F1 10 41 00 BE 3F E8 11 BE\r86 F1 18 41 00 80 00 00 01 51\r",
            [(0x10, "41 00 BE 3F E8 11"), (0x18, "41 00 80 00 00 01")],
        ),
    ];
    for (protocol, text, want) in cases {
        let want = want.iter().map(|(a, p)| node(*a, p)).collect();
        assert_eq!(
            parse_reply(text, &legacy_opts("0100", protocol, true)),
            Ok(Reply::messages(want)),
            "{protocol}"
        );
    }
}

// scantool.net simulator: ECU 10 has six codes in two lines, ECU 18 one; the lines of the
// two ECUs interleave. The same codes in every protocol.
#[test]
fn legacy_dtcs_from_two_ecus_are_joined_per_ecu() {
    use legacy::Protocol as P;
    let cases = [
        (
            P::J1850Pwm,
            [
                "41 6B 10 43 01 00 02 00 03 00 43",
                "41 6B 18 43 01 01 00 00 00 00 18",
                "41 6B 10 43 43 00 82 00 C1 00 11",
            ],
        ),
        (
            P::J1850Vpw,
            [
                "48 6B 10 43 01 00 02 00 03 00 05",
                "48 6B 18 43 01 01 00 00 00 00 5E",
                "48 6B 10 43 43 00 82 00 C1 00 57",
            ],
        ),
        (
            P::Iso9141,
            [
                "48 6B 10 43 01 00 02 00 03 00 0C",
                "48 6B 18 43 01 01 00 00 00 00 10",
                "48 6B 10 43 43 00 82 00 C1 00 8C",
            ],
        ),
        (
            P::Kwp5Baud,
            [
                "87 F1 10 43 01 00 02 00 03 00 D1",
                "87 F1 18 43 01 01 00 00 00 00 D5",
                "87 F1 10 43 43 00 82 00 C1 00 51",
            ],
        ),
    ];
    for (protocol, lines) in cases {
        let text = format!("BUS INIT: ...OK\r{}\r\r", lines.join("\r"));
        let reply = parse_reply(&text, &legacy_opts("03", protocol, true));
        assert_eq!(
            reply,
            Ok(Reply::messages(vec![
                node(0x10, "43 01 00 02 00 03 00 43 00 82 00 C1 00"),
                node(0x18, "43 01 01"),
            ])),
            "{protocol}"
        );
        let Ok(Reply::Messages { messages, .. }) = reply else {
            unreachable!()
        };
        let codes: Vec<String> = messages
            .iter()
            .flat_map(|m| match crate::service::Response::parse(&m.payload) {
                Ok(crate::service::Response::Dtcs { dtcs, .. }) => dtcs,
                other => panic!("{other:?}"),
            })
            .map(|d| d.to_string())
            .collect();
        assert_eq!(
            codes,
            [
                "P0100", "P0200", "P0300", "C0300", "B0200", "U0100", "P0101"
            ]
        );
    }
}

// A capture: the ISO 9141-2 VIN, five lines, here out of order and spaces off.
#[test]
fn legacy_vin_with_and_without_headers() {
    let with = "486B1149020335343434E3\r486B114902010000003141\r486B1149020241314A4310\r\
                486B114902045237323503\r486B1149020532333637E6\r\r";
    let mut want = vec![0x49, 0x02, 0x01];
    want.extend_from_slice(b"1A1JC5444R7252367");
    assert_eq!(
        parse_reply(with, &legacy_opts("0902", legacy::Protocol::Iso9141, true)),
        Ok(Reply::messages(vec![Message {
            header: Some(EcuId::Node(0x11)),
            payload: want.clone()
        }]))
    );
    // Data sheet "Multiline Responses": the J1850 VIN as printed with headers off.
    let without = "SEARCHING...\r49 02 01 00 00 00 31 \r49 02 02 44 34 47 50 \r\
                   49 02 03 30 30 52 35 \r49 02 04 35 42 31 32 \r49 02 05 33 34 35 36 \r\r";
    assert_eq!(
        parse_reply(
            without,
            &legacy_opts("0902", legacy::Protocol::J1850Pwm, false)
        ),
        Ok(Reply::messages(vec![msg(None, &VIN_PAYLOAD)]))
    );
}

#[test]
fn legacy_headers_off_joins_what_belongs_together() {
    let opts = legacy_opts("03", legacy::Protocol::Iso9141, false);
    // Two ECUs' DTC lines: one list (the senders are unknown).
    assert_eq!(
        parse_reply("43 01 33 00 00 00 00\r43 04 20 00 00 00 00\r\r", &opts),
        Ok(Reply::messages(vec![msg(
            None,
            &[0x43, 0x01, 0x33, 0x04, 0x20]
        )]))
    );
    // Two ECUs' 01 00: two answers.
    let opts = legacy_opts("0100", legacy::Protocol::KwpFast, false);
    assert_eq!(
        parse_reply(
            "BUS INIT: OK\r41 00 BE 3F E8 11\r41 00 80 00 00 01\r",
            &opts
        ),
        Ok(Reply::messages(vec![
            msg(None, &[0x41, 0x00, 0xBE, 0x3F, 0xE8, 0x11]),
            msg(None, &[0x41, 0x00, 0x80, 0x00, 0x00, 0x01]),
        ]))
    );
}

#[test]
fn one_bad_check_byte_among_good_lines() {
    let opts = legacy_opts("0100", legacy::Protocol::Iso9141, true);
    // ECU 18's line has a wrong check byte (AB for AA); ECU 10's survives.
    let text = "48 6B 10 41 00 BE 1F B8 11 AA\r48 6B 18 41 00 BE 1F B8 11 B3\r\r";
    assert_eq!(
        parse_reply(text, &opts),
        Ok(Reply::Messages {
            messages: vec![node(0x10, "41 00 BE 1F B8 11")],
            errors: vec![Elm327Error::LegacyLine {
                line: "48 6B 18 41 00 BE 1F B8 11 B3".into(),
                source: FrameError::CheckByte {
                    protocol: legacy::Protocol::Iso9141,
                    expected: 0xB2,
                    got: 0xB3
                }
            }]
        })
    );
    // Alone, it is the reply's error, and says which line.
    let err = parse_reply("48 6B 18 41 00 BE 1F B8 11 B3\r", &opts).unwrap_err();
    assert!(
        err.to_string().contains("48 6B 18 41 00 BE 1F B8 11 B3"),
        "{err}"
    );
    assert!(err.to_string().contains("0xB2"), "{err}");
}

#[test]
fn a_damaged_dtc_line_drops_only_that_ecus_list() {
    // scantool.net on ISO 9141-2, ECU 10's second line damaged (8D for 8C).
    let text = "48 6B 10 43 01 00 02 00 03 00 0C\r48 6B 10 43 43 00 82 00 C1 00 8D\r\
                48 6B 18 43 01 01 00 00 00 00 10\r48 6B 10 41 0D 20 31\r";
    let Ok(Reply::Messages { messages, errors }) =
        parse_reply(text, &legacy_opts("03", legacy::Protocol::Iso9141, true))
    else {
        panic!()
    };
    // ECU 18's list and ECU 10's unrelated single message survive; ECU 10's list does not
    // come out three codes short.
    assert_eq!(
        messages,
        vec![node(0x10, "41 0D 20"), node(0x18, "43 01 01")]
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(matches!(errors[0], Elm327Error::LegacyLine { .. }));
    assert_eq!(
        errors[1],
        Elm327Error::DamagedAnswer {
            source_address: 0x10,
            sid: 0x43
        }
    );
}

#[test]
fn legacy_flagged_and_garbled_lines() {
    let opts = legacy_opts("0100", legacy::Protocol::Iso9141, false);
    // The adapter checks the sum itself and flags the line; the other answer survives.
    assert_eq!(
        parse_reply("41 00 BE 1F B8 11 <DATA ERROR\r41 00 80 00 00 01\r", &opts),
        Ok(Reply::Messages {
            messages: vec![msg(None, &[0x41, 0x00, 0x80, 0x00, 0x00, 0x01])],
            errors: vec![Elm327Error::Flagged {
                condition: Condition::DataError,
                line: "41 00 BE 1F B8 11".into()
            }]
        })
    );
    let with = legacy_opts("0902", legacy::Protocol::J1850Vpw, true);
    // A VIN missing its third line: the ECU's answer is an error naming the part.
    let text = "48 6B 10 49 02 01 00 00 00 57 B3\r48 6B 10 49 02 02 44 58 2D 53 99\r\
                48 6B 10 49 02 04 31 39 32 31 B6\r48 6B 10 49 02 05 32 33 34 35 A8\r";
    assert_eq!(
        parse_reply(text, &with),
        Err(Elm327Error::LegacyJoin {
            source_address: Some(0x10),
            source: JoinError::MissingPart {
                infotype: 2,
                number: 3,
                count: 4
            }
        })
    );
    assert!(matches!(
        parse_reply("48 6B\r", &with),
        Err(Elm327Error::LegacyLine {
            source: FrameError::TooShort { len: 2 },
            ..
        })
    ));
    assert!(matches!(
        parse_reply("48 6B 1\r", &with),
        Err(Elm327Error::OddDigits { .. })
    ));
    // Bus init failures and other conditions are the reply's outcome, as on CAN.
    assert_eq!(
        parse_reply("BUS INIT: ...ERROR\r\r", &with),
        Err(Elm327Error::Adapter(Condition::BusInitError))
    );
    assert_eq!(
        parse_reply("BUS INIT: ERROR\r\r", &with),
        Err(Elm327Error::Adapter(Condition::BusInitError))
    );
    assert_eq!(parse_reply("NO DATA\r\r", &with), Ok(Reply::NoData));
    assert_eq!(
        parse_reply("BUS ERROR\r\r", &with),
        Err(Elm327Error::Adapter(Condition::BusError))
    );
}

#[test]
fn a_broken_can_ecu_does_not_cost_the_others() {
    // 7E8's VIN stops after its first frame; 7E9 answers whole.
    let text = "7E8 10 14 49 02 01 31 44 34\r7E9 06 41 00 98 18 80 10 \r\r";
    assert_eq!(
        parse_reply(text, &headers("0100", IdWidth::Bits11)),
        Ok(Reply::Messages {
            messages: vec![msg(std_id(0x7E9), &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10])],
            errors: vec![Elm327Error::IsoTp {
                header: std_id(0x7E8),
                source: IsoTpError::Incomplete {
                    got: 6,
                    expected: 20
                }
            }]
        })
    );
    // A garbled line beside a good one, headers off.
    assert_eq!(
        parse_reply("41 0C 1A F8\r41 0C ZZ\r", &data("010C")),
        Ok(Reply::Messages {
            messages: vec![msg(None, &[0x41, 0x0C, 0x1A, 0xF8])],
            errors: vec![Elm327Error::NotHex("41 0C ZZ".into())]
        })
    );
}

// ---- status lines and conditions ----

#[test]
fn status_lines_are_skipped() {
    let opts = headers("0100", IdWidth::Bits11);
    let want = Ok(Reply::messages(vec![msg(
        std_id(0x7E8),
        &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13],
    )]));
    assert_eq!(
        parse_reply("SEARCHING...\r7E8 06 41 00 BE 3F B8 13 00\r\r", &opts),
        want
    );
    assert_eq!(
        parse_reply("BUS INIT: ...OK\r41 00 BE 3F B8 13\r\r", &data("0100")),
        Ok(Reply::messages(vec![msg(
            None,
            &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13]
        )]))
    );
    assert_eq!(
        parse_reply("SEARCHING...\rNO DATA\r\r", &data("0100")),
        Ok(Reply::NoData)
    );
    assert_eq!(parse_reply("NO DATA\r\r", &opts), Ok(Reply::NoData));
}

#[test]
fn every_condition_text() {
    let cases = [
        ("?", Condition::UnknownCommand),
        ("ACT ALERT", Condition::ActivityAlert),
        ("!ACT ALERT", Condition::ActivityAlert),
        ("BUFFER FULL", Condition::BufferFull),
        ("BUS BUSY", Condition::BusBusy),
        ("BUS ERROR", Condition::BusError),
        ("BUS INIT: ...ERROR", Condition::BusInitError),
        ("CAN ERROR", Condition::CanError),
        ("DATA ERROR", Condition::DataError),
        ("FB ERROR", Condition::FeedbackError),
        ("LP ALERT", Condition::LowPowerAlert),
        ("!LP ALERT", Condition::LowPowerAlert),
        ("LV RESET", Condition::LowVoltageReset),
        ("STOPPED", Condition::Stopped),
        ("UNABLE TO CONNECT", Condition::UnableToConnect),
        ("ERR94", Condition::Internal(94)),
        ("ERR05", Condition::Internal(5)),
    ];
    for (text, want) in cases {
        for opts in [data("0100"), headers("0100", IdWidth::Bits29), data("ATMA")] {
            let reply = format!("SEARCHING...\r{text}\r\r");
            assert_eq!(
                parse_reply(&reply, &opts),
                Err(Elm327Error::Adapter(want)),
                "{text}"
            );
        }
        if !text.starts_with('!') {
            assert_eq!(want.to_string(), text);
        }
    }
}

#[test]
fn condition_after_data_wins() {
    let text = "7E8 06 41 00 BE 3F B8 13 00\rBUFFER FULL\r\r";
    let err = parse_reply(text, &headers("0100", IdWidth::Bits11)).unwrap_err();
    assert_eq!(err, Elm327Error::Adapter(Condition::BufferFull));
    assert_eq!(err.condition(), Some(Condition::BufferFull));
    assert_eq!(
        parse_reply("STOPPED\r", &data("0100")),
        Err(Elm327Error::Adapter(Condition::Stopped))
    );
}

#[test]
fn flagged_lines() {
    let err = parse_reply("41 0C 1A F8 <DATA ERROR\r\r", &data("010C")).unwrap_err();
    assert_eq!(
        err,
        Elm327Error::Flagged {
            condition: Condition::DataError,
            line: "41 0C 1A F8".into()
        }
    );
    assert_eq!(err.condition(), Some(Condition::DataError));
    assert_eq!(
        parse_reply(
            "7E8 04 41 0C 1A F8 <RX ERROR\r",
            &headers("010C", IdWidth::Bits11)
        ),
        Err(Elm327Error::Flagged {
            condition: Condition::RxError,
            line: "7E8 04 41 0C 1A F8".into()
        })
    );
    assert_eq!(
        parse_reply("<DATA ERROR\r", &data("010C")),
        Err(Elm327Error::Flagged {
            condition: Condition::DataError,
            line: String::new()
        })
    );
}

#[test]
fn conditions_are_not_mistaken_for_text() {
    assert_eq!(
        parse_reply("ERR9\r", &data("ATI")),
        Ok(Reply::Text("ERR9".into()))
    );
    assert_eq!(
        parse_reply("ERROR 94\r", &data("ATI")),
        Ok(Reply::Text("ERROR 94".into()))
    );
}

// ---- helpers ----

#[test]
fn request_lines() {
    assert_eq!(pid_request(0x01, &[0x0C, 0x0D]), "010C0D\r");
    assert_eq!(pid_request(0x03, &[]), "03\r");
    assert_eq!(pid_request(0x09, &[0x02]), "0902\r");
    assert!(
        INIT_SEQUENCE
            .iter()
            .all(|c| c.starts_with("AT") && c.ends_with('\r'))
    );
}

#[test]
fn protocol_numbers() {
    assert_eq!(IdWidth::from_protocol_number("A6"), Some(IdWidth::Bits11));
    assert_eq!(IdWidth::from_protocol_number("6\r"), Some(IdWidth::Bits11));
    assert_eq!(IdWidth::from_protocol_number("8"), Some(IdWidth::Bits11));
    assert_eq!(IdWidth::from_protocol_number("A7"), Some(IdWidth::Bits29));
    assert_eq!(IdWidth::from_protocol_number("9"), Some(IdWidth::Bits29));
    assert_eq!(IdWidth::from_protocol_number("A"), Some(IdWidth::Bits29));
    assert_eq!(IdWidth::from_protocol_number("AA"), Some(IdWidth::Bits29));
    assert_eq!(IdWidth::from_protocol_number("A3"), None);
    assert_eq!(IdWidth::from_protocol_number("B"), None);
}

#[test]
fn full_transcript_through_the_buffer() {
    // Init then a request, as one serial capture with echo on for ATZ/ATE0.
    let stream: &[u8] = b"ATZ\r\r\rELM327 v1.5\r\r>ATE0\rOK\r\r>OK\r\r>OK\r\r>OK\r\r>OK\r\r>\
        SEARCHING...\r7E8064100BE3FB81300\r7E90641009818801000\r\r>";
    let commands = ["ATZ", "ATE0", "ATL0", "ATS0", "ATH1", "ATSP0", "0100"];
    let mut b = ReplyBuffer::new();
    let replies = b.push(stream);
    assert_eq!(replies.len(), commands.len());
    let parsed: Vec<Reply> = replies
        .into_iter()
        .zip(commands)
        .map(|(r, c)| {
            let opts = ParseOptions {
                echo: c == "ATZ" || c == "ATE0",
                headers: c == "0100",
                ..data(c)
            };
            parse_reply(&r.unwrap(), &opts).unwrap()
        })
        .collect();
    assert_eq!(parsed.first(), Some(&Reply::Text("ELM327 v1.5".into())));
    assert!(parsed.get(1..6).unwrap().iter().all(|r| *r == Reply::Ok));
    assert_eq!(
        parsed.last(),
        Some(&Reply::messages(vec![
            msg(std_id(0x7E8), &[0x41, 0x00, 0xBE, 0x3F, 0xB8, 0x13]),
            msg(std_id(0x7E9), &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10]),
        ]))
    );
}

// ---- properties ----

const TRANSCRIPT: &[u8] = b"\0ATZ\r\r\rELM327 v1.5\r\r>OK\r>SEARCHING...\r014\r0: 49 02 01 31 44 34\r\
    1: 47 50 30 30 52 35 35\r2: 42 31 32 33 34 35 36\r\r>NO DATA\r\n\r\n>\0\x80>7E8 03 41 0D 32\r\r>partial";

fn split_points(len: usize) -> impl Strategy<Value = Vec<usize>> {
    proptest::collection::vec(0..=len, 0..12).prop_map(|mut v| {
        v.sort_unstable();
        v
    })
}

fn feed_in_chunks(stream: &[u8], cuts: &[usize]) -> (Vec<Result<String, Elm327Error>>, usize) {
    let mut b = ReplyBuffer::new();
    let mut out = Vec::new();
    let mut start = 0;
    for &cut in cuts.iter().chain([stream.len()].iter()) {
        out.extend(b.push(stream.get(start..cut).unwrap_or(&[])));
        start = start.max(cut);
    }
    (out, b.pending())
}

proptest! {
    #[test]
    fn chunking_does_not_change_replies(cuts in split_points(TRANSCRIPT.len())) {
        let whole = feed_in_chunks(TRANSCRIPT, &[]);
        prop_assert_eq!(whole.0.len(), 6);
        prop_assert_eq!(feed_in_chunks(TRANSCRIPT, &cuts), whole);
    }

    #[test]
    fn chunking_arbitrary_streams(stream in proptest::collection::vec(
        prop_oneof![Just(b'>'), Just(b'\r'), Just(0u8), any::<u8>(), Just(b'4')], 0..9000),
        cut_fractions in proptest::collection::vec(0.0f64..1.0, 0..8)) {
        let mut cuts: Vec<usize> = cut_fractions.iter().map(|f| (f * stream.len() as f64) as usize).collect();
        cuts.sort_unstable();
        let (whole, pending) = feed_in_chunks(&stream, &[]);
        prop_assert!(pending <= MAX_REPLY_LEN);
        prop_assert_eq!(feed_in_chunks(&stream, &cuts), (whole, pending));
    }

    #[test]
    fn parse_reply_never_panics(text in "[0-9A-Fa-f :\r\n<>?.A-Z!]{0,200}", headers_on: bool, bus in 0u8..7, echo: bool, cmd in "(AT[A-Z]{1,3}|[0-9A-F]{0,6})") {
        let opts = ParseOptions { command: cmd, echo, headers: headers_on, bus: bus_of(bus) };
        let _ = parse_reply(&text, &opts);
    }

    #[test]
    fn parse_reply_never_panics_on_any_text(text in "\\PC{0,300}", headers_on: bool, bus in 0u8..7) {
        let opts = ParseOptions { headers: headers_on, bus: bus_of(bus), ..ParseOptions::new("0100") };
        let _ = parse_reply(&text, &opts);
    }

    #[test]
    fn headers_off_multi_frame_round_trip(payload in proptest::collection::vec(any::<u8>(), 8..200)) {
        let mut text = format!("{:03X}\r", payload.len());
        let (first, rest) = payload.split_at(6);
        text.push_str(&format!("0: {}\r", spaced(first)));
        for (i, chunk) in rest.chunks(7).enumerate() {
            text.push_str(&format!("{:X}: {}\r", (i + 1) % 16, spaced(chunk)));
        }
        prop_assert_eq!(parse_reply(&text, &data("0902")), Ok(Reply::messages(vec![msg(None, &payload)])));
    }
}

/// 0 and 1: CAN 11 and 29 bits; 2 to 6: the older buses.
fn bus_of(n: u8) -> Bus {
    match n {
        0 => Bus::Can(IdWidth::Bits11),
        1 => Bus::Can(IdWidth::Bits29),
        n => legacy::Protocol::from_elm_number(n - 1).map_or(Bus::default(), Bus::Legacy),
    }
}

fn spaced(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}
