//! Transfer parameters and the frame buffer the state machines hand out.
//!
//! Defaults follow ISO 15765-4 (OBD on CAN): every frame padded to 8 bytes (ISO 15765-4
//! asks for DLC 8; 0xCC is the filler ISO 15765-2:2016 recommends because it keeps bit
//! stuffing low), receiver block size 0 and STmin 0 (send everything, no gap: what external test
//! equipment announces), N_Bs and N_Cr 1000 ms (the ISO 15765-4 timing values).

use std::time::Duration;

use super::pci::{CAN_FRAME_LEN, MAX_FIRST_FRAME_LEN};
use super::{FlowStatus, StMin};

/// Parameters of one ISO-TP endpoint, for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Filler for unused bytes; `Some` makes every sent frame 8 bytes long, `None` sends
    /// frames only as long as their content.
    pub padding: Option<u8>,
    /// Block size we announce when receiving: the sender waits for a new FC after this many
    /// CFs. 0 means "no more flow control for this message".
    pub block_size: u8,
    /// Minimum gap between CFs we announce when receiving.
    pub st_min: StMin,
    /// N_Bs: how long the sender waits for a flow control.
    pub n_bs: Duration,
    /// N_Cr: how long the receiver waits for the next consecutive frame.
    pub n_cr: Duration,
    /// N_WFTmax: how many FC.WAIT in a row the sender accepts before giving up.
    pub max_wait_frames: u8,
    /// Longest message the receiver accepts; longer first frames are answered with
    /// FC.Overflow. Values above 4095 mean 4095, the classic CAN maximum.
    pub max_payload: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            padding: Some(0xCC),
            block_size: 0,
            st_min: StMin::ZERO,
            n_bs: Duration::from_millis(1000),
            n_cr: Duration::from_millis(1000),
            max_wait_frames: 10,
            max_payload: MAX_FIRST_FRAME_LEN,
        }
    }
}

impl Config {
    /// The receive limit actually enforced: `max_payload` capped at 4095.
    pub fn receive_limit(&self) -> usize {
        self.max_payload.min(MAX_FIRST_FRAME_LEN)
    }
}

/// The data bytes of one classic CAN frame (at most 8), as the state machines produce them.
/// `Copy` and allocation-free because a transfer produces hundreds of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameData {
    bytes: [u8; CAN_FRAME_LEN],
    len: u8,
}

impl FrameData {
    /// `head` (the PCI bytes) then `payload`, cut at 8 bytes, then padded to 8 when
    /// `padding` is `Some`. Callers pass at most 8 bytes; anything beyond is dropped rather
    /// than panicking.
    pub(crate) fn from_parts(head: &[u8], payload: &[u8], padding: Option<u8>) -> FrameData {
        let mut bytes = [padding.unwrap_or(0); CAN_FRAME_LEN];
        let mut len = 0u8;
        for (slot, &b) in bytes.iter_mut().zip(head.iter().chain(payload)) {
            *slot = b;
            len += 1;
        }
        if padding.is_some() {
            len = CAN_FRAME_LEN as u8;
        }
        FrameData { bytes, len }
    }

    /// A single frame: `0L` then the payload (1..=7 bytes, checked by the caller).
    pub(crate) fn single(payload: &[u8], padding: Option<u8>) -> FrameData {
        let sf_dl = u8::try_from(payload.len()).unwrap_or(0) & 0x0F;
        FrameData::from_parts(&[sf_dl], payload, padding)
    }

    /// A first frame: `1L LL` (12-bit message length) then the first 6 payload bytes.
    pub(crate) fn first(len: usize, chunk: &[u8], padding: Option<u8>) -> FrameData {
        let [.., hi, lo] = (len & 0x0FFF).to_be_bytes();
        FrameData::from_parts(&[0x10 | hi, lo], chunk, padding)
    }

    /// A consecutive frame: `2N` then up to 7 payload bytes.
    pub(crate) fn consecutive(sn: u8, chunk: &[u8], padding: Option<u8>) -> FrameData {
        FrameData::from_parts(&[0x20 | (sn & 0x0F)], chunk, padding)
    }

    /// A flow control frame: `3S BS ST`.
    pub(crate) fn flow_control(
        status: FlowStatus,
        block_size: u8,
        st_min: StMin,
        padding: Option<u8>,
    ) -> FrameData {
        FrameData::from_parts(
            &[0x30 | status.nibble(), block_size, st_min.0],
            &[],
            padding,
        )
    }

    /// Copies up to 8 bytes; `None` when `data` is longer.
    pub fn from_slice(data: &[u8]) -> Option<FrameData> {
        (data.len() <= CAN_FRAME_LEN).then(|| FrameData::from_parts(data, &[], None))
    }

    pub fn as_slice(&self) -> &[u8] {
        self.bytes
            .get(..usize::from(self.len))
            .unwrap_or(&self.bytes)
    }

    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl AsRef<[u8]> for FrameData {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding_fills_to_eight() {
        let f = FrameData::from_parts(&[0x30], &[0x00, 0x00], Some(0xCC));
        assert_eq!(
            f.as_slice(),
            &[0x30, 0x00, 0x00, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC]
        );
        let f = FrameData::from_parts(&[0x30], &[0x00, 0x00], None);
        assert_eq!(f.as_slice(), &[0x30, 0x00, 0x00]);
        assert_eq!(f.len(), 3);
    }

    #[test]
    fn overlong_input_is_cut_not_panicking() {
        let f = FrameData::from_parts(&[1, 2], &[3, 4, 5, 6, 7, 8, 9, 10], None);
        assert_eq!(f.as_slice(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(FrameData::from_slice(&[0; 9]), None);
        assert_eq!(FrameData::from_slice(&[]).map(|f| f.is_empty()), Some(true));
    }

    #[test]
    fn defaults_follow_iso_15765_4() {
        let c = Config::default();
        assert_eq!(c.padding, Some(0xCC));
        assert_eq!((c.block_size, c.st_min), (0, StMin(0)));
        assert_eq!(c.n_bs, Duration::from_secs(1));
        assert_eq!(c.n_cr, Duration::from_secs(1));
        assert_eq!(c.receive_limit(), 4095);
        assert_eq!(
            Config {
                max_payload: 1 << 20,
                ..c
            }
            .receive_limit(),
            4095
        );
    }
}
