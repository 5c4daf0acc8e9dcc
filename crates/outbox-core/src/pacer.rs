//! Pacing per origin: a token bucket that keeps replay under the rate
//! limit, and the pause a `429` imposes.
//!
//! Genesys limits are per token, usually 300 requests a minute; a page is
//! not the only user of its token, so the default is a safe share of that.
//! The state is persisted with the queue (see [`ScheduleState::encode`]) so
//! that a restarted worker neither forgets a pause nor gets a fresh burst.
//! Each origin also carries its herd-safety throttle ([`crate::throttle`]):
//! a send needs both the pacer's token and the throttle's.

use crate::clock::Millis;
use crate::hold::Holds;
use crate::json;
use crate::retry_after::RateLimitInfo;
use crate::throttle::{Limit, Signal, Throttle, ThrottleConfig};
use alloc::{borrow::ToOwned, string::String, vec::Vec};

/// Pacing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Sustained requests per minute per origin (default 150: half of
    /// Genesys's 300 per token, leaving room for the rest of the app).
    pub rate_per_minute: u32,
    /// Requests that may go at once after a quiet spell (default 10).
    pub burst: u32,
    /// The adaptive throttle and the recovery spread.
    pub throttle: ThrottleConfig,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            rate_per_minute: 150,
            burst: 10,
            throttle: ThrottleConfig::default(),
        }
    }
}

/// Bucket credit per token: with this unit, a bucket refilling at `r`
/// requests a minute gains exactly `r` credit per millisecond, so pacing
/// needs no floating point.
pub const CREDIT_PER_TOKEN: u64 = 60_000;

impl PacerConfig {
    fn capacity(&self) -> u64 {
        u64::from(self.burst.max(1)) * CREDIT_PER_TOKEN
    }

    /// Credit gained per millisecond (the rate per minute, at least 1).
    fn rate(&self) -> u64 {
        u64::from(self.rate_per_minute.max(1))
    }

    /// The rate in the throttle's unit (milli-requests a minute).
    fn throttle_ceiling(&self) -> u64 {
        self.rate() * 1000
    }
}

/// One origin's pacing state.
#[derive(Debug, Clone, PartialEq)]
pub struct OriginPace {
    /// What the bucket holds, in [`CREDIT_PER_TOKEN`] units per token.
    pub credit: u64,
    /// When `tokens` was last brought up to date.
    pub updated_at: Millis,
    /// Nothing is sent before this time (a `429`, or a spent server window).
    pub paused_until: Millis,
    /// The herd-safety throttle.
    pub throttle: Throttle,
}

/// Pacing state of every origin, persisted with the queue.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScheduleState {
    /// Per-origin state, in no particular order (an app talks to a
    /// handful of origins; a list is smaller in the worker than a map).
    pub origins: Vec<(String, OriginPace)>,
    /// Lanes held by a dead letter ([`crate::hold`]): persisted here so that
    /// a hold is placed in the very transaction that buries the head.
    pub holds: Holds,
}

impl ScheduleState {
    fn origin(&mut self, origin: &str, config: &PacerConfig, now: Millis) -> &mut OriginPace {
        let i = match self.origins.iter().position(|(o, _)| o == origin) {
            Some(i) => i,
            None => {
                self.origins.push((
                    origin.to_owned(),
                    OriginPace {
                        credit: config.capacity(),
                        updated_at: now,
                        paused_until: 0,
                        throttle: Throttle::default(),
                    },
                ));
                self.origins.len() - 1
            }
        };
        let pace = &mut self.origins[i].1;
        if now > pace.updated_at {
            let gained = (now - pace.updated_at).saturating_mul(config.rate());
            pace.credit = pace.credit.saturating_add(gained);
            pace.updated_at = now;
        }
        pace.credit = pace.credit.min(config.capacity());
        pace
    }

    /// The origin's state, if it has any.
    pub fn get(&self, origin: &str) -> Option<&OriginPace> {
        self.origins
            .iter()
            .find(|(o, _)| o == origin)
            .map(|(_, p)| p)
    }

    /// When the origin's pause ends, if it is paused at `now`.
    pub fn paused_until(&self, origin: &str, now: Millis) -> Option<Millis> {
        self.get(origin)
            .map(|p| p.paused_until)
            .filter(|until| *until > now)
    }

    /// Takes one send from the origin's bucket. `Err(t)` when the origin is
    /// paused or the bucket is empty: `t` is when to look again.
    pub fn try_take(
        &mut self,
        origin: &str,
        config: &PacerConfig,
        now: Millis,
    ) -> Result<(), Millis> {
        let pace = self.origin(origin, config, now);
        if pace.paused_until > now {
            return Err(pace.paused_until);
        }
        if pace.credit < CREDIT_PER_TOKEN {
            let missing = CREDIT_PER_TOKEN - pace.credit;
            let wait = missing.div_ceil(config.rate());
            return Err(now + wait.max(1));
        }
        pace.throttle
            .check(&config.throttle, config.throttle_ceiling(), now)?;
        pace.throttle.take(&config.throttle, now);
        pace.credit -= CREDIT_PER_TOKEN;
        Ok(())
    }

    /// A live attempt (the service worker's first try of an intercepted
    /// request) asks the origin's throttle for a request: its probe while
    /// the origin gives no answer, or one of its reduced rate. The pacer's
    /// own bucket is the flush's and is not taken. `Err(t)`: nothing to
    /// give before `t`.
    pub fn take_throttle(
        &mut self,
        origin: &str,
        config: &PacerConfig,
        now: Millis,
    ) -> Result<(), Millis> {
        let ceiling = config.throttle_ceiling();
        let pace = self.origin(origin, config, now);
        pace.throttle.check(&config.throttle, ceiling, now)?;
        pace.throttle.take(&config.throttle, now);
        Ok(())
    }

    /// Whether an answer from the origin could change its throttle at
    /// `now` ([`Throttle::watches`]).
    pub fn throttle_watches(&self, origin: &str, config: &PacerConfig, now: Millis) -> bool {
        self.get(origin)
            .is_some_and(|p| p.throttle.watches(&config.throttle, now))
    }

    /// Tells the origin's throttle what an attempt's answer (or its
    /// absence) said ([`Throttle::observe`]). `phase` is a random number.
    pub fn answered(
        &mut self,
        origin: &str,
        signal: Signal,
        config: &PacerConfig,
        now: Millis,
        phase: u64,
    ) {
        let ceiling = config.throttle_ceiling();
        let pace = self.origin(origin, config, now);
        pace.throttle
            .observe(&config.throttle, signal, ceiling, now, phase);
    }

    /// How many requests the origin's throttle lets go at `now`; `None`
    /// when it does not limit.
    pub fn allowance(&self, origin: &str, config: &PacerConfig, now: Millis) -> Option<u64> {
        self.get(origin).and_then(|p| {
            p.throttle
                .allowance(&config.throttle, config.throttle_ceiling(), now)
        })
    }

    /// The origins whose throttle limits them
    /// ([`Throttle::limits`](crate::throttle::Throttle::limits)).
    pub fn throttled(&self, config: &PacerConfig) -> Vec<String> {
        self.origins
            .iter()
            .filter(|(_, pace)| pace.throttle.limits(&config.throttle))
            .map(|(origin, _)| origin.clone())
            .collect()
    }

    /// How and why each origin's throttle limits it ([`Throttle::view`]),
    /// for those it does.
    pub fn throttle_views(&self) -> Vec<(String, Limit)> {
        self.origins
            .iter()
            .filter_map(|(origin, pace)| Some((origin.clone(), pace.throttle.view()?)))
            .collect()
    }

    /// How the origin's throttle limits it, if it does.
    pub fn throttle_view(&self, origin: &str) -> Option<Limit> {
        self.get(origin)?.throttle.view()
    }

    /// Pauses the origin until `until` (a later pause wins).
    pub fn pause(&mut self, origin: &str, until: Millis, config: &PacerConfig, now: Millis) {
        let pace = self.origin(origin, config, now);
        pace.paused_until = pace.paused_until.max(until);
    }

    /// Adjusts to what the server's `inin-ratelimit-*` headers said: the
    /// bucket never holds more than the requests left in the server's
    /// window, and a spent window pauses the origin until it resets. (The
    /// sustained rate is not derived from `allowed`: the window's length is
    /// not announced, and the window check alone keeps within any length.)
    /// Returns the pause end when it paused.
    pub fn observe(
        &mut self,
        origin: &str,
        info: &RateLimitInfo,
        config: &PacerConfig,
        now: Millis,
    ) -> Option<Millis> {
        if !info.is_present() {
            return None;
        }
        let pace = self.origin(origin, config, now);
        if let (Some(count), Some(allowed)) = (info.count, info.allowed) {
            let left = allowed.saturating_sub(count);
            pace.credit = pace.credit.min(left.saturating_mul(CREDIT_PER_TOKEN));
            if left == 0 {
                // Capped at an hour: a broken header must not stall forever.
                let reset = info.reset_secs.unwrap_or(1).clamp(1, 3_600);
                let until = now + reset * 1000;
                pace.paused_until = pace.paused_until.max(until);
                return Some(until);
            }
        }
        None
    }

    /// A compact text form for storage: one origin per line,
    /// `origin credit updated_at paused_until` separated by spaces, then,
    /// when its throttle holds anything, `t` and the throttle's seven
    /// fields (`rate credit updated_at down_since probe_until shed
    /// shed_at`).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (origin, p) in &self.origins {
            out.push_str(origin);
            for f in [p.credit, p.updated_at, p.paused_until] {
                out.push(' ');
                json::push_u64(&mut out, f);
            }
            if p.throttle != Throttle::default() {
                out.push_str(" t");
                for f in p.throttle.fields() {
                    out.push(' ');
                    json::push_u64(&mut out, f);
                }
            }
            out.push('\n');
        }
        self.holds.encode_into(&mut out);
        out
    }

    /// Reads [`encode`](Self::encode)'s form, and the older ones (without
    /// throttle fields, or with the seven fields of the throttle that
    /// spread a backlog, which start afresh); bad lines are skipped
    /// (pacing state is advisory: losing a line only forgets a pause).
    pub fn decode(text: &str) -> Self {
        let mut state = Self::default();
        for line in text.lines() {
            if state.holds.decode_line(line) {
                continue;
            }
            let mut f: Vec<&str> = line.split(' ').collect();
            let current = f.get(4) == Some(&"t");
            if current {
                f.remove(4);
            }
            let (origin, numbers) = match f.as_slice() {
                [origin, rest @ ..] if rest.len() == 3 || rest.len() == 10 => (*origin, rest),
                _ => continue,
            };
            let Ok(n) = numbers
                .iter()
                .map(|v| v.parse::<u64>())
                .collect::<Result<Vec<u64>, _>>()
            else {
                continue;
            };
            let throttle = match n.get(3..) {
                Some(&[a, b, c, d, e, f, g]) if current => {
                    Throttle::from_fields([a, b, c, d, e, f, g])
                }
                _ => Throttle::default(),
            };
            state.origins.retain(|(o, _)| o != origin);
            state.origins.push((
                origin.to_owned(),
                OriginPace {
                    credit: n[0],
                    updated_at: n[1],
                    paused_until: n[2],
                    throttle,
                },
            ));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::throttle::PROBE_HOLD_MS;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    const O: &str = "https://api.mypurecloud.ie";

    #[test]
    fn bucket_allows_burst_then_the_rate() {
        let cfg = PacerConfig {
            rate_per_minute: 60,
            burst: 3,
            ..PacerConfig::default()
        };
        let mut s = ScheduleState::default();
        for _ in 0..3 {
            assert_eq!(s.try_take(O, &cfg, 0), Ok(()));
        }
        assert_eq!(s.try_take(O, &cfg, 0), Err(1000));
        assert_eq!(s.try_take(O, &cfg, 999), Err(1000));
        assert_eq!(s.try_take(O, &cfg, 1000), Ok(()));
        // A long quiet spell refills only up to the burst.
        for _ in 0..3 {
            assert_eq!(s.try_take(O, &cfg, 1_000_000), Ok(()));
        }
        assert!(s.try_take(O, &cfg, 1_000_000).is_err());
    }

    #[test]
    fn pause_blocks_until_its_end() {
        let cfg = PacerConfig::default();
        let mut s = ScheduleState::default();
        s.pause(O, 5_000, &cfg, 0);
        s.pause(O, 4_000, &cfg, 0); // an earlier end does not shorten it
        assert_eq!(s.try_take(O, &cfg, 4_999), Err(5_000));
        assert_eq!(s.paused_until(O, 4_999), Some(5_000));
        assert_eq!(s.try_take(O, &cfg, 5_000), Ok(()));
        assert_eq!(s.paused_until(O, 5_000), None);
    }

    #[test]
    fn server_headers_cap_the_bucket_and_pause_a_spent_window() {
        let cfg = PacerConfig {
            rate_per_minute: 150,
            burst: 10,
            ..PacerConfig::default()
        };
        let mut s = ScheduleState::default();
        let info = RateLimitInfo {
            count: Some(58),
            allowed: Some(60),
            reset_secs: Some(30),
        };
        assert_eq!(s.observe(O, &info, &cfg, 0), None);
        assert_eq!(
            s.get(O).unwrap().credit,
            2 * CREDIT_PER_TOKEN,
            "two left in the window"
        );
        let spent = RateLimitInfo {
            count: Some(60),
            ..info
        };
        assert_eq!(s.observe(O, &spent, &cfg, 10), Some(30_010));
        assert_eq!(s.try_take(O, &cfg, 20), Err(30_010));
        // A broken reset cannot stall for more than an hour.
        let absurd = RateLimitInfo {
            count: Some(9),
            allowed: Some(9),
            reset_secs: Some(u64::MAX),
        };
        assert_eq!(
            s.observe(O, &absurd, &cfg, 40_000),
            Some(40_000 + 3_600_000)
        );
    }

    #[test]
    fn encoding_round_trips_and_tolerates_damage() {
        let cfg = PacerConfig::default();
        let mut s = ScheduleState::default();
        s.pause(O, 77, &cfg, 5);
        s.try_take("http://127.0.0.1:8081", &cfg, 9).unwrap();
        let text = s.encode();
        assert_eq!(ScheduleState::decode(&text), s);
        let damaged = format!("garbage\n{text}x y z\nhttp://a NaN 1 2 3\n");
        assert_eq!(ScheduleState::decode(&damaged), s);
        // The throttle's fields round-trip too …
        s.answered(O, Signal::Unanswered, &cfg, 100, 0);
        s.answered("http://b", Signal::Shed, &cfg, 200, 12_345);
        assert_ne!(s.get("http://b").unwrap().throttle, Throttle::default());
        let text = s.encode();
        assert_eq!(ScheduleState::decode(&text), s);
        // … and a record written before they existed still reads.
        let old = "https://api.mypurecloud.ie 600000 5 77\n";
        let read = ScheduleState::decode(old);
        assert_eq!(read.paused_until(O, 6), Some(77));
        assert_eq!(read.get(O).unwrap().throttle, Throttle::default());
    }

    #[test]
    fn a_send_needs_the_throttles_token_too() {
        let cfg = PacerConfig::default();
        let mut s = ScheduleState::default();
        // Down: one probe at a time, whatever the bucket holds.
        s.answered(O, Signal::Unanswered, &cfg, 0, 0);
        assert_eq!(s.throttled(&cfg), vec![O.to_owned()]);
        assert_eq!(s.try_take(O, &cfg, 1), Ok(()));
        assert_eq!(s.try_take(O, &cfg, 2), Err(1 + PROBE_HOLD_MS));
        // Answered: the pacer alone again.
        s.answered(O, Signal::Accepted, &cfg, 100, 0);
        assert!(s.throttled(&cfg).is_empty());
        assert_eq!(s.throttle_views(), vec![]);
        for _ in 0..8 {
            assert_eq!(s.try_take(O, &cfg, 100), Ok(()));
        }
        // A server shedding every request: a reduced rate, shown with why.
        for i in 0..10 {
            s.answered(O, Signal::Shed, &cfg, 200 + i, 0);
        }
        let views = s.throttle_views();
        assert!(
            matches!(views.as_slice(), [(o, Limit::Shedding { shed_percent: 74.., .. })] if o == O),
            "{views:?}"
        );
        assert_eq!(s.throttle_view(O), Some(views[0].1));
        assert!(s.try_take(O, &cfg, 300).is_err(), "at the reduced rate");
        // Looked at again as the flusher does (no later than it is told),
        // the share fades and the next request goes before the floor's
        // two minutes; then it waits again.
        let mut now = 300;
        while let Err(at) = s.try_take(O, &cfg, now) {
            now = at;
        }
        assert!(now < 120_000, "went at {now}");
        assert!(s.try_take(O, &cfg, now + 1).is_err(), "one at a time");
    }

    #[test]
    fn an_older_throttle_record_starts_afresh() {
        // Ten numbers without the `t` marker: the throttle that spread a
        // backlog (its `spread_until` would read as a shed share).
        let old =
            "https://api.mypurecloud.ie 600000 5 77 75000 0 5 0 0 1700000060000 1700000000000\n";
        let read = ScheduleState::decode(old);
        assert_eq!(read.paused_until(O, 6), Some(77));
        assert_eq!(read.get(O).unwrap().throttle, Throttle::default());
    }
}
