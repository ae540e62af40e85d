//! # firmware-sim: simulated vehicles to talk to (temporary skeleton of the elmsim branch;
//! the sim branch's lib.rs replaces it at merge).

pub mod elm327;
pub mod pty;
pub mod vehicle;

pub use vehicle::{EcuInfo, Reply, Vehicle};
