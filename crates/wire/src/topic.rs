//! The MQTT topic scheme, spelled in one place:
//!
//! `telltale/v1/{device_id}/{kind}` where kind is one of
//!
//! | kind | direction | payload | notes |
//! |---|---|---|---|
//! | `telemetry` | vehicle → cloud | `TelemetryBatch` | QoS 1 |
//! | `dtc` | vehicle → cloud | `DtcReport` | QoS 1 |
//! | `info` | vehicle → cloud | `VehicleInfo` | QoS 1 |
//! | `status` | vehicle → cloud | `Status` | QoS 1, retained, also the last will |
//! | `cmd` | cloud → vehicle | `Command` | QoS 1 |
//! | `cmd-result` | vehicle → cloud | `CommandResult` | QoS 1 |
//!
//! The device id is the MQTT client id and, with mutual TLS, the certificate's name; the broker's
//! ACL lets a device use only its own subtree.

use std::fmt;
use std::str::FromStr;

/// First two levels of every Telltale topic.
pub const PREFIX: &str = "telltale/v1";

/// The last level of a topic: what the message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Telemetry,
    Dtc,
    Info,
    Status,
    Cmd,
    CmdResult,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Telemetry,
        Kind::Dtc,
        Kind::Info,
        Kind::Status,
        Kind::Cmd,
        Kind::CmdResult,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Telemetry => "telemetry",
            Kind::Dtc => "dtc",
            Kind::Info => "info",
            Kind::Status => "status",
            Kind::Cmd => "cmd",
            Kind::CmdResult => "cmd-result",
        }
    }

    /// Messages the vehicle publishes (everything but `cmd`).
    pub fn is_uplink(self) -> bool {
        self != Kind::Cmd
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Kind {
    type Err = TopicError;
    fn from_str(s: &str) -> Result<Self, TopicError> {
        Kind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| TopicError::UnknownKind(s.to_owned()))
    }
}

/// Why a topic or device id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicError {
    #[error("topic does not start with {PREFIX}/")]
    WrongPrefix,
    #[error("topic must have four levels telltale/v1/DEVICE/KIND")]
    WrongLevels,
    #[error("unknown message kind {0:?}")]
    UnknownKind(String),
    #[error("invalid device id {0:?}: use 1-64 characters of A-Z a-z 0-9 - _ .")]
    BadDeviceId(String),
}

/// Checks a device id: it becomes a topic level, a client id and a certificate name, so it is
/// kept to characters that are safe in all three (no `/`, `+`, `#`).
pub fn validate_device_id(id: &str) -> Result<(), TopicError> {
    let ok = (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(TopicError::BadDeviceId(id.to_owned()))
    }
}

/// `telltale/v1/{device_id}/{kind}`.
pub fn topic(device_id: &str, kind: Kind) -> String {
    format!("{PREFIX}/{device_id}/{kind}")
}

/// The filter an ingest subscribes with for one kind across the fleet; with `share_group`, an
/// MQTT 5 / 3.1.1-extension shared subscription so several instances split the traffic.
pub fn fleet_filter(kind: Kind, share_group: Option<&str>) -> String {
    match share_group {
        Some(group) => format!("$share/{group}/{PREFIX}/+/{kind}"),
        None => format!("{PREFIX}/+/{kind}"),
    }
}

/// Splits a received topic into device id and kind.
pub fn parse(topic: &str) -> Result<(&str, Kind), TopicError> {
    let rest = topic
        .strip_prefix(PREFIX)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or(TopicError::WrongPrefix)?;
    let (device, kind) = rest.split_once('/').ok_or(TopicError::WrongLevels)?;
    if kind.contains('/') {
        return Err(TopicError::WrongLevels);
    }
    validate_device_id(device)?;
    Ok((device, kind.parse()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_round_trip() {
        for kind in Kind::ALL {
            let t = topic("dongle-42", kind);
            assert_eq!(parse(&t), Ok(("dongle-42", kind)));
        }
        assert_eq!(topic("d1", Kind::CmdResult), "telltale/v1/d1/cmd-result");
    }

    #[test]
    fn bad_topics_are_refused() {
        assert_eq!(parse("other/v1/d/dtc"), Err(TopicError::WrongPrefix));
        assert_eq!(parse("telltale/v1/d"), Err(TopicError::WrongLevels));
        assert_eq!(parse("telltale/v1/d/dtc/x"), Err(TopicError::WrongLevels));
        assert_eq!(
            parse("telltale/v1/d/nope"),
            Err(TopicError::UnknownKind("nope".into()))
        );
        assert_eq!(
            parse("telltale/v1/+/dtc"),
            Err(TopicError::BadDeviceId("+".into()))
        );
        assert!(validate_device_id(&"x".repeat(65)).is_err());
    }

    #[test]
    fn fleet_filters() {
        assert_eq!(fleet_filter(Kind::Dtc, None), "telltale/v1/+/dtc");
        assert_eq!(
            fleet_filter(Kind::Dtc, Some("ingest")),
            "$share/ingest/telltale/v1/+/dtc"
        );
    }
}
