//! The pure half of ingest: from decoded envelopes and the state read from the database to the
//! rows to write. No I/O here, so DTC diffing, lead decisions and gap arithmetic are tested
//! without a database, and both backends share one set of rules.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Datelike, NaiveDate, TimeDelta, Utc};
use serde_json::{Value, json};
use telltale_wire::v1;

use crate::{Envelope, StoreError, StoreOptions, Uplink};

/// The ECU number the vehicle-wide MIL state is kept under (no OBD responder uses CAN id 0).
pub(crate) const MIL_ECU: i64 = 0;
/// The code and kind of the vehicle-wide MIL state row.
pub(crate) const MIL_CODE: &str = "MIL";
pub(crate) const MIL_KIND: &str = "mil";

/// A message's identity: what makes a redelivery recognisable.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) device_id: String,
    pub(crate) boot_id: Vec<u8>,
    pub(crate) seq: i64,
}

/// A row of the dedupe table.
#[derive(Debug, Clone)]
pub(crate) struct KeyRow {
    pub(crate) key: Key,
    pub(crate) kind: &'static str,
    pub(crate) device_time: DateTime<Utc>,
    pub(crate) received_at: DateTime<Utc>,
}

/// A batch sorted into what is deduplicated and what is not.
#[derive(Debug)]
pub(crate) struct Split<'a> {
    /// First occurrence in the batch of each key, in batch order.
    pub(crate) keyed: Vec<(&'a Envelope, KeyRow)>,
    /// Presence messages (seq 0), in batch order.
    pub(crate) statuses: Vec<&'a Envelope>,
    /// Messages whose key came earlier in the same batch.
    pub(crate) in_batch_duplicates: u64,
}

fn header(message: &Uplink) -> Option<&v1::UplinkHeader> {
    match message {
        Uplink::Telemetry(m) => m.header.as_ref(),
        Uplink::Dtc(m) => m.header.as_ref(),
        Uplink::Info(m) => m.header.as_ref(),
        Uplink::CmdResult(m) => m.header.as_ref(),
        Uplink::Status(m) => m.header.as_ref(),
    }
}

fn kind_of(message: &Uplink) -> &'static str {
    match message {
        Uplink::Telemetry(_) => "telemetry",
        Uplink::Dtc(_) => "dtc",
        Uplink::Info(_) => "info",
        Uplink::CmdResult(_) => "cmd-result",
        Uplink::Status(_) => "status",
    }
}

/// A device's clock reading as a UTC time, or `fallback` when it is not a plausible date.
///
/// A car's clock can say 1970 or 2150; both are kept (the device time is evidence), but a value
/// outside years 1900..=9999 cannot be stored in both databases, so the receive time stands in.
pub(crate) fn device_time(unix_ms: i64, fallback: DateTime<Utc>) -> DateTime<Utc> {
    match DateTime::from_timestamp_millis(unix_ms) {
        Some(t) if (1900..=9999).contains(&t.year()) => t,
        _ => fallback,
    }
}

/// Sorts a batch: keys for the deduplicated messages (in-batch repeats dropped), statuses aside.
///
/// A message without a header gets the empty boot id and seq 0; the ingest rejects those before
/// they get here, so this only keeps the store total.
pub(crate) fn split(batch: &[Envelope]) -> Result<Split<'_>, StoreError> {
    let mut seen = HashSet::new();
    let mut out = Split {
        keyed: Vec::new(),
        statuses: Vec::new(),
        in_batch_duplicates: 0,
    };
    for envelope in batch {
        if matches!(envelope.message, Uplink::Status(_)) {
            out.statuses.push(envelope);
            continue;
        }
        let default = v1::UplinkHeader::default();
        let h = header(&envelope.message).unwrap_or(&default);
        let seq = i64::try_from(h.seq).map_err(|_| StoreError::SeqOutOfRange {
            device_id: envelope.device_id.clone(),
            seq: h.seq,
        })?;
        let key = Key {
            device_id: envelope.device_id.clone(),
            boot_id: h.boot_id.clone(),
            seq,
        };
        if !seen.insert(key.clone()) {
            out.in_batch_duplicates += 1;
            continue;
        }
        let row = KeyRow {
            key,
            kind: kind_of(&envelope.message),
            device_time: device_time(h.created_unix_ms, envelope.received_at),
            received_at: envelope.received_at,
        };
        out.keyed.push((envelope, row));
    }
    Ok(out)
}

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

/// Identity of a `dtc_state` row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct StateKey {
    pub(crate) vin: String,
    pub(crate) ecu: i64,
    pub(crate) code: String,
    pub(crate) kind: String,
}

/// A code's state on one ECU. Rows stay after the code clears (`active = false`) so the
/// occurrence counter survives and the next appearance is counted as a new one.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct DtcState {
    pub(crate) active: bool,
    pub(crate) since: DateTime<Utc>,
    pub(crate) occurrence: i64,
    pub(crate) updated_at: DateTime<Utc>,
}

/// A lead for the outbox.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeadRow {
    pub(crate) idempotency_key: String,
    pub(crate) vin: String,
    pub(crate) device_id: String,
    pub(crate) ecu: i64,
    pub(crate) code: String,
    pub(crate) reason: &'static str,
    pub(crate) occurrence: i64,
    pub(crate) created_at: DateTime<Utc>,
}

/// A run of missing seqs, with when it was first seen.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GapSpan {
    pub(crate) first: i64,
    pub(crate) last: i64,
    pub(crate) detected_at: DateTime<Utc>,
}

/// What is known about one boot of one device: the highest seq stored and the holes below it.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct BootState {
    pub(crate) max_seq: i64,
    pub(crate) gaps: Vec<GapSpan>,
}

/// The device and boot a [`BootState`] belongs to.
pub(crate) type BootKey = (String, Vec<u8>);

/// Accounts for one stored seq. Returns whether a new gap was recorded.
///
/// Above `max + 1` the skipped seqs become a gap; at or below `max` the seq fills (shrinks,
/// splits or closes) the gap it falls in. A boot seen for the first time starts from 0, since
/// the agent numbers each boot from 1.
pub(crate) fn account_seq(state: &mut BootState, seq: i64, now: DateTime<Utc>) -> bool {
    if seq > state.max_seq {
        let recorded = seq > state.max_seq + 1;
        if recorded {
            state.gaps.push(GapSpan {
                first: state.max_seq + 1,
                last: seq - 1,
                detected_at: now,
            });
        }
        state.max_seq = seq;
        return recorded;
    }
    let Some(i) = state
        .gaps
        .iter()
        .position(|g| g.first <= seq && seq <= g.last)
    else {
        return false;
    };
    let gap = state.gaps.remove(i);
    let mut pieces = Vec::new();
    if gap.first < seq {
        pieces.push(GapSpan {
            first: gap.first,
            last: seq - 1,
            detected_at: gap.detected_at,
        });
    }
    if seq < gap.last {
        pieces.push(GapSpan {
            first: seq + 1,
            last: gap.last,
            detected_at: gap.detected_at,
        });
    }
    for (k, piece) in pieces.into_iter().enumerate() {
        state.gaps.insert(i + k, piece);
    }
    false
}

/// A status whose agent had nothing left in its spool claims that every message of its boot
/// up to `last_seq` was acknowledged by the broker (or dropped by the spool for space): the boot
/// and that seq, or `None` for any other status.
pub(crate) fn drained_claim(envelope: &Envelope) -> Option<(BootKey, i64)> {
    let Uplink::Status(status) = &envelope.message else {
        return None;
    };
    let h = status.header.as_ref()?;
    let last = i64::try_from(status.last_seq).ok()?;
    (status.spool_messages == 0 && last > 0 && !h.boot_id.is_empty())
        .then(|| ((envelope.device_id.clone(), h.boot_id.clone()), last))
}

/// Accounts for a drained status's `last_seq`: seqs above the highest stored, up to it, are
/// owed and recorded as a gap (the boot's tail, which no later message would reveal when the
/// dongle died or its spool was lost). Messages still on their way fill it like any gap.
/// Returns whether a gap was recorded.
pub(crate) fn account_claim(state: &mut BootState, last_seq: i64, now: DateTime<Utc>) -> bool {
    if last_seq <= state.max_seq {
        return false;
    }
    state.gaps.push(GapSpan {
        first: state.max_seq + 1,
        last: last_seq,
        detected_at: now,
    });
    state.max_seq = last_seq;
    true
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

/// The vehicle a report's DTC state and leads belong to: its VIN, or, when the agent could not
/// read one, `device:<device_id>`, so two VIN-less cars never share (and clear) each other's
/// codes.
pub(crate) fn dtc_vehicle(envelope: &Envelope, report: &v1::DtcReport) -> String {
    if report.vin.is_empty() {
        format!("device:{}", envelope.device_id)
    } else {
        report.vin.clone()
    }
}

/// Stable names for the DTC kinds, as stored.
/// The kind a code is kept under in `dtc_state` and named by in `dtc_events`. A UDS code is
/// `uds` until its confirmedDTC bit is set and `uds_confirmed` from then on, as an OBD code is
/// `pending` and then `stored`: so a code that was failing before it was confirmed appears
/// again when it is confirmed, and raises its lead then.
pub(crate) fn kind_name(dtc: &v1::Dtc) -> &'static str {
    match v1::DtcKind::try_from(dtc.kind) {
        Ok(v1::DtcKind::Stored) => "stored",
        Ok(v1::DtcKind::Pending) => "pending",
        Ok(v1::DtcKind::Permanent) => "permanent",
        Ok(v1::DtcKind::Uds) if dtc.is_confirmed() => "uds_confirmed",
        Ok(v1::DtcKind::Uds) => "uds",
        Ok(v1::DtcKind::Unspecified) | Err(_) => "unspecified",
    }
}

fn freeze_frame_json(frame: &v1::FreezeFrame) -> Value {
    let values: Vec<Value> = frame
        .values
        .iter()
        .map(|v| json!({"signal": v.signal, "pid": v.pid, "value": v.value, "unit": v.unit}))
        .collect();
    json!({"trigger": frame.trigger_code, "values": values})
}

fn report_context(report: &v1::DtcReport) -> Value {
    let reason = match v1::DtcReportReason::try_from(report.reason) {
        Ok(v1::DtcReportReason::Changed) => "changed",
        Ok(v1::DtcReportReason::Startup) => "startup",
        Ok(v1::DtcReportReason::Command) => "command",
        Ok(v1::DtcReportReason::Unspecified) | Err(_) => "unspecified",
    };
    json!({
        "distance_since_cleared_km": report.distance_since_cleared_km,
        "warmups_since_cleared": report.warmups_since_cleared,
        "odometer_km": report.odometer_km,
        "distance_with_mil_km": report.distance_with_mil_km,
        "reason": reason,
    })
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

/// The code and kind pairs of a DTC list, with the first `v1::Dtc` of each pair.
fn code_set(list: &[v1::Dtc]) -> BTreeMap<(String, &'static str), &v1::Dtc> {
    let mut out = BTreeMap::new();
    for dtc in list {
        out.entry((dtc.code.clone(), kind_name(dtc))).or_insert(dtc);
    }
    out
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

/// Diffs one report against the state and records events, state changes and leads.
///
/// The comparison of each answering ECU's current set with the stored state decides what
/// appeared and cleared, so a lost report cannot leave stale state. The report's own
/// `appeared`/`cleared` lists add what the state cannot show: a code that came and went between
/// two reports the cloud saw is recorded as appeared and cleared (and raises its lead).
/// ECUs missing from the report did not answer; their codes are left as they were.
fn apply_dtc_report(
    plan: &mut Plan,
    state: &mut HashMap<StateKey, DtcState>,
    changed: &mut HashSet<StateKey>,
    envelope: &Envelope,
    report: &v1::DtcReport,
    options: &StoreOptions,
) {
    let at = envelope.received_at;
    let fallback = header(&envelope.message).map_or(at, |h| device_time(h.created_unix_ms, at));
    let when = device_time(report.device_unix_ms, fallback);
    let context = report_context(report);
    let vin = &dtc_vehicle(envelope, report);

    for ecu in &report.ecus {
        let ecu_id = i64::from(ecu.ecu_can_id);
        let current = code_set(&ecu.current);
        let prior: HashSet<(String, String)> = state
            .iter()
            .filter(|(k, s)| s.active && k.vin == *vin && k.ecu == ecu_id && k.kind != MIL_KIND)
            .map(|(k, _)| (k.code.clone(), k.kind.clone()))
            .collect();
        let frame = ecu.freeze_frame.as_ref();

        let event = |plan: &mut Plan, dtc: &v1::Dtc, change: &'static str| {
            let kind = kind_name(dtc);
            let freeze_frame = frame
                .filter(|f| {
                    change == "appeared"
                        && (f.trigger_code.is_empty() || f.trigger_code == dtc.code)
                })
                .map(freeze_frame_json);
            plan.dtc_events.push(DtcEventRow {
                vin: vin.clone(),
                device_id: envelope.device_id.clone(),
                ecu: ecu_id,
                code: dtc.code.clone(),
                kind: kind.to_owned(),
                change,
                mil_on: ecu.mil_on,
                device_time: when,
                received_at: at,
                freeze_frame,
                context: context.clone(),
            });
        };

        // Appeared: in the current set, not active before.
        for ((code, kind), dtc) in &current {
            if prior.contains(&(code.clone(), (*kind).to_owned())) {
                continue;
            }
            event(plan, dtc, "appeared");
            let occurrence = set_active(state, changed, vin, ecu_id, code, kind, true, when);
            raise_lead(plan, envelope, vin, ecu_id, dtc, occurrence, options);
        }
        // Cleared: active before, gone now.
        let mut gone: Vec<&(String, String)> = prior
            .iter()
            .filter(|(code, kind)| !current.keys().any(|(c, k)| c == code && k == kind))
            .collect();
        gone.sort();
        for (code, kind) in gone {
            let dtc = ecu
                .cleared
                .iter()
                .find(|d| d.code == *code && kind_name(d) == kind.as_str())
                .cloned()
                .unwrap_or_else(|| dtc_from_state(code, kind));
            event(plan, &dtc, "cleared");
            set_active(state, changed, vin, ecu_id, code, kind, false, when);
        }
        // Transients the state never saw: named by the report, in neither set.
        let mut transient = code_set(&ecu.appeared);
        for (k, d) in code_set(&ecu.cleared) {
            transient.entry(k).or_insert(d);
        }
        for ((code, kind), dtc) in &transient {
            if current.contains_key(&(code.clone(), *kind))
                || prior.contains(&(code.clone(), (*kind).to_owned()))
            {
                continue;
            }
            event(plan, dtc, "appeared");
            let occurrence = set_active(state, changed, vin, ecu_id, code, kind, true, when);
            raise_lead(plan, envelope, vin, ecu_id, dtc, occurrence, options);
            event(plan, dtc, "cleared");
            set_active(state, changed, vin, ecu_id, code, kind, false, when);
        }
    }

    // The vehicle's MIL: on when any answering ECU says so. A report no ECU answered says
    // nothing about it.
    if report.ecus.is_empty() {
        return;
    }
    let lit: Vec<&v1::EcuDtcs> = report.ecus.iter().filter(|e| e.mil_on).collect();
    let mil_key = StateKey {
        vin: vin.clone(),
        ecu: MIL_ECU,
        code: MIL_CODE.to_owned(),
        kind: MIL_KIND.to_owned(),
    };
    let was_on = state.get(&mil_key).is_some_and(|s| s.active);
    match (was_on, lit.first()) {
        (false, Some(first)) => {
            let occurrence =
                set_active(state, changed, vin, MIL_ECU, MIL_CODE, MIL_KIND, true, when);
            let mut stored: Vec<&str> = lit
                .iter()
                .flat_map(|e| e.current.iter())
                .filter(|d| d.is_confirmed())
                .map(|d| d.code.as_str())
                .collect();
            stored.sort_unstable();
            stored.dedup();
            // The MIL came on with codes confirmed in this very report: their leads say it
            // already (the CRM sees the MIL in the DTC event), so a second lead would be noise.
            let already = plan
                .leads
                .iter()
                .any(|l| l.reason == "confirmed" && stored.contains(&l.code.as_str()));
            if already {
                return;
            }
            let code = if stored.is_empty() {
                MIL_CODE.to_owned()
            } else {
                stored.join(",")
            };
            plan.leads.push(LeadRow {
                idempotency_key: format!("{vin}:{MIL_CODE}:{occurrence}"),
                vin: vin.clone(),
                device_id: envelope.device_id.clone(),
                ecu: i64::from(first.ecu_can_id),
                code,
                reason: "mil_on",
                occurrence,
                created_at: at,
            });
        }
        (true, None) => {
            set_active(
                state, changed, vin, MIL_ECU, MIL_CODE, MIL_KIND, false, when,
            );
        }
        _ => {}
    }
}

/// The code as a report would name it, from its state kind (for a clearing the report did not
/// spell out): the inverse of [`kind_name`].
fn dtc_from_state(code: &str, name: &str) -> v1::Dtc {
    let (kind, uds_status) = match name {
        "stored" => (v1::DtcKind::Stored, 0),
        "pending" => (v1::DtcKind::Pending, 0),
        "permanent" => (v1::DtcKind::Permanent, 0),
        "uds" => (v1::DtcKind::Uds, 0),
        "uds_confirmed" => (v1::DtcKind::Uds, v1::Dtc::UDS_CONFIRMED),
        _ => (v1::DtcKind::Unspecified, 0),
    };
    v1::Dtc {
        code: code.to_owned(),
        kind: kind as i32,
        uds_status,
        ..Default::default()
    }
}

/// Marks a code active or inactive; an inactive code turning active starts a new occurrence.
/// Returns the occurrence now current.
#[allow(clippy::too_many_arguments)]
fn set_active(
    state: &mut HashMap<StateKey, DtcState>,
    changed: &mut HashSet<StateKey>,
    vin: &str,
    ecu: i64,
    code: &str,
    kind: &str,
    active: bool,
    when: DateTime<Utc>,
) -> i64 {
    let key = StateKey {
        vin: vin.to_owned(),
        ecu,
        code: code.to_owned(),
        kind: kind.to_owned(),
    };
    let entry = state.entry(key.clone()).or_insert(DtcState {
        active: false,
        since: when,
        occurrence: 0,
        updated_at: when,
    });
    if active && !entry.active {
        entry.occurrence += 1;
        entry.since = when;
    }
    if entry.active != active {
        entry.active = active;
        entry.updated_at = when;
        changed.insert(key);
    }
    entry.occurrence
}

/// Leads for a code that just appeared: confirmed codes always, pending ones when configured.
fn raise_lead(
    plan: &mut Plan,
    envelope: &Envelope,
    vin: &str,
    ecu: i64,
    dtc: &v1::Dtc,
    occurrence: i64,
    options: &StoreOptions,
) {
    let (reason, key) = if dtc.is_confirmed() {
        ("confirmed", format!("{vin}:{}:{occurrence}", dtc.code))
    } else if options.leads_for_pending && dtc.kind == v1::DtcKind::Pending as i32 {
        // Its own key: a pending lead must not swallow the confirmed one that often follows.
        (
            "pending",
            format!("{vin}:{}:{occurrence}:pending", dtc.code),
        )
    } else {
        return;
    };
    plan.leads.push(LeadRow {
        idempotency_key: key,
        vin: vin.to_owned(),
        device_id: envelope.device_id.clone(),
        ecu,
        code: dtc.code.clone(),
        reason,
        occurrence,
        created_at: envelope.received_at,
    });
}

/// The name of the plain-PostgreSQL telemetry partition for a day.
pub(crate) fn partition_name(day: NaiveDate) -> String {
    format!("telemetry_p{}", day.format("%Y%m%d"))
}

/// The day a partition name stands for, if it is one of ours.
pub(crate) fn partition_day(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("telemetry_p")?;
    if digits.len() != 8 {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// Daily partitions to create and to drop at `now`: `ahead` days after today are made ahead,
/// and a day is dropped once all of it is older than the retention.
pub(crate) fn partition_plan(
    now: DateTime<Utc>,
    ahead: u32,
    retention_days: u32,
    existing: &[NaiveDate],
) -> (Vec<NaiveDate>, Vec<NaiveDate>) {
    let today = now.date_naive();
    let create = today
        .iter_days()
        .take(ahead as usize + 1)
        .filter(|d| !existing.contains(d))
        .collect();
    let cutoff = retention_cutoff(now, retention_days);
    let mut drop: Vec<NaiveDate> = existing
        .iter()
        .copied()
        .filter(|d| {
            d.succ_opt()
                .and_then(|n| n.and_hms_opt(0, 0, 0))
                .is_some_and(|end| end.and_utc() <= cutoff)
        })
        .collect();
    drop.sort();
    (create, drop)
}

/// The time before which telemetry is past retention.
pub(crate) fn retention_cutoff(now: DateTime<Utc>, retention_days: u32) -> DateTime<Utc> {
    now - TimeDelta::days(i64::from(retention_days))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> DateTime<Utc> {
        let Some(t) = DateTime::from_timestamp_millis(ms) else {
            panic!("bad test time {ms}");
        };
        t
    }

    fn head(seq: u64) -> Option<v1::UplinkHeader> {
        Some(v1::UplinkHeader {
            device_id: "d1".into(),
            boot_id: vec![1; 16],
            seq,
            created_unix_ms: 1_700_000_000_000,
        })
    }

    fn dtc(code: &str, kind: v1::DtcKind) -> v1::Dtc {
        v1::Dtc {
            code: code.into(),
            kind: kind as i32,
            ..Default::default()
        }
    }

    fn report(seq: u64, mil: bool, current: Vec<v1::Dtc>) -> Envelope {
        Envelope {
            device_id: "d1".into(),
            received_at: t(1_700_000_000_000 + seq as i64 * 1000),
            message: Uplink::Dtc(v1::DtcReport {
                header: head(seq),
                vin: "VIN1".into(),
                device_unix_ms: 1_700_000_000_000 + seq as i64 * 1000,
                ecus: vec![v1::EcuDtcs {
                    ecu_can_id: 0x7E8,
                    mil_on: mil,
                    current,
                    ..Default::default()
                }],
                ..Default::default()
            }),
        }
    }

    /// Runs envelopes one batch each, carrying the state like the database would.
    fn run(batches: &[Envelope], options: &StoreOptions) -> Vec<Plan> {
        let mut loaded = Loaded::default();
        let mut plans = Vec::new();
        for envelope in batches {
            let Ok(s) = split(std::slice::from_ref(envelope)) else {
                panic!("split failed");
            };
            let carried = Loaded {
                dtc: loaded.dtc.clone(),
                boots: loaded.boots.clone(),
            };
            let p = plan(&s.keyed, &s.statuses, carried, options);
            for (k, st) in &p.dtc_state {
                loaded.dtc.insert(k.clone(), st.clone());
            }
            for (k, b) in &p.boots {
                loaded.boots.insert(k.clone(), b.clone());
            }
            plans.push(p);
        }
        plans
    }

    #[test]
    fn gaps_are_recorded_shrunk_split_and_closed() {
        let now = t(0);
        let mut b = BootState::default();
        assert!(!account_seq(&mut b, 1, now));
        assert!(account_seq(&mut b, 10, now));
        assert_eq!((b.gaps[0].first, b.gaps[0].last), (2, 9));
        assert!(!account_seq(&mut b, 2, now)); // shrink from the front
        assert!(!account_seq(&mut b, 9, now)); // and the back
        assert_eq!((b.gaps[0].first, b.gaps[0].last), (3, 8));
        assert!(!account_seq(&mut b, 5, now)); // split
        let spans: Vec<(i64, i64)> = b.gaps.iter().map(|g| (g.first, g.last)).collect();
        assert_eq!(spans, vec![(3, 4), (6, 8)]);
        for s in [3, 4, 6, 7, 8] {
            account_seq(&mut b, s, now);
        }
        assert!(b.gaps.is_empty());
        assert_eq!(b.max_seq, 10);
        // A repeat below max outside any gap changes nothing.
        assert!(!account_seq(&mut b, 4, now));
        assert!(b.gaps.is_empty());
    }

    #[test]
    fn a_drained_status_claims_the_boots_tail() {
        let now = t(0);
        let mut b = BootState::default();
        account_seq(&mut b, 1, now);
        account_seq(&mut b, 2, now);
        assert!(!account_claim(&mut b, 2, now), "nothing owed");
        assert!(account_claim(&mut b, 5, now));
        assert_eq!((b.gaps[0].first, b.gaps[0].last, b.max_seq), (3, 5, 5));
        // The owed messages were only late: they fill the gap.
        for seq in 3..=5 {
            assert!(!account_seq(&mut b, seq, now));
        }
        assert!(b.gaps.is_empty());
        assert!(
            !account_claim(&mut b, 4, now),
            "an older claim changes nothing"
        );
    }

    #[test]
    fn only_a_status_with_an_empty_spool_claims() {
        let status = |spool_messages: u64, last_seq: u64| Envelope {
            device_id: "d1".into(),
            received_at: t(0),
            message: Uplink::Status(v1::Status {
                header: Some(v1::UplinkHeader {
                    device_id: "d1".into(),
                    boot_id: vec![1; 16],
                    seq: 0,
                    created_unix_ms: 0,
                }),
                spool_messages,
                last_seq,
                ..v1::Status::default()
            }),
        };
        assert_eq!(
            drained_claim(&status(0, 7)),
            Some((("d1".to_owned(), vec![1; 16]), 7))
        );
        assert_eq!(drained_claim(&status(3, 7)), None, "messages still spooled");
        assert_eq!(drained_claim(&status(0, 0)), None, "nothing stamped yet");
    }

    #[test]
    fn first_message_of_a_boot_above_one_is_a_gap_from_one() {
        let mut b = BootState::default();
        assert!(account_seq(&mut b, 4, t(0)));
        assert_eq!((b.gaps[0].first, b.gaps[0].last), (1, 3));
    }

    #[test]
    fn split_drops_in_batch_repeats_and_sets_status_aside() {
        let tele = Envelope {
            device_id: "d1".into(),
            received_at: t(5),
            message: Uplink::Telemetry(v1::TelemetryBatch {
                header: head(1),
                ..Default::default()
            }),
        };
        let status = Envelope {
            device_id: "d1".into(),
            received_at: t(6),
            message: Uplink::Status(v1::Status::default()),
        };
        let batch = [tele.clone(), status.clone(), tele, status];
        let Ok(s) = split(&batch) else {
            panic!("split failed");
        };
        assert_eq!(s.keyed.len(), 1);
        assert_eq!(s.statuses.len(), 2);
        assert_eq!(s.in_batch_duplicates, 1);
        assert_eq!(s.keyed[0].1.kind, "telemetry");
        assert_eq!(s.keyed[0].1.device_time, t(1_700_000_000_000));
    }

    #[test]
    fn seq_beyond_i64_is_refused() {
        let e = Envelope {
            device_id: "d1".into(),
            received_at: t(5),
            message: Uplink::Telemetry(v1::TelemetryBatch {
                header: head(u64::MAX),
                ..Default::default()
            }),
        };
        assert!(matches!(
            split(&[e]),
            Err(StoreError::SeqOutOfRange { seq: u64::MAX, .. })
        ));
    }

    #[test]
    fn confirmed_code_leads_once_per_occurrence() {
        let opts = StoreOptions::default();
        let p0420 = || dtc("P0420", v1::DtcKind::Stored);
        let plans = run(
            &[
                report(1, false, vec![p0420()]),
                report(2, false, vec![p0420()]),
                report(3, false, vec![]),
                report(4, false, vec![p0420()]),
            ],
            &opts,
        );
        let keys: Vec<Vec<String>> = plans
            .iter()
            .map(|p| p.leads.iter().map(|l| l.idempotency_key.clone()).collect())
            .collect();
        assert_eq!(keys[0], vec!["VIN1:P0420:1"]);
        assert!(keys[1].is_empty(), "a code that stays raises nothing");
        assert!(keys[2].is_empty());
        assert_eq!(keys[3], vec!["VIN1:P0420:2"]);
        let changes: Vec<Vec<&str>> = plans
            .iter()
            .map(|p| p.dtc_events.iter().map(|e| e.change).collect())
            .collect();
        assert_eq!(
            changes,
            vec![vec!["appeared"], vec![], vec!["cleared"], vec!["appeared"]]
        );
    }

    #[test]
    fn pending_leads_only_when_configured() {
        let pending = || vec![dtc("P0171", v1::DtcKind::Pending)];
        let off = run(&[report(1, false, pending())], &StoreOptions::default());
        assert!(off[0].leads.is_empty());
        assert_eq!(off[0].dtc_events.len(), 1);
        let on = run(
            &[report(1, false, pending())],
            &StoreOptions {
                leads_for_pending: true,
                ..StoreOptions::default()
            },
        );
        assert_eq!(on[0].leads.len(), 1);
        assert_eq!(on[0].leads[0].reason, "pending");
        assert_eq!(on[0].leads[0].idempotency_key, "VIN1:P0171:1:pending");
    }

    #[test]
    fn a_uds_code_raises_its_lead_when_it_is_confirmed_not_when_it_first_fails() {
        let uds = |status: u32| v1::Dtc {
            uds_status: status,
            ..dtc("P0135", v1::DtcKind::Uds)
        };
        // testFailed + pendingDTC, then also confirmedDTC, then still confirmed.
        let plans = run(
            &[
                report(1, false, vec![uds(0x05)]),
                report(2, false, vec![uds(0x0D)]),
                report(3, false, vec![uds(0x0D)]),
            ],
            &StoreOptions::default(),
        );
        assert!(plans[0].leads.is_empty(), "failing, not confirmed: no lead");
        let keys: Vec<&str> = plans[1]
            .leads
            .iter()
            .map(|l| l.idempotency_key.as_str())
            .collect();
        assert_eq!(keys, ["VIN1:P0135:1"], "confirmed: its lead");
        let events: Vec<(&str, &str)> = plans[1]
            .dtc_events
            .iter()
            .map(|e| (e.kind.as_str(), e.change))
            .collect();
        assert_eq!(
            events,
            [("uds_confirmed", "appeared"), ("uds", "cleared")],
            "the stage moves, as pending to stored does"
        );
        assert!(plans[2].leads.is_empty() && plans[2].dtc_events.is_empty());
    }

    #[test]
    fn mil_turning_on_raises_a_lead_unless_new_confirmed_codes_did() {
        let plans = run(
            &[
                report(1, false, vec![]),
                report(
                    2,
                    true,
                    vec![
                        dtc("P0301", v1::DtcKind::Stored),
                        dtc("P0300", v1::DtcKind::Stored),
                    ],
                ),
                report(3, true, vec![dtc("P0301", v1::DtcKind::Stored)]),
                report(4, false, vec![]),
                report(5, true, vec![]),
            ],
            &StoreOptions::default(),
        );
        let mil: Vec<Vec<(String, String)>> = plans
            .iter()
            .map(|p| {
                p.leads
                    .iter()
                    .filter(|l| l.reason == "mil_on")
                    .map(|l| (l.idempotency_key.clone(), l.code.clone()))
                    .collect()
            })
            .collect();
        assert!(mil[0].is_empty());
        assert!(
            mil[1].is_empty(),
            "the MIL came on with new confirmed codes: their leads say it"
        );
        assert_eq!(plans[1].leads.len(), 2, "one lead per confirmed code");
        assert!(mil[2].is_empty(), "MIL staying on raises nothing");
        assert!(mil[3].is_empty());
        assert_eq!(mil[4], vec![("VIN1:MIL:2".to_owned(), "MIL".to_owned())]);
    }

    #[test]
    fn a_lost_report_does_not_leave_stale_state_and_transients_are_kept() {
        // The report that cleared P0420 was lost; the next one only lists P0171 as appeared.
        let mut next = report(3, false, vec![dtc("P0171", v1::DtcKind::Stored)]);
        if let Uplink::Dtc(r) = &mut next.message {
            r.ecus[0].appeared = vec![
                dtc("P0171", v1::DtcKind::Stored),
                dtc("P0300", v1::DtcKind::Stored),
            ];
        }
        let plans = run(
            &[
                report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]),
                next,
            ],
            &StoreOptions::default(),
        );
        let events: Vec<(&str, &str)> = plans[1]
            .dtc_events
            .iter()
            .map(|e| (e.code.as_str(), e.change))
            .collect();
        assert_eq!(
            events,
            vec![
                ("P0171", "appeared"),
                ("P0420", "cleared"),
                ("P0300", "appeared"),
                ("P0300", "cleared")
            ]
        );
        let leads: Vec<&str> = plans[1].leads.iter().map(|l| l.code.as_str()).collect();
        assert_eq!(leads, vec!["P0171", "P0300"]);
    }

    #[test]
    fn an_ecu_that_did_not_answer_keeps_its_codes() {
        let mut tcm = report(2, false, vec![]);
        if let Uplink::Dtc(r) = &mut tcm.message {
            r.ecus[0].ecu_can_id = 0x7E9;
        }
        let plans = run(
            &[
                report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]),
                tcm,
            ],
            &StoreOptions::default(),
        );
        assert!(plans[1].dtc_events.is_empty());
    }

    #[test]
    fn vin_less_reports_keep_state_per_device() {
        let mut a = report(1, false, vec![dtc("P0420", v1::DtcKind::Stored)]);
        let mut b = report(1, false, vec![]);
        b.device_id = "d2".into();
        for e in [&mut a, &mut b] {
            if let Uplink::Dtc(r) = &mut e.message {
                r.vin.clear();
            }
        }
        let plans = run(&[a, b], &StoreOptions::default());
        assert_eq!(plans[0].leads[0].idempotency_key, "device:d1:P0420:1");
        assert!(
            plans[1].dtc_events.is_empty(),
            "d2's empty report clears nothing of d1's"
        );
    }

    #[test]
    fn uds_codes_lead_only_when_confirmed() {
        let mut unconfirmed = dtc("U0100", v1::DtcKind::Uds);
        unconfirmed.uds_status = 0x01;
        let mut confirmed = dtc("B1234", v1::DtcKind::Uds);
        confirmed.uds_status = 0x09;
        let plans = run(
            &[report(1, false, vec![unconfirmed, confirmed])],
            &StoreOptions::default(),
        );
        let leads: Vec<&str> = plans[0].leads.iter().map(|l| l.code.as_str()).collect();
        assert_eq!(leads, vec!["B1234"]);
    }

    #[test]
    fn freeze_frame_goes_with_its_trigger_code() {
        let mut e = report(
            1,
            true,
            vec![
                dtc("P0420", v1::DtcKind::Stored),
                dtc("P0171", v1::DtcKind::Stored),
            ],
        );
        if let Uplink::Dtc(r) = &mut e.message {
            r.ecus[0].freeze_frame = Some(v1::FreezeFrame {
                trigger_code: "P0420".into(),
                values: vec![v1::FreezeFrameValue {
                    signal: "Vehicle.Speed".into(),
                    pid: 0x0D,
                    value: 88.0,
                    unit: "km/h".into(),
                }],
            });
            r.odometer_km = Some(12345.5);
        }
        let plans = run(&[e], &StoreOptions::default());
        let with_frame: Vec<&str> = plans[0]
            .dtc_events
            .iter()
            .filter(|e| e.freeze_frame.is_some())
            .map(|e| e.code.as_str())
            .collect();
        assert_eq!(with_frame, vec!["P0420"]);
        assert_eq!(
            plans[0].dtc_events[0].context["odometer_km"],
            json!(12345.5)
        );
    }

    #[test]
    fn odd_device_clocks_fall_back_to_the_receive_time() {
        let fallback = t(1_700_000_000_000);
        assert_eq!(device_time(0, fallback), t(0));
        assert_eq!(device_time(i64::MAX, fallback), fallback);
        assert_eq!(device_time(300_000_000_000_000, fallback), fallback); // year ~11000
    }

    #[test]
    fn partitions_made_ahead_and_dropped_past_retention() {
        let day = |d: &str| {
            let Ok(d) = NaiveDate::parse_from_str(d, "%Y-%m-%d") else {
                panic!("bad date {d}");
            };
            d
        };
        let now = day("2025-03-10").and_hms_opt(12, 0, 0).map(|t| t.and_utc());
        let Some(now) = now else { panic!("bad time") };
        let existing = [day("2025-03-01"), day("2025-03-02"), day("2025-03-10")];
        let (create, drop) = partition_plan(now, 2, 8, &existing);
        assert_eq!(create, vec![day("2025-03-11"), day("2025-03-12")]);
        // Cutoff 2025-03-02 12:00: March 1 is all older, March 2 is not yet.
        assert_eq!(drop, vec![day("2025-03-01")]);
        assert_eq!(partition_name(day("2025-03-01")), "telemetry_p20250301");
        assert_eq!(
            partition_day("telemetry_p20250301"),
            Some(day("2025-03-01"))
        );
        assert_eq!(partition_day("telemetry_default"), None);
    }
}
