//! The MQTT broker connection: its settings as written in a `[mqtt]` section, their validation,
//! and one face over rumqttc's MQTT 3.1.1 and MQTT 5 clients, reduced to what Telltale's
//! programs do: publish and subscribe at QoS 1, acknowledge received messages (manually, after
//! they are stored, if asked), and react to a few events.
//!
//! A client is two values: the [`Handle`] that queues requests (cheap to clone, usable from any
//! task) and the [`Connection`], the socket, which one task polls continuously.

use std::fmt;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::{Outgoing, QoS, TlsConfiguration, Transport};
use serde::Serialize;

use crate::config::{ConfigError, duration, invalid, read_file, read_secret};

/// Which MQTT protocol version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Protocol {
    V311,
    V5,
}

/// PEM contents read at start, so a missing file is a start-up error, not a reconnect loop.
#[derive(Clone)]
pub struct TlsFiles {
    pub ca_pem: Vec<u8>,
    /// Client certificate chain and private key, for mutual TLS.
    pub client: Option<(Vec<u8>, Vec<u8>)>,
}

impl fmt::Debug for TlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsFiles")
            .field("client_auth", &self.client.is_some())
            .finish_non_exhaustive()
    }
}

/// Where and how to connect: validated, files read.
#[derive(Clone)]
pub struct Broker {
    pub host: String,
    pub port: u16,
    pub protocol: Protocol,
    pub tls: Option<TlsFiles>,
    pub username: Option<String>,
    pub password: Option<String>,
    pub keep_alive: Duration,
    /// QoS 1 messages unacknowledged at once, each way: our publishes awaiting PUBACK, and (as
    /// the MQTT 5 receive maximum) messages delivered to us that we have not acknowledged.
    pub max_in_flight: u16,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("protocol", &self.protocol)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("keep_alive", &self.keep_alive)
            .field("max_in_flight", &self.max_in_flight)
            .finish()
    }
}

/// [`BrokerFields`] borrowed from a program's `[mqtt]` section value, whose connection keys
/// carry the same names (`url`, `protocol`, `ca_file`, ..., `max_in_flight`).
#[macro_export]
macro_rules! broker_fields {
    ($section:expr) => {{
        let m = &$section;
        $crate::mqtt::BrokerFields {
            url: &m.url,
            protocol: &m.protocol,
            ca_file: m.ca_file.as_deref(),
            cert_file: m.cert_file.as_deref(),
            key_file: m.key_file.as_deref(),
            username: m.username.as_deref(),
            password: m.password.as_deref(),
            password_file: m.password_file.as_deref(),
            keep_alive: &m.keep_alive,
            max_in_flight: m.max_in_flight,
        }
    }};
}

/// The connection keys of a `[mqtt]` section as written (each program's section has these
/// and its own). Errors name them as `mqtt.<key>`.
#[derive(Debug, Clone, Copy)]
pub struct BrokerFields<'a> {
    /// `mqtt://host:port` or `mqtts://host:port`.
    pub url: &'a str,
    /// `3.1.1` or `5`.
    pub protocol: &'a str,
    pub ca_file: Option<&'a Path>,
    pub cert_file: Option<&'a Path>,
    pub key_file: Option<&'a Path>,
    pub username: Option<&'a str>,
    pub password: Option<&'a str>,
    pub password_file: Option<&'a Path>,
    pub keep_alive: &'a str,
    pub max_in_flight: u16,
}

impl BrokerFields<'_> {
    /// Checks every key and reads the certificate and password files.
    pub fn validate(&self) -> Result<Broker, ConfigError> {
        let (tls, rest) = if let Some(rest) = self.url.strip_prefix("mqtts://") {
            (true, rest)
        } else if let Some(rest) = self.url.strip_prefix("mqtt://") {
            (false, rest)
        } else {
            return Err(invalid(
                "mqtt.url",
                format!("{:?}: use mqtt://HOST:PORT or mqtts://HOST:PORT", self.url),
            ));
        };
        let rest = rest.trim_end_matches('/');
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (
                h,
                p.parse::<u16>()
                    .map_err(|_| invalid("mqtt.url", format!("bad port {p:?}")))?,
            ),
            None => (rest, if tls { 8883 } else { 1883 }),
        };
        if host.is_empty() {
            return Err(invalid("mqtt.url", "no host"));
        }
        let protocol = match self.protocol {
            "3.1.1" | "4" | "v4" => Protocol::V311,
            "5" | "5.0" | "v5" => Protocol::V5,
            other => {
                return Err(invalid(
                    "mqtt.protocol",
                    format!("{other:?}: use \"3.1.1\" or \"5\""),
                ));
            }
        };
        let tls = if tls {
            let Some(ca) = self.ca_file else {
                return Err(invalid("mqtt.ca_file", "required with mqtts://"));
            };
            let ca_pem = read_file("mqtt.ca_file", ca)?;
            let client = match (self.cert_file, self.key_file) {
                (Some(c), Some(k)) => Some((
                    read_file("mqtt.cert_file", c)?,
                    read_file("mqtt.key_file", k)?,
                )),
                (None, None) => None,
                (Some(_), None) => {
                    return Err(invalid("mqtt.key_file", "needed with mqtt.cert_file"));
                }
                (None, Some(_)) => {
                    return Err(invalid("mqtt.cert_file", "needed with mqtt.key_file"));
                }
            };
            Some(TlsFiles { ca_pem, client })
        } else {
            if self.cert_file.is_some() || self.key_file.is_some() || self.ca_file.is_some() {
                return Err(invalid(
                    "mqtt.url",
                    "certificates are configured but the url is mqtt:// (use mqtts://)",
                ));
            }
            None
        };
        let password = match (self.password, self.password_file) {
            (Some(p), None) => Some(p.to_owned()),
            (None, Some(f)) => Some(read_secret("mqtt.password_file", f)?),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(invalid(
                    "mqtt.password",
                    "set either password or password_file, not both",
                ));
            }
        };
        if password.is_some() && self.username.is_none() {
            return Err(invalid("mqtt.username", "a password needs a username"));
        }
        if self.max_in_flight == 0 {
            return Err(invalid("mqtt.max_in_flight", "must be at least 1"));
        }
        let keep_alive = duration("mqtt.keep_alive", self.keep_alive)?;
        if keep_alive < Duration::from_secs(1) {
            return Err(invalid("mqtt.keep_alive", "must be at least 1s"));
        }
        Ok(Broker {
            host: host.to_owned(),
            port,
            protocol,
            tls,
            username: self.username.map(str::to_owned),
            password,
            keep_alive,
            max_in_flight: self.max_in_flight,
        })
    }
}

/// How this program's session behaves.
#[derive(Debug, Clone)]
pub struct Session {
    pub client_id: String,
    /// `false`: the broker keeps the session (subscriptions and undelivered QoS 1 messages)
    /// across disconnects, for `expiry` under MQTT 5.
    pub clean: bool,
    pub expiry: Option<Duration>,
    /// Acknowledge received messages with [`Handle::ack`] instead of on receipt.
    pub manual_acks: bool,
    /// The retained message the broker publishes (QoS 1) if the client vanishes.
    pub will: Option<(String, Vec<u8>)>,
    /// Requests the handle may queue before `try_*` calls fail.
    pub requests: usize,
    /// Largest packet accepted from the broker and sent to it. rumqttc drops the connection on
    /// a larger one.
    pub max_incoming: usize,
    pub max_outgoing: usize,
}

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

/// What a program reacts to; everything else is [`Event::Other`].
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Event {
    /// The broker accepted the connection; `session_present` says it kept our session.
    Connected {
        session_present: bool,
    },
    /// A publish request was written with this packet id (in request order).
    Published(u16),
    /// The broker acknowledged a QoS 1 publish; `refused` holds an MQTT 5 failure reason.
    PubAck {
        pkid: u16,
        refused: Option<String>,
    },
    /// A message arrived on a subscribed topic.
    Message {
        topic: String,
        payload: Bytes,
        ack: AckToken,
    },
    /// The broker refused a subscription (an ACL, or no shared subscriptions).
    SubscribeRefused(String),
    /// Our DISCONNECT went out.
    Disconnected,
    Other,
}

/// A request could not be queued (the event loop is gone or its queue is full).
#[derive(Debug, thiserror::Error)]
#[error("MQTT request not queued: {0}")]
pub struct RequestError(String);

/// Queues publishes, subscriptions, acknowledgements and the disconnect for the connection.
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

impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Connection::V4(_) => "Connection(MQTT 3.1.1)",
            Connection::V5(_) => "Connection(MQTT 5)",
        })
    }
}

/// Builds the client; nothing connects until [`Connection::poll`].
pub fn client(broker: &Broker, session: &Session) -> (Handle, Connection) {
    let transport = match &broker.tls {
        None => Transport::tcp(),
        Some(tls) => Transport::tls_with_config(TlsConfiguration::Simple {
            ca: tls.ca_pem.clone(),
            alpn: None,
            client_auth: tls.client.clone(),
        }),
    };
    let credentials = broker
        .username
        .as_ref()
        .map(|u| (u.clone(), broker.password.clone().unwrap_or_default()));
    match broker.protocol {
        Protocol::V311 => {
            let mut o = rumqttc::MqttOptions::new(&session.client_id, &broker.host, broker.port);
            o.set_keep_alive(broker.keep_alive)
                .set_clean_session(session.clean)
                .set_manual_acks(session.manual_acks)
                .set_inflight(broker.max_in_flight)
                .set_max_packet_size(session.max_incoming, session.max_outgoing)
                .set_request_channel_capacity(session.requests)
                .set_transport(transport);
            if let Some((topic, payload)) = &session.will {
                o.set_last_will(rumqttc::LastWill::new(
                    topic,
                    payload.clone(),
                    QoS::AtLeastOnce,
                    true,
                ));
            }
            if let Some((u, p)) = credentials {
                o.set_credentials(u, p);
            }
            let (c, e) = rumqttc::AsyncClient::new(o, session.requests);
            (Handle::V4(c), Connection::V4(Box::new(e)))
        }
        Protocol::V5 => {
            let mut o = v5::MqttOptions::new(&session.client_id, &broker.host, broker.port);
            o.set_keep_alive(broker.keep_alive)
                .set_clean_start(session.clean)
                .set_manual_acks(session.manual_acks)
                .set_outgoing_inflight_upper_limit(broker.max_in_flight)
                .set_receive_maximum(Some(broker.max_in_flight))
                .set_max_packet_size(Some(
                    u32::try_from(session.max_incoming).unwrap_or(u32::MAX),
                ))
                .set_request_channel_capacity(session.requests)
                .set_transport(transport);
            if let Some(expiry) = session.expiry {
                o.set_session_expiry_interval(Some(
                    u32::try_from(expiry.as_secs()).unwrap_or(u32::MAX),
                ));
            }
            if let Some((topic, payload)) = &session.will {
                o.set_last_will(v5::mqttbytes::v5::LastWill::new(
                    topic,
                    payload.clone(),
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ));
            }
            if let Some((u, p)) = credentials {
                o.set_credentials(u, p);
            }
            let (c, e) = v5::AsyncClient::new(o, session.requests);
            (Handle::V5(c), Connection::V5(Box::new(e)))
        }
    }
}

fn queued<E: fmt::Display>(r: Result<(), E>) -> Result<(), RequestError> {
    r.map_err(|e| RequestError(e.to_string()))
}

impl Handle {
    /// Queues a QoS 1 publish without waiting.
    pub fn publish(&self, topic: &str, payload: Vec<u8>, retain: bool) -> Result<(), RequestError> {
        match self {
            Handle::V4(c) => queued(c.try_publish(topic, QoS::AtLeastOnce, retain, payload)),
            Handle::V5(c) => {
                queued(c.try_publish(topic, v5::mqttbytes::QoS::AtLeastOnce, retain, payload))
            }
        }
    }

    /// Queues a QoS 1 subscription without waiting.
    pub fn subscribe(&self, filter: &str) -> Result<(), RequestError> {
        match self {
            Handle::V4(c) => queued(c.try_subscribe(filter, QoS::AtLeastOnce)),
            Handle::V5(c) => queued(c.try_subscribe(filter, v5::mqttbytes::QoS::AtLeastOnce)),
        }
    }

    /// Sends the PUBACK for one message (queued behind earlier requests: acks go out in order).
    pub async fn ack(&self, token: &AckToken) -> Result<(), RequestError> {
        match (self, token) {
            (Handle::V4(c), AckToken::V4(p)) => queued(c.ack(p).await),
            (Handle::V5(c), AckToken::V5(p)) => queued(c.ack(p).await),
            _ => Err(RequestError("ack token from the other protocol".into())),
        }
    }

    pub fn disconnect(&self) -> Result<(), RequestError> {
        match self {
            Handle::V4(c) => queued(c.try_disconnect()),
            Handle::V5(c) => queued(c.try_disconnect()),
        }
    }
}

impl Connection {
    /// Sends the PUBACK for `token` ahead of whatever rumqttc has queued, for a subscriber
    /// that acknowledges manually at a high rate: rumqttc's event loop takes one queued request
    /// per turn while each network turn reads a whole bunch of deliveries, so acknowledgements
    /// sent through [`Handle::ack`] fall ever further behind a busy subscription.
    ///
    /// MQTT 3.1.1: the packet goes into the socket's write buffer at once (send it with
    /// [`Connection::flush`]); while disconnected there is nothing to acknowledge on, and the
    /// broker delivers the message again. MQTT 5 (whose socket rumqttc keeps to itself): queued
    /// through `handle` without waiting. Call it between polls, from the task that polls.
    pub async fn ack_now(&mut self, handle: &Handle, token: &AckToken) -> Result<(), RequestError> {
        match (self, token) {
            (Connection::V4(e), AckToken::V4(p)) => {
                let e = &mut **e;
                let Some(network) = e.network.as_mut() else {
                    return Err(RequestError("not connected".into()));
                };
                let packet = e
                    .state
                    .handle_outgoing_packet(rumqttc::Request::PubAck(rumqttc::PubAck::new(p.pkid)))
                    .map_err(|err| RequestError(err.to_string()))?;
                if let Some(packet) = packet {
                    network
                        .write(packet)
                        .await
                        .map_err(|err| RequestError(err.to_string()))?;
                }
                Ok(())
            }
            (Connection::V5(_), AckToken::V5(p)) => match handle {
                Handle::V5(c) => queued(c.try_ack(p)),
                Handle::V4(_) => Err(RequestError("handle from the other protocol".into())),
            },
            _ => Err(RequestError("ack token from the other protocol".into())),
        }
    }

    /// Writes out what [`Connection::ack_now`] buffered (MQTT 3.1.1; nothing to do for 5).
    pub async fn flush(&mut self) -> Result<(), RequestError> {
        if let Connection::V4(e) = self
            && let Some(network) = e.network.as_mut()
        {
            network
                .flush()
                .await
                .map_err(|err| RequestError(err.to_string()))?;
        }
        Ok(())
    }

    /// Drives the connection; an error means it is down (the next poll reconnects).
    pub async fn poll(&mut self) -> Result<Event, String> {
        match self {
            Connection::V4(e) => Ok(v4_event(e.poll().await.map_err(|e| e.to_string())?)),
            Connection::V5(e) => Ok(v5_event(e.poll().await.map_err(|e| e.to_string())?)),
        }
    }
}

fn v4_event(event: rumqttc::Event) -> Event {
    use rumqttc::{Packet, SubscribeReasonCode};
    match event {
        rumqttc::Event::Incoming(p) => match p {
            Packet::ConnAck(a) => Event::Connected {
                session_present: a.session_present,
            },
            Packet::PubAck(a) => Event::PubAck {
                pkid: a.pkid,
                refused: None,
            },
            Packet::Publish(p) => {
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
            Packet::SubAck(s) => {
                if s.return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    Event::SubscribeRefused("failure return code".into())
                } else {
                    Event::Other
                }
            }
            _ => Event::Other,
        },
        rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => Event::Published(pkid),
        rumqttc::Event::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        rumqttc::Event::Outgoing(_) => Event::Other,
    }
}

fn v5_event(event: v5::Event) -> Event {
    use v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
    match event {
        v5::Event::Incoming(p) => match p {
            Packet::ConnAck(a) => Event::Connected {
                session_present: a.session_present,
            },
            Packet::PubAck(a) => Event::PubAck {
                pkid: a.pkid,
                refused: match a.reason {
                    PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                    other => Some(format!("{other:?}")),
                },
            },
            Packet::Publish(p) => {
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
            Packet::SubAck(s) => match s
                .return_codes
                .iter()
                .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
            {
                Some(bad) => Event::SubscribeRefused(format!("{bad:?}")),
                None => Event::Other,
            },
            _ => Event::Other,
        },
        v5::Event::Outgoing(Outgoing::Publish(pkid)) => Event::Published(pkid),
        v5::Event::Outgoing(Outgoing::Disconnect) => Event::Disconnected,
        v5::Event::Outgoing(_) => Event::Other,
    }
}

/// Back-off between reconnect attempts: doubles from `min` per failure, up to `max`.
pub fn reconnect_delay(failures: u32, min: Duration, max: Duration) -> Duration {
    min.saturating_mul(1u32 << failures.min(16)).min(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(url: &str) -> BrokerFields<'_> {
        BrokerFields {
            url,
            protocol: "3.1.1",
            ca_file: None,
            cert_file: None,
            key_file: None,
            username: None,
            password: None,
            password_file: None,
            keep_alive: "30s",
            max_in_flight: 10,
        }
    }

    fn err(f: BrokerFields<'_>) -> String {
        f.validate().unwrap_err().to_string()
    }

    #[test]
    fn urls_and_default_ports() {
        let b = fields("mqtt://broker.example").validate().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("broker.example", 1883));
        let b = fields("mqtt://10.0.0.1:11883/").validate().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("10.0.0.1", 11883));
        assert!(err(fields("tcp://x:1")).starts_with("mqtt.url: "));
        assert!(err(fields("mqtt://x:port")).contains("bad port"));
        assert!(err(fields("mqtt://:1883")).contains("no host"));
    }

    #[test]
    fn tls_needs_a_ca_and_both_halves_of_the_client_pair() {
        assert!(err(fields("mqtts://x")).starts_with("mqtt.ca_file: required"));
        let ca = Path::new("/nonexistent/ca.pem");
        let e = err(BrokerFields {
            ca_file: Some(ca),
            ..fields("mqtts://x")
        });
        assert!(e.starts_with("mqtt.ca_file: /nonexistent/ca.pem"), "{e}");
        let e = err(BrokerFields {
            ca_file: Some(ca),
            ..fields("mqtt://x")
        });
        assert!(e.contains("use mqtts://"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pem = dir.path().join("ca.pem");
        std::fs::write(&pem, "pem").unwrap();
        let e = err(BrokerFields {
            ca_file: Some(&pem),
            cert_file: Some(&pem),
            ..fields("mqtts://x")
        });
        assert!(e.starts_with("mqtt.key_file: "), "{e}");
        let b = BrokerFields {
            ca_file: Some(&pem),
            ..fields("mqtts://x")
        }
        .validate()
        .unwrap();
        assert_eq!(b.port, 8883);
    }

    #[test]
    fn credentials_protocol_and_limits() {
        let e = err(BrokerFields {
            password: Some("pw"),
            ..fields("mqtt://x")
        });
        assert!(e.starts_with("mqtt.username: "), "{e}");
        let e = err(BrokerFields {
            protocol: "3.1",
            ..fields("mqtt://x")
        });
        assert!(e.starts_with("mqtt.protocol: "), "{e}");
        let e = err(BrokerFields {
            max_in_flight: 0,
            ..fields("mqtt://x")
        });
        assert!(e.starts_with("mqtt.max_in_flight: "), "{e}");
        let e = err(BrokerFields {
            keep_alive: "100ms",
            ..fields("mqtt://x")
        });
        assert!(e.starts_with("mqtt.keep_alive: "), "{e}");
        let b = BrokerFields {
            protocol: "5",
            username: Some("u"),
            password: Some("secret"),
            ..fields("mqtt://x")
        }
        .validate()
        .unwrap();
        assert_eq!(b.protocol, Protocol::V5);
        assert!(!format!("{b:?}").contains("secret"));
    }

    #[test]
    fn reconnect_back_off_doubles_to_its_cap() {
        let (min, max) = (Duration::from_millis(250), Duration::from_secs(10));
        assert_eq!(reconnect_delay(0, min, max), min);
        assert_eq!(reconnect_delay(2, min, max), Duration::from_secs(1));
        assert_eq!(reconnect_delay(40, min, max), max);
    }
}
