//! The emulator on the older buses (SAE J1850 PWM and VPW, ISO 9141-2, ISO 14230-4): exact
//! transcripts in each protocol (their check bytes computed by hand, independently of
//! `telltale_obd::legacy`), the search and the bus initialisation with their timing,
//! addressing, what such a car does not answer, and the real simulated vehicle read back
//! through our own parser in every protocol and print format.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_obd::EcuId;
use telltale_obd::elm327::{self as parser, Bus, Elm327Error, ParseOptions};
use telltale_obd::legacy::{JoinError, Protocol as P};
use telltale_obd::service::{Response, VehicleInfo};
use tokio::io::AsyncWriteExt;

use super::super::bus::{self, VehicleBus};
use super::super::command::Protocol;
use super::super::session::Elm327;
use super::{Scripted, VIN, hex, ms, read_prompt, send, text};

fn adapter(p: P) -> (Elm327, Scripted) {
    (Elm327::with_bus(VehicleBus::Legacy(p)), Scripted::car())
}

fn set(elm: &mut Elm327, car: &mut Scripted, settings: &[&str]) {
    for setting in settings {
        let out = text(elm, car, setting);
        assert!(out.ends_with("OK\r\r>"), "{setting}: {out:?}");
    }
}

/// Data lines in a reply (the adapter ends lines with `\r`).
fn line_count(reply: &str) -> usize {
    reply
        .split('\r')
        .filter(|l| !l.is_empty() && *l != ">")
        .count()
}

fn times(out: &super::Output) -> Vec<Duration> {
    out.chunks.iter().map(|c| c.at).collect()
}

/// 01 00 answered by the engine (10, at 12 ms), the hybrid controller (28, 15 ms) and the
/// transmission (18, 20 ms); 07 by the engine with five codes (two messages) and the
/// transmission with one, headers and spaces on, protocol set by hand.
const TRANSCRIPTS: [(P, &str, &str); 5] = [
    (
        P::J1850Pwm,
        "41 6B 10 41 00 BE 3F A8 13 91 \r41 6B 28 41 00 80 00 00 01 B0 \r\
         41 6B 18 41 00 98 18 80 10 D2 \r\r>",
        "41 6B 10 47 01 33 04 20 03 00 E2 \r41 6B 10 47 01 71 C1 00 00 00 3F \r\
         41 6B 18 47 07 00 00 00 00 00 92 \r\r>",
    ),
    (
        P::J1850Vpw,
        "48 6B 10 41 00 BE 3F A8 13 FB \r48 6B 28 41 00 80 00 00 01 DA \r\
         48 6B 18 41 00 98 18 80 10 B8 \r\r>",
        "48 6B 10 47 01 33 04 20 03 00 A4 \r48 6B 18 47 07 00 00 00 00 00 D4 \r\
         48 6B 10 47 01 71 C1 00 00 00 79 \r\r>",
    ),
    (
        P::Iso9141,
        "BUS INIT: ...OK\r48 6B 10 41 00 BE 3F A8 13 BC \r48 6B 28 41 00 80 00 00 01 9D \r\
         48 6B 18 41 00 98 18 80 10 4C \r\r>",
        "48 6B 10 47 01 33 04 20 03 00 65 \r48 6B 18 47 07 00 00 00 00 00 19 \r\
         48 6B 10 47 01 71 C1 00 00 00 3D \r\r>",
    ),
    (
        P::Kwp5Baud,
        "BUS INIT: ...OK\r86 F1 10 41 00 BE 3F A8 13 80 \r86 F1 28 41 00 80 00 00 01 61 \r\
         86 F1 18 41 00 98 18 80 10 10 \r\r>",
        "87 F1 10 47 01 33 04 20 03 00 2A \r87 F1 18 47 07 00 00 00 00 00 DE \r\
         87 F1 10 47 01 71 C1 00 00 00 02 \r\r>",
    ),
    (
        P::KwpFast,
        "BUS INIT: OK\r86 F1 10 41 00 BE 3F A8 13 80 \r86 F1 28 41 00 80 00 00 01 61 \r\
         86 F1 18 41 00 98 18 80 10 10 \r\r>",
        "87 F1 10 47 01 33 04 20 03 00 2A \r87 F1 18 47 07 00 00 00 00 00 DE \r\
         87 F1 10 47 01 71 C1 00 00 00 02 \r\r>",
    ),
];

#[test]
fn exact_transcripts_in_each_protocol() {
    for (protocol, r0100, r07) in TRANSCRIPTS {
        let (mut elm, mut car) = adapter(protocol);
        let n = protocol.elm_number();
        set(&mut elm, &mut car, &["ATE0", "ATH1", &format!("ATSP{n}")]);
        let out = send(&mut elm, &mut car, "0100");
        assert_eq!(out.text(), r0100, "{protocol}");
        assert!(out.interruptible);
        // The initialisation (dots as the 5-baud one runs), then the answers as they come,
        // then the adaptive-timing wait.
        let want = match protocol {
            P::J1850Pwm | P::J1850Vpw => vec![ms(12), ms(15), ms(20), ms(120)],
            P::Iso9141 | P::Kwp5Baud => vec![
                ms(0),
                ms(600),
                ms(1200),
                ms(1800),
                ms(2400),
                ms(2412),
                ms(2415),
                ms(2420),
                ms(2520),
            ],
            P::KwpFast => vec![ms(0), ms(120), ms(132), ms(135), ms(140), ms(240)],
        };
        assert_eq!(times(&out), want, "{protocol}");
        // The bus is open now: no second initialisation.
        assert_eq!(text(&mut elm, &mut car, "07"), r07, "{protocol}");
        assert_eq!(text(&mut elm, &mut car, "ATDPN"), format!("{n}\r\r>"));
        assert_eq!(
            text(&mut elm, &mut car, "ATDP"),
            format!("{}\r\r>", protocol.name())
        );
        // Closing the protocol makes the next request open the bus again.
        set(&mut elm, &mut car, &["ATPC"]);
        let again = send(&mut elm, &mut car, "0100");
        assert_eq!(again.text(), r0100, "{protocol}");
        assert_eq!(times(&again), want, "{protocol}");
    }
}

/// Stored codes: the engine first says "response pending" (7F 03 78), then sends five codes
/// in two messages 1.5 s later; the transmission has none (one message of empty slots).
const STORED: [(P, &str, [u64; 5]); 5] = [
    (
        P::J1850Pwm,
        "41 6B 10 7F 03 78 F9 \r41 6B 18 43 00 00 00 00 00 00 34 \r\
         41 6B 10 43 01 33 04 20 03 00 8B \r41 6B 10 43 01 71 C1 00 00 00 56 \r\r>",
        [5, 25, 1500, 1504, 1604],
    ),
    (
        P::J1850Vpw,
        "48 6B 10 7F 03 78 B5 \r48 6B 18 43 00 00 00 00 00 00 72 \r\
         48 6B 10 43 01 33 04 20 03 00 CD \r48 6B 10 43 01 71 C1 00 00 00 10 \r\r>",
        [5, 25, 1500, 1512, 1612],
    ),
    (
        P::Iso9141,
        "48 6B 10 7F 03 78 BD \r48 6B 18 43 00 00 00 00 00 00 0E \r\
         48 6B 10 43 01 33 04 20 03 00 61 \r48 6B 10 43 01 71 C1 00 00 00 39 \r\r>",
        [5, 25, 1500, 1540, 1640],
    ),
    (
        P::Kwp5Baud,
        "83 F1 10 7F 03 78 7E \r87 F1 18 43 00 00 00 00 00 00 D3 \r\
         87 F1 10 43 01 33 04 20 03 00 26 \r87 F1 10 43 01 71 C1 00 00 00 FE \r\r>",
        [5, 25, 1500, 1540, 1640],
    ),
    (
        P::KwpFast,
        "83 F1 10 7F 03 78 7E \r87 F1 18 43 00 00 00 00 00 00 D3 \r\
         87 F1 10 43 01 33 04 20 03 00 26 \r87 F1 10 43 01 71 C1 00 00 00 FE \r\r>",
        [5, 25, 1500, 1540, 1640],
    ),
];

#[test]
fn stored_codes_after_response_pending_in_each_protocol() {
    for (protocol, want, at) in STORED {
        let (mut elm, mut car) = adapter(protocol);
        car.answers.insert(
            (0, hex("03")),
            vec![
                super::reply(5, &[0x7F, 0x03, 0x78]),
                super::reply(
                    1500,
                    &[
                        0x43, 0x05, 0x01, 0x33, 0x04, 0x20, 0x03, 0x00, 0x01, 0x71, 0xC1, 0x00,
                    ],
                ),
            ],
        );
        let n = protocol.elm_number();
        set(&mut elm, &mut car, &["ATE0", "ATH1", &format!("ATSP{n}")]);
        // Open the bus first, so the transcript below is the codes alone.
        text(&mut elm, &mut car, "0100");
        let out = send(&mut elm, &mut car, "03");
        assert_eq!(out.text(), want, "{protocol}");
        // The pending answer keeps the adapter listening past its timeout.
        assert_eq!(times(&out), at.map(ms), "{protocol}");
        let opts = ParseOptions {
            headers: true,
            bus: Bus::Legacy(protocol),
            ..ParseOptions::new("03")
        };
        let node = |address, payload: &[u8]| parser::Message {
            header: Some(EcuId::Node(address)),
            payload: payload.to_vec(),
        };
        assert_eq!(
            parser::parse_reply(out.text().trim_end_matches('>'), &opts),
            Ok(parser::Reply::messages(vec![
                node(0x10, &[0x7F, 0x03, 0x78]),
                node(
                    0x10,
                    &[
                        0x43, 0x01, 0x33, 0x04, 0x20, 0x03, 0x00, 0x01, 0x71, 0xC1, 0x00
                    ]
                ),
                node(0x18, &[0x43]),
            ])),
            "{protocol}"
        );
    }
}

#[test]
fn automatic_search_finds_each_bus_quietly() {
    for (protocol, r0100, _) in TRANSCRIPTS {
        let (mut elm, mut car) = adapter(protocol);
        set(&mut elm, &mut car, &["ATE0", "ATH1", "ATSP0"]);
        let out = send(&mut elm, &mut car, "0100");
        // No BUS INIT during a search (data sheet, "Bus Initiation").
        let answers = r0100.rsplit_once("OK\r").map_or(r0100, |(_, rest)| rest);
        assert_eq!(out.text(), format!("SEARCHING...\r{answers}"), "{protocol}");
        // PWM found at once; VPW after PWM's timeout; the K-line ones after one 5-baud
        // initialisation (and PWM and VPW), KWP fast after a failed one.
        let found_at = match protocol {
            P::J1850Pwm => ms(0),
            P::J1850Vpw => ms(200),
            P::Iso9141 | P::Kwp5Baud => ms(2800),
            P::KwpFast => ms(2920),
        };
        assert_eq!(times(&out).get(1), Some(&(found_at + ms(12))), "{protocol}");
        let n = protocol.elm_number();
        assert_eq!(text(&mut elm, &mut car, "ATDPN"), format!("A{n}\r\r>"));
        assert_eq!(
            text(&mut elm, &mut car, "ATDP"),
            format!("AUTO, {}\r\r>", protocol.name())
        );
        let again = send(&mut elm, &mut car, "0100");
        assert_eq!(again.text(), answers);
        assert_eq!(times(&again).first(), Some(&ms(12)));
        // After ATPC the bus is opened again, quietly, as during the search.
        set(&mut elm, &mut car, &["ATPC"]);
        let reopened = send(&mut elm, &mut car, "0100");
        assert_eq!(reopened.text(), answers);
        let open = bus::open_time(protocol);
        assert_eq!(
            times(&reopened).first(),
            Some(&(open + ms(12))),
            "{protocol}"
        );
    }
}

#[test]
fn protocols_that_do_not_reach_the_car() {
    let (mut elm, mut car) = adapter(P::Iso9141);
    set(&mut elm, &mut car, &["ATE0"]);
    for (protocol, answer, at) in [
        ("1", "NO DATA\r\r>", ms(200)),
        ("2", "NO DATA\r\r>", ms(200)),
        ("4", "BUS INIT: ...ERROR\r\r>", ms(2400)),
        ("5", "BUS INIT: ERROR\r\r>", ms(300)),
        ("6", "CAN ERROR\r\r>", ms(0)),
        ("7", "CAN ERROR\r\r>", ms(0)),
    ] {
        set(&mut elm, &mut car, &[&format!("ATSP{protocol}")]);
        let out = send(&mut elm, &mut car, "0100");
        assert_eq!(out.text(), answer, "ATSP{protocol}");
        assert_eq!(times(&out).last(), Some(&at), "ATSP{protocol}");
    }
    // A CAN car meets the K-line protocols the same way.
    let mut can = Elm327::new();
    set(&mut can, &mut car, &["ATE0", "ATSP3"]);
    assert_eq!(text(&mut can, &mut car, "0100"), "BUS INIT: ...ERROR\r\r>");
    // And an older-bus car is not on CAN, whatever its ECUs' CAN ids.
    let (mut elm, mut car) = adapter(P::KwpFast);
    set(&mut elm, &mut car, &["ATE0", "ATSP6"]);
    assert_eq!(text(&mut elm, &mut car, "0100"), "CAN ERROR\r\r>");
}

#[test]
fn one_ecu_by_its_address_and_the_vin_in_five_messages() {
    let (mut elm, mut car) = adapter(P::Iso9141);
    set(
        &mut elm,
        &mut car,
        &["ATE0", "ATSP3", "ATH1", "ATSH 68 10 F1"],
    );
    car.log.clear();
    let out = text(&mut elm, &mut car, "0902");
    assert_eq!(
        out,
        "BUS INIT: ...OK\r48 6B 10 49 02 01 00 00 00 31 40 \r48 6B 10 49 02 02 46 4D 43 55 3B \r\
         48 6B 10 49 02 03 39 47 44 34 09 \r48 6B 10 49 02 04 4B 55 41 33 26 \r\
         48 6B 10 49 02 05 37 32 31 38 E5 \r\r>"
    );
    // Only the engine was asked, physically.
    assert_eq!(car.log, [(0, vec![0x09, 0x02], false)]);
    set(&mut elm, &mut car, &["ATH0"]);
    assert_eq!(
        text(&mut elm, &mut car, "0902"),
        "49 02 01 00 00 00 31 \r49 02 02 46 4D 43 55 \r49 02 03 39 47 44 34 \r\
         49 02 04 4B 55 41 33 \r49 02 05 37 32 31 38 \r\r>"
    );
    set(&mut elm, &mut car, &["ATSH 68 18 F1"]);
    assert_eq!(text(&mut elm, &mut car, "0100"), "41 00 98 18 80 10 \r\r>");
    // Nobody at 30; everyone at the functional address again.
    set(&mut elm, &mut car, &["ATSH 68 30 F1"]);
    assert_eq!(text(&mut elm, &mut car, "0100"), "NO DATA\r\r>");
    set(&mut elm, &mut car, &["ATSH 686AF1"]);
    assert_eq!(line_count(&text(&mut elm, &mut car, "0100")), 3);
    // J1850 VPW, spaces off.
    let (mut elm, mut car) = adapter(P::J1850Vpw);
    set(
        &mut elm,
        &mut car,
        &["ATE0", "ATH1", "ATS0", "ATSH 68 10 F1"],
    );
    assert_eq!(
        text(&mut elm, &mut car, "0902"),
        "SEARCHING...\r486B104902010000003169\r486B10490202464D435511\r486B104902033947443497\r\
         486B104902044B55413369\r486B104902053732313814\r\r>"
    );
}

#[test]
fn what_a_car_on_an_older_bus_does_not_answer() {
    let (mut elm, mut car) = adapter(P::J1850Pwm);
    set(&mut elm, &mut car, &["ATE0", "ATH1", "ATSP1"]);
    car.log.clear();
    // Several PIDs in one request exist only on CAN; UDS not at all.
    assert_eq!(text(&mut elm, &mut car, "010C0D"), "NO DATA\r\r>");
    assert_eq!(text(&mut elm, &mut car, "02020000 0C00"), "NO DATA\r\r>");
    assert_eq!(text(&mut elm, &mut car, "1902FF"), "NO DATA\r\r>");
    assert!(car.log.is_empty(), "{:?}", car.log);
    // More than 7 data bytes do not fit a message, even with CAN formatting off.
    set(&mut elm, &mut car, &["ATCAF0"]);
    assert_eq!(text(&mut elm, &mut car, "0100000000000000"), "?\r\r>");
    // CAN formatting does not apply: 01 00 is sent as it is.
    assert_eq!(line_count(&text(&mut elm, &mut car, "0100")), 3);
    // A response count stops at that many lines.
    let out = send(&mut elm, &mut car, "01001");
    assert_eq!(out.text(), "41 6B 10 41 00 BE 3F A8 13 91 \r\r>");
    assert_eq!(times(&out).last(), Some(&ms(12)));
}

#[test]
fn two_ecus_read_back_apart_through_our_parser() {
    let (mut elm, mut car) = adapter(P::KwpFast);
    set(&mut elm, &mut car, &["ATE0", "ATH1", "ATS0"]);
    let out = text(&mut elm, &mut car, "0902");
    let opts = ParseOptions {
        headers: true,
        bus: Bus::Legacy(P::KwpFast),
        ..ParseOptions::new("0902")
    };
    let mut vin = vec![0x49, 0x02, 0x01];
    vin.extend_from_slice(VIN);
    let message = |address| parser::Message {
        header: Some(EcuId::Node(address)),
        payload: vin.clone(),
    };
    assert_eq!(
        parser::parse_reply(out.trim_end_matches('>'), &opts),
        Ok(parser::Reply::messages(vec![message(0x10), message(0x28)]))
    );
    // Headers off, the two ECUs' VIN messages cannot be told apart: the parser says so.
    set(&mut elm, &mut car, &["ATH0"]);
    let out = text(&mut elm, &mut car, "0902");
    let opts = ParseOptions {
        headers: false,
        ..opts
    };
    assert!(matches!(
        parser::parse_reply(out.trim_end_matches('>'), &opts),
        Err(Elm327Error::LegacyJoin {
            source_address: None,
            source: JoinError::DuplicatePart { .. }
        })
    ));
}

#[tokio::test(start_paused = true)]
async fn the_server_plays_the_bus_initialisation_in_time() {
    let car = Arc::new(Mutex::new(Scripted::car()));
    let (mut host, adapter) = tokio::io::duplex(1024);
    tokio::spawn(async move {
        let mut elm = Elm327::with_bus(VehicleBus::Legacy(P::Iso9141));
        super::super::run(adapter, &mut elm, &car, tokio::time::Instant::now()).await
    });
    host.write_all(b"ATE0\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "ATE0\rOK\r\r>");
    host.write_all(b"ATSP3\rATH1\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "OK\r\r>");
    assert_eq!(read_prompt(&mut host).await, "OK\r\r>");
    let start = tokio::time::Instant::now();
    host.write_all(b"010C\r").await.unwrap();
    assert_eq!(
        read_prompt(&mut host).await,
        "BUS INIT: ...OK\r48 6B 10 41 0C 1A F8 22 \r\r>"
    );
    assert_eq!(start.elapsed(), ms(2400 + 10 + 100));
    // Open now: the next request is answered at once.
    let start = tokio::time::Instant::now();
    host.write_all(b"010C\r").await.unwrap();
    assert_eq!(
        read_prompt(&mut host).await,
        "48 6B 10 41 0C 1A F8 22 \r\r>"
    );
    assert_eq!(start.elapsed(), ms(110));
}

/// What one request should read back as, per ECU address: the vehicle's own answers
/// (straight from its ECUs), with the Mode 09 message counts and the bitmap entries for them
/// that exist only on the older buses.
fn truth(
    vehicle: &mut crate::Vehicle,
    request: &[u8],
) -> BTreeMap<u8, Vec<Result<Response, String>>> {
    let infos = vehicle.ecus().to_vec();
    let mut out = BTreeMap::new();
    for (i, info) in infos.iter().enumerate() {
        let counted = matches!(request, [0x09, 0x01 | 0x03 | 0x05]);
        let asked = if counted {
            vec![0x09, request[1] + 1]
        } else {
            request.to_vec()
        };
        // The service parser names the VIN's count; the others it passes on as they are.
        let count = |n: usize| {
            let n = u8::try_from(n).unwrap();
            Response::VehicleInfo(match request[1] {
                0x01 => VehicleInfo::MessageCount(n),
                infotype => VehicleInfo::Other {
                    infotype,
                    data: vec![n],
                },
            })
        };
        let answers: Vec<Result<Response, String>> = vehicle
            .handle(i, &asked, true)
            .into_iter()
            .map(|r| {
                let response = Response::parse(&r.payload).map_err(|e| e.to_string())?;
                Ok(match response {
                    Response::VehicleInfo(VehicleInfo::Vin(_)) if counted => count(5),
                    Response::VehicleInfo(VehicleInfo::CalibrationIds(ids)) if counted => {
                        count(4 * ids.len())
                    }
                    Response::VehicleInfo(VehicleInfo::Cvns(cvns)) if counted => count(cvns.len()),
                    Response::VehicleInfo(VehicleInfo::Supported(mut set)) => {
                        for item in [0x02, 0x04, 0x06, 0x08, 0x0A] {
                            if set.contains(&item) {
                                set.push(item - 1);
                            }
                        }
                        set.sort_unstable();
                        Response::VehicleInfo(VehicleInfo::Supported(set))
                    }
                    other => other,
                })
            })
            .collect();
        if !answers.is_empty() {
            out.insert(bus::source_address(info, i), answers);
        }
    }
    out
}

/// The real simulated vehicle (hybrid scenario: three ECUs with codes, calibration ids,
/// CVNs and names) in every protocol, headers on and off, spaces on and off: our parser
/// reads back exactly what the vehicle's ECUs answered, per ECU when headers are on.
#[test]
fn the_simulated_vehicle_round_trips_on_every_older_bus() {
    let scenario = crate::load_scenario("hybrid").unwrap();
    let requests = [
        "0100", "010C", "0101", "0105", "020200", "0900", "0901", "0902", "0903", "0904", "0905",
        "0906", "090A", "03", "07", "0A", "010C0D",
    ];
    let mut codes_read = 0;
    for protocol in P::ALL {
        for headers in [true, false] {
            for spaces in [true, false] {
                let mut vehicle = crate::Vehicle::from_scenario(&scenario);
                vehicle.advance_to(Duration::from_secs(600));
                let mut probe = crate::Vehicle::from_scenario(&scenario);
                probe.advance_to(Duration::from_secs(600));
                let mut elm = Elm327::with_bus(VehicleBus::Legacy(protocol));
                for setting in [
                    "ATE0".to_owned(),
                    format!("ATH{}", u8::from(headers)),
                    format!("ATS{}", u8::from(spaces)),
                ] {
                    elm.feed(format!("{setting}\r").as_bytes());
                    let line = elm.next_line().unwrap();
                    assert!(elm.execute(&line, &mut vehicle).text().contains("OK"));
                }
                for request in requests {
                    let want = if request == "010C0D" {
                        BTreeMap::new()
                    } else {
                        truth(&mut probe, &hex(request))
                    };
                    elm.feed(format!("{request}\r").as_bytes());
                    let line = elm.next_line().unwrap();
                    let out = elm.execute(&line, &mut vehicle).text();
                    let context =
                        format!("{protocol} headers {headers} spaces {spaces} {request}: {out:?}");
                    let opts = ParseOptions {
                        headers,
                        bus: Bus::Legacy(protocol),
                        ..ParseOptions::new(request)
                    };
                    let parsed = parser::parse_reply(out.trim_end_matches('>'), &opts);
                    if want.is_empty() {
                        assert_eq!(parsed, Ok(parser::Reply::NoData), "{context}");
                        continue;
                    }
                    if !headers && want.len() > 1 && request.starts_with("09") && request != "0900"
                    {
                        // Numbered Mode 09 messages from several ECUs cannot be told apart
                        // without headers (each ECU's start at 1).
                        let several = want
                            .values()
                            .filter(|a| a.iter().any(|r| r.is_ok()))
                            .count();
                        if several > 1 && !matches!(request, "0901" | "0903" | "0905") {
                            assert!(parsed.is_err(), "{context}");
                            continue;
                        }
                    }
                    let Ok(parser::Reply::Messages { messages, errors }) = parsed else {
                        panic!("{context}: {parsed:?}");
                    };
                    assert!(errors.is_empty(), "{context}: {errors:?}");
                    codes_read += messages
                        .iter()
                        .filter_map(|m| match Response::parse(&m.payload) {
                            Ok(Response::Dtcs { dtcs, .. }) => Some(dtcs.len()),
                            _ => None,
                        })
                        .sum::<usize>();
                    let got: Vec<(Option<EcuId>, Result<Response, String>)> = messages
                        .iter()
                        .map(|m| {
                            (
                                m.header,
                                Response::parse(&m.payload).map_err(|e| e.to_string()),
                            )
                        })
                        .collect();
                    if headers {
                        let mut by_ecu: BTreeMap<u8, Vec<Result<Response, String>>> =
                            BTreeMap::new();
                        for (header, response) in got {
                            let Some(EcuId::Node(address)) = header else {
                                panic!("{context}: header {header:?}");
                            };
                            by_ecu.entry(address).or_default().push(response);
                        }
                        assert_eq!(by_ecu, want, "{context}");
                    } else {
                        assert!(got.iter().all(|(h, _)| h.is_none()), "{context}");
                        assert_eq!(
                            flatten(got.into_iter().map(|(_, r)| r).collect()),
                            flatten(want.into_values().flatten().collect()),
                            "{context}"
                        );
                    }
                }
            }
        }
    }
    // 20 rounds; the scenario has stored, pending and permanent codes by then.
    assert!(codes_read >= 20 * 3, "only {codes_read} codes read");
}

/// Answers without their senders, comparable: DTC lists merged into one sorted list (with
/// headers off, the adapter's lines join into one), everything else sorted by its text.
fn flatten(answers: Vec<Result<Response, String>>) -> (Vec<String>, Vec<String>) {
    let mut codes = Vec::new();
    let mut others = Vec::new();
    for answer in answers {
        match answer {
            Ok(Response::Dtcs { dtcs, .. }) => codes.extend(dtcs.iter().map(|d| d.to_string())),
            other => others.push(format!("{other:?}")),
        }
    }
    codes.sort();
    others.sort();
    (codes, others)
}

#[test]
fn search_order_reaches_every_protocol() {
    // Sanity of the table the search walks: every older protocol is found from `ATSP0`.
    for p in P::ALL {
        assert_eq!(bus::search(Protocol::AUTO, p).0, Protocol(p.elm_number()));
    }
}
