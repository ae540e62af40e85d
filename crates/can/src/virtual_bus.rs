//! An in-process CAN bus: many nodes, every frame broadcast to all the others, as on a real
//! bus. Used by tests, by the simulator and by the one-command demo (`sim:NAME` links).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use tokio::sync::mpsc;

use crate::bus::{CanBus, Hub, Outgoing, SEND_CAPACITY};

/// An in-process bus. Cloning gives another handle to the same bus.
#[derive(Debug, Clone)]
pub struct VirtualBus {
    name: Arc<str>,
    tx: mpsc::Sender<Outgoing>,
    hub: Arc<Hub>,
}

impl VirtualBus {
    /// A new, empty bus. Must be called within a tokio runtime: the bus is a task.
    pub fn new(name: &str) -> VirtualBus {
        let (tx, mut rx) = mpsc::channel::<Outgoing>(SEND_CAPACITY);
        let hub = Arc::new(Hub::default());
        let driver_hub = hub.clone();
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                driver_hub.deliver(out.frame, Some(out.origin));
            }
            driver_hub.close();
        });
        VirtualBus {
            name: name.into(),
            tx,
            hub,
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
}
