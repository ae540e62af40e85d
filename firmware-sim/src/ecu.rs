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
//! What this module does not do: step the model or run monitors (see [`crate::vehicle`] and
//! [`crate::faults`]), or frame anything for a bus.

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
            Request::StoredDtcs => Ok(Answer::Now(self.dtc_list(sid::STORED_DTCS, |e| e.confirmed))),
            Request::PendingDtcs => Ok(Answer::Now(self.dtc_list(sid::PENDING_DTCS, |e| e.pending))),
            Request::PermanentDtcs => {
                Ok(Answer::Now(self.dtc_list(sid::PERMANENT_DTCS, |e| e.permanent)))
            }
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

    fn dtc_list(&self, service: u8, pick: impl Fn(&DtcEntry) -> bool) -> Vec<u8> {
        let codes: Vec<Dtc> = self.dtcs.iter().filter(|e| pick(e)).map(|e| e.dtc).collect();
        let mut out = vec![service + sid::POSITIVE_OFFSET, u8::try_from(codes.len()).unwrap_or(u8::MAX)];
        for dtc in codes.iter().take(usize::from(u8::MAX)) {
            out.extend_from_slice(&dtc.to_bytes());
        }
        out
    }

    fn freeze_frame(&self, pairs: &[(u8, u8)]) -> Result<Answer, Nrc> {
        let mut out = vec![sid::FREEZE_FRAME + sid::POSITIVE_OFFSET];
        for &(p, frame) in pairs {
            if frame != 0 || !self.freeze_supported.contains(p) {
                continue;
            }
            let data = if pid::is_bitmap_pid(p) {
                self.freeze_supported.bitmap(p).ok().map(Vec::from)
            } else if p == 0x02 {
                // No frame stored: PID 02 reads 00 00 (J1979).
                Some(
                    self.freeze
                        .as_ref()
                        .map_or(vec![0, 0], |f| f.dtc.to_bytes().to_vec()),
                )
            } else {
                self.freeze.as_ref().and_then(|f| {
                    f.values
                        .iter()
                        .find(|(q, _)| *q == p)
                        .map(|(_, d)| d.clone())
                })
            };
            if let Some(data) = data {
                out.extend_from_slice(&[p, frame]);
                out.extend_from_slice(&data);
            }
        }
        if out.len() == 1 {
            return Err(Nrc::REQUEST_OUT_OF_RANGE);
        }
        Ok(Answer::Now(out))
    }

    fn infotypes(&self) -> SupportedPids {
        let mut set = SupportedPids::new();
        if self.vin.is_some() {
            set.insert(0x02);
        }
        set.insert(0x04);
        set.insert(0x06);
        set.insert(0x0A);
        set
    }

    fn vehicle_info(&self, infotype: u8) -> Result<Answer, Nrc> {
        let mut out = vec![sid::VEHICLE_INFO + sid::POSITIVE_OFFSET, infotype];
        match infotype {
            0x00 => {
                let bitmap = self
                    .infotypes()
                    .bitmap(0x00)
                    .map_err(|_| Nrc::REQUEST_OUT_OF_RANGE)?;
                out.extend_from_slice(&bitmap);
            }
            0x02 => {
                let vin = self.vin.as_ref().ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
                out.push(1);
                out.extend_from_slice(vin.as_str().as_bytes());
            }
            0x04 => {
                out.push(u8::try_from(self.config.calibration_ids.len()).unwrap_or(0));
                for id in &self.config.calibration_ids {
                    out.extend_from_slice(&padded(id.as_bytes(), 16));
                }
            }
            0x06 => {
                out.push(u8::try_from(self.config.cvns.len()).unwrap_or(0));
                for cvn in &self.config.cvns {
                    out.extend_from_slice(cvn);
                }
            }
            0x0A => {
                // Acronym (4) '-' name (15), NUL padded: 20 bytes (J1979 infotype 0A).
                out.push(1);
                out.extend_from_slice(&padded(self.config.acronym.as_bytes(), 4));
                out.push(b'-');
                out.extend_from_slice(&padded(self.config.long_name.as_bytes(), 15));
            }
            _ => return Err(Nrc::REQUEST_OUT_OF_RANGE),
        }
        Ok(Answer::Now(out))
    }

    fn read_dtc_information(&self, sub_function: u8, params: &[u8]) -> Result<Answer, Nrc> {
        let mut out = vec![uds::READ_DTC_INFORMATION_RESPONSE, sub_function];
        let expect_len = |n: usize| {
            if params.len() == n {
                Ok(())
            } else {
                Err(Nrc::INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT)
            }
        };
        match sub_function {
            uds::REPORT_NUMBER_OF_DTC_BY_STATUS_MASK | uds::REPORT_DTC_BY_STATUS_MASK => {
                expect_len(1)?;
                let mask = params.first().copied().unwrap_or(0) & STATUS_AVAILABILITY;
                let matching = self
                    .dtcs
                    .iter()
                    .filter(|e| e.uds_status().0 & mask != 0);
                out.push(STATUS_AVAILABILITY);
                if sub_function == uds::REPORT_NUMBER_OF_DTC_BY_STATUS_MASK {
                    out.push(DtcFormat::Iso15031_6.to_byte());
                    let count = u16::try_from(matching.count()).unwrap_or(u16::MAX);
                    out.extend_from_slice(&count.to_be_bytes());
                } else {
                    for e in matching {
                        push_record(&mut out, e);
                    }
                }
            }
            uds::REPORT_SUPPORTED_DTC => {
                expect_len(0)?;
                out.push(STATUS_AVAILABILITY);
                for e in &self.dtcs {
                    push_record(&mut out, e);
                }
            }
            uds::REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER
            | uds::REPORT_DTC_EXT_DATA_RECORD_BY_DTC_NUMBER => {
                expect_len(4)?;
                let (dtc_bytes, record) = match params {
                    [a, b, c, r] => ([*a, *b, *c], *r),
                    _ => return Err(Nrc::INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT),
                };
                let wanted = UdsDtc::from_bytes(dtc_bytes);
                let (index, entry) = self
                    .dtcs
                    .iter()
                    .enumerate()
                    .find(|(_, e)| UdsDtc::new(e.dtc, e.ftb) == wanted)
                    .ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
                push_record(&mut out, entry);
                if sub_function == uds::REPORT_DTC_SNAPSHOT_RECORD_BY_DTC_NUMBER {
                    if record != SNAPSHOT_RECORD && record != uds::ALL_RECORDS {
                        return Err(Nrc::REQUEST_OUT_OF_RANGE);
                    }
                    if let Some(Some(snap)) = self.snapshots.get(index) {
                        out.push(SNAPSHOT_RECORD);
                        out.push(u8::try_from(snap.values.len()).unwrap_or(0));
                        for (p, data) in &snap.values {
                            out.extend_from_slice(&(DID_OBD_PID_BASE | u16::from(*p)).to_be_bytes());
                            out.extend_from_slice(data);
                        }
                    }
                } else {
                    // Record 01: occurrence counter; record 02: warm-ups since last failure.
                    let aging = entry_aging(entry);
                    match record {
                        0x01 => out.extend_from_slice(&[0x01, entry.occurrences]),
                        0x02 => out.extend_from_slice(&[0x02, aging]),
                        uds::ALL_RECORDS => {
                            out.extend_from_slice(&[0x01, entry.occurrences, 0x02, aging]);
                        }
                        _ => return Err(Nrc::REQUEST_OUT_OF_RANGE),
                    }
                }
            }
            _ => return Err(Nrc::SUB_FUNCTION_NOT_SUPPORTED),
        }
        Ok(Answer::Now(out))
    }

    fn uds_clear(&mut self, group: u32) -> Result<Answer, Nrc> {
        let response = vec![uds::CLEAR_DIAGNOSTIC_INFORMATION_RESPONSE];
        if group == GROUP_ALL || group == GROUP_EMISSIONS {
            self.clear_all();
            return Ok(Answer::Slow(response));
        }
        let index = self
            .dtcs
            .iter()
            .position(|e| UdsDtc::new(e.dtc, e.ftb).raw() == group || UdsDtc::new(e.dtc, 0).raw() == group)
            .ok_or(Nrc::REQUEST_OUT_OF_RANGE)?;
        if let Some(e) = self.dtcs.get_mut(index) {
            e.clear();
            if self.freeze.as_ref().is_some_and(|f| f.dtc == e.dtc) {
                self.freeze = None;
            }
        }
        if let Some(s) = self.snapshots.get_mut(index) {
            *s = None;
        }
        Ok(Answer::Slow(response))
    }

    /// The data bytes of a Mode 01 PID right now, if this ECU supports it.
    pub fn live(&self, p: u8, m: &Model) -> Option<Vec<u8>> {
        if !self.supported.contains(p) {
            return None;
        }
        if pid::is_bitmap_pid(p) {
            return self.supported.bitmap(p).ok().map(Vec::from);
        }
        let confirmed = self.dtcs.iter().filter(|e| e.confirmed).count();
        let a = u8::try_from(confirmed.min(0x7F)).unwrap_or(0x7F) | if self.mil() { 0x80 } else { 0 };
        let values: Vec<f64> = match p {
            0x01 => {
                let [b, c, d] = self.readiness.bytes(false);
                return Some(vec![a, b, c, d]);
            }
            0x41 => {
                let [b, c, d] = self.readiness.bytes(true);
                return Some(vec![0, b, c, d]);
            }
            0x03 => return Some(vec![m.fuel_system.code(), 0]),
            0x13 => return Some(vec![0x03]),
            0x1C => return Some(vec![0x01]),
            0x51 => return Some(vec![self.fuel_type]),
            0x04 => vec![m.load],
            0x05 => vec![m.coolant_c],
            0x06 => vec![m.stft],
            0x07 => vec![m.ltft],
            0x0B => vec![m.map_kpa],
            0x0C => vec![m.rpm],
            0x0D => vec![m.speed_kmh],
            0x0E => vec![m.timing_advance],
            0x0F => vec![m.iat_c],
            0x10 => vec![m.maf_gs],
            0x11 => vec![m.throttle],
            0x14 => vec![m.o2_upstream_v, m.stft],
            0x15 => vec![m.o2_downstream_v, f64::NAN],
            0x1F => vec![m.runtime_s],
            0x21 => vec![self.since_clear.mil_distance_km],
            0x2F => vec![m.fuel_level_percent()],
            0x30 => vec![f64::from(self.since_clear.warmups)],
            0x31 => vec![self.since_clear.distance_km],
            0x32 => vec![m.evap_pa],
            0x33 => vec![m.baro_kpa],
            0x3C => vec![m.catalyst_c],
            0x42 => vec![m.voltage],
            0x43 => vec![m.load * m.map_kpa / m.baro_kpa.max(1.0) * 1.1],
            0x44 => vec![if m.engine_running { 1.0 } else { 0.0 }],
            0x45 => vec![(m.throttle - 7.0) / 0.85],
            0x46 => vec![m.ambient_c],
            0x49 => vec![if m.engine_running { 14.0 + m.throttle * 0.7 } else { 14.0 }],
            0x4C => vec![m.throttle],
            0x4D => vec![self.since_clear.mil_time_s / 60.0],
            0x4E => vec![self.since_clear.time_s / 60.0],
            0x5B => vec![m.hybrid_battery_life],
            0x5C => vec![m.oil_c],
            0x5E => vec![m.fuel_rate_lph],
            0xA6 => vec![m.odometer_km],
            _ => return None,
        };
        encode_clamped(p, &values)
    }
}

/// What a request produced before framing: an answer to send now, or one that takes long
/// enough to need a response-pending first.
enum Answer {
    Now(Vec<u8>),
    Slow(Vec<u8>),
}

fn entry_aging(e: &DtcEntry) -> u8 {
    if e.failed_this_cycle { 0 } else { e.occurrences.min(1) }
}

fn push_record(out: &mut Vec<u8>, e: &DtcEntry) {
    out.extend_from_slice(&UdsDtc::new(e.dtc, e.ftb).to_bytes());
    out.push(e.uds_status().0 & STATUS_AVAILABILITY);
}

fn padded(bytes: &[u8], len: usize) -> Vec<u8> {
    let mut out: Vec<u8> = bytes.iter().copied().take(len).collect();
    out.resize(len, 0);
    out
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

/// Encodes values into a linear PID, clamping each into what the PID can carry (a real
/// sensor saturates; the encoder refuses).
fn encode_clamped(p: u8, values: &[f64]) -> Option<Vec<u8>> {
    let info = pid::info(p)?;
    let Formula::Linear(fields) = info.formula else {
        return None;
    };
    let clamped: Vec<f64> = fields
        .iter()
        .zip(values)
        .map(|(field, &v)| {
            if v.is_nan() {
                return v;
            }
            let (lo, hi) = field.raw_range();
            let (a, b) = (field.physical(lo), field.physical(hi));
            v.clamp(a.min(b), a.max(b))
        })
        .collect();
    pid::encode(p, &clamped).ok()
}

/// Whether a status matches a mask (for tests and callers).
pub fn status_matches(status: DtcStatus, mask: u8) -> bool {
    status.0 & mask & STATUS_AVAILABILITY != 0
}
