//! # telltale-obd: the diagnostic protocols, without I/O
//!
//! Everything Telltale knows about talking to a car's diagnostic system, as pure functions and
//! state machines: bytes and the caller's `now` go in; decoded values, frames to send and the
//! next deadline come out. No sockets, no async runtime, no clock reads, no panics on any
//! input. The async transports (`telltale-can`), the agent, the simulator and the CLI all drive
//! this crate, so every byte Telltale sends or reads is decoded here, in one place.
//!
//! | layer | standard | module |
//! |---|---|---|
//! | CAN frames and identifiers | ISO 11898-1 | [`frame`] |
//! | which ECU answered, on CAN or an older bus | ISO 15765-4, SAE J1979 | [`ecu`] |
//! | the older buses: headers, check bytes, answers in several messages | SAE J1850, ISO 9141-2, ISO 14230-4, SAE J1979 | [`legacy`] |
//! | transport: segmentation, flow control, timeouts | ISO 15765-2 (ISO-TP) | [`isotp`] |
//! | OBD-II services 01–0A | SAE J1979 / ISO 15031-5 | [`service`] |
//! | Mode 01/02 parameter IDs and their formulas | SAE J1979 Annex B | [`pid`] |
//! | trouble codes: 2-byte form and text | SAE J2012 / ISO 15031-6 | [`dtc`] |
//! | UDS ReadDTCInformation (0x19), ClearDiagnosticInformation (0x14) | ISO 14229-1 | [`uds`] |
//! | negative response codes | ISO 14229-1 Annex A | [`nrc`] |
//! | vehicle identification number | ISO 3779, 49 CFR 565 | [`vin`] |
//! | ELM327 adapter replies | ELM327 data sheet | [`elm327`] |
//! | CAN log files | `candump -L` (can-utils) | [`candump`] |
//! | a recorded bus as requests and responses | all of the above | [`trace`] |
//!
//! What this crate does not do: open interfaces, wait, retry, or decide policy (which PIDs to
//! poll, when). Those belong to the callers.

pub mod candump;
pub mod dtc;
pub mod ecu;
pub mod elm327;
pub mod frame;
pub mod isotp;
pub mod legacy;
pub mod nrc;
pub mod pid;
pub mod service;
pub mod trace;
pub mod uds;
pub mod vin;

pub use ecu::EcuId;
pub use frame::{CanFrame, CanId, FrameError};
