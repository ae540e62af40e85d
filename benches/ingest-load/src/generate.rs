//! The load generator: plays a [`Fleet`] against a broker, QoS 1, at the fleet's rate.
//!
//! Vehicles are spread round-robin over a few MQTT connections (one connection per vehicle
//! would be closest to a real fleet, but ten thousand TCP sessions and event loops on two cores
//! would measure the generator, not the ingest; the broker's work per message is the same
//! either way, since topics and payloads are per vehicle). Each connection first publishes
//! every one of its vehicles' VehicleInfo (seq 1) and retained online status, as an agent does
//! after connecting, then its vehicles' telemetry batches in turn, paced by a token bucket so
//! the connection's share of the fleet rate is kept on average; a generator that falls behind
//! catches up in bursts, and the report says what rate was achieved.
//!
//! A message counts as published when the broker's PUBACK for it arrived.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use prost::Message as _;
use rumqttc::{AsyncClient, Event, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use telltale_wire::topic::Kind;
use tokio::sync::{Barrier, Mutex, watch};
use tokio::time::Instant;

use crate::fleet::Fleet;

/// Where and how to publish.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    pub port: u16,
    pub connections: u32,
    /// Unacknowledged QoS 1 publishes per connection.
    pub inflight: u16,
}

/// What was published, with times relative to the generator's start of telemetry.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub messages: u64,
    pub telemetry_messages: u64,
    pub samples: u64,
    pub connections: u32,
    /// From the first telemetry publish to the last PUBACK.
    pub publish_seconds: f64,
    /// Samples per second the broker accepted while publishing.
    pub achieved_samples_per_second: f64,
    /// What the fleet's rate asks for.
    pub offered_samples_per_second: f64,
}

/// Times the harness needs beside the report (monotonic, not serialisable).
#[derive(Debug, Clone, Copy)]
pub struct Times {
    /// When the first telemetry batch was due.
    pub start: Instant,
    /// When the last PUBACK arrived.
    pub last_ack: Instant,
}

/// Splits `mqtt://host:port` (or `tcp://`, or a bare `host:port`).
pub fn parse_url(url: &str) -> anyhow::Result<(String, u16)> {
    let rest = url
        .strip_prefix("mqtt://")
        .or_else(|| url.strip_prefix("tcp://"))
        .unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| anyhow!("broker url {url:?}: expected mqtt://HOST:PORT"))?;
    let port = port
        .parse()
        .with_context(|| format!("broker url {url:?}: bad port"))?;
    if host.is_empty() {
        bail!("broker url {url:?}: no host");
    }
    Ok((host.to_owned(), port))
}

#[derive(Debug, Default)]
struct Shared {
    acked: AtomicU64,
    last_ack: Mutex<Option<Instant>>,
}

/// Publishes the whole fleet; returns when the broker acknowledged every message.
pub async fn run(fleet: &Fleet, opts: &Options) -> anyhow::Result<(Report, Times)> {
    if fleet.vehicles == 0 || opts.connections == 0 {
        bail!("need at least one vehicle and one connection");
    }
    let conns = opts.connections.min(fleet.vehicles);
    let shared = Arc::new(Shared::default());
    // Everyone connected, then telemetry starts together.
    let barrier = Arc::new(Barrier::new(conns as usize + 1));
    let (start_tx, start_rx) = watch::channel(None);
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..conns {
        let vehicles: Vec<u32> = (c..fleet.vehicles).step_by(conns as usize).collect();
        tasks.spawn(connection(
            fleet.clone(),
            opts.clone(),
            c,
            conns,
            vehicles,
            shared.clone(),
            barrier.clone(),
            start_rx.clone(),
        ));
    }
    // Bounded: a connection that cannot connect fails its task, which ends the wait below.
    tokio::select! {
        _ = barrier.wait() => {}
        Some(r) = tasks.join_next() => {
            r.context("generator connection task")??;
            bail!("a generator connection ended before the start");
        }
    }
    let start = Instant::now();
    // Receivers are alive until their tasks end; a send error only means all have failed.
    let _ = start_tx.send(Some(start));
    while let Some(r) = tasks.join_next().await {
        r.context("generator connection task")??;
    }
    let last_ack = shared.last_ack.lock().await.unwrap_or(start);
    let secs = last_ack.duration_since(start).as_secs_f64().max(1e-6);
    let report = Report {
        messages: shared.acked.load(Ordering::Relaxed),
        telemetry_messages: fleet.telemetry_messages(),
        samples: fleet.samples(),
        connections: conns,
        publish_seconds: round3(secs),
        achieved_samples_per_second: (fleet.samples() as f64 / secs).round(),
        offered_samples_per_second: (fleet.batch_rate() * f64::from(fleet.samples_per_batch))
            .round(),
    };
    if report.messages != fleet.messages() {
        bail!(
            "the broker acknowledged {} of {} messages",
            report.messages,
            fleet.messages()
        );
    }
    Ok((report, Times { start, last_ack }))
}

pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// One connection: its event loop on this task, its publishing on another.
#[allow(clippy::too_many_arguments)]
async fn connection(
    fleet: Fleet,
    opts: Options,
    index: u32,
    conns: u32,
    vehicles: Vec<u32>,
    shared: Arc<Shared>,
    barrier: Arc<Barrier>,
    start: watch::Receiver<Option<Instant>>,
) -> anyhow::Result<()> {
    let mut o = MqttOptions::new(
        format!("telltale-load-{}-{index}", fleet.run),
        &opts.host,
        opts.port,
    );
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true)
        .set_inflight(opts.inflight.max(1))
        .set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(o, 512);
    let target = vehicles.len() as u64 * (2 + u64::from(fleet.batches_per_vehicle));
    let mut publisher: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    let mut pending = Some((client.clone(), fleet, vehicles, barrier, start));
    let mut acked = 0u64;
    let mut disconnecting = false;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), eventloop.poll())
            .await
            .map_err(|_| anyhow!("connection {index}: no broker traffic for 60 s"))?;
        match event {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                let Some((client, fleet, vehicles, barrier, start)) = pending.take() else {
                    bail!("connection {index}: reconnected in the middle of the run");
                };
                publisher = Some(tokio::spawn(publish(
                    client, fleet, index, conns, vehicles, barrier, start,
                )));
            }
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                acked += 1;
                shared.acked.fetch_add(1, Ordering::Relaxed);
                if acked == target {
                    let now = Instant::now();
                    let mut last = shared.last_ack.lock().await;
                    if last.is_none_or(|t| t < now) {
                        *last = Some(now);
                    }
                    drop(last);
                    client
                        .try_disconnect()
                        .map_err(|e| anyhow!("connection {index}: disconnect: {e}"))?;
                    disconnecting = true;
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) if disconnecting => break,
            Ok(_) => {}
            Err(e) if disconnecting => {
                // The broker closed first; everything was acknowledged already.
                let _ = e;
                break;
            }
            Err(e) => bail!("connection {index} to the broker failed: {e}"),
        }
    }
    match publisher {
        Some(p) => p.await.context("publisher task")?,
        None => Ok(()),
    }
}

/// Publishes the info and status of every vehicle, then the paced telemetry.
async fn publish(
    client: AsyncClient,
    fleet: Fleet,
    index: u32,
    conns: u32,
    vehicles: Vec<u32>,
    barrier: Arc<Barrier>,
    mut start: watch::Receiver<Option<Instant>>,
) -> anyhow::Result<()> {
    barrier.wait().await;
    let start = *start
        .wait_for(Option::is_some)
        .await
        .context("the generator stopped before the start")?;
    let Some(start) = start else {
        bail!("no start time");
    };
    let now_ms = || chrono::Utc::now().timestamp_millis();
    for &v in &vehicles {
        client
            .publish(
                fleet.topic(v, Kind::Info),
                QoS::AtLeastOnce,
                false,
                fleet.info(v, now_ms()).encode_to_vec(),
            )
            .await
            .context("queueing an info publish")?;
        client
            .publish(
                fleet.topic(v, Kind::Status),
                QoS::AtLeastOnce,
                true,
                fleet.status(v, now_ms()).encode_to_vec(),
            )
            .await
            .context("queueing a status publish")?;
    }
    let n = vehicles.len() as u64;
    let quota = n * u64::from(fleet.batches_per_vehicle);
    // This connection's batches per second, and a phase so connections do not fire together.
    let rate = n as f64 / fleet.interval.as_secs_f64().max(1e-9);
    let phase = f64::from(index) / f64::from(conns);
    let mut sent = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    while sent < quota {
        tick.tick().await;
        let elapsed = start.elapsed().as_secs_f64();
        let due = ((elapsed * rate + phase).floor() as u64).min(quota);
        while sent < due {
            let v = vehicles[(sent % n) as usize];
            let k = u32::try_from(sent / n).unwrap_or(u32::MAX);
            let payload = fleet.telemetry(v, k, now_ms()).encode_to_vec();
            client
                .publish(
                    fleet.topic(v, Kind::Telemetry),
                    QoS::AtLeastOnce,
                    false,
                    payload,
                )
                .await
                .context("queueing a telemetry publish")?;
            sent += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("mqtt://127.0.0.1:1883").ok(),
            Some(("127.0.0.1".into(), 1883))
        );
        assert_eq!(parse_url("localhost:9").ok(), Some(("localhost".into(), 9)));
        assert!(parse_url("mqtt://127.0.0.1").is_err());
        assert!(parse_url("mqtt://:1883").is_err());
    }
}
