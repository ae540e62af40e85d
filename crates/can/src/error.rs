//! Why a link could not be opened or stopped working, naming the interface or port and the
//! step that failed. Errors that happen while a link runs (bus faults, garbage from an adapter)
//! reach subscribers as [`BusError`](crate::bus::BusError) instead; this type is for the
//! caller that opens or serves a link.

use std::io;
use std::time::Duration;

/// Opening, configuring or serving a CAN link failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// `socket(PF_CAN)` or binding to the interface failed. `hint` says what usually causes it.
    #[error("cannot open SocketCAN interface {iface}: {source} ({hint})")]
    SocketCanOpen {
        iface: String,
        source: io::Error,
        hint: &'static str,
    },
    /// A socket option (filters, error mask) was refused.
    #[error("cannot set {what} on SocketCAN interface {iface}: {source}")]
    SocketCanConfig {
        iface: String,
        what: &'static str,
        source: io::Error,
    },
    /// The serial port could not be opened or configured.
    #[error("cannot open serial port {path} at {baud} baud: {reason}")]
    SerialOpen {
        path: String,
        baud: u32,
        reason: String,
    },
    /// Lawicel adapters only know a fixed set of bitrates (`S0`..`S8`).
    #[error(
        "SLCAN adapters have no setting for {0} bit/s (supported: 10000, 20000, 50000, 100000, \
         125000, 250000, 500000, 800000, 1000000)"
    )]
    UnsupportedBitrate(u32),
    /// The adapter did not answer a command of the init sequence in time.
    #[error(
        "SLCAN adapter on {path} did not answer {command:?} within {timeout:?} (wrong port or serial baud rate?)"
    )]
    AdapterTimeout {
        path: String,
        command: String,
        timeout: Duration,
    },
    /// The adapter answered a command of the init sequence with BEL (error).
    #[error("SLCAN adapter on {path} refused {command:?}")]
    AdapterRefused { path: String, command: String },
    /// [`socketcan::self_test`](crate::socketcan::self_test) saw the interface misbehave.
    #[error("SocketCAN self-test on {iface} failed: {what}")]
    SelfTest { iface: String, what: String },
    /// Reading or writing the link failed.
    #[error("I/O error on {link} while {doing}: {source}")]
    Io {
        link: String,
        doing: &'static str,
        source: io::Error,
    },
}
