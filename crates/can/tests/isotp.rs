//! The ISO-TP endpoint on the virtual bus, with deterministic time: multi-frame transfers both
//! ways, block size and STmin pacing as seen on the bus, N_Bs and N_Cr timeouts, and frames
//! lost or reordered by a meddling node between two buses.

use std::time::Duration;

use telltale_can::isotp::{IsoTpAddresses, IsoTpSocket, IsoTpTransferError, Received};
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{CanBus, Filter};
use telltale_obd::isotp::{Config, IsoTpError, StMin, Timer};
use telltale_obd::{CanFrame, CanId};
use tokio::time::{Instant, timeout};

const REQ: CanId = CanId::Standard(0x7E0);
const RESP: CanId = CanId::Standard(0x7E8);
const FUNC: CanId = CanId::Standard(0x7DF);

fn tester(bus: &CanBus, config: Config) -> IsoTpSocket {
    let addrs = IsoTpAddresses {
        tx: REQ,
        rx: RESP,
        functional_rx: None,
    };
    IsoTpSocket::new(bus, addrs, config)
}

fn ecu(bus: &CanBus, config: Config) -> IsoTpSocket {
    let addrs = IsoTpAddresses {
        tx: RESP,
        rx: REQ,
        functional_rx: Some(FUNC),
    };
    IsoTpSocket::new(bus, addrs, config)
}

fn payload(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 13 % 256) as u8).collect()
}

fn frame(id: CanId, data: &[u8]) -> CanFrame {
    CanFrame::new(id, data).expect("test frames hold at most 8 bytes")
}

/// Everything within a generous bound, so a hang fails the test instead of blocking it.
async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(30), f)
        .await
        .expect("ISO-TP operation hung")
}

fn timeout_err(timer: Timer) -> IsoTpError {
    IsoTpError::Timeout {
        timer,
        after: Duration::from_millis(1000),
    }
}

fn protocol_error(r: Result<Received, IsoTpTransferError>) -> IsoTpError {
    match r {
        Err(IsoTpTransferError::Protocol { error, .. }) => error,
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn multi_frame_both_ways_and_functional_single_frames() {
    let bus = VirtualBus::new("both-ways");
    let mut client = tester(&bus.node(), Config::default());
    let mut server = ecu(&bus.node(), Config::default());
    let request = payload(100);
    let response = payload(4095);

    let server_task = tokio::spawn(async move {
        let got = bounded(server.recv()).await.unwrap();
        server.send(&response).await.unwrap();
        let functional = bounded(server.recv()).await.unwrap();
        (got, functional)
    });
    bounded(client.send(&request)).await.unwrap();
    let answer = bounded(client.recv()).await.unwrap();
    assert_eq!(answer.payload, payload(4095));
    assert!(!answer.functional);

    bus.node()
        .send(frame(
            FUNC,
            &[0x02, 0x01, 0x00, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC],
        ))
        .await
        .unwrap();
    let (got, functional) = server_task.await.unwrap();
    assert_eq!(
        got,
        Received {
            payload: request,
            functional: false
        }
    );
    assert_eq!(
        functional,
        Received {
            payload: vec![0x01, 0x00],
            functional: true
        }
    );
}

#[tokio::test(start_paused = true)]
async fn block_size_and_st_min_are_honoured_on_the_bus() {
    let bus = VirtualBus::new("pacing");
    let mut monitor = bus.node().subscribe(&[Filter::all(false)]);
    let mut client = tester(&bus.node(), Config::default());
    let ecu_config = Config {
        block_size: 2,
        st_min: StMin(10),
        ..Config::default()
    };
    let mut server = ecu(&bus.node(), ecu_config);
    // 6 in the FF + 6 CFs of 7 = 48 bytes: three blocks of two.
    let request = payload(48);
    let server_task = tokio::spawn(async move { bounded(server.recv()).await });
    bounded(client.send(&request)).await.unwrap();
    assert_eq!(server_task.await.unwrap().unwrap().payload, request);

    let mut trace = Vec::new();
    while let Ok(Ok(f)) = timeout(Duration::from_millis(1), monitor.recv()).await {
        trace.push((Instant::now(), f));
    }
    // Order on the bus: FF, FC, CF, CF, FC, CF, CF, FC, CF, CF.
    let kinds: Vec<(CanId, u8)> = trace
        .iter()
        .map(|(_, f)| (f.id(), f.data()[0] >> 4))
        .collect();
    let expected = [
        (REQ, 1),
        (RESP, 3),
        (REQ, 2),
        (REQ, 2),
        (RESP, 3),
        (REQ, 2),
        (REQ, 2),
        (RESP, 3),
        (REQ, 2),
        (REQ, 2),
    ];
    assert_eq!(kinds, expected);
    assert_eq!(&trace[1].1.data()[..3], &[0x30, 2, 10], "the ECU's FC");
}

/// STmin measured on the bus: subscribe as the frames happen so each gets its arrival time.
#[tokio::test(start_paused = true)]
async fn consecutive_frames_are_at_least_st_min_apart() {
    let bus = VirtualBus::new("stmin");
    let mut monitor = bus.node().subscribe(&[Filter::exact(REQ)]);
    let mut client = tester(&bus.node(), Config::default());
    let ecu_config = Config {
        st_min: StMin(25),
        ..Config::default()
    };
    let mut server = ecu(&bus.node(), ecu_config);
    let request = payload(6 + 7 * 4);
    let stamps = tokio::spawn(async move {
        let mut stamps = Vec::new();
        while stamps.len() < 5 {
            let f = monitor.recv().await.unwrap();
            stamps.push((Instant::now(), f.data()[0] >> 4));
        }
        stamps
    });
    let server_task = tokio::spawn(async move { bounded(server.recv()).await });
    let t0 = Instant::now();
    bounded(client.send(&request)).await.unwrap();
    assert_eq!(server_task.await.unwrap().unwrap().payload, request);
    let stamps = stamps.await.unwrap();
    let cfs: Vec<Instant> = stamps
        .iter()
        .filter(|(_, k)| *k == 2)
        .map(|(t, _)| *t)
        .collect();
    assert_eq!(cfs.len(), 4);
    for pair in cfs.windows(2) {
        assert!(pair[1] - pair[0] >= Duration::from_millis(25), "{pair:?}");
    }
    // 3 gaps of 25 ms, and not much more.
    assert!(Instant::now() - t0 < Duration::from_millis(100));
}

#[tokio::test(start_paused = true)]
async fn no_flow_control_times_out_after_n_bs() {
    let bus = VirtualBus::new("n_bs");
    let mut client = tester(&bus.node(), Config::default());
    let t0 = Instant::now();
    let err = bounded(client.send(&payload(20))).await.unwrap_err();
    assert_eq!(
        err,
        IsoTpTransferError::Protocol {
            peer: RESP,
            error: timeout_err(Timer::NBs)
        }
    );
    assert_eq!(Instant::now() - t0, Duration::from_millis(1000));
    assert_eq!(
        err.to_string(),
        "ISO-TP with 7E8: N_Bs (waiting for flow control) timed out after 1000 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn missing_consecutive_frame_times_out_after_n_cr_then_recovers() {
    let bus = VirtualBus::new("n_cr");
    let mut client = tester(&bus.node(), Config::default());
    let raw = bus.node();
    let mut fcs = raw.subscribe(&[Filter::exact(REQ)]);
    let recv = tokio::spawn(async move {
        let first = bounded(client.recv()).await;
        let second = bounded(client.recv()).await;
        (first, second)
    });
    tokio::task::yield_now().await;
    raw.send(frame(
        RESP,
        &[0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x32, 0x33],
    ))
    .await
    .unwrap();
    assert_eq!(
        fcs.recv().await.unwrap().data(),
        &[0x30, 0, 0, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    raw.send(frame(RESP, &[0x03, 0x41, 0x0D, 0x32]))
        .await
        .unwrap();
    let (first, second) = recv.await.unwrap();
    assert_eq!(protocol_error(first), timeout_err(Timer::NCr));
    assert_eq!(second.unwrap().payload, vec![0x41, 0x0D, 0x32]);
}

#[tokio::test(start_paused = true)]
async fn stray_frames_are_ignored() {
    let bus = VirtualBus::new("stray");
    let mut client = tester(&bus.node(), Config::default());
    let raw = bus.node();
    let recv = tokio::spawn(async move { bounded(client.recv()).await });
    tokio::task::yield_now().await;
    for junk in [
        &[0x21, 1, 2, 3][..], // CF with nothing in progress
        &[0x30, 0, 0],        // FC while not sending
        &[],                  // empty
        &[0x00, 1],           // SF_DL 0
        &[0x45, 0, 0],        // unknown PCI type
        &[0x10, 0x03, 1],     // FF announcing 3 bytes
    ] {
        raw.send(frame(RESP, junk)).await.unwrap();
    }
    raw.send(frame(RESP, &[0x02, 0x7E, 0x00])).await.unwrap();
    assert_eq!(recv.await.unwrap().unwrap().payload, vec![0x7E, 0x00]);
}

/// What the meddler does to frames going from one bus to the other.
#[derive(Clone, Copy)]
enum Meddle {
    /// Drop the n-th frame (0-based) with this id.
    Drop(CanId, usize),
    /// Swap the n-th and (n+1)-th frames with this id.
    Swap(CanId, usize),
}

/// Joins two buses: every frame heard on one is forwarded to the other, except as `meddle`
/// says.
fn meddler(a: &VirtualBus, b: &VirtualBus, meddle: Meddle) {
    // One node per bus, used both to listen and to send: a node does not hear itself, so
    // forwarded frames do not loop back.
    let (node_a, node_b) = (a.node(), b.node());
    let (sub_a, sub_b) = (
        node_a.subscribe(&[Filter::all(false)]),
        node_b.subscribe(&[Filter::all(false)]),
    );
    for (mut sub, to) in [(sub_a, node_b), (sub_b, node_a)] {
        tokio::spawn(async move {
            let mut count = std::collections::HashMap::<CanId, usize>::new();
            let mut held: Option<CanFrame> = None;
            while let Ok(f) = sub.recv().await {
                let n = *count.entry(f.id()).and_modify(|n| *n += 1).or_insert(0);
                match meddle {
                    Meddle::Drop(id, k) if id == f.id() && n == k => continue,
                    Meddle::Swap(id, k) if id == f.id() && n == k => {
                        held = Some(f);
                        continue;
                    }
                    _ => {}
                }
                if to.send(f).await.is_err() {
                    break;
                }
                if let Some(h) = held.take() {
                    let _ = to.send(h).await;
                }
            }
        });
    }
}

/// Client on one bus, ECU on the other, joined by a meddler. The client sends `len` bytes;
/// returns what the ECU's first two `recv`s gave, after the client sends a single frame too.
async fn through_meddler(
    name: &str,
    meddle: Meddle,
    len: usize,
) -> (
    Result<(), IsoTpTransferError>,
    Result<Received, IsoTpTransferError>,
    Result<Received, IsoTpTransferError>,
) {
    let a = VirtualBus::new(&format!("{name}-a"));
    let b = VirtualBus::new(&format!("{name}-b"));
    meddler(&a, &b, meddle);
    let mut client = tester(&a.node(), Config::default());
    let mut server = ecu(&b.node(), Config::default());
    let server_task = tokio::spawn(async move {
        let first = bounded(server.recv()).await;
        let second = bounded(server.recv()).await;
        (first, second)
    });
    tokio::task::yield_now().await;
    let sent = bounded(client.send(&payload(len))).await;
    // Let the ECU give up on anything half received before the next message.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bounded(client.send(&[0x01, 0x00]))
        .await
        .expect("single frame sent");
    let (first, second) = server_task.await.expect("ECU task");
    (sent, first, second)
}

#[tokio::test(start_paused = true)]
async fn a_lost_consecutive_frame_is_a_sequence_error() {
    // Frame 0 on 7E0 is the FF; frame 2 the second CF.
    let (sent, first, second) = through_meddler("lost-cf", Meddle::Drop(REQ, 2), 40).await;
    sent.unwrap();
    assert_eq!(
        protocol_error(first),
        IsoTpError::WrongSequence {
            expected: 2,
            got: 3
        }
    );
    assert_eq!(second.unwrap().payload, vec![0x01, 0x00]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_last_frame_is_an_n_cr_timeout() {
    // 20 bytes: FF + 2 CFs; drop the last.
    let (sent, first, second) = through_meddler("lost-last", Meddle::Drop(REQ, 2), 20).await;
    sent.unwrap();
    assert_eq!(protocol_error(first), timeout_err(Timer::NCr));
    assert_eq!(second.unwrap().payload, vec![0x01, 0x00]);
}

#[tokio::test(start_paused = true)]
async fn a_lost_flow_control_is_an_n_bs_timeout_at_the_sender() {
    let (sent, first, second) = through_meddler("lost-fc", Meddle::Drop(RESP, 0), 20).await;
    assert!(matches!(
        sent,
        Err(IsoTpTransferError::Protocol { error, .. }) if error == timeout_err(Timer::NBs)
    ));
    assert_eq!(protocol_error(first), timeout_err(Timer::NCr));
    assert_eq!(second.unwrap().payload, vec![0x01, 0x00]);
}

#[tokio::test(start_paused = true)]
async fn reordered_frames_are_a_sequence_error() {
    let (sent, first, second) = through_meddler("swap", Meddle::Swap(REQ, 1), 40).await;
    sent.unwrap();
    assert_eq!(
        protocol_error(first),
        IsoTpError::WrongSequence {
            expected: 1,
            got: 2
        }
    );
    assert_eq!(second.unwrap().payload, vec![0x01, 0x00]);
}
