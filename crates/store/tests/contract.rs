//! The store's contract, run against the three databases it supports: every check is one
//! `async fn` taking a freshly migrated [`Db`], and each has a `pg_` (plain PostgreSQL: daily
//! partitions), a `tsdb_` (PostgreSQL with TimescaleDB: a hypertable; the run's shared
//! TimescaleDB server from `telltale_testdb`, `database.timescaledb = on`) and a `sqlite_` test.
//! The TimescaleDB specifics (chunks, compression, the move from partitions) are in
//! `tests/timescale.rs`.
//!
//! PostgreSQL: each test creates its own database `telltale_test_<random>` through the
//! maintenance database at `TELLTALE_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`) and drops it afterwards, also when the check
//! fails. SQLite: a file in a temporary directory.

mod common;

use chrono::{DateTime, TimeDelta, Utc};
use telltale_store::{Bucket, DeadLetter, Envelope, Store, StoreOptions, Uplink};
use telltale_wire::v1;

use common::*;

// ---- checks ----

async fn migrate_twice(db: Db) {
    if let Err(e) = db.store.migrate().await {
        panic!("second migrate: {e}");
    }
    let o = db
        .ingest(&[tele(1, 1, &[("Vehicle.Speed", 50.0, T0)])])
        .await;
    assert_eq!(o.new_messages, 1);
}

async fn ingest_then_query(db: Db) {
    let mut batch = tele(
        1,
        1,
        &[
            ("Vehicle.Speed", 10.0, T0),
            ("Vehicle.Speed", 20.0, T0 + 1_000),
            ("Vehicle.Speed", 30.0, T0 + 2_000),
            (
                "Vehicle.Powertrain.CombustionEngine.Speed",
                900.0,
                T0 + 1_500,
            ),
        ],
    );
    if let Uplink::Telemetry(b) = &mut batch.message {
        b.samples.push(v1::Sample {
            signal: "obd.fuel_system_status".into(),
            device_unix_ms: T0 + 500,
            service: 1,
            pid: 0x03,
            ecu_can_id: 0x7E8,
            text: "closed loop".into(),
            ..Default::default()
        });
    }
    let o = db.ingest(&[batch]).await;
    assert_eq!((o.new_messages, o.duplicates, o.samples), (1, 0, 5));

    let Ok(latest) = db.store.latest_values(VIN).await else {
        panic!("latest_values failed");
    };
    let by_signal: Vec<(&str, f64, Option<&str>)> = latest
        .iter()
        .map(|l| (l.signal.as_str(), l.value, l.text.as_deref()))
        .collect();
    assert_eq!(
        by_signal,
        vec![
            ("Vehicle.Powertrain.CombustionEngine.Speed", 900.0, None),
            ("Vehicle.Speed", 30.0, None),
            ("obd.fuel_system_status", 0.0, Some("closed loop")),
        ]
    );

    // The window is inclusive at both ends and in device time.
    let Ok(points) = db
        .store
        .samples(VIN, "Vehicle.Speed", at(T0 + 1_000), at(T0 + 2_000))
        .await
    else {
        panic!("samples failed");
    };
    let values: Vec<f64> = points.iter().map(|p| p.value).collect();
    assert_eq!(values, vec![20.0, 30.0]);
    assert_eq!(points[0].device_time, at(T0 + 1_000));
    let Ok(none) = db
        .store
        .samples("OTHERVIN", "Vehicle.Speed", at(0), at(T0 * 2))
        .await
    else {
        panic!("samples failed");
    };
    assert!(none.is_empty());

    db.ingest(&[report(2, false, vec![dtc("P0420", v1::DtcKind::Stored)])])
        .await;
    let Ok(history) = db.store.dtc_history(VIN).await else {
        panic!("dtc_history failed");
    };
    assert_eq!(history.len(), 1);
    assert_eq!(
        (
            history[0].code.as_str(),
            history[0].change.as_str(),
            history[0].kind.as_str()
        ),
        ("P0420", "appeared", "stored")
    );
    assert_eq!(history[0].ecu, 0x7E8);

    let Ok(Some(device)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert_eq!(device.vin.as_deref(), Some(VIN));
    assert_eq!(db.count("vehicles").await, 1);
}

async fn same_batch_twice(db: Db) {
    let batch = vec![
        tele(
            1,
            1,
            &[("Vehicle.Speed", 10.0, T0), ("Vehicle.Speed", 11.0, T0 + 1)],
        ),
        report(2, true, vec![dtc("P0301", v1::DtcKind::Stored)]),
        tele(1, 3, &[("Vehicle.Speed", 12.0, T0 + 5_000)]),
    ];
    let first = db.ingest(&batch).await;
    assert_eq!((first.new_messages, first.duplicates), (3, 0));
    assert_eq!((first.samples, first.dtc_events, first.leads), (3, 1, 1));
    let tables = [
        "telemetry",
        "messages",
        "dtc_events",
        "dtc_state",
        "lead_outbox",
        "gaps",
    ];
    let mut before = Vec::new();
    for t in tables {
        before.push(db.count(t).await);
    }
    let second = db.ingest(&batch).await;
    assert_eq!(
        second,
        telltale_store::IngestOutcome {
            new_messages: 0,
            duplicates: 3,
            ..Default::default()
        }
    );
    let mut after = Vec::new();
    for t in tables {
        after.push(db.count(t).await);
    }
    assert_eq!(before, after);
    assert_eq!(after[0], 3);
}

async fn redelivery_inside_a_new_batch(db: Db) {
    let m1 = tele(1, 1, &[("Vehicle.Speed", 1.0, T0)]);
    let m2 = tele(1, 2, &[("Vehicle.Speed", 2.0, T0 + 1_000)]);
    let m3 = tele(1, 3, &[("Vehicle.Speed", 3.0, T0 + 2_000)]);
    db.ingest(&[m1, m2.clone()]).await;
    // The redelivered message, and the same message twice within one batch.
    let o = db.ingest(&[m2, m3.clone(), m3]).await;
    assert_eq!((o.new_messages, o.duplicates, o.samples), (1, 2, 1));
    assert_eq!(db.count("telemetry").await, 3);
    assert_eq!(db.count("messages").await, 3);
}

async fn dtc_lifecycle_and_leads(db: Db) {
    let p0420 = || vec![dtc("P0420", v1::DtcKind::Stored)];
    let mut first = report(1, false, p0420());
    if let Uplink::Dtc(r) = &mut first.message {
        r.ecus[0].freeze_frame = Some(v1::FreezeFrame {
            trigger_code: "P0420".into(),
            values: vec![v1::FreezeFrameValue {
                signal: "Vehicle.Speed".into(),
                pid: 0x0D,
                value: 88.0,
                unit: "km/h".into(),
            }],
        });
    }
    let o = db.ingest(&[first]).await;
    assert_eq!((o.dtc_events, o.leads), (1, 1));
    assert_eq!(
        lead_keys(&due(&db, at(T0 + 86_400_000)).await),
        vec![format!("{VIN}:P0420:1")]
    );

    // Still there: nothing new.
    let o = db.ingest(&[report(2, false, p0420())]).await;
    assert_eq!((o.dtc_events, o.leads), (0, 0));

    // Cleared, then back: a second occurrence and a second lead.
    let o = db.ingest(&[report(3, false, vec![])]).await;
    assert_eq!((o.dtc_events, o.leads), (1, 0));
    let o = db.ingest(&[report(4, false, p0420())]).await;
    assert_eq!((o.dtc_events, o.leads), (1, 1));
    let leads = due(&db, at(T0 + 86_400_000)).await;
    assert_eq!(
        lead_keys(&leads),
        vec![format!("{VIN}:P0420:1"), format!("{VIN}:P0420:2")]
    );
    assert_eq!(leads[1].occurrence, 2);
    assert_eq!(
        (leads[1].reason.as_str(), leads[1].code.as_str()),
        ("confirmed", "P0420")
    );
    assert_eq!(leads[1].device_id, DEV);

    let Ok(history) = db.store.dtc_history(VIN).await else {
        panic!("dtc_history failed");
    };
    let changes: Vec<&str> = history.iter().map(|e| e.change.as_str()).collect();
    assert_eq!(
        changes,
        vec!["appeared", "cleared", "appeared"],
        "newest first"
    );
    let frames: Vec<Option<serde_json::Value>> =
        history.iter().map(|e| e.freeze_frame.clone()).collect();
    assert_eq!(
        frames,
        vec![
            None,
            None,
            Some(serde_json::json!({"trigger": "P0420", "values": [
                {"signal": "Vehicle.Speed", "pid": 13, "value": 88.0, "unit": "km/h"}
            ]}))
        ],
        "the first appearance keeps its freeze frame, read back as JSON"
    );
    assert_eq!(
        (history[2].ecu, history[2].kind.as_str(), history[2].mil_on),
        (0x7E8, "stored", false)
    );
    assert_eq!(
        db.scalar("SELECT occurrence FROM dtc_state WHERE code = 'P0420'")
            .await,
        2
    );
}

async fn mil_on_raises_a_lead(db: Db) {
    db.ingest(&[report(1, false, vec![dtc("P0300", v1::DtcKind::Stored)])])
        .await;
    let o = db
        .ingest(&[report(2, true, vec![dtc("P0300", v1::DtcKind::Stored)])])
        .await;
    assert_eq!(o.leads, 1, "the MIL came on for a code already known");
    let leads = due(&db, at(T0 + 86_400_000)).await;
    let mil: Vec<(String, String)> = leads
        .iter()
        .filter(|l| l.reason == "mil_on")
        .map(|l| (l.idempotency_key.clone(), l.code.clone()))
        .collect();
    assert_eq!(mil, vec![(format!("{VIN}:MIL:1"), "P0300".to_owned())]);
    // MIL staying on raises nothing more.
    let o = db
        .ingest(&[report(3, true, vec![dtc("P0300", v1::DtcKind::Stored)])])
        .await;
    assert_eq!(o.leads, 0);
}

async fn pending_without_lead(db: Db) {
    let o = db
        .ingest(&[report(1, false, vec![dtc("P0171", v1::DtcKind::Pending)])])
        .await;
    assert_eq!((o.dtc_events, o.leads), (1, 0));
    assert_eq!(db.count("lead_outbox").await, 0);
}

async fn pending_with_lead_when_configured(db: Db) {
    let o = db
        .ingest(&[report(1, false, vec![dtc("P0171", v1::DtcKind::Pending)])])
        .await;
    assert_eq!((o.dtc_events, o.leads), (1, 1));
    let leads = due(&db, at(T0 + 86_400_000)).await;
    assert_eq!(leads[0].reason, "pending");
}

async fn gaps_recorded_filled_and_split(db: Db) {
    let m = |seq: u64| tele(7, seq, &[("Vehicle.Speed", seq as f64, T0 + seq as i64)]);
    let o = db.ingest(&[m(1), m(2), m(8)]).await;
    assert_eq!(o.gaps, 1);
    let spans = |db: Db| async move {
        let Ok(gaps) = db.store.gaps(DEV).await else {
            panic!("gaps failed");
        };
        gaps.iter()
            .map(|g| (g.first_missing, g.last_missing))
            .collect::<Vec<_>>()
    };
    assert_eq!(spans(db.clone()).await, vec![(3, 7)]);
    // Late arrival in the middle splits it; at an edge shrinks it.
    let o = db.ingest(&[m(5)]).await;
    assert_eq!(o.gaps, 0);
    assert_eq!(spans(db.clone()).await, vec![(3, 4), (6, 7)]);
    db.ingest(&[m(3), m(7)]).await;
    assert_eq!(spans(db.clone()).await, vec![(4, 4), (6, 6)]);
    db.ingest(&[m(4), m(6)]).await;
    assert!(spans(db.clone()).await.is_empty());
    // A new boot restarts at 1 without a gap; another jump records one again.
    let o = db
        .ingest(&[
            tele(8, 1, &[("Vehicle.Speed", 1.0, T0)]),
            tele(8, 4, &[("Vehicle.Speed", 1.0, T0)]),
        ])
        .await;
    assert_eq!(o.gaps, 1);
    let Ok(gaps) = db.store.gaps(DEV).await else {
        panic!("gaps failed");
    };
    assert_eq!(gaps.len(), 1);
    assert_eq!(
        (
            gaps[0].boot_id.clone(),
            gaps[0].first_missing,
            gaps[0].last_missing
        ),
        (vec![8; 16], 2, 3)
    );
}

async fn a_drained_status_reveals_the_boots_tail(db: Db) {
    let m = |seq: u64| tele(7, seq, &[("Vehicle.Speed", seq as f64, T0 + seq as i64)]);
    db.ingest(&[m(1), m(2)]).await;
    // The agent says it numbered up to 5 and its spool is empty: 3..=5 are owed.
    let drained = |spool_messages: u64| Envelope {
        device_id: DEV.into(),
        received_at: at(T0 + 10_000),
        message: Uplink::Status(v1::Status {
            header: header(7, 0, T0 + 10_000),
            presence: v1::Presence::Offline as i32,
            last_seq: 5,
            spool_messages,
            ..Default::default()
        }),
    };
    let o = db.ingest(&[drained(2)]).await;
    assert_eq!(o.gaps, 0, "messages still in the spool are not missing");
    let o = db.ingest(&[drained(0)]).await;
    assert_eq!(o.gaps, 1);
    let spans = || async {
        let Ok(gaps) = db.store.gaps(DEV).await else {
            panic!("gaps failed");
        };
        gaps.iter()
            .map(|g| (g.first_missing, g.last_missing))
            .collect::<Vec<_>>()
    };
    assert_eq!(spans().await, vec![(3, 5)]);
    // They were late, not lost.
    db.ingest(&[m(4)]).await;
    assert_eq!(spans().await, vec![(3, 3), (5, 5)]);
    db.ingest(&[m(3), m(5)]).await;
    assert!(spans().await.is_empty());
    let o = db.ingest(&[drained(0)]).await;
    assert_eq!(o.gaps, 0, "claimed again, nothing owed");
}

async fn status_sets_presence(db: Db) {
    db.ingest(&[status(v1::Presence::Online, T0)]).await;
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert!(d.online);
    assert_eq!(d.last_seen, at(T0));
    // Not deduplicated: the same seq 0 again with a later offline counts.
    db.ingest(&[status(v1::Presence::Offline, T0 + 60_000)])
        .await;
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert!(!d.online);
    assert_eq!((d.first_seen, d.last_seen), (at(T0), at(T0 + 60_000)));
    // An older status arriving late does not undo a newer one.
    db.ingest(&[status(v1::Presence::Online, T0 + 30_000)])
        .await;
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert!(!d.online);
    // Data does not flip presence either.
    db.ingest(&[tele(1, 1, &[("Vehicle.Speed", 1.0, T0 + 120_000)])])
        .await;
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert!(!d.online);
    assert_eq!(d.vin.as_deref(), Some(VIN));
    db.ingest(&[status(v1::Presence::Online, T0 + 180_000)])
        .await;
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert!(d.online);
}

async fn dead_letters_round_trip(db: Db) {
    let letters = vec![
        DeadLetter {
            received_at: at(T0),
            topic: "telltale/v1/dongle-1/telemetry".into(),
            payload: vec![0x00, 0xFF, 0x0A, 0x05, 0x01],
            reason: "protobuf: buffer underflow".into(),
        },
        DeadLetter {
            received_at: at(T0 + 1_000),
            topic: "telltale/v1/other/dtc".into(),
            payload: Vec::new(),
            reason: "device id does not match the topic".into(),
        },
    ];
    if let Err(e) = db.store.dead_letter(&letters).await {
        panic!("dead_letter: {e}");
    }
    let Ok(back) = db.store.dead_letters(10).await else {
        panic!("dead_letters failed");
    };
    assert_eq!(back, vec![letters[1].clone(), letters[0].clone()]);
    let Ok(one) = db.store.dead_letters(1).await else {
        panic!("dead_letters failed");
    };
    assert_eq!(one.len(), 1);
}

async fn outbox_retry_and_sent(db: Db) {
    db.ingest(&[report(
        1,
        false,
        vec![
            dtc("P0420", v1::DtcKind::Stored),
            dtc("P0171", v1::DtcKind::Stored),
        ],
    )])
    .await;
    let created = at(T0 + 61_000);
    // Not due before it was created.
    assert!(due(&db, created - TimeDelta::seconds(1)).await.is_empty());
    let leads = due(&db, created).await;
    assert_eq!(leads.len(), 2);
    assert_eq!(leads[0].created_at, created);
    assert_eq!(leads[0].attempts, 0);

    let retry_at = created + TimeDelta::minutes(5);
    if let Err(e) = db
        .store
        .lead_failed(leads[0].id, "crm unavailable", retry_at)
        .await
    {
        panic!("lead_failed: {e}");
    }
    if let Err(e) = db.store.lead_sent(leads[1].id, created).await {
        panic!("lead_sent: {e}");
    }
    assert!(due(&db, created + TimeDelta::minutes(1)).await.is_empty());
    let again = due(&db, retry_at).await;
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].attempts), (leads[0].id, 1));
    if let Err(e) = db.store.lead_sent(again[0].id, retry_at).await {
        panic!("lead_sent: {e}");
    }
    assert!(due(&db, retry_at + TimeDelta::days(365)).await.is_empty());
    assert_eq!(
        db.count("lead_outbox WHERE sent_at IS NOT NULL AND last_error IS NULL")
            .await,
        2
    );
}

async fn maintain_honours_retention(db: Db) {
    let now = Utc::now();
    let ms = now.timestamp_millis();
    let day = 86_400_000;
    db.ingest(&[
        tele(1, 1, &[("Vehicle.Speed", 1.0, ms)]),
        // A device clock ten days ahead.
        tele(1, 2, &[("Vehicle.Speed", 2.0, ms + 10 * day)]),
    ])
    .await;
    assert_eq!(db.count("telemetry").await, 2);

    let later = now + TimeDelta::days(8);
    if let Err(e) = db.store.maintain(later).await {
        panic!("maintain: {e}");
    }
    // Retention 5 days at now + 8: today's sample is past it, the future one is not.
    assert_eq!(db.count("telemetry").await, 1);

    if db.backend() == Backend::Postgres {
        let name = |d: DateTime<Utc>| format!("telemetry_p{}", d.format("%Y%m%d"));
        let partitions = db
            .scalar("SELECT count(*) FROM pg_inherits WHERE inhparent = 'telemetry'::regclass")
            .await;
        let has = |n: String| {
            let db = db.clone();
            async move {
                db.scalar(&format!(
                    "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                     WHERE i.inhparent = 'telemetry'::regclass AND c.relname = '{n}'"
                ))
                .await
                    == 1
            }
        };
        assert!(
            !has(name(now)).await,
            "today's partition dropped past retention"
        );
        for ahead in 8..=11 {
            assert!(
                has(name(now + TimeDelta::days(ahead))).await,
                "partition +{ahead}"
            );
        }
        // The future sample moved out of the default partition into its day.
        assert_eq!(db.count("telemetry_default").await, 0);
        assert_eq!(db.count(&name(now + TimeDelta::days(10))).await, 1);
        assert!(partitions >= 5);
    }
}

async fn partitions_made_by_migrate(db: Db) {
    let now = Utc::now();
    for ahead in 0..=3 {
        let n = format!(
            "telemetry_p{}",
            (now + TimeDelta::days(ahead)).format("%Y%m%d")
        );
        let found = db
            .scalar(&format!(
                "SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                 WHERE i.inhparent = 'telemetry'::regclass AND c.relname = '{n}'"
            ))
            .await;
        assert_eq!(found, 1, "{n}");
    }
    // A wildly wrong clock lands in the default partition instead of failing the batch.
    let o = db.ingest(&[tele(1, 1, &[("Vehicle.Speed", 1.0, 0)])]).await;
    assert_eq!(o.samples, 1);
    assert_eq!(db.count("telemetry_default").await, 1);
    // Per-minute aggregates with date_bin.
    db.ingest(&[tele(
        1,
        2,
        &[
            ("Vehicle.Speed", 10.0, T0),
            ("Vehicle.Speed", 30.0, T0 + 10_000),
            ("Vehicle.Speed", 50.0, T0 + 60_000),
        ],
    )])
    .await;
    assert_eq!(
        db.scalar(&format!(
            "SELECT count(*) FROM telemetry_minute WHERE vin = '{VIN}' AND signal = 'Vehicle.Speed'
             AND bucket >= '2025-06-01'"
        ))
        .await,
        2
    );
    assert_eq!(
        db.scalar(
            "SELECT avg_value::bigint FROM telemetry_minute WHERE bucket = '2025-06-01 12:00:00+00'"
        )
        .await,
        20
    );
}

async fn rollups_agree_with_the_raw_rows(db: Db) {
    // Two hours of speed, a sample every 20 s with a value that walks, another signal and
    // another vehicle beside it that must not leak in.
    let mut samples = Vec::new();
    for i in 0..360i64 {
        samples.push((
            "Vehicle.Speed",
            ((i * 37) % 120) as f64 + 0.5,
            T0 + i * 20_000,
        ));
        samples.push((
            "Vehicle.Powertrain.CombustionEngine.Speed",
            800.0 + i as f64,
            T0 + i * 20_000,
        ));
    }
    for (seq, chunk) in samples.chunks(90).enumerate() {
        db.ingest(&[tele(1, seq as u64 + 1, chunk)]).await;
    }
    let mut other = tele(2, 1, &[("Vehicle.Speed", 999.0, T0 + 30_000)]);
    if let Uplink::Telemetry(b) = &mut other.message {
        b.vin = "JH4KA7650MC000001".into();
    }
    db.ingest(&[other]).await;

    for (bucket, width_ms) in [(Bucket::Minute, 60_000i64), (Bucket::Hour, 3_600_000)] {
        let Ok(got) = db
            .store
            .rollup(VIN, "Vehicle.Speed", at(T0), at(T0 + 2 * 3_600_000), bucket)
            .await
        else {
            panic!("rollup {bucket:?}");
        };
        // The same figures worked out from the samples themselves.
        let mut want: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
        for (signal, v, t) in &samples {
            if *signal == "Vehicle.Speed" {
                want.entry(t - (t - T0).rem_euclid(width_ms))
                    .or_default()
                    .push(*v);
            }
        }
        assert_eq!(got.len(), want.len(), "{bucket:?}: {got:?}");
        for (r, (start, values)) in got.iter().zip(&want) {
            assert_eq!(r.bucket, at(*start), "{bucket:?}");
            assert_eq!(r.samples, values.len() as i64, "{bucket:?} at {start}");
            let avg = values.iter().sum::<f64>() / values.len() as f64;
            assert!(
                (r.avg - avg).abs() < 1e-9,
                "{bucket:?} avg {} vs {avg}",
                r.avg
            );
            let min = values.iter().copied().fold(f64::INFINITY, f64::min);
            let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            assert_eq!((r.min, r.max), (min, max), "{bucket:?} at {start}");
        }
    }
}

async fn times_stay_utc_with_device_time_beside(db: Db) {
    // The device clock runs 5 minutes behind the cloud.
    let device_ms = T0 + 123;
    let mut e = tele(1, 1, &[("Vehicle.Speed", 42.0, device_ms)]);
    e.received_at = at(T0 + 300_456);
    let r = {
        let mut r = report(2, false, vec![dtc("P0420", v1::DtcKind::Stored)]);
        r.received_at = at(T0 + 400_789);
        r
    };
    db.ingest(&[e, r]).await;
    let Ok(latest) = db.store.latest_values(VIN).await else {
        panic!("latest_values failed");
    };
    assert_eq!(latest[0].device_time, at(device_ms));
    assert_eq!(latest[0].received_at, at(T0 + 300_456));
    assert_eq!(
        latest[0].device_time.to_rfc3339(),
        "2025-06-01T12:00:00.123+00:00"
    );
    let Ok(history) = db.store.dtc_history(VIN).await else {
        panic!("dtc_history failed");
    };
    assert_eq!(history[0].device_time, at(T0 + 120_000));
    assert_eq!(history[0].received_at, at(T0 + 400_789));
}

async fn info_updates_vehicle_and_device(db: Db) {
    let info = Envelope {
        device_id: DEV.into(),
        received_at: at(T0),
        message: Uplink::Info(v1::VehicleInfo {
            header: header(1, 1, T0),
            vin: VIN.into(),
            ecus: vec![v1::EcuInfo {
                can_id: 0x7E8,
                name: "ECM-EngineControl".into(),
                ..Default::default()
            }],
            link: "socketcan:can0".into(),
            agent_version: "0.1.0".into(),
            bus: "ISO 15765-4 CAN 11-bit".into(),
            schedule: Vec::new(),
        }),
    };
    let result = Envelope {
        device_id: DEV.into(),
        received_at: at(T0 + 1_000),
        message: Uplink::CmdResult(v1::CommandResult {
            header: header(1, 2, T0 + 1_000),
            command_id: "c-1".into(),
            ok: true,
            ..Default::default()
        }),
    };
    let o = db.ingest(&[info.clone(), result.clone()]).await;
    assert_eq!(o.new_messages, 2);
    let o = db.ingest(&[result]).await;
    assert_eq!(o.duplicates, 1);
    assert_eq!(db.count("command_results").await, 1);
    let Ok(Some(d)) = db.store.device(DEV).await else {
        panic!("device missing");
    };
    assert_eq!(d.vin.as_deref(), Some(VIN));
    assert_eq!(
        db.count(&format!(
            "vehicles WHERE vin = '{VIN}' AND last_device_id = '{DEV}' AND info IS NOT NULL"
        ))
        .await,
        1
    );
}

async fn concurrent_redelivery_stores_once(db: Db) {
    let batch: Vec<Envelope> = (1..=20)
        .map(|seq| tele(1, seq, &[("Vehicle.Speed", seq as f64, T0 + seq as i64)]))
        .collect();
    // Spawned, as the ingest service will: the futures must be Send.
    let spawn = |store: Store, batch: Vec<Envelope>| {
        tokio::spawn(async move { store.ingest(&batch).await })
    };
    let a = spawn(db.store.clone(), batch.clone());
    let b = spawn(db.store.clone(), batch);
    let (Ok(Ok(a)), Ok(Ok(b))) = (a.await, b.await) else {
        panic!("concurrent ingest failed");
    };
    assert_eq!(a.new_messages + b.new_messages, 20);
    assert_eq!(a.duplicates + b.duplicates, 20);
    assert_eq!(db.count("telemetry").await, 20);
    assert_eq!(db.count("gaps").await, 0);
}

fn opts() -> StoreOptions {
    StoreOptions::default()
}

fn short_retention() -> StoreOptions {
    StoreOptions {
        retention_days: 5,
        ..StoreOptions::default()
    }
}

fn pending_leads() -> StoreOptions {
    StoreOptions {
        leads_for_pending: true,
        ..StoreOptions::default()
    }
}

// ---- one test per check and database ----

use Backend::{Postgres as Pg, Sqlite as Lite, Timescale as Tsdb};

#[tokio::test]
async fn pg_migrate_twice() {
    run(Pg, opts(), migrate_twice).await
}
#[tokio::test]
async fn sqlite_migrate_twice() {
    run(Lite, opts(), migrate_twice).await
}
#[tokio::test]
async fn pg_ingest_then_query() {
    run(Pg, opts(), ingest_then_query).await
}
#[tokio::test]
async fn sqlite_ingest_then_query() {
    run(Lite, opts(), ingest_then_query).await
}
#[tokio::test]
async fn pg_same_batch_twice() {
    run(Pg, opts(), same_batch_twice).await
}
#[tokio::test]
async fn sqlite_same_batch_twice() {
    run(Lite, opts(), same_batch_twice).await
}
#[tokio::test]
async fn pg_redelivery_inside_a_new_batch() {
    run(Pg, opts(), redelivery_inside_a_new_batch).await
}
#[tokio::test]
async fn sqlite_redelivery_inside_a_new_batch() {
    run(Lite, opts(), redelivery_inside_a_new_batch).await
}
#[tokio::test]
async fn pg_dtc_lifecycle_and_leads() {
    run(Pg, opts(), dtc_lifecycle_and_leads).await
}
#[tokio::test]
async fn sqlite_dtc_lifecycle_and_leads() {
    run(Lite, opts(), dtc_lifecycle_and_leads).await
}
#[tokio::test]
async fn pg_mil_on_raises_a_lead() {
    run(Pg, opts(), mil_on_raises_a_lead).await
}
#[tokio::test]
async fn sqlite_mil_on_raises_a_lead() {
    run(Lite, opts(), mil_on_raises_a_lead).await
}
#[tokio::test]
async fn pg_pending_without_lead() {
    run(Pg, opts(), pending_without_lead).await
}
#[tokio::test]
async fn sqlite_pending_without_lead() {
    run(Lite, opts(), pending_without_lead).await
}
#[tokio::test]
async fn pg_pending_with_lead_when_configured() {
    run(Pg, pending_leads(), pending_with_lead_when_configured).await
}
#[tokio::test]
async fn sqlite_pending_with_lead_when_configured() {
    run(Lite, pending_leads(), pending_with_lead_when_configured).await
}
#[tokio::test]
async fn pg_a_drained_status_reveals_the_boots_tail() {
    run(Pg, opts(), a_drained_status_reveals_the_boots_tail).await
}
#[tokio::test]
async fn sqlite_a_drained_status_reveals_the_boots_tail() {
    run(Lite, opts(), a_drained_status_reveals_the_boots_tail).await
}
#[tokio::test]
async fn pg_gaps_recorded_filled_and_split() {
    run(Pg, opts(), gaps_recorded_filled_and_split).await
}
#[tokio::test]
async fn sqlite_gaps_recorded_filled_and_split() {
    run(Lite, opts(), gaps_recorded_filled_and_split).await
}
#[tokio::test]
async fn pg_status_sets_presence() {
    run(Pg, opts(), status_sets_presence).await
}
#[tokio::test]
async fn sqlite_status_sets_presence() {
    run(Lite, opts(), status_sets_presence).await
}
#[tokio::test]
async fn pg_dead_letters_round_trip() {
    run(Pg, opts(), dead_letters_round_trip).await
}
#[tokio::test]
async fn sqlite_dead_letters_round_trip() {
    run(Lite, opts(), dead_letters_round_trip).await
}
#[tokio::test]
async fn pg_outbox_retry_and_sent() {
    run(Pg, opts(), outbox_retry_and_sent).await
}
#[tokio::test]
async fn sqlite_outbox_retry_and_sent() {
    run(Lite, opts(), outbox_retry_and_sent).await
}
#[tokio::test]
async fn pg_maintain_honours_retention() {
    run(Pg, short_retention(), maintain_honours_retention).await
}
#[tokio::test]
async fn sqlite_maintain_honours_retention() {
    run(Lite, short_retention(), maintain_honours_retention).await
}
#[tokio::test]
async fn pg_partitions_made_by_migrate() {
    run(Pg, opts(), partitions_made_by_migrate).await
}
#[tokio::test]
async fn pg_times_stay_utc_with_device_time_beside() {
    run(Pg, opts(), times_stay_utc_with_device_time_beside).await
}
#[tokio::test]
async fn sqlite_times_stay_utc_with_device_time_beside() {
    run(Lite, opts(), times_stay_utc_with_device_time_beside).await
}
#[tokio::test]
async fn pg_info_updates_vehicle_and_device() {
    run(Pg, opts(), info_updates_vehicle_and_device).await
}
#[tokio::test]
async fn sqlite_info_updates_vehicle_and_device() {
    run(Lite, opts(), info_updates_vehicle_and_device).await
}
#[tokio::test]
async fn pg_concurrent_redelivery_stores_once() {
    run(Pg, opts(), concurrent_redelivery_stores_once).await
}
#[tokio::test]
async fn sqlite_concurrent_redelivery_stores_once() {
    run(Lite, opts(), concurrent_redelivery_stores_once).await
}

#[tokio::test]
async fn sqlite_in_memory_keeps_one_database() {
    let store = match Store::connect("sqlite::memory:", opts()).await {
        Ok(s) => s,
        Err(e) => panic!("connect: {e}"),
    };
    if let Err(e) = store.migrate().await {
        panic!("migrate: {e}");
    }
    // Several calls, one database: a second pooled connection would see no tables.
    for seq in 1..=3 {
        let Ok(o) = store
            .ingest(&[tele(1, seq, &[("Vehicle.Speed", 1.0, T0)])])
            .await
        else {
            panic!("ingest failed");
        };
        assert_eq!(o.new_messages, 1);
    }
    let Ok(latest) = store.latest_values(VIN).await else {
        panic!("latest_values failed");
    };
    assert_eq!(latest.len(), 1);
}

#[tokio::test]
async fn unknown_url_is_refused() {
    let r = Store::connect("mysql://localhost/x", opts()).await;
    assert!(matches!(r, Err(telltale_store::StoreError::BadUrl(u)) if u == "mysql://localhost/x"));
}

#[tokio::test]
async fn pg_rollups_agree_with_the_raw_rows() {
    run(Pg, opts(), rollups_agree_with_the_raw_rows).await
}
#[tokio::test]
async fn sqlite_rollups_agree_with_the_raw_rows() {
    run(Lite, opts(), rollups_agree_with_the_raw_rows).await
}

// ---- the same checks on PostgreSQL with TimescaleDB ----

#[tokio::test]
async fn tsdb_rollups_agree_with_the_raw_rows() {
    run(Tsdb, opts(), rollups_agree_with_the_raw_rows).await
}

#[tokio::test]
async fn tsdb_migrate_twice() {
    run(Tsdb, opts(), migrate_twice).await
}
#[tokio::test]
async fn tsdb_ingest_then_query() {
    run(Tsdb, opts(), ingest_then_query).await
}
#[tokio::test]
async fn tsdb_same_batch_twice() {
    run(Tsdb, opts(), same_batch_twice).await
}
#[tokio::test]
async fn tsdb_redelivery_inside_a_new_batch() {
    run(Tsdb, opts(), redelivery_inside_a_new_batch).await
}
#[tokio::test]
async fn tsdb_dtc_lifecycle_and_leads() {
    run(Tsdb, opts(), dtc_lifecycle_and_leads).await
}
#[tokio::test]
async fn tsdb_mil_on_raises_a_lead() {
    run(Tsdb, opts(), mil_on_raises_a_lead).await
}
#[tokio::test]
async fn tsdb_pending_without_lead() {
    run(Tsdb, opts(), pending_without_lead).await
}
#[tokio::test]
async fn tsdb_pending_with_lead_when_configured() {
    run(Tsdb, pending_leads(), pending_with_lead_when_configured).await
}
#[tokio::test]
async fn tsdb_a_drained_status_reveals_the_boots_tail() {
    run(Tsdb, opts(), a_drained_status_reveals_the_boots_tail).await
}
#[tokio::test]
async fn tsdb_gaps_recorded_filled_and_split() {
    run(Tsdb, opts(), gaps_recorded_filled_and_split).await
}
#[tokio::test]
async fn tsdb_status_sets_presence() {
    run(Tsdb, opts(), status_sets_presence).await
}
#[tokio::test]
async fn tsdb_dead_letters_round_trip() {
    run(Tsdb, opts(), dead_letters_round_trip).await
}
#[tokio::test]
async fn tsdb_outbox_retry_and_sent() {
    run(Tsdb, opts(), outbox_retry_and_sent).await
}
#[tokio::test]
async fn tsdb_maintain_honours_retention() {
    run(Tsdb, short_retention(), maintain_honours_retention).await
}
#[tokio::test]
async fn tsdb_times_stay_utc_with_device_time_beside() {
    run(Tsdb, opts(), times_stay_utc_with_device_time_beside).await
}
#[tokio::test]
async fn tsdb_info_updates_vehicle_and_device() {
    run(Tsdb, opts(), info_updates_vehicle_and_device).await
}
#[tokio::test]
async fn tsdb_concurrent_redelivery_stores_once() {
    run(Tsdb, opts(), concurrent_redelivery_stores_once).await
}
