//! Diagnostic trouble codes as SAE J2012 / ISO 15031-6 define them, in the 2-byte form that
//! SAE J1979 (ISO 15031-5) modes 03, 07 and 0A and freeze-frame PID 02 carry.
//!
//! # The two bytes
//!
//! ```text
//!  byte A                          byte B
//!  7 6 | 5 4 | 3 2 1 0             7 6 5 4 | 3 2 1 0
//!  sys | d1  | d2                  d3      | d4
//! ```
//!
//! - bits 15–14 select the system letter: `00` P (powertrain), `01` C (chassis),
//!   `10` B (body), `11` U (network / vehicle integration);
//! - bits 13–12 are the first digit, 0–3;
//! - the remaining three nibbles are written as hex digits.
//!
//! So `01 33` is `P0133`, `04 20` is `P0420`, `C1 00` is `U0100` and `44 20` is `C0420`.
//!
//! # Who owns a code (J2012)
//!
//! | range | controlled by |
//! |---|---|
//! | P0xxx, P2xxx, P34xx–P3Fxx | SAE (generic, same meaning in every vehicle) |
//! | P1xxx, P30xx–P33xx | the manufacturer |
//! | B0xxx, C0xxx, U0xxx | SAE |
//! | B1xxx, B2xxx, C1xxx, C2xxx, U1xxx, U2xxx | the manufacturer |
//! | B3xxx, C3xxx, U3xxx | reserved by SAE (counted as generic) |
//!
//! J2012 lists the SAE part of P3 as P3400–P3999; P3A00–P3FFF is not given to manufacturers
//! either, so it is counted with the SAE range here.
//!
//! # Text
//!
//! [`Dtc`]'s `Display` is the canonical upper-case form (`P0420`). `FromStr` also accepts
//! lower-case letters anywhere (`p042a`), because people type codes; anything else that is not
//! exactly one system letter, one digit 0–3 and three hex digits is a [`DtcError`].
//!
//! In a J1979 DTC response, `00 00` pairs are padding (non-CAN protocols always send three codes
//! per message) and are skipped by [`parse_dtc_list`]. The count byte that ISO 15765-4 responses
//! put before the codes is the service layer's business, not this module's.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Why a trouble code could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DtcError {
    #[error("a DTC is 5 characters (like P0420), got {0}")]
    WrongLength(usize),
    #[error("a DTC starts with P, C, B or U, got {0:?}")]
    BadSystemLetter(char),
    #[error("the second character of a DTC is a digit 0-3, got {0:?}")]
    BadFirstDigit(char),
    #[error("character {position} of a DTC must be a hex digit, got {found:?}")]
    NotHex { position: usize, found: char },
    #[error("a DTC list is made of 2-byte pairs, got an odd length of {0} bytes")]
    OddLength(usize),
}

/// The vehicle system a code belongs to: the letter of its text form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum System {
    Powertrain,
    Chassis,
    Body,
    Network,
}

impl System {
    /// The letter J2012 writes for the system.
    pub fn letter(self) -> char {
        match self {
            System::Powertrain => 'P',
            System::Chassis => 'C',
            System::Body => 'B',
            System::Network => 'U',
        }
    }

    fn from_letter(c: char) -> Option<Self> {
        match c.to_ascii_uppercase() {
            'P' => Some(System::Powertrain),
            'C' => Some(System::Chassis),
            'B' => Some(System::Body),
            'U' => Some(System::Network),
            _ => None,
        }
    }

    /// The value of bits 15–14.
    fn bits(self) -> u16 {
        match self {
            System::Powertrain => 0,
            System::Chassis => 1,
            System::Body => 2,
            System::Network => 3,
        }
    }
}

/// A J2012 trouble code, held as its 16-bit wire value. Every `u16` is a valid code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Dtc(u16);

impl Dtc {
    /// A code from its 16-bit value (byte A in the high half).
    pub const fn from_raw(raw: u16) -> Self {
        Dtc(raw)
    }

    /// A code from the two bytes as a J1979 response carries them, byte A first.
    pub const fn from_bytes(bytes: [u8; 2]) -> Self {
        Dtc(u16::from_be_bytes(bytes))
    }

    /// The two bytes as sent on the wire.
    pub const fn to_bytes(self) -> [u8; 2] {
        self.0.to_be_bytes()
    }

    pub const fn raw(self) -> u16 {
        self.0
    }

    /// The system letter, from bits 15–14.
    pub fn system(self) -> System {
        match self.0 >> 14 {
            0 => System::Powertrain,
            1 => System::Chassis,
            2 => System::Body,
            _ => System::Network,
        }
    }

    /// The digit after the letter (bits 13–12), 0–3.
    pub fn first_digit(self) -> u8 {
        ((self.0 >> 12) & 0x3) as u8
    }

    /// True for codes whose meaning SAE assigns (or reserves), the same in every vehicle; false
    /// for manufacturer-controlled codes. See the table in the module documentation.
    pub fn is_generic(self) -> bool {
        let third_char = (self.0 >> 8) & 0xF;
        match (self.system(), self.first_digit()) {
            (System::Powertrain, 0 | 2) => true,
            (System::Powertrain, 1) => false,
            (System::Powertrain, _) => third_char >= 4,
            (_, 0 | 3) => true,
            (_, _) => false,
        }
    }

    /// The opposite of [`Dtc::is_generic`].
    pub fn is_manufacturer_specific(self) -> bool {
        !self.is_generic()
    }
}

/// `P0420`: letter, digit, three upper-case hex digits.
impl fmt::Display for Dtc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}{}{:03X}",
            self.system().letter(),
            self.first_digit(),
            self.0 & 0x0FFF
        )
    }
}

/// Parses `P0420`; lower case is accepted (`p042a`), see the module documentation.
impl FromStr for Dtc {
    type Err = DtcError;

    fn from_str(s: &str) -> Result<Self, DtcError> {
        let chars: Vec<char> = s.chars().collect();
        let &[letter, digit, d2, d3, d4] = chars.as_slice() else {
            return Err(DtcError::WrongLength(chars.len()));
        };
        let system = System::from_letter(letter).ok_or(DtcError::BadSystemLetter(letter))?;
        let first = digit
            .to_digit(10)
            .filter(|d| *d <= 3)
            .ok_or(DtcError::BadFirstDigit(digit))?;
        let mut raw = (system.bits() << 14) | ((first as u16) << 12);
        for (position, found) in [(3, d2), (4, d3), (5, d4)] {
            let nibble = found
                .to_digit(16)
                .ok_or(DtcError::NotHex { position, found })?;
            raw |= (nibble as u16) << (4 * (5 - position));
        }
        Ok(Dtc(raw))
    }
}

/// Serialized as the text form, `"P0420"`.
impl Serialize for Dtc {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The codes in a J1979 mode 03/07/0A payload (the bytes after the service byte and, on CAN,
/// the count byte): 2-byte pairs, `00 00` padding skipped.
pub fn parse_dtc_list(data: &[u8]) -> Result<Vec<Dtc>, DtcError> {
    if !data.len().is_multiple_of(2) {
        return Err(DtcError::OddLength(data.len()));
    }
    Ok(data
        .chunks_exact(2)
        .filter_map(|pair| match pair {
            [0, 0] => None,
            [a, b] => Some(Dtc::from_bytes([*a, *b])),
            _ => None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dtc(s: &str) -> Dtc {
        s.parse().expect("valid DTC text")
    }

    #[test]
    fn bytes_to_text_worked_examples() {
        // J2012 bit layout: bits 15-14 system, 13-12 first digit, then three nibbles.
        assert_eq!(Dtc::from_bytes([0x01, 0x33]).to_string(), "P0133");
        assert_eq!(Dtc::from_bytes([0x04, 0x20]).to_string(), "P0420");
        // 0xC1 = 11 00 0001: U, 0, 1 -> U0100 (lost communication with ECM/PCM)
        assert_eq!(Dtc::from_bytes([0xC1, 0x00]).to_string(), "U0100");
        // 0x44 = 01 00 0100: C, 0, 4 -> C0420
        assert_eq!(Dtc::from_bytes([0x44, 0x20]).to_string(), "C0420");
        // 0x40 0x35 -> C0035; 0x92 0x34 = 10 01 0010 -> B1234
        assert_eq!(Dtc::from_bytes([0x40, 0x35]).to_string(), "C0035");
        assert_eq!(Dtc::from_bytes([0x92, 0x34]).to_string(), "B1234");
        // 0x3F = 00 11 1111 -> P3F, hex digits upper case
        assert_eq!(Dtc::from_bytes([0x3F, 0xAB]).to_string(), "P3FAB");
        assert_eq!(Dtc::from_bytes([0xFF, 0xFF]).to_string(), "U3FFF");
        assert_eq!(Dtc::from_bytes([0x00, 0x00]).to_string(), "P0000");
    }

    #[test]
    fn text_to_bytes_worked_examples() {
        assert_eq!(dtc("P0133").to_bytes(), [0x01, 0x33]);
        assert_eq!(dtc("U0100").to_bytes(), [0xC1, 0x00]);
        assert_eq!(dtc("B1234").to_bytes(), [0x92, 0x34]);
        assert_eq!(dtc("C0035").raw(), 0x4035);
        assert_eq!(dtc("p3fab").to_bytes(), [0x3F, 0xAB]);
        assert_eq!(dtc("u0a1f"), dtc("U0A1F"));
    }

    #[test]
    fn text_errors_are_precise() {
        assert_eq!("P042".parse::<Dtc>(), Err(DtcError::WrongLength(4)));
        assert_eq!("P04200".parse::<Dtc>(), Err(DtcError::WrongLength(6)));
        assert_eq!("".parse::<Dtc>(), Err(DtcError::WrongLength(0)));
        assert_eq!("X0420".parse::<Dtc>(), Err(DtcError::BadSystemLetter('X')));
        assert_eq!("P4420".parse::<Dtc>(), Err(DtcError::BadFirstDigit('4')));
        assert_eq!("PA420".parse::<Dtc>(), Err(DtcError::BadFirstDigit('A')));
        assert_eq!(
            "P04G0".parse::<Dtc>(),
            Err(DtcError::NotHex {
                position: 4,
                found: 'G'
            })
        );
        assert_eq!(
            "P042 ".parse::<Dtc>(),
            Err(DtcError::NotHex {
                position: 5,
                found: ' '
            })
        );
        // multi-byte characters count as one character each and are rejected, not sliced
        assert_eq!(
            "P04é0".parse::<Dtc>(),
            Err(DtcError::NotHex {
                position: 4,
                found: 'é'
            })
        );
        assert_eq!("é0420".parse::<Dtc>(), Err(DtcError::BadSystemLetter('é')));
    }

    #[test]
    fn systems_and_ownership_follow_j2012() {
        assert_eq!(dtc("P0420").system(), System::Powertrain);
        assert_eq!(dtc("C0035").system(), System::Chassis);
        assert_eq!(dtc("B1234").system(), System::Body);
        assert_eq!(dtc("U0100").system(), System::Network);

        for generic in [
            "P0420", "P2187", "P3400", "P3999", "P3F00", "C0035", "C3000", "B0001", "B3FFF",
            "U0100", "U3000",
        ] {
            assert!(dtc(generic).is_generic(), "{generic} should be generic");
        }
        for oem in [
            "P1234", "P3000", "P33FF", "C1234", "C2000", "B1234", "B2FFF", "U1000", "U2100",
        ] {
            assert!(
                dtc(oem).is_manufacturer_specific(),
                "{oem} should be manufacturer specific"
            );
        }
    }

    #[test]
    fn serializes_as_text() {
        assert_eq!(
            serde_json::to_string(&dtc("U0100")).expect("json"),
            "\"U0100\""
        );
        assert_eq!(
            serde_json::to_string(&System::Body).expect("json"),
            "\"Body\""
        );
    }

    #[test]
    fn lists_skip_padding_and_reject_odd_lengths() {
        // A non-CAN mode 03 reply always carries three codes: P0133, P0420 and one padding pair.
        let codes = parse_dtc_list(&[0x01, 0x33, 0x04, 0x20, 0x00, 0x00]).expect("even length");
        assert_eq!(codes, vec![dtc("P0133"), dtc("P0420")]);
        assert_eq!(parse_dtc_list(&[]), Ok(vec![]));
        assert_eq!(
            parse_dtc_list(&[0x00, 0x00, 0xC1, 0x00]),
            Ok(vec![dtc("U0100")])
        );
        assert_eq!(
            parse_dtc_list(&[0x01, 0x33, 0x04]),
            Err(DtcError::OddLength(3))
        );
    }

    proptest! {
        #[test]
        fn text_and_bytes_round_trip(raw in any::<u16>()) {
            let code = Dtc::from_raw(raw);
            let text = code.to_string();
            prop_assert_eq!(text.len(), 5);
            let back: Dtc = text.parse().expect("own output parses");
            prop_assert_eq!(back, code);
            prop_assert_eq!(Dtc::from_bytes(code.to_bytes()), code);
            let lower: Dtc = text.to_ascii_lowercase().parse().expect("lower case parses");
            prop_assert_eq!(lower, code);
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,8}", bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = s.parse::<Dtc>();
            match parse_dtc_list(&bytes) {
                Ok(codes) => prop_assert!(codes.len() <= bytes.len() / 2),
                Err(e) => prop_assert_eq!(e, DtcError::OddLength(bytes.len())),
            }
        }
    }
}
