//! Classic CAN frames (ISO 11898-1) as the diagnostic layers see them: an identifier and up to
//! eight data bytes. CAN FD and remote frames are out of scope for OBD-II.

use std::fmt;

use serde::{Serialize, Serializer};

/// Largest 11-bit (base format) identifier.
pub const MAX_STANDARD_ID: u16 = 0x7FF;
/// Largest 29-bit (extended format) identifier.
pub const MAX_EXTENDED_ID: u32 = 0x1FFF_FFFF;

/// A CAN identifier. The two formats are distinct on the bus: `0x7E8` standard and `0x7E8`
/// extended are different identifiers, so the format is part of the value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CanId {
    /// 11-bit base-format identifier.
    Standard(u16),
    /// 29-bit extended-format identifier.
    Extended(u32),
}

/// Why a frame or identifier could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("CAN id 0x{0:X} does not fit in 11 bits")]
    StandardIdTooLarge(u32),
    #[error("CAN id 0x{0:X} does not fit in 29 bits")]
    ExtendedIdTooLarge(u32),
    #[error("classic CAN carries at most 8 data bytes, got {0}")]
    TooLong(usize),
}

impl CanId {
    /// An 11-bit identifier; fails above `0x7FF`.
    pub fn standard(id: u32) -> Result<Self, FrameError> {
        u16::try_from(id)
            .ok()
            .filter(|&id| id <= MAX_STANDARD_ID)
            .map(CanId::Standard)
            .ok_or(FrameError::StandardIdTooLarge(id))
    }

    /// A 29-bit identifier; fails above `0x1FFFFFFF`.
    pub fn extended(id: u32) -> Result<Self, FrameError> {
        if id <= MAX_EXTENDED_ID {
            Ok(CanId::Extended(id))
        } else {
            Err(FrameError::ExtendedIdTooLarge(id))
        }
    }

    /// The numeric identifier without the format.
    pub fn raw(self) -> u32 {
        match self {
            CanId::Standard(id) => u32::from(id),
            CanId::Extended(id) => id,
        }
    }

    pub fn is_extended(self) -> bool {
        matches!(self, CanId::Extended(_))
    }
}

/// Written the way candump writes identifiers: three hex digits for standard, eight for extended.
impl fmt::Display for CanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CanId::Standard(id) => write!(f, "{id:03X}"),
            CanId::Extended(id) => write!(f, "{id:08X}"),
        }
    }
}

impl Serialize for CanId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A classic CAN data frame.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CanFrame {
    id: CanId,
    len: u8,
    data: [u8; 8],
}

impl CanFrame {
    /// Builds a frame; fails when `data` is longer than 8 bytes.
    pub fn new(id: CanId, data: &[u8]) -> Result<Self, FrameError> {
        if data.len() > 8 {
            return Err(FrameError::TooLong(data.len()));
        }
        let mut buf = [0u8; 8];
        buf[..data.len()].copy_from_slice(data);
        Ok(CanFrame {
            id,
            len: data.len() as u8,
            data: buf,
        })
    }

    pub fn id(&self) -> CanId {
        self.id
    }

    pub fn data(&self) -> &[u8] {
        &self.data[..usize::from(self.len)]
    }
}

/// `7E8#0441 0C1A F8`-style, as in candump's compact form.
impl fmt::Debug for CanFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#", self.id)?;
        for b in self.data() {
            write!(f, "{b:02X}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_range_checked() {
        assert_eq!(CanId::standard(0x7E8), Ok(CanId::Standard(0x7E8)));
        assert_eq!(
            CanId::standard(0x800),
            Err(FrameError::StandardIdTooLarge(0x800))
        );
        assert_eq!(
            CanId::extended(0x18DA_F110),
            Ok(CanId::Extended(0x18DA_F110))
        );
        assert_eq!(
            CanId::extended(0x2000_0000),
            Err(FrameError::ExtendedIdTooLarge(0x2000_0000))
        );
    }

    #[test]
    fn frames_hold_at_most_eight_bytes() {
        let id = CanId::Standard(0x7DF);
        assert_eq!(CanFrame::new(id, &[0; 9]), Err(FrameError::TooLong(9)));
        let f = CanFrame::new(id, &[0x02, 0x01, 0x0C]).expect("valid");
        assert_eq!(f.data(), &[0x02, 0x01, 0x0C]);
        assert_eq!(format!("{f:?}"), "7DF#02010C");
        assert_eq!(CanId::Extended(0x18DB_33F1).to_string(), "18DB33F1");
    }
}
