//! The engine's front doors as synchronous machines: everything but the
//! flush ([`crate::flush`]) that reads or writes the queue.
//!
//! # Design
//!
//! Each door is a small [`Machine`]: built from its arguments, polled for
//! I/O, fed the results, finished with its result in a field the engine
//! reads. Each one only sequences a few store calls around a decision
//! made by a pure function elsewhere, and says what to tell:
//!
//! | door | steps (→ the pure decision) |
//! |---|---|
//! | [`Intercept`] (a service worker's first look) | a bearer token's [`Arrival`]; read the lane and the schedule → [`intercept::before_forward`] |
//! | [`Forward`] (the live answer to a forwarded request) | [`classify`], [`OriginNote`] written into the schedule when it pauses; → [`intercept::after_forward`]: pass through, or forget a refused token, [`Write`] it, ask for a token |
//! | [`Write`] (write-through, and the queueing of a forward) | a bearer token's [`Arrival`]; [`Entry::queued`] made durable |
//! | [`Arrival`] (a token arrived, or may have) | offer it; if new, release the origin's parked entries |
//! | [`NetworkBack`] (the device is online again) | due now what was unreachable; the backlog's [`Spread`] ([`crate::throttle`]) |
//! | [`Admin`] (revive, discard, cancel, purge, stats) | one store call, and its event |
//!
//! [`Arrival`] and [`Spread`] are also *steps* of other machines (the
//! flush uses both): a parent polls its step until the step has no more
//! I/O ([`Arrival::next_io`] → `None`), feeding it every result meanwhile,
//! then takes its events.

use crate::classify::LastError;
use crate::classify::{Outcome, Response, TransportError, classify};
use crate::clock::Millis;
use crate::config::Config;
use crate::entry::Prepared;
use crate::entry::{Entry, EntryId};
use crate::event::Event;
use crate::intercept::{self, AfterForward, BeforeForward};
use crate::io::{Cx, Done, Io, Machine};
use crate::pacer::{PacerConfig, ScheduleState};
use crate::store::{CancelResult, EnqueueError};
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
        match std::mem::replace(&mut self.step, ArrivalStep::Finished) {
            ArrivalStep::Offer(token) => {
                self.step = ArrivalStep::Offering;
                Some(Io::Offer {
                    origin: self.origin.clone(),
                    token,
                })
            }
            ArrivalStep::Release => {
                self.step = ArrivalStep::Releasing;
                Some(Io::Release(self.origin.clone()))
            }
            ArrivalStep::Offering | ArrivalStep::Releasing | ArrivalStep::Finished => None,
        }
    }

    /// The result of the I/O [`next_io`](Self::next_io) gave.
    pub fn take<E: std::error::Error + 'static>(&mut self, done: Done<E>) {
        self.step = match (&self.step, done) {
            (ArrivalStep::Offering, Done::Fresh(true)) => ArrivalStep::Release,
            (ArrivalStep::Releasing, Done::Released(heads)) => {
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
        std::mem::take(&mut self.events)
    }
}

impl<E: std::error::Error + 'static> Machine<E> for Arrival {
    fn poll(&mut self, _now: Millis) -> Io {
        self.next_io().unwrap_or(Io::Done)
    }

    fn feed(&mut self, done: Done<E>, _cx: &mut Cx<'_>) {
        self.take(done);
    }

    fn take_events(&mut self) -> Vec<Event> {
        Arrival::take_events(self)
    }
}

/// Spreads the backlog of origins back from an outage over a window
/// ([`crate::throttle`]): counts the backlog, then edits the schedule with
/// a random phase.
#[derive(Debug)]
pub struct Spread {
    /// `(origin, outage length)` for each origin back, or `None`: every
    /// origin still unanswered (the device came back online).
    back: Option<Vec<(String, Millis)>>,
    pacer: PacerConfig,
    step: SpreadStep,
    now: Millis,
    backlog: u64,
    phase: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpreadStep {
    Count,
    Counting,
    Edit,
    Editing,
    Finished,
}

impl Spread {
    /// Spreads the origins `back` (see the field), under `pacer`.
    pub fn new(back: Option<Vec<(String, Millis)>>, pacer: PacerConfig) -> Self {
        Self {
            back,
            pacer,
            step: SpreadStep::Count,
            now: 0,
            backlog: 0,
            phase: 0,
        }
    }

    /// The next I/O of this step at `now`; `None` when it has none left.
    pub fn next_io(&mut self, now: Millis) -> Option<Io> {
        match self.step {
            SpreadStep::Count => {
                self.now = now;
                self.step = SpreadStep::Counting;
                Some(Io::Stats(now))
            }
            SpreadStep::Edit => {
                self.step = SpreadStep::Editing;
                Some(Io::EditSchedule)
            }
            SpreadStep::Counting | SpreadStep::Editing | SpreadStep::Finished => {
                self.step = SpreadStep::Finished;
                None
            }
        }
    }

    /// The result of the I/O [`next_io`](Self::next_io) gave.
    pub fn take<E: std::error::Error + 'static>(&mut self, done: Done<E>, cx: &mut Cx<'_>) {
        self.step = match (self.step, done) {
            (SpreadStep::Counting, Done::Stats(stats)) => {
                self.backlog = stats.queued() as u64;
                self.phase = cx.rng.next_u64();
                SpreadStep::Edit
            }
            _ => SpreadStep::Finished,
        };
    }

    /// Inside [`Io::EditSchedule`]: spreads the backlog.
    pub fn edit(&self, schedule: &mut ScheduleState) {
        if self.step != SpreadStep::Editing {
            return;
        }
        let (pacer, now, backlog, phase) = (&self.pacer, self.now, self.backlog, self.phase);
        match &self.back {
            Some(back) => {
                for (origin, outage) in back {
                    schedule.spread(origin, *outage, backlog, pacer, now, phase);
                }
            }
            None => {
                schedule.network_back(backlog, pacer, now, phase);
            }
        }
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
    arrival: Option<Arrival>,
    reading: bool,
    now: Millis,
    decision: Option<BeforeForward>,
    events: Vec<Event>,
}

impl Intercept {
    /// The first look at `prepared`.
    pub fn new(prepared: &Prepared) -> Self {
        Self {
            lane: prepared.lane.clone(),
            origin: prepared.origin.clone(),
            arrival: prepared
                .bearer
                .as_deref()
                .map(|token| Arrival::new(&prepared.origin, Some(token))),
            reading: false,
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

impl<E: std::error::Error + 'static> Machine<E> for Intercept {
    fn poll(&mut self, now: Millis) -> Io {
        if let Some(io) = poll_arrival(&mut self.arrival, &mut self.events) {
            return io;
        }
        if self.reading || self.decision.is_some() {
            return Io::Done;
        }
        self.reading = true;
        self.now = now;
        Io::LaneAndSchedule(self.lane.clone())
    }

    fn feed(&mut self, done: Done<E>, _cx: &mut Cx<'_>) {
        if let Some(arrival) = &mut self.arrival {
            return arrival.take(done);
        }
        if let Done::Lane { busy, schedule } = done {
            self.decision = Some(intercept::before_forward(
                busy,
                schedule.holds.is_held(&self.lane),
                schedule.paused_until(&self.origin, self.now),
                self.now,
            ));
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
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

/// Makes a request durable ([`Entry::queued`]), first taking a bearer
/// token it carries as its origin's latest ([`Arrival`]), when asked to.
/// Result: [`Write::result`].
#[derive(Debug)]
pub struct Write<E: std::error::Error + 'static> {
    arrival: Option<Arrival>,
    prepared: Option<Prepared>,
    awaiting_token: bool,
    error: Option<LastError>,
    reason: String,
    result: Option<Result<Entry, EnqueueError<E>>>,
    events: Vec<Event>,
}

impl<E: std::error::Error + 'static> Write<E> {
    /// Queues `prepared` (parked for a token when `awaiting_token`), with
    /// the `error` that queued it; `reason` is told with `queued`.
    pub fn new(
        prepared: Prepared,
        awaiting_token: bool,
        error: Option<LastError>,
        reason: &str,
    ) -> Self {
        Self {
            arrival: None,
            prepared: Some(prepared),
            awaiting_token,
            error,
            reason: reason.to_owned(),
            result: None,
            events: Vec::new(),
        }
    }

    /// The page's write-through: its bearer token (if any) arrives first,
    /// then the request is queued, pending.
    pub fn through(prepared: Prepared) -> Self {
        let arrival = prepared
            .bearer
            .as_deref()
            .map(|token| Arrival::new(&prepared.origin, Some(token)));
        Self {
            arrival,
            ..Self::new(prepared, false, None, "write-through")
        }
    }

    /// The stored entry or why the queue refused it, once finished.
    pub fn result(self) -> Option<Result<Entry, EnqueueError<E>>> {
        self.result
    }

    /// The next I/O of this step at `now`; `None` when it has none left.
    fn next_io(&mut self, now: Millis) -> Option<Io> {
        if let Some(io) = poll_arrival(&mut self.arrival, &mut self.events) {
            return Some(io);
        }
        let prepared = self.prepared.take()?;
        let entry = Entry::queued(prepared, now, self.awaiting_token, self.error.take());
        Some(Io::Enqueue(Box::new(entry)))
    }

    fn take(&mut self, done: Done<E>) {
        if let Some(arrival) = &mut self.arrival {
            return arrival.take(done);
        }
        let Done::Enqueued(result) = done else {
            return;
        };
        if let Ok(entry) = &result {
            self.events.push(Event::Queued {
                id: entry.id,
                lane: entry.lane.clone(),
                reason: std::mem::take(&mut self.reason),
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

impl<E: std::error::Error + 'static> Machine<E> for Write<E> {
    fn poll(&mut self, now: Millis) -> Io {
        self.next_io(now).unwrap_or(Io::Done)
    }

    fn feed(&mut self, done: Done<E>, _cx: &mut Cx<'_>) {
        self.take(done);
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

/// The live answer to a forwarded request (or its failure): what it tells
/// its origin's pacing is written when it pauses (a healthy pass-through
/// writes nothing); then it passes through, or the request is queued —
/// after a `401` parked for a token, the refused token forgotten and a
/// new one asked for. Result: [`Forward::result`].
#[derive(Debug)]
pub struct Forward<'c, E: std::error::Error + 'static> {
    config: &'c Config,
    origin: String,
    now: Millis,
    outcome: Outcome,
    note: OriginNote,
    prepared: Option<Prepared>,
    step: ForwardStep<E>,
    result: Option<Result<Forwarded, EnqueueError<E>>>,
    events: Vec<Event>,
}

#[derive(Debug)]
enum ForwardStep<E: std::error::Error + 'static> {
    Heed,
    Heeding,
    Decide,
    Forget(String, Write<E>),
    Forgetting(Write<E>),
    Writing(Write<E>),
    Asking(Box<Entry>),
    Releasing(Arrival, Box<Entry>),
    Finished,
}

impl<'c, E: std::error::Error + 'static> Forward<'c, E> {
    /// `prepared` was forwarded and `result` came back at `now`.
    pub fn new(
        prepared: Prepared,
        result: &Result<Response, TransportError>,
        config: &'c Config,
        now: Millis,
    ) -> Self {
        let outcome = classify(
            result,
            prepared.conflict_is_delivered,
            now,
            &config.classify,
        );
        let note = OriginNote::read(result, &outcome, config, now);
        Self {
            config,
            origin: prepared.origin.clone(),
            now,
            outcome,
            note,
            prepared: Some(prepared),
            step: ForwardStep::Heed,
            result: None,
            events: Vec::new(),
        }
    }

    /// Passed through or queued, or why the queue refused it; once
    /// finished.
    pub fn result(self) -> Option<Result<Forwarded, EnqueueError<E>>> {
        self.result
    }

    fn decide(&mut self) -> ForwardStep<E> {
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
                let reason = error.to_string();
                let write = Write::new(prepared, awaiting_token, Some(error), &reason);
                match refused {
                    Some(token) => ForwardStep::Forget(token, write),
                    None => ForwardStep::Writing(write),
                }
            }
        }
    }
}

impl<E: std::error::Error + 'static> Machine<E> for Forward<'_, E> {
    fn poll(&mut self, now: Millis) -> Io {
        loop {
            match std::mem::replace(&mut self.step, ForwardStep::Finished) {
                ForwardStep::Heed if !self.note.lets_more_go(&self.config.pacer) => {
                    self.step = ForwardStep::Heeding;
                    return Io::EditSchedule;
                }
                ForwardStep::Heed => self.step = ForwardStep::Decide,
                ForwardStep::Decide => self.step = self.decide(),
                ForwardStep::Forget(token, write) => {
                    self.step = ForwardStep::Forgetting(write);
                    return Io::Forget(vec![(self.origin.clone(), token)]);
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
                            return Io::AskTokens(vec![self.origin.clone()]);
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

    fn feed(&mut self, done: Done<E>, _cx: &mut Cx<'_>) {
        self.step = match (
            std::mem::replace(&mut self.step, ForwardStep::Finished),
            done,
        ) {
            (ForwardStep::Heeding, _) => ForwardStep::Decide,
            (ForwardStep::Forgetting(write), _) => ForwardStep::Writing(write),
            (ForwardStep::Writing(mut write), done) => {
                write.take(done);
                ForwardStep::Writing(write)
            }
            (ForwardStep::Asking(entry), Done::Tokens(came)) if !came.is_empty() => {
                ForwardStep::Releasing(Arrival::in_hand(&self.origin), entry)
            }
            (ForwardStep::Asking(entry), _) => {
                self.result = Some(Ok(Forwarded::Queued(entry)));
                ForwardStep::Finished
            }
            (ForwardStep::Releasing(mut arrival, entry), done) => {
                arrival.take(done);
                ForwardStep::Releasing(arrival, entry)
            }
            (step, _) => step,
        };
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }

    fn edit_schedule(&mut self, schedule: &mut ScheduleState) {
        if !matches!(self.step, ForwardStep::Heeding) {
            return;
        }
        let paused = self
            .note
            .apply(&self.origin, schedule, &self.config.pacer, self.now);
        self.events
            .extend(paused.into_iter().map(|(until, reason)| Event::Paused {
                origin: self.origin.clone(),
                until,
                reason,
            }));
    }
}

/// The device is back online: entries that were backing off only because
/// no answer came are due now, within the [`Spread`] of each origin that
/// was unreachable. Result: [`NetworkBack::due`].
#[derive(Debug)]
pub struct NetworkBack {
    asked: bool,
    due: usize,
    spread: Option<Spread>,
}

impl NetworkBack {
    /// The network came back; spread under `pacer`.
    pub fn new(pacer: PacerConfig) -> Self {
        Self {
            asked: false,
            due: 0,
            spread: Some(Spread::new(None, pacer)),
        }
    }

    /// How many entries became due.
    pub fn due(&self) -> usize {
        self.due
    }
}

impl<E: std::error::Error + 'static> Machine<E> for NetworkBack {
    fn poll(&mut self, now: Millis) -> Io {
        if !self.asked {
            self.asked = true;
            return Io::RetryUnreachable(now);
        }
        self.spread
            .as_mut()
            .and_then(|spread| spread.next_io(now))
            .unwrap_or(Io::Done)
    }

    fn feed(&mut self, done: Done<E>, cx: &mut Cx<'_>) {
        match done {
            Done::Count(due) => self.due = due,
            done => {
                if let Some(spread) = &mut self.spread {
                    spread.take(done, cx);
                }
            }
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        Vec::new()
    }

    fn edit_schedule(&mut self, schedule: &mut ScheduleState) {
        if let Some(spread) = &self.spread {
            spread.edit(schedule);
        }
    }
}

/// A call on one entry or the whole queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminCall {
    /// Put a dead letter back in the queue.
    Revive(EntryId),
    /// Delete a dead letter.
    Discard(EntryId),
    /// Remove a queued entry not being sent.
    Cancel(EntryId),
    /// Delete everything.
    Purge,
    /// Counts and ages.
    Stats,
}

/// One [`AdminCall`]: one store call, and its event when it did
/// something. Result: [`Admin::result`], the store's answer.
#[derive(Debug)]
pub struct Admin<E: std::error::Error + 'static> {
    call: AdminCall,
    asked: bool,
    result: Option<Done<E>>,
    events: Vec<Event>,
}

impl<E: std::error::Error + 'static> Admin<E> {
    /// The call.
    pub fn new(call: AdminCall) -> Self {
        Self {
            call,
            asked: false,
            result: None,
            events: Vec::new(),
        }
    }

    /// What the store answered, once finished.
    pub fn result(self) -> Option<Done<E>> {
        self.result
    }
}

impl<E: std::error::Error + 'static> Machine<E> for Admin<E> {
    fn poll(&mut self, now: Millis) -> Io {
        if std::mem::replace(&mut self.asked, true) {
            return Io::Done;
        }
        match self.call {
            AdminCall::Revive(id) => Io::Revive(id, now),
            AdminCall::Discard(id) => Io::Discard(id),
            AdminCall::Cancel(id) => Io::Cancel(id),
            AdminCall::Purge => Io::Purge,
            AdminCall::Stats => Io::Stats(now),
        }
    }

    fn feed(&mut self, done: Done<E>, _cx: &mut Cx<'_>) {
        let event = match (self.call, &done) {
            (AdminCall::Revive(id), Done::Entry(Some(entry))) => Some(Event::Revived {
                id,
                lane: entry.lane.clone(),
            }),
            (AdminCall::Discard(id), Done::Entry(Some(_))) => Some(Event::Discarded { id }),
            (AdminCall::Cancel(id), Done::Cancelled(CancelResult::Cancelled)) => {
                Some(Event::Cancelled { id })
            }
            (AdminCall::Purge, Done::Purged(purged)) => Some(Event::Purged {
                queued: purged.queued,
                dead: purged.dead,
            }),
            _ => None,
        };
        self.events.extend(event);
        self.result = Some(done);
    }

    fn take_events(&mut self) -> Vec<Event> {
        std::mem::take(&mut self.events)
    }
}

#[cfg(test)]
mod tests {
    //! The doors driven by hand, one step at a time: no store, no network,
    //! no executor. Each test is the whole conversation of one door with
    //! its driver.

    use super::*;
    use crate::clock::SplitMix64;
    use crate::entry::{EntryState, Head, StoredRequest};
    use crate::io::feed_at;
    use crate::store::Stats;

    type Error = std::io::Error;
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

    fn kinds(machine: &mut dyn Machine<Error>) -> Vec<&'static str> {
        machine.take_events().iter().map(Event::kind).collect()
    }

    fn head(entry: &Entry) -> Head {
        entry.head()
    }

    #[test]
    fn intercept_takes_a_new_bearer_token_releases_its_origin_then_reads_the_lane() {
        let mut door = Intercept::new(&prepared(Some("t1")));
        let Io::Offer { origin, token } = Machine::<Error>::poll(&mut door, 1_000) else {
            panic!("the bearer token is offered first");
        };
        assert_eq!((origin.as_str(), token.as_str()), (ORIGIN, "t1"));
        feed_at(&mut door, Done::Fresh(true), 1_000);
        let Io::Release(origin) = Machine::<Error>::poll(&mut door, 1_000) else {
            panic!("a new token releases its origin's parked entries");
        };
        assert_eq!(origin, ORIGIN);
        let parked = Entry::queued(prepared(None), 500, true, None);
        feed_at(&mut door, Done::Released(vec![head(&parked)]), 1_000);
        let Io::LaneAndSchedule(lane) = Machine::<Error>::poll(&mut door, 1_001) else {
            panic!("then the lane is read");
        };
        assert_eq!(lane, "c1");
        assert_eq!(kinds(&mut door), ["queued"], "the released entry is told");
        feed_at(
            &mut door,
            Done::Lane {
                busy: true,
                schedule: ScheduleState::default(),
            },
            1_002,
        );
        assert!(matches!(Machine::<Error>::poll(&mut door, 1_003), Io::Done));
        assert_eq!(
            door.decision(),
            Some(BeforeForward::Queue(intercept::QueueReason::LaneBusy)),
            "a lane with a backlog queues at once"
        );
    }

    #[test]
    fn intercept_with_a_known_token_releases_nothing_and_forwards_on_a_free_lane() {
        let mut door = Intercept::new(&prepared(Some("t1")));
        assert!(matches!(
            Machine::<Error>::poll(&mut door, 1_000),
            Io::Offer { .. }
        ));
        feed_at(&mut door, Done::Fresh(false), 1_000);
        assert!(matches!(
            Machine::<Error>::poll(&mut door, 1_000),
            Io::LaneAndSchedule(_)
        ));
        feed_at(
            &mut door,
            Done::Lane {
                busy: false,
                schedule: ScheduleState::default(),
            },
            1_000,
        );
        assert!(matches!(Machine::<Error>::poll(&mut door, 1_000), Io::Done));
        assert_eq!(door.decision(), Some(BeforeForward::Forward));
        assert!(kinds(&mut door).is_empty());
    }

    #[test]
    fn a_healthy_answer_passes_through_without_any_io() {
        let config = Config::default();
        let mut door = Forward::<Error>::new(prepared(None), &answer(200, &[]), &config, 1_000);
        assert!(matches!(door.poll(1_000), Io::Done), "no write at all");
        assert!(matches!(
            door.result(),
            Some(Ok(Forwarded::PassThrough(Outcome::Delivered { .. })))
        ));
    }

    #[test]
    fn a_401_forgets_the_token_queues_the_request_parked_and_asks_for_a_new_one() {
        let config = Config::default();
        let mut door =
            Forward::<Error>::new(prepared(Some("old")), &answer(401, &[]), &config, 1_000);
        let Io::Forget(refused) = door.poll(1_000) else {
            panic!("the refused token is forgotten first");
        };
        assert_eq!(refused, [(ORIGIN.to_owned(), "old".to_owned())]);
        feed_at(&mut door, Done::Nothing, 1_000);
        let Io::Enqueue(entry) = door.poll(1_001) else {
            panic!("then the request is made durable");
        };
        assert_eq!(entry.state, EntryState::AwaitingToken, "parked for a token");
        assert_eq!(entry.created_at, 1_001);
        assert!(entry.last_error.is_some(), "with the error that queued it");
        let mut stored = *entry;
        stored.seq = 1;
        feed_at(&mut door, Done::Enqueued(Ok(stored.clone())), 1_002);
        let Io::AskTokens(origins) = door.poll(1_003) else {
            panic!("then a token is asked for");
        };
        assert_eq!(origins, [ORIGIN]);
        assert_eq!(kinds(&mut door), ["queued", "awaiting-token"]);
        feed_at(&mut door, Done::Tokens(vec![ORIGIN.to_owned()]), 1_004);
        let Io::Release(origin) = door.poll(1_004) else {
            panic!("a token came at once: the origin is released");
        };
        assert_eq!(origin, ORIGIN);
        feed_at(&mut door, Done::Released(vec![head(&stored)]), 1_005);
        assert!(matches!(door.poll(1_005), Io::Done));
        assert_eq!(kinds(&mut door), ["queued"]);
        let Some(Ok(Forwarded::Queued(queued))) = door.result() else {
            panic!("queued");
        };
        assert_eq!(queued.seq, 1);
    }

    #[test]
    fn a_429_pauses_its_origin_first_and_a_refused_enqueue_is_the_callers_error() {
        let config = Config::default();
        let mut door = Forward::<Error>::new(
            prepared(None),
            &answer(429, &[("retry-after", "30")]),
            &config,
            1_000,
        );
        let Io::EditSchedule = door.poll(1_000) else {
            panic!("what the answer tells its origin is written first");
        };
        let mut schedule = ScheduleState::default();
        door.edit_schedule(&mut schedule);
        assert_eq!(schedule.paused_until(ORIGIN, 1_000), Some(31_000));
        feed_at(&mut door, Done::Nothing, 1_000);
        assert_eq!(kinds(&mut door), ["paused"]);
        let Io::Enqueue(_) = door.poll(1_001) else {
            panic!("then the request is queued");
        };
        feed_at(
            &mut door,
            Done::Enqueued(Err(EnqueueError::QuotaExceeded("disk full".into()))),
            1_002,
        );
        assert!(matches!(door.poll(1_002), Io::Done));
        assert!(kinds(&mut door).is_empty(), "nothing queued, nothing told");
        assert!(matches!(
            door.result(),
            Some(Err(EnqueueError::QuotaExceeded(_)))
        ));
    }

    #[test]
    fn network_back_hurries_the_unreachable_then_spreads_the_backlog() {
        let config = Config::default();
        let mut schedule = ScheduleState::default();
        let unanswered = crate::throttle::Signal::Unanswered;
        schedule.answered(ORIGIN, unanswered, &config.pacer, 1_000, 0);
        let mut door = NetworkBack::new(config.pacer);
        let Io::RetryUnreachable(at) = Machine::<Error>::poll(&mut door, 60_000) else {
            panic!("due now first");
        };
        assert_eq!(at, 60_000);
        feed_at(&mut door, Done::Count(3), 60_000);
        let Io::Stats(_) = Machine::<Error>::poll(&mut door, 60_001) else {
            panic!("then the backlog is counted");
        };
        let backlog = Stats {
            pending: 3,
            ..Stats::default()
        };
        feed_at(&mut door, Done::Stats(backlog), 60_001);
        let Io::EditSchedule = Machine::<Error>::poll(&mut door, 60_002) else {
            panic!("and spread");
        };
        let before = schedule.clone();
        Machine::<Error>::edit_schedule(&mut door, &mut schedule);
        assert_ne!(schedule, before, "the origin's backlog is spread");
        feed_at(&mut door, Done::Nothing, 60_002);
        assert!(matches!(
            Machine::<Error>::poll(&mut door, 60_003),
            Io::Done
        ));
        assert_eq!(door.due(), 3);
    }

    #[test]
    fn admin_calls_tell_only_what_they_did() {
        let entry = Entry::queued(prepared(None), 1_000, false, None);
        let id = entry.id;
        let cases: [(AdminCall, Done<Error>, &[&str]); 5] = [
            (
                AdminCall::Revive(id),
                Done::Entry(Some(entry.clone())),
                &["revived"],
            ),
            (AdminCall::Revive(id), Done::Entry(None), &[]),
            (
                AdminCall::Discard(id),
                Done::Entry(Some(entry)),
                &["discarded"],
            ),
            (
                AdminCall::Cancel(id),
                Done::Cancelled(CancelResult::InFlight),
                &[],
            ),
            (
                AdminCall::Cancel(id),
                Done::Cancelled(CancelResult::Cancelled),
                &["cancelled"],
            ),
        ];
        for (call, done, told) in cases {
            let mut door = Admin::<Error>::new(call);
            assert!(!matches!(door.poll(1_000), Io::Done));
            feed_at(&mut door, done, 1_000);
            assert!(matches!(door.poll(1_000), Io::Done));
            assert_eq!(kinds(&mut door), told, "{call:?}");
            assert!(door.result().is_some());
        }
    }
}
