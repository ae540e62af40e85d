//! The simulated fleet: who the vehicles are and exactly what each one publishes, message by
//! message, as `telltale-agent` would (same protobuf types, topics, headers and signal names).
//!
//! Everything here is a pure function of the fleet's parameters and the message's place in the
//! run, so the generator, the COPY ceiling and the store comparison all build the same rows, and
//! the expected totals are known before anything is sent.

use std::time::Duration;

use telltale_wire::topic::{self, Kind};
use telltale_wire::v1;

/// One sampled signal: the PID, the name the agent gives it (COVESA VSS where VSS has one,
/// see `crates/agent/src/vehicle/signals.rs`), the unit telltale-obd decodes it in, and a
/// plausible range for the made-up values.
#[derive(Debug, Clone, Copy)]
pub struct Signal {
    pub pid: u8,
    pub name: &'static str,
    pub unit: &'static str,
    base: f64,
    swing: f64,
}

const fn sig(pid: u8, name: &'static str, unit: &'static str, base: f64, swing: f64) -> Signal {
    Signal {
        pid,
        name,
        unit,
        base,
        swing,
    }
}

/// The agent's benchmark schedule: twenty engine PIDs (the same set `benches/footprint.py`
/// polls), in its order.
pub const SIGNALS: [Signal; 20] = [
    sig(0x04, "Vehicle.OBD.EngineLoad", "%", 35.0, 25.0),
    sig(
        0x05,
        "Vehicle.Powertrain.CombustionEngine.ECT",
        "°C",
        88.0,
        6.0,
    ),
    sig(0x06, "Vehicle.OBD.ShortTermFuelTrim1", "%", 0.0, 4.0),
    sig(0x07, "Vehicle.OBD.LongTermFuelTrim1", "%", 1.5, 2.0),
    sig(
        0x0B,
        "Vehicle.Powertrain.CombustionEngine.MAP",
        "kPa",
        45.0,
        20.0,
    ),
    sig(
        0x0C,
        "Vehicle.Powertrain.CombustionEngine.Speed",
        "rpm",
        1800.0,
        900.0,
    ),
    sig(0x0D, "Vehicle.Speed", "km/h", 60.0, 40.0),
    sig(0x0E, "Vehicle.OBD.TimingAdvance", "°", 12.0, 8.0),
    sig(0x0F, "Vehicle.OBD.IntakeTemp", "°C", 30.0, 5.0),
    sig(
        0x10,
        "Vehicle.Powertrain.CombustionEngine.MAF",
        "g/s",
        12.0,
        8.0,
    ),
    sig(0x11, "Vehicle.OBD.ThrottlePosition", "%", 20.0, 15.0),
    sig(0x1F, "Vehicle.OBD.RunTime", "s", 1200.0, 600.0),
    sig(
        0x2F,
        "Vehicle.Powertrain.FuelSystem.RelativeLevel",
        "%",
        55.0,
        30.0,
    ),
    sig(0x33, "Vehicle.OBD.BarometricPressure", "kPa", 101.0, 1.0),
    sig(
        0x3C,
        "Vehicle.OBD.Catalyst.Bank1.Temperature1",
        "°C",
        520.0,
        80.0,
    ),
    sig(
        0x42,
        "Vehicle.LowVoltageBattery.CurrentVoltage",
        "V",
        13.9,
        0.4,
    ),
    sig(0x43, "Vehicle.OBD.AbsoluteLoad", "%", 30.0, 20.0),
    sig(0x46, "Vehicle.Exterior.AirTemperature", "°C", 18.0, 4.0),
    sig(
        0x5C,
        "Vehicle.Powertrain.CombustionEngine.EOT",
        "°C",
        95.0,
        8.0,
    ),
    sig(0xA6, "Vehicle.TraveledDistance", "km", 48_000.0, 30_000.0),
];

/// The engine ECU every sample comes from (the first OBD-II responder, 11-bit ids).
pub const ECU: u32 = 0x7E8;

/// What the fleet sends: `vehicles` cars, each a VehicleInfo and a status at start, then
/// `batches_per_vehicle` telemetry batches of `samples_per_batch` samples, one every
/// `interval`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fleet {
    pub vehicles: u32,
    pub samples_per_batch: u32,
    pub batches_per_vehicle: u32,
    /// Time between two batches of one vehicle.
    pub interval: Duration,
    /// Distinguishes this run's boots from earlier runs' (the boot ids are derived from it).
    pub run: u64,
}

/// Telemetry seqs start here: seq 1 of every boot is the VehicleInfo, as on a real agent
/// whose first spooled message is its info.
pub const FIRST_TELEMETRY_SEQ: u64 = 2;

impl Fleet {
    pub fn device_id(&self, v: u32) -> String {
        format!("load-{v:05}")
    }

    /// A 17-character VIN per vehicle (not check-digit valid; the store does not care).
    pub fn vin(&self, v: u32) -> String {
        format!("TLLOAD{v:011}")
    }

    /// 16 bytes, as the agent's random boot id; unique per run and vehicle.
    pub fn boot_id(&self, v: u32) -> Vec<u8> {
        let mut id = Vec::with_capacity(16);
        id.extend_from_slice(&self.run.to_le_bytes());
        id.extend_from_slice(&u64::from(v).to_le_bytes());
        id
    }

    fn header(&self, v: u32, seq: u64, created_unix_ms: i64) -> v1::UplinkHeader {
        v1::UplinkHeader {
            device_id: self.device_id(v),
            boot_id: self.boot_id(v),
            seq,
            created_unix_ms,
        }
    }

    /// The VehicleInfo the agent sends after discovery (seq 1).
    pub fn info(&self, v: u32, now_ms: i64) -> v1::VehicleInfo {
        v1::VehicleInfo {
            header: Some(self.header(v, 1, now_ms)),
            vin: self.vin(v),
            ecus: vec![v1::EcuInfo {
                can_id: ECU,
                name: "ECM-EngineControl".into(),
                supported_pids: SIGNALS.iter().map(|s| u32::from(s.pid)).collect(),
                calibration_ids: vec!["LOADCAL0001".into()],
                cvns: vec!["1A2B3C4D".into()],
            }],
            link: "sim:load".into(),
            agent_version: "telltale-load".into(),
            bus: "ISO 15765-4 CAN 11-bit".into(),
            schedule: SIGNALS
                .iter()
                .map(|s| v1::SignalPeriod {
                    signal: s.name.into(),
                    pid: u32::from(s.pid),
                    period_ms: 1_000,
                })
                .collect(),
        }
    }

    /// The retained online status the agent publishes on connect (seq 0: not spooled).
    pub fn status(&self, v: u32, now_ms: i64) -> v1::Status {
        v1::Status {
            header: Some(self.header(v, 0, now_ms)),
            presence: v1::Presence::Online as i32,
            link_state: "up".into(),
            spool_messages: 0,
            spool_bytes: 0,
            dropped_telemetry: 0,
            dropped_dtc_reports: 0,
            agent_version: "telltale-load".into(),
            dropped_other: 0,
            last_seq: 1,
            vehicle_awake: true,
        }
    }

    /// Telemetry batch `k` (from 0) of vehicle `v`, made at `now_ms`: seq
    /// `FIRST_TELEMETRY_SEQ + k`. Samples go round the signal list; each round of the list is
    /// one poll, and the polls are spread over the interval before `now_ms`, the last one at
    /// `now_ms` (so a message's newest sample time is its creation time).
    pub fn telemetry(&self, v: u32, k: u32, now_ms: i64) -> v1::TelemetryBatch {
        let n = self.samples_per_batch as usize;
        let polls = n.div_ceil(SIGNALS.len()).max(1);
        let step_ms = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX) / polls as i64;
        let phase = f64::from(v) * 0.37 + f64::from(k) * 0.11;
        let samples = (0..n)
            .map(|j| {
                let s = &SIGNALS[j % SIGNALS.len()];
                let poll = j / SIGNALS.len();
                let back = (polls - 1 - poll) as i64;
                v1::Sample {
                    signal: s.name.into(),
                    value: s.base + s.swing * (phase + j as f64 * 0.05).sin(),
                    device_unix_ms: now_ms.saturating_sub(back.saturating_mul(step_ms)),
                    service: 0x01,
                    pid: u32::from(s.pid),
                    ecu_can_id: ECU,
                    unit: s.unit.into(),
                    text: String::new(),
                }
            })
            .collect();
        v1::TelemetryBatch {
            header: Some(self.header(v, FIRST_TELEMETRY_SEQ + u64::from(k), now_ms)),
            vin: self.vin(v),
            samples,
        }
    }

    pub fn topic(&self, v: u32, kind: Kind) -> String {
        topic::topic(&self.device_id(v), kind)
    }

    pub fn telemetry_messages(&self) -> u64 {
        u64::from(self.vehicles) * u64::from(self.batches_per_vehicle)
    }

    pub fn samples(&self) -> u64 {
        self.telemetry_messages() * u64::from(self.samples_per_batch)
    }

    /// Everything published: an info and a status per vehicle, and the telemetry.
    pub fn messages(&self) -> u64 {
        u64::from(self.vehicles) * 2 + self.telemetry_messages()
    }

    /// Telemetry batches per second over the whole fleet.
    pub fn batch_rate(&self) -> f64 {
        f64::from(self.vehicles) / self.interval.as_secs_f64().max(1e-9)
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use telltale_wire::topic;

    use super::*;

    fn fleet() -> Fleet {
        Fleet {
            vehicles: 3,
            samples_per_batch: 45,
            batches_per_vehicle: 4,
            interval: Duration::from_secs(10),
            run: 7,
        }
    }

    #[test]
    fn messages_are_what_the_agent_sends() {
        let f = fleet();
        let b = f.telemetry(2, 0, 1_700_000_000_000);
        let Some(h) = &b.header else {
            panic!("no header")
        };
        assert_eq!(h.device_id, "load-00002");
        assert_eq!(h.seq, 2, "seq 1 is the info");
        assert_eq!(h.boot_id.len(), 16);
        assert_eq!(b.vin.len(), 17);
        assert_eq!(b.samples.len(), 45);
        assert_eq!(b.samples[0].signal, "Vehicle.OBD.EngineLoad");
        assert_eq!(b.samples[6].signal, "Vehicle.Speed");
        assert_eq!(b.samples[6].pid, 0x0D);
        // Three polls over 10 s: the last sample is at the creation time.
        assert_eq!(b.samples[44].device_unix_ms, 1_700_000_000_000);
        assert_eq!(b.samples[0].device_unix_ms, 1_700_000_000_000 - 2 * 3_333);
        let bytes = b.encode_to_vec();
        assert_eq!(v1::TelemetryBatch::decode(bytes.as_slice()).ok(), Some(b));
        assert_eq!(f.info(2, 0).header.map(|h| h.seq), Some(1));
        assert_eq!(f.status(2, 0).header.map(|h| h.seq), Some(0));
        assert_eq!(
            topic::parse(&f.topic(2, Kind::Telemetry)),
            Ok(("load-00002", Kind::Telemetry))
        );
    }

    #[test]
    fn totals_and_distinct_boots() {
        let f = fleet();
        assert_eq!(f.telemetry_messages(), 12);
        assert_eq!(f.samples(), 12 * 45);
        assert_eq!(f.messages(), 6 + 12);
        assert_ne!(f.boot_id(1), f.boot_id(2));
        let other = Fleet { run: 8, ..fleet() };
        assert_ne!(f.boot_id(1), other.boot_id(1));
        assert!((f.batch_rate() - 0.3).abs() < 1e-9);
    }
}
