//! The local status endpoint, for the person at the dongle and for a scraper:
//!
//! - `GET /status`: JSON with the vehicle (awake, VIN, ECUs, request counters), the MQTT
//!   connection, the spool (depth, bytes, dropped per class) and this boot's identity;
//! - `GET /metrics`: the same numbers in the Prometheus text format;
//! - `GET /healthz`: `ok`.
//!
//! It answers one small GET per connection (`telltale_service::http`); that is all a scraper or
//! `curl` needs, and it keeps a web framework out of a program that must fit a dongle.
//! Bind it to localhost unless the network around the dongle is trusted.

use std::sync::Arc;

use serde::Serialize;
use telltale_service::http::{self, Exposition, Reply};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::spool::{Class, SpoolHandle, SpoolStats};
use crate::uplink::{Stamp, UplinkState};
use crate::vehicle::VehicleState;

/// Where the numbers come from.
#[derive(Debug, Clone)]
pub struct Board {
    pub stamp: Arc<Stamp>,
    pub started: Instant,
    pub vehicle: watch::Receiver<VehicleState>,
    pub uplink: watch::Receiver<UplinkState>,
    /// Read through its counters only: a scrape never waits for the disk.
    pub spool: SpoolHandle,
    pub version: String,
}

/// The `/status` document.
#[derive(Debug, Serialize)]
pub struct StatusDoc {
    pub device_id: String,
    pub boot_id: String,
    pub version: String,
    pub uptime_s: u64,
    pub last_seq: u64,
    pub vehicle: VehicleState,
    pub mqtt: UplinkState,
    pub spool: SpoolStats,
    pub resident_bytes: Option<u64>,
}

impl Board {
    pub fn snapshot(&self) -> StatusDoc {
        StatusDoc {
            device_id: self.stamp.device_id.clone(),
            boot_id: self
                .stamp
                .boot_id
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            version: self.version.clone(),
            uptime_s: self.started.elapsed().as_secs(),
            last_seq: self
                .stamp
                .last_seq
                .load(std::sync::atomic::Ordering::SeqCst),
            vehicle: self.vehicle.borrow().clone(),
            mqtt: self.uplink.borrow().clone(),
            spool: self.spool.stats(),
            resident_bytes: resident_bytes(),
        }
    }
}

/// Resident memory of this process, from `/proc/self/statm` (Linux).
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}

/// The Prometheus text rendering of a snapshot.
pub fn metrics(doc: &StatusDoc) -> String {
    let mut out = Exposition::new("telltale_agent_");
    let b = |v: bool| u64::from(v);
    out.family(
        "uptime_seconds",
        "Seconds since the agent started.",
        "gauge",
        &[("", doc.uptime_s)],
    );
    out.family(
        "last_seq",
        "The last uplink sequence number stored this boot.",
        "counter",
        &[("", doc.last_seq)],
    );
    out.family(
        "vehicle_awake",
        "1 while the ECUs answer.",
        "gauge",
        &[("", b(doc.vehicle.awake))],
    );
    out.family(
        "requests_total",
        "Diagnostic requests sent.",
        "counter",
        &[("", doc.vehicle.requests_sent)],
    );
    out.family(
        "requests_unanswered_total",
        "Diagnostic requests nothing answered.",
        "counter",
        &[("", doc.vehicle.requests_unanswered)],
    );
    let unusable: Vec<(String, u64)> = doc
        .vehicle
        .unusable_answers
        .iter()
        .map(|(kind, n)| (format!("{{kind=\"{kind}\"}}"), *n))
        .collect();
    out.family(
        "unusable_answers_total",
        "Answers from the vehicle or the adapter that could not be used, by kind.",
        "counter",
        &unusable
            .iter()
            .map(|(l, n)| (l.as_str(), *n))
            .collect::<Vec<_>>(),
    );
    out.family(
        "samples_total",
        "Signal samples made.",
        "counter",
        &[("", doc.vehicle.samples_made)],
    );
    out.family(
        "dtc_reports_total",
        "DTC reports made.",
        "counter",
        &[("", doc.vehicle.dtc_reports_made)],
    );
    out.family(
        "mqtt_connected",
        "1 while connected to the broker.",
        "gauge",
        &[("", b(doc.mqtt.connected))],
    );
    out.family(
        "mqtt_connects_total",
        "Successful connections to the broker.",
        "counter",
        &[("", doc.mqtt.connects)],
    );
    out.family(
        "mqtt_published_total",
        "Spooled messages published (including republished).",
        "counter",
        &[("", doc.mqtt.published)],
    );
    out.family(
        "mqtt_acked_total",
        "Spooled messages the broker acknowledged.",
        "counter",
        &[("", doc.mqtt.acked)],
    );
    out.family(
        "mqtt_refused_total",
        "Messages the broker acknowledged with a failure reason.",
        "counter",
        &[("", doc.mqtt.refused)],
    );
    out.family(
        "commands_total",
        "Command messages received.",
        "counter",
        &[("", doc.mqtt.commands_received)],
    );
    out.family(
        "spool_messages",
        "Messages in the spool.",
        "gauge",
        &[("", doc.spool.messages)],
    );
    out.family(
        "spool_bytes",
        "Bytes of messages in the spool.",
        "gauge",
        &[("", doc.spool.bytes)],
    );
    out.family(
        "spool_in_flight",
        "Spooled messages awaiting PUBACK.",
        "gauge",
        &[("", doc.spool.in_flight)],
    );
    let classes = [Class::Telemetry, Class::Info, Class::CmdResult, Class::Dtc];
    let labels: Vec<String> = classes
        .iter()
        .map(|c| format!("{{class=\"{}\"}}", class_name(*c)))
        .collect();
    let dropped: Vec<(&str, u64)> = classes
        .iter()
        .zip(&labels)
        .map(|(c, l)| (l.as_str(), doc.spool.dropped[*c as usize]))
        .collect();
    out.family(
        "spool_dropped_total",
        "Messages dropped to keep the spool within its size.",
        "counter",
        &dropped,
    );
    if let Some(rss) = doc.resident_bytes {
        out.family(
            "resident_memory_bytes",
            "Resident memory of the agent process.",
            "gauge",
            &[("", rss)],
        );
    }
    out.finish()
}

fn class_name(c: Class) -> &'static str {
    match c {
        Class::Telemetry => "telemetry",
        Class::Info => "info",
        Class::CmdResult => "cmd_result",
        Class::Dtc => "dtc",
    }
}

/// Serves `/status`, `/metrics` and `/healthz` until `shutdown`.
pub async fn serve(listener: TcpListener, board: Board, shutdown: CancellationToken) {
    let paths = &["/status", "/metrics", "/healthz"];
    http::serve(listener, shutdown, paths, move |path| match path {
        "/status" => Some(Reply::json(
            serde_json::to_string_pretty(&board.snapshot())
                .unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}")),
        )),
        "/metrics" => Some(Reply::prometheus(metrics(&board.snapshot()))),
        "/healthz" => Some(Reply::text("ok\n")),
        _ => None,
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unusable_answers_are_one_family_labelled_by_kind() {
        let mut vehicle = VehicleState::default();
        vehicle.unusable_answers.insert("damaged_pid".to_owned(), 3);
        vehicle
            .unusable_answers
            .insert("adapter_buffer_full".to_owned(), 1);
        let doc = StatusDoc {
            device_id: "car-1".into(),
            boot_id: "00".into(),
            version: "test".into(),
            uptime_s: 1,
            last_seq: 0,
            vehicle,
            mqtt: UplinkState::default(),
            spool: SpoolStats::default(),
            resident_bytes: None,
        };
        let text = metrics(&doc);
        assert!(
            text.contains("# TYPE telltale_agent_unusable_answers_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(
                "telltale_agent_unusable_answers_total{kind=\"adapter_buffer_full\"} 1\n"
            )
        );
        assert!(text.contains("telltale_agent_unusable_answers_total{kind=\"damaged_pid\"} 3\n"));
    }
}
