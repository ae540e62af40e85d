//! A command result as JSON for people and scripts. Field names follow the proto; CAN ids are
//! hex strings (`"7E8"`) as in `telltale scan --json`; enum values are their proto names
//! without the type prefix (`"VEHICLE_MOVING"`, `"STORED"`), `error_code` is null when the
//! command ran.

use serde_json::{Value, json};
use telltale_wire::v1;

fn strip<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}

pub(super) fn result(device_id: &str, r: &v1::CommandResult) -> Value {
    let code = r.error_code();
    json!({
        "command_id": r.command_id,
        "device_id": device_id,
        "ok": r.ok,
        "error_code": (code != v1::CommandError::None)
            .then(|| strip(code.as_str_name(), "COMMAND_ERROR_")),
        "error": (!r.error.is_empty()).then_some(r.error.as_str()),
        "dtcs": r.dtcs.as_ref().map(dtc_report),
        "samples": r.samples.iter().map(sample).collect::<Vec<_>>(),
        "freeze_frame": r.freeze_frame.as_ref().map(freeze_frame),
    })
}

fn sample(s: &v1::Sample) -> Value {
    json!({
        "signal": s.signal,
        "value": s.value,
        "text": (!s.text.is_empty()).then_some(s.text.as_str()),
        "unit": s.unit,
        "pid": s.pid,
        "ecu": format!("{:X}", s.ecu_can_id),
        "device_unix_ms": s.device_unix_ms,
    })
}

fn dtc(d: &v1::Dtc) -> Value {
    let mut v = json!({ "code": d.code, "kind": strip(d.kind().as_str_name(), "DTC_KIND_") });
    if d.kind() == v1::DtcKind::Uds {
        v["uds_status"] = json!(d.uds_status);
        v["failure_type"] = json!(d.failure_type);
    }
    v
}

fn freeze_frame(f: &v1::FreezeFrame) -> Value {
    json!({
        "trigger_code": f.trigger_code,
        "values": f.values.iter().map(|v| json!({
            "signal": v.signal, "pid": v.pid, "value": v.value, "unit": v.unit,
        })).collect::<Vec<_>>(),
    })
}

fn dtc_report(r: &v1::DtcReport) -> Value {
    json!({
        "vin": r.vin,
        "device_unix_ms": r.device_unix_ms,
        "reason": strip(r.reason().as_str_name(), "DTC_REPORT_REASON_"),
        "distance_since_cleared_km": r.distance_since_cleared_km,
        "warmups_since_cleared": r.warmups_since_cleared,
        "odometer_km": r.odometer_km,
        "distance_with_mil_km": r.distance_with_mil_km,
        "ecus": r.ecus.iter().map(|e| json!({
            "ecu": format!("{:X}", e.ecu_can_id),
            "mil_on": e.mil_on,
            "current": e.current.iter().map(dtc).collect::<Vec<_>>(),
            "appeared": e.appeared.iter().map(dtc).collect::<Vec<_>>(),
            "cleared": e.cleared.iter().map(dtc).collect::<Vec<_>>(),
            "freeze_frame": e.freeze_frame.as_ref().map(freeze_frame),
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_and_answers_read_plainly() {
        let refused = v1::CommandResult {
            command_id: "ab".into(),
            ok: false,
            error: "car moving".into(),
            error_code: v1::CommandError::VehicleMoving as i32,
            ..Default::default()
        };
        let v = result("car-1", &refused);
        assert_eq!(v["error_code"], "VEHICLE_MOVING");
        assert_eq!(v["error"], "car moving");
        assert_eq!(v["dtcs"], Value::Null);

        let ok = v1::CommandResult {
            command_id: "cd".into(),
            ok: true,
            dtcs: Some(v1::DtcReport {
                ecus: vec![v1::EcuDtcs {
                    ecu_can_id: 0x7E8,
                    current: vec![v1::Dtc {
                        code: "P0420".into(),
                        kind: v1::DtcKind::Stored as i32,
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                reason: v1::DtcReportReason::Command as i32,
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = result("car-1", &ok);
        assert_eq!(v["error_code"], Value::Null);
        assert_eq!(v["dtcs"]["reason"], "COMMAND");
        assert_eq!(v["dtcs"]["ecus"][0]["ecu"], "7E8");
        assert_eq!(v["dtcs"]["ecus"][0]["current"][0]["kind"], "STORED");
    }
}
