//! OBD-II diagnostic services as SAE J1979 / ISO 15031-5 define them on CAN (ISO 15765-4), plus
//! the two UDS (ISO 14229-1) services an OBD tool meets on modern ECUs.
//!
//! A request or response here is one ISO-TP payload: the service id (SID) first, then its
//! parameters. A positive response carries `SID + 0x40`; a negative one is `7F SID NRC`
//! ([`crate::nrc`]).
//!
//! | SID | service | request | positive response on CAN |
//! |---|---|---|---|
//! | 01 | current powertrain data | `01 PID [PID…]` (≤ 6 PIDs) | `41 PID data [PID data…]` |
//! | 02 | freeze frame data | `02 PID FRAME […]` (≤ 3 pairs) | `42 PID FRAME data […]` |
//! | 03 | emission-related DTCs (confirmed) | `03` | `43 COUNT DTC…` (2 bytes each) |
//! | 04 | clear DTCs and stored values | `04` | `44` |
//! | 07 | pending DTCs (this or last drive cycle) | `07` | `47 COUNT DTC…` |
//! | 09 | vehicle information | `09 INFOTYPE` | `49 INFOTYPE [NODI] data` |
//! | 0A | permanent DTCs | `0A` | `4A COUNT DTC…` |
//! | 14 | UDS ClearDiagnosticInformation | `14 GROUP(3)` | `54` |
//! | 19 | UDS ReadDTCInformation | `19 SUB …` | `59 SUB …` ([`crate::uds`]) |
//!
//! The answers of the older buses (SAE J1850, ISO 9141-2, ISO 14230-4) come in several short
//! messages; they are joined into this one-payload form before they are parsed here.
//!
//! - [`pid_answer`]: services 01 and 02, split PID by PID; a damaged PID loses only itself
//!   ([`Response::parse_answer`] with the request makes that reliable);
//! - `dtc_list`: services 03, 07, 0A, with or without the count byte, decided
//!   by length;
//! - [`vehicle_info`]: service 09 (VIN, calibration ids, CVNs, ECU name).

mod dtc_list;
pub mod pid_answer;
pub mod vehicle_info;

use serde::Serialize;

use crate::dtc::{self, Dtc};
use crate::nrc::NegativeResponse;
use crate::pid::{self, Reading};
use crate::uds;

pub use pid_answer::{DamagedPid, PidAnswer};
pub use vehicle_info::{VehicleInfo, infotype};

/// Service identifiers.
pub mod sid {
    pub const CURRENT_DATA: u8 = 0x01;
    pub const FREEZE_FRAME: u8 = 0x02;
    pub const STORED_DTCS: u8 = 0x03;
    pub const CLEAR_DTCS: u8 = 0x04;
    pub const PENDING_DTCS: u8 = 0x07;
    pub const VEHICLE_INFO: u8 = 0x09;
    pub const PERMANENT_DTCS: u8 = 0x0A;
    pub const UDS_CLEAR_DIAGNOSTIC_INFORMATION: u8 = 0x14;
    pub const UDS_READ_DTC_INFORMATION: u8 = 0x19;
    /// Added to the request SID in a positive response.
    pub const POSITIVE_OFFSET: u8 = 0x40;
}

/// Most PID/frame pairs in one service 02 request (ISO 15765-4).
pub const MAX_FREEZE_FRAME_PAIRS: usize = 3;

/// Why a request could not be built or a payload could not be decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    #[error("empty diagnostic message")]
    Empty,
    #[error("service 0x{0:02X} is not an OBD-II or supported UDS service")]
    UnknownService(u8),
    #[error("service 0x{service:02X}: {reason}")]
    BadRequest { service: u8, reason: String },
    #[error("service 0x{service:02X}: message is {got} bytes, expected {expected}")]
    Length {
        service: u8,
        expected: String,
        got: usize,
    },
    #[error("service 0x01/0x02: PID 0x{0:02X} is not in the PID table, so its length is unknown")]
    UnknownPid(u8),
    #[error(
        "service 0x{service:02X}: byte 0x{byte:02X} starts a part of the answer but is not a PID that was asked for"
    )]
    Unrequested { service: u8, byte: u8 },
    #[error("DTC count byte says {count} codes but {bytes} bytes of codes follow")]
    DtcCount { count: u8, bytes: usize },
    #[error("service 0x09 infotype 0x{infotype:02X}: {reason}")]
    VehicleInfo { infotype: u8, reason: String },
    #[error(transparent)]
    Pid(#[from] pid::PidError),
    #[error(transparent)]
    Dtc(#[from] dtc::DtcError),
    #[error(transparent)]
    Uds(#[from] uds::UdsError),
    #[error(transparent)]
    Nrc(#[from] crate::nrc::NrcError),
}

/// A diagnostic request, as a tester sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Service 01 with 1 to 6 PIDs.
    CurrentData {
        pids: Vec<u8>,
    },
    /// Service 02 with 1 to 3 (PID, frame number) pairs.
    FreezeFrame {
        pids: Vec<(u8, u8)>,
    },
    StoredDtcs,
    ClearDtcs,
    PendingDtcs,
    VehicleInfo {
        infotype: u8,
    },
    PermanentDtcs,
    /// UDS 0x19: sub-function and its parameters, not interpreted further here.
    UdsReadDtcInformation {
        sub_function: u8,
        params: Vec<u8>,
    },
    /// UDS 0x14 with the 24-bit group of DTCs (0xFFFFFF = all).
    UdsClearDiagnosticInformation {
        group: u32,
    },
}

impl Request {
    /// The service id this request is for.
    pub fn service(&self) -> u8 {
        match self {
            Request::CurrentData { .. } => sid::CURRENT_DATA,
            Request::FreezeFrame { .. } => sid::FREEZE_FRAME,
            Request::StoredDtcs => sid::STORED_DTCS,
            Request::ClearDtcs => sid::CLEAR_DTCS,
            Request::PendingDtcs => sid::PENDING_DTCS,
            Request::VehicleInfo { .. } => sid::VEHICLE_INFO,
            Request::PermanentDtcs => sid::PERMANENT_DTCS,
            Request::UdsReadDtcInformation { .. } => sid::UDS_READ_DTC_INFORMATION,
            Request::UdsClearDiagnosticInformation { .. } => sid::UDS_CLEAR_DIAGNOSTIC_INFORMATION,
        }
    }

    /// Service 01 for up to six PIDs; more, or none, is an error.
    pub fn current_data(pids: &[u8]) -> Result<Request, ServiceError> {
        if pids.is_empty() || pids.len() > pid::MAX_PIDS_PER_REQUEST {
            return Err(ServiceError::BadRequest {
                service: sid::CURRENT_DATA,
                reason: format!("{} PIDs in one request; 1 to 6 are allowed", pids.len()),
            });
        }
        Ok(Request::CurrentData {
            pids: pids.to_vec(),
        })
    }

    /// The bytes to send.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![self.service()];
        match self {
            Request::CurrentData { pids } => out.extend_from_slice(pids),
            Request::FreezeFrame { pids } => {
                for &(pid, frame) in pids {
                    out.extend_from_slice(&[pid, frame]);
                }
            }
            Request::VehicleInfo { infotype } => out.push(*infotype),
            Request::UdsReadDtcInformation {
                sub_function,
                params,
            } => {
                out.push(*sub_function);
                out.extend_from_slice(params);
            }
            Request::UdsClearDiagnosticInformation { group } => {
                out.extend_from_slice(&group.to_be_bytes()[1..]);
            }
            Request::StoredDtcs
            | Request::ClearDtcs
            | Request::PendingDtcs
            | Request::PermanentDtcs => {}
        }
        out
    }

    /// Reads a request off the bus (for a simulator answering it, or a trace).
    pub fn parse(payload: &[u8]) -> Result<Request, ServiceError> {
        let (&service, rest) = payload.split_first().ok_or(ServiceError::Empty)?;
        let bare = |req: Request| {
            if rest.is_empty() {
                Ok(req)
            } else {
                Err(length(service, "1", payload.len()))
            }
        };
        match service {
            sid::CURRENT_DATA => Request::current_data(rest),
            sid::FREEZE_FRAME => {
                let (pairs, tail) = rest.as_chunks::<2>();
                if pairs.is_empty() || !tail.is_empty() || pairs.len() > MAX_FREEZE_FRAME_PAIRS {
                    return Err(length(service, "3, 5 or 7", payload.len()));
                }
                Ok(Request::FreezeFrame {
                    pids: pairs.iter().map(|&[p, f]| (p, f)).collect(),
                })
            }
            sid::STORED_DTCS => bare(Request::StoredDtcs),
            sid::CLEAR_DTCS => bare(Request::ClearDtcs),
            sid::PENDING_DTCS => bare(Request::PendingDtcs),
            sid::PERMANENT_DTCS => bare(Request::PermanentDtcs),
            sid::VEHICLE_INFO => match rest {
                [infotype] => Ok(Request::VehicleInfo {
                    infotype: *infotype,
                }),
                _ => Err(length(service, "2", payload.len())),
            },
            sid::UDS_READ_DTC_INFORMATION => match rest.split_first() {
                Some((&sub_function, params)) => Ok(Request::UdsReadDtcInformation {
                    sub_function,
                    params: params.to_vec(),
                }),
                None => Err(length(service, "at least 2", payload.len())),
            },
            sid::UDS_CLEAR_DIAGNOSTIC_INFORMATION => match rest {
                [a, b, c] => Ok(Request::UdsClearDiagnosticInformation {
                    group: u32::from_be_bytes([0, *a, *b, *c]),
                }),
                _ => Err(length(service, "4", payload.len())),
            },
            other => Err(ServiceError::UnknownService(other)),
        }
    }
}

fn length(service: u8, expected: &str, got: usize) -> ServiceError {
    ServiceError::Length {
        service,
        expected: expected.to_owned(),
        got,
    }
}

/// One PID's answer within a service 01 or 02 response.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PidData {
    pub pid: u8,
    /// Freeze frame number (service 02 only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame: Option<u8>,
    /// The data bytes as sent, for callers that need them (bitmaps, re-encoding).
    #[serde(skip)]
    pub data: Vec<u8>,
    pub readings: Vec<Reading>,
}

impl PidData {
    /// For service 02 PID 02: the trouble code that made the ECU store this freeze frame
    /// (`00 00` means the frame holds no data).
    pub fn freeze_frame_trigger(&self) -> Option<Dtc> {
        match (self.frame, self.pid, self.data.as_slice()) {
            (Some(_), 0x02, &[a, b]) if [a, b] != [0, 0] => Some(Dtc::from_bytes([a, b])),
            _ => None,
        }
    }
}

/// A decoded diagnostic response.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Response {
    CurrentData(Vec<PidData>),
    FreezeFrame(Vec<PidData>),
    /// Services 03, 07 and 0A: the service that was answered and its codes.
    Dtcs {
        service: u8,
        dtcs: Vec<Dtc>,
    },
    ClearDtcs,
    VehicleInfo(VehicleInfo),
    UdsReadDtcInformation(uds::ReadDtcResponse),
    UdsClearDiagnosticInformation,
    Negative(NegativeResponse),
}

impl Response {
    /// The request SID this response answers.
    pub fn service(&self) -> u8 {
        match self {
            Response::CurrentData(_) => sid::CURRENT_DATA,
            Response::FreezeFrame(_) => sid::FREEZE_FRAME,
            Response::Dtcs { service, .. } => *service,
            Response::ClearDtcs => sid::CLEAR_DTCS,
            Response::VehicleInfo(_) => sid::VEHICLE_INFO,
            Response::UdsReadDtcInformation(_) => sid::UDS_READ_DTC_INFORMATION,
            Response::UdsClearDiagnosticInformation => sid::UDS_CLEAR_DIAGNOSTIC_INFORMATION,
            Response::Negative(n) => n.service,
        }
    }

    /// Decodes a response payload: a negative response, or the positive answer to one of the
    /// services above. Strict: a service 01 or 02 answer with any damaged part is an error (the
    /// first damage found). Use [`Response::parse_answer`] where the request is known, to keep
    /// the parts that decode.
    pub fn parse(payload: &[u8]) -> Result<Response, ServiceError> {
        let answer = Response::parse_as(payload, None)?;
        match answer.damaged.into_iter().next() {
            Some(damage) => Err(damage.error),
            None => Ok(answer.response),
        }
    }

    /// Decodes the answer to `request`, keeping every part of a multi-PID (service 01) or
    /// freeze-frame (service 02) answer that decodes and reporting the rest in
    /// [`Answer::damaged`]. Only the PIDs the request asked for may start a part, so a PID cut
    /// short cannot take its neighbour's bytes unnoticed. Other answers decode as
    /// [`Response::parse`] does, with nothing damaged.
    pub fn parse_answer(request: &Request, payload: &[u8]) -> Result<Answer, ServiceError> {
        Response::parse_as(payload, Some(request))
    }

    fn parse_as(payload: &[u8], request: Option<&Request>) -> Result<Answer, ServiceError> {
        if let Some(neg) = NegativeResponse::parse(payload)? {
            return Ok(Answer::whole(Response::Negative(neg)));
        }
        let (&rsid, rest) = payload.split_first().ok_or(ServiceError::Empty)?;
        let service = rsid.wrapping_sub(sid::POSITIVE_OFFSET);
        let whole = |response| Ok(Answer::whole(response));
        match service {
            sid::CURRENT_DATA | sid::FREEZE_FRAME => {
                let frames = service == sid::FREEZE_FRAME;
                let asked = match request {
                    Some(Request::CurrentData { pids }) if !frames => pid_answer::Asked::Pids(pids),
                    Some(Request::FreezeFrame { pids }) if frames => {
                        pid_answer::Asked::Frames(pids)
                    }
                    _ => pid_answer::Asked::Any { frames },
                };
                let PidAnswer { pids, damaged } = pid_answer::parse(rest, asked)?;
                let response = if frames {
                    Response::FreezeFrame(pids)
                } else {
                    Response::CurrentData(pids)
                };
                Ok(Answer { response, damaged })
            }
            sid::STORED_DTCS | sid::PENDING_DTCS | sid::PERMANENT_DTCS => whole(Response::Dtcs {
                service,
                dtcs: dtc_list::parse(rest)?,
            }),
            sid::CLEAR_DTCS => whole(Response::ClearDtcs),
            sid::VEHICLE_INFO => whole(Response::VehicleInfo(vehicle_info::parse(rest)?)),
            sid::UDS_READ_DTC_INFORMATION => whole(Response::UdsReadDtcInformation(
                uds::parse_read_dtc_response(payload)?,
            )),
            sid::UDS_CLEAR_DIAGNOSTIC_INFORMATION => whole(Response::UdsClearDiagnosticInformation),
            _ => Err(ServiceError::UnknownService(rsid)),
        }
    }
}

/// A response decoded for the request it answers: what decoded, and the parts of a multi-PID
/// answer that did not (always empty for other services).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Answer {
    pub response: Response,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub damaged: Vec<DamagedPid>,
}

impl Answer {
    fn whole(response: Response) -> Answer {
        Answer {
            response,
            damaged: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let cases = [
            (
                vec![0x01, 0x0C, 0x0D],
                Request::CurrentData {
                    pids: vec![0x0C, 0x0D],
                },
            ),
            (
                vec![0x02, 0x02, 0x00, 0x0C, 0x00],
                Request::FreezeFrame {
                    pids: vec![(2, 0), (0x0C, 0)],
                },
            ),
            (vec![0x03], Request::StoredDtcs),
            (vec![0x04], Request::ClearDtcs),
            (vec![0x07], Request::PendingDtcs),
            (vec![0x09, 0x02], Request::VehicleInfo { infotype: 2 }),
            (vec![0x0A], Request::PermanentDtcs),
            (
                vec![0x19, 0x02, 0xFF],
                Request::UdsReadDtcInformation {
                    sub_function: 2,
                    params: vec![0xFF],
                },
            ),
            (
                vec![0x14, 0xFF, 0xFF, 0xFF],
                Request::UdsClearDiagnosticInformation { group: 0xFF_FFFF },
            ),
        ];
        for (bytes, req) in cases {
            assert_eq!(Request::parse(&bytes), Ok(req.clone()), "{bytes:02X?}");
            assert_eq!(req.encode(), bytes);
        }
    }

    #[test]
    fn bad_requests_are_refused() {
        assert_eq!(Request::parse(&[]), Err(ServiceError::Empty));
        assert!(Request::current_data(&[1, 2, 3, 4, 5, 6, 7]).is_err());
        assert!(Request::parse(&[0x01]).is_err());
        assert!(Request::parse(&[0x03, 0x00]).is_err());
        assert!(Request::parse(&[0x02, 0x0C]).is_err());
        assert!(Request::parse(&[0x09]).is_err());
        assert_eq!(
            Request::parse(&[0x22, 0xF1, 0x90]),
            Err(ServiceError::UnknownService(0x22))
        );
    }

    #[test]
    fn multi_pid_answer_is_split_by_the_pid_table() {
        // 41 | 0C 1A F8 (rpm = 0x1AF8 / 4 = 1726) | 0D 3C (60 km/h) | 05 7B (123 - 40 = 83 °C)
        let r = Response::parse(&[0x41, 0x0C, 0x1A, 0xF8, 0x0D, 0x3C, 0x05, 0x7B]).unwrap();
        let Response::CurrentData(pids) = r else {
            panic!("{r:?}")
        };
        let got: Vec<(u8, f64)> = pids
            .iter()
            .map(|p| match p.readings[0].value {
                pid::Value::Number(v) => (p.pid, v),
                ref other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(got, vec![(0x0C, 1726.0), (0x0D, 60.0), (0x05, 83.0)]);
    }

    #[test]
    fn truncated_or_unknown_pid_is_an_error() {
        assert!(Response::parse(&[0x41, 0x0C, 0x1A]).is_err());
        assert!(Response::parse(&[0x41]).is_err());
        assert!(Response::parse(&[0x41, 0xFF, 0x00]).is_err());
    }

    #[test]
    fn freeze_frame_with_its_trigger_dtc() {
        // 42 02 00 01 33 → freeze frame 0 was stored by P0133; 42 05 00 7B → 83 °C at that moment.
        let r = Response::parse(&[0x42, 0x02, 0x00, 0x01, 0x33, 0x05, 0x00, 0x7B]).unwrap();
        let Response::FreezeFrame(pids) = r else {
            panic!("{r:?}")
        };
        assert_eq!(pids.len(), 2);
        assert_eq!(
            (pids[0].pid, pids[0].frame, pids[0].data.as_slice()),
            (2, Some(0), &[0x01, 0x33][..])
        );
        assert_eq!(
            pids[0].freeze_frame_trigger().map(|d| d.to_string()),
            Some("P0133".into())
        );
        assert_eq!(pids[1].freeze_frame_trigger(), None);
        assert_eq!(pids[1].frame, Some(0));
    }

    #[test]
    fn negative_and_pending_responses() {
        let r = Response::parse(&[0x7F, 0x01, 0x31]).unwrap();
        let Response::Negative(n) = r else {
            panic!("{r:?}")
        };
        assert_eq!((n.service, n.nrc.0), (0x01, 0x31));
        let Response::Negative(n) = Response::parse(&[0x7F, 0x19, 0x78]).unwrap() else {
            panic!()
        };
        assert!(n.nrc.is_response_pending());
        assert!(Response::parse(&[0x7F, 0x01]).is_err());
    }

    #[test]
    fn clears_and_unknown_services() {
        assert_eq!(Response::parse(&[0x44]).unwrap(), Response::ClearDtcs);
        assert_eq!(
            Response::parse(&[0x54]).unwrap(),
            Response::UdsClearDiagnosticInformation
        );
        assert_eq!(
            Response::parse(&[0x62, 0xF1, 0x90]),
            Err(ServiceError::UnknownService(0x62))
        );
        assert_eq!(Response::parse(&[]), Err(ServiceError::Empty));
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let _ = Response::parse(&bytes);
            let _ = Request::parse(&bytes);
        }
    }
}
