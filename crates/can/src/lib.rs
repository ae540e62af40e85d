//! # telltale-can: talking to a vehicle
//!
//! The async half of Telltale's vehicle side. `telltale-obd` knows what the bytes mean; this
//! crate moves them: CAN links, an ISO-TP endpoint that drives the sans-IO state machines with
//! tokio timers, and one diagnostic client API over every kind of link.
//!
//! - [`bus`]: the one interface every CAN link offers ([`bus::CanBus`]: send a frame, subscribe
//!   through ID filters, errors surfaced).
//! - [`virtual_bus`]: an in-process bus for tests, the simulator and the demo, optionally with
//!   latency, loss, reordering, a finite bitrate and background load.
//! - [`socketcan`]: Linux SocketCAN interfaces (`can0`, `vcan0`) with kernel filters and error
//!   frames reported as faults.
//! - [`slcan`]: Lawicel/SLCAN serial adapters (CANable, USBtin): the pure ASCII codec, the host
//!   driver over a serial port, and an emulated adapter for the simulator.
//! - [`isotp`]: an ISO-TP endpoint on any bus ([`isotp::IsoTpSocket`]).
//! - [`client`]: the diagnostic client ([`DiagClient`]): functional and physical requests with
//!   P2/P2* and bounded concurrency, over CAN or through an ELM327 adapter ([`elm327`]).
//! - [`link`]: picking a link with one setting (`socketcan:can0`, `slcan:/dev/ttyACM0`,
//!   `elm327:/dev/ttyUSB0@38400`, `elm327+tcp:HOST:PORT`, `sim:NAME`) and opening a client on it.
//! - [`error`]: [`LinkError`], why a link could not be opened or served.
//!
//! Each link is driven by one task that owns the socket or port; handles talk to it through
//! bounded channels, so a slow reader loses frames (and is told how many) instead of growing a
//! buffer without bound. A driver ends, and closes its port, when every handle is dropped.

pub mod bus;
pub mod client;
pub mod elm327;
pub mod error;
pub mod isotp;
pub mod link;
pub mod slcan;
pub mod socketcan;
pub mod virtual_bus;

pub use bus::{BusError, CanBus, Filter, Subscription};
pub use client::{ClientOptions, DiagClient, DiagError, EcuResponse, Target};
pub use error::LinkError;
pub use link::{LinkSpec, open};
pub use virtual_bus::{BusOptions, VirtualBus};
