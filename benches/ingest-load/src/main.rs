//! `telltale-load`: the ingest load benchmark's command line. `bench` (the default) runs the
//! harness; `generate` and `naive` run the load generator or the naive ingester alone, against
//! a broker of your own.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use telltale_load::bench::{self, Part};
use telltale_load::fleet::Fleet;
use telltale_load::generate;
use telltale_load::ingest::{IngestConfig, sibling_binary};

/// The ingest load benchmark: telltale-ingest against a COPY ceiling and a naive ingester.
#[derive(Debug, Parser)]
#[command(name = "telltale-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    bench: BenchArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the benchmark (the default): parts (a) ingest, (b) COPY, (c) naive, (d) store, in
    /// rounds, with medians and ratios.
    Bench(BenchArgs),
    /// Publish a fleet to a broker and report what the broker acknowledged.
    Generate {
        /// mqtt://HOST:PORT
        #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
        mqtt_url: String,
        #[command(flatten)]
        fleet: FleetArgs,
    },
    /// Bytes per sample on disk: the fleet's telemetry stored through the store into plain
    /// PostgreSQL, TimescaleDB (before and after compression) and SQLite.
    Footprint {
        #[command(flatten)]
        fleet: FleetArgs,
        #[command(flatten)]
        pg: telltale_load::db::PgUrl,
        /// A PostgreSQL with TimescaleDB loaded (shared_preload_libraries) to make a scratch
        /// database on; without it TimescaleDB is reported as not measured.
        #[arg(long)]
        tsdb_url: Option<String>,
        /// Messages per store call, as the ingest's batches.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Also write the report as JSON to this file.
        #[arg(long)]
        json: Option<PathBuf>,
    },
    /// The naive ingester alone: one INSERT per sample, autocommit (runs until killed).
    Naive {
        #[arg(long)]
        mqtt_url: String,
        /// A migrated database (its telemetry table is written to).
        #[arg(long)]
        database_url: String,
    },
}

/// The fleet and how it publishes.
#[derive(Debug, Clone, Args)]
struct FleetArgs {
    /// Vehicles to simulate.
    #[arg(long, default_value_t = 10_000)]
    vehicles: u32,
    /// Samples in each telemetry batch (the agent sends up to 200; 20 signals at 1 Hz for 2 s
    /// make 40).
    #[arg(long, default_value_t = 40)]
    samples_per_batch: u32,
    /// Seconds between two batches of one vehicle. The agent batches every 10 s; the default
    /// 1 s offers ten times a real fleet's rate (400,000 samples/s from 10,000 vehicles), more
    /// than the ingest commits on two cores, so the run measures its capacity.
    #[arg(long, default_value_t = 1.0)]
    interval: f64,
    /// Telemetry batches per second over the whole fleet; overrides --interval.
    #[arg(long)]
    rate: Option<f64>,
    /// Seconds of publishing; each vehicle sends max(1, round(seconds / interval)) batches.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// MQTT connections the vehicles are spread over.
    #[arg(long, default_value_t = 50)]
    connections: u32,
    /// Unacknowledged QoS 1 publishes per generator connection.
    #[arg(long, default_value_t = 100)]
    inflight: u16,
}

impl FleetArgs {
    fn fleet(&self) -> anyhow::Result<Fleet> {
        if self.vehicles == 0 || self.samples_per_batch == 0 {
            bail!("--vehicles and --samples-per-batch must be at least 1");
        }
        let interval = match self.rate {
            Some(r) if r > 0.0 && r.is_finite() => f64::from(self.vehicles) / r,
            Some(r) => bail!("--rate {r}: must be a positive number of batches per second"),
            None => self.interval,
        };
        if !(interval.is_finite() && interval > 0.0) {
            bail!("--interval {interval}: must be a positive number of seconds");
        }
        if !(self.seconds.is_finite() && self.seconds > 0.0) {
            bail!("--seconds {}: must be positive", self.seconds);
        }
        let batches = (self.seconds / interval).round().max(1.0);
        Ok(Fleet {
            vehicles: self.vehicles,
            samples_per_batch: self.samples_per_batch,
            batches_per_vehicle: batches.min(f64::from(u32::MAX)) as u32,
            interval: Duration::from_secs_f64(interval),
            run: chrono::Utc::now().timestamp_micros().unsigned_abs(),
        })
    }
}

#[derive(Debug, Clone, Args)]
struct BenchArgs {
    #[command(flatten)]
    fleet: FleetArgs,
    /// Rounds; the parts are interleaved within each.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Parts to run (comma-separated): ingest, copy, naive, store, ingest1 (the ingest with one
    /// writer).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ingest,copy,naive,store,ingest1"
    )]
    only: Vec<Part>,
    #[command(flatten)]
    pg: telltale_load::db::PgUrl,
    /// A PostgreSQL with TimescaleDB loaded (shared_preload_libraries): the ingest and COPY
    /// parts also run there, with telemetry in a hypertable.
    #[arg(long)]
    tsdb_url: Option<String>,
    /// The ingest's batch.writers: batches written at once.
    #[arg(long, default_value_t = 2)]
    ingest_writers: usize,
    /// The telltale-ingest binary (default: the one next to this executable).
    #[arg(long)]
    ingest_bin: Option<PathBuf>,
    /// The ingest's MQTT protocol: 3.1.1 or 5.
    #[arg(long, default_value = "3.1.1")]
    ingest_protocol: String,
    /// The ingest's batch.max_messages.
    #[arg(long, default_value_t = 500)]
    ingest_batch: usize,
    /// The ingest's batch.max_age.
    #[arg(long, default_value = "200ms")]
    ingest_batch_age: String,
    /// The ingest's mqtt.max_in_flight (its default).
    #[arg(long, default_value_t = 1000)]
    ingest_in_flight: u16,
    /// The broker's max_inflight_messages: what actually bounds the messages the ingest holds.
    #[arg(long, default_value_t = 1000)]
    broker_inflight: u16,
    /// Seconds without a commit, after the publishing ended, before a live part is stopped as
    /// stalled.
    #[arg(long, default_value_t = 30)]
    stall_timeout: u64,
    /// Seconds the naive ingester gets after the publishing ends.
    #[arg(long, default_value_t = 30)]
    naive_timeout: u64,
    /// Seconds the ingest gets after the publishing ends to commit everything.
    #[arg(long, default_value_t = 300)]
    drain_timeout: u64,
    /// Keep the scratch databases (their names are in the report).
    #[arg(long)]
    keep_db: bool,
    /// Also write the full report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

async fn bench(args: &BenchArgs) -> anyhow::Result<bool> {
    let fleet = args.fleet.fleet()?;
    let binary = match &args.ingest_bin {
        Some(p) => p.clone(),
        None => sibling_binary("telltale-ingest").context(
            "telltale-ingest not found next to telltale-load: `cargo build --release -p telltale-ingest -p telltale-load`, or pass --ingest-bin",
        )?,
    };
    if !matches!(args.ingest_protocol.as_str(), "3.1.1" | "5") {
        bail!("--ingest-protocol: 3.1.1 or 5");
    }
    let opts = bench::Options {
        fleet,
        connections: args.fleet.connections.max(1),
        inflight: args.fleet.inflight,
        rounds: args.rounds.max(1),
        parts: args.only.clone(),
        admin_url: args.pg.url.clone(),
        tsdb_admin_url: args.tsdb_url.clone(),
        ingest: IngestConfig {
            binary,
            mqtt_url: String::new(),
            protocol: args.ingest_protocol.clone(),
            database_url: String::new(),
            batch_max_messages: args.ingest_batch.max(1),
            batch_max_age: args.ingest_batch_age.clone(),
            max_in_flight: args.ingest_in_flight.max(1),
            max_connections: 4,
            writers: args.ingest_writers.max(1),
            timescaledb: "off".into(),
        },
        self_exe: std::env::current_exe().context("this executable's path")?,
        broker_inflight: args.broker_inflight.max(1),
        naive_timeout: Duration::from_secs(args.naive_timeout),
        stall_timeout: Duration::from_secs(args.stall_timeout.max(1)),
        drain_timeout: Duration::from_secs(args.drain_timeout),
        keep_db: args.keep_db,
    };
    let report = bench::run(&opts, |line| eprintln!("{line}")).await?;
    print!("{}", telltale_load::report::render(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("report as JSON")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    if !report.all_exact() {
        eprintln!("telltale-load: rows missing or doubled (see `exact` and `check` above)");
        return Ok(false);
    }
    Ok(true)
}

async fn run(cli: Cli) -> anyhow::Result<bool> {
    match cli.command {
        None => bench(&cli.bench).await,
        Some(Command::Bench(args)) => bench(&args).await,
        Some(Command::Generate { mqtt_url, fleet }) => {
            let (host, port) = generate::parse_url(&mqtt_url)?;
            let opts = generate::Options {
                host,
                port,
                connections: fleet.connections.max(1),
                inflight: fleet.inflight,
            };
            let (report, _) = generate::run(&fleet.fleet()?, &opts).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(&report).context("report as JSON")?
            );
            Ok(true)
        }
        Some(Command::Footprint {
            fleet,
            pg,
            tsdb_url,
            batch,
            json,
        }) => {
            let opts = telltale_load::footprint::Options {
                fleet: fleet.fleet()?,
                pg_admin_url: pg.url,
                tsdb_admin_url: tsdb_url,
                batch,
            };
            let report = telltale_load::footprint::run(&opts, |l| eprintln!("{l}")).await?;
            print!("{}", telltale_load::footprint::render(&report));
            if let Some(path) = &json {
                let text = serde_json::to_string_pretty(&report).context("report as JSON")?;
                std::fs::write(path, text)
                    .with_context(|| format!("writing {}", path.display()))?;
            }
            Ok(true)
        }
        Some(Command::Naive {
            mqtt_url,
            database_url,
        }) => {
            telltale_load::naive::run(&mqtt_url, &database_url).await?;
            Ok(true)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telltale-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("telltale-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
