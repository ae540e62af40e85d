//! DTC reports against the stored state: the events, state changes and leads they make.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use telltale_wire::v1;

use crate::{Envelope, StoreOptions};

use super::*;

/// The ECU number the vehicle-wide MIL state is kept under (no OBD responder uses CAN id 0).
pub(crate) const MIL_ECU: i64 = 0;
/// The code and kind of the vehicle-wide MIL state row.
pub(crate) const MIL_CODE: &str = "MIL";
pub(crate) const MIL_KIND: &str = "mil";

/// Identity of a `dtc_state` row.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, sqlx::FromRow)]
pub(crate) struct StateKey {
    pub(crate) vin: String,
    pub(crate) ecu: i64,
    pub(crate) code: String,
    pub(crate) kind: String,
}

/// A `dtc_state` row as read: the one way both databases load it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct StateRow {
    #[sqlx(flatten)]
    pub(crate) key: StateKey,
    #[sqlx(flatten)]
    pub(crate) state: DtcState,
}

/// A code's state on one ECU. Rows stay after the code clears (`active = false`) so the
/// occurrence counter survives and the next appearance is counted as a new one.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
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

/// The code and kind pairs of a DTC list, with the first `v1::Dtc` of each pair.
fn code_set(list: &[v1::Dtc]) -> BTreeMap<(String, &'static str), &v1::Dtc> {
    let mut out = BTreeMap::new();
    for dtc in list {
        out.entry((dtc.code.clone(), kind_name(dtc))).or_insert(dtc);
    }
    out
}

/// Diffs one report against the state and records events, state changes and leads.
///
/// The comparison of each answering ECU's current set with the stored state decides what
/// appeared and cleared, so a lost report cannot leave stale state. The report's own
/// `appeared`/`cleared` lists add what the state cannot show: a code that came and went between
/// two reports the cloud saw is recorded as appeared and cleared (and raises its lead).
/// ECUs missing from the report did not answer; their codes are left as they were.
pub(super) fn apply_dtc_report(
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
