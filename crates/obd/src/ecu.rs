//! Which ECU answered: the one identity a diagnostic answer carries, whatever the bus.
//!
//! On CAN (ISO 15765-4) an ECU is known by the identifier it answers on (`7E8`, `18DAF110`).
//! The older OBD-II protocols (SAE J1850 PWM and VPW, ISO 9141-2, ISO 14230-4 KWP2000) carry
//! a three-byte header instead, whose last byte is the answering ECU's source address
//! ([`crate::legacy`]); there is no CAN id to speak of. Within one vehicle the protocol is
//! fixed, so the two never meet, but every layer above (the client, the agent, the wire) must
//! be able to carry either, and say which.

use std::fmt;

use serde::{Serialize, Serializer};

use crate::frame::CanId;

/// An answering ECU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EcuId {
    /// On CAN: the identifier the ECU answers on.
    Can(CanId),
    /// On SAE J1850, ISO 9141-2 and ISO 14230-4: the ECU's source address, the third header
    /// byte (`10` is usually the engine controller, `18` the transmission).
    Node(u8),
}

impl EcuId {
    /// The number the wire and the store keep: the CAN id, or the source address. Which of
    /// the two it is follows from the vehicle's protocol (never mixed within one vehicle).
    pub fn raw(self) -> u32 {
        match self {
            EcuId::Can(id) => id.raw(),
            EcuId::Node(address) => u32::from(address),
        }
    }

    /// The CAN id, when the ECU is on CAN.
    pub fn can_id(self) -> Option<CanId> {
        match self {
            EcuId::Can(id) => Some(id),
            EcuId::Node(_) => None,
        }
    }
}

impl From<CanId> for EcuId {
    fn from(id: CanId) -> Self {
        EcuId::Can(id)
    }
}

/// An ECU is the CAN id it answers on, when it is on CAN.
impl PartialEq<CanId> for EcuId {
    fn eq(&self, other: &CanId) -> bool {
        *self == EcuId::Can(*other)
    }
}

/// CAN ids as candump writes them (`7E8`, `18DAF110`), a source address as two hex digits
/// (`10`): the lengths never collide.
impl fmt::Display for EcuId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EcuId::Can(id) => id.fmt(f),
            EcuId::Node(address) => write!(f, "{address:02X}"),
        }
    }
}

impl Serialize for EcuId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_so_that_the_kinds_cannot_be_confused() {
        assert_eq!(EcuId::Can(CanId::Standard(0x7E8)).to_string(), "7E8");
        assert_eq!(
            EcuId::Can(CanId::Extended(0x18DA_F110)).to_string(),
            "18DAF110"
        );
        assert_eq!(EcuId::Node(0x10).to_string(), "10");
        assert_eq!(EcuId::Node(0x10).raw(), 0x10);
        assert_eq!(EcuId::Node(0x10).can_id(), None);
    }
}
