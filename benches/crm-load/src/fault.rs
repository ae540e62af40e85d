//! A fault on the simulated bus to the lead on an advisor's `WatchLeads` stream, through the
//! real processes: `firmware-sim` cars ([`crate::cars`]), their `telltale-agent`s, a Mosquitto
//! of the benchmark's own, `telltale-ingest` on a scratch PostgreSQL database, `telltale-crm`
//! on the same database, and a `WatchLeads` client in this process.
//!
//! Per fault, the moments (every one a Unix time read from the wall clock of this one
//! machine, by the process named):
//! - `bus`: the simulator made the code confirmed (its log's timestamp); from then on the ECU
//!   answers service 03 with it;
//! - `report`: the agent's `DtcReport.device_unix_ms` (stamped when the report is made, after
//!   the codes, MIL, freeze frame and context were read), for the first report that holds the
//!   code as stored (read by a subscriber of this process on the same broker);
//! - `received`: the ingest received that report (`lead_outbox.created_at`);
//! - `answered`: the CRM answered the ingest's `CreateLead` (`lead_outbox.sent_at`, stamped by
//!   the ingest after the answer);
//! - `watched`: this process received the `Created` event on `WatchLeads`.
//!
//! `bus → report` is bounded by the agent's DTC poll period (it reads the lists once a period);
//! `report → watched` is the rest of the chain. Each setting (`Variant`) gets a fresh database,
//! broker, CRM, ingest and cars. Beside them the CRM's own part is measured alone (`direct`):
//! this process calls `CreateLead` and waits for the event, which is the floor of the chain.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use prost::Message as _;
use serde::Serialize;
use sqlx::Row as _;
use tokio_stream::StreamExt as _;

use telltale_load::broker::Broker;
use telltale_load::db::Scratch;
use telltale_load::proc::{CpuUse, Watched, free_port};
use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::lead_service_client::LeadServiceClient;
use telltale_wire::v1;

use crate::cars::{Binaries, Car, CarPlan};
use crate::crm::{Crm, req};
use crate::process::Process;
use crate::stats::Percentiles;

/// The ingest's settings that decide how long a lead waits in it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Variant {
    pub name: String,
    /// `batch.max_age`: a lone message waits this long for company before it is written.
    pub batch_max_age: String,
    /// `leads.poll_interval`: how often the lead sender looks at the outbox when it was empty.
    pub poll_interval: String,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub crm_bin: PathBuf,
    pub ingest_bin: PathBuf,
    pub cars: Binaries,
    pub pg_admin_url: String,
    pub variants: Vec<Variant>,
    /// Also measure the CRM alone (`CreateLead` → `WatchLeads`).
    pub direct: bool,
    pub rounds: u32,
    pub vehicles: usize,
    pub faults_per_vehicle: usize,
    pub time_scale: f64,
    /// The agent's `dtc.period`.
    pub dtc_period: String,
}

/// One fault's way, Unix ms at each stage (see the module documentation).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Fault {
    pub vin: String,
    pub code: String,
    pub bus_ms: Option<f64>,
    pub report_ms: Option<f64>,
    pub received_ms: Option<f64>,
    pub answered_ms: Option<f64>,
    pub watched_ms: Option<f64>,
}

/// Percentiles of each stage and of the two totals, over one run's faults.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stages {
    pub bus_to_report: Percentiles,
    pub report_to_received: Percentiles,
    pub received_to_answered: Percentiles,
    pub answered_to_watched: Percentiles,
    /// From the agent's report to the advisor's screen: the chain after the car reported.
    pub report_to_watched: Percentiles,
    /// From the fault on the bus to the advisor's screen.
    pub bus_to_watched: Percentiles,
}

/// One variant (or the direct run) in one round.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Run {
    pub round: u32,
    pub variant: String,
    /// Faults scripted (or leads asked for, for `direct`).
    pub expected: usize,
    /// Leads seen created on the watch stream, matched to a scripted fault.
    pub watched: usize,
    /// Created events that matched no scripted fault, or a fault seen twice.
    pub unexpected: usize,
    pub seconds: f64,
    pub stages: Stages,
    pub faults: Vec<Fault>,
    pub cpu: CpuUse,
}

impl Run {
    /// Every scripted fault became exactly one lead on the watch stream, and every stage
    /// time is there.
    pub fn exact(&self) -> bool {
        self.watched == self.expected
            && self.unexpected == 0
            && (self.variant == "direct"
                || self.faults.iter().all(|f| {
                    f.bus_ms.is_some()
                        && f.report_ms.is_some()
                        && f.received_ms.is_some()
                        && f.answered_ms.is_some()
                        && f.watched_ms.is_some()
                }))
    }
}

/// One variant's percentiles over the faults of every round.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub variant: String,
    pub faults: usize,
    pub stages: Stages,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    /// Which PostgreSQL the ingest and the CRM used.
    pub database: String,
    pub vehicles: usize,
    pub faults_per_vehicle: usize,
    pub time_scale: f64,
    pub dtc_period: String,
    pub variants: Vec<Variant>,
    pub loadavg_before: Option<[f64; 3]>,
    pub loadavg_after: Option<[f64; 3]>,
    pub runs: Vec<Run>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn all_exact(&self) -> bool {
        self.runs.iter().all(Run::exact)
    }
}

fn now_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_micros() as f64 / 1000.0)
}

type Seen = Arc<Mutex<HashMap<(String, String), Vec<f64>>>>;

/// Watches leads with `token`; every `Created` event's (VIN, first code) and arrival time.
async fn watch(crm: &Crm, token: &str) -> anyhow::Result<Seen> {
    let mut stream = LeadServiceClient::new(crm.channel().await?)
        .watch_leads(req(token, pb::WatchLeadsRequest::default()))
        .await
        .context("WatchLeads")?
        .into_inner();
    let seen: Seen = Arc::default();
    let out = seen.clone();
    tokio::spawn(async move {
        while let Some(Ok(event)) = stream.next().await {
            let at = now_ms();
            if event.change != pb::lead_event::Change::Created as i32 {
                continue;
            }
            let Some(lead) = event.lead else { continue };
            let code = lead
                .faults
                .first()
                .map(|f| f.code.clone())
                .unwrap_or_default();
            if let Ok(mut s) = out.lock() {
                s.entry((lead.vin, code)).or_default().push(at);
            }
        }
    });
    Ok(seen)
}

/// Subscribes to every car's DTC reports; per (VIN, code), the `device_unix_ms` of the first
/// report that holds the code as confirmed.
async fn observe_reports(
    broker_port: u16,
) -> anyhow::Result<Arc<Mutex<HashMap<(String, String), f64>>>> {
    let mut options = rumqttc::MqttOptions::new("crm-load-observer", "127.0.0.1", broker_port);
    options.set_keep_alive(Duration::from_secs(30));
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut events) = rumqttc::AsyncClient::new(options, 100);
    client
        .subscribe(
            telltale_wire::topic::fleet_filter(telltale_wire::topic::Kind::Dtc, None),
            rumqttc::QoS::AtLeastOnce,
        )
        .await
        .context("subscribing to the DTC reports")?;
    let seen: Arc<Mutex<HashMap<(String, String), f64>>> = Arc::default();
    let out = seen.clone();
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let _client = client;
        let mut ready = Some(ready_tx);
        loop {
            match events.poll().await {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    let Ok(report) = v1::DtcReport::decode(p.payload) else {
                        continue;
                    };
                    let Ok(mut s) = out.lock() else { continue };
                    // The first report whose current set holds the code as confirmed (stored,
                    // or UDS with its confirmed bit): what the store compares with its own
                    // state to raise the lead (the agent's `appeared` is against its own
                    // baseline, which may differ).
                    for ecu in &report.ecus {
                        for d in ecu.current.iter().filter(|d| d.is_confirmed()) {
                            s.entry((report.vin.clone(), d.code.clone()))
                                .or_insert(report.device_unix_ms as f64);
                        }
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("the observer's subscription was not acknowledged")?
        .ok();
    Ok(seen)
}

/// `telltale-ingest` on the broker and database, sending leads to the CRM with `token`.
async fn start_ingest(
    opts: &Options,
    variant: &Variant,
    broker: &Broker,
    database_url: &str,
    crm: &Crm,
    token: &str,
    dir: &std::path::Path,
) -> anyhow::Result<Process> {
    let metrics = free_port()?;
    let toml = format!(
        "[mqtt]\nurl = {mqtt:?}\nclient_id = \"crm-load-ingest\"\n\n\
         [database]\nurl = {db:?}\nmigrate_on_start = true\n\n\
         [batch]\nmax_age = {age:?}\n\n\
         [leads]\ncrm_url = {crm:?}\ntoken = {token:?}\npoll_interval = {poll:?}\n\n\
         [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n[log]\nfilter = \"warn\"\n",
        mqtt = broker.url(),
        db = database_url,
        age = variant.batch_max_age,
        crm = crm.url(),
        poll = variant.poll_interval,
    );
    let conf = dir.join("ingest.toml");
    std::fs::write(&conf, toml).context("writing the ingest's config")?;
    let conf_s = conf.display().to_string();
    let mut ingest = Process::start(
        "telltale-ingest",
        &opts.ingest_bin,
        &["--config", &conf_s],
        &[],
        dir.join("ingest.log"),
    )?;
    let start = tokio::time::Instant::now();
    loop {
        ingest.check_running()?;
        if let Ok(text) = telltale_load::ingest::http_get(metrics, "/metrics").await
            && telltale_load::ingest::Metrics(text).value("telltale_ingest_mqtt_connected")
                == Some(1.0)
        {
            return Ok(ingest);
        }
        if start.elapsed() > Duration::from_secs(60) {
            bail!(
                "telltale-ingest not connected within 60 s:\n{}",
                ingest.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The CRM on a fresh database with the tenant's tokens and shop, and a watcher.
struct Setup {
    scratch: Scratch,
    crm: Crm,
    integration: String,
    seen: Seen,
    dir: tempfile::TempDir,
}

async fn setup(opts: &Options, name: &str) -> anyhow::Result<Setup> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let scratch = Scratch::create(&opts.pg_admin_url, name).await?;
    let crm = match Crm::start(&opts.crm_bin, &scratch.url, 10, dir.path()).await {
        Ok(c) => c,
        Err(e) => {
            scratch.drop_now().await?;
            return Err(e);
        }
    };
    let manager = crm.token("manager", "boss").await?;
    let integration = crm.token("integration", "ingest").await?;
    let advisor = crm.token("advisor", "ann").await?;
    crm.put_shop(&manager).await?;
    let seen = watch(&crm, &advisor).await?;
    Ok(Setup {
        scratch,
        crm,
        integration,
        seen,
        dir,
    })
}

/// One variant in one round: the whole chain with `opts.vehicles` cars.
async fn chain(
    opts: &Options,
    variant: &Variant,
    round: u32,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<Run> {
    let name = format!(
        "telltale_crmfault_{}_{round}_{}",
        std::process::id(),
        variant.name.replace('-', "_")
    );
    let s = setup(opts, &name).await?;
    let result = async {
        let broker = Broker::start(100)?;
        let reports = observe_reports(broker.port).await?;
        let mut ingest = start_ingest(
            opts,
            variant,
            &broker,
            &s.scratch.url,
            &s.crm,
            &s.integration,
            s.dir.path(),
        )
        .await?;
        let plans: Vec<CarPlan> = (0..opts.vehicles)
            .map(|i| CarPlan::new(i, opts.vehicles, opts.faults_per_vehicle, opts.time_scale))
            .collect();
        let expected: usize = plans.iter().map(|p| p.codes.len()).sum();
        let mut watch = Watched {
            procs: vec![
                ("crm".into(), s.crm.process.pid()),
                ("ingest".into(), ingest.pid()),
                ("mosquitto".into(), broker.pid()),
                ("bench".into(), std::process::id()),
            ],
            postgres: true,
        };
        let before = watch.snapshot();
        let started = tokio::time::Instant::now();
        let mut cars = Vec::new();
        for plan in plans.clone() {
            let car = Car::start(
                plan,
                &opts.cars,
                s.dir.path(),
                &broker.url(),
                &opts.dtc_period,
            )
            .await?;
            watch
                .procs
                .push((format!("sim{}", car.plan.index), car.sim.pid()));
            watch
                .procs
                .push((format!("agent{}", car.plan.index), car.agent.pid()));
            cars.push(car);
        }
        let longest = plans.iter().map(CarPlan::seconds).fold(0.0, f64::max);
        let deadline = started + Duration::from_secs_f64(longest + 30.0);
        loop {
            let got = s.seen.lock().map(|m| m.len()).unwrap_or(0);
            if got >= expected || tokio::time::Instant::now() > deadline {
                break;
            }
            for car in &mut cars {
                car.sim.check_running()?;
                car.agent.check_running()?;
            }
            ingest.check_running()?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // A moment for a doubled lead to show.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let seconds = started.elapsed().as_secs_f64();
        let cpu = before.until(&watch.snapshot());
        let mut outbox: HashMap<(String, String), (f64, Option<f64>)> = HashMap::new();
        let mut conn = s.scratch.connect().await?;
        let rows = sqlx::query(
            // The fault's own lead: a MIL lead naming the same code (the MIL read a poll after
            // the code) merges into it at the CRM, and is not the fault's arrival.
            "SELECT vin, code, (extract(epoch FROM created_at) * 1000)::float8 AS received,
                    (extract(epoch FROM sent_at) * 1000)::float8 AS answered
             FROM lead_outbox WHERE reason = 'confirmed'",
        )
        .fetch_all(&mut conn)
        .await
        .context("reading the lead outbox")?;
        for r in rows {
            outbox.insert(
                (r.try_get("vin")?, r.try_get("code")?),
                (r.try_get("received")?, r.try_get("answered")?),
            );
        }
        let reports = reports.lock().map(|m| m.clone()).unwrap_or_default();
        let seen = s.seen.lock().map(|m| m.clone()).unwrap_or_default();
        let mut faults = Vec::new();
        for car in &cars {
            let confirmed: HashMap<String, f64> = car.confirmed().into_iter().collect();
            for code in &car.plan.codes {
                let key = (car.plan.vin.clone(), (*code).to_owned());
                let o = outbox.get(&key);
                faults.push(Fault {
                    vin: key.0.clone(),
                    code: key.1.clone(),
                    bus_ms: confirmed.get(*code).copied(),
                    report_ms: reports.get(&key).copied(),
                    received_ms: o.map(|o| o.0),
                    answered_ms: o.and_then(|o| o.1),
                    watched_ms: seen.get(&key).and_then(|v| v.first().copied()),
                });
            }
        }
        let watched = faults.iter().filter(|f| f.watched_ms.is_some()).count();
        let unexpected = seen.values().map(Vec::len).sum::<usize>() - watched;
        drop(cars);
        ingest.stop();
        let run = Run {
            round,
            variant: variant.name.clone(),
            expected,
            watched,
            unexpected,
            seconds,
            stages: stages(&faults),
            faults,
            cpu,
        };
        progress(&line(&run));
        Ok::<_, anyhow::Error>(run)
    }
    .await;
    drop(s.crm);
    s.scratch.drop_now().await?;
    result
}

/// The CRM alone: `count` `CreateLead` calls, 100 ms apart, each timed to its event.
async fn direct(
    opts: &Options,
    round: u32,
    count: usize,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<Run> {
    let s = setup(
        opts,
        &format!("telltale_crmfault_{}_{round}_direct", std::process::id()),
    )
    .await?;
    let result = async {
        let mut client = LeadServiceClient::new(s.crm.channel().await?);
        let watch = Watched {
            procs: vec![
                ("crm".into(), s.crm.process.pid()),
                ("bench".into(), std::process::id()),
            ],
            postgres: true,
        };
        let before = watch.snapshot();
        let started = tokio::time::Instant::now();
        let mut faults = Vec::new();
        for i in 0..count {
            let vin = crate::crm::vin('D', i as u32);
            let code = crate::crm::CODES[i % crate::crm::CODES.len()];
            let sent = now_ms();
            let answer = client
                .create_lead(req(
                    &s.integration,
                    pb::CreateLeadRequest {
                        idempotency_key: format!("{vin}:{code}:1"),
                        vin: vin.clone(),
                        device_id: "crm-load".into(),
                        reason: pb::LeadReason::ConfirmedDtc as i32,
                        codes: vec![code.into()],
                        ecu: 0x7E8,
                        detected_unix_ms: sent as i64,
                    },
                ))
                .await
                .context("CreateLead")?
                .into_inner();
            let answered = now_ms();
            if !answer.created {
                bail!("CreateLead {vin} {code}: created = false");
            }
            faults.push(Fault {
                vin,
                code: code.into(),
                bus_ms: None,
                report_ms: Some(sent),
                received_ms: Some(sent),
                answered_ms: Some(answered),
                watched_ms: None,
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while s.seen.lock().map(|m| m.len()).unwrap_or(0) < count
            && tokio::time::Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let seen = s.seen.lock().map(|m| m.clone()).unwrap_or_default();
        for f in &mut faults {
            f.watched_ms = seen
                .get(&(f.vin.clone(), f.code.clone()))
                .and_then(|v| v.first().copied());
        }
        let watched = faults.iter().filter(|f| f.watched_ms.is_some()).count();
        let run = Run {
            round,
            variant: "direct".into(),
            expected: count,
            watched,
            unexpected: seen.values().map(Vec::len).sum::<usize>() - watched,
            seconds: started.elapsed().as_secs_f64(),
            stages: stages(&faults),
            faults,
            cpu: before.until(&watch.snapshot()),
        };
        progress(&line(&run));
        Ok::<_, anyhow::Error>(run)
    }
    .await;
    drop(s.crm);
    s.scratch.drop_now().await?;
    result
}

fn stages(faults: &[Fault]) -> Stages {
    let span = |a: fn(&Fault) -> Option<f64>, b: fn(&Fault) -> Option<f64>| {
        Percentiles::of(faults.iter().filter_map(|f| Some(b(f)? - a(f)?)).collect())
    };
    Stages {
        bus_to_report: span(|f| f.bus_ms, |f| f.report_ms),
        report_to_received: span(|f| f.report_ms, |f| f.received_ms),
        received_to_answered: span(|f| f.received_ms, |f| f.answered_ms),
        answered_to_watched: span(|f| f.answered_ms, |f| f.watched_ms),
        report_to_watched: span(|f| f.report_ms, |f| f.watched_ms),
        bus_to_watched: span(|f| f.bus_ms, |f| f.watched_ms),
    }
}

fn line(run: &Run) -> String {
    let s = &run.stages;
    format!(
        "round {} {:<8} {}/{} leads watched ({} unexpected) in {:.1} s; report→watched p50 {:.1} p99 {:.1} ms; bus→watched p50 {:.1} p99 {:.1} ms",
        run.round,
        run.variant,
        run.watched,
        run.expected,
        run.unexpected,
        run.seconds,
        s.report_to_watched.p50_ms,
        s.report_to_watched.p99_ms,
        s.bus_to_watched.p50_ms,
        s.bus_to_watched.p99_ms
    )
}

/// Runs every round: each variant's chain, then the CRM alone.
pub async fn run(opts: &Options, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    telltale_load::db::reachable(&opts.pg_admin_url, Duration::from_secs(5)).await?;
    let loadavg_before = telltale_load::proc::loadavg();
    let mut runs = Vec::new();
    let count = opts.vehicles * opts.faults_per_vehicle.min(crate::crm::CODES.len());
    for round in 1..=opts.rounds.max(1) {
        for variant in &opts.variants {
            runs.push(chain(opts, variant, round, &mut progress).await?);
        }
        if opts.direct {
            runs.push(direct(opts, round, count, &mut progress).await?);
        }
    }
    let mut names: Vec<String> = opts.variants.iter().map(|v| v.name.clone()).collect();
    if opts.direct {
        names.push("direct".into());
    }
    // Percentiles over every fault of every round of a variant (pooled, so the p99 rests on
    // all of them rather than being each round's maximum).
    let rows = names
        .into_iter()
        .map(|name| {
            let faults: Vec<Fault> = runs
                .iter()
                .filter(|r| r.variant == name)
                .flat_map(|r| r.faults.iter().cloned())
                .collect();
            Row {
                variant: name,
                faults: faults.iter().filter(|f| f.watched_ms.is_some()).count(),
                stages: stages(&faults),
            }
        })
        .collect();
    Ok(Report {
        database: opts.pg_admin_url.clone(),
        vehicles: opts.vehicles,
        faults_per_vehicle: opts.faults_per_vehicle,
        time_scale: opts.time_scale,
        dtc_period: opts.dtc_period.clone(),
        variants: opts.variants.clone(),
        loadavg_before,
        loadavg_after: telltale_load::proc::loadavg(),
        runs,
        rows,
    })
}
