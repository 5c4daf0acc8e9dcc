//! A flush as a synchronous machine: it decides, the driver does the I/O.
//!
//! # Design
//!
//! A flush runs short *cycles*. One cycle is **one store step**, then
//! the network:
//!
//! 1. **Settle and claim** (one transaction, a [`Cycle`]): apply the
//!    previous cycle's settlements whose lease still matches
//!    ([`Entry::settle`](crate::entry::Entry::settle)), with their pacing
//!    consequences ([`Flush::settled_into`] →
//!    [`Verdicts::update_schedule`]: lanes held behind new dead letters,
//!    throttle signals, a `429` or a `503` with `Retry-After` pausing the
//!    whole origin, `inin-ratelimit-*` capping what is left of the
//!    window); then, on the state just written, [`Flush::plan`] which heads
//!    go ([`plan`]: ready, one per lane, at most
//!    [`Config::batch_size`], within each origin's pacing budget, a token
//!    in hand, its lane not held), lease them until `now + lease_ms`, move
//!    heads past their limits (or unreadable: `corrupt`) to dead, holding
//!    their lanes, and park heads without a token. The first cycle of a
//!    flush only claims; a flush whose budget
//!    ([`Config::max_cycles_per_flush`]) runs out settles its last answers
//!    alone.
//! 2. **Events** for what applied, then for what was claimed.
//! 3. **Tokens**: ask for a token for each origin that lacks one (and again
//!    every [`Config::token_retry_ms`] while entries wait; the flush notes
//!    each ask in its [`TokenAsks`]).
//! 4. **Send** the claimed entries concurrently, outside any transaction,
//!    each with the token in hand ([`SendAsk::requests`]).
//! 5. **Judge** the answers ([`verdict::judge`], pure):
//!    [`classify`](crate::classify::classify) then
//!    [`RetryPolicy::decide`](crate::retry::RetryPolicy::decide) —
//!    delivered, retry at a time (exponential backoff with full jitter,
//!    never before a `Retry-After`), await a token, or dead — into
//!    settlements for the next cycle's store step.
//!
//! An origin that gives no answer is probed, one request at a time, until
//! it answers; one whose server sheds load is slowed to the rate its shed
//! share allows ([`crate::throttle`]).
//!
//! Everything a cycle decides is here, without I/O and without `async`, in
//! the style of `quinn-proto`: the driver **polls** the machine for the
//! next piece of I/O ([`Flush::poll`] → [`Io`]), does it, and **feeds** the
//! reply back; then polls again, until [`Io::Done`]. The machine never
//! waits, never reads a clock (the driver passes `now`) and never touches
//! the store, the network or the tokens.
//!
//! ```text
//!            ┌──────────────────────── poll ◀──────────────────────────┐
//!            ▼                                                         │
//!   Io::Store(Cycle) ── settle + claim, one transaction ────────────────┤ stored()
//!      (inside it: settled_into(), plan(), follow_room(), follow())    │
//!   Io::AskTokens(origins) ── ask the token source, once each ──────────┤ tokens_came()
//!   Io::Store(Release) ── for each token that came at once ─────────────┤ (an Arrival)
//!   Io::Send(entries) ── send concurrently, outside any transaction ────┤ answered()
//!      (again, same cycle, for the followers of lanes the answers cleared)
//!   Io::Wait ── requests out, nothing else to do: feed the next answer ──┤ answered()
//!   Io::Forget(tokens the server refused) ──────────────────────────────┤
//!   Io::Store(Cycle, settle alone) ── budget spent ─────────────────────┘ stored()
//!   Io::Done ── report()
//! ```
//!
//! The vocabulary ([`Io`], [`Reply`]) and the [`Machine`] trait are shared
//! with the front doors ([`crate::io`], [`crate::door`]); the step of
//! several I/O a flush may queue, releasing the entries a token was waited
//! for, is the doors' own [`Arrival`].
//!
//! Four calls happen *inside* the store's transaction, because IndexedDB
//! commits a transaction that awaits anything but its own requests:
//! [`Flush::settled_into`] writes the settled answers' pacing consequences
//! into the schedule, [`Flush::plan`] picks the heads to claim from the
//! schedule and the lane heads, and [`Flush::follow_room`] and
//! [`Flush::follow`] lease the entries behind them. All are synchronous,
//! as the store needs them to be.
//!
//! # Followers: one store step per cycle, not per message
//!
//! A lane sends one entry at a time, so one conversation's backlog would
//! pay a store step per message. The claim also leases the entries right
//! behind the heads it sends ([`Flush::follow_room`], [`Flush::follow`],
//! which asks [`scheduler::follows`](crate::scheduler::follows)), up to
//! [`BATCHES_PER_CYCLE`] batches' worth of entries in the cycle, breadth
//! first (one behind each head per round), so that each later send of the
//! cycle carries one entry of every lane still going. A lane
//! still has one request in flight, so a cycle never has more than a batch
//! in flight; the followers only share the store step. The first entry of
//! each lane goes in the cycle's first [`Io::Send`]; each answer that
//! *clears* its lane (delivered, no pause, a rate-limit window not nearly
//! spent: [`Verdicts::cleared`]) lets the next follower of that lane go in
//! another `Io::Send` of the same cycle. An answer that does not clear its
//! lane halts following to its origin for the rest of the cycle; a follower
//! that does not go — its lane or origin stopped, or its lease would run
//! out before a send could finish — is settled back as it was
//! ([`Action::Unsent`](crate::entry::Action::Unsent)). All the cycle's
//! answers are settled by the next store step, as one.
//!
//! # Answers one at a time
//!
//! A driver may feed a send's answers whole, or one by one as they come
//! ([`SendAsk::split`](crate::io::SendAsk::split)): then a lane whose
//! answer came goes on at once, without waiting for the slowest request of
//! its round, and when the machine has nothing to send while requests are
//! still out it asks [`Io::Wait`]. The cycle ends, and its store step
//! comes, when the last request out is answered. The browser host feeds
//! answers this way (a worker's requests share a few connections per
//! origin: a round that waits for its slowest request leaves them idle);
//! the native driver feeds each send whole and never meets `Wait`.
//!
//! Events are queued in the machine and taken with
//! [`Flush::take_events`] after every poll, so that a driver tells them
//! in the order they happened (a message's `sending` before the `sent` of
//! its answer; the browser host tells a send's events once its requests
//! are out, so that telling them is not on a lane's path).
//!
//! A driver runs it for a flush (`outbox-driver`'s `Engine::flush`); this
//! module's tests drive the machine by hand, step by step.

use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::{string::String, vec::Vec};
use core::cell::Cell;

use crate::clock::{Millis, Random};
use crate::config::Config;
use crate::cycle::Cycle;
use crate::door::Arrival;
use crate::entry::{Entry, EntryId, EntryState, Head, Seq};
use crate::event::Event;
use crate::hold::OnDead;
use crate::io::{Cx, Fed, ForgetAsk, Io, Machine, Reply, SendAsk, StoreAsk, TokensAsk, Tx};
use crate::pacer::ScheduleState;
use crate::queue::{Claimed, Fence, LEASE_MARGIN_MS, LeaseTerms, Settlement};
use crate::report::FlushReport;
use crate::scheduler::{Claim, PlanContext, follows, plan};
use crate::throttle::{ProbeGaps, Signal};
use crate::token::TokenAsks;
use crate::verdict::{self, Aftermath, Answer, Verdicts};

/// How long the first claim of a flush reads lane heads from the lanes the
/// store lists, after one surveyed the queue itself ([`Surveys`]).
pub const SURVEY_EVERY_MS: Millis = 60_000;

/// When the flushes of one engine last surveyed the queue for its lane
/// heads ([`LeaseTerms::survey`]): the first claim of a flush surveys when
/// none did for [`SURVEY_EVERY_MS`]. A survey walks the queue lane by lane
/// (IndexedDB: one cursor seek per lane); the lanes the store lists, which
/// every enqueue of this code keeps, are read all at once. Only a writer
/// that keeps no list (an older version of the code sharing the database
/// during an update) adds lanes a survey alone finds, and those wait at
/// most this long. Clones share one record; it lives in memory, so a
/// restarted engine surveys at once.
#[derive(Debug, Clone, Default)]
pub struct Surveys(Rc<Cell<Option<Millis>>>);

impl Surveys {
    /// Whether a flush's first claim at `now` surveys (noted if so): the
    /// first of the engine, then once [`SURVEY_EVERY_MS`] have passed (or
    /// the clock went back).
    pub fn due(&self, now: Millis) -> bool {
        match self.0.get() {
            Some(at) if at <= now && now < at.saturating_add(SURVEY_EVERY_MS) => false,
            _ => {
                self.0.set(Some(now));
                true
            }
        }
    }
}

/// How many batches' worth of entries one cycle may lease: the heads it
/// sends (at most a batch, all at once) and the followers behind them. A
/// lane's followers go one at a time, so at most a batch of requests is
/// ever in flight; the factor only sets how many of one conversation's
/// messages share a store step.
pub const BATCHES_PER_CYCLE: usize = 4;

/// A flush's store step, as I/O.
fn store(cycle: Cycle) -> Io {
    Io::Store(StoreAsk::new(Tx::Cycle(cycle)))
}

/// What is queued in a flush for its driver: a piece of I/O, or a step
/// of several.
#[derive(Debug)]
enum Todo {
    Io(Io),
    Step(Step),
}

/// A step of several I/O, run to its end before anything else is polled.
#[derive(Debug)]
enum Step {
    /// Release the entries a token that came was waited for.
    Arrival(Arrival),
}

/// Where the machine stands between polls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// About to start a cycle (or to end the flush).
    Cycle,
    /// Waiting for [`Flush::stored`] after a settle and claim.
    Storing,
    /// Waiting for [`Flush::stored`] after a settle alone.
    SettlingAlone,
    /// The store step is in; tokens asked; send what was claimed, or end.
    Claimed,
    /// Waiting for the [`Fence`] read before a send (a fenced flush).
    Fencing,
    /// Waiting for [`Flush::answered`] ([`Io::Wait`] while requests are
    /// out and nothing else is to do).
    Sending,
    /// The last settle is in: done once the queue of I/O is empty.
    Finishing,
    /// [`Io::Done`] was returned.
    Done,
}

/// One flush, as a synchronous machine (see the [module](self)).
#[derive(Debug)]
pub struct Flush {
    config: Rc<Config>,
    /// When tokens were last asked for (shared with the driver's other
    /// machines, kept across flushes).
    asks: TokenAsks,
    exclusive: bool,
    /// Re-reads its leases before each send ([`Flush::fenced`]).
    fenced: bool,
    /// The engine's record of surveys ([`Flush::surveys`]); without one,
    /// every flush's first claim surveys.
    surveys: Option<Surveys>,
    /// The engine's record of probe gaps ([`Flush::probe_gaps`]).
    gaps: Option<ProbeGaps>,
    /// The sends in hand were checked by a [`Fence`] read.
    checked: bool,
    /// Asked to end early ([`Flush::wind_down`]): no new cycle starts.
    winding_down: bool,
    phase: Phase,
    report: FlushReport,
    /// The last cycle's verdicts, settled by the next store step.
    answered: Option<Verdicts>,
    /// The verdicts whose settlements are in the store step under way.
    settling: Option<Verdicts>,
    /// What [`Flush::settled_into`] found, for after the store step.
    aftermath: Aftermath,
    /// The time the current cycle started.
    now: Millis,
    /// From the current cycle's plan: origins whose heads still wait for a
    /// token, and lanes it held.
    token_wanted: Vec<String>,
    held: Vec<(String, EntryId)>,
    /// Whether the current cycle did something that may have made more
    /// work ready.
    progressed: bool,
    /// Claimed by the store step (or cleared to follow), to be sent.
    sends: Vec<Entry>,
    /// The lanes of the requests out, unanswered (one each: a lane has one
    /// request in flight).
    flying: Vec<String>,
    /// Leased to follow an entry of their lane in this cycle, waiting for
    /// it to clear the lane; in `seq` order per lane.
    followers: Vec<Entry>,
    /// How many more entries may follow the heads the current claim sends.
    room: usize,
    /// Origins whose throttle limited them when a claim of this flush
    /// began: nothing follows to them for the rest of the flush (each of
    /// their requests waits for the throttle's own decision, as a head).
    throttled: Vec<String>,
    /// Origins with an answer this cycle that did not clear its lane (a
    /// refusal, a pause, a failure): nothing more follows to them until
    /// the next store step has settled it.
    halted: Vec<String>,
    /// The origins of the token ask under way.
    asking: Vec<String>,
    /// I/O decided, not yet polled.
    todo: VecDeque<Todo>,
    /// The step of several under way, polled until it has no more I/O.
    step: Option<Step>,
    events: Vec<Event>,
}

impl Flush {
    /// A flush under `config`; the tokens it asks for are noted in `asks`.
    /// `exclusive`: the driver holds the origin-wide flush lock, so leases
    /// still standing at the first claim were left by a sender that died,
    /// and are taken over at once.
    pub fn new(config: Rc<Config>, asks: TokenAsks, exclusive: bool) -> Self {
        Self {
            config,
            asks,
            exclusive,
            fenced: false,
            surveys: None,
            gaps: None,
            checked: false,
            winding_down: false,
            phase: Phase::Cycle,
            report: FlushReport::default(),
            answered: None,
            settling: None,
            aftermath: Aftermath::default(),
            now: 0,
            token_wanted: Vec::new(),
            held: Vec::new(),
            progressed: false,
            sends: Vec::new(),
            flying: Vec::new(),
            followers: Vec::new(),
            room: 0,
            throttled: Vec::new(),
            halted: Vec::new(),
            asking: Vec::new(),
            todo: VecDeque::new(),
            step: None,
            events: Vec::new(),
        }
    }

    /// The next piece of I/O, at time `now`. Call it again after feeding
    /// back the result each [`Io`] asks for; after [`Io::Done`] it returns
    /// `Done` again.
    pub fn poll(&mut self, now: Millis) -> Io {
        loop {
            if let Some(io) = self.step_io() {
                return io;
            }
            match self.todo.pop_front() {
                Some(Todo::Io(io)) => return io,
                Some(Todo::Step(step)) => {
                    self.step = Some(step);
                    continue;
                }
                None => {}
            }
            match self.phase {
                Phase::Cycle => return self.begin_cycle(now),
                Phase::Claimed => {
                    if !self.sends.is_empty() && self.fenced && !self.checked {
                        self.phase = Phase::Fencing;
                        let leases = self.sends.iter().map(|e| (e.seq, e.attempts)).collect();
                        let fence = Fence::new(leases, now, self.config.send_timeout_ms);
                        return Io::Store(StoreAsk::new(Tx::Fence(fence)));
                    }
                    if !self.sends.is_empty() {
                        self.checked = false;
                        for e in &self.sends {
                            self.events.push(Event::Sending {
                                id: e.id,
                                lane: e.lane.clone(),
                                attempt: e.attempts,
                            });
                        }
                        self.phase = Phase::Sending;
                        let sends = core::mem::take(&mut self.sends);
                        self.flying.extend(sends.iter().map(|e| e.lane.clone()));
                        let margin = self.fenced.then_some(LEASE_MARGIN_MS);
                        return Io::Send(
                            SendAsk::new(sends, self.config.send_timeout_ms).within_leases(margin),
                        );
                    }
                    // Nothing sent: go on only if the cycle made something
                    // ready (a dead head uncovers its successor, a token
                    // came).
                    self.phase = if self.progressed {
                        Phase::Cycle
                    } else {
                        Phase::Done
                    };
                }
                Phase::Finishing => {
                    // The budget ran out with work left: run again at once.
                    self.report.next_wake = Some(now);
                    self.phase = Phase::Done;
                }
                // Requests out and nothing else to do: wait for an answer.
                Phase::Sending if !self.flying.is_empty() => return Io::Wait,
                // A poll while I/O is out is a driver bug; answering
                // `Done` keeps every entry where the store has it.
                Phase::Storing
                | Phase::SettlingAlone
                | Phase::Fencing
                | Phase::Sending
                | Phase::Done => {
                    debug_assert_eq!(self.phase, Phase::Done, "polled while I/O is out");
                    self.phase = Phase::Done;
                    return Io::Done;
                }
            }
        }
    }

    /// The same flush, for a store that other processes share
    /// (PostgreSQL): right before each send it reads whether the leases
    /// of what it is about to send still stand, long enough for a send
    /// ([`Fence`]), and sends only those. A lease that ran out while this
    /// process was paused may have passed to another, which may have sent
    /// the entry and the ones behind it since; such an entry is dropped
    /// from this flush unsent and unsettled (it is the other process's
    /// now), and what followed it in its lane goes back unsent. Counted in
    /// [`FlushReport::fenced`].
    pub fn fenced(mut self, on: bool) -> Self {
        self.fenced = on;
        self
    }

    /// Surveys the queue for lane heads only when `surveys` says one is
    /// due ([`Surveys::due`]) instead of at every flush's first claim.
    pub fn surveys(mut self, surveys: Surveys) -> Self {
        self.surveys = Some(surveys);
        self
    }

    /// Keeps the engine's probe gaps (`gaps`): an origin whose request got
    /// no answer waits [`PROBE_GAP_MS`] for its next probe (with the herd
    /// throttle on; [`ProbeGaps`]).
    pub fn probe_gaps(mut self, gaps: ProbeGaps) -> Self {
        self.gaps = Some(gaps);
        self
    }

    /// What a [`Fence`] read found: only the sends whose lease stands go.
    fn fence_checked(&mut self, standing: &[Seq], cx: &mut Cx<'_>) {
        let before = self.sends.len();
        self.sends.retain(|e| standing.contains(&e.seq));
        self.report.fenced += before - self.sends.len();
        self.checked = true;
        if self.sends.is_empty() {
            // Nothing left to send this round: what follows the lanes
            // that lost their lease goes back unsent.
            self.answered(Vec::new(), Vec::new(), cx.now, &mut *cx.rng);
        } else {
            self.phase = Phase::Claimed;
        }
    }

    /// Ends the flush early, as if its budget were spent: what is being
    /// sent is answered and settled (alone), and no new claim is made, so
    /// the flush leaves no lease standing. A host that shuts down asks this
    /// of the flush under way, instead of dropping it mid-send (which would
    /// leave its leases to run out, and its messages to go again with an
    /// unknown outcome).
    pub fn wind_down(&mut self) {
        self.winding_down = true;
    }

    fn begin_cycle(&mut self, now: Millis) -> Io {
        if self.winding_down || self.report.cycles >= self.config.max_cycles_per_flush {
            return match self.answered.take() {
                Some(mut verdicts) => {
                    let settlements = core::mem::take(&mut verdicts.settlements);
                    self.settling = Some(verdicts);
                    self.phase = Phase::SettlingAlone;
                    store(Cycle::settle(now, settlements))
                }
                None => {
                    self.report.next_wake = Some(now);
                    self.phase = Phase::Done;
                    Io::Done
                }
            };
        }
        self.report.cycles += 1;
        self.now = now;
        self.token_wanted.clear();
        self.held.clear();
        self.halted.clear();
        self.aftermath = Aftermath::default();
        let settlements = self.answered.take().map(|mut verdicts| {
            let settlements = core::mem::take(&mut verdicts.settlements);
            self.settling = Some(verdicts);
            settlements
        });
        self.phase = Phase::Storing;
        let terms = LeaseTerms {
            now,
            until: now + self.config.lease_ms,
            steal: self.steals(),
            survey: self.report.cycles == 1 && self.surveys.as_ref().is_none_or(|s| s.due(now)),
        };
        store(match settlements {
            Some(settlements) => Cycle::settle_and_claim(settlements, terms),
            None => Cycle::claim(terms),
        })
    }

    /// Whether the current cycle takes standing leases over. Leases taken
    /// by this very flush are settled before its next claim, so only the
    /// first cycle of an exclusive flush can meet orphaned ones.
    fn steals(&self) -> bool {
        self.exclusive && self.report.cycles == 1
    }

    /// Inside the store step's settle: writes the pacing consequences of
    /// the settlements that `applied` into `schedule` (held lanes, throttle
    /// signals, rate-limit windows, pauses; [`Verdicts::update_schedule`]).
    pub fn settled_into(&mut self, schedule: &mut ScheduleState, applied: &[Settlement]) {
        if let Some(verdicts) = &self.settling {
            self.aftermath = verdicts.update_schedule(schedule, applied, &self.config);
        }
    }

    /// Inside the store step's claim: which heads to lease, park or bury
    /// ([`plan`]), and when to look again.
    pub fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
        has_token: &dyn Fn(&str) -> bool,
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        self.room = 0;
        for origin in schedule.throttled(&self.config.pacer) {
            if !self.throttled.contains(&origin) {
                self.throttled.push(origin);
            }
        }
        // The heads of an origin in its probe gap wait for its end (or
        // their own time, if later).
        let gaps = self
            .gaps
            .as_ref()
            .filter(|_| self.config.pacer.throttle.enabled);
        let quiet = |h: &Head| {
            gaps.and_then(|g| g.quiet_until(&h.origin, self.now))
                .map(|until| until.max(h.not_before))
        };
        let quiet_until = heads.iter().filter_map(quiet).min();
        let kept: Vec<Head>;
        let heads = match quiet_until {
            Some(_) => {
                kept = heads
                    .iter()
                    .filter(|h| quiet(h).is_none())
                    .cloned()
                    .collect();
                &kept[..]
            }
            None => heads,
        };
        let on_dead = |route: &str| self.config.routes.on_dead(route);
        let ctx = self.context(has_token, &on_dead);
        let mut p = plan(heads, schedule, &ctx);
        if let Some(until) = quiet_until {
            p.next_wake = Some(p.next_wake.map_or(until, |w| w.min(until)));
        }
        self.room = ctx
            .batch_size
            .saturating_mul(BATCHES_PER_CYCLE)
            .saturating_sub(p.sends());
        self.token_wanted = p.token_wanted;
        self.held = p.held;
        (p.claims, p.next_wake)
    }

    /// Inside the store step's claim, after [`plan`](Self::plan): how
    /// many entries may still follow the heads it sends (the cycle's room:
    /// [`BATCHES_PER_CYCLE`] batches less what the claim leased).
    pub fn follow_room(&self) -> usize {
        self.room
    }

    /// Inside the store step's claim: whether `next`, the entry right
    /// behind one the claim leased in its lane, is leased to follow it
    /// ([`follows`]); it is sent in this cycle once that one clears the
    /// lane.
    pub fn follow(
        &mut self,
        schedule: &mut ScheduleState,
        next: &Head,
        has_token: &dyn Fn(&str) -> bool,
    ) -> bool {
        if self.room == 0 {
            return false;
        }
        let on_dead = |route: &str| self.config.routes.on_dead(route);
        let throttled = self.throttled.contains(&next.origin);
        let follows = follows(
            next,
            throttled,
            schedule,
            &self.context(has_token, &on_dead),
        );
        if follows {
            self.room -= 1;
        }
        follows
    }

    fn context<'a>(
        &'a self,
        has_token: &'a dyn Fn(&str) -> bool,
        on_dead: &'a dyn Fn(&str) -> OnDead,
    ) -> PlanContext<'a> {
        PlanContext {
            now: self.now,
            batch_size: self.config.batch_size.max(1),
            policy: &self.config.retry,
            pacer: &self.config.pacer,
            has_token,
            steal_leases: self.steals(),
            on_dead,
        }
    }

    /// The store step (a [`Cycle`]) is done: the settlements that
    /// `applied` and what was `claimed`.
    pub fn stored(&mut self, applied: &[Settlement], claimed: Claimed) {
        let mut want_token = Vec::new();
        let mut progressed = false;
        if let Some(verdicts) = self.settling.take() {
            let aftermath = core::mem::take(&mut self.aftermath);
            self.events
                .extend(verdicts.events(applied, &aftermath, &mut self.report));
            want_token = verdicts.want_token;
        }
        if self.phase == Phase::SettlingAlone {
            if !want_token.is_empty() {
                self.ask_tokens(want_token);
            }
            self.phase = Phase::Finishing;
            return;
        }
        self.report.next_wake = claimed.next_wake;
        for e in &claimed.expired {
            self.report.dead += 1;
            self.events.push(Event::Dead {
                id: e.id,
                lane: e.lane.clone(),
                error: e.last_error.clone().unwrap_or_default(),
            });
        }
        for (lane, id) in core::mem::take(&mut self.held) {
            self.events.push(Event::Held { id, lane });
        }
        // A token the server refused (a `401` this cycle) is asked for
        // again at once; an entry parked for want of one asks at most every
        // `token_retry_ms` (a page may have opened since, or the token URL
        // may work again) — not once per cycle into an outage.
        let mut wanted = core::mem::take(&mut self.token_wanted);
        for e in &claimed.awaiting_token {
            self.report.awaiting_token += 1;
            if !wanted.contains(&e.origin) {
                wanted.push(e.origin.clone());
            }
            self.events.push(Event::AwaitingToken {
                id: e.id,
                lane: e.lane.clone(),
                origin: e.origin.clone(),
            });
        }
        progressed |= !claimed.expired.is_empty();
        let mut ask = want_token;
        let retry_ms = self.config.token_retry_ms;
        for origin in wanted {
            if ask.contains(&origin) {
                continue;
            }
            match self.asks.again_at(&origin, retry_ms) {
                Some(again) if self.now < again => {
                    self.report.next_wake =
                        Some(self.report.next_wake.map_or(again, |w| w.min(again)));
                }
                _ => ask.push(origin),
            }
        }
        if !ask.is_empty() {
            self.ask_tokens(ask);
        }
        self.progressed = progressed;
        // A lane's first entry goes now; the ones leased to follow it wait
        // for it to clear the lane.
        let mut lanes: Vec<String> = Vec::new();
        let (leads, followers): (Vec<Entry>, Vec<Entry>) =
            claimed.sends.into_iter().partition(|e| {
                let first = !lanes.contains(&e.lane);
                if first {
                    lanes.push(e.lane.clone());
                }
                first
            });
        self.sends = leads;
        self.followers = followers;
        self.phase = Phase::Claimed;
    }

    /// Asks for a token for each of `origins` (next), noting the ask.
    fn ask_tokens(&mut self, origins: Vec<String>) {
        for origin in &origins {
            self.asks.asked(origin, self.now);
        }
        self.asking = origins.clone();
        self.todo
            .push_back(Todo::Io(Io::AskTokens(TokensAsk::new(origins))));
    }

    /// The tokens of an [`Io::AskTokens`] were asked for; for each origin
    /// in `came` one came at once: its parked entries are released next
    /// (an [`Arrival`]), and the flush goes on.
    ///
    /// An origin whose token did not come at once (the token source asked
    /// pages, or its token URL failed) is asked again after
    /// [`Config::token_retry_ms`]: the flush wakes then, so that entries
    /// parked for a token never wait on something else to wake it.
    pub fn tokens_came(&mut self, came: Vec<String>) {
        let again = self.now.saturating_add(self.config.token_retry_ms);
        for origin in core::mem::take(&mut self.asking) {
            if !came.contains(&origin) {
                self.report.next_wake = Some(self.report.next_wake.map_or(again, |w| w.min(again)));
            }
        }
        self.progressed |= !came.is_empty();
        for origin in came.iter().rev() {
            self.todo
                .push_front(Todo::Step(Step::Arrival(Arrival::in_hand(origin))));
        }
    }

    /// What the flush did (final once [`Io::Done`] is polled).
    pub fn report(&self) -> &FlushReport {
        &self.report
    }

    /// The I/O of the step under way, if it has any left; a step that has
    /// none is over, and its events join the flush's.
    fn step_io(&mut self) -> Option<Io> {
        let (io, events) = match self.step.as_mut()? {
            Step::Arrival(arrival) => (arrival.next_io(), arrival.take_events()),
        };
        self.events.extend(events);
        if io.is_none() {
            self.step = None;
        }
        io
    }

    /// The entries of an [`Io::Send`], given back with their `answers` in
    /// the same order, received by `now`; `rng` draws the backoff jitter.
    /// The verdicts are settled by the next store step. An entry whose
    /// answer clears its lane lets the next entry leased to follow it go
    /// now (another [`Io::Send`], same cycle) — if its lease outlives a
    /// send; the followers of a lane that was not cleared go back unsent.
    pub fn answered(
        &mut self,
        sent: Vec<Entry>,
        answers: Vec<Answer>,
        now: Millis,
        rng: &mut dyn Random,
    ) {
        self.report.attempts += answers.len();
        for e in &sent {
            if let Some(at) = self.flying.iter().position(|lane| *lane == e.lane) {
                self.flying.swap_remove(at);
            }
        }
        let mut verdicts = verdict::judge(&sent, answers, now, &self.config, rng);
        if let Some(gaps) = &self.gaps {
            for (origin, signal) in verdicts.signals() {
                match signal {
                    Signal::Unanswered => gaps.unanswered(origin, now),
                    _ => gaps.answered(origin),
                }
            }
        }
        let refused = core::mem::take(&mut verdicts.rejected_tokens);
        if !refused.is_empty() {
            self.todo
                .push_back(Todo::Io(Io::Forget(ForgetAsk::new(refused))));
        }
        let mut cleared: Vec<&str> = Vec::new();
        for e in &sent {
            if verdicts.cleared.contains(&e.seq) {
                cleared.push(&e.lane);
            } else if !self.halted.contains(&e.origin) {
                self.halted.push(e.origin.clone());
            }
        }
        let lease_left = |e: &Entry| match e.state {
            EntryState::InFlight { lease_until } => {
                lease_until > now.saturating_add(self.config.send_timeout_ms)
            }
            _ => false,
        };
        // Followers come in `seq` order per lane: the first of each lane
        // goes (or not); behind it the rest wait, or, behind one that does
        // not go, stay unsent too.
        let (mut next, mut waiting, mut unsent) = (Vec::new(), Vec::new(), Vec::new());
        for follower in core::mem::take(&mut self.followers) {
            let lane = follower.lane.as_str();
            if unsent.iter().any(|e: &Entry| e.lane == lane) {
                unsent.push(follower);
            } else if next.iter().any(|e: &Entry| e.lane == lane)
                || self.flying.iter().any(|l| l == lane)
            {
                // Behind one going now, or behind one still out.
                waiting.push(follower);
            } else if cleared.contains(&lane)
                && !self.halted.contains(&follower.origin)
                && lease_left(&follower)
            {
                next.push(follower);
            } else {
                unsent.push(follower);
            }
        }
        self.followers = waiting;
        match &mut self.answered {
            Some(earlier) => earlier.absorb(verdicts),
            None => self.answered = Some(verdicts),
        }
        if let Some(answered) = &mut self.answered {
            answered.unsent(unsent);
        }
        // What cleared its lane goes now (with what an earlier answer of
        // this round let go, if not yet polled); with nothing to send, the
        // flush waits for the requests still out, or starts its next cycle.
        self.sends.extend(next);
        self.phase = if !self.sends.is_empty() {
            Phase::Claimed
        } else if !self.flying.is_empty() {
            Phase::Sending
        } else {
            Phase::Cycle
        };
    }

    /// The events since the last call, in order.
    pub fn take_events(&mut self) -> Vec<Event> {
        core::mem::take(&mut self.events)
    }
}

impl Machine for Flush {
    fn poll(&mut self, now: Millis) -> Io {
        Flush::poll(self, now)
    }

    fn feed(&mut self, reply: Reply, cx: &mut Cx<'_>) {
        match &mut self.step {
            Some(Step::Arrival(arrival)) => return arrival.take(reply),
            None => {}
        }
        match reply.fed() {
            Fed::Stored(Tx::Cycle(cycle)) => {
                let (applied, claimed) = cycle.finish();
                self.stored(&applied, claimed);
            }
            Fed::Stored(Tx::Fence(fence)) => self.fence_checked(&fence.finish(), cx),
            Fed::Tokens(came) => self.tokens_came(came),
            Fed::Answered { sent, answers } => {
                self.answered(sent, answers, cx.now, &mut *cx.rng);
            }
            // What a forget is told, and nothing else a flush asks for.
            _ => {}
        }
    }

    fn take_events(&mut self) -> Vec<Event> {
        Flush::take_events(self)
    }

    fn settled_into(&mut self, schedule: &mut ScheduleState, applied: &[Settlement]) {
        Flush::settled_into(self, schedule, applied);
    }

    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
        has_token: &dyn Fn(&str) -> bool,
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        Flush::plan(self, schedule, heads, has_token)
    }

    fn follow_room(&self) -> usize {
        Flush::follow_room(self)
    }

    fn follow(
        &mut self,
        schedule: &mut ScheduleState,
        next: &Head,
        has_token: &dyn Fn(&str) -> bool,
    ) -> bool {
        Flush::follow(self, schedule, next, has_token)
    }
}

#[cfg(test)]
mod tests {
    //! The machine driven by hand, one step at a time: no store, no
    //! network, no executor.

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
    use crate::classify::Response;
    use crate::clock::SplitMix64;
    use crate::entry::Action;
    use crate::entry::{EntryState, StoredRequest};
    use crate::io::{cycle_of, serve};
    use crate::queue::Transaction;
    use crate::store::{Read, Step, Write};

    const ORIGIN: &str = "https://api.example.test";

    fn new_flush(config: &Config, exclusive: bool) -> Flush {
        Flush::new(Rc::new(config.clone()), TokenAsks::default(), exclusive)
    }

    /// The entries of a send, if `io` is one.
    fn sent(io: Io) -> Option<Vec<Entry>> {
        match io {
            Io::Send(ask) => Some(ask.entries().to_vec()),
            _ => None,
        }
    }

    /// The refused tokens to forget, if `io` says so.
    fn forgotten(io: Io) -> Option<Vec<(String, String)>> {
        match io {
            Io::Forget(ask) => Some(ask.refused().to_vec()),
            _ => None,
        }
    }

    /// The origins to ask a token for, if `io` asks.
    fn asked(io: Io) -> Option<Vec<String>> {
        match io {
            Io::AskTokens(ask) => Some(ask.origins().to_vec()),
            _ => None,
        }
    }

    fn entry(seq: Seq, lane: &str, state: EntryState) -> Entry {
        Entry {
            id: EntryId::random(&mut SplitMix64::new(seq)),
            seq,
            lane: lane.into(),
            route: "messages".into(),
            origin: ORIGIN.into(),
            request: StoredRequest {
                method: "POST".into(),
                url: format!("{ORIGIN}/api/v2/x"),
                headers: Vec::new(),
                body: b"{}".to_vec(),
            },
            idempotency_key: format!("k{seq}"),
            needs_token: true,
            created_at: 1_000,
            attempts: 1,
            failures: 0,
            auth_failures: 0,
            auth_since: None,
            not_before: 1_000,
            state,
            last_error: None,
        }
    }

    fn answer(status: u16, token: Option<&str>) -> Answer {
        Answer {
            token: token.map(str::to_owned),
            result: Ok(Response {
                status,
                headers: Vec::new(),
                body: Vec::new(),
            }),
        }
    }

    fn claimed(sends: Vec<Entry>) -> Claimed {
        Claimed {
            sends,
            ..Claimed::default()
        }
    }

    /// Drives `flush` through one cycle that sends `sent` and gets
    /// `answers` back, from the [`Io::Store`] it is at.
    fn send_cycle(flush: &mut Flush, to_send: Vec<Entry>, answers: Vec<Answer>, now: Millis) {
        flush.stored(&[], claimed(to_send));
        let Some(entries) = sent(flush.poll(now)) else {
            panic!("claimed entries are sent next");
        };
        flush.answered(entries, answers, now + 5, &mut SplitMix64::new(7));
    }

    /// A flush under `config` at its first store step (polled at 1 000),
    /// and the state of what that step leases.
    fn at_first_claim(config: &Config) -> (Flush, EntryState) {
        let mut flush = new_flush(config, false);
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_000)) else {
            panic!("a flush starts with a store step");
        };
        let leased = EntryState::InFlight {
            lease_until: terms.until,
        };
        (flush, leased)
    }

    /// A flush under `config` that claimed one head of lane `c1` at 1 000,
    /// sent it and got `answer` back: its next poll settles it.
    fn after_one_answer(config: &Config, answer: Answer) -> Flush {
        let mut flush = new_flush(config, false);
        flush.poll(1_000);
        send_cycle(
            &mut flush,
            vec![entry(1, "c1", EntryState::Pending)],
            vec![answer],
            1_000,
        );
        flush
    }

    /// Whether the first claim of a flush at `now` over `surveys` surveys.
    fn first_claim_surveys(config: &Config, surveys: Option<&Surveys>, now: Millis) -> bool {
        let mut flush = new_flush(config, false);
        if let Some(s) = surveys {
            flush = flush.surveys(s.clone());
        }
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(now)) else {
            panic!("a flush starts with a store step");
        };
        terms.survey
    }

    #[test]
    fn an_engines_flushes_survey_for_lanes_once_a_minute() {
        let config = Config::default();
        assert!(
            first_claim_surveys(&config, None, 1_000),
            "alone, every flush surveys"
        );
        assert!(first_claim_surveys(&config, None, 1_001));
        let surveys = Surveys::default();
        let s = Some(&surveys);
        assert!(
            first_claim_surveys(&config, s, 1_000),
            "the engine's first flush surveys"
        );
        assert!(
            !first_claim_surveys(&config, s, 1_500),
            "the next reads the listed lanes"
        );
        assert!(!first_claim_surveys(
            &config,
            s,
            1_000 + SURVEY_EVERY_MS - 1
        ));
        assert!(
            first_claim_surveys(&config, s, 1_000 + SURVEY_EVERY_MS),
            "a minute later, it surveys again"
        );
        assert!(
            first_claim_surveys(&config, s, 500),
            "and when the clock went back"
        );
        assert!(
            first_claim_surveys(&config, Some(&Surveys::default()), 501),
            "a restarted engine (a new record) surveys at once"
        );
        // Only the first claim of a flush may survey.
        let mut flush = new_flush(&config, false).surveys(Surveys::default());
        flush.poll(1_000);
        send_cycle(
            &mut flush,
            vec![entry(1, "c1", EntryState::Pending)],
            vec![answer(200, None)],
            1_000,
        );
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_000 + 2 * SURVEY_EVERY_MS)) else {
            panic!("the next cycle is a store step");
        };
        assert!(!terms.survey, "a later claim reads the listed lanes");
    }

    #[test]
    fn an_origin_that_gave_no_answer_is_probed_again_after_a_gap() {
        use crate::throttle::PROBE_GAP_MS;
        let offline = || Answer {
            token: None,
            result: Err(crate::classify::TransportError {
                kind: crate::classify::FailureKind::Network,
                message: "offline".into(),
            }),
        };
        let other = "https://other.example.test";
        let mut far = entry(3, "c3", EntryState::Pending);
        far.origin = other.into();
        // A flush of an engine keeping gaps: c1's request gets no answer.
        let run = |config: &Config, gaps: &ProbeGaps| {
            let mut flush = new_flush(config, false).probe_gaps(gaps.clone());
            flush.poll(1_000);
            send_cycle(
                &mut flush,
                vec![entry(1, "c1", EntryState::Pending)],
                vec![offline()],
                1_000,
            );
            let Some((now, _, Some(_))) = cycle_of(flush.poll(1_010)) else {
                panic!("the answer is settled and the next claim made in one step");
            };
            let heads = [entry(2, "c2", EntryState::Pending).head(), far.head()];
            let planned = flush.plan(&mut ScheduleState::default(), &heads, &|_| true);
            (now, planned)
        };
        let config = Config::default();
        let gaps = ProbeGaps::default();
        let (now, (claims, wake)) = run(&config, &gaps);
        assert_eq!(
            claims,
            [(3, Claim::Send)],
            "the origin that gave no answer waits; another goes"
        );
        assert_eq!(
            wake,
            Some(1_005 + PROBE_GAP_MS),
            "and the flush wakes when the gap ends"
        );
        assert_eq!(gaps.quiet_until(ORIGIN, now), Some(1_005 + PROBE_GAP_MS));
        assert_eq!(
            gaps.quiet_until(ORIGIN, 1_005 + PROBE_GAP_MS),
            None,
            "then it may probe"
        );

        // The network coming back ends every gap at once.
        let asks = TokenAsks::default();
        let mut back = crate::door::NetworkBack::new(asks).probe_gaps(gaps.clone());
        back.poll(1_020);
        assert_eq!(gaps.quiet_until(ORIGIN, 1_020), None);

        // An answer ends it too.
        gaps.unanswered(ORIGIN, 2_000);
        gaps.answered(ORIGIN);
        assert_eq!(gaps.quiet_until(ORIGIN, 2_001), None);

        // With the herd throttle off, there is no probe, and no gap.
        let mut off = Config::default();
        off.pacer.throttle.enabled = false;
        let (_, (claims, _)) = run(&off, &ProbeGaps::default());
        assert_eq!(claims.len(), 2, "every head goes");
    }

    #[test]
    fn a_cycle_claims_sends_then_the_next_settles_and_claims_in_one_step() {
        let config = Config::default();
        let mut flush = new_flush(&config, false);
        let Some((_, settlements, Some(terms))) = cycle_of(flush.poll(1_000)) else {
            panic!("a flush starts with a store step");
        };
        assert_eq!(settlements, None, "the first cycle only claims");
        assert_eq!(
            (terms.now, terms.until, terms.steal),
            (1_000, 1_000 + config.lease_ms, false)
        );

        let head = entry(1, "c1", EntryState::Pending);
        let (claims, _) = flush.plan(&mut ScheduleState::default(), &[head.head()], &|_| true);
        assert_eq!(claims, [(1, Claim::Send)]);

        flush.stored(&[], claimed(vec![head.clone()]));
        let Some(entries) = sent(flush.poll(1_001)) else {
            panic!("then it sends");
        };
        assert_eq!(entries, core::slice::from_ref(&head));
        let kinds: Vec<_> = flush.take_events().iter().map(Event::kind).collect();
        assert_eq!(kinds, ["sending"], "told before the send goes out");

        flush.answered(
            entries,
            vec![answer(200, Some("t"))],
            1_010,
            &mut SplitMix64::new(1),
        );
        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_020)) else {
            panic!("the answers are settled by the next claim's store step");
        };
        assert_eq!(settlements.len(), 1);
        assert!(matches!(
            settlements[0].action,
            Action::Delivered { status: 200, .. }
        ));
        assert_eq!((settlements[0].seq, settlements[0].attempt), (1, 1));

        let mut schedule = ScheduleState::default();
        flush.settled_into(&mut schedule, &settlements);
        flush.stored(&settlements, Claimed::default());
        let (Io::Done, report) = (flush.poll(1_030), flush.report().clone()) else {
            panic!("nothing more is ready: done");
        };
        assert_eq!(
            (report.cycles, report.attempts, report.delivered),
            (2, 1, 1)
        );
        let kinds: Vec<_> = flush.take_events().iter().map(Event::kind).collect();
        assert_eq!(kinds, ["sent"]);
        assert!(matches!(flush.poll(1_040), Io::Done), "done stays done");
    }

    #[test]
    fn a_fenced_flush_sends_only_what_still_holds_its_lease() {
        let config = Config::default();
        let mut flush = new_flush(&config, false).fenced(true);
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_000)) else {
            panic!("a store step");
        };
        let leased = EntryState::InFlight {
            lease_until: terms.until,
        };
        let (a1, b1, a2) = (
            entry(1, "a", leased),
            entry(2, "b", leased),
            entry(3, "a", leased),
        );
        flush.stored(&[], claimed(vec![a1.clone(), b1.clone(), a2.clone()]));
        let Io::Store(fence) = flush.poll(1_001) else {
            panic!("a fenced flush reads its leases before it sends");
        };
        assert!(
            flush.take_events().is_empty(),
            "nothing told before the fence"
        );
        // Meanwhile a1's lease ran out and another process took it (its
        // attempt 2); b1 still holds.
        let mut taken = a1.clone();
        taken.attempts = 2;
        let writes = serve(&mut flush, fence, 1_002, |read| match read {
            Read::Entries(ask) => {
                assert_eq!(ask.seqs, [1, 2], "the heads about to go");
                ask.reply(vec![taken.clone(), b1.clone()])
            }
            other => panic!("{other:?}"),
        });
        assert!(writes.is_empty(), "a fence only reads");
        let Some(first) = sent(flush.poll(1_003)) else {
            panic!("then it sends what holds");
        };
        assert_eq!(first, std::slice::from_ref(&b1));
        assert_eq!(flush.report().fenced, 1);
        flush.answered(
            first,
            vec![answer(200, None)],
            1_010,
            &mut SplitMix64::new(3),
        );
        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_020)) else {
            panic!("the next store step settles the cycle");
        };
        let got: Vec<_> = settlements.iter().map(|s| (s.seq, s.attempt)).collect();
        assert!(
            !got.iter().any(|(seq, _)| *seq == 1),
            "a1 is not ours: no settlement"
        );
        assert!(
            settlements
                .iter()
                .any(|s| s.seq == 3 && s.action == Action::Unsent),
            "a2, behind the lost lease, goes back unsent: {got:?}"
        );
    }

    #[test]
    fn a_fenced_flushs_requests_must_leave_before_their_lease_ends() {
        let config = Config::default();
        for fenced in [true, false] {
            let mut flush = new_flush(&config, false).fenced(fenced);
            let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_000)) else {
                panic!("a store step");
            };
            let leased = EntryState::InFlight {
                lease_until: terms.until,
            };
            let a1 = entry(1, "a", leased);
            flush.stored(&[], claimed(vec![a1.clone()]));
            if fenced {
                let Io::Store(fence) = flush.poll(1_001) else {
                    panic!("a fenced flush reads its leases before it sends");
                };
                serve(&mut flush, fence, 1_002, |read| match read {
                    Read::Entries(ask) => ask.reply(vec![a1.clone()]),
                    other => panic!("{other:?}"),
                });
            }
            let Io::Send(mut ask) = flush.poll(1_003) else {
                panic!("then it sends");
            };
            let leave_by: Vec<_> = ask.requests(&|_| None).iter().map(|r| r.leave_by).collect();
            let expected = fenced.then(|| terms.until - LEASE_MARGIN_MS);
            assert_eq!(
                leave_by,
                [expected],
                "fenced {fenced}: a request leaves by its lease's end less the margin, \
                 only where the lease can pass to another process"
            );
        }
    }

    #[test]
    fn a_fence_lets_nothing_through_whose_lease_would_run_out_mid_send() {
        let config = Config::default();
        let short = EntryState::InFlight {
            lease_until: 5_000 + config.send_timeout_ms,
        };
        let mut e = entry(1, "a", short);
        let mut fence = Fence::new(vec![(1, 1)], 5_000, config.send_timeout_ms);
        let Step::Read(reads) = fence.poll(&mut crate::queue::NoHooks) else {
            panic!("it reads the entries");
        };
        let found = reads
            .into_iter()
            .map(|r| match r {
                Read::Entries(ask) => ask.reply(vec![e.clone()]),
                other => panic!("{other:?}"),
            })
            .collect();
        fence.feed(found);
        assert!(matches!(
            fence.poll(&mut crate::queue::NoHooks),
            Step::Commit
        ));
        assert!(
            fence.finish().is_empty(),
            "a lease ending within a send does not stand"
        );
        e.state = EntryState::InFlight {
            lease_until: 5_001 + config.send_timeout_ms,
        };
        let mut fence = Fence::new(vec![(1, 1), (2, 1)], 5_000, config.send_timeout_ms);
        let Step::Read(reads) = fence.poll(&mut crate::queue::NoHooks) else {
            panic!("it reads the entries");
        };
        let found = reads
            .into_iter()
            .map(|r| match r {
                Read::Entries(ask) => ask.reply(vec![e.clone()]),
                other => panic!("{other:?}"),
            })
            .collect();
        fence.feed(found);
        fence.poll(&mut crate::queue::NoHooks);
        assert_eq!(fence.finish(), [1], "a gone entry (2) does not stand");
    }

    #[test]
    fn followers_go_as_their_lane_clears_and_come_back_unsent_when_it_does_not() {
        let config = Config::default();
        let (mut flush, leased) = at_first_claim(&config);
        // Lane b is on another origin: a failure halts following to its
        // own origin for the rest of the cycle.
        let elsewhere = |e: Entry| Entry {
            origin: "https://other.example.test".into(),
            ..e
        };
        let (a1, b1) = (entry(1, "a", leased), elsewhere(entry(2, "b", leased)));
        let (a2, b2) = (entry(3, "a", leased), elsewhere(entry(4, "b", leased)));
        let pending = |e: &Entry| Head {
            state: EntryState::Pending,
            attempts: 0,
            ..e.head()
        };
        let mut schedule = ScheduleState::default();
        let (claims, _) = flush.plan(&mut schedule, &[pending(&a1), pending(&b1)], &|_| true);
        assert_eq!(claims.len(), 2);
        assert_eq!(
            flush.follow_room(),
            config.batch_size * BATCHES_PER_CYCLE - 2
        );
        assert!(flush.follow(&mut schedule, &pending(&a2), &|_| true));
        assert!(flush.follow(&mut schedule, &pending(&b2), &|_| true));
        let parked = Head {
            state: EntryState::AwaitingToken,
            ..pending(&entry(5, "a", leased))
        };
        assert!(
            !flush.follow(&mut schedule, &parked, &|_| true),
            "only a plain pending entry follows"
        );

        flush.stored(
            &[],
            claimed(vec![a1.clone(), b1.clone(), a2.clone(), b2.clone()]),
        );
        let Some(first) = sent(flush.poll(1_001)) else {
            panic!("the heads go first");
        };
        assert_eq!(first, [a1.clone(), b1.clone()]);
        let told: Vec<_> = flush.take_events().iter().map(Event::kind).collect();
        assert_eq!(told, ["sending", "sending"], "followers are not told yet");

        // a1 gets through, b1 does not.
        flush.answered(
            first,
            vec![answer(200, None), answer(503, None)],
            1_010,
            &mut SplitMix64::new(3),
        );
        let Some(second) = sent(flush.poll(1_011)) else {
            panic!("a1 cleared lane a: its follower goes, with no store step");
        };
        assert_eq!(second, core::slice::from_ref(&a2));
        let told: Vec<_> = flush.take_events().iter().map(Event::kind).collect();
        assert_eq!(told, ["sending"]);
        flush.answered(
            second,
            vec![answer(201, None)],
            1_020,
            &mut SplitMix64::new(4),
        );

        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_030)) else {
            panic!("then one store step settles the whole cycle");
        };
        let got: Vec<_> = settlements
            .iter()
            .map(|s| (s.seq, s.attempt, core::mem::discriminant(&s.action)))
            .collect();
        let kind = |a: Action| core::mem::discriminant(&a);
        let delivered = kind(Action::Delivered {
            status: 200,
            duplicate: false,
        });
        assert_eq!(got.len(), 4);
        assert!(got.contains(&(1, 1, delivered)));
        assert!(got.contains(&(3, 1, delivered)));
        assert!(got.contains(&(4, 1, kind(Action::Unsent))), "{got:?}");
        assert!(matches!(
            settlements.iter().find(|s| s.seq == 2).map(|s| &s.action),
            Some(Action::Retry { .. })
        ));
    }

    #[test]
    fn answers_fed_one_by_one_let_each_lane_go_on_without_waiting_for_the_others() {
        let config = Config::default();
        let (mut flush, leased) = at_first_claim(&config);
        let (a1, b1) = (entry(1, "a", leased), entry(2, "b", leased));
        let (a2, b2) = (entry(3, "a", leased), entry(4, "b", leased));
        flush.stored(
            &[],
            claimed(vec![a1.clone(), b1.clone(), a2.clone(), b2.clone()]),
        );
        let seqs = |ask: &SendAsk| ask.entries().iter().map(|e| e.seq).collect::<Vec<_>>();
        let split = |io: Io| -> Vec<SendAsk> {
            let Io::Send(mut ask) = io else {
                panic!("a send, not {io:?}");
            };
            drop(ask.requests(&|_| None));
            ask.split()
        };
        let ok = || {
            Ok(Response {
                status: 200,
                headers: Vec::new(),
                body: Vec::new(),
            })
        };

        let mut first = split(flush.poll(1_001)).into_iter();
        let (to_a1, to_b1) = (first.next().unwrap(), first.next().unwrap());
        assert_eq!((seqs(&to_a1), seqs(&to_b1)), (vec![1], vec![2]));
        // a1's answer comes first: a2 goes while b1 is still out.
        crate::io::feed_at(&mut flush, to_a1.reply(vec![ok()]), 1_010);
        let to_a2 = split(flush.poll(1_011)).pop().unwrap();
        assert_eq!(seqs(&to_a2), [3], "lane a goes on at once");
        assert!(
            matches!(flush.poll(1_012), Io::Wait),
            "then waits for b1 and a2"
        );
        crate::io::feed_at(&mut flush, to_b1.reply(vec![ok()]), 1_020);
        let to_b2 = split(flush.poll(1_021)).pop().unwrap();
        assert_eq!(seqs(&to_b2), [4]);
        crate::io::feed_at(&mut flush, to_a2.reply(vec![ok()]), 1_030);
        assert!(
            matches!(flush.poll(1_031), Io::Wait),
            "b2 is still out: no store step yet"
        );
        crate::io::feed_at(&mut flush, to_b2.reply(vec![ok()]), 1_040);

        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_050)) else {
            panic!("the last answer in, one store step settles the cycle");
        };
        let mut delivered: Vec<_> = settlements
            .iter()
            .filter(|s| matches!(s.action, Action::Delivered { .. }))
            .map(|s| s.seq)
            .collect();
        delivered.sort_unstable();
        assert_eq!(delivered, [1, 2, 3, 4]);
        assert_eq!(flush.report().attempts, 4);
    }

    #[test]
    fn a_follower_whose_lease_would_run_out_mid_send_goes_back_unsent() {
        let config = Config::default();
        let mut flush = new_flush(&config, false);
        flush.poll(1_000);
        let a1 = entry(
            1,
            "a",
            EntryState::InFlight {
                lease_until: 1_000 + config.lease_ms,
            },
        );
        let short = EntryState::InFlight {
            lease_until: 1_010 + config.send_timeout_ms,
        };
        let a2 = entry(2, "a", short);
        // Behind one that does not go, nothing of its lane goes.
        let a3 = entry(3, "a", a1.state);
        flush.stored(&[], claimed(vec![a1.clone(), a2, a3]));
        let Some(first) = sent(flush.poll(1_001)) else {
            panic!("the head goes");
        };
        flush.answered(
            first,
            vec![answer(200, None)],
            1_010,
            &mut SplitMix64::new(5),
        );
        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_011)) else {
            panic!("no round for a lease that would run out: the store step");
        };
        let unsent: Vec<_> = settlements
            .iter()
            .filter(|s| s.action == Action::Unsent)
            .map(|s| s.seq)
            .collect();
        assert_eq!((settlements.len(), unsent), (3, vec![2, 3]));
    }

    #[test]
    fn a_stale_settlement_tells_nothing() {
        let config = Config::default();
        let mut flush = after_one_answer(&config, answer(200, None));
        let Some(_) = cycle_of(flush.poll(1_020)) else {
            panic!("a store step");
        };
        flush.take_events();
        // The store skipped it (the entry was re-leased meanwhile).
        flush.stored(&[], Claimed::default());
        let (Io::Done, report) = (flush.poll(1_030), flush.report().clone()) else {
            panic!("done");
        };
        assert_eq!(report.delivered, 0);
        assert!(flush.take_events().is_empty());
    }

    #[test]
    fn a_spent_budget_settles_the_last_answers_alone_and_wakes_at_once() {
        let config = Config {
            max_cycles_per_flush: 1,
            ..Config::default()
        };
        let mut flush = after_one_answer(&config, answer(503, None));
        let Some((now, Some(settlements), None)) = cycle_of(flush.poll(2_000)) else {
            panic!("no cycle is left: settle alone");
        };
        assert_eq!((now, settlements.len()), (2_000, 1));
        assert!(matches!(settlements[0].action, Action::Retry { .. }));
        flush.settled_into(&mut ScheduleState::default(), &settlements);
        flush.stored(&settlements, Claimed::default());
        let (Io::Done, report) = (flush.poll(2_001), flush.report().clone()) else {
            panic!("done");
        };
        assert_eq!((report.cycles, report.retried), (1, 1));
        assert_eq!(
            report.next_wake,
            Some(2_001),
            "work is left: run again at once"
        );
    }

    #[test]
    fn a_flush_wound_down_mid_send_settles_its_answers_and_claims_nothing_more() {
        let config = Config::default();
        let mut flush = after_one_answer(&config, answer(200, None));
        flush.wind_down();
        let Some((_, Some(settlements), None)) = cycle_of(flush.poll(2_000)) else {
            panic!("wound down: the answers are settled alone, nothing claimed");
        };
        assert_eq!(settlements.len(), 1);
        assert!(matches!(settlements[0].action, Action::Delivered { .. }));
        flush.settled_into(&mut ScheduleState::default(), &settlements);
        flush.stored(&settlements, Claimed::default());
        let (Io::Done, report) = (flush.poll(2_001), flush.report().clone()) else {
            panic!("done");
        };
        assert_eq!(report.delivered, 1);
        // Wound down before a claim: done at once, nothing leased.
        let mut idle = new_flush(&config, false);
        idle.wind_down();
        assert!(matches!(idle.poll(3_000), Io::Done));
    }

    #[test]
    fn an_exclusive_flush_takes_over_leases_in_its_first_claim_only() {
        let config = Config::default();
        let mut flush = new_flush(&config, true);
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_000)) else {
            panic!("a store step");
        };
        assert!(terms.steal);
        let orphan = entry(
            1,
            "c1",
            EntryState::InFlight {
                lease_until: 50_000,
            },
        );
        let (claims, _) = flush.plan(&mut ScheduleState::default(), &[orphan.head()], &|_| true);
        assert_eq!(claims, [(1, Claim::Send)], "an orphaned lease goes at once");
        send_cycle(&mut flush, vec![orphan], vec![answer(500, None)], 1_000);
        let Some((_, _, Some(terms))) = cycle_of(flush.poll(1_020)) else {
            panic!("a store step");
        };
        assert!(
            !terms.steal,
            "its own leases are settled before the next claim"
        );
    }

    #[test]
    fn a_refused_token_is_forgotten_and_a_fresh_one_asked_for() {
        let config = Config::default();
        let mut flush = after_one_answer(&config, answer(401, Some("old")));
        let Some(refused) = forgotten(flush.poll(1_020)) else {
            panic!("the refused token is forgotten first");
        };
        assert_eq!(refused, [(ORIGIN.to_owned(), "old".to_owned())]);
        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(1_020)) else {
            panic!("then the store step");
        };
        assert!(matches!(settlements[0].action, Action::AwaitToken { .. }));
        flush.settled_into(&mut ScheduleState::default(), &settlements);
        flush.stored(&settlements, Claimed::default());
        let Some(origins) = asked(flush.poll(1_030)) else {
            panic!("a token is asked for");
        };
        assert_eq!(origins, [ORIGIN]);
        flush.tokens_came(vec![ORIGIN.to_owned()]);
        let Io::Store(release) = flush.poll(1_031) else {
            panic!("the origin's parked entries are released");
        };
        let parked = entry(1, "c1", EntryState::AwaitingToken);
        flush.take_events();
        let writes = serve(&mut flush, release, 1_032, |read| match read {
            Read::State(ask) => {
                assert_eq!(ask.origin.as_deref(), Some(ORIGIN));
                ask.reply(vec![parked.clone()], None)
            }
            other => panic!("{other:?}"),
        });
        assert!(
            matches!(&writes[..], [Write::Put(e)] if e.state == EntryState::Pending),
            "{writes:?}"
        );
        let next = flush.poll(1_040);
        assert_eq!(
            flush
                .take_events()
                .iter()
                .map(Event::kind)
                .collect::<Vec<_>>(),
            ["queued"],
            "the released entry is told"
        );
        assert!(
            matches!(cycle_of(next), Some((_, None, Some(_)))),
            "a token in hand: another cycle"
        );
    }

    #[test]
    fn a_parked_origin_is_asked_again_only_after_token_retry_ms() {
        let config = Config::default();
        let parked = entry(1, "c1", EntryState::AwaitingToken);
        for (asked_at, asks_again) in [(99_000, false), (100_000 - config.token_retry_ms, true)] {
            let asks = TokenAsks::default();
            asks.asked(ORIGIN, asked_at);
            let mut flush = Flush::new(Rc::new(config.clone()), asks.clone(), false);
            flush.poll(100_000);
            let (claims, _) =
                flush.plan(&mut ScheduleState::default(), &[parked.head()], &|_| false);
            assert!(claims.is_empty());
            flush.stored(&[], Claimed::default());
            match flush.poll(100_001) {
                Io::AskTokens(ask) if asks_again => {
                    assert_eq!(ask.origins(), [ORIGIN]);
                    assert_eq!(
                        asks.again_at(ORIGIN, 0),
                        Some(100_000),
                        "the flush notes its ask"
                    );
                }
                Io::Done if !asks_again => {
                    let again = asked_at + config.token_retry_ms;
                    assert_eq!(flush.report().next_wake, Some(again), "wakes to ask again");
                }
                other => panic!("asked at {asked_at}: {other:?}"),
            }
        }
    }

    #[test]
    fn an_entry_newly_parked_for_a_token_asks_no_more_often_either() {
        // During an outage the token URL fails and every cycle parks an
        // entry for want of a token: one ask per `token_retry_ms`, not one
        // per cycle (CI's chaos run counted up to 28 token requests into
        // one outage). A token the server refused (a 401) is asked at once:
        // `a_refused_token_is_forgotten_and_a_fresh_one_asked_for`.
        let config = Config::default();
        let parked = entry(1, "c1", EntryState::AwaitingToken);
        for (asked_at, asks_again) in [(99_000, false), (100_000 - config.token_retry_ms, true)] {
            let asks = TokenAsks::default();
            asks.asked(ORIGIN, asked_at);
            let mut flush = Flush::new(Rc::new(config.clone()), asks, false);
            flush.poll(100_000);
            flush.stored(
                &[],
                Claimed {
                    awaiting_token: vec![parked.clone()],
                    ..Claimed::default()
                },
            );
            let io = flush.poll(100_001);
            assert_eq!(asked(io).is_some(), asks_again, "asked at {asked_at}");
        }
    }

    #[test]
    fn a_token_that_does_not_come_at_once_is_asked_for_again_after_token_retry_ms() {
        let config = Config::default();
        let parked = entry(1, "c1", EntryState::Pending);
        let mut flush = new_flush(&config, false);
        flush.poll(100_000);
        flush.stored(
            &[],
            Claimed {
                awaiting_token: vec![parked],
                ..Claimed::default()
            },
        );
        let Io::AskTokens(ask) = flush.poll(100_001) else {
            panic!("a token is asked for");
        };
        crate::io::feed_at(&mut flush, ask.reply(Vec::new()), 100_002);
        assert!(matches!(flush.poll(100_003), Io::Done));
        assert_eq!(
            flush.report().next_wake,
            Some(100_000 + config.token_retry_ms),
            "none came: wake to ask again"
        );
    }

    #[test]
    fn a_cycle_that_buries_a_head_goes_on_to_its_successor() {
        let config = Config::default();
        let mut flush = new_flush(&config, false);
        flush.poll(1_000);
        let mut dead = entry(1, "c1", EntryState::Pending);
        dead.last_error = Some(crate::classify::LastError::new("max-age", "too old"));
        flush.stored(
            &[],
            Claimed {
                expired: vec![dead],
                ..Claimed::default()
            },
        );
        assert!(
            cycle_of(flush.poll(1_001)).is_some(),
            "its successor may be ready"
        );
        let kinds: Vec<_> = flush.take_events().iter().map(Event::kind).collect();
        assert_eq!(kinds, ["dead"]);
    }

    #[test]
    fn an_origin_back_from_an_outage_is_claimed_from_at_once() {
        // The probe of an origin that gave no answer is answered: the next
        // cycle claims its backlog at the pacer's pace, no window first.
        let config = Config::default();
        let mut schedule = ScheduleState::default();
        let unanswered = crate::throttle::Signal::Unanswered;
        schedule.answered(ORIGIN, unanswered, &config.pacer, 1_000, 0);
        let mut flush = new_flush(&config, false);
        flush.poll(60_000);
        let head = entry(1, "c1", EntryState::Pending);
        send_cycle(&mut flush, vec![head], vec![answer(200, None)], 60_000);
        let Some((_, Some(settlements), Some(_))) = cycle_of(flush.poll(60_010)) else {
            panic!("a store step");
        };
        flush.settled_into(&mut schedule, &settlements);
        assert!(schedule.throttled(&config.pacer).is_empty(), "answered");
        let heads: Vec<Head> = (2..5)
            .map(|seq| entry(seq, &format!("c{seq}"), EntryState::Pending).head())
            .collect();
        let (claims, _) = flush.plan(&mut schedule, &heads, &|_| true);
        assert_eq!(claims.len(), 3, "every lane goes in the same cycle");
    }
}
