//! Helpers shared by the ingest's integration tests: settings for a test broker, message
//! builders, and an in-memory sink that can be told to fail.

#![allow(dead_code, unreachable_pub, unused_imports)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use telltale_ingest::config::{FileConfig, Settings};
use telltale_ingest::metrics::Metrics;
use telltale_ingest::pipeline::{self, Sink};
use telltale_store::{DeadLetter, Envelope, IngestOutcome, Uplink};
use tokio_util::sync::CancellationToken;

pub use telltale_e2e::uplink::{BOOT, VIN, dtc, info, status, telemetry};

pub fn settings(broker_url: &str, client_id: &str, shared: bool) -> Settings {
    let mut c = FileConfig::default();
    c.mqtt.url = broker_url.to_owned();
    c.mqtt.client_id = client_id.to_owned();
    c.mqtt.shared = shared;
    c.mqtt.max_in_flight = 100;
    c.batch.max_messages = 50;
    c.batch.max_age = "50ms".into();
    c.batch.shutdown_grace = "300ms".into();
    c.metrics.listen = String::new();
    match c.validate() {
        Ok(s) => s,
        Err(e) => panic!("test settings refused: {e}"),
    }
}

/// What the in-memory sink got, and how it should behave.
#[derive(Debug, Default)]
pub struct SinkState {
    pub envelopes: Vec<Envelope>,
    pub dead_letters: Vec<DeadLetter>,
    /// Fail this many more `ingest` calls.
    pub fail_next: u64,
    /// Fail every call while set.
    pub broken: bool,
    /// A batch holding this device's messages waits, uncommitted, while it is set.
    pub stall_device: Option<String>,
}

/// An in-memory [`Sink`]; clones share their state.
#[derive(Debug, Clone, Default)]
pub struct MemorySink {
    pub state: Arc<Mutex<SinkState>>,
    pub attempts: Arc<AtomicU64>,
}

impl MemorySink {
    pub fn lock(&self) -> MutexGuard<'_, SinkState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Telemetry/dtc/info/cmd-result seqs stored so far (status excluded), in order.
    pub fn seqs(&self) -> Vec<u64> {
        self.lock()
            .envelopes
            .iter()
            .filter_map(|e| match &e.message {
                Uplink::Telemetry(m) => m.header.as_ref().map(|h| h.seq),
                Uplink::Dtc(m) => m.header.as_ref().map(|h| h.seq),
                Uplink::Info(m) => m.header.as_ref().map(|h| h.seq),
                Uplink::CmdResult(m) => m.header.as_ref().map(|h| h.seq),
                Uplink::Status(_) => None,
            })
            .collect()
    }

    pub fn statuses(&self) -> usize {
        self.lock()
            .envelopes
            .iter()
            .filter(|e| matches!(e.message, Uplink::Status(_)))
            .count()
    }
}

impl Sink for MemorySink {
    type Error = String;
    async fn ingest(&self, batch: &[Envelope]) -> Result<IngestOutcome, String> {
        self.attempts.fetch_add(1, Ordering::SeqCst);
        while self
            .lock()
            .stall_device
            .as_ref()
            .is_some_and(|d| batch.iter().any(|e| &e.device_id == d))
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let mut s = self.lock();
        if s.broken {
            return Err("the test store is down".into());
        }
        if s.fail_next > 0 {
            s.fail_next -= 1;
            return Err("the test store failed once".into());
        }
        s.envelopes.extend_from_slice(batch);
        Ok(IngestOutcome {
            new_messages: batch.len() as u64,
            ..IngestOutcome::default()
        })
    }
    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), String> {
        let mut s = self.lock();
        if s.broken {
            return Err("the test store is down".into());
        }
        s.dead_letters.extend_from_slice(letters);
        Ok(())
    }
}

/// An ingest pipeline running in the test's runtime.
pub struct Running {
    pub metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn start<S: Sink>(settings: &Settings, sink: S) -> Running {
        let metrics = Arc::new(Metrics::default());
        let stop = CancellationToken::new();
        let (s, m, t) = (settings.clone(), metrics.clone(), stop.clone());
        let due = Arc::new(tokio::sync::Notify::new());
        let task = tokio::spawn(async move { pipeline::run(&s, sink, m, due, t).await });
        Running {
            metrics,
            stop,
            task,
        }
    }

    /// Graceful shutdown: finishes the batch in hand, disconnects.
    pub async fn stop(self) {
        self.stop.cancel();
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            panic!("the ingest did not stop within 10 s");
        }
    }
}

/// Waits (polling every 50 ms) until `check` holds.
pub async fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn publisher(port: u16, id: &str) -> telltale_e2e::mqtt::Collector {
    telltale_e2e::mqtt::Collector::start(port, id, "test/nothing")
}

/// Publishes a status message every 200 ms until the ingest has stored one: then its
/// subscriptions are in place (a message published before would find no session to wait in).
pub async fn until_subscribed(
    publisher: &telltale_e2e::mqtt::Collector,
    device: &str,
    stored: impl Fn() -> bool,
) {
    let start = Instant::now();
    let topic = telltale_wire::topic::topic(device, telltale_wire::topic::Kind::Status);
    while !stored() {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the ingest did not subscribe within 15 s"
        );
        publisher.publish(&topic, status(device));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
