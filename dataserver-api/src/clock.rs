//! Wall-clock time as every process stamps its records: milliseconds since the Unix epoch, and
//! RFC 3339 with milliseconds in UTC (`2026-11-22T07:44:18.196Z`). One definition, so that
//! stamps written by one process parse in every other.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Milliseconds since the Unix epoch.
///
/// A clock before 1970 or past year 584 million is a broken machine, not a value to carry on
/// with: it panics rather than stamp records with 0.
pub fn now_ms() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the system clock is set before 1970");
    u64::try_from(since.as_millis()).expect("the system clock is past what u64 milliseconds hold")
}

/// `at_ms` as RFC 3339 in UTC with milliseconds.
pub fn rfc3339_ms(at_ms: u64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .expect("a u64 of milliseconds is within time's range");
    t.format(&Rfc3339).expect("a UTC time formats as RFC 3339")
}

/// Milliseconds since the epoch of an RFC 3339 timestamp; `None` when it is not one.
pub fn parse_rfc3339_ms(s: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        for ms in [0, 1, 999, 1_764_000_000_123, 4_102_444_800_000] {
            let s = rfc3339_ms(ms);
            assert_eq!(parse_rfc3339_ms(&s), Some(i64::try_from(ms).expect("small")), "{s}");
        }
        assert_eq!(parse_rfc3339_ms("2026-11-22T07:44:18.196Z"), Some(1_795_333_458_196));
        assert_eq!(parse_rfc3339_ms("2026-11-22T07:44:18Z"), Some(1_795_333_458_000));
        assert_eq!(parse_rfc3339_ms("yesterday"), None);
        assert!(now_ms() > 1_700_000_000_000);
    }
}
