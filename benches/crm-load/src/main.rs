//! `telltale-crm-load`: the CRM's benchmarks. `api` measures the gRPC API under load; `fault`
//! follows faults from simulated cars to an advisor's watch stream.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Parser, Subcommand};
use telltale_crm_load::api::{self, Backend, Call};
use telltale_crm_load::cars::Binaries;
use telltale_crm_load::fault::{self, Variant};
use telltale_crm_load::process::sibling;

/// The CRM's benchmarks, against the real release binaries and this machine's PostgreSQL.
///
/// `api`: the gRPC API of `telltale-crm` under load, on PostgreSQL and SQLite: GetQuote,
/// CreateLead (repeated keys and new keys), ListLeads (keyset pages), with the health check
/// and GetQuote's own database calls as ceilings. Goal: at least 10,000 GetQuote/s on 2 cores.
///
/// `fault`: faults set on simulated cars' buses (firmware-sim) travel through telltale-agent,
/// Mosquitto, telltale-ingest (PostgreSQL) and telltale-crm to a WatchLeads stream; per fault
/// and per stage, with the CRM's own part alone beside it. Goal: p99 under 250 ms on loopback.
///
/// Both print a Markdown table with medians over interleaved rounds and ratios; `--json FILE`
/// writes everything measured. Build first:
/// `cargo build --release -p telltale-crm -p telltale-ingest -p telltale-agent -p firmware-sim
/// -p telltale-crm-load`. PostgreSQL: `--pg-url` (default `$TELLTALE_TEST_PG_URL` or
/// postgres://postgres@127.0.0.1:5432/postgres; scratch databases are created and dropped).
/// `fault` also needs the `mosquitto` binary (its own broker on a free port).
#[derive(Debug, Parser)]
#[command(name = "telltale-crm-load", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The gRPC API under load: requests per second and latency per call, per backend.
    Api(ApiArgs),
    /// Fault on the simulated bus -> lead on WatchLeads: latency per fault and per stage.
    Fault(FaultArgs),
}

#[derive(Debug, Clone, Args)]
struct Common {
    #[command(flatten)]
    pg: telltale_load::db::PgUrl,
    /// The telltale-crm binary (default: the one next to this executable).
    #[arg(long)]
    crm_bin: Option<PathBuf>,
    /// Rounds; everything measured is interleaved within each.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Also write the full report as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
struct ApiArgs {
    #[command(flatten)]
    common: Common,
    /// Backends, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "postgres,sqlite")]
    backends: Vec<Backend>,
    /// Calls, comma-separated, measured in this order: health (gRPC health check, no
    /// database), get-quote, get-quote-db (GetQuote's database calls in-process, no gRPC),
    /// create-repeat (CreateLead with a key already used: the same lead back), create-new
    /// (CreateLead with a new key: a new lead and priced quote), list-leads (keyset pages of 50).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "health,get-quote,get-quote-db,create-repeat,create-new,list-leads"
    )]
    calls: Vec<Call>,
    /// HTTP/2 connections to the server (the workers are spread over them).
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Requests in flight at once (closed loop: each sends its next on the answer).
    #[arg(long, default_value_t = 32)]
    workers: usize,
    /// Seconds each call is measured.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Seconds of load before each measurement starts counting.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Leads made (through CreateLead, not measured) before the calls: the quotes GetQuote
    /// reads, the keys create-repeat repeats, the pages list-leads walks.
    #[arg(long, default_value_t = 2000)]
    seed: u32,
    /// The server's PostgreSQL pool (`telltale-crm serve --database-connections`; its default
    /// is 10). SQLite always uses one connection.
    #[arg(long, default_value_t = 10)]
    crm_connections: u32,
}

#[derive(Debug, Clone, Args)]
struct FaultArgs {
    #[command(flatten)]
    common: Common,
    /// Simulated cars, each a firmware-sim process and a telltale-agent.
    #[arg(long, default_value_t = 4)]
    vehicles: usize,
    /// Faults each car confirms, one per drive (at most 20).
    #[arg(long, default_value_t = 13)]
    faults: usize,
    /// Vehicle seconds per second: a drive of 120 vehicle seconds takes 120/this.
    #[arg(long, default_value_t = 40.0)]
    time_scale: f64,
    /// The agent's dtc.period: how often it reads the trouble codes.
    #[arg(long, default_value = "1s")]
    dtc_period: String,
    /// Settings of the ingest to compare, comma-separated: `defaults` (its shipped
    /// batch.max_age 200ms and leads.poll_interval 1s) and `tuned` (the two below).
    #[arg(long, value_delimiter = ',', default_value = "defaults,tuned")]
    variants: Vec<String>,
    /// batch.max_age of the `tuned` setting.
    #[arg(long, default_value = "20ms")]
    tuned_batch_age: String,
    /// leads.poll_interval of the `tuned` setting.
    #[arg(long, default_value = "20ms")]
    tuned_poll: String,
    /// Skip the CRM-alone measurement (CreateLead straight to the CRM, timed to its event).
    #[arg(long)]
    no_direct: bool,
    /// The telltale-ingest binary (default: the one next to this executable).
    #[arg(long)]
    ingest_bin: Option<PathBuf>,
    /// The telltale-agent binary (default: next to this executable).
    #[arg(long)]
    agent_bin: Option<PathBuf>,
    /// The firmware-sim binary (default: next to this executable).
    #[arg(long)]
    sim_bin: Option<PathBuf>,
}

fn secs(v: f64, flag: &str) -> anyhow::Result<Duration> {
    Duration::try_from_secs_f64(v).with_context(|| format!("{flag} {v}: not a number of seconds"))
}

fn write_json<T: serde::Serialize>(path: &Option<PathBuf>, report: &T) -> anyhow::Result<()> {
    if let Some(path) = path {
        let text = serde_json::to_string_pretty(report).context("report as JSON")?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

async fn api_bench(a: ApiArgs) -> anyhow::Result<bool> {
    if a.workers == 0 || a.connections == 0 {
        bail!("--workers and --connections must be at least 1");
    }
    let opts = api::Options {
        crm_bin: a.common.crm_bin.unwrap_or_else(|| sibling("telltale-crm")),
        pg_admin_url: a.common.pg.url,
        backends: a.backends,
        calls: a.calls,
        rounds: a.common.rounds,
        connections: a.connections,
        workers: a.workers,
        warmup: secs(a.warmup, "--warmup")?,
        measure: secs(a.seconds, "--seconds")?,
        seed: a.seed,
        crm_connections: a.crm_connections,
    };
    let report = api::run(&opts, |l| eprintln!("{l}")).await?;
    print!("{}", telltale_crm_load::report::api(&report));
    write_json(&a.common.json, &report)?;
    if !report.all_correct() {
        eprintln!("telltale-crm-load: some calls failed or answered wrongly (see ERRORS above)");
        return Ok(false);
    }
    Ok(true)
}

async fn fault_bench(f: FaultArgs) -> anyhow::Result<bool> {
    let variants = f
        .variants
        .iter()
        .map(|v| match v.as_str() {
            "defaults" => Ok(Variant {
                name: "defaults".into(),
                batch_max_age: "200ms".into(),
                poll_interval: "1s".into(),
            }),
            "tuned" => Ok(Variant {
                name: "tuned".into(),
                batch_max_age: f.tuned_batch_age.clone(),
                poll_interval: f.tuned_poll.clone(),
            }),
            other => bail!("--variants: {other:?} is not defaults or tuned"),
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if f.vehicles == 0 || f.faults == 0 || f.faults > telltale_crm_load::crm::CODES.len() {
        bail!(
            "--vehicles at least 1, --faults from 1 to {}",
            telltale_crm_load::crm::CODES.len()
        );
    }
    if !(f.time_scale.is_finite() && f.time_scale > 0.0 && f.time_scale <= 400.0) {
        bail!("--time-scale {}: from above 0 to 400", f.time_scale);
    }
    let opts = fault::Options {
        crm_bin: f.common.crm_bin.unwrap_or_else(|| sibling("telltale-crm")),
        ingest_bin: f.ingest_bin.unwrap_or_else(|| sibling("telltale-ingest")),
        cars: Binaries {
            sim: f.sim_bin.unwrap_or_else(|| sibling("firmware-sim")),
            agent: f.agent_bin.unwrap_or_else(|| sibling("telltale-agent")),
        },
        pg_admin_url: f.common.pg.url,
        variants,
        direct: !f.no_direct,
        rounds: f.common.rounds,
        vehicles: f.vehicles,
        faults_per_vehicle: f.faults,
        time_scale: f.time_scale,
        dtc_period: f.dtc_period,
    };
    let report = fault::run(&opts, |l| eprintln!("{l}")).await?;
    print!("{}", telltale_crm_load::report::fault(&report));
    write_json(&f.common.json, &report)?;
    if !report.all_exact() {
        eprintln!("telltale-crm-load: a fault made no lead, or one too many (see NOT EXACT above)");
        return Ok(false);
    }
    Ok(true)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("telltale-crm-load: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Command::Api(a) => api_bench(a).await,
            Command::Fault(f) => fault_bench(f).await,
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(3),
        Err(e) => {
            eprintln!("telltale-crm-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}
