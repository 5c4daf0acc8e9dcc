//! Pacing per origin: a token bucket that keeps replay under the rate
//! limit, and the pause a `429` imposes.
//!
//! Genesys limits are per token, usually 300 requests a minute; a page is
//! not the only user of its token, so the default is a safe share of that.
//! The state is persisted with the queue (see [`ScheduleState::encode`]) so
//! that a restarted worker neither forgets a pause nor gets a fresh burst.

use crate::clock::Millis;
use crate::hold::Holds;
use crate::retry_after::RateLimitInfo;

/// Pacing settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PacerConfig {
    /// Sustained requests per minute per origin (default 150: half of
    /// Genesys's 300 per token, leaving room for the rest of the app).
    pub rate_per_minute: u32,
    /// Requests that may go at once after a quiet spell (default 10).
    pub burst: u32,
}

impl Default for PacerConfig {
    fn default() -> Self {
        Self {
            rate_per_minute: 150,
            burst: 10,
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
        if pace.credit >= CREDIT_PER_TOKEN {
            pace.credit -= CREDIT_PER_TOKEN;
            Ok(())
        } else {
            let missing = CREDIT_PER_TOKEN - pace.credit;
            let wait = missing.div_ceil(config.rate());
            Err(now + wait.max(1))
        }
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
    /// `origin credit updated_at paused_until` separated by spaces.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        for (origin, p) in &self.origins {
            out.push_str(&format!(
                "{origin} {} {} {}\n",
                p.credit, p.updated_at, p.paused_until
            ));
        }
        self.holds.encode_into(&mut out);
        out
    }

    /// Reads [`encode`](Self::encode)'s form; bad lines are skipped (pacing
    /// state is advisory: losing a line only forgets a pause).
    pub fn decode(text: &str) -> Self {
        let mut state = Self::default();
        for line in text.lines() {
            if state.holds.decode_line(line) {
                continue;
            }
            let f: Vec<&str> = line.split(' ').collect();
            let [origin, credit, updated_at, paused_until] = f.as_slice() else {
                continue;
            };
            let (Ok(credit), Ok(updated_at), Ok(paused_until)) =
                (credit.parse(), updated_at.parse(), paused_until.parse())
            else {
                continue;
            };
            state.origins.retain(|(o, _)| o != origin);
            state.origins.push((
                (*origin).to_owned(),
                OriginPace {
                    credit,
                    updated_at,
                    paused_until,
                },
            ));
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const O: &str = "https://api.mypurecloud.ie";

    #[test]
    fn bucket_allows_burst_then_the_rate() {
        let cfg = PacerConfig {
            rate_per_minute: 60,
            burst: 3,
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
    }
}
