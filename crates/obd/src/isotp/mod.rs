//! ISO-TP, the CAN transport protocol of ISO 15765-2, as OBD-II on CAN uses it (ISO 15765-4),
//! on classic CAN (8-byte frames) with normal and normal fixed addressing.
//!
//! A CAN frame carries 8 bytes; diagnostic messages are up to 4095. ISO-TP sends a message of
//! 1..=7 bytes as one single frame (SF). A longer one goes as a first frame (FF) announcing the
//! length, then consecutive frames (CF) numbered 1, 2, .. 15, 0, 1, ..; after the FF, and after
//! every `BS` CFs, the sender waits for the receiver's flow control (FC), which also sets the
//! minimum gap STmin between CFs. [`pci`] has the byte layouts.
//!
//! Timers (ISO 15765-2 network layer timing, values from ISO 15765-4): the sender waits at most N_Bs
//! (1000 ms) for an FC, the receiver at most N_Cr (1000 ms) for the next CF. N_As/N_Ar
//! (frame transmission on the bus) belong to the CAN driver, not here.
//!
//! Everything here is sans-IO: [`Sender`] and [`Receiver`] take frame bytes and the caller's
//! `now`, return frame bytes to send and the next instant they need to be called back.
//! [`Reassembler`] keys receivers by CAN id for many ECUs answering one functional request or
//! for a passively recorded bus; [`reassemble`] rebuilds one message from a finished list of
//! frames. [`addressing`] knows the OBD identifiers.

pub mod addressing;
mod config;
pub mod pci;
mod reassembler;
mod rx;
mod tx;

use std::fmt;

use serde::Serialize;

pub use config::{Config, FrameData};
pub use pci::{FlowStatus, Pci, StMin};
pub use reassembler::{
    DEFAULT_MAX_SOURCES, Reassembler, ReassemblerEvent, Received, SourceError, reassemble,
};
pub use rx::{Progress, Receiver, RxEvent};
pub use tx::Sender;

/// `now + after`, saturating instead of panicking when a configured timeout is absurdly
/// long for the platform's clock.
fn deadline(now: std::time::Instant, after: std::time::Duration) -> std::time::Instant {
    let mut after = after;
    loop {
        match now.checked_add(after) {
            Some(t) => return t,
            None => after /= 2,
        }
    }
}

/// The four ISO-TP frame types, for error messages and trace output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameKind {
    Single,
    First,
    Consecutive,
    FlowControl,
}

impl fmt::Display for FrameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FrameKind::Single => "single frame",
            FrameKind::First => "first frame",
            FrameKind::Consecutive => "consecutive frame",
            FrameKind::FlowControl => "flow control",
        })
    }
}

/// The ISO 15765-2 timers this crate enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Timer {
    /// Sender waiting for a flow control frame.
    NBs,
    /// Receiver waiting for the next consecutive frame.
    NCr,
}

impl fmt::Display for Timer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Timer::NBs => "N_Bs (waiting for flow control)",
            Timer::NCr => "N_Cr (waiting for consecutive frame)",
        })
    }
}

/// Everything that can go wrong decoding ISO-TP frames or running a transfer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IsoTpError {
    #[error("empty frame: no protocol control information")]
    EmptyFrame,
    #[error("{kind} too short: needs {needed} bytes, got {got}")]
    FrameTooShort {
        kind: FrameKind,
        needed: usize,
        got: usize,
    },
    #[error("unknown PCI type {:X} in first byte 0x{byte:02X} (only 0..=3 exist)", byte >> 4)]
    UnknownPciType { byte: u8 },
    #[error("single frame with SF_DL 0: the CAN FD escape, unsupported on classic CAN")]
    SingleFrameEscape,
    #[error("single frame length {len} outside 1..=7")]
    SingleFrameLength { len: usize },
    #[error("first frame with FF_DL 0: the escape for messages over 4095 bytes, unsupported")]
    FirstFrameEscape,
    #[error("first frame length {len} outside 8..=4095 (shorter messages go in a single frame)")]
    FirstFrameLength { len: usize },
    #[error("sequence number {0} outside 0..=15")]
    SequenceNumberOutOfRange(u8),
    #[error("flow control with reserved flow status {0} (only 0, 1, 2 exist)")]
    InvalidFlowStatus(u8),
    #[error("cannot send an empty message")]
    EmptyPayload,
    #[error("message of {len} bytes exceeds the maximum of {max}")]
    PayloadTooLong { len: usize, max: usize },
    #[error("consecutive frame out of sequence: expected SN {expected}, got {got}")]
    WrongSequence { expected: u8, got: u8 },
    #[error("unexpected {got} {during}")]
    UnexpectedFrame {
        got: FrameKind,
        during: &'static str,
    },
    #[error("receiver answered overflow: the message is too long for its buffer")]
    PeerOverflow,
    #[error("first frame announces {len} bytes, more than our maximum of {max}")]
    ReceiveOverflow { len: usize, max: usize },
    #[error("receiver sent more than {max} wait flow controls in a row (N_WFTmax)")]
    TooManyWaits { max: u8 },
    #[error("{timer} timed out after {} ms", after.as_millis())]
    Timeout {
        timer: Timer,
        after: std::time::Duration,
    },
    #[error("more than {max} transfers in progress at once")]
    TooManySources { max: usize },
    #[error("frames end after {got} of {expected} bytes")]
    Incomplete { got: usize, expected: usize },
    #[error("{extra} frame(s) left over after the message was complete")]
    TrailingFrames { extra: usize },
    #[error("no frames")]
    NoFrames,
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use proptest::prelude::*;

    use super::*;
    use crate::frame::{CanFrame, CanId};

    /// Runs a whole transfer: the sender's frames go to the receiver, the receiver's FCs go
    /// back, and time advances only to the sender's next deadline. Checks on the way that
    /// CFs within a block are at least STmin apart and that frames are padded as configured.
    /// Returns the reassembled message.
    fn transfer(payload: &[u8], tx_config: Config, rx_config: Config) -> Vec<u8> {
        let t0 = Instant::now();
        let mut now = t0;
        let mut tx = Sender::new(tx_config, payload, now).unwrap();
        let mut rx = Receiver::new(rx_config);
        let st_min = rx_config.st_min.duration();
        let mut last_cf: Option<Instant> = None;
        for _ in 0..10_000 {
            while let Some(frame) = tx.poll_frame(now) {
                if tx_config.padding.is_some() {
                    assert_eq!(frame.len(), 8);
                }
                if frame.as_slice()[0] >> 4 == 2 {
                    if let Some(prev) = last_cf {
                        assert!(now - prev >= st_min, "STmin violated");
                    }
                    last_cf = Some(now);
                }
                match rx.on_frame(frame.as_slice(), now).unwrap() {
                    RxEvent::Nothing => {}
                    RxEvent::SendFlowControl(fc) => {
                        if rx_config.padding.is_some() {
                            assert_eq!(fc.len(), 8);
                        }
                        tx.on_flow_control(fc.as_slice(), now).unwrap();
                        last_cf = None;
                    }
                    RxEvent::Complete(msg) => {
                        assert!(tx.is_done());
                        return msg;
                    }
                    other => panic!("unexpected {other:?}"),
                }
            }
            let next = tx.poll_timeout().expect("sender stalled");
            assert!(next > now || tx.is_awaiting_flow_control());
            now = next.max(now);
            assert_eq!(rx.handle_timeout(now), Ok(()));
        }
        panic!("transfer did not finish");
    }

    #[test]
    fn round_trip_vin_with_padding() {
        let mut payload = vec![0x49, 0x02, 0x01];
        payload.extend_from_slice(b"1D4GP00R55B123456");
        assert_eq!(
            transfer(&payload, Config::default(), Config::default()),
            payload
        );
    }

    #[test]
    fn round_trip_4095_bytes_small_blocks() {
        let payload: Vec<u8> = (0..4095u32).map(|i| (i * 7 % 256) as u8).collect();
        let rx_config = Config {
            block_size: 3,
            st_min: StMin(0xF4),
            ..Config::default()
        };
        assert_eq!(transfer(&payload, Config::default(), rx_config), payload);
    }

    #[test]
    fn absurd_timeouts_saturate_instead_of_panicking() {
        let t0 = Instant::now();
        let config = Config {
            n_bs: Duration::MAX,
            n_cr: Duration::MAX,
            ..Config::default()
        };
        let mut tx = Sender::new(config, vec![0; 20], t0).unwrap();
        let ff = tx.poll_frame(t0).unwrap();
        assert!(tx.poll_timeout().unwrap() > t0 + Duration::from_secs(1_000_000));
        let mut rx = Receiver::new(config);
        rx.on_frame(ff.as_slice(), t0).unwrap();
        assert!(rx.poll_timeout().unwrap() > t0 + Duration::from_secs(1_000_000));
    }

    #[test]
    fn error_messages_name_the_numbers() {
        let e = IsoTpError::FrameTooShort {
            kind: FrameKind::First,
            needed: 8,
            got: 5,
        };
        assert_eq!(e.to_string(), "first frame too short: needs 8 bytes, got 5");
        assert_eq!(
            IsoTpError::UnknownPciType { byte: 0x4A }.to_string(),
            "unknown PCI type 4 in first byte 0x4A (only 0..=3 exist)"
        );
        assert_eq!(
            IsoTpError::Timeout {
                timer: Timer::NBs,
                after: Duration::from_millis(1000)
            }
            .to_string(),
            "N_Bs (waiting for flow control) timed out after 1000 ms"
        );
    }

    fn st_min_strategy() -> impl Strategy<Value = StMin> {
        prop_oneof![
            (0u8..=5).prop_map(StMin),
            (0xF1u8..=0xF9).prop_map(StMin),
            Just(StMin(0x7F))
        ]
    }

    fn padding_strategy() -> impl Strategy<Value = Option<u8>> {
        prop_oneof![Just(None), Just(Some(0xCC)), Just(Some(0x00))]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn sender_receiver_round_trip(
            payload in prop::collection::vec(any::<u8>(), 1..=4095),
            block_size in prop_oneof![Just(0u8), Just(1), Just(255), any::<u8>()],
            st_min in st_min_strategy(),
            tx_padding in padding_strategy(),
            rx_padding in padding_strategy(),
        ) {
            let tx_config = Config { padding: tx_padding, ..Config::default() };
            let rx_config = Config { padding: rx_padding, block_size, st_min, ..Config::default() };
            prop_assert_eq!(transfer(&payload, tx_config, rx_config), payload);
        }

        #[test]
        fn decode_never_panics(data in prop::collection::vec(any::<u8>(), 0..=12)) {
            if let Ok((pci, rest)) = Pci::decode(&data) {
                prop_assert!(rest.len() <= 7);
                let mut out = Vec::new();
                pci.encode(&mut out).unwrap();
                prop_assert_eq!(&out[..], &data[..out.len()]);
            }
        }

        #[test]
        fn receiver_never_panics(
            frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..=8), 0..40),
            steps in prop::collection::vec(0u64..400, 40),
        ) {
            let t0 = Instant::now();
            let mut now = t0;
            let mut rx = Receiver::new(Config { block_size: 2, ..Config::default() });
            let mut r = Reassembler::with_max_sources(Config::default(), 2);
            for (i, (data, step)) in frames.iter().zip(&steps).enumerate() {
                now += Duration::from_millis(*step);
                let _ = rx.handle_timeout(now);
                let _ = rx.on_frame(data, now);
                let id = CanId::Standard(0x7E8 + (i % 3) as u16);
                let _ = r.handle_timeout(now);
                let _ = r.on_frame(&CanFrame::new(id, data).unwrap(), now);
                prop_assert!(r.in_progress().count() <= 2);
            }
            let slices: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
            let _ = reassemble(&slices);
        }

        #[test]
        fn reassemble_matches_sender(payload in prop::collection::vec(any::<u8>(), 1..=300)) {
            let t0 = Instant::now();
            let mut tx = Sender::new(Config::default(), payload.clone(), t0).unwrap();
            let mut frames = vec![tx.poll_frame(t0).unwrap()];
            if tx.is_awaiting_flow_control() {
                tx.on_flow_control(&[0x30, 0, 0], t0).unwrap();
                frames.extend(std::iter::from_fn(|| tx.poll_frame(t0)));
            }
            let slices: Vec<&[u8]> = frames.iter().map(FrameData::as_slice).collect();
            prop_assert_eq!(reassemble(&slices), Ok(payload));
        }
    }
}
