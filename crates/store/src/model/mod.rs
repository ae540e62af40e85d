//! The pure half of ingest: from decoded envelopes and the state read from the database to the
//! rows to write. No I/O here, so DTC diffing, lead decisions and gap arithmetic are tested
//! without a database, and both backends share one set of rules.
//!
//! - `keys`: a batch sorted into deduplicated messages (by `(device_id, boot_id, seq)`) and
//!   statuses, and which of them were new;
//! - `dtc`: a DTC report diffed against the stored state, the events, state rows and leads it
//!   makes;
//! - `gaps`: sequence-gap arithmetic per boot;
//! - `partitions`: daily partition names and retention;
//! - here: the rows a batch writes ([`Plan`]) and [`plan`], which applies the batch in order.

mod dtc;
mod gaps;
mod keys;
mod partitions;
#[cfg(test)]
mod tests;

pub(crate) use dtc::*;
pub(crate) use gaps::*;
pub(crate) use keys::*;
pub(crate) use partitions::*;

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telltale_wire::v1;

use crate::{Envelope, StoreOptions, Uplink};

/// One telemetry row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TelemetryRow {
    pub(crate) vin: String,
    pub(crate) device_id: String,
    pub(crate) signal: String,
    pub(crate) value: f64,
    pub(crate) text: Option<String>,
    pub(crate) unit: String,
    pub(crate) pid: i64,
    pub(crate) ecu: i64,
    pub(crate) device_time: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) boot_id: Vec<u8>,
    pub(crate) seq: i64,
}

/// One DTC event row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DtcEventRow {
    pub(crate) vin: String,
    pub(crate) device_id: String,
    pub(crate) ecu: i64,
    pub(crate) code: String,
    pub(crate) kind: String,
    pub(crate) change: &'static str,
    pub(crate) mil_on: bool,
    pub(crate) device_time: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
    pub(crate) freeze_frame: Option<Value>,
    pub(crate) context: Value,
}

/// How a device row changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DeviceUpdate {
    pub(crate) device_id: String,
    pub(crate) vin: Option<String>,
    pub(crate) first_seen: DateTime<Utc>,
    pub(crate) last_seen: DateTime<Utc>,
    /// With `presence_at`: set only by status messages.
    pub(crate) online: bool,
    pub(crate) presence_at: Option<DateTime<Utc>>,
    pub(crate) agent_version: Option<String>,
}

/// How a vehicle row changes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VehicleUpdate {
    pub(crate) vin: String,
    pub(crate) first_seen: DateTime<Utc>,
    pub(crate) last_seen: DateTime<Utc>,
    pub(crate) last_device_id: String,
    pub(crate) info: Option<Value>,
}

/// A command's result, kept small: what the operator asks ("did my command work?").
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CommandResultRow {
    pub(crate) key: Key,
    pub(crate) command_id: String,
    pub(crate) ok: bool,
    pub(crate) error_code: i32,
    pub(crate) error: String,
    pub(crate) received_at: DateTime<Utc>,
}

/// What the database holds that the plan depends on.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub(crate) dtc: HashMap<StateKey, DtcState>,
    pub(crate) boots: HashMap<BootKey, BootState>,
}

/// Everything one batch writes (besides the dedupe keys, written first).
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub(crate) telemetry: Vec<TelemetryRow>,
    pub(crate) dtc_events: Vec<DtcEventRow>,
    /// Changed state rows only.
    pub(crate) dtc_state: Vec<(StateKey, DtcState)>,
    pub(crate) leads: Vec<LeadRow>,
    /// Changed boots only; their gap lists replace the stored ones.
    pub(crate) boots: Vec<(BootKey, BootState)>,
    pub(crate) new_gaps: u64,
    pub(crate) devices: Vec<DeviceUpdate>,
    pub(crate) vehicles: Vec<VehicleUpdate>,
    pub(crate) command_results: Vec<CommandResultRow>,
    /// The latest receive time among the fresh messages: when seq state was last updated.
    pub(crate) received_at: DateTime<Utc>,
}

impl Plan {
    /// What storing this plan did, for [`crate::Store::ingest`]'s caller.
    pub(crate) fn outcome(
        &self,
        new_messages: usize,
        duplicates: u64,
        leads: u64,
    ) -> crate::IngestOutcome {
        crate::IngestOutcome {
            new_messages: new_messages as u64,
            duplicates,
            samples: self.telemetry.len() as u64,
            dtc_events: self.dtc_events.len() as u64,
            leads,
            gaps: self.new_gaps,
        }
    }
}

/// The VINs whose DTC state and the boots whose seq state a batch needs.
pub(crate) fn wanted(
    fresh: &[(&Envelope, KeyRow)],
    statuses: &[&Envelope],
) -> (Vec<String>, Vec<BootKey>) {
    let mut vins = HashSet::new();
    let mut boots = HashSet::new();
    for (envelope, row) in fresh {
        if let Uplink::Dtc(report) = &envelope.message {
            vins.insert(dtc_vehicle(envelope, report));
        }
        boots.insert((row.key.device_id.clone(), row.key.boot_id.clone()));
    }
    boots.extend(
        statuses
            .iter()
            .filter_map(|e| drained_claim(e).map(|(k, _)| k)),
    );
    let mut vins: Vec<String> = vins.into_iter().collect();
    vins.sort();
    let mut boots: Vec<BootKey> = boots.into_iter().collect();
    boots.sort();
    (vins, boots)
}

fn vehicle_info_json(info: &v1::VehicleInfo) -> Value {
    let ecus: Vec<Value> = info
        .ecus
        .iter()
        .map(|e| {
            json!({
                "can_id": e.can_id,
                "name": e.name,
                "supported_pids": e.supported_pids,
                "calibration_ids": e.calibration_ids,
                "cvns": e.cvns,
            })
        })
        .collect();
    let schedule: Vec<Value> = info
        .schedule
        .iter()
        .map(|s| json!({"signal": s.signal, "pid": s.pid, "period_ms": s.period_ms}))
        .collect();
    json!({
        "ecus": ecus,
        "link": info.link,
        "agent_version": info.agent_version,
        "schedule": schedule,
    })
}

/// Applies the batch's fresh messages in order to the loaded state.
pub(crate) fn plan(
    fresh: &[(&Envelope, KeyRow)],
    statuses: &[&Envelope],
    mut loaded: Loaded,
    options: &StoreOptions,
) -> Plan {
    let mut plan = Plan::default();
    let mut changed_state: HashSet<StateKey> = HashSet::new();
    let mut changed_boots: HashSet<BootKey> = HashSet::new();
    let mut devices: BTreeMap<String, DeviceUpdate> = BTreeMap::new();
    let mut vehicles: BTreeMap<String, VehicleUpdate> = BTreeMap::new();

    for (envelope, row) in fresh {
        let at = envelope.received_at;
        plan.received_at = plan.received_at.max(at);
        let boot_key = (row.key.device_id.clone(), row.key.boot_id.clone());
        let boot = loaded.boots.entry(boot_key.clone()).or_default();
        if account_seq(boot, row.key.seq, at) {
            plan.new_gaps += 1;
        }
        changed_boots.insert(boot_key);

        let vin = match &envelope.message {
            Uplink::Telemetry(batch) => {
                for s in &batch.samples {
                    plan.telemetry.push(TelemetryRow {
                        vin: batch.vin.clone(),
                        device_id: envelope.device_id.clone(),
                        signal: s.signal.clone(),
                        value: s.value,
                        text: (!s.text.is_empty()).then(|| s.text.clone()),
                        unit: s.unit.clone(),
                        pid: i64::from(s.pid),
                        ecu: i64::from(s.ecu_can_id),
                        device_time: device_time(s.device_unix_ms, row.device_time),
                        received_at: at,
                        boot_id: row.key.boot_id.clone(),
                        seq: row.key.seq,
                    });
                }
                Some(batch.vin.clone())
            }
            Uplink::Dtc(report) => {
                apply_dtc_report(
                    &mut plan,
                    &mut loaded.dtc,
                    &mut changed_state,
                    envelope,
                    report,
                    options,
                );
                Some(report.vin.clone())
            }
            Uplink::Info(info) => {
                if !info.vin.is_empty() {
                    let v = touch_vehicle(&mut vehicles, &info.vin, envelope);
                    v.info = Some(vehicle_info_json(info));
                }
                let d = touch_device(&mut devices, envelope);
                if !info.agent_version.is_empty() {
                    d.agent_version = Some(info.agent_version.clone());
                }
                Some(info.vin.clone())
            }
            Uplink::CmdResult(result) => {
                plan.command_results.push(CommandResultRow {
                    key: row.key.clone(),
                    command_id: result.command_id.clone(),
                    ok: result.ok,
                    error_code: result.error_code,
                    error: result.error.clone(),
                    received_at: at,
                });
                None
            }
            Uplink::Status(_) => None,
        };
        let d = touch_device(&mut devices, envelope);
        if let Some(vin) = vin.filter(|v| !v.is_empty()) {
            d.vin = Some(vin.clone());
            touch_vehicle(&mut vehicles, &vin, envelope);
        }
    }

    for envelope in statuses {
        let Uplink::Status(status) = &envelope.message else {
            continue;
        };
        let d = touch_device(&mut devices, envelope);
        // Later in the batch wins; the database keeps the newest by receive time.
        if d.presence_at.is_none_or(|p| p <= envelope.received_at) {
            d.online = status.presence == v1::Presence::Online as i32;
            d.presence_at = Some(envelope.received_at);
        }
        if !status.agent_version.is_empty() {
            d.agent_version = Some(status.agent_version.clone());
        }
        if let Some((boot_key, last)) = drained_claim(envelope) {
            let boot = loaded.boots.entry(boot_key.clone()).or_default();
            if account_claim(boot, last, envelope.received_at) {
                plan.new_gaps += 1;
                changed_boots.insert(boot_key);
            }
        }
    }

    let mut states: Vec<StateKey> = changed_state.into_iter().collect();
    states.sort();
    for key in states {
        if let Some(state) = loaded.dtc.get(&key) {
            plan.dtc_state.push((key, state.clone()));
        }
    }
    let mut boots: Vec<BootKey> = changed_boots.into_iter().collect();
    boots.sort();
    for key in boots {
        if let Some(state) = loaded.boots.remove(&key) {
            plan.boots.push((key, state));
        }
    }
    plan.devices = devices.into_values().collect();
    plan.vehicles = vehicles.into_values().collect();
    plan
}

fn touch_device<'m>(
    devices: &'m mut BTreeMap<String, DeviceUpdate>,
    envelope: &Envelope,
) -> &'m mut DeviceUpdate {
    let at = envelope.received_at;
    let d = devices
        .entry(envelope.device_id.clone())
        .or_insert_with(|| DeviceUpdate {
            device_id: envelope.device_id.clone(),
            vin: None,
            first_seen: at,
            last_seen: at,
            // A device first heard of through data is connected; status corrects it.
            online: true,
            presence_at: None,
            agent_version: None,
        });
    d.first_seen = d.first_seen.min(at);
    d.last_seen = d.last_seen.max(at);
    d
}

fn touch_vehicle<'m>(
    vehicles: &'m mut BTreeMap<String, VehicleUpdate>,
    vin: &str,
    envelope: &Envelope,
) -> &'m mut VehicleUpdate {
    let at = envelope.received_at;
    let v = vehicles
        .entry(vin.to_owned())
        .or_insert_with(|| VehicleUpdate {
            vin: vin.to_owned(),
            first_seen: at,
            last_seen: at,
            last_device_id: envelope.device_id.clone(),
            info: None,
        });
    v.first_seen = v.first_seen.min(at);
    if at >= v.last_seen {
        v.last_seen = at;
        v.last_device_id = envelope.device_id.clone();
    }
    v
}
