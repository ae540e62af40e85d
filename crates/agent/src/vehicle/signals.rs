//! Signal names (stub; replaced by the vehicle branch).
use std::time::Duration;

use super::SignalSpec;

pub fn default_schedule() -> Vec<SignalSpec> {
    vec![SignalSpec {
        name: "Vehicle.Speed".into(),
        pid: 0x0D,
        period: Duration::from_secs(1),
    }]
}

pub fn resolve(name: Option<&str>, pid: Option<u8>) -> Result<(String, u8), String> {
    match (name, pid) {
        (Some(n), Some(p)) => Ok((n.into(), p)),
        (None, Some(p)) => Ok((format!("obd.{p:02x}"), p)),
        _ => Err("give a pid".into()),
    }
}
