//! Herd safety: an adaptive per-origin throttle, and the spread of a
//! backlog after an outage.
//!
//! After an outage every client comes back at once. The pacer
//! ([`crate::pacer`]) keeps one client under its token's rate limit, but
//! ten thousand clients each within their limit still flood the service.
//! Clients cannot know how many others there are; the server's answers are
//! their only signal. Three rules follow, all per origin:
//!
//! 1. **Probe while down.** From the first request that gets no answer
//!    (network error, timeout) until the next answer, at most one request
//!    is out at a time: the probe. A device that is offline tries its lanes
//!    one after another, never all at once, and the first thing that
//!    reaches a recovering server is one request per client.
//! 2. **Spread the backlog after an outage.** When the origin comes back
//!    after being unreachable for `D` (the page's `online` event through
//!    [`NetworkBack`](crate::door::NetworkBack), or the
//!    first answer after failures), what is queued is spread over a window
//!    `W = D × spread_percent / 100` (capped at `spread_max_ms`): the
//!    throttle's rate becomes `backlog ÷ W` with a random phase, without a
//!    burst. A 30 s blip gives `W` = 3 s and, with ten messages queued, the
//!    first goes within 0.3 s; a 10-minute outage spreads ten messages over
//!    a minute. The spread is proportional to the work: a client holding
//!    more than its pacer could send in `W` is not slowed at all (the pacer
//!    is then the tighter limit). While the window lasts the rate only
//!    falls.
//! 3. **Follow the server (MIMD).** A shed signal — `429`, `408`, `502`,
//!    `503`, `504`, or no answer while throttling — halves the rate (at most
//!    once a second, with a random phase before the next request); each
//!    answer that is not a shed signal, once the window is over, raises it
//!    by 1/200. The throttle switches itself off once its rate reaches the
//!    pacer's, and a healthy origin is never throttled (rule 1 aside).
//!
//! Why a multiplicative increase and not AIMD's additive one: in a herd of
//! N clients each one's fair share is `capacity ÷ N`, a request a minute
//! or less, and a fixed additive step is then far larger than the share
//! itself. With both steps multiplicative, the share of shed requests at
//! equilibrium is `ln(1 + g) ÷ (ln(1 + g) + ln(1/β))` ≈ 0.7 % for
//! `g` = 1/200 and `β` = ½, whatever N and whatever each client's rate.
//! (AWS's CUBIC-based adaptive retry and Google SRE's accept-ratio
//! throttling need many requests per client to estimate a rate or a ratio;
//! a herd client may hold ten.)
//!
//! The state is part of [`ScheduleState`](crate::pacer::ScheduleState),
//! persisted with the queue: a restarted worker keeps its rate, its window
//! and its probe.

use crate::classify::Outcome;
use crate::clock::Millis;

/// Credit per request in the throttle's bucket: with this unit a rate of
/// `r` milli-requests a minute gains exactly `r` credit a millisecond.
pub const TOKEN: u64 = 60_000_000;

/// How long a probe holds its origin when no answer is settled (a sender
/// that died mid-probe); an answer ends the hold at once.
pub const PROBE_HOLD_MS: Millis = 30_000;

/// Cuts closer together than this count as one (the answers to one batch).
pub const CUT_GUARD_MS: Millis = 1_000;

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Whether the throttle, the probe and the spread apply (default true).
    pub enabled: bool,
    /// The spread window as a share of the outage's length, in percent
    /// (default 10: a 10-minute outage spreads the backlog over a minute).
    pub spread_percent: u32,
    /// The longest spread window (default 5 min).
    pub spread_max_ms: Millis,
    /// The longest wait between two requests the throttle imposes (default
    /// 2 min): the floor of its rate.
    pub max_interval_ms: Millis,
    /// What a shed signal keeps of the rate, in percent (default 50).
    pub decrease_percent: u32,
    /// What an answer adds to the rate after the window, per mille of the
    /// rate (default 5).
    pub increase_per_mille: u32,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            spread_percent: 10,
            spread_max_ms: 5 * 60_000,
            max_interval_ms: 120_000,
            decrease_percent: 50,
            increase_per_mille: 5,
        }
    }
}

impl ThrottleConfig {
    /// The slowest rate, in milli-requests a minute.
    fn floor(&self) -> u64 {
        (60_000_000 / self.max_interval_ms.max(1)).max(1)
    }

    /// The spread window after an outage of `outage_ms`.
    pub fn window_ms(&self, outage_ms: Millis) -> Millis {
        (outage_ms.saturating_mul(u64::from(self.spread_percent)) / 100).min(self.spread_max_ms)
    }
}

/// What an answer tells the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The origin answered and took the request (grow).
    Accepted,
    /// The origin answered; nothing to learn about load (`500`, `4xx`).
    Answered,
    /// The origin sheds load: `429`, `408`, `502`, `503`, `504` (cut).
    Shed,
    /// No answer: network error or timeout.
    Unanswered,
}

impl Signal {
    /// The signal of a classified answer.
    pub fn of(outcome: &Outcome) -> Self {
        match outcome {
            Outcome::Delivered { .. } | Outcome::AlreadyDelivered { .. } => Self::Accepted,
            Outcome::RateLimited { .. } => Self::Shed,
            Outcome::Retryable {
                server_failure: false,
                ..
            } => Self::Unanswered,
            Outcome::Retryable { error, .. }
                if matches!(error.status, Some(408 | 502 | 503 | 504)) =>
            {
                Self::Shed
            }
            _ => Self::Answered,
        }
    }
}

/// One origin's throttle state (persisted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Allowed rate in milli-requests a minute; 0 when not throttling.
    pub rate: u64,
    /// What the bucket holds, in [`TOKEN`] units per request (at most one).
    pub credit: u64,
    /// When `credit` was last brought up to date.
    pub updated_at: Millis,
    /// Since when the origin gives no answer (0: it answers).
    pub down_since: Millis,
    /// A probe is out until this time (0: none).
    pub probe_until: Millis,
    /// When the last spread window ends (0: never spread).
    pub spread_until: Millis,
    /// When the rate was last cut.
    pub cut_at: Millis,
}

impl Throttle {
    fn refill(&mut self, now: Millis) {
        if now > self.updated_at {
            let gained = (now - self.updated_at).saturating_mul(self.rate);
            self.credit = self.credit.saturating_add(gained).min(TOKEN);
            self.updated_at = now;
        }
    }

    /// Whether a request may go at `now`; `Err(t)`: look again at `t`.
    /// `max_rate` is the pacer's rate in milli-requests a minute: at or
    /// above it the throttle switches off.
    pub fn check(
        &mut self,
        config: &ThrottleConfig,
        max_rate: u64,
        now: Millis,
    ) -> Result<(), Millis> {
        if !config.enabled {
            return Ok(());
        }
        if self.down_since != 0 && self.probe_until > now {
            return Err(self.probe_until);
        }
        if self.rate == 0 {
            return Ok(());
        }
        if self.rate >= max_rate {
            self.rate = 0;
            return Ok(());
        }
        self.refill(now);
        if self.credit >= TOKEN {
            Ok(())
        } else {
            Err(now + (TOKEN - self.credit).div_ceil(self.rate).max(1))
        }
    }

    /// Whether the throttle limits its origin at `now`: probing an origin
    /// that gives no answer, within a spread window, or at a cut rate.
    pub fn limits(&self, config: &ThrottleConfig, now: Millis) -> bool {
        config.enabled && (self.rate != 0 || self.down_since != 0 || self.spread_until > now)
    }

    /// Takes the request [`check`](Self::check) allowed.
    pub fn take(&mut self, config: &ThrottleConfig, now: Millis) {
        if !config.enabled {
            return;
        }
        if self.down_since != 0 {
            self.probe_until = now + PROBE_HOLD_MS;
        }
        if self.rate > 0 {
            self.credit = self.credit.saturating_sub(TOKEN);
        }
    }

    /// How many requests the throttle lets go at `now` without waiting:
    /// `None` when it does not limit (off, or not throttling).
    pub fn allowance(&self, config: &ThrottleConfig, now: Millis) -> Option<u64> {
        if !config.enabled || self.rate == 0 {
            return None;
        }
        let mut t = self.clone();
        t.refill(now);
        Some(t.credit / TOKEN)
    }

    /// Learns from an answer (or its absence) at `now`. `phase` is a random
    /// number (the next request's phase after a cut). Returns the outage's
    /// length when the origin just came back from one that no spread has
    /// covered yet: the caller then spreads the backlog
    /// ([`spread`](Self::spread)).
    pub fn observe(
        &mut self,
        config: &ThrottleConfig,
        signal: Signal,
        max_rate: u64,
        now: Millis,
        phase: u64,
    ) -> Option<Millis> {
        if !config.enabled {
            return None;
        }
        self.probe_until = 0;
        if signal == Signal::Unanswered {
            if self.down_since == 0 {
                self.down_since = now.max(1);
                if self.rate > 0 {
                    self.cut(config, now, phase);
                }
            }
            return None;
        }
        let outage = (self.down_since != 0)
            .then(|| now.saturating_sub(self.down_since))
            .filter(|_| self.spread_until < self.down_since);
        self.down_since = 0;
        match signal {
            Signal::Shed => {
                if self.rate == 0 {
                    self.rate = max_rate;
                    self.updated_at = now;
                }
                self.cut(config, now, phase);
            }
            Signal::Accepted if self.rate > 0 && now >= self.spread_until => {
                self.refill(now);
                let step = (self.rate * u64::from(config.increase_per_mille) / 1000).max(1);
                self.rate = self.rate.saturating_add(step);
            }
            _ => {}
        }
        outage
    }

    fn cut(&mut self, config: &ThrottleConfig, now: Millis, phase: u64) {
        if self.cut_at != 0 && now < self.cut_at + CUT_GUARD_MS {
            return;
        }
        self.cut_at = now;
        self.refill(now);
        self.rate =
            (self.rate * u64::from(config.decrease_percent.min(100)) / 100).max(config.floor());
        self.credit = phase % TOKEN;
        self.updated_at = now;
    }

    /// Spreads a backlog of `backlog` requests after an outage of
    /// `outage_ms` ending at `now`: the rate becomes `backlog ÷ window`
    /// (never higher than it was), starting at a random `phase` with no
    /// burst — unless that is as fast as the pacer's `max_rate`, which then
    /// stays the only limit. Returns the window (0: too short to spread).
    pub fn spread(
        &mut self,
        config: &ThrottleConfig,
        outage_ms: Millis,
        backlog: u64,
        max_rate: u64,
        now: Millis,
        phase: u64,
    ) -> Millis {
        if !config.enabled {
            return 0;
        }
        let window = config.window_ms(outage_ms);
        self.spread_until = now.max(1) + window;
        if window < 1_000 {
            return 0;
        }
        let pace = (backlog.max(1).saturating_mul(TOKEN) / window).max(config.floor());
        if pace >= max_rate {
            return window;
        }
        self.rate = if self.rate == 0 {
            pace
        } else {
            self.rate.min(pace)
        };
        self.credit = phase % TOKEN;
        self.updated_at = now;
        window
    }

    /// The fields after the pacer's in [`ScheduleState::encode`](crate::pacer::ScheduleState::encode).
    pub fn fields(&self) -> [u64; 7] {
        [
            self.rate,
            self.credit,
            self.updated_at,
            self.down_since,
            self.probe_until,
            self.spread_until,
            self.cut_at,
        ]
    }

    /// The inverse of [`fields`](Self::fields).
    pub fn from_fields(f: [u64; 7]) -> Self {
        let [
            rate,
            credit,
            updated_at,
            down_since,
            probe_until,
            spread_until,
            cut_at,
        ] = f;
        Self {
            rate,
            credit: credit.min(TOKEN),
            updated_at,
            down_since,
            probe_until,
            spread_until,
            cut_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PACER: u64 = 150_000; // 150 a minute
    const T: Millis = 1_000_000;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig::default()
    }

    /// Sends as fast as the throttle allows from `from` until `n` went;
    /// returns the send times.
    fn drain(t: &mut Throttle, from: Millis, n: usize) -> Vec<Millis> {
        let mut now = from;
        let mut sent = Vec::new();
        while sent.len() < n {
            match t.check(&cfg(), PACER, now) {
                Ok(()) => {
                    t.take(&cfg(), now);
                    sent.push(now);
                    t.observe(&cfg(), Signal::Accepted, PACER, now + 100, 0);
                }
                Err(at) => now = at,
            }
        }
        sent
    }

    #[test]
    fn a_healthy_origin_is_not_throttled() {
        let mut t = Throttle::default();
        for _ in 0..100 {
            assert_eq!(t.check(&cfg(), PACER, T), Ok(()));
            t.take(&cfg(), T);
        }
        assert_eq!(t.allowance(&cfg(), T), None);
    }

    #[test]
    fn one_probe_at_a_time_while_down() {
        let mut t = Throttle::default();
        assert_eq!(t.observe(&cfg(), Signal::Unanswered, PACER, T, 0), None);
        assert_eq!(t.check(&cfg(), PACER, T), Ok(()));
        t.take(&cfg(), T);
        assert_eq!(t.check(&cfg(), PACER, T + 10), Err(T + PROBE_HOLD_MS));
        // The probe fails: the next may go (when an entry is due).
        t.observe(&cfg(), Signal::Unanswered, PACER, T + 20, 0);
        assert_eq!(t.check(&cfg(), PACER, T + 20), Ok(()));
        t.take(&cfg(), T + 20);
        // It is answered after a 10-minute outage: that came back unspread.
        let back = T + 600_000;
        assert_eq!(
            t.observe(&cfg(), Signal::Accepted, PACER, back, 0),
            Some(600_000)
        );
        assert_eq!(t.check(&cfg(), PACER, back), Ok(()));
    }

    #[test]
    fn a_backlog_is_spread_over_a_window_growing_with_the_outage() {
        // 10 minutes: 10 requests over 60 s, one every 6 s, no burst.
        let mut t = Throttle::default();
        t.observe(&cfg(), Signal::Unanswered, PACER, T, 0);
        let back = T + 600_000;
        assert_eq!(
            t.spread(&cfg(), 600_000, 10, PACER, back, TOKEN / 2),
            60_000
        );
        let sent = drain(&mut t, back, 10);
        assert_eq!(sent[0], back + 3_000, "the probe at the phase");
        assert!(sent.windows(2).all(|w| w[1] - w[0] >= 5_900), "{sent:?}");
        assert!(*sent.last().unwrap() <= back + 60_000, "{sent:?}");
        // A 30 s blip: 10 requests within 3 s.
        let mut t = Throttle::default();
        t.observe(&cfg(), Signal::Unanswered, PACER, T, 0);
        assert_eq!(t.spread(&cfg(), 30_000, 10, PACER, T + 30_000, 0), 3_000);
        let sent = drain(&mut t, T + 30_000, 10);
        assert!(*sent.last().unwrap() <= T + 33_000, "{sent:?}");
        // A few seconds: no spread at all.
        let mut t = Throttle::default();
        assert_eq!(t.spread(&cfg(), 5_000, 10, PACER, T, 0), 0);
        assert_eq!(t.allowance(&cfg(), T), None);
    }

    #[test]
    fn a_big_backlog_is_left_to_the_pacer() {
        let mut t = Throttle::default();
        assert_eq!(t.spread(&cfg(), 600_000, 400, PACER, T, 0), 60_000); // 400 a minute > 150
        assert_eq!(t.allowance(&cfg(), T), None, "not throttled");
        // Throttled before (rate 100 a minute), it stays so, and then
        // switches itself off once the rate is back at the pacer's.
        let mut t = Throttle {
            rate: 100_000,
            ..Throttle::default()
        };
        t.spread(&cfg(), 600_000, 400, PACER, T, 0);
        assert_eq!(t.rate, 100_000);
        t.rate = PACER;
        assert_eq!(t.check(&cfg(), PACER, T), Ok(()));
        assert_eq!(t.rate, 0);
    }

    #[test]
    fn shed_signals_halve_the_rate_once_per_batch_and_answers_grow_it() {
        let mut t = Throttle::default();
        t.observe(&cfg(), Signal::Shed, PACER, T, 0);
        assert_eq!(t.rate, PACER / 2, "from the pacer's rate");
        t.observe(&cfg(), Signal::Shed, PACER, T + 10, 0);
        assert_eq!(t.rate, PACER / 2, "the same batch cuts once");
        t.observe(&cfg(), Signal::Shed, PACER, T + 2_000, 0);
        assert_eq!(t.rate, PACER / 4);
        t.observe(&cfg(), Signal::Accepted, PACER, T + 3_000, 0);
        assert_eq!(t.rate, PACER / 4 + PACER / 4 * 5 / 1000);
        t.observe(&cfg(), Signal::Answered, PACER, T + 3_000, 0);
        assert_eq!(
            t.rate,
            PACER / 4 + PACER / 4 * 5 / 1000,
            "a 500 teaches nothing"
        );
        // Never below the floor: one request every 2 minutes.
        for i in 0..40 {
            t.observe(&cfg(), Signal::Shed, PACER, T + 10_000 * (i + 1), 0);
        }
        assert_eq!(t.rate, 500);
        // No answer while throttling counts as shed, once, when it goes down.
        let mut t = Throttle {
            rate: 100_000,
            ..Throttle::default()
        };
        t.observe(&cfg(), Signal::Unanswered, PACER, T, 0);
        assert_eq!(t.rate, 50_000);
        t.observe(&cfg(), Signal::Unanswered, PACER, T + 5_000, 0);
        assert_eq!(t.rate, 50_000);
    }

    #[test]
    fn the_rate_only_falls_during_the_window() {
        let mut t = Throttle::default();
        t.spread(&cfg(), 600_000, 10, PACER, T, 0);
        let pace = t.rate;
        t.observe(&cfg(), Signal::Accepted, PACER, T + 1_000, 0);
        assert_eq!(t.rate, pace);
        t.observe(&cfg(), Signal::Accepted, PACER, T + 60_000, 0);
        assert!(t.rate > pace);
    }

    #[test]
    fn disabled_does_nothing() {
        let off = ThrottleConfig {
            enabled: false,
            ..cfg()
        };
        let mut t = Throttle::default();
        assert_eq!(t.observe(&off, Signal::Shed, PACER, T, 0), None);
        assert_eq!(t.observe(&off, Signal::Unanswered, PACER, T, 0), None);
        assert_eq!(t.spread(&off, 600_000, 1, PACER, T, 0), 0);
        assert_eq!(t, Throttle::default());
    }

    #[test]
    fn signals_follow_the_classifier() {
        use crate::classify::LastError;
        let err = |status| LastError {
            status: Some(status),
            ..LastError::new("x", "y")
        };
        let retry = |status, server_failure| Outcome::Retryable {
            error: err(status),
            server_failure,
            retry_after: None,
        };
        assert_eq!(
            Signal::of(&Outcome::Delivered { status: 200 }),
            Signal::Accepted
        );
        assert_eq!(Signal::of(&retry(503, true)), Signal::Shed);
        assert_eq!(Signal::of(&retry(408, true)), Signal::Shed);
        assert_eq!(Signal::of(&retry(500, true)), Signal::Answered);
        assert_eq!(Signal::of(&retry(0, false)), Signal::Unanswered);
        assert_eq!(
            Signal::of(&Outcome::RateLimited {
                retry_after: None,
                error: err(429)
            }),
            Signal::Shed
        );
    }
}
