//! The harness: runs the parts side by side on this machine, round after round (interleaved,
//! so a noisy neighbour or a warming cache affects every part alike), and reports medians and
//! ratios.
//!
//! - (a) `ingest`: a fresh broker and database, `telltale-ingest` under test, the generator
//!   publishing the fleet; committed samples per second = published samples / (time from the
//!   first publish until the ingest's counter reaches them all); lag = that moment minus the
//!   broker's last PUBACK to the generator; latency = per message, receive time minus creation
//!   time, from the rows. Then the table is checked: every sample exactly once.
//! - (b) `copy`: the same rows (same count, same shape) with one binary COPY into a fresh,
//!   migrated database: PostgreSQL's own ceiling.
//! - (c) `naive`: as (a) with the naive ingester ([`crate::naive`]) in a process of its own,
//!   measured the same way (rows counted in the table); it is given `naive_timeout` after the
//!   publishing ends and its rate is what it committed by then.
//! - (d) `store`: the store's write path alone, UNNEST against COPY ([`crate::store_batches`]).
//! - (e) `ingest1`: as (a) with one writer (`batch.writers = 1`): the ingest before it wrote
//!   several batches at once, the naive way of batching.
//!
//! With a TimescaleDB server (`tsdb_admin_url`), (a) and (b) also run there, right after their
//! plain PostgreSQL runs, with telemetry in a hypertable.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tokio::io::AsyncBufReadExt as _;
use tokio::time::Instant;

use crate::broker::Broker;
use crate::copy::{self, CeilingResult};
use crate::db::{self, Check, Latency, MinuteLatency, Scratch};
use crate::fleet::Fleet;
use crate::generate::{self, round3};
use crate::ingest::{Ingest, IngestConfig};
use crate::proc::{CpuUse, Watched};
use crate::store_batches::{self, StoreBatchesResult};
use telltale_store::TimescaleMode;

/// One of the measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Ingest,
    Copy,
    Naive,
    Store,
    Ingest1,
}

/// Where a live run or the ceiling writes: plain PostgreSQL or TimescaleDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Db {
    Postgres,
    Timescale,
}

impl Db {
    fn mode(self) -> TimescaleMode {
        match self {
            Db::Postgres => TimescaleMode::Off,
            Db::Timescale => TimescaleMode::On,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Db::Postgres => "",
            Db::Timescale => " TimescaleDB",
        }
    }
}

/// Everything the harness needs.
#[derive(Debug, Clone)]
pub struct Options {
    pub fleet: Fleet,
    pub connections: u32,
    pub inflight: u16,
    pub rounds: u32,
    pub parts: Vec<Part>,
    pub admin_url: String,
    /// A server with TimescaleDB loaded: (a) and (b) run there too.
    pub tsdb_admin_url: Option<String>,
    pub ingest: IngestConfig,
    /// The `telltale-load` executable, for the naive ingester's process.
    pub self_exe: PathBuf,
    /// The broker's `max_inflight_messages`: QoS 1 messages sent to a subscriber before its
    /// PUBACKs (MQTT 3.1.1; an MQTT 5 client's receive maximum wins).
    pub broker_inflight: u16,
    pub naive_timeout: Duration,
    pub drain_timeout: Duration,
    /// A live part whose committed count does not move for this long (after the publishing
    /// ended) is stopped as stalled.
    pub stall_timeout: Duration,
    pub keep_db: bool,
}

/// Part (a) or (c) in one round.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LiveResult {
    pub database: String,
    pub published: generate::Report,
    pub committed_samples: u64,
    /// Every sample committed within the time allowed.
    pub complete: bool,
    /// Stopped because nothing was committed for the stall timeout (see [`Options`]).
    pub stalled: bool,
    /// The ingest's own counters at the end (`None` for the naive one).
    pub ingest_metrics: Option<IngestCounters>,
    /// From the first publish to the last commit (or to the end of the time allowed).
    pub seconds: f64,
    pub samples_per_second: f64,
    /// From the first publish to the last time the committed count moved: the rate while it
    /// worked, for a run that stalled or ran out of time.
    pub active_seconds: f64,
    pub active_samples_per_second: f64,
    /// From the broker's last PUBACK to the last commit; `None` when not complete.
    pub lag_seconds: Option<f64>,
    pub latency: Option<Latency>,
    /// Receive latency per minute of the run (see [`db::latency_by_minute`]).
    pub latency_by_minute: Vec<MinuteLatency>,
    /// The consumer's resident memory every 10 s: seconds since the first publish, KiB.
    pub memory_kib: Vec<[u64; 2]>,
    pub check: Option<Check>,
    /// Whether every published sample is in the table exactly once.
    pub exact: bool,
    pub cpu: CpuUse,
}

/// What `telltale-ingest` said about itself at the end of a run: where its time went.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct IngestCounters {
    pub messages_received: u64,
    pub acked: u64,
    pub in_flight: u64,
    pub batches: u64,
    pub store_errors: u64,
    pub duplicates: u64,
    /// Sum of the batch write times (the store's transaction).
    pub batch_write_seconds: f64,
    /// Mean messages per batch.
    pub mean_batch_messages: f64,
}

impl IngestCounters {
    fn from_metrics(m: &crate::ingest::Metrics) -> IngestCounters {
        let v = |s: &str| m.value(s).unwrap_or(0.0);
        let received: f64 = [
            "telemetry",
            "dtc",
            "info",
            "status",
            "cmd-result",
            "unknown",
        ]
        .iter()
        .map(|k| v(&format!("telltale_ingest_messages_total{{kind=\"{k}\"}}")))
        .sum();
        let batches = v("telltale_ingest_batches_total");
        IngestCounters {
            messages_received: received as u64,
            acked: v("telltale_ingest_acked_total") as u64,
            in_flight: v("telltale_ingest_in_flight") as u64,
            batches: batches as u64,
            store_errors: v("telltale_ingest_store_errors_total") as u64,
            duplicates: v("telltale_ingest_duplicates_total") as u64,
            batch_write_seconds: round3(v("telltale_ingest_batch_write_seconds_sum")),
            mean_batch_messages: if batches > 0.0 {
                (received / batches * 10.0).round() / 10.0
            } else {
                0.0
            },
        }
    }
}

/// One round of every part asked for.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Round {
    pub ingest: Option<LiveResult>,
    pub copy: Option<CeilingResult>,
    pub naive: Option<LiveResult>,
    pub store: Option<StoreBatchesResult>,
    pub ingest_one_writer: Option<LiveResult>,
    pub timescale_ingest: Option<LiveResult>,
    pub timescale_copy: Option<CeilingResult>,
}

/// Medians over the rounds and the ratios the issue sets goals for.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    pub ingest_samples_per_second: Option<f64>,
    pub ingest_lag_seconds: Option<f64>,
    pub copy_rows_per_second: Option<f64>,
    pub naive_samples_per_second: Option<f64>,
    pub store_unnest_rows_per_second: Option<f64>,
    pub store_copy_rows_per_second: Option<f64>,
    pub store_ingest_rows_per_second: Option<f64>,
    pub ingest_one_writer_samples_per_second: Option<f64>,
    pub timescale_ingest_samples_per_second: Option<f64>,
    pub timescale_ingest_lag_seconds: Option<f64>,
    pub timescale_copy_rows_per_second: Option<f64>,
    /// (a)/(b); the goal is at least 0.8.
    pub ingest_over_copy: Option<f64>,
    /// (a)/(c); the goal is at least 10.
    pub ingest_over_naive: Option<f64>,
    /// (a)/(e): what writing several batches at once gives.
    pub ingest_over_one_writer: Option<f64>,
    /// (a)/(b) on TimescaleDB; the goal is at least 0.8.
    pub timescale_ingest_over_copy: Option<f64>,
}

/// The whole run, as written with `--json`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub vehicles: u32,
    pub samples_per_batch: u32,
    pub batches_per_vehicle: u32,
    pub interval_seconds: f64,
    pub offered_samples_per_second: f64,
    pub samples: u64,
    pub connections: u32,
    pub ingest_batch_max_messages: usize,
    pub ingest_writers: usize,
    pub ingest_protocol: String,
    pub cores: usize,
    pub loadavg_before: Option<[f64; 3]>,
    pub loadavg_after: Option<[f64; 3]>,
    pub rounds: Vec<Round>,
    pub summary: Summary,
}

impl Report {
    /// Whether every live run that was asked for got every sample in exactly once (the naive
    /// one only when it finished).
    pub fn all_exact(&self) -> bool {
        self.rounds.iter().all(|r| {
            [&r.ingest, &r.ingest_one_writer, &r.timescale_ingest]
                .iter()
                .all(|x| x.as_ref().is_none_or(|x| x.exact))
                && r.naive.as_ref().is_none_or(|x| !x.complete || x.exact)
        })
    }
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// Runs every round; `progress` gets a line per finished part.
pub async fn run(opts: &Options, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    db::reachable(&opts.admin_url, Duration::from_secs(5)).await?;
    let loadavg_before = crate::proc::loadavg();
    let mut rounds = Vec::new();
    for r in 1..=opts.rounds {
        let mut round = Round::default();
        for part in &opts.parts {
            let fleet = Fleet {
                run: run_id(r, *part),
                ..opts.fleet.clone()
            };
            let name = format!(
                "telltale_bench_{}_{r}_{}",
                std::process::id(),
                format!("{part:?}").to_lowercase()
            );
            match part {
                Part::Ingest | Part::Ingest1 => {
                    let (writers, label) = match part {
                        Part::Ingest1 => (1, "(e) ingest, one writer"),
                        _ => (opts.ingest.writers, "(a) ingest"),
                    };
                    for db in databases(opts) {
                        let x = live(opts, &fleet, &name, Side::Ingest { writers }, db).await?;
                        progress(&format!(
                            "round {r} {label}{}: {:.0} samples/s, lag {}, exact: {}",
                            db.label(),
                            x.samples_per_second,
                            x.lag_seconds
                                .map_or_else(|| "n/a (incomplete)".into(), |l| format!("{l:.2} s")),
                            x.exact
                        ));
                        match (part, db) {
                            (Part::Ingest1, _) => round.ingest_one_writer = Some(x),
                            (_, Db::Postgres) => round.ingest = Some(x),
                            (_, Db::Timescale) => round.timescale_ingest = Some(x),
                        }
                        if *part == Part::Ingest1 {
                            break;
                        }
                    }
                }
                Part::Copy => {
                    for db in databases(opts) {
                        let scratch = Scratch::create(admin(opts, db), &name).await?;
                        scratch.migrate(db.mode()).await?;
                        let watch = Watched {
                            procs: vec![("harness".into(), std::process::id())],
                            postgres: true,
                        };
                        let x = copy::ceiling(&scratch, &fleet, &watch).await;
                        finish_db(opts, scratch).await?;
                        let x = x?;
                        progress(&format!(
                            "round {r} (b) COPY{}: {:.0} rows/s ({} rows in {:.2} s)",
                            db.label(),
                            x.rows_per_second,
                            x.rows,
                            x.seconds
                        ));
                        match db {
                            Db::Postgres => round.copy = Some(x),
                            Db::Timescale => round.timescale_copy = Some(x),
                        }
                    }
                }
                Part::Naive => {
                    let x = live(opts, &fleet, &name, Side::Naive, Db::Postgres).await?;
                    progress(&format!(
                        "round {r} (c) naive: {:.0} samples/s, {} of {} samples committed{}",
                        x.samples_per_second,
                        x.committed_samples,
                        x.published.samples,
                        if x.complete {
                            String::new()
                        } else {
                            format!(
                                " when stopped {} s after publishing ended",
                                opts.naive_timeout.as_secs()
                            )
                        }
                    ));
                    round.naive = Some(x);
                }
                Part::Store => {
                    let x = store_batches::run(
                        &opts.admin_url,
                        &name,
                        &fleet,
                        u32::try_from(opts.ingest.batch_max_messages).unwrap_or(u32::MAX),
                    )
                    .await?;
                    progress(&format!(
                        "round {r} (d) store batches of {} messages: Store::ingest {:.0} rows/s, UNNEST {:.0} rows/s, COPY {:.0} rows/s",
                        x.batch_messages,
                        x.store.rows_per_second,
                        x.unnest.rows_per_second,
                        x.copy.rows_per_second
                    ));
                    round.store = Some(x);
                }
            }
        }
        rounds.push(round);
    }
    let pick = |f: &dyn Fn(&Round) -> Option<f64>| median(rounds.iter().filter_map(f).collect());
    let a = pick(&|r| r.ingest.as_ref().map(|x| x.samples_per_second));
    let b = pick(&|r| r.copy.as_ref().map(|x| x.rows_per_second));
    let c = pick(&|r| r.naive.as_ref().map(|x| x.samples_per_second));
    let e = pick(&|r| r.ingest_one_writer.as_ref().map(|x| x.samples_per_second));
    let ta = pick(&|r| r.timescale_ingest.as_ref().map(|x| x.samples_per_second));
    let tb = pick(&|r| r.timescale_copy.as_ref().map(|x| x.rows_per_second));
    let ratio = |x: Option<f64>, y: Option<f64>| match (x, y) {
        (Some(x), Some(y)) if y > 0.0 => Some((x / y * 100.0).round() / 100.0),
        _ => None,
    };
    let summary = Summary {
        ingest_samples_per_second: a,
        ingest_lag_seconds: pick(&|r| r.ingest.as_ref().and_then(|x| x.lag_seconds)),
        copy_rows_per_second: b,
        naive_samples_per_second: c,
        store_unnest_rows_per_second: pick(&|r| r.store.as_ref().map(|x| x.unnest.rows_per_second)),
        store_copy_rows_per_second: pick(&|r| r.store.as_ref().map(|x| x.copy.rows_per_second)),
        store_ingest_rows_per_second: pick(&|r| r.store.as_ref().map(|x| x.store.rows_per_second)),
        ingest_one_writer_samples_per_second: e,
        timescale_ingest_samples_per_second: ta,
        timescale_ingest_lag_seconds: pick(&|r| {
            r.timescale_ingest.as_ref().and_then(|x| x.lag_seconds)
        }),
        timescale_copy_rows_per_second: tb,
        ingest_over_copy: ratio(a, b),
        ingest_over_naive: ratio(a, c),
        ingest_over_one_writer: ratio(a, e),
        timescale_ingest_over_copy: ratio(ta, tb),
    };
    Ok(Report {
        vehicles: opts.fleet.vehicles,
        samples_per_batch: opts.fleet.samples_per_batch,
        batches_per_vehicle: opts.fleet.batches_per_vehicle,
        interval_seconds: opts.fleet.interval.as_secs_f64(),
        offered_samples_per_second: (opts.fleet.batch_rate()
            * f64::from(opts.fleet.samples_per_batch))
        .round(),
        samples: opts.fleet.samples(),
        connections: opts.connections.min(opts.fleet.vehicles),
        ingest_batch_max_messages: opts.ingest.batch_max_messages,
        ingest_writers: opts.ingest.writers,
        ingest_protocol: opts.ingest.protocol.clone(),
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        loadavg_before,
        loadavg_after: crate::proc::loadavg(),
        rounds,
        summary,
    })
}

/// Boot ids differ per round and part (they are derived from this), and from earlier runs.
fn run_id(round: u32, part: Part) -> u64 {
    let now = chrono::Utc::now().timestamp_micros().unsigned_abs();
    now ^ (u64::from(round) << 56) ^ ((part as u64) << 48)
}

/// The databases (a) and (b) run on: plain PostgreSQL, and TimescaleDB when there is one.
fn databases(opts: &Options) -> Vec<Db> {
    let mut dbs = vec![Db::Postgres];
    if opts.tsdb_admin_url.is_some() {
        dbs.push(Db::Timescale);
    }
    dbs
}

fn admin(opts: &Options, db: Db) -> &str {
    match (db, &opts.tsdb_admin_url) {
        (Db::Timescale, Some(url)) => url,
        _ => &opts.admin_url,
    }
}

async fn finish_db(opts: &Options, scratch: Scratch) -> anyhow::Result<()> {
    if opts.keep_db {
        return Ok(());
    }
    scratch.drop_now().await
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Ingest { writers: usize },
    Naive,
}

/// The ingester under test in a live run.
enum Consumer {
    Ingest(Ingest),
    Naive(tokio::process::Child),
}

impl Consumer {
    fn pid(&self) -> Option<u32> {
        match self {
            Consumer::Ingest(i) => Some(i.pid()),
            Consumer::Naive(c) => c.id(),
        }
    }

    fn check_running(&mut self) -> anyhow::Result<()> {
        match self {
            Consumer::Ingest(i) => i.check_running(),
            Consumer::Naive(c) => match c.try_wait() {
                Ok(Some(status)) => bail!("the naive ingester exited with {status}"),
                _ => Ok(()),
            },
        }
    }

    async fn stop(&mut self) {
        match self {
            Consumer::Ingest(i) => i.stop(),
            Consumer::Naive(c) => {
                let _ = c.kill().await;
            }
        }
    }
}

/// Starts the naive ingester and waits for its subscriptions.
async fn start_naive(opts: &Options, mqtt_url: &str, db_url: &str) -> anyhow::Result<Consumer> {
    let mut child = tokio::process::Command::new(&opts.self_exe)
        .args(["naive", "--mqtt-url", mqtt_url, "--database-url", db_url])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {} naive", opts.self_exe.display()))?;
    let stdout = child.stdout.take().context("the naive ingester's stdout")?;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let ready = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = lines.next_line().await? {
            if line == crate::naive::READY {
                return Ok(true);
            }
        }
        Ok::<_, std::io::Error>(false)
    })
    .await;
    match ready {
        Ok(Ok(true)) => {}
        _ => bail!("the naive ingester did not subscribe within 15 s"),
    }
    // Keep reading its stdout so it never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok(Consumer::Naive(child))
}

/// Waits until a status message published now has reached the ingest: its subscriptions are
/// in place (they are made together, telemetry first), so nothing published after is lost.
async fn wait_subscribed(ingest: &mut Ingest, broker: &Broker) -> anyhow::Result<()> {
    use prost::Message as _;
    let (host, port) = generate::parse_url(&broker.url())?;
    let mut o = rumqttc::MqttOptions::new("telltale-load-probe", host, port);
    o.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 16);
    let probe = telltale_wire::v1::Status {
        header: Some(telltale_wire::v1::UplinkHeader {
            device_id: "telltale-load-probe".into(),
            created_unix_ms: chrono::Utc::now().timestamp_millis(),
            ..Default::default()
        }),
        presence: telltale_wire::v1::Presence::Online as i32,
        ..Default::default()
    };
    let topic =
        telltale_wire::topic::topic("telltale-load-probe", telltale_wire::topic::Kind::Status);
    let series = "telltale_ingest_messages_total{kind=\"status\"}";
    let start = Instant::now();
    let mut next_probe = start;
    loop {
        ingest.check_running()?;
        if Instant::now() >= next_probe {
            client
                .try_publish(
                    &topic,
                    rumqttc::QoS::AtLeastOnce,
                    false,
                    probe.encode_to_vec(),
                )
                .context("queueing the probe")?;
            next_probe = Instant::now() + Duration::from_millis(500);
        }
        // Drive the probe's connection for a moment.
        let _ = tokio::time::timeout(Duration::from_millis(50), eventloop.poll()).await;
        if let Ok(m) = ingest.metrics().await
            && m.value(series).unwrap_or(0.0) >= 1.0
        {
            let _ = client.try_disconnect();
            let _ = tokio::time::timeout(Duration::from_millis(200), eventloop.poll()).await;
            return Ok(());
        }
        if start.elapsed() > Duration::from_secs(20) {
            bail!(
                "telltale-ingest received no probe within 20 s:\n{}",
                ingest.log()
            );
        }
    }
}

/// Part (a) or (c): broker, scratch database, consumer, generator; until everything is
/// committed or the time allowed runs out.
async fn live(
    opts: &Options,
    fleet: &Fleet,
    name: &str,
    side: Side,
    db: Db,
) -> anyhow::Result<LiveResult> {
    let broker = Broker::start(opts.broker_inflight)?;
    let scratch = Scratch::create(admin(opts, db), name).await?;
    let result = live_on(opts, fleet, &broker, &scratch, side, db).await;
    let dropped = finish_db(opts, scratch).await;
    let result = result.with_context(|| format!("broker log:\n{}", broker.log()))?;
    dropped?;
    Ok(result)
}

async fn live_on(
    opts: &Options,
    fleet: &Fleet,
    broker: &Broker,
    scratch: &Scratch,
    side: Side,
    db: Db,
) -> anyhow::Result<LiveResult> {
    let mut consumer = match side {
        Side::Ingest { writers } => {
            let cfg = IngestConfig {
                mqtt_url: broker.url(),
                database_url: scratch.url.clone(),
                writers,
                timescaledb: format!("{:?}", db.mode()).to_lowercase(),
                ..opts.ingest.clone()
            };
            let mut ingest = Ingest::start(&cfg)?;
            ingest.wait_connected(Duration::from_secs(60)).await?;
            wait_subscribed(&mut ingest, broker).await?;
            Consumer::Ingest(ingest)
        }
        Side::Naive => {
            scratch.migrate(db.mode()).await?;
            start_naive(opts, &broker.url(), &scratch.url).await?
        }
    };
    let mut watch = Watched {
        procs: vec![
            ("mosquitto".into(), broker.pid()),
            ("harness+generator".into(), std::process::id()),
        ],
        postgres: true,
    };
    if let Some(pid) = consumer.pid() {
        let label = match side {
            Side::Ingest { .. } => "telltale-ingest",
            Side::Naive => "naive",
        };
        watch.procs.push((label.into(), pid));
    }
    let mut conn = scratch.connect().await?;
    let (host, port) = generate::parse_url(&broker.url())?;
    let gen_opts = generate::Options {
        host,
        port,
        connections: opts.connections,
        inflight: opts.inflight,
    };
    let before = watch.snapshot();
    let gen_fleet = fleet.clone();
    let mut generator = tokio::spawn(async move { generate::run(&gen_fleet, &gen_opts).await });
    let expected = fleet.samples();
    let mut published: Option<(generate::Report, generate::Times)> = None;
    let mut deadline: Option<Instant> = None;
    let poll = match side {
        Side::Ingest { .. } => Duration::from_millis(100),
        // A count(*) each time: keep it cheap for the naive one's small table.
        Side::Naive => Duration::from_millis(500),
    };
    let allowed = match side {
        Side::Ingest { .. } => opts.drain_timeout,
        Side::Naive => opts.naive_timeout,
    };
    let mut last_progress = (0u64, Instant::now());
    let mut stalled = false;
    let started = Instant::now();
    let mut memory_kib = Vec::new();
    let mut next_memory = started;
    let (done_at, mut committed) = loop {
        if Instant::now() >= next_memory {
            if let Some(kib) = consumer.pid().and_then(crate::proc::rss_kib) {
                memory_kib.push([started.elapsed().as_secs(), kib]);
            }
            next_memory += Duration::from_secs(10);
        }
        if published.is_none() {
            tokio::select! {
                r = &mut generator => {
                    let r = r.context("generator task")??;
                    deadline = Some(r.1.last_ack + allowed);
                    published = Some(r);
                }
                _ = tokio::time::sleep(poll) => {}
            }
        } else {
            tokio::time::sleep(poll).await;
        }
        consumer.check_running()?;
        let committed = match &consumer {
            Consumer::Ingest(i) => i
                .metrics()
                .await?
                .value("telltale_ingest_samples_total")
                .unwrap_or(0.0) as u64,
            Consumer::Naive(_) => db::telemetry_rows(&mut conn).await?,
        };
        let now = Instant::now();
        let moved = committed != last_progress.0;
        if moved {
            last_progress = (committed, now);
        }
        if published.is_some() && committed >= expected {
            break (now, committed);
        }
        if !moved
            && published.is_some()
            && now.duration_since(last_progress.1) >= opts.stall_timeout
        {
            stalled = true;
            break (now, committed);
        }
        if deadline.is_some_and(|d| now >= d) {
            break (now, committed);
        }
    };
    let cpu = before.until(&watch.snapshot());
    let ingest_metrics = match &consumer {
        Consumer::Ingest(i) => i
            .metrics()
            .await
            .ok()
            .map(|m| IngestCounters::from_metrics(&m)),
        Consumer::Naive(_) => None,
    };
    if stalled && let Consumer::Ingest(i) = &consumer {
        eprintln!(
            "telltale-ingest stalled: nothing committed for {:?}; its counters: {:?}\nits log:\n{}",
            opts.stall_timeout,
            ingest_metrics,
            i.log()
        );
    }
    consumer.stop().await;
    let Some((report, times)) = published else {
        bail!("the generator did not finish");
    };
    let complete = committed >= expected;
    let seconds = done_at.duration_since(times.start).as_secs_f64();
    let active = last_progress
        .1
        .min(done_at)
        .saturating_duration_since(times.start)
        .as_secs_f64();
    if let Consumer::Naive(_) = consumer {
        committed = db::telemetry_rows(&mut conn).await?;
    }
    let check = db::check(&mut conn, fleet.samples_per_batch).await?;
    let latency = db::latency(&mut conn).await?;
    let latency_by_minute = db::latency_by_minute(&mut conn).await?;
    let exact = check.exact(fleet.telemetry_messages(), fleet.samples_per_batch);
    use sqlx::Connection as _;
    let _ = conn.close().await;
    Ok(LiveResult {
        database: scratch.name.clone(),
        published: report,
        committed_samples: committed,
        complete,
        stalled,
        ingest_metrics,
        seconds: round3(seconds),
        samples_per_second: (committed as f64 / seconds.max(1e-6)).round(),
        active_seconds: round3(active),
        active_samples_per_second: (committed as f64 / active.max(1e-6)).round(),
        lag_seconds: complete.then(|| round3(done_at.duration_since(times.last_ack).as_secs_f64())),
        latency,
        latency_by_minute,
        memory_kib,
        check: Some(check),
        exact,
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(vec![]), None);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }
}
