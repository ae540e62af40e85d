//! SQLite: the same rules as PostgreSQL on one file. Writes go row by row through cached
//! prepared statements inside one `BEGIN IMMEDIATE` transaction (SQLite has one writer; taking
//! the write lock up front avoids a deferred transaction failing when it upgrades).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tracing::debug;

use crate::model::{self, BootKey, GapSpan, Key, KeyRow, Loaded, Plan, StateRow};
use crate::{DeadLetter, Envelope, IngestOutcome, StoreError, StoreOptions};

type Tx = Transaction<'static, Sqlite>;

pub(crate) async fn migrate(pool: &SqlitePool) -> Result<(), StoreError> {
    sqlx::migrate!("./migrations/sqlite").run(pool).await?;
    Ok(())
}

/// Deletes telemetry and dedupe keys past retention (there are no partitions to drop).
pub(crate) async fn maintain(
    pool: &SqlitePool,
    now: DateTime<Utc>,
    options: &StoreOptions,
) -> Result<(), StoreError> {
    let cutoff = model::retention_cutoff(now, options.retention_days);
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let samples = sqlx::query("DELETE FROM telemetry WHERE device_time < ?")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    let keys = sqlx::query("DELETE FROM messages WHERE received_at < ?")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    tx.commit().await?;
    debug!(samples, keys, %cutoff, "rows past retention deleted");
    Ok(())
}

pub(crate) async fn ingest(
    pool: &SqlitePool,
    batch: &[Envelope],
    options: &StoreOptions,
) -> Result<IngestOutcome, StoreError> {
    let mut split = model::split(batch)?;
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let stored = insert_keys(&mut tx, &split.keyed).await?;
    let (fresh, duplicates) = split.take_fresh(&stored);
    let (vins, boots) = model::wanted(&fresh, &split.statuses);
    let loaded = load(&mut tx, &vins, &boots).await?;
    let plan = model::plan(&fresh, &split.statuses, loaded, options);
    let leads = write(&mut tx, &plan).await?;
    tx.commit().await?;
    Ok(plan.outcome(fresh.len(), duplicates, leads))
}

async fn insert_keys(
    tx: &mut Tx,
    keyed: &[(&Envelope, KeyRow)],
) -> Result<HashSet<Key>, StoreError> {
    let mut stored = HashSet::new();
    for (_, row) in keyed {
        let inserted = sqlx::query(
            "INSERT INTO messages (device_id, boot_id, seq, kind, device_time, received_at)
             VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&row.key.device_id)
        .bind(&row.key.boot_id)
        .bind(row.key.seq)
        .bind(row.kind)
        .bind(row.device_time)
        .bind(row.received_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
        if inserted == 1 {
            stored.insert(row.key.clone());
        }
    }
    Ok(stored)
}

async fn load(tx: &mut Tx, vins: &[String], boots: &[BootKey]) -> Result<Loaded, StoreError> {
    let mut loaded = Loaded::default();
    for vin in vins {
        let rows: Vec<StateRow> = sqlx::query_as(
            "SELECT vin, ecu, code, kind, active, since, occurrence, updated_at
             FROM dtc_state WHERE vin = ?",
        )
        .bind(vin)
        .fetch_all(&mut **tx)
        .await?;
        loaded
            .dtc
            .extend(rows.into_iter().map(|r| (r.key, r.state)));
    }
    for (device, boot) in boots {
        let max: Option<i64> =
            sqlx::query_scalar("SELECT max_seq FROM boot_seq WHERE device_id = ? AND boot_id = ?")
                .bind(device)
                .bind(boot)
                .fetch_optional(&mut **tx)
                .await?;
        let gaps: Vec<GapSpan> = sqlx::query_as(
            "SELECT first_missing, last_missing, detected_at FROM gaps
             WHERE device_id = ? AND boot_id = ? ORDER BY first_missing",
        )
        .bind(device)
        .bind(boot)
        .fetch_all(&mut **tx)
        .await?;
        let state = loaded
            .boots
            .entry((device.clone(), boot.clone()))
            .or_default();
        state.max_seq = max.unwrap_or(0);
        state.gaps = gaps;
    }
    Ok(loaded)
}

/// Writes the plan. Returns how many leads were new.
async fn write(tx: &mut Tx, plan: &Plan) -> Result<u64, StoreError> {
    for r in &plan.telemetry {
        sqlx::query(
            "INSERT INTO telemetry (vin, device_id, signal, value, text, unit, pid, ecu,
                                    device_time, received_at, boot_id, seq)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.vin)
        .bind(&r.device_id)
        .bind(&r.signal)
        .bind(r.value)
        .bind(&r.text)
        .bind(&r.unit)
        .bind(r.pid)
        .bind(r.ecu)
        .bind(r.device_time)
        .bind(r.received_at)
        .bind(&r.boot_id)
        .bind(r.seq)
        .execute(&mut **tx)
        .await?;
    }
    for r in &plan.dtc_events {
        sqlx::query(
            "INSERT INTO dtc_events (vin, device_id, ecu, code, kind, change, mil_on, device_time,
                                     received_at, freeze_frame, context)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&r.vin)
        .bind(&r.device_id)
        .bind(r.ecu)
        .bind(&r.code)
        .bind(&r.kind)
        .bind(r.change)
        .bind(r.mil_on)
        .bind(r.device_time)
        .bind(r.received_at)
        .bind(r.freeze_frame.as_ref().map(serde_json::Value::to_string))
        .bind(r.context.to_string())
        .execute(&mut **tx)
        .await?;
    }
    for (k, s) in &plan.dtc_state {
        sqlx::query(
            "INSERT INTO dtc_state (vin, ecu, code, kind, active, since, occurrence, updated_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (vin, ecu, code, kind) DO UPDATE SET
                active = excluded.active, since = excluded.since,
                occurrence = excluded.occurrence, updated_at = excluded.updated_at",
        )
        .bind(&k.vin)
        .bind(k.ecu)
        .bind(&k.code)
        .bind(&k.kind)
        .bind(s.active)
        .bind(s.since)
        .bind(s.occurrence)
        .bind(s.updated_at)
        .execute(&mut **tx)
        .await?;
    }
    let mut leads = 0;
    for l in &plan.leads {
        leads += sqlx::query(
            "INSERT INTO lead_outbox (idempotency_key, vin, device_id, ecu, code, reason, occurrence,
                                      created_at, next_attempt_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (idempotency_key) DO NOTHING",
        )
        .bind(&l.idempotency_key)
        .bind(&l.vin)
        .bind(&l.device_id)
        .bind(l.ecu)
        .bind(&l.code)
        .bind(l.reason)
        .bind(l.occurrence)
        .bind(l.created_at)
        .bind(l.created_at)
        .execute(&mut **tx)
        .await?
        .rows_affected();
    }
    for ((device, boot), state) in &plan.boots {
        sqlx::query(
            "INSERT INTO boot_seq (device_id, boot_id, max_seq, updated_at) VALUES (?, ?, ?, ?)
             ON CONFLICT (device_id, boot_id) DO UPDATE SET
                max_seq = excluded.max_seq, updated_at = excluded.updated_at",
        )
        .bind(device)
        .bind(boot)
        .bind(state.max_seq)
        .bind(plan.received_at)
        .execute(&mut **tx)
        .await?;
        sqlx::query("DELETE FROM gaps WHERE device_id = ? AND boot_id = ?")
            .bind(device)
            .bind(boot)
            .execute(&mut **tx)
            .await?;
        for g in &state.gaps {
            sqlx::query(
                "INSERT INTO gaps (device_id, boot_id, first_missing, last_missing, detected_at)
                 VALUES (?, ?, ?, ?, ?)",
            )
            .bind(device)
            .bind(boot)
            .bind(g.first)
            .bind(g.last)
            .bind(g.detected_at)
            .execute(&mut **tx)
            .await?;
        }
    }
    for d in &plan.devices {
        sqlx::query(
            "INSERT INTO devices (device_id, vin, first_seen, last_seen, online, presence_at,
                                  agent_version)
             VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (device_id) DO UPDATE SET
                vin = coalesce(excluded.vin, devices.vin),
                first_seen = min(devices.first_seen, excluded.first_seen),
                last_seen = max(devices.last_seen, excluded.last_seen),
                online = CASE WHEN excluded.presence_at IS NOT NULL
                               AND (devices.presence_at IS NULL
                                    OR excluded.presence_at >= devices.presence_at)
                              THEN excluded.online ELSE devices.online END,
                presence_at = CASE WHEN devices.presence_at IS NULL THEN excluded.presence_at
                                   WHEN excluded.presence_at IS NULL THEN devices.presence_at
                                   ELSE max(devices.presence_at, excluded.presence_at) END,
                agent_version = coalesce(excluded.agent_version, devices.agent_version)",
        )
        .bind(&d.device_id)
        .bind(&d.vin)
        .bind(d.first_seen)
        .bind(d.last_seen)
        .bind(d.online)
        .bind(d.presence_at)
        .bind(&d.agent_version)
        .execute(&mut **tx)
        .await?;
    }
    for v in &plan.vehicles {
        sqlx::query(
            "INSERT INTO vehicles (vin, first_seen, last_seen, last_device_id, info)
             VALUES (?, ?, ?, ?, ?)
             ON CONFLICT (vin) DO UPDATE SET
                first_seen = min(vehicles.first_seen, excluded.first_seen),
                last_device_id = CASE WHEN excluded.last_seen >= vehicles.last_seen
                                      THEN excluded.last_device_id ELSE vehicles.last_device_id END,
                last_seen = max(vehicles.last_seen, excluded.last_seen),
                info = coalesce(excluded.info, vehicles.info)",
        )
        .bind(&v.vin)
        .bind(v.first_seen)
        .bind(v.last_seen)
        .bind(&v.last_device_id)
        .bind(v.info.as_ref().map(serde_json::Value::to_string))
        .execute(&mut **tx)
        .await?;
    }
    for c in &plan.command_results {
        sqlx::query(
            "INSERT INTO command_results (device_id, boot_id, seq, command_id, ok, error_code, error,
                                          received_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(&c.key.device_id)
        .bind(&c.key.boot_id)
        .bind(c.key.seq)
        .bind(&c.command_id)
        .bind(c.ok)
        .bind(c.error_code)
        .bind(&c.error)
        .bind(c.received_at)
        .execute(&mut **tx)
        .await?;
    }
    Ok(leads)
}

pub(crate) async fn dead_letter(
    pool: &SqlitePool,
    letters: &[DeadLetter],
) -> Result<(), StoreError> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    for l in letters {
        sqlx::query(
            "INSERT INTO dead_letters (received_at, topic, payload, reason) VALUES (?, ?, ?, ?)",
        )
        .bind(l.received_at)
        .bind(&l.topic)
        .bind(&l.payload)
        .bind(&l.reason)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
