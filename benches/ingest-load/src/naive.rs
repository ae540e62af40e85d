//! The naive ingester, the baseline of part (c): how a first attempt would do it. It subscribes
//! to the fleet's topics (QoS 1, the client library acknowledging on receipt), decodes each
//! telemetry batch and INSERTs each sample in its own statement with autocommit, one after the
//! other on one connection. No batching, no deduplication, no acknowledgement after commit.
//!
//! It is deliberately plain, not deliberately slow: statements are prepared once (sqlx caches
//! them) and the rows are the same as the store's.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context as _, bail};
use chrono::{DateTime, Utc};
use prost::Message as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use sqlx::{Connection as _, PgConnection};
use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;

use crate::generate::parse_url;

/// The line printed on stdout once the subscriptions are acknowledged.
pub const READY: &str = "naive ingester subscribed";

const INSERT: &str = "INSERT INTO telemetry (vin, device_id, signal, value, text, unit, pid, ecu,
                                            device_time, received_at, boot_id, seq)
                      VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// Runs until the broker connection fails or the process is killed.
pub async fn run(mqtt_url: &str, database_url: &str) -> anyhow::Result<()> {
    let (host, port) = parse_url(mqtt_url)?;
    let mut db = PgConnection::connect(database_url)
        .await
        .with_context(|| format!("connecting to {database_url}"))?;
    let mut o = MqttOptions::new("telltale-load-naive", host, port);
    o.set_keep_alive(Duration::from_secs(30))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 64);
    let mut subscribed = 0;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                for kind in [
                    Kind::Telemetry,
                    Kind::Dtc,
                    Kind::Info,
                    Kind::Status,
                    Kind::CmdResult,
                ] {
                    client
                        .subscribe(topic::fleet_filter(kind, None), QoS::AtLeastOnce)
                        .await
                        .context("queueing a subscription")?;
                }
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                subscribed += 1;
                if subscribed == 5 {
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "{READY}").context("stdout")?;
                    out.flush().context("stdout")?;
                }
            }
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let received_at = Utc::now();
                if let Ok((device, Kind::Telemetry)) = topic::parse(&p.topic) {
                    match v1::TelemetryBatch::decode(p.payload.as_ref()) {
                        Ok(batch) => insert(&mut db, device, &batch, received_at).await?,
                        Err(e) => eprintln!("{}: not a TelemetryBatch: {e}", p.topic),
                    }
                }
            }
            Ok(_) => {}
            Err(e) => bail!("broker connection failed: {e}"),
        }
    }
}

async fn insert(
    db: &mut PgConnection,
    device: &str,
    batch: &v1::TelemetryBatch,
    received_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let header = batch.header.clone().unwrap_or_default();
    for s in &batch.samples {
        let device_time = DateTime::from_timestamp_millis(s.device_unix_ms).unwrap_or(received_at);
        sqlx::query(INSERT)
            .bind(&batch.vin)
            .bind(device)
            .bind(&s.signal)
            .bind(s.value)
            .bind((!s.text.is_empty()).then_some(&s.text))
            .bind(&s.unit)
            .bind(i64::from(s.pid))
            .bind(i64::from(s.ecu_can_id))
            .bind(device_time)
            .bind(received_at)
            .bind(&header.boot_id)
            .bind(i64::try_from(header.seq).unwrap_or(i64::MAX))
            .execute(&mut *db)
            .await
            .context("inserting a sample")?;
    }
    Ok(())
}
