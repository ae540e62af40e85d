//! The vehicle task against the simulator on the in-process bus, tokio time paused so drive
//! cycles take no wall time. Scenario timelines (vehicle seconds; ÷40 for serving seconds)
//! are in `firmware-sim/README.md`: a drive lasts 12 s of serving time, standing still for
//! its first ~1 s and its last ~1 s.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use firmware_sim::serve::{lock, serve_can};
use firmware_sim::{Vehicle, load_scenario};
use telltale_agent::uplink::Message;
use telltale_agent::vehicle::{
    self, RequestError, SignalSpec, VehicleConfig, VehicleRequest, VehicleState, signals,
};
use telltale_can::client::can::CanClient;
use telltale_can::virtual_bus::VirtualBus;
use telltale_can::{ClientOptions, DiagClient};
use telltale_wire::v1;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

const ECM: u32 = 0x7E8;
const TCM: u32 = 0x7E9;
const HPCM: u32 = 0x18DA_F117;

fn config(signals: Vec<SignalSpec>) -> VehicleConfig {
    VehicleConfig {
        link: "sim:test".into(),
        signals,
        dtc_period: Duration::from_secs(2),
        uds: false,
        max_requests_per_second: 50.0,
        batch_max_samples: 50,
        batch_max_age: Duration::from_secs(5),
        asleep_probe_period: Duration::from_secs(10),
        asleep_after_silences: 3,
    }
}

/// A simulated car being served on a bus, which can be switched off and on again.
struct Car {
    bus: VirtualBus,
    vehicle: Arc<Mutex<Vehicle>>,
    serving: Option<(oneshot::Sender<()>, JoinHandle<()>)>,
    /// Serving-clock origin: when the vehicle's time 0 was.
    start: Instant,
}

impl Car {
    fn new(bus: &VirtualBus, scenario: &str) -> Car {
        let Ok(s) = load_scenario(scenario) else {
            panic!("scenario {scenario}")
        };
        let mut car = Car {
            bus: bus.clone(),
            vehicle: Arc::new(Mutex::new(Vehicle::from_scenario(&s))),
            serving: None,
            start: Instant::now(),
        };
        car.switch_on();
        car
    }

    fn switch_on(&mut self) {
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(serve_can(
            self.vehicle.clone(),
            self.bus.node(),
            async move {
                let _ = stopped.await;
            },
        ));
        self.serving = Some((stop, handle));
    }

    async fn switch_off(&mut self) {
        if let Some((stop, handle)) = self.serving.take() {
            let _ = stop.send(());
            let _ = handle.await;
        }
    }

    fn vin(&self) -> String {
        lock(&self.vehicle).vin().as_str().to_owned()
    }

    fn speed(&self) -> f64 {
        lock(&self.vehicle).model().speed_kmh
    }

    /// Waits until vehicle time `vehicle_s` (serving time; only while switched on).
    async fn at(&self, vehicle_s: f64) {
        let wait = lock(&self.vehicle).serving_time_of(vehicle_s);
        tokio::time::sleep_until(self.start + wait).await;
    }
}

/// The vehicle task running against a bus.
struct Agent {
    out: mpsc::Receiver<Message>,
    /// Messages received while waiting for a command's reply, not yet looked at.
    held: std::collections::VecDeque<Message>,
    requests: mpsc::Sender<VehicleRequest>,
    state: watch::Receiver<VehicleState>,
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

impl Agent {
    fn start(bus: &VirtualBus, extended_ids: bool, config: VehicleConfig) -> Agent {
        let opts = ClientOptions {
            extended_ids,
            ..ClientOptions::default()
        };
        let client = DiagClient::Can(CanClient::new(bus.node(), opts));
        let (out_tx, out) = mpsc::channel(16);
        let (req_tx, req_rx) = mpsc::channel(4);
        let (state_tx, state) = watch::channel(VehicleState::default());
        let cancel = CancellationToken::new();
        let task = tokio::spawn(vehicle::run(
            client,
            config,
            out_tx,
            req_rx,
            state_tx,
            cancel.clone(),
        ));
        Agent {
            out,
            held: Default::default(),
            requests: req_tx,
            state,
            cancel,
            task,
        }
    }

    /// The next message before `until` (virtual time).
    async fn recv_until(&mut self, until: Instant) -> Option<Message> {
        if let Some(m) = self.held.pop_front() {
            return Some(m);
        }
        tokio::time::timeout_at(until, self.out.recv())
            .await
            .ok()
            .flatten()
    }

    /// The next message, waiting at most `within`.
    async fn next(&mut self, within: Duration) -> Option<Message> {
        self.recv_until(Instant::now() + within).await
    }

    /// Every message until `until`.
    async fn collect_until(&mut self, until: Instant) -> Vec<Message> {
        let mut got = Vec::new();
        while let Some(m) = self.recv_until(until).await {
            got.push(m);
        }
        got
    }

    /// The next message of one kind, skipping others, within `within`.
    async fn next_matching<T>(
        &mut self,
        within: Duration,
        mut pick: impl FnMut(Message) -> Option<T>,
    ) -> Option<T> {
        let until = Instant::now() + within;
        while let Some(m) = self.recv_until(until).await {
            if let Some(t) = pick(m) {
                return Some(t);
            }
        }
        None
    }

    async fn ask<T>(
        &mut self,
        make: impl FnOnce(oneshot::Sender<Result<T, RequestError>>) -> VehicleRequest,
    ) -> Result<T, RequestError> {
        let (tx, rx) = oneshot::channel();
        if self.requests.send(make(tx)).await.is_err() {
            panic!("vehicle task gone");
        }
        // Keep draining output meanwhile so back-pressure cannot stall the task.
        let mut rx = rx;
        loop {
            tokio::select! {
                r = &mut rx => match r {
                    Ok(r) => return r,
                    Err(_) => panic!("no reply"),
                },
                m = self.out.recv() => self.held.extend(m),
            }
        }
    }

    async fn wait_state(&mut self, within: Duration, f: impl Fn(&VehicleState) -> bool) -> bool {
        tokio::time::timeout(within, self.state.wait_for(|s| f(s)))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    fn requests_sent(&self) -> u64 {
        self.state.borrow().requests_sent
    }

    async fn stop(self) {
        self.cancel.cancel();
        let _ = self.task.await;
    }
}

fn info(m: Message) -> Option<v1::VehicleInfo> {
    match m {
        Message::Info(i) => Some(i),
        _ => None,
    }
}

fn dtc(m: Message) -> Option<v1::DtcReport> {
    match m {
        Message::Dtc(d) => Some(d),
        _ => None,
    }
}

fn samples(msgs: &[Message]) -> Vec<&v1::Sample> {
    msgs.iter()
        .filter_map(|m| match m {
            Message::Telemetry(t) => Some(t.samples.iter()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn spec(pid: u8, ms: u64) -> SignalSpec {
    let Some(name) = signals::name_for(pid) else {
        panic!("no name for {pid:02X}")
    };
    SignalSpec {
        name,
        pid,
        period: Duration::from_millis(ms),
    }
}

#[tokio::test(start_paused = true)]
async fn discovery_sends_one_info_message() {
    let bus = VirtualBus::new("discovery");
    let car = Car::new(&bus, "healthy");
    let mut agent = Agent::start(&bus, false, config(signals::default_schedule()));
    let Some(first) = agent.next(Duration::from_secs(5)).await else {
        panic!("no message")
    };
    let Some(info) = info(first) else {
        panic!("the first message is not the info")
    };
    assert_eq!(info.vin, car.vin());
    assert!(info.header.is_none(), "the spool writer stamps the header");
    assert_eq!(info.link, "sim:test");
    let ids: Vec<u32> = info.ecus.iter().map(|e| e.can_id).collect();
    assert_eq!(ids, [ECM, TCM]);
    let ecm = &info.ecus[0];
    for pid in [0x0C, 0x0D, 0x05, 0xA6, 0x20, 0x40] {
        assert!(ecm.supported_pids.contains(&pid), "ECM PID {pid:02X}");
    }
    assert!(
        !info.ecus[1].supported_pids.contains(&0x0C),
        "TCM has no rpm"
    );
    assert!(!ecm.calibration_ids.is_empty(), "{ecm:?}");
    assert!(!ecm.cvns.is_empty() && !ecm.name.is_empty(), "{ecm:?}");
    assert_eq!(info.schedule.len(), signals::default_schedule().len());
    // No second info while nothing changes.
    let later = agent
        .collect_until(Instant::now() + Duration::from_secs(20))
        .await;
    assert!(!later.iter().any(|m| matches!(m, Message::Info(_))));
    let state = agent.state.borrow().clone();
    assert!(state.awake);
    assert_eq!(state.vin.as_deref(), Some(car.vin().as_str()));
    assert_eq!(state.ecus, ["7E8", "7E9"]);
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn hybrid_controller_on_29_bit_ids() {
    let bus = VirtualBus::new("hybrid");
    let car = Car::new(&bus, "hybrid");
    let mut agent = Agent::start(&bus, true, config(vec![spec(0x5B, 1000)]));
    let Some(info) = agent.next_matching(Duration::from_secs(5), info).await else {
        panic!("no info")
    };
    // Only the hybrid controller answers 29-bit requests on this car.
    let ids: Vec<u32> = info.ecus.iter().map(|e| e.can_id).collect();
    assert_eq!(ids, [HPCM]);
    assert!(info.ecus[0].supported_pids.contains(&0x5B));
    assert_eq!(
        info.vin,
        "",
        "the VIN lives in the 11-bit engine ECU: {}",
        car.vin()
    );
    let msgs = agent
        .collect_until(Instant::now() + Duration::from_secs(8))
        .await;
    let life: Vec<_> = samples(&msgs)
        .into_iter()
        .filter(|s| s.signal == "Vehicle.OBD.HybridBatteryRemaining")
        .collect();
    assert!(!life.is_empty());
    assert!(
        life.iter()
            .all(|s| s.ecu_can_id == HPCM && (0.0..=100.0).contains(&s.value))
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn telemetry_names_values_and_batches_by_count() {
    let bus = VirtualBus::new("telemetry");
    let _car = Car::new(&bus, "healthy");
    let mut cfg = config(signals::default_schedule());
    cfg.batch_max_samples = 10;
    cfg.batch_max_age = Duration::from_secs(3600);
    let mut agent = Agent::start(&bus, false, cfg);
    let msgs = agent
        .collect_until(Instant::now() + Duration::from_secs(30))
        .await;
    let batches: Vec<&v1::TelemetryBatch> = msgs
        .iter()
        .filter_map(|m| match m {
            Message::Telemetry(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(batches.len() >= 5, "{}", batches.len());
    assert!(batches.iter().all(|b| b.samples.len() == 10));
    assert!(batches.iter().all(|b| b.vin == "2HGFC2F58JH512345"));
    let all = samples(&msgs);
    let of = |name: &str| -> Vec<f64> {
        all.iter()
            .filter(|s| s.signal == name)
            .map(|s| s.value)
            .collect()
    };
    let speed = of("Vehicle.Speed");
    let rpm = of("Vehicle.Powertrain.CombustionEngine.Speed");
    let ect = of("Vehicle.Powertrain.CombustionEngine.ECT");
    assert!(speed.len() >= 20, "1 Hz over 30 s: {}", speed.len());
    assert!(speed.iter().all(|v| (0.0..=200.0).contains(v)));
    assert!(speed.iter().any(|v| *v > 10.0), "the car drives: {speed:?}");
    assert!(rpm.iter().all(|v| (0.0..=8000.0).contains(v)));
    assert!(rpm.iter().any(|v| *v > 500.0), "engine runs: {rpm:?}");
    assert!(ect.iter().all(|v| (-40.0..=130.0).contains(v)));
    assert!(ect.len() < speed.len(), "10 s vs 1 s period");
    for s in &all {
        assert_eq!(s.service, 1);
        assert_eq!(
            s.pid,
            signals::pid_for(&s.signal).map_or(0, u32::from),
            "{}",
            s.signal
        );
        assert!(s.device_unix_ms > 1_600_000_000_000);
    }
    let speeds = all.iter().find(|s| s.signal == "Vehicle.Speed");
    assert_eq!(
        speeds.map(|s| (s.pid, s.ecu_can_id, s.unit.as_str())),
        Some((0x0D, ECM, "km/h"))
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn batches_by_age_and_flushes_on_cancel() {
    let bus = VirtualBus::new("age");
    let _car = Car::new(&bus, "healthy");
    let mut cfg = config(vec![spec(0x0D, 1000)]);
    cfg.batch_max_samples = 1000;
    cfg.batch_max_age = Duration::from_secs(4);
    let mut agent = Agent::start(&bus, false, cfg);
    let mut arrivals = Vec::new();
    let mut sizes = Vec::new();
    let until = Instant::now() + Duration::from_secs(20);
    while let Some(m) = agent.recv_until(until).await {
        if let Message::Telemetry(t) = m {
            arrivals.push(Instant::now());
            sizes.push(t.samples.len());
        }
    }
    assert!(arrivals.len() >= 3, "{arrivals:?}");
    for w in arrivals.windows(2) {
        let gap = w[1] - w[0];
        assert!(
            gap >= Duration::from_millis(3900) && gap <= Duration::from_millis(5100),
            "{gap:?}"
        );
    }
    assert!(sizes.iter().all(|n| (3..=5).contains(n)), "{sizes:?}");
    // Cancel mid-batch: the partial batch still comes out.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    agent.cancel.cancel();
    let mut flushed = 0;
    while let Some(m) = agent.out.recv().await {
        if let Message::Telemetry(t) = m {
            flushed += t.samples.len();
        }
    }
    assert!(flushed >= 1, "partial batch flushed");
    let _ = agent.task.await;
}

#[tokio::test(start_paused = true)]
async fn request_rate_ceiling_holds() {
    let bus = VirtualBus::new("rate");
    let _car = Car::new(&bus, "healthy");
    let mut cfg = config(signals::benchmark_schedule());
    cfg.max_requests_per_second = 2.0;
    let mut agent = Agent::start(&bus, false, cfg);
    // Discovery and the first DTC poll, then steady state.
    let _ = agent
        .collect_until(Instant::now() + Duration::from_secs(15))
        .await;
    let before = agent.requests_sent();
    let window = Duration::from_secs(30);
    let _ = agent.collect_until(Instant::now() + window).await;
    let sent = agent.requests_sent() - before;
    // 20 PIDs at 1 Hz want 4 requests a second plus DTC polls: the ceiling binds.
    assert!(sent <= 2 * 30 + 1, "{sent} requests in 30 s at 2/s");
    assert!(
        sent >= 2 * 30 - 3,
        "the ceiling, not something else, limits: {sent}"
    );
    agent.stop().await;

    // Without a low ceiling the same schedule sends clearly more.
    let bus = VirtualBus::new("rate-free");
    let _car = Car::new(&bus, "healthy");
    let mut agent = Agent::start(&bus, false, config(signals::benchmark_schedule()));
    let _ = agent
        .collect_until(Instant::now() + Duration::from_secs(15))
        .await;
    let before = agent.requests_sent();
    let _ = agent.collect_until(Instant::now() + window).await;
    let sent = agent.requests_sent() - before;
    assert!(sent >= 4 * 30, "{sent}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn catalyst_dtc_reports_in_order() {
    let bus = VirtualBus::new("catalyst");
    let car = Car::new(&bus, "catalyst");
    let mut agent = Agent::start(&bus, false, config(vec![spec(0x0D, 1000)]));
    let mut reports = Vec::new();
    // Confirmed at 768 vehicle s = 19.2 s; allow a few polls more.
    let until = car.start + Duration::from_secs(26);
    while let Some(m) = agent.recv_until(until).await {
        if let Some(r) = dtc(m) {
            reports.push(r);
        }
    }
    let reason = |r: &v1::DtcReport| v1::DtcReportReason::try_from(r.reason).ok();
    let codes = |r: &v1::DtcReport, kind: v1::DtcKind| -> Vec<String> {
        r.ecus
            .iter()
            .filter(|e| e.ecu_can_id == ECM)
            .flat_map(|e| &e.current)
            .filter(|d| d.kind == kind as i32)
            .map(|d| d.code.clone())
            .collect()
    };
    assert!(reports.len() >= 3, "{reports:#?}");
    let startup = &reports[0];
    assert_eq!(reason(startup), Some(v1::DtcReportReason::Startup));
    assert!(
        startup
            .ecus
            .iter()
            .all(|e| e.current.is_empty() && !e.mil_on)
    );
    assert_eq!(startup.vin, car.vin());
    let pending = &reports[1];
    assert_eq!(reason(pending), Some(v1::DtcReportReason::Changed));
    assert_eq!(codes(pending, v1::DtcKind::Pending), ["P0420"]);
    assert!(codes(pending, v1::DtcKind::Stored).is_empty());
    let ecm = pending.ecus.iter().find(|e| e.ecu_can_id == ECM);
    assert_eq!(ecm.map(|e| e.appeared.len()), Some(1));
    assert_eq!(ecm.map(|e| e.mil_on), Some(false));
    let Some(stored) = reports
        .iter()
        .find(|r| codes(r, v1::DtcKind::Stored) == ["P0420"])
    else {
        panic!("never stored: {reports:#?}")
    };
    assert_eq!(reason(stored), Some(v1::DtcReportReason::Changed));
    let Some(ecm) = stored.ecus.iter().find(|e| e.ecu_can_id == ECM) else {
        panic!("no ECM")
    };
    assert!(ecm.mil_on);
    assert!(
        ecm.appeared
            .iter()
            .any(|d| d.code == "P0420" && d.kind == v1::DtcKind::Stored as i32)
    );
    let Some(ff) = &ecm.freeze_frame else {
        panic!("no freeze frame")
    };
    assert_eq!(ff.trigger_code, "P0420");
    assert!(
        ff.values
            .iter()
            .any(|v| v.signal == "Vehicle.Powertrain.CombustionEngine.ECT")
    );
    assert!(stored.distance_since_cleared_km.is_some_and(|d| d > 0.0));
    assert!(stored.warmups_since_cleared.is_some());
    assert!(stored.distance_with_mil_km.is_some());
    assert!(stored.odometer_km.is_some_and(|d| d > 1000.0));
    assert_eq!(
        agent.state.borrow().dtc_reports_made as usize,
        reports.len()
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn uds_codes_carry_their_status() {
    let bus = VirtualBus::new("uds");
    let car = Car::new(&bus, "catalyst");
    let mut cfg = config(vec![]);
    cfg.uds = true;
    let mut agent = Agent::start(&bus, false, cfg);
    car.at(800.0).await;
    let Some(report) = agent
        .next_matching(Duration::from_secs(10), |m| {
            dtc(m).filter(|r| {
                r.ecus.iter().any(|e| {
                    e.current
                        .iter()
                        .any(|d| d.kind == v1::DtcKind::Stored as i32 && d.code == "P0420")
                })
            })
        })
        .await
    else {
        panic!("P0420 never reported stored")
    };
    let Some(uds) = report
        .ecus
        .iter()
        .flat_map(|e| &e.current)
        .find(|d| d.kind == v1::DtcKind::Uds as i32 && d.code == "P0420")
    else {
        panic!("{report:#?}")
    };
    assert_ne!(uds.uds_status & 0x08, 0, "confirmed bit: {uds:?}");
    // Only codes failing now, pending or confirmed: the catalyst car's monitors that have not
    // completed yet (status 0x40, test not completed this cycle) are no faults.
    let not_faults: Vec<&v1::Dtc> = report
        .ecus
        .iter()
        .flat_map(|e| &e.current)
        .filter(|d| d.kind == v1::DtcKind::Uds as i32 && d.uds_status & 0x0D == 0)
        .collect();
    assert!(not_faults.is_empty(), "{not_faults:?}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn ignition_off_sleeps_probes_and_wakes() {
    let bus = VirtualBus::new("ignition");
    let mut car = Car::new(&bus, "healthy");
    let mut cfg = config(signals::default_schedule());
    cfg.asleep_probe_period = Duration::from_secs(10);
    let mut agent = Agent::start(&bus, false, cfg);
    assert!(
        agent
            .next_matching(Duration::from_secs(5), info)
            .await
            .is_some()
    );
    let _ = agent
        .collect_until(Instant::now() + Duration::from_secs(5))
        .await;

    car.switch_off().await;
    assert!(
        agent.wait_state(Duration::from_secs(5), |s| !s.awake).await,
        "asleep after silences"
    );
    assert_eq!(agent.state.borrow().link_state, "asleep");
    let before = agent.requests_sent();
    let samples_before = agent.state.borrow().samples_made;
    let _ = agent
        .collect_until(Instant::now() + Duration::from_secs(60))
        .await;
    let probes = agent.requests_sent() - before;
    assert!((5..=7).contains(&probes), "one probe per 10 s: {probes}");
    assert_eq!(agent.state.borrow().samples_made, samples_before);

    car.switch_on();
    assert!(
        agent.wait_state(Duration::from_secs(11), |s| s.awake).await,
        "awake at the next probe"
    );
    let msgs = agent
        .collect_until(Instant::now() + Duration::from_secs(10))
        .await;
    assert!(
        !msgs.iter().any(|m| matches!(m, Message::Info(_))),
        "same car: no new info"
    );
    assert!(
        agent.state.borrow().samples_made > samples_before,
        "sampling resumed"
    );
    let startup = msgs.iter().find_map(|m| dtc(m.clone()));
    assert_eq!(
        startup.map(|r| r.reason),
        Some(v1::DtcReportReason::Startup as i32),
        "first read after waking"
    );

    // The dongle moves to another car.
    car.switch_off().await;
    assert!(agent.wait_state(Duration::from_secs(5), |s| !s.awake).await);
    let other = Car::new(&bus, "catalyst");
    let Some(info) = agent.next_matching(Duration::from_secs(12), info).await else {
        panic!("no info for the other car")
    };
    assert_eq!(info.vin, other.vin());
    assert_eq!(
        agent.state.borrow().vin.as_deref(),
        Some(other.vin().as_str())
    );
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn commands_read_and_schedule() {
    let bus = VirtualBus::new("commands");
    let _car = Car::new(&bus, "healthy");
    let mut cfg = config(vec![spec(0x0D, 10_000)]);
    // One sample a message, so counting messages over a window counts samples taken in it.
    cfg.batch_max_samples = 1;
    let mut agent = Agent::start(&bus, false, cfg);
    assert!(
        agent
            .next_matching(Duration::from_secs(5), info)
            .await
            .is_some()
    );

    let read = agent
        .ask(|reply| VehicleRequest::ReadPids {
            pids: vec![0x0D, 0x0C],
            reply,
        })
        .await;
    let Ok(read) = read else { panic!("{read:?}") };
    let got: Vec<(u32, u32)> = read.iter().map(|s| (s.ecu_can_id, s.pid)).collect();
    assert!(
        got.contains(&(ECM, 0x0C)) && got.contains(&(ECM, 0x0D)) && got.contains(&(TCM, 0x0D)),
        "{got:?}"
    );
    let bad = agent
        .ask(|reply| VehicleRequest::ReadPids {
            pids: vec![0x20],
            reply,
        })
        .await;
    assert_eq!(
        bad.map_err(|e| e.code),
        Err(v1::CommandError::InvalidArgument)
    );

    let report = agent.ask(|reply| VehicleRequest::ReadDtcs { reply }).await;
    let Ok(report) = report else {
        panic!("{report:?}")
    };
    assert_eq!(report.reason, v1::DtcReportReason::Command as i32);
    assert_eq!(report.ecus.len(), 2);

    let ff = agent
        .ask(|reply| VehicleRequest::ReadFreezeFrame { frame: 0, reply })
        .await;
    assert_eq!(
        ff.map(|f| f.trigger_code),
        Ok(String::new()),
        "healthy car: no frame"
    );

    // A bad entry refuses the whole change.
    let refused = agent
        .ask(|reply| VehicleRequest::SetSchedule {
            signals: vec![
                v1::SignalPeriod {
                    signal: "Vehicle.Speed".into(),
                    pid: 0x0D,
                    period_ms: 500,
                },
                v1::SignalPeriod {
                    signal: String::new(),
                    pid: 0xFF,
                    period_ms: 1000,
                },
            ],
            reply,
        })
        .await;
    assert_eq!(
        refused.map_err(|e| e.code),
        Err(v1::CommandError::InvalidArgument)
    );
    let unknown = agent
        .ask(|reply| VehicleRequest::SetSchedule {
            signals: vec![v1::SignalPeriod {
                signal: "Vehicle.Nothing".into(),
                pid: 0,
                period_ms: 1000,
            }],
            reply,
        })
        .await;
    assert_eq!(
        unknown.map_err(|e| e.code),
        Err(v1::CommandError::InvalidArgument)
    );
    let speed_count = |msgs: &[Message]| {
        samples(msgs)
            .iter()
            .filter(|s| s.signal == "Vehicle.Speed")
            .count()
    };
    let mut cfg_msgs = agent
        .collect_until(Instant::now() + Duration::from_secs(20))
        .await;
    assert!(speed_count(&cfg_msgs) <= 3, "still every 10 s");

    let ok = agent
        .ask(|reply| VehicleRequest::SetSchedule {
            signals: vec![
                v1::SignalPeriod {
                    signal: "Vehicle.Speed".into(),
                    pid: 0x0D,
                    period_ms: 500,
                },
                v1::SignalPeriod {
                    signal: String::new(),
                    pid: 0x05,
                    period_ms: 1000,
                },
            ],
            reply,
        })
        .await;
    assert_eq!(ok, Ok(()));
    let Some(info) = agent.next_matching(Duration::from_secs(5), info).await else {
        panic!("schedule change: new info")
    };
    let sched: Vec<(String, u32)> = info
        .schedule
        .iter()
        .map(|s| (s.signal.clone(), s.period_ms))
        .collect();
    assert!(sched.contains(&("Vehicle.Speed".into(), 500)), "{sched:?}");
    assert!(sched.contains(&("Vehicle.Powertrain.CombustionEngine.ECT".into(), 1000)));
    cfg_msgs = agent
        .collect_until(Instant::now() + Duration::from_secs(20))
        .await;
    let n = speed_count(&cfg_msgs);
    assert!((39..=41).contains(&n), "every 500 ms over 20 s: {n}");
    agent.stop().await;
}

#[tokio::test(start_paused = true)]
async fn clear_dtcs_only_when_stopped() {
    let bus = VirtualBus::new("clear");
    let car = Car::new(&bus, "catalyst");
    let mut agent = Agent::start(&bus, false, config(vec![spec(0x0D, 1000)]));
    // Drive 2 (480-960 vehicle s) confirms P0420 at 768 s; mid-highway at 0.5 of drive 3.
    car.at(960.0 + 240.0).await;
    assert!(car.speed() > 50.0, "highway: {}", car.speed());
    let moving = agent.ask(|reply| VehicleRequest::ClearDtcs { reply }).await;
    assert_eq!(
        moving.as_ref().map_err(|e| e.code),
        Err(v1::CommandError::VehicleMoving),
        "{moving:?}"
    );
    let still = agent.ask(|reply| VehicleRequest::ReadDtcs { reply }).await;
    let stored = |r: &v1::DtcReport| {
        r.ecus
            .iter()
            .flat_map(|e| &e.current)
            .any(|d| d.code == "P0420" && d.kind == v1::DtcKind::Stored as i32)
    };
    assert!(still.as_ref().is_ok_and(stored), "not cleared while moving");

    // Final idle of drive 3: standing still with the engine running.
    car.at(960.0 + 480.0 * 0.95).await;
    assert_eq!(car.speed(), 0.0);
    let cleared = agent.ask(|reply| VehicleRequest::ClearDtcs { reply }).await;
    let Ok(cleared) = cleared else {
        panic!("{cleared:?}")
    };
    assert!(!stored(&cleared), "{cleared:#?}");
    assert_eq!(cleared.reason, v1::DtcReportReason::Changed as i32);
    let Some(ecm) = cleared.ecus.iter().find(|e| e.ecu_can_id == ECM) else {
        panic!("no ECM")
    };
    assert!(ecm.cleared.iter().any(|d| d.code == "P0420"));
    assert!(
        ecm.current
            .iter()
            .any(|d| d.code == "P0420" && d.kind == v1::DtcKind::Permanent as i32),
        "permanent stays"
    );
    assert!(!ecm.mil_on);
    // The change also goes out as a DTC message, the same report.
    let sent = agent
        .next_matching(Duration::from_secs(5), |m| dtc(m).filter(|r| *r == cleared))
        .await;
    assert!(sent.is_some(), "no DTC message for the clear");
    agent.stop().await;

    // Asleep: unreachable.
    let bus = VirtualBus::new("clear-asleep");
    let mut car = Car::new(&bus, "healthy");
    let mut agent = Agent::start(&bus, false, config(vec![spec(0x0D, 1000)]));
    assert!(
        agent
            .next_matching(Duration::from_secs(5), info)
            .await
            .is_some()
    );
    car.switch_off().await;
    assert!(agent.wait_state(Duration::from_secs(5), |s| !s.awake).await);
    let asleep = agent.ask(|reply| VehicleRequest::ClearDtcs { reply }).await;
    assert_eq!(
        asleep.map_err(|e| e.code),
        Err(v1::CommandError::VehicleUnreachable)
    );
    agent.stop().await;
}
