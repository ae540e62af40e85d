//! The TimescaleDB path executed: telemetry as a hypertable with daily chunks, compressed
//! chunks read back unchanged and still taking late samples once, retention by chunks, the
//! continuous aggregates after a refresh, daily partitions moved into a hypertable, a second
//! start that changes nothing, and the trap of a server where TimescaleDB is installed but not
//! loaded (the shared server, once `../shared/timescaledb/install` has run).
//!
//! The hypertable tests use the TimescaleDB cluster the tests share
//! ([`telltale_testdb::timescale_admin_url`]); each makes a database of its own there.

mod common;

use chrono::{DateTime, Duration, TimeZone, Utc};
use common::*;
use sqlx::PgPool;
use telltale_store::{Bucket, SamplePoint, Store, StoreError, StoreOptions, TimescaleMode};
use telltale_testdb::{Database, Rows};

const DAY_MS: i64 = 86_400_000;
/// Retention long enough to keep the test's samples from 2025: a start on daily partitions
/// drops what is past retention.
const KEEP_ALL: u32 = 3650;

async fn store_on(db: &Database, mode: TimescaleMode, retention_days: u32) -> Store {
    let options = StoreOptions {
        timescaledb: mode,
        retention_days,
        ..StoreOptions::default()
    };
    let store = match Store::connect(&db.url, options).await {
        Ok(s) => s,
        Err(e) => panic!("connect {}: {e}", db.url),
    };
    if let Err(e) = store.migrate().await {
        panic!("migrate ({mode}): {e}");
    }
    store
}

fn pool(store: &Store) -> &PgPool {
    match store {
        Store::Postgres(pool, _) => pool,
        Store::Sqlite(..) => panic!("a PostgreSQL store was expected"),
    }
}

async fn scalar<T>(store: &Store, sql: &str) -> T
where
    T: Send + Unpin + for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    match sqlx::query_scalar::<_, T>(sql).fetch_one(pool(store)).await {
        Ok(v) => v,
        Err(e) => panic!("{sql}: {e}"),
    }
}

async fn exec(store: &Store, sql: &str) {
    if let Err(e) = sqlx::raw_sql(sql).execute(pool(store)).await {
        panic!("{sql}: {e}");
    }
}

/// Refreshes a continuous aggregate by hand. Its refresh policy's first run starts as soon as
/// the store adds it and may hold the aggregate at that moment ("due to a concurrent refresh"):
/// then wait for it and refresh again, as an operator would.
async fn refresh(store: &Store, view: &str) {
    let sql = format!("CALL refresh_continuous_aggregate('{view}', NULL, NULL)");
    for _ in 0..100 {
        match sqlx::raw_sql(&sql).execute(pool(store)).await {
            Ok(_) => return,
            Err(e) if e.to_string().contains("concurrent refresh") => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            Err(e) => panic!("{sql}: {e}"),
        }
    }
    panic!("{sql}: the policy's refresh did not end within 10 s");
}

/// Telemetry messages (one per `(seq, device ms)`), each with speed and rpm samples whose
/// values follow from the time, so a read-back can be compared exactly.
fn samples_at(first_seq: u64, times: &[i64]) -> Vec<telltale_store::Envelope> {
    times
        .iter()
        .enumerate()
        .map(|(i, &ms)| {
            let v = (ms / 1000 % 997) as f64 / 4.0;
            tele(
                1,
                first_seq + i as u64,
                &[("speed", v, ms), ("rpm", 800.0 + v * 10.0, ms)],
            )
        })
        .collect()
}

async fn close(store: Store) {
    pool(&store).close().await;
}

async fn ingest(store: &Store, batch: &[telltale_store::Envelope]) {
    if let Err(e) = store.ingest(batch).await {
        panic!("ingest: {e}");
    }
}

async fn read(
    store: &Store,
    signal: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<SamplePoint> {
    match store.samples(VIN, signal, from, to).await {
        Ok(s) => s,
        Err(e) => panic!("samples: {e}"),
    }
}

async fn chunks(store: &Store) -> i64 {
    scalar(store, "SELECT count(*) FROM show_chunks('telemetry')").await
}

/// `n` times spread over `days` days from `start` (ms), one every `days * DAY / n`.
fn spread(start: i64, days: i64, n: i64) -> Vec<i64> {
    (0..n).map(|i| start + i * days * DAY_MS / n).collect()
}

#[tokio::test]
async fn telemetry_is_a_hypertable_with_one_chunk_per_day() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let store = store_on(&db, TimescaleMode::On, 30).await;
    let hypertables: i64 = scalar(
        &store,
        "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry'",
    )
    .await;
    assert_eq!(hypertables, 1, "telemetry is not a hypertable");
    let interval: String = scalar(
        &store,
        "SELECT time_interval::text FROM timescaledb_information.dimensions
         WHERE hypertable_name = 'telemetry' AND column_name = 'device_time'",
    )
    .await;
    assert_eq!(interval, "1 day");
    // Three days of samples, from midnight UTC: three chunks.
    ingest(&store, &samples_at(1, &spread(T0 - 12 * 3_600_000, 3, 30))).await;
    assert_eq!(chunks(&store).await, 3);
    assert_eq!(
        scalar::<i64>(&store, "SELECT count(*) FROM telemetry").await,
        60
    );
    // Compression on, segmented by vehicle and signal, with a policy; two continuous
    // aggregates, each with a refresh policy; no retention policy (maintain drops chunks).
    let segment_by: String = scalar(
        &store,
        "SELECT string_agg(attname, ',' ORDER BY segmentby_column_index)
         FROM timescaledb_information.compression_settings
         WHERE hypertable_name = 'telemetry' AND segmentby_column_index IS NOT NULL",
    )
    .await;
    assert_eq!(segment_by, "vin,signal");
    let jobs: Vec<(String, String)> = match sqlx::query_as(
        "SELECT proc_name::text, hypertable_name::text FROM timescaledb_information.jobs
         WHERE hypertable_name IS NOT NULL ORDER BY 1, 2",
    )
    .fetch_all(pool(&store))
    .await
    {
        Ok(j) => j,
        Err(e) => panic!("jobs: {e}"),
    };
    let kinds: Vec<&str> = jobs.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "policy_compression",
            "policy_refresh_continuous_aggregate",
            "policy_refresh_continuous_aggregate"
        ],
        "{jobs:?}"
    );
    let caggs: i64 = scalar(
        &store,
        "SELECT count(*) FROM timescaledb_information.continuous_aggregates
         WHERE view_name IN ('telemetry_minute', 'telemetry_hour') AND NOT materialized_only",
    )
    .await;
    assert_eq!(caggs, 2);
}

#[tokio::test]
async fn compressed_chunks_read_back_unchanged_and_take_a_late_sample_once() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let store = store_on(&db, TimescaleMode::On, 30).await;
    let times = spread(T0 - 12 * 3_600_000, 2, 400);
    ingest(&store, &samples_at(1, &times)).await;
    let (from, to) = (at(T0 - 2 * DAY_MS), at(T0 + 2 * DAY_MS));
    let before = (
        read(&store, "speed", from, to).await,
        read(&store, "rpm", from, to).await,
    );
    assert_eq!(before.0.len(), 400);

    // The compression policy's own job, run now: both chunks are older than its 7 days.
    let job: i32 = scalar(
        &store,
        "SELECT job_id FROM timescaledb_information.jobs
         WHERE proc_name = 'policy_compression' AND hypertable_name = 'telemetry'",
    )
    .await;
    exec(&store, &format!("CALL run_job({job})")).await;
    let compressed: i64 = scalar(
        &store,
        "SELECT count(*) FROM timescaledb_information.chunks
         WHERE hypertable_name = 'telemetry' AND is_compressed",
    )
    .await;
    assert_eq!(compressed, 2, "both chunks compressed");
    let after = (
        read(&store, "speed", from, to).await,
        read(&store, "rpm", from, to).await,
    );
    assert_eq!(after, before, "compression changed what is read back");

    // A message the dongle kept on disk for a day arrives, with a sample inside a compressed
    // chunk; then the broker delivers it again.
    let late = tele(1, 10_000, &[("speed", 42.25, T0 + 1_234)]);
    ingest(&store, std::slice::from_ref(&late)).await;
    ingest(&store, std::slice::from_ref(&late)).await;
    let speeds = read(&store, "speed", from, to).await;
    assert_eq!(speeds.len(), 401, "the late sample stored exactly once");
    assert!(
        speeds
            .iter()
            .any(|p| p.device_time == at(T0 + 1_234) && p.value == 42.25)
    );
}

#[tokio::test]
async fn retention_drops_whole_days_past_it() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let store = store_on(&db, TimescaleMode::On, 30).await;
    let now = Utc
        .with_ymd_and_hms(2025, 6, 1, 12, 0, 0)
        .single()
        .unwrap_or_default();
    let day = |d: i64| (now - Duration::days(d)).timestamp_millis();
    // Samples 40, 31, 20 and 1 days old.
    ingest(&store, &samples_at(1, &[day(40), day(31), day(20), day(1)])).await;
    assert_eq!(chunks(&store).await, 4);
    if let Err(e) = store.maintain(now).await {
        panic!("maintain: {e}");
    }
    assert_eq!(
        chunks(&store).await,
        2,
        "the chunks 40 and 31 days old went"
    );
    let left = read(&store, "speed", now - Duration::days(60), now).await;
    let ages: Vec<i64> = left
        .iter()
        .map(|p| (now - p.device_time).num_days())
        .collect();
    assert_eq!(ages, [20, 1]);
}

#[tokio::test]
async fn continuous_aggregates_agree_with_the_raw_rows_after_a_refresh() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let store = store_on(&db, TimescaleMode::On, 30).await;
    // 180 samples over three hours, one a minute.
    let times: Vec<i64> = (0..180).map(|i| T0 + i * 60_000 + 7_000).collect();
    ingest(&store, &samples_at(1, &times)).await;
    refresh(&store, "telemetry_minute").await;
    refresh(&store, "telemetry_hour").await;
    // Materialized, not only computed on read: two signals times three hours.
    let table: String = scalar(
        &store,
        "SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
         FROM timescaledb_information.continuous_aggregates WHERE view_name = 'telemetry_hour'",
    )
    .await;
    assert_eq!(
        scalar::<i64>(&store, &format!("SELECT count(*) FROM {table}")).await,
        6
    );
    let (from, to) = (at(T0), at(T0 + 3 * 3_600_000));

    let raw = read(&store, "speed", from, to).await;
    let hours = match store.rollup(VIN, "speed", from, to, Bucket::Hour).await {
        Ok(r) => r,
        Err(e) => panic!("rollup: {e}"),
    };
    assert_eq!(hours.len(), 3);
    for hour in &hours {
        let in_it: Vec<f64> = raw
            .iter()
            .filter(|p| {
                p.device_time >= hour.bucket && p.device_time < hour.bucket + Duration::hours(1)
            })
            .map(|p| p.value)
            .collect();
        assert_eq!(hour.samples, in_it.len() as i64);
        let avg = in_it.iter().sum::<f64>() / in_it.len() as f64;
        assert!((hour.avg - avg).abs() < 1e-9, "{} vs {avg}", hour.avg);
        assert_eq!(
            hour.min,
            in_it.iter().copied().fold(f64::INFINITY, f64::min)
        );
        assert_eq!(
            hour.max,
            in_it.iter().copied().fold(f64::NEG_INFINITY, f64::max)
        );
    }
    let minutes = match store.rollup(VIN, "speed", from, to, Bucket::Minute).await {
        Ok(r) => r,
        Err(e) => panic!("rollup: {e}"),
    };
    assert_eq!(minutes.len(), 180);
    assert!(minutes.iter().all(|m| m.samples == 1));

    // A late sample into a bucket already materialized shows once the policy (here: a refresh
    // by hand) has run again.
    ingest(
        &store,
        &[tele(1, 5_000, &[("speed", 1_000.0, T0 + 30_000)])],
    )
    .await;
    refresh(&store, "telemetry_minute").await;
    let first = match store
        .rollup(VIN, "speed", at(T0), at(T0 + 60_000), Bucket::Minute)
        .await
    {
        Ok(r) => r,
        Err(e) => panic!("rollup: {e}"),
    };
    assert_eq!(first.len(), 1);
    assert_eq!((first[0].samples, first[0].max), (2, 1_000.0));
}

#[tokio::test]
async fn daily_partitions_move_into_a_hypertable_with_every_row_once() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let plain = store_on(&db, TimescaleMode::Off, KEEP_ALL).await;
    let kind: String = scalar(
        &plain,
        "SELECT relkind::text FROM pg_class WHERE relname = 'telemetry'",
    )
    .await;
    assert_eq!(
        kind, "p",
        "off keeps daily partitions even where TimescaleDB is loaded"
    );
    let times = spread(T0 - 12 * 3_600_000, 3, 300);
    ingest(&plain, &samples_at(1, &times)).await;
    let (from, to) = (at(T0 - 2 * DAY_MS), at(T0 + 3 * DAY_MS));
    let before = read(&plain, "speed", from, to).await;
    assert_eq!(before.len(), 300);
    close(plain).await;

    // Auto keeps the partitions (and says how to move); on moves them.
    let auto = store_on(&db, TimescaleMode::Auto, KEEP_ALL).await;
    assert_eq!(
        scalar::<String>(
            &auto,
            "SELECT relkind::text FROM pg_class WHERE relname = 'telemetry'"
        )
        .await,
        "p"
    );
    close(auto).await;
    let moved = store_on(&db, TimescaleMode::On, KEEP_ALL).await;
    let hypertables: i64 = scalar(
        &moved,
        "SELECT count(*) FROM timescaledb_information.hypertables WHERE hypertable_name = 'telemetry'",
    )
    .await;
    assert_eq!(hypertables, 1);
    assert_eq!(
        scalar::<i64>(&moved, "SELECT count(*) FROM telemetry").await,
        600
    );
    assert_eq!(chunks(&moved).await, 3);
    assert_eq!(read(&moved, "speed", from, to).await, before);
    // New messages go into the hypertable; a redelivered old one is still a duplicate.
    ingest(&moved, &samples_at(1, &times[..1])).await;
    ingest(&moved, &samples_at(1_000, &[T0 + 5_000])).await;
    assert_eq!(
        scalar::<i64>(&moved, "SELECT count(*) FROM telemetry").await,
        602
    );
}

#[tokio::test]
async fn a_second_start_and_an_extension_update_change_nothing() {
    let db = Database::create_on(&telltale_testdb::timescale_admin_url());
    let store = store_on(&db, TimescaleMode::On, 30).await;
    ingest(&store, &samples_at(1, &spread(T0, 1, 10))).await;
    let jobs =
        "SELECT count(*) FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL";
    let before: i64 = scalar(&store, jobs).await;
    close(store).await;
    let again = store_on(&db, TimescaleMode::Auto, 30).await;
    assert_eq!(scalar::<i64>(&again, jobs).await, before);
    assert_eq!(
        scalar::<i64>(&again, "SELECT count(*) FROM telemetry").await,
        20
    );
    // The first command of a session of its own, as TimescaleDB's upgrade steps say.
    assert_eq!(
        db.rows("ALTER EXTENSION timescaledb UPDATE"),
        Vec::<String>::new()
    );
    let off = Store::connect(
        &db.url,
        StoreOptions {
            timescaledb: TimescaleMode::Off,
            ..StoreOptions::default()
        },
    )
    .await;
    let Ok(off) = off else {
        panic!("connect");
    };
    match off.migrate().await {
        Err(StoreError::Timescale(message)) => {
            assert!(message.contains("hypertable"), "{message}");
        }
        other => panic!("off on a hypertable must refuse, got {other:?}"),
    }
}

/// The shared server has TimescaleDB installed (the test command runs the install script) but
/// not in `shared_preload_libraries`: the state right after installing the package.
#[tokio::test]
async fn installed_but_not_loaded_auto_uses_partitions_and_on_says_what_to_set() {
    telltale_testdb::require_timescaledb();
    let db = Database::create();
    let loaded = db.rows("SELECT current_setting('shared_preload_libraries')");
    assert!(
        !loaded.iter().any(|l| l.contains("timescaledb")),
        "this test needs the shared server without TimescaleDB preloaded: {loaded:?}"
    );
    let options = |mode| StoreOptions {
        timescaledb: mode,
        ..StoreOptions::default()
    };
    let Ok(on) = Store::connect(&db.url, options(TimescaleMode::On)).await else {
        panic!("connect");
    };
    match on.migrate().await {
        Err(StoreError::Timescale(message)) => {
            assert!(
                message.contains("shared_preload_libraries = 'timescaledb'")
                    && message.contains("installed and not loaded"),
                "{message}"
            );
        }
        other => panic!("on without TimescaleDB loaded must refuse, got {other:?}"),
    }
    assert_eq!(
        db.count(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('_sqlx_migrations', 'telemetry')"
        ),
        0,
        "the refusal came before any migration"
    );
    close(on).await;

    let auto = store_on(&db, TimescaleMode::Auto, 30).await;
    assert_eq!(
        db.rows("SELECT relkind FROM pg_class WHERE relname = 'telemetry'"),
        ["p"]
    );
    ingest(&auto, &samples_at(1, &[T0])).await;
    assert_eq!(db.count("SELECT count(*) FROM telemetry"), 2);
}
