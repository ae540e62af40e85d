//! # telltale-agent: the program in the car
//!
//! Reads a vehicle over any link of the diagnostic client (SocketCAN, SLCAN, ELM327, the
//! simulator's in-process bus) and publishes what it finds over MQTT, keeping every message
//! in an on-disk spool until the broker has acknowledged it.
//!
//! | module | what it does |
//! |---|---|
//! | [`config`] | the effective configuration: TOML file, environment, flags; validated at start |
//! | [`vehicle`] | discovery, the sampling scheduler and the DTC monitor: the only owner of the link |
//! | [`spool`] | the durable store-and-forward queue on disk, bounded, with a drop policy |
//! | [`uplink`] | the MQTT session: publishes from the spool, removes on PUBACK, receives commands |
//! | [`command`] | downlink commands: signature, expiry and replay checks, then execution |
//! | [`status`] | the local status endpoint (JSON and Prometheus text) |
//!
//! [`run()`] wires them together; `main` only parses flags, sets up logging and passes a
//! shutdown signal. What the agent does not do: decode protocols (that is `telltale-obd`),
//! drive CAN hardware (`telltale-can`), or decide what a fault means (the cloud's business).

pub mod command;
pub mod config;
mod run;
pub mod spool;
pub mod status;
pub mod uplink;
pub mod vehicle;

pub use run::run;
