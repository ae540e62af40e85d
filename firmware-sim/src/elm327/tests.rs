//! The emulator against scripted ECUs: exact transcripts for the init sequence, timing,
//! addressing and filters, and a round trip of every print format through our own ELM327
//! reply parser (`telltale_obd::elm327::parse_reply`), which was written from the data sheet
//! independently of this emulator.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_obd::CanId;
use telltale_obd::elm327::{self as parser, Bus, IdWidth, Message, ParseOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::session::{Ecus, Elm327, Output};
use crate::vehicle::{EcuInfo, Reply};

mod clones;
mod legacy;

const VIN: &[u8] = b"1FMCU9GD4KUA37218";

/// ECUs that answer from a table and log what they were asked.
#[derive(Debug, Default)]
struct Scripted {
    ecus: Vec<EcuInfo>,
    answers: HashMap<(usize, Vec<u8>), Vec<Reply>>,
    log: Vec<(usize, Vec<u8>, bool)>,
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn reply(at: u64, payload: &[u8]) -> Reply {
    Reply {
        delay: ms(at),
        payload: payload.to_vec(),
    }
}

impl Scripted {
    /// Engine 7E0/7E8 and transmission 7E1/7E9 on 11-bit, hybrid 18DA17F1/18DAF117 on 29-bit.
    fn car() -> Scripted {
        let ecu = |name: &str, request: CanId, response: CanId, functional: CanId| EcuInfo {
            name: name.into(),
            request_id: request,
            response_id: response,
            functional_id: functional,
        };
        let (engine, trans, hybrid) = (0, 1, 2);
        let mut vin_answer = vec![0x49, 0x02, 0x01];
        vin_answer.extend_from_slice(VIN);
        let answers = [
            (
                engine,
                "0100",
                vec![reply(12, &[0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13])],
            ),
            (
                trans,
                "0100",
                vec![reply(20, &[0x41, 0x00, 0x98, 0x18, 0x80, 0x10])],
            ),
            (
                hybrid,
                "0100",
                vec![reply(15, &[0x41, 0x00, 0x80, 0x00, 0x00, 0x01])],
            ),
            (engine, "010C", vec![reply(10, &[0x41, 0x0C, 0x1A, 0xF8])]),
            (engine, "0142", vec![reply(10, &[0x41, 0x42, 0x37, 0x3C])]),
            (engine, "0902", vec![reply(30, &vin_answer)]),
            (hybrid, "0902", vec![reply(30, &vin_answer)]),
            (
                engine,
                "03",
                vec![
                    reply(5, &[0x7F, 0x03, 0x78]),
                    reply(1500, &[0x43, 0x02, 0x03, 0x01, 0x04, 0x20]),
                ],
            ),
            (trans, "03", vec![reply(25, &[0x43, 0x00])]),
            // Five pending codes: two messages on the older buses.
            (
                engine,
                "07",
                vec![reply(
                    20,
                    &[
                        0x47, 0x05, 0x01, 0x33, 0x04, 0x20, 0x03, 0x00, 0x01, 0x71, 0xC1, 0x00,
                    ],
                )],
            ),
            (trans, "07", vec![reply(30, &[0x47, 0x01, 0x07, 0x00])]),
        ];
        Scripted {
            ecus: vec![
                ecu(
                    "engine",
                    CanId::Standard(0x7E0),
                    CanId::Standard(0x7E8),
                    CanId::Standard(0x7DF),
                ),
                ecu(
                    "transmission",
                    CanId::Standard(0x7E1),
                    CanId::Standard(0x7E9),
                    CanId::Standard(0x7DF),
                ),
                ecu(
                    "hybrid",
                    CanId::Extended(0x18DA_17F1),
                    CanId::Extended(0x18DA_F117),
                    CanId::Extended(0x18DB_33F1),
                ),
            ],
            answers: answers
                .into_iter()
                .map(|(ecu, req, replies)| ((ecu, hex(req)), replies))
                .collect(),
            log: Vec::new(),
        }
    }
}

impl Ecus for Scripted {
    fn ecus(&self) -> &[EcuInfo] {
        &self.ecus
    }

    fn handle(&mut self, ecu: usize, request: &[u8], functional: bool) -> Vec<Reply> {
        self.log.push((ecu, request.to_vec(), functional));
        match self.answers.get(&(ecu, request.to_vec())) {
            Some(replies) => replies.clone(),
            None if functional => Vec::new(),
            None => vec![reply(10, &[0x7F, request[0], 0x11])],
        }
    }
}

fn hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Feeds `line\r` and executes it.
fn send(elm: &mut Elm327, ecus: &mut Scripted, line: &str) -> Output {
    elm.feed(format!("{line}\r").as_bytes());
    let line = elm.next_line().expect("a complete line");
    assert!(elm.next_line().is_none());
    elm.execute(&line, ecus)
}

fn text(elm: &mut Elm327, ecus: &mut Scripted, line: &str) -> String {
    send(elm, ecus, line).text()
}

#[test]
fn python_obd_init_transcript() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    let reset = send(&mut elm, &mut car, "ATZ");
    assert_eq!(reset.text(), "ATZ\r\r\rELM327 v1.5\r\r>");
    assert_eq!(reset.chunks.first().unwrap().text, "ATZ\r");
    assert_eq!(reset.chunks.last().unwrap().at, super::session::RESET_TIME);
    assert_eq!(text(&mut elm, &mut car, "ATE0"), "ATE0\rOK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATH1"), "OK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATL0"), "OK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "AT RV"), "14.1V\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATDPN"), "0\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATSP0"), "OK\r\r>");
    assert_eq!(text(&mut elm, &mut car, "ATDP"), "AUTO\r\r>");
    let first = send(&mut elm, &mut car, "0100");
    assert_eq!(
        first.text(),
        "SEARCHING...\r7E8 06 41 00 BE 3F A8 13 AA \r7E9 06 41 00 98 18 80 10 AA \r\r>"
    );
    // Lines come out as the frames arrive; the prompt after the adaptive-timing wait.
    let times: Vec<Duration> = first.chunks.iter().map(|c| c.at).collect();
    assert_eq!(times, [ms(0), ms(12), ms(20), ms(120)]);
    assert!(first.interruptible);
    assert_eq!(text(&mut elm, &mut car, "ATDPN"), "A6\r\r>");
    assert_eq!(
        text(&mut elm, &mut car, "ATDP"),
        "AUTO, ISO 15765-4 (CAN 11/500)\r\r>"
    );
    // Searched once only.
    assert!(!text(&mut elm, &mut car, "0100").contains("SEARCHING"));
    // The hybrid ECU on 29-bit was never asked; both 11-bit ones functionally.
    assert!(car.log.iter().all(|(ecu, _, _)| *ecu != 2));
    assert!(
        car.log
            .iter()
            .any(|(ecu, req, f)| *ecu == 1 && req == &[1, 0] && *f)
    );
}

#[test]
fn settings_and_information() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    assert_eq!(text(&mut elm, &mut car, "ati"), "ati\rELM327 v1.5\r\r>");
    assert_eq!(
        text(&mut elm, &mut car, "AT@1"),
        "AT@1\rOBDII to RS232 Interpreter\r\r>"
    );
    assert_eq!(text(&mut elm, &mut car, "ATL1"), "ATL1\rOK\r\n\r\n>");
    assert_eq!(text(&mut elm, &mut car, "ATFOO"), "ATFOO\r\n?\r\n\r\n>");
    assert_eq!(text(&mut elm, &mut car, "ATE0"), "ATE0\r\nOK\r\n\r\n>");
    assert_eq!(text(&mut elm, &mut car, "ATM0"), "OK\r\n\r\n>");
    assert_eq!(text(&mut elm, &mut car, "ATIGN"), "ON\r\n\r\n>");
    // ATD's own OK already comes in the default style.
    assert_eq!(text(&mut elm, &mut car, "ATD"), "OK\r\r>");
    // ATD restored the defaults: echo back on, linefeeds off.
    assert_eq!(text(&mut elm, &mut car, "ATS0"), "ATS0\rOK\r\r>");
    assert_eq!(
        text(&mut elm, &mut car, "ATWS"),
        "ATWS\r\r\rELM327 v1.5\r\r>"
    );
    // An empty line with nothing to repeat, then the repeat of the last command.
    assert_eq!(text(&mut elm, &mut car, ""), "\r>");
    text(&mut elm, &mut car, "ATE0");
    let once = text(&mut elm, &mut car, "010C");
    assert_eq!(once, "SEARCHING...\r41 0C 1A F8 \r\r>");
    assert_eq!(text(&mut elm, &mut car, ""), "41 0C 1A F8 \r\r>");
    // Control characters and non-ASCII never make a valid command.
    elm.feed(b"\x7F\x7F\r");
    let line = elm.next_line().unwrap();
    assert_eq!(elm.execute(&line, &mut car).text(), "?\r\r>");
    elm.feed(b"AT\nI\0\r");
    let line = elm.next_line().unwrap();
    assert_eq!(elm.execute(&line, &mut car).text(), "ELM327 v1.5\r\r>");
    elm.feed(&[b'A', b'T', 0xC3, b'\r']);
    let line = elm.next_line().unwrap();
    assert_eq!(elm.execute(&line, &mut car).text(), "?\r\r>");
}

#[test]
fn overlong_lines_are_refused() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    elm.feed(&[b'0'; 1000]);
    elm.feed(b"\rATI\r");
    let line = elm.next_line().unwrap();
    assert_eq!(line, "?");
    assert_eq!(elm.execute(&line, &mut car).text(), "?\r?\r\r>");
    assert_eq!(elm.next_line().as_deref(), Some("ATI"));
}

#[test]
fn no_data_after_the_timeout() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    text(&mut elm, &mut car, "ATSP6");
    let out = send(&mut elm, &mut car, "0600");
    assert_eq!(out.text(), "NO DATA\r\r>");
    // ATST 32 (the default) is 50 × 4.096 ms.
    assert_eq!(
        out.chunks.last().unwrap().at,
        ms(204) + Duration::from_micros(800)
    );
    text(&mut elm, &mut car, "ATST 19");
    let out = send(&mut elm, &mut car, "0600");
    assert_eq!(
        out.chunks.last().unwrap().at,
        Duration::from_micros(4096 * 25)
    );
    // Manual protocol: no search, and ATDPN has no A.
    assert_eq!(text(&mut elm, &mut car, "ATDPN"), "6\r\r>");
}

#[test]
fn response_count_returns_early() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    text(&mut elm, &mut car, "ATSP6");
    let out = send(&mut elm, &mut car, "01001");
    assert_eq!(out.text(), "41 00 BE 3F A8 13 \r\r>");
    assert_eq!(out.chunks.last().unwrap().at, ms(12));
    assert_eq!(car.log.last().unwrap().1, [0x01, 0x00]);
    // A count for a multi-frame answer counts lines (frames).
    let out = send(&mut elm, &mut car, "09023");
    assert_eq!(out.chunks.last().unwrap().at, ms(32));
}

#[test]
fn response_pending_extends_the_wait() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    text(&mut elm, &mut car, "ATH1");
    let out = send(&mut elm, &mut car, "03");
    assert_eq!(
        out.text(),
        "SEARCHING...\r7E8 03 7F 03 78 AA AA AA AA \r7E9 02 43 00 AA AA AA AA AA \r\
         7E8 06 43 02 03 01 04 20 AA \r\r>"
    );
    let times: Vec<Duration> = out.chunks.iter().map(|c| c.at).collect();
    assert_eq!(times, [ms(0), ms(5), ms(25), ms(1500), ms(1600)]);
    // Without the extension the 1.5 s answer would be lost; with ATAT0 and a short ATST
    // an ECU slower than the timeout is.
    text(&mut elm, &mut car, "ATAT0");
    text(&mut elm, &mut car, "ATST 02");
    let out = send(&mut elm, &mut car, "0100");
    assert_eq!(out.text(), "NO DATA\r\r>");
}

#[test]
fn physical_addressing_and_filters() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    text(&mut elm, &mut car, "ATH1");
    text(&mut elm, &mut car, "ATSP6");
    assert_eq!(text(&mut elm, &mut car, "ATSH 7E1"), "OK\r\r>");
    car.log.clear();
    assert_eq!(
        text(&mut elm, &mut car, "0100"),
        "7E9 06 41 00 98 18 80 10 AA \r\r>"
    );
    assert_eq!(car.log, [(1, vec![0x01, 0x00], false)]);
    // A physical request the ECU does not support gets its negative response.
    assert_eq!(
        text(&mut elm, &mut car, "0600"),
        "7E9 03 7F 06 11 AA AA AA AA \r\r>"
    );
    // Nobody at 7E5.
    text(&mut elm, &mut car, "ATSH 7E5");
    assert_eq!(text(&mut elm, &mut car, "0100"), "NO DATA\r\r>");
    // Back to functional; only 7E8 shown.
    text(&mut elm, &mut car, "ATSH 7DF");
    text(&mut elm, &mut car, "ATCRA 7E8");
    assert_eq!(
        text(&mut elm, &mut car, "0100"),
        "7E8 06 41 00 BE 3F A8 13 AA \r\r>"
    );
    text(&mut elm, &mut car, "ATCRA");
    text(&mut elm, &mut car, "ATCF 7E9");
    text(&mut elm, &mut car, "ATCM 7FF");
    assert_eq!(
        text(&mut elm, &mut car, "0100"),
        "7E9 06 41 00 98 18 80 10 AA \r\r>"
    );
    text(&mut elm, &mut car, "ATAR");
    // 29-bit: ATSH takes the low 24 bits, ATCP the priority.
    text(&mut elm, &mut car, "ATSP7");
    text(&mut elm, &mut car, "ATSH DA17F1");
    car.log.clear();
    assert_eq!(
        text(&mut elm, &mut car, "0100"),
        "18 DA F1 17 06 41 00 80 00 00 01 AA \r\r>"
    );
    assert_eq!(car.log, [(2, vec![0x01, 0x00], false)]);
    text(&mut elm, &mut car, "ATCP 10");
    assert_eq!(text(&mut elm, &mut car, "0100"), "NO DATA\r\r>");
}

#[test]
fn raw_frames_with_auto_formatting_off() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    text(&mut elm, &mut car, "ATSP6");
    text(&mut elm, &mut car, "ATCAF0");
    assert_eq!(
        text(&mut elm, &mut car, "02010C"),
        "04 41 0C 1A F8 AA AA AA \r\r>"
    );
    // Not a single frame: no ECU takes it.
    assert_eq!(text(&mut elm, &mut car, "10010C"), "NO DATA\r\r>");
    text(&mut elm, &mut car, "ATCAF1");
    // Auto-formatting sends single frames only: 8 data bytes do not fit.
    assert_eq!(text(&mut elm, &mut car, "0100000000000000"), "?\r\r>");
    text(&mut elm, &mut car, "ATD1");
    text(&mut elm, &mut car, "ATH1");
    assert_eq!(
        text(&mut elm, &mut car, "010C"),
        "7E8 8 04 41 0C 1A F8 AA AA AA \r\r>"
    );
}

#[test]
fn protocols_that_find_no_vehicle() {
    let (mut elm, mut car) = (Elm327::new(), Scripted::car());
    text(&mut elm, &mut car, "ATE0");
    for (protocol, answer) in [
        ("1", "NO DATA"),
        ("3", "BUS INIT: ...ERROR"),
        ("8", "CAN ERROR"),
    ] {
        text(&mut elm, &mut car, &format!("ATSP{protocol}"));
        assert_eq!(text(&mut elm, &mut car, "0100"), format!("{answer}\r\r>"));
    }
    let mut empty = Scripted::default();
    text(&mut elm, &mut empty, "ATSP0");
    assert_eq!(
        text(&mut elm, &mut empty, "0100"),
        "SEARCHING...\rUNABLE TO CONNECT\r\r>"
    );
    // Responses off: sent, nothing awaited.
    text(&mut elm, &mut car, "ATR0");
    assert_eq!(text(&mut elm, &mut car, "010C"), "SEARCHING...\r\r>");
    // ATZ keeps the stored protocol.
    text(&mut elm, &mut car, "ATSP7");
    text(&mut elm, &mut car, "ATZ");
    assert_eq!(text(&mut elm, &mut car, "ATDPN"), "ATDPN\r7\r\r>");
}

/// Expected messages for `request` as the parser should return them.
fn expected(car: &Scripted, request: &[u8], extended: bool, headers: bool) -> Vec<Message> {
    let mut arrivals = Vec::new();
    for (i, ecu) in car.ecus.iter().enumerate() {
        if ecu.request_id.is_extended() != extended {
            continue;
        }
        for r in car
            .answers
            .get(&(i, request.to_vec()))
            .into_iter()
            .flatten()
        {
            arrivals.push((r.delay, i, ecu.response_id, r.payload.clone()));
        }
    }
    arrivals.sort_by_key(|a| a.0);
    if headers {
        // Grouped per ECU in the order the ECUs first answered.
        let mut order: Vec<usize> = Vec::new();
        for a in &arrivals {
            if !order.contains(&a.1) {
                order.push(a.1);
            }
        }
        order
            .iter()
            .flat_map(|ecu| arrivals.iter().filter(move |a| a.1 == *ecu))
            .map(|a| Message {
                header: Some(a.2.into()),
                payload: a.3.clone(),
            })
            .collect()
    } else {
        arrivals
            .into_iter()
            .map(|a| Message {
                header: None,
                payload: a.3,
            })
            .collect()
    }
}

#[test]
fn every_format_round_trips_through_our_parser() {
    let requests = ["0100", "010C", "0902", "03", "0600", "01 00", "0100 1"];
    let mut checked = 0;
    for protocol in ['0', '6', '7'] {
        for headers in [false, true] {
            for spaces in [false, true] {
                for linefeeds in [false, true] {
                    for echo in [false, true] {
                        let (mut elm, mut car) = (Elm327::new(), Scripted::car());
                        for setting in [
                            format!("ATH{}", u8::from(headers)),
                            format!("ATS{}", u8::from(spaces)),
                            format!("ATL{}", u8::from(linefeeds)),
                            format!("ATSP{protocol}"),
                            format!("ATE{}", u8::from(echo)),
                        ] {
                            let out = text(&mut elm, &mut car, &setting);
                            assert!(out.ends_with(">"), "{setting}: {out:?}");
                        }
                        let extended = protocol == '7';
                        let opts = |command: &str| ParseOptions {
                            command: command.to_owned(),
                            echo,
                            headers,
                            bus: Bus::Can(if extended {
                                IdWidth::Bits29
                            } else {
                                IdWidth::Bits11
                            }),
                        };
                        for request in requests {
                            let out = send(&mut elm, &mut car, request).text();
                            let body = out.strip_suffix('>').expect("prompt at the end");
                            let parsed = parser::parse_reply(body, &opts(request));
                            let compact: String = request.chars().filter(|c| *c != ' ').collect();
                            let (data, count) = if compact.len() % 2 == 1 {
                                (&compact[..compact.len() - 1], Some(1))
                            } else {
                                (compact.as_str(), None)
                            };
                            let mut want = expected(&car, &hex(data), extended, headers);
                            if let Some(n) = count {
                                want.truncate(n);
                            }
                            let want = if want.is_empty() {
                                parser::Reply::NoData
                            } else {
                                parser::Reply::messages(want)
                            };
                            assert_eq!(
                                parsed,
                                Ok(want),
                                "protocol {protocol} headers {headers} spaces {spaces} \
                                 linefeeds {linefeeds} echo {echo}: {request:?} printed {out:?}"
                            );
                            checked += 1;
                        }
                        // The AT answers parse too.
                        let rv = text(&mut elm, &mut car, "ATRV");
                        assert_eq!(
                            parser::parse_reply(rv.trim_end_matches('>'), &opts("ATRV")),
                            Ok(parser::Reply::Text("14.1V".into()))
                        );
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 16 * requests.len());
}

// ---- the async server ----

async fn read_prompt(host: &mut tokio::io::DuplexStream) -> String {
    let mut got = Vec::new();
    let mut byte = [0u8; 1];
    while !got.ends_with(b">") {
        let n = host.read(&mut byte).await.unwrap();
        assert_eq!(
            n,
            1,
            "stream closed after {:?}",
            String::from_utf8_lossy(&got)
        );
        got.push(byte[0]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test(start_paused = true)]
async fn server_stops_a_request_when_the_host_sends_meanwhile() {
    let car = Arc::new(Mutex::new(Scripted::car()));
    let (mut host, adapter) = tokio::io::duplex(1024);
    let server = tokio::spawn({
        let car = car.clone();
        async move {
            let mut elm = Elm327::new();
            super::run(adapter, &mut elm, &car, tokio::time::Instant::now()).await
        }
    });
    host.write_all(b"ATE0\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "ATE0\rOK\r\r>");
    let start = tokio::time::Instant::now();
    host.write_all(b"0100\r").await.unwrap();
    // The engine answers at 12 ms; the host interrupts at 15 ms, before the transmission.
    tokio::time::sleep(ms(15)).await;
    host.write_all(b"\r").await.unwrap();
    assert_eq!(
        read_prompt(&mut host).await,
        "SEARCHING...\r41 00 BE 3F A8 13 \rSTOPPED\r\r>"
    );
    assert!(start.elapsed() < ms(20));
    // The interrupting CR was consumed; the adapter answers the next command normally.
    host.write_all(b"010C\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "41 0C 1A F8 \r\r>");
    // A host that sends the next command without waiting for the prompt stops the first.
    host.write_all(b"0100\rATI\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "STOPPED\r\r>");
    assert_eq!(read_prompt(&mut host).await, "?\r\r>");
    // LF and NUL do not interrupt.
    host.write_all(b"010C\r\n\0").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "41 0C 1A F8 \r\r>");
    drop(host);
    server.await.unwrap().unwrap();
}

#[tokio::test(start_paused = true)]
async fn server_plays_output_in_time() {
    let car = Arc::new(Mutex::new(Scripted::car()));
    let (mut host, adapter) = tokio::io::duplex(64);
    tokio::spawn(async move {
        let mut elm = Elm327::new();
        super::run(adapter, &mut elm, &car, tokio::time::Instant::now()).await
    });
    let start = tokio::time::Instant::now();
    host.write_all(b"ATZ\r").await.unwrap();
    assert_eq!(read_prompt(&mut host).await, "ATZ\r\r\rELM327 v1.5\r\r>");
    assert_eq!(start.elapsed(), super::session::RESET_TIME);
    let start = tokio::time::Instant::now();
    host.write_all(b"03\r").await.unwrap();
    let reply = read_prompt(&mut host).await;
    assert!(reply.ends_with("43 02 03 01 04 20 \r\r>"), "{reply:?}");
    assert_eq!(start.elapsed(), ms(1600));
}

/// The real simulated vehicle (hybrid scenario: two 11-bit ECUs and a 29-bit one) in every
/// print format: whatever it answers, our parser reads back the payloads the vehicle produced.
#[test]
fn the_simulated_vehicle_round_trips_in_every_format() {
    let scenario = crate::load_scenario("hybrid").unwrap();
    let requests = [
        "0100", "010C", "0902", "0904", "090A", "03", "07", "0A", "0101",
    ];
    for protocol in ['6', '7'] {
        for headers in [false, true] {
            for spaces in [false, true] {
                let mut vehicle = crate::Vehicle::from_scenario(&scenario);
                vehicle.advance_to(Duration::from_secs(40));
                let mut elm = Elm327::new();
                for setting in ["ATE0".to_owned(), format!("ATSP{protocol}")]
                    .into_iter()
                    .chain([
                        format!("ATH{}", u8::from(headers)),
                        format!("ATS{}", u8::from(spaces)),
                    ])
                {
                    elm.feed(format!("{setting}\r").as_bytes());
                    let line = elm.next_line().unwrap();
                    assert!(elm.execute(&line, &mut vehicle).text().contains("OK"));
                }
                let extended = protocol == '7';
                // A twin (the vehicle is deterministic) to ask directly; the requests only read.
                let mut probe = crate::Vehicle::from_scenario(&scenario);
                probe.advance_to(Duration::from_secs(40));
                let infos = vehicle.ecus().to_vec();
                for request in requests {
                    // What the vehicle says, straight from its ECUs.
                    let mut want: Vec<(Duration, CanId, Vec<u8>)> = Vec::new();
                    for (i, info) in infos.iter().enumerate() {
                        if info.request_id.is_extended() == extended {
                            for r in probe.handle(i, &hex(request), true) {
                                want.push((r.delay, info.response_id, r.payload));
                            }
                        }
                    }
                    want.sort_by_key(|w| w.0);
                    elm.feed(format!("{request}\r").as_bytes());
                    let line = elm.next_line().unwrap();
                    let out = elm.execute(&line, &mut vehicle).text();
                    let opts = ParseOptions {
                        command: request.to_owned(),
                        echo: false,
                        headers,
                        bus: Bus::Can(if extended {
                            IdWidth::Bits29
                        } else {
                            IdWidth::Bits11
                        }),
                    };
                    let parsed = parser::parse_reply(out.trim_end_matches('>'), &opts);
                    let context = format!(
                        "protocol {protocol} headers {headers} spaces {spaces} {request}: {out:?}"
                    );
                    match parsed {
                        Ok(parser::Reply::Messages {
                            messages: mut got,
                            errors,
                        }) => {
                            assert!(errors.is_empty(), "{context}: {errors:?}");
                            let mut payloads: Vec<Vec<u8>> =
                                got.iter().map(|m| m.payload.clone()).collect();
                            let mut expected: Vec<Vec<u8>> =
                                want.iter().map(|w| w.2.clone()).collect();
                            payloads.sort();
                            expected.sort();
                            assert_eq!(payloads, expected, "{context}");
                            if headers {
                                got.retain(|m| !want.iter().any(|w| m.header == Some(w.1.into())));
                                assert!(got.is_empty(), "{context}: unknown headers {got:?}");
                            }
                        }
                        Ok(parser::Reply::NoData) => assert!(want.is_empty(), "{context}"),
                        other => panic!("{context}: {other:?}"),
                    }
                }
            }
        }
    }
}
