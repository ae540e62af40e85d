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
//! On CAN the DTC services carry a count byte before the codes (ISO 15765-4); it is checked
//! against the bytes that follow. Service 09 answers carry the number of data items (NODI) for
//! the VIN (02), calibration IDs (04, 16 bytes each), CVNs (06, 4 bytes each) and ECU name (0A,
//! 20 bytes); the supported-infotype bitmaps (00, 20, ...) carry none.

use serde::Serialize;

use crate::dtc::{self, Dtc};
use crate::nrc::NegativeResponse;
use crate::pid::{self, Reading, SupportedPids};
use crate::uds;
use crate::vin::Vin;

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

/// Service 09 information types this module decodes.
pub mod infotype {
    pub const VIN_MESSAGE_COUNT: u8 = 0x01;
    pub const VIN: u8 = 0x02;
    pub const CALIBRATION_ID: u8 = 0x04;
    pub const CVN: u8 = 0x06;
    pub const ECU_NAME: u8 = 0x0A;
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
    #[error(
        "service 0x01/0x02: PID 0x{0:02X} is not in the PID table, so the rest of the answer cannot be split"
    )]
    UnknownPid(u8),
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

/// A decoded service 09 answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleInfo {
    /// Infotype 00, 20, 40...: which infotypes the ECU supports.
    Supported(Vec<u8>),
    Vin(Vin),
    /// Infotype 01 on non-CAN protocols and some CAN ECUs: messages needed for the VIN.
    MessageCount(u8),
    CalibrationIds(Vec<String>),
    /// Calibration verification numbers, written as 8 hex digits each.
    Cvns(Vec<String>),
    EcuName(String),
    /// An infotype this module does not interpret (e.g. in-use performance tracking).
    Other {
        infotype: u8,
        data: Vec<u8>,
    },
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
    /// services above.
    pub fn parse(payload: &[u8]) -> Result<Response, ServiceError> {
        if let Some(neg) = NegativeResponse::parse(payload)? {
            return Ok(Response::Negative(neg));
        }
        let (&rsid, rest) = payload.split_first().ok_or(ServiceError::Empty)?;
        let service = rsid.wrapping_sub(sid::POSITIVE_OFFSET);
        match service {
            sid::CURRENT_DATA => parse_current_data(rest).map(Response::CurrentData),
            sid::FREEZE_FRAME => parse_freeze_frame(rest).map(Response::FreezeFrame),
            sid::STORED_DTCS | sid::PENDING_DTCS | sid::PERMANENT_DTCS => Ok(Response::Dtcs {
                service,
                dtcs: parse_dtcs(rest)?,
            }),
            sid::CLEAR_DTCS => Ok(Response::ClearDtcs),
            sid::VEHICLE_INFO => parse_vehicle_info(rest).map(Response::VehicleInfo),
            sid::UDS_READ_DTC_INFORMATION => Ok(Response::UdsReadDtcInformation(
                uds::parse_read_dtc_response(payload)?,
            )),
            sid::UDS_CLEAR_DIAGNOSTIC_INFORMATION => Ok(Response::UdsClearDiagnosticInformation),
            _ => Err(ServiceError::UnknownService(rsid)),
        }
    }
}

/// `PID data [PID data…]`: each PID's length comes from the PID table, so an unknown PID ends
/// the walk with an error rather than a guess.
fn parse_current_data(mut rest: &[u8]) -> Result<Vec<PidData>, ServiceError> {
    if rest.is_empty() {
        return Err(length(sid::CURRENT_DATA, "at least 2", 1));
    }
    let mut out = Vec::new();
    while let Some((&pid, tail)) = rest.split_first() {
        let (data, tail) = take_pid_data(pid, tail)?;
        out.push(PidData {
            pid,
            frame: None,
            data: data.to_vec(),
            readings: pid::decode(pid, data)?,
        });
        rest = tail;
    }
    Ok(out)
}

/// `PID FRAME data [PID FRAME data…]`.
fn parse_freeze_frame(mut rest: &[u8]) -> Result<Vec<PidData>, ServiceError> {
    if rest.is_empty() {
        return Err(length(sid::FREEZE_FRAME, "at least 3", 1));
    }
    let mut out = Vec::new();
    while let Some((&pid, tail)) = rest.split_first() {
        let (&frame, tail) = tail
            .split_first()
            .ok_or_else(|| length(sid::FREEZE_FRAME, "a frame number after the PID", 0))?;
        let (data, tail) = take_pid_data(pid, tail)?;
        out.push(PidData {
            pid,
            frame: Some(frame),
            data: data.to_vec(),
            readings: pid::decode(pid, data)?,
        });
        rest = tail;
    }
    Ok(out)
}

fn take_pid_data(pid: u8, rest: &[u8]) -> Result<(&[u8], &[u8]), ServiceError> {
    let len = pid::data_len(pid).ok_or(ServiceError::UnknownPid(pid))?;
    rest.split_at_checked(len).ok_or(
        pid::PidError::WrongLength {
            pid,
            expected: len,
            actual: rest.len(),
        }
        .into(),
    )
}

/// `COUNT DTC…` on CAN. Trailing `00 00` pairs beyond the count are padding some ECUs send.
fn parse_dtcs(rest: &[u8]) -> Result<Vec<Dtc>, ServiceError> {
    let (&count, codes) = rest
        .split_first()
        .ok_or(ServiceError::DtcCount { count: 0, bytes: 0 })?;
    let needed = usize::from(count) * 2;
    let (listed, padding) = codes
        .split_at_checked(needed)
        .ok_or(ServiceError::DtcCount {
            count,
            bytes: codes.len(),
        })?;
    if padding.iter().any(|&b| b != 0) || padding.len() % 2 != 0 {
        return Err(ServiceError::DtcCount {
            count,
            bytes: codes.len(),
        });
    }
    let dtcs: Vec<Dtc> = listed
        .as_chunks::<2>()
        .0
        .iter()
        .map(|&b| Dtc::from_bytes(b))
        .collect();
    Ok(dtcs)
}

fn parse_vehicle_info(rest: &[u8]) -> Result<VehicleInfo, ServiceError> {
    let (&infotype, data) = rest
        .split_first()
        .ok_or_else(|| length(sid::VEHICLE_INFO, "at least 2", 1))?;
    let bad = |reason: String| ServiceError::VehicleInfo { infotype, reason };
    if infotype % 0x20 == 0 {
        let bitmap: [u8; 4] = data.try_into().map_err(|_| {
            bad(format!(
                "supported bitmap is {} bytes, expected 4",
                data.len()
            ))
        })?;
        let mut set = SupportedPids::new();
        set.add_bitmap(infotype, bitmap)?;
        return Ok(VehicleInfo::Supported(set.iter().collect()));
    }
    if infotype == infotype::VIN_MESSAGE_COUNT {
        return match data {
            [n] => Ok(VehicleInfo::MessageCount(*n)),
            _ => Err(bad(format!(
                "message count is {} bytes, expected 1",
                data.len()
            ))),
        };
    }
    // Every other infotype on CAN starts with the number of data items.
    let Some((&nodi, items)) = data.split_first() else {
        return Err(bad("missing the number of data items".to_owned()));
    };
    let fixed = |size: usize| -> Result<Vec<&[u8]>, ServiceError> {
        if items.len() != usize::from(nodi) * size {
            return Err(bad(format!(
                "{nodi} items of {size} bytes need {} bytes, got {}",
                usize::from(nodi) * size,
                items.len()
            )));
        }
        Ok(items.chunks(size).collect())
    };
    match infotype {
        infotype::VIN => Ok(VehicleInfo::Vin(
            Vin::from_bytes(items).map_err(|e| bad(e.to_string()))?,
        )),
        infotype::CALIBRATION_ID => Ok(VehicleInfo::CalibrationIds(
            fixed(16)?
                .into_iter()
                .map(ascii_field)
                .collect::<Result<_, _>>()
                .map_err(bad)?,
        )),
        infotype::CVN => Ok(VehicleInfo::Cvns(
            fixed(4)?
                .into_iter()
                .map(|c| c.iter().map(|b| format!("{b:02X}")).collect())
                .collect(),
        )),
        infotype::ECU_NAME => {
            let name = fixed(20)?
                .into_iter()
                .map(ascii_field)
                .next()
                .unwrap_or(Ok(String::new()));
            Ok(VehicleInfo::EcuName(name.map_err(bad)?))
        }
        _ => Ok(VehicleInfo::Other {
            infotype,
            data: data.to_vec(),
        }),
    }
}

/// A fixed-width ASCII field padded with NUL (or spaces): calibration IDs, ECU names.
fn ascii_field(bytes: &[u8]) -> Result<String, String> {
    let trimmed = bytes
        .iter()
        .rposition(|&b| b != 0 && b != b' ')
        .map_or(&[][..], |end| &bytes[..=end]);
    if let Some(bad) = trimmed
        .iter()
        .find(|b| !(b.is_ascii_graphic() || **b == b' ' || **b == 0))
    {
        return Err(format!("byte 0x{bad:02X} is not printable ASCII"));
    }
    // Inner NULs are padding too: the ECU name is a 4-byte acronym field, `-`, then the name
    // (J1979 infotype 0A), so "ECM\0-EngineControl" reads "ECM-EngineControl".
    Ok(trimmed
        .iter()
        .filter(|&&b| b != 0)
        .map(|&b| char::from(b))
        .collect())
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
    fn dtc_lists_with_count_byte() {
        // 43 02 | 01 33 (P0133) | 04 20 (P0420)
        let r = Response::parse(&[0x43, 0x02, 0x01, 0x33, 0x04, 0x20]).unwrap();
        let Response::Dtcs { service, dtcs } = r else {
            panic!("{r:?}")
        };
        assert_eq!(service, 0x03);
        let text: Vec<String> = dtcs.iter().map(|d| d.to_string()).collect();
        assert_eq!(text, ["P0133", "P0420"]);
        // Pending, none; permanent, with zero padding; U0100 is C1 00.
        assert_eq!(
            Response::parse(&[0x47, 0x00]).unwrap(),
            Response::Dtcs {
                service: 7,
                dtcs: vec![]
            }
        );
        let r = Response::parse(&[0x4A, 0x01, 0xC1, 0x00, 0x00, 0x00]).unwrap();
        assert_eq!(
            r,
            Response::Dtcs {
                service: 0x0A,
                dtcs: vec!["U0100".parse().unwrap()]
            }
        );
        // The count disagrees with the bytes.
        assert_eq!(
            Response::parse(&[0x43, 0x02, 0x01, 0x33]),
            Err(ServiceError::DtcCount { count: 2, bytes: 2 })
        );
        assert!(Response::parse(&[0x43, 0x01, 0x01, 0x33, 0x04, 0x20]).is_err());
        assert!(Response::parse(&[0x43]).is_err());
    }

    #[test]
    fn vehicle_information() {
        let mut vin = vec![0x49, 0x02, 0x01];
        vin.extend_from_slice(b"1HGCM82633A004352");
        assert_eq!(
            Response::parse(&vin).unwrap(),
            Response::VehicleInfo(VehicleInfo::Vin(Vin::parse("1HGCM82633A004352").unwrap()))
        );
        // Two calibration IDs of 16 bytes, NUL padded.
        let mut cal = vec![0x49, 0x04, 0x02];
        cal.extend_from_slice(b"JMB*36761500\0\0\0\0");
        cal.extend_from_slice(b"JMB*47872611\0\0\0\0");
        assert_eq!(
            Response::parse(&cal).unwrap(),
            Response::VehicleInfo(VehicleInfo::CalibrationIds(vec![
                "JMB*36761500".into(),
                "JMB*47872611".into()
            ]))
        );
        assert_eq!(
            Response::parse(&[0x49, 0x06, 0x01, 0x17, 0x91, 0xBC, 0x82]).unwrap(),
            Response::VehicleInfo(VehicleInfo::Cvns(vec!["1791BC82".into()]))
        );
        let mut name = vec![0x49, 0x0A, 0x01];
        name.extend_from_slice(b"ECM\0-EngineControl\0\0");
        assert_eq!(
            Response::parse(&name).unwrap(),
            Response::VehicleInfo(VehicleInfo::EcuName("ECM-EngineControl".into()))
        );
        // 49 00 | 55 40 00 00: infotypes 02, 04, 06, 08, 0A supported.
        assert_eq!(
            Response::parse(&[0x49, 0x00, 0x55, 0x40, 0x00, 0x00]).unwrap(),
            Response::VehicleInfo(VehicleInfo::Supported(vec![2, 4, 6, 8, 0x0A]))
        );
        // Item count disagrees with the bytes.
        assert!(Response::parse(&[0x49, 0x06, 0x02, 0x17, 0x91, 0xBC, 0x82]).is_err());
        assert!(Response::parse(&[0x49, 0x04]).is_err());
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
