//! Measures once how fast one 10 000-sample telemetry batch is stored, on the database at the
//! URL given (a scratch database: it is migrated and written to). Not a benchmark suite: a
//! figure for the README, reproduced with
//!
//! ```text
//! cargo run --release -p telltale-store --example insert_speed -- sqlite:///tmp/speed.db
//! cargo run --release -p telltale-store --example insert_speed -- postgres://postgres@127.0.0.1:5432/speed
//! ```

use std::time::Instant;

use chrono::Utc;
use telltale_store::{Envelope, Store, StoreOptions, Uplink};
use telltale_wire::v1;

const SAMPLES: usize = 10_000;
const ROUNDS: u64 = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(url) = std::env::args().nth(1) else {
        return Err("usage: insert_speed DATABASE_URL".into());
    };
    let store = Store::connect(&url, StoreOptions::default()).await?;
    store.migrate().await?;
    let now = Utc::now();
    let boot: Vec<u8> = now
        .timestamp_nanos_opt()
        .unwrap_or(0)
        .to_le_bytes()
        .repeat(2);
    let signals = [
        "Vehicle.Speed",
        "Vehicle.Powertrain.CombustionEngine.Speed",
        "obd.coolant_temp",
    ];
    for round in 1..=ROUNDS {
        let base = now.timestamp_millis() + (round as i64) * 100_000;
        let samples = (0..SAMPLES)
            .map(|i| v1::Sample {
                signal: signals[i % signals.len()].into(),
                value: i as f64,
                device_unix_ms: base + i as i64,
                service: 1,
                pid: 0x0D,
                ecu_can_id: 0x7E8,
                unit: "km/h".into(),
                text: String::new(),
            })
            .collect();
        let batch = [Envelope {
            device_id: "speed-test".into(),
            received_at: Utc::now(),
            message: Uplink::Telemetry(v1::TelemetryBatch {
                header: Some(v1::UplinkHeader {
                    device_id: "speed-test".into(),
                    boot_id: boot.clone(),
                    seq: round,
                    created_unix_ms: base,
                }),
                vin: "SPEEDTEST00000001".into(),
                samples,
            }),
        }];
        let started = Instant::now();
        let outcome = store.ingest(&batch).await?;
        let secs = started.elapsed().as_secs_f64();
        println!(
            "round {round}: {} samples in {:.1} ms = {:.0} rows/s",
            outcome.samples,
            secs * 1000.0,
            outcome.samples as f64 / secs
        );
    }
    Ok(())
}
