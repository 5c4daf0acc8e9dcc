//! The machines' I/O vocabulary: what a machine asks a driver to do
//! ([`Io`]), the one way to answer each ask ([`Reply`]), and the
//! [`Machine`] trait every one of them implements.
//!
//! # Design
//!
//! Everything the engine decides is decided by a synchronous machine:
//! a [`Flush`](crate::flush::Flush), or one of the front doors in
//! [`door`](crate::door) (intercept, forward, write-through, a token's
//! arrival, the network coming back). A machine never waits, never reads
//! a clock and never touches the store, the network or the tokens; it is
//! **polled** for the next piece of I/O and **fed** the reply, until it
//! answers [`Io::Done`]:
//!
//! ```text
//!   loop {
//!       io    = machine.poll(now)        // what to do next (or Done)
//!       tell machine.take_events()       // in the order they happened
//!       reply = do io; ask.reply(result) // the store, tokens, network
//!       machine.feed(reply, cx)          // and decide again
//!   }
//! ```
//!
//! Each [`Io`] variant holds an *ask*: what to do, and the only way to
//! make the machine's input from its result (`reply`, or
//! [`StoreAsk::done`]), so that an answer of the wrong kind does not
//! compile. A driver performs and decides nothing:
//!
//! * [`Io::Store`]: run the [`Transaction`] the ask holds over the store
//!   (reads, writes, commit: see [`crate::store`]), with the machine as
//!   its hooks ([`Hooks`]: a flush decides its plan, its followers and
//!   its settle inside the transaction, as IndexedDB needs), then
//!   [`StoreAsk::done`].
//! * [`Io::Offer`], [`Io::AskTokens`], [`Io::Forget`]: the token source.
//!   When tokens were last asked for is the machines' own bookkeeping
//!   ([`TokenAsks`](crate::token::TokenAsks)).
//! * [`Io::Send`]: send the requests [`SendAsk::requests`] assembles
//!   (`Authorization` included, from the token in hand) concurrently,
//!   and reply with their results in order; or [`SendAsk::split`] it and
//!   reply to each request as its answer comes, polling in between: the
//!   machine may ask for more sends while the others are out, and asks
//!   [`Io::Wait`] when it has nothing to do but wait for one.
//!
//! A machine needs no borrowed configuration (it holds an
//! `Rc<`[`Config`](crate::config::Config)`>` or what it needs of one), so
//! a host that is not Rust can keep one in a handle and drive it through a
//! narrow boundary; an async Rust driver (`outbox-driver`'s `Engine`)
//! drives the same machines with `.await`.

use crate::classify::{FailureKind, Response, TransportError};
use crate::clock::{Millis, Random};
use crate::cycle::Cycle;
use crate::entry::{Entry, EntryState, Head, Seq};
use crate::event::Event;
use crate::pacer::ScheduleState;
use crate::queue::{
    EditSchedule, Enqueue, Fence, Hurry, LaneAndSchedule, Planner, Release, Settlement, Transaction,
};
use crate::request::OutgoingRequest;
use crate::scheduler::Claim;
use crate::verdict::Answer;
use alloc::{boxed::Box, string::String, vec::Vec};

/// The next piece of I/O a [`Machine`] wants done.
#[derive(Debug)]
pub enum Io {
    /// Run a transaction over the store, with the machine as its hooks
    /// ([`Hooks`]); then [`StoreAsk::done`].
    Store(StoreAsk),
    /// Offer a token for an origin to the token source.
    Offer(OfferAsk),
    /// Ask the token source for a token for each origin (and offer any
    /// that comes at once).
    AskTokens(TokensAsk),
    /// The server refused these tokens: tell the token source.
    Forget(ForgetAsk),
    /// Send these requests concurrently.
    Send(SendAsk),
    /// Nothing to do until an answer to a request already out comes back:
    /// wait for one and feed it. Only a driver that answers a send's
    /// requests one by one ([`SendAsk::split`]) can meet it: a machine
    /// waits only while some of what it sent is unanswered.
    Wait,
    /// The machine has finished; its result is read from it.
    Done,
}

/// The transactions machines run (always boxed: an enqueue holds its
/// entry).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Tx {
    Cycle(Cycle),
    Lane(LaneAndSchedule),
    Edit(EditSchedule),
    Enqueue(Enqueue),
    Release(Release),
    Hurry(Hurry),
    Fence(Fence),
}

/// A transaction to run over the store ([`Io::Store`]).
#[derive(Debug)]
pub struct StoreAsk(Box<Tx>);

impl StoreAsk {
    pub(crate) fn new(tx: Tx) -> Self {
        Self(Box::new(tx))
    }

    /// The transaction: run it to its commit (see [`crate::store`]).
    pub fn transaction(&mut self) -> &mut dyn Transaction {
        match &mut *self.0 {
            Tx::Cycle(t) => t,
            Tx::Lane(t) => t,
            Tx::Edit(t) => t,
            Tx::Enqueue(t) => t,
            Tx::Release(t) => t,
            Tx::Hurry(t) => t,
            Tx::Fence(t) => t,
        }
    }

    /// The transaction committed: the machine's input.
    pub fn done(self) -> Reply {
        Reply::again(Fed::Stored(*self.0))
    }

    /// The store refused the transaction's writes for lack of room (a
    /// quota): for an enqueue, that is the caller's answer (`Some`); any
    /// other transaction failed (`None`: the driver reports the store's
    /// error).
    pub fn quota_exceeded(self, why: String) -> Option<Reply> {
        match *self.0 {
            Tx::Enqueue(mut enqueue) => {
                enqueue.quota_exceeded(why);
                Some(Reply::again(Fed::Stored(Tx::Enqueue(enqueue))))
            }
            _ => None,
        }
    }
}

/// Offer a token ([`Io::Offer`]).
#[derive(Debug)]
pub struct OfferAsk {
    origin: String,
    token: String,
}

impl OfferAsk {
    pub(crate) fn new(origin: String, token: String) -> Self {
        Self { origin, token }
    }

    /// The origin.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Whether the token was new to the token source.
    pub fn reply(self, fresh: bool) -> Reply {
        Reply::again(Fed::Fresh(fresh))
    }
}

/// Ask for tokens ([`Io::AskTokens`]).
#[derive(Debug)]
pub struct TokensAsk {
    origins: Vec<String>,
}

impl TokensAsk {
    pub(crate) fn new(origins: Vec<String>) -> Self {
        Self { origins }
    }

    /// The origins, each asked once.
    pub fn origins(&self) -> &[String] {
        &self.origins
    }

    /// The origins whose token came at once (and was offered).
    pub fn reply(self, came: Vec<String>) -> Reply {
        Reply::again(Fed::Tokens(came))
    }
}

/// Forget refused tokens ([`Io::Forget`]).
#[derive(Debug)]
pub struct ForgetAsk {
    refused: Vec<(String, String)>,
}

impl ForgetAsk {
    pub(crate) fn new(refused: Vec<(String, String)>) -> Self {
        Self { refused }
    }

    /// `(origin, token)` for each token the server refused.
    pub fn refused(&self) -> &[(String, String)] {
        &self.refused
    }

    /// Told.
    pub fn reply(self) -> Reply {
        Reply::again(Fed::Forgotten)
    }
}

/// Send leased entries ([`Io::Send`]).
#[derive(Debug)]
pub struct SendAsk {
    entries: Vec<Entry>,
    timeout_ms: u64,
    tokens: Vec<Option<String>>,
    /// Each request must leave this long before its entry's lease ends
    /// (`Some` for a fenced flush: [`OutgoingRequest::leave_by`]).
    lease_margin: Option<Millis>,
}

impl SendAsk {
    pub(crate) fn new(entries: Vec<Entry>, timeout_ms: u64) -> Self {
        Self {
            entries,
            timeout_ms,
            tokens: Vec::new(),
            lease_margin: None,
        }
    }

    /// The same ask, each request bounded by its entry's lease less
    /// `margin` (`None`: by its timeout only).
    pub(crate) fn within_leases(mut self, margin: Option<Millis>) -> Self {
        self.lease_margin = margin;
        self
    }

    /// The entries to send.
    pub fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// The requests to send, one per entry, in order: each its stored
    /// request with the token in hand for its origin (`token` looks it up)
    /// when it needs one ([`OutgoingRequest::of`]), and, in a fenced flush,
    /// the time it must leave by: its lease's end less the margin
    /// ([`OutgoingRequest::leave_by`]; an entry not in flight, which a
    /// flush never sends, must leave at once: `Some(0)`).
    pub fn requests(&mut self, token: &dyn Fn(&str) -> Option<String>) -> Vec<OutgoingRequest<'_>> {
        self.tokens = self
            .entries
            .iter()
            .map(|e| e.needs_token.then(|| token(&e.origin)).flatten())
            .collect();
        let timeout_ms = self.timeout_ms;
        self.entries
            .iter()
            .zip(&self.tokens)
            .map(|(entry, token)| {
                let leave_by = self.lease_margin.map(|margin| match entry.state {
                    EntryState::InFlight { lease_until } => lease_until.saturating_sub(margin),
                    _ => 0,
                });
                OutgoingRequest::of(entry, token.as_deref(), timeout_ms).leaving_by(leave_by)
            })
            .collect()
    }

    /// The same ask as one ask per request, in order, each answered on its
    /// own ([`SendAsk::reply`] with its one result) as soon as its answer
    /// comes. Call it after [`SendAsk::requests`]: each part keeps the
    /// token its request went with.
    pub fn split(self) -> Vec<SendAsk> {
        let mut tokens = self.tokens.into_iter();
        self.entries
            .into_iter()
            .map(|entry| SendAsk {
                entries: alloc::vec![entry],
                timeout_ms: self.timeout_ms,
                tokens: tokens.next().into_iter().collect(),
                lease_margin: self.lease_margin,
            })
            .collect()
    }

    /// The requests' results, in the same order. An entry left without a
    /// result counts as one that got no answer (it is retried).
    pub fn reply(self, results: Vec<Result<Response, TransportError>>) -> Reply {
        let mut results = results.into_iter();
        let mut tokens = self.tokens.into_iter();
        let answers = self
            .entries
            .iter()
            .map(|_| Answer {
                token: tokens.next().flatten(),
                result: results.next().unwrap_or_else(|| {
                    Err(TransportError {
                        kind: FailureKind::Network,
                        message: "no result came back".into(),
                    })
                }),
            })
            .collect();
        Reply::again(Fed::Answered {
            sent: self.entries,
            answers,
        })
    }
}

/// What a driver tells a [`Machine`]: made only by the asks.
#[derive(Debug)]
pub struct Reply(Box<Fed>);

/// The replies, by ask (always boxed, in a [`Reply`]: a store's holds its
/// transaction).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum Fed {
    Stored(Tx),
    Fresh(bool),
    Tokens(Vec<String>),
    Forgotten,
    Answered {
        sent: Vec<Entry>,
        answers: Vec<Answer>,
    },
}

impl Reply {
    pub(crate) fn fed(self) -> Fed {
        *self.0
    }

    /// The reply a step of a machine is fed after its parent looked.
    pub(crate) fn again(fed: Fed) -> Self {
        Self(Box::new(fed))
    }
}

/// What a driver hands a [`Machine`] with each reply.
pub struct Cx<'a> {
    /// The time the reply came in.
    pub now: Millis,
    /// Randomness (backoff jitter, the phase of a spread).
    pub rng: &'a mut dyn Random,
}

/// One decision-making machine of the engine (see the [module](self)).
pub trait Machine {
    /// The next piece of I/O at time `now`; [`Io::Done`] when finished
    /// (and on every poll after).
    fn poll(&mut self, now: Millis) -> Io;

    /// The reply to the [`Io`] last polled.
    fn feed(&mut self, reply: Reply, cx: &mut Cx<'_>);

    /// The events decided since the last call, in order; the driver tells
    /// them after every poll.
    fn take_events(&mut self) -> Vec<Event>;

    /// Inside an [`EditSchedule`]: edit the pacing state.
    fn edit_schedule(&mut self, _schedule: &mut ScheduleState) {}

    /// Inside a [`Cycle`]: the pacing consequences of the settlements that
    /// `applied`.
    fn settled_into(&mut self, _schedule: &mut ScheduleState, _applied: &[Settlement]) {}

    /// Inside a [`Cycle`]: which of the lane `heads` to claim, and when
    /// to wake for the rest (see [`Planner::plan`]). `has_token` says
    /// whether a token is in hand for an origin.
    fn plan(
        &mut self,
        _schedule: &mut ScheduleState,
        _heads: &[Head],
        _has_token: &dyn Fn(&str) -> bool,
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        (Vec::new(), None)
    }

    /// Inside a [`Cycle`], after the plan: how many more entries may be
    /// leased to follow the claimed heads.
    fn follow_room(&self) -> usize {
        0
    }

    /// Inside a [`Cycle`]: whether `next` may be leased to follow the
    /// entry before it in its lane.
    fn follow(
        &mut self,
        _schedule: &mut ScheduleState,
        _next: &Head,
        _has_token: &dyn Fn(&str) -> bool,
    ) -> bool {
        false
    }
}

/// A machine as the hooks of the transaction it asked for, with a look at
/// the tokens in hand.
pub struct Hooks<'a> {
    /// The machine.
    pub machine: &'a mut dyn Machine,
    /// Whether a token is in hand for an origin.
    pub has_token: &'a dyn Fn(&str) -> bool,
}

impl Planner for Hooks<'_> {
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        self.machine.plan(schedule, heads, self.has_token)
    }

    fn follow_room(&self) -> usize {
        self.machine.follow_room()
    }

    fn follow(&mut self, schedule: &mut ScheduleState, next: &Head) -> bool {
        self.machine.follow(schedule, next, self.has_token)
    }

    fn settled(&mut self, schedule: &mut ScheduleState, applied: &[Settlement]) {
        self.machine.settled_into(schedule, applied);
    }

    fn edit(&mut self, schedule: &mut ScheduleState) {
        self.machine.edit_schedule(schedule);
    }
}

/// The time, settlements and lease terms of a flush's store step, if `io`
/// is one (no terms: it settles alone): for the tests.
#[cfg(test)]
pub(crate) fn cycle_of(
    io: Io,
) -> Option<(
    Millis,
    Option<Vec<Settlement>>,
    Option<crate::queue::LeaseTerms>,
)> {
    match io {
        Io::Store(StoreAsk(tx)) => match *tx {
            Tx::Cycle(cycle) => Some(cycle.parts()),
            _ => None,
        },
        _ => None,
    }
}

/// Feeds `reply` to `machine` as a driver would at `now` (a fixed seed):
/// for the tests that drive machines by hand.
#[cfg(test)]
pub(crate) fn feed_at(machine: &mut dyn Machine, reply: Reply, now: Millis) {
    let mut rng = crate::clock::SplitMix64::new(9);
    let mut cx = Cx { now, rng: &mut rng };
    machine.feed(reply, &mut cx);
}

/// Runs `ask`'s transaction by hand, the machine as its hooks (a token in
/// hand for every origin), `answer` answering each read; then feeds the
/// reply to the machine at `now`. Returns the writes, in order: for the
/// tests that drive machines by hand.
#[cfg(test)]
pub(crate) fn serve(
    machine: &mut dyn Machine,
    mut ask: StoreAsk,
    now: Millis,
    mut answer: impl FnMut(crate::store::Read) -> crate::store::Found,
) -> Vec<crate::store::Write> {
    use crate::store::Step;
    let mut writes = Vec::new();
    {
        let mut hooks = Hooks {
            machine: &mut *machine,
            has_token: &|_| true,
        };
        let tx = ask.transaction();
        loop {
            match tx.poll(&mut hooks) {
                Step::Read(reads) => tx.feed(reads.into_iter().map(&mut answer).collect()),
                Step::Write(w) => writes.extend(w),
                Step::Commit => break,
            }
        }
    }
    feed_at(machine, ask.done(), now);
    writes
}
