//! The diagnostic client on the virtual bus against small scripted ECUs: functional requests
//! answered by several ECUs at once (multi-frame too), NRC 0x78 then the answer, an ECU that
//! answers with the wrong length, silent ECUs, bounded concurrency and the helpers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use telltale_can::client::can::CanClient;
use telltale_can::client::{ClientOptions, DiagClient, DiagError, DtcKind, Target, Trouble};
use telltale_can::isotp::{IsoTpAddresses, IsoTpSocket};
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{CanBus, Filter};
use telltale_obd::EcuId;
use telltale_obd::isotp::Config;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::service::{Request, Response, VehicleInfo};
use telltale_obd::{CanId, nrc::Nrc};
use tokio::time::{Instant, timeout};

/// What a scripted ECU does with a request: wait, then send each answer.
#[derive(Debug, Clone)]
enum Step {
    Wait(u64),
    Send(Vec<u8>),
    /// Block the runtime's thread (not a tokio sleep): on a current-thread runtime nothing
    /// else runs meanwhile, as when a loaded machine deschedules the tester.
    Block(u64),
}

type Script = Arc<dyn Fn(&[u8]) -> Vec<Step> + Send + Sync>;

/// An ECU on `bus` answering on `channel` (and on `7DF`) as `script` says. Every request it
/// received is recorded in the returned log.
fn ecu(bus: &CanBus, channel: Channel, script: Script) -> Arc<Mutex<Vec<Vec<u8>>>> {
    let functional = if channel.request.is_extended() {
        CanId::Extended(0x18DB_33F1)
    } else {
        CanId::Standard(0x7DF)
    };
    let addrs = IsoTpAddresses {
        tx: channel.response,
        rx: channel.request,
        functional_rx: Some(functional),
    };
    let mut sock = IsoTpSocket::new(bus, addrs, Config::default());
    let log = Arc::new(Mutex::new(Vec::new()));
    let seen = log.clone();
    tokio::spawn(async move {
        while let Ok(req) = sock.recv().await {
            seen.lock().expect("log lock").push(req.payload.clone());
            for step in script(&req.payload) {
                match step {
                    Step::Wait(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
                    Step::Block(ms) => std::thread::sleep(Duration::from_millis(ms)),
                    Step::Send(p) => {
                        if sock.send(&p).await.is_err() {
                            break;
                        }
                    }
                }
            }
        }
    });
    log
}

fn ch(i: u8) -> Channel {
    Channel::obd_11bit(i).expect("ECU index 0..=7")
}

fn vin_answer(vin: &str) -> Vec<u8> {
    let mut p = vec![0x49, 0x02, 0x01];
    p.extend_from_slice(vin.as_bytes());
    p
}

/// A small engine ECU: PIDs 00 (bitmap: 01-20 has 05, 0C, 0D, 20), 20 (bitmap: 40), 40
/// (bitmap: none), 05, 0C, 0D; VIN; stored DTC P0301; clear refused with NRC 0x22.
fn engine(req: &[u8]) -> Vec<Step> {
    let answer = match req {
        [0x01, pids @ ..] => {
            let mut out = vec![0x41];
            for &pid in pids {
                let data: &[u8] = match pid {
                    0x00 => &[0x08, 0x18, 0x00, 0x01],
                    0x20 => &[0x00, 0x00, 0x00, 0x01],
                    0x40 => &[0x00, 0x00, 0x00, 0x00],
                    0x05 => &[0x7B],
                    0x0C => &[0x1A, 0xF8],
                    0x0D => &[0x3C],
                    _ => continue,
                };
                out.push(pid);
                out.extend_from_slice(data);
            }
            if out.len() == 1 {
                return vec![];
            }
            out
        }
        [0x09, 0x02] => vin_answer("1G1JC5444R7252367"),
        [0x03] => vec![0x43, 0x01, 0x03, 0x01],
        [0x04] => vec![0x7F, 0x04, 0x22],
        // Freeze frame 0 stored by P0301, rpm 1726.
        [0x02, pairs @ ..] => {
            let mut out = vec![0x42];
            for pair in pairs.chunks(2) {
                match pair {
                    [0x02, 0x00] => out.extend_from_slice(&[0x02, 0x00, 0x03, 0x01]),
                    [0x0C, 0x00] => out.extend_from_slice(&[0x0C, 0x00, 0x1A, 0xF8]),
                    _ => {}
                }
            }
            out
        }
        // UDS 19 02: P0301 with failure type 00, status 2F.
        [0x19, 0x02, _] => vec![0x59, 0x02, 0xFF, 0x03, 0x01, 0x00, 0x2F],
        _ => vec![0x7F, req.first().copied().unwrap_or(0), 0x11],
    };
    vec![Step::Send(answer)]
}

/// A transmission ECU: answers 0100 and 0902 (with its own VIN, as some do), no DTCs.
fn transmission(req: &[u8]) -> Vec<Step> {
    let answer = match req {
        [0x01, 0x00] => vec![0x41, 0x00, 0x80, 0x00, 0x00, 0x00],
        [0x09, 0x02] => vin_answer("1G1JC5444R7252367"),
        [0x03] => vec![0x43, 0x00],
        [0x04] => vec![0x44],
        _ => return vec![],
    };
    vec![Step::Send(answer)]
}

fn client(bus: &VirtualBus, opts: ClientOptions) -> DiagClient {
    DiagClient::Can(CanClient::new(bus.node(), opts))
}

async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
    timeout(Duration::from_secs(60), f)
        .await
        .expect("client hung")
}

#[tokio::test(start_paused = true)]
async fn functional_requests_collect_every_ecu_with_multi_frame_answers() {
    let bus = VirtualBus::new("multi");
    ecu(&bus.node(), ch(0), Arc::new(engine));
    ecu(&bus.node(), ch(1), Arc::new(transmission));
    let mut monitor = bus.node().subscribe(&[Filter::all(false)]);
    let c = client(&bus, ClientOptions::default());

    let answers = bounded(c.request(Target::Functional, &Request::VehicleInfo { infotype: 2 }))
        .await
        .unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[0].ecu, CanId::Standard(0x7E8));
    assert_eq!(answers[1].ecu, CanId::Standard(0x7E9));
    for a in &answers {
        let Response::VehicleInfo(VehicleInfo::Vin(vin)) = &a.response else {
            panic!("{a:?}");
        };
        assert_eq!(vin.to_string(), "1G1JC5444R7252367");
    }
    // Both ECUs sent first frames at once; each got its flow control on its request id.
    let mut fcs = Vec::new();
    while let Ok(Ok(f)) = timeout(Duration::from_millis(1), monitor.recv()).await {
        if f.data()[0] >> 4 == 3 {
            fcs.push(f.id());
        }
    }
    fcs.sort();
    assert_eq!(fcs, [CanId::Standard(0x7E0), CanId::Standard(0x7E1)]);

    assert_eq!(
        bounded(c.read_vin()).await.unwrap().to_string(),
        "1G1JC5444R7252367"
    );
}

#[tokio::test(start_paused = true)]
async fn response_pending_extends_the_wait_to_p2_star() {
    let bus = VirtualBus::new("pending");
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|req: &[u8]| match req {
            [0x03] => vec![
                Step::Send(vec![0x7F, 0x03, 0x78]),
                Step::Wait(2000),
                Step::Send(vec![0x7F, 0x03, 0x78]),
                Step::Wait(2000),
                Step::Send(vec![0x43, 0x01, 0x04, 0x20]),
            ],
            [0x07] => vec![Step::Send(vec![0x7F, 0x07, 0x78])],
            _ => vec![],
        }),
    );
    let c = client(&bus, ClientOptions::default());
    let t0 = Instant::now();
    let answers = bounded(c.request(Target::Physical(ch(0)), &Request::StoredDtcs))
        .await
        .unwrap();
    assert_eq!(Instant::now() - t0, Duration::from_millis(4000));
    let Response::Dtcs { dtcs, .. } = &answers[0].response else {
        panic!("{answers:?}");
    };
    assert_eq!(dtcs[0].to_string(), "P0420");

    // Functionally too.
    let answers = bounded(c.request(Target::Functional, &Request::StoredDtcs))
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);

    // Pending, then nothing: P2* runs out.
    let t0 = Instant::now();
    let err = bounded(c.request(Target::Physical(ch(0)), &Request::PendingDtcs))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DiagError::PendingTimeout {
            ecu: EcuId::Can(CanId::Standard(0x7E8)),
            after: Duration::from_millis(5000)
        }
    );
    assert_eq!(Instant::now() - t0, Duration::from_millis(5000));
}

#[tokio::test(start_paused = true)]
async fn a_pid_cut_short_is_reported_as_damaged_and_counted() {
    let bus = VirtualBus::new("wrong-length");
    // 0C needs two bytes; this ECU sends one.
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| vec![Step::Send(vec![0x41, 0x0C, 0x1A])]),
    );
    let c = client(&bus, ClientOptions::default());
    let req = Request::current_data(&[0x0C]).unwrap();
    let answers = bounded(c.request(Target::Physical(ch(0)), &req))
        .await
        .unwrap();
    assert_eq!(answers.len(), 1);
    assert_eq!(answers[0].ecu, CanId::Standard(0x7E8));
    assert_eq!(answers[0].response, Response::CurrentData(vec![]));
    assert_eq!(answers[0].damaged.len(), 1);
    assert_eq!(answers[0].damaged[0].pid, Some(0x0C));
    assert_eq!(answers[0].damaged[0].bytes, vec![0x0C, 0x1A]);

    // Functionally, the good ECU's answer comes through beside the damaged one.
    ecu(&bus.node(), ch(1), Arc::new(engine));
    let answers = bounded(c.request(Target::Functional, &req)).await.unwrap();
    assert_eq!(answers.len(), 2);
    assert_eq!(answers[1].ecu, CanId::Standard(0x7E9));
    assert!(answers[1].damaged.is_empty());
    assert!(matches!(&answers[1].response, Response::CurrentData(d) if d[0].pid == 0x0C));
    // Counted twice, by kind.
    assert_eq!(
        c.troubles().counts().into_iter().collect::<Vec<_>>(),
        vec![(Trouble::DamagedPid, 2)]
    );
}

#[tokio::test(start_paused = true)]
async fn an_undecodable_answer_is_an_error_naming_the_ecu() {
    let bus = VirtualBus::new("undecodable");
    // A DTC count of two with one code after it.
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| vec![Step::Send(vec![0x43, 0x02, 0x01, 0x33])]),
    );
    let c = client(&bus, ClientOptions::default());
    let err = bounded(c.request(Target::Physical(ch(0)), &Request::StoredDtcs))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, DiagError::Decode { ecu, payload, .. } if *ecu == CanId::Standard(0x7E8) && payload == &[0x43, 0x02, 0x01, 0x33]),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("ECU 7E8: undecodable answer 43 02 01 33"),
        "{err}"
    );
    assert_eq!(
        c.troubles().counts().into_iter().collect::<Vec<_>>(),
        vec![(Trouble::DtcCount, 1)]
    );
}

#[tokio::test(start_paused = true)]
async fn silence_is_a_timeout_after_p2() {
    let bus = VirtualBus::new("silence");
    ecu(&bus.node(), ch(0), Arc::new(|_: &[u8]| vec![]));
    let c = client(&bus, ClientOptions::default());
    let t0 = Instant::now();
    let err = bounded(c.request(Target::Physical(ch(0)), &Request::StoredDtcs))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        DiagError::NoResponse {
            target: Target::Physical(ch(0)),
            after: Duration::from_millis(50)
        }
    );
    assert!(err.is_silence());
    assert_eq!(Instant::now() - t0, Duration::from_millis(50));
    let err = bounded(c.request(Target::Functional, &Request::StoredDtcs))
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        DiagError::NoResponse {
            target: Target::Functional,
            ..
        }
    ));
    // An ECU that answers after P2 is too late.
    let bus = VirtualBus::new("late");
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| vec![Step::Wait(60), Step::Send(vec![0x43, 0x00])]),
    );
    let c = client(&bus, ClientOptions::default());
    assert!(
        bounded(c.request(Target::Physical(ch(0)), &Request::StoredDtcs))
            .await
            .unwrap_err()
            .is_silence()
    );
}

/// Real time on a current-thread runtime: the ECU answers 10 ms before P2 and then keeps the
/// thread for 30 ms, so the client's task next runs with its answer received *and* P2 over.
/// The answer counts (it once did only when `select!` happened to poll the frame first).
#[tokio::test]
async fn an_answer_received_before_p2_counts_when_the_client_wakes_late() {
    let bus = VirtualBus::new("late-wakeup");
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| {
            vec![
                Step::Wait(40),
                Step::Send(vec![0x43, 0x01, 0x03, 0x01]),
                Step::Block(30),
            ]
        }),
    );
    let c = client(&bus, ClientOptions::default());
    for round in 0..12 {
        for target in [Target::Functional, Target::Physical(ch(0))] {
            let t0 = Instant::now();
            let answers = bounded(c.request(target, &Request::StoredDtcs))
                .await
                .unwrap_or_else(|e| panic!("round {round}, {target}: {e}"));
            assert!(
                Instant::now() - t0 >= Duration::from_millis(50),
                "P2 passed"
            );
            assert_eq!(answers.len(), 1, "round {round}, {target}");
            assert_eq!(answers[0].ecu, CanId::Standard(0x7E8));
        }
    }
}

/// An answer for another service (a late answer to an earlier request) is not taken for the
/// answer, does not fail the request, and the real answer after it is returned.
#[tokio::test(start_paused = true)]
async fn a_late_answer_to_an_earlier_request_is_ignored() {
    let bus = VirtualBus::new("stale");
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| {
            vec![
                Step::Send(vec![0x43, 0x00]),
                Step::Wait(5),
                Step::Send(vec![0x47, 0x01, 0x04, 0x20]),
            ]
        }),
    );
    ecu(
        &bus.node(),
        ch(1),
        Arc::new(|_: &[u8]| vec![Step::Send(vec![0x47, 0x00])]),
    );
    let c = client(&bus, ClientOptions::default());
    for target in [Target::Physical(ch(0)), Target::Functional] {
        let answers = bounded(c.request(target, &Request::PendingDtcs))
            .await
            .unwrap_or_else(|e| panic!("{target}: {e}"));
        let engine = answers
            .iter()
            .find(|a| a.ecu == CanId::Standard(0x7E8))
            .unwrap_or_else(|| panic!("{target}: no engine answer in {answers:?}"));
        let Response::Dtcs {
            service: 0x07,
            dtcs,
        } = &engine.response
        else {
            panic!("{target}: {:?}", engine.response);
        };
        let codes: Vec<String> = dtcs.iter().map(ToString::to_string).collect();
        assert_eq!(codes, ["P0420"], "{target}");
    }
    // Only the stale answer: silence, not a wrong-service error.
    let bus = VirtualBus::new("stale-only");
    ecu(
        &bus.node(),
        ch(0),
        Arc::new(|_: &[u8]| vec![Step::Send(vec![0x43, 0x00])]),
    );
    let c = client(&bus, ClientOptions::default());
    for target in [Target::Physical(ch(0)), Target::Functional] {
        let err = bounded(c.request(target, &Request::PendingDtcs))
            .await
            .unwrap_err();
        assert!(err.is_silence(), "{target}: {err}");
    }
}

#[tokio::test(start_paused = true)]
async fn negative_answers_are_answers() {
    let bus = VirtualBus::new("negative");
    ecu(&bus.node(), ch(0), Arc::new(engine));
    ecu(&bus.node(), ch(1), Arc::new(transmission));
    let c = client(&bus, ClientOptions::default());
    let answers = bounded(c.clear_dtcs(Target::Functional)).await.unwrap();
    assert_eq!(answers.len(), 2);
    let Response::Negative(n) = &answers[0].response else {
        panic!("{answers:?}");
    };
    assert_eq!(n.nrc, Nrc::CONDITIONS_NOT_CORRECT);
    assert_eq!(answers[1].response, Response::ClearDtcs);
}

#[tokio::test(start_paused = true)]
async fn helpers_batch_pids_and_walk_the_bitmaps() {
    let bus = VirtualBus::new("helpers");
    let log = ecu(&bus.node(), ch(0), Arc::new(engine));
    ecu(&bus.node(), ch(1), Arc::new(transmission));
    let c = client(&bus, ClientOptions::default());

    let pids = [0x05, 0x0C, 0x0D, 0x10, 0x11, 0x0F, 0x2F, 0x46];
    let values = bounded(c.read_pids(Target::Physical(ch(0)), &pids))
        .await
        .unwrap();
    let got: Vec<u8> = values[&EcuId::Can(CanId::Standard(0x7E8))]
        .iter()
        .map(|d| d.pid)
        .collect();
    assert_eq!(got, [0x05, 0x0C, 0x0D]);
    let rpm = &values[&EcuId::Can(CanId::Standard(0x7E8))][1].readings[0];
    assert_eq!(rpm.to_string(), "Engine speed: 1726 rpm");
    // Eight PIDs: two requests, six then two.
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen[0], [0x01, 0x05, 0x0C, 0x0D, 0x10, 0x11, 0x0F]);
    assert_eq!(seen[1], [0x01, 0x2F, 0x46]);

    let ecus = bounded(c.discover()).await.unwrap();
    assert_eq!(ecus.len(), 2);
    let engine_pids: Vec<u8> = ecus[0].supported_pids.iter().collect();
    assert_eq!(engine_pids, [0x05, 0x0C, 0x0D, 0x20, 0x40]);
    let trans_pids: Vec<u8> = ecus[1].supported_pids.iter().collect();
    assert_eq!(trans_pids, [0x01]);
    // The engine was asked 01 20 and 01 40 physically after the functional 01 00.
    let seen = log.lock().unwrap().clone();
    assert_eq!(
        seen[2..],
        [vec![0x01, 0x00], vec![0x01, 0x20], vec![0x01, 0x40]]
    );

    let dtcs = bounded(c.read_dtcs(DtcKind::Stored)).await.unwrap();
    assert_eq!(
        dtcs[&EcuId::Can(CanId::Standard(0x7E8))][0].to_string(),
        "P0301"
    );
    assert!(dtcs[&EcuId::Can(CanId::Standard(0x7E9))].is_empty());

    let frames = bounded(c.read_freeze_frame(Target::Physical(ch(0)), 0, &[0x02, 0x0C]))
        .await
        .unwrap();
    let frame = &frames[&EcuId::Can(CanId::Standard(0x7E8))];
    assert_eq!(
        frame[0].freeze_frame_trigger().map(|d| d.to_string()),
        Some("P0301".to_owned())
    );
    assert_eq!(frame[1].readings[0].to_string(), "Engine speed: 1726 rpm");

    let records = bounded(c.read_uds_dtcs(ch(0), telltale_obd::uds::DtcStatus(0x08)))
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].dtc.code().to_string(), "P0301");
    assert!(records[0].status.confirmed_dtc());
    // The transmission does not speak UDS and stays silent.
    let err = bounded(c.read_uds_dtcs(ch(1), telltale_obd::uds::DtcStatus(0x08)))
        .await
        .unwrap_err();
    assert!(err.is_silence(), "{err}");
}

#[tokio::test(start_paused = true)]
async fn concurrency_is_bounded_per_link_and_per_ecu() {
    let bus = VirtualBus::new("concurrency");
    let slow = |req: &[u8]| {
        let mut answer = vec![0x41];
        answer.extend_from_slice(&req[1..]);
        answer.push(0x50);
        vec![Step::Wait(10), Step::Send(answer)]
    };
    for i in 0..4 {
        ecu(&bus.node(), ch(i), Arc::new(slow));
    }
    let mut monitor = bus.node().subscribe(&[Filter::all(false)]);
    let opts = ClientOptions {
        max_in_flight: 2,
        ..ClientOptions::default()
    };
    let c = client(&bus, opts);
    let mut tasks = Vec::new();
    for n in 0..16u8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            let req = Request::current_data(&[0x0D]).unwrap();
            c.request(Target::Physical(ch(n % 4)), &req).await
        }));
    }
    for t in tasks {
        bounded(t).await.unwrap().unwrap();
    }
    // Replay the bus: requests 7E0..7E3, answers 7E8..7EB.
    let mut outstanding = [false; 4];
    let mut max_in_flight = 0;
    let mut requests = 0;
    while let Ok(Ok(f)) = timeout(Duration::from_millis(1), monitor.recv()).await {
        let raw = f.id().raw();
        let (i, is_request) = if raw < 0x7E8 {
            (raw - 0x7E0, true)
        } else {
            (raw - 0x7E8, false)
        };
        let slot = &mut outstanding[i as usize];
        assert_ne!(
            *slot, is_request,
            "ECU {i}: two requests at once, or a stray answer"
        );
        *slot = is_request;
        requests += usize::from(is_request);
        max_in_flight = max_in_flight.max(outstanding.iter().filter(|&&o| o).count());
    }
    assert_eq!(requests, 16);
    assert_eq!(max_in_flight, 2);
}

#[tokio::test(start_paused = true)]
async fn twenty_nine_bit_functional_requests() {
    let bus = VirtualBus::new("29bit");
    let channel = Channel::obd_29bit(0x10).unwrap();
    ecu(&bus.node(), channel, Arc::new(engine));
    let opts = ClientOptions {
        extended_ids: true,
        ..ClientOptions::default()
    };
    let c = client(&bus, opts);
    let vin = bounded(c.read_vin()).await.unwrap();
    assert_eq!(vin.to_string(), "1G1JC5444R7252367");
    let ecus = bounded(c.discover()).await.unwrap();
    assert_eq!(ecus[0].ecu, CanId::Extended(0x18DA_F110));
    assert_eq!(ecus[0].target, Some(Target::Physical(channel)));
}
