//! `telltale-ingest` as a process on a broker and a database.

use std::time::Duration;

use telltale_wire::v1;

use crate::mqtt::{Broker, Collector};
use crate::pg::Rows;
use crate::rig::metric;
use crate::uplink::Car;
use crate::{Running, free_port, wait_for};

#[derive(Debug)]
pub struct Ingest {
    pub process: Running,
    pub metrics_port: u16,
}

impl Ingest {
    /// Starts `telltale-ingest` on `db` and waits until its metrics endpoint answers.
    pub fn start(broker: &Broker, db: &str, client_id: &str, extra: &[&str]) -> Ingest {
        Ingest::start_at(&broker.url(), db, client_id, extra)
    }

    /// As [`Ingest::start`], for the broker at `url`.
    pub fn start_at(url: &str, db: &str, client_id: &str, extra: &[&str]) -> Ingest {
        let metrics_port = free_port();
        let listen = format!("127.0.0.1:{metrics_port}");
        let mut args = vec![
            "--mqtt-url",
            url,
            "--client-id",
            client_id,
            "--database-url",
            db,
            "--metrics-listen",
            &listen,
            "--batch-max-messages",
            "200",
            "--batch-max-age",
            "50ms",
            "--max-in-flight",
            "400",
        ];
        args.extend_from_slice(extra);
        let mut process = Running::start("telltale-ingest", &args);
        wait_for(
            "the ingest's metrics endpoint",
            Duration::from_secs(30),
            || {
                process.assert_running();
                std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok()
            },
        );
        Ingest {
            process,
            metrics_port,
        }
    }

    pub fn metric(&self, name: &str) -> f64 {
        metric(self.metrics_port, name).unwrap_or_else(|e| {
            panic!("ingest /metrics: {e}\n{}", self.process.log());
        })
    }
}

/// Publishes a status from `probe` until the ingest has stored it: from then on its
/// subscriptions exist in the broker (and, being persistent, outlive a crash).
pub fn until_subscribed(publisher: &Collector, db: &dyn Rows, probe: &str) {
    let car = Car::new(probe, [0x99; 16], "PROBE000000000000");
    let sql = format!("SELECT count(*) FROM devices WHERE device_id = '{probe}'");
    let start = std::time::Instant::now();
    while db.try_count(&sql).unwrap_or(0) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the ingest stored nothing within 30 s"
        );
        publisher.publish(
            &car.topic(telltale_wire::topic::Kind::Status),
            car.status(v1::Presence::Online, 0),
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until `db` has `want` rows by `sql`, saying how far it got.
pub fn wait_count(db: &dyn Rows, sql: &str, want: i64, limit: Duration, ingest: &Ingest) {
    let start = std::time::Instant::now();
    loop {
        let got = db.try_count(sql).unwrap_or(-1);
        if got == want {
            return;
        }
        assert!(got < want, "{sql}: {got} rows, more than the {want} sent");
        assert!(
            start.elapsed() < limit,
            "{sql}: {got} of {want} rows after {limit:?}\n{}",
            ingest.process.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
