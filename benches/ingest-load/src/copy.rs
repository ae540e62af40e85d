//! Part (b), the database's own ceiling: the fleet's telemetry rows, exactly as the store
//! would write them, loaded with one binary `COPY` into the telemetry table of a fresh,
//! migrated database. The COPY data is encoded before the clock starts, so the figure is
//! PostgreSQL's (parse, partition routing, heap, index, WAL, commit), not ours.
//!
//! The encoder is also used by the store comparison (`crate::store_batches`).

use std::time::Instant;

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use telltale_wire::v1;

use crate::db::Scratch;
use crate::fleet::Fleet;

/// The telemetry columns, in the order the encoder writes them.
pub const COLUMNS: &str =
    "vin, device_id, signal, value, text, unit, pid, ecu, device_time, received_at, boot_id, seq";

/// The COPY statement for [`Encoder`]'s data.
pub fn statement() -> String {
    format!("COPY telemetry ({COLUMNS}) FROM STDIN (FORMAT binary)")
}

/// Microseconds between the Unix epoch and PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_US: i64 = 946_684_800_000_000;

/// Builds PostgreSQL binary COPY data for telemetry rows.
#[derive(Debug, Default)]
pub struct Encoder {
    pub buf: Vec<u8>,
    pub rows: u64,
}

impl Encoder {
    /// A buffer that starts with the binary COPY signature and header.
    pub fn new() -> Encoder {
        let mut e = Encoder::default();
        e.header();
        e
    }

    fn header(&mut self) {
        self.buf.extend_from_slice(b"PGCOPY\n\xff\r\n\0");
        self.buf.extend_from_slice(&0i32.to_be_bytes()); // flags
        self.buf.extend_from_slice(&0i32.to_be_bytes()); // header extension length
    }

    fn bytes(&mut self, b: &[u8]) {
        let len = i32::try_from(b.len()).unwrap_or(i32::MAX);
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf
            .extend_from_slice(&b[..len.unsigned_abs() as usize]);
    }

    fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_be_bytes());
    }

    fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&8i32.to_be_bytes());
        self.buf.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    fn null(&mut self) {
        self.buf.extend_from_slice(&(-1i32).to_be_bytes());
    }

    fn time(&mut self, t: DateTime<Utc>) {
        self.i64(t.timestamp_micros() - PG_EPOCH_US);
    }

    /// The rows of one telemetry batch, as the store derives them (text empty → NULL, a device
    /// time that is not a date → the receive time).
    pub fn batch(
        &mut self,
        device_id: &str,
        batch: &v1::TelemetryBatch,
        received_at: DateTime<Utc>,
    ) {
        let header = batch.header.clone().unwrap_or_default();
        let seq = i64::try_from(header.seq).unwrap_or(i64::MAX);
        for s in &batch.samples {
            self.buf.extend_from_slice(&12i16.to_be_bytes());
            self.bytes(batch.vin.as_bytes());
            self.bytes(device_id.as_bytes());
            self.bytes(s.signal.as_bytes());
            self.f64(s.value);
            if s.text.is_empty() {
                self.null();
            } else {
                self.bytes(s.text.as_bytes());
            }
            self.bytes(s.unit.as_bytes());
            self.i64(i64::from(s.pid));
            self.i64(i64::from(s.ecu_can_id));
            self.time(DateTime::from_timestamp_millis(s.device_unix_ms).unwrap_or(received_at));
            self.time(received_at);
            self.bytes(&header.boot_id);
            self.i64(seq);
            self.rows += 1;
        }
    }

    /// Appends the end-of-data marker and hands the bytes over.
    pub fn finish(mut self) -> (Vec<u8>, u64) {
        self.buf.extend_from_slice(&(-1i16).to_be_bytes());
        (self.buf, self.rows)
    }
}

/// Sends `data` with one COPY on `conn`; returns the rows PostgreSQL reports.
pub async fn copy(conn: &mut PgConnection, data: &[u8]) -> anyhow::Result<u64> {
    let mut c = conn
        .copy_in_raw(&statement())
        .await
        .context("starting COPY")?;
    // One CopyData message per MiB, as a client streaming a file would send.
    for chunk in data.chunks(1 << 20) {
        c.send(chunk).await.context("sending COPY data")?;
    }
    c.finish().await.context("finishing COPY")
}

/// The result of part (b).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CeilingResult {
    pub rows: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
    pub cpu: crate::proc::CpuUse,
}

/// Encodes every telemetry batch of `fleet` (in publishing order: batch 0 of every vehicle,
/// then batch 1...) with device times from now on, as the live run would have them.
pub fn encode_fleet(fleet: &Fleet) -> (Vec<u8>, u64) {
    let mut e = Encoder::new();
    let start = Utc::now();
    let interval_ms = i64::try_from(fleet.interval.as_millis()).unwrap_or(i64::MAX);
    for k in 0..fleet.batches_per_vehicle {
        let created = start.timestamp_millis() + i64::from(k) * interval_ms;
        for v in 0..fleet.vehicles {
            let batch = fleet.telemetry(v, k, created);
            let received = DateTime::from_timestamp_millis(created + 5).unwrap_or(start);
            e.batch(&fleet.device_id(v), &batch, received);
        }
    }
    e.finish()
}

/// Part (b): COPY the fleet's rows into `scratch` (fresh and migrated) in one statement.
pub async fn ceiling(
    scratch: &Scratch,
    fleet: &Fleet,
    watch: &crate::proc::Watched,
) -> anyhow::Result<CeilingResult> {
    let (data, expected) = encode_fleet(fleet);
    let mut conn = scratch.connect().await?;
    let before = watch.snapshot();
    let started = Instant::now();
    let rows = copy(&mut conn, &data).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu = before.until(&watch.snapshot());
    anyhow::ensure!(
        rows == expected,
        "COPY reported {rows} rows, {expected} were sent"
    );
    Ok(CeilingResult {
        rows,
        seconds: crate::generate::round3(seconds),
        rows_per_second: (rows as f64 / seconds.max(1e-6)).round(),
        cpu,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_copy_layout() {
        let fleet = Fleet {
            vehicles: 1,
            samples_per_batch: 2,
            batches_per_vehicle: 1,
            interval: std::time::Duration::from_secs(1),
            run: 1,
        };
        let Some(at) = DateTime::from_timestamp_millis(946_684_800_001) else {
            panic!("time")
        };
        let mut e = Encoder::new();
        e.batch("load-00000", &fleet.telemetry(0, 0, 946_684_800_000), at);
        let (buf, rows) = e.finish();
        assert_eq!(rows, 2);
        assert!(buf.starts_with(b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert_eq!(&buf[19..21], &12i16.to_be_bytes(), "field count");
        assert_eq!(&buf[21..25], &17i32.to_be_bytes(), "VIN length");
        assert_eq!(&buf[buf.len() - 2..], &(-1i16).to_be_bytes(), "trailer");
        // received_at of the last row: 1 ms after PostgreSQL's epoch, then boot id and seq.
        let tail = &buf[buf.len() - 2 - (4 + 8) - (4 + 16) - (4 + 8)..];
        assert_eq!(&tail[..4], &8i32.to_be_bytes());
        assert_eq!(&tail[4..12], &1_000i64.to_be_bytes());
    }
}
