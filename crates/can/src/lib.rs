//! # telltale-can: talking to a vehicle
//!
//! The async half of Telltale's vehicle side. `telltale-obd` knows what the bytes mean; this
//! crate moves them: CAN links, an ISO-TP endpoint that drives the sans-IO state machines with
//! tokio timers, and one diagnostic client API over every kind of link.
//!
//! - [`bus`]: the one interface every CAN link offers ([`bus::CanBus`]: send a frame, subscribe
//!   through ID filters, errors surfaced), and [`virtual_bus`], an in-process bus for tests,
//!   the simulator and the demo.
//!
//! Each link is driven by one task that owns the socket or port; handles talk to it through
//! bounded channels, so a slow reader loses frames (and is told how many) instead of growing a
//! buffer without bound.

pub mod bus;
pub mod isotp;
pub mod virtual_bus;

pub use bus::{BusError, CanBus, Filter, Subscription};
