//! From MQTT to a real store (SQLite in a temporary file): the rows a message becomes, read
//! back through the store's queries. These need `telltale-store`'s implementation.

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{
    Running, VIN, dtc, info, publisher, settings, telemetry, until_subscribed, wait_until,
};
use telltale_e2e::mqtt::Broker;
use telltale_store::{Store, StoreOptions};
use telltale_wire::topic::{Kind, topic};

const LIMIT: Duration = Duration::from_secs(20);

async fn sqlite_store(dir: &tempfile::TempDir) -> Result<Store, telltale_store::StoreError> {
    let url = format!("sqlite://{}", dir.path().join("ingest.db").display());
    let store = Store::connect(&url, StoreOptions::default()).await?;
    store.migrate().await?;
    Ok(store)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_become_rows_and_redeliveries_change_nothing()
-> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let store = sqlite_store(&dir).await?;
    let broker = Broker::start();
    let s = settings(&broker.url(), "ingest-store", true);
    let ingest = Running::start(&s, store.clone());
    let car = publisher(broker.port, "car-store");
    let probe = store.clone();
    let seen = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    {
        let seen = seen.clone();
        tokio::spawn(async move {
            loop {
                if let Ok(Some(_)) = probe.device("car1").await {
                    seen.store(true, Ordering::SeqCst);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
    }
    until_subscribed(&car, "car1", || seen.load(Ordering::SeqCst)).await;

    car.publish(&topic("car1", Kind::Info), info("car1", 1));
    car.publish(&topic("car1", Kind::Telemetry), telemetry("car1", 2, 88.0));
    car.publish(&topic("car1", Kind::Dtc), dtc("car1", 3, "P0420"));
    // A redelivery of seq 2 (as after a crash before the ack) with another value: ignored.
    car.publish(&topic("car1", Kind::Telemetry), telemetry("car1", 2, 11.0));
    car.publish(&topic("car1", Kind::Dtc), vec![0x0A, 0x05, 0x01]);

    wait_until("the duplicate counted", LIMIT, || {
        ingest.metrics.duplicates.load(Ordering::SeqCst) >= 1
            && ingest.metrics.dead_letters.load(Ordering::SeqCst) >= 1
            && ingest.metrics.in_flight.load(Ordering::SeqCst) == 0
    })
    .await;
    ingest.stop().await;

    let latest = store.latest_values(VIN).await?;
    let speed = latest.iter().find(|v| v.signal == "Vehicle.Speed");
    assert_eq!(speed.map(|v| v.value), Some(88.0), "{latest:?}");
    assert!(
        latest.iter().any(|v| v.signal == "Vendor.Never.Heard.Of1"),
        "unknown signals are kept: {latest:?}"
    );
    let history = store.dtc_history(VIN).await?;
    assert!(
        history
            .iter()
            .any(|e| e.code == "P0420" && e.change == "appeared"),
        "{history:?}"
    );
    let device = store.device("car1").await?;
    assert_eq!(device.and_then(|d| d.vin).as_deref(), Some(VIN));
    let dead = store.dead_letters(10).await?;
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].topic, "telltale/v1/car1/dtc");
    assert_eq!(dead[0].payload, vec![0x0A, 0x05, 0x01]);
    Ok(())
}
