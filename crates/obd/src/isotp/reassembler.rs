//! Reassembly for many senders at once, keyed by CAN id, and for finished frame lists.
//!
//! A functional request (`7DF`, `18DB33F1`) is answered by every OBD ECU, each on its own
//! response id, and their multi-frame answers interleave on the bus. ISO 15765-2 keeps one
//! reception per (source, target) address pair, so [`Reassembler`] keeps one [`Receiver`]
//! per CAN id, created by a first frame and dropped when its message completes or fails.
//! The number of receptions in progress is bounded (64 by default), so a flood of first
//! frames from made-up ids cannot grow memory without limit.
//!
//! On a recorded bus the flow controls of the other direction are there too; they are
//! reported as [`ReassemblerEvent::FlowControl`] rather than as errors.
//!
//! [`reassemble`] rebuilds one message from a complete list of frames, for adapters (ELM327
//! with headers on) that print the raw frames of a response after the fact.

use std::collections::BTreeMap;
use std::time::Instant;

use super::config::Config;
use super::rx::{Assembly, Receiver, RxEvent};
use super::{FlowStatus, IsoTpError, Pci, StMin};
use crate::frame::{CanFrame, CanId};

/// Receptions in progress a [`Reassembler`] keeps by default.
pub const DEFAULT_MAX_SOURCES: usize = 64;

/// One frame's outcome at a [`Reassembler`], with the id it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub id: CanId,
    pub event: ReassemblerEvent,
}

/// What a frame meant to the [`Reassembler`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReassemblerEvent {
    /// The outcome of the frame in the reception for its id. A `SendFlowControl` or
    /// `Overflow` frame goes to the partner id (see
    /// [`addressing::request_id`](super::addressing::request_id)); a passive listener
    /// ignores it.
    Rx(RxEvent),
    /// The frame is a flow control sent from this id (the other direction of some transfer).
    FlowControl {
        status: FlowStatus,
        block_size: u8,
        st_min: StMin,
    },
}

/// An error in the reception from one id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("ISO-TP from {id}: {error}")]
pub struct SourceError {
    pub id: CanId,
    pub error: IsoTpError,
}

/// One [`Receiver`] per source CAN id.
#[derive(Debug, Clone)]
pub struct Reassembler {
    config: Config,
    max_sources: usize,
    receivers: BTreeMap<CanId, Receiver>,
}

impl Reassembler {
    pub fn new(config: Config) -> Reassembler {
        Reassembler::with_max_sources(config, DEFAULT_MAX_SOURCES)
    }

    /// Bounds the receptions in progress at once to `max_sources`.
    pub fn with_max_sources(config: Config, max_sources: usize) -> Reassembler {
        Reassembler {
            config,
            max_sources,
            receivers: BTreeMap::new(),
        }
    }

    /// Feeds one frame. Errors say which id they concern; as with [`Receiver::on_frame`],
    /// some end that id's reception and some only report an ignored frame. A first frame
    /// from a new id while `max_sources` receptions are in progress is refused with
    /// [`IsoTpError::TooManySources`].
    pub fn on_frame(&mut self, frame: &CanFrame, now: Instant) -> Result<Received, SourceError> {
        let id = frame.id();
        let fail = |error| SourceError { id, error };
        if frame.data().first().is_some_and(|b| b >> 4 == 3) {
            return match Pci::decode(frame.data()).map_err(fail)? {
                (
                    Pci::FlowControl {
                        status,
                        block_size,
                        st_min,
                    },
                    _,
                ) => Ok(Received {
                    id,
                    event: ReassemblerEvent::FlowControl {
                        status,
                        block_size,
                        st_min,
                    },
                }),
                // Type 3 always decodes as a flow control or fails.
                (other, _) => Err(fail(IsoTpError::UnexpectedFrame {
                    got: other.kind(),
                    during: "where a flow control was decoded",
                })),
            };
        }
        let mut rx = self
            .receivers
            .remove(&id)
            .unwrap_or_else(|| Receiver::new(self.config));
        let event = rx.on_frame(frame.data(), now);
        if !rx.is_idle() {
            if self.receivers.len() >= self.max_sources {
                return Err(fail(IsoTpError::TooManySources {
                    max: self.max_sources,
                }));
            }
            self.receivers.insert(id, rx);
        }
        Ok(Received {
            id,
            event: ReassemblerEvent::Rx(event.map_err(fail)?),
        })
    }

    /// The earliest N_Cr deadline of all receptions in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.receivers
            .values()
            .filter_map(Receiver::poll_timeout)
            .min()
    }

    /// Ends every reception whose N_Cr has expired and reports each.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<SourceError> {
        let mut errors = Vec::new();
        self.receivers
            .retain(|&id, rx| match rx.handle_timeout(now) {
                Ok(()) => true,
                Err(error) => {
                    errors.push(SourceError { id, error });
                    false
                }
            });
        errors
    }

    /// Ids with a message in progress.
    pub fn in_progress(&self) -> impl Iterator<Item = CanId> + '_ {
        self.receivers.keys().copied()
    }

    /// Drops every reception in progress.
    pub fn clear(&mut self) {
        self.receivers.clear();
    }
}

/// Rebuilds one message from the data of all its frames, in order: a single frame alone, or
/// a first frame and exactly the consecutive frames it needs. Padding is stripped.
pub fn reassemble(frames: &[&[u8]]) -> Result<Vec<u8>, IsoTpError> {
    let (first, rest) = frames.split_first().ok_or(IsoTpError::NoFrames)?;
    match Pci::decode(first)? {
        (Pci::Single { .. }, payload) if rest.is_empty() => Ok(payload.to_vec()),
        (Pci::Single { .. }, _) => Err(IsoTpError::TrailingFrames { extra: rest.len() }),
        (Pci::First { len }, payload) => {
            reassemble_consecutive(Assembly::start(len, payload), rest)
        }
        (other, _) => Err(IsoTpError::UnexpectedFrame {
            got: other.kind(),
            during: "at the start of a message",
        }),
    }
}

fn reassemble_consecutive(mut assembly: Assembly, frames: &[&[u8]]) -> Result<Vec<u8>, IsoTpError> {
    let expected = assembly.progress().expected;
    for (i, frame) in frames.iter().enumerate() {
        let (sn, payload) = match Pci::decode(frame)? {
            (Pci::Consecutive { sn }, payload) => (sn, payload),
            (other, _) => {
                return Err(IsoTpError::UnexpectedFrame {
                    got: other.kind(),
                    during: "inside a multi-frame message",
                });
            }
        };
        if assembly.push(sn, payload)? {
            let extra = frames.len().saturating_sub(i + 1);
            if extra > 0 {
                return Err(IsoTpError::TrailingFrames { extra });
            }
            return Ok(assembly.into_payload());
        }
    }
    Err(IsoTpError::Incomplete {
        got: assembly.progress().received,
        expected,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::isotp::rx::Progress;
    use crate::isotp::{FrameKind, Timer};

    const VIN_FF: [u8; 8] = [0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x44, 0x34];
    const VIN_CF1: [u8; 8] = [0x21, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35];
    const VIN_CF2: [u8; 8] = [0x22, 0x42, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36];

    fn vin_response() -> Vec<u8> {
        let mut p = vec![0x49, 0x02, 0x01];
        p.extend_from_slice(b"1D4GP00R55B123456");
        p
    }

    fn frame(id: u16, data: &[u8]) -> CanFrame {
        CanFrame::new(CanId::Standard(id), data).unwrap()
    }

    fn rx_event(r: Result<Received, SourceError>) -> (CanId, RxEvent) {
        match r.unwrap() {
            Received {
                id,
                event: ReassemblerEvent::Rx(e),
            } => (id, e),
            other => panic!("not an Rx event: {other:?}"),
        }
    }

    #[test]
    fn reassemble_vin_response() {
        assert_eq!(
            reassemble(&[&VIN_FF, &VIN_CF1, &VIN_CF2]),
            Ok(vin_response())
        );
        // ELM327 prints the SF of a short answer: `7E8 06 41 00 BE 3F A8 13`.
        assert_eq!(
            reassemble(&[&[0x06, 0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13, 0x00]]),
            Ok(vec![0x41, 0x00, 0xBE, 0x3F, 0xA8, 0x13])
        );
    }

    #[test]
    fn reassemble_errors() {
        assert_eq!(reassemble(&[]), Err(IsoTpError::NoFrames));
        assert_eq!(
            reassemble(&[&VIN_FF, &VIN_CF1]),
            Err(IsoTpError::Incomplete {
                got: 13,
                expected: 20
            })
        );
        assert_eq!(
            reassemble(&[&VIN_FF, &VIN_CF2, &VIN_CF1]),
            Err(IsoTpError::WrongSequence {
                expected: 1,
                got: 2
            })
        );
        assert_eq!(
            reassemble(&[&VIN_FF, &VIN_CF1, &VIN_CF2, &[0x23, 0]]),
            Err(IsoTpError::TrailingFrames { extra: 1 })
        );
        assert_eq!(
            reassemble(&[&[0x01, 0xAA], &[0x01, 0xBB]]),
            Err(IsoTpError::TrailingFrames { extra: 1 })
        );
        assert_eq!(
            reassemble(&[&VIN_CF1]),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::Consecutive,
                during: "at the start of a message"
            })
        );
        assert_eq!(
            reassemble(&[&VIN_FF, &[0x30, 0, 0], &VIN_CF1]),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::FlowControl,
                during: "inside a multi-frame message"
            })
        );
        assert_eq!(
            reassemble(&[&VIN_FF, &VIN_CF1, &VIN_CF2[..3]]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::Consecutive,
                needed: 8,
                got: 3
            })
        );
        assert_eq!(
            reassemble(&[&[0x10, 0x14]]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::First,
                needed: 8,
                got: 2
            })
        );
    }

    // Two ECUs answer a functional Mode 09 request with interleaved multi-frame responses.
    #[test]
    fn interleaved_responses_from_two_ecus() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Config::default());
        let (id, e) = rx_event(r.on_frame(&frame(0x7E8, &VIN_FF), t0));
        assert_eq!(id, CanId::Standard(0x7E8));
        assert!(matches!(e, RxEvent::SendFlowControl(_)));
        rx_event(r.on_frame(&frame(0x7E9, &VIN_FF), t0));
        assert_eq!(r.in_progress().count(), 2);
        rx_event(r.on_frame(&frame(0x7E9, &VIN_CF1), t0));
        rx_event(r.on_frame(&frame(0x7E8, &VIN_CF1), t0));
        let (id, e) = rx_event(r.on_frame(&frame(0x7E9, &VIN_CF2), t0));
        assert_eq!(
            (id, e),
            (CanId::Standard(0x7E9), RxEvent::Complete(vin_response()))
        );
        assert_eq!(
            r.in_progress().collect::<Vec<_>>(),
            [CanId::Standard(0x7E8)]
        );
        let (_, e) = rx_event(r.on_frame(&frame(0x7E8, &VIN_CF2), t0));
        assert_eq!(e, RxEvent::Complete(vin_response()));
        assert_eq!(
            r.in_progress().count(),
            0,
            "completed receptions are dropped"
        );
        assert_eq!(r.poll_timeout(), None);
    }

    #[test]
    fn flow_controls_are_observed_not_errors() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Config::default());
        assert_eq!(
            r.on_frame(
                &frame(0x7E0, &[0x30, 0x00, 0x00, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]),
                t0
            ),
            Ok(Received {
                id: CanId::Standard(0x7E0),
                event: ReassemblerEvent::FlowControl {
                    status: FlowStatus::ContinueToSend,
                    block_size: 0,
                    st_min: StMin(0)
                }
            })
        );
        assert_eq!(
            r.on_frame(&frame(0x7E0, &[0x3F, 0, 0]), t0),
            Err(SourceError {
                id: CanId::Standard(0x7E0),
                error: IsoTpError::InvalidFlowStatus(15)
            })
        );
    }

    #[test]
    fn consecutive_frame_from_unknown_id() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Config::default());
        let err = r.on_frame(&frame(0x7EA, &VIN_CF1), t0).unwrap_err();
        assert_eq!(err.id, CanId::Standard(0x7EA));
        assert!(matches!(
            err.error,
            IsoTpError::UnexpectedFrame {
                got: FrameKind::Consecutive,
                ..
            }
        ));
        assert_eq!(
            err.to_string(),
            "ISO-TP from 7EA: unexpected consecutive frame while no message is in progress"
        );
        assert_eq!(r.in_progress().count(), 0);
    }

    #[test]
    fn bounded_number_of_sources() {
        let t0 = Instant::now();
        let mut r = Reassembler::with_max_sources(Config::default(), 2);
        rx_event(r.on_frame(&frame(0x100, &VIN_FF), t0));
        rx_event(r.on_frame(&frame(0x101, &VIN_FF), t0));
        assert_eq!(
            r.on_frame(&frame(0x102, &VIN_FF), t0),
            Err(SourceError {
                id: CanId::Standard(0x102),
                error: IsoTpError::TooManySources { max: 2 }
            })
        );
        // Single frames need no slot; a known id keeps its slot.
        rx_event(r.on_frame(&frame(0x102, &[0x01, 0xAA]), t0));
        rx_event(r.on_frame(&frame(0x100, &VIN_CF1), t0));
        assert_eq!(r.in_progress().count(), 2);
    }

    #[test]
    fn timeouts_per_source() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut r = Reassembler::new(Config::default());
        rx_event(r.on_frame(&frame(0x7E8, &VIN_FF), t0));
        rx_event(r.on_frame(&frame(0x7E9, &VIN_FF), t0 + ms(300)));
        assert_eq!(r.poll_timeout(), Some(t0 + ms(1000)));
        assert!(r.handle_timeout(t0 + ms(999)).is_empty());
        assert_eq!(
            r.handle_timeout(t0 + ms(1000)),
            [SourceError {
                id: CanId::Standard(0x7E8),
                error: IsoTpError::Timeout {
                    timer: Timer::NCr,
                    after: ms(1000)
                }
            }]
        );
        assert_eq!(r.poll_timeout(), Some(t0 + ms(1300)));
        assert_eq!(r.handle_timeout(t0 + ms(1300)).len(), 1);
        assert_eq!(r.in_progress().count(), 0);
    }

    #[test]
    fn restart_is_reported_per_source() {
        let t0 = Instant::now();
        let mut r = Reassembler::new(Config::default());
        rx_event(r.on_frame(&frame(0x7E8, &VIN_FF), t0));
        let (_, e) = rx_event(r.on_frame(&frame(0x7E8, &[0x02, 0x7F, 0x09]), t0));
        assert_eq!(
            e.into_parts().0,
            Some(Progress {
                received: 6,
                expected: 20
            })
        );
        assert_eq!(r.in_progress().count(), 0);
        r.clear();
    }
}
