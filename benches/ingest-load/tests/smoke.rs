//! The benchmark's smoke mode against the real Mosquitto (started by the harness), the real
//! PostgreSQL (`TELLTALE_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/postgres`)
//! and the tests' TimescaleDB server, with the `telltale-ingest` built beside this test: 50
//! vehicles for 3 s, through the ingest with its two writers on both databases and with one
//! writer. The harness itself fails on a missing or doubled row; this test counts again in the
//! scratch databases it kept, so a harness that counted wrong would not hide a lost sample
//! either.

use std::process::Command;

use sqlx::{Connection as _, PgConnection, Row as _};

const VEHICLES: u64 = 50;
const BATCHES: u64 = 3;
const SAMPLES_PER_BATCH: u64 = 20;

fn pg_url() -> String {
    std::env::var("TELLTALE_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

#[test]
fn smoke_run_commits_every_published_sample_exactly_once() {
    let ingest = telltale_e2e::binary("telltale-ingest");
    let tsdb = telltale_e2e::pg::timescale_admin_url();
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_telltale-load"))
        .args([
            "bench",
            "--vehicles",
            &VEHICLES.to_string(),
            "--seconds",
            &BATCHES.to_string(),
            "--interval",
            "1",
            "--samples-per-batch",
            &SAMPLES_PER_BATCH.to_string(),
            "--connections",
            "5",
            "--rounds",
            "1",
            "--only",
            "ingest,ingest1",
            "--drain-timeout",
            "60",
            "--keep-db",
            "--pg-url",
            &pg_url(),
            "--tsdb-url",
            &tsdb,
        ])
        .arg("--ingest-bin")
        .arg(&ingest)
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run telltale-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: serde_json::Value = std::fs::read(&json)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let rt = tokio::runtime::Runtime::new().expect("a runtime");
    let parts = [
        ("ingest", pg_url()),
        ("timescale_ingest", tsdb.clone()),
        ("ingest_one_writer", pg_url()),
    ];
    // Count in the kept databases before judging, and drop them whatever the outcome.
    let counted: Vec<Option<Counted>> = parts
        .iter()
        .map(|(part, admin)| {
            let db = report["rounds"][0][part]["database"].as_str()?.to_owned();
            Some(rt.block_on(count_and_drop(admin, &db)))
        })
        .collect();
    assert!(
        out.status.success(),
        "telltale-load failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for ((part, _), counted) in parts.iter().zip(counted) {
        let Some(Counted {
            rows,
            messages,
            wrong,
            dedupe_keys,
            hypertable,
        }) = counted
        else {
            panic!("no scratch database for {part} in the report:\n{stdout}\n{stderr}");
        };
        let published = &report["rounds"][0][part]["published"];
        assert_eq!(
            published["samples"].as_u64(),
            Some(VEHICLES * BATCHES * SAMPLES_PER_BATCH),
            "{part}: {stdout}"
        );
        assert_eq!(
            published["messages"].as_u64(),
            Some(VEHICLES * (2 + BATCHES)),
            "{part}: info, status and telemetry of every vehicle acknowledged by the broker"
        );
        assert_eq!(
            rows,
            VEHICLES * BATCHES * SAMPLES_PER_BATCH,
            "{part}: every published sample committed\n{stdout}"
        );
        assert_eq!(
            messages,
            VEHICLES * BATCHES,
            "{part}: every telemetry message"
        );
        assert_eq!(
            wrong, 0,
            "{part}: no message with doubled or missing samples"
        );
        assert_eq!(
            dedupe_keys,
            VEHICLES * (1 + BATCHES),
            "{part}: one dedupe key per info and telemetry message"
        );
        assert_eq!(
            hypertable,
            *part == "timescale_ingest",
            "{part}: telemetry is a hypertable on TimescaleDB only"
        );
        assert_eq!(report["rounds"][0][part]["exact"], true, "{part}");
    }
    assert_eq!(report["ingest_writers"], 2);
}

/// Counts in scratch database `db` on the server at `admin` (see [`count`]), whether its
/// telemetry is a hypertable, then drops it.
/// What one part's scratch database held.
struct Counted {
    rows: u64,
    messages: u64,
    wrong: u64,
    dedupe_keys: u64,
    hypertable: bool,
}

async fn count_and_drop(admin: &str, db: &str) -> Counted {
    let base = admin.rsplit_once('/').map_or("", |(base, _)| base);
    let url = format!("{base}/{db}");
    let (rows, messages, wrong, keys) = count(&url).await;
    let mut conn = PgConnection::connect(&url)
        .await
        .expect("connect to the scratch database");
    let hypertable: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')",
    )
    .fetch_one(&mut conn)
    .await
    .expect("ask for the extension");
    let hypertable = hypertable
        && sqlx::query_scalar::<_, bool>(
            "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables
                            WHERE hypertable_name = 'telemetry')",
        )
        .fetch_one(&mut conn)
        .await
        .expect("ask for hypertables");
    let _ = conn.close().await;
    let mut admin = PgConnection::connect(admin)
        .await
        .expect("connect to the admin database");
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut admin)
        .await
        .expect("drop the scratch database");
    Counted {
        rows,
        messages,
        wrong,
        dedupe_keys: keys,
        hypertable,
    }
}

/// Telemetry rows, distinct (device, boot, seq) among them, those with a row count other than
/// the batch size, and the store's dedupe keys.
async fn count(url: &str) -> (u64, u64, u64, u64) {
    let mut conn = PgConnection::connect(url)
        .await
        .expect("connect to the scratch database");
    let row = sqlx::query(
        "SELECT coalesce(sum(n), 0)::int8, count(*)::int8, count(*) FILTER (WHERE n <> $1)::int8
         FROM (SELECT count(*) AS n FROM telemetry GROUP BY device_id, boot_id, seq) AS m",
    )
    .bind(SAMPLES_PER_BATCH as i64)
    .fetch_one(&mut conn)
    .await
    .expect("count telemetry");
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&mut conn)
        .await
        .expect("count dedupe keys");
    let get = |i: usize| row.get::<i64, _>(i).unsigned_abs();
    (get(0), get(1), get(2), keys.unsigned_abs())
}

/// `telltale-load footprint` at smoke size on all three databases (TimescaleDB: the cluster
/// the tests share): every sample stored once in each, and compression makes the hypertable
/// smaller. Sizes here say nothing about a real fleet (a few pages); the figures are in the
/// README, from a full-size run.
#[test]
fn footprint_stores_every_sample_in_each_layout() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let json = dir.path().join("footprint.json");
    let out = Command::new(env!("CARGO_BIN_EXE_telltale-load"))
        .args([
            "footprint",
            "--vehicles",
            "20",
            "--seconds",
            "200",
            "--interval",
            "10",
            "--samples-per-batch",
            "40",
            "--pg-url",
            &pg_url(),
            "--tsdb-url",
            &telltale_e2e::pg::timescale_admin_url(),
        ])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("run telltale-load footprint");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "footprint failed:\n{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).expect("the JSON report")).expect("JSON");
    let rows = report["rows"].as_array().expect("rows");
    let layouts: Vec<&str> = rows.iter().filter_map(|r| r["layout"].as_str()).collect();
    assert_eq!(
        layouts,
        [
            "PostgreSQL, daily partitions",
            "TimescaleDB, uncompressed chunks",
            "TimescaleDB, compressed chunks",
            "SQLite"
        ]
    );
    for row in rows {
        assert_eq!(row["samples"], 20 * 20 * 40, "{row}");
        assert!(row["bytes"].as_u64().unwrap_or(0) > 0, "{row}");
    }
    let (before, after) = (
        rows[1]["bytes"].as_u64().unwrap_or(0),
        rows[2]["bytes"].as_u64().unwrap_or(u64::MAX),
    );
    assert!(
        after < before,
        "compressed {after} B, uncompressed {before} B"
    );
}
