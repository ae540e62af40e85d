//! Uplink messages as the agent makes them (protobuf from `telltale_wire`), for tests that
//! play a vehicle without running one: a [`Car`] is a device in one boot, numbering its
//! messages like the agent's spool does.

use std::time::{SystemTime, UNIX_EPOCH};

use prost::Message as _;
use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;

pub const VIN: &str = "WVWZZZ1JZXW000001";
/// The boot id of the free functions' messages.
pub const BOOT: [u8; 16] = [0xB0; 16];

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// One device in one boot.
#[derive(Debug, Clone)]
pub struct Car {
    pub device: String,
    pub boot: [u8; 16],
    pub vin: String,
}

impl Car {
    pub fn new(device: &str, boot: [u8; 16], vin: &str) -> Car {
        Car {
            device: device.to_owned(),
            boot,
            vin: vin.to_owned(),
        }
    }

    pub fn topic(&self, kind: Kind) -> String {
        topic::topic(&self.device, kind)
    }

    fn header(&self, seq: u64) -> Option<v1::UplinkHeader> {
        Some(v1::UplinkHeader {
            device_id: self.device.clone(),
            boot_id: self.boot.to_vec(),
            seq,
            created_unix_ms: now_ms(),
        })
    }

    /// A telemetry batch of `samples` samples: vehicle speed `speed`, then signals this
    /// project has never heard of (which the cloud must keep).
    pub fn telemetry(&self, seq: u64, speed: f64, samples: usize) -> Vec<u8> {
        let now = now_ms();
        let sample = |i: usize| {
            let (signal, pid, unit, value) = match i {
                0 => ("Vehicle.Speed".to_owned(), 0x0D, "km/h", speed),
                i => (format!("Vendor.Never.Heard.Of{i}"), 0xA6, "x", 7.0),
            };
            v1::Sample {
                signal,
                value,
                device_unix_ms: now,
                service: 1,
                pid,
                ecu_can_id: 0x7E8,
                unit: unit.into(),
                text: String::new(),
            }
        };
        v1::TelemetryBatch {
            header: self.header(seq),
            vin: self.vin.clone(),
            samples: (0..samples).map(sample).collect(),
        }
        .encode_to_vec()
    }

    /// A DTC report in which `code` (stored, MIL on) has just appeared on the engine ECU.
    pub fn dtc(&self, seq: u64, code: &str) -> Vec<u8> {
        let d = v1::Dtc {
            code: code.into(),
            kind: v1::DtcKind::Stored as i32,
            ..v1::Dtc::default()
        };
        v1::DtcReport {
            header: self.header(seq),
            vin: self.vin.clone(),
            device_unix_ms: now_ms(),
            ecus: vec![v1::EcuDtcs {
                ecu_can_id: 0x7E8,
                mil_on: true,
                current: vec![d.clone()],
                appeared: vec![d],
                ..v1::EcuDtcs::default()
            }],
            reason: v1::DtcReportReason::Changed as i32,
            ..v1::DtcReport::default()
        }
        .encode_to_vec()
    }

    pub fn info(&self, seq: u64) -> Vec<u8> {
        v1::VehicleInfo {
            header: self.header(seq),
            vin: self.vin.clone(),
            link: "sim:test".into(),
            agent_version: "test".into(),
            bus: "ISO 15765-4 CAN 11-bit".into(),
            ..v1::VehicleInfo::default()
        }
        .encode_to_vec()
    }

    /// A status (not spooled: seq 0) saying the device is `presence` and has numbered its
    /// messages up to `last_seq`.
    pub fn status(&self, presence: v1::Presence, last_seq: u64) -> Vec<u8> {
        v1::Status {
            header: self.header(0),
            presence: presence as i32,
            last_seq,
            ..v1::Status::default()
        }
        .encode_to_vec()
    }
}

fn car(device: &str) -> Car {
    Car::new(device, BOOT, VIN)
}

/// A two-sample telemetry batch from `device` in boot [`BOOT`].
pub fn telemetry(device: &str, seq: u64, speed: f64) -> Vec<u8> {
    car(device).telemetry(seq, speed, 2)
}

pub fn dtc(device: &str, seq: u64, code: &str) -> Vec<u8> {
    car(device).dtc(seq, code)
}

pub fn info(device: &str, seq: u64) -> Vec<u8> {
    car(device).info(seq)
}

/// An online status.
pub fn status(device: &str) -> Vec<u8> {
    car(device).status(v1::Presence::Online, 0)
}
