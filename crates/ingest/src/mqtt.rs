//! One face over rumqttc's MQTT 3.1.1 and MQTT 5 clients, reduced to what the ingest needs: a
//! persistent session with manual acknowledgements, the fleet subscriptions, received
//! messages, and acknowledging them later.
//!
//! The connection (the event loop) and the handle that acknowledges are separate values so one
//! task can own the socket while the writer acknowledges after its commits.

use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::{QoS, TlsConfiguration, Transport};
use telltale_wire::topic::{Kind, fleet_filter};

use crate::config::{MqttSettings, Protocol};

/// How long the broker keeps an MQTT 5 session while the ingest is away (a day): messages
/// published meanwhile wait for it. MQTT 3.1.1 sessions are kept until the broker's own expiry.
const SESSION_EXPIRY_S: u32 = 86_400;

/// What acknowledges one received message: its packet id (the payload is not kept).
#[derive(Debug, Clone)]
pub enum AckToken {
    V4(rumqttc::Publish),
    V5(v5::mqttbytes::v5::Publish),
}

impl AckToken {
    pub fn pkid(&self) -> u16 {
        match self {
            AckToken::V4(p) => p.pkid,
            AckToken::V5(p) => p.pkid,
        }
    }
}

/// What the ingest reacts to. (Short-lived, one at a time; most are `Message`.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The broker accepted the connection; `session_present` says it kept our session.
    Connected {
        session_present: bool,
    },
    Message {
        topic: String,
        payload: Bytes,
        ack: AckToken,
    },
    /// The broker refused a subscription (e.g. an ACL, or no shared subscriptions).
    SubscribeRefused(String),
    /// Our DISCONNECT went out.
    Disconnected,
    Other,
}

/// A request could not be queued (the event loop is gone).
#[derive(Debug, thiserror::Error)]
#[error("MQTT request not queued: {0}")]
pub struct RequestError(String);

/// Queues acknowledgements, subscriptions and the disconnect for the event loop.
#[derive(Debug, Clone)]
pub enum Handle {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The socket side; poll it continuously from one task.
pub enum Connection {
    V4(Box<rumqttc::EventLoop>),
    V5(Box<v5::EventLoop>),
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Connection::V4(_) => "Connection(MQTT 3.1.1)",
            Connection::V5(_) => "Connection(MQTT 5)",
        })
    }
}

/// The kinds the ingest subscribes to.
pub const UPLINK_KINDS: [Kind; 5] = [
    Kind::Telemetry,
    Kind::Dtc,
    Kind::Info,
    Kind::Status,
    Kind::CmdResult,
];

/// Builds the client; nothing connects until [`Connection::poll`]. `requests` bounds the
/// queue of acknowledgements; it must hold every message the ingest may hold, or an ack could
/// wait on a socket task that waits on the writer.
pub fn client(s: &MqttSettings, max_payload: usize, requests: usize) -> (Handle, Connection) {
    let transport = match &s.tls {
        None => Transport::tcp(),
        Some(tls) => Transport::tls_with_config(TlsConfiguration::Simple {
            ca: tls.ca_pem.clone(),
            alpn: None,
            client_auth: tls.client.clone(),
        }),
    };
    // rumqttc drops the connection on a packet above its limit, and the broker would then
    // deliver that message again and again; so the limit is well above the ingest's own
    // (whose excess becomes a dead letter). Bound the rest with the broker's
    // `message_size_limit`.
    let incoming = max_payload.saturating_mul(4).saturating_add(64 * 1024);
    match s.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&s.client_id, &s.host, s.port);
            o.set_keep_alive(s.keep_alive)
                .set_clean_session(false)
                .set_manual_acks(true)
                .set_max_packet_size(incoming, 64 * 1024)
                .set_request_channel_capacity(requests)
                .set_transport(transport);
            if let Some(u) = &s.username {
                o.set_credentials(u, s.password.clone().unwrap_or_default());
            }
            let (c, e) = rumqttc::AsyncClient::new(o, requests);
            (Handle::V4(c), Connection::V4(Box::new(e)))
        }
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(&s.client_id, &s.host, s.port);
            o.set_keep_alive(s.keep_alive)
                .set_clean_start(false)
                .set_session_expiry_interval(Some(SESSION_EXPIRY_S))
                .set_manual_acks(true)
                .set_receive_maximum(Some(s.max_in_flight))
                .set_max_packet_size(Some(u32::try_from(incoming).unwrap_or(u32::MAX)))
                .set_request_channel_capacity(requests)
                .set_transport(transport);
            if let Some(u) = &s.username {
                o.set_credentials(u, s.password.clone().unwrap_or_default());
            }
            let (c, e) = v5::AsyncClient::new(o, requests);
            (Handle::V5(c), Connection::V5(Box::new(e)))
        }
    }
}

impl Handle {
    /// Subscribes to every uplink kind across the fleet, QoS 1.
    pub fn subscribe_fleet(&self, share_group: Option<&str>) -> Result<(), RequestError> {
        for kind in UPLINK_KINDS {
            let filter = fleet_filter(kind, share_group);
            let queued = match self {
                Handle::V4(c) => c
                    .try_subscribe(filter, QoS::AtLeastOnce)
                    .map_err(|e| e.to_string()),
                Handle::V5(c) => c
                    .try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce)
                    .map_err(|e| e.to_string()),
            };
            queued.map_err(RequestError)?;
        }
        Ok(())
    }

    /// Sends the PUBACK for one message (queued behind earlier ones: acks go out in order).
    pub async fn ack(&self, token: &AckToken) -> Result<(), RequestError> {
        match (self, token) {
            (Handle::V4(c), AckToken::V4(p)) => {
                c.ack(p).await.map_err(|e| RequestError(e.to_string()))
            }
            (Handle::V5(c), AckToken::V5(p)) => {
                c.ack(p).await.map_err(|e| RequestError(e.to_string()))
            }
            _ => Err(RequestError("ack token from the other protocol".into())),
        }
    }

    pub fn disconnect(&self) -> Result<(), RequestError> {
        match self {
            Handle::V4(c) => c.try_disconnect().map_err(|e| RequestError(e.to_string())),
            Handle::V5(c) => c.try_disconnect().map_err(|e| RequestError(e.to_string())),
        }
    }
}

impl Connection {
    /// Drives the connection; an error means it is down (the next poll reconnects).
    pub async fn poll(&mut self) -> Result<Event, String> {
        match self {
            Connection::V4(e) => Ok(match e.poll().await.map_err(|e| e.to_string())? {
                rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(a)) => Event::Connected {
                    session_present: a.session_present,
                },
                rumqttc::Event::Incoming(rumqttc::Packet::Publish(p)) => {
                    let ack = AckToken::V4(rumqttc::Publish {
                        payload: Bytes::new(),
                        topic: String::new(),
                        ..p.clone()
                    });
                    Event::Message {
                        topic: p.topic,
                        payload: p.payload,
                        ack,
                    }
                }
                rumqttc::Event::Incoming(rumqttc::Packet::SubAck(s)) => {
                    if s.return_codes
                        .iter()
                        .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                    {
                        Event::SubscribeRefused("failure return code".into())
                    } else {
                        Event::Other
                    }
                }
                rumqttc::Event::Outgoing(rumqttc::Outgoing::Disconnect) => Event::Disconnected,
                _ => Event::Other,
            }),
            Connection::V5(e) => {
                use v5::mqttbytes::v5::{Packet, SubscribeReasonCode};
                Ok(match e.poll().await.map_err(|e| e.to_string())? {
                    v5::Event::Incoming(Packet::ConnAck(a)) => Event::Connected {
                        session_present: a.session_present,
                    },
                    v5::Event::Incoming(Packet::Publish(p)) => {
                        let ack = AckToken::V5(v5::mqttbytes::v5::Publish {
                            payload: Bytes::new(),
                            topic: Bytes::new(),
                            properties: None,
                            ..p.clone()
                        });
                        Event::Message {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload,
                            ack,
                        }
                    }
                    v5::Event::Incoming(Packet::SubAck(s)) => match s
                        .return_codes
                        .iter()
                        .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                    {
                        Some(bad) => Event::SubscribeRefused(format!("{bad:?}")),
                        None => Event::Other,
                    },
                    v5::Event::Outgoing(rumqttc::Outgoing::Disconnect) => Event::Disconnected,
                    _ => Event::Other,
                })
            }
        }
    }
}

/// Back-off between reconnect attempts: doubles from 250 ms to 10 s.
pub fn reconnect_delay(failures: u32) -> Duration {
    let ms = 250u64.saturating_mul(1u64 << failures.min(6));
    Duration::from_millis(ms.min(10_000))
}
