//! The emulator's clock: real time plus an offset that tests can advance.
//!
//! Every time-dependent rule (token expiry, rate-limit windows, guest session
//! expiry, guest JWT expiry) reads this clock, so a test can jump a minute
//! forward with [`crate::Control::advance_clock`] instead of sleeping.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Monotonic and wall time, both shifted by the same advanceable offset.
#[derive(Debug, Default)]
pub(crate) struct Clock {
    offset_ms: AtomicU64,
}

impl Clock {
    /// The current monotonic instant, offset included.
    pub(crate) fn now(&self) -> Instant {
        Instant::now() + self.offset()
    }

    /// The current wall-clock time, offset included.
    pub(crate) fn system_now(&self) -> SystemTime {
        SystemTime::now() + self.offset()
    }

    /// How far the clock has been advanced.
    pub(crate) fn offset(&self) -> Duration {
        Duration::from_millis(self.offset_ms.load(Ordering::SeqCst))
    }

    /// Moves the clock forward by `by` (never backwards).
    pub(crate) fn advance(&self, by: Duration) -> Duration {
        let add = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        let prev = self
            .offset_ms
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| {
                Some(v.saturating_add(add))
            })
            .unwrap_or_else(|v| v);
        Duration::from_millis(prev.saturating_add(add))
    }
}

/// Whole seconds since the Unix epoch.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Formats `t` as ISO-8601 UTC with milliseconds: `2024-05-01T12:00:00.123Z`.
pub(crate) fn iso8601(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let millis = d.subsec_millis();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// Whether `s` looks like an ISO-8601 date-time with a zone:
/// `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`.
pub(crate) fn is_iso8601(s: &str) -> bool {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .is_some_and(|x| x.len() == r.len() && x.iter().all(u8::is_ascii_digit))
    };
    if !(digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && matches!(b.get(10), Some(b'T' | b't'))
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19))
    {
        return false;
    }
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return false;
        }
    }
    match b.get(i) {
        Some(b'Z' | b'z') => i + 1 == b.len(),
        Some(b'+' | b'-') => {
            digits(i + 1..i + 3)
                && b.get(i + 3) == Some(&b':')
                && digits(i + 4..i + 6)
                && i + 6 == b.len()
        }
        _ => false,
    }
}

/// Re-formats an ISO-8601 date-time with a zone (see [`is_iso8601`]) the way
/// the service writes times: UTC, milliseconds, `Z`
/// (`2024-05-01T10:00:00.500+02:00` → `2024-05-01T08:00:00.500Z`). `None`
/// when `s` is not such a date-time or the date does not exist.
pub(crate) fn normalize_iso8601(s: &str) -> Option<String> {
    if !is_iso8601(s) {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r).and_then(|x| x.parse::<i64>().ok());
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    let max_day = *month_days.get(usize::try_from(mo - 1).ok()?)?;
    if !(1..=max_day).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let (fraction, zone) = match rest.strip_prefix('.') {
        Some(r) => {
            let digits = r.bytes().take_while(u8::is_ascii_digit).count();
            (&r[..digits], &r[digits..])
        }
        None => ("", rest),
    };
    let millis: i64 = format!("{fraction:0<3}").get(..3)?.parse().ok()?;
    let offset_secs = match zone.as_bytes().first() {
        Some(b'+' | b'-') => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let oh: i64 = zone.get(1..3)?.parse().ok()?;
            let om: i64 = zone.get(4..6)?.parse().ok()?;
            sign * (oh * 3600 + om * 60)
        }
        _ => 0,
    };
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset_secs;
    let ms = u64::try_from(secs * 1000 + millis).ok()?;
    Some(iso8601(UNIX_EPOCH + Duration::from_millis(ms)))
}

/// (year, month, day) to days since 1970-01-01, proleptic Gregorian (the
/// inverse of [`civil_from_days`]).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_to_the_service_format() {
        assert_eq!(
            normalize_iso8601("2024-05-01T12:00:00Z").as_deref(),
            Some("2024-05-01T12:00:00.000Z")
        );
        assert_eq!(
            normalize_iso8601("2024-05-01T10:00:00.5+02:00").as_deref(),
            Some("2024-05-01T08:00:00.500Z")
        );
        assert_eq!(
            normalize_iso8601("2024-03-01T00:30:00.123456-01:00").as_deref(),
            Some("2024-03-01T01:30:00.123Z")
        );
        assert_eq!(
            normalize_iso8601("2000-02-29T00:00:00.123Z").as_deref(),
            Some("2000-02-29T00:00:00.123Z")
        );
        assert_eq!(normalize_iso8601("2023-02-29T00:00:00Z"), None);
        assert_eq!(normalize_iso8601("2024-05-01T12:00:00"), None);
    }

    #[test]
    fn formats_epoch_and_leap_day() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(951_782_400_123); // 2000-02-29
        assert_eq!(iso8601(t), "2000-02-29T00:00:00.123Z");
    }

    #[test]
    fn recognises_iso8601() {
        assert!(is_iso8601("2024-05-01T12:00:00Z"));
        assert!(is_iso8601("2024-05-01T12:00:00.5+02:00"));
        assert!(!is_iso8601("2024-05-01 12:00:00Z"));
        assert!(!is_iso8601("2024-05-01T12:00:00"));
        assert!(!is_iso8601("yesterday"));
    }

    #[test]
    fn advance_moves_forward() {
        let c = Clock::default();
        let a = c.now();
        c.advance(Duration::from_secs(60));
        assert!(c.now() >= a + Duration::from_secs(60));
    }
}
