//! The engine's front doors as synchronous machines: everything but the
//! flush ([`crate::flush`]) that reads or writes the queue.
//!
//! # Design
//!
//! Each door is a small [`Machine`]: built from its arguments, polled for
//! I/O, fed the replies, finished with its result in a field the driver
//! reads. Each one only sequences a few transactions of [`crate::queue`]
//! around a decision made by a pure function elsewhere, and says what to
//! tell:
//!
//! | door | steps (→ the pure decision) |
//! |---|---|
//! | [`Intercept`] (a service worker's first look) | a bearer token's [`Arrival`]; read the lane and the schedule ([`LaneAndSchedule`]) → [`intercept::before_forward`] |
//! | [`Forward`] (the live answer to a forwarded request) | [`classify`], [`OriginNote`] written into the schedule when it pauses ([`EditSchedule`]); → [`intercept::after_forward`]: pass through, or forget a refused token, [`Write`] it, ask for a token |
//! | [`Write`] (write-through, and the queueing of a forward) | a bearer token's [`Arrival`]; [`Entry::queued`] made durable ([`Enqueue`]) |
//! | [`Arrival`] (a token arrived, or may have) | offer it; if new, release the origin's parked entries ([`Release`]) |
//! | [`NetworkBack`] (the device is online again) | due now what was unreachable ([`Hurry`]; each origin still unanswered is probed first: [`crate::throttle`]) |
//!
//! The dead-letter and admin calls (revive, discard, cancel, purge) are one
//! transaction each ([`crate::queue::Revive`], …); what each tells once it
//! is done is decided here ([`revived`], [`discarded`], [`cancelled`],
//! [`purged`]).
//!
//! [`Arrival`] is also a *step* of another machine (the flush uses it): a
//! parent polls its step until the step has no more I/O
//! ([`Arrival::next_io`] → `None`), feeding it every reply meanwhile, then
//! takes its events.

use alloc::rc::Rc;
use alloc::{borrow::ToOwned, boxed::Box, string::String, vec, vec::Vec};

use crate::classify::{LastError, Outcome, Response, TransportError, classify};
use crate::clock::Millis;
use crate::config::Config;
use crate::entry::{Entry, EntryId, Prepared};
use crate::event::Event;
use crate::intercept::{self, AfterForward, BeforeForward, QueueReason};
use crate::io::{Cx, Fed, ForgetAsk, Io, Machine, OfferAsk, Reply, StoreAsk, TokensAsk, Tx};
use crate::pacer::{PacerConfig, ScheduleState};
use crate::queue::{
    CancelResult, EditSchedule, Enqueue, EnqueueError, Hurry, LaneAndSchedule, Purged, QueueLimits,
    Refusal, Release,
};
use crate::throttle::{Limit, ProbeGaps, Signal};
use crate::token::TokenAsks;
use crate::verdict::OriginNote;

/// What became of a forwarded request.
#[derive(Debug)]
pub enum Forwarded {
    /// Hand the server's answer to the caller.
    PassThrough(Outcome),
    /// It was queued; answer `202`.
    Queued(Box<Entry>),
}

/// A token arrived for an origin (or, without one, may have): offer it to
/// the token source; if it is new, release the origin's entries parked
/// for a token, each told `queued` again.
#[derive(Debug)]
pub struct Arrival {
    origin: String,
    step: ArrivalStep,
    released: usize,
    events: Vec<Event>,
}

#[derive(Debug)]
enum ArrivalStep {
    Offer(String),
    Offering,
    Release,
    Releasing,
    Finished,
}

impl Arrival {
    /// `token` arrived for `origin`; `None`: one may have (the page says
    /// so), release without an offer.
    pub fn new(origin: &str, token: Option<&str>) -> Self {
        Self {
            origin: origin.to_owned(),
            step: token.map_or(ArrivalStep::Release, |t| ArrivalStep::Offer(t.to_owned())),
            released: 0,
            events: Vec::new(),
        }
    }

    /// A token for `origin` is in hand already (asked for, and offered):
    /// release.
    pub fn in_hand(origin: &str) -> Self {
        Self::new(origin, None)
    }

    /// How many entries were released.
    pub fn released(&self) -> usize {
        self.released
    }

    /// The next I/O of this step; `None` when it has none left.
    pub fn next_io(&mut self) -> Option<Io> {
        match core::mem::replace(&mut self.step, ArrivalStep::Finished) {
            ArrivalStep::Offer(token) => {
                self.step = ArrivalStep::Offering;
                Some(Io::Offer(OfferAsk::new(self.origin.clone(), token)))
            }
            ArrivalStep::Release => {
                self.step = ArrivalStep::Releasing;
                Some(Io::Store(StoreAsk::new(Tx::Release(Release::new(
                    &self.origin,
                )))))
            }
            ArrivalStep::Offering | ArrivalStep::Releasing | ArrivalStep::Finished => None,
        }
    }

    /// The reply to the I/O [`next_io`](Self::next_io) gave.
    pub fn take(&mut self, reply: Reply) {
        self.step = match (&self.step, reply.fed()) {
            (ArrivalStep::Offering, Fed::Fresh(true)) => ArrivalStep::Release,
            (ArrivalStep::Releasing, Fed::Stored(Tx::Release(release))) => {
                let heads = release.finish();
                self.released = heads.len();
                self.events
                    .extend(heads.into_iter().map(|head| Event::Queued {
                        id: head.id,
                        lane: head.lane,
                        reason: "token arrived".into(),
                    }));
                ArrivalStep::Finished
            }
            _ => ArrivalStep::Finished,
        };
    }

    /// The events decided so far, taken.
    pub fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }
}

impl Machine for Arrival {
    fn poll(&mut self, _now: Millis) -> Io {
        self.next_io().unwrap_or(Io::Done)
    }

    fn feed(&mut self, reply: Reply, _cx: &mut Cx<'_>) {
        self.take(reply);
    }

    fn take_events(&mut self) -> Vec<Event> {
        Arrival::take_events(self)
    }
}

/// A service worker's first look at a matched request: forward it now, or
/// queue it at once (its lane has a backlog or is held, its origin is
/// paused). A bearer token on the request is taken as the latest token
/// for its origin. Result: [`Intercept::decision`].
#[derive(Debug)]
pub struct Intercept {
    lane: String,
    origin: String,
    pacer: PacerConfig,
    arrival: Option<Arrival>,
    step: InterceptStep,
    now: Millis,
    decision: Option<BeforeForward>,
    events: Vec<Event>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InterceptStep {
    Read,
    Reading,
    /// The origin's throttle limits it: ask it for a request.
    Gate,
    Gating,
    Finished,
}

impl Intercept {
    /// The first look at `prepared`, under the origin's `pacer` (its herd
    /// throttle).
    pub fn new(prepared: &Prepared, pacer: PacerConfig) -> Self {
        Self {
            lane: prepared.lane.clone(),
            origin: prepared.origin.clone(),
            pacer,
            arrival: prepared
                .bearer
                .as_deref()
                .map(|token| Arrival::new(&prepared.origin, Some(token))),
            step: InterceptStep::Read,
            now: 0,
            decision: None,
            events: Vec::new(),
        }
    }

    /// The decision, once finished.
    pub fn decision(&self) -> Option<BeforeForward> {
        self.decision
    }
}

impl Machine for Intercept {
    fn poll(&mut self, now: Millis) -> Io {
        if let Some(io) = poll_arrival(&mut self.arrival, &mut self.events) {
            return io;
        }
        match self.step {
            InterceptStep::Read => {
                self.step = InterceptStep::Reading;
                self.now = now;
                Io::Store(StoreAsk::new(Tx::Lane(LaneAndSchedule::new(&self.lane))))
            }
            InterceptStep::Gate => {
                self.step = InterceptStep::Gating;
                Io::Store(StoreAsk::new(Tx::Edit(EditSchedule::new())))
            }
            InterceptStep::Reading | InterceptStep::Gating | InterceptStep::Finished => {
                self.step = InterceptStep::Finished;
                Io::Done
            }
        }
    }

    fn feed(&mut self, reply: Reply, _cx: &mut Cx<'_>) {
        if let Some(arrival) = &mut self.arrival {
            return arrival.take(reply);
        }
        match (self.step, reply.fed()) {
            (InterceptStep::Reading, Fed::Stored(Tx::Lane(read))) => {
                let (busy, schedule) = read.finish();
                let decision = intercept::before_forward(
                    busy,
                    schedule.holds.is_held(&self.lane),
                    schedule.paused_until(&self.origin, self.now),
                    self.now,
                );
                // A healthy origin's pass-through stops here: one read.
                self.step = InterceptStep::Finished;
                self.decision = Some(decision);
                if decision.forwards() {
                    if schedule.throttle_view(&self.origin).is_some() {
                        // Ask the throttle for its probe or a request of
                        // its reduced rate (a write).
                        self.step = InterceptStep::Gate;
                        self.decision = None;
                    } else if schedule.throttle_watches(&self.origin, &self.pacer, self.now) {
                        self.decision = Some(BeforeForward::ForwardWatched);
                    }
                }
            }
            (InterceptStep::Gating, _) => {
                self.step = InterceptStep::Finished;
                // The edit decided; a store that failed to run it left it
                // unset: keep the request then, as for a spent rate.
                if self.decision.is_none() {
                    self.decision = Some(BeforeForward::Queue(QueueReason::Throttled));
                }
            }
            _ => {}
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    fn edit_schedule(&mut self, schedule: &mut ScheduleState) {
        if self.step != InterceptStep::Gating {
            return;
        }
        let down = schedule.throttle_view(&self.origin) == Some(Limit::Probing);
        self.decision = Some(
            match schedule.take_throttle(&self.origin, &self.pacer, self.now) {
                // The probe of an origin that gives no answer (one at a
                // time), or a request of its reduced rate.
                Ok(()) => BeforeForward::ForwardWatched,
                Err(_) if down => BeforeForward::Queue(QueueReason::OriginDown),
                Err(_) => BeforeForward::Queue(QueueReason::Throttled),
            },
        );
    }
}

/// Polls a step that may be under way: its I/O, or `None` once it has
/// none left (then its events are moved to `events` and the step is gone).
fn poll_arrival(arrival: &mut Option<Arrival>, events: &mut Vec<Event>) -> Option<Io> {
    let step = arrival.as_mut()?;
    let io = step.next_io();
    events.append(&mut step.events);
    if io.is_none() {
        *arrival = None;
    }
    io
}

/// Makes a request durable ([`Entry::queued`]) under the queue's limits,
/// first taking a bearer token it carries as its origin's latest
/// ([`Arrival`]), when asked to. Result: [`Write::result`].
#[derive(Debug)]
pub struct Write {
    arrival: Option<Arrival>,
    prepared: Option<Prepared>,
    limits: QueueLimits,
    awaiting_token: bool,
    error: Option<LastError>,
    reason: String,
    result: Option<Result<Entry, Refusal>>,
    events: Vec<Event>,
}

impl Write {
    /// Queues `prepared` under `limits` (parked for a token when
    /// `awaiting_token`), with the `error` that queued it; `reason` is told
    /// with `queued`.
    pub fn new(
        prepared: Prepared,
        limits: QueueLimits,
        awaiting_token: bool,
        error: Option<LastError>,
        reason: &str,
    ) -> Self {
        Self {
            arrival: None,
            prepared: Some(prepared),
            limits,
            awaiting_token,
            error,
            reason: reason.to_owned(),
            result: None,
            events: Vec::new(),
        }
    }

    /// The page's write-through: its bearer token (if any) arrives first,
    /// then the request is queued, pending.
    pub fn through(prepared: Prepared, limits: QueueLimits) -> Self {
        let arrival = prepared
            .bearer
            .as_deref()
            .map(|token| Arrival::new(&prepared.origin, Some(token)));
        Self {
            arrival,
            ..Self::new(prepared, limits, false, None, "write-through")
        }
    }

    /// The stored entry or why the queue refused it, once finished.
    pub fn result(self) -> Option<Result<Entry, Refusal>> {
        self.result
    }

    /// The next I/O of this step at `now`; `None` when it has none left.
    fn next_io(&mut self, now: Millis) -> Option<Io> {
        if let Some(io) = poll_arrival(&mut self.arrival, &mut self.events) {
            return Some(io);
        }
        let prepared = self.prepared.take()?;
        let entry = Entry::queued(prepared, now, self.awaiting_token, self.error.take());
        Some(Io::Store(StoreAsk::new(Tx::Enqueue(Enqueue::new(
            entry,
            self.limits,
        )))))
    }

    fn take(&mut self, reply: Reply) {
        if let Some(arrival) = &mut self.arrival {
            return arrival.take(reply);
        }
        let Fed::Stored(Tx::Enqueue(enqueue)) = reply.fed() else {
            return;
        };
        let result = enqueue.finish();
        if let Ok(entry) = &result {
            self.events.push(Event::Queued {
                id: entry.id,
                lane: entry.lane.clone(),
                reason: core::mem::take(&mut self.reason),
            });
            if self.awaiting_token {
                self.events.push(Event::AwaitingToken {
                    id: entry.id,
                    lane: entry.lane.clone(),
                    origin: entry.origin.clone(),
                });
            }
        }
        self.result = Some(result);
    }
}

impl Machine for Write {
    fn poll(&mut self, now: Millis) -> Io {
        self.next_io(now).unwrap_or(Io::Done)
    }

    fn feed(&mut self, reply: Reply, _cx: &mut Cx<'_>) {
        self.take(reply);
    }

    fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }
}

/// The live answer to a forwarded request (or its failure): what it tells
/// its origin's pacing is written when it pauses (a healthy pass-through
/// writes nothing); then it passes through, or the request is queued —
/// after a `401` parked for a token, the refused token forgotten and a
/// new one asked for. Result: [`Forward::result`].
#[derive(Debug)]
pub struct Forward {
    config: Rc<Config>,
    asks: TokenAsks,
    origin: String,
    now: Millis,
    outcome: Outcome,
    note: OriginNote,
    /// What the answer tells the origin's throttle, when it is to be told.
    signal: Option<Signal>,
    prepared: Option<Prepared>,
    step: ForwardStep,
    result: Option<Result<Forwarded, Refusal>>,
    events: Vec<Event>,
}

#[derive(Debug)]
enum ForwardStep {
    Heed,
    Heeding,
    Decide,
    Forget(String, Write),
    Forgetting(Write),
    Writing(Write),
    Asking(Box<Entry>),
    Releasing(Arrival, Box<Entry>),
    Finished,
}

impl Forward {
    /// `prepared` was forwarded and `result` came back at `now`; a token
    /// asked for after a `401` is noted in `asks`. `watched`: the origin's
    /// throttle is to learn from the answer
    /// ([`BeforeForward::ForwardWatched`]); a lost connection or a shed
    /// answer is told to it anyway, a clean one only then (a healthy
    /// origin's pass-through writes nothing).
    pub fn new(
        prepared: Prepared,
        result: &Result<Response, TransportError>,
        config: Rc<Config>,
        asks: TokenAsks,
        now: Millis,
        watched: bool,
    ) -> Self {
        let outcome = classify(
            result,
            prepared.conflict_is_delivered,
            now,
            &config.classify,
        );
        let note = OriginNote::read(result, &outcome, &config, now);
        let signal = Signal::of(&outcome);
        let signal =
            (watched || matches!(signal, Signal::Unanswered | Signal::Shed)).then_some(signal);
        Self {
            config,
            asks,
            origin: prepared.origin.clone(),
            now,
            outcome,
            note,
            signal,
            prepared: Some(prepared),
            step: ForwardStep::Heed,
            result: None,
            events: Vec::new(),
        }
    }

    /// Passed through or queued, or why the queue refused it; once
    /// finished.
    pub fn result(self) -> Option<Result<Forwarded, Refusal>> {
        self.result
    }

    fn decide(&mut self) -> ForwardStep {
        let Some(prepared) = self.prepared.take() else {
            return ForwardStep::Finished;
        };
        match intercept::after_forward(&self.outcome) {
            AfterForward::PassThrough => {
                self.result = Some(Ok(Forwarded::PassThrough(self.outcome.clone())));
                ForwardStep::Finished
            }
            AfterForward::Queue {
                awaiting_token,
                error,
            } => {
                let refused = prepared.bearer.clone().filter(|_| awaiting_token);
                let reason = error.text();
                let limits = self.config.limits;
                let write = Write::new(prepared, limits, awaiting_token, Some(error), &reason);
                match refused {
                    Some(token) => ForwardStep::Forget(token, write),
                    None => ForwardStep::Writing(write),
                }
            }
        }
    }
}

impl Machine for Forward {
    fn poll(&mut self, now: Millis) -> Io {
        loop {
            match core::mem::replace(&mut self.step, ForwardStep::Finished) {
                ForwardStep::Heed
                    if self.signal.is_some() || !self.note.lets_more_go(&self.config.pacer) =>
                {
                    self.step = ForwardStep::Heeding;
                    return Io::Store(StoreAsk::new(Tx::Edit(EditSchedule::new())));
                }
                ForwardStep::Heed => self.step = ForwardStep::Decide,
                ForwardStep::Decide => self.step = self.decide(),
                ForwardStep::Forget(token, write) => {
                    self.step = ForwardStep::Forgetting(write);
                    return Io::Forget(ForgetAsk::new(vec![(self.origin.clone(), token)]));
                }
                ForwardStep::Writing(mut write) => {
                    if let Some(io) = write.next_io(now) {
                        self.step = ForwardStep::Writing(write);
                        return io;
                    }
                    self.events.append(&mut write.events);
                    let awaiting = write.awaiting_token;
                    match write.result() {
                        Some(Ok(entry)) if awaiting => {
                            self.step = ForwardStep::Asking(Box::new(entry));
                            self.asks.asked(&self.origin, now);
                            return Io::AskTokens(TokensAsk::new(vec![self.origin.clone()]));
                        }
                        Some(Ok(entry)) => {
                            self.result = Some(Ok(Forwarded::Queued(Box::new(entry))));
                        }
                        Some(Err(e)) => self.result = Some(Err(e)),
                        None => {}
                    }
                }
                ForwardStep::Releasing(mut arrival, entry) => {
                    if let Some(io) = arrival.next_io() {
                        self.step = ForwardStep::Releasing(arrival, entry);
                        return io;
                    }
                    self.events.append(&mut arrival.events);
                    self.result = Some(Ok(Forwarded::Queued(entry)));
                }
                ForwardStep::Heeding
                | ForwardStep::Forgetting(_)
                | ForwardStep::Asking(_)
                | ForwardStep::Finished => return Io::Done,
            }
        }
    }

    fn feed(&mut self, reply: Reply, _cx: &mut Cx<'_>) {
        self.step = match core::mem::replace(&mut self.step, ForwardStep::Finished) {
            ForwardStep::Heeding => ForwardStep::Decide,
            ForwardStep::Forgetting(write) => ForwardStep::Writing(write),
            ForwardStep::Writing(mut write) => {
                write.take(reply);
                ForwardStep::Writing(write)
            }
            ForwardStep::Asking(entry) => match reply.fed() {
                Fed::Tokens(came) if !came.is_empty() => {
                    ForwardStep::Releasing(Arrival::in_hand(&self.origin), entry)
                }
                _ => {
                    self.result = Some(Ok(Forwarded::Queued(entry)));
                    ForwardStep::Finished
                }
            },
            ForwardStep::Releasing(mut arrival, entry) => {
                arrival.take(reply);
                ForwardStep::Releasing(arrival, entry)
            }
            step => step,
        };
    }

    fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }

    fn edit_schedule(&mut self, schedule: &mut ScheduleState) {
        if !matches!(self.step, ForwardStep::Heeding) {
            return;
        }
        let pacer = &self.config.pacer;
        if let Some(signal) = self.signal {
            let was = schedule.throttle_view(&self.origin);
            schedule.answered(&self.origin, signal, pacer, self.now, self.now);
            let is = schedule.throttle_view(&self.origin);
            if crate::verdict::throttle_changed(was, is) {
                self.events.push(Event::Throttle {
                    origin: self.origin.clone(),
                    limit: is,
                });
            }
        }
        let paused = self.note.apply(&self.origin, schedule, pacer, self.now);
        self.events
            .extend(paused.into_iter().map(|(until, reason)| Event::Paused {
                origin: self.origin.clone(),
                until,
                reason,
            }));
    }
}

/// The device is back online: entries that were backing off only because
/// no answer came are due now, and a token that was asked for while the
/// network was down is asked for again at once (the record of the asks is
/// forgotten). Each origin that gave no answer stays in its probe until it
/// answers ([`crate::throttle`]): the first thing a recovering server gets
/// from this client is one request — at once, as the engine's probe gaps
/// ([`ProbeGaps`]) are forgotten too. Result: [`NetworkBack::due`].
#[derive(Debug)]
pub struct NetworkBack {
    asks: TokenAsks,
    gaps: Option<ProbeGaps>,
    asked: bool,
    due: usize,
}

impl NetworkBack {
    /// The network came back; `asks` is the engine's record of token asks.
    pub fn new(asks: TokenAsks) -> Self {
        Self {
            asks,
            gaps: None,
            asked: false,
            due: 0,
        }
    }

    /// Also ends the engine's probe gaps (`gaps`).
    pub fn probe_gaps(mut self, gaps: ProbeGaps) -> Self {
        self.gaps = Some(gaps);
        self
    }

    /// How many entries became due.
    pub fn due(&self) -> usize {
        self.due
    }
}

impl Machine for NetworkBack {
    fn poll(&mut self, now: Millis) -> Io {
        if core::mem::replace(&mut self.asked, true) {
            return Io::Done;
        }
        self.asks.forget();
        if let Some(gaps) = &self.gaps {
            gaps.forget();
        }
        Io::Store(StoreAsk::new(Tx::Hurry(Hurry::new(now))))
    }

    fn feed(&mut self, reply: Reply, _cx: &mut Cx<'_>) {
        if let Fed::Stored(Tx::Hurry(hurry)) = reply.fed() {
            self.due = hurry.finish();
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// What a service worker answers for a request it kept, or could not
/// keep: `202 {"queued":true,"id","lane","reason"}`, or, the caller
/// keeping its request, `{"queued":false,"error","message"}` with `507`
/// (full, or over the storage quota), `413` (too large), `409` (an id
/// taken) or `500` (the store failed). The statuses, codes and bodies are
/// the queue's own ([`EnqueueError::status`], [`EnqueueError::body`],
/// [`queued_body`](crate::queue::queued_body)), as every host answers.
pub fn kept_answer<E: core::error::Error + 'static>(
    result: &Result<Entry, EnqueueError<E>>,
    reason: &str,
) -> (u16, String) {
    match result {
        Ok(entry) => (202, crate::queue::queued_body(entry, reason)),
        Err(e) => (e.status(), e.body()),
    }
}

/// What a revive tells: `revived`, if a dead letter went back in the queue.
pub fn revived(id: EntryId, entry: Option<&Entry>) -> Option<Event> {
    entry.map(|entry| Event::Revived {
        id,
        lane: entry.lane.clone(),
    })
}

/// What a discard tells: `discarded`, if a dead letter was deleted.
pub fn discarded(id: EntryId, entry: Option<&Entry>) -> Option<Event> {
    entry.map(|_| Event::Discarded { id })
}

/// What a cancel tells: `cancelled`, if the entry was removed.
pub fn cancelled(id: EntryId, result: CancelResult) -> Option<Event> {
    (result == CancelResult::Cancelled).then_some(Event::Cancelled { id })
}

/// What a purge tells: `purged`, with the counts.
pub fn purged(purged: Purged) -> Event {
    Event::Purged {
        queued: purged.queued,
        dead: purged.dead,
    }
}

#[cfg(test)]
mod tests {
    //! The doors driven by hand, one step at a time: no store, no network,
    //! no executor. Each test is the whole conversation of one door with
    //! its driver; a transaction a door asks for is run by hand, its reads
    //! answered here ([`serve`]).

    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    use super::*;
    use crate::clock::SplitMix64;
    use crate::entry::{EntryState, StoredRequest};
    use crate::io::{feed_at, serve};
    use crate::queue::EnqueueError;
    use crate::store::{Read, Write};
    use crate::throttle::TOKEN;

    const ORIGIN: &str = "https://api.example.test";

    fn prepared(bearer: Option<&str>) -> Prepared {
        Prepared {
            id: EntryId::random(&mut SplitMix64::new(1)),
            route: "messages".into(),
            origin: ORIGIN.into(),
            lane: "c1".into(),
            request: StoredRequest {
                method: "POST".into(),
                url: format!("{ORIGIN}/api/v2/x"),
                headers: Vec::new(),
                body: b"{}".to_vec(),
            },
            idempotency_key: "k1".into(),
            needs_token: true,
            conflict_is_delivered: false,
            bearer: bearer.map(str::to_owned),
        }
    }

    fn answer(status: u16, headers: &[(&str, &str)]) -> Result<Response, TransportError> {
        Ok(Response {
            status,
            headers: headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body: Vec::new(),
        })
    }

    fn forward(bearer: Option<&str>, status: u16, headers: &[(&str, &str)]) -> Forward {
        Forward::new(
            prepared(bearer),
            &answer(status, headers),
            Rc::new(Config::default()),
            TokenAsks::default(),
            1_000,
            false,
        )
    }

    fn kinds(machine: &mut dyn Machine) -> Vec<&'static str> {
        machine.take_events().iter().map(Event::kind).collect()
    }

    /// Answers a release of `ORIGIN` with `parked`.
    fn released(parked: &Entry) -> impl FnMut(Read) -> crate::store::Found + '_ {
        move |read| match read {
            Read::State(ask) => {
                assert_eq!(ask.origin.as_deref(), Some(ORIGIN));
                ask.reply(vec![parked.clone()], None)
            }
            other => panic!("{other:?}"),
        }
    }

    /// Answers an enqueue: not full, a new id, the last `seq` given 0.
    fn admitted(read: Read) -> crate::store::Found {
        match read {
            Read::Full(ask) => ask.reply(false),
            Read::Taken(ask) => ask.reply(false),
            Read::LastSeq(ask) => ask.reply(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn intercept_takes_a_new_bearer_token_releases_its_origin_then_reads_the_lane() {
        let mut door = Intercept::new(&prepared(Some("t1")), PacerConfig::default());
        let Io::Offer(offer) = door.poll(1_000) else {
            panic!("the bearer token is offered first");
        };
        assert_eq!((offer.origin(), offer.token()), (ORIGIN, "t1"));
        feed_at(&mut door, offer.reply(true), 1_000);
        let Io::Store(release) = door.poll(1_000) else {
            panic!("a new token releases its origin's parked entries");
        };
        let parked = Entry::queued(prepared(None), 500, true, None);
        serve(&mut door, release, 1_000, released(&parked));
        let Io::Store(read) = door.poll(1_001) else {
            panic!("then the lane is read");
        };
        assert_eq!(kinds(&mut door), ["queued"], "the released entry is told");
        serve(&mut door, read, 1_002, |read| match read {
            Read::Lane(ask) => {
                assert_eq!(ask.lane, "c1");
                ask.reply(true)
            }
            Read::Schedule(ask) => ask.reply(ScheduleState::default()),
            other => panic!("{other:?}"),
        });
        assert!(matches!(door.poll(1_003), Io::Done));
        assert_eq!(
            door.decision(),
            Some(BeforeForward::Queue(intercept::QueueReason::LaneBusy)),
            "a lane with a backlog queues at once"
        );
    }

    #[test]
    fn intercept_with_a_known_token_releases_nothing_and_forwards_on_a_free_lane() {
        let mut door = Intercept::new(&prepared(Some("t1")), PacerConfig::default());
        let Io::Offer(offer) = door.poll(1_000) else {
            panic!("the bearer token is offered first");
        };
        feed_at(&mut door, offer.reply(false), 1_000);
        let Io::Store(read) = door.poll(1_000) else {
            panic!("the lane is read");
        };
        serve(&mut door, read, 1_000, |read| match read {
            Read::Lane(ask) => ask.reply(false),
            Read::Schedule(ask) => ask.reply(ScheduleState::default()),
            other => panic!("{other:?}"),
        });
        assert!(matches!(door.poll(1_000), Io::Done));
        assert_eq!(door.decision(), Some(BeforeForward::Forward));
        assert!(kinds(&mut door).is_empty());
    }

    /// Runs an intercept of a free lane on an origin whose schedule is
    /// `schedule`; returns the decision and the schedule it wrote, if any.
    fn intercept_on(
        schedule: &ScheduleState,
        now: Millis,
    ) -> (BeforeForward, Option<ScheduleState>) {
        let mut door = Intercept::new(&prepared(None), PacerConfig::default());
        let Io::Store(read) = door.poll(now) else {
            panic!("the lane is read");
        };
        serve(&mut door, read, now, |read| match read {
            Read::Lane(ask) => ask.reply(false),
            Read::Schedule(ask) => ask.reply(schedule.clone()),
            other => panic!("{other:?}"),
        });
        let mut written = None;
        if let Io::Store(edit) = door.poll(now) {
            let writes = serve(&mut door, edit, now, |read| match read {
                Read::Schedule(ask) => ask.reply(schedule.clone()),
                other => panic!("{other:?}"),
            });
            if let [Write::Schedule(after)] = &writes[..] {
                written = Some(after.clone());
            }
        }
        assert!(matches!(door.poll(now), Io::Done));
        (door.decision().expect("decided"), written)
    }

    #[test]
    fn the_live_attempt_obeys_the_throttle() {
        // Issue 22: while an origin gives no answer, the worker's live
        // first attempt obeys the probe as a flush does: one goes (and
        // holds the probe), the rest are answered 202 at once.
        let pacer = PacerConfig::default();
        let mut schedule = ScheduleState::default();
        schedule.answered(ORIGIN, Signal::Unanswered, &pacer, 1_000, 0);
        let (first, written) = intercept_on(&schedule, 2_000);
        assert_eq!(first, BeforeForward::ForwardWatched, "the probe goes live");
        let probing = written.expect("the probe is taken in the schedule");
        let (second, _) = intercept_on(&probing, 2_001);
        assert_eq!(second, BeforeForward::Queue(QueueReason::OriginDown));
        assert_eq!(QueueReason::OriginDown.name(), "origin-down");
        // A shedding server: the live attempt takes from the reduced rate,
        // one goes and the next is kept.
        let mut schedule = ScheduleState::default();
        for i in 0..10 {
            schedule.answered(ORIGIN, Signal::Shed, &pacer, 1_000 + i, TOKEN);
        }
        let (early, _) = intercept_on(&schedule, 2_000);
        assert_eq!(early, BeforeForward::Queue(QueueReason::Throttled));
        let (first, written) = intercept_on(&schedule, 121_000);
        assert_eq!(
            first,
            BeforeForward::ForwardWatched,
            "its interval has passed"
        );
        let schedule = written.expect("the request is taken from the rate");
        let (second, _) = intercept_on(&schedule, 121_001);
        assert_eq!(second, BeforeForward::Queue(QueueReason::Throttled));
        // A healthy origin's pass-through reads once and writes nothing.
        let (healthy, written) = intercept_on(&ScheduleState::default(), 2_000);
        assert_eq!((healthy, written), (BeforeForward::Forward, None));
    }

    #[test]
    fn the_live_answer_teaches_the_throttle() {
        let config = Rc::new(Config::default());
        let live = |status: u16, watched: bool| {
            Forward::new(
                prepared(None),
                &answer(status, &[]),
                config.clone(),
                TokenAsks::default(),
                5_000,
                watched,
            )
        };
        // The probe comes back clean: the origin is answered again.
        let mut schedule = ScheduleState::default();
        schedule.answered(ORIGIN, Signal::Unanswered, &config.pacer, 1_000, 0);
        let mut door = live(200, true);
        let Io::Store(edit) = door.poll(5_000) else {
            panic!("a watched answer is written");
        };
        let writes = serve(&mut door, edit, 5_000, |read| match read {
            Read::Schedule(ask) => ask.reply(schedule.clone()),
            other => panic!("{other:?}"),
        });
        let [Write::Schedule(after)] = &writes[..] else {
            panic!("{writes:?}")
        };
        assert_eq!(after.throttle_view(ORIGIN), None, "up again");
        assert_eq!(kinds(&mut door), ["throttle"], "and it is told");
        // A lost connection on a healthy origin marks it down, watched or not.
        let lost = Forward::new(
            prepared(None),
            &Err(TransportError {
                kind: crate::classify::FailureKind::Network,
                message: "offline".into(),
            }),
            config.clone(),
            TokenAsks::default(),
            5_000,
            false,
        );
        let mut lost = lost;
        let Io::Store(edit) = lost.poll(5_000) else {
            panic!("an unanswered live attempt is written");
        };
        let writes = serve(&mut lost, edit, 5_000, |read| match read {
            Read::Schedule(ask) => ask.reply(ScheduleState::default()),
            other => panic!("{other:?}"),
        });
        let [Write::Schedule(after), ..] = &writes[..] else {
            panic!("{writes:?}")
        };
        assert_eq!(after.throttle_view(ORIGIN), Some(Limit::Probing));
    }

    #[test]
    fn a_healthy_answer_passes_through_without_any_io() {
        let mut door = forward(None, 200, &[]);
        assert!(matches!(door.poll(1_000), Io::Done), "no write at all");
        assert!(matches!(
            door.result(),
            Some(Ok(Forwarded::PassThrough(Outcome::Delivered { .. })))
        ));
    }

    #[test]
    fn a_401_forgets_the_token_queues_the_request_parked_and_asks_for_a_new_one() {
        let mut door = forward(Some("old"), 401, &[]);
        let Io::Forget(forget) = door.poll(1_000) else {
            panic!("the refused token is forgotten first");
        };
        assert_eq!(forget.refused(), [(ORIGIN.to_owned(), "old".to_owned())]);
        feed_at(&mut door, forget.reply(), 1_000);
        let Io::Store(enqueue) = door.poll(1_001) else {
            panic!("then the request is made durable");
        };
        let writes = serve(&mut door, enqueue, 1_002, admitted);
        let [Write::Add(entry)] = &writes[..] else {
            panic!("{writes:?}");
        };
        assert_eq!(entry.state, EntryState::AwaitingToken, "parked for a token");
        assert_eq!(entry.created_at, 1_001);
        assert!(entry.last_error.is_some(), "with the error that queued it");
        assert_eq!(entry.seq, 1);
        let stored = entry.clone();
        let Io::AskTokens(ask) = door.poll(1_003) else {
            panic!("then a token is asked for");
        };
        assert_eq!(ask.origins(), [ORIGIN]);
        assert_eq!(kinds(&mut door), ["queued", "awaiting-token"]);
        feed_at(&mut door, ask.reply(vec![ORIGIN.to_owned()]), 1_004);
        let Io::Store(release) = door.poll(1_004) else {
            panic!("a token came at once: the origin is released");
        };
        serve(&mut door, release, 1_005, released(&stored));
        assert!(matches!(door.poll(1_005), Io::Done));
        assert_eq!(kinds(&mut door), ["queued"]);
        let Some(Ok(Forwarded::Queued(queued))) = door.result() else {
            panic!("queued");
        };
        assert_eq!(queued.seq, 1);
    }

    #[test]
    fn a_429_pauses_its_origin_first_and_a_refused_enqueue_is_the_callers_error() {
        let mut door = forward(None, 429, &[("retry-after", "30")]);
        let Io::Store(edit) = door.poll(1_000) else {
            panic!("what the answer tells its origin is written first");
        };
        let writes = serve(&mut door, edit, 1_000, |read| match read {
            Read::Schedule(ask) => ask.reply(ScheduleState::default()),
            other => panic!("{other:?}"),
        });
        let [Write::Schedule(schedule)] = &writes[..] else {
            panic!("{writes:?}");
        };
        assert_eq!(schedule.paused_until(ORIGIN, 1_000), Some(31_000));
        assert_eq!(kinds(&mut door), ["paused"]);
        let Io::Store(enqueue) = door.poll(1_001) else {
            panic!("then the request is queued");
        };
        let quota = enqueue
            .quota_exceeded("disk full".into())
            .expect("an enqueue can be refused for the quota");
        feed_at(&mut door, quota, 1_002);
        assert!(matches!(door.poll(1_002), Io::Done));
        assert!(kinds(&mut door).is_empty(), "nothing queued, nothing told");
        assert!(matches!(
            door.result(),
            Some(Err(EnqueueError::QuotaExceeded(_)))
        ));
    }

    #[test]
    fn network_back_hurries_the_unreachable_and_nothing_else() {
        let asks = TokenAsks::default();
        asks.asked(ORIGIN, 50_000);
        let mut door = NetworkBack::new(asks.clone());
        let Io::Store(hurry) = door.poll(60_000) else {
            panic!("due now first");
        };
        let mut unanswered = Entry::queued(prepared(None), 500, false, None);
        unanswered.not_before = 90_000;
        unanswered.last_error = Some(LastError::new("network", "offline"));
        let writes = serve(&mut door, hurry, 60_000, |read| match read {
            Read::State(ask) => {
                assert_eq!(ask.origin, None);
                ask.reply(vec![unanswered.clone(); 3], None)
            }
            other => panic!("{other:?}"),
        });
        assert_eq!(writes.len(), 3, "each due at once: {writes:?}");
        // No spread: each unanswered origin is probed first by the flush
        // that follows (its throttle), then goes at its pace; a token asked
        // for while the network was down is asked for again at once.
        assert!(matches!(door.poll(60_003), Io::Done));
        assert_eq!(door.due(), 3);
        assert_eq!(asks.again_at(ORIGIN, 15_000), None);
    }

    #[test]
    fn admin_calls_tell_only_what_they_did() {
        let entry = Entry::queued(prepared(None), 1_000, false, None);
        let id = entry.id;
        let kind = |event: Option<Event>| event.map(|e| e.kind());
        assert_eq!(kind(revived(id, Some(&entry))), Some("revived"));
        assert_eq!(kind(revived(id, None)), None);
        assert_eq!(kind(discarded(id, Some(&entry))), Some("discarded"));
        assert_eq!(kind(discarded(id, None)), None);
        assert_eq!(kind(cancelled(id, CancelResult::InFlight)), None);
        assert_eq!(kind(cancelled(id, CancelResult::NotFound)), None);
        assert_eq!(
            kind(cancelled(id, CancelResult::Cancelled)),
            Some("cancelled")
        );
        assert_eq!(purged(Purged { queued: 2, dead: 1 }).kind(), "purged");
    }
}
