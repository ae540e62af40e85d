//! What the store's tests share: a migrated store on a database of its own on each of the
//! three databases ([`open`], [`run`]), and builders of the messages an agent sends.
#![allow(dead_code)] // each test file uses its part

use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use telltale_store::{Envelope, Store, StoreOptions, TimescaleMode, Uplink};
use telltale_wire::v1;

pub(crate) const VIN: &str = "WVWZZZ1JZXW000001";
pub(crate) const DEV: &str = "dongle-1";
/// 2025-06-01T12:00:00Z.
pub(crate) const T0: i64 = 1_748_779_200_000;

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Backend {
    Postgres,
    Timescale,
    Sqlite,
}

/// A migrated store on a database of its own.
#[derive(Debug, Clone)]
pub(crate) struct Db {
    pub(crate) store: Store,
    pub(crate) backend: Backend,
    _cleanup: Arc<Cleanup>,
}

/// Removes the test's database when the last [`Db`] clone goes, also while a failed check
/// unwinds: the SQLite directory goes with the `TempDir`, the PostgreSQL database with its
/// [`telltale_testdb::Database`].
#[derive(Debug)]
pub(crate) enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Postgres(#[allow(dead_code)] telltale_testdb::Database),
}

pub(crate) async fn open(backend: Backend, options: StoreOptions) -> Db {
    match backend {
        Backend::Sqlite => {
            let Ok(dir) = tempfile::tempdir() else {
                panic!("no temporary directory");
            };
            let url = format!("sqlite://{}", dir.path().join("store.db").display());
            let store = match Store::connect(&url, options).await {
                Ok(s) => s,
                Err(e) => panic!("connect {url}: {e}"),
            };
            if let Err(e) = store.migrate().await {
                panic!("migrate sqlite: {e}");
            }
            Db {
                store,
                backend,
                _cleanup: Arc::new(Cleanup::Sqlite(dir)),
            }
        }
        Backend::Postgres | Backend::Timescale => {
            let (admin, options) = if backend == Backend::Timescale {
                let options = StoreOptions {
                    timescaledb: TimescaleMode::On,
                    ..options
                };
                (telltale_testdb::timescale_admin_url(), options)
            } else {
                (telltale_testdb::admin_url(), options)
            };
            let database = telltale_testdb::Database::create_on(&admin);
            let url = database.url.clone();
            let cleanup = Arc::new(Cleanup::Postgres(database));
            let store = match Store::connect(&url, options).await {
                Ok(s) => s,
                Err(e) => panic!("connect {url}: {e}"),
            };
            if let Err(e) = store.migrate().await {
                panic!("migrate postgres: {e}");
            }
            Db {
                store,
                backend,
                _cleanup: cleanup,
            }
        }
    }
}

/// Runs a check on a fresh database; the database goes when the check ends or panics.
pub(crate) async fn run<F, Fut>(backend: Backend, options: StoreOptions, check: F)
where
    F: FnOnce(Db) -> Fut,
    Fut: Future<Output = ()>,
{
    check(open(backend, options).await).await;
}

impl Db {
    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) async fn scalar(&self, sql: &str) -> i64 {
        let r = match &self.store {
            Store::Postgres(pool, _) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
            Store::Sqlite(pool, _) => sqlx::query_scalar::<_, i64>(sql).fetch_one(pool).await,
        };
        match r {
            Ok(n) => n,
            Err(e) => panic!("{sql}: {e}"),
        }
    }

    pub(crate) async fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT count(*) FROM {table}")).await
    }

    pub(crate) async fn ingest(&self, batch: &[Envelope]) -> telltale_store::IngestOutcome {
        match self.store.ingest(batch).await {
            Ok(o) => o,
            Err(e) => panic!("ingest: {e}"),
        }
    }
}

pub(crate) fn at(ms: i64) -> DateTime<Utc> {
    let Some(t) = DateTime::from_timestamp_millis(ms) else {
        panic!("bad test time {ms}");
    };
    t
}

pub(crate) fn header(boot: u8, seq: u64, ms: i64) -> Option<v1::UplinkHeader> {
    Some(v1::UplinkHeader {
        device_id: DEV.into(),
        boot_id: vec![boot; 16],
        seq,
        created_unix_ms: ms,
    })
}

/// A telemetry batch whose samples are `(signal, value, device ms)`; received 2 s later.
pub(crate) fn tele(boot: u8, seq: u64, samples: &[(&str, f64, i64)]) -> Envelope {
    let made = samples.iter().map(|s| s.2).max().unwrap_or(T0);
    Envelope {
        device_id: DEV.into(),
        received_at: at(made + 2_000),
        message: Uplink::Telemetry(v1::TelemetryBatch {
            header: header(boot, seq, made),
            vin: VIN.into(),
            samples: samples
                .iter()
                .map(|(signal, value, ms)| v1::Sample {
                    signal: (*signal).into(),
                    value: *value,
                    device_unix_ms: *ms,
                    service: 1,
                    pid: 0x0D,
                    ecu_can_id: 0x7E8,
                    unit: "km/h".into(),
                    text: String::new(),
                })
                .collect(),
        }),
    }
}

pub(crate) fn dtc(code: &str, kind: v1::DtcKind) -> v1::Dtc {
    v1::Dtc {
        code: code.into(),
        kind: kind as i32,
        ..Default::default()
    }
}

/// A DTC report from ECU 0x7E8 made at `T0 + seq` minutes, received 1 s later.
pub(crate) fn report(seq: u64, mil_on: bool, current: Vec<v1::Dtc>) -> Envelope {
    let made = T0 + seq as i64 * 60_000;
    Envelope {
        device_id: DEV.into(),
        received_at: at(made + 1_000),
        message: Uplink::Dtc(v1::DtcReport {
            header: header(1, seq, made),
            vin: VIN.into(),
            device_unix_ms: made,
            ecus: vec![v1::EcuDtcs {
                ecu_can_id: 0x7E8,
                mil_on,
                current,
                ..Default::default()
            }],
            odometer_km: Some(123_456.7),
            reason: v1::DtcReportReason::Changed as i32,
            ..Default::default()
        }),
    }
}

pub(crate) fn status(presence: v1::Presence, received_ms: i64) -> Envelope {
    Envelope {
        device_id: DEV.into(),
        received_at: at(received_ms),
        message: Uplink::Status(v1::Status {
            header: header(1, 0, received_ms),
            presence: presence as i32,
            agent_version: "0.1.0".into(),
            ..Default::default()
        }),
    }
}

pub(crate) fn lead_keys(leads: &[telltale_store::OutboxLead]) -> Vec<String> {
    leads.iter().map(|l| l.idempotency_key.clone()).collect()
}

pub(crate) async fn due(db: &Db, now: DateTime<Utc>) -> Vec<telltale_store::OutboxLead> {
    match db.store.due_leads(now, 100).await {
        Ok(l) => l,
        Err(e) => panic!("due_leads: {e}"),
    }
}
