//! What the store answers: every read query, written once for both databases.
//!
//! The one way the store reads: a query text with `$1`-style parameters (both sqlx drivers take
//! them), run on whichever pool the store holds by `on_pool!`, its rows mapped
//! by column name into a type that derives `sqlx::FromRow`. A column renamed or reordered is then
//! a loud error, never a silently shifted field. Only a query whose SQL truly differs between the
//! databases (the rollups: continuous aggregates on PostgreSQL, grouping on SQLite) has two texts,
//! and both sit here side by side.
//!
//! The write paths stay in `pg` and `sqlite`: they differ where it is measured to matter (binary
//! `COPY` and `UNNEST` arrays on PostgreSQL, prepared statements in one transaction on SQLite).

use chrono::{DateTime, Utc};

use crate::{
    Bucket, DeadLetter, DeviceRow, DtcEvent, Gap, LatestValue, OutboxLead, Rollup, SamplePoint,
    Store, StoreError,
};

const LATEST_VALUES: &str = "SELECT signal, value, text, unit, device_time, received_at FROM (
         SELECT signal, value, text, unit, device_time, received_at,
                row_number() OVER (PARTITION BY signal
                                   ORDER BY device_time DESC, received_at DESC) AS n
         FROM telemetry WHERE vin = $1) AS latest
     WHERE n = 1 ORDER BY signal";

const SAMPLES: &str = "SELECT device_time, value FROM telemetry
     WHERE vin = $1 AND signal = $2 AND device_time BETWEEN $3 AND $4
     ORDER BY device_time, received_at";

const DTC_HISTORY: &str =
    "SELECT vin, ecu, code, kind, change, mil_on, device_time, received_at, freeze_frame
     FROM dtc_events WHERE vin = $1 ORDER BY device_time DESC, id DESC";

const GAPS: &str = "SELECT device_id, boot_id, first_missing, last_missing FROM gaps
     WHERE device_id = $1 ORDER BY boot_id, first_missing";

const DEVICE: &str =
    "SELECT device_id, vin, online, first_seen, last_seen FROM devices WHERE device_id = $1";

const DUE_LEADS: &str = "SELECT id, idempotency_key, vin, device_id, ecu, code, reason, occurrence,
            created_at, attempts
     FROM lead_outbox WHERE sent_at IS NULL AND next_attempt_at <= $1
     ORDER BY created_at, id LIMIT $2";

const LEAD_SENT: &str =
    "UPDATE lead_outbox SET sent_at = $2, attempts = attempts + 1, last_error = NULL
     WHERE id = $1 AND sent_at IS NULL";

const LEAD_FAILED: &str =
    "UPDATE lead_outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = $3
     WHERE id = $1 AND sent_at IS NULL";

const DEAD_LETTERS: &str = "SELECT received_at, topic, payload, reason FROM dead_letters
     ORDER BY received_at DESC, id DESC LIMIT $1";

/// The rollup views on PostgreSQL: TimescaleDB's continuous aggregates, or on plain PostgreSQL
/// `date_bin` views with the same names and columns.
fn rollup_pg(bucket: Bucket) -> String {
    let view = match bucket {
        Bucket::Minute => "telemetry_minute",
        Bucket::Hour => "telemetry_hour",
    };
    format!(
        "SELECT bucket, samples, avg_value AS avg, min_value AS min, max_value AS max
         FROM {view} WHERE vin = $1 AND signal = $2 AND bucket >= $3 AND bucket < $4
         ORDER BY bucket"
    )
}

/// On SQLite the rows are grouped: device times are RFC 3339 text in UTC, so a bucket is the
/// text cut to the minute or the hour.
const ROLLUP_SQLITE: &str = "SELECT strftime($5, device_time) AS bucket, count(*) AS samples,
            avg(value) AS avg, min(value) AS min, max(value) AS max
     FROM telemetry WHERE vin = $1 AND signal = $2 AND device_time >= $3 AND device_time < $4
     GROUP BY bucket ORDER BY bucket";

fn sqlite_bucket_format(bucket: Bucket) -> &'static str {
    match bucket {
        Bucket::Minute => "%Y-%m-%dT%H:%M:00+00:00",
        Bucket::Hour => "%Y-%m-%dT%H:00:00+00:00",
    }
}

impl Store {
    /// Each signal's latest value for a vehicle.
    pub async fn latest_values(&self, vin: &str) -> Result<Vec<LatestValue>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(LATEST_VALUES)
                .bind(vin)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A signal's samples for a vehicle in `[from, to]` (device time), oldest first.
    pub async fn samples(
        &self,
        vin: &str,
        signal: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<SamplePoint>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(SAMPLES)
                .bind(vin)
                .bind(signal)
                .bind(from)
                .bind(to)
                .fetch_all(pool)
                .await?
        }))
    }

    /// A signal's samples for a vehicle in `[from, to)` (device time) rolled up per minute or
    /// hour, oldest bucket first. On PostgreSQL this reads the `telemetry_minute` /
    /// `telemetry_hour` continuous aggregates (TimescaleDB, real-time: materialized buckets plus
    /// the rows not yet materialized) or their `date_bin` views; on SQLite it groups the rows.
    pub async fn rollup(
        &self,
        vin: &str,
        signal: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        bucket: Bucket,
    ) -> Result<Vec<Rollup>, StoreError> {
        Ok(match self {
            Store::Postgres(pool, _) => {
                sqlx::query_as(&rollup_pg(bucket))
                    .bind(vin)
                    .bind(signal)
                    .bind(from)
                    .bind(to)
                    .fetch_all(pool)
                    .await?
            }
            Store::Sqlite(pool, _) => {
                sqlx::query_as(ROLLUP_SQLITE)
                    .bind(vin)
                    .bind(signal)
                    .bind(from)
                    .bind(to)
                    .bind(sqlite_bucket_format(bucket))
                    .fetch_all(pool)
                    .await?
            }
        })
    }

    /// A vehicle's DTC events, newest first.
    pub async fn dtc_history(&self, vin: &str) -> Result<Vec<DtcEvent>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(DTC_HISTORY)
                .bind(vin)
                .fetch_all(pool)
                .await?
        }))
    }

    /// Recorded gaps for a device.
    pub async fn gaps(&self, device_id: &str) -> Result<Vec<Gap>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(GAPS).bind(device_id).fetch_all(pool).await?
        }))
    }

    /// A device's presence and identity as last seen, if it was ever seen.
    pub async fn device(&self, device_id: &str) -> Result<Option<DeviceRow>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(DEVICE)
                .bind(device_id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Leads due for sending (not sent, next attempt time passed), oldest first.
    pub async fn due_leads(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<OutboxLead>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(DUE_LEADS)
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }))
    }

    /// The CRM has the lead.
    pub async fn lead_sent(&self, id: i64, at: DateTime<Utc>) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query(LEAD_SENT)
                .bind(id)
                .bind(at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Sending failed: try again at `retry_at`.
    pub async fn lead_failed(
        &self,
        id: i64,
        error: &str,
        retry_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query(LEAD_FAILED)
                .bind(id)
                .bind(error)
                .bind(retry_at)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Dead letters, newest first (for operators and tests).
    pub async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        Ok(crate::on_pool!(self, |pool| {
            sqlx::query_as(DEAD_LETTERS)
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        }))
    }
}
