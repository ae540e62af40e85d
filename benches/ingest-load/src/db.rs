//! Scratch databases on the benchmark's PostgreSQL (one per measurement, created fresh and
//! dropped after), and the questions asked of them: how many rows, were any doubled, and how
//! late did the rows arrive.

use std::time::Duration;

use anyhow::{Context as _, bail};
use serde::Serialize;
use sqlx::{Connection as _, PgConnection, Row as _};
use telltale_store::{Store, StoreOptions, TimescaleMode};

/// `postgres://user@host:port/db?params` → the same server, database `name`.
pub fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let scheme_end = url
        .find("://")
        .with_context(|| format!("database url {url:?}: no scheme"))?
        + 3;
    let (base, query) = match url.find('?') {
        Some(q) => (&url[..q], &url[q..]),
        None => (url, ""),
    };
    let host_end = base[scheme_end..]
        .find('/')
        .map_or(base.len(), |i| scheme_end + i);
    Ok(format!("{}/{name}{query}", &base[..host_end]))
}

/// A database made for one measurement; dropped by [`Scratch::drop_now`] (or left, with
/// `keep`, for a test to inspect).
#[derive(Debug)]
pub struct Scratch {
    admin_url: String,
    pub name: String,
    pub url: String,
}

impl Scratch {
    /// Creates database `name` (dropping a leftover of the same name first).
    pub async fn create(admin_url: &str, name: &str) -> anyhow::Result<Scratch> {
        if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            bail!("scratch database name {name:?}: letters, digits and _ only");
        }
        let mut admin = PgConnection::connect(admin_url)
            .await
            .with_context(|| format!("connecting to {admin_url}"))?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("dropping a leftover {name}"))?;
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("creating database {name}"))?;
        let _ = admin.close().await;
        Ok(Scratch {
            admin_url: admin_url.to_owned(),
            name: name.to_owned(),
            url: with_database(admin_url, name)?,
        })
    }

    /// Applies the store's migrations (what `telltale-ingest` does at start), with telemetry
    /// in TimescaleDB or not as `timescaledb` says.
    pub async fn migrate(&self, timescaledb: TimescaleMode) -> anyhow::Result<()> {
        let store = Store::connect(
            &self.url,
            StoreOptions {
                max_connections: 1,
                timescaledb,
                ..StoreOptions::default()
            },
        )
        .await
        .with_context(|| format!("connecting to {}", self.url))?;
        store
            .migrate()
            .await
            .context("migrating the scratch database")?;
        if let Store::Postgres(pool, _) = store {
            pool.close().await;
        }
        Ok(())
    }

    pub async fn connect(&self) -> anyhow::Result<PgConnection> {
        PgConnection::connect(&self.url)
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }

    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut admin = PgConnection::connect(&self.admin_url)
            .await
            .with_context(|| format!("connecting to {}", self.admin_url))?;
        sqlx::query(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ))
        .execute(&mut admin)
        .await
        .with_context(|| format!("dropping {}", self.name))?;
        let _ = admin.close().await;
        Ok(())
    }
}

/// Rows in the telemetry table.
pub async fn telemetry_rows(conn: &mut PgConnection) -> anyhow::Result<u64> {
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM telemetry")
        .fetch_one(conn)
        .await
        .context("counting telemetry rows")?;
    Ok(n.unsigned_abs())
}

/// What the telemetry table holds, against what was published.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Check {
    pub rows: u64,
    /// Distinct `(device_id, boot_id, seq)`: one per telemetry message.
    pub messages: u64,
    /// Messages with a number of rows other than the samples per batch (doubled or partial).
    pub messages_with_wrong_row_count: u64,
}

impl Check {
    /// Whether every published sample is there exactly once.
    pub fn exact(&self, messages: u64, samples_per_batch: u32) -> bool {
        self.messages == messages
            && self.messages_with_wrong_row_count == 0
            && self.rows == messages * u64::from(samples_per_batch)
    }
}

/// Counts rows and messages and finds doubled or partial messages.
pub async fn check(conn: &mut PgConnection, samples_per_batch: u32) -> anyhow::Result<Check> {
    let row = sqlx::query(
        "SELECT coalesce(sum(n), 0)::int8, count(*)::int8, count(*) FILTER (WHERE n <> $1)::int8
         FROM (SELECT count(*) AS n FROM telemetry GROUP BY device_id, boot_id, seq) AS m",
    )
    .bind(i64::from(samples_per_batch))
    .fetch_one(conn)
    .await
    .context("checking telemetry rows per message")?;
    let get = |i: usize| -> anyhow::Result<u64> { Ok(row.try_get::<i64, _>(i)?.unsigned_abs()) };
    Ok(Check {
        rows: get(0)?,
        messages: get(1)?,
        messages_with_wrong_row_count: get(2)?,
    })
}

/// Percentiles of how long a message took from its creation on the "device" to the moment
/// the ingester received it (`received_at` minus the batch's newest sample time, which the
/// generator sets to the creation time).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

pub async fn latency(conn: &mut PgConnection) -> anyhow::Result<Option<Latency>> {
    let row = sqlx::query(
        "SELECT percentile_cont(ARRAY[0.5, 0.9, 0.99, 1.0]) WITHIN GROUP (ORDER BY ms)
         FROM (SELECT extract(epoch FROM max(received_at) - max(device_time)) * 1000 AS ms
               FROM telemetry GROUP BY device_id, boot_id, seq) AS m",
    )
    .fetch_one(conn)
    .await
    .context("latency percentiles")?;
    let p: Option<Vec<f64>> = row.try_get(0)?;
    Ok(p.filter(|p| p.len() == 4).map(|p| Latency {
        p50_ms: p[0].round(),
        p90_ms: p[1].round(),
        p99_ms: p[2].round(),
        max_ms: p[3].round(),
    }))
}

/// Receive latency of the messages that arrived in one minute of a run.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MinuteLatency {
    /// Minutes since the first message arrived (0 is the first minute).
    pub minute: u32,
    pub messages: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// [`latency`] minute by minute: whether the ingest kept up all along (a backlog at the broker
/// shows as a latency that grows from minute to minute).
pub async fn latency_by_minute(conn: &mut PgConnection) -> anyhow::Result<Vec<MinuteLatency>> {
    let rows = sqlx::query(
        "WITH m AS (SELECT max(received_at) AS at,
                           extract(epoch FROM max(received_at) - max(device_time)) * 1000 AS ms
                    FROM telemetry GROUP BY device_id, boot_id, seq),
              t0 AS (SELECT min(at) AS t0 FROM m)
         SELECT floor(extract(epoch FROM at - t0) / 60)::int4 AS minute, count(*)::int8,
                percentile_cont(ARRAY[0.5, 0.99, 1.0]) WITHIN GROUP (ORDER BY ms)
         FROM m, t0 GROUP BY minute ORDER BY minute",
    )
    .fetch_all(conn)
    .await
    .context("latency by minute")?;
    rows.iter()
        .map(|r| {
            let p: Vec<f64> = r.try_get(2)?;
            Ok(MinuteLatency {
                minute: r.try_get::<i32, _>(0)?.unsigned_abs(),
                messages: r.try_get::<i64, _>(1)?.unsigned_abs(),
                p50_ms: p.first().copied().unwrap_or(0.0).round(),
                p99_ms: p.get(1).copied().unwrap_or(0.0).round(),
                max_ms: p.get(2).copied().unwrap_or(0.0).round(),
            })
        })
        .collect()
}

/// Whether PostgreSQL answers at `url` within `limit`.
pub async fn reachable(url: &str, limit: Duration) -> anyhow::Result<()> {
    let conn = tokio::time::timeout(limit, PgConnection::connect(url))
        .await
        .with_context(|| format!("PostgreSQL at {url} did not answer within {limit:?}"))?
        .with_context(|| format!("connecting to PostgreSQL at {url}"))?;
    let _ = conn.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        let f = |u: &str| with_database(u, "x").ok();
        assert_eq!(
            f("postgres://postgres@127.0.0.1:5432/postgres").as_deref(),
            Some("postgres://postgres@127.0.0.1:5432/x")
        );
        assert_eq!(f("postgres://u@h:1").as_deref(), Some("postgres://u@h:1/x"));
        assert_eq!(
            f("postgresql://u@h/db?sslmode=disable").as_deref(),
            Some("postgresql://u@h/x?sslmode=disable")
        );
        assert_eq!(f("nonsense"), None);
    }
}

/// The `--pg-url` option every benchmark takes: the PostgreSQL server to make scratch
/// databases on (its user needs CREATE DATABASE).
#[derive(Debug, Clone, clap::Args)]
pub struct PgUrl {
    /// PostgreSQL to make scratch databases on (needs CREATE DATABASE).
    #[arg(
        long = "pg-url",
        env = "TELLTALE_TEST_PG_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres"
    )]
    pub url: String,
}
