//! `telltale-crm` as the benchmarks run it: `serve` on a database with free ports, tokens made
//! with its own `token create`, one shop open around the clock, and plaintext channels to its
//! gRPC API (one HTTP/2 connection each).

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tonic::Request;
use tonic::transport::{Channel, Endpoint};

use telltale_load::proc::free_port;
use telltale_wire::crm::v1 as pb;
use telltale_wire::crm::v1::catalog_service_client::CatalogServiceClient;

use crate::process::{Process, listening};

/// The tenant every benchmark works in.
pub const TENANT: &str = "bench";

/// `msg` with `authorization: Bearer token`.
pub fn req<T>(token: &str, msg: T) -> Request<T> {
    let mut r = Request::new(msg);
    if let Ok(v) = format!("Bearer {token}").parse() {
        r.metadata_mut().insert("authorization", v);
    }
    r
}

/// A running CRM.
#[derive(Debug)]
pub struct Crm {
    pub process: Process,
    pub grpc_port: u16,
    pub binary: PathBuf,
    pub database_url: String,
}

impl Crm {
    /// `telltale-crm serve` on `database_url` (it migrates), with a pool of `connections`
    /// (PostgreSQL), logging to `dir/crm.log`; returns once the gRPC port answers.
    pub async fn start(
        binary: &Path,
        database_url: &str,
        connections: u32,
        dir: &Path,
    ) -> anyhow::Result<Crm> {
        let key = dir.join("link.key");
        std::fs::write(&key, "crm-load-link-key-0123456789abcdef0123456789")
            .context("writing the link key")?;
        let (grpc, http, metrics) = (free_port()?, free_port()?, free_port()?);
        let args = [
            "serve".to_owned(),
            "--database-url".into(),
            database_url.into(),
            "--database-connections".into(),
            connections.to_string(),
            "--grpc-listen".into(),
            format!("127.0.0.1:{grpc}"),
            "--http-listen".into(),
            format!("127.0.0.1:{http}"),
            "--metrics-listen".into(),
            format!("127.0.0.1:{metrics}"),
            "--link-key-file".into(),
            key.display().to_string(),
            "--log".into(),
            "warn".into(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut process = Process::start("telltale-crm", binary, &args, &[], dir.join("crm.log"))?;
        process
            .wait_until("the gRPC port", Duration::from_secs(60), || listening(grpc))
            .await?;
        Ok(Crm {
            process,
            grpc_port: grpc,
            binary: binary.to_owned(),
            database_url: database_url.to_owned(),
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// A new HTTP/2 connection.
    pub async fn channel(&self) -> anyhow::Result<Channel> {
        Endpoint::from_shared(self.url())
            .context("the CRM's URL")?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to the CRM at {}", self.url()))
    }

    /// A token of `role` for the benchmark's tenant, by `telltale-crm token create`.
    pub async fn token(&self, role: &str, subject: &str) -> anyhow::Result<String> {
        let out = tokio::process::Command::new(&self.binary)
            .args([
                "token",
                "create",
                "--database-url",
                &self.database_url,
                "--tenant",
                TENANT,
                "--role",
                role,
                "--subject",
                subject,
            ])
            .output()
            .await
            .context("running telltale-crm token create")?;
        if !out.status.success() {
            bail!(
                "telltale-crm token create: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    /// The tenant's default shop, open every hour of every day.
    pub async fn put_shop(&self, manager: &str) -> anyhow::Result<()> {
        CatalogServiceClient::new(self.channel().await?)
            .put_shop(req(manager, shop()))
            .await
            .context("PutShop")?;
        Ok(())
    }
}

fn shop() -> pb::Shop {
    pb::Shop {
        id: "main".into(),
        name: "Bench Street Auto".into(),
        currency: "USD".into(),
        labor_rate_minor: 15_000,
        diagnostic_fee_minor: 12_000,
        supplies_bp: 1_000,
        supplies_cap_minor: 4_000,
        tax_bp: 825,
        tax_labor: false,
        utc_offset_minutes: 0,
        hours: (1..=7)
            .map(|d| pb::OpeningHours {
                weekday: d,
                open_minute: 0,
                close_minute: 1440,
            })
            .collect(),
        bays: 4,
        slot_minutes: 60,
        is_default: true,
        phone: "555-0100".into(),
        address: "1 Bench Street".into(),
    }
}

/// Vehicle number `n` of the benchmark's fleet: a valid 17-character VIN (check digit
/// included), distinct for every `n` below a million per `series` letter.
pub fn vin(series: char, n: u32) -> String {
    let candidate = format!("1FMCU9GD0K{series}{:06}", n % 1_000_000);
    match telltale_obd::vin::Vin::parse(&candidate) {
        Ok(v) => {
            let check = v.check_digit();
            candidate
                .chars()
                .enumerate()
                .map(|(i, c)| if i == 8 { check } else { c })
                .collect()
        }
        Err(_) => candidate,
    }
}

/// Real trouble codes from the knowledge base (`data/diagnostics/codes.csv`), so leads are
/// priced as the CRM prices real ones.
pub const CODES: &[&str] = &[
    "P0420", "P0301", "P0171", "P0128", "P0442", "P0455", "P0300", "P0113", "P0135", "P0141",
    "P0174", "P0401", "P0500", "P0507", "P0101", "P0302", "P0131", "P0456", "P0340", "P0335",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vins_are_valid_and_distinct() {
        let a = vin('A', 1);
        let b = vin('A', 2);
        assert_ne!(a, b);
        for v in [&a, &b, &vin('Z', 999_999)] {
            let parsed = telltale_obd::vin::Vin::parse(v).expect("a VIN");
            assert!(parsed.check_digit_valid(), "{v}");
        }
    }
}
