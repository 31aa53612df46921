//! Brazilian identity documents: CPF (people, 11 digits) and CNPJ (companies, 14 digits).
//!
//! Input may carry the usual punctuation ("000.000.000-00", "00.000.000/0000-00"); the stored
//! form is digits only. Check digits are validated, and the all-same-digit numbers that pass
//! the check-digit arithmetic but are never issued ("111.111.111-11") are refused.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Longest document text accepted before parsing (punctuated CNPJ is 18 characters).
pub const DOCUMENT_TEXT_LEN_MAX: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    #[error("document must be a CPF (11 digits) or a CNPJ (14 digits)")]
    Length,
    #[error("document may contain only digits and the punctuation . - /")]
    Characters,
    #[error("CPF check digits do not match")]
    CpfCheck,
    #[error("CNPJ check digits do not match")]
    CnpjCheck,
}

impl DocumentError {
    pub fn code(self) -> crate::ErrorCode {
        match self {
            DocumentError::Length | DocumentError::Characters => crate::ErrorCode::DocumentInvalid,
            DocumentError::CpfCheck | DocumentError::CnpjCheck => crate::ErrorCode::DocumentCheckDigits,
        }
    }
}

#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub enum Document {
    /// Cadastro de Pessoas Físicas: 11 digits.
    Cpf(String),
    /// Cadastro Nacional da Pessoa Jurídica: 14 digits.
    Cnpj(String),
}

/// The mod-11 check digit used by both CPF and CNPJ.
fn check_digit(digits: &[u8], weights: &[u32]) -> u8 {
    let sum: u32 = digits.iter().zip(weights).map(|(d, w)| u32::from(*d) * w).sum();
    let r = sum % 11;
    if r < 2 { 0 } else { (11 - r) as u8 }
}

const CPF_W1: [u32; 9] = [10, 9, 8, 7, 6, 5, 4, 3, 2];
const CPF_W2: [u32; 10] = [11, 10, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_W1: [u32; 12] = [5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];
const CNPJ_W2: [u32; 13] = [6, 5, 4, 3, 2, 9, 8, 7, 6, 5, 4, 3, 2];

impl Document {
    pub fn digits(&self) -> &str {
        match self {
            Document::Cpf(d) | Document::Cnpj(d) => d,
        }
    }

    pub fn is_cpf(&self) -> bool {
        matches!(self, Document::Cpf(_))
    }

    /// The usual punctuated form, for people: "123.456.789-09", "12.345.678/0001-95".
    pub fn formatted(&self) -> String {
        match self {
            Document::Cpf(d) => format!("{}.{}.{}-{}", &d[0..3], &d[3..6], &d[6..9], &d[9..11]),
            Document::Cnpj(d) => format!("{}.{}.{}/{}-{}", &d[0..2], &d[2..5], &d[5..8], &d[8..12], &d[12..14]),
        }
    }

    /// Completes 9 (CPF) or 12 (CNPJ) base digits with their check digits. For tests and tools
    /// that need valid documents; returns `None` for any other length or a non-digit.
    pub fn with_check_digits(base: &str) -> Option<Document> {
        let mut d: Vec<u8> = base.bytes().map(|b| b.wrapping_sub(b'0')).collect();
        if d.iter().any(|v| *v > 9) {
            return None;
        }
        let (w1, w2): (&[u32], &[u32]) = match d.len() {
            9 => (&CPF_W1, &CPF_W2),
            12 => (&CNPJ_W1, &CNPJ_W2),
            _ => return None,
        };
        d.push(check_digit(&d, w1));
        d.push(check_digit(&d, w2));
        let text: String = d.iter().map(|v| char::from(b'0' + v)).collect();
        text.parse().ok()
    }
}

impl FromStr for Document {
    type Err = DocumentError;
    fn from_str(s: &str) -> Result<Document, DocumentError> {
        if s.len() > DOCUMENT_TEXT_LEN_MAX {
            return Err(DocumentError::Length);
        }
        let mut digits = Vec::with_capacity(14);
        for b in s.bytes() {
            match b {
                b'0'..=b'9' => digits.push(b - b'0'),
                b'.' | b'-' | b'/' => {}
                _ => return Err(DocumentError::Characters),
            }
        }
        let all_same = digits.windows(2).all(|w| w[0] == w[1]);
        let text: String = digits.iter().map(|v| char::from(b'0' + v)).collect();
        match digits.len() {
            11 => {
                let ok = !all_same
                    && check_digit(&digits[..9], &CPF_W1) == digits[9]
                    && check_digit(&digits[..10], &CPF_W2) == digits[10];
                if ok { Ok(Document::Cpf(text)) } else { Err(DocumentError::CpfCheck) }
            }
            14 => {
                let ok = !all_same
                    && check_digit(&digits[..12], &CNPJ_W1) == digits[12]
                    && check_digit(&digits[..13], &CNPJ_W2) == digits[13];
                if ok { Ok(Document::Cnpj(text)) } else { Err(DocumentError::CnpjCheck) }
            }
            _ => Err(DocumentError::Length),
        }
    }
}

impl fmt::Display for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.digits())
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.digits())
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Document, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_documents_normalise() {
        let cpf: Document = "529.982.247-25".parse().unwrap();
        assert_eq!(cpf, Document::Cpf("52998224725".into()));
        assert_eq!(cpf.formatted(), "529.982.247-25");
        let cnpj: Document = "11.222.333/0001-81".parse().unwrap();
        assert_eq!(cnpj.digits(), "11222333000181");
        assert_eq!(cnpj.formatted(), "11.222.333/0001-81");
        assert_eq!(serde_json::to_string(&cpf).unwrap(), "\"52998224725\"");
    }

    #[test]
    fn invalid_documents_say_why() {
        assert_eq!("529.982.247-24".parse::<Document>(), Err(DocumentError::CpfCheck));
        assert_eq!("111.111.111-11".parse::<Document>(), Err(DocumentError::CpfCheck));
        assert_eq!("000.000.000-00".parse::<Document>(), Err(DocumentError::CpfCheck));
        assert_eq!("11.222.333/0001-80".parse::<Document>(), Err(DocumentError::CnpjCheck));
        assert_eq!("1234".parse::<Document>(), Err(DocumentError::Length));
        assert_eq!("529 982 247 25".parse::<Document>(), Err(DocumentError::Characters));
        assert_eq!("5".repeat(100).parse::<Document>(), Err(DocumentError::Length));
    }

    #[test]
    fn check_digit_completion() {
        assert_eq!(Document::with_check_digits("529982247"), Some(Document::Cpf("52998224725".into())));
        assert_eq!(Document::with_check_digits("112223330001"), Some(Document::Cnpj("11222333000181".into())));
        assert_eq!(Document::with_check_digits("12"), None);
    }

    proptest::proptest! {
        #[test]
        fn completed_cpfs_round_trip(base in "[0-9]{9}") {
            if let Some(doc) = Document::with_check_digits(&base) {
                proptest::prop_assert_eq!(doc.formatted().parse::<Document>(), Ok(doc.clone()));
                proptest::prop_assert_eq!(doc.digits().parse::<Document>(), Ok(doc));
            }
        }

        #[test]
        fn completed_cnpjs_round_trip(base in "[0-9]{12}") {
            if let Some(doc) = Document::with_check_digits(&base) {
                proptest::prop_assert_eq!(doc.formatted().parse::<Document>(), Ok(doc));
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = s.parse::<Document>();
        }
    }
}
