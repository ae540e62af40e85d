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
//! | [`spool`] | the durable store-and-forward queue on disk, bounded, with a drop policy; run on a thread of its own ([`spool::SpoolHandle`]) |
//! | [`uplink`] | the MQTT session: publishes from the spool, removes on PUBACK, receives commands; its bookkeeping a state machine without I/O |
//! | [`command`] | downlink commands: signature, expiry and replay checks, then execution |
//! | [`status`] | the local status endpoint (JSON and Prometheus text) |
//!
//! [`run()`] wires them together; `main` only parses flags, sets up logging and passes a
//! shutdown signal. The agent runs on one async thread, which times the CAN requests: nothing
//! that touches a file runs on it (the spool has its own thread, the replay guard's file is
//! written on the blocking pool), so a slow SD card never stalls sampling (tested with every
//! fsync made to take 200 ms, `tests/e2e/tests/slow_disk.rs`). What the agent does not do: decode protocols (that is `telltale-obd`),
//! drive CAN hardware (`telltale-can`), or decide what a fault means (the cloud's business).

pub mod command;
pub mod config;
mod run;
pub mod spool;
pub mod status;
pub mod uplink;
pub mod vehicle;

pub use run::run;
