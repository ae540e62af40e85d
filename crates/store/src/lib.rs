//! # telltale-store: where the fleet's data lives
//!
//! One interface, [`Store`], over two databases through sqlx:
//!
//! - **PostgreSQL**, with TimescaleDB when the server can run it (in
//!   `shared_preload_libraries`, not merely installed) and [`StoreOptions::timescaledb`]
//!   allows it: telemetry a hypertable with daily chunks, compression after 7 days, retention by
//!   whole chunks and continuous aggregates per minute and hour (real-time). Without it, native
//!   range partitions by day (made ahead, old ones dropped by [`Store::maintain`]) and
//!   `date_bin` views with the aggregates' names and columns. `layout` decides which, and
//!   refuses before any migration, saying what to set, when the choice cannot be honoured;
//! - **SQLite**, for one machine and the demo.
//!
//! All three (PostgreSQL, PostgreSQL with TimescaleDB, SQLite) pass the same contract tests
//! (`tests/contract.rs`); `tests/timescale.rs` runs what only a hypertable does. What this
//! crate does not do: MQTT, decoding bytes (the ingest hands it decoded messages), deciding prices (the CRM).
//!
//! Writes are idempotent on `(device_id, boot_id, seq)`: a message stored twice changes
//! nothing the second time, so the ingest may acknowledge to the broker after the commit and
//! a redelivery is harmless.
//!
//! Inside: `model` turns envelopes and the state read from the database into rows (DTC
//! diffing, lead decisions, gap arithmetic; no I/O); `pg` and `sqlite` are the write paths (they
//! load that state and write the rows, each the way its database does it fastest); `read` holds
//! every query the store answers, written once for both databases and mapped by column name
//! (`sqlx::FromRow`), the one way the store reads; `layout` and `timescale` decide and set up
//! telemetry's layout on PostgreSQL. Lead idempotency keys are
//! `vin:code:occurrence` for confirmed codes, `vin:MIL:occurrence` for the MIL turning on and
//! `vin:code:occurrence:pending` for pending codes (when configured), so a pending lead never
//! swallows the confirmed one that follows it.

mod layout;
mod model;
mod pg;
mod read;
mod sqlite;
mod timescale;

use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use telltale_wire::v1;

/// A decoded uplink message as the ingest received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// From the topic, checked against the payload's header by the ingest.
    pub device_id: String,
    /// When the ingest received it (the cloud's clock); the device's own times stay in the
    /// message.
    pub received_at: DateTime<Utc>,
    pub message: Uplink,
}

/// The uplink messages the store keeps.
#[derive(Debug, Clone, PartialEq)]
pub enum Uplink {
    Telemetry(v1::TelemetryBatch),
    Dtc(v1::DtcReport),
    Info(v1::VehicleInfo),
    CmdResult(v1::CommandResult),
    /// Retained status and last will: presence, not deduplicated (seq 0).
    Status(v1::Status),
}

/// What one [`Store::ingest`] call did. Status messages are not deduplicated and are counted
/// in neither `new_messages` nor `duplicates`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IngestOutcome {
    /// Messages stored for the first time.
    pub new_messages: u64,
    /// Messages already stored (a redelivery): nothing written.
    pub duplicates: u64,
    pub samples: u64,
    pub dtc_events: u64,
    /// Leads written to the outbox (newly confirmed DTCs, MIL on).
    pub leads: u64,
    /// New sequence gaps recorded.
    pub gaps: u64,
}

/// A message that could not be stored as data: kept with its raw bytes and the reason.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct DeadLetter {
    pub received_at: DateTime<Utc>,
    pub topic: String,
    pub payload: Vec<u8>,
    pub reason: String,
}

/// How to connect and what to keep.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_connections: u32,
    /// How long a write waits for a connection before it fails (and the caller retries): short,
    /// so a database outage shows in the logs and metrics at once.
    pub acquire_timeout: Duration,
    /// Telemetry older than this is dropped by [`Store::maintain`].
    pub retention_days: u32,
    /// Raise leads for pending DTCs too (normally only confirmed ones and MIL on).
    pub leads_for_pending: bool,
    /// Whether telemetry lives in a TimescaleDB hypertable (PostgreSQL only).
    pub timescaledb: TimescaleMode,
}

/// Whether to keep telemetry in TimescaleDB, as the operator chose.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, strum::EnumString, strum::Display,
)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "lowercase")]
pub enum TimescaleMode {
    /// Use it when it is loaded (in `shared_preload_libraries`); plain PostgreSQL otherwise,
    /// saying which at start. A database whose telemetry is already natively partitioned
    /// stays so (moving it is `On`'s job).
    #[default]
    Auto,
    /// Require it: fail at start, saying what to set, when it is not loaded; move telemetry
    /// that is natively partitioned into a hypertable (every row copied once).
    On,
    /// Never: native daily partitions.
    Off,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(5),
            retention_days: 90,
            leads_for_pending: false,
            timescaledb: TimescaleMode::Auto,
        }
    }
}

/// Why a store operation failed. Database text stays in the `Display` for operators' logs;
/// services must not pass it on to their clients.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "unsupported database url {0:?}: use postgres://... or sqlite://PATH (sqlite::memory: for tests)"
    )]
    BadUrl(String),
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// TimescaleDB is wanted (or the data is already in it) but the server cannot run it.
    #[error("TimescaleDB: {0}")]
    Timescale(String),
    /// The databases keep seqs as signed 64-bit numbers; the ingest should dead-letter these.
    #[error("message from {device_id} has seq {seq}, beyond what the store keeps")]
    SeqOutOfRange { device_id: String, seq: u64 },
    /// A JSON column the store wrote did not parse back.
    #[error("stored JSON unreadable: {0}")]
    Json(#[from] serde_json::Error),
}

/// One signal's latest value for a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct LatestValue {
    pub signal: String,
    pub value: f64,
    pub text: Option<String>,
    pub unit: String,
    pub device_time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// One sample of one signal.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct SamplePoint {
    pub device_time: DateTime<Utc>,
    pub value: f64,
}

/// One bucket of a signal's rollup: what charts and reports read instead of every sample.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct Rollup {
    /// The bucket's start (UTC, aligned to the minute or the hour).
    pub bucket: DateTime<Utc>,
    pub samples: i64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
}

/// How wide a rollup's buckets are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Bucket {
    Minute,
    Hour,
}

/// A DTC appearing or clearing on a vehicle.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DtcEvent {
    pub vin: String,
    /// The ECU's CAN id (or, on the older buses, its source address), stored from `u32`.
    #[sqlx(try_from = "i64")]
    pub ecu: u32,
    pub code: String,
    /// `stored`, `pending`, `permanent`, `uds` (a UDS code not confirmed yet) or `uds_confirmed`.
    pub kind: String,
    /// `appeared` or `cleared`.
    pub change: String,
    pub mil_on: bool,
    pub device_time: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    /// The freeze frame as JSON (`{"trigger": "P0420", "values": [...]}`), when there was one.
    #[sqlx(json(nullable))]
    pub freeze_frame: Option<serde_json::Value>,
}

/// A lead waiting in the outbox to be raised in the CRM.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct OutboxLead {
    pub id: i64,
    /// `vin:code:occurrence`: the CRM creates one lead per key, however often it is sent.
    pub idempotency_key: String,
    pub vin: String,
    pub device_id: String,
    #[sqlx(try_from = "i64")]
    pub ecu: u32,
    pub code: String,
    /// Why: `confirmed` (stored DTC), `mil_on`, `pending` (when configured).
    pub reason: String,
    pub occurrence: i64,
    pub created_at: DateTime<Utc>,
    pub attempts: i32,
}

/// A run of missing sequence numbers in one boot of one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Gap {
    pub device_id: String,
    pub boot_id: Vec<u8>,
    #[sqlx(try_from = "i64")]
    pub first_missing: u64,
    #[sqlx(try_from = "i64")]
    pub last_missing: u64,
}

/// A device's presence and identity as last seen.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct DeviceRow {
    pub device_id: String,
    pub vin: Option<String>,
    pub online: bool,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The store: a connection pool to one of the two databases, and the options it was opened
/// with (retention and lead rules are used by [`Store::ingest`] and [`Store::maintain`]).
/// Cheap to clone.
#[derive(Debug, Clone)]
pub enum Store {
    Postgres(sqlx::PgPool, StoreOptions),
    Sqlite(sqlx::SqlitePool, StoreOptions),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever database that is: how a
/// query written once (with `$1`-style parameters, which both drivers take) runs on both. The
/// body is compiled once per database. See `read` for the reads written this way.
macro_rules! on_pool {
    ($store:expr, |$pool:ident| $body:expr) => {
        match $store {
            $crate::Store::Postgres($pool, _) => $body,
            $crate::Store::Sqlite($pool, _) => $body,
        }
    };
}
pub(crate) use on_pool;

impl Store {
    /// Connects to `postgres://...` or `sqlite://PATH` (`sqlite::memory:`), creating a SQLite
    /// file when missing. Does not migrate.
    pub async fn connect(url: &str, options: StoreOptions) -> Result<Store, StoreError> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect(url)
                .await?;
            return Ok(Store::Postgres(pool, options));
        }
        if !url.starts_with("sqlite:") {
            return Err(StoreError::BadUrl(url.to_owned()));
        }
        let connect = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        // Every connection to `sqlite::memory:` is its own database: keep exactly one, forever.
        let memory = url.contains(":memory:") || url.contains("mode=memory");
        let pool = if memory {
            SqlitePoolOptions::new()
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
        } else {
            SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
        }
        .connect_with(connect)
        .await?;
        Ok(Store::Sqlite(pool, options))
    }

    /// Applies the migrations of this database kind (and, on PostgreSQL, telemetry's layout:
    /// daily partitions or a TimescaleDB hypertable, as `layout` decides). Safe to run at every
    /// start and from several instances at once.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool, options) => pg::migrate(pool, options).await,
            Store::Sqlite(pool, _) => sqlite::migrate(pool).await,
        }
    }

    /// Stores a batch in one transaction, idempotently: a message whose `(device_id, boot_id,
    /// seq)` is already stored is counted as a duplicate and writes nothing. Derives DTC events
    /// and the current DTC state, records sequence gaps, updates devices and vehicles, and
    /// writes leads to the outbox in the same transaction. Status messages update presence.
    pub async fn ingest(&self, batch: &[Envelope]) -> Result<IngestOutcome, StoreError> {
        let outcome = match self {
            Store::Postgres(pool, options) => pg::ingest(pool, batch, options).await?,
            Store::Sqlite(pool, options) => sqlite::ingest(pool, batch, options).await?,
        };
        tracing::debug!(
            messages = batch.len(),
            new = outcome.new_messages,
            duplicates = outcome.duplicates,
            samples = outcome.samples,
            dtc_events = outcome.dtc_events,
            leads = outcome.leads,
            gaps = outcome.gaps,
            "batch stored"
        );
        Ok(outcome)
    }

    /// Keeps messages that failed validation, with their raw bytes.
    pub async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool, _) => pg::dead_letter(pool, letters).await,
            Store::Sqlite(pool, _) => sqlite::dead_letter(pool, letters).await,
        }
    }

    /// Retention and upkeep: on plain PostgreSQL makes the next days' partitions and drops
    /// those past retention, on TimescaleDB drops the chunks past it, on SQLite deletes old
    /// rows; everywhere prunes the dedupe keys past retention.
    pub async fn maintain(&self, now: DateTime<Utc>) -> Result<(), StoreError> {
        match self {
            Store::Postgres(pool, options) => pg::maintain(pool, now, options).await,
            Store::Sqlite(pool, options) => sqlite::maintain(pool, now, options).await,
        }
    }
}
