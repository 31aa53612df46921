//! Identifiers: banks, accounts, business servers, and the IBK ("bank-account", e.g. "2-17").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Largest bank id. Ten thousand banks is far beyond a consortium, and keeps IBKs short.
pub const BANK_ID_MAX: u32 = 9_999;
/// Largest account id: 2^53 − 1, so every id survives a JavaScript number in the browser.
pub const ACCOUNT_ID_MAX: u64 = 9_007_199_254_740_991;
/// Longest IBK text: "9999-9007199254740991".
pub const IBK_TEXT_LEN_MAX: usize = 21;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("bank id must be a whole number from 1 to 9999")]
    Bank,
    #[error("account id must be a whole number from 1 to 9007199254740991")]
    Account,
    #[error("business id must be a whole number from 1 to 4294967295")]
    Business,
    #[error("IBK must look like \"<bank>-<account>\", e.g. \"2-17\"")]
    Ibk,
}

impl IdError {
    pub fn code(self) -> crate::ErrorCode {
        match self {
            IdError::Bank => crate::ErrorCode::BankIdInvalid,
            IdError::Account => crate::ErrorCode::AccountIdInvalid,
            IdError::Business => crate::ErrorCode::BusinessIdInvalid,
            IdError::Ibk => crate::ErrorCode::IbkInvalid,
        }
    }
}

/// Canonical decimal digits only: no sign, no leading zero, no spaces, at most `len_max` digits.
fn parse_canonical(s: &str, len_max: usize) -> Option<u64> {
    let ok = !s.is_empty() && s.len() <= len_max && s.bytes().all(|b| b.is_ascii_digit()) && !s.starts_with('0');
    if ok { s.parse().ok() } else { None }
}

macro_rules! numeric_id {
    ($name:ident, $inner:ty, $max:expr, $digits:expr, $err:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
        pub struct $name($inner);

        impl $name {
            pub const MAX: $inner = $max;

            pub fn new(v: $inner) -> Result<Self, IdError> {
                if (1..=$max).contains(&v) { Ok(Self(v)) } else { Err($err) }
            }

            pub fn get(self) -> $inner {
                self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                let v = parse_canonical(s, $digits).ok_or($err)?;
                Self::new(<$inner>::try_from(v).map_err(|_| $err)?)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                self.0.serialize(s)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = <$inner>::deserialize(d)?;
                Self::new(v).map_err(de::Error::custom)
            }
        }
    };
}

numeric_id!(BankId, u32, BANK_ID_MAX, 4, IdError::Bank, "A bank of the consortium, 1..=9999.");
numeric_id!(AccountId, u64, ACCOUNT_ID_MAX, 16, IdError::Account, "An account within one bank, 1..=2^53−1.");
numeric_id!(
    BusinessId,
    u32,
    u32::MAX,
    10,
    IdError::Business,
    "A business server (replica) known to its bank's data server."
);

/// InterBank Key: the network-wide address of an account, "{bank}-{account}".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Ibk {
    pub bank: BankId,
    pub account: AccountId,
}

impl Ibk {
    pub fn new(bank: BankId, account: AccountId) -> Ibk {
        Ibk { bank, account }
    }
}

impl FromStr for Ibk {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Ibk, IdError> {
        if s.len() > IBK_TEXT_LEN_MAX {
            return Err(IdError::Ibk);
        }
        let (b, a) = s.split_once('-').ok_or(IdError::Ibk)?;
        Ok(Ibk { bank: b.parse().map_err(|_| IdError::Ibk)?, account: a.parse().map_err(|_| IdError::Ibk)? })
    }
}

impl fmt::Display for Ibk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.bank, self.account)
    }
}

impl Serialize for Ibk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Ibk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Ibk, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_canonical_and_bounded() {
        assert_eq!("17".parse::<AccountId>().map(AccountId::get), Ok(17));
        for bad in ["0", "017", "+1", "-1", "", "1.0", " 1", "9007199254740992", "abc", "99999999999999999999"] {
            assert_eq!(bad.parse::<AccountId>(), Err(IdError::Account), "{bad:?}");
        }
        assert!("10000".parse::<BankId>().is_err());
        assert!(serde_json::from_str::<AccountId>("0").is_err());
        assert!(serde_json::from_str::<AccountId>("-3").is_err());
        assert!(serde_json::from_str::<AccountId>("1.5").is_err());
        assert_eq!(serde_json::from_str::<BankId>("3").unwrap().get(), 3);
    }

    #[test]
    fn ibk_round_trip() {
        let ibk: Ibk = "2-17".parse().unwrap();
        assert_eq!(ibk.bank.get(), 2);
        assert_eq!(ibk.account.get(), 17);
        assert_eq!(ibk.to_string(), "2-17");
        assert_eq!(serde_json::to_string(&ibk).unwrap(), "\"2-17\"");
        for bad in ["2", "2-", "-17", "0-1", "2-0", "2--17", "2-17-1", "a-b", "10000-1", "2 -17"] {
            assert_eq!(bad.parse::<Ibk>(), Err(IdError::Ibk), "{bad:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ibk_display_parse(b in 1u32..=BANK_ID_MAX, a in 1u64..=ACCOUNT_ID_MAX) {
            let ibk = Ibk::new(BankId::new(b).unwrap(), AccountId::new(a).unwrap());
            proptest::prop_assert_eq!(ibk.to_string().parse::<Ibk>(), Ok(ibk));
        }

        #[test]
        fn ibk_parse_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<Ibk>();
        }
    }
}
