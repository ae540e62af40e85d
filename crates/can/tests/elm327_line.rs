//! The ELM327 client raising the serial line with `AT BRD`, against a fake adapter that models
//! the line: bytes sent while the two ends run at different rates arrive as garbage, as they
//! do on a real UART. Covers the agreed switch, a warm start keeping it, an adapter that
//! reset itself back to its power-up rate, a clone without `AT BRD`, a line that garbles the
//! faster rate, and a clone whose echo cannot be turned off.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use telltale_can::client::{ClientOptions, DiagClient, Target};
use telltale_can::elm327::Elm327Client;
use telltale_can::elm327::line::AdapterStream;
use telltale_obd::service::{Request, Response};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, DuplexStream, ReadBuf};

const POWER_UP: u32 = 38_400;
const GARBAGE: u8 = 0xFE;

/// The host's end of the line: a pipe whose speed is a shared number.
struct Line {
    io: DuplexStream,
    baud: Arc<AtomicU32>,
    set: Arc<Mutex<Vec<u32>>>,
}

impl AsyncRead for Line {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl AsyncWrite for Line {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }
    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

impl AdapterStream for Line {
    fn set_baud_rate(&mut self, baud: u32) -> io::Result<()> {
        self.baud.store(baud, Ordering::SeqCst);
        self.set.lock().expect("log").push(baud);
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Clone {
    /// Answers `AT BRD` with `?`.
    no_brd: bool,
    /// The faster rates arrive garbled (a poor USB-serial bridge).
    garbles_fast: bool,
    /// Keeps echoing after `ATE0`.
    stuck_echo: bool,
}

/// The adapter's end: answers commands, keeps its own line speed.
struct Fake {
    clone: Clone,
    host: Arc<AtomicU32>,
    baud: u32,
    echo: bool,
    log: Arc<Mutex<Vec<String>>>,
    /// Once a command starting with this arrives, the adapter resets itself (supply dip):
    /// back to its power-up rate, printing `LV RESET` there.
    reset_at: Option<&'static str>,
    /// Once a command starting with this arrives, answer it `?` (the client re-initialises).
    refuse_at: Option<&'static str>,
}

impl Fake {
    fn readable(&self) -> bool {
        self.host.load(Ordering::SeqCst) == self.baud
            && !(self.clone.garbles_fast && self.baud != POWER_UP)
    }

    async fn send(&self, wr: &mut (impl AsyncWrite + Unpin), text: &str) {
        let bytes: Vec<u8> = if self.readable() {
            text.as_bytes().to_vec()
        } else {
            vec![GARBAGE; text.len()]
        };
        let _ = wr.write_all(&bytes).await;
    }

    fn reply(&mut self, cmd: &str) -> String {
        let up = cmd.to_ascii_uppercase().replace(' ', "");
        let body = match up.as_str() {
            "ATZ" | "ATWS" => {
                if up == "ATZ" {
                    self.baud = POWER_UP;
                }
                self.echo = true;
                "\rELM327 v1.5".to_owned()
            }
            "ATE0" => {
                self.echo = self.clone.stuck_echo;
                "OK".into()
            }
            "ATL0" | "ATS0" | "ATH1" | "ATSP0" => "OK".into(),
            "ATDPN" => "A6".into(),
            _ if up.starts_with("ATSH") => "OK".into(),
            "0100" => "7E8 06 41 00 08 18 00 00".into(),
            "010D" => "7E8 03 41 0D 3C".into(),
            _ => "?".into(),
        };
        if self.echo {
            format!("{cmd}\r{body}\r\r>")
        } else {
            format!("{body}\r\r>")
        }
    }
}

async fn serve(io: DuplexStream, mut fake: Fake) {
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while let Ok(1) = rd.read(&mut byte).await {
        if !fake.readable() {
            continue; // noise at the wrong rate
        }
        if byte[0] != b'\r' {
            line.push(byte[0]);
            continue;
        }
        let cmd = String::from_utf8_lossy(&line).into_owned();
        line.clear();
        fake.log.lock().expect("log").push(cmd.clone());
        let up = cmd.to_ascii_uppercase();
        if fake.reset_at.is_some_and(|r| up.starts_with(r)) {
            fake.reset_at = None;
            fake.baud = POWER_UP;
            fake.echo = true;
            fake.send(&mut wr, "LV RESET\r\r>").await;
            continue;
        }
        if fake.refuse_at.is_some_and(|r| up.starts_with(r)) {
            fake.refuse_at = None;
            fake.send(&mut wr, "?\r\r>").await;
            continue;
        }
        if let Some(hex) = up.strip_prefix("ATBRD") {
            brd(&mut fake, &mut rd, &mut wr, &cmd, hex).await;
            continue;
        }
        let reply = fake.reply(&cmd);
        fake.send(&mut wr, &reply).await;
    }
}

/// The handshake as the data sheet describes it.
async fn brd(
    fake: &mut Fake,
    rd: &mut (impl AsyncRead + Unpin),
    wr: &mut (impl AsyncWrite + Unpin),
    cmd: &str,
    hex: &str,
) {
    let echo = if fake.echo {
        format!("{cmd}\r")
    } else {
        String::new()
    };
    let Ok(divisor) = u32::from_str_radix(hex, 16) else {
        return fake.send(wr, &format!("{echo}?\r\r>")).await;
    };
    if fake.clone.no_brd || divisor == 0 {
        return fake.send(wr, &format!("{echo}?\r\r>")).await;
    }
    fake.send(wr, &format!("{echo}OK\r")).await;
    let old = fake.baud;
    fake.baud = 4_000_000 / divisor;
    tokio::time::sleep(Duration::from_millis(75)).await;
    fake.send(wr, "ELM327 v1.5\r").await;
    let mut byte = [0u8; 1];
    let got_cr = matches!(
        tokio::time::timeout(Duration::from_millis(75), rd.read(&mut byte)).await,
        Ok(Ok(1))
    ) && byte[0] == b'\r'
        && fake.readable();
    if got_cr {
        fake.send(wr, "OK\r\r>").await;
    } else {
        fake.baud = old;
        fake.send(wr, "\r>").await;
    }
}

struct Rig {
    client: DiagClient,
    sent: Arc<Mutex<Vec<String>>>,
    host_rates: Arc<Mutex<Vec<u32>>>,
}

async fn rig(clone: Clone, reset_at: Option<&'static str>, refuse_at: Option<&'static str>) -> Rig {
    let (host_io, adapter_io) = tokio::io::duplex(4096);
    let host = Arc::new(AtomicU32::new(POWER_UP));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let host_rates = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(
        adapter_io,
        Fake {
            clone,
            host: host.clone(),
            baud: POWER_UP,
            echo: true,
            log: sent.clone(),
            reset_at,
            refuse_at,
        },
    ));
    let line = Line {
        io: host_io,
        baud: host,
        set: host_rates.clone(),
    };
    let elm = Elm327Client::connect_serial(
        line,
        "fake-serial",
        &ClientOptions::default(),
        POWER_UP,
        Some(115_200),
    )
    .await
    .expect("initialised");
    Rig {
        client: DiagClient::Elm327(elm),
        sent,
        host_rates,
    }
}

async fn speed(c: &DiagClient) -> f64 {
    let answers = c
        .request(
            Target::Functional,
            &Request::CurrentData { pids: vec![0x0D] },
        )
        .await
        .expect("speed");
    match &answers[0].response {
        Response::CurrentData(d) => match d[0].readings[0].value {
            telltale_obd::pid::Value::Number(n) => n,
            ref other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

fn sent(rig: &Rig) -> Vec<String> {
    rig.sent.lock().expect("log").clone()
}

#[tokio::test(start_paused = true)]
async fn the_line_is_raised_after_reset_and_kept_by_warm_starts() {
    // The speed request is refused once: the client re-initialises, with a warm start.
    let rig = rig(Clone::default(), None, Some("010D")).await;
    assert_eq!(speed(&rig.client).await, 60.0);
    assert_eq!(rig.host_rates.lock().expect("log").clone(), vec![114_285]);
    let log = sent(&rig);
    assert_eq!(&log[..3], ["ATZ", "ATE0", "ATBRD23"], "{log:?}");
    assert_eq!(log.iter().filter(|c| *c == "ATZ").count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|c| *c == "ATWS").count(), 1, "{log:?}");
    assert_eq!(log.iter().filter(|c| *c == "010D").count(), 2, "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_raised_line_survives_an_adapter_that_reset_itself() {
    // The adapter resets at the first speed request: it is back at 38400 baud while the host
    // is at 114285. The warm start goes unanswered, the host goes back to 38400, resets with
    // ATZ and raises the line again.
    let rig = rig(Clone::default(), Some("010D"), None).await;
    assert_eq!(speed(&rig.client).await, 60.0);
    assert_eq!(
        rig.host_rates.lock().expect("log").clone(),
        vec![114_285, 38_400, 114_285]
    );
    let log = sent(&rig);
    assert_eq!(log.iter().filter(|c| *c == "ATBRD23").count(), 2, "{log:?}");
    assert_eq!(log.iter().filter(|c| *c == "ATZ").count(), 2, "{log:?}");
    // Still usable afterwards.
    assert_eq!(speed(&rig.client).await, 60.0);
}

#[tokio::test(start_paused = true)]
async fn a_clone_without_brd_stays_at_its_rate_and_is_not_asked_again() {
    let rig = rig(
        Clone {
            no_brd: true,
            ..Clone::default()
        },
        Some("010D"),
        None,
    )
    .await;
    assert_eq!(speed(&rig.client).await, 60.0);
    assert!(rig.host_rates.lock().expect("log").is_empty());
    let log = sent(&rig);
    assert_eq!(log.iter().filter(|c| *c == "ATBRD23").count(), 1, "{log:?}");
    assert!(!log.iter().any(|c| c == "ATWS"), "{log:?}");
}

#[tokio::test(start_paused = true)]
async fn a_line_that_garbles_the_faster_rate_falls_back_on_both_ends() {
    let rig = rig(
        Clone {
            garbles_fast: true,
            ..Clone::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(speed(&rig.client).await, 60.0);
    assert_eq!(
        rig.host_rates.lock().expect("log").clone(),
        vec![114_285, 38_400]
    );
}

#[tokio::test(start_paused = true)]
async fn a_clone_whose_echo_cannot_be_turned_off() {
    let rig = rig(
        Clone {
            stuck_echo: true,
            ..Clone::default()
        },
        None,
        None,
    )
    .await;
    assert_eq!(speed(&rig.client).await, 60.0);
    assert_eq!(rig.host_rates.lock().expect("log").clone(), vec![114_285]);
}
