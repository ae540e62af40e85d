//! The commands a person runs against the gRPC API: import, leads list/watch, quote show.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;

use anyhow::{Context as _, bail};
use tokio_stream::StreamExt as _;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Status};

use telltale_crm::catalog::{LaborGuide, PartsCatalog};
use telltale_crm::db::CatalogKind;
use telltale_crm::lifecycle::Stage;
use telltale_crm::money::{Currency, parse_amount, parse_percent, show as money};
use telltale_crm::slots::parse_hours;
use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::catalog_service_client::CatalogServiceClient;
use telltale_wire::crm::v1::lead_service_client::LeadServiceClient;
use telltale_wire::crm::v1::quote_service_client::QuoteServiceClient;

#[derive(Debug, clap::Args)]
pub(crate) struct ApiArgs {
    /// The CRM's gRPC address.
    #[arg(
        long,
        env = "TELLTALE_CRM_URL",
        default_value = "http://127.0.0.1:50051"
    )]
    server: String,
    /// CA certificate (PEM) to check an https:// server against, when it is not a public CA.
    #[arg(long, env = "TELLTALE_CRM_CA_FILE")]
    ca_file: Option<std::path::PathBuf>,
    /// Bearer token (from `telltale-crm token create`).
    #[arg(long, env = "TELLTALE_CRM_TOKEN", hide_env_values = true)]
    token: String,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum LeadsCommand {
    /// Newest first.
    List {
        #[command(flatten)]
        api: ApiArgs,
        /// Only these statuses (new, contacted, quoted, accepted, booked, in_service,
        /// closed_won, closed_lost); repeat or separate with commas.
        #[arg(long, value_delimiter = ',')]
        status: Vec<String>,
        #[arg(long, default_value = "")]
        shop: String,
        /// can_wait, service_soon or stop_now.
        #[arg(long)]
        min_severity: Option<String>,
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
    /// Print new and changed leads as they happen, until Ctrl-C.
    Watch {
        #[command(flatten)]
        api: ApiArgs,
        #[arg(long, default_value = "")]
        shop: String,
    },
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ShopCommand {
    /// Create or replace a shop (manager token).
    Put(Box<ShopArgs>),
    /// The tenant's shops.
    List {
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Debug, clap::Args)]
pub(crate) struct ShopArgs {
    #[command(flatten)]
    api: ApiArgs,
    #[arg(long)]
    id: String,
    #[arg(long)]
    name: String,
    /// ISO 4217 code.
    #[arg(long, default_value = "USD")]
    currency: String,
    /// Per hour, e.g. 150.00.
    #[arg(long)]
    labor_rate: String,
    /// Charged on every quote, e.g. 120.00.
    #[arg(long)]
    diagnostic_fee: String,
    /// Shop supplies as a share of labor, e.g. 10%.
    #[arg(long, default_value = "0%")]
    supplies: String,
    /// The most shop supplies on one job, e.g. 40.00.
    #[arg(long, default_value = "0")]
    supplies_cap: String,
    /// Sales tax on parts and supplies, e.g. 8.25%.
    #[arg(long, default_value = "0%")]
    tax: String,
    /// Tax labor and the diagnostic fee too.
    #[arg(long)]
    tax_labor: bool,
    /// The shop's offset from UTC in minutes (-300 for US Eastern standard time).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    utc_offset_minutes: i32,
    /// Opening hours, e.g. "mon-fri 08:00-17:30; sat 09:00-13:00".
    #[arg(long, default_value = "mon-fri 08:00-17:00")]
    hours: String,
    /// Appointments that can run at once.
    #[arg(long, default_value_t = 2)]
    bays: u32,
    #[arg(long, default_value_t = 60)]
    slot_minutes: u32,
    /// Leads for vehicles without a home shop come here.
    #[arg(long)]
    default: bool,
    #[arg(long, default_value = "")]
    phone: String,
    #[arg(long, default_value = "")]
    address: String,
}

#[derive(Debug, clap::Subcommand)]
pub(crate) enum QuoteCommand {
    /// A quote with its options and lines.
    Show {
        id: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

type Auth = Box<dyn FnMut(Request<()>) -> Result<Request<()>, Status> + Send>;

async fn channel(api: &ApiArgs) -> anyhow::Result<(Channel, Auth)> {
    let mut endpoint = Endpoint::from_shared(api.server.clone())
        .with_context(|| format!("server address {:?}", api.server))?;
    if api.server.starts_with("https://") {
        let mut tls = tonic::transport::ClientTlsConfig::new().with_native_roots();
        if let Some(ca) = &api.ca_file {
            let pem = std::fs::read(ca).with_context(|| format!("--ca-file {}", ca.display()))?;
            tls = tls.ca_certificate(tonic::transport::Certificate::from_pem(pem));
        }
        endpoint = endpoint.tls_config(tls).context("TLS settings")?;
    }
    let channel = endpoint
        .connect()
        .await
        .with_context(|| format!("cannot reach the CRM at {}", api.server))?;
    let header: MetadataValue<_> = format!("Bearer {}", api.token.trim())
        .parse()
        .context("the token has characters a header cannot carry")?;
    let auth: Auth = Box::new(move |mut req: Request<()>| {
        req.metadata_mut().insert("authorization", header.clone());
        Ok(req)
    });
    Ok((channel, auth))
}

fn status_error(e: Status) -> anyhow::Error {
    anyhow::anyhow!("{:?}: {}", e.code(), e.message())
}

fn stage_name(n: i32) -> String {
    Stage::ALL
        .into_iter()
        .find(|s| {
            pb::LeadStatus::try_from(n)
                .map(|p| p.as_str_name().eq_ignore_ascii_case(s.name()))
                .unwrap_or(false)
        })
        .map_or_else(|| "?".to_owned(), |s| s.name().to_owned())
}

fn severity_name(n: i32) -> &'static str {
    match pb::Severity::try_from(n) {
        Ok(pb::Severity::StopNow) => "STOP NOW",
        Ok(pb::Severity::ServiceSoon) => "soon",
        Ok(pb::Severity::CanWait) => "can wait",
        _ => "unknown",
    }
}

fn utc(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M").to_string())
        .unwrap_or_default()
}

fn codes(lead: &pb::Lead) -> String {
    let c: Vec<&str> = lead.faults.iter().map(|f| f.code.as_str()).collect();
    if c.is_empty() {
        "(lamp)".to_owned()
    } else {
        c.join(",")
    }
}

pub(crate) async fn leads(command: LeadsCommand) -> anyhow::Result<()> {
    match command {
        LeadsCommand::List {
            api,
            status,
            shop,
            min_severity,
            limit,
        } => {
            let (channel, auth) = channel(&api).await?;
            let mut client = LeadServiceClient::with_interceptor(channel, auth);
            let mut statuses = Vec::new();
            for s in status.iter().filter(|s| !s.is_empty()) {
                let stage = Stage::parse(s).with_context(|| format!("status {s:?}"))?;
                let n = pb::LeadStatus::from_str_name(&stage.name().to_ascii_uppercase())
                    .with_context(|| format!("status {s:?}"))?;
                statuses.push(n as i32);
            }
            let min_severity = match min_severity.as_deref() {
                None => 0,
                Some(s) => {
                    pb::Severity::from_str_name(&s.to_ascii_uppercase()).with_context(|| {
                        format!("severity {s:?}: can_wait, service_soon or stop_now")
                    })? as i32
                }
            };
            let page = client
                .list_leads(pb::ListLeadsRequest {
                    status: statuses,
                    shop_id: shop,
                    min_severity,
                    page_size: limit,
                    ..Default::default()
                })
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "{:<27} {:<11} {:<9} {:<17} {:<12} {:<14} {:<10} CREATED (UTC)",
                "ID", "STATUS", "SEVERITY", "VIN", "CODES", "SHOP", "ADVISOR"
            );
            for l in &page.leads {
                println!(
                    "{:<27} {:<11} {:<9} {:<17} {:<12} {:<14} {:<10} {}",
                    l.id,
                    stage_name(l.status),
                    severity_name(l.severity),
                    l.vin,
                    codes(l),
                    l.shop_id,
                    if l.advisor_id.is_empty() {
                        "-"
                    } else {
                        &l.advisor_id
                    },
                    utc(l.created_unix_ms)
                );
            }
            if !page.next_page_token.is_empty() {
                eprintln!("(more leads: raise --limit or filter)");
            }
            Ok(())
        }
        LeadsCommand::Watch { api, shop } => {
            let (channel, auth) = channel(&api).await?;
            let mut client = LeadServiceClient::with_interceptor(channel, auth);
            let mut stream = client
                .watch_leads(pb::WatchLeadsRequest { shop_id: shop })
                .await
                .map_err(status_error)?
                .into_inner();
            eprintln!("watching leads; Ctrl-C to stop");
            loop {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => return Ok(()),
                    event = stream.next() => match event {
                        None => bail!("the CRM ended the stream"),
                        Some(Err(e)) => return Err(status_error(e)),
                        Some(Ok(e)) => {
                            let Some(l) = e.lead else { continue };
                            let what = if e.change == pb::lead_event::Change::Created as i32 { "new" } else { "changed" };
                            let first = l.faults.first().map(|f| f.description.as_str()).unwrap_or("");
                            println!("{} {:<7} {} {} {} [{}] {} {}", utc(l.updated_unix_ms), what, l.id, l.vin, codes(&l), severity_name(l.severity), stage_name(l.status), first);
                            let _ = std::io::stdout().flush();
                        }
                    }
                }
            }
        }
    }
}

pub(crate) async fn quote(command: QuoteCommand) -> anyhow::Result<()> {
    let QuoteCommand::Show { id, api } = command;
    let (channel, auth) = channel(&api).await?;
    let mut client = QuoteServiceClient::with_interceptor(channel, auth);
    let q = client
        .get_quote(pb::GetQuoteRequest { id })
        .await
        .map_err(status_error)?
        .into_inner();
    let status = pb::QuoteStatus::try_from(q.status)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("QUOTE_STATUS_")
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    println!(
        "quote {} v{} ({status}) for lead {} · vehicle {} · shop {}",
        q.id, q.version, q.lead_id, q.vin, q.shop_id
    );
    for f in &q.faults {
        println!(
            "  {} [{}] {}",
            f.code,
            severity_name(f.severity),
            if f.description.is_empty() {
                "needs diagnosis"
            } else {
                &f.description
            }
        );
    }
    println!(
        "  estimate: most likely {}, range {} to {}",
        money(q.most_likely_minor, &q.currency),
        money(q.low_minor, &q.currency),
        money(q.high_minor, &q.currency)
    );
    for o in &q.options {
        let mark = if o.id == q.accepted_option_id {
            " (accepted)"
        } else if o.recommended {
            " (recommended)"
        } else {
            ""
        };
        println!(
            "\n  [{}] {}{mark}: {}",
            o.id,
            o.title,
            money(o.total_minor, &q.currency)
        );
        for l in &o.lines {
            println!(
                "      {:<70} {:>14}",
                l.description,
                money(l.amount_minor, &q.currency)
            );
        }
    }
    println!();
    for a in &q.assumptions {
        println!("  * {a}");
    }
    Ok(())
}

pub(crate) async fn shop(command: ShopCommand) -> anyhow::Result<()> {
    match command {
        ShopCommand::Put(a) => {
            let currency =
                Currency::parse(&a.currency).map_err(|e| anyhow::anyhow!("--currency: {e}"))?;
            let amount = |flag: &str, text: &str| {
                parse_amount(text, currency)
                    .map(|m| m.minor)
                    .map_err(|e| anyhow::anyhow!("{flag}: {e}"))
            };
            let percent = |flag: &str, text: &str| {
                parse_percent(text).map_err(|e| anyhow::anyhow!("{flag}: {e}"))
            };
            let hours = parse_hours(&a.hours)
                .map_err(|e| anyhow::anyhow!("--hours: {e}"))?
                .into_iter()
                .map(|h| pb::OpeningHours {
                    weekday: h.weekday,
                    open_minute: h.open_minute,
                    close_minute: h.close_minute,
                })
                .collect();
            let shop = pb::Shop {
                id: a.id.clone(),
                name: a.name.clone(),
                currency: a.currency.clone(),
                labor_rate_minor: amount("--labor-rate", &a.labor_rate)?,
                diagnostic_fee_minor: amount("--diagnostic-fee", &a.diagnostic_fee)?,
                supplies_bp: percent("--supplies", &a.supplies)?,
                supplies_cap_minor: amount("--supplies-cap", &a.supplies_cap)?,
                tax_bp: percent("--tax", &a.tax)?,
                tax_labor: a.tax_labor,
                utc_offset_minutes: a.utc_offset_minutes,
                hours,
                bays: a.bays,
                slot_minutes: a.slot_minutes,
                is_default: a.default,
                phone: a.phone.clone(),
                address: a.address.clone(),
            };
            let (channel, auth) = channel(&a.api).await?;
            let saved = CatalogServiceClient::with_interceptor(channel, auth)
                .put_shop(shop)
                .await
                .map_err(status_error)?
                .into_inner();
            println!(
                "saved shop {} ({}){}",
                saved.id,
                saved.name,
                if saved.is_default {
                    ", the default shop"
                } else {
                    ""
                }
            );
            Ok(())
        }
        ShopCommand::List { api } => {
            let (channel, auth) = channel(&api).await?;
            let shops = CatalogServiceClient::with_interceptor(channel, auth)
                .list_shops(pb::ListShopsRequest {})
                .await
                .map_err(status_error)?
                .into_inner()
                .shops;
            println!(
                "{:<16} {:<28} {:>14} {:>14} {:>6} {:>4}  DEFAULT",
                "ID", "NAME", "LABOR/H", "DIAGNOSIS", "TAX", "BAYS"
            );
            for s in shops {
                println!(
                    "{:<16} {:<28} {:>14} {:>14} {:>5.2}% {:>4}  {}",
                    s.id,
                    s.name,
                    money(s.labor_rate_minor, &s.currency),
                    money(s.diagnostic_fee_minor, &s.currency),
                    f64::from(s.tax_bp) / 100.0,
                    s.bays,
                    if s.is_default { "yes" } else { "" }
                );
            }
            Ok(())
        }
    }
}

/// Checks the file here (every bad row by line, before anything is sent), then streams it to
/// the CRM with a progress bar; the CRM checks again and replaces the catalog in one go.
pub(crate) async fn import(api: &ApiArgs, kind: CatalogKind, file: &Path) -> anyhow::Result<()> {
    let body =
        std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "catalog.csv".into());
    let rows = match kind {
        CatalogKind::Parts => PartsCatalog::parse(&name, &body).map(|c| c.len()),
        CatalogKind::Labor => LaborGuide::parse(&name, &body).map(|g| g.len()),
    };
    let rows = match rows {
        Ok(n) => n,
        Err(errors) => bail!(
            "{} has bad rows; nothing was imported:\n{errors}",
            file.display()
        ),
    };
    let (channel, auth) = channel(api).await?;
    let mut client = CatalogServiceClient::with_interceptor(channel, auth);
    let total = body.len();
    let chunks: Vec<Vec<u8>> = body
        .as_bytes()
        .chunks(64 * 1024)
        .map(<[u8]>::to_vec)
        .collect();
    let tty = std::io::stderr().is_terminal();
    let mut sent = 0usize;
    let file_name = name.clone();
    let stream = tokio_stream::iter(chunks.into_iter().enumerate().map(move |(i, data)| {
        sent += data.len();
        progress(&file_name, sent, total, tty);
        pb::ImportChunk {
            file_name: if i == 0 {
                file_name.clone()
            } else {
                String::new()
            },
            data,
        }
    }));
    let reply = match kind {
        CatalogKind::Parts => client.import_parts(stream).await,
        CatalogKind::Labor => client.import_labor(stream).await,
    }
    .map_err(status_error)?
    .into_inner();
    eprintln!();
    println!(
        "imported {} rows of {} ({rows} checked here)",
        reply.rows, name
    );
    Ok(())
}

fn progress(name: &str, done: usize, total: usize, tty: bool) {
    let pct = (done * 100).checked_div(total).unwrap_or(100);
    let filled = pct / 5;
    let bar: String = "#".repeat(filled) + &"-".repeat(20 - filled);
    if tty {
        eprint!("\rimporting {name} [{bar}] {pct:>3}% ({done} of {total} bytes)");
    } else {
        eprintln!("importing {name} [{bar}] {pct:>3}% ({done} of {total} bytes)");
    }
}
