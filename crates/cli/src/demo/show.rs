//! What the demo prints: who is in the fleet, then each new lead in words as it happens.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use firmware_sim::Scenario;
use telltale_crm::app::{Crm, DEFAULT_LINK_VALIDITY, LeadChange};
use telltale_crm::auth::Principal;
use telltale_crm::db::Lead;
use telltale_crm::money::show as money;

pub(crate) fn banner(
    cars: &[(String, Scenario)],
    mqtt: &str,
    pages: &str,
    grpc: SocketAddr,
    crm_db: &str,
    advisor_token: &str,
) {
    println!(
        "Telltale demo: {} simulated vehicles, each read by its own agent\n",
        cars.len()
    );
    for (device, s) in cars {
        let id = &s.identity;
        println!(
            "  {device:<12} {} {} {} {}  scenario {}: {}",
            id.year, id.make, id.model, id.vin, s.name, s.description
        );
    }
    println!("\n  MQTT broker  {mqtt}");
    println!(
        "  CRM          gRPC on {grpc}, quote pages on {pages}, database {}",
        telltale_service::config::redact_url(crm_db)
    );
    println!(
        "  watch leads  TELLTALE_CRM_URL=http://{grpc} TELLTALE_CRM_TOKEN={advisor_token} telltale-crm leads watch"
    );
    println!("\nWaiting for the cars to report faults (Ctrl-C stops)...\n");
}

/// Prints every new lead of the demo tenant, with its quote and the owner's link (the demo
/// plays the advisor and sends each quote at once).
pub(crate) async fn leads(
    crm: Arc<Crm>,
    advisor: Principal,
    cars: HashMap<String, String>,
    mut events: broadcast::Receiver<(String, LeadChange)>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut shops: HashMap<String, String> = HashMap::new();
    loop {
        let event = tokio::select! {
            () = shutdown.cancelled() => return Ok(()),
            e = events.recv() => e,
        };
        let (tenant, change) = match event {
            Ok(e) => e,
            Err(RecvError::Lagged(n)) => {
                println!("({n} lead changes went by too fast to print)");
                continue;
            }
            Err(RecvError::Closed) => return Ok(()),
        };
        if tenant != advisor.tenant || !change.created {
            continue;
        }
        let car = cars.get(&change.lead.vin).map_or("", String::as_str);
        if let Err(e) = print_lead(&crm, &advisor, &change.lead, car, start, &mut shops).await {
            println!("lead {}: cannot show its quote: {e}", change.lead.id);
        }
    }
}

async fn print_lead(
    crm: &Crm,
    advisor: &Principal,
    lead: &Lead,
    car: &str,
    start: Instant,
    shops: &mut HashMap<String, String>,
) -> anyhow::Result<()> {
    let (quote, url) = crm
        .send_quote(advisor, &lead.quote_id, DEFAULT_LINK_VALIDITY)
        .await?;
    if !shops.contains_key(&lead.shop_id) {
        let shop = crm.db().shop(&advisor.tenant, &lead.shop_id).await?;
        shops.insert(lead.shop_id.clone(), shop.name);
    }
    let t = start.elapsed().as_secs();
    let b = &quote.body;
    println!(
        "[{:02}:{:02}] {} · {car} · VIN {}",
        t / 60,
        t % 60,
        lead.device_id,
        lead.vin
    );
    if lead.faults.is_empty() {
        println!("        check-engine lamp on, no code read");
    }
    for f in &lead.faults {
        let what = if f.description.is_empty() {
            "not in the knowledge base: a technician diagnoses it"
        } else {
            &f.description
        };
        let system = if f.system.is_empty() {
            String::new()
        } else {
            format!(" ({})", f.system)
        };
        println!("        {}{system}: {what}", f.code);
        if let Some(s) = f.severity {
            println!("        urgency: {}", s.words());
        }
    }
    println!(
        "        lead {} at {}",
        lead.id,
        shops
            .get(&lead.shop_id)
            .map_or(lead.shop_id.as_str(), String::as_str)
    );
    println!(
        "        quote: {} most likely, {} to {} over the likely repairs",
        money(b.most_likely_minor, &b.currency),
        money(b.low_minor, &b.currency),
        money(b.high_minor, &b.currency)
    );
    let choices: Vec<String> = b
        .options
        .iter()
        .map(|o| format!("{} {}", o.id, money(o.total_minor, &b.currency)))
        .collect();
    println!("        choices: {}", choices.join(", "));
    println!("        owner's link: {url}\n");
    Ok(())
}
