//! The store, as the async driver uses it: a place that opens
//! transactions, reads, writes and commits. Every rule is core's
//! ([`outbox_core::queue`]): [`Store::run`] runs one of its transactions
//! to the commit, and each operation below (enqueue, claim, settle, revive,
//! …) is that, with one transaction of `outbox_core::queue`. A store
//! implements [`Store::begin`] and a [`StoreTx`] — answering the reads and
//! carrying out the writes of [`outbox_core::store`] — and decides
//! nothing; the conformance suite (`conformance`, feature `testing`)
//! holds every store to the same behaviour.

use std::future::Future;
use std::pin::Pin;

use outbox_core::clock::Millis;
use outbox_core::cycle::Cycle;
use outbox_core::entry::{Entry, EntryId, Head, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::queue::{
    Cancel, CancelResult, Claimed, Discard, EditSchedule, Enqueue, EnqueueError, Get, Hurry,
    LaneAndSchedule, LeaseTerms, List, NoHooks, Paged, PagedRule, Planner, Purge, Purged,
    QueueLimits, ReadSchedule, Release, Revive, Rule, Settlement, Simple, Stats, Tally,
    Transaction,
};
use outbox_core::scheduler::Claim;
use outbox_core::store::{Access, Found, Read, Step, Write};

/// A boxed local future: large async bodies with several callers are
/// boxed once instead of being inlined into each caller.
pub type Boxed<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// One open transaction of a [`Store`]. Reads see its earlier writes;
/// dropped without [`commit`](Self::commit), it changes nothing.
#[allow(async_fn_in_trait)]
pub trait StoreTx {
    /// The store's error.
    type Error;

    /// Answers each read with its ask's `reply` (in any order).
    async fn read(&mut self, reads: Vec<Read>) -> Result<Vec<Found>, Self::Error>;

    /// Carries out the writes, in order (a store may only issue them here,
    /// and learn of a failure at the commit).
    fn write(&mut self, writes: Vec<Write>) -> Result<(), Self::Error>;

    /// Commits; answers once the writes are durable as the transaction's
    /// [`Access`] asks.
    async fn commit(self) -> Result<(), Self::Error>;
}

/// Durable storage for the outbox. Async without `Send` (wasm is
/// single-threaded); each operation is one atomic transaction.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The store's own error.
    type Error: std::error::Error + 'static;
    /// A transaction of this store.
    type Tx<'a>: StoreTx<Error = Self::Error>
    where
        Self: 'a;

    /// Opens a transaction that uses the store as `access` says; `name`
    /// says what it does (for error messages).
    async fn begin(&self, access: Access, name: &'static str) -> Result<Self::Tx<'_>, Self::Error>;

    /// Whether `error` is the store refusing a write for lack of room (a
    /// quota), and its message if so: an enqueue answers it as
    /// [`EnqueueError::QuotaExceeded`]. None by default.
    fn quota_exceeded(_error: &Self::Error) -> Option<String> {
        None
    }

    /// Runs `tx` to its commit inside one transaction: answers its reads,
    /// carries out its writes, commits. `hooks` decide inside it where the
    /// transaction asks them. Boxed: the one loop every operation shares.
    fn run<'a>(
        &'a self,
        tx: &'a mut dyn Transaction,
        hooks: &'a mut dyn Planner,
    ) -> Boxed<'a, Result<(), Self::Error>> {
        Box::pin(async move {
            let mut open = self.begin(tx.access(), tx.name()).await?;
            loop {
                match tx.poll(hooks) {
                    Step::Read(reads) => {
                        let found = open.read(reads).await?;
                        tx.feed(found);
                    }
                    Step::Write(writes) => open.write(writes)?,
                    Step::Commit => return open.commit().await,
                }
            }
        })
    }

    /// Runs a one-read transaction ([`Simple`]) that needs no hooks, and
    /// gives its result.
    async fn transact<R: Rule>(&self, mut tx: Simple<R>) -> Result<R::Output, Self::Error> {
        self.run(&mut tx, &mut NoHooks).await?;
        Ok(tx.finish())
    }

    /// Runs a transaction that reads the queue a page at a time
    /// ([`Paged`]), and gives its result.
    async fn transact_pages<R: PagedRule>(
        &self,
        mut tx: Paged<R>,
    ) -> Result<R::Output, Self::Error> {
        self.run(&mut tx, &mut NoHooks).await?;
        Ok(tx.finish())
    }

    /// Adds an entry at the end of its lane, assigning the next `seq` (the
    /// entry's own `seq` is ignored). Answers only once the entry is
    /// durable. Refuses, keeping nothing, when full or too large
    /// ([`Enqueue`]).
    async fn enqueue(
        &self,
        entry: Entry,
        limits: &QueueLimits,
    ) -> Result<Entry, EnqueueError<Self::Error>> {
        let mut tx = Enqueue::new(entry, *limits);
        match self.run(&mut tx, &mut NoHooks).await {
            Ok(()) => tx.finish().map_err(|refused| refused.widen()),
            Err(e) => Err(match Self::quota_exceeded(&e) {
                Some(why) => EnqueueError::QuotaExceeded(why),
                None => EnqueueError::Store(e),
            }),
        }
    }

    /// Whether the lane has queued entries (any state but dead).
    async fn lane_busy(&self, lane: &str) -> Result<bool, Self::Error> {
        Ok(self.lane_and_schedule(lane).await?.0)
    }

    /// In one read, what an intercepted request is decided on: whether its
    /// lane is busy, and the pacing state ([`LaneAndSchedule`]).
    async fn lane_and_schedule(&self, lane: &str) -> Result<(bool, ScheduleState), Self::Error> {
        self.transact(LaneAndSchedule::new(lane)).await
    }

    /// In one transaction: reads the pacing state and every lane's head,
    /// asks `planner` what to do, and applies it; then leases the entries
    /// that follow the heads it sends, as the [`Planner`] says — and saves
    /// the pacing state ([`Cycle::claim`]).
    async fn claim(
        &self,
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<Claimed, Self::Error> {
        let mut tx = Cycle::claim(terms);
        self.run(&mut tx, planner).await?;
        Ok(tx.finish().1)
    }

    /// In one transaction: applies attempt results (deliveries removed,
    /// retries rescheduled, dead letters moved; stale ones skipped), then
    /// lets `schedule` update the pacing state, given the settlements that
    /// applied. Returns those ([`Cycle::settle`]).
    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
    ) -> Result<Vec<Settlement>, Self::Error> {
        let mut tx = Cycle::settle(now, settlements);
        self.run(&mut tx, &mut Settling::new(schedule, None))
            .await?;
        Ok(tx.finish().0)
    }

    /// In one transaction: [`settle`](Self::settle) at `terms.now`, then
    /// [`claim`](Self::claim) on the state it left; a claim that fails
    /// undoes the settle with it ([`Cycle::settle_and_claim`]).
    async fn settle_and_claim(
        &self,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<(Vec<Settlement>, Claimed), Self::Error> {
        let mut tx = Cycle::settle_and_claim(settlements, terms);
        self.run(&mut tx, &mut Settling::new(schedule, Some(planner)))
            .await?;
        Ok(tx.finish())
    }

    /// The pacing state.
    async fn schedule(&self) -> Result<ScheduleState, Self::Error> {
        self.transact(ReadSchedule::new()).await
    }

    /// Updates the pacing state (e.g. a pause after a `429` seen while
    /// passing a request through), writing it if it changed.
    async fn update_schedule(
        &self,
        update: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<(), Self::Error> {
        let mut tx = EditSchedule::new();
        self.run(&mut tx, &mut Editing(update)).await?;
        tx.finish();
        Ok(())
    }

    /// Makes every entry of `origin` that awaits a token pending again
    /// ([`Release`]). Returns them as heads, in `seq` order.
    async fn release_awaiting_token(&self, origin: &str) -> Result<Vec<Head>, Self::Error> {
        self.transact_pages(Release::new(origin)).await
    }

    /// Makes pending entries whose last attempt got no answer at all due
    /// at `now` ([`Hurry`]). Returns how many.
    async fn retry_unreachable_now(&self, now: Millis) -> Result<usize, Self::Error> {
        self.transact_pages(Hurry::new(now)).await
    }

    /// The queued entry or dead letter with this id.
    async fn get(&self, id: EntryId) -> Result<Option<Entry>, Self::Error> {
        self.transact(Get::new(id)).await
    }

    /// Queued entries in `seq` order, at most `limit`.
    async fn queued(&self, limit: usize) -> Result<Vec<Entry>, Self::Error> {
        self.transact(List::queued(limit)).await
    }

    /// Dead letters in `seq` order, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<Entry>, Self::Error> {
        self.transact(List::dead_letters(limit)).await
    }

    /// Moves a dead letter back into the queue, lifting its hold in the
    /// same transaction; a corrupt one stays where it is ([`Revive`]).
    async fn revive(&self, id: EntryId, now: Millis) -> Result<Option<Entry>, Self::Error> {
        self.transact(Revive::new(id, now)).await
    }

    /// Deletes a dead letter for good, lifting its hold in the same
    /// transaction ([`Discard`]). Returns it, if it existed.
    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, Self::Error> {
        self.transact(Discard::new(id)).await
    }

    /// Removes a queued entry that is not being sent ([`Cancel`]).
    async fn cancel(&self, id: EntryId) -> Result<CancelResult, Self::Error> {
        self.transact(Cancel::new(id)).await
    }

    /// Deletes every queued entry and dead letter, and the pacing state
    /// ([`Purge`]).
    async fn purge(&self) -> Result<Purged, Self::Error> {
        self.transact(Purge::new()).await
    }

    /// Counts and ages ([`Tally`]).
    async fn stats(&self, now: Millis) -> Result<Stats, Self::Error> {
        self.transact_pages(Tally::new(now)).await
    }
}

/// A settle's closure (and a claim's planner) as one transaction's hooks.
struct Settling<'s, 'p> {
    schedule: &'s mut dyn FnMut(&mut ScheduleState, &[Settlement]),
    planner: Option<&'p mut dyn Planner>,
}

impl<'s, 'p> Settling<'s, 'p> {
    fn new(
        schedule: &'s mut dyn FnMut(&mut ScheduleState, &[Settlement]),
        planner: Option<&'p mut dyn Planner>,
    ) -> Self {
        Self { schedule, planner }
    }
}

impl Planner for Settling<'_, '_> {
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        match &mut self.planner {
            Some(planner) => planner.plan(schedule, heads),
            None => (Vec::new(), None),
        }
    }

    fn follow_room(&self) -> usize {
        self.planner.as_ref().map_or(0, |p| p.follow_room())
    }

    fn follow(&mut self, schedule: &mut ScheduleState, next: &Head) -> bool {
        self.planner
            .as_mut()
            .is_some_and(|p| p.follow(schedule, next))
    }

    fn settled(&mut self, schedule: &mut ScheduleState, applied: &[Settlement]) {
        (self.schedule)(schedule, applied);
    }
}

/// An update's closure as its transaction's hooks.
struct Editing<'a>(&'a mut dyn FnMut(&mut ScheduleState));

impl Planner for Editing<'_> {
    fn edit(&mut self, schedule: &mut ScheduleState) {
        (self.0)(schedule);
    }
}
