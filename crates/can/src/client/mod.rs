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
//! undecodable answers are [`DiagError`]s naming the ECU. A multi-PID answer keeps every PID
//! that decodes ([`EcuResponse::damaged`] lists the rest). Every answer that could not be used
//! is counted by kind in the client's [`TroubleLog`] and logged once per kind ([`trouble`]).
//! What this module does not do: decide what to poll and when (the agent's business), or keep
//! sessions alive (no UDS 0x3E).

pub mod can;
mod helpers;
pub mod trouble;

use std::fmt;
use std::time::Duration;

use telltale_obd::elm327::{Bus, Condition, IdWidth};
use telltale_obd::isotp::addressing::Channel;
use telltale_obd::service::{DamagedPid, Request, Response, ServiceError};
use telltale_obd::{EcuId, isotp, pid};

use crate::bus::BusError;
use crate::elm327::Elm327Client;
use crate::isotp::IsoTpTransferError;

pub use helpers::{DtcKind, EcuInfo};
pub use trouble::{Trouble, TroubleLog};

/// Whom a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// Every emissions-related ECU (`7DF` / `18DB33F1` on CAN).
    Functional,
    /// One ECU on CAN, on its physical ids.
    Physical(Channel),
    /// One ECU on a non-CAN bus (SAE J1850, ISO 9141-2, ISO 14230-4), by source address. OBD
    /// requests on those buses are addressed to every ECU, so the request goes out functionally
    /// and only this ECU's answer is kept.
    Node(u8),
}

impl Target {
    /// How to ask `ecu` alone: `None` for a CAN id that is not one of the standard OBD
    /// response ids (it can only be asked functionally).
    pub fn for_ecu(ecu: EcuId) -> Option<Target> {
        match ecu {
            EcuId::Can(id) => Channel::for_response(id).map(Target::Physical),
            EcuId::Node(address) => Some(Target::Node(address)),
        }
    }

    /// Whether `ecu` is the one this target asks (every ECU, for a functional request).
    pub fn includes(self, ecu: EcuId) -> bool {
        match self {
            Target::Functional => true,
            Target::Physical(ch) => ecu == EcuId::Can(ch.response),
            Target::Node(address) => ecu == EcuId::Node(address),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Functional => f.write_str("any ECU (functional request)"),
            Target::Physical(ch) => write!(f, "ECU {}", ch.response),
            Target::Node(address) => write!(f, "ECU {address:02X}"),
        }
    }
}

/// One ECU's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct EcuResponse {
    /// The ECU that answered: the id it answered on (`7E8`, `18DAF110`), or its source address
    /// on a non-CAN bus.
    pub ecu: EcuId,
    pub response: Response,
    /// The parts of a multi-PID or freeze-frame answer that did not decode (the response
    /// holds the rest). Empty for every other service.
    pub damaged: Vec<DamagedPid>,
}

/// Why a request produced no answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DiagError {
    /// Nothing answered in time. On a car, usually: ignition off, wrong link, wrong bitrate.
    #[error("no answer from {target} within {} ms", after.as_millis())]
    NoResponse { target: Target, after: Duration },
    #[error("ECU {ecu} said \"response pending\" (NRC 0x78) but sent no answer within {} ms", after.as_millis())]
    PendingTimeout { ecu: EcuId, after: Duration },
    #[error("ECU {ecu}: transport failed: {error}")]
    Transport {
        ecu: EcuId,
        error: IsoTpTransferError,
    },
    #[error("ECU {ecu}: undecodable answer {}: {error}", hex(payload))]
    Decode {
        ecu: EcuId,
        payload: Vec<u8>,
        error: ServiceError,
    },
    #[error("ECU {ecu} answered service 0x{got:02X} to a request for service 0x{expected:02X}")]
    WrongService { ecu: EcuId, expected: u8, got: u8 },
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
        ecu: EcuId,
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
    /// `ATSP` argument: `0` automatic search (default); `1` SAE J1850 PWM, `2` SAE J1850 VPW,
    /// `3` ISO 9141-2, `4`/`5` ISO 14230-4 KWP (5-baud / fast init); `6` ISO 15765-4 11-bit
    /// 500 kbit/s, `7` 29-bit 500 kbit/s, `8`/`9` the 250 kbit/s variants.
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
    /// responding ECU for a functional one (sorted by ECU).
    ///
    /// A functional request succeeds when at least one ECU answered usably; the failures of
    /// the others are counted in [`DiagClient::troubles`]. It fails with the first failure
    /// when every answer failed, and with [`DiagError::NoResponse`] when nothing answered.
    pub async fn request(
        &self,
        target: Target,
        req: &Request,
    ) -> Result<Vec<EcuResponse>, DiagError> {
        let result = match self {
            DiagClient::Can(c) => c.request(target, req).await,
            DiagClient::Elm327(c) => c.request(target, req).await,
        };
        let troubles = self.troubles();
        match &result {
            Ok(answers) => {
                for a in answers {
                    for d in &a.damaged {
                        let detail = format!("ECU {}: {} ({})", a.ecu, d.error, hex(&d.bytes));
                        troubles.record(Trouble::DamagedPid, self.name(), &detail);
                    }
                }
            }
            Err(e) => troubles.record_error(e, self.name()),
        }
        result
    }

    /// Whether the link uses 29-bit identifiers (CAN: as configured; ELM327: as the adapter
    /// detected with `ATDPN`).
    pub fn uses_extended_ids(&self) -> bool {
        match self {
            DiagClient::Can(c) => c.options().extended_ids,
            DiagClient::Elm327(c) => c.uses_extended_ids(),
        }
    }

    /// The vehicle's bus: as configured on a CAN link, as `ATDPN` said through an ELM327.
    pub fn bus(&self) -> Bus {
        match self {
            DiagClient::Can(c) if c.options().extended_ids => Bus::Can(IdWidth::Bits29),
            DiagClient::Can(_) => Bus::Can(IdWidth::Bits11),
            DiagClient::Elm327(c) => c.bus(),
        }
    }

    /// How many PIDs one service 01 request may carry on this link: six on CAN (ISO
    /// 15765-4), one on the older buses, where SAE J1979 knows no multi-PID requests.
    pub fn max_pids_per_request(&self) -> usize {
        match self {
            DiagClient::Elm327(c) if !c.is_can() => 1,
            _ => pid::MAX_PIDS_PER_REQUEST,
        }
    }

    /// The answers this client could not use so far, by kind.
    pub fn troubles(&self) -> &TroubleLog {
        match self {
            DiagClient::Can(c) => c.troubles(),
            DiagClient::Elm327(c) => c.troubles(),
        }
    }

    /// The link, for logs: `socketcan:can0`, `elm327+tcp:HOST:PORT`.
    pub fn name(&self) -> &str {
        match self {
            DiagClient::Can(c) => c.name(),
            DiagClient::Elm327(c) => c.name(),
        }
    }
}

/// Builds the result of a functional request from the answers and failures collected. When
/// some ECU answered, the others' failures are counted in `troubles` (the caller counts the
/// one failure it returns otherwise).
pub(crate) fn functional_outcome(
    mut answers: Vec<EcuResponse>,
    failures: Vec<DiagError>,
    target: Target,
    after: Duration,
    troubles: (&TroubleLog, &str),
) -> Result<Vec<EcuResponse>, DiagError> {
    let mut failures = failures.into_iter();
    if answers.is_empty() {
        let first = failures.next();
        for f in failures {
            troubles.0.record_error(&f, troubles.1);
        }
        return Err(first.unwrap_or(DiagError::NoResponse { target, after }));
    }
    for f in failures {
        troubles.0.record_error(&f, troubles.1);
    }
    answers.sort_by_key(|a| a.ecu);
    Ok(answers)
}

/// Decodes one ECU's answer to `req` and checks it is for the service asked. The parts of a
/// multi-PID answer that do not decode come back beside the response.
pub(crate) fn decode_answer(
    ecu: EcuId,
    payload: &[u8],
    req: &Request,
) -> Result<EcuResponse, DiagError> {
    let answer = Response::parse_answer(req, payload).map_err(|error| DiagError::Decode {
        ecu,
        payload: payload.to_vec(),
        error,
    })?;
    if answer.response.service() != req.service() {
        return Err(DiagError::WrongService {
            ecu,
            expected: req.service(),
            got: answer.response.service(),
        });
    }
    Ok(EcuResponse {
        ecu,
        response: answer.response,
        damaged: answer.damaged,
    })
}

/// NRC 0x78: the ECU will answer later.
pub(crate) fn is_pending(response: &Response) -> bool {
    matches!(response, Response::Negative(n) if n.nrc.is_response_pending())
}
