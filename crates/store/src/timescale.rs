//! TimescaleDB setup, used by [`crate::Store::migrate`] when [`crate::layout`] decides on a
//! hypertable: telemetry becomes a hypertable with compression, a retention policy and
//! continuous aggregates per minute and per hour (the same names and columns as the plain-PG
//! `date_bin` views, so readers do not care which they get).
//!
//! Every statement is idempotent (`if_not_exists`, `IF NOT EXISTS`, a guard on compression)
//! and runs outside a transaction, as continuous aggregates require. It runs on the caller's
//! connection, under the caller's advisory lock.

use sqlx::PgConnection;
use tracing::info;

use crate::{StoreError, StoreOptions};

const CREATE_EXTENSION: &str = "CREATE EXTENSION IF NOT EXISTS timescaledb";

const CREATE_HYPERTABLE: &str =
    "SELECT create_hypertable('telemetry', by_range('device_time', INTERVAL '1 day'),
                          if_not_exists => TRUE, migrate_data => TRUE)";

/// Compression settings cannot be changed while compressed chunks exist, so they are set only
/// when compression is still off.
const COMPRESSION_ENABLED: &str = "SELECT coalesce(bool_or(compression_enabled), FALSE)
     FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry'";

const ENABLE_COMPRESSION: &str = "ALTER TABLE telemetry SET (timescaledb.compress,
                           timescaledb.compress_segmentby = 'vin, signal',
                           timescaledb.compress_orderby = 'device_time DESC')";

const COMPRESSION_POLICY: &str = "SELECT add_compression_policy('telemetry', compress_after => INTERVAL '7 days', if_not_exists => TRUE)";

/// Retention is [`crate::Store::maintain`]'s job on every layout (`drop_chunks` here), so one
/// setting and one clock decide it; a policy an earlier build added goes.
const NO_RETENTION_POLICY: &str = "SELECT remove_retention_policy('telemetry', if_exists => TRUE)";

/// `WITH NO DATA`: the refresh policy fills it; a first refresh inside `CREATE` would make the
/// statement slow at every start on a big table. Real-time (`materialized_only = false`): a
/// read gets the materialized buckets plus the rows not materialized yet, so it always agrees
/// with the raw rows.
const MINUTE_AGGREGATE: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_minute
     WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
     SELECT vin, signal, time_bucket(INTERVAL '1 minute', device_time) AS bucket,
            count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
            max(value) AS max_value
     FROM telemetry
     GROUP BY vin, signal, bucket
     WITH NO DATA";

const MINUTE_POLICY: &str = "SELECT add_continuous_aggregate_policy('telemetry_minute',
         start_offset => INTERVAL '2 days', end_offset => INTERVAL '1 minute',
         schedule_interval => INTERVAL '1 minute', if_not_exists => TRUE)";

const HOUR_AGGREGATE: &str = "CREATE MATERIALIZED VIEW IF NOT EXISTS telemetry_hour
     WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
     SELECT vin, signal, time_bucket(INTERVAL '1 hour', device_time) AS bucket,
            count(*) AS samples, avg(value) AS avg_value, min(value) AS min_value,
            max(value) AS max_value
     FROM telemetry
     GROUP BY vin, signal, bucket
     WITH NO DATA";

const HOUR_POLICY: &str = "SELECT add_continuous_aggregate_policy('telemetry_hour',
         start_offset => INTERVAL '7 days', end_offset => INTERVAL '1 hour',
         schedule_interval => INTERVAL '30 minutes', if_not_exists => TRUE)";

/// Makes the plain `telemetry` table a hypertable (moving any rows into chunks) with its
/// compression, retention and aggregates; does nothing more where that is done.
pub(crate) async fn setup(
    conn: &mut PgConnection,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    // The simple query protocol: no implicit transaction around DDL that refuses one.
    for statement in [CREATE_EXTENSION, CREATE_HYPERTABLE] {
        sqlx::raw_sql(statement).execute(&mut *conn).await?;
    }
    let compressed: bool = sqlx::query_scalar(COMPRESSION_ENABLED)
        .fetch_one(&mut *conn)
        .await?;
    if !compressed {
        sqlx::raw_sql(ENABLE_COMPRESSION)
            .execute(&mut *conn)
            .await?;
    }
    sqlx::raw_sql(COMPRESSION_POLICY)
        .execute(&mut *conn)
        .await?;
    sqlx::raw_sql(NO_RETENTION_POLICY)
        .execute(&mut *conn)
        .await?;
    for statement in [MINUTE_AGGREGATE, MINUTE_POLICY, HOUR_AGGREGATE, HOUR_POLICY] {
        sqlx::raw_sql(statement).execute(&mut *conn).await?;
    }
    info!(
        retention_days = options.retention_days,
        "TimescaleDB telemetry set up"
    );
    Ok(())
}

/// Drops the chunks wholly older than `cutoff` (retention, from [`crate::Store::maintain`]);
/// how many went.
///
/// TimescaleDB's own background jobs (a continuous aggregate's refresh, compression) lock the
/// same chunks in another order, so PostgreSQL may end this statement as a deadlock's victim
/// (SQLSTATE 40P01; seen when the refresh policy's first run met a retention pass). Nothing was
/// dropped then: wait a little and try again, a few times, before giving up to the next pass.
pub(crate) async fn drop_old_chunks(
    pool: &sqlx::PgPool,
    cutoff: chrono::DateTime<chrono::Utc>,
) -> Result<usize, StoreError> {
    const ATTEMPTS: u32 = 5;
    let mut attempt = 1;
    loop {
        let result: Result<Vec<String>, sqlx::Error> =
            sqlx::query_scalar("SELECT drop_chunks('telemetry', older_than => $1)::text")
                .bind(cutoff)
                .fetch_all(pool)
                .await;
        match result {
            Ok(dropped) => return Ok(dropped.len()),
            Err(e) if attempt < ATTEMPTS && is_deadlock(&e) => {
                tracing::warn!(attempt, cause = %e, "dropping old chunks met a TimescaleDB job; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(200 * u64::from(attempt)))
                    .await;
                attempt += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// PostgreSQL chose this statement as a deadlock's victim.
fn is_deadlock(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .and_then(|d| d.code())
        .is_some_and(|code| code == "40P01")
}
