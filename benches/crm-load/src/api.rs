//! The CRM's gRPC API under load, on PostgreSQL and on SQLite, round after round (within a
//! round every backend and every call, so a noisy neighbour touches them all alike).
//!
//! Per backend and round: a fresh database (a scratch PostgreSQL database, or an SQLite file),
//! the release `telltale-crm serve` on it, tokens, one shop, `seed` leads made through
//! `CreateLead` (not measured; PostgreSQL then `ANALYZE`d, as autovacuum would have done on a
//! server in service), then each call for a fixed time by `workers` concurrent requests spread
//! over `connections` HTTP/2 connections:
//!
//! - `health`: the gRPC health check; the server answers it from memory, so it is the ceiling
//!   for everything that goes through tonic on this machine (client included).
//! - `get-quote`: `GetQuote` of a random seeded quote (advisor token).
//! - `get-quote-db`: what `GetQuote` asks the database per call (the quote; the token's
//!   principal comes from the CRM's token cache after the first call, so it is looked up once
//!   here too) through the CRM's own `Db`, in this process, with the server's pool size: the
//!   database's ceiling for `GetQuote`, without gRPC.
//! - `create-repeat`: `CreateLead` again with a seeded lead's key (integration token): the
//!   idempotent answer, the same lead, `created = false`.
//! - `create-new`: `CreateLead` with a new key, a new VIN and a real code: a new lead with its
//!   priced quote, `created = true`.
//! - `list-leads`: `ListLeads` pages of 50, newest first, each worker walking the keyset pages
//!   to the end and starting again.
//!
//! Every answer is checked (the quote asked for, the lead the key made, a full page...); a
//! wrong one counts as an error, never as a request.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use tonic::transport::Channel;

use telltale_load::db::Scratch;
use telltale_load::proc::{CpuUse, Watched};
use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::lead_service_client::LeadServiceClient;
use telltale_wire::crm::v1::quote_service_client::QuoteServiceClient;

use crate::crm::{CODES, Crm, req, vin};
use crate::load::{self, Outcome, Shape};
use crate::stats::{median, ratio};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Postgres,
    Sqlite,
}

/// One of the measured calls (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Call {
    Health,
    GetQuote,
    GetQuoteDb,
    CreateRepeat,
    CreateNew,
    ListLeads,
}

impl Call {
    pub fn label(self) -> &'static str {
        match self {
            Call::Health => "Health/Check (no database): ceiling",
            Call::GetQuote => "GetQuote",
            Call::GetQuoteDb => "GetQuote's queries in-process: DB ceiling",
            Call::CreateRepeat => "CreateLead, repeated key",
            Call::CreateNew => "CreateLead, new key (new lead)",
            Call::ListLeads => "ListLeads, keyset pages of 50",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub crm_bin: PathBuf,
    pub pg_admin_url: String,
    pub backends: Vec<Backend>,
    pub calls: Vec<Call>,
    pub rounds: u32,
    pub connections: usize,
    pub workers: usize,
    pub warmup: Duration,
    pub measure: Duration,
    pub seed: u32,
    /// The server's PostgreSQL pool (`--database-connections`).
    pub crm_connections: u32,
}

/// One call measured once.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Measurement {
    pub round: u32,
    pub backend: Backend,
    pub call: Call,
    pub outcome: Outcome,
    pub cpu: CpuUse,
}

/// Medians over the rounds of one backend and call.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Row {
    pub backend: Backend,
    pub call: Call,
    pub per_second: f64,
    pub per_round: Vec<f64>,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: u64,
    pub first_error: Option<String>,
    /// This call's rate over the health check's (the gRPC ceiling), median of the per-round
    /// ratios.
    pub over_health: Option<f64>,
    /// `GetQuote` over its own queries in-process (the database ceiling).
    pub over_db: Option<f64>,
    /// Median CPU per process, % of one core.
    pub cpu: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub cores: usize,
    pub connections: usize,
    pub workers: usize,
    pub seconds: f64,
    pub seed: u32,
    pub crm_connections: u32,
    pub loadavg_before: Option<[f64; 3]>,
    pub loadavg_after: Option<[f64; 3]>,
    pub measurements: Vec<Measurement>,
    pub rows: Vec<Row>,
}

impl Report {
    /// Every measurement answered without a wrong or failed call.
    pub fn all_correct(&self) -> bool {
        self.measurements
            .iter()
            .all(|m| m.outcome.errors == 0 && m.outcome.requests > 0)
    }

    pub fn row(&self, backend: Backend, call: Call) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.backend == backend && r.call == call)
    }
}

/// A lead made while seeding: what the later calls ask for.
#[derive(Debug, Clone)]
struct Seeded {
    key: String,
    vin: String,
    code: &'static str,
    lead_id: String,
    quote_id: String,
}

/// Everything the calls of one backend in one round share.
struct Target {
    channels: Vec<Channel>,
    advisor: String,
    integration: String,
    seeded: Vec<Seeded>,
    database_url: String,
}

fn create_request(key: &str, vin: &str, code: &str) -> pb::CreateLeadRequest {
    pb::CreateLeadRequest {
        idempotency_key: key.into(),
        vin: vin.into(),
        device_id: "crm-load".into(),
        reason: pb::LeadReason::ConfirmedDtc as i32,
        codes: vec![code.into()],
        ecu: 0x7E8,
        detected_unix_ms: 0,
    }
}

/// Makes `count` leads with `workers` concurrent calls.
async fn seed(
    channels: &[Channel],
    token: &str,
    count: u32,
    workers: usize,
) -> anyhow::Result<Vec<Seeded>> {
    let next = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers.max(1) {
        let mut client = LeadServiceClient::new(channels[w % channels.len()].clone());
        let (next, token) = (next.clone(), token.to_owned());
        tasks.spawn(async move {
            let mut made = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return Ok::<_, anyhow::Error>(made);
                }
                let key = format!("seed-{i}");
                let vin = vin('S', i);
                let code = CODES[i as usize % CODES.len()];
                let answer = client
                    .create_lead(req(&token, create_request(&key, &vin, code)))
                    .await
                    .with_context(|| format!("seeding lead {i}"))?
                    .into_inner();
                let lead = answer.lead.context("CreateLead answered without a lead")?;
                if !answer.created {
                    bail!("seeding lead {i}: created = false for a new key");
                }
                made.push(Seeded {
                    key,
                    vin,
                    code,
                    lead_id: lead.id,
                    quote_id: lead.quote_id,
                });
            }
        });
    }
    let mut all = Vec::new();
    while let Some(done) = tasks.join_next().await {
        all.extend(done.context("a seeding task")??);
    }
    Ok(all)
}

/// Measures one call against `target`.
async fn measure(call: Call, t: &Arc<Target>, shape: Shape, round: u32) -> anyhow::Result<Outcome> {
    let pick = |n: u64, len: usize| (n.wrapping_mul(2_654_435_761) % len.max(1) as u64) as usize;
    let out = match call {
        Call::Health => {
            let t = t.clone();
            load::run(shape, move |w, _| {
                let ch = t.channels[w % t.channels.len()].clone();
                async move {
                    let mut c = tonic_health::pb::health_client::HealthClient::new(ch);
                    let r = c
                        .check(tonic_health::pb::HealthCheckRequest {
                            service: String::new(),
                        })
                        .await
                        .map_err(|e| format!("Check: {e}"))?
                        .into_inner();
                    let serving =
                        tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
                    if r.status != serving {
                        return Err(format!("Check: status {}", r.status));
                    }
                    Ok(())
                }
            })
            .await
        }
        Call::GetQuote => {
            let t = t.clone();
            load::run(shape, move |w, n| {
                let ch = t.channels[w % t.channels.len()].clone();
                let s = &t.seeded[pick(n, t.seeded.len())];
                let (id, token) = (s.quote_id.clone(), t.advisor.clone());
                async move {
                    let q = QuoteServiceClient::new(ch)
                        .get_quote(req(&token, pb::GetQuoteRequest { id: id.clone() }))
                        .await
                        .map_err(|e| format!("GetQuote: {e}"))?
                        .into_inner();
                    if q.id != id || q.options.is_empty() {
                        return Err(format!(
                            "GetQuote {id}: got {} with {} options",
                            q.id,
                            q.options.len()
                        ));
                    }
                    Ok(())
                }
            })
            .await
        }
        Call::GetQuoteDb => {
            let db =
                telltale_crm::db::Db::connect(&t.database_url, shape.workers.clamp(1, 10) as u32)
                    .await
                    .context("connecting in-process")?;
            let db = Arc::new(db);
            let hash = telltale_crm::auth::token_hash(&t.advisor);
            let who = db
                .principal(&hash, telltale_crm::app::system_clock())
                .await
                .context("the advisor's principal")?
                .context("the advisor's token is unknown")?;
            let tenant = Arc::new(who.tenant);
            let t = t.clone();
            let out = {
                let db = db.clone();
                load::run(shape, move |_, n| {
                    let (db, tenant) = (db.clone(), tenant.clone());
                    let id = t.seeded[pick(n, t.seeded.len())].quote_id.clone();
                    async move {
                        let q = db
                            .quote(&tenant, &id)
                            .await
                            .map_err(|e| format!("quote: {e}"))?;
                        if q.id != id || q.body.options.is_empty() {
                            return Err(format!("quote {id}: got {}", q.id));
                        }
                        Ok(())
                    }
                })
                .await
            };
            db.close().await;
            out
        }
        Call::CreateRepeat => {
            let t = t.clone();
            load::run(shape, move |w, n| {
                let ch = t.channels[w % t.channels.len()].clone();
                let s = t.seeded[pick(n, t.seeded.len())].clone();
                let token = t.integration.clone();
                async move {
                    let a = LeadServiceClient::new(ch)
                        .create_lead(req(&token, create_request(&s.key, &s.vin, s.code)))
                        .await
                        .map_err(|e| format!("CreateLead (repeat): {e}"))?
                        .into_inner();
                    let id = a.lead.map(|l| l.id).unwrap_or_default();
                    if a.created || id != s.lead_id {
                        return Err(format!(
                            "CreateLead {} again: created {}, lead {id} not {}",
                            s.key, a.created, s.lead_id
                        ));
                    }
                    Ok(())
                }
            })
            .await
        }
        Call::CreateNew => {
            let t = t.clone();
            load::run(shape, move |w, n| {
                let ch = t.channels[w % t.channels.len()].clone();
                let token = t.integration.clone();
                let key = format!("new-{round}-{n}");
                let vin = vin('N', n as u32);
                let code = CODES[n as usize % CODES.len()];
                async move {
                    let a = LeadServiceClient::new(ch)
                        .create_lead(req(&token, create_request(&key, &vin, code)))
                        .await
                        .map_err(|e| format!("CreateLead (new): {e}"))?
                        .into_inner();
                    let lead = a.lead.unwrap_or_default();
                    if !a.created || lead.vin != vin || lead.quote_id.is_empty() {
                        return Err(format!(
                            "CreateLead {key}: created {}, vin {}",
                            a.created, lead.vin
                        ));
                    }
                    Ok(())
                }
            })
            .await
        }
        Call::ListLeads => {
            let pages: Arc<Vec<Mutex<String>>> = Arc::new(
                (0..shape.workers.max(1))
                    .map(|_| Mutex::new(String::new()))
                    .collect(),
            );
            let t = t.clone();
            load::run(shape, move |w, _| {
                let ch = t.channels[w % t.channels.len()].clone();
                let token = t.advisor.clone();
                let pages = pages.clone();
                let page = pages[w].lock().map(|p| p.clone()).unwrap_or_default();
                async move {
                    let r = LeadServiceClient::new(ch)
                        .list_leads(req(
                            &token,
                            pb::ListLeadsRequest {
                                page_size: 50,
                                page_token: page.clone(),
                                ..Default::default()
                            },
                        ))
                        .await
                        .map_err(|e| format!("ListLeads: {e}"))?
                        .into_inner();
                    let last = r.next_page_token.is_empty();
                    if r.leads.is_empty() || (!last && r.leads.len() != 50) {
                        return Err(format!(
                            "ListLeads after {page:?}: {} leads, next {:?}",
                            r.leads.len(),
                            r.next_page_token
                        ));
                    }
                    if let Ok(mut p) = pages[w].lock() {
                        *p = r.next_page_token;
                    }
                    Ok(())
                }
            })
            .await
        }
    };
    Ok(out)
}

/// One backend in one round: a fresh database and server, seeded, every call measured.
async fn one_backend(
    opts: &Options,
    backend: Backend,
    round: u32,
    progress: &mut impl FnMut(&str),
) -> anyhow::Result<Vec<Measurement>> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let scratch = match backend {
        Backend::Postgres => Some(
            Scratch::create(
                &opts.pg_admin_url,
                &format!("telltale_crmbench_{}_{round}", std::process::id()),
            )
            .await?,
        ),
        Backend::Sqlite => None,
    };
    let url = match &scratch {
        Some(s) => s.url.clone(),
        None => format!("sqlite:{}", dir.path().join("crm.db").display()),
    };
    let result = async {
        let mut crm = Crm::start(&opts.crm_bin, &url, opts.crm_connections, dir.path()).await?;
        let manager = crm.token("manager", "boss").await?;
        let integration = crm.token("integration", "ingest").await?;
        let advisor = crm.token("advisor", "ann").await?;
        crm.put_shop(&manager).await?;
        let mut channels = Vec::new();
        for _ in 0..opts.connections.max(1) {
            channels.push(crm.channel().await?);
        }
        let seeded = seed(&channels, &integration, opts.seed.max(1), opts.workers).await?;
        // Statistics, as autovacuum keeps them on a server in service: on a table filled a
        // moment ago the planner guesses a handful of rows and may sort them all for a page.
        if let Some(s) = &scratch {
            let mut conn = s.connect().await?;
            sqlx::query("ANALYZE").execute(&mut conn).await.context("ANALYZE")?;
        }
        let target = Arc::new(Target {
            channels,
            advisor,
            integration,
            seeded,
            database_url: url.clone(),
        });
        let watch = Watched {
            procs: vec![
                ("crm".into(), crm.process.pid()),
                ("bench".into(), std::process::id()),
            ],
            postgres: backend == Backend::Postgres,
        };
        let shape = Shape {
            workers: opts.workers,
            warmup: opts.warmup,
            measure: opts.measure,
        };
        let mut out = Vec::new();
        for call in &opts.calls {
            let before = watch.snapshot();
            let outcome = measure(*call, &target, shape, round).await?;
            let cpu = before.until(&watch.snapshot());
            crm.process.check_running()?;
            progress(&format!(
                "round {round} {backend:?} {:<44} {:>8.0}/s  p50 {:.2} ms  p99 {:.2} ms  errors {}{}",
                call.label(),
                outcome.per_second,
                outcome.latency.p50_ms,
                outcome.latency.p99_ms,
                outcome.errors,
                outcome.first_error.as_deref().map(|e| format!(" (first: {e})")).unwrap_or_default()
            ));
            out.push(Measurement {
                round,
                backend,
                call: *call,
                outcome,
                cpu,
            });
        }
        crm.process.stop();
        Ok::<_, anyhow::Error>(out)
    }
    .await;
    if let Some(s) = scratch {
        s.drop_now().await?;
    }
    result
}

/// Runs every round; `progress` gets a line per measurement.
pub async fn run(opts: &Options, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    if opts.backends.contains(&Backend::Postgres) {
        telltale_load::db::reachable(&opts.pg_admin_url, Duration::from_secs(5)).await?;
    }
    let loadavg_before = telltale_load::proc::loadavg();
    let mut measurements = Vec::new();
    for round in 1..=opts.rounds.max(1) {
        for backend in &opts.backends {
            measurements.extend(one_backend(opts, *backend, round, &mut progress).await?);
        }
    }
    let rows = summarise(opts, &measurements);
    Ok(Report {
        cores: std::thread::available_parallelism().map_or(0, usize::from),
        connections: opts.connections,
        workers: opts.workers,
        seconds: opts.measure.as_secs_f64(),
        seed: opts.seed,
        crm_connections: opts.crm_connections,
        loadavg_before,
        loadavg_after: telltale_load::proc::loadavg(),
        measurements,
        rows,
    })
}

fn summarise(opts: &Options, all: &[Measurement]) -> Vec<Row> {
    let mut rows = Vec::new();
    for backend in &opts.backends {
        for call in &opts.calls {
            let mine: Vec<&Measurement> = all
                .iter()
                .filter(|m| m.backend == *backend && m.call == *call)
                .collect();
            let med = |f: &dyn Fn(&Measurement) -> f64| {
                median(mine.iter().map(|m| f(m)).collect()).unwrap_or(0.0)
            };
            // Ratios per round (the two were measured minutes apart at most), then the median.
            let per_round_ratio = |other: Call| {
                median(
                    mine.iter()
                        .filter_map(|m| {
                            let o = all.iter().find(|x| {
                                x.backend == *backend && x.call == other && x.round == m.round
                            })?;
                            ratio(Some(m.outcome.per_second), Some(o.outcome.per_second))
                        })
                        .collect(),
                )
            };
            let mut names: Vec<String> = mine
                .iter()
                .flat_map(|m| m.cpu.process_pct.keys().cloned())
                .collect();
            names.sort();
            names.dedup();
            let cpu = names
                .into_iter()
                .map(|n| {
                    let v = median(
                        mine.iter()
                            .filter_map(|m| m.cpu.process_pct.get(&n).copied())
                            .collect(),
                    )
                    .unwrap_or(0.0);
                    (n, v)
                })
                .collect();
            rows.push(Row {
                backend: *backend,
                call: *call,
                per_second: med(&|m| m.outcome.per_second),
                per_round: mine.iter().map(|m| m.outcome.per_second).collect(),
                p50_ms: med(&|m| m.outcome.latency.p50_ms),
                p90_ms: med(&|m| m.outcome.latency.p90_ms),
                p99_ms: med(&|m| m.outcome.latency.p99_ms),
                max_ms: med(&|m| m.outcome.latency.max_ms),
                errors: mine.iter().map(|m| m.outcome.errors).sum(),
                first_error: mine.iter().find_map(|m| m.outcome.first_error.clone()),
                over_health: if *call == Call::Health {
                    None
                } else {
                    per_round_ratio(Call::Health)
                },
                over_db: if *call == Call::GetQuote {
                    per_round_ratio(Call::GetQuoteDb)
                } else {
                    None
                },
                cpu,
            });
        }
    }
    rows
}
