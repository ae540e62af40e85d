//! Vehicle identification numbers: ISO 3779 (structure), ISO 3780 (manufacturer codes) and
//! 49 CFR 565 (the North American rules: check digit, model year).
//!
//! # Structure
//!
//! ```text
//!  position  1 2 3 | 4 5 6 7 8 | 9 | 10 | 11 | 12 … 17
//!            WMI   | VDS                  | VIS
//!                  |           | check    | year | plant | serial
//! ```
//!
//! - **WMI** (world manufacturer identifier, 1–3): assigned under ISO 3780; the first character
//!   gives the region. A manufacturer building fewer than 500 (ISO) / 1000 (US) vehicles a year
//!   has a `9` in position 3 and the rest of its code in positions 12–14.
//! - **VDS** (descriptor, 4–9) and **VIS** (indicator, 10–17), as ISO 3779 splits them.
//! - Seventeen characters from `A`–`Z` and `0`–`9`, never `I`, `O` or `Q` (they look like 1 and 0).
//!
//! # Check digit (49 CFR 565.15)
//!
//! Each character is transliterated (`A`=1 `B`=2 … `H`=8, `J`=1 … `N`=5, `P`=7, `R`=9,
//! `S`=2 … `Z`=9, digits as themselves), multiplied by the weight of its position
//! `8 7 6 5 4 3 2 10 0 9 8 7 6 5 4 3 2`, and the sum taken mod 11; a remainder of 10 is written
//! `X`. The result belongs in position 9. Only North American VINs are required to carry it:
//! European and Asian manufacturers often put a letter or a filler there, so [`Vin::parse`]
//! does **not** require it; [`Vin::check_digit_valid`] reports it.
//!
//! # Model year (position 10)
//!
//! Codes cycle every 30 years: `A`–`Y` without `I O Q U Z` for 1980–2000 (then 2010–2030),
//! `1`–`9` for 2001–2009 (then 2031–2039). For North American passenger cars, MPVs and light
//! trucks (49 CFR 565.15), position 7 tells the cycle apart: a digit means 1980–2009, a
//! letter 2010–2039. [`ModelYear`] gives both candidates and, for VINs whose WMI is North
//! American (`1`–`5`), the one that rule picks. Elsewhere position 10 is not even required to be
//! a year (ISO 3779 only recommends it).
//!
//! # From an ECU
//!
//! J1979 mode 09 PID 02 carries the VIN as 17 ASCII bytes; some ECUs pad it with leading or
//! trailing `0x00` or spaces (non-CAN protocols always send 20 bytes). [`Vin::from_bytes`]
//! strips that padding.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Number of characters in a VIN.
pub const VIN_LEN: usize = 17;

/// Why a VIN was rejected. Positions count from 1, as VIN positions do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VinError {
    #[error("a VIN is 17 characters, got {0}")]
    WrongLength(usize),
    #[error("position {position}: {found:?} is not allowed in a VIN (I, O and Q never are)")]
    ForbiddenLetter { position: usize, found: char },
    #[error("position {position}: {found:?} is not a VIN character (A-Z, 0-9)")]
    InvalidCharacter { position: usize, found: char },
    #[error("byte {offset} of the VIN data is 0x{byte:02X}, not ASCII")]
    NonAscii { offset: usize, byte: u8 },
}

/// The region of the world a WMI's first character is allocated to (ISO 3780).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Region {
    Africa,
    Asia,
    Europe,
    NorthAmerica,
    Oceania,
    SouthAmerica,
}

/// What position 10 says about the model year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct ModelYear {
    /// The character in position 10.
    pub code: char,
    /// The two years the code stands for within 1980–2039, earlier first.
    pub candidates: [u16; 2],
    /// The year the North American position-7 rule picks; `None` for other WMIs.
    pub likely: Option<u16>,
}

/// A syntactically valid VIN: 17 upper-case characters from the VIN alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Vin(String);

/// Weights of positions 1–17 for the check digit (49 CFR 565.15).
const WEIGHTS: [u32; VIN_LEN] = [8, 7, 6, 5, 4, 3, 2, 10, 0, 9, 8, 7, 6, 5, 4, 3, 2];

impl Vin {
    /// Validates a VIN typed or stored as text. Lower case is accepted and upper-cased;
    /// the check digit is not required to be valid.
    pub fn parse(s: &str) -> Result<Vin, VinError> {
        let count = s.chars().count();
        if count != VIN_LEN {
            return Err(VinError::WrongLength(count));
        }
        s.chars()
            .enumerate()
            .map(|(i, c)| check_char(i + 1, c))
            .collect::<Result<String, _>>()
            .map(Vin)
    }

    /// Decodes the VIN bytes an ECU sends (J1979 mode 09 PID 02, UDS DID 0xF190), stripping
    /// leading and trailing `0x00` and space padding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Vin, VinError> {
        if let Some((offset, &byte)) = bytes.iter().enumerate().find(|(_, b)| !b.is_ascii()) {
            return Err(VinError::NonAscii { offset, byte });
        }
        let is_padding = |b: &u8| *b == 0x00 || *b == b' ';
        let start = bytes
            .iter()
            .position(|b| !is_padding(b))
            .unwrap_or(bytes.len());
        let end = bytes
            .iter()
            .rposition(|b| !is_padding(b))
            .map_or(start, |i| i + 1);
        let text: String = bytes
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|&b| char::from(b))
            .collect();
        Vin::parse(&text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The character at 1-based `position`; every position 1–17 exists by construction.
    fn char_at(&self, position: usize) -> char {
        self.0
            .as_bytes()
            .get(position.wrapping_sub(1))
            .map_or('?', |&b| char::from(b))
    }

    /// Characters `from`..=`to` (1-based), by construction always within the VIN.
    fn part(&self, from: usize, to: usize) -> &str {
        self.0.get(from.wrapping_sub(1)..to).unwrap_or_default()
    }

    /// The check digit the North American rule computes for this VIN (`0`–`9` or `X`).
    pub fn check_digit(&self) -> char {
        let sum: u32 = self
            .0
            .bytes()
            .zip(WEIGHTS)
            .map(|(b, weight)| transliterate(b) * weight)
            .sum();
        match sum % 11 {
            10 => 'X',
            digit => char::from_digit(digit, 10).unwrap_or('?'),
        }
    }

    /// Whether position 9 holds [`Vin::check_digit`]. Expect `false` for many VINs from
    /// outside North America, where the check digit is not mandatory.
    pub fn check_digit_valid(&self) -> bool {
        self.char_at(9) == self.check_digit()
    }

    /// World manufacturer identifier, positions 1–3.
    pub fn wmi(&self) -> &str {
        self.part(1, 3)
    }

    /// Vehicle descriptor section, positions 4–9 (ISO 3779; includes the check digit).
    pub fn vds(&self) -> &str {
        self.part(4, 9)
    }

    /// Vehicle indicator section, positions 10–17.
    pub fn vis(&self) -> &str {
        self.part(10, 17)
    }

    /// The region allocated to the first character by ISO 3780: `A`–`H` Africa, `J`–`R` Asia,
    /// `S`–`Z` Europe, `1`–`5` North America, `6`–`7` Oceania, `8`–`9` South America. `None`
    /// for `0`, which that table leaves unallocated.
    pub fn region(&self) -> Option<Region> {
        match self.char_at(1) {
            'A'..='H' => Some(Region::Africa),
            'J'..='R' => Some(Region::Asia),
            'S'..='Z' => Some(Region::Europe),
            '1'..='5' => Some(Region::NorthAmerica),
            '6' | '7' => Some(Region::Oceania),
            '8' | '9' => Some(Region::SouthAmerica),
            _ => None,
        }
    }

    /// The country for a few well-known WMI ranges (see [`COUNTRY_RANGES`]); `None` when the
    /// WMI is outside them, which does not make it invalid.
    pub fn country(&self) -> Option<&'static str> {
        let (first, second) = (self.char_at(1), self.char_at(2));
        COUNTRY_RANGES
            .iter()
            .find(|(f, from, to, _)| {
                *f == first
                    && (iso3780_rank(*from)..=iso3780_rank(*to)).contains(&iso3780_rank(second))
            })
            .map(|(.., country)| *country)
    }

    /// The model year from position 10, or `None` when that character is not a year code.
    pub fn model_year(&self) -> Option<ModelYear> {
        let code = self.char_at(10);
        let offset = YEAR_CODES.iter().position(|&c| c == code)?;
        let earlier = 1980 + u16::try_from(offset).ok()?;
        let later = earlier + 30;
        let likely = (self.region() == Some(Region::NorthAmerica)).then(|| {
            if self.char_at(7).is_ascii_alphabetic() {
                later
            } else {
                earlier
            }
        });
        Some(ModelYear {
            code,
            candidates: [earlier, later],
            likely,
        })
    }
}

/// Upper-cases `c` and checks it against the VIN alphabet.
fn check_char(position: usize, c: char) -> Result<char, VinError> {
    let upper = c.to_ascii_uppercase();
    match upper {
        'I' | 'O' | 'Q' => Err(VinError::ForbiddenLetter { position, found: c }),
        'A'..='Z' | '0'..='9' => Ok(upper),
        _ => Err(VinError::InvalidCharacter { position, found: c }),
    }
}

/// Check-digit value of a VIN character (the 49 CFR 565.15 transliteration table).
fn transliterate(b: u8) -> u32 {
    match b {
        b'0'..=b'9' => u32::from(b - b'0'),
        b'A' | b'J' => 1,
        b'B' | b'K' | b'S' => 2,
        b'C' | b'L' | b'T' => 3,
        b'D' | b'M' | b'U' => 4,
        b'E' | b'N' | b'V' => 5,
        b'F' | b'W' => 6,
        b'G' | b'P' | b'X' => 7,
        b'H' | b'Y' => 8,
        b'R' | b'Z' => 9,
        _ => 0,
    }
}

/// Position-10 codes in order, starting with 1980 (and again with 2010).
const YEAR_CODES: [char; 30] = [
    'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'J', 'K', 'L', 'M', 'N', 'P', 'R', 'S', 'T', 'V', 'W',
    'X', 'Y', '1', '2', '3', '4', '5', '6', '7', '8', '9',
];

/// Well-known ISO 3780 country allocations: first character, range of second characters
/// (inclusive, in ISO 3780 order `A`–`Z`, `1`–`9`, `0`), country.
pub const COUNTRY_RANGES: &[(char, char, char, &str)] = &[
    ('1', 'A', '0', "United States"),
    ('4', 'A', '0', "United States"),
    ('5', 'A', '0', "United States"),
    ('2', 'A', '0', "Canada"),
    ('3', 'A', 'W', "Mexico"),
    ('J', 'A', '0', "Japan"),
    ('K', 'L', 'R', "South Korea"),
    ('L', 'A', '0', "China"),
    ('M', 'A', 'E', "India"),
    ('S', 'A', 'M', "United Kingdom"),
    ('S', 'U', 'Z', "Poland"),
    ('T', 'A', 'H', "Switzerland"),
    ('T', 'J', 'P', "Czech Republic"),
    ('T', 'R', 'V', "Hungary"),
    ('V', 'A', 'E', "Austria"),
    ('V', 'F', 'R', "France"),
    ('V', 'S', 'W', "Spain"),
    ('W', 'A', '0', "Germany"),
    ('Y', 'S', 'W', "Sweden"),
    ('Z', 'A', 'R', "Italy"),
    ('6', 'A', 'W', "Australia"),
    ('9', 'A', 'E', "Brazil"),
];

/// Order of characters in ISO 3780 ranges: letters, then `1`–`9`, then `0`.
fn iso3780_rank(c: char) -> u32 {
    match c {
        'A'..='Z' => u32::from(c) - u32::from('A'),
        '1'..='9' => 26 + u32::from(c) - u32::from('1'),
        _ => 35,
    }
}

impl fmt::Display for Vin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Same as [`Vin::parse`].
impl FromStr for Vin {
    type Err = VinError;

    fn from_str(s: &str) -> Result<Vin, VinError> {
        Vin::parse(s)
    }
}

/// Serialized as the 17-character string.
impl Serialize for Vin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn vin(s: &str) -> Vin {
        Vin::parse(s).expect("valid VIN")
    }

    #[test]
    fn north_american_vins_check_out() {
        // 2003 Honda Accord: weighted sum 311, 311 mod 11 = 3 = position 9
        let v = vin("1HGCM82633A004352");
        assert_eq!(v.check_digit(), '3');
        assert!(v.check_digit_valid());
        assert_eq!(v.wmi(), "1HG");
        assert_eq!(v.vds(), "CM8263");
        assert_eq!(v.vis(), "3A004352");
        assert_eq!(v.region(), Some(Region::NorthAmerica));
        assert_eq!(v.country(), Some("United States"));
        // position 10 '3' = 2003 or 2033; position 7 '2' is a digit, so 2003
        assert_eq!(
            v.model_year(),
            Some(ModelYear {
                code: '3',
                candidates: [2003, 2033],
                likely: Some(2003)
            })
        );

        // all ones: weights sum to 89, 89 mod 11 = 1
        let ones = vin("11111111111111111");
        assert_eq!(ones.check_digit(), '1');
        assert!(ones.check_digit_valid());

        // remainder 10 is written X: sum 351 mod 11 = 10
        let x = vin("1M8GDM9AXKP042788");
        assert_eq!(x.check_digit(), 'X');
        assert!(x.check_digit_valid());
        assert_eq!(x.model_year().map(|y| y.likely), Some(Some(1989)));
    }

    #[test]
    fn model_year_cycle() {
        // position 7 a letter: 2010-2039 cycle ('A' = 2010, 'Y' = 2030, '9' = 2039)
        let y = vin("1HGCM8A6XAA004352").model_year().expect("year code");
        assert_eq!((y.candidates, y.likely), ([1980, 2010], Some(2010)));
        let y = vin("1HGCM8A63YA004352").model_year().expect("year code");
        assert_eq!((y.candidates, y.likely), ([2000, 2030], Some(2030)));
        let y = vin("1HGCM8A639A004352").model_year().expect("year code");
        assert_eq!((y.candidates, y.likely), ([2009, 2039], Some(2039)));
        // outside North America: both candidates, no pick
        let y = vin("WVWZZZ1JZXW000001").model_year().expect("year code");
        assert_eq!((y.code, y.candidates, y.likely), ('X', [1999, 2029], None));
        // U, Z and 0 are VIN characters but not year codes
        for code in ['U', 'Z', '0'] {
            let text = format!("WVWZZZ1JZ{code}W000001");
            assert_eq!(vin(&text).model_year(), None, "{text}");
        }
        assert_eq!(YEAR_CODES.len(), 30);
    }

    #[test]
    fn european_vin_without_check_digit_parses() {
        // VW puts the filler 'Z' in position 9: not a check digit, still a valid VIN
        let v = vin("WVWZZZ1JZXW000001");
        assert!(!v.check_digit_valid());
        assert_eq!(v.region(), Some(Region::Europe));
        assert_eq!(v.country(), Some("Germany"));
        assert_eq!(v.wmi(), "WVW");
        assert_eq!(vin("VF1AB000123456789").country(), Some("France"));
        assert_eq!(vin("ZFA22300005556777").country(), Some("Italy"));
        assert_eq!(vin("YV1AB000123456789").country(), Some("Sweden"));
        assert_eq!(vin("SAJAB000123456789").country(), Some("United Kingdom"));
        assert_eq!(vin("TMBAB000123456789").country(), Some("Czech Republic"));
    }

    #[test]
    fn regions_and_countries() {
        let first = |c: char| vin(&format!("{c}AAAAAAAAAAAAAAAA"));
        assert_eq!(first('A').region(), Some(Region::Africa));
        assert_eq!(first('H').region(), Some(Region::Africa));
        assert_eq!(first('J').region(), Some(Region::Asia));
        assert_eq!(first('R').region(), Some(Region::Asia));
        assert_eq!(first('S').region(), Some(Region::Europe));
        assert_eq!(first('6').region(), Some(Region::Oceania));
        assert_eq!(first('9').region(), Some(Region::SouthAmerica));
        assert_eq!(first('0').region(), None);
        assert_eq!(vin("JHMCM56557C404453").country(), Some("Japan"));
        assert_eq!(vin("KMHAB000123456789").country(), Some("South Korea"));
        assert_eq!(vin("KAHAB000123456789").country(), None);
        assert_eq!(vin("3VWAB000123456789").country(), Some("Mexico"));
        assert_eq!(vin("3XWAB000123456789").country(), None);
        assert_eq!(vin("W0LAB000123456789").country(), Some("Germany"));
        assert_eq!(vin("LSVAB000123456789").country(), Some("China"));
        assert_eq!(vin("9BWAB000123456789").country(), Some("Brazil"));
        assert_eq!(vin("SNAAB000123456789").country(), None);
        // ranges are ordered A-Z, 1-9, 0: '0' is the last character
        assert_eq!(iso3780_rank('Z') + 1, iso3780_rank('1'));
        assert_eq!(iso3780_rank('9') + 1, iso3780_rank('0'));
    }

    #[test]
    fn text_errors_name_position_and_character() {
        assert_eq!(Vin::parse(""), Err(VinError::WrongLength(0)));
        assert_eq!(
            Vin::parse("1HGCM82633A00435"),
            Err(VinError::WrongLength(16))
        );
        assert_eq!(
            Vin::parse("1HGCM82633A0043521"),
            Err(VinError::WrongLength(18))
        );
        assert_eq!(
            Vin::parse("1HGCM82633A0O4352"),
            Err(VinError::ForbiddenLetter {
                position: 13,
                found: 'O'
            })
        );
        assert_eq!(
            Vin::parse("IHGCM82633A004352"),
            Err(VinError::ForbiddenLetter {
                position: 1,
                found: 'I'
            })
        );
        assert_eq!(
            Vin::parse("1HGCM82633A00435q"),
            Err(VinError::ForbiddenLetter {
                position: 17,
                found: 'q'
            })
        );
        assert_eq!(
            Vin::parse("1HGCM82633A-04352"),
            Err(VinError::InvalidCharacter {
                position: 12,
                found: '-'
            })
        );
        assert_eq!(
            Vin::parse("1HGCM82633A0é4352"),
            Err(VinError::InvalidCharacter {
                position: 13,
                found: 'é'
            })
        );
    }

    #[test]
    fn lower_case_is_upper_cased() {
        let v = vin("1hgcm82633a004352");
        assert_eq!(v.as_str(), "1HGCM82633A004352");
        assert_eq!(v.to_string(), "1HGCM82633A004352");
        assert_eq!("1hgcm82633a004352".parse::<Vin>(), Ok(v.clone()));
        assert_eq!(
            serde_json::to_string(&v).expect("json"),
            "\"1HGCM82633A004352\""
        );
    }

    #[test]
    fn ecu_bytes_are_unpadded() {
        let plain = b"1HGCM82633A004352";
        assert_eq!(Vin::from_bytes(plain), Ok(vin("1HGCM82633A004352")));
        // non-CAN mode 09 PID 02: 20 bytes, three leading 00
        let mut padded = vec![0x00, 0x00, 0x00];
        padded.extend_from_slice(plain);
        assert_eq!(Vin::from_bytes(&padded), Ok(vin("1HGCM82633A004352")));
        let mut trailing = plain.to_vec();
        trailing.extend_from_slice(&[0x20, 0x20, 0x00]);
        assert_eq!(Vin::from_bytes(&trailing), Ok(vin("1HGCM82633A004352")));
        assert_eq!(Vin::from_bytes(&[0x00; 20]), Err(VinError::WrongLength(0)));
        assert_eq!(Vin::from_bytes(&[]), Err(VinError::WrongLength(0)));
        assert_eq!(
            Vin::from_bytes(&plain[..16]),
            Err(VinError::WrongLength(16))
        );
        // padding inside the VIN is not padding
        assert_eq!(
            Vin::from_bytes(b"1HGCM826 3A004352"),
            Err(VinError::InvalidCharacter {
                position: 9,
                found: ' '
            })
        );
        let mut bad = plain.to_vec();
        bad[4] = 0xC3;
        assert_eq!(
            Vin::from_bytes(&bad),
            Err(VinError::NonAscii {
                offset: 4,
                byte: 0xC3
            })
        );
    }

    proptest! {
        #[test]
        fn computed_check_digit_validates(s in "[A-HJ-NPR-Z0-9]{17}") {
            let v = vin(&s);
            let digit = v.check_digit();
            prop_assert!(digit == 'X' || digit.is_ascii_digit());
            let mut fixed = s.clone();
            fixed.replace_range(8..9, &digit.to_string());
            let fixed = vin(&fixed);
            prop_assert!(fixed.check_digit_valid());
            prop_assert_eq!(fixed.check_digit(), digit, "position 9 has weight 0");
        }

        #[test]
        fn parsers_never_panic(s in "\\PC{0,20}", bytes in proptest::collection::vec(any::<u8>(), 0..24)) {
            if let Ok(v) = Vin::parse(&s) {
                prop_assert_eq!(v.as_str().len(), VIN_LEN);
                let _ = (v.model_year(), v.country(), v.region(), v.check_digit_valid());
            }
            if let Ok(v) = Vin::from_bytes(&bytes) {
                prop_assert_eq!(v.wmi().len() + v.vds().len() + v.vis().len(), VIN_LEN);
            }
        }
    }
}
