//! Bytes per sample on disk: the benchmark fleet's telemetry stored through the store's own
//! write path ([`Store::ingest`]) into plain PostgreSQL (daily partitions), TimescaleDB (a
//! hypertable, measured before and after its chunks are compressed) and SQLite, and the space
//! the telemetry table and its indexes take in each.
//!
//! How each is measured: PostgreSQL, `pg_total_relation_size` of every partition (rows,
//! indexes, TOAST); TimescaleDB, `hypertable_size` (every chunk, compressed or not, with its
//! indexes); SQLite, the file (and its WAL) after `VACUUM` and a checkpoint with the telemetry,
//! minus the same after `DROP TABLE telemetry` (pages are 4 KiB, so small runs round up).

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use telltale_store::{Envelope, Store, StoreOptions, TimescaleMode, Uplink};

use crate::db::Scratch;
use crate::fleet::Fleet;

/// Where the samples go.
#[derive(Debug, Clone)]
pub struct Options {
    pub fleet: Fleet,
    /// Plain PostgreSQL (may have TimescaleDB installed; `off` keeps daily partitions).
    pub pg_admin_url: String,
    /// A server with TimescaleDB loaded, or none (then that row says it was not measured).
    pub tsdb_admin_url: Option<String>,
    /// Messages per `Store::ingest` call, as the ingest's batches.
    pub batch: usize,
}

/// One layout's figures.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub layout: String,
    pub samples: u64,
    pub bytes: u64,
}

impl Row {
    pub fn per_sample(&self) -> f64 {
        self.bytes as f64 / self.samples.max(1) as f64
    }
}

/// What a run measured, and what it could not.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub vehicles: u32,
    pub samples_per_batch: u32,
    pub batches_per_vehicle: u32,
    pub rows: Vec<Row>,
    pub not_measured: Vec<String>,
}

/// The fleet's telemetry as the ingest would hand it to the store: every vehicle's batch `k`
/// made `k` intervals after `start_ms`, received a second later.
fn envelopes(fleet: &Fleet, start_ms: i64) -> Vec<Envelope> {
    let step = i64::try_from(fleet.interval.as_millis()).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    for k in 0..fleet.batches_per_vehicle {
        let made = start_ms + i64::from(k) * step;
        for v in 0..fleet.vehicles {
            out.push(Envelope {
                device_id: fleet.device_id(v),
                received_at: chrono::DateTime::from_timestamp_millis(made + 1_000)
                    .unwrap_or_default(),
                message: Uplink::Telemetry(fleet.telemetry(v, k, made)),
            });
        }
    }
    out
}

async fn store_all(store: &Store, batches: &[Envelope], batch: usize) -> anyhow::Result<u64> {
    let mut samples = 0;
    for chunk in batches.chunks(batch.max(1)) {
        samples += store
            .ingest(chunk)
            .await
            .context("storing a batch")?
            .samples;
    }
    Ok(samples)
}

async fn open(url: &str, mode: TimescaleMode) -> anyhow::Result<Store> {
    let store = Store::connect(
        url,
        StoreOptions {
            max_connections: 2,
            retention_days: 3650,
            timescaledb: mode,
            ..StoreOptions::default()
        },
    )
    .await
    .with_context(|| format!("connecting to {url}"))?;
    store.migrate().await.context("migrating")?;
    Ok(store)
}

async fn pg_scalar(store: &Store, sql: &str) -> anyhow::Result<i64> {
    let Store::Postgres(pool, _) = store else {
        bail!("a PostgreSQL store was expected");
    };
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(pool)
        .await
        .with_context(|| sql.to_owned())
}

async fn plain_postgres(opts: &Options, batches: &[Envelope]) -> anyhow::Result<Row> {
    let scratch = Scratch::create(&opts.pg_admin_url, "telltale_footprint_pg").await?;
    let store = open(&scratch.url, TimescaleMode::Off).await?;
    let samples = store_all(&store, batches, opts.batch).await?;
    let bytes = pg_scalar(
        &store,
        "SELECT coalesce(sum(pg_total_relation_size(inhrelid)), 0)::int8 FROM pg_inherits
         WHERE inhparent = 'telemetry'::regclass",
    )
    .await?;
    if let Store::Postgres(pool, _) = store {
        pool.close().await;
    }
    scratch.drop_now().await?;
    Ok(Row {
        layout: "PostgreSQL, daily partitions".into(),
        samples,
        bytes: bytes.unsigned_abs(),
    })
}

async fn timescale(opts: &Options, admin: &str, batches: &[Envelope]) -> anyhow::Result<[Row; 2]> {
    let scratch = Scratch::create(admin, "telltale_footprint_tsdb").await?;
    let store = open(&scratch.url, TimescaleMode::On).await?;
    let samples = store_all(&store, batches, opts.batch).await?;
    let size = "SELECT hypertable_size('telemetry')::int8";
    let before = pg_scalar(&store, size).await?;
    pg_scalar(
        &store,
        "SELECT count(compress_chunk(c, if_not_compressed => true))::int8
         FROM show_chunks('telemetry') c",
    )
    .await?;
    let after = pg_scalar(&store, size).await?;
    if let Store::Postgres(pool, _) = store {
        pool.close().await;
    }
    scratch.drop_now().await?;
    Ok([
        Row {
            layout: "TimescaleDB, uncompressed chunks".into(),
            samples,
            bytes: before.unsigned_abs(),
        },
        Row {
            layout: "TimescaleDB, compressed chunks".into(),
            samples,
            bytes: after.unsigned_abs(),
        },
    ])
}

async fn sqlite(opts: &Options, batches: &[Envelope]) -> anyhow::Result<Row> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let path = dir.path().join("footprint.db");
    let store = open(&format!("sqlite://{}", path.display()), TimescaleMode::Auto).await?;
    let samples = store_all(&store, batches, opts.batch).await?;
    let Store::Sqlite(pool, _) = store else {
        bail!("a SQLite store was expected");
    };
    let size = async |pool: &sqlx::SqlitePool| -> anyhow::Result<u64> {
        // VACUUM writes the compacted pages to the WAL; the checkpoint after it puts them in
        // the file and empties the WAL, so the file alone is the database.
        sqlx::raw_sql("VACUUM; PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(pool)
            .await
            .context("VACUUM")?;
        let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
        Ok(len(&path) + len(&path.with_extension("db-wal")))
    };
    let with = size(&pool).await?;
    sqlx::raw_sql("DROP TABLE telemetry")
        .execute(&pool)
        .await
        .context("DROP TABLE telemetry")?;
    let without = size(&pool).await?;
    pool.close().await;
    Ok(Row {
        layout: "SQLite".into(),
        samples,
        bytes: with.saturating_sub(without),
    })
}

/// Stores the fleet in each layout and measures it.
pub async fn run(opts: &Options, mut progress: impl FnMut(&str)) -> anyhow::Result<Report> {
    // A day back, so the rows are wholly in the past, as a fleet's history is.
    let start_ms = chrono::Utc::now().timestamp_millis() - 86_400_000;
    let batches = envelopes(&opts.fleet, start_ms);
    let mut rows = Vec::new();
    let mut not_measured = Vec::new();
    progress("plain PostgreSQL");
    rows.push(plain_postgres(opts, &batches).await?);
    match &opts.tsdb_admin_url {
        Some(admin) => {
            progress("TimescaleDB");
            crate::db::reachable(admin, Duration::from_secs(10)).await?;
            rows.extend(timescale(opts, admin, &batches).await?);
        }
        None => not_measured.push("TimescaleDB (no --tsdb-url given)".into()),
    }
    progress("SQLite");
    rows.push(sqlite(opts, &batches).await?);
    Ok(Report {
        vehicles: opts.fleet.vehicles,
        samples_per_batch: opts.fleet.samples_per_batch,
        batches_per_vehicle: opts.fleet.batches_per_vehicle,
        rows,
        not_measured,
    })
}

/// The report as a Markdown table, each layout beside plain PostgreSQL.
pub fn render(report: &Report) -> String {
    let base = report
        .rows
        .first()
        .map(Row::per_sample)
        .filter(|b| *b > 0.0)
        .unwrap_or(1.0);
    let mut out = format!(
        "Bytes per sample: {} vehicles x {} batches x {} samples\n\n\
         | layout | samples | bytes | bytes/sample | x plain PostgreSQL |\n|---|---:|---:|---:|---:|\n",
        report.vehicles, report.batches_per_vehicle, report.samples_per_batch
    );
    for row in &report.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.1} | {:.2} |\n",
            row.layout,
            row.samples,
            row.bytes,
            row.per_sample(),
            row.per_sample() / base
        ));
    }
    for what in &report.not_measured {
        out.push_str(&format!("\nNot measured: {what}\n"));
    }
    out
}
