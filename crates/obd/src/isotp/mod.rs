//! ISO-TP, the CAN transport protocol of ISO 15765-2, as OBD-II on CAN uses it (ISO 15765-4),
//! on classic CAN (8-byte frames) with normal and normal fixed addressing.
//!
//! A CAN frame carries 8 bytes; diagnostic messages are up to 4095. ISO-TP sends a message of
//! 1..=7 bytes as one single frame (SF). A longer one goes as a first frame (FF) announcing the
//! length, then consecutive frames (CF) numbered 1, 2, .. 15, 0, 1, ..; after the FF, and after
//! every `BS` CFs, the sender waits for the receiver's flow control (FC), which also sets the
//! minimum gap STmin between CFs. [`pci`] has the byte layouts.
//!
//! Timers (ISO 15765-2 table 16, values from ISO 15765-4): the sender waits at most N_Bs
//! (1000 ms) for an FC, the receiver at most N_Cr (1000 ms) for the next CF. N_As/N_Ar
//! (frame transmission on the bus) belong to the CAN driver, not here.
//!
//! Everything here is sans-IO: `Sender` and `Receiver` take frame bytes and the caller's
//! `now`, return frame bytes to send and the next instant they need to be called back.
//! `Reassembler` keys receivers by CAN id for many ECUs answering one functional request or
//! for a passively recorded bus; `reassemble` rebuilds one message from a finished list of
//! frames. `addressing` knows the OBD identifiers.

pub mod pci;

use std::fmt;

use serde::Serialize;

pub use pci::{FlowStatus, Pci, StMin};

/// The four ISO-TP frame types, for error messages and trace output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    Single,
    First,
    Consecutive,
    FlowControl,
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Single => "single frame",
            FrameKind::First => "first frame",
            FrameKind::Consecutive => "consecutive frame",
            FrameKind::FlowControl => "flow control",
        })
    }
}

/// The ISO 15765-2 timers this crate enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Timer {
    /// Sender waiting for a flow control frame.
    NBs,
    /// Receiver waiting for the next consecutive frame.
    NCr,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timer::NBs => "N_Bs (waiting for flow control)",
            Timer::NCr => "N_Cr (waiting for consecutive frame)",
        })
    }
}

/// Everything that can go wrong decoding ISO-TP frames or running a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoTpError {
    #[error("empty frame: no protocol control information")]
    EmptyFrame,
    #[error("{kind} too short: needs {needed} bytes, got {got}")]
    FrameTooShort {
        kind: FrameKind,
        needed: usize,
        got: usize,
    },
    #[error("unknown PCI type {:X} in first byte 0x{byte:02X} (only 0..=3 exist)", byte >> 4)]
    UnknownPciType { byte: u8 },
    #[error("single frame with SF_DL 0: the CAN FD escape, unsupported on classic CAN")]
    SingleFrameEscape,
    #[error("single frame length {len} outside 1..=7")]
    SingleFrameLength { len: usize },
    #[error("first frame with FF_DL 0: the escape for messages over 4095 bytes, unsupported")]
    FirstFrameEscape,
    #[error("first frame length {len} outside 8..=4095 (shorter messages go in a single frame)")]
    FirstFrameLength { len: usize },
    #[error("sequence number {0} outside 0..=15")]
    SequenceNumberOutOfRange(u8),
    #[error("flow control with reserved flow status {0} (only 0, 1, 2 exist)")]
    InvalidFlowStatus(u8),
    #[error("cannot send an empty message")]
    EmptyPayload,
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLong { len: usize, max: usize },
    #[error("consecutive frame out of sequence: expected SN {expected}, got {got}")]
    WrongSequence { expected: u8, got: u8 },
    #[error("unexpected {got} {during}")]
    UnexpectedFrame {
        got: FrameKind,
        during: &'static str,
    },
    #[error("receiver answered overflow: the message is too long for its buffer")]
    PeerOverflow,
    #[error("first frame announces {len} bytes, more than our maximum of {max}")]
    ReceiveOverflow { len: usize, max: usize },
    #[error("receiver sent more than {max} wait flow controls in a row (N_WFTmax)")]
    TooManyWaits { max: u8 },
    #[error("{timer} timed out after {} ms", after.as_millis())]
    Timeout {
        timer: Timer,
        after: std::time::Duration,
    },
    #[error("more than {max} transfers in progress at once")]
    TooManySources { max: usize },
    #[error("frames end after {got} of {expected} bytes")]
    Incomplete { got: usize, expected: usize },
    #[error("{extra} frame(s) left over after the message was complete")]
    TrailingFrames { extra: usize },
    #[error("no frames")]
    NoFrames,
}
