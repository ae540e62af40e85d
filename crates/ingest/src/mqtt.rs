//! The ingest's MQTT session, on the face shared with the agent (`telltale_service::mqtt`): a
//! persistent session with manual acknowledgements, and the fleet subscriptions.

use std::time::Duration;

use telltale_service::mqtt::{self, Connection, Handle, RequestError};
use telltale_wire::topic::{Kind, fleet_filter};

use crate::config::MqttSettings;

/// How long the broker keeps an MQTT 5 session while the ingest is away (a day): messages
/// published meanwhile wait for it. MQTT 3.1.1 sessions are kept until the broker's own expiry.
const SESSION_EXPIRY: Duration = Duration::from_secs(86_400);

/// The kinds the ingest subscribes to.
pub const UPLINK_KINDS: [Kind; 5] = [
    Kind::Telemetry,
    Kind::Dtc,
    Kind::Info,
    Kind::Status,
    Kind::CmdResult,
];

/// Builds the client; nothing connects until [`Connection::poll`]. `requests` bounds the
/// queue of acknowledgements (see the pipeline for how large it must be).
pub fn client(s: &MqttSettings, max_payload: usize, requests: usize) -> (Handle, Connection) {
    // rumqttc drops the connection on a packet above its limit, and the broker would then
    // deliver that message again and again; so the limit is well above the ingest's own
    // (whose excess becomes a dead letter). Bound the rest with the broker's
    // `message_size_limit`.
    let incoming = max_payload.saturating_mul(4).saturating_add(64 * 1024);
    mqtt::client(
        &s.broker,
        &mqtt::Session {
            client_id: s.client_id.clone(),
            clean: false,
            expiry: Some(SESSION_EXPIRY),
            manual_acks: true,
            will: None,
            requests,
            max_incoming: incoming,
            max_outgoing: 64 * 1024,
        },
    )
}

/// Subscribes to every uplink kind across the fleet, QoS 1.
pub fn subscribe_fleet(handle: &Handle, share_group: Option<&str>) -> Result<(), RequestError> {
    for kind in UPLINK_KINDS {
        handle.subscribe(&fleet_filter(kind, share_group))?;
    }
    Ok(())
}

/// Back-off between reconnect attempts: doubles from 250 ms to 10 s.
pub fn reconnect_delay(failures: u32) -> Duration {
    mqtt::reconnect_delay(
        failures,
        Duration::from_millis(250),
        Duration::from_secs(10),
    )
}
