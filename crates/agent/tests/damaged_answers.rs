//! The vehicle task against an ECU that damages part of its answers, as real ECUs and cheap
//! adapters do: one PID of a multi-PID answer cut short, DTC lists without the count byte.
//! Nothing that decodes may be lost, the damaged PID is asked alone afterwards, and each kind
//! of trouble is counted for `/metrics`. Tokio time is paused.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_agent::uplink::Message;
use telltale_agent::vehicle::{self, SignalSpec, VehicleConfig, VehicleState, signals};
use telltale_can::client::can::CanClient;
use telltale_can::isotp::{IsoTpAddresses, IsoTpSocket};
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{ClientOptions, DiagClient};
use telltale_obd::CanId;
use telltale_obd::isotp::Config;
use telltale_obd::isotp::addressing::Channel;
use telltale_wire::v1;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// rpm, speed, coolant, intake air, throttle.
const PIDS: [u8; 5] = [0x0C, 0x0D, 0x05, 0x0F, 0x11];

/// Each PID's answer bytes (PID included): 1726 rpm, 60 km/h, 83 °C, 30 °C, 20 %.
fn pid_answer(pid: u8) -> Vec<u8> {
    match pid {
        0x0C => vec![0x0C, 0x1A, 0xF8],
        0x0D => vec![0x0D, 0x3C],
        0x05 => vec![0x05, 0x7B],
        0x0F => vec![0x0F, 0x46],
        0x11 => vec![0x11, 0x33],
        _ => Vec::new(),
    }
}

/// The engine ECU's answer: PID 00 says 05, 0C, 0D, 0F and 11 are supported; speed comes
/// without its data byte whenever it is asked together with other PIDs; the stored codes come
/// without a count byte (P0420 and P0143); the pending code P0300 comes with a count byte that
/// says two on every other poll (`damaged`), which cannot be read; everything else is refused.
fn engine_answer(req: &[u8], damaged: bool) -> Vec<u8> {
    match req {
        [0x01, 0x00] => vec![0x41, 0x00, 0x08, 0x1A, 0x80, 0x00],
        [0x01, pids @ ..] => {
            let mut out = vec![0x41];
            for &pid in pids {
                let mut part = pid_answer(pid);
                if pid == 0x0D && pids.len() > 1 {
                    part.truncate(1);
                }
                out.extend(part);
            }
            out
        }
        [0x03] => vec![0x43, 0x04, 0x20, 0x01, 0x43],
        [0x07] if damaged => vec![0x47, 0x02, 0x03, 0x00],
        [0x07] => vec![0x47, 0x01, 0x03, 0x00],
        [sid, ..] => vec![0x7F, *sid, 0x11],
        [] => Vec::new(),
    }
}

/// The transmission: PID 00 with nothing but its bitmap, no codes.
fn transmission_answer(req: &[u8]) -> Vec<u8> {
    match req {
        [0x01, 0x00] => vec![0x41, 0x00, 0x00, 0x00, 0x00, 0x00],
        [0x03] => vec![0x43, 0x00],
        [0x07] => vec![0x47, 0x00],
        [sid, ..] => vec![0x7F, *sid, 0x11],
        [] => Vec::new(),
    }
}

/// Serves ECU `index` (0 engine, 1 transmission) on its physical ids and the functional id;
/// logs every request. The engine's pending list is damaged on every other 07.
fn ecu(bus: &VirtualBus, index: u8) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let Some(ch) = Channel::obd_11bit(index) else {
        panic!("ECU {index} has a channel")
    };
    let addrs = IsoTpAddresses {
        tx: ch.response,
        rx: ch.request,
        functional_rx: Some(CanId::Standard(0x7DF)),
    };
    let mut sock = IsoTpSocket::new(&bus.node(), addrs, Config::default());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        let mut pending_polls = 0;
        while let Ok(req) = sock.recv().await {
            seen.lock().expect("log").push(req.payload.clone());
            let answer = if index == 0 {
                if req.payload == [0x07] {
                    pending_polls += 1;
                }
                engine_answer(&req.payload, pending_polls % 2 == 0)
            } else {
                transmission_answer(&req.payload)
            };
            if sock.send(&answer).await.is_err() {
                break;
            }
        }
    });
    log
}

fn config() -> VehicleConfig {
    VehicleConfig {
        link: "sim:damaged".into(),
        signals: PIDS
            .iter()
            .map(|&pid| SignalSpec {
                name: signals::name_for(pid).unwrap_or_default(),
                pid,
                period: Duration::from_secs(1),
            })
            .collect(),
        dtc_period: Duration::from_secs(2),
        uds: false,
        max_requests_per_second: 50.0,
        batch_max_samples: 1000,
        batch_max_age: Duration::from_secs(2),
        asleep_probe_period: Duration::from_secs(10),
        asleep_after_silences: 3,
    }
}

#[tokio::test(start_paused = true)]
async fn damaged_answers_lose_only_the_damaged_part_and_clear_nothing() {
    let bus = VirtualBus::new("damaged");
    let requests = ecu(&bus, 0);
    let _transmission = ecu(&bus, 1);
    let client = DiagClient::Can(CanClient::new(bus.node(), ClientOptions::default()));
    let (out_tx, mut out) = mpsc::channel(64);
    let (_req_tx, req_rx) = mpsc::channel(4);
    let (state_tx, state) = watch::channel(VehicleState::default());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(vehicle::run(
        client,
        config(),
        out_tx,
        req_rx,
        state_tx,
        cancel.clone(),
    ));

    let until = Instant::now() + Duration::from_secs(5);
    let mut messages = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout_at(until, out.recv()).await {
        messages.push(m);
    }
    cancel.cancel();
    let _ = task.await;
    // The partial batch flushed at cancel.
    while let Ok(m) = out.try_recv() {
        messages.push(m);
    }

    // Every sample round has every PID but speed; speed arrives from its own requests.
    let samples: Vec<&v1::Sample> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Telemetry(t) => Some(t.samples.iter()),
            _ => None,
        })
        .flatten()
        .collect();
    for pid in PIDS {
        assert!(
            samples.iter().any(|s| s.pid == u32::from(pid)),
            "no sample of PID {pid:02X}: {samples:?}"
        );
    }
    let speeds: Vec<f64> = samples
        .iter()
        .filter(|s| s.pid == 0x0D)
        .map(|s| s.value)
        .collect();
    assert!(speeds.iter().all(|&v| v == 60.0), "{speeds:?}");
    let rpm = samples.iter().filter(|s| s.pid == 0x0C).count();
    assert!(
        rpm >= 4,
        "rpm sampled {rpm} times in 5 s at 1 Hz: {samples:?}"
    );

    // Asked together once; after the damage, speed always alone and the others together.
    let log = requests.lock().expect("log").clone();
    let polls: Vec<&Vec<u8>> = log
        .iter()
        .filter(|r| r.first() == Some(&0x01) && r.get(1) != Some(&0x00))
        .collect();
    assert_eq!(polls[0], &vec![0x01, 0x0C, 0x0D, 0x05, 0x0F, 0x11]);
    for r in &polls[1..] {
        assert!(
            r == &&vec![0x01, 0x0D] || !r.contains(&0x0D),
            "speed asked with others after its damage: {log:02X?}"
        );
    }
    assert!(polls[1..].iter().any(|r| r == &&vec![0x01, 0x0D]));

    // The stored codes without a count byte are read exactly; the pending P0300 is there
    // from the first report on and never reported cleared, though every other pending answer
    // could not be read.
    let reports: Vec<&v1::DtcReport> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Dtc(d) => Some(d),
            _ => None,
        })
        .collect();
    let engine = |r: &v1::DtcReport| r.ecus.iter().find(|e| e.ecu_can_id == 0x7E8).cloned();
    let Some(first) = reports.first().and_then(|r| engine(r)) else {
        panic!("no DTC report with the engine: {reports:?}")
    };
    let codes: Vec<(&str, i32)> = first
        .current
        .iter()
        .map(|d| (d.code.as_str(), d.kind))
        .collect();
    let stored = v1::DtcKind::Stored as i32;
    let pending = v1::DtcKind::Pending as i32;
    assert_eq!(
        codes,
        [("P0143", stored), ("P0420", stored), ("P0300", pending)]
    );
    for r in &reports {
        for e in &r.ecus {
            assert!(e.cleared.is_empty(), "a code reported cleared: {r:?}");
        }
    }
    assert_eq!(reports.len(), 1, "only the start-up report: {reports:?}");

    // Counted by kind: one damaged PID (the first round), and the damaged pending lists.
    let counts = state.borrow().unusable_answers.clone();
    assert_eq!(counts.get("damaged_pid"), Some(&1), "{counts:?}");
    assert!(
        counts.get("dtc_count").is_some_and(|&n| n >= 1),
        "{counts:?}"
    );
    assert_eq!(counts.len(), 2, "{counts:?}");
}
