//! The diagnostic client: one API to ask a vehicle's ECUs for OBD-II and UDS services, over
//! whichever link the hardware offers.
//!
//! - On a CAN bus ([`can`]) the client speaks ISO-TP itself: functional requests go to `7DF`
//!   (`18DB33F1` on 29-bit) and every ECU that answers within P2 is collected, each one's
//!   multi-frame answer reassembled (flow control sent to that ECU's physical request id);
//!   an ECU that answers NRC 0x78 (response pending) gets P2* for its final answer.
//! - Through an ELM327 adapter ([`crate::elm327`]) the adapter does ISO-TP and the client
//!   speaks its AT dialogue.
//!
//! [`DiagClient`] dispatches to one or the other (an enum, no trait objects) and adds the
//! everyday helpers (VIN, PIDs with batching, DTCs, freeze frames, discovery) in `helpers`.
//!
//! Negative responses are answers ([`Response::Negative`]), not errors; transport failures and
//! undecodable answers are [`DiagError`]s naming the ECU. What this module does not do: decide
//! what to poll and when (the agent's business), or keep sessions alive (no UDS 0x3E).

pub mod can;
mod helpers;

use std::fmt;
use std::time::Duration;

use telltale_obd::elm327::Condition;
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::service::{Request, Response, ServiceError};
use telltale_obd::{CanId, isotp};

use crate::bus::BusError;
use crate::elm327::Elm327Client;
use crate::isotp::IsoTpTransferError;

pub use helpers::{DtcKind, EcuInfo};

/// Whom a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every emissions-related ECU (`7DF` / `18DB33F1`).
    Functional,
    /// One ECU.
    Physical(Channel),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Functional => f.write_str("any ECU (functional request)"),
            Target::Physical(ch) => write!(f, "ECU {}", ch.response),
        }
    }
}

/// One ECU's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EcuResponse {
    /// The id the ECU answered on (`7E8`, `18DAF110`).
    pub ecu: CanId,
    pub response: Response,
}

/// Why a request produced no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagError {
    /// Nothing answered in time. On a car, usually: ignition off, wrong link, wrong bitrate.
    #[error("no answer from {target} within {} ms", after.as_millis())]
    NoResponse { target: Target, after: Duration },
    #[error("ECU {ecu} said \"response pending\" (NRC 0x78) but sent no answer within {} ms", after.as_millis())]
    PendingTimeout { ecu: CanId, after: Duration },
    #[error("ECU {ecu}: transport failed: {error}")]
    Transport {
        ecu: CanId,
        error: IsoTpTransferError,
    },
    #[error("ECU {ecu}: undecodable answer {}: {error}", hex(payload))]
    Decode {
        ecu: CanId,
        payload: Vec<u8>,
        error: ServiceError,
    },
    #[error("ECU {ecu} answered service 0x{got:02X} to a request for service 0x{expected:02X}")]
    WrongService { ecu: CanId, expected: u8, got: u8 },
    #[error("cannot send this request: {0}")]
    BadRequest(String),
    #[error("CAN link: {0}")]
    Link(BusError),
    /// The ELM327 adapter failed, even after a re-initialisation and one retry.
    #[error("ELM327 adapter: {0}")]
    Adapter(String),
    /// The ELM327 adapter reported a condition (`UNABLE TO CONNECT`, `CAN ERROR`, ...).
    #[error("ELM327 adapter reported {0}")]
    AdapterCondition(Condition),
    /// A helper got a negative answer where it needs data ([`DiagClient::request`] itself
    /// returns negative answers as [`Response::Negative`]).
    #[error("ECU {ecu} refused: {response}")]
    Rejected {
        ecu: CanId,
        response: telltale_obd::nrc::NegativeResponse,
    },
    #[error("{what} is not supported by any ECU that answered")]
    NotSupported { what: &'static str },
    #[error("the diagnostic client has shut down")]
    Closed,
}

impl DiagError {
    /// True when nothing on the vehicle side answered at all: the hint for the user is
    /// "is the ignition on?".
    pub fn is_silence(&self) -> bool {
        matches!(
            self,
            DiagError::NoResponse { .. } | DiagError::AdapterCondition(Condition::UnableToConnect)
        )
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Timing, addressing and flow-control settings of a client.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// P2 (ISO 15765-4 P2CAN): how long to wait for the start of an answer. 50 ms.
    pub p2: Duration,
    /// P2*: how long to wait after an ECU answered NRC 0x78. 5000 ms.
    pub p2_star: Duration,
    /// Use 29-bit identifiers for functional requests (`18DB33F1`) and response filters.
    pub extended_ids: bool,
    /// At most this many requests in flight on one link (and always at most one per ECU).
    pub max_in_flight: usize,
    /// ISO-TP parameters (padding, BS/STmin we announce, N_Bs/N_Cr).
    pub isotp: isotp::Config,
    /// ELM327 settings; ignored on CAN links.
    pub elm327: Elm327Options,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            p2: Duration::from_millis(50),
            p2_star: Duration::from_millis(5000),
            extended_ids: false,
            max_in_flight: 4,
            isotp: isotp::Config::default(),
            elm327: Elm327Options::default(),
        }
    }
}

/// How to talk to an ELM327 adapter.
#[derive(Debug, Clone)]
pub struct Elm327Options {
    /// `ATSP` argument: `0` automatic search (default), `6` ISO 15765-4 11-bit 500 kbit/s,
    /// `7` 29-bit 500 kbit/s, `8`/`9` the 250 kbit/s variants.
    pub protocol: String,
    /// How long one OBD command may take (the first one includes the protocol search, which
    /// takes seconds on a real car).
    pub command_timeout: Duration,
    /// How long `ATZ` may take (the adapter reboots: about a second).
    pub reset_timeout: Duration,
}

impl Default for Elm327Options {
    fn default() -> Self {
        Elm327Options {
            protocol: "0".to_owned(),
            command_timeout: Duration::from_secs(10),
            reset_timeout: Duration::from_secs(5),
        }
    }
}

/// A handle to a diagnostic link. Cheap to clone; clones share the link and its limits.
#[derive(Debug, Clone)]
pub enum DiagClient {
    /// A CAN bus: ISO-TP done here.
    Can(can::CanClient),
    /// An ELM327 adapter: ISO-TP done by the adapter.
    Elm327(Elm327Client),
}

impl DiagClient {
    /// Sends `req` to `target` and returns every answer: one for a physical request, one per
    /// responding ECU for a functional one (sorted by ECU id).
    ///
    /// A functional request succeeds when at least one ECU answered usably; the failures of
    /// the others are logged. It fails with the first failure when every answer failed, and
    /// with [`DiagError::NoResponse`] when nothing answered.
    pub async fn request(
        &self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        match self {
            DiagClient::Can(c) => c.request(target, req).await,
            DiagClient::Elm327(c) => c.request(target, req).await,
        }
    }

    /// Whether the link uses 29-bit identifiers (CAN: as configured; ELM327: as the adapter
    /// detected with `ATDPN`).
    pub fn uses_extended_ids(&self) -> bool {
        match self {
            DiagClient::Can(c) => c.options().extended_ids,
            DiagClient::Elm327(c) => c.uses_extended_ids(),
        }
    }
}

/// Builds the result of a functional request from the answers and failures collected.
pub(crate) fn functional_outcome(
    mut answers: Vec<EcuResponse>,
    failures: Vec<DiagError>,
    target: Target,
    after: Duration,
) -> Result<Vec<EcuResponse>, DiagError> {
    for f in &failures {
        tracing::warn!(cause = %f, "an ECU's answer to a functional request failed");
    }
    if answers.is_empty() {
        return Err(failures
            .into_iter()
            .next()
            .unwrap_or(DiagError::NoResponse { target, after }));
    }
    answers.sort_by_key(|a| a.ecu);
    Ok(answers)
}

/// Decodes one ECU's answer and checks it is for the service asked.
pub(crate) fn decode_answer(
    ecu: CanId,
    payload: &[u8],
    service: u8,
) -> Result<Response, DiagError> {
    let response = Response::parse(payload).map_err(|error| DiagError::Decode {
        ecu,
        payload: payload.to_vec(),
        error,
    })?;
    if response.service() != service {
        return Err(DiagError::WrongService {
            ecu,
            expected: service,
            got: response.service(),
        });
    }
    Ok(response)
}

/// NRC 0x78: the ECU will answer later.
pub(crate) fn is_pending(response: &Response) -> bool {
    matches!(response, Response::Negative(n) if n.nrc.is_response_pending())
}
