//! CAN identifiers for OBD-II diagnostics on CAN (ISO 15765-4, SAE J1979).
//!
//! **11-bit identifiers** (ISO 15765-4, legislated OBD 11-bit ids):
//!
//! | id | use |
//! |---|---|
//! | `7DF` | functional request: every emissions-related ECU listens |
//! | `7E0`..`7E7` | physical request to ECU #1..#8 |
//! | `7E8`..`7EF` | response from ECU #1..#8 (request id + 8); also the id of the ECU's FCs |
//!
//! **29-bit identifiers**, normal fixed addressing (ISO 15765-2 normal fixed addressing,
//! ISO 15765-4 29-bit ids): `PP PF TA SA` with priority byte `18` (priority 6), PF `DA` for physical and `DB`
//! for functional addressing, TA the target address and SA the source address. The external
//! test equipment has address `F1`, so a request to ECU `xx` is `18DAxxF1`, its response is
//! `18DAF1xx`, and the functional request is `18DB33F1` (`33` = all OBD ECUs).
//!
//! A flow control travels the opposite way to the frames it paces: the FCs for an ECU's
//! response are sent on the request id, and vice versa.

use serde::Serialize;

use crate::frame::CanId;

/// 11-bit functional request id: every OBD ECU answers it.
pub const FUNCTIONAL_REQUEST_11BIT: CanId = CanId::Standard(0x7DF);
/// 29-bit functional request id: PF `DB`, TA `33` (all OBD ECUs), SA `F1` (tester).
pub const FUNCTIONAL_REQUEST_29BIT: CanId = CanId::Extended(0x18DB_33F1);
/// Address of the external test equipment in 29-bit normal fixed addressing.
pub const TESTER_ADDRESS: u8 = 0xF1;
/// Functional target address meaning "all OBD ECUs" in 29-bit addressing.
pub const FUNCTIONAL_TARGET_ADDRESS: u8 = 0x33;

/// First 11-bit physical request id (ECU #1, usually the engine control module).
pub const PHYSICAL_REQUEST_11BIT_FIRST: u16 = 0x7E0;
/// Last 11-bit physical request id (ECU #8).
pub const PHYSICAL_REQUEST_11BIT_LAST: u16 = 0x7E7;
/// First 11-bit response id (ECU #1).
pub const RESPONSE_11BIT_FIRST: u16 = 0x7E8;
/// Last 11-bit response id (ECU #8).
pub const RESPONSE_11BIT_LAST: u16 = 0x7EF;
/// Distance from an 11-bit physical request id to its response id.
pub const RESPONSE_OFFSET_11BIT: u16 = 8;

/// Priority 6, reserved bit 0, data page 0: the top byte of every OBD 29-bit id.
const PRIORITY_BYTE: u32 = 0x18;
/// PDU format for physically addressed (one ECU) diagnostic frames.
const PF_PHYSICAL: u32 = 0xDA;
/// PDU format for functionally addressed (all ECUs) diagnostic frames.
const PF_FUNCTIONAL: u32 = 0xDB;

/// What an identifier is used for in OBD-II diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum IdRole {
    /// `7DF` or `18DB33F1`.
    FunctionalRequest,
    /// `7E0`..`7E7` or `18DAxxF1`.
    PhysicalRequest,
    /// `7E8`..`7EF` or `18DAF1xx`.
    Response,
}

/// One diagnostic conversation: the tester sends on `request` and listens on `response`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Channel {
    pub request: CanId,
    pub response: CanId,
}

/// The `PF`, `TA` and `SA` bytes of a 29-bit id with OBD's priority byte, or `None`.
fn split_29bit(id: u32) -> Option<(u32, u8, u8)> {
    if id >> 24 != PRIORITY_BYTE {
        return None;
    }
    let [_, pf, ta, sa] = id.to_be_bytes();
    Some((u32::from(pf), ta, sa))
}

fn physical_29bit(target: u8, source: u8) -> CanId {
    CanId::Extended(
        PRIORITY_BYTE << 24 | PF_PHYSICAL << 16 | u32::from(target) << 8 | u32::from(source),
    )
}

/// Classifies an id as an OBD request or response id, or `None` for any other traffic.
pub fn role(id: CanId) -> Option<IdRole> {
    match id {
        CanId::Standard(0x7DF) => Some(IdRole::FunctionalRequest),
        CanId::Standard(PHYSICAL_REQUEST_11BIT_FIRST..=PHYSICAL_REQUEST_11BIT_LAST) => {
            Some(IdRole::PhysicalRequest)
        }
        CanId::Standard(RESPONSE_11BIT_FIRST..=RESPONSE_11BIT_LAST) => Some(IdRole::Response),
        CanId::Standard(_) => None,
        CanId::Extended(raw) => match split_29bit(raw)? {
            (PF_FUNCTIONAL, FUNCTIONAL_TARGET_ADDRESS, TESTER_ADDRESS) => {
                Some(IdRole::FunctionalRequest)
            }
            (PF_PHYSICAL, ta, TESTER_ADDRESS) if ta != TESTER_ADDRESS => {
                Some(IdRole::PhysicalRequest)
            }
            (PF_PHYSICAL, TESTER_ADDRESS, sa) if sa != TESTER_ADDRESS => Some(IdRole::Response),
            _ => None,
        },
    }
}

/// Whether `id` is an OBD request id, functional or physical.
pub fn is_request(id: CanId) -> bool {
    matches!(
        role(id),
        Some(IdRole::FunctionalRequest | IdRole::PhysicalRequest)
    )
}

/// Whether `id` is an OBD response id (`7E8`..`7EF` or `18DAF1xx`).
pub fn is_response(id: CanId) -> bool {
    role(id) == Some(IdRole::Response)
}

/// The id an ECU answers a physical request on: `7E0` → `7E8`, `18DA10F1` → `18DAF110`.
/// `None` for functional requests (many ECUs answer, each on its own id) and non-OBD ids.
pub fn response_id(request: CanId) -> Option<CanId> {
    if role(request) != Some(IdRole::PhysicalRequest) {
        return None;
    }
    match request {
        CanId::Standard(id) => Some(CanId::Standard(id + RESPONSE_OFFSET_11BIT)),
        CanId::Extended(raw) => {
            let (_, ta, sa) = split_29bit(raw)?;
            Some(physical_29bit(sa, ta))
        }
    }
}

/// The physical request id belonging to a response id: `7E8` → `7E0`, `18DAF110` →
/// `18DA10F1`. It is also where flow controls for that ECU's multi-frame responses go.
pub fn request_id(response: CanId) -> Option<CanId> {
    if role(response) != Some(IdRole::Response) {
        return None;
    }
    match response {
        CanId::Standard(id) => Some(CanId::Standard(id - RESPONSE_OFFSET_11BIT)),
        CanId::Extended(raw) => {
            let (_, ta, sa) = split_29bit(raw)?;
            Some(physical_29bit(sa, ta))
        }
    }
}

impl Channel {
    /// The 11-bit channel of ECU number `index` (0..=7): `7E0 + index` / `7E8 + index`.
    pub fn obd_11bit(index: u8) -> Option<Channel> {
        let request = PHYSICAL_REQUEST_11BIT_FIRST.checked_add(u16::from(index))?;
        if request > PHYSICAL_REQUEST_11BIT_LAST {
            return None;
        }
        Some(Channel {
            request: CanId::Standard(request),
            response: CanId::Standard(request + RESPONSE_OFFSET_11BIT),
        })
    }

    /// The 29-bit channel of the ECU at address `ecu`: `18DA<ecu>F1` / `18DAF1<ecu>`.
    /// `None` for the tester's own address.
    pub fn obd_29bit(ecu: u8) -> Option<Channel> {
        (ecu != TESTER_ADDRESS).then(|| Channel {
            request: physical_29bit(ecu, TESTER_ADDRESS),
            response: physical_29bit(TESTER_ADDRESS, ecu),
        })
    }

    /// The channel of the ECU that answered on `response` (say, to a functional request).
    pub fn for_response(response: CanId) -> Option<Channel> {
        Some(Channel {
            request: request_id(response)?,
            response,
        })
    }

    /// The channel a physical request id opens.
    pub fn for_request(request: CanId) -> Option<Channel> {
        Some(Channel {
            request,
            response: response_id(request)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn std_id(id: u16) -> CanId {
        CanId::Standard(id)
    }

    fn ext_id(id: u32) -> CanId {
        CanId::Extended(id)
    }

    // ISO 15765-4 11-bit ids: 7E0..7E7 requests, 7E8..7EF responses.
    #[test]
    fn eleven_bit_pairs() {
        for i in 0..8u16 {
            assert_eq!(response_id(std_id(0x7E0 + i)), Some(std_id(0x7E8 + i)));
            assert_eq!(request_id(std_id(0x7E8 + i)), Some(std_id(0x7E0 + i)));
        }
        assert_eq!(
            response_id(std_id(0x7DF)),
            None,
            "functional: many responders"
        );
        assert_eq!(
            response_id(std_id(0x7E8)),
            None,
            "a response is not a request"
        );
        assert_eq!(request_id(std_id(0x7E7)), None);
        assert_eq!(request_id(std_id(0x7F0)), None);
        assert_eq!(response_id(std_id(0x123)), None);
    }

    // ISO 15765-4 29-bit ids: 18DA<TA><SA>, tester F1.
    #[test]
    fn twenty_nine_bit_pairs() {
        assert_eq!(response_id(ext_id(0x18DA_10F1)), Some(ext_id(0x18DA_F110)));
        assert_eq!(request_id(ext_id(0x18DA_F110)), Some(ext_id(0x18DA_10F1)));
        assert_eq!(response_id(FUNCTIONAL_REQUEST_29BIT), None);
        assert_eq!(response_id(ext_id(0x18DA_F110)), None);
        assert_eq!(
            response_id(ext_id(0x1CDA_10F1)),
            None,
            "other priority: not OBD"
        );
        assert_eq!(
            response_id(ext_id(0x18DA_1022)),
            None,
            "source is not the tester"
        );
        // The 11-bit and 29-bit spaces are distinct even for equal numbers.
        assert_eq!(role(ext_id(0x7E8)), None);
    }

    #[test]
    fn roles() {
        assert_eq!(
            role(FUNCTIONAL_REQUEST_11BIT),
            Some(IdRole::FunctionalRequest)
        );
        assert_eq!(
            role(FUNCTIONAL_REQUEST_29BIT),
            Some(IdRole::FunctionalRequest)
        );
        assert_eq!(role(std_id(0x7E3)), Some(IdRole::PhysicalRequest));
        assert_eq!(role(ext_id(0x18DA_17F1)), Some(IdRole::PhysicalRequest));
        assert_eq!(role(std_id(0x7EF)), Some(IdRole::Response));
        assert_eq!(role(ext_id(0x18DA_F117)), Some(IdRole::Response));
        assert_eq!(role(ext_id(0x18DA_F1F1)), None);
        assert_eq!(role(ext_id(0x18DB_34F1)), None);
        assert_eq!(role(ext_id(0x18FE_F100)), None, "J1939 broadcast");
        assert!(is_request(std_id(0x7DF)) && is_request(std_id(0x7E0)));
        assert!(!is_request(std_id(0x7E8)) && is_response(std_id(0x7E8)));
        assert!(!is_response(std_id(0x7DF)));
    }

    #[test]
    fn channels() {
        assert_eq!(
            Channel::obd_11bit(0),
            Some(Channel {
                request: std_id(0x7E0),
                response: std_id(0x7E8)
            })
        );
        assert_eq!(
            Channel::obd_11bit(7).map(|c| c.response),
            Some(std_id(0x7EF))
        );
        assert_eq!(Channel::obd_11bit(8), None);
        assert_eq!(Channel::obd_11bit(255), None);
        assert_eq!(
            Channel::obd_29bit(0x10),
            Some(Channel {
                request: ext_id(0x18DA_10F1),
                response: ext_id(0x18DA_F110)
            })
        );
        assert_eq!(Channel::obd_29bit(TESTER_ADDRESS), None);
        assert_eq!(Channel::for_response(std_id(0x7E9)), Channel::obd_11bit(1));
        assert_eq!(
            Channel::for_request(ext_id(0x18DA_10F1)),
            Channel::obd_29bit(0x10)
        );
        assert_eq!(Channel::for_request(FUNCTIONAL_REQUEST_11BIT), None);
    }
}
