//! An in-process CAN bus: many nodes, every frame broadcast to all the others, as on a real
//! bus. Used by tests, by the simulator and by the one-command demo (`sim:NAME` links).
//!
//! [`VirtualBus::with_options`] makes the bus imperfect on purpose ([`BusOptions`]): a fixed
//! latency plus jitter per frame, frame loss, reordering, a finite bitrate (a frame occupies
//! the bus for its worst-case bit time, so a burst is spread out as on a real wire), and a
//! background node that fills a given share of the bus with filler frames. Every random
//! choice comes from one seeded generator, so a run is reproducible; under
//! `tokio::time::pause()` so is its timing.
//!
//! What it does not model: arbitration by identifier priority (frames go out in the order they
//! were queued), error frames and retransmission, or CAN FD.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use telltale_obd::{CanFrame, CanId};
use tokio::sync::mpsc::{self, error::TryRecvError};
use tokio::time::Instant;

use crate::bus::{CanBus, Hub, Outgoing, SEND_CAPACITY};

/// The bitrate bus load is measured against when [`BusOptions::bitrate`] is not set.
pub const DEFAULT_LOAD_BITRATE: u32 = 500_000;
/// How long a frame chosen for reordering waits for a successor to overtake it before it is
/// delivered anyway.
pub const REORDER_MAX_HOLD: Duration = Duration::from_millis(20);

/// How imperfect a [`VirtualBus`] is. The default is a perfect bus: instant, lossless, in
/// order, infinitely fast.
#[derive(Debug, Clone, PartialEq)]
pub struct BusOptions {
    /// Added to every frame between the end of its transmission and its delivery.
    pub latency: Duration,
    /// A further delay drawn uniformly from `0..=jitter` per frame. Jitter never reorders:
    /// a frame is not delivered before the one transmitted ahead of it.
    pub jitter: Duration,
    /// Probability (0..=1) that a frame reaches nobody. It still occupies the bus.
    pub loss: f64,
    /// Probability (0..=1) that a frame is held back and delivered right after the next one
    /// (or after [`REORDER_MAX_HOLD`] when no next frame comes).
    pub reorder: f64,
    /// When set, the bus carries this many bits per second: each frame occupies it for
    /// [`frame_time`], frames queue behind each other and `send` feels the back-pressure.
    pub bitrate: Option<u32>,
    /// Share (0..100 %) of the bus a background node fills with 8-byte filler frames, measured
    /// against `bitrate` or, when that is unset, [`DEFAULT_LOAD_BITRATE`].
    pub load_percent: f64,
    /// Identifier of the filler frames (subscribers whose filters match it receive them).
    pub filler_id: CanId,
    /// Seed of the generator behind loss, jitter and reordering.
    pub seed: u64,
}

impl Default for BusOptions {
    fn default() -> Self {
        BusOptions {
            latency: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            reorder: 0.0,
            bitrate: None,
            load_percent: 0.0,
            filler_id: CanId::Standard(0x3FF),
            seed: 0,
        }
    }
}

/// What a bus did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Frames transmitted, filler included.
    pub frames: u64,
    /// Frames transmitted and then lost.
    pub lost: u64,
    /// Frames held back behind their successor.
    pub reordered: u64,
    /// Filler frames transmitted by the background node.
    pub filler: u64,
    /// Time the bus spent transmitting (zero unless a bitrate is set).
    pub busy: Duration,
}

/// Bits a classic CAN data frame occupies on the wire in the worst case: the stuffed part
/// (start of frame through CRC; 34 bits of overhead for an 11-bit id, 54 for a 29-bit one,
/// plus 8 per data byte) with one stuff bit per 4 bits after the first, then CRC delimiter,
/// ACK slot and delimiter, end of frame and interframe space (13 bits, never stuffed).
pub fn frame_bits(frame: &CanFrame) -> u32 {
    let overhead = if frame.id().is_extended() { 54 } else { 34 };
    // At most 8 data bytes by construction.
    let stuffed = overhead + 8 * frame.data().len() as u32;
    stuffed + 13 + (stuffed - 1) / 4
}

/// How long `frame` occupies a bus running at `bitrate` bit/s (worst-case stuffing).
pub fn frame_time(frame: &CanFrame, bitrate: u32) -> Duration {
    let nanos = u64::from(frame_bits(frame)) * 1_000_000_000 / u64::from(bitrate.max(1));
    Duration::from_nanos(nanos)
}

/// An in-process bus. Cloning gives another handle to the same bus.
#[derive(Debug, Clone)]
pub struct VirtualBus {
    name: Arc<str>,
    tx: mpsc::Sender<Outgoing>,
    hub: Arc<Hub>,
    stats: Arc<Mutex<BusStats>>,
}

impl VirtualBus {
    /// A new, perfect bus. Must be called within a tokio runtime: the bus is a task.
    pub fn new(name: &str) -> VirtualBus {
        VirtualBus::with_options(name, BusOptions::default())
    }

    /// A new bus with latency, loss, reordering, a bitrate or background load. Must be called
    /// within a tokio runtime. Out-of-range probabilities and loads are clamped.
    pub fn with_options(name: &str, options: BusOptions) -> VirtualBus {
        let (tx, rx) = mpsc::channel::<Outgoing>(SEND_CAPACITY);
        let hub = Arc::new(Hub::default());
        let stats = Arc::new(Mutex::new(BusStats::default()));
        let driver = Driver::new(options, hub.clone(), stats.clone());
        tokio::spawn(driver.run(rx));
        VirtualBus {
            name: name.into(),
            tx,
            hub,
            stats,
        }
    }

    /// The process-wide bus called `name`, created on first use: how `sim:NAME` links of the
    /// simulator and the agent in one process find each other.
    pub fn named(name: &str) -> VirtualBus {
        static BUSES: OnceLock<Mutex<HashMap<String, VirtualBus>>> = OnceLock::new();
        let mut buses = BUSES
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        buses
            .entry(name.to_owned())
            .or_insert_with(|| VirtualBus::new(name))
            .clone()
    }

    /// A new node on the bus.
    pub fn node(&self) -> CanBus {
        CanBus::from_parts(
            &format!("sim:{}", self.name),
            self.tx.clone(),
            self.hub.clone(),
        )
    }

    /// Counters of what the bus did so far.
    pub fn stats(&self) -> BusStats {
        *self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// splitmix64: tiny, fast, and good enough to decide which frames to lose.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// True with probability `p`; draws nothing when `p` is zero, so a perfect bus stays
    /// independent of the seed.
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && ((self.next_u64() >> 11) as f64) / ((1u64 << 53) as f64) < p
    }

    fn up_to(&mut self, max: Duration) -> Duration {
        let max = max.as_nanos().min(u128::from(u64::MAX)) as u64;
        if max == 0 {
            return Duration::ZERO;
        }
        Duration::from_nanos(self.next_u64() % (max + 1))
    }
}

/// A frame waiting for its delivery time.
#[derive(Debug)]
struct Pending {
    at: Instant,
    seq: u64,
    frame: CanFrame,
    origin: Option<u64>,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    /// Reversed, so the max-heap pops the earliest delivery first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// The bus task: transmits queued frames (paced when a bitrate is set), applies the faults and
/// delivers through the hub.
#[derive(Debug)]
struct Driver {
    opts: BusOptions,
    rng: Rng,
    hub: Arc<Hub>,
    stats: Arc<Mutex<BusStats>>,
    queue: BinaryHeap<Pending>,
    seq: u64,
    /// When the frame on the wire ends (paced mode).
    bus_free: Instant,
    /// Delivery time of the latest scheduled frame, so jitter does not reorder.
    last_delivery: Instant,
    /// A frame held back for reordering, with the time it is released anyway.
    held: Option<(Pending, Instant)>,
    next_filler: Option<Instant>,
    filler_interval: Duration,
    filler_count: u64,
}

impl Driver {
    fn new(mut opts: BusOptions, hub: Arc<Hub>, stats: Arc<Mutex<BusStats>>) -> Driver {
        let clamp01 = |p: f64| {
            if p.is_finite() {
                p.clamp(0.0, 1.0)
            } else {
                0.0
            }
        };
        opts.loss = clamp01(opts.loss);
        opts.reorder = clamp01(opts.reorder);
        opts.load_percent = if opts.load_percent.is_finite() {
            opts.load_percent.clamp(0.0, 100.0)
        } else {
            0.0
        };
        opts.bitrate = opts.bitrate.filter(|&b| b > 0);
        let now = Instant::now();
        let mut filler_interval = Duration::ZERO;
        let mut next_filler = None;
        if opts.load_percent > 0.0
            && let Some(sample) = filler_frame(opts.filler_id, 0)
        {
            let busy = frame_time(&sample, opts.bitrate.unwrap_or(DEFAULT_LOAD_BITRATE));
            filler_interval = busy.mul_f64(100.0 / opts.load_percent);
            next_filler = Some(now + filler_interval);
        }
        Driver {
            rng: Rng(opts.seed),
            opts,
            hub,
            stats,
            queue: BinaryHeap::new(),
            seq: 0,
            bus_free: now,
            last_delivery: now,
            held: None,
            next_filler,
            filler_interval,
            filler_count: 0,
        }
    }

    fn stats(&self) -> std::sync::MutexGuard<'_, BusStats> {
        self.stats.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `frame`, ready to go at `ready`, on the wire and schedules its delivery.
    fn transmit(&mut self, frame: CanFrame, origin: Option<u64>, ready: Instant) {
        let end = match self.opts.bitrate {
            Some(bitrate) => {
                let time = frame_time(&frame, bitrate);
                let end = ready.max(self.bus_free) + time;
                self.bus_free = end;
                self.stats().busy += time;
                end
            }
            None => ready,
        };
        self.stats().frames += 1;
        if self.rng.chance(self.opts.loss) {
            self.stats().lost += 1;
            return;
        }
        let jitter = self.rng.up_to(self.opts.jitter);
        let at = (end + self.opts.latency + jitter).max(self.last_delivery);
        self.last_delivery = at;
        let pending = self.pending(at, frame, origin);
        if let Some((mut held, _)) = self.held.take() {
            held.seq = pending.seq + 1;
            self.seq += 1;
            held.at = at;
            self.queue.push(pending);
            self.queue.push(held);
        } else if self.rng.chance(self.opts.reorder) {
            self.stats().reordered += 1;
            self.held = Some((pending, at + REORDER_MAX_HOLD));
        } else {
            self.queue.push(pending);
        }
    }

    fn pending(&mut self, at: Instant, frame: CanFrame, origin: Option<u64>) -> Pending {
        self.seq += 1;
        Pending {
            at,
            seq: self.seq,
            frame,
            origin,
        }
    }

    fn deliver_due(&mut self, now: Instant) {
        while self.queue.peek().is_some_and(|p| p.at <= now) {
            if let Some(p) = self.queue.pop() {
                self.hub.deliver(p.frame, p.origin);
            }
        }
        if let Some((_, deadline)) = &self.held
            && *deadline <= now
            && let Some((held, _)) = self.held.take()
        {
            self.last_delivery = self.last_delivery.max(now);
            self.hub.deliver(held.frame, held.origin);
        }
    }

    /// When a frame ready at `ready` could start: as soon as the bus is free.
    fn start_time(&self, ready: Instant) -> Instant {
        if self.opts.bitrate.is_some() {
            ready.max(self.bus_free)
        } else {
            ready
        }
    }

    /// Puts on the bus, in time order, every frame that can start by `now`: the filler node's
    /// and the one waiting in the transmit slot (refilled from the queue as it empties). When
    /// both are ready at once, the lower identifier wins arbitration.
    fn run_bus(&mut self, now: Instant, slot: &mut Slot, rx: &mut mpsc::Receiver<Outgoing>) {
        loop {
            if slot.waiting.is_none() && slot.rx_open {
                match rx.try_recv() {
                    // Queued at some point since the slot freed up and we last listened.
                    Ok(out) => slot.waiting = Some((out, slot.freed_at.max(slot.heard_at))),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => slot.rx_open = false,
                }
            }
            let filler = self
                .next_filler
                .filter(|_| slot.rx_open)
                .map(|t| (self.start_time(t), arbitration_key(self.opts.filler_id)));
            let real = slot
                .waiting
                .as_ref()
                .map(|(out, ready)| (self.start_time(*ready), arbitration_key(out.frame.id())));
            let real_first = match (real, filler) {
                (Some(r), Some(f)) => r <= f,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return,
            };
            if real_first {
                let Some((start, _)) = real.filter(|(start, _)| *start <= now) else {
                    return;
                };
                let Some((out, _)) = slot.waiting.take() else {
                    return;
                };
                slot.freed_at = start;
                self.transmit(out.frame, Some(out.origin), start);
            } else {
                let Some(t) = self
                    .next_filler
                    .filter(|_| filler.is_some_and(|(s, _)| s <= now))
                else {
                    return;
                };
                if let Some(frame) = filler_frame(self.opts.filler_id, self.filler_count) {
                    self.filler_count += 1;
                    self.stats().filler += 1;
                    self.transmit(frame, None, t);
                }
                self.next_filler = Some(t + self.filler_interval);
            }
        }
    }

    async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) {
        let now = Instant::now();
        let mut slot = Slot {
            waiting: None,
            rx_open: true,
            freed_at: now,
            heard_at: now,
        };
        loop {
            let now = Instant::now();
            self.run_bus(now, &mut slot, &mut rx);
            self.deliver_due(now);
            if !slot.rx_open
                && slot.waiting.is_none()
                && self.queue.is_empty()
                && self.held.is_none()
            {
                break;
            }
            let listening = slot.rx_open && slot.waiting.is_none();
            let wake = [
                self.queue.peek().map(|p| p.at),
                self.held.as_ref().map(|(_, deadline)| *deadline),
                self.next_filler
                    .filter(|_| slot.rx_open)
                    .map(|t| self.start_time(t)),
                slot.waiting
                    .as_ref()
                    .map(|(_, ready)| self.start_time(*ready)),
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                out = rx.recv(), if listening => match out {
                    Some(out) => slot.waiting = Some((out, Instant::now())),
                    None => slot.rx_open = false,
                },
                () = sleep_until_opt(wake), if wake.is_some() => {}
                else => break,
            }
            if listening {
                slot.heard_at = Instant::now();
            }
        }
        self.hub.close();
    }
}

/// The bus's transmit slot: one frame taken from the send queue, waiting for the bus. While it
/// is full the queue is not read, so senders feel the bus's pace.
#[derive(Debug)]
struct Slot {
    waiting: Option<(Outgoing, Instant)>,
    rx_open: bool,
    /// When the last frame left the slot.
    freed_at: Instant,
    /// When the driver last stopped waiting on the queue (frames found after that were queued
    /// no earlier).
    heard_at: Instant,
}

/// Lower wins arbitration: the 11 base bits first, then a standard frame beats an extended
/// one with the same base (its RTR/IDE bits are dominant where the extended frame's SRR/IDE
/// are recessive), then the 18 extension bits.
fn arbitration_key(id: CanId) -> u32 {
    match id {
        CanId::Standard(id) => u32::from(id) << 19,
        CanId::Extended(id) => ((id >> 18) << 19) | 1 << 18 | (id & 0x3_FFFF),
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}

/// An 8-byte filler frame carrying a counter (eight bytes always fit a classic frame).
fn filler_frame(id: CanId, n: u64) -> Option<CanFrame> {
    CanFrame::new(id, &n.to_be_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use telltale_obd::{CanFrame, CanId};

    use super::*;
    use crate::bus::{BusError, Filter, SUBSCRIPTION_CAPACITY};

    fn frame(id: u16, data: &[u8]) -> CanFrame {
        CanFrame::new(CanId::Standard(id), data).unwrap()
    }

    #[tokio::test]
    async fn frames_reach_every_other_node_through_filters() {
        let bus = VirtualBus::new("t");
        let (a, b, c) = (bus.node(), bus.node(), bus.node());
        let mut a_rx = a.subscribe(&[Filter::all(false)]);
        let mut b_rx = b.subscribe(&[Filter::exact(CanId::Standard(0x7E8))]);
        let mut c_rx = c.subscribe(&[Filter::all(true)]);
        a.send(frame(0x7E8, &[1])).await.unwrap();
        a.send(frame(0x7E9, &[2])).await.unwrap();
        b.send(frame(0x7DF, &[3])).await.unwrap();
        assert_eq!(b_rx.recv().await, Ok(frame(0x7E8, &[1])));
        // a does not hear its own frames, only b's.
        assert_eq!(a_rx.recv().await, Ok(frame(0x7DF, &[3])));
        // c listens to 29-bit ids only.
        assert!(
            tokio::time::timeout(Duration::from_millis(50), c_rx.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn a_slow_subscriber_is_told_what_it_missed() {
        let bus = VirtualBus::new("overrun");
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        let n = SUBSCRIPTION_CAPACITY + 10;
        for i in 0..n {
            tx.send(frame(0x100, &[(i % 256) as u8])).await.unwrap();
        }
        // Let the bus task deliver everything.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sub.recv().await, Err(BusError::Overrun { dropped: 10 }));
        assert_eq!(sub.recv().await, Ok(frame(0x100, &[0])));
    }

    #[tokio::test]
    async fn named_buses_are_shared() {
        let a = VirtualBus::named("garage").node();
        let b = VirtualBus::named("garage").node();
        let mut rx = b.subscribe(&[Filter::all(false)]);
        a.send(frame(0x7DF, &[2, 1, 0])).await.unwrap();
        assert_eq!(rx.recv().await, Ok(frame(0x7DF, &[2, 1, 0])));
    }

    fn data_frame(i: u16) -> CanFrame {
        frame(0x7E0, &i.to_be_bytes())
    }

    fn index(f: &CanFrame) -> u16 {
        u16::from_be_bytes([f.data()[0], f.data()[1]])
    }

    #[test]
    fn frame_bits_are_the_worst_case_of_a_classic_frame() {
        assert_eq!(frame_bits(&frame(0x7E8, &[0; 8])), 135);
        assert_eq!(frame_bits(&frame(0x7E8, &[])), 47 + 8);
        let ext = CanFrame::new(CanId::Extended(0x18DA_F110), &[0; 8]).unwrap();
        assert_eq!(frame_bits(&ext), 160);
        assert_eq!(
            frame_time(&frame(0x7E8, &[0; 8]), 500_000),
            Duration::from_micros(270)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn latency_delays_every_frame() {
        let bus = VirtualBus::with_options(
            "latency",
            BusOptions {
                latency: Duration::from_millis(7),
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        let start = tokio::time::Instant::now();
        tx.send(data_frame(1)).await.unwrap();
        assert_eq!(sub.recv().await, Ok(data_frame(1)));
        assert_eq!(start.elapsed(), Duration::from_millis(7));
    }

    #[tokio::test(start_paused = true)]
    async fn jitter_spreads_delays_but_keeps_order() {
        let bus = VirtualBus::with_options(
            "jitter",
            BusOptions {
                latency: Duration::from_millis(2),
                jitter: Duration::from_millis(3),
                seed: 42,
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        let start = tokio::time::Instant::now();
        let sender = tokio::spawn(async move {
            for i in 0..50u16 {
                tx.send(data_frame(i)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let mut delays = Vec::new();
        for i in 0..50u16 {
            let f = sub.recv().await.unwrap();
            assert_eq!(index(&f), i, "jitter must not reorder");
            delays.push(start.elapsed() - Duration::from_millis(10) * u32::from(i));
        }
        sender.await.unwrap();
        // Timers have millisecond resolution: delivery lands on the next tick.
        assert!(delays.iter().all(|d| *d >= Duration::from_millis(2)));
        assert!(delays.iter().all(|d| *d <= Duration::from_millis(6)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() >= 3,
            "jitter should vary the delay: {delays:?}"
        );
    }

    async fn survivors(seed: u64) -> (Vec<u16>, BusStats) {
        let bus = VirtualBus::with_options(
            "loss",
            BusOptions {
                loss: 0.25,
                seed,
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        for i in 0..1000u16 {
            tx.send(data_frame(i)).await.unwrap();
        }
        let mut got = Vec::new();
        while let Ok(Ok(f)) = tokio::time::timeout(Duration::from_millis(100), sub.recv()).await {
            got.push(index(&f));
        }
        (got, bus.stats())
    }

    #[tokio::test(start_paused = true)]
    async fn loss_is_random_but_reproducible_under_a_seed() {
        let (a, stats) = survivors(7).await;
        let (b, _) = survivors(7).await;
        let (c, _) = survivors(8).await;
        assert!((680..=820).contains(&a.len()), "kept {} of 1000", a.len());
        assert_eq!(stats.lost as usize, 1000 - a.len());
        assert_eq!(stats.frames, 1000);
        assert_eq!(a, b, "same seed, same losses");
        assert_ne!(a, c, "another seed, other losses");
        assert!(a.windows(2).all(|w| w[0] < w[1]), "loss alone keeps order");
    }

    #[tokio::test(start_paused = true)]
    async fn reordering_lets_the_next_frame_overtake() {
        let bus = VirtualBus::with_options(
            "reorder",
            BusOptions {
                reorder: 1.0,
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        for i in 0..5u16 {
            tx.send(data_frame(i)).await.unwrap();
        }
        let start = tokio::time::Instant::now();
        let mut got = Vec::new();
        for _ in 0..5 {
            got.push(index(&sub.recv().await.unwrap()));
        }
        assert_eq!(got, [1, 0, 3, 2, 4]);
        // The last one had no successor: it waited the maximum hold.
        assert!(start.elapsed() >= REORDER_MAX_HOLD);
        assert_eq!(bus.stats().reordered, 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_bitrate_paces_a_burst() {
        let bus = VirtualBus::with_options(
            "paced",
            BusOptions {
                bitrate: Some(500_000),
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut sub = rx.subscribe(&[Filter::all(false)]);
        let start = tokio::time::Instant::now();
        for i in 0..100u16 {
            tx.send(frame(0x7E0, &[i as u8; 8])).await.unwrap();
        }
        for _ in 0..100 {
            sub.recv().await.unwrap();
        }
        // 100 frames of 135 bits at 500 kbit/s: 27 ms (timers tick in whole milliseconds).
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(27) && elapsed <= Duration::from_millis(28),
            "{elapsed:?}"
        );
        assert_eq!(bus.stats().busy, Duration::from_millis(27));
    }

    #[tokio::test(start_paused = true)]
    async fn background_load_fills_its_share_of_the_bus_and_delays_traffic() {
        let bus = VirtualBus::with_options(
            "load",
            BusOptions {
                bitrate: Some(500_000),
                load_percent: 60.0,
                ..BusOptions::default()
            },
        );
        let (tx, rx) = (bus.node(), bus.node());
        let mut fillers = rx.subscribe(&[Filter::exact(CanId::Standard(0x3FF))]);
        let mut diag = rx.subscribe(&[Filter::exact(CanId::Standard(0x7E0))]);
        let start = tokio::time::Instant::now();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(1) {
            fillers.recv().await.unwrap();
            n += 1;
        }
        // 270 us per filler frame every 450 us: 2222 frames per second.
        assert!((2215..=2225).contains(&n), "{n} filler frames in 1 s");
        let stats = bus.stats();
        let share = stats.busy.as_secs_f64() / start.elapsed().as_secs_f64();
        assert!((0.59..0.61).contains(&share), "bus busy {share}");

        // A burst of 50 diagnostic frames now shares the bus: 50 * 270 us = 13.5 ms alone,
        // about 2.5 times that with 60 % of the bus taken.
        let t0 = tokio::time::Instant::now();
        for i in 0..50u16 {
            tx.send(frame(0x7E0, &[i as u8; 8])).await.unwrap();
        }
        for _ in 0..50 {
            diag.recv().await.unwrap();
        }
        let took = t0.elapsed();
        eprintln!("50-frame burst with 60 % background load: {took:?} (13.5 ms on an idle bus)");
        assert!(
            took >= Duration::from_millis(30) && took <= Duration::from_millis(40),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn the_bus_task_ends_when_every_handle_is_gone() {
        let bus = VirtualBus::with_options(
            "ends",
            BusOptions {
                load_percent: 10.0,
                ..BusOptions::default()
            },
        );
        let node = bus.node();
        let mut sub = node.subscribe(&[Filter::all(false)]);
        drop(bus);
        drop(node);
        let end = tokio::time::timeout(Duration::from_secs(1), async {
            loop {
                if sub.recv().await == Err(BusError::Closed) {
                    break;
                }
            }
        })
        .await;
        assert!(
            end.is_ok(),
            "the bus should close once every handle is dropped"
        );
    }
}
