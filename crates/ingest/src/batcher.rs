//! The batch state machine (sans-IO: the caller passes `now` and does the writing):
//! messages in, one batch at a time out to the store, and the acknowledgements of a batch
//! released only once it is committed, in the order the messages arrived.
//!
//! At most one batch per [`Batcher`] is being written; messages that arrive meanwhile wait for
//! the next one. A failed write keeps the same batch and schedules a retry with back-off, so
//! nothing is acknowledged that is not stored, and the count of held messages is bounded: when
//! it reaches the bound, [`Batcher::accepting`] says stop reading (the broker then holds the
//! rest).
//!
//! The ingest runs several batchers at once, one per writer, each taking a fixed share of the
//! devices. Their batches commit in any order, so [`AckOrder`] puts the acknowledgements back
//! into the order the messages arrived (MQTT wants PUBACKs in that order).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use telltale_store::{DeadLetter, Envelope};

/// One received message, decoded or refused. (Most are `Data`; boxing it would only add an
/// allocation per message.)
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)]
pub enum Item {
    Data(Envelope),
    Dead(DeadLetter),
}

/// A sealed batch: what to write, and the acknowledgements it releases.
#[derive(Debug)]
pub struct Batch<A> {
    pub id: u64,
    /// Shared, so a write can own them while the batcher takes the next messages.
    pub envelopes: Arc<Vec<Envelope>>,
    pub dead_letters: Arc<Vec<DeadLetter>>,
    /// Set by the driver once `Store::ingest` succeeded, so a retry after a failed
    /// `dead_letter` does not write the data again (it would be harmless, only counted twice).
    pub ingested: bool,
    /// Failed write attempts so far.
    pub failures: u32,
    /// When its first message arrived: the ingest's lag at commit is measured from here.
    pub oldest: Instant,
    acks: Vec<A>,
}

impl<A> Batch<A> {
    pub fn len(&self) -> usize {
        self.acks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acks.is_empty()
    }
}

/// What the driver should do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Write [`Batcher::batch`], then call [`Batcher::committed`] or [`Batcher::failed`].
    Write,
    /// Nothing to write before this instant (unless more messages arrive).
    WaitUntil(Instant),
    /// Nothing held.
    Idle,
}

/// Batch sizes, the memory bound and the retry back-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_messages: usize,
    pub max_age: Duration,
    /// Messages held at most (pending plus the batch being written).
    pub max_held: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
}

#[derive(Debug)]
struct Pending<A> {
    item: Item,
    ack: A,
    at: Instant,
}

/// See the module documentation. `A` is whatever acknowledges a message to the broker.
#[derive(Debug)]
pub struct Batcher<A> {
    limits: Limits,
    pending: Vec<Pending<A>>,
    current: Option<Batch<A>>,
    retry_at: Option<Instant>,
    next_id: u64,
}

impl<A> Batcher<A> {
    pub fn new(limits: Limits) -> Batcher<A> {
        Batcher {
            limits,
            pending: Vec::new(),
            current: None,
            retry_at: None,
            next_id: 1,
        }
    }

    /// Messages held, acknowledged to nobody yet.
    pub fn held(&self) -> usize {
        self.pending.len() + self.current.as_ref().map_or(0, Batch::len)
    }

    /// Whether the driver may take another message.
    pub fn accepting(&self) -> bool {
        self.held() < self.limits.max_held
    }

    /// Adds a received message; its `ack` comes back from [`Batcher::committed`].
    pub fn push(&mut self, item: Item, ack: A, now: Instant) {
        self.pending.push(Pending { item, ack, at: now });
    }

    /// Decides what to do at `now`; seals a batch from the pending messages when it is full
    /// or its oldest message is `max_age` old and no other batch is being written.
    pub fn step(&mut self, now: Instant) -> Step {
        if self.current.is_some() {
            return match self.retry_at {
                Some(at) if at > now => Step::WaitUntil(at),
                _ => Step::Write,
            };
        }
        let Some(first) = self.pending.first() else {
            return Step::Idle;
        };
        let due = first.at + self.limits.max_age;
        if self.pending.len() >= self.limits.max_messages || now >= due {
            self.seal();
            Step::Write
        } else {
            Step::WaitUntil(due)
        }
    }

    /// Seals whatever is pending now, whatever its age (shutdown: finish the batch in hand).
    /// Does nothing while a batch is being written.
    pub fn flush(&mut self) {
        if self.current.is_none() && !self.pending.is_empty() {
            self.seal();
        }
    }

    fn seal(&mut self) {
        let n = self.pending.len().min(self.limits.max_messages);
        let taken: Vec<Pending<A>> = self.pending.drain(..n).collect();
        let oldest = taken.first().map_or_else(Instant::now, |p| p.at);
        let (mut envelopes, mut dead_letters, mut acks) = (Vec::new(), Vec::new(), Vec::new());
        for p in taken {
            match p.item {
                Item::Data(e) => envelopes.push(e),
                Item::Dead(d) => dead_letters.push(d),
            }
            acks.push(p.ack);
        }
        self.current = Some(Batch {
            id: self.next_id,
            envelopes: Arc::new(envelopes),
            dead_letters: Arc::new(dead_letters),
            ingested: false,
            failures: 0,
            oldest,
            acks,
        });
        self.next_id += 1;
        self.retry_at = None;
    }

    /// The batch being written.
    pub fn batch(&self) -> Option<&Batch<A>> {
        self.current.as_ref()
    }

    pub fn batch_mut(&mut self) -> Option<&mut Batch<A>> {
        self.current.as_mut()
    }

    /// The batch is committed: its acknowledgements, in arrival order.
    pub fn committed(&mut self) -> Vec<A> {
        self.retry_at = None;
        self.current.take().map(|b| b.acks).unwrap_or_default()
    }

    /// The write failed: keep the batch, retry after a back-off that doubles per failure.
    /// Returns when.
    pub fn failed(&mut self, now: Instant) -> Instant {
        let l = self.limits;
        let failures = match self.current.as_mut() {
            Some(b) => {
                b.failures += 1;
                b.failures
            }
            None => 1,
        };
        let factor = 1u32 << (failures - 1).min(16);
        let wait = l.retry_min.saturating_mul(factor).min(l.retry_max);
        let at = now + wait;
        self.retry_at = Some(at);
        at
    }

    /// Gives up on the batch being written (shutdown while the store is down): its messages
    /// stay unacknowledged so the broker delivers them again. Returns how many.
    pub fn abandon(&mut self) -> usize {
        self.retry_at = None;
        self.current.take().map_or(0, |b| b.len())
    }
}

/// Acknowledgements of committed messages, released in arrival order: each message is numbered
/// from 0 as it arrives, and an acknowledgement is due once every message before it is
/// committed too. A number that never commits (a batch left unacknowledged at shutdown) holds
/// back the ones after it, which the broker then delivers again (the store ignores the copies).
#[derive(Debug)]
pub struct AckOrder<A> {
    next: u64,
    waiting: BTreeMap<u64, A>,
}

impl<A> Default for AckOrder<A> {
    fn default() -> Self {
        AckOrder {
            next: 0,
            waiting: BTreeMap::new(),
        }
    }
}

impl<A> AckOrder<A> {
    /// Message `n` is committed; appends to `due` every acknowledgement now due, in order.
    pub fn committed(&mut self, n: u64, ack: A, due: &mut Vec<A>) {
        if n < self.next {
            return;
        }
        self.waiting.insert(n, ack);
        while let Some(ack) = self.waiting.remove(&self.next) {
            due.push(ack);
            self.next += 1;
        }
    }

    /// Committed acknowledgements waiting for an earlier message.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use telltale_store::Uplink;
    use telltale_wire::v1;

    use super::*;

    fn limits() -> Limits {
        Limits {
            max_messages: 3,
            max_age: Duration::from_millis(200),
            max_held: 5,
            retry_min: Duration::from_millis(100),
            retry_max: Duration::from_millis(350),
        }
    }

    fn data(seq: u64) -> Item {
        let Some(t) = Utc.timestamp_millis_opt(1_700_000_000_000).single() else {
            panic!("time");
        };
        Item::Data(Envelope {
            device_id: "d".into(),
            received_at: t,
            message: Uplink::Status(v1::Status {
                header: Some(v1::UplinkHeader {
                    seq,
                    ..v1::UplinkHeader::default()
                }),
                ..v1::Status::default()
            }),
        })
    }

    fn dead(n: u8) -> Item {
        let Some(t) = Utc.timestamp_millis_opt(0).single() else {
            panic!("time");
        };
        Item::Dead(DeadLetter {
            received_at: t,
            topic: "telltale/v1/d/dtc".into(),
            payload: vec![n],
            reason: "garbage".into(),
        })
    }

    #[test]
    fn a_full_batch_is_written_and_acks_come_back_in_order_only_after_commit() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        b.push(data(1), "a1", t0);
        b.push(dead(2), "a2", t0);
        assert_eq!(b.step(t0), Step::WaitUntil(t0 + Duration::from_millis(200)));
        b.push(data(3), "a3", t0);
        assert_eq!(b.step(t0), Step::Write);
        let Some(batch) = b.batch() else {
            panic!("no batch");
        };
        assert_eq!((batch.envelopes.len(), batch.dead_letters.len()), (2, 1));
        // Still being written: asking again writes the same batch, releases nothing.
        assert_eq!(b.step(t0), Step::Write);
        assert_eq!(b.batch().map(|x| x.id), Some(1));
        assert_eq!(b.held(), 3);
        assert_eq!(b.committed(), vec!["a1", "a2", "a3"]);
        assert_eq!(b.held(), 0);
        assert_eq!(b.step(t0), Step::Idle);
        assert!(b.committed().is_empty(), "nothing to release twice");
    }

    #[test]
    fn an_old_enough_partial_batch_is_written() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        b.push(data(1), 1, t0);
        b.push(data(2), 2, t0 + Duration::from_millis(150));
        assert!(matches!(
            b.step(t0 + Duration::from_millis(199)),
            Step::WaitUntil(_)
        ));
        assert_eq!(b.step(t0 + Duration::from_millis(200)), Step::Write);
        assert_eq!(b.batch().map(Batch::len), Some(2));
        assert_eq!(b.batch().map(|x| x.oldest), Some(t0));
    }

    #[test]
    fn a_failed_write_keeps_the_batch_and_retries_with_back_off() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        for i in 0..3 {
            b.push(data(i), i, t0);
        }
        assert_eq!(b.step(t0), Step::Write);
        let r1 = b.failed(t0);
        assert_eq!(r1, t0 + Duration::from_millis(100));
        assert_eq!(b.step(t0), Step::WaitUntil(r1));
        // Messages arriving meanwhile do not join the batch being written.
        b.push(data(10), 10, t0);
        assert_eq!(b.step(r1), Step::Write);
        assert_eq!(b.batch().map(Batch::len), Some(3));
        assert_eq!(b.failed(r1), r1 + Duration::from_millis(200));
        assert_eq!(b.failed(r1), r1 + Duration::from_millis(350), "capped");
        assert_eq!(b.batch().map(|x| x.failures), Some(3));
        assert_eq!(b.committed(), vec![0, 1, 2]);
        // The late one is next, on its own clock.
        assert_eq!(b.step(t0 + Duration::from_millis(200)), Step::Write);
        assert_eq!(b.committed(), vec![10]);
    }

    #[test]
    fn the_bound_stops_reading_while_a_batch_is_stuck() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        for i in 0..3 {
            assert!(b.accepting());
            b.push(data(i), i, t0);
        }
        assert_eq!(b.step(t0), Step::Write);
        b.failed(t0);
        b.push(data(3), 3, t0);
        assert!(b.accepting());
        b.push(data(4), 4, t0);
        assert!(!b.accepting(), "5 held: stop reading");
        assert_eq!(b.committed(), vec![0, 1, 2]);
        assert!(b.accepting());
    }

    #[test]
    fn pending_beyond_a_batch_is_split_and_flush_seals_early() {
        let t0 = Instant::now();
        let mut b = Batcher::new(Limits {
            max_held: 10,
            ..limits()
        });
        b.push(data(0), 0, t0);
        b.flush();
        assert_eq!(b.step(t0), Step::Write, "flushed without waiting for age");
        for i in 1..6 {
            b.push(data(i), i, t0);
        }
        b.flush();
        assert_eq!(b.committed(), vec![0]);
        b.flush();
        assert_eq!(b.committed(), vec![1, 2, 3]);
        b.flush();
        assert_eq!(b.committed(), vec![4, 5]);
    }

    #[test]
    fn acks_of_batches_committed_out_of_order_leave_in_arrival_order() {
        let mut order = AckOrder::default();
        let mut due = Vec::new();
        // Writer 2 commits messages 2 and 3 before writer 1 commits 0 and 1.
        order.committed(2, "m2", &mut due);
        order.committed(3, "m3", &mut due);
        assert!(due.is_empty(), "0 and 1 are not committed yet");
        assert_eq!(order.waiting(), 2);
        order.committed(1, "m1", &mut due);
        assert!(due.is_empty());
        order.committed(0, "m0", &mut due);
        assert_eq!(due, vec!["m0", "m1", "m2", "m3"]);
        assert_eq!(order.waiting(), 0);
        due.clear();
        order.committed(0, "again", &mut due);
        assert!(
            due.is_empty(),
            "a number already released is not released twice"
        );
        order.committed(4, "m4", &mut due);
        assert_eq!(due, vec!["m4"]);
    }

    #[test]
    fn abandoning_releases_no_acks() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits());
        b.push(data(1), 1, t0);
        b.flush();
        assert_eq!(b.abandon(), 1);
        assert!(b.committed().is_empty());
        assert_eq!(b.step(t0), Step::Idle);
    }
}
