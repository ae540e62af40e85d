//! The ELM327 client against a scripted fake adapter over an in-memory pipe (and once over
//! TCP): initialisation, protocol detection, headers, multi-PID and multi-frame answers, and
//! recovery from `?`, `STOPPED`, resets, `LV RESET` and silence.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_can::client::{ClientOptions, DiagClient, DiagError, DtcKind, Target, Trouble};
use telltale_can::elm327::Elm327Client;
use telltale_obd::CanId;
use telltale_obd::EcuId;
use telltale_obd::elm327::Condition;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::service::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Instead of the normal answer to the next command starting with `.0`: reply with `.1`
/// (raw text, prompt added), or stay silent when `.1` is `None`.
type Fault = (&'static str, Option<&'static str>);

#[derive(Default)]
struct Script {
    faults: VecDeque<Fault>,
    /// Reply to `0100` at initialisation with `UNABLE TO CONNECT`.
    no_vehicle: bool,
    /// The vehicle talks 29-bit CAN.
    extended: bool,
    /// Once a command starting with this arrives, stay silent for good.
    die_at: Option<&'static str>,
    dead: bool,
}

struct Fake {
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
    echo: bool,
    spaces: bool,
    headers: bool,
    header: String,
}

const VIN: &str = "1G1JC5444R7252367";

impl Fake {
    fn reset(&mut self) {
        self.echo = true;
        self.spaces = true;
        self.headers = false;
        self.header = if self.script.extended {
            "DB33F1".into()
        } else {
            "7DF".into()
        };
    }

    /// The ECUs' answers to an OBD request, as (response id, payload).
    fn ecus(&self, req: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
        let (engine, trans) = if self.script.extended {
            ("18DAF110", "18DAF118")
        } else {
            ("7E8", "7E9")
        };
        let physical_engine = matches!(self.header.as_str(), "7E0" | "DA10F1");
        let mut out = Vec::new();
        let engine_answer = match req {
            [0x01, 0x00] => Some(vec![0x41, 0x00, 0x08, 0x18, 0x00, 0x00]),
            [0x01, 0x0C, 0x0D] => Some(vec![0x41, 0x0C, 0x1A, 0xF8, 0x0D, 0x3C]),
            [0x01, 0x0D] => Some(vec![0x41, 0x0D, 0x3C]),
            [0x09, 0x02] => {
                let mut p = vec![0x49, 0x02, 0x01];
                p.extend_from_slice(VIN.as_bytes());
                Some(p)
            }
            [0x03] => Some(vec![0x43, 0x01, 0x03, 0x01]),
            _ => None,
        };
        out.extend(engine_answer.map(|p| (engine, p)));
        if !physical_engine && req == [0x03] {
            out.push((trans, vec![0x43, 0x00]));
        }
        out
    }

    /// The lines of an answer with headers on: ISO-TP frames as the adapter prints them.
    fn frames(&self, id: &str, payload: &[u8]) -> Vec<String> {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        if payload.len() <= 7 {
            let mut f = vec![payload.len() as u8];
            f.extend_from_slice(payload);
            frames.push(f);
        } else {
            let mut f = vec![0x10, payload.len() as u8];
            f.extend_from_slice(&payload[..6]);
            frames.push(f);
            for (i, chunk) in payload[6..].chunks(7).enumerate() {
                let mut f = vec![0x20 | ((i + 1) % 16) as u8];
                f.extend_from_slice(chunk);
                frames.push(f);
            }
        }
        let sep = if self.spaces { " " } else { "" };
        frames
            .iter()
            .map(|f| {
                let bytes: Vec<String> = f.iter().map(|b| format!("{b:02X}")).collect();
                let id = if self.spaces && id.len() == 8 {
                    format!("{} {} {} {}", &id[..2], &id[2..4], &id[4..6], &id[6..])
                } else {
                    id.to_owned()
                };
                format!("{id}{sep}{}", bytes.join(sep))
            })
            .collect()
    }

    /// The reply text (without prompt) to one command line, or `None` for silence.
    fn answer(&mut self, cmd: &str) -> Option<String> {
        self.log.lock().expect("log").push(cmd.to_owned());
        let up = cmd.to_ascii_uppercase().replace(' ', "");
        if let Some(pos) = self
            .script
            .faults
            .iter()
            .position(|(prefix, _)| up.starts_with(prefix))
        {
            let (_, reply) = self.script.faults.remove(pos)?;
            return reply.map(str::to_owned);
        }
        if self.script.die_at.is_some_and(|d| up.starts_with(d)) {
            self.script.dead = true;
        }
        if self.script.dead {
            return None;
        }
        let body = match up.as_str() {
            "ATZ" => {
                self.reset();
                "\r\rELM327 v1.5".to_owned()
            }
            "ATE0" => {
                self.echo = false;
                "OK".into()
            }
            "ATS0" => {
                self.spaces = false;
                "OK".into()
            }
            "ATH1" => {
                self.headers = true;
                "OK".into()
            }
            "ATL0" | "ATSP0" | "ATSP6" => "OK".into(),
            "ATDPN" => if self.script.extended { "A7" } else { "A6" }.into(),
            _ if up.starts_with("ATSH") => {
                self.header = up[4..].to_owned();
                "OK".into()
            }
            _ if up.starts_with("AT") => "?".into(),
            hex => {
                let Ok(req) = (0..hex.len())
                    .step_by(2)
                    .map(|i| u8::from_str_radix(hex.get(i..i + 2).unwrap_or("zz"), 16))
                    .collect::<Result<Vec<u8>, _>>()
                else {
                    return Some("?".into());
                };
                if self.script.no_vehicle {
                    return Some("SEARCHING...\rUNABLE TO CONNECT".into());
                }
                let answers = self.ecus(&req);
                if answers.is_empty() {
                    "NO DATA".into()
                } else {
                    answers
                        .iter()
                        .flat_map(|(id, p)| self.frames(id, p))
                        .collect::<Vec<_>>()
                        .join("\r")
                }
            }
        };
        Some(if self.echo {
            format!("{cmd}\r{body}")
        } else {
            body
        })
    }
}

/// Serves the fake adapter on `io` until the client hangs up.
async fn serve(
    io: impl AsyncRead + AsyncWrite + Unpin,
    script: Script,
    log: Arc<Mutex<Vec<String>>>,
) {
    let mut fake = Fake {
        script,
        log,
        echo: true,
        spaces: true,
        headers: false,
        header: String::new(),
    };
    fake.reset();
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = rd.read(&mut byte).await {
        if byte[0] != b'\r' {
            line.push(byte[0]);
            continue;
        }
        let cmd = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        if let Some(reply) = fake.answer(&cmd) {
            let out = format!("{reply}\r\r>");
            if wr.write_all(out.as_bytes()).await.is_err() {
                break;
            }
        }
    }
}

async fn connect(script: Script) -> (Result<Elm327Client, DiagError>, Arc<Mutex<Vec<String>>>) {
    let (client_io, adapter_io) = tokio::io::duplex(4096);
    let log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(adapter_io, script, log.clone()));
    let client = Elm327Client::connect(client_io, "fake", &ClientOptions::default()).await;
    (client, log)
}

fn count(log: &Arc<Mutex<Vec<String>>>, cmd: &str) -> usize {
    log.lock()
        .expect("log")
        .iter()
        .filter(|c| *c == cmd)
        .count()
}

fn rpm_and_speed() -> Request {
    Request::current_data(&[0x0C, 0x0D]).expect("two PIDs")
}

#[tokio::test(start_paused = true)]
async fn init_detects_the_protocol_and_requests_work() {
    let (client, log) = connect(Script::default()).await;
    let elm = client.expect("initialised");
    assert!(!elm.uses_extended_ids());
    let c = DiagClient::Elm327(elm);
    assert_eq!(c.read_vin().await.expect("VIN").to_string(), VIN);

    let answers = c
        .request(Target::Functional, &rpm_and_speed())
        .await
        .expect("PIDs");
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].ecu, CanId::Standard(0x7E8));
    let Response::CurrentData(data) = &answers[0].response else {
        panic!("{answers:?}");
    };
    assert_eq!(data[0].readings[0].to_string(), "Engine speed: 1726 rpm");
    assert_eq!(data[1].readings[0].to_string(), "Vehicle speed: 60 km/h");

    let dtcs = c.read_dtcs(DtcKind::Stored).await.expect("DTCs");
    assert_eq!(dtcs.len(), 2);
    assert_eq!(
        dtcs[&EcuId::Can(CanId::Standard(0x7E8))][0].to_string(),
        "P0301"
    );

    // Physical requests set the header once, and functional ones set it back.
    let engine = Target::Physical(Channel::obd_11bit(0).expect("7E0"));
    c.request(engine, &Request::StoredDtcs)
        .await
        .expect("physical");
    c.read_pids(engine, &[0x0D]).await.expect("physical");
    c.request(Target::Functional, &Request::StoredDtcs)
        .await
        .expect("functional");
    let log = log.lock().expect("log").clone();
    let sent: Vec<&str> = log.iter().map(String::as_str).collect();
    assert_eq!(
        sent[..9],
        [
            "ATZ", "ATE0", "ATL0", "ATS0", "ATH1", "ATSP0", "0100", "ATDPN", "ATSH7DF"
        ]
    );
    assert_eq!(
        sent[sent.len() - 5..],
        ["ATSH7E0", "03", "010D", "ATSH7DF", "03"]
    );
    // A physical request only takes the addressed ECU's answer.
    assert_eq!(
        c.request(engine, &Request::StoredDtcs)
            .await
            .expect("physical")
            .len(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn unsupported_requests_are_no_response() {
    let (client, _) = connect(Script::default()).await;
    let c = DiagClient::Elm327(client.expect("initialised"));
    let err = c
        .request(Target::Functional, &Request::PermanentDtcs)
        .await
        .unwrap_err();
    assert!(err.is_silence(), "{err}");
}

async fn recovers_from(fault: Fault, kind: Trouble) {
    let script = Script {
        faults: VecDeque::from([fault]),
        ..Script::default()
    };
    let (client, log) = connect(script).await;
    let c = DiagClient::Elm327(client.expect("initialised"));
    let answers = c
        .request(Target::Functional, &rpm_and_speed())
        .await
        .unwrap_or_else(|e| panic!("{fault:?}: {e}"));
    assert_eq!(answers.len(), 1, "{fault:?}");
    assert_eq!(count(&log, "ATZ"), 2, "{fault:?}: re-initialised once");
    assert_eq!(count(&log, "010C0D"), 2, "{fault:?}: retried once");
    assert_eq!(
        c.troubles().counts().into_iter().collect::<Vec<_>>(),
        vec![(kind, 1)],
        "{fault:?}: counted by kind"
    );
}

#[tokio::test(start_paused = true)]
async fn recovers_from_question_mark() {
    recovers_from(("010C0D", Some("?")), Trouble::AdapterUnknownCommand).await;
}

#[tokio::test(start_paused = true)]
async fn recovers_from_stopped() {
    recovers_from(("010C0D", Some("STOPPED")), Trouble::AdapterStopped).await;
}

#[tokio::test(start_paused = true)]
async fn recovers_from_a_reset_banner_mid_stream() {
    recovers_from(("010C0D", Some("\r\rELM327 v1.5")), Trouble::AdapterReset).await;
}

#[tokio::test(start_paused = true)]
async fn recovers_from_a_low_voltage_reset() {
    recovers_from(("010C0D", Some("LV RESET")), Trouble::AdapterOther).await;
}

#[tokio::test(start_paused = true)]
async fn recovers_from_garbage() {
    recovers_from(
        ("010C0D", Some("7E8 06 41 0C ZZ\u{1}")),
        Trouble::AdapterGarbled,
    )
    .await;
}

#[tokio::test(start_paused = true)]
async fn recovers_from_silence() {
    let t0 = tokio::time::Instant::now();
    recovers_from(("010C0D", None), Trouble::AdapterSilent).await;
    // The command timeout (10 s) passed once.
    assert!(tokio::time::Instant::now() - t0 >= Duration::from_secs(10));
}

#[tokio::test(start_paused = true)]
async fn a_second_failure_is_a_clear_error() {
    let script = Script {
        faults: VecDeque::from([("010C0D", Some("?")), ("010C0D", Some("?"))]),
        ..Script::default()
    };
    let (client, _) = connect(script).await;
    let c = DiagClient::Elm327(client.expect("initialised"));
    let err = c
        .request(Target::Functional, &rpm_and_speed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ELM327 adapter: the adapter answered ? to 010C0D; after re-initialising, again: the \
         adapter answered ? to 010C0D"
    );
    // The client is still usable.
    assert_eq!(c.read_vin().await.expect("VIN").to_string(), VIN);
}

#[tokio::test(start_paused = true)]
async fn an_adapter_that_dies_gives_a_clear_error() {
    let (client, _) = connect(Script {
        die_at: Some("010C0D"),
        ..Script::default()
    })
    .await;
    let c = DiagClient::Elm327(client.expect("initialised"));
    let err = c
        .request(Target::Functional, &rpm_and_speed())
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ELM327 adapter: no answer to 010C0D within 10000 ms; then re-initialising failed: \
         ELM327 adapter: initialisation failed at ATZ: no answer to ATZ within 5000 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn no_vehicle_is_unable_to_connect() {
    let (client, _) = connect(Script {
        no_vehicle: true,
        ..Script::default()
    })
    .await;
    let err = client.unwrap_err();
    assert_eq!(err, DiagError::AdapterCondition(Condition::UnableToConnect));
    assert!(err.is_silence());
}

#[tokio::test(start_paused = true)]
async fn a_silent_adapter_fails_initialisation_with_a_clear_error() {
    let (client, _) = connect(Script {
        dead: true,
        ..Script::default()
    })
    .await;
    let err = client.unwrap_err();
    assert!(
        err.to_string()
            .contains("initialisation failed at ATZ: no answer to ATZ within 5000 ms"),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn twenty_nine_bit_vehicles() {
    let (client, log) = connect(Script {
        extended: true,
        ..Script::default()
    })
    .await;
    let elm = client.expect("initialised");
    assert!(elm.uses_extended_ids());
    let c = DiagClient::Elm327(elm);
    let answers = c
        .request(Target::Functional, &rpm_and_speed())
        .await
        .expect("PIDs");
    assert_eq!(answers[0].ecu, CanId::Extended(0x18DA_F110));
    let engine = Target::Physical(Channel::obd_29bit(0x10).expect("ECU 10"));
    assert_eq!(c.read_vin().await.expect("VIN").to_string(), VIN);
    c.request(engine, &Request::StoredDtcs)
        .await
        .expect("physical");
    let log = log.lock().expect("log").clone();
    assert!(log.contains(&"ATSHDB33F1".to_owned()), "{log:?}");
    assert!(log.contains(&"ATSHDA10F1".to_owned()), "{log:?}");
}

#[tokio::test]
async fn over_tcp() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(Mutex::new(Vec::new()));
    let server_log = log.clone();
    tokio::spawn(async move {
        if let Ok((stream, _)) = listener.accept().await {
            serve(stream, Script::default(), server_log).await;
        }
    });
    let elm = Elm327Client::open_tcp(&addr.to_string(), &ClientOptions::default())
        .await
        .expect("connected");
    let c = DiagClient::Elm327(elm);
    assert_eq!(c.read_vin().await.expect("VIN").to_string(), VIN);
}
