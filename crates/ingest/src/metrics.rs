//! The ingest's numbers (atomics the pipeline bumps) and their Prometheus text rendering.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use telltale_service::http::Exposition;
use telltale_store::IngestOutcome;
use telltale_wire::topic::Kind;

/// Upper bounds, in seconds, of the batch write latency histogram.
const LATENCY_BUCKETS: [f64; 10] = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0];

/// Counters and gauges, shared between the pipeline and the metrics endpoint.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Received messages per topic kind (index of `Kind::ALL`), valid or not.
    received: [AtomicU64; 6],
    /// Received on a topic that named no known kind.
    received_unknown: AtomicU64,
    pub dead_letters: AtomicU64,
    pub clock_flagged: AtomicU64,
    pub new_messages: AtomicU64,
    pub duplicates: AtomicU64,
    pub samples: AtomicU64,
    pub dtc_events: AtomicU64,
    pub leads: AtomicU64,
    pub gaps: AtomicU64,
    pub batches: AtomicU64,
    pub store_errors: AtomicU64,
    pub acked: AtomicU64,
    /// Messages received and not yet acknowledged.
    pub in_flight: AtomicU64,
    pub mqtt_connected: AtomicU64,
    pub mqtt_connects: AtomicU64,
    /// Leads the CRM accepted, and `CreateLead` calls that failed (each retried later).
    pub leads_sent: AtomicU64,
    pub lead_send_failures: AtomicU64,
    pub maintenance_errors: AtomicU64,
    /// Milliseconds from the oldest message's arrival to the commit, for the last batch.
    pub last_commit_lag_ms: AtomicU64,
    latency_buckets: [AtomicU64; LATENCY_BUCKETS.len()],
    latency_count: AtomicU64,
    latency_sum_us: AtomicU64,
}

fn kind_index(kind: Kind) -> usize {
    Kind::ALL.iter().position(|k| *k == kind).unwrap_or(0)
}

impl Metrics {
    pub fn received(&self, kind: Option<Kind>) {
        match kind {
            Some(k) => self.received[kind_index(k)].fetch_add(1, Ordering::Relaxed),
            None => self.received_unknown.fetch_add(1, Ordering::Relaxed),
        };
    }

    pub fn received_of(&self, kind: Kind) -> u64 {
        self.received[kind_index(kind)].load(Ordering::Relaxed)
    }

    /// Counts what one committed `Store::ingest` did.
    pub fn outcome(&self, o: &IngestOutcome) {
        self.new_messages
            .fetch_add(o.new_messages, Ordering::Relaxed);
        self.duplicates.fetch_add(o.duplicates, Ordering::Relaxed);
        self.samples.fetch_add(o.samples, Ordering::Relaxed);
        self.dtc_events.fetch_add(o.dtc_events, Ordering::Relaxed);
        self.leads.fetch_add(o.leads, Ordering::Relaxed);
        self.gaps.fetch_add(o.gaps, Ordering::Relaxed);
    }

    /// Records one store write's duration.
    pub fn batch_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.latency_count.fetch_add(1, Ordering::Relaxed);
        self.latency_sum_us.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    /// The Prometheus text exposition of everything.
    pub fn render(&self) -> String {
        let mut out = Exposition::new("telltale_ingest_");
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let one = |v: u64| [("", v)];
        let mut by_kind: Vec<(String, u64)> = Kind::ALL
            .iter()
            .filter(|k| k.is_uplink())
            .map(|k| (format!("{{kind=\"{k}\"}}"), self.received_of(*k)))
            .collect();
        by_kind.push(("{kind=\"unknown\"}".into(), g(&self.received_unknown)));
        out.family(
            "messages_total",
            "Messages received, by topic kind.",
            "counter",
            &by_kind,
        );
        out.family(
            "dead_letters_total",
            "Messages refused and kept as dead letters.",
            "counter",
            &one(g(&self.dead_letters)),
        );
        out.family(
            "clock_flagged_total",
            "Messages whose device time was implausibly far from the receive time (kept).",
            "counter",
            &one(g(&self.clock_flagged)),
        );
        out.family(
            "stored_messages_total",
            "Messages stored for the first time.",
            "counter",
            &one(g(&self.new_messages)),
        );
        out.family(
            "duplicates_total",
            "Redelivered messages the store already had.",
            "counter",
            &one(g(&self.duplicates)),
        );
        out.family(
            "samples_total",
            "Telemetry sample rows written.",
            "counter",
            &one(g(&self.samples)),
        );
        out.family(
            "dtc_events_total",
            "DTC event rows written.",
            "counter",
            &one(g(&self.dtc_events)),
        );
        out.family(
            "leads_total",
            "Leads written to the outbox.",
            "counter",
            &one(g(&self.leads)),
        );
        out.family(
            "gaps_total",
            "Sequence gaps recorded.",
            "counter",
            &one(g(&self.gaps)),
        );
        out.family(
            "batches_total",
            "Batches committed.",
            "counter",
            &one(g(&self.batches)),
        );
        out.family(
            "store_errors_total",
            "Failed store writes (each is retried).",
            "counter",
            &one(g(&self.store_errors)),
        );
        out.family(
            "acked_total",
            "Messages acknowledged to the broker after commit.",
            "counter",
            &one(g(&self.acked)),
        );
        out.family(
            "in_flight",
            "Messages received and not yet acknowledged.",
            "gauge",
            &one(g(&self.in_flight)),
        );
        out.family(
            "mqtt_connected",
            "1 while connected to the broker.",
            "gauge",
            &one(g(&self.mqtt_connected)),
        );
        out.family(
            "mqtt_connects_total",
            "Successful connections to the broker.",
            "counter",
            &one(g(&self.mqtt_connects)),
        );
        out.family(
            "leads_sent_total",
            "Leads delivered to the CRM from the outbox.",
            "counter",
            &one(g(&self.leads_sent)),
        );
        out.family(
            "lead_send_failures_total",
            "CreateLead calls that failed; the lead stays in the outbox and is retried.",
            "counter",
            &one(g(&self.lead_send_failures)),
        );
        out.family(
            "maintenance_errors_total",
            "Failed partition and retention maintenance runs.",
            "counter",
            &one(g(&self.maintenance_errors)),
        );
        out.family::<&str, u64>(
            "commit_lag_seconds",
            "For the last batch: from its oldest message's arrival to its commit.",
            "gauge",
            &[],
        );
        out.sample(
            "commit_lag_seconds",
            format!("{:.3}", g(&self.last_commit_lag_ms) as f64 / 1000.0),
        );
        out.family::<&str, u64>(
            "batch_write_seconds",
            "Time to write one batch to the store.",
            "histogram",
            &[],
        );
        for (bound, count) in LATENCY_BUCKETS.iter().zip(&self.latency_buckets) {
            out.sample(
                &format!("batch_write_seconds_bucket{{le=\"{bound}\"}}"),
                g(count),
            );
        }
        let count = g(&self.latency_count);
        out.sample("batch_write_seconds_bucket{le=\"+Inf\"}", count);
        out.sample(
            "batch_write_seconds_sum",
            format!("{:.6}", g(&self.latency_sum_us) as f64 / 1e6),
        );
        out.sample("batch_write_seconds_count", count);
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_carries_the_counts() {
        let m = Metrics::default();
        m.received(Some(Kind::Telemetry));
        m.received(Some(Kind::Telemetry));
        m.received(None);
        m.outcome(&IngestOutcome {
            new_messages: 2,
            duplicates: 1,
            samples: 40,
            ..IngestOutcome::default()
        });
        m.batch_latency(Duration::from_millis(20));
        let text = m.render();
        assert!(
            text.contains("telltale_ingest_messages_total{kind=\"telemetry\"} 2\n"),
            "{text}"
        );
        assert!(text.contains("telltale_ingest_messages_total{kind=\"unknown\"} 1\n"));
        assert!(!text.contains("kind=\"cmd\""), "cmd is downlink");
        assert!(text.contains("telltale_ingest_samples_total 40\n"));
        assert!(text.contains("telltale_ingest_duplicates_total 1\n"));
        assert!(text.contains("telltale_ingest_batch_write_seconds_bucket{le=\"0.01\"} 0\n"));
        assert!(text.contains("telltale_ingest_batch_write_seconds_bucket{le=\"0.025\"} 1\n"));
        assert!(text.contains("telltale_ingest_batch_write_seconds_count 1\n"));
    }
}
