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
}
