//! The running ingest: a reader, a dispatcher and one or more writers, with bounded channels
//! of messages between them and a channel of acknowledgements back to the reader.
//!
//! - The **reader** owns the MQTT connection: it (re)connects, subscribes, and passes each
//!   received message into the bounded channel. While the channel is full it stops reading the
//!   socket, so the broker holds the rest. It writes the acknowledgements the writers send back
//!   straight onto the socket, before anything else, in the order the messages arrived
//!   ([`AckOrder`]): rumqttc's own request queue takes one request per turn while each read
//!   takes a bunch of deliveries, and under load its acknowledgements fell ever further behind
//!   (measured by `telltale-load`).
//! - The **dispatcher** decodes and validates each message, numbers it in arrival order and
//!   hands it to the writer that owns its device (`batch.writers` of them, each device always
//!   to the same one, so one device's messages are stored in the order they came).
//! - Each **writer** feeds its own [`Batcher`], writes each sealed batch (`Sink::ingest`, then
//!   `Sink::dead_letter`) on its own database connection and, only after both succeeded, hands
//!   the batch's acknowledgements to the reader. A failing store is retried with back-off and
//!   nothing is acknowledged meanwhile. Several writers keep the database busy on several
//!   cores while one batch commits, which one writer alone cannot (`telltale-load` measures
//!   it).
//!
//! No task waits on another without serving it: the reader takes acknowledgements while it
//! waits for room in the channel, and a writer never waits to send one.
//!
//! A message the broker delivers again while the ingest still holds it unacknowledged (after a
//! reconnect in the middle of a long write) has the same packet id as the held one, because a
//! broker does not reuse a packet id before its PUBACK; the reader drops such copies, so one
//! message is acknowledged once. (The copy is not lost: the held one is acknowledged after its
//! commit.)
//!
//! Shutdown: the dispatcher and the writers stop taking messages, each writer writes what it
//! holds (retrying a failing store for at most the shutdown grace) and hands over the
//! acknowledgements; the reader writes those now due, then sends DISCONNECT. Messages received
//! but not written, and committed ones behind them in arrival order, stay unacknowledged in the
//! broker's session and come again on the next start (the store ignores what it already has).

use std::collections::HashSet;
use std::fmt::Display;
use std::future::Future;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use telltale_store::{DeadLetter, Envelope, IngestOutcome, Store, StoreError};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batcher::{self, AckOrder, Batcher, Item, Step};
use crate::config::Settings;
use crate::metrics::Metrics;
use crate::mqtt;
use crate::validate::{self, ClockCheck};
use telltale_service::mqtt::{AckToken, Connection, Event, Handle};

/// Messages waiting between the reader and the writer, beyond what the writer holds.
const CHANNEL: usize = 64;

/// Where batches go. [`Store`] is the real one; tests put a failing one in its place. Each
/// writer holds a clone.
pub trait Sink: Clone + Send + Sync + 'static {
    type Error: Display + Send;
    fn ingest(
        &self,
        batch: &[Envelope],
    ) -> impl Future<Output = Result<IngestOutcome, Self::Error>> + Send;
    fn dead_letter(
        &self,
        letters: &[DeadLetter],
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

impl Sink for Store {
    type Error = StoreError;
    async fn ingest(&self, batch: &[Envelope]) -> Result<IngestOutcome, StoreError> {
        Store::ingest(self, batch).await
    }
    async fn dead_letter(&self, letters: &[DeadLetter]) -> Result<(), StoreError> {
        Store::dead_letter(self, letters).await
    }
}

/// Packet ids of QoS 1 messages received and not yet acknowledged (the reader's; a mutex so
/// its methods can take `&self` across awaits).
#[derive(Debug, Default)]
struct Unacked(Mutex<HashSet<u16>>);

impl Unacked {
    /// Records a received packet id; false if it is already held (a redelivered copy).
    /// Packet id 0 (QoS 0, nothing to acknowledge) is never held.
    fn insert(&self, pkid: u16) -> bool {
        pkid == 0 || self.lock().insert(pkid)
    }

    fn remove(&self, pkid: u16) {
        self.lock().remove(&pkid);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// One received message on its way to the dispatcher.
#[derive(Debug)]
struct Incoming {
    topic: String,
    payload: Bytes,
    ack: AckToken,
}

/// A message's acknowledgement and its number in arrival order, for [`AckOrder`].
type Numbered = (u64, AckToken);

/// One decoded (or refused) message on its way to the writer that owns its device.
#[derive(Debug)]
struct Routed {
    item: Item,
    ack: Numbered,
}

/// Runs the ingest until `shutdown` is cancelled and the batch in hand is committed.
pub async fn run<S: Sink>(
    settings: &Settings,
    sink: S,
    metrics: Arc<Metrics>,
    leads_due: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
) {
    let max_held = usize::from(settings.mqtt.broker.max_in_flight);
    // The request queue carries the subscriptions, the DISCONNECT and, with MQTT 5 (whose
    // socket rumqttc keeps private), the acknowledgements: room for one per packet id, so
    // queueing one never fails.
    let (handle, connection) = mqtt::client(
        &settings.mqtt,
        settings.limits.max_payload,
        usize::from(u16::MAX) + CHANNEL + 16,
    );
    let (tx, rx) = mpsc::channel(CHANNEL);
    let writer_done = CancellationToken::new();
    let (ack_tx, ack_rx) = mpsc::unbounded_channel();
    let reader = tokio::spawn(
        Reader {
            handle,
            unacked: Unacked::default(),
            share_group: settings.mqtt.share_group.clone(),
            metrics: metrics.clone(),
            shutdown: shutdown.clone(),
            writer_done: writer_done.clone(),
        }
        .run(connection, tx, ack_rx),
    );
    let limits = batcher::Limits {
        max_messages: settings.batch_max_messages,
        max_age: settings.batch_max_age,
        max_held,
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_secs(10),
    };
    let mut writers = Vec::new();
    let mut inputs = Vec::new();
    for _ in 0..settings.batch_writers.max(1) {
        let (wtx, wrx) = mpsc::channel(CHANNEL);
        inputs.push(wtx);
        let writer = Writer {
            sink: sink.clone(),
            acks: ack_tx.clone(),
            leads_due: leads_due.clone(),
            metrics: metrics.clone(),
            grace: settings.shutdown_grace,
            batcher: Batcher::new(limits),
        };
        writers.push(tokio::spawn(writer.run(wrx, shutdown.clone())));
    }
    drop(ack_tx);
    Dispatcher {
        writers: inputs,
        metrics,
        limits: settings.limits.clone(),
        next: 0,
    }
    .run(rx, shutdown)
    .await;
    for w in writers {
        if let Err(e) = w.await {
            tracing::error!(cause = %e, "writer task failed");
        }
    }
    writer_done.cancel();
    if let Err(e) = reader.await {
        tracing::error!(cause = %e, "MQTT reader task failed");
    }
}

/// What the reader needs besides the connection.
struct Reader {
    handle: Handle,
    unacked: Unacked,
    share_group: Option<String>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    writer_done: CancellationToken,
}

impl Reader {
    /// Owns the connection: polls it, hands messages to the writer, and writes the writer's
    /// acknowledgements straight onto the socket. Acknowledgements come first, and the reader
    /// never waits on the writer's channel without also taking acknowledgements, so neither
    /// task can wait on the other.
    async fn run(
        self,
        mut connection: Connection,
        tx: mpsc::Sender<Incoming>,
        mut acks: mpsc::UnboundedReceiver<Numbered>,
    ) {
        let mut order = AckOrder::default();
        let mut failures = 0u32;
        let mut disconnect_at: Option<Instant> = None;
        let mut held: Option<Incoming> = None;
        loop {
            if disconnect_at.is_none() && self.writer_done.is_cancelled() {
                // The writer has stopped: its last acknowledgements go out, then DISCONNECT.
                self.write_acks(&mut connection, None, &mut acks, &mut order)
                    .await;
                if self.handle.disconnect().is_err() {
                    return;
                }
                disconnect_at = Some(Instant::now() + Duration::from_secs(3));
            }
            let polled = tokio::select! {
                biased;
                Some(first) = acks.recv() => {
                    self.write_acks(&mut connection, Some(first), &mut acks, &mut order).await;
                    continue;
                }
                permit = tx.reserve(), if held.is_some() => {
                    if let Some(m) = held.take() {
                        match permit {
                            Ok(p) => p.send(m),
                            Err(_) => self.drop_held(&m),
                        }
                    }
                    continue;
                }
                _ = self.shutdown.cancelled(), if held.is_some() => {
                    // Not acknowledged: the broker keeps it for the next start.
                    if let Some(m) = held.take() {
                        self.drop_held(&m);
                    }
                    continue;
                }
                p = connection.poll(), if held.is_none() => p,
                _ = self.writer_done.cancelled(), if disconnect_at.is_none() => continue,
                _ = tokio::time::sleep_until(disconnect_at.unwrap_or_else(Instant::now)), if disconnect_at.is_some() => {
                    tracing::warn!("no DISCONNECT sent within 3 s; closing");
                    return;
                }
            };
            let metrics = &self.metrics;
            match polled {
                Ok(Event::Connected { session_present }) => {
                    failures = 0;
                    metrics.mqtt_connected.store(1, Ordering::Relaxed);
                    metrics.mqtt_connects.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(session_present, "connected to the broker");
                    if let Err(e) = mqtt::subscribe_fleet(&self.handle, self.share_group.as_deref())
                    {
                        tracing::error!(cause = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Message {
                    topic,
                    payload,
                    ack,
                }) => {
                    if self.shutdown.is_cancelled() {
                        // Not acknowledged: the broker keeps it for the next start.
                        continue;
                    }
                    if !self.unacked.insert(ack.pkid()) {
                        tracing::debug!(pkid = ack.pkid(), %topic, "redelivered copy of a message in hand; dropped");
                        continue;
                    }
                    metrics.in_flight.fetch_add(1, Ordering::Relaxed);
                    held = Some(Incoming {
                        topic,
                        payload,
                        ack,
                    });
                }
                Ok(Event::SubscribeRefused(why)) => {
                    tracing::error!(reason = %why, share_group = ?self.share_group, "the broker refused a subscription (an ACL, or no shared subscriptions: try --no-shared)");
                }
                Ok(Event::Disconnected) => {
                    metrics.mqtt_connected.store(0, Ordering::Relaxed);
                    tracing::info!("disconnected from the broker");
                    return;
                }
                Ok(Event::Published(_) | Event::PubAck { .. } | Event::Other) => {}
                Err(e) => {
                    metrics.mqtt_connected.store(0, Ordering::Relaxed);
                    if disconnect_at.is_some() {
                        return;
                    }
                    let wait = mqtt::reconnect_delay(failures);
                    failures = failures.saturating_add(1);
                    tracing::warn!(cause = %e, retry_in_ms = wait.as_millis() as u64, "MQTT connection down");
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = self.writer_done.cancelled() => return,
                    }
                }
            }
        }
    }

    /// Takes `first` and every other acknowledgement waiting, writes those now due in arrival
    /// order, then flushes them out.
    async fn write_acks(
        &self,
        connection: &mut Connection,
        first: Option<Numbered>,
        acks: &mut mpsc::UnboundedReceiver<Numbered>,
        order: &mut AckOrder<AckToken>,
    ) {
        let mut due = Vec::new();
        let mut next = first.or_else(|| acks.try_recv().ok());
        while let Some((n, ack)) = next {
            order.committed(n, ack, &mut due);
            next = acks.try_recv().ok();
        }
        let mut written = 0usize;
        for ack in due {
            match connection.ack_now(&self.handle, &ack).await {
                Ok(()) => {
                    written += 1;
                    self.metrics.acked.fetch_add(1, Ordering::Relaxed);
                }
                // Disconnected: the broker delivers the message again; it is stored already,
                // so the copy changes nothing and is acknowledged then.
                Err(e) => {
                    tracing::debug!(cause = %e, pkid = ack.pkid(), "acknowledgement not sent")
                }
            }
            self.unacked.remove(ack.pkid());
            self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
        if written > 0
            && let Err(e) = connection.flush().await
        {
            tracing::warn!(cause = %e, "acknowledgements not flushed; the broker will redeliver");
        }
    }

    fn drop_held(&self, m: &Incoming) {
        self.unacked.remove(m.ack.pkid());
        self.metrics.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decodes and validates each message, numbers it in arrival order and hands it to the writer
/// that owns its device.
struct Dispatcher {
    writers: Vec<mpsc::Sender<Routed>>,
    metrics: Arc<Metrics>,
    limits: validate::Limits,
    /// The next message's number.
    next: u64,
}

impl Dispatcher {
    async fn run(mut self, mut rx: mpsc::Receiver<Incoming>, shutdown: CancellationToken) {
        loop {
            let m = tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
            };
            let (item, owner) = self.decode(&m);
            let routed = Routed {
                item,
                ack: (self.next, m.ack),
            };
            self.next += 1;
            let writer = &self.writers[owner];
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                sent = writer.send(routed) => if sent.is_err() {
                    break;
                },
            }
        }
    }

    /// Decodes one message; returns it with the writer that owns its device: the one its topic
    /// names when it cannot be decoded, so a device's dead letters are kept in the order they
    /// came with its data (the whole topic only when the topic names no device).
    fn decode(&self, m: &Incoming) -> (Item, usize) {
        let received_at = Utc::now();
        let writers = self.writers.len();
        let owner;
        let item = match validate::decode(&m.topic, &m.payload, received_at, &self.limits) {
            Ok(a) => {
                self.metrics.received(Some(a.kind));
                if a.clock != ClockCheck::Plausible {
                    self.metrics.clock_flagged.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(device = %a.envelope.device_id, kind = %a.kind, clock = ?a.clock, "device clock implausible; message kept with its device time");
                }
                owner = writer_of(&a.envelope.device_id, writers);
                Item::Data(a.envelope)
            }
            Err(r) => {
                self.metrics.received(r.kind);
                self.metrics.dead_letters.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(topic = %m.topic, bytes = m.payload.len(), reason = %r.reason, "message refused; kept as a dead letter");
                let device =
                    telltale_wire::topic::parse(&m.topic).map_or(m.topic.as_str(), |(d, _)| d);
                owner = writer_of(device, writers);
                Item::Dead(r.into_dead_letter(&m.topic, &m.payload, received_at))
            }
        };
        (item, owner)
    }
}

/// Which of `writers` writers owns a device (or, for a message that cannot be decoded, its
/// topic): the same one for as long as the ingest runs, spread evenly over many devices.
pub fn writer_of(device_id: &str, writers: usize) -> usize {
    let mut h = std::hash::DefaultHasher::new();
    device_id.hash(&mut h);
    (h.finish() % writers.max(1) as u64) as usize
}

/// One writer: its devices' messages in, batches out to the store on its own connection.
struct Writer<S> {
    sink: S,
    /// Committed messages' acknowledgements, for the reader to put in order and write.
    acks: mpsc::UnboundedSender<Numbered>,
    /// Notified when a committed batch wrote leads, so the sender sends them at once.
    leads_due: Arc<tokio::sync::Notify>,
    metrics: Arc<Metrics>,
    grace: Duration,
    batcher: Batcher<Numbered>,
}

/// One write attempt of a batch, owning what it writes, so the writer goes on taking
/// messages meanwhile.
type WriteFuture<E> = Pin<Box<dyn Future<Output = Written<E>> + Send>>;

/// What one write attempt did.
struct Written<E> {
    /// `Sink::ingest`'s outcome, when it succeeded in this attempt.
    ingested: Option<IngestOutcome>,
    result: Result<(), E>,
    elapsed: Duration,
}

/// Waits for the write in progress; never, when there is none.
async fn until_written<E>(writing: &mut Option<WriteFuture<E>>) -> Written<E> {
    match writing {
        Some(w) => w.await,
        None => std::future::pending().await,
    }
}

impl<S: Sink> Writer<S> {
    /// Takes its devices' messages while the batch in hand is written: a writer that stopped
    /// taking them would fill its channel and hold the dispatcher, starving the other writers.
    async fn run(mut self, mut rx: mpsc::Receiver<Routed>, shutdown: CancellationToken) {
        let mut writing: Option<WriteFuture<S::Error>> = None;
        loop {
            let mut wake = None;
            if writing.is_none() {
                match self.batcher.step(Instant::now().into_std()) {
                    Step::Write => writing = self.start(),
                    Step::WaitUntil(at) => wake = Some(Instant::from_std(at)),
                    Step::Idle => {}
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                done = until_written(&mut writing) => {
                    writing = None;
                    self.written(done);
                }
                msg = rx.recv(), if self.batcher.accepting() => match msg {
                    Some(m) => self.batcher.push(m.item, m.ack, Instant::now().into_std()),
                    None => break,
                },
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {}
            }
        }
        if let Some(w) = writing {
            let done = w.await;
            self.written(done);
        }
        self.finish().await;
    }

    /// Starts writing the sealed batch (`Sink::ingest` unless an earlier attempt did, then
    /// `Sink::dead_letter`).
    fn start(&self) -> Option<WriteFuture<S::Error>> {
        let batch = self.batcher.batch()?;
        let sink = self.sink.clone();
        let (envelopes, dead_letters) = (batch.envelopes.clone(), batch.dead_letters.clone());
        let already_ingested = batch.ingested;
        Some(Box::pin(async move {
            let started = Instant::now();
            let mut ingested = None;
            if !already_ingested && !envelopes.is_empty() {
                match sink.ingest(&envelopes).await {
                    Ok(outcome) => ingested = Some(outcome),
                    Err(e) => {
                        return Written {
                            ingested: None,
                            result: Err(e),
                            elapsed: started.elapsed(),
                        };
                    }
                }
            }
            let result = if dead_letters.is_empty() {
                Ok(())
            } else {
                sink.dead_letter(&dead_letters).await
            };
            Written {
                ingested,
                result,
                elapsed: started.elapsed(),
            }
        }))
    }

    /// Writes the sealed batch once and waits for it (shutdown).
    async fn write(&mut self) -> bool {
        match self.start() {
            Some(w) => {
                let done = w.await;
                self.written(done)
            }
            None => false,
        }
    }

    /// A write attempt ended: on success the batch's acknowledgements go to the reader, on
    /// failure a retry is scheduled. Returns whether it was committed.
    fn written(&mut self, done: Written<S::Error>) -> bool {
        let Some((id, messages)) = self.batcher.batch().map(|b| (b.id, b.len())) else {
            return false;
        };
        if let Some(outcome) = &done.ingested {
            self.metrics.outcome(outcome);
            if outcome.leads > 0 {
                self.leads_due.notify_one();
            }
            if let Some(b) = self.batcher.batch_mut() {
                b.ingested = true;
            }
        }
        if let Err(e) = &done.result {
            return self.failed(id, e);
        }
        self.metrics.batch_latency(done.elapsed);
        self.metrics.batches.fetch_add(1, Ordering::Relaxed);
        if let Some(b) = self.batcher.batch() {
            let lag = Instant::now()
                .into_std()
                .saturating_duration_since(b.oldest);
            self.metrics.last_commit_lag_ms.store(
                u64::try_from(lag.as_millis()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        for ack in self.batcher.committed() {
            if self.acks.send(ack).is_err() {
                // Only when the reader is gone (shutting down): the broker redelivers.
                tracing::warn!("acknowledgement not sent: the connection task has ended");
            }
        }
        tracing::debug!(
            batch = id,
            messages,
            write_ms = done.elapsed.as_millis() as u64,
            "batch committed and acknowledged"
        );
        true
    }

    fn failed(&mut self, id: u64, e: &S::Error) -> bool {
        self.metrics.store_errors.fetch_add(1, Ordering::Relaxed);
        let retry_at = self.batcher.failed(Instant::now().into_std());
        let failures = self.batcher.batch().map_or(0, |b| b.failures);
        let retry_in = retry_at.saturating_duration_since(Instant::now().into_std());
        tracing::error!(cause = %e, batch = id, failures, retry_in_ms = retry_in.as_millis() as u64, "store write failed; batch kept unacknowledged");
        false
    }

    /// Shutdown: writes everything held, retrying a failing store until the grace runs out.
    async fn finish(&mut self) {
        let give_up = Instant::now() + self.grace;
        loop {
            self.batcher.flush();
            if self.batcher.batch().is_none() {
                break;
            }
            if self.write().await {
                continue;
            }
            let now = Instant::now();
            let retry = match self.batcher.step(now.into_std()) {
                Step::WaitUntil(at) => Instant::from_std(at),
                _ => now,
            };
            if retry >= give_up {
                let left = self.batcher.abandon() + self.batcher.held();
                tracing::warn!(
                    messages = left,
                    "store still failing at shutdown; leaving messages unacknowledged for redelivery"
                );
                break;
            }
            tokio::time::sleep_until(retry).await;
        }
        tracing::info!("writer stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::Unacked;

    #[test]
    fn a_held_packet_id_marks_a_redelivered_copy_until_acknowledged() {
        let u = Unacked::default();
        assert!(u.insert(5));
        assert!(!u.insert(5), "same id while held: a copy");
        assert!(u.insert(6));
        u.remove(5);
        assert!(u.insert(5), "after the ack the broker may reuse it");
        assert!(u.insert(0) && u.insert(0), "QoS 0 carries no id to hold");
    }
}
