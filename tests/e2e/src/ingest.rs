//! `telltale-ingest` as a process on a broker and a database.

use std::time::Duration;

use crate::mqtt::Broker;
use crate::rig::metric;
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
