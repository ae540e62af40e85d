//! The sending side of ISO 15765-2: segmentation and flow control.
//!
//! A message of 1..=7 bytes goes as one single frame. A longer one (8..=4095 bytes) goes as
//! a first frame with the first 6 bytes, then the sender waits up to N_Bs for a flow
//! control:
//!
//! - `ContinueToSend`: send `BS` consecutive frames (all remaining ones when `BS` = 0), at
//!   least `STmin` apart, then wait for the next FC. The first CF after an FC may go at once.
//! - `Wait`: keep waiting, N_Bs restarts; at most N_WFTmax of these in a row.
//! - `Overflow`: the receiver cannot take the message; the transfer is aborted.
//!
//! BS and STmin come from the first FC.CTS and are kept for the whole message, as Linux's
//! can-isotp does; later FCs only release the next block. Sequence numbers run 1, 2, .. 15,
//! 0, 1, ...
//!
//! Unexpected frames (ISO 15765-2, handling of unexpected N_PDUs): an FC arriving when none is awaited is ignored,
//! as are frames that are not FCs; [`Sender::on_flow_control`] returns an error describing
//! them but the transfer goes on. Only errors after which [`Sender::is_aborted`] is true end
//! the transfer.

use std::time::{Duration, Instant};

use super::config::{Config, FrameData};
use super::pci::{
    CONSECUTIVE_FRAME_PAYLOAD, FIRST_FRAME_PAYLOAD, MAX_FIRST_FRAME_LEN, MAX_SINGLE_FRAME_LEN,
};
use super::{FlowStatus, IsoTpError, Pci, StMin, Timer, deadline};

/// Segments one message into frames and paces them by the receiver's flow control.
///
/// Drive it with a loop: send whatever [`poll_frame`](Sender::poll_frame) returns, feed
/// incoming FCs to [`on_flow_control`](Sender::on_flow_control), sleep until
/// [`poll_timeout`](Sender::poll_timeout) and call [`handle_timeout`](Sender::handle_timeout),
/// until [`is_done`](Sender::is_done) or an error that aborts.
#[derive(Debug, Clone)]
pub struct Sender {
    config: Config,
    payload: Vec<u8>,
    /// Payload bytes already put into frames.
    offset: usize,
    /// Sequence number of the next consecutive frame.
    sn: u8,
    /// BS and STmin of the first FC.CTS, once it has arrived.
    pacing: Option<Pacing>,
    state: TxState,
}

#[derive(Debug, Clone, Copy)]
struct Pacing {
    block_size: u8,
    st_min: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TxState {
    /// The single or first frame may be sent from `since` on.
    Start {
        since: Instant,
    },
    /// First frame or a block sent; waiting for an FC until `deadline`.
    AwaitFlowControl {
        deadline: Instant,
        waits: u8,
    },
    /// Sending CFs: the next may go at `next_at`; `block_left` CFs remain in this block
    /// (`None`: no limit).
    SendConsecutive {
        next_at: Instant,
        block_left: Option<u8>,
    },
    Done,
    Aborted,
}

impl Sender {
    /// Prepares to send `payload` (1..=4095 bytes); the first frame may go from `now`.
    pub fn new(
        config: Config,
        payload: impl Into<Vec<u8>>,
        now: Instant,
    ) -> Result<Sender, IsoTpError> {
        let payload = payload.into();
        if payload.is_empty() {
            return Err(IsoTpError::EmptyPayload);
        }
        if payload.len() > MAX_FIRST_FRAME_LEN {
            return Err(IsoTpError::PayloadTooLong {
                len: payload.len(),
                max: MAX_FIRST_FRAME_LEN,
            });
        }
        Ok(Sender {
            config,
            payload,
            offset: 0,
            sn: 1,
            pacing: None,
            state: TxState::Start { since: now },
        })
    }

    /// The next frame's data when one may be sent at `now`; `None` while waiting for an FC
    /// or STmin, and once done or aborted. Call it again after each frame: within a block
    /// with STmin 0 several frames may be due at once.
    pub fn poll_frame(&mut self, now: Instant) -> Option<FrameData> {
        match self.state {
            TxState::Start { .. } => Some(self.first_frame(now)),
            TxState::SendConsecutive {
                next_at,
                block_left,
            } if now >= next_at => Some(self.consecutive_frame(now, block_left)),
            _ => None,
        }
    }

    /// Feeds a frame received on the receiver's response id, normally a flow control.
    ///
    /// Errors that abort the transfer ([`is_aborted`](Sender::is_aborted) turns true):
    /// FC.Overflow ([`IsoTpError::PeerOverflow`]), more than N_WFTmax FC.WAIT in a row
    /// ([`IsoTpError::TooManyWaits`]), a reserved flow status while an FC is awaited.
    /// Other errors report a frame that was ignored, as ISO 15765-2 asks: an FC when none is
    /// awaited, a frame that is not an FC, a malformed frame.
    pub fn on_flow_control(&mut self, data: &[u8], now: Instant) -> Result<(), IsoTpError> {
        let TxState::AwaitFlowControl { waits, .. } = self.state else {
            // Decode anyway so that the caller learns what the stray frame was.
            let (pci, _) = Pci::decode(data)?;
            return Err(IsoTpError::UnexpectedFrame {
                got: pci.kind(),
                during: "while not awaiting flow control",
            });
        };
        let (status, block_size, st_min) = match Pci::decode(data) {
            Ok((
                Pci::FlowControl {
                    status,
                    block_size,
                    st_min,
                },
                _,
            )) => (status, block_size, st_min),
            Ok((other, _)) => {
                return Err(IsoTpError::UnexpectedFrame {
                    got: other.kind(),
                    during: "while awaiting flow control",
                });
            }
            Err(e @ IsoTpError::InvalidFlowStatus(_)) => return Err(self.abort(e)),
            Err(e) => return Err(e),
        };
        match status {
            FlowStatus::ContinueToSend => {
                self.continue_to_send(block_size, st_min, now);
                Ok(())
            }
            FlowStatus::Wait => self.wait(waits, now),
            FlowStatus::Overflow => Err(self.abort(IsoTpError::PeerOverflow)),
        }
    }

    /// The earliest instant the caller must act: the N_Bs deadline while waiting for an FC,
    /// the STmin release while sending a block (call `poll_frame` then), or the creation
    /// time before the first frame went. `None` when done or aborted.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            TxState::Start { since } => Some(since),
            TxState::AwaitFlowControl { deadline, .. } => Some(deadline),
            TxState::SendConsecutive { next_at, .. } => Some(next_at),
            TxState::Done | TxState::Aborted => None,
        }
    }

    /// Aborts with [`IsoTpError::Timeout`] for N_Bs when no FC arrived in time; otherwise
    /// does nothing.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), IsoTpError> {
        match self.state {
            TxState::AwaitFlowControl { deadline, .. } if now >= deadline => {
                Err(self.abort(IsoTpError::Timeout {
                    timer: Timer::NBs,
                    after: self.config.n_bs,
                }))
            }
            _ => Ok(()),
        }
    }

    /// True once the last frame has been handed out.
    pub fn is_done(&self) -> bool {
        self.state == TxState::Done
    }

    /// True after an error that ended the transfer.
    pub fn is_aborted(&self) -> bool {
        self.state == TxState::Aborted
    }

    /// True while the sender waits for a flow control frame.
    pub fn is_awaiting_flow_control(&self) -> bool {
        matches!(self.state, TxState::AwaitFlowControl { .. })
    }

    /// The message being sent.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    fn abort(&mut self, error: IsoTpError) -> IsoTpError {
        self.state = TxState::Aborted;
        error
    }

    fn await_flow_control(&mut self, now: Instant) {
        self.state = TxState::AwaitFlowControl {
            deadline: deadline(now, self.config.n_bs),
            waits: 0,
        };
    }

    fn first_frame(&mut self, now: Instant) -> FrameData {
        let padding = self.config.padding;
        let len = self.payload.len();
        if len <= MAX_SINGLE_FRAME_LEN {
            self.offset = len;
            self.state = TxState::Done;
            return FrameData::single(&self.payload, padding);
        }
        let chunk = self
            .payload
            .get(..FIRST_FRAME_PAYLOAD)
            .unwrap_or(&self.payload);
        let frame = FrameData::first(len, chunk, padding);
        self.offset = chunk.len();
        self.await_flow_control(now);
        frame
    }

    fn consecutive_frame(&mut self, now: Instant, block_left: Option<u8>) -> FrameData {
        let end = self
            .payload
            .len()
            .min(self.offset + CONSECUTIVE_FRAME_PAYLOAD);
        let chunk = self.payload.get(self.offset..end).unwrap_or(&[]);
        let frame = FrameData::consecutive(self.sn, chunk, self.config.padding);
        self.offset = end;
        self.sn = (self.sn + 1) & 0x0F;
        let st_min = self.pacing.map_or(Duration::ZERO, |p| p.st_min);
        self.state = match block_left {
            _ if self.offset >= self.payload.len() => TxState::Done,
            Some(1) => TxState::AwaitFlowControl {
                deadline: deadline(now, self.config.n_bs),
                waits: 0,
            },
            _ => TxState::SendConsecutive {
                next_at: deadline(now, st_min),
                block_left: block_left.map(|n| n.saturating_sub(1)),
            },
        };
        frame
    }

    fn continue_to_send(&mut self, block_size: u8, st_min: StMin, now: Instant) {
        let pacing = *self.pacing.get_or_insert(Pacing {
            block_size,
            st_min: st_min.duration(),
        });
        let block_left = (pacing.block_size > 0).then_some(pacing.block_size);
        self.state = TxState::SendConsecutive {
            next_at: now,
            block_left,
        };
    }

    fn wait(&mut self, waits: u8, now: Instant) -> Result<(), IsoTpError> {
        let max = self.config.max_wait_frames;
        if waits >= max {
            return Err(self.abort(IsoTpError::TooManyWaits { max }));
        }
        self.state = TxState::AwaitFlowControl {
            deadline: deadline(now, self.config.n_bs),
            waits: waits + 1,
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::isotp::FrameKind;

    const CTS: [u8; 3] = [0x30, 0x00, 0x00];

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn unpadded() -> Config {
        Config {
            padding: None,
            ..Config::default()
        }
    }

    /// Mode 09 PID 02 response with VIN "1D4GP00R55B123456" (a made-up but well-formed
    /// VIN): `49 02 01` then 17 ASCII characters, 20 bytes.
    fn vin_response() -> Vec<u8> {
        let mut p = vec![0x49, 0x02, 0x01];
        p.extend_from_slice(b"1D4GP00R55B123456");
        p
    }

    /// Sends everything that is due at `now`.
    fn drain(tx: &mut Sender, now: Instant) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| tx.poll_frame(now))
            .map(|f| f.as_slice().to_vec())
            .collect()
    }

    #[test]
    fn rejects_empty_and_oversized_payloads() {
        let t0 = Instant::now();
        assert_eq!(
            Sender::new(Config::default(), vec![], t0).err(),
            Some(IsoTpError::EmptyPayload)
        );
        assert_eq!(
            Sender::new(Config::default(), vec![0; 4096], t0).err(),
            Some(IsoTpError::PayloadTooLong {
                len: 4096,
                max: 4095
            })
        );
    }

    #[test]
    fn single_frame_padded_and_unpadded() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), [0x01, 0x0C].as_slice(), t0).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0));
        assert_eq!(
            tx.poll_frame(t0).unwrap().as_slice(),
            &[0x02, 0x01, 0x0C, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]
        );
        assert!(tx.is_done());
        assert_eq!(tx.poll_frame(t0), None);
        assert_eq!(tx.poll_timeout(), None);

        let mut tx = Sender::new(unpadded(), vec![1, 2, 3, 4, 5, 6, 7], t0).unwrap();
        assert_eq!(
            tx.poll_frame(t0).unwrap().as_slice(),
            &[0x07, 1, 2, 3, 4, 5, 6, 7]
        );
        assert!(tx.is_done());
    }

    // The 20-byte VIN response segmented: FF with 6 bytes,
    // then two CFs of 7.
    #[test]
    fn vin_response_segments() {
        let t0 = Instant::now();
        let mut tx = Sender::new(unpadded(), vin_response(), t0).unwrap();
        assert_eq!(
            drain(&mut tx, t0),
            [vec![0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x44, 0x34]]
        );
        assert!(tx.is_awaiting_flow_control());
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1000)), "N_Bs");
        tx.on_flow_control(&CTS, t0 + ms(5)).unwrap();
        assert_eq!(
            drain(&mut tx, t0 + ms(5)),
            [
                vec![0x21, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35],
                vec![0x22, 0x42, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36],
            ]
        );
        assert!(tx.is_done());
    }

    #[test]
    fn last_frame_padding() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0xAB; 10], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&CTS, t0).unwrap();
        assert_eq!(
            tx.poll_frame(t0).unwrap().as_slice(),
            &[0x21, 0xAB, 0xAB, 0xAB, 0xAB, 0xCC, 0xCC, 0xCC]
        );
        let mut tx = Sender::new(unpadded(), vec![0xAB; 10], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&CTS, t0).unwrap();
        assert_eq!(
            tx.poll_frame(t0).unwrap().as_slice(),
            &[0x21, 0xAB, 0xAB, 0xAB, 0xAB]
        );
    }

    // 200 bytes = 6 in the FF + 28 CFs (27 × 7 + 5): SNs 1..15, 0..12.
    #[test]
    fn sequence_numbers_wrap_after_fifteen() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0x11; 200], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&CTS, t0).unwrap();
        let cfs = drain(&mut tx, t0);
        assert_eq!(cfs.len(), 28);
        let sns: Vec<u8> = cfs.iter().map(|f| f[0]).collect();
        let expected: Vec<u8> = (1..=28u8).map(|i| 0x20 | (i % 16)).collect();
        assert_eq!(sns, expected);
        assert_eq!(sns[14..16], [0x2F, 0x20]);
        assert!(tx.is_done());
    }

    #[test]
    fn largest_message() {
        let t0 = Instant::now();
        let payload: Vec<u8> = (0..4095u32).map(|i| (i % 251) as u8).collect();
        let mut tx = Sender::new(Config::default(), payload.clone(), t0).unwrap();
        let ff = tx.poll_frame(t0).unwrap();
        assert_eq!(&ff.as_slice()[..2], &[0x1F, 0xFF]);
        tx.on_flow_control(&CTS, t0).unwrap();
        let cfs = drain(&mut tx, t0);
        assert_eq!(cfs.len(), (4095 - 6usize).div_ceil(7));
        let mut rebuilt = ff.as_slice()[2..].to_vec();
        for cf in &cfs {
            rebuilt.extend_from_slice(&cf[1..]);
        }
        rebuilt.truncate(4095);
        assert_eq!(rebuilt, payload);
    }

    // FC `30 02 0A`: blocks of 2 CFs, 10 ms apart.
    #[test]
    fn block_size_and_st_min_pacing() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 6 + 7 * 5], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(tx.poll_frame(t0), None, "no CF before the FC");
        tx.on_flow_control(&[0x30, 0x02, 0x0A], t0 + ms(1)).unwrap();
        assert_eq!(
            tx.poll_frame(t0 + ms(1)).unwrap().as_slice()[0],
            0x21,
            "first CF at once"
        );
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(11)));
        assert_eq!(tx.poll_frame(t0 + ms(10)), None, "STmin not over");
        assert_eq!(tx.poll_frame(t0 + ms(11)).unwrap().as_slice()[0], 0x22);
        // Block of 2 complete: wait for the next FC with a fresh N_Bs.
        assert!(tx.is_awaiting_flow_control());
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1011)));
        assert_eq!(tx.poll_frame(t0 + ms(500)), None);
        // A later FC's BS/STmin are ignored: the first FC's stay in force.
        tx.on_flow_control(&[0x30, 0x00, 0x00], t0 + ms(20))
            .unwrap();
        assert_eq!(tx.poll_frame(t0 + ms(20)).unwrap().as_slice()[0], 0x23);
        assert_eq!(tx.poll_frame(t0 + ms(29)), None);
        assert_eq!(tx.poll_frame(t0 + ms(30)).unwrap().as_slice()[0], 0x24);
        assert!(tx.is_awaiting_flow_control());
        tx.on_flow_control(&CTS, t0 + ms(40)).unwrap();
        assert_eq!(tx.poll_frame(t0 + ms(40)).unwrap().as_slice()[0], 0x25);
        assert!(tx.is_done());
    }

    #[test]
    fn microsecond_st_min() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&[0x30, 0x00, 0xF5], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + Duration::from_micros(500)));
        assert_eq!(tx.poll_frame(t0 + Duration::from_micros(499)), None);
        assert!(tx.poll_frame(t0 + Duration::from_micros(500)).is_some());
    }

    #[test]
    fn reserved_st_min_means_127_ms() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&[0x30, 0x00, 0xFA], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(127)));
    }

    #[test]
    fn n_bs_timeout() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(tx.handle_timeout(t0 + ms(999)), Ok(()));
        assert!(!tx.is_aborted());
        assert_eq!(
            tx.handle_timeout(t0 + ms(1000)),
            Err(IsoTpError::Timeout {
                timer: Timer::NBs,
                after: ms(1000)
            })
        );
        assert!(tx.is_aborted());
        assert_eq!(tx.poll_timeout(), None);
        assert_eq!(tx.poll_frame(t0 + ms(1000)), None);
    }

    #[test]
    fn wait_restarts_n_bs_and_is_bounded() {
        let t0 = Instant::now();
        let config = Config {
            max_wait_frames: 2,
            ..Config::default()
        };
        let mut tx = Sender::new(config, vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&[0x31, 0, 0], t0 + ms(800)).unwrap();
        assert_eq!(tx.poll_timeout(), Some(t0 + ms(1800)));
        assert_eq!(
            tx.handle_timeout(t0 + ms(1000)),
            Ok(()),
            "N_Bs restarted by WAIT"
        );
        tx.on_flow_control(&[0x31, 0, 0], t0 + ms(900)).unwrap();
        assert_eq!(
            tx.on_flow_control(&[0x31, 0, 0], t0 + ms(950)),
            Err(IsoTpError::TooManyWaits { max: 2 })
        );
        assert!(tx.is_aborted());
    }

    #[test]
    fn cts_resets_the_wait_count() {
        let t0 = Instant::now();
        let config = Config {
            max_wait_frames: 1,
            ..Config::default()
        };
        let mut tx = Sender::new(config, vec![0; 30], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        tx.on_flow_control(&[0x31, 0, 0], t0).unwrap();
        tx.on_flow_control(&[0x30, 1, 0], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert!(tx.is_awaiting_flow_control());
        assert_eq!(tx.on_flow_control(&[0x31, 0, 0], t0), Ok(()));
    }

    #[test]
    fn overflow_aborts() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(
            tx.on_flow_control(&[0x32, 0, 0], t0),
            Err(IsoTpError::PeerOverflow)
        );
        assert!(tx.is_aborted());
        assert_eq!(tx.poll_frame(t0), None);
    }

    #[test]
    fn reserved_flow_status_aborts_while_awaiting() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        tx.poll_frame(t0).unwrap();
        assert_eq!(
            tx.on_flow_control(&[0x35, 0, 0], t0),
            Err(IsoTpError::InvalidFlowStatus(5))
        );
        assert!(tx.is_aborted());
    }

    #[test]
    fn stray_frames_are_reported_and_ignored() {
        let t0 = Instant::now();
        let mut tx = Sender::new(Config::default(), vec![0; 20], t0).unwrap();
        // FC before the FF went out.
        assert_eq!(
            tx.on_flow_control(&CTS, t0),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::FlowControl,
                during: "while not awaiting flow control"
            })
        );
        tx.poll_frame(t0).unwrap();
        // A single frame where an FC was expected.
        assert_eq!(
            tx.on_flow_control(&[0x02, 0x41, 0x00], t0),
            Err(IsoTpError::UnexpectedFrame {
                got: FrameKind::Single,
                during: "while awaiting flow control"
            })
        );
        // A truncated FC.
        assert_eq!(
            tx.on_flow_control(&[0x30, 0x00], t0),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::FlowControl,
                needed: 3,
                got: 2
            })
        );
        assert!(
            tx.is_awaiting_flow_control(),
            "still waiting after ignored frames"
        );
        tx.on_flow_control(&CTS, t0).unwrap();
        assert_eq!(drain(&mut tx, t0).len(), 2);
        assert!(tx.is_done());
    }
}
