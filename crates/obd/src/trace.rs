//! A recorded or overheard bus, read as diagnostic requests and responses.
//!
//! A [`Tracer`] takes CAN frames in the order they were seen, keeps only OBD diagnostic
//! identifiers (`7DF`, `7E0`–`7EF`, `18DB33F1`, `18DAxxyy` with the tester address `F1` on one
//! side; see [`crate::isotp::addressing`]), reassembles ISO-TP per identifier, and decodes each
//! whole message as a [`Request`] or [`Response`] by the direction its identifier implies.
//! Everything else on the bus (engine broadcast frames, body network) is skipped.
//!
//! Broken traffic is reported, never fatal: a wrong sequence number, a transfer that stops
//! (N_Cr expires before the next frame from that id), a message the service layer cannot decode.
//! Each becomes a [`Traced`] with an error, and the tracer goes on with the next frame. A
//! multi-PID answer is decoded against the request it answers (the last one seen on that
//! ECU's request id, or the last functional one), so a damaged PID in it becomes one error
//! item beside the response holding every PID that decoded.
//!
//! The tracer is passive: it never answers flow control; flow-control frames it sees are part of
//! someone else's conversation and produce no output.

use std::collections::HashMap;
use std::time::Instant;

use serde::Serialize;

use crate::frame::{CanFrame, CanId};
use crate::isotp::addressing::{self, IdRole};
use crate::isotp::{Config, IsoTpError, Reassembler, ReassemblerEvent, RxEvent, SourceError};
use crate::service::{Request, Response, ServiceError, sid};

/// One observed diagnostic message, or what went wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct Traced {
    /// The identifier the message (or the broken transfer) came from.
    pub id: CanId,
    pub role: IdRole,
    pub item: Result<Message, TraceError>,
}

/// A whole, decoded diagnostic message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Why a transfer or message could not be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TraceError {
    #[error("ISO-TP: {0}")]
    Transport(IsoTpError),
    #[error(
        "message of {len} bytes dropped: a new transfer from the same id began after {received} bytes"
    )]
    Interrupted { len: usize, received: usize },
    #[error("transfer still incomplete at the end of the trace")]
    Unfinished,
    #[error("{error} (payload {payload})")]
    Service {
        error: ServiceError,
        payload: String,
    },
}

/// Passive decoder of diagnostic traffic; see the module docs.
#[derive(Debug)]
pub struct Tracer {
    rx: Reassembler,
    /// The last request seen on each request id (functional ones under the functional id).
    requests: HashMap<CanId, Request>,
    /// The last functional request, which every ECU answers.
    functional: Option<Request>,
}

impl Default for Tracer {
    fn default() -> Self {
        Tracer::new()
    }
}

impl Tracer {
    pub fn new() -> Tracer {
        Tracer {
            rx: Reassembler::new(Config::default()),
            requests: HashMap::new(),
            functional: None,
        }
    }

    /// Feeds one frame seen at `now` (the log's time, mapped to an `Instant` by the caller).
    /// Returns what completed or broke: usually nothing or one item; transfers whose N_Cr ran
    /// out before `now` are reported first.
    pub fn on_frame(&mut self, frame: &CanFrame, now: Instant) -> Vec<Traced> {
        let mut out: Vec<Traced> = self
            .rx
            .handle_timeout(now)
            .into_iter()
            .filter_map(transport_error)
            .collect();
        let Some(role) = addressing::role(frame.id()) else {
            return out;
        };
        let id = frame.id();
        match self.rx.on_frame(frame, now) {
            Err(err) => out.extend(transport_error(err)),
            Ok(received) => {
                if let ReassemblerEvent::Rx(event) = received.event {
                    self.collect(id, role, event, &mut out);
                }
            }
        }
        out
    }

    /// Call at the end of the log: transfers still open there are reported as incomplete.
    pub fn finish(&mut self) -> Vec<Traced> {
        let open: Vec<CanId> = self.rx.in_progress().collect();
        self.rx.clear();
        open.into_iter()
            .filter_map(|id| {
                let role = addressing::role(id)?;
                Some(Traced {
                    id,
                    role,
                    item: Err(TraceError::Unfinished),
                })
            })
            .collect()
    }
}

fn transport_error(err: SourceError) -> Option<Traced> {
    let role = addressing::role(err.id)?;
    Some(Traced {
        id: err.id,
        role,
        item: Err(TraceError::Transport(err.error)),
    })
}

impl Tracer {
    fn collect(&mut self, id: CanId, role: IdRole, event: RxEvent, out: &mut Vec<Traced>) {
        match event {
            RxEvent::Nothing | RxEvent::SendFlowControl(_) => {}
            RxEvent::Complete(payload) => self.complete(id, role, &payload, out),
            RxEvent::Overflow { len, max, .. } => out.push(Traced {
                id,
                role,
                item: Err(TraceError::Transport(IsoTpError::ReceiveOverflow {
                    len,
                    max,
                })),
            }),
            RxEvent::Restarted { dropped, then } => {
                out.push(Traced {
                    id,
                    role,
                    item: Err(TraceError::Interrupted {
                        len: dropped.expected,
                        received: dropped.received,
                    }),
                });
                self.collect(id, role, *then, out);
            }
        }
    }

    /// A whole message: requests are remembered; an answer is decoded against the request it
    /// answers when there is one, and a damaged part of it becomes an error item of its own.
    fn complete(&mut self, id: CanId, role: IdRole, payload: &[u8], out: &mut Vec<Traced>) {
        let item = decode(role, payload);
        match (role, &item) {
            (IdRole::FunctionalRequest, Ok(Message::Request(req))) => {
                self.functional = Some(req.clone());
            }
            (IdRole::PhysicalRequest, Ok(Message::Request(req))) => {
                self.requests.insert(id, req.clone());
            }
            _ => {}
        }
        let answered = addressing::request_id(id)
            .and_then(|r| self.requests.get(&r))
            .or(self.functional.as_ref())
            .filter(|r| {
                role == IdRole::Response
                    && payload.first() == Some(&(r.service() + sid::POSITIVE_OFFSET))
            });
        let Some(answer) = answered.and_then(|r| Response::parse_answer(r, payload).ok()) else {
            out.push(Traced { id, role, item });
            return;
        };
        out.push(Traced {
            id,
            role,
            item: Ok(Message::Response(answer.response)),
        });
        out.extend(answer.damaged.into_iter().map(|d| Traced {
            id,
            role,
            item: Err(TraceError::Service {
                error: d.error,
                payload: hex(&d.bytes),
            }),
        }));
    }
}

/// Decodes one reassembled payload by the direction of the id it came on.
pub fn decode(role: IdRole, payload: &[u8]) -> Result<Message, TraceError> {
    let result = match role {
        IdRole::Response => Response::parse(payload).map(Message::Response),
        IdRole::FunctionalRequest | IdRole::PhysicalRequest => {
            Request::parse(payload).map(Message::Request)
        }
    };
    result.map_err(|error| TraceError::Service {
        error,
        payload: hex(payload),
    })
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn frame(id: u32, data: &[u8]) -> CanFrame {
        let id = if id > 0x7FF {
            CanId::Extended(id)
        } else {
            CanId::Standard(id as u16)
        };
        CanFrame::new(id, data).unwrap()
    }

    fn feed(frames: &[(u64, u32, &[u8])]) -> Vec<Traced> {
        let t0 = Instant::now();
        let mut tracer = Tracer::new();
        let mut out = Vec::new();
        for &(ms, id, data) in frames {
            out.extend(tracer.on_frame(&frame(id, data), t0 + Duration::from_millis(ms)));
        }
        out.extend(tracer.finish());
        out
    }

    #[test]
    fn request_and_multi_frame_vin_response() {
        let out = feed(&[
            (0, 0x7DF, &[0x02, 0x09, 0x02, 0, 0, 0, 0, 0]),
            (5, 0x7E8, &[0x10, 0x14, 0x49, 0x02, 0x01, b'1', b'H', b'G']),
            (6, 0x7E0, &[0x30, 0x00, 0x00, 0, 0, 0, 0, 0]),
            (7, 0x7E8, &[0x21, b'C', b'M', b'8', b'2', b'6', b'3', b'3']),
            (8, 0x7E8, &[0x22, b'A', b'0', b'0', b'4', b'3', b'5', b'2']),
        ]);
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[0].role, IdRole::FunctionalRequest);
        assert_eq!(
            out[0].item,
            Ok(Message::Request(Request::VehicleInfo { infotype: 2 }))
        );
        let Ok(Message::Response(Response::VehicleInfo(info))) = &out[1].item else {
            panic!("{:?}", out[1])
        };
        assert_eq!(
            serde_json::to_string(info).unwrap(),
            r#"{"vin":"1HGCM82633A004352"}"#
        );
    }

    #[test]
    fn a_damaged_pid_is_an_error_beside_the_pids_that_decoded() {
        // 01 0C 0D 05 asked functionally; the engine's answer cuts speed (0D) short.
        let out = feed(&[
            (0, 0x7DF, &[0x04, 0x01, 0x0C, 0x0D, 0x05, 0, 0, 0]),
            (5, 0x7E8, &[0x07, 0x41, 0x0C, 0x1A, 0xF8, 0x0D, 0x05, 0x7B]),
        ]);
        assert_eq!(out.len(), 3, "{out:?}");
        let Ok(Message::Response(Response::CurrentData(pids))) = &out[1].item else {
            panic!("{:?}", out[1])
        };
        // Without the request, 0D would have taken 05 as its byte and 7B would be garbage.
        assert_eq!(pids.iter().map(|p| p.pid).collect::<Vec<_>>(), [0x0C, 0x05]);
        assert_eq!(out[2].id, CanId::Standard(0x7E8));
        let Err(TraceError::Service { payload, .. }) = &out[2].item else {
            panic!("{:?}", out[2])
        };
        assert_eq!(payload, "0D");
    }

    #[test]
    fn other_traffic_is_skipped() {
        assert!(feed(&[(0, 0x123, &[1, 2, 3]), (1, 0x18FEF100, &[0; 8])]).is_empty());
    }

    #[test]
    fn broken_transfers_are_reported_and_decoding_goes_on() {
        let out = feed(&[
            // First frame, then a consecutive frame with the wrong sequence number.
            (0, 0x7E8, &[0x10, 0x14, 0x49, 0x02, 0x01, b'1', b'H', b'G']),
            (1, 0x7E8, &[0x22, b'C', b'M', b'8', b'2', b'6', b'3', b'3']),
            // Then a good single frame: 41 0D 3C = 60 km/h.
            (2, 0x7E8, &[0x03, 0x41, 0x0D, 0x3C]),
            // A first frame that never continues: N_Cr (1 s) runs out before the next frame.
            (3, 0x7E9, &[0x10, 0x14, 0x49, 0x02, 0x01, b'1', b'H', b'G']),
            (2000, 0x7E8, &[0x03, 0x41, 0x0D, 0x3D]),
            // An ECU answering with a length that disagrees with the PID table.
            (2001, 0x7E8, &[0x03, 0x41, 0x0C, 0x1A]),
        ]);
        let kinds: Vec<String> = out
            .iter()
            .map(|t| match &t.item {
                Ok(_) => format!("{} ok", t.id),
                Err(TraceError::Transport(IsoTpError::WrongSequence { .. })) => {
                    format!("{} seq", t.id)
                }
                Err(TraceError::Transport(IsoTpError::Timeout { .. })) => {
                    format!("{} timeout", t.id)
                }
                Err(TraceError::Service { .. }) => format!("{} service", t.id),
                Err(other) => format!("{} {other}", t.id),
            })
            .collect();
        assert_eq!(
            kinds,
            ["7E8 seq", "7E8 ok", "7E9 timeout", "7E8 ok", "7E8 service"]
        );
    }

    #[test]
    fn an_interrupted_transfer_is_reported() {
        let out = feed(&[
            (0, 0x7E8, &[0x10, 0x14, 0x49, 0x02, 0x01, b'1', b'H', b'G']),
            (1, 0x7E8, &[0x03, 0x41, 0x0D, 0x3C]),
        ]);
        assert!(
            matches!(
                out[0].item,
                Err(TraceError::Interrupted {
                    len: 20,
                    received: 6
                })
            ),
            "{out:?}"
        );
        assert!(out[1].item.is_ok());
    }

    #[test]
    fn a_transfer_open_at_the_end_is_reported() {
        let out = feed(&[(
            0,
            0x18DAF110,
            &[0x10, 0x14, 0x49, 0x02, 0x01, b'1', b'H', b'G'],
        )]);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, CanId::Extended(0x18DA_F110));
        assert!(out[0].item.is_err());
    }
}
