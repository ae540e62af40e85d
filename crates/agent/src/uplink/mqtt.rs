//! One face over rumqttc's MQTT 3.1.1 and MQTT 5 clients, reduced to what the session needs:
//! publish QoS 1, subscribe, and the events that matter (connected, a publish got its packet
//! id, a PUBACK, a command arrived).
//!
//! Both run with a clean session: the agent's spool, not the broker, is the durable state, so
//! after a reconnect nothing is resent by rumqttc (it drops its pending queue when the broker
//! reports no session) and the session republishes what the spool still holds.

use bytes::Bytes;
use rumqttc::v5;
use rumqttc::{Outgoing, QoS, TlsConfiguration, Transport};

use crate::config::{MqttSettings, Protocol};

/// What the session reacts to.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    /// The broker accepted the connection.
    Connected,
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
    },
    /// The broker refused the subscription (e.g. an ACL).
    SubscribeRefused(String),
    Other,
}

pub(crate) enum Client {
    V4(rumqttc::AsyncClient, Box<rumqttc::EventLoop>),
    V5(v5::AsyncClient, Box<v5::EventLoop>),
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Client::V4(..) => "Client(MQTT 3.1.1)",
            Client::V5(..) => "Client(MQTT 5)",
        })
    }
}

/// A publish or subscribe could not be queued (the request channel is closed or full).
#[derive(Debug, thiserror::Error)]
#[error("MQTT request not queued: {0}")]
pub(crate) struct RequestError(String);

impl Client {
    /// Builds the client; nothing connects until [`Client::poll`]. `will` is the retained
    /// offline status the broker publishes if the agent vanishes.
    pub(crate) fn new(
        s: &MqttSettings,
        client_id: &str,
        will: (String, Vec<u8>),
        queue: usize,
    ) -> Client {
        let transport = match &s.tls {
            None => Transport::tcp(),
            Some(tls) => Transport::tls_with_config(TlsConfiguration::Simple {
                ca: tls.ca_pem.clone(),
                alpn: None,
                client_auth: tls.client.clone(),
            }),
        };
        match s.protocol {
            Protocol::V311 => {
                let mut o = rumqttc::MqttOptions::new(client_id, &s.host, s.port);
                o.set_keep_alive(s.keep_alive)
                    .set_clean_session(true)
                    .set_inflight(s.max_in_flight)
                    .set_transport(transport)
                    .set_last_will(rumqttc::LastWill::new(
                        will.0,
                        will.1,
                        QoS::AtLeastOnce,
                        true,
                    ));
                if let Some(u) = &s.username {
                    o.set_credentials(u, s.password.clone().unwrap_or_default());
                }
                let (c, e) = rumqttc::AsyncClient::new(o, queue);
                Client::V4(c, Box::new(e))
            }
            Protocol::V5 => {
                let mut o = v5::MqttOptions::new(client_id, &s.host, s.port);
                o.set_keep_alive(s.keep_alive)
                    .set_clean_start(true)
                    .set_outgoing_inflight_upper_limit(s.max_in_flight)
                    .set_transport(transport)
                    .set_last_will(v5::mqttbytes::v5::LastWill::new(
                        will.0,
                        will.1,
                        v5::mqttbytes::QoS::AtLeastOnce,
                        true,
                        None,
                    ));
                if let Some(u) = &s.username {
                    o.set_credentials(u, s.password.clone().unwrap_or_default());
                }
                let (c, e) = v5::AsyncClient::new(o, queue);
                Client::V5(c, Box::new(e))
            }
        }
    }

    pub(crate) fn publish(
        &self,
        topic: &str,
        payload: Vec<u8>,
        retain: bool,
    ) -> Result<(), RequestError> {
        match self {
            Client::V4(c, _) => c
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|e| RequestError(e.to_string())),
            Client::V5(c, _) => c
                .try_publish(topic, v5::mqttbytes::QoS::AtLeastOnce, retain, payload)
                .map_err(|e| RequestError(e.to_string())),
        }
    }

    pub(crate) fn subscribe(&self, topic: &str) -> Result<(), RequestError> {
        match self {
            Client::V4(c, _) => c
                .try_subscribe(topic, QoS::AtLeastOnce)
                .map_err(|e| RequestError(e.to_string())),
            Client::V5(c, _) => c
                .try_subscribe(topic, v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|e| RequestError(e.to_string())),
        }
    }

    pub(crate) fn disconnect(&self) -> Result<(), RequestError> {
        match self {
            Client::V4(c, _) => c.try_disconnect().map_err(|e| RequestError(e.to_string())),
            Client::V5(c, _) => c.try_disconnect().map_err(|e| RequestError(e.to_string())),
        }
    }

    /// Drives the connection; an error means it is down (the next poll reconnects).
    pub(crate) async fn poll(&mut self) -> Result<Event, String> {
        match self {
            Client::V4(_, e) => match e.poll().await.map_err(|e| e.to_string())? {
                rumqttc::Event::Incoming(p) => Ok(match p {
                    rumqttc::Packet::ConnAck(_) => Event::Connected,
                    rumqttc::Packet::PubAck(a) => Event::PubAck {
                        pkid: a.pkid,
                        refused: None,
                    },
                    rumqttc::Packet::Publish(p) => Event::Message {
                        topic: p.topic,
                        payload: p.payload,
                    },
                    rumqttc::Packet::SubAck(s) => {
                        if s.return_codes
                            .iter()
                            .any(|c| matches!(c, rumqttc::SubscribeReasonCode::Failure))
                        {
                            Event::SubscribeRefused("failure return code".into())
                        } else {
                            Event::Other
                        }
                    }
                    _ => Event::Other,
                }),
                rumqttc::Event::Outgoing(Outgoing::Publish(pkid)) => Ok(Event::Published(pkid)),
                rumqttc::Event::Outgoing(_) => Ok(Event::Other),
            },
            Client::V5(_, e) => {
                use v5::mqttbytes::v5::{Packet, PubAckReason, SubscribeReasonCode};
                match e.poll().await.map_err(|e| e.to_string())? {
                    v5::Event::Incoming(p) => Ok(match p {
                        Packet::ConnAck(_) => Event::Connected,
                        Packet::PubAck(a) => Event::PubAck {
                            pkid: a.pkid,
                            refused: match a.reason {
                                PubAckReason::Success | PubAckReason::NoMatchingSubscribers => None,
                                other => Some(format!("{other:?}")),
                            },
                        },
                        Packet::Publish(p) => Event::Message {
                            topic: String::from_utf8_lossy(&p.topic).into_owned(),
                            payload: p.payload,
                        },
                        Packet::SubAck(s) => {
                            match s
                                .return_codes
                                .iter()
                                .find(|c| !matches!(c, SubscribeReasonCode::Success(_)))
                            {
                                Some(bad) => Event::SubscribeRefused(format!("{bad:?}")),
                                None => Event::Other,
                            }
                        }
                        _ => Event::Other,
                    }),
                    v5::Event::Outgoing(Outgoing::Publish(pkid)) => Ok(Event::Published(pkid)),
                    v5::Event::Outgoing(_) => Ok(Event::Other),
                }
            }
        }
    }
}
