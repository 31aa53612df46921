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

/// A CPF or CNPJ field as it is typed: each comma-separated document's digits grouped as
/// Brazilians write them ("529.982.247-25", "11.222.333/0001-81"), progressively. A part with
/// anything but digits and the usual separators is left as typed.
pub fn mask_documents(input: &str) -> String {
    input.split(',').map(|part| mask_document(part.trim())).collect::<Vec<_>>().join(", ")
}

fn mask_document(part: &str) -> String {
    if !part.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | '-' | '/' | ' ')) {
        return part.to_string();
    }
    let digits: Vec<char> = part.chars().filter(char::is_ascii_digit).collect();
    let (groups, seps): (&[usize], &[char]) = match digits.len() {
        0..=11 => (&[3, 3, 3, 2], &['.', '.', '-']),
        12..=14 => (&[2, 3, 3, 4, 2], &['.', '.', '/', '-']),
        _ => return part.to_string(),
    };
    let mut out = String::new();
    let mut rest = digits.as_slice();
    for (i, g) in groups.iter().enumerate() {
        if rest.is_empty() {
            break;
        }
        if i > 0 {
            out.push(seps[i - 1]);
        }
        let (head, tail) = rest.split_at((*g).min(rest.len()));
        out.extend(head);
        rest = tail;
    }
    out
}

/// An RFC 3339 UTC time ("2026-12-01T21:40:23.123Z") as Brazilians read it, in the local time
/// `offset_min` minutes east of UTC: "01/12/2026 18:40". A time it cannot read is shown as sent.
pub fn datetime_br(rfc3339: &str, offset_min: i64) -> String {
    let read = || -> Option<String> {
        let num = |a: usize, b: usize| rfc3339.get(a..b)?.parse::<i64>().ok();
        let (y, mo, d, h, mi) = (num(0, 4)?, num(5, 7)?, num(8, 10)?, num(11, 13)?, num(14, 16)?);
        let minutes = days_from_civil(y, mo, d) * 1440 + h * 60 + mi + offset_min;
        let (y, mo, d) = civil_from_days(minutes.div_euclid(1440));
        let m = minutes.rem_euclid(1440);
        Some(format!("{d:02}/{mo:02}/{y:04} {:02}:{:02}", m / 60, m % 60))
    };
    read().unwrap_or_else(|| rfc3339.to_string())
}

// Howard Hinnant's civil-calendar conversions (days since 1970-01-01, proleptic Gregorian),
// written out because a date crate would add more to the wasm than these twenty lines.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_are_grouped_as_they_are_typed() {
        assert_eq!(mask_documents("529"), "529");
        assert_eq!(mask_documents("5299"), "529.9");
        assert_eq!(mask_documents("52998224725"), "529.982.247-25");
        assert_eq!(mask_documents("529.982.247-25"), "529.982.247-25", "already grouped stays");
        assert_eq!(mask_documents("112223330001"), "11.222.333/0001");
        assert_eq!(mask_documents("11222333000181"), "11.222.333/0001-81");
        assert_eq!(mask_documents("52998224725,11144477735"), "529.982.247-25, 111.444.777-35");
        assert_eq!(mask_documents("abc"), "abc", "not a number: left as typed");
        assert_eq!(mask_documents(""), "");
    }

    #[test]
    fn times_in_brazilian_format_and_local_time() {
        assert_eq!(datetime_br("2026-12-01T21:40:23.123Z", 0), "01/12/2026 21:40");
        assert_eq!(datetime_br("2026-12-01T01:05:00Z", -180), "30/11/2026 22:05", "Brasília is UTC-3");
        assert_eq!(datetime_br("2024-02-28T23:30:00Z", 60), "29/02/2024 00:30", "a leap day");
        assert_eq!(datetime_br("2026-12-31T23:59:00Z", 120), "01/01/2027 01:59");
        assert_eq!(datetime_br("soon", 0), "soon");
    }

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
