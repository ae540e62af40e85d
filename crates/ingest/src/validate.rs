//! Decoding and validating one received message: topic and bytes in, an [`Envelope`] for the
//! store or a [`Rejected`] reason for the dead-letter table out. Pure: no I/O, the receive time
//! is passed in.
//!
//! A device clock far off is not a rejection (car clocks are wrong, and the data is still
//! real): the message is kept with its device time and the [`ClockCheck`] says how far off it
//! was, for the log and the metrics. Samples with signal names the cloud does not know are kept
//! too; the name is data, not schema.

use std::time::Duration;

use chrono::{DateTime, Utc};
use prost::Message;
use telltale_store::{DeadLetter, Envelope, Uplink};
use telltale_wire::topic::{self, Kind, TopicError};
use telltale_wire::v1;

/// What a message may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    pub max_payload: usize,
    /// Device time further ahead of the receive time than this is flagged.
    pub max_clock_ahead: Duration,
    /// Device time further behind than this is flagged.
    pub max_clock_behind: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_payload: 256 * 1024,
            max_clock_ahead: Duration::from_secs(600),
            max_clock_behind: Duration::from_secs(30 * 86_400),
        }
    }
}

/// How the device's clock compared with the receive time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockCheck {
    Plausible,
    /// The device time is this far ahead of the receive time, beyond the limit.
    Ahead(Duration),
    /// The device time is this far behind, beyond the limit (or the device sent no time).
    Behind(Duration),
}

/// A message fit for the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Accepted {
    pub kind: Kind,
    pub envelope: Envelope,
    pub clock: ClockCheck,
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Reason {
    #[error("bad topic: {0}")]
    Topic(#[from] TopicError),
    #[error("{0} is not an uplink kind")]
    NotUplink(Kind),
    #[error("payload of {size} bytes exceeds the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("payload is not a valid {kind} protobuf: {message}")]
    Decode { kind: Kind, message: String },
    #[error("message has no header")]
    NoHeader,
    #[error("header device_id {header:?} does not match the topic's {topic:?}")]
    DeviceMismatch { topic: String, header: String },
    #[error("header seq is 0 on a {0} message (only status may carry 0)")]
    ZeroSeq(Kind),
    #[error("header boot_id is empty on a {0} message")]
    NoBootId(Kind),
}

/// A refused message, with the kind when the topic named a known one (for the metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub kind: Option<Kind>,
    pub reason: Reason,
}

impl Rejected {
    /// The dead letter that keeps the message's raw bytes and the reason.
    pub fn into_dead_letter(
        self,
        topic: &str,
        payload: &[u8],
        received_at: DateTime<Utc>,
    ) -> DeadLetter {
        DeadLetter {
            received_at,
            topic: topic.to_owned(),
            payload: payload.to_vec(),
            reason: self.reason.to_string(),
        }
    }
}

/// Decodes and validates one message.
pub fn decode(
    topic: &str,
    payload: &[u8],
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> Result<Accepted, Rejected> {
    let (device, kind) = topic::parse(topic).map_err(|e| Rejected {
        kind: None,
        reason: e.into(),
    })?;
    let reject = |reason| Rejected {
        kind: Some(kind),
        reason,
    };
    if !kind.is_uplink() {
        return Err(reject(Reason::NotUplink(kind)));
    }
    if payload.len() > limits.max_payload {
        return Err(reject(Reason::TooLarge {
            size: payload.len(),
            limit: limits.max_payload,
        }));
    }
    let (message, header) = decode_kind(kind, payload).map_err(reject)?;
    let Some(header) = header else {
        return Err(reject(Reason::NoHeader));
    };
    if header.device_id != device {
        return Err(reject(Reason::DeviceMismatch {
            topic: device.to_owned(),
            header: header.device_id,
        }));
    }
    if kind != Kind::Status {
        if header.seq == 0 {
            return Err(reject(Reason::ZeroSeq(kind)));
        }
        if header.boot_id.is_empty() {
            return Err(reject(Reason::NoBootId(kind)));
        }
    }
    Ok(Accepted {
        kind,
        envelope: Envelope {
            device_id: device.to_owned(),
            received_at,
            message,
        },
        clock: check_clock(header.created_unix_ms, received_at, limits),
    })
}

fn decode_kind(kind: Kind, payload: &[u8]) -> Result<(Uplink, Option<v1::UplinkHeader>), Reason> {
    let bad = |e: prost::DecodeError| Reason::Decode {
        kind,
        message: e.to_string(),
    };
    Ok(match kind {
        Kind::Telemetry => {
            let m = v1::TelemetryBatch::decode(payload).map_err(bad)?;
            (m.header.clone(), Uplink::Telemetry(m))
        }
        Kind::Dtc => {
            let m = v1::DtcReport::decode(payload).map_err(bad)?;
            (m.header.clone(), Uplink::Dtc(m))
        }
        Kind::Info => {
            let m = v1::VehicleInfo::decode(payload).map_err(bad)?;
            (m.header.clone(), Uplink::Info(m))
        }
        Kind::CmdResult => {
            let m = v1::CommandResult::decode(payload).map_err(bad)?;
            (m.header.clone(), Uplink::CmdResult(m))
        }
        Kind::Status => {
            let m = v1::Status::decode(payload).map_err(bad)?;
            (m.header.clone(), Uplink::Status(m))
        }
        Kind::Cmd => return Err(Reason::NotUplink(kind)),
    })
    .map(|(h, m)| (m, h))
}

/// Compares the device's creation time with the receive time.
pub fn check_clock(
    created_unix_ms: i64,
    received_at: DateTime<Utc>,
    limits: &Limits,
) -> ClockCheck {
    let diff_ms = i128::from(created_unix_ms) - i128::from(received_at.timestamp_millis());
    let as_duration =
        |ms: i128| Duration::from_millis(u64::try_from(ms.unsigned_abs()).unwrap_or(u64::MAX));
    if diff_ms > 0 && as_duration(diff_ms) > limits.max_clock_ahead {
        ClockCheck::Ahead(as_duration(diff_ms))
    } else if diff_ms < 0 && as_duration(diff_ms) > limits.max_clock_behind {
        ClockCheck::Behind(as_duration(diff_ms))
    } else {
        ClockCheck::Plausible
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const NOW_MS: i64 = 1_700_000_000_000;

    fn now() -> DateTime<Utc> {
        let Some(t) = Utc.timestamp_millis_opt(NOW_MS).single() else {
            panic!("valid time");
        };
        t
    }

    fn header(device: &str, seq: u64) -> Option<v1::UplinkHeader> {
        Some(v1::UplinkHeader {
            device_id: device.into(),
            boot_id: vec![9; 16],
            seq,
            created_unix_ms: NOW_MS - 1_000,
        })
    }

    fn telemetry(device: &str, seq: u64) -> v1::TelemetryBatch {
        v1::TelemetryBatch {
            header: header(device, seq),
            vin: "WVWZZZ1JZXW000001".into(),
            samples: vec![v1::Sample {
                signal: "Vendor.Unheard.Of".into(),
                value: 1.5,
                device_unix_ms: NOW_MS - 1_000,
                service: 1,
                pid: 0xA6,
                ecu_can_id: 0x7E8,
                unit: "x".into(),
                text: String::new(),
            }],
        }
    }

    fn reason(r: Result<Accepted, Rejected>) -> Reason {
        match r {
            Ok(a) => panic!("accepted: {a:?}"),
            Err(e) => e.reason,
        }
    }

    #[test]
    fn a_good_telemetry_batch_is_accepted_with_unknown_signals_kept() {
        let bytes = telemetry("d1", 7).encode_to_vec();
        let Ok(a) = decode(
            "telltale/v1/d1/telemetry",
            &bytes,
            now(),
            &Limits::default(),
        ) else {
            panic!("refused");
        };
        assert_eq!(a.kind, Kind::Telemetry);
        assert_eq!(a.clock, ClockCheck::Plausible);
        assert_eq!(a.envelope.device_id, "d1");
        assert_eq!(a.envelope.received_at, now());
        let Uplink::Telemetry(t) = a.envelope.message else {
            panic!("wrong variant");
        };
        assert_eq!(t.samples.len(), 1);
        assert_eq!(t.samples[0].signal, "Vendor.Unheard.Of");
    }

    #[test]
    fn device_in_header_must_match_topic() {
        let bytes = telemetry("d2", 7).encode_to_vec();
        let r = decode(
            "telltale/v1/d1/telemetry",
            &bytes,
            now(),
            &Limits::default(),
        );
        assert_eq!(
            reason(r),
            Reason::DeviceMismatch {
                topic: "d1".into(),
                header: "d2".into()
            }
        );
    }

    #[test]
    fn oversized_payloads_are_refused_before_decoding() {
        let limits = Limits {
            max_payload: 16,
            ..Limits::default()
        };
        let bytes = telemetry("d1", 7).encode_to_vec();
        assert!(bytes.len() > 16);
        let r = decode("telltale/v1/d1/telemetry", &bytes, now(), &limits);
        assert_eq!(
            reason(r),
            Reason::TooLarge {
                size: bytes.len(),
                limit: 16
            }
        );
        // Exactly at the limit passes the size check.
        let limits = Limits {
            max_payload: bytes.len(),
            ..Limits::default()
        };
        assert!(decode("telltale/v1/d1/telemetry", &bytes, now(), &limits).is_ok());
    }

    #[test]
    fn garbage_protobuf_is_a_decode_error_naming_the_kind() {
        // Field 1, length-delimited, claims 5 bytes, has 1.
        let r = decode(
            "telltale/v1/d1/dtc",
            &[0x0A, 0x05, 0x01],
            now(),
            &Limits::default(),
        );
        assert!(
            matches!(
                reason(r),
                Reason::Decode {
                    kind: Kind::Dtc,
                    ..
                }
            ),
            "garbage must not decode"
        );
        let r = decode("telltale/v1/d1/info", &[0xFF; 8], now(), &Limits::default());
        assert!(matches!(
            reason(r),
            Reason::Decode {
                kind: Kind::Info,
                ..
            }
        ));
    }

    #[test]
    fn a_missing_header_is_refused() {
        let mut t = telemetry("d1", 7);
        t.header = None;
        let r = decode(
            "telltale/v1/d1/telemetry",
            &t.encode_to_vec(),
            now(),
            &Limits::default(),
        );
        assert_eq!(reason(r), Reason::NoHeader);
        // An empty payload is a valid, empty protobuf message: no header either.
        let r = decode("telltale/v1/d1/status", &[], now(), &Limits::default());
        assert_eq!(reason(r), Reason::NoHeader);
    }

    #[test]
    fn unknown_kinds_and_bad_topics_are_refused() {
        let bytes = telemetry("d1", 7).encode_to_vec();
        let r = decode("telltale/v1/d1/gossip", &bytes, now(), &Limits::default());
        assert_eq!(
            reason(r),
            Reason::Topic(TopicError::UnknownKind("gossip".into()))
        );
        let r = decode("telltale/v1/d1/cmd", &bytes, now(), &Limits::default());
        assert_eq!(reason(r), Reason::NotUplink(Kind::Cmd));
        let r = decode("elsewhere/d1/telemetry", &bytes, now(), &Limits::default());
        assert_eq!(reason(r), Reason::Topic(TopicError::WrongPrefix));
    }

    #[test]
    fn status_may_carry_seq_zero_but_spooled_kinds_may_not() {
        let status = v1::Status {
            header: header("d1", 0),
            presence: v1::Presence::Online as i32,
            ..v1::Status::default()
        };
        let Ok(a) = decode(
            "telltale/v1/d1/status",
            &status.encode_to_vec(),
            now(),
            &Limits::default(),
        ) else {
            panic!("status with seq 0 refused");
        };
        assert!(matches!(a.envelope.message, Uplink::Status(_)));

        let r = decode(
            "telltale/v1/d1/telemetry",
            &telemetry("d1", 0).encode_to_vec(),
            now(),
            &Limits::default(),
        );
        assert_eq!(reason(r), Reason::ZeroSeq(Kind::Telemetry));

        let mut t = telemetry("d1", 3);
        if let Some(h) = t.header.as_mut() {
            h.boot_id.clear();
        }
        let r = decode(
            "telltale/v1/d1/telemetry",
            &t.encode_to_vec(),
            now(),
            &Limits::default(),
        );
        assert_eq!(reason(r), Reason::NoBootId(Kind::Telemetry));
    }

    #[test]
    fn a_wrong_device_clock_is_flagged_not_refused() {
        let mut t = telemetry("d1", 5);
        if let Some(h) = t.header.as_mut() {
            h.created_unix_ms = NOW_MS + 3_600_000;
        }
        let Ok(a) = decode(
            "telltale/v1/d1/telemetry",
            &t.encode_to_vec(),
            now(),
            &Limits::default(),
        ) else {
            panic!("refused for a wrong clock");
        };
        assert_eq!(a.clock, ClockCheck::Ahead(Duration::from_secs(3600)));

        let limits = Limits::default();
        assert_eq!(
            check_clock(0, now(), &limits),
            ClockCheck::Behind(Duration::from_millis(NOW_MS as u64))
        );
        assert_eq!(
            check_clock(NOW_MS - 86_400_000, now(), &limits),
            ClockCheck::Plausible
        );
        assert_eq!(
            check_clock(NOW_MS + 599_000, now(), &limits),
            ClockCheck::Plausible
        );
        assert!(matches!(
            check_clock(i64::MAX, now(), &limits),
            ClockCheck::Ahead(_)
        ));
        assert!(matches!(
            check_clock(i64::MIN, now(), &limits),
            ClockCheck::Behind(_)
        ));
    }

    #[test]
    fn a_rejection_becomes_a_dead_letter_with_raw_bytes() {
        let payload = [0x0A, 0x05, 0x01];
        let Err(r) = decode("telltale/v1/d1/dtc", &payload, now(), &Limits::default()) else {
            panic!("accepted");
        };
        assert_eq!(r.kind, Some(Kind::Dtc));
        let dl = r.into_dead_letter("telltale/v1/d1/dtc", &payload, now());
        assert_eq!(dl.payload, payload.to_vec());
        assert_eq!(dl.topic, "telltale/v1/d1/dtc");
        assert!(dl.reason.contains("dtc"), "{}", dl.reason);
    }
}
