//! Text forms Vault uses on the wire and in logs: base64 with Go's error wording,
//! lower-case hex, Go-style durations (`90s`, `1h30m`) and RFC 3339 times.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

/// Decodes standard base64 with Go's error wording.
pub(crate) fn decode_base64(s: &str) -> Result<Vec<u8>, String> {
    BASE64.decode(s).map_err(|e| match e {
        base64::DecodeError::InvalidByte(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        base64::DecodeError::InvalidLastSymbol(offset, _) => {
            format!("illegal base64 data at input byte {offset}")
        }
        _ => format!("illegal base64 data at input byte {}", s.len() / 4 * 4),
    })
}

/// Appends `bytes` as lowercase hex.
pub(crate) fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    out.reserve(2 * bytes.len());
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
}

/// `bytes` as lowercase hex.
pub(crate) fn encode_hex(bytes: &[u8]) -> String {
    let mut out = String::new();
    push_hex(&mut out, bytes);
    out
}

/// Bytes from lowercase or uppercase hex; `None` unless every character is a
/// hex digit and there is an even number of them.
pub(crate) fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

/// Standard base64 with padding.
pub(crate) fn encode_base64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// The longest duration Vault reads: Go's `time.Duration` counts nanoseconds in
/// an `i64`, so anything past about 292 years (2562047h47m16s) is an invalid
/// duration there, and is here.
pub(crate) const MAX_DURATION_SECONDS: u64 = (i64::MAX / 1_000_000_000).unsigned_abs();

/// `"1h30m"`, `"90s"`, `"2h"`, or plain seconds `"3600"`; `None` past
/// [`MAX_DURATION_SECONDS`].
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    parse_any_duration(s).filter(|d| d.as_secs() <= MAX_DURATION_SECONDS)
}

fn parse_any_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    if s.is_empty() {
        return Some(Duration::ZERO);
    }
    if let Ok(secs) = s.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: u64 = number.parse().ok()?;
        number.clear();
        let unit = match c {
            'h' => 3600,
            'm' if chars.peek() == Some(&'s') => {
                chars.next();
                0 // milliseconds: below Vault's resolution for these fields
            }
            'm' => 60,
            's' => 1,
            'd' => 86_400,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    number.is_empty().then_some(Duration::from_secs(total))
}

/// A duration as Vault's warnings print it: `"767h59m59s"`, `"2h"`, `"90s"` → `"1m30s"`.
pub(crate) fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    for (value, unit) in [(h, 'h'), (m, 'm'), (s, 's')] {
        if value != 0 {
            out.push_str(&value.to_string());
            out.push(unit);
        }
    }
    if out.is_empty() { "0s".to_owned() } else { out }
}

/// Whole seconds since the Unix epoch (0 before it).
pub(crate) fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// `2026-11-23T12:00:00Z`: the form Vault uses for token times.
pub(crate) fn format_rfc3339(t: SystemTime) -> String {
    let secs = unix_seconds(t);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = i64::try_from(days).unwrap_or(0) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// `2026-11-23T12:00:00.123456789Z`: RFC 3339 with the nanoseconds Go's
/// `RFC3339Nano` prints (trailing zeros dropped, none at all on a whole second).
pub(crate) fn format_rfc3339_nanos(t: SystemTime) -> String {
    let whole = format_rfc3339(t);
    let nanos = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    if nanos == 0 {
        return whole;
    }
    let fraction = format!("{nanos:09}");
    format!("{}.{}Z", whole.trim_end_matches('Z'), fraction.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("24h"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_duration("1x"), None);
        assert_eq!(parse_duration("h"), None);
        assert_eq!(parse_duration("10"), Some(Duration::from_secs(10)));
        assert_eq!(format_duration(Duration::from_secs(2000 * 3600)), "2000h");
        assert_eq!(format_duration(Duration::from_secs(768 * 3600 - 1)), "767h59m59s");
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_duration(Duration::ZERO), "0s");
    }

    #[test]
    fn rfc3339_with_nanoseconds_as_go_prints_them() {
        let t = UNIX_EPOCH + Duration::new(1_795_439_529, 120_000_000);
        assert_eq!(format_rfc3339_nanos(t), "2026-11-23T13:12:09.12Z");
        assert_eq!(
            format_rfc3339_nanos(UNIX_EPOCH + Duration::new(5, 7)),
            "1970-01-01T00:00:05.000000007Z"
        );
        assert_eq!(format_rfc3339_nanos(UNIX_EPOCH), "1970-01-01T00:00:00Z");
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(format_rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_rfc3339(UNIX_EPOCH + Duration::from_secs(1_795_439_529)),
            "2026-11-23T13:12:09Z"
        );
    }

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(encode_hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(encode_hex(&[]), "");
    }

    #[test]
    fn base64_errors_use_gos_wording() {
        assert_eq!(
            decode_base64("ab*d").err().as_deref(),
            Some("illegal base64 data at input byte 2")
        );
        assert!(decode_base64("aGVsbG8=").is_ok());
    }
}
