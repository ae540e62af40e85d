//! Part (d), the store's write path on its own (no broker, no ingest process): the same
//! batches the ingest would seal (`batch_messages` telemetry messages from as many vehicles),
//! written three ways, each into a fresh database, one transaction per batch:
//!
//! - `store`: `Store::ingest`, everything the ingest really does per batch (dedupe keys,
//!   advisory locks, seq and gap state, devices, vehicles, telemetry);
//! - `unnest`: only the telemetry rows, with the `INSERT ... SELECT FROM UNNEST` statement the
//!   store used for them before it switched to COPY on these figures (the other tables still
//!   use that form);
//! - `copy`: only the telemetry rows, with binary `COPY`.
//!
//! `unnest` against `copy` answers the issue's "binary COPY or array UNNEST, whichever measures
//! faster"; `store` against `unnest` shows what the rest of a batch costs.

use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection};
use telltale_store::{Envelope, Store, StoreOptions, TimescaleMode, Uplink};
use telltale_wire::v1;

use crate::copy::{self, Encoder};
use crate::db::Scratch;
use crate::fleet::Fleet;

/// How one way of writing did.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WayResult {
    pub batches: u64,
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Median time to write and commit one batch.
    pub median_batch_ms: f64,
}

/// The three ways, side by side.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StoreBatchesResult {
    pub batch_messages: u32,
    pub samples_per_batch: u32,
    pub store: WayResult,
    pub unnest: WayResult,
    pub copy: WayResult,
}

/// One ingest batch: device ids and their telemetry messages.
type Batch = Vec<(String, v1::TelemetryBatch)>;

/// The fleet's telemetry cut into batches of `per_batch` messages in publishing order.
fn batches(fleet: &Fleet, per_batch: u32) -> Vec<Batch> {
    let start = Utc::now().timestamp_millis();
    let interval_ms = i64::try_from(fleet.interval.as_millis()).unwrap_or(i64::MAX);
    let mut all = Vec::new();
    let mut cur = Vec::new();
    for k in 0..fleet.batches_per_vehicle {
        let created = start + i64::from(k) * interval_ms;
        for v in 0..fleet.vehicles {
            cur.push((fleet.device_id(v), fleet.telemetry(v, k, created)));
            if cur.len() == per_batch as usize {
                all.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        all.push(cur);
    }
    all
}

fn envelopes(batch: &Batch, received_at: DateTime<Utc>) -> Vec<Envelope> {
    batch
        .iter()
        .map(|(d, m)| Envelope {
            device_id: d.clone(),
            received_at,
            message: Uplink::Telemetry(m.clone()),
        })
        .collect()
}

fn way(times: &mut [f64], rows: u64) -> WayResult {
    let seconds: f64 = times.iter().sum();
    times.sort_by(f64::total_cmp);
    let median = times.get(times.len() / 2).copied().unwrap_or(0.0);
    WayResult {
        batches: times.len() as u64,
        rows,
        seconds: crate::generate::round3(seconds),
        rows_per_second: (rows as f64 / seconds.max(1e-6)).round(),
        median_batch_ms: (median * 10_000.0).round() / 10.0,
    }
}

async fn by_store(scratch: &Scratch, fleet: &Fleet, all: &[Batch]) -> anyhow::Result<WayResult> {
    let store = Store::connect(
        &scratch.url,
        StoreOptions {
            max_connections: 2,
            ..StoreOptions::default()
        },
    )
    .await
    .context("connecting the store")?;
    // Each vehicle's info first (seq 1), as in the live run, so no gap is recorded.
    let now = Utc::now();
    let infos: Vec<Envelope> = (0..fleet.vehicles)
        .map(|v| Envelope {
            device_id: fleet.device_id(v),
            received_at: now,
            message: Uplink::Info(fleet.info(v, now.timestamp_millis())),
        })
        .collect();
    for chunk in infos.chunks(500) {
        store.ingest(chunk).await.context("storing the infos")?;
    }
    let mut times = Vec::with_capacity(all.len());
    let mut rows = 0;
    for batch in all {
        let env = envelopes(batch, Utc::now());
        let started = Instant::now();
        let outcome = store.ingest(&env).await.context("Store::ingest")?;
        times.push(started.elapsed().as_secs_f64());
        rows += outcome.samples;
    }
    if let Store::Postgres(pool, _) = store {
        pool.close().await;
    }
    Ok(way(&mut times, rows))
}

/// The store's former telemetry statement (`crates/store/src/pg.rs` before binary COPY).
const UNNEST: &str = "INSERT INTO telemetry (vin, device_id, signal, value, text, unit, pid, ecu,
                                    device_time, received_at, boot_id, seq)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[],
                                  $6::text[], $7::int8[], $8::int8[], $9::timestamptz[],
                                  $10::timestamptz[], $11::bytea[], $12::int8[])";

async fn by_unnest(conn: &mut PgConnection, all: &[Batch]) -> anyhow::Result<WayResult> {
    let mut times = Vec::with_capacity(all.len());
    let mut rows = 0u64;
    for batch in all {
        let received_at = Utc::now();
        let started = Instant::now();
        let n: usize = batch.iter().map(|(_, m)| m.samples.len()).sum();
        let mut vin = Vec::with_capacity(n);
        let mut device = Vec::with_capacity(n);
        let mut signal = Vec::with_capacity(n);
        let mut value = Vec::with_capacity(n);
        let mut text: Vec<Option<String>> = Vec::with_capacity(n);
        let mut unit = Vec::with_capacity(n);
        let mut pid = Vec::with_capacity(n);
        let mut ecu = Vec::with_capacity(n);
        let mut device_time = Vec::with_capacity(n);
        let mut received = Vec::with_capacity(n);
        let mut boot = Vec::with_capacity(n);
        let mut seq = Vec::with_capacity(n);
        for (d, m) in batch {
            let h = m.header.clone().unwrap_or_default();
            for s in &m.samples {
                vin.push(m.vin.clone());
                device.push(d.clone());
                signal.push(s.signal.clone());
                value.push(s.value);
                text.push((!s.text.is_empty()).then(|| s.text.clone()));
                unit.push(s.unit.clone());
                pid.push(i64::from(s.pid));
                ecu.push(i64::from(s.ecu_can_id));
                device_time
                    .push(DateTime::from_timestamp_millis(s.device_unix_ms).unwrap_or(received_at));
                received.push(received_at);
                boot.push(h.boot_id.clone());
                seq.push(i64::try_from(h.seq).unwrap_or(i64::MAX));
            }
        }
        let mut tx = conn.begin().await.context("BEGIN")?;
        let done = sqlx::query(UNNEST)
            .bind(vin)
            .bind(device)
            .bind(signal)
            .bind(value)
            .bind(text)
            .bind(unit)
            .bind(pid)
            .bind(ecu)
            .bind(device_time)
            .bind(received)
            .bind(boot)
            .bind(seq)
            .execute(&mut *tx)
            .await
            .context("INSERT ... UNNEST")?;
        tx.commit().await.context("COMMIT")?;
        times.push(started.elapsed().as_secs_f64());
        rows += done.rows_affected();
    }
    Ok(way(&mut times, rows))
}

async fn by_copy(conn: &mut PgConnection, all: &[Batch]) -> anyhow::Result<WayResult> {
    let mut times = Vec::with_capacity(all.len());
    let mut rows = 0u64;
    for batch in all {
        let received_at = Utc::now();
        let started = Instant::now();
        let mut e = Encoder::new();
        for (d, m) in batch {
            e.batch(d, m, received_at);
        }
        let (data, _) = e.finish();
        let mut tx = conn.begin().await.context("BEGIN")?;
        rows += copy::copy(&mut tx, &data).await?;
        tx.commit().await.context("COMMIT")?;
        times.push(started.elapsed().as_secs_f64());
    }
    Ok(way(&mut times, rows))
}

/// Runs the three ways, each in its own fresh database named `<prefix>_<way>`.
pub async fn run(
    admin_url: &str,
    prefix: &str,
    fleet: &Fleet,
    batch_messages: u32,
) -> anyhow::Result<StoreBatchesResult> {
    let all = batches(fleet, batch_messages.max(1));
    let mut results = Vec::new();
    for name in ["store", "unnest", "copy"] {
        let scratch = Scratch::create(admin_url, &format!("{prefix}_{name}")).await?;
        scratch.migrate(TimescaleMode::Off).await?;
        let result = match name {
            "store" => by_store(&scratch, fleet, &all).await,
            _ => {
                let mut conn = scratch.connect().await?;
                let r = if name == "unnest" {
                    by_unnest(&mut conn, &all).await
                } else {
                    by_copy(&mut conn, &all).await
                };
                let _ = conn.close().await;
                r
            }
        };
        let dropped = scratch.drop_now().await;
        let result = result?;
        dropped?;
        anyhow::ensure!(
            result.rows == fleet.samples(),
            "{name}: {} rows written, {} expected",
            result.rows,
            fleet.samples()
        );
        results.push(result);
    }
    let mut it = results.into_iter();
    let (Some(store), Some(unnest), Some(copy)) = (it.next(), it.next(), it.next()) else {
        anyhow::bail!("three results expected");
    };
    Ok(StoreBatchesResult {
        batch_messages,
        samples_per_batch: fleet.samples_per_batch,
        store,
        unnest,
        copy,
    })
}
