//! The engine's I/O vocabulary: what its machines ask a driver to do
//! ([`Io`]), what the driver tells them back ([`Done`]), and the
//! [`Machine`] trait every one of them implements.
//!
//! # Design
//!
//! Everything the engine decides is decided by a synchronous machine:
//! a [`Flush`](crate::flush::Flush), or one of the front doors in
//! [`door`](crate::door) (intercept, forward, write-through, a token's
//! arrival, the network coming back, the dead-letter and admin calls).
//! A machine never waits, never reads a clock and never touches the
//! store, the network or the tokens; it is **polled** for the next piece
//! of I/O and **fed** the result, until it answers [`Io::Done`]:
//!
//! ```text
//!   loop {
//!       io   = machine.poll(now)          // what to do next (or Done)
//!       tell machine.take_events()        // in the order they happened
//!       done = do io                      // the store, tokens, network
//!       machine.feed(done, now, rng)      // and decide again
//!   }
//! ```
//!
//! That loop is the one driver, [`Engine`](crate::engine::Engine)'s; its
//! `async` methods only build a machine and run it. Each [`Io`] names the
//! one [`Done`] it is answered with.
//!
//! Store calls that must decide *inside* a transaction (IndexedDB commits
//! a transaction that awaits anything but its own requests) call back into
//! the machine synchronously: [`Machine::edit_schedule`] for
//! [`Io::EditSchedule`], and [`Machine::settled_into`], [`Machine::plan`],
//! [`Machine::follow_room`] and [`Machine::follow`] for a flush's
//! [`Io::Store`] and [`Io::Settle`].

use crate::clock::{Millis, Random};
use crate::entry::{Entry, EntryId, Head, Seq};
use crate::event::Event;
use crate::pacer::ScheduleState;
use crate::scheduler::Claim;
use crate::store::{CancelResult, Claimed, EnqueueError, LeaseTerms, Purged, Settlement, Stats};
use crate::token::TokenAsks;
use crate::verdict::Answer;

/// The next piece of I/O a [`Machine`] wants done. The doc of each
/// variant says which [`Done`] answers it.
#[derive(Debug)]
pub enum Io {
    /// A flush's store step, one transaction. With `settlements`:
    /// [`Store::settle_and_claim`](crate::store::Store::settle_and_claim),
    /// calling [`Machine::settled_into`] and [`Machine::plan`] inside;
    /// without: [`Store::claim`](crate::store::Store::claim) alone.
    /// → [`Done::Stored`].
    Store {
        /// The last cycle's answers to apply first.
        settlements: Option<Vec<Settlement>>,
        /// How to lease what the plan sends.
        terms: LeaseTerms,
    },
    /// Settle answers alone at `now` ([`Store::settle`](crate::store::Store::settle),
    /// calling [`Machine::settled_into`] inside). → [`Done::Stored`] with
    /// nothing claimed.
    Settle {
        /// The time.
        now: Millis,
        /// The answers to apply.
        settlements: Vec<Settlement>,
    },
    /// Whether this lane has entries queued, and the pacing state
    /// ([`Store::lane_and_schedule`](crate::store::Store::lane_and_schedule)).
    /// → [`Done::Lane`].
    LaneAndSchedule(String),
    /// Edit the pacing state in one transaction, calling
    /// [`Machine::edit_schedule`] inside
    /// ([`Store::update_schedule`](crate::store::Store::update_schedule)).
    /// → [`Done::Nothing`].
    EditSchedule,
    /// Make this entry durable
    /// ([`Store::enqueue`](crate::store::Store::enqueue), under the
    /// configured limits). → [`Done::Enqueued`], whose error is the
    /// machine's to handle.
    Enqueue(Box<Entry>),
    /// Make the origin's entries parked for a token pending again
    /// ([`Store::release_awaiting_token`](crate::store::Store::release_awaiting_token)).
    /// → [`Done::Released`].
    Release(String),
    /// Entries backing off only because no answer came are due at this
    /// time ([`Store::retry_unreachable_now`](crate::store::Store::retry_unreachable_now)).
    /// → [`Done::Count`].
    RetryUnreachable(Millis),
    /// Counts and ages at this time ([`Store::stats`](crate::store::Store::stats)).
    /// → [`Done::Stats`].
    Stats(Millis),
    /// Put a dead letter back in the queue at this time
    /// ([`Store::revive`](crate::store::Store::revive)). → [`Done::Entry`].
    Revive(EntryId, Millis),
    /// Delete a dead letter ([`Store::discard`](crate::store::Store::discard)).
    /// → [`Done::Entry`].
    Discard(EntryId),
    /// Remove a queued entry not being sent
    /// ([`Store::cancel`](crate::store::Store::cancel)). → [`Done::Cancelled`].
    Cancel(EntryId),
    /// Delete everything ([`Store::purge`](crate::store::Store::purge)).
    /// → [`Done::Purged`].
    Purge,
    /// Offer a token for an origin to the
    /// [`TokenSource`](crate::token::TokenSource). → [`Done::Fresh`].
    Offer {
        /// The origin.
        origin: String,
        /// The token.
        token: String,
    },
    /// Ask the token source for a token for each origin, recording each
    /// ask in the driver's [`TokenAsks`], and offer any that comes at
    /// once. → [`Done::Tokens`].
    AskTokens(Vec<String>),
    /// The server refused these tokens (`(origin, token)`): tell the
    /// token source. → [`Done::Nothing`].
    Forget(Vec<(String, String)>),
    /// Send these leased entries concurrently, each with the token in
    /// hand for its origin. → [`Done::Answered`].
    Send(Vec<Entry>),
    /// The machine has finished; its result is read from it.
    Done,
}

/// What the driver tells a [`Machine`] about the [`Io`] it asked for.
#[derive(Debug)]
pub enum Done<E: std::error::Error + 'static> {
    /// For [`Io::Store`] and [`Io::Settle`]: the settlements that applied
    /// (their lease still matched) and what was claimed.
    Stored {
        /// Settlements applied.
        applied: Vec<Settlement>,
        /// What the claim leased, moved to dead, parked.
        claimed: Claimed,
    },
    /// For [`Io::LaneAndSchedule`].
    Lane {
        /// Whether the lane has entries queued.
        busy: bool,
        /// The pacing state.
        schedule: ScheduleState,
    },
    /// For [`Io::Enqueue`]: the stored entry (its `seq` assigned), or why
    /// the queue refused it.
    Enqueued(Result<Entry, EnqueueError<E>>),
    /// For [`Io::Release`]: the heads made pending again.
    Released(Vec<Head>),
    /// For [`Io::RetryUnreachable`]: how many became due.
    Count(usize),
    /// For [`Io::Stats`].
    Stats(Stats),
    /// For [`Io::Revive`] and [`Io::Discard`]: the entry, if it was a dead
    /// letter.
    Entry(Option<Entry>),
    /// For [`Io::Cancel`].
    Cancelled(CancelResult),
    /// For [`Io::Purge`].
    Purged(Purged),
    /// For [`Io::Offer`]: whether the token was new to the token source.
    Fresh(bool),
    /// For [`Io::AskTokens`]: the origins whose token came at once.
    Tokens(Vec<String>),
    /// For [`Io::Send`]: the entries sent and their answers, in the same
    /// order.
    Answered {
        /// The entries of the [`Io::Send`].
        sent: Vec<Entry>,
        /// Their answers.
        answers: Vec<Answer>,
    },
    /// For [`Io::EditSchedule`] and [`Io::Forget`].
    Nothing,
}

/// What a driver hands a [`Machine`] with each result.
pub struct Cx<'a> {
    /// The time the result came in.
    pub now: Millis,
    /// Randomness (backoff jitter, the phase of a spread).
    pub rng: &'a mut dyn Random,
    /// When tokens were last asked for, per origin.
    pub asks: &'a TokenAsks,
}

/// One decision-making machine of the engine (see the [module](self)).
/// `E` is the store's error, carried by [`Done::Enqueued`].
pub trait Machine<E: std::error::Error + 'static> {
    /// The next piece of I/O at time `now`; [`Io::Done`] when finished
    /// (and on every poll after).
    fn poll(&mut self, now: Millis) -> Io;

    /// The result of the [`Io`] last polled.
    fn feed(&mut self, done: Done<E>, cx: &mut Cx<'_>);

    /// The events decided since the last call, in order; the driver tells
    /// them after every poll.
    fn take_events(&mut self) -> Vec<Event>;

    /// Inside [`Io::EditSchedule`]'s transaction: edit the pacing state.
    fn edit_schedule(&mut self, _schedule: &mut ScheduleState) {}

    /// Inside [`Io::Store`]'s or [`Io::Settle`]'s transaction: the pacing
    /// consequences of the settlements that `applied`.
    fn settled_into(&mut self, _schedule: &mut ScheduleState, _applied: &[Settlement]) {}

    /// Inside [`Io::Store`]'s transaction: which of the lane `heads` to
    /// claim, and when to wake for the rest (see
    /// [`Planner::plan`](crate::store::Planner::plan)). `has_token` says
    /// whether a token is in hand for an origin.
    fn plan(
        &mut self,
        _schedule: &mut ScheduleState,
        _heads: &[Head],
        _has_token: &dyn Fn(&str) -> bool,
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        (Vec::new(), None)
    }

    /// Inside [`Io::Store`]'s transaction, after the plan: how many more
    /// entries may be leased to follow the claimed heads.
    fn follow_room(&self) -> usize {
        0
    }

    /// Inside [`Io::Store`]'s transaction: whether `next` may be leased to
    /// follow the entry before it in its lane.
    fn follow(
        &mut self,
        _schedule: &mut ScheduleState,
        _next: &Head,
        _has_token: &dyn Fn(&str) -> bool,
    ) -> bool {
        false
    }
}

/// Feeds `done` to `machine` as a driver would at `now` (no token asked
/// before, a fixed seed): for the tests that drive machines by hand.
#[cfg(test)]
pub(crate) fn feed_at(
    machine: &mut dyn Machine<std::io::Error>,
    done: Done<std::io::Error>,
    now: Millis,
) {
    let mut rng = crate::clock::SplitMix64::new(9);
    let asks = TokenAsks::default();
    let mut cx = Cx {
        now,
        rng: &mut rng,
        asks: &asks,
    };
    machine.feed(done, &mut cx);
}
