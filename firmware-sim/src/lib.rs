//! # firmware-sim: simulated vehicles to talk to
//!
//! A [`Vehicle`] is a handful of ECUs (engine 0x7E0/0x7E8, transmission 0x7E1/0x7E9, and a
//! hybrid/battery controller on 29-bit ids 0x18DA17F1/0x18DAF117) over one deterministic
//! physical model driven through a looping drive cycle, with faults scripted over time by a
//! [`Scenario`] (TOML, see `scenarios/`). The vehicle is pure: it is told the time
//! ([`Vehicle::advance_to`]) and handed request payloads ([`Vehicle::handle`]); it answers
//! with payloads and the delay after which each should go out. No tokio, no clock reads.
//!
//! The serving layers put a vehicle on a link: [`serve::serve_can`] on any
//! [`telltale_can::CanBus`] (SocketCAN, the in-process bus), with one ISO-TP endpoint per
//! ECU; the ELM327 emulation (`elm327`, pty and TCP) speaks to the same `Vehicle`, as a CAN
//! car or as one on an older bus (SAE J1850, ISO 9141-2, ISO 14230-4).
//!
//! What this crate does not do: decide what a client asks, or model a real car beyond what
//! an OBD-II tester can observe.

pub mod ecu;
pub mod elm327;
pub mod faults;
pub mod fleet;
pub mod model;
pub mod pty;
pub mod scenario;
pub mod serve;
pub mod vehicle;

pub use scenario::{Scenario, ScenarioError, load_scenario, scenarios};
pub use vehicle::{EcuInfo, Reply, Vehicle};
