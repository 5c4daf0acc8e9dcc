//! `Retry-After` and the Genesys `inin-ratelimit-*` headers.
//!
//! `Retry-After` is either delta-seconds or an HTTP-date (RFC 9110 §10.2.3),
//! and an HTTP-date may come in any of the three forms of RFC 9110 §5.6.7:
//! IMF-fixdate, the obsolete RFC 850 form, and asctime. A server can also
//! send nonsense; every such case gets a fallback and a reason, never a
//! panic and never an unbounded wait.

use crate::clock::Millis;
use alloc::{string::String, vec::Vec};

/// Why a `Retry-After` value was not taken as it stood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryAfterNote {
    /// Neither delta-seconds nor an HTTP-date.
    Unparseable(String),
    /// A negative number of seconds.
    Negative,
    /// A date in the past (treated as "now").
    InThePast,
    /// Longer than the cap; the cap was used instead.
    Capped {
        /// What the server asked for, in milliseconds.
        asked_ms: u64,
    },
}

impl RetryAfterNote {
    /// The note as text, without `core::fmt` (it goes into the error of
    /// every message a `429` paused).
    pub fn text(&self) -> String {
        match self {
            Self::Unparseable(v) => {
                let mut out = String::from("unparseable Retry-After `");
                out.push_str(v);
                out.push('`');
                out
            }
            Self::Negative => String::from("negative Retry-After"),
            Self::InThePast => String::from("Retry-After date in the past"),
            Self::Capped { asked_ms } => {
                let mut out = String::from("Retry-After of ");
                crate::json::push_u64(&mut out, asked_ms / 1000);
                out.push_str(" s capped");
                out
            }
        }
    }
}

impl core::fmt::Display for RetryAfterNote {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

/// A parsed `Retry-After`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryAfter {
    /// How long to wait, in milliseconds (after fallback and cap).
    pub delay_ms: u64,
    /// Set when the value was not used as it stood.
    pub note: Option<RetryAfterNote>,
}

/// Parses a `Retry-After` value received at `now`. `fallback_ms` is used
/// for values that cannot be read; `cap_ms` bounds the result.
pub fn parse_retry_after(value: &str, now: Millis, fallback_ms: u64, cap_ms: u64) -> RetryAfter {
    let v = value.trim();
    let (delay_ms, mut note) = if let Some(ms) = parse_delta_seconds(v) {
        (ms, None)
    } else if v.starts_with('-') && v[1..].bytes().all(|b| b.is_ascii_digit()) && v.len() > 1 {
        (fallback_ms, Some(RetryAfterNote::Negative))
    } else if let Some(at) = parse_http_date(v) {
        match at.checked_sub(now) {
            Some(d) if d > 0 => (d, None),
            _ => (0, Some(RetryAfterNote::InThePast)),
        }
    } else {
        let shown: String = v.chars().take(64).collect();
        (fallback_ms, Some(RetryAfterNote::Unparseable(shown)))
    };
    let delay_ms = if delay_ms > cap_ms {
        note = Some(RetryAfterNote::Capped { asked_ms: delay_ms });
        cap_ms
    } else {
        delay_ms
    };
    RetryAfter { delay_ms, note }
}

/// Delta-seconds: one or more digits (RFC 9110 allows nothing else). Huge
/// values saturate rather than overflow.
fn parse_delta_seconds(v: &str) -> Option<u64> {
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs = v.parse::<u64>().unwrap_or(u64::MAX);
    Some(secs.saturating_mul(1000))
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];
const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
const LONG_DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Parses an HTTP-date in any of its three forms to milliseconds since the
/// Unix epoch.
pub fn parse_http_date(v: &str) -> Option<Millis> {
    parse_imf_fixdate(v)
        .or_else(|| parse_rfc850(v))
        .or_else(|| parse_asctime(v))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(v: &str) -> Option<Millis> {
    let (day, rest) = v.split_once(", ")?;
    if !DAYS.contains(&day) {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    let [d, mon, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    if d.len() != 2 || year.len() != 4 {
        return None;
    }
    to_millis(year.parse().ok()?, month(mon)?, d.parse().ok()?, time)
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`; a two-digit year more than 50 years in
/// the future is read as the previous century (RFC 9110 §5.6.7), relative
/// to the year 2000 epoch this engine assumes for "now" (years 00–49 →
/// 20xx, 50–99 → 19xx).
fn parse_rfc850(v: &str) -> Option<Millis> {
    let (day, rest) = v.split_once(", ")?;
    if !LONG_DAYS.contains(&day) {
        return None;
    }
    let parts: Vec<&str> = rest.split(' ').collect();
    let [date, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let dparts: Vec<&str> = date.split('-').collect();
    let [d, mon, yy] = dparts.as_slice() else {
        return None;
    };
    if d.len() != 2 || yy.len() != 2 {
        return None;
    }
    let yy: i64 = yy.parse().ok()?;
    let year = if yy < 50 { 2000 + yy } else { 1900 + yy };
    to_millis(year, month(mon)?, d.parse().ok()?, time)
}

/// `Sun Nov  6 08:49:37 1994`
fn parse_asctime(v: &str) -> Option<Millis> {
    let day = v.get(..3)?;
    if !DAYS.contains(&day) || v.len() != 24 {
        return None;
    }
    let mon = v.get(4..7)?;
    let d = v.get(8..10)?.trim_start();
    let time = v.get(11..19)?;
    let year = v.get(20..24)?;
    if v.get(3..4)? != " " || v.get(7..8)? != " " || v.get(10..11)? != " " || v.get(19..20)? != " "
    {
        return None;
    }
    to_millis(year.parse().ok()?, month(mon)?, d.parse().ok()?, time)
}

fn month(m: &str) -> Option<u32> {
    MONTHS.iter().position(|x| *x == m).map(|i| i as u32 + 1)
}

fn to_millis(year: i64, month: u32, day: u32, time: &str) -> Option<Millis> {
    let t: Vec<&str> = time.split(':').collect();
    let [h, m, s] = t.as_slice() else {
        return None;
    };
    if h.len() != 2 || m.len() != 2 || s.len() != 2 {
        return None;
    }
    let (h, m, s): (u64, u64, u64) = (h.parse().ok()?, m.parse().ok()?, s.parse().ok()?);
    if h > 23 || m > 59 || s > 60 || !(1..=days_in_month(year, month)).contains(&day) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    if days < 0 {
        return None;
    }
    Some(((days as u64 * 86_400) + h * 3600 + m * 60 + s) * 1000)
}

fn days_in_month(year: i64, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// algorithm).
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// What the `inin-ratelimit-*` headers said.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RateLimitInfo {
    /// `inin-ratelimit-count`: requests used in the current window.
    pub count: Option<u64>,
    /// `inin-ratelimit-allowed`: requests allowed per window.
    pub allowed: Option<u64>,
    /// `inin-ratelimit-reset`: seconds until the window resets.
    pub reset_secs: Option<u64>,
}

impl RateLimitInfo {
    /// Reads the three headers from `(name, value)` pairs (names compared
    /// case-insensitively; bad numbers ignored).
    pub fn from_headers<'a, I>(headers: I) -> Self
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        let mut info = Self::default();
        for (name, value) in headers {
            let number = value.trim().parse::<u64>().ok();
            if name.eq_ignore_ascii_case("inin-ratelimit-count") {
                info.count = number;
            } else if name.eq_ignore_ascii_case("inin-ratelimit-allowed") {
                info.allowed = number.filter(|n| *n > 0);
            } else if name.eq_ignore_ascii_case("inin-ratelimit-reset") {
                info.reset_secs = number;
            }
        }
        info
    }

    /// Whether any of the headers was present.
    pub fn is_present(&self) -> bool {
        self.count.is_some() || self.allowed.is_some() || self.reset_secs.is_some()
    }

    /// Whether the window has at most `margin` requests left (both
    /// `count` and `allowed` known).
    pub fn nearly_spent(&self, margin: u64) -> bool {
        matches!((self.count, self.allowed), (Some(c), Some(a)) if a.saturating_sub(c) <= margin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    const NOW: Millis = 784_111_777_000 - 10_000; // 10 s before 1994-11-06 08:49:37 GMT
    const CAP: u64 = 3_600_000;

    fn parse(v: &str) -> RetryAfter {
        parse_retry_after(v, NOW, 5_000, CAP)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(
            parse("0"),
            RetryAfter {
                delay_ms: 0,
                note: None
            }
        );
        assert_eq!(
            parse("120"),
            RetryAfter {
                delay_ms: 120_000,
                note: None
            }
        );
        assert_eq!(parse(" 7 ").delay_ms, 7_000);
    }

    #[test]
    fn all_three_date_forms() {
        for v in [
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ] {
            assert_eq!(
                parse(v),
                RetryAfter {
                    delay_ms: 10_000,
                    note: None
                },
                "{v}"
            );
        }
    }

    #[test]
    fn dates_in_the_past_mean_now() {
        let r = parse("Sat, 05 Nov 1994 08:49:37 GMT");
        assert_eq!(r.delay_ms, 0);
        assert_eq!(r.note, Some(RetryAfterNote::InThePast));
    }

    #[test]
    fn garbage_and_negative_fall_back_with_a_reason() {
        for v in [
            "",
            "soon",
            "1.5",
            "12abc",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:00:00 GMT",
            "Mon, 29 Feb 1993 00:00:00 GMT",
        ] {
            let r = parse(v);
            assert_eq!(r.delay_ms, 5_000, "{v}");
            assert!(
                matches!(r.note, Some(RetryAfterNote::Unparseable(_))),
                "{v}"
            );
        }
        let r = parse("-3");
        assert_eq!(
            (r.delay_ms, r.note),
            (5_000, Some(RetryAfterNote::Negative))
        );
    }

    #[test]
    fn absurd_values_are_capped_and_reported() {
        let r = parse("86400");
        assert_eq!(r.delay_ms, CAP);
        assert_eq!(
            r.note,
            Some(RetryAfterNote::Capped {
                asked_ms: 86_400_000
            })
        );
        let r = parse("99999999999999999999999");
        assert_eq!(r.delay_ms, CAP);
        assert!(matches!(r.note, Some(RetryAfterNote::Capped { .. })));
        let r = parse("Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(r.delay_ms, CAP);
    }

    #[test]
    fn leap_days_and_known_epochs() {
        assert_eq!(parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951_782_400_000)
        );
        assert_eq!(parse_http_date("Sat, 29 Feb 1900 00:00:00 GMT"), None);
    }

    #[test]
    fn ratelimit_headers() {
        let h = [
            ("ININ-RateLimit-Count", "42"),
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-reset", "17"),
            ("other", "1"),
        ];
        assert_eq!(
            RateLimitInfo::from_headers(h),
            RateLimitInfo {
                count: Some(42),
                allowed: Some(300),
                reset_secs: Some(17)
            }
        );
        let none = RateLimitInfo::from_headers([("inin-ratelimit-allowed", "x")]);
        assert!(!none.is_present());
    }
}
