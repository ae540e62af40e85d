//! The receiving side of ISO 15765-2 (clauses 9.6 and 9.8): reassembly and flow control.
//!
//! - A single frame is a whole message.
//! - A first frame announces FF_DL bytes. If that is more than we accept, we answer
//!   FC.Overflow and drop the message; otherwise we answer FC.ContinueToSend with our block
//!   size and STmin, and wait up to N_Cr for each consecutive frame.
//! - Consecutive frames must carry SN 1, 2, .. 15, 0, ..; a wrong SN aborts the reception
//!   (N_WRONG_SN). After every `BS` CFs (when `BS` > 0) we send another FC.CTS. The message
//!   is complete at FF_DL bytes; padding in the last CF is dropped.
//!
//! Unexpected frames (ISO 15765-2, handling of unexpected N_PDUs): a new SF or FF during a reception aborts the old
//! message and starts the new one; [`Receiver::on_frame`] then returns
//! [`RxEvent::Restarted`] naming what was dropped. A CF while idle, an FC (which belongs to
//! our own sender), or a malformed frame is ignored: `on_frame` returns the error and the
//! state is unchanged. A wrong SN or an N_Cr timeout ends the reception.

use std::time::Instant;

use super::config::{Config, FrameData};
use super::pci::CONSECUTIVE_FRAME_PAYLOAD;
use super::{FlowStatus, FrameKind, IsoTpError, Pci, StMin, Timer, deadline};

/// What the caller has to do after feeding a frame to a [`Receiver`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RxEvent {
    /// Frame accepted; nothing to send yet.
    Nothing,
    /// Send this flow control to the sender (on the sender's partner id).
    SendFlowControl(FrameData),
    /// A whole message.
    Complete(Vec<u8>),
    /// The first frame announced `len` bytes, more than our `max`: send `flow_control`
    /// (FC.Overflow) and forget the message.
    Overflow {
        flow_control: FrameData,
        len: usize,
        max: usize,
    },
    /// A single or first frame arrived while an earlier message was incomplete. The earlier
    /// one is dropped, as ISO 15765-2 requires; `then` is what the new frame produced
    /// (never another `Restarted`).
    Restarted {
        dropped: Progress,
        then: Box<RxEvent>,
    },
}

/// How far a multi-frame message got: reported for one a new first or single frame replaced,
/// and by [`Receiver::progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Progress {
    pub received: usize,
    pub expected: usize,
}

impl RxEvent {
    /// Splits off the report of a dropped message, so callers can handle the new frame's
    /// outcome in one place.
    pub fn into_parts(self) -> (Option<Progress>, RxEvent) {
        match self {
            RxEvent::Restarted { dropped, then } => (Some(dropped), *then),
            other => (None, other),
        }
    }
}

/// A message being put together from a first frame and consecutive frames. Shared by the
/// timed [`Receiver`] and the untimed [`reassemble`](super::reassemble).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Assembly {
    buf: Vec<u8>,
    expected: usize,
    next_sn: u8,
}

impl Assembly {
    /// Starts from a first frame's length and its payload bytes.
    pub(crate) fn start(expected: usize, first: &[u8]) -> Assembly {
        let mut buf = Vec::with_capacity(expected);
        buf.extend_from_slice(first.get(..expected).unwrap_or(first));
        Assembly {
            buf,
            expected,
            next_sn: 1,
        }
    }

    /// Appends a CF's bytes. A CF that is not the last must be full (7 bytes); the last
    /// must hold at least the remaining bytes, and anything beyond them is padding.
    /// `Ok(true)` when the message is complete.
    pub(crate) fn push(&mut self, sn: u8, payload: &[u8]) -> Result<bool, IsoTpError> {
        if sn != self.next_sn {
            return Err(IsoTpError::WrongSequence {
                expected: self.next_sn,
                got: sn,
            });
        }
        let wanted = self.remaining().min(CONSECUTIVE_FRAME_PAYLOAD);
        let bytes = payload.get(..wanted).ok_or(IsoTpError::FrameTooShort {
            kind: FrameKind::Consecutive,
            needed: 1 + wanted,
            got: 1 + payload.len(),
        })?;
        self.buf.extend_from_slice(bytes);
        self.next_sn = (self.next_sn + 1) & 0x0F;
        Ok(self.remaining() == 0)
    }

    pub(crate) fn remaining(&self) -> usize {
        self.expected.saturating_sub(self.buf.len())
    }

    pub(crate) fn progress(&self) -> Progress {
        Progress {
            received: self.buf.len(),
            expected: self.expected,
        }
    }

    pub(crate) fn into_payload(self) -> Vec<u8> {
        self.buf
    }
}

/// Reassembles messages from one sender (one CAN id) and produces our flow controls.
#[derive(Debug, Clone)]
pub struct Receiver {
    config: Config,
    state: Option<InProgress>,
}

#[derive(Debug, Clone)]
struct InProgress {
    assembly: Assembly,
    /// CFs left before we owe the sender another FC; `None` when our BS is 0.
    block_left: Option<u8>,
    /// N_Cr: when the next CF must have arrived.
    deadline: Instant,
}

impl Receiver {
    pub fn new(config: Config) -> Receiver {
        Receiver {
            config,
            state: None,
        }
    }

    /// Feeds the data bytes of one frame from the sender. See the module docs for which
    /// errors end a reception and which only report an ignored frame.
    pub fn on_frame(&mut self, data: &[u8], now: Instant) -> Result<RxEvent, IsoTpError> {
        let (pci, payload) = Pci::decode(data)?;
        match pci {
            Pci::Single { .. } => Ok(self.restart(RxEvent::Complete(payload.to_vec()))),
            Pci::First { len } => {
                let event = self.first_frame(len, payload, now);
                Ok(self.restart_with(event))
            }
            Pci::Consecutive { sn } => self.consecutive_frame(sn, payload, now),
            Pci::FlowControl { .. } => Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::FlowControl,
                during: "at a receiver (flow controls pace our own sender)",
            }),
        }
    }

    /// N_Cr deadline while a message is in progress.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.state.as_ref().map(|s| s.deadline)
    }

    /// Ends the reception with [`IsoTpError::Timeout`] for N_Cr when the next CF is late;
    /// otherwise does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), IsoTpError> {
        match &self.state {
            Some(s) if now >= s.deadline => {
                self.state = None;
                Err(IsoTpError::Timeout {
                    timer: Timer::NCr,
                    after: self.config.n_cr,
                })
            }
            _ => Ok(()),
        }
    }

    /// True when no message is half received.
    pub fn is_idle(&self) -> bool {
        self.state.is_none()
    }

    /// Bytes received and expected of the message in progress.
    pub fn progress(&self) -> Option<Progress> {
        self.state.as_ref().map(|s| s.assembly.progress())
    }

    /// Drops any message in progress.
    pub fn reset(&mut self) {
        self.state = None;
    }

    /// Wraps `event` in `Restarted` if a message was in progress (and drops it).
    fn restart(&mut self, event: RxEvent) -> RxEvent {
        match self.state.take() {
            Some(old) => RxEvent::Restarted {
                dropped: old.assembly.progress(),
                then: Box::new(event),
            },
            None => event,
        }
    }

    /// Like `restart`, for a first frame whose new state was staged in `event.1`.
    fn restart_with(&mut self, (event, next): (RxEvent, Option<InProgress>)) -> RxEvent {
        let event = self.restart(event);
        self.state = next;
        event
    }

    fn first_frame(
        &self,
        len: usize,
        payload: &[u8],
        now: Instant,
    ) -> (RxEvent, Option<InProgress>) {
        let max = self.config.receive_limit();
        let padding = self.config.padding;
        if len > max {
            let flow_control =
                FrameData::flow_control(FlowStatus::Overflow, 0, StMin::ZERO, padding);
            return (
                RxEvent::Overflow {
                    flow_control,
                    len,
                    max,
                },
                None,
            );
        }
        let bs = self.config.block_size;
        let next = InProgress {
            assembly: Assembly::start(len, payload),
            block_left: (bs > 0).then_some(bs),
            deadline: deadline(now, self.config.n_cr),
        };
        (RxEvent::SendFlowControl(self.clear_to_send()), Some(next))
    }

    fn clear_to_send(&self) -> FrameData {
        let c = &self.config;
        FrameData::flow_control(
            FlowStatus::ContinueToSend,
            c.block_size,
            c.st_min,
            c.padding,
        )
    }

    fn consecutive_frame(
        &mut self,
        sn: u8,
        payload: &[u8],
        now: Instant,
    ) -> Result<RxEvent, IsoTpError> {
        let Some(progress) = self.state.as_mut() else {
            return Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::Consecutive,
                during: "while no message is in progress",
            });
        };
        match progress.assembly.push(sn, payload) {
            Ok(true) => {}
            Ok(false) => {
                progress.deadline = deadline(now, self.config.n_cr);
                return Ok(self.after_block_frame());
            }
            // A short CF is ignored (invalid length), the SN error ends the reception.
            Err(e @ IsoTpError::FrameTooShort { .. }) => return Err(e),
            Err(e) => {
                self.state = None;
                return Err(e);
            }
        }
        let done = self
            .state
            .take()
            .map(|s| s.assembly.into_payload())
            .unwrap_or_default();
        Ok(RxEvent::Complete(done))
    }

    /// Counts down the block and owes the sender an FC at its end.
    fn after_block_frame(&mut self) -> RxEvent {
        let bs = self.config.block_size;
        let Some(progress) = self.state.as_mut() else {
            return RxEvent::Nothing;
        };
        match progress.block_left {
            Some(1) => {
                progress.block_left = (bs > 0).then_some(bs);
                RxEvent::SendFlowControl(self.clear_to_send())
            }
            Some(n) => {
                progress.block_left = Some(n.saturating_sub(1));
                RxEvent::Nothing
            }
            None => RxEvent::Nothing,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn unpadded() -> Config {
        Config {
            padding: None,
            ..Config::default()
        }
    }

    fn fc(event: RxEvent) -> Vec<u8> {
        match event {
            RxEvent::SendFlowControl(f) => f.as_slice().to_vec(),
            other => panic!("expected a flow control, got {other:?}"),
        }
    }

    const VIN_FF: [u8; 8] = [0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x44, 0x34];
    const VIN_CF1: [u8; 8] = [0x21, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35];
    const VIN_CF2: [u8; 8] = [0x22, 0x42, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36];

    // Mode 09 PID 02 response, VIN "1D4GP00R55B123456": FF, FC 30 00 00, CF, CF.
    #[test]
    fn vin_response_reassembles() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(unpadded());
        assert_eq!(fc(rx.on_frame(&VIN_FF, t0).unwrap()), [0x30, 0x00, 0x00]);
        assert_eq!(rx.poll_timeout(), Some(t0 + ms(1000)), "N_Cr");
        assert_eq!(rx.on_frame(&VIN_CF1, t0 + ms(1)), Ok(RxEvent::Nothing));
        assert_eq!(
            rx.poll_timeout(),
            Some(t0 + ms(1001)),
            "N_Cr restarts with each CF"
        );
        let mut expected = vec![0x49, 0x02, 0x01];
        expected.extend_from_slice(b"1D4GP00R55B123456");
        assert_eq!(
            rx.on_frame(&VIN_CF2, t0 + ms(2)),
            Ok(RxEvent::Complete(expected))
        );
        assert!(rx.is_idle());
        assert_eq!(rx.poll_timeout(), None);
    }

    #[test]
    fn single_frame_completes_at_once() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config::default());
        let sf = [0x04, 0x41, 0x0C, 0x1A, 0xF8, 0xCC, 0xCC, 0xCC];
        assert_eq!(
            rx.on_frame(&sf, t0),
            Ok(RxEvent::Complete(vec![0x41, 0x0C, 0x1A, 0xF8]))
        );
        assert!(rx.is_idle());
    }

    #[test]
    fn flow_control_carries_our_parameters_and_padding() {
        let t0 = Instant::now();
        let config = Config {
            block_size: 4,
            st_min: StMin(0xF2),
            ..Config::default()
        };
        let mut rx = Receiver::new(config);
        assert_eq!(
            fc(rx.on_frame(&VIN_FF, t0).unwrap()),
            [0x30, 0x04, 0xF2, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]
        );
    }

    // 6 + 7 × 5 = 41 bytes with BS 2: FC after FF, after CF 2, after CF 4; CF 5 completes.
    #[test]
    fn block_size_requests_new_flow_controls() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config {
            block_size: 2,
            padding: None,
            ..Config::default()
        });
        assert_eq!(
            fc(rx.on_frame(&[0x10, 41, 0, 0, 0, 0, 0, 0], t0).unwrap()),
            [0x30, 2, 0]
        );
        let cf = |sn: u8| [0x20 | sn, sn, sn, sn, sn, sn, sn, sn];
        assert_eq!(rx.on_frame(&cf(1), t0), Ok(RxEvent::Nothing));
        assert_eq!(fc(rx.on_frame(&cf(2), t0).unwrap()), [0x30, 2, 0]);
        assert_eq!(rx.on_frame(&cf(3), t0), Ok(RxEvent::Nothing));
        assert_eq!(fc(rx.on_frame(&cf(4), t0).unwrap()), [0x30, 2, 0]);
        let RxEvent::Complete(msg) = rx.on_frame(&cf(5), t0).unwrap() else {
            panic!("not complete")
        };
        assert_eq!(msg.len(), 41);
        assert_eq!(&msg[34..], &[5; 7]);
    }

    #[test]
    fn last_consecutive_frame_padding_is_stripped() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config::default());
        rx.on_frame(&[0x10, 0x0A, 1, 2, 3, 4, 5, 6], t0).unwrap();
        assert_eq!(
            rx.on_frame(&[0x21, 7, 8, 9, 10, 0xCC, 0xCC, 0xCC], t0),
            Ok(RxEvent::Complete((1..=10).collect()))
        );
    }

    #[test]
    fn wrong_sequence_aborts() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config::default());
        rx.on_frame(&VIN_FF, t0).unwrap();
        assert_eq!(
            rx.on_frame(&VIN_CF2, t0),
            Err(IsoTpError::WrongSequence {
                expected: 1,
                got: 2
            })
        );
        assert!(rx.is_idle());
        // The rest of the message is now unexpected.
        assert_eq!(
            rx.on_frame(&VIN_CF1, t0),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::Consecutive,
                during: "while no message is in progress"
            })
        );
    }

    #[test]
    fn short_consecutive_frame_is_ignored() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(unpadded());
        rx.on_frame(&VIN_FF, t0).unwrap();
        assert_eq!(
            rx.on_frame(&VIN_CF1[..5], t0),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::Consecutive,
                needed: 8,
                got: 5
            })
        );
        assert_eq!(
            rx.progress(),
            Some(Progress {
                received: 6,
                expected: 20
            })
        );
        assert_eq!(rx.on_frame(&VIN_CF1, t0), Ok(RxEvent::Nothing));
    }

    #[test]
    fn n_cr_timeout() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config::default());
        rx.on_frame(&VIN_FF, t0).unwrap();
        rx.on_frame(&VIN_CF1, t0 + ms(100)).unwrap();
        assert_eq!(rx.handle_timeout(t0 + ms(1099)), Ok(()));
        assert_eq!(
            rx.handle_timeout(t0 + ms(1100)),
            Err(IsoTpError::Timeout {
                timer: Timer::NCr,
                after: ms(1000)
            })
        );
        assert!(rx.is_idle());
        assert_eq!(rx.handle_timeout(t0 + ms(5000)), Ok(()));
    }

    #[test]
    fn overflow_is_answered() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config {
            max_payload: 100,
            ..Config::default()
        });
        assert_eq!(
            rx.on_frame(&[0x10, 0x65, 0, 0, 0, 0, 0, 0], t0),
            Ok(RxEvent::Overflow {
                flow_control: FrameData::from_parts(&[0x32, 0, 0], &[], Some(0xCC)),
                len: 101,
                max: 100
            })
        );
        assert!(rx.is_idle());
        assert!(matches!(
            rx.on_frame(&[0x10, 0x64, 0, 0, 0, 0, 0, 0], t0),
            Ok(RxEvent::SendFlowControl(_))
        ));
    }

    #[test]
    fn new_first_frame_replaces_the_old_message() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(unpadded());
        rx.on_frame(&VIN_FF, t0).unwrap();
        rx.on_frame(&VIN_CF1, t0).unwrap();
        let event = rx.on_frame(&[0x10, 0x08, 1, 2, 3, 4, 5, 6], t0).unwrap();
        let (dropped, then) = event.into_parts();
        assert_eq!(
            dropped,
            Some(Progress {
                received: 13,
                expected: 20
            })
        );
        assert_eq!(fc(then), [0x30, 0x00, 0x00]);
        // The new message continues with SN 1.
        assert_eq!(
            rx.on_frame(&[0x21, 7, 8], t0),
            Ok(RxEvent::Complete((1..=8).collect()))
        );
    }

    #[test]
    fn new_single_frame_replaces_the_old_message() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(unpadded());
        rx.on_frame(&VIN_FF, t0).unwrap();
        assert_eq!(
            rx.on_frame(&[0x02, 0x7F, 0x09], t0),
            Ok(RxEvent::Restarted {
                dropped: Progress {
                    received: 6,
                    expected: 20
                },
                then: Box::new(RxEvent::Complete(vec![0x7F, 0x09]))
            })
        );
        assert!(rx.is_idle());
    }

    #[test]
    fn oversized_first_frame_during_reception_drops_both() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config {
            max_payload: 20,
            ..Config::default()
        });
        rx.on_frame(&VIN_FF, t0).unwrap();
        let (dropped, then) = rx
            .on_frame(&[0x10, 0x15, 0, 0, 0, 0, 0, 0], t0)
            .unwrap()
            .into_parts();
        assert_eq!(
            dropped,
            Some(Progress {
                received: 6,
                expected: 20
            })
        );
        assert!(matches!(
            then,
            RxEvent::Overflow {
                len: 21,
                max: 20,
                ..
            }
        ));
        assert!(rx.is_idle());
    }

    #[test]
    fn ignored_frames_leave_the_state_alone() {
        let t0 = Instant::now();
        let mut rx = Receiver::new(Config::default());
        rx.on_frame(&VIN_FF, t0).unwrap();
        assert!(matches!(
            rx.on_frame(&[0x30, 0, 0], t0),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::FlowControl,
                ..
            })
        ));
        assert_eq!(
            rx.on_frame(&[0x45], t0),
            Err(IsoTpError::UnknownPciType { byte: 0x45 })
        );
        assert_eq!(rx.on_frame(&[], t0), Err(IsoTpError::EmptyFrame));
        assert_eq!(
            rx.progress(),
            Some(Progress {
                received: 6,
                expected: 20
            })
        );
        rx.reset();
        assert!(rx.is_idle());
    }
}
