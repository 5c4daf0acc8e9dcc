//! Herd safety: a per-origin throttle that follows the server's shed
//! signals, fast for one client and safe for a hundred thousand.
//!
//! After an outage every client comes back at once. The pacer
//! ([`crate::pacer`]) keeps one client under its token's rate limit, but
//! ten thousand clients each within their limit still flood the service.
//! Clients cannot know how many others there are; the server's answers are
//! their only signal, and a client must tell "the server sheds load" from
//! "my network failed": a lost connection says nothing about the server's
//! capacity. Two rules, per origin:
//!
//! 1. **Probe while down.** From the first request that gets no answer
//!    (network error, timeout) until the next answer, at most one request
//!    is out at a time: the probe. A device that is offline tries its
//!    lanes one after another, never all at once — a flush
//!    [`PROBE_GAP_MS`] apart ([`ProbeGaps`]), until the network is back —
//!    and the first thing that reaches a recovering server is one request
//!    per client. No answer
//!    never slows the rate itself: when the origin answers again the
//!    client goes on at the rate it had.
//! 2. **Follow the shed share.** Each answer tells whether the server shed
//!    it: `429`, `408`, `502`, `503`, `504` ([`Signal::Shed`]) against an
//!    answer it took ([`Signal::Accepted`]); a `500` or a `4xx` says
//!    nothing about load and is not counted. The throttle keeps the share
//!    of shed answers among the recent ones (`shed`: an average over
//!    answers, each weighing 1/[`SHED_WEIGHT`], that also fades with time
//!    toward zero over `memory_ms`, 2 min by default). While that share is
//!    within the tolerance (30 %) the throttle does not limit at all.
//!    Above it the rate is the pacer's halved for every `step_percent`
//!    (5 %) of shed share beyond the tolerance,
//!    `rate = pacer × 2^−(shed − tolerance)/step`, never below one request
//!    every `max_interval_ms` (2 min).
//!
//! # Why it recovers at the server's pace
//!
//! A clean answer takes an eighth of the shed share away, so once the
//! server stops shedding the rate climbs by a factor of
//! `2^(shed/8/step)` per answer — about doubling per answer at a 40 %
//! share — and is back at the pacer's within a handful of answers: a
//! flaky minute never leaves a client crawling for an hour, as a rate
//! that grew back by 1/200 per answer did. A client that was cut deep
//! and gets no answers (it sends little) is not stuck either: the share
//! fades with the clock over `memory_ms`. No answer and a `500` never cut
//! the rate, so an offline device or a buggy endpoint is not slowed; a
//! lone client that meets up to 30 % of shed answers (a flaky gateway)
//! is not slowed at all.
//!
//! # Why it holds for every N
//!
//! The server sheds every client's requests alike, so every client of a
//! herd measures the same share `p`, and all of them settle at the same
//! rate — unlike rules where each client's rate random-walks with its own
//! luck (halve on a shed, grow a little per answer), which starve the
//! unlucky and make the herd's last message wait for them. With `N`
//! clients each holding a backlog, the herd offers
//! `N × pacer × 2^−(p − tolerance)/step`, the server takes its capacity
//! `C` and sheds the rest, so the share settles where the offer meets the
//! capacity: `p* ≈ tolerance + step × log2(N × pacer ÷ C)`. The server
//! runs at its capacity whatever `N` (the herd drains in its ideal time),
//! and the price of a larger herd is a shed share growing by `step`
//! (5 points) per doubling of `N` — 30 % at a thousand clients that each
//! could send 150 a minute to a service taking 2,000 a second, about
//! 50 % at ten thousand (measured: BENCHMARKS.md, herd part). The floor
//! sets the limit: above `C × max_interval_ms` clients (240,000 for a
//! 2-minute floor and 2,000 requests a second) the herd at its slowest
//! still offers more than the capacity, and only the server's own
//! `Retry-After` can spread it further (a `503` or `429` that carries one
//! pauses the origin, [`crate::verdict::OriginNote`]).
//!
//! # What no client-side rule can do
//!
//! Before its first answer a client of a herd of 100,000 and a client
//! alone are in the same state: same outage, same backlog. The lone
//! client must send at once (its ten messages within seconds of the
//! network's return), so each member of the herd does too, and the first
//! seconds after a herd's return carry one request per client whatever
//! the rule — the peak of the first second grows with `N`, and the `503`s
//! of that first contact with it. Spreading the first contact over a
//! window that grows with the outage (the rule this one replaced) keeps a
//! herd of 10,000 under capacity and makes one client wait a minute
//! after a 10-minute outage.
//!
//! The state is part of [`ScheduleState`](crate::pacer::ScheduleState),
//! persisted with the queue: a restarted worker keeps its share and its
//! probe.

use alloc::borrow::ToOwned;
use alloc::rc::Rc;
use alloc::{string::String, vec::Vec};
use core::cell::RefCell;

use crate::classify::Outcome;
use crate::clock::Millis;

/// Credit per request in the throttle's bucket: with this unit a rate of
/// `r` milli-requests a minute gains exactly `r` credit a millisecond.
pub const TOKEN: u64 = 60_000_000;

/// How long a probe holds its origin when no answer is settled (a sender
/// that died mid-probe); an answer ends the hold at once.
pub const PROBE_HOLD_MS: Millis = 30_000;

/// How long a flush waits before its next probe of an origin whose last
/// request got no answer ([`ProbeGaps`]).
pub const PROBE_GAP_MS: Millis = 500;

/// The origins whose last request got no answer, and until when the
/// flushes of one engine leave them alone: the herd throttle's probe
/// ([`crate::throttle`]) lets one request out at a time to an origin that
/// gives no answer, and without a gap an offline device would try one
/// due lane after another, back to back, a store transaction each (with a
/// hundred lanes due, that crowds out the app's own enqueues). A flush's
/// plan skips a quiet origin's heads until its gap ends (and wakes then);
/// an answer from the origin ends it, and so does the network coming
/// back ([`NetworkBack`](crate::door::NetworkBack)), so that a device that
/// learns it is online probes at once. Only flushes keep the gap: a live
/// attempt of an app's own send still probes at once. Clones share one
/// record; it lives in memory (a restarted engine probes at once).
#[derive(Debug, Clone, Default)]
pub struct ProbeGaps(Rc<RefCell<Vec<(String, Millis)>>>);

impl ProbeGaps {
    /// `origin` gave no answer at `now`: quiet for [`PROBE_GAP_MS`].
    pub fn unanswered(&self, origin: &str, now: Millis) {
        let until = now.saturating_add(PROBE_GAP_MS);
        let mut gaps = self.0.borrow_mut();
        match gaps.iter_mut().find(|(o, _)| o == origin) {
            Some((_, at)) => *at = until,
            None => gaps.push((origin.to_owned(), until)),
        }
    }

    /// `origin` answered: no gap.
    pub fn answered(&self, origin: &str) {
        self.0.borrow_mut().retain(|(o, _)| o != origin);
    }

    /// Until when `origin` is left alone at `now`, if it is.
    pub fn quiet_until(&self, origin: &str, now: Millis) -> Option<Millis> {
        self.0
            .borrow()
            .iter()
            .find(|(o, until)| o == origin && *until > now)
            .map(|(_, until)| *until)
    }

    /// The network came back: every gap ends.
    pub fn forget(&self) {
        self.0.borrow_mut().clear();
    }
}

/// Each answer weighs 1/`SHED_WEIGHT` in the shed share.
pub const SHED_WEIGHT: u64 = 8;

/// The shed share's unit: parts per million.
const SHARE: u64 = 1_000_000;

/// Throttle settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleConfig {
    /// Whether the throttle and the probe apply (default true).
    pub enabled: bool,
    /// The shed share tolerated without slowing, in percent (default 30).
    pub tolerance_percent: u32,
    /// Each this many points of shed share beyond the tolerance halve the
    /// rate (default 5).
    pub step_percent: u32,
    /// How long the shed share takes to fade by half without answers
    /// (default 2 min).
    pub memory_ms: Millis,
    /// The longest wait between two requests the throttle imposes (default
    /// 2 min): the floor of its rate.
    pub max_interval_ms: Millis,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            tolerance_percent: 30,
            step_percent: 5,
            memory_ms: 120_000,
            max_interval_ms: 120_000,
        }
    }
}

impl ThrottleConfig {
    /// The slowest rate, in milli-requests a minute.
    fn floor(&self) -> u64 {
        (60_000_000 / self.max_interval_ms.max(1)).max(1)
    }

    /// The rate for a shed share of `shed` (parts per million) under a
    /// pacer of `max_rate` milli-requests a minute: 0 (no limit) within
    /// the tolerance, else the pacer's halved per `step_percent` beyond it
    /// (interpolated linearly between halvings), at least the floor.
    pub fn rate_for(&self, shed: u64, max_rate: u64) -> u64 {
        let tolerance = u64::from(self.tolerance_percent.min(100)) * (SHARE / 100);
        if shed <= tolerance {
            return 0;
        }
        let step = u64::from(self.step_percent.max(1)) * (SHARE / 100);
        let beyond = shed - tolerance;
        let (halvings, part) = (beyond / step, beyond % step);
        let whole = max_rate.checked_shr(halvings.min(63) as u32).unwrap_or(0);
        // Between two halvings, linearly: 2^-x ≈ 1 - x/2 on [0, 1).
        let rate = whole - whole * part / step / 2;
        rate.max(self.floor()).min(max_rate)
    }
}

/// What an answer tells the throttle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// The origin answered and took the request.
    Accepted,
    /// The origin answered; nothing to learn about load (`500`, `4xx`).
    Answered,
    /// The origin sheds load: `429`, `408`, `502`, `503`, `504`.
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

/// Why a throttle limits its origin, as [`Throttle::view`] tells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// The origin gives no answer: one request at a time.
    Probing,
    /// The server sheds more than the tolerance: a reduced rate.
    Shedding {
        /// The rate, in milli-requests a minute.
        rate: u64,
        /// The shed share among recent answers, in percent.
        shed_percent: u32,
    },
}

impl Limit {
    /// A short name: `probing` or `shedding`.
    pub fn reason(&self) -> &'static str {
        match self {
            Limit::Probing => "probing",
            Limit::Shedding { .. } => "shedding",
        }
    }
}

/// One origin's throttle state (persisted).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Throttle {
    /// Allowed rate in milli-requests a minute; 0 when not limiting.
    pub rate: u64,
    /// What the bucket holds, in [`TOKEN`] units per request (at most one).
    pub credit: u64,
    /// When `credit` was last brought up to date.
    pub updated_at: Millis,
    /// Since when the origin gives no answer (0: it answers).
    pub down_since: Millis,
    /// A probe is out until this time (0: none).
    pub probe_until: Millis,
    /// The share of shed answers among recent ones, in parts per million.
    pub shed: u64,
    /// When `shed` last changed (its fading starts there).
    pub shed_at: Millis,
}

impl Throttle {
    fn refill(&mut self, now: Millis) {
        if now > self.updated_at {
            let gained = (now - self.updated_at).saturating_mul(self.rate);
            self.credit = self.credit.saturating_add(gained).min(TOKEN);
            self.updated_at = now;
        }
    }

    /// The shed share at `now`: faded by half every `memory_ms` since it
    /// last changed (hyperbolically: `shed × m ÷ (m + elapsed)`).
    fn shed_at(&self, config: &ThrottleConfig, now: Millis) -> u64 {
        let m = config.memory_ms.max(1);
        let elapsed = now.saturating_sub(self.shed_at);
        (u128::from(self.shed) * u128::from(m) / u128::from(m + elapsed)) as u64
    }

    /// Sets the rate for the shed share at `now`, keeping the bucket's
    /// credit (a throttle that starts limiting starts at `phase`, a random
    /// point of its first interval: no burst, no lockstep).
    fn settle_rate(&mut self, config: &ThrottleConfig, max_rate: u64, now: Millis, phase: u64) {
        let rate = config.rate_for(self.shed_at(config, now), max_rate);
        if rate == 0 || rate >= max_rate {
            self.rate = 0;
        } else if self.rate == 0 {
            self.rate = rate;
            self.credit = phase % TOKEN;
            self.updated_at = now;
        } else {
            self.refill(now);
            self.rate = rate;
        }
    }

    /// Whether a request may go at `now`; `Err(t)`: look again at `t`.
    /// `max_rate` is the pacer's rate in milli-requests a minute.
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
        // The share fades while nothing is answered: the rate with it.
        let phase = self.credit;
        self.settle_rate(config, max_rate, now, phase);
        if self.rate == 0 {
            return Ok(());
        }
        self.refill(now);
        if self.credit >= TOKEN {
            Ok(())
        } else {
            // Look again no later than a tenth of the memory: the share
            // may have faded enough by then to allow it sooner.
            let wait = (TOKEN - self.credit).div_ceil(self.rate).max(1);
            Err(now + wait.min(config.memory_ms / 10).max(1))
        }
    }

    /// Whether the throttle limits its origin at `now`: probing an origin
    /// that gives no answer, or at a reduced rate.
    pub fn limits(&self, config: &ThrottleConfig) -> bool {
        config.enabled && (self.rate != 0 || self.down_since != 0)
    }

    /// How and why it limits its origin, if it does, as of the last
    /// answer or check: what `stats()`, the events and the demo show. (A
    /// disabled throttle never leaves its default state: `None`.)
    pub fn view(&self) -> Option<Limit> {
        if self.down_since != 0 {
            return Some(Limit::Probing);
        }
        (self.rate != 0).then(|| Limit::Shedding {
            rate: self.rate,
            shed_percent: (self.shed * 100).div_ceil(SHARE) as u32,
        })
    }

    /// Whether an answer could change anything at `now`: the throttle
    /// limits (probing, or at a reduced rate) or remembers a shed share of
    /// a percent or more. A clean answer from an origin it does not watch
    /// changes nothing worth writing (the live pass-through skips it).
    pub fn watches(&self, config: &ThrottleConfig, now: Millis) -> bool {
        config.enabled
            && (self.down_since != 0 || self.rate != 0 || self.shed_at(config, now) >= SHARE / 100)
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

    /// How many requests the throttle lets go at `now` without waiting, as
    /// [`check`](Self::check) would see it (the share faded to `now`):
    /// `None` when it does not limit (off, or not throttling).
    pub fn allowance(&self, config: &ThrottleConfig, max_rate: u64, now: Millis) -> Option<u64> {
        if !config.enabled || self.rate == 0 {
            return None;
        }
        let mut t = self.clone();
        t.settle_rate(config, max_rate, now, t.credit);
        if t.rate == 0 {
            return None;
        }
        t.refill(now);
        Some(t.credit / TOKEN)
    }

    /// Learns from an answer (or its absence) at `now`. `phase` is a random
    /// number (where the first interval of a new limit starts).
    pub fn observe(
        &mut self,
        config: &ThrottleConfig,
        signal: Signal,
        max_rate: u64,
        now: Millis,
        phase: u64,
    ) {
        if !config.enabled {
            return;
        }
        self.probe_until = 0;
        let counted = match signal {
            Signal::Unanswered => {
                if self.down_since == 0 {
                    self.down_since = now.max(1);
                }
                return;
            }
            Signal::Answered => None,
            Signal::Accepted => Some(0),
            Signal::Shed => Some(SHARE),
        };
        self.down_since = 0;
        if let Some(x) = counted {
            let shed = self.shed_at(config, now);
            self.shed = if x > shed {
                shed + (x - shed) / SHED_WEIGHT
            } else {
                shed - (shed - x) / SHED_WEIGHT
            };
            self.shed_at = now;
        }
        self.settle_rate(config, max_rate, now, phase);
    }

    /// The fields after the pacer's in [`ScheduleState::encode`](crate::pacer::ScheduleState::encode).
    pub fn fields(&self) -> [u64; 7] {
        [
            self.rate,
            self.credit,
            self.updated_at,
            self.down_since,
            self.probe_until,
            self.shed,
            self.shed_at,
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
            shed,
            shed_at,
        ] = f;
        Self {
            rate,
            credit: credit.min(TOKEN),
            updated_at,
            down_since,
            probe_until,
            shed: shed.min(SHARE),
            shed_at,
        }
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

    const PACER: u64 = 150_000; // 150 a minute
    const T: Millis = 1_000_000;

    fn cfg() -> ThrottleConfig {
        ThrottleConfig::default()
    }

    /// Feeds `signals` one per second from `from`; returns the time after.
    fn feed(t: &mut Throttle, from: Millis, signals: &[Signal]) -> Millis {
        let mut now = from;
        for s in signals {
            t.observe(&cfg(), *s, PACER, now, 0);
            now += 1_000;
        }
        now
    }

    #[test]
    fn a_healthy_origin_is_not_throttled() {
        let mut t = Throttle::default();
        for _ in 0..100 {
            assert_eq!(t.check(&cfg(), PACER, T), Ok(()));
            t.take(&cfg(), T);
        }
        assert_eq!(t.allowance(&cfg(), PACER, T), None);
        assert_eq!(t.view(), None);
    }

    #[test]
    fn one_probe_at_a_time_while_down_and_no_cut_for_it() {
        let mut t = Throttle::default();
        t.observe(&cfg(), Signal::Unanswered, PACER, T, 0);
        assert_eq!(t.view(), Some(Limit::Probing));
        assert_eq!(t.check(&cfg(), PACER, T), Ok(()));
        t.take(&cfg(), T);
        assert_eq!(t.check(&cfg(), PACER, T + 10), Err(T + PROBE_HOLD_MS));
        // The probe fails: the next may go (when an entry is due).
        t.observe(&cfg(), Signal::Unanswered, PACER, T + 20, 0);
        assert_eq!(t.check(&cfg(), PACER, T + 20), Ok(()));
        t.take(&cfg(), T + 20);
        // Answered after a 10-minute outage: back at full pace at once —
        // an outage is not the server shedding load.
        let back = T + 600_000;
        t.observe(&cfg(), Signal::Accepted, PACER, back, 0);
        assert_eq!(t.view(), None);
        for _ in 0..10 {
            assert_eq!(t.check(&cfg(), PACER, back), Ok(()));
            t.take(&cfg(), back);
        }
    }

    #[test]
    fn the_rate_is_the_pacers_halved_per_step_beyond_the_tolerance() {
        let c = cfg();
        let pct = |p: u64| p * SHARE / 100;
        assert_eq!(c.rate_for(pct(30), PACER), 0, "within the tolerance");
        assert_eq!(c.rate_for(pct(35), PACER), PACER / 2);
        assert_eq!(c.rate_for(pct(40), PACER), PACER / 4);
        let between = c.rate_for(pct(30) + pct(5) / 2, PACER);
        assert!(
            (PACER * 7 / 10..=PACER * 8 / 10).contains(&between),
            "{between}"
        );
        assert_eq!(c.rate_for(SHARE, PACER), 500, "the floor: one every 2 min");
    }

    #[test]
    fn a_shedding_server_slows_the_origin_and_a_clean_one_brings_it_back_fast() {
        let mut t = Throttle::default();
        // Six sheds in a row: the share is 1 - (7/8)^6 ≈ 55 %.
        let now = feed(&mut t, T, &[Signal::Shed; 6]);
        let Some(Limit::Shedding { rate, shed_percent }) = t.view() else {
            panic!("{t:?}")
        };
        assert!((54..=56).contains(&shed_percent), "{shed_percent}");
        assert!(rate < PACER / 16, "{rate}");
        // The server takes everything again: within eight answers the
        // throttle is out of the way (a rate growing by 1/200 an answer
        // would need hundreds).
        let mut now = now;
        let mut answers = 0;
        while t.view().is_some() {
            t.observe(&cfg(), Signal::Accepted, PACER, now, 0);
            now += 100;
            answers += 1;
        }
        assert!(answers <= 8, "{answers} answers to recover");
    }

    #[test]
    fn no_answer_and_a_500_teach_nothing_about_load() {
        let mut t = Throttle::default();
        let mut now = T;
        for _ in 0..50 {
            t.observe(&cfg(), Signal::Unanswered, PACER, now, 0);
            t.observe(&cfg(), Signal::Answered, PACER, now + 500, 0);
            now += 1_000;
        }
        assert_eq!(t.shed, 0);
        assert_eq!(t.view(), None);
    }

    #[test]
    fn a_flaky_gateway_within_the_tolerance_slows_nothing() {
        // One shed answer in five (20 %), for ten minutes.
        let mut t = Throttle::default();
        let mut now = T;
        for i in 0..600 {
            let s = if i % 5 == 0 {
                Signal::Shed
            } else {
                Signal::Accepted
            };
            t.observe(&cfg(), s, PACER, now, 0);
            assert_eq!(t.view(), None, "answer {i}");
            now += 1_000;
        }
    }

    #[test]
    fn a_client_cut_deep_comes_back_with_the_clock_alone() {
        let mut t = Throttle::default();
        let now = feed(&mut t, T, &[Signal::Shed; 20]);
        assert!(matches!(t.view(), Some(Limit::Shedding { rate: 500, .. })));
        // No answer comes (it sends one every two minutes): the share
        // fades, and the rate with it, within a few memories.
        let later = now + 4 * cfg().memory_ms;
        assert_eq!(t.check(&cfg(), PACER, later), Ok(()));
        assert_eq!(t.rate, 0);
        assert_eq!(t.view(), None);
    }

    #[test]
    fn a_limited_origin_looks_again_before_the_share_has_faded_much() {
        let mut t = Throttle::default();
        let now = feed(&mut t, T, &[Signal::Shed; 20]);
        t.take(&cfg(), now);
        let Err(at) = t.check(&cfg(), PACER, now) else {
            panic!("limited")
        };
        assert!(at <= now + cfg().memory_ms / 10, "{at}");
    }

    #[test]
    fn disabled_does_nothing() {
        let off = ThrottleConfig {
            enabled: false,
            ..cfg()
        };
        let mut t = Throttle::default();
        t.observe(&off, Signal::Shed, PACER, T, 0);
        t.observe(&off, Signal::Unanswered, PACER, T, 0);
        assert_eq!(t, Throttle::default());
        assert_eq!(t.view(), None);
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

    #[test]
    fn fields_round_trip() {
        let mut t = Throttle::default();
        feed(&mut t, T, &[Signal::Shed; 5]);
        t.observe(&cfg(), Signal::Unanswered, PACER, T + 9_000, 0);
        assert_eq!(Throttle::from_fields(t.fields()), t);
    }
}
