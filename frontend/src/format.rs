//! Money as Brazilians read and type it — "R$ 1.234,56" — while the API gets exact decimals.

use shared::Money;

/// "R$ 1.234,56".
pub fn brl(m: Money) -> String {
    let cents = m.cents();
    let (units, frac) = (cents / 100, cents % 100);
    let digits = units.to_string();
    let mut grouped = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push('.');
        }
        grouped.push(c);
    }
    format!("R$ {grouped},{frac:02}")
}

/// Reads what a person typed ("1.234,56", "1234,5", "R$ 10", "0,01") into the decimal the API
/// takes ("1234.56"). Dots are thousands separators, the comma is the decimal mark.
pub fn parse_brl(input: &str) -> Result<String, &'static str> {
    let s = input.trim().trim_start_matches("R$").trim();
    if s.is_empty() {
        return Err("empty");
    }
    let (int, frac) = match s.split_once(',') {
        Some((i, f)) => (i, f),
        None => (s, ""),
    };
    if frac.len() > 2 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("decimals");
    }
    let groups: Vec<&str> = int.split('.').collect();
    let well_grouped = groups.len() == 1 || (groups[0].len() <= 3 && groups[1..].iter().all(|g| g.len() == 3));
    let int: String = groups.concat();
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) || !well_grouped {
        return Err("format");
    }
    let text = if frac.is_empty() { int } else { format!("{int}.{frac}") };
    let m: Money = text.parse().map_err(|_| "range")?;
    if m.is_zero() {
        return Err("zero");
    }
    Ok(m.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> Money {
        s.parse().unwrap_or(Money::ZERO)
    }

    #[test]
    fn shown_in_brazilian_format() {
        assert_eq!(brl(m("0")), "R$ 0,00");
        assert_eq!(brl(m("0.5")), "R$ 0,50");
        assert_eq!(brl(m("1234.56")), "R$ 1.234,56");
        assert_eq!(brl(m("1000000")), "R$ 1.000.000,00");
    }

    #[test]
    fn typed_in_brazilian_format() {
        assert_eq!(parse_brl("1.234,56"), Ok("1234.56".into()));
        assert_eq!(parse_brl("R$ 10"), Ok("10".into()));
        assert_eq!(parse_brl("0,01"), Ok("0.01".into()));
        assert_eq!(parse_brl("1234,5"), Ok("1234.5".into()));
        for bad in ["", "abc", "1,234", "12.34", "1.23,45", "-5", "0", "1,2,3"] {
            assert!(parse_brl(bad).is_err(), "{bad:?} accepted");
        }
    }
}
