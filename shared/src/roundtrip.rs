//! The properties every parser of this crate keeps, for any input at all: it never panics, and
//! what it accepts prints in a canonical form that parses back to the same value (so a value
//! stored or sent as text is never changed by the trip). The property tests feed these with
//! generated strings; the fuzz targets (`fuzz/`, see the README) with whatever libFuzzer finds.
//! Each function panics on a violation.

use std::fmt::Display;
use std::str::FromStr;

use crate::{Amount, BankId, Document, Ibk, Money, PixKey, Target};

fn canonical<T: FromStr + Display + PartialEq + std::fmt::Debug>(s: &str) {
    if let Ok(v) = s.parse::<T>() {
        let printed = v.to_string();
        let again = printed.parse::<T>();
        assert!(again.as_ref().is_ok_and(|w| *w == v), "{s:?} → {v:?} → {printed:?} → {again:?}", again = again.ok());
    }
}

/// Money and amounts: at most two decimals, never negative, never above the maximum.
pub fn money(s: &str) {
    canonical::<Money>(s);
    canonical::<Amount>(s);
    if let Ok(m) = s.parse::<Money>() {
        assert!(m.cents() >= 0 && m <= Money::MAX, "{s:?} → {m:?}");
    }
    if let Ok(a) = s.parse::<Amount>() {
        assert!(!a.money().is_zero(), "{s:?}: a zero amount");
    }
}

/// IBKs and bank ids.
pub fn ibk(s: &str) {
    canonical::<Ibk>(s);
    canonical::<BankId>(s);
}

/// CPF/CNPJ: whatever is accepted has valid check digits, and its digits parse back.
pub fn document(s: &str) {
    canonical::<Document>(s);
    if let Ok(d) = s.parse::<Document>() {
        assert_eq!(d.formatted().parse::<Document>().ok().as_ref(), Some(&d), "{s:?}");
        assert_eq!(d.digits().parse::<Document>().ok().as_ref(), Some(&d), "{s:?}");
    }
}

/// Pix keys and payment targets; a key also survives its URL path segment.
pub fn pix_key(s: &str) {
    canonical::<PixKey>(s);
    canonical::<Target>(s);
    if let Ok(k) = PixKey::infer(s) {
        assert_eq!(PixKey::parse_as(k.kind(), k.as_str()).ok().as_ref(), Some(&k), "{s:?}");
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn money_parsing_is_canonical(s in "[-+0-9., eE]{0,24}") { super::money(&s); }

        #[test]
        fn ibks_parse_canonically(s in "[-0-9 +a]{0,24}") { super::ibk(&s); }

        #[test]
        fn documents_parse_canonically(s in "[0-9./ -]{0,20}") { super::document(&s); }

        #[test]
        fn keys_parse_canonically(s in "[a-zA-Z0-9@.+_ :-]{0,40}") { super::pix_key(&s); }

        #[test]
        fn any_text_is_safe(s in ".{0,40}") {
            super::money(&s);
            super::ibk(&s);
            super::document(&s);
            super::pix_key(&s);
        }
    }
}
