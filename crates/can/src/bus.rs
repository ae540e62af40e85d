//! The one interface every CAN link offers.
//!
//! A [`CanBus`] is a cheap, cloneable handle to a link driven by one background task (the
//! *driver*: it owns the SocketCAN socket, the serial port, or the in-process bus). Handles
//! [`send`](CanBus::send) frames into a bounded queue the driver drains, and
//! [`subscribe`](CanBus::subscribe) with ID filters to receive what the link hears. A link
//! never echoes a frame back to the handle that sent it (as SocketCAN's default, and a real
//! controller, behave); other subscribers on the same link do see it.
//!
//! Back-pressure: `send` waits when the driver's queue is full. Receiving never blocks the
//! driver: each subscription has a bounded queue, and when it is full further frames for it are
//! dropped and counted; the subscriber's next `recv` returns [`BusError::Overrun`] with the
//! count, then carries on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use telltale_obd::{CanFrame, CanId};
use tokio::sync::mpsc;

/// Frames a subscription buffers before it starts dropping.
pub const SUBSCRIPTION_CAPACITY: usize = 1024;
/// Frames a link's send queue holds before `send` waits.
pub const SEND_CAPACITY: usize = 256;

/// What a subscription or a send can report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    #[error("the CAN link is closed")]
    Closed,
    #[error("receiver fell behind: {dropped} frames dropped")]
    Overrun { dropped: u64 },
    /// The controller or adapter reported a bus problem (SocketCAN error frame, SLCAN status).
    #[error("bus fault: {0}")]
    Fault(String),
    #[error("link I/O error: {0}")]
    Io(String),
}

/// Accepts a frame when `id & mask == want & mask` and the id format matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Filter {
    pub id: u32,
    pub mask: u32,
    pub extended: bool,
}

impl Filter {
    /// Exactly one identifier.
    pub fn exact(id: CanId) -> Filter {
        let mask = if id.is_extended() { 0x1FFF_FFFF } else { 0x7FF };
        Filter {
            id: id.raw(),
            mask,
            extended: id.is_extended(),
        }
    }

    /// Every identifier of one format.
    pub fn all(extended: bool) -> Filter {
        Filter {
            id: 0,
            mask: 0,
            extended,
        }
    }

    pub fn matches(&self, id: CanId) -> bool {
        id.is_extended() == self.extended && id.raw() & self.mask == self.id & self.mask
    }
}

/// Frames (and faults) a link heard, delivered to matching subscribers. Shared between a link's
/// driver and its handles.
#[derive(Debug, Default)]
pub struct Hub {
    subscribers: Mutex<Vec<Subscriber>>,
}

#[derive(Debug)]
struct Subscriber {
    /// The handle that created the subscription, so its own frames are not echoed to it.
    origin: u64,
    filters: Vec<Filter>,
    tx: mpsc::Sender<CanFrame>,
    faults: mpsc::Sender<BusError>,
    dropped: Arc<AtomicU64>,
}

impl Hub {
    /// Delivers a frame heard on the link to every matching subscriber except those of the
    /// handle `from` (the sender, when the frame came from this same link).
    pub fn deliver(&self, frame: CanFrame, from: Option<u64>) {
        let mut subs = self.lock();
        subs.retain(|s| !s.tx.is_closed());
        for s in subs.iter() {
            if Some(s.origin) == from || !s.filters.iter().any(|f| f.matches(frame.id())) {
                continue;
            }
            if s.tx.try_send(frame).is_err() {
                s.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Reports a link fault to every subscriber (lossy, like frames).
    pub fn fault(&self, err: BusError) {
        for s in self.lock().iter() {
            let _ = s.faults.try_send(err.clone());
        }
    }

    /// For a driver whose link has gone: ends every subscription (`recv` returns `Closed`).
    pub fn close(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Subscriber>> {
        // A panic while holding this lock cannot leave the list inconsistent; keep going.
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A frame queued for a link's driver, with the handle that sent it.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing {
    pub frame: CanFrame,
    pub origin: u64,
}

static NEXT_HANDLE: AtomicU64 = AtomicU64::new(1);

/// A handle to one CAN link. Clones share the link but are distinct senders: a clone does
/// receive what another clone sent, as two nodes on one bus would.
#[derive(Debug)]
pub struct CanBus {
    id: u64,
    tx: mpsc::Sender<Outgoing>,
    hub: Arc<Hub>,
    name: Arc<str>,
}

impl Clone for CanBus {
    fn clone(&self) -> Self {
        CanBus {
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            tx: self.tx.clone(),
            hub: self.hub.clone(),
            name: self.name.clone(),
        }
    }
}

impl CanBus {
    /// For link drivers: a handle that queues frames on `tx` and receives through `hub`.
    pub fn from_parts(name: &str, tx: mpsc::Sender<Outgoing>, hub: Arc<Hub>) -> CanBus {
        CanBus {
            id: NEXT_HANDLE.fetch_add(1, Ordering::Relaxed),
            tx,
            hub,
            name: name.into(),
        }
    }

    /// The link's name as the user gave it (`vcan0`, `sim:garage`, ...), for logs.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Queues a frame for the link; waits while the link's queue is full.
    pub async fn send(&self, frame: CanFrame) -> Result<(), BusError> {
        self.tx
            .send(Outgoing {
                frame,
                origin: self.id,
            })
            .await
            .map_err(|_| BusError::Closed)
    }

    /// Starts receiving frames that match any of `filters` (and every fault).
    pub fn subscribe(&self, filters: &[Filter]) -> Subscription {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        let (faults_tx, faults) = mpsc::channel(16);
        let dropped = Arc::new(AtomicU64::new(0));
        self.hub.lock().push(Subscriber {
            origin: self.id,
            filters: filters.to_vec(),
            tx,
            faults: faults_tx,
            dropped: dropped.clone(),
        });
        Subscription {
            rx,
            faults,
            dropped,
            hub: Arc::downgrade(&self.hub),
        }
    }
}

/// Frames matching a subscription's filters, in arrival order.
#[derive(Debug)]
pub struct Subscription {
    rx: mpsc::Receiver<CanFrame>,
    faults: mpsc::Receiver<BusError>,
    dropped: Arc<AtomicU64>,
    hub: Weak<Hub>,
}

impl Subscription {
    /// The next frame; `Err(Overrun)` once after frames were dropped, `Err(Fault)` when the
    /// link reports one, `Err(Closed)` when the link is gone.
    pub async fn recv(&mut self) -> Result<CanFrame, BusError> {
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Err(BusError::Overrun { dropped });
        }
        tokio::select! {
            biased;
            Some(fault) = self.faults.recv() => Err(fault),
            frame = self.rx.recv() => frame.ok_or(BusError::Closed),
        }
    }

    /// Whether the link behind this subscription still exists.
    pub fn is_open(&self) -> bool {
        self.hub.strong_count() > 0
    }
}
