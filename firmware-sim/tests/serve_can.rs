//! A vehicle served on the in-process bus, queried with raw ISO-TP the way a tester does:
//! multi-frame VIN with flow control, DTCs once the scenario has played, the freeze frame,
//! clearing with response-pending, functional requests, the 29-bit ECU. Tokio time is paused,
//! so minutes of scenario take no wall time.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_sim::serve::serve_can;
use firmware_sim::{Vehicle, load_scenario};
use telltale_can::isotp::{IsoTpAddresses, IsoTpSocket};
use telltale_can::virtual_bus::VirtualBus;
use telltale_obd::CanId;
use telltale_obd::isotp::Config;
use telltale_obd::service::Response;
use telltale_obd::uds::ReadDtcResponse;
use tokio::time::{Instant, timeout};

struct Tester {
    socket: IsoTpSocket,
}

impl Tester {
    fn new(bus: &VirtualBus, tx: CanId, rx: CanId) -> Tester {
        Tester {
            socket: IsoTpSocket::new(
                &bus.node(),
                IsoTpAddresses {
                    tx,
                    rx,
                    functional_rx: None,
                },
                Config::default(),
            ),
        }
    }

    fn engine(bus: &VirtualBus) -> Tester {
        Tester::new(bus, CanId::Standard(0x7E0), CanId::Standard(0x7E8))
    }

    /// Sends a request and returns the final answer (skipping response-pending), with the time
    /// it took.
    async fn ask(&mut self, request: &[u8]) -> (Vec<u8>, Duration) {
        let sent = Instant::now();
        self.socket.send(request).await.expect("request sent");
        loop {
            let got = timeout(Duration::from_secs(5), self.socket.recv())
                .await
                .expect("ECU answered within P2*")
                .expect("ISO-TP reception");
            if got.payload.len() == 3 && got.payload[0] == 0x7F && got.payload[2] == 0x78 {
                continue;
            }
            return (got.payload, sent.elapsed());
        }
    }

    async fn parsed(&mut self, request: &[u8]) -> Response {
        let (payload, _) = self.ask(request).await;
        Response::parse(&payload).expect("answer parses")
    }

    async fn codes(&mut self, service: u8) -> Vec<String> {
        match self.parsed(&[service]).await {
            Response::Dtcs { dtcs, .. } => dtcs.iter().map(ToString::to_string).collect(),
            other => panic!("{other:?}"),
        }
    }
}

fn start(
    scenario: &str,
) -> (
    VirtualBus,
    Arc<Mutex<Vehicle>>,
    tokio::sync::oneshot::Sender<()>,
) {
    let bus = VirtualBus::new("sim-test");
    let vehicle = Arc::new(Mutex::new(Vehicle::from_scenario(
        &load_scenario(scenario).expect("scenario"),
    )));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(serve_can(vehicle.clone(), bus.node(), async move {
        let _ = stopped.await;
    }));
    (bus, vehicle, stop)
}

#[tokio::test(start_paused = true)]
async fn vin_is_a_multi_frame_answer_within_p2() {
    let (bus, _vehicle, _stop) = start("misfire");
    let mut engine = Tester::engine(&bus);
    tokio::time::sleep(Duration::from_millis(10)).await;
    let (payload, took) = engine.ask(&[0x09, 0x02]).await;
    assert_eq!(&payload[..3], &[0x49, 0x02, 0x01]);
    assert_eq!(&payload[3..], b"1FMCU9GD4KUA37218");
    assert!(took < Duration::from_millis(50), "took {took:?}");
    match Response::parse(&payload).expect("parses") {
        Response::VehicleInfo(info) => assert!(format!("{info:?}").contains("1FMCU9GD4KUA37218")),
        other => panic!("{other:?}"),
    }
    // The transmission has no VIN: out of range, physically.
    let mut tcm = Tester::new(&bus, CanId::Standard(0x7E1), CanId::Standard(0x7E9));
    assert_eq!(tcm.ask(&[0x09, 0x02]).await.0, vec![0x7F, 0x09, 0x31]);
    // Unknown service and bad length.
    assert_eq!(
        engine.ask(&[0x22, 0xF1, 0x90]).await.0,
        vec![0x7F, 0x22, 0x11]
    );
    assert_eq!(
        engine.ask(&[0x01, 1, 2, 3, 4, 5, 6, 7]).await.0,
        vec![0x7F, 0x01, 0x13]
    );
    assert_eq!(engine.ask(&[0x19, 0x55]).await.0, vec![0x7F, 0x19, 0x12]);
}

#[tokio::test(start_paused = true)]
async fn dtcs_freeze_frame_and_clearing_after_the_scenario_time() {
    let (bus, _vehicle, _stop) = start("misfire");
    let mut engine = Tester::engine(&bus);
    // 600 vehicle seconds = 15 s at the default time scale of 40.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(engine.codes(0x03).await, vec!["P0301"]);
    assert_eq!(engine.codes(0x07).await, vec!["P0301"]);
    assert_eq!(engine.codes(0x0A).await, vec!["P0301"]);
    let Response::FreezeFrame(ff) = engine.parsed(&[0x02, 0x02, 0x00, 0x0D, 0x00]).await else {
        panic!("not a freeze frame");
    };
    assert_eq!(
        ff[0]
            .freeze_frame_trigger()
            .map(|d| d.to_string())
            .as_deref(),
        Some("P0301")
    );
    assert_eq!(ff[1].pid, 0x0D);
    // Multi-PID request: six PIDs, one answer.
    let Response::CurrentData(live) = engine
        .parsed(&[0x01, 0x01, 0x0C, 0x0D, 0x05, 0x10, 0x2F])
        .await
    else {
        panic!("not live data");
    };
    assert_eq!(
        live.iter().map(|p| p.pid).collect::<Vec<_>>(),
        vec![0x01, 0x0C, 0x0D, 0x05, 0x10, 0x2F]
    );
    assert_eq!(live[0].data[0], 0x81, "MIL on, one code");
    // UDS view of the same code.
    let (payload, _) = engine.ask(&[0x19, 0x02, 0x08]).await;
    let ReadDtcResponse::DtcsByStatusMask(list) =
        telltale_obd::uds::parse_read_dtc_response(&payload).expect("0x59 parses")
    else {
        panic!("wrong report");
    };
    assert_eq!(list.dtcs.len(), 1);
    assert_eq!(list.dtcs[0].dtc.to_string(), "P0301-00");
    assert!(
        list.dtcs[0].status.confirmed_dtc() && list.dtcs[0].status.warning_indicator_requested()
    );
    let (payload, _) = engine.ask(&[0x19, 0x04, 0x03, 0x01, 0x00, 0xFF]).await;
    assert_eq!(&payload[..6], &[0x59, 0x04, 0x03, 0x01, 0x00, payload[5]]);
    assert_eq!(payload[6], 0x01, "snapshot record 1");

    // Clear: response pending first, then the positive answer.
    engine.socket.send(&[0x04]).await.expect("sent");
    let first = engine.socket.recv().await.expect("pending");
    assert_eq!(first.payload, vec![0x7F, 0x04, 0x78]);
    let second = engine.socket.recv().await.expect("cleared");
    assert_eq!(second.payload, vec![0x44]);
    assert_eq!(engine.codes(0x03).await, Vec::<String>::new());
    assert_eq!(
        engine.codes(0x0A).await,
        vec!["P0301"],
        "permanent survives"
    );
    let Response::CurrentData(status) = engine.parsed(&[0x01, 0x01]).await else {
        panic!("no status");
    };
    assert_eq!(status[0].data[0], 0x00, "MIL off, no codes");
    assert_eq!(
        status[0].data[3], status[0].data[2],
        "readiness reset: all incomplete"
    );
    // The misfire is still there: pending again after a few seconds of driving.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(engine.codes(0x07).await, vec!["P0301"]);
}

#[tokio::test(start_paused = true)]
async fn functional_requests_reach_every_11_bit_ecu_and_unsupported_pids_stay_silent() {
    let (bus, _vehicle, _stop) = start("healthy");
    let node = bus.node();
    let mut functional = IsoTpSocket::new(
        &node,
        IsoTpAddresses {
            tx: CanId::Standard(0x7DF),
            rx: CanId::Standard(0x7FF),
            functional_rx: None,
        },
        Config::default(),
    );
    let mut engine = Tester::engine(&bus);
    let mut tcm = Tester::new(&bus, CanId::Standard(0x7E1), CanId::Standard(0x7E9));
    tokio::time::sleep(Duration::from_secs(2)).await;
    functional.send(&[0x01, 0x00]).await.expect("sent");
    let e = engine.socket.recv().await.expect("engine").payload;
    let t = tcm.socket.recv().await.expect("tcm").payload;
    assert_eq!(&e[..2], &[0x41, 0x00]);
    assert_eq!(&t[..2], &[0x41, 0x00]);
    assert_ne!(e, t, "each ECU its own bitmap");
    // PID 0x5B only the (29-bit) hybrid ECU has: both 11-bit ECUs stay silent functionally...
    functional.send(&[0x01, 0x5B]).await.expect("sent");
    let quiet = timeout(Duration::from_millis(200), engine.socket.recv()).await;
    assert!(quiet.is_err(), "engine answered {quiet:?}");
    // ...and answer out of range physically.
    assert_eq!(engine.ask(&[0x01, 0x5B]).await.0, vec![0x7F, 0x01, 0x31]);
}

#[tokio::test(start_paused = true)]
async fn the_29_bit_ecu_answers_uds_and_obd() {
    let (bus, _vehicle, _stop) = start("hybrid");
    let mut hybrid = Tester::new(
        &bus,
        CanId::Extended(0x18DA_17F1),
        CanId::Extended(0x18DA_F117),
    );
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(hybrid.codes(0x03).await, vec!["P0A80"]);
    let (payload, took) = hybrid.ask(&[0x19, 0x01, 0x08]).await;
    assert_eq!(payload, vec![0x59, 0x01, 0xFF, 0x00, 0x00, 0x01]);
    assert!(
        took >= Duration::from_millis(15),
        "29-bit ECU is the slow one: {took:?}"
    );
    let (payload, _) = hybrid.ask(&[0x09, 0x0A]).await;
    assert_eq!(&payload[3..8], b"HPCM-");
    let (payload, _) = hybrid.ask(&[0x14, 0xFF, 0xFF, 0xFF]).await;
    assert_eq!(payload, vec![0x54]);
    assert_eq!(hybrid.codes(0x03).await, Vec::<String>::new());
}

#[tokio::test(start_paused = true)]
async fn a_fleet_serves_distinct_vehicles_on_their_own_buses() {
    let base = load_scenario("misfire").expect("scenario");
    let fleet = firmware_sim::fleet::build_fleet(&base, 20, true);
    let buses: Vec<VirtualBus> = (0..fleet.len())
        .map(|i| VirtualBus::new(&format!("fleet-{i}")))
        .collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = fleet
        .iter()
        .cloned()
        .zip(buses.iter().map(VirtualBus::node))
        .collect();
    let server = tokio::spawn(firmware_sim::fleet::serve_fleet(served, async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_millis(10)).await;
    let mut vins = Vec::new();
    let mut pending = 0;
    for bus in &buses {
        let mut engine = Tester::engine(bus);
        let (payload, _) = engine.ask(&[0x09, 0x02]).await;
        vins.push(payload[3..].to_vec());
        if !engine.codes(0x07).await.is_empty() {
            pending += 1;
        }
    }
    vins.sort();
    vins.dedup();
    assert_eq!(vins.len(), 20);
    // Staggered: the vehicles that started past the misfire onset already have it pending.
    assert!((5..20).contains(&pending), "{pending} of 20 pending");
    let _ = stop.send(());
    timeout(Duration::from_secs(1), server)
        .await
        .expect("fleet stops at shutdown")
        .expect("no panic");
}
