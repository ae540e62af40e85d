//! Negative responses: ISO 14229-1 (the negative response message and, in Annex A.1, the
//! codes), also used by SAE J1979 / ISO 15031-5 on CAN.
//!
//! A server that will not (or not yet) answer a request replies with exactly three bytes:
//!
//! ```text
//! 7F  <request service id>  <negative response code>
//! ```
//!
//! The codes are grouped by the standard (Table A.1, names as ISO 14229-1:2020 writes them):
//!
//! | range | meaning |
//! |---|---|
//! | 0x00 | positiveResponse: never sent, used by servers internally |
//! | 0x10–0x7F | communication-related codes (0x78 is "response pending", not a failure) |
//! | 0x81–0x94 | a specific condition is not correct (rpm, temperature, voltage, gear…) |
//! | 0x95–0xEF | reservedForSpecificConditionsNotCorrect |
//! | 0xF0–0xFE | vehicleManufacturerSpecificConditionsNotCorrect |
//! | everything else | ISOSAEReserved |
//!
//! 0x34, 0x38–0x3A, 0x50–0x5D and 0x94 arrived with the 2020 edition (authentication and
//! secured data transmission); older ECUs never send them.

use std::fmt;

use serde::ser::SerializeStruct;
use serde::{Serialize, Serializer};

/// Service identifier of every negative response.
pub const NEGATIVE_RESPONSE_SID: u8 = 0x7F;

/// Why a message that starts with 0x7F is not a well-formed negative response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NrcError {
    #[error("a negative response is exactly 3 bytes (7F, service, code), got {0}")]
    WrongLength(usize),
}

/// A negative response code. Every byte value is representable; [`Nrc::name`] says what the
/// standard calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Nrc(pub u8);

impl Nrc {
    pub const GENERAL_REJECT: Nrc = Nrc(0x10);
    pub const SERVICE_NOT_SUPPORTED: Nrc = Nrc(0x11);
    pub const SUB_FUNCTION_NOT_SUPPORTED: Nrc = Nrc(0x12);
    pub const INCORRECT_MESSAGE_LENGTH_OR_INVALID_FORMAT: Nrc = Nrc(0x13);
    pub const BUSY_REPEAT_REQUEST: Nrc = Nrc(0x21);
    pub const CONDITIONS_NOT_CORRECT: Nrc = Nrc(0x22);
    pub const REQUEST_OUT_OF_RANGE: Nrc = Nrc(0x31);
    pub const RESPONSE_PENDING: Nrc = Nrc(0x78);

    /// The standard's name for the code, or for the range it falls in.
    pub fn name(self) -> &'static str {
        communication_name(self.0)
            .or_else(|| condition_name(self.0))
            .unwrap_or_else(|| range_name(self.0))
    }

    /// 0x78 requestCorrectlyReceived-ResponsePending: the server accepted the request and will
    /// answer later; the client keeps waiting (P2* timing) instead of failing.
    pub fn is_response_pending(self) -> bool {
        self == Nrc::RESPONSE_PENDING
    }

    /// 0x21 busyRepeatRequest: the client may send the same request again.
    pub fn is_busy(self) -> bool {
        self == Nrc::BUSY_REPEAT_REQUEST
    }
}

/// Codes 0x00–0x7F that have a name of their own.
fn communication_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x00 => "positiveResponse",
        0x10 => "generalReject",
        0x11 => "serviceNotSupported",
        0x12 => "subFunctionNotSupported",
        0x13 => "incorrectMessageLengthOrInvalidFormat",
        0x14 => "responseTooLong",
        0x21 => "busyRepeatRequest",
        0x22 => "conditionsNotCorrect",
        0x24 => "requestSequenceError",
        0x25 => "noResponseFromSubnetComponent",
        0x26 => "failurePreventsExecutionOfRequestedAction",
        0x31 => "requestOutOfRange",
        0x33 => "securityAccessDenied",
        0x34 => "authenticationRequired",
        0x35 => "invalidKey",
        0x36 => "exceededNumberOfAttempts",
        0x37 => "requiredTimeDelayNotExpired",
        0x38 => "secureDataTransmissionRequired",
        0x39 => "secureDataTransmissionNotAllowed",
        0x3A => "secureDataVerificationFailed",
        0x50 => "certificateVerificationFailed-InvalidTimePeriod",
        0x51 => "certificateVerificationFailed-InvalidSignature",
        0x52 => "certificateVerificationFailed-InvalidChainOfTrust",
        0x53 => "certificateVerificationFailed-InvalidType",
        0x54 => "certificateVerificationFailed-InvalidFormat",
        0x55 => "certificateVerificationFailed-InvalidContent",
        0x56 => "certificateVerificationFailed-InvalidScope",
        0x57 => "certificateVerificationFailed-InvalidCertificate",
        0x58 => "ownershipVerificationFailed",
        0x59 => "challengeCalculationFailed",
        0x5A => "settingAccessRightsFailed",
        0x5B => "sessionKeyCreation/DerivationFailed",
        0x5C => "configurationDataUsageFailed",
        0x5D => "deAuthenticationFailed",
        0x70 => "uploadDownloadNotAccepted",
        0x71 => "transferDataSuspended",
        0x72 => "generalProgrammingFailure",
        0x73 => "wrongBlockSequenceCounter",
        0x78 => "requestCorrectlyReceived-ResponsePending",
        0x7E => "subFunctionNotSupportedInActiveSession",
        0x7F => "serviceNotSupportedInActiveSession",
        _ => return None,
    })
}

/// The named "conditions not correct" codes, 0x81–0x94.
fn condition_name(code: u8) -> Option<&'static str> {
    Some(match code {
        0x81 => "rpmTooHigh",
        0x82 => "rpmTooLow",
        0x83 => "engineIsRunning",
        0x84 => "engineIsNotRunning",
        0x85 => "engineRunTimeTooLow",
        0x86 => "temperatureTooHigh",
        0x87 => "temperatureTooLow",
        0x88 => "vehicleSpeedTooHigh",
        0x89 => "vehicleSpeedTooLow",
        0x8A => "throttle/PedalTooHigh",
        0x8B => "throttle/PedalTooLow",
        0x8C => "transmissionRangeNotInNeutral",
        0x8D => "transmissionRangeNotInGear",
        0x8F => "brakeSwitch(es)NotClosed",
        0x90 => "shifterLeverNotInPark",
        0x91 => "torqueConverterClutchLocked",
        0x92 => "voltageTooHigh",
        0x93 => "voltageTooLow",
        0x94 => "resourceTemporarilyNotAvailable",
        _ => return None,
    })
}

/// Names of the ranges without individual codes.
fn range_name(code: u8) -> &'static str {
    match code {
        0x95..=0xEF => "reservedForSpecificConditionsNotCorrect",
        0xF0..=0xFE => "vehicleManufacturerSpecificConditionsNotCorrect",
        _ => "ISOSAEReserved",
    }
}

/// `0x31 requestOutOfRange`
impl fmt::Display for Nrc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:02X} {}", self.0, self.name())
    }
}

/// `{"code": 49, "name": "requestOutOfRange"}`: the number for machines, the name for people.
impl Serialize for Nrc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Nrc", 2)?;
        st.serialize_field("code", &self.0)?;
        st.serialize_field("name", self.name())?;
        st.end()
    }
}

/// A decoded `7F <service> <code>` message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct NegativeResponse {
    /// The service identifier of the rejected request (not the positive-response SID).
    pub service: u8,
    pub nrc: Nrc,
}

impl NegativeResponse {
    /// `Ok(None)` when `msg` is not a negative response (it does not start with 0x7F; an empty
    /// message is not one either), `Ok(Some(..))` for a well-formed one, and an error when it
    /// starts with 0x7F but is not exactly 3 bytes long.
    pub fn parse(msg: &[u8]) -> Result<Option<NegativeResponse>, NrcError> {
        match msg {
            [NEGATIVE_RESPONSE_SID, service, code] => Ok(Some(NegativeResponse {
                service: *service,
                nrc: Nrc(*code),
            })),
            [NEGATIVE_RESPONSE_SID, ..] => Err(NrcError::WrongLength(msg.len())),
            _ => Ok(None),
        }
    }

    /// The three bytes a server sends.
    pub fn encode(&self) -> [u8; 3] {
        [NEGATIVE_RESPONSE_SID, self.service, self.nrc.0]
    }
}

/// `service 0x19 rejected: 0x31 requestOutOfRange`
impl fmt::Display for NegativeResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "service 0x{:02X} rejected: {}", self.service, self.nrc)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_annex_a() {
        assert_eq!(Nrc(0x10).name(), "generalReject");
        assert_eq!(Nrc(0x11).name(), "serviceNotSupported");
        assert_eq!(Nrc(0x12).name(), "subFunctionNotSupported");
        assert_eq!(Nrc(0x13).name(), "incorrectMessageLengthOrInvalidFormat");
        assert_eq!(Nrc(0x22).name(), "conditionsNotCorrect");
        assert_eq!(Nrc(0x31).name(), "requestOutOfRange");
        assert_eq!(Nrc(0x33).name(), "securityAccessDenied");
        assert_eq!(Nrc(0x78).name(), "requestCorrectlyReceived-ResponsePending");
        assert_eq!(Nrc(0x7F).name(), "serviceNotSupportedInActiveSession");
        assert_eq!(Nrc(0x81).name(), "rpmTooHigh");
        assert_eq!(Nrc(0x93).name(), "voltageTooLow");
        // gaps and ranges
        assert_eq!(Nrc(0x01).name(), "ISOSAEReserved");
        assert_eq!(Nrc(0x23).name(), "ISOSAEReserved");
        assert_eq!(Nrc(0x80).name(), "ISOSAEReserved");
        assert_eq!(Nrc(0x8E).name(), "ISOSAEReserved");
        assert_eq!(Nrc(0x95).name(), "reservedForSpecificConditionsNotCorrect");
        assert_eq!(Nrc(0xEF).name(), "reservedForSpecificConditionsNotCorrect");
        assert_eq!(
            Nrc(0xF0).name(),
            "vehicleManufacturerSpecificConditionsNotCorrect"
        );
        assert_eq!(
            Nrc(0xFE).name(),
            "vehicleManufacturerSpecificConditionsNotCorrect"
        );
        assert_eq!(Nrc(0xFF).name(), "ISOSAEReserved");
    }

    #[test]
    fn named_codes_count() {
        // Table A.1 (2020): 41 named codes below 0x80 including positiveResponse, 19 conditions.
        let named = (0..=255u8)
            .filter(|c| !Nrc(*c).name().contains("eserved"))
            .count();
        let oem = 0xFE - 0xF0 + 1;
        assert_eq!(named, 41 + 19 + oem);
    }

    #[test]
    fn response_pending_is_only_0x78() {
        assert!(Nrc(0x78).is_response_pending());
        assert!(!Nrc(0x21).is_response_pending());
        assert!(Nrc(0x21).is_busy());
        assert_eq!(
            (0..=255u8)
                .filter(|c| Nrc(*c).is_response_pending())
                .count(),
            1
        );
    }

    #[test]
    fn display_and_serialize() {
        assert_eq!(Nrc(0x31).to_string(), "0x31 requestOutOfRange");
        assert_eq!(
            Nrc(0xF3).to_string(),
            "0xF3 vehicleManufacturerSpecificConditionsNotCorrect"
        );
        assert_eq!(
            serde_json::to_string(&Nrc(0x31)).expect("json"),
            r#"{"code":49,"name":"requestOutOfRange"}"#
        );
        let nr = NegativeResponse {
            service: 0x19,
            nrc: Nrc(0x31),
        };
        assert_eq!(
            nr.to_string(),
            "service 0x19 rejected: 0x31 requestOutOfRange"
        );
        assert_eq!(
            serde_json::to_string(&nr).expect("json"),
            r#"{"service":25,"nrc":{"code":49,"name":"requestOutOfRange"}}"#
        );
    }

    #[test]
    fn parses_negative_responses() {
        // 7F 19 31: ReadDTCInformation rejected with requestOutOfRange
        assert_eq!(
            NegativeResponse::parse(&[0x7F, 0x19, 0x31]),
            Ok(Some(NegativeResponse {
                service: 0x19,
                nrc: Nrc(0x31)
            }))
        );
        // 7F 01 78: a J1979 mode 01 request, response pending
        let pending = NegativeResponse::parse(&[0x7F, 0x01, 0x78])
            .expect("ok")
            .expect("some");
        assert!(pending.nrc.is_response_pending());
        // positive responses and empty messages are not negative responses
        assert_eq!(NegativeResponse::parse(&[0x59, 0x02, 0xFF]), Ok(None));
        assert_eq!(NegativeResponse::parse(&[0x41, 0x7F, 0x00]), Ok(None));
        assert_eq!(NegativeResponse::parse(&[]), Ok(None));
        // starts with 7F but the length is wrong
        assert_eq!(
            NegativeResponse::parse(&[0x7F]),
            Err(NrcError::WrongLength(1))
        );
        assert_eq!(
            NegativeResponse::parse(&[0x7F, 0x19]),
            Err(NrcError::WrongLength(2))
        );
        assert_eq!(
            NegativeResponse::parse(&[0x7F, 0x19, 0x31, 0x00]),
            Err(NrcError::WrongLength(4))
        );
    }

    proptest! {
        #[test]
        fn encode_parse_round_trip(service in any::<u8>(), code in any::<u8>()) {
            let nr = NegativeResponse { service, nrc: Nrc(code) };
            prop_assert_eq!(NegativeResponse::parse(&nr.encode()), Ok(Some(nr)));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..16)) {
            let result = NegativeResponse::parse(&bytes);
            let starts_7f = bytes.first() == Some(&NEGATIVE_RESPONSE_SID);
            prop_assert_eq!(result.is_err(), starts_7f && bytes.len() != 3);
        }
    }
}
