//! Pix keys (seed 003): an alias of an account — a CPF, a CNPJ, an e-mail, a phone number or a
//! random UUID — unique across the whole network, and the target of a payment in place of an IBK.
//!
//! Keys are kept in one canonical form (digits only for documents, lower case for e-mails,
//! `+` and digits for phones, lower-case hyphenated UUIDs), so the same key written two ways is
//! the same key everywhere.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Document, Ibk};

/// Longest e-mail key (the Pix rule).
pub const EMAIL_LEN_MAX: usize = 77;
/// Keys per individual account and per legal account (the Pix rule).
pub const KEYS_PER_INDIVIDUAL_MAX: usize = 5;
pub const KEYS_PER_LEGAL_MAX: usize = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum KeyType {
    Cpf,
    Cnpj,
    Email,
    Phone,
    Random,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a valid CPF key")]
    Cpf,
    #[error("not a valid CNPJ key")]
    Cnpj,
    #[error("not a valid e-mail key (at most {EMAIL_LEN_MAX} characters, one @, a dotted domain)")]
    Email,
    #[error("not a valid phone key (+, country code and number: 12 to 15 digits)")]
    Phone,
    #[error("not a valid random key (a UUID)")]
    Random,
    #[error("not a Pix key (CPF, CNPJ, e-mail, +phone or UUID)")]
    Unknown,
}

impl KeyError {
    pub fn code(self) -> crate::ErrorCode {
        crate::ErrorCode::PixKeyInvalid
    }
}

/// A Pix key in canonical form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PixKey {
    kind: KeyType,
    value: String,
}

fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else { return false };
    s.len() <= EMAIL_LEN_MAX
        && !local.is_empty()
        && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._%+-".contains(&b))
        && domain.contains('.')
        && domain
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') && !l.starts_with('-'))
}

impl PixKey {
    /// Parses `s` as a key of the given type.
    pub fn parse_as(kind: KeyType, s: &str) -> Result<PixKey, KeyError> {
        let s = s.trim();
        let value = match kind {
            KeyType::Cpf | KeyType::Cnpj => {
                let d: Document =
                    s.parse().map_err(|_| if kind == KeyType::Cpf { KeyError::Cpf } else { KeyError::Cnpj })?;
                if d.is_cpf() != (kind == KeyType::Cpf) {
                    return Err(if kind == KeyType::Cpf { KeyError::Cpf } else { KeyError::Cnpj });
                }
                d.digits().to_string()
            }
            KeyType::Email => {
                let v = s.to_ascii_lowercase();
                if !is_email(&v) {
                    return Err(KeyError::Email);
                }
                v
            }
            KeyType::Phone => {
                let digits = s.strip_prefix('+').ok_or(KeyError::Phone)?;
                if !(12..=15).contains(&digits.len())
                    || !digits.bytes().all(|b| b.is_ascii_digit())
                    || digits.starts_with('0')
                {
                    return Err(KeyError::Phone);
                }
                s.to_string()
            }
            KeyType::Random => {
                let v = s.to_ascii_lowercase();
                if !is_uuid(&v) {
                    return Err(KeyError::Random);
                }
                v
            }
        };
        Ok(PixKey { kind, value })
    }

    /// Infers the type from the text: `@` → e-mail, leading `+` → phone, a UUID → random,
    /// otherwise a CPF or CNPJ.
    pub fn infer(s: &str) -> Result<PixKey, KeyError> {
        let t = s.trim();
        if t.contains('@') {
            PixKey::parse_as(KeyType::Email, t)
        } else if t.starts_with('+') {
            PixKey::parse_as(KeyType::Phone, t)
        } else if t.len() == 36 && t.matches('-').count() == 4 {
            PixKey::parse_as(KeyType::Random, t)
        } else {
            match t.parse::<Document>() {
                Ok(d) if d.is_cpf() => PixKey::parse_as(KeyType::Cpf, t),
                Ok(_) => PixKey::parse_as(KeyType::Cnpj, t),
                Err(_) => Err(KeyError::Unknown),
            }
        }
    }

    pub fn kind(&self) -> KeyType {
        self.kind
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// The key as one percent-encoded URL path segment (e-mails hold `@`, phones `+`).
    pub fn path_segment(&self) -> String {
        self.value
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    }
}

impl FromStr for PixKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<PixKey, KeyError> {
        PixKey::infer(s)
    }
}

impl fmt::Display for PixKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.value)
    }
}

impl Serialize for PixKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.value)
    }
}

impl<'de> Deserialize<'de> for PixKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<PixKey, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a payment goes: an account by IBK, or a Pix key resolved when the package is accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Ibk(Ibk),
    Key(PixKey),
}

impl FromStr for Target {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Target, KeyError> {
        // An IBK is "bank-account" in digits; no key has that shape (a UUID has four hyphens,
        // a formatted CPF has dots), so the order of the attempts cannot change the meaning.
        match s.parse::<Ibk>() {
            Ok(i) => Ok(Target::Ibk(i)),
            Err(_) => PixKey::infer(s).map(Target::Key),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ibk(i) => i.fmt(f),
            Target::Key(k) => k.fmt(f),
        }
    }
}

impl Serialize for Target {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Target {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Target, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| serde::de::Error::custom(format!("{s:?} is neither an IBK (bank-account) nor a Pix key")))
    }
}

/// A holder's name as shown to a payer before paying: the first name whole, then initials
/// ("Maria da Silva" → "Maria d* S****"), enough to recognise, not enough to harvest.
pub fn mask_name(name: &str) -> String {
    let mut out = Vec::new();
    for (i, w) in name.split_whitespace().enumerate() {
        if i == 0 {
            out.push(w.to_string());
        } else {
            let mut chars = w.chars();
            let first = chars.next().map(String::from).unwrap_or_default();
            out.push(format!("{first}{}", "*".repeat(chars.count())));
        }
    }
    out.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_parse_to_canonical_form() {
        assert_eq!(PixKey::infer("Maria@Example.COM").unwrap().as_str(), "maria@example.com");
        assert_eq!(PixKey::infer("+5561999998888").unwrap().kind(), KeyType::Phone);
        let cpf = Document::with_check_digits("123456789").unwrap();
        assert_eq!(PixKey::infer(&cpf.formatted()).unwrap().as_str(), cpf.digits());
        assert_eq!(PixKey::infer(&cpf.formatted()).unwrap().kind(), KeyType::Cpf);
        let cnpj = Document::with_check_digits("112223330001").unwrap();
        assert_eq!(PixKey::infer(cnpj.digits()).unwrap().kind(), KeyType::Cnpj);
        let uuid = "123E4567-E89B-42D3-A456-426614174000";
        assert_eq!(PixKey::infer(uuid).unwrap().as_str(), uuid.to_ascii_lowercase());
    }

    #[test]
    fn bad_keys_are_refused_with_their_reason() {
        for bad in ["", "a@b", "@x.com", "x@.com", "x@-a.com", "+55", "+0123456789012", "5561999998888", "12345678900"]
        {
            assert!(PixKey::infer(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            PixKey::parse_as(KeyType::Cnpj, Document::with_check_digits("123456789").unwrap().digits()),
            Err(KeyError::Cnpj)
        );
        let long = format!("{}@example.com", "a".repeat(70));
        assert_eq!(PixKey::parse_as(KeyType::Email, &long), Err(KeyError::Email));
    }

    #[test]
    fn keys_become_one_path_segment() {
        assert_eq!(PixKey::infer("a.b+c@x.com").unwrap().path_segment(), "a.b%2Bc%40x.com");
        assert_eq!(PixKey::infer("+5561999998888").unwrap().path_segment(), "%2B5561999998888");
    }

    #[test]
    fn targets_are_ibks_or_keys() {
        assert!(matches!("1-42".parse::<Target>(), Ok(Target::Ibk(_))));
        assert!(matches!("ana@bank.com".parse::<Target>(), Ok(Target::Key(_))));
        assert!("1-".parse::<Target>().is_err());
    }

    #[test]
    fn names_are_masked() {
        assert_eq!(mask_name("Maria da Silva"), "Maria d* S****");
        assert_eq!(mask_name("  Ana  "), "Ana");
        assert_eq!(mask_name("José Ávila"), "José Á****");
    }

    proptest! {
        #[test]
        fn canonical_keys_round_trip(local in "[a-z0-9._]{1,20}", domain in "[a-z0-9]{1,10}\\.(com|br|org)",
                                     phone in "\\+[1-9][0-9]{11,14}", uuid in "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}") {
            for text in [format!("{local}@{domain}"), phone, uuid] {
                let k = PixKey::infer(&text).unwrap();
                prop_assert_eq!(PixKey::parse_as(k.kind(), k.as_str()).unwrap(), k.clone());
                let t: Target = k.as_str().parse().unwrap();
                prop_assert_eq!(t, Target::Key(k));
            }
        }

        #[test]
        fn documents_are_keys_of_their_kind(base in "[0-9]{9}|[0-9]{12}") {
            let d = Document::with_check_digits(&base).unwrap();
            let k = PixKey::infer(&d.formatted()).unwrap();
            prop_assert_eq!(k.as_str(), d.digits());
            prop_assert_eq!(k.kind() == KeyType::Cpf, d.is_cpf());
        }

        #[test]
        fn masking_keeps_the_shape(name in "[A-Za-z]{1,8}( [A-Za-z]{1,8}){0,3}") {
            let m = mask_name(&name);
            prop_assert_eq!(m.len(), name.len());
            prop_assert_eq!(m.split(' ').next(), name.split(' ').next());
        }
    }
}
