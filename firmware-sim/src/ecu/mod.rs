//! One simulated ECU: which PIDs, infotypes and codes it has, and how it answers OBD-II
//! services 01, 02, 03, 04, 07, 09, 0A and UDS 0x19 / 0x14 (J1979 on ISO 15765-4, ISO 14229-1).
//!
//! Behaviour a tester can rely on:
//! - service 01 takes up to six PIDs and answers those it supports, in the order asked; the
//!   supported-PID bitmaps (00, 20, 40...) list exactly the PIDs it answers, and a bitmap PID
//!   is supported when any higher PID is (so discovery walks on);
//! - what it does not support gets a negative response on a physical request (0x11 unknown
//!   service, 0x12 sub-function, 0x13 wrong length, 0x31 nothing requested is supported) and
//!   silence on a functional one, as J1979 and ISO 14229-1 (7.5) ask;
//! - clearing is slow: `7F 04 78` (response pending) within a few ms, the positive answer a
//!   few hundred ms later; everything else answers within 5 to 40 ms depending on the ECU.
//!
//! The OBD-II answers (services 01, 02, 03/07/0A, 09) are in `obd_answers.rs`, the UDS ones (0x19,
//! 0x14) in `uds_answers.rs`; the roles, the ECU's state and the dispatch here.
//!
//! What this module does not do: step the model or run monitors (see [`crate::vehicle`] and
//! [`crate::faults`]), or frame anything for a bus.

mod obd_answers;
mod uds_answers;

pub use uds_answers::status_matches;

use std::time::Duration;

use telltale_obd::dtc::Dtc;
use telltale_obd::nrc::{NegativeResponse, Nrc};
use telltale_obd::pid::{self, Formula, SupportedPids};
use telltale_obd::service::{Request, ServiceError, sid};
use telltale_obd::uds::{self, DtcFormat, DtcStatus, UdsDtc};
use telltale_obd::vin::Vin;

use crate::faults::{DtcEntry, Monitor, Readiness, TestKind};
use crate::model::{Model, Rng};
use crate::scenario::{EcuConfig, EcuName};
use crate::vehicle::{EcuInfo, Reply};

/// Status bits this ECU reports (all of them).
pub const STATUS_AVAILABILITY: u8 = 0xFF;
/// UDS DTC group "all groups" and the emissions-related group (ISO 14229-1 D.1).
const GROUP_ALL: u32 = 0x00FF_FFFF;
const GROUP_EMISSIONS: u32 = 0x00FF_FF33;
/// Snapshot record number of the one record each code keeps.
const SNAPSHOT_RECORD: u8 = 0x01;
/// UDS DIDs 0xF400-0xF4FF carry OBD PIDs (J1979-2 / ISO 27145 convention).
const DID_OBD_PID_BASE: u16 = 0xF400;

/// Codes each ECU monitors even when no scenario fault names them.
fn default_codes(role: EcuName) -> &'static [&'static str] {
    match role {
        EcuName::Engine => &[
            "P0128", "P0171", "P0300", "P0301", "P0302", "P0303", "P0304", "P0420", "P0442",
            "P0455",
        ],
        EcuName::Transmission => &["P0715", "P0741"],
        EcuName::Hybrid => &["P0A80", "P0AFA"],
    }
}

/// Mode 01 data PIDs each ECU answers (bitmap PIDs are derived).
fn live_pids(role: EcuName) -> &'static [u8] {
    match role {
        EcuName::Engine => &[
            0x01, 0x03, 0x04, 0x05, 0x06, 0x07, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x13,
            0x14, 0x15, 0x1C, 0x1F, 0x21, 0x2F, 0x30, 0x31, 0x32, 0x33, 0x3C, 0x41, 0x42, 0x43,
            0x44, 0x45, 0x46, 0x49, 0x4C, 0x4D, 0x4E, 0x51, 0x5C, 0x5E, 0xA6,
        ],
        EcuName::Transmission => &[0x01, 0x0D, 0x1C, 0x21, 0x30, 0x31, 0x41, 0x42, 0x4D, 0x4E],
        EcuName::Hybrid => &[0x01, 0x1C, 0x41, 0x42, 0x46, 0x5B],
    }
}

/// PIDs stored in a freeze frame (besides 0x02, the code that caused it).
fn freeze_pids(role: EcuName) -> &'static [u8] {
    match role {
        EcuName::Engine => &[
            0x03, 0x04, 0x05, 0x06, 0x07, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10, 0x11, 0x1F, 0x42,
        ],
        EcuName::Transmission => &[0x0D, 0x42],
        EcuName::Hybrid => &[0x42, 0x5B],
    }
}

fn monitors(role: EcuName) -> Vec<Monitor> {
    match role {
        EcuName::Engine => vec![
            Monitor::Misfire,
            Monitor::FuelSystem,
            Monitor::Components,
            Monitor::Catalyst,
            Monitor::Evap,
            Monitor::O2Sensor,
            Monitor::O2Heater,
            Monitor::Egr,
        ],
        EcuName::Transmission | EcuName::Hybrid => vec![Monitor::Components],
    }
}

/// Response delays by ECU: an engine controller answers fastest, the gateway-routed 29-bit
/// controller slowest; all within J1979's P2 of 50 ms.
fn delay_range_ms(role: EcuName) -> (f64, f64) {
    match role {
        EcuName::Engine => (5.0, 14.0),
        EcuName::Transmission => (9.0, 22.0),
        EcuName::Hybrid => (15.0, 38.0),
    }
}

/// A stored set of PID values.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub dtc: Dtc,
    pub values: Vec<(u8, Vec<u8>)>,
}

/// Counters service 04 resets.
#[derive(Debug, Clone, Default)]
pub struct SinceClear {
    pub distance_km: f64,
    pub time_s: f64,
    pub warmups: u8,
    pub mil_distance_km: f64,
    pub mil_time_s: f64,
}

/// One ECU.
#[derive(Debug)]
pub struct Ecu {
    pub info: EcuInfo,
    pub role: EcuName,
    config: EcuConfig,
    /// Only the engine ECU answers the VIN.
    vin: Option<Vin>,
    fuel_type: u8,
    supported: SupportedPids,
    freeze_supported: SupportedPids,
    pub dtcs: Vec<DtcEntry>,
    /// UDS snapshot per code (same index as `dtcs`), taken at its first failure.
    snapshots: Vec<Option<Frame>>,
    pub readiness: Readiness,
    pub freeze: Option<Frame>,
    pub since_clear: SinceClear,
    rng: Rng,
}

/// Adds the bitmap PIDs a set of data PIDs implies: 0x00 always; each higher bitmap PID when
/// any PID above it is supported.
fn with_bitmaps(pids: impl IntoIterator<Item = u8>) -> SupportedPids {
    let mut set = SupportedPids::new();
    for p in pids {
        set.insert(p);
    }
    let highest = set.iter().last().unwrap_or(0);
    set.insert(0x00);
    for base in (0x20..=0xE0).step_by(0x20) {
        if let Ok(base) = u8::try_from(base)
            && highest > base
        {
            set.insert(base);
        }
    }
    set
}

impl Ecu {
    pub fn new(
        info: EcuInfo,
        role: EcuName,
        config: EcuConfig,
        vin: Option<Vin>,
        fuel_type: u8,
        faults: &[(usize, crate::scenario::Fault)],
        seed: u64,
    ) -> Ecu {
        let mut dtcs: Vec<DtcEntry> = Vec::new();
        for (index, fault) in faults {
            if fault.ecu != role {
                continue;
            }
            for &dtc in &fault.dtcs {
                match dtcs.iter_mut().find(|e| e.dtc == dtc) {
                    Some(entry) => entry.causes.push(*index),
                    None => dtcs.push(DtcEntry::new(
                        dtc,
                        TestKind::for_fault(fault.kind),
                        vec![*index],
                    )),
                }
            }
        }
        for code in default_codes(role) {
            if let Ok(dtc) = code.parse::<Dtc>()
                && !dtcs.iter().any(|e| e.dtc == dtc)
            {
                dtcs.push(DtcEntry::new(dtc, TestKind::for_code(dtc), Vec::new()));
            }
        }
        dtcs.sort_by_key(|e| e.dtc);
        let snapshots = vec![None; dtcs.len()];
        Ecu {
            info,
            role,
            config,
            vin,
            fuel_type,
            supported: with_bitmaps(live_pids(role).iter().copied()),
            freeze_supported: with_bitmaps(freeze_pids(role).iter().copied().chain([0x02])),
            dtcs,
            snapshots,
            readiness: Readiness::new(monitors(role)),
            freeze: None,
            since_clear: SinceClear::default(),
            rng: Rng::new(seed),
        }
    }

    /// The Mode 01 PIDs this ECU answers, bitmaps included.
    pub fn supported_pids(&self) -> &SupportedPids {
        &self.supported
    }

    pub fn mil(&self) -> bool {
        self.dtcs.iter().any(|e| e.mil)
    }

    /// Records what a verdict's transition asks for: a UDS snapshot at the first failure, the
    /// freeze frame at confirmation (a misfire's frame replaces another kind's, J1979).
    pub fn capture(&mut self, index: usize, transition: crate::faults::Transition, model: &Model) {
        let Some(entry) = self.dtcs.get(index) else {
            return;
        };
        let dtc = entry.dtc;
        let is_misfire = entry.kind == TestKind::Misfire;
        let frame = || Frame {
            dtc,
            values: freeze_pids(self.role)
                .iter()
                .filter_map(|&p| self.live(p, model).map(|d| (p, d)))
                .collect(),
        };
        match transition {
            crate::faults::Transition::FirstFailure => {
                let snap = frame();
                if let Some(slot) = self.snapshots.get_mut(index) {
                    *slot = Some(snap);
                }
            }
            crate::faults::Transition::BecameConfirmed => {
                let replace = match &self.freeze {
                    None => true,
                    Some(existing) => {
                        is_misfire
                            && self
                                .dtcs
                                .iter()
                                .find(|e| e.dtc == existing.dtc)
                                .is_none_or(|e| e.kind != TestKind::Misfire)
                    }
                };
                if replace {
                    self.freeze = Some(frame());
                }
            }
            crate::faults::Transition::BecamePending => {}
        }
    }

    /// Service 04 / UDS 0x14 for everything.
    pub fn clear_all(&mut self) {
        for e in &mut self.dtcs {
            e.clear();
        }
        for s in &mut self.snapshots {
            *s = None;
        }
        self.freeze = None;
        self.readiness.clear();
        self.since_clear = SinceClear::default();
    }

    fn delay(&mut self) -> Duration {
        let (lo, hi) = delay_range_ms(self.role);
        Duration::from_micros((self.rng.range(lo, hi) * 1000.0) as u64)
    }

    /// Answers one request. `model` is the car at the moment the request arrived.
    pub fn handle(&mut self, request: &[u8], functional: bool, model: &Model) -> Vec<Reply> {
        let delay = self.delay();
        let answer = match Request::parse(request) {
            Ok(req) => self.answer(&req, model),
            Err(err) => Err(nrc_for(request, &err)),
        };
        match answer {
            Ok(Answer::Now(payload)) => vec![Reply { delay, payload }],
            Ok(Answer::Slow(payload)) => {
                let service = request.first().copied().unwrap_or(0);
                let pending = NegativeResponse {
                    service,
                    nrc: Nrc::RESPONSE_PENDING,
                };
                let slow = Duration::from_micros((self.rng.range(250.0, 450.0) * 1000.0) as u64);
                vec![
                    Reply {
                        delay: Duration::from_millis(3).min(delay),
                        payload: pending.encode().to_vec(),
                    },
                    Reply {
                        delay: delay + slow,
                        payload,
                    },
                ]
            }
            Err(_) if functional => Vec::new(),
            Err(nrc) => {
                let service = request.first().copied().unwrap_or(0);
                vec![Reply {
                    delay,
                    payload: NegativeResponse { service, nrc }.encode().to_vec(),
                }]
            }
        }
    }

    fn answer(&mut self, req: &Request, model: &Model) -> Result<Answer, Nrc> {
        match req {
            Request::CurrentData { pids } => {
                let mut out = vec![sid::CURRENT_DATA + sid::POSITIVE_OFFSET];
                for &p in pids {
                    if let Some(data) = self.live(p, model) {
                        out.push(p);
                        out.extend_from_slice(&data);
                    }
                }
                if out.len() == 1 {
                    return Err(Nrc::REQUEST_OUT_OF_RANGE);
                }
                Ok(Answer::Now(out))
            }
            Request::FreezeFrame { pids } => self.freeze_frame(pids),
            Request::StoredDtcs => Ok(Answer::Now(
                self.dtc_list(sid::STORED_DTCS, |e| e.confirmed),
            )),
            Request::PendingDtcs => {
                Ok(Answer::Now(self.dtc_list(sid::PENDING_DTCS, |e| e.pending)))
            }
            Request::PermanentDtcs => Ok(Answer::Now(
                self.dtc_list(sid::PERMANENT_DTCS, |e| e.permanent),
            )),
            Request::ClearDtcs => {
                self.clear_all();
                Ok(Answer::Slow(vec![sid::CLEAR_DTCS + sid::POSITIVE_OFFSET]))
            }
            Request::VehicleInfo { infotype } => self.vehicle_info(*infotype),
            Request::UdsReadDtcInformation {
                sub_function,
                params,
            } => self.read_dtc_information(*sub_function, params),
            Request::UdsClearDiagnosticInformation { group } => self.uds_clear(*group),
        }
    }
}

/// What a request produced before framing: an answer to send now, or one that takes long
/// enough to need a response-pending first.
enum Answer {
    Now(Vec<u8>),
    Slow(Vec<u8>),
}

/// The NRC for a request `Request::parse` rejected.
fn nrc_for(request: &[u8], err: &ServiceError) -> Nrc {
    match err {
        ServiceError::UnknownService(_) | ServiceError::Empty => Nrc::SERVICE_NOT_SUPPORTED,
        // Service 01 with more than six PIDs, odd service 02 pairs, extra bytes after 03...
        _ => {
            let _ = request;
            Nrc::INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT
        }
    }
}
