//! Money: exact decimals with at most two places, never negative, bounded, checked arithmetic.
//!
//! Money crosses every boundary as a *normalised decimal string* ("75", "0.5", "1234.56") so that
//! no JSON parser on the way turns it into a binary float. On input a JSON number is accepted as
//! well (people type `"amount": 50`), through the shortest decimal that round-trips the number.

use std::fmt;
use std::str::FromStr;

use rust_decimal::Decimal;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Decimal places money may carry (centavos).
pub const MONEY_SCALE_MAX: u32 = 2;
/// Largest amount of money, in cents: 999,999,999,999,999.99. Chosen so that a sum of two maxima
/// still fits an `i64` of cents, and well above any balance a bank could hold.
pub const MONEY_CENTS_MAX: i64 = 99_999_999_999_999_999;
/// Longest textual amount accepted before parsing, so hostile input costs nothing.
pub const MONEY_TEXT_LEN_MAX: usize = 32;

/// Why a text or number is not money. Closed set; each has a stable error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("amount is not a decimal number")]
    Invalid,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount has more than two decimal places")]
    TooPrecise,
    #[error("amount exceeds the maximum of 999999999999999.99")]
    TooLarge,
    #[error("amount must be greater than zero")]
    Zero,
}

impl MoneyError {
    /// The stable code for the JSON error body.
    pub fn code(self) -> crate::ErrorCode {
        match self {
            MoneyError::Invalid => crate::ErrorCode::AmountInvalid,
            MoneyError::Negative => crate::ErrorCode::AmountNegative,
            MoneyError::TooPrecise => crate::ErrorCode::AmountTooPrecise,
            MoneyError::TooLarge => crate::ErrorCode::AmountTooLarge,
            MoneyError::Zero => crate::ErrorCode::AmountZero,
        }
    }
}

/// A non-negative amount of money with at most two decimal places, at most [`MONEY_CENTS_MAX`] cents.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Money(i64); // cents; the representation is private so the invariant holds everywhere.

impl Money {
    pub const ZERO: Money = Money(0);
    pub const MAX: Money = Money(MONEY_CENTS_MAX);

    pub const fn from_cents(cents: i64) -> Result<Money, MoneyError> {
        if cents < 0 {
            Err(MoneyError::Negative)
        } else if cents > MONEY_CENTS_MAX {
            Err(MoneyError::TooLarge)
        } else {
            Ok(Money(cents))
        }
    }

    pub const fn cents(self) -> i64 {
        self.0
    }

    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// `None` when the sum would pass [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        Money::from_cents(self.0.checked_add(other.0)?).ok()
    }

    /// `None` when the result would be negative (insufficient funds).
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        Money::from_cents(self.0.checked_sub(other.0)?).ok()
    }

    pub fn from_decimal(d: Decimal) -> Result<Money, MoneyError> {
        if d.is_sign_negative() && !d.is_zero() {
            return Err(MoneyError::Negative);
        }
        let d = d.normalize();
        if d.scale() > MONEY_SCALE_MAX {
            return Err(MoneyError::TooPrecise);
        }
        let cents = d.checked_mul(Decimal::ONE_HUNDRED).ok_or(MoneyError::TooLarge)?;
        let cents: i64 = cents.try_into().map_err(|_| MoneyError::TooLarge)?;
        Money::from_cents(cents)
    }

    pub fn to_decimal(self) -> Decimal {
        Decimal::new(self.0, MONEY_SCALE_MAX).normalize()
    }
}

impl FromStr for Money {
    type Err = MoneyError;

    /// Accepts `digits[.d[d]]` only: no sign, exponent, spaces or separators. A leading `-`
    /// is reported as [`MoneyError::Negative`] and a third decimal as [`MoneyError::TooPrecise`]
    /// so the caller can say precisely what is wrong.
    fn from_str(s: &str) -> Result<Money, MoneyError> {
        if s.len() > MONEY_TEXT_LEN_MAX {
            return Err(if s.bytes().all(|b| b.is_ascii_digit()) { MoneyError::TooLarge } else { MoneyError::Invalid });
        }
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(int) || frac.is_some_and(|f| !digits(f)) {
            return Err(MoneyError::Invalid);
        }
        let d = Decimal::from_str_exact(body).map_err(|_| MoneyError::TooLarge)?;
        if negative && !d.is_zero() {
            return Err(MoneyError::Negative);
        }
        Money::from_decimal(d)
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (int, frac) = (self.0 / 100, self.0 % 100);
        match frac {
            0 => write!(f, "{int}"),
            f10 if f10 % 10 == 0 => write!(f, "{int}.{}", f10 / 10),
            _ => write!(f, "{int}.{frac:02}"),
        }
    }
}

impl fmt::Debug for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Money({self})")
    }
}

impl Serialize for Money {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

struct MoneyVisitor;

impl Visitor<'_> for MoneyVisitor {
    type Value = Money;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money as a decimal string or number, e.g. \"12.34\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Money, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Money, E> {
        let cents =
            i64::try_from(v).ok().and_then(|v| v.checked_mul(100)).ok_or_else(|| E::custom(MoneyError::TooLarge))?;
        Money::from_cents(cents).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Money, E> {
        if v < 0 {
            return Err(E::custom(MoneyError::Negative));
        }
        self.visit_u64(v.unsigned_abs())
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Money, E> {
        if !v.is_finite() {
            return Err(E::custom(MoneyError::Invalid));
        }
        // Rust prints the shortest decimal that round-trips the float: 0.1 prints "0.1",
        // 1e30 prints "1000000000000000000000000000000", so parsing the text is exact.
        let text = format!("{v}");
        text.parse().map_err(E::custom)
    }
}

impl<'de> Deserialize<'de> for Money {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Money, D::Error> {
        d.deserialize_any(MoneyVisitor)
    }
}

/// A strictly positive amount: what a deposit, withdrawal or transfer moves.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Amount(Money);

impl Amount {
    pub fn new(m: Money) -> Result<Amount, MoneyError> {
        if m.is_zero() { Err(MoneyError::Zero) } else { Ok(Amount(m)) }
    }

    pub fn money(self) -> Money {
        self.0
    }
}

impl FromStr for Amount {
    type Err = MoneyError;
    fn from_str(s: &str) -> Result<Amount, MoneyError> {
        Amount::new(s.parse()?)
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for Amount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Amount, D::Error> {
        Amount::new(Money::deserialize(d)?).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Result<Money, MoneyError> {
        s.parse()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(m("75").map(|v| v.to_string()), Ok("75".into()));
        assert_eq!(m("0.50").map(|v| v.to_string()), Ok("0.5".into()));
        assert_eq!(m("1234.56").map(|v| v.to_string()), Ok("1234.56".into()));
        assert_eq!(m("007.10").map(|v| v.to_string()), Ok("7.1".into()));
        assert_eq!(m("0.05").map(|v| v.to_string()), Ok("0.05".into()));
        assert_eq!(m("0").map(|v| v.to_string()), Ok("0".into()));
        assert_eq!(m("999999999999999.99"), Ok(Money::MAX));
    }

    #[test]
    fn rejects_with_precise_reason() {
        assert_eq!(m("-1"), Err(MoneyError::Negative));
        assert_eq!(m("1.234"), Err(MoneyError::TooPrecise));
        assert_eq!(m("1000000000000000"), Err(MoneyError::TooLarge));
        assert_eq!(m("1e30"), Err(MoneyError::Invalid));
        assert_eq!(m("NaN"), Err(MoneyError::Invalid));
        assert_eq!(m(""), Err(MoneyError::Invalid));
        assert_eq!(m(" 1"), Err(MoneyError::Invalid));
        assert_eq!(m("1."), Err(MoneyError::Invalid));
        assert_eq!(m(".5"), Err(MoneyError::Invalid));
        assert_eq!(m("+1"), Err(MoneyError::Invalid));
        assert_eq!(m("1,5"), Err(MoneyError::Invalid));
        assert_eq!(m(&"9".repeat(200)), Err(MoneyError::TooLarge));
        assert_eq!("0".parse::<Amount>(), Err(MoneyError::Zero));
    }

    #[test]
    fn json_accepts_strings_and_numbers() {
        let v: Money = serde_json::from_str("\"12.30\"").unwrap();
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"12.3\"");
        let v: Money = serde_json::from_str("0.1").unwrap();
        assert_eq!(v.cents(), 10);
        let v: Money = serde_json::from_str("50").unwrap();
        assert_eq!(v.cents(), 5000);
        assert!(serde_json::from_str::<Money>("1e30").is_err());
        assert!(serde_json::from_str::<Money>("-5").is_err());
        assert!(serde_json::from_str::<Money>("0.001").is_err());
        assert!(serde_json::from_str::<Money>("true").is_err());
        assert!(serde_json::from_str::<Amount>("0").is_err());
    }

    #[test]
    fn arithmetic_is_checked() {
        let a = m("10").unwrap();
        let b = m("10.01").unwrap();
        assert_eq!(a.checked_sub(b), None);
        assert_eq!(b.checked_sub(a).map(|v| v.to_string()), Some("0.01".into()));
        assert_eq!(Money::MAX.checked_add(m("0.01").unwrap()), None);
    }

    proptest::proptest! {
        #[test]
        fn display_parse_round_trip(cents in 0i64..=MONEY_CENTS_MAX) {
            let v = Money::from_cents(cents).unwrap();
            proptest::prop_assert_eq!(v.to_string().parse::<Money>(), Ok(v));
            let json = serde_json::to_string(&v).unwrap();
            proptest::prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), v);
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<Money>();
        }
    }
}
