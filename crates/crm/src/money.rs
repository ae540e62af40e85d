//! Money: integer minor units (cents) of one currency. No floating point anywhere; amounts
//! are scaled by integer rates with one rounding rule, half away from zero.

use std::fmt;

use serde::Serialize;

/// An ISO 4217 code such as `USD`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Currency([u8; 3]);

impl Currency {
    /// Three ASCII capital letters.
    pub fn parse(text: &str) -> Result<Currency, MoneyError> {
        match text.as_bytes() {
            [a, b, c] if [a, b, c].iter().all(|x| x.is_ascii_uppercase()) => {
                Ok(Currency([*a, *b, *c]))
            }
            _ => Err(MoneyError::Currency(text.to_owned())),
        }
    }

    pub fn code(&self) -> &str {
        // Three ASCII capitals by construction.
        std::str::from_utf8(&self.0).unwrap_or("???")
    }

    /// Digits after the decimal point (ISO 4217's minor unit) for display.
    pub fn exponent(&self) -> u32 {
        match self.code() {
            "JPY" | "KRW" | "ISK" | "CLP" | "VND" => 0,
            "BHD" | "KWD" | "OMR" | "JOD" | "TND" => 3,
            _ => 2,
        }
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

impl Serialize for Currency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.code())
    }
}

/// Why an amount could not be made or combined.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("{0:?} is not a currency code (three capital letters, e.g. USD)")]
    Currency(String),
    #[error("cannot combine {0} and {1}")]
    Mismatch(Currency, Currency),
    #[error("amount out of range")]
    Overflow,
}

/// An amount: `minor` units (cents for USD) of `currency`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct Money {
    pub minor: i64,
    pub currency: Currency,
}

/// `value * num / den`, rounded half away from zero; `den` > 0.
fn scale(value: i64, num: i64, den: i64) -> Result<i64, MoneyError> {
    let product = i128::from(value) * i128::from(num);
    let den = i128::from(den);
    let half = den / 2;
    let q = if product >= 0 {
        (product + half) / den
    } else {
        (product - half) / den
    };
    i64::try_from(q).map_err(|_| MoneyError::Overflow)
}

impl Money {
    pub fn new(minor: i64, currency: Currency) -> Money {
        Money { minor, currency }
    }

    pub fn zero(currency: Currency) -> Money {
        Money::new(0, currency)
    }

    pub fn checked_add(self, other: Money) -> Result<Money, MoneyError> {
        if self.currency != other.currency {
            return Err(MoneyError::Mismatch(self.currency, other.currency));
        }
        let minor = self
            .minor
            .checked_add(other.minor)
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Times a whole quantity.
    pub fn times(self, quantity: u32) -> Result<Money, MoneyError> {
        let minor = self
            .minor
            .checked_mul(i64::from(quantity))
            .ok_or(MoneyError::Overflow)?;
        Ok(Money::new(minor, self.currency))
    }

    /// Times a quantity in tenths (an hourly rate times `hours_x10` tenths of an hour).
    pub fn times_tenths(self, tenths: u32) -> Result<Money, MoneyError> {
        Ok(Money::new(
            scale(self.minor, i64::from(tenths), 10)?,
            self.currency,
        ))
    }

    /// A rate in basis points of this amount (825 bp = 8.25 %).
    pub fn basis_points(self, bp: u32) -> Result<Money, MoneyError> {
        Ok(Money::new(
            scale(self.minor, i64::from(bp), 10_000)?,
            self.currency,
        ))
    }

    pub fn min(self, other: Money) -> Money {
        if other.minor < self.minor {
            other
        } else {
            self
        }
    }
}

impl fmt::Display for Money {
    /// `USD 1,234.50`
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let exp = self.currency.exponent();
        let unit = 10u64.pow(exp);
        let abs = self.minor.unsigned_abs();
        let (whole, frac) = (abs / unit, abs % unit);
        let digits = whole.to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                grouped.push(',');
            }
            grouped.push(c);
        }
        let sign = if self.minor < 0 { "-" } else { "" };
        if exp == 0 {
            write!(f, "{} {sign}{grouped}", self.currency)
        } else {
            write!(
                f,
                "{} {sign}{grouped}.{frac:0width$}",
                self.currency,
                width = exp as usize
            )
        }
    }
}

/// `minor` units of the currency named `code`, as [`Money`] shows them ("USD 1,234.50"); a
/// code that is not one (from a stored or received quote) is shown as given.
pub fn show(minor: i64, code: &str) -> String {
    match Currency::parse(code) {
        Ok(c) => Money::new(minor, c).to_string(),
        Err(_) => format!("{code} {minor}"),
    }
}

/// An amount a person typed ("150", "150.00", "1,234.5") in `currency`'s minor units: no
/// more decimals than the currency has, never negative.
pub fn parse_amount(text: &str, currency: Currency) -> Result<Money, String> {
    let clean: String = text.trim().chars().filter(|c| *c != ',').collect();
    let (whole, frac) = clean.split_once('.').unwrap_or((&clean, ""));
    let exp = currency.exponent() as usize;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || (!frac.is_empty() && !digits(frac)) || frac.len() > exp {
        return Err(format!(
            "{text:?} is not an amount of {currency} (digits, and at most {exp} decimals)"
        ));
    }
    let scale = 10i64.pow(exp as u32);
    let frac_minor = if frac.is_empty() {
        0
    } else {
        frac.parse::<i64>().map_err(|e| e.to_string())? * 10i64.pow((exp - frac.len()) as u32)
    };
    whole
        .parse::<i64>()
        .ok()
        .and_then(|w| w.checked_mul(scale))
        .and_then(|w| w.checked_add(frac_minor))
        .map(|minor| Money::new(minor, currency))
        .ok_or_else(|| format!("{text:?} is too large"))
}

/// A percentage a person typed ("8.25%", "10") in basis points (825, 1000): at most two
/// decimals, 0 to 100 %.
pub fn parse_percent(text: &str) -> Result<u32, String> {
    let t = text.trim().trim_end_matches('%').trim();
    let (whole, frac) = t.split_once('.').unwrap_or((t, ""));
    let ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && frac.len() <= 2
        && frac.bytes().all(|b| b.is_ascii_digit());
    let bp = ok
        .then(|| {
            let w: u32 = whole.parse().ok()?;
            let f: u32 = if frac.is_empty() {
                0
            } else {
                frac.parse::<u32>().ok()? * if frac.len() == 1 { 10 } else { 1 }
            };
            w.checked_mul(100)?.checked_add(f)
        })
        .flatten()
        .filter(|bp| *bp <= 10_000);
    bp.ok_or_else(|| {
        format!("{text:?} is not a percentage from 0 to 100 with at most two decimals")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(minor: i64) -> Money {
        Money::new(minor, Currency::parse("USD").unwrap())
    }

    #[test]
    fn rounding_is_half_away_from_zero() {
        // 8.25 % of $10.10 = 83.325 cents -> 83; of $10.30 = 84.975 -> 85.
        assert_eq!(usd(1010).basis_points(825).unwrap(), usd(83));
        assert_eq!(usd(1030).basis_points(825).unwrap(), usd(85));
        // 0.5 cent rounds up, -0.5 down.
        assert_eq!(usd(1).basis_points(5_000).unwrap(), usd(1));
        assert_eq!(usd(-1).basis_points(5_000).unwrap(), usd(-1));
        // $129.99/h for 1.5 h = 194.985 -> $194.99.
        assert_eq!(usd(12_999).times_tenths(15).unwrap(), usd(19_499));
    }

    #[test]
    fn currencies_do_not_mix_and_overflow_is_an_error() {
        let eur = Money::new(100, Currency::parse("EUR").unwrap());
        assert!(matches!(
            usd(100).checked_add(eur),
            Err(MoneyError::Mismatch(..))
        ));
        assert_eq!(usd(i64::MAX).checked_add(usd(1)), Err(MoneyError::Overflow));
        assert_eq!(usd(i64::MAX).times(2), Err(MoneyError::Overflow));
        assert!(Currency::parse("usd").is_err());
        assert!(Currency::parse("US").is_err());
    }

    #[test]
    fn display_uses_the_currency_exponent() {
        assert_eq!(usd(123_450).to_string(), "USD 1,234.50");
        assert_eq!(usd(-5).to_string(), "USD -0.05");
        let jpy = Money::new(1_234_567, Currency::parse("JPY").unwrap());
        assert_eq!(jpy.to_string(), "JPY 1,234,567");
    }

    #[test]
    fn typed_amounts_and_percentages() {
        let usd = Currency::parse("USD").unwrap();
        assert_eq!(parse_amount("150", usd).unwrap().minor, 15_000);
        assert_eq!(parse_amount("1,234.5", usd).unwrap().minor, 123_450);
        assert_eq!(parse_amount("0.07", usd).unwrap().minor, 7);
        for bad in ["", "-5", "1.234", "12a", ".5", "1e3"] {
            assert!(parse_amount(bad, usd).is_err(), "{bad}");
        }
        assert_eq!(parse_percent("8.25%"), Ok(825));
        assert_eq!(parse_percent("10"), Ok(1000));
        assert_eq!(parse_percent("7.5 %"), Ok(750));
        for bad in ["", "101", "8.255", "x%", "-1"] {
            assert!(parse_percent(bad).is_err(), "{bad}");
        }
    }
}
