//! `telltale demo`: the whole system on one machine from one command.
//!
//! An embedded MQTT broker (rumqttd; or `--mqtt URL`), the ingest on an SQLite file (or
//! `--postgres URL`), the CRM with its gRPC API and quote page, and a small fleet: each car a
//! `firmware-sim` vehicle on an in-process CAN bus read by a real agent. As faults appear,
//! [`show`] prints what happens in words: the car, the code and what it means, the lead, the
//! quote and the owner's link. Everything runs in this process; Ctrl-C (or `--duration`) stops
//! it in order: vehicles and agents, the ingest, the servers.

mod broker;
mod show;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use telltale_crm::app::{Crm, system_clock};
use telltale_crm::auth::{self, Action, Role};
use telltale_crm::data::Data;
use telltale_crm::db::{Db, ShopRecord, TokenRecord};
use telltale_crm::link::LinkKey;
use telltale_crm::money::Currency;
use telltale_crm::slots::Hours;

/// The scenarios with a fault, used in turn when `--scenario` is not given.
const FAULTY: [&str; 6] = [
    "catalyst",
    "misfire",
    "thermostat",
    "evap-leak",
    "lost-comm",
    "hybrid",
];
const TENANT: &str = "demo";

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// How many simulated vehicles.
    #[arg(long, default_value_t = 4)]
    vehicles: u32,
    /// Stop after this long (e.g. 90s, 5m); without it, run until Ctrl-C.
    #[arg(long, value_parser = telltale_service::config::parse_duration)]
    duration: Option<Duration>,
    /// A firmware-sim scenario for the vehicles; repeat for a mix. Default: every scenario
    /// with a fault, in turn (`firmware-sim --list-scenarios` lists them).
    #[arg(long)]
    scenario: Vec<String>,
    /// Vehicle seconds per real second: at 60 the first faults are confirmed within a minute.
    #[arg(long, default_value_t = 60.0)]
    time_scale: f64,
    /// Run the store and the CRM on this PostgreSQL instead of SQLite files.
    #[arg(long)]
    postgres: Option<String>,
    /// Use this MQTT broker instead of the embedded one.
    #[arg(long)]
    mqtt: Option<String>,
    /// Where the owner's quote page listens (port 0: any free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    http_listen: SocketAddr,
    /// Where the CRM's gRPC API listens (for `telltale-crm leads watch` and the like).
    #[arg(long, default_value = "127.0.0.1:50051")]
    grpc_listen: SocketAddr,
    /// Keep the databases and spools here (kept afterwards); a temporary directory otherwise.
    #[arg(long)]
    dir: Option<PathBuf>,
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("no free local port")?;
    Ok(listener.local_addr()?)
}

async fn bind(addr: SocketAddr, what: &str, flag: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr).await.with_context(|| {
        format!("cannot listen on {addr} for the {what}; pass {flag} 127.0.0.1:0 for any free port")
    })
}

/// The demo garage: open every day 07:00–19:00 UTC, three bays, one-hour slots.
fn garage() -> ShopRecord {
    ShopRecord {
        id: "demo-garage".into(),
        name: "Demo Garage".into(),
        currency: Currency::parse("USD").unwrap_or_else(|_| unreachable!("a valid code")),
        labor_rate_minor: 15_000,
        diagnostic_fee_minor: 12_000,
        supplies_bp: 1_000,
        supplies_cap_minor: 4_000,
        tax_bp: 825,
        tax_labor: false,
        utc_offset_minutes: 0,
        hours: (1..=7)
            .map(|weekday| Hours {
                weekday,
                open_minute: 7 * 60,
                close_minute: 19 * 60,
            })
            .collect(),
        bays: 3,
        slot_minutes: 60,
        is_default: true,
        phone: "555-0100".into(),
        address: "1 Demo Street".into(),
    }
}

/// A token of `role` for the demo tenant: its secret.
async fn token(db: &Db, role: Role, subject: &str) -> anyhow::Result<String> {
    let t = auth::new_token().map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let record = TokenRecord {
        id: auth::new_id("tk_").map_err(|e| anyhow::anyhow!("no randomness: {e}"))?,
        tenant: TENANT.into(),
        role,
        subject: subject.into(),
        label: "telltale demo".into(),
        created_ms: system_clock(),
        expires_ms: None,
        revoked_ms: None,
    };
    db.add_token(&record, &t.hash).await?;
    Ok(t.secret)
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    if args.vehicles == 0 || args.vehicles > 200 {
        bail!("--vehicles must be 1 to 200");
    }
    if !(args.time_scale.is_finite() && args.time_scale > 0.0 && args.time_scale <= 10_000.0) {
        bail!("--time-scale must be above 0 and at most 10000");
    }
    let names: Vec<String> = if args.scenario.is_empty() {
        FAULTY.iter().map(|s| (*s).to_owned()).collect()
    } else {
        args.scenario.clone()
    };
    let mut scenarios = Vec::new();
    for name in &names {
        let mut s =
            firmware_sim::load_scenario(name).with_context(|| format!("--scenario {name}"))?;
        s.time_scale = args.time_scale;
        scenarios.push(s);
    }
    let (dir, temporary) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("telltale-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let shutdown = CancellationToken::new();

    // The broker.
    let mqtt_url = match &args.mqtt {
        Some(url) => url.clone(),
        None => {
            let addr = free_addr()?;
            broker::start(addr)?;
            format!("mqtt://{addr}")
        }
    };

    // The CRM, with a tenant, its garage and the ingest's token.
    let crm_url = match &args.postgres {
        Some(url) => url.clone(),
        None => format!("sqlite:{}", dir.join("crm.db").display()),
    };
    let db = Db::connect(&crm_url, 5).await.with_context(|| {
        format!(
            "the CRM's database {}",
            telltale_service::config::redact_url(&crm_url)
        )
    })?;
    db.migrate().await.context("migrating the CRM's database")?;
    db.put_tenant(TENANT, "Demo Motors", system_clock()).await?;
    db.put_shop(TENANT, &garage()).await?;
    let ingest_token = token(&db, Role::Integration, "ingest").await?;
    let advisor_token = token(&db, Role::Advisor, "demo-advisor").await?;
    let grpc = bind(args.grpc_listen, "CRM's gRPC API", "--grpc-listen").await?;
    let http = bind(args.http_listen, "quote page", "--http-listen").await?;
    let grpc_addr = grpc.local_addr()?;
    let public_url = format!("http://{}", http.local_addr()?);
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
    let data = Data::load(None).map_err(|e| anyhow::anyhow!("the built-in data: {e}"))?;
    let crm = Arc::new(Crm::new(
        db,
        Arc::new(data),
        LinkKey::new(&key).map_err(anyhow::Error::msg)?,
        &public_url,
    ));
    let advisor = crm
        .authorize(Some(&format!("Bearer {advisor_token}")), Action::WorkQuotes)
        .await?;
    let events = crm.subscribe();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn({
        let (crm, stop) = (crm.clone(), shutdown.clone());
        async move {
            telltale_crm::server::run(crm, grpc, None, http, stop)
                .await
                .context("the CRM")
        }
    });

    // The ingest.
    let store_url = match &args.postgres {
        Some(url) => url.clone(),
        None => format!("sqlite://{}", dir.join("telltale.db").display()),
    };
    let ingest = telltale_ingest::config::FileConfig::parse(&format!(
        r#"
[mqtt]
url = "{mqtt_url}"
client_id = "telltale-demo-ingest"
shared = false
[database]
url = "{store_url}"
[batch]
max_age = "100ms"
[leads]
crm_url = "http://{grpc_addr}"
token = "{ingest_token}"
poll_interval = "200ms"
[metrics]
listen = ""
"#
    ))
    .map_err(|e| anyhow::anyhow!("the demo's ingest settings: {e}"))?
    .validate()?;
    // The ingest's future holds sqlx borrows the compiler cannot prove `Send` across every
    // lifetime, so it gets a thread and a runtime of its own (as in `telltale-ingest`).
    tasks.spawn({
        let stop = shutdown.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?
                    .block_on(telltale_ingest::run(ingest, stop.cancelled_owned()))
                    .context("the ingest")
            })
            .await?
        }
    });

    // The fleet: a simulated car and a real agent each, on an in-process bus.
    let mut cars = Vec::new();
    for i in 0..args.vehicles {
        let base = &scenarios[i as usize % scenarios.len()];
        let scenario = firmware_sim::fleet::fleet_scenario(base, i);
        let vehicle = Arc::new(Mutex::new(firmware_sim::Vehicle::from_scenario(&scenario)));
        let bus = format!("demo-{i}");
        let stop = shutdown.clone();
        let node = telltale_can::virtual_bus::VirtualBus::named(&bus).node();
        tasks.spawn(async move {
            firmware_sim::serve::serve_can(vehicle, node, stop.cancelled_owned()).await;
            Ok(())
        });
        let device = format!("demo-car-{i}");
        let settings = telltale_agent::config::FileConfig::parse(&format!(
            r#"
device_id = "{device}"
link = "sim:{bus}"
state_dir = "{state}"
[mqtt]
url = "{mqtt_url}"
reconnect_min = "100ms"
reconnect_max = "2s"
status_period = "10s"
[spool]
fsync = "never"
[dtc]
period = "2s"
[status]
listen = ""
"#,
            state = dir.join(&device).display()
        ))
        .map_err(|e| anyhow::anyhow!("the demo's agent settings: {e}"))?
        .validate()?;
        let stop = shutdown.clone();
        tasks.spawn(async move {
            telltale_agent::run(settings, stop.cancelled_owned())
                .await
                .context("an agent")
        });
        cars.push((device, scenario));
    }

    show::banner(
        &cars,
        &mqtt_url,
        &public_url,
        grpc_addr,
        &crm_url,
        &advisor_token,
    );
    let names = cars
        .iter()
        .map(|(_, s)| {
            let id = &s.identity;
            (
                id.vin.to_string(),
                format!("{} {} {}", id.year, id.make, id.model),
            )
        })
        .collect();
    tasks.spawn(show::leads(
        crm.clone(),
        advisor,
        names,
        events,
        shutdown.clone(),
    ));

    let deadline = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let failure = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        () = deadline => None,
        done = tasks.join_next() => match done {
            Some(Ok(Err(e))) => Some(e),
            Some(Err(e)) => Some(anyhow::anyhow!("a demo task panicked: {e}")),
            _ => None,
        },
    };
    println!("\nstopping...");
    shutdown.cancel();
    let drained = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(done) = tasks.join_next().await {
            if let Ok(Err(e)) = done {
                tracing::warn!(cause = %e, "while stopping");
            }
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!("some parts did not stop within 20 s");
    }
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        println!("the demo's databases and spools are in {}", dir.display());
    }
    match failure {
        Some(e) => Err(e),
        None => {
            println!("stopped");
            Ok(())
        }
    }
}
