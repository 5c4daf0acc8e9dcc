//! What a cycle's answers decide: pure and synchronous.
//!
//! A flush cycle sends the heads it claimed; what comes back is judged
//! here, without I/O, in three steps that a driver calls around one store
//! step:
//!
//! 1. [`judge`]: each `(entry, answer)` becomes a [`Settlement`] —
//!    [`classify`] says what the answer means, [`RetryPolicy::decide`]
//!    what to do about it — and what the answers say about their origins is
//!    collected: `429`/`503` pauses, `inin-ratelimit-*` windows, throttle
//!    signals, tokens the server refused, origins that need a fresh token.
//! 2. [`Verdicts::update_schedule`], inside the store's settle (the same
//!    transaction that applies the settlements): hold the lanes of heads
//!    that died, tell each origin's throttle what its answers said, cap
//!    by the rate-limit windows, pause where told to; and says which
//!    origins' throttles changed what they do ([`crate::throttle`]), to be
//!    told as events.
//! 3. [`Verdicts::events`], after the store step: the events for what
//!    applied (a settlement whose lease no longer matches is skipped by the
//!    store, and tells nothing), counted into the flush's report.
//!
//! What one answer tells its origin's pacing (a pause, a rate-limit
//! window) is read by [`OriginNote`], here for a flush and by the
//! [`Forward`](crate::door::Forward) door for a request the worker
//! forwarded live: both pause alike.
//!
//! [`RetryPolicy::decide`]: crate::retry::RetryPolicy::decide

use crate::classify::{Outcome, Response, TransportError, classify};
use crate::clock::{Millis, Random};
use crate::config::Config;
use crate::entry::Action;
use crate::entry::{Entry, EntryId, Seq};
use crate::event::Event;
use crate::hold::OnDead;
use crate::pacer::{PacerConfig, ScheduleState};
use crate::queue::Settlement;
use crate::report::FlushReport;
use crate::retry_after::RateLimitInfo;
use crate::throttle::{Limit, Signal};
use alloc::{borrow::ToOwned, string::String, vec::Vec};

/// One attempt's answer, as the transport gave it, with the token it went
/// with (to mark that token refused on a `401`).
#[derive(Debug)]
pub struct Answer {
    /// The bearer token sent, if any.
    pub token: Option<String>,
    /// The server's response, or why none came.
    pub result: Result<Response, TransportError>,
}

/// What a sent entry's events need (its body is not kept).
#[derive(Debug, Clone)]
struct Sent {
    seq: Seq,
    id: EntryId,
    lane: String,
    route: String,
    origin: String,
    attempt: u32,
}

/// What a batch of answers decided (see the [module](self)).
#[derive(Debug)]
pub struct Verdicts {
    /// One per answer, for the store to apply.
    pub settlements: Vec<Settlement>,
    /// Tokens the server refused, `(origin, token)`: forget them.
    pub rejected_tokens: Vec<(String, String)>,
    /// Origins that need a fresh token, once each.
    pub want_token: Vec<String>,
    /// Entries (by `seq`) whose answer lets the next entry of their lane
    /// go in the same cycle: delivered, with no pause and a rate-limit
    /// window not nearly spent.
    pub cleared: Vec<Seq>,
    sent: Vec<Sent>,
    /// What the answers told their origins' pacing, per answer that told
    /// anything.
    notes: Vec<(String, OriginNote)>,
    /// What each answer tells its origin's throttle.
    signals: Vec<(String, Signal)>,
    now: Millis,
    phase: u64,
}

impl Verdicts {
    /// What each answer told its origin's throttle, in the order they came.
    pub fn signals(&self) -> &[(String, Signal)] {
        &self.signals
    }
}

/// What [`Verdicts::update_schedule`] found, for after the store step.
#[derive(Debug, Default)]
pub struct Aftermath {
    /// Lanes newly held by a head that died: `(lane, dead letter id)`.
    pub held: Vec<(String, EntryId)>,
    /// Origins whose throttle started, changed or stopped limiting them:
    /// `(origin, what it does now)`.
    pub throttled: Vec<(String, Option<Limit>)>,
    /// Pauses the notes started: `(origin, until, reason)`.
    paused: Vec<(String, Millis, String)>,
}

/// What one answer tells its origin's pacing: a pause it asked for (a
/// `429`, or a `503` that said how long) and the server's rate-limit window
/// (`inin-ratelimit-*`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OriginNote {
    /// The pause asked for: `(until, reason)`.
    pub pause: Option<(Millis, String)>,
    /// The window the answer's headers describe, when they do.
    pub window: Option<RateLimitInfo>,
}

impl OriginNote {
    /// Reads an answer (`result`, which [`classify`] made `outcome`) that
    /// came in at `now`.
    pub fn read(
        result: &Result<Response, TransportError>,
        outcome: &Outcome,
        config: &Config,
        now: Millis,
    ) -> Self {
        let window = result
            .as_ref()
            .ok()
            .map(Response::rate_limit)
            .filter(RateLimitInfo::is_present);
        let pause = outcome
            .pause_ms(config.classify.retry_after_fallback_ms)
            .zip(outcome.error())
            .map(|(wait, error)| (now + wait, error.message.clone()));
        Self { pause, window }
    }

    /// How long the pause asked for lasts from `now` (0: none).
    pub fn pause_ms(&self, now: Millis) -> u64 {
        self.pause
            .as_ref()
            .map_or(0, |(until, _)| until.saturating_sub(now))
    }

    /// Whether it tells nothing.
    pub fn is_empty(&self) -> bool {
        self.pause.is_none() && self.window.is_none()
    }

    /// Whether its origin may take another request at once: no pause, and
    /// a window (if any) not nearly spent (within the pacer's burst).
    pub fn lets_more_go(&self, pacer: &PacerConfig) -> bool {
        self.pause.is_none()
            && !self
                .window
                .is_some_and(|w| w.nearly_spent(u64::from(pacer.burst)))
    }

    /// Writes it into `schedule` for `origin` at `now`: caps the pacing by
    /// the window, pauses where told to. Returns the pauses it started,
    /// `(until, reason)`.
    pub fn apply(
        &self,
        origin: &str,
        schedule: &mut ScheduleState,
        pacer: &PacerConfig,
        now: Millis,
    ) -> Vec<(Millis, String)> {
        let mut paused = Vec::new();
        if let Some(window) = &self.window
            && let Some(until) = schedule.observe(origin, window, pacer, now)
        {
            paused.push((until, "server rate-limit window spent".to_owned()));
        }
        if let Some((until, reason)) = &self.pause {
            schedule.pause(origin, *until, pacer, now);
            paused.push((*until, reason.clone()));
        }
        paused
    }
}

/// Judges a cycle's answers: `answers[i]` is the answer to `sent[i]`.
/// `now` is when they were in; `rng` draws the jitter.
pub fn judge(
    sent: &[Entry],
    answers: Vec<Answer>,
    now: Millis,
    config: &Config,
    rng: &mut dyn Random,
) -> Verdicts {
    let mut v = Verdicts {
        settlements: Vec::with_capacity(answers.len()),
        rejected_tokens: Vec::new(),
        want_token: Vec::new(),
        cleared: Vec::new(),
        sent: Vec::with_capacity(answers.len()),
        notes: Vec::new(),
        signals: Vec::with_capacity(answers.len()),
        now,
        phase: 0,
    };
    for (entry, answer) in sent.iter().zip(answers) {
        let conflict_ok = config
            .routes
            .route(&entry.route)
            .is_some_and(|r| r.conflict_is_delivered);
        let outcome = classify(&answer.result, conflict_ok, now, &config.classify);
        v.signals.push((entry.origin.clone(), Signal::of(&outcome)));
        let note = OriginNote::read(&answer.result, &outcome, config, now);
        if matches!(outcome, Outcome::Unauthorized { .. }) {
            if let Some(token) = answer.token {
                v.rejected_tokens.push((entry.origin.clone(), token));
            }
            if !v.want_token.contains(&entry.origin) {
                v.want_token.push(entry.origin.clone());
            }
        }
        let action = config
            .retry
            .decide(entry, &outcome, now, note.pause_ms(now), rng);
        if matches!(action, Action::Delivered { .. }) && note.lets_more_go(&config.pacer) {
            v.cleared.push(entry.seq);
        }
        if !note.is_empty() {
            v.notes.push((entry.origin.clone(), note));
        }
        v.settlements.push(Settlement {
            seq: entry.seq,
            attempt: entry.attempts,
            action,
        });
        v.sent.push(Sent {
            seq: entry.seq,
            id: entry.id,
            lane: entry.lane.clone(),
            route: entry.route.clone(),
            origin: entry.origin.clone(),
            attempt: entry.attempts,
        });
    }
    v.phase = rng.next_u64();
    v
}

impl Verdicts {
    /// Adds a later round of the same cycle (followers sent after their
    /// lane's entry cleared it): one store step settles both.
    pub fn absorb(&mut self, later: Verdicts) {
        self.settlements.extend(later.settlements);
        self.rejected_tokens.extend(later.rejected_tokens);
        for origin in later.want_token {
            if !self.want_token.contains(&origin) {
                self.want_token.push(origin);
            }
        }
        self.cleared = later.cleared;
        self.sent.extend(later.sent);
        self.notes.extend(later.notes);
        self.signals.extend(later.signals);
        self.now = later.now;
        self.phase = later.phase;
    }

    /// Settles `entries` as never sent ([`Action::Unsent`]): leased to
    /// follow an entry of their lane that did not clear it.
    pub fn unsent(&mut self, entries: impl IntoIterator<Item = Entry>) {
        self.settlements
            .extend(entries.into_iter().map(|e| Settlement {
                seq: e.seq,
                attempt: e.attempts,
                action: Action::Unsent,
            }));
    }

    /// The pacing consequences of the settlements that `applied`, written
    /// into `schedule` inside the store's settle: lanes held behind heads
    /// that died (per their route's `onDead`), throttle signals, rate-limit
    /// windows, pauses.
    pub fn update_schedule(
        &self,
        schedule: &mut ScheduleState,
        applied: &[Settlement],
        config: &Config,
    ) -> Aftermath {
        let mut after = Aftermath::default();
        let pacer = &config.pacer;
        let now = self.now;
        for s in applied {
            let Action::Dead { .. } = s.action else {
                continue;
            };
            let Some(e) = self.sent(s.seq) else {
                continue;
            };
            if config.routes.on_dead(&e.route) == OnDead::Hold && schedule.holds.hold(&e.lane, e.id)
            {
                after.held.push((e.lane.clone(), e.id));
            }
        }
        let mut before: Vec<(&str, Option<Limit>)> = Vec::new();
        for (origin, signal) in &self.signals {
            if !before.iter().any(|(o, _)| o == origin) {
                before.push((origin, schedule.throttle_view(origin)));
            }
            schedule.answered(origin, *signal, pacer, now, self.phase);
        }
        for (origin, was) in before {
            let is = schedule.throttle_view(origin);
            if throttle_changed(was, is) {
                after.throttled.push((origin.to_owned(), is));
            }
        }
        for (origin, note) in &self.notes {
            for (until, reason) in note.apply(origin, schedule, pacer, now) {
                after.paused.push((origin.clone(), until, reason));
            }
        }
        after
    }

    /// The events for what applied — pauses, then each settlement's
    /// outcome, then new holds — counted into `report`.
    pub fn events(
        &self,
        applied: &[Settlement],
        aftermath: &Aftermath,
        report: &mut FlushReport,
    ) -> Vec<Event> {
        let mut events = Vec::with_capacity(applied.len() + aftermath.paused.len());
        for (origin, until, reason) in &aftermath.paused {
            events.push(Event::Paused {
                origin: origin.clone(),
                until: *until,
                reason: reason.clone(),
            });
        }
        for (origin, limit) in &aftermath.throttled {
            events.push(Event::Throttle {
                origin: origin.clone(),
                limit: *limit,
            });
        }
        for s in applied {
            let Some(e) = self.sent(s.seq) else {
                continue;
            };
            let (id, lane) = (e.id, e.lane.clone());
            let event = match &s.action {
                Action::Delivered { status, duplicate } => {
                    report.delivered += 1;
                    Event::Sent {
                        id,
                        lane,
                        status: *status,
                        duplicate: *duplicate,
                    }
                }
                Action::Retry {
                    not_before, error, ..
                } => {
                    report.retried += 1;
                    Event::Retrying {
                        id,
                        lane,
                        attempt: e.attempt,
                        next_attempt_at: *not_before,
                        error: error.clone(),
                    }
                }
                Action::AwaitToken { .. } => {
                    report.awaiting_token += 1;
                    Event::AwaitingToken {
                        id,
                        lane,
                        origin: e.origin.clone(),
                    }
                }
                Action::Dead { error } => {
                    report.dead += 1;
                    Event::Dead {
                        id,
                        lane,
                        error: error.clone(),
                    }
                }
                // Never sent, never told "sending": nothing to tell.
                Action::Unsent => continue,
            };
            events.push(event);
        }
        for (lane, id) in &aftermath.held {
            events.push(Event::Held {
                id: *id,
                lane: lane.clone(),
            });
        }
        events
    }

    fn sent(&self, seq: Seq) -> Option<&Sent> {
        self.sent.iter().find(|e| e.seq == seq)
    }
}

/// Whether a throttle's change from `was` to `is` is worth telling: it
/// started or stopped limiting, changed why, or its rate moved by half or
/// double (not every answer's small step).
pub fn throttle_changed(was: Option<Limit>, is: Option<Limit>) -> bool {
    match (was, is) {
        (None, None) | (Some(Limit::Probing), Some(Limit::Probing)) => false,
        (Some(Limit::Shedding { rate: a, .. }), Some(Limit::Shedding { rate: b, .. })) => {
            a >= b.saturating_mul(2) || b >= a.saturating_mul(2)
        }
        _ => true,
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

    const ORIGIN: &str = "https://api.example.test";
    const NOW: Millis = 1_000_000;

    fn answer(status: u16, headers: &[(&str, &str)]) -> Result<Response, TransportError> {
        Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        })
    }

    fn note(result: &Result<Response, TransportError>, config: &Config) -> OriginNote {
        let outcome = classify(result, false, NOW, &config.classify);
        OriginNote::read(result, &outcome, config, NOW)
    }

    #[test]
    fn an_origin_note_pauses_on_a_429_and_on_a_spent_window_and_is_empty_otherwise() {
        let config = Config::default();
        let pacer = &config.pacer;

        let plain = note(&answer(200, &[]), &config);
        assert!(plain.is_empty() && plain.lets_more_go(pacer));

        let window = [
            ("inin-ratelimit-count", "300"),
            ("inin-ratelimit-allowed", "300"),
            ("inin-ratelimit-reset", "7"),
        ];
        let spent = note(&answer(200, &window), &config);
        assert!(!spent.is_empty() && !spent.lets_more_go(pacer));
        let mut schedule = ScheduleState::default();
        let paused = spent.apply(ORIGIN, &mut schedule, pacer, NOW);
        assert_eq!(
            paused,
            [(NOW + 7_000, "server rate-limit window spent".to_owned())]
        );
        assert_eq!(schedule.paused_until(ORIGIN, NOW), Some(NOW + 7_000));

        let refused = note(&answer(429, &[("retry-after", "3")]), &config);
        assert_eq!(refused.pause.as_ref().map(|p| p.0), Some(NOW + 3_000));
        assert!(!refused.lets_more_go(pacer));
        let mut schedule = ScheduleState::default();
        assert_eq!(refused.apply(ORIGIN, &mut schedule, pacer, NOW).len(), 1);
        assert_eq!(schedule.paused_until(ORIGIN, NOW), Some(NOW + 3_000));

        let offline = Err(TransportError {
            kind: crate::classify::FailureKind::Network,
            message: "offline".into(),
        });
        assert!(note(&offline, &config).is_empty());
    }
}
