//! The MQTT session: connects (and reconnects with back-off), publishes from the spool with QoS 1,
//! removes a record only on its PUBACK, keeps the retained status up to date, and hands command
//! payloads to the command handler.
//!
//! The bookkeeping of what is queued and in flight is the `Outbox` state machine; the spool
//! is reached only through its thread ([`SpoolHandle`]), so nothing here blocks on the disk.
//! When the connection drops, every record in flight is marked unsent again and goes out
//! after the reconnect (the cloud deduplicates on the header), and rumqttc's own resend queue
//! is dropped because the session is clean.
//!
//! Order: the spool hands out DTC reports before command results, info and telemetry, so a
//! backlog of telemetry after an outage drains behind any live DTC report.

use std::sync::Arc;
use std::time::Duration;

use prost::Message as _;
use serde::Serialize;
use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;
use tokio::sync::{Notify, mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use telltale_service::mqtt::{self, Event, Handle};

use super::outbox::Outbox;
use super::writer::Stamp;
use crate::config::MqttSettings;
use crate::spool::SpoolHandle;
use crate::vehicle::VehicleState;

/// The largest packet taken from the broker: commands are a few hundred bytes.
const MAX_INCOMING: usize = 64 * 1024;
/// The largest packet sent: well above any batch or report the agent makes (rumqttc's default,
/// 10 KiB, is not).
const MAX_OUTGOING: usize = 1024 * 1024;

/// What the status endpoint shows about the connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct UplinkState {
    pub connected: bool,
    pub last_error: Option<String>,
    pub connects: u64,
    pub published: u64,
    pub acked: u64,
    /// MQTT 5 PUBACKs with a failure reason (e.g. not authorized): counted and removed, since
    /// republishing would be refused again.
    pub refused: u64,
    pub commands_received: u64,
}

/// Everything the session needs.
#[derive(Debug)]
pub struct Session {
    pub settings: MqttSettings,
    pub stamp: Arc<Stamp>,
    pub spool: SpoolHandle,
    /// Notified by the writer after each append.
    pub wake: Arc<Notify>,
    pub vehicle: watch::Receiver<VehicleState>,
    /// Raw payloads from the `cmd` topic.
    pub commands: mpsc::Sender<Vec<u8>>,
    pub state: watch::Sender<UplinkState>,
    pub agent_version: String,
    /// After shutdown is asked, how long to keep publishing what the spool holds.
    pub drain_grace: Duration,
}

impl Session {
    fn status(&self, presence: v1::Presence) -> v1::Status {
        let spool = self.spool.stats();
        let vehicle = self.vehicle.borrow();
        let dropped = |c: crate::spool::Class| spool.dropped[c as usize];
        v1::Status {
            header: Some(self.stamp.status_header()),
            presence: presence as i32,
            link_state: vehicle.link_state.clone(),
            spool_messages: spool.messages,
            spool_bytes: spool.bytes,
            dropped_telemetry: dropped(crate::spool::Class::Telemetry),
            dropped_dtc_reports: dropped(crate::spool::Class::Dtc),
            dropped_other: dropped(crate::spool::Class::Info)
                + dropped(crate::spool::Class::CmdResult),
            agent_version: self.agent_version.clone(),
            last_seq: self
                .stamp
                .last_seq
                .load(std::sync::atomic::Ordering::SeqCst),
            vehicle_awake: vehicle.awake,
        }
    }

    /// Runs until `stop` and the drain that follows; the writer must have been told to stop
    /// first only if nothing more is to be stored.
    pub async fn run(self, stop: CancellationToken) {
        let status_topic = topic::topic(&self.stamp.device_id, Kind::Status);
        let cmd_topic = topic::topic(&self.stamp.device_id, Kind::Cmd);
        let will = self.status(v1::Presence::Offline).encode_to_vec();
        let window = usize::from(self.settings.broker.max_in_flight);
        // A clean session: the spool, not the broker, is the durable state (module doc).
        let (client, mut connection) = mqtt::client(
            &self.settings.broker,
            &mqtt::Session {
                client_id: self.stamp.device_id.clone(),
                clean: true,
                expiry: None,
                manual_acks: false,
                will: Some((status_topic.clone(), will)),
                requests: window * 2 + 16,
                max_incoming: MAX_INCOMING,
                max_outgoing: MAX_OUTGOING,
            },
        );

        let mut connected = false;
        let mut outbox = Outbox::new(window);
        let mut backoff = self.settings.reconnect_min;
        let mut status_tick = tokio::time::interval(self.settings.status_period);
        status_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut vehicle = self.vehicle.clone();
        let mut vehicle_gone = false;
        let mut last_vehicle = {
            let v = vehicle.borrow_and_update();
            (v.awake, v.link_state.clone())
        };
        let mut drain_deadline: Option<Instant> = None;
        let mut spool_empty = false;

        loop {
            if let Some(deadline) = drain_deadline
                && (!connected || Instant::now() >= deadline || (outbox.is_idle() && spool_empty))
            {
                break;
            }
            tokio::select! {
                _ = stop.cancelled(), if drain_deadline.is_none() => {
                    drain_deadline = Some(Instant::now() + self.drain_grace);
                    tracing::info!(connected, "draining the spool before shutdown");
                    if connected {
                        spool_empty = self.fill(&client, &mut outbox).await;
                    }
                }
                _ = tokio::time::sleep_until(drain_deadline.unwrap_or_else(Instant::now)), if drain_deadline.is_some() => {}
                ev = connection.poll() => match ev {
                    Ok(Event::Connected { .. }) => {
                        connected = true;
                        backoff = self.settings.reconnect_min;
                        self.state.send_modify(|s| { s.connected = true; s.connects += 1; s.last_error = None; });
                        tracing::info!(host = %self.settings.broker.host, port = self.settings.broker.port, "connected to the broker");
                        if let Err(e) = client.subscribe(&cmd_topic) {
                            tracing::error!(cause = %e, "cannot subscribe to commands");
                        }
                        self.publish_status(&client, &status_topic, v1::Presence::Online, &mut outbox);
                        spool_empty = self.fill(&client, &mut outbox).await;
                    }
                    Ok(ev @ (Event::Published(_) | Event::PubAck { .. })) => {
                        self.settle(&mut outbox, ev).await;
                        spool_empty = self.fill(&client, &mut outbox).await;
                    }
                    Ok(Event::Message { topic, payload, .. }) => {
                        if topic == cmd_topic {
                            self.state.send_modify(|s| s.commands_received += 1);
                            if self.commands.try_send(payload.to_vec()).is_err() {
                                tracing::warn!("command handler busy; command dropped (the cloud gets no result and may retry)");
                            }
                        }
                    }
                    Ok(Event::SubscribeRefused(reason)) => {
                        tracing::error!(%reason, topic = %cmd_topic, "the broker refused the command subscription (check its ACL)");
                    }
                    Ok(Event::Disconnected | Event::Other) => {}
                    Err(e) => {
                        let outstanding = outbox.connection_lost();
                        if connected {
                            tracing::warn!(cause = %e, in_flight = outstanding, "connection to the broker lost; unacknowledged messages will be sent again");
                        } else {
                            tracing::warn!(cause = %e, retry_in_ms = backoff.as_millis() as u64, "cannot connect to the broker");
                        }
                        connected = false;
                        self.requeue().await;
                        self.state.send_modify(|s| { s.connected = false; s.last_error = Some(e.clone()); });
                        if drain_deadline.is_some() {
                            break;
                        }
                        tokio::select! {
                            _ = tokio::time::sleep(backoff) => {}
                            _ = stop.cancelled() => break,
                        }
                        backoff = (backoff * 2).min(self.settings.reconnect_max);
                    }
                },
                _ = self.wake.notified(), if connected => {
                    spool_empty = self.fill(&client, &mut outbox).await;
                }
                _ = status_tick.tick(), if connected => {
                    self.publish_status(&client, &status_topic, v1::Presence::Online, &mut outbox);
                }
                changed = vehicle.changed(), if !vehicle_gone => {
                    if changed.is_err() {
                        // The vehicle side is gone (shutdown): stop watching it.
                        vehicle_gone = true;
                        continue;
                    }
                    // Counters change with every request; only waking, sleeping and the link
                    // state are news for the fleet view.
                    let now = {
                        let v = vehicle.borrow_and_update();
                        (v.awake, v.link_state.clone())
                    };
                    if now != last_vehicle {
                        last_vehicle = now;
                        if connected {
                            self.publish_status(&client, &status_topic, v1::Presence::Online, &mut outbox);
                        }
                    }
                }
            }
        }

        if connected {
            self.publish_status(&client, &status_topic, v1::Presence::Offline, &mut outbox);
            let _ = client.disconnect();
            // Let rumqttc write the status and the DISCONNECT, settling what is acknowledged
            // meanwhile.
            let _ = tokio::time::timeout(Duration::from_secs(2), async {
                while let Ok(ev) = connection.poll().await {
                    self.settle(&mut outbox, ev).await;
                }
            })
            .await;
        }
        self.requeue().await;
        self.state.send_modify(|s| s.connected = false);
        tracing::info!("MQTT session closed");
    }

    /// A packet id reported or a PUBACK: the outbox learns it, and an acknowledged record
    /// leaves the spool. Other events are not its business.
    async fn settle(&self, outbox: &mut Outbox, ev: Event) {
        match ev {
            Event::Published(pkid) => outbox.published(pkid),
            Event::PubAck { pkid, refused } => {
                let Some(id) = outbox.acked(pkid) else {
                    return;
                };
                if let Some(reason) = &refused {
                    tracing::error!(record = id.0, %reason, "the broker refused a message; it is removed from the spool");
                }
                if self.spool.ack(id).await.is_err() {
                    tracing::error!(
                        record = id.0,
                        "the spool thread has stopped; acknowledgement lost"
                    );
                }
                self.state.send_modify(|s| {
                    s.acked += 1;
                    if refused.is_some() {
                        s.refused += 1;
                    }
                });
            }
            _ => {}
        }
    }

    /// Everything the spool handed out is unsent again.
    async fn requeue(&self) {
        if self.spool.requeue_in_flight().await.is_err() {
            tracing::error!("the spool thread has stopped; cannot requeue");
        }
    }

    fn publish_status(
        &self,
        client: &Handle,
        topic: &str,
        presence: v1::Presence,
        outbox: &mut Outbox,
    ) {
        match client.publish(topic, self.status(presence).encode_to_vec(), true) {
            Ok(()) => outbox.queued(None),
            Err(e) => tracing::warn!(cause = %e, "status not published"),
        }
    }

    /// Hands records to the client while the outbox has room; true when the spool has nothing
    /// unsent left.
    async fn fill(&self, client: &Handle, outbox: &mut Outbox) -> bool {
        let room = outbox.room();
        if room == 0 {
            return false;
        }
        let records = match self.spool.take(room).await {
            Ok(records) => records,
            Err(e) => {
                tracing::error!(cause = %e, "cannot read the spool");
                return false;
            }
        };
        let empty = records.len() < room;
        for rec in records {
            if let Err(e) = client.publish(&rec.topic, rec.payload, false) {
                // The records taken stay in flight in the spool; the reconnect requeues them.
                tracing::warn!(cause = %e, "publish not queued; will retry after reconnect");
                return false;
            }
            outbox.queued(Some(rec.id));
            self.state.send_modify(|s| s.published += 1);
        }
        empty
    }
}
