//! Protocol control information (PCI): the first byte or bytes of every ISO-TP frame
//! (ISO 15765-2 clause 9.6, "N_PCI"), normal addressing on classic CAN.
//!
//! The high nibble of byte 0 is the frame type (N_PCItype):
//!
//! | type | bytes | layout | meaning |
//! |---|---|---|---|
//! | `0` single frame (SF) | 1 | `0L` | `L` = SF_DL, 1..=7 payload bytes follow |
//! | `1` first frame (FF) | 2 | `1L LL` | 12-bit FF_DL, 8..=4095; 6 payload bytes follow |
//! | `2` consecutive frame (CF) | 1 | `2N` | `N` = sequence number SN 0..=15; up to 7 bytes follow |
//! | `3` flow control (FC) | 3 | `3S BS ST` | `S` = flow status, `BS` = block size, `ST` = STmin |
//!
//! Flow status: 0 ContinueToSend, 1 Wait, 2 Overflow; 3..=15 are reserved.
//!
//! STmin, the minimum gap the sender leaves between consecutive frames:
//! `0x00..=0x7F` milliseconds, `0xF1..=0xF9` 100..=900 µs; every other value is reserved,
//! and a sender receiving one uses the longest gap, `0x7F` = 127 ms.
//!
//! Escapes that only CAN FD needs are rejected: SF_DL = 0 (the SF length is then in byte 1)
//! and FF_DL = 0 (a 32-bit length follows, for messages over 4095 bytes). Classic CAN frames
//! that carry an FF are always 8 bytes long.

use std::time::Duration;

use serde::Serialize;

use super::{FrameKind, IsoTpError};

/// Largest SF_DL on classic CAN with normal addressing: 8 bytes minus the one-byte PCI.
pub const MAX_SINGLE_FRAME_LEN: usize = 7;
/// Payload bytes carried by a first frame on classic CAN (8 bytes minus the two-byte PCI).
pub const FIRST_FRAME_PAYLOAD: usize = 6;
/// Payload bytes carried by a full consecutive frame (8 bytes minus the one-byte PCI).
pub const CONSECUTIVE_FRAME_PAYLOAD: usize = 7;
/// Largest FF_DL expressible without the CAN FD escape: 12 bits.
pub const MAX_FIRST_FRAME_LEN: usize = 0xFFF;
/// Smallest FF_DL: anything shorter fits a single frame and must be sent as one.
pub const MIN_FIRST_FRAME_LEN: usize = MAX_SINGLE_FRAME_LEN + 1;
/// A classic CAN frame's data field.
pub const CAN_FRAME_LEN: usize = 8;

/// The decoded protocol control information of one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Pci {
    /// A whole message of `len` (1..=7) bytes.
    Single { len: usize },
    /// The start of a message of `len` (8..=4095) bytes.
    First { len: usize },
    /// A continuation; `sn` counts 1, 2, .. 15, 0, 1, .. after the first frame.
    Consecutive { sn: u8 },
    /// The receiver's pacing instructions to the sender.
    FlowControl {
        status: FlowStatus,
        block_size: u8,
        st_min: StMin,
    },
}

/// Flow status of a flow control frame (ISO 15765-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FlowStatus {
    /// `0`: send the next block.
    ContinueToSend,
    /// `1`: hold on, another FC follows; the sender restarts its N_Bs timer.
    Wait,
    /// `2`: the message is too long for the receiver's buffer; the sender aborts.
    Overflow,
}

/// Separation time minimum, the raw FC byte (ISO 15765-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize)]
pub struct StMin(pub u8);

impl FlowStatus {
    /// The low nibble of the FC's first byte.
    pub fn nibble(self) -> u8 {
        match self {
            FlowStatus::ContinueToSend => 0,
            FlowStatus::Wait => 1,
            FlowStatus::Overflow => 2,
        }
    }

    /// Decodes the nibble; 3..=15 are reserved and rejected.
    pub fn from_nibble(nibble: u8) -> Result<Self, IsoTpError> {
        match nibble {
            0 => Ok(FlowStatus::ContinueToSend),
            1 => Ok(FlowStatus::Wait),
            2 => Ok(FlowStatus::Overflow),
            other => Err(IsoTpError::InvalidFlowStatus(other)),
        }
    }
}

impl StMin {
    /// No gap at all: the sender may send consecutive frames back to back.
    pub const ZERO: StMin = StMin(0);
    /// The longest gap, 127 ms; also what reserved values mean.
    pub const MAX: StMin = StMin(0x7F);

    /// The gap this byte asks for. Reserved values (0x80..=0xF0, 0xFA..=0xFF) count as
    /// 127 ms, as the standard tells a sender to do, so that a garbled FC slows the sender
    /// down rather than speeding it up.
    pub fn duration(self) -> Duration {
        match self.0 {
            ms @ 0x00..=0x7F => Duration::from_millis(u64::from(ms)),
            us100 @ 0xF1..=0xF9 => Duration::from_micros(u64::from(us100 - 0xF0) * 100),
            _ => Duration::from_millis(127),
        }
    }

    /// Whether the byte is one of the values the standard defines.
    pub fn is_reserved(self) -> bool {
        matches!(self.0, 0x80..=0xF0 | 0xFA..=0xFF)
    }

    /// The smallest byte whose gap is at least `d` (rounded up; 127 ms at most), for a
    /// receiver that wants to announce a duration.
    pub fn from_duration(d: Duration) -> StMin {
        let us = d.as_micros();
        if us == 0 {
            StMin(0)
        } else if us <= 900 {
            // 0xF1..=0xF9 are 100..=900 µs; round up to the next 100 µs.
            let steps = us.div_ceil(100);
            StMin(0xF0 + u8::try_from(steps).unwrap_or(9))
        } else {
            let ms = d.as_millis() + u128::from(!d.subsec_micros().is_multiple_of(1000));
            StMin(u8::try_from(ms.min(0x7F)).unwrap_or(0x7F))
        }
    }
}

impl Pci {
    /// The frame type this PCI belongs to.
    pub fn kind(&self) -> FrameKind {
        match self {
            Pci::Single { .. } => FrameKind::Single,
            Pci::First { .. } => FrameKind::First,
            Pci::Consecutive { .. } => FrameKind::Consecutive,
            Pci::FlowControl { .. } => FrameKind::FlowControl,
        }
    }

    /// Decodes the protocol control information at the start of a frame's data (normal
    /// addressing) and returns the bytes after it:
    /// SF → exactly `len` payload bytes (padding stripped); FF → the 6 first payload bytes;
    /// CF → the up-to-7 bytes after the PCI (may include padding in the last CF);
    /// FC → empty.
    pub fn decode(data: &[u8]) -> Result<(Pci, &[u8]), IsoTpError> {
        let (&b0, rest) = data.split_first().ok_or(IsoTpError::EmptyFrame)?;
        let low = b0 & 0x0F;
        match b0 >> 4 {
            0 => decode_single(low, data, rest),
            1 => decode_first(low, data),
            2 => Ok((
                Pci::Consecutive { sn: low },
                consecutive_payload(data, rest)?,
            )),
            3 => decode_flow_control(low, data),
            _ => Err(IsoTpError::UnknownPciType { byte: b0 }),
        }
    }

    /// Appends this PCI's bytes (1, 2 or 3 of them) to `out`. Fails on values the frame
    /// cannot carry on classic CAN: SF length outside 1..=7, FF length outside 8..=4095,
    /// SN above 15.
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), IsoTpError> {
        match *self {
            Pci::Single { len } => {
                let nibble = u8::try_from(len)
                    .ok()
                    .filter(|n| (1..=7).contains(n))
                    .ok_or(IsoTpError::SingleFrameLength { len })?;
                out.push(nibble);
            }
            Pci::First { len } => {
                if !(MIN_FIRST_FRAME_LEN..=MAX_FIRST_FRAME_LEN).contains(&len) {
                    return Err(IsoTpError::FirstFrameLength { len });
                }
                let [_, _, hi, lo] = u32::try_from(len).unwrap_or(0).to_be_bytes();
                out.extend_from_slice(&[0x10 | (hi & 0x0F), lo]);
            }
            Pci::Consecutive { sn } => {
                if sn > 0x0F {
                    return Err(IsoTpError::SequenceNumberOutOfRange(sn));
                }
                out.push(0x20 | sn);
            }
            Pci::FlowControl {
                status,
                block_size,
                st_min,
            } => {
                out.extend_from_slice(&[0x30 | status.nibble(), block_size, st_min.0]);
            }
        }
        Ok(())
    }
}

fn too_short(kind: FrameKind, needed: usize, data: &[u8]) -> IsoTpError {
    IsoTpError::FrameTooShort {
        kind,
        needed,
        got: data.len(),
    }
}

fn decode_single<'a>(
    sf_dl: u8,
    data: &'a [u8],
    rest: &'a [u8],
) -> Result<(Pci, &'a [u8]), IsoTpError> {
    let len = usize::from(sf_dl);
    if len == 0 {
        return Err(IsoTpError::SingleFrameEscape);
    }
    if len > MAX_SINGLE_FRAME_LEN {
        return Err(IsoTpError::SingleFrameLength { len });
    }
    let payload = rest
        .get(..len)
        .ok_or_else(|| too_short(FrameKind::Single, 1 + len, data))?;
    Ok((Pci::Single { len }, payload))
}

fn decode_first(high_nibble: u8, data: &[u8]) -> Result<(Pci, &[u8]), IsoTpError> {
    let &low = data
        .get(1)
        .ok_or_else(|| too_short(FrameKind::First, 2, data))?;
    let len = usize::from(high_nibble) << 8 | usize::from(low);
    if len == 0 {
        return Err(IsoTpError::FirstFrameEscape);
    }
    if len < MIN_FIRST_FRAME_LEN {
        return Err(IsoTpError::FirstFrameLength { len });
    }
    let payload = data
        .get(2..CAN_FRAME_LEN)
        .ok_or_else(|| too_short(FrameKind::First, CAN_FRAME_LEN, data))?;
    Ok((Pci::First { len }, payload))
}

fn consecutive_payload<'a>(data: &'a [u8], rest: &'a [u8]) -> Result<&'a [u8], IsoTpError> {
    if rest.is_empty() {
        return Err(too_short(FrameKind::Consecutive, 2, data));
    }
    Ok(rest.get(..CONSECUTIVE_FRAME_PAYLOAD).unwrap_or(rest))
}

fn decode_flow_control(status: u8, data: &[u8]) -> Result<(Pci, &[u8]), IsoTpError> {
    let [_, block_size, st_min] = match data.get(..3) {
        Some(&[a, b, c]) => [a, b, c],
        _ => return Err(too_short(FrameKind::FlowControl, 3, data)),
    };
    let status = FlowStatus::from_nibble(status)?;
    Ok((
        Pci::FlowControl {
            status,
            block_size,
            st_min: StMin(st_min),
        },
        &[],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(pci: Pci) -> Vec<u8> {
        let mut out = Vec::new();
        pci.encode(&mut out).expect("valid PCI");
        out
    }

    // Single frame carrying Mode 01 PID 0C (engine speed): SAE J1979 response `41 0C 1A F8`,
    // padded with 0x55 as many ECUs do.
    #[test]
    fn single_frame_strips_padding() {
        let data = [0x04, 0x41, 0x0C, 0x1A, 0xF8, 0x55, 0x55, 0x55];
        let (pci, payload) = Pci::decode(&data).expect("valid SF");
        assert_eq!(pci, Pci::Single { len: 4 });
        assert_eq!(payload, &[0x41, 0x0C, 0x1A, 0xF8]);
        // Unpadded (CAN_DL = SF_DL + 1) is just as valid.
        let (pci, payload) = Pci::decode(&data[..5]).expect("valid SF");
        assert_eq!(pci, Pci::Single { len: 4 });
        assert_eq!(payload.len(), 4);
    }

    #[test]
    fn single_frame_errors() {
        assert_eq!(Pci::decode(&[]), Err(IsoTpError::EmptyFrame));
        assert_eq!(
            Pci::decode(&[0x00, 0x07, 1, 2]),
            Err(IsoTpError::SingleFrameEscape)
        );
        assert_eq!(
            Pci::decode(&[0x08, 1, 2, 3, 4, 5, 6, 7]),
            Err(IsoTpError::SingleFrameLength { len: 8 })
        );
        assert_eq!(
            Pci::decode(&[0x05, 1, 2]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::Single,
                needed: 6,
                got: 3
            })
        );
    }

    // First frame of a Mode 09 PID 02 (VIN) response: 20 bytes `49 02 01` + 17 VIN characters.
    #[test]
    fn first_frame_of_vin_response() {
        let data = [0x10, 0x14, 0x49, 0x02, 0x01, 0x31, 0x44, 0x34];
        let (pci, payload) = Pci::decode(&data).expect("valid FF");
        assert_eq!(pci, Pci::First { len: 20 });
        assert_eq!(payload, &[0x49, 0x02, 0x01, 0x31, 0x44, 0x34]);
        // The largest classic length, 0xFFF.
        let (pci, _) = Pci::decode(&[0x1F, 0xFF, 0, 0, 0, 0, 0, 0]).expect("valid FF");
        assert_eq!(pci, Pci::First { len: 4095 });
    }

    #[test]
    fn first_frame_errors() {
        assert_eq!(
            Pci::decode(&[0x10]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::First,
                needed: 2,
                got: 1
            })
        );
        assert_eq!(
            Pci::decode(&[0x10, 0x00, 0, 0, 0x10, 0, 0, 0]),
            Err(IsoTpError::FirstFrameEscape)
        );
        assert_eq!(
            Pci::decode(&[0x10, 0x07, 1, 2, 3, 4, 5, 6]),
            Err(IsoTpError::FirstFrameLength { len: 7 })
        );
        assert_eq!(
            Pci::decode(&[0x10, 0x14, 1, 2, 3]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::First,
                needed: 8,
                got: 5
            })
        );
    }

    #[test]
    fn consecutive_frame_keeps_padding_and_caps_at_seven() {
        let data = [0x21, 0x47, 0x50, 0x30, 0x30, 0x52, 0x35, 0x35];
        assert_eq!(
            Pci::decode(&data),
            Ok((Pci::Consecutive { sn: 1 }, &data[1..]))
        );
        let (pci, payload) = Pci::decode(&[0x2F, 0xAA]).expect("short last CF");
        assert_eq!(pci, Pci::Consecutive { sn: 15 });
        assert_eq!(payload, &[0xAA]);
        // A longer buffer (say, an adapter's text line) yields at most 7 bytes.
        let (_, payload) = Pci::decode(&[0x20, 1, 2, 3, 4, 5, 6, 7, 8, 9]).expect("CF");
        assert_eq!(payload, &[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(
            Pci::decode(&[0x22]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::Consecutive,
                needed: 2,
                got: 1
            })
        );
    }

    // `30 00 00`: continue to send, no block limit, no gap — what most OBD testers send.
    #[test]
    fn flow_control_frames() {
        let cts = Pci::FlowControl {
            status: FlowStatus::ContinueToSend,
            block_size: 0,
            st_min: StMin(0),
        };
        assert_eq!(Pci::decode(&[0x30, 0x00, 0x00]), Ok((cts, &[][..])));
        let (wait, rest) = Pci::decode(&[0x31, 0x08, 0xF3, 0xCC, 0xCC]).expect("FC");
        assert_eq!(
            wait,
            Pci::FlowControl {
                status: FlowStatus::Wait,
                block_size: 8,
                st_min: StMin(0xF3)
            }
        );
        assert!(rest.is_empty());
        let (ovfl, _) = Pci::decode(&[0x32, 0, 0]).expect("FC");
        assert!(matches!(
            ovfl,
            Pci::FlowControl {
                status: FlowStatus::Overflow,
                ..
            }
        ));
        assert_eq!(
            Pci::decode(&[0x33, 0, 0]),
            Err(IsoTpError::InvalidFlowStatus(3))
        );
        assert_eq!(
            Pci::decode(&[0x30, 0x00]),
            Err(IsoTpError::FrameTooShort {
                kind: FrameKind::FlowControl,
                needed: 3,
                got: 2
            })
        );
    }

    #[test]
    fn reserved_pci_types_are_rejected() {
        for b0 in [0x40, 0x7F, 0xFF] {
            assert_eq!(
                Pci::decode(&[b0, 0, 0]),
                Err(IsoTpError::UnknownPciType { byte: b0 })
            );
        }
    }

    // The STmin value ranges of ISO 15765-2.
    #[test]
    fn st_min_durations() {
        assert_eq!(StMin(0x00).duration(), Duration::ZERO);
        assert_eq!(StMin(0x0A).duration(), Duration::from_millis(10));
        assert_eq!(StMin(0x7F).duration(), Duration::from_millis(127));
        assert_eq!(StMin(0xF1).duration(), Duration::from_micros(100));
        assert_eq!(StMin(0xF9).duration(), Duration::from_micros(900));
        for reserved in [0x80, 0xF0, 0xFA, 0xFF] {
            assert!(StMin(reserved).is_reserved());
            assert_eq!(StMin(reserved).duration(), Duration::from_millis(127));
        }
        assert!(!StMin(0xF5).is_reserved());
    }

    #[test]
    fn st_min_from_duration_rounds_up() {
        assert_eq!(StMin::from_duration(Duration::ZERO), StMin(0));
        assert_eq!(StMin::from_duration(Duration::from_micros(1)), StMin(0xF1));
        assert_eq!(
            StMin::from_duration(Duration::from_micros(250)),
            StMin(0xF3)
        );
        assert_eq!(
            StMin::from_duration(Duration::from_micros(900)),
            StMin(0xF9)
        );
        assert_eq!(StMin::from_duration(Duration::from_micros(901)), StMin(1));
        assert_eq!(StMin::from_duration(Duration::from_millis(5)), StMin(5));
        assert_eq!(StMin::from_duration(Duration::from_micros(5001)), StMin(6));
        assert_eq!(StMin::from_duration(Duration::from_secs(3)), StMin(0x7F));
    }

    #[test]
    fn encode_round_trips() {
        let cases = [
            Pci::Single { len: 1 },
            Pci::Single { len: 7 },
            Pci::First { len: 8 },
            Pci::First { len: 20 },
            Pci::First { len: 4095 },
            Pci::Consecutive { sn: 0 },
            Pci::Consecutive { sn: 15 },
            Pci::FlowControl {
                status: FlowStatus::Wait,
                block_size: 3,
                st_min: StMin(0xF2),
            },
        ];
        for pci in cases {
            let mut frame = encoded(pci);
            frame.resize(CAN_FRAME_LEN, 0xCC);
            assert_eq!(Pci::decode(&frame).map(|(p, _)| p), Ok(pci), "{frame:02X?}");
        }
        assert_eq!(encoded(Pci::First { len: 0x123 }), [0x11, 0x23]);
        assert_eq!(encoded(Pci::Consecutive { sn: 0xA }), [0x2A]);
        assert_eq!(
            encoded(Pci::FlowControl {
                status: FlowStatus::ContinueToSend,
                block_size: 0,
                st_min: StMin(0)
            }),
            [0x30, 0x00, 0x00]
        );
    }

    #[test]
    fn encode_rejects_what_classic_can_cannot_carry() {
        let mut out = Vec::new();
        assert_eq!(
            Pci::Single { len: 0 }.encode(&mut out),
            Err(IsoTpError::SingleFrameLength { len: 0 })
        );
        assert_eq!(
            Pci::Single { len: 8 }.encode(&mut out),
            Err(IsoTpError::SingleFrameLength { len: 8 })
        );
        assert_eq!(
            Pci::First { len: 4096 }.encode(&mut out),
            Err(IsoTpError::FirstFrameLength { len: 4096 })
        );
        assert_eq!(
            Pci::First { len: 7 }.encode(&mut out),
            Err(IsoTpError::FirstFrameLength { len: 7 })
        );
        assert_eq!(
            Pci::Consecutive { sn: 16 }.encode(&mut out),
            Err(IsoTpError::SequenceNumberOutOfRange(16))
        );
        assert!(out.is_empty(), "nothing written on error");
    }
}
