//! The storage interface the engine drives, and what it exchanges.
//!
//! A store holds the queue (entries by `seq`, grouped in lanes), the dead
//! letters, and the pacing state. Every method is one atomic step: in
//! IndexedDB, one transaction that awaits nothing but its own requests.
//! The engine never sends inside a store call: it claims a batch (one
//! transaction), sends, then settles the results (another transaction).
//!
//! The same conformance suite ([`crate::conformance`]) runs against every
//! implementation.

use crate::clock::Millis;
use crate::entry::Action;
use crate::entry::{Entry, EntryId, EntryState, Head, Seq};
use crate::pacer::ScheduleState;
use crate::scheduler::Claim;

/// Limits on what the queue accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueLimits {
    /// Most entries queued at once (default 10 000). Dead letters do not
    /// count.
    pub max_entries: usize,
    /// Largest stored request (default 256 KiB).
    pub max_entry_bytes: usize,
}

impl Default for QueueLimits {
    fn default() -> Self {
        Self {
            max_entries: 10_000,
            max_entry_bytes: 256 * 1024,
        }
    }
}

/// Why an entry was not queued. The caller keeps its request in every case.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError<E: std::error::Error + 'static> {
    /// The queue holds `max_entries` already.
    #[error("the outbox is full ({max_entries} entries); nothing was dropped")]
    Full {
        /// The limit.
        max_entries: usize,
    },
    /// The request is larger than `max_entry_bytes`.
    #[error("the request is {size} bytes, more than the {max} bytes an entry may hold")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The browser's storage quota is exhausted.
    #[error("storage quota exceeded: {0}")]
    QuotaExceeded(String),
    /// An entry with this id is already queued.
    #[error("an entry with id {0} already exists")]
    Duplicate(EntryId),
    /// The store failed.
    #[error("store error: {0}")]
    Store(#[source] E),
}

/// What a claim did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Claimed {
    /// Entries leased for sending (their `attempts` already counts this
    /// send): the heads in the plan's order (oldest first), then the
    /// entries that follow them ([`Planner::follow`]), in `seq` order per
    /// lane.
    pub sends: Vec<Entry>,
    /// Entries parked until a token arrives.
    pub awaiting_token: Vec<Entry>,
    /// Entries made dead letters (too old, too many failures).
    pub expired: Vec<Entry>,
    /// When to look again (from the plan).
    pub next_wake: Option<Millis>,
}

/// The result of one attempt, to write back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement {
    /// The entry.
    pub seq: Seq,
    /// The attempt it was leased for: a settlement for an older lease (the
    /// entry was re-leased, retried, cancelled or purged meanwhile) is
    /// ignored.
    pub attempt: u32,
    /// What to do.
    pub action: Action,
}

/// Counts of a [`Store::purge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Queued entries removed.
    pub queued: usize,
    /// Dead letters removed.
    pub dead: usize,
}

/// What [`Store::cancel`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelResult {
    /// Removed before it was sent.
    Cancelled,
    /// Being sent right now: too late to cancel.
    InFlight,
    /// No queued entry has that id.
    NotFound,
}

/// A snapshot of the queue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stats {
    /// Entries waiting their turn.
    pub pending: usize,
    /// Entries being sent.
    pub in_flight: usize,
    /// Entries waiting for a token.
    pub awaiting_token: usize,
    /// Dead letters.
    pub dead: usize,
    /// Lanes with queued entries.
    pub lanes: usize,
    /// Creation time of the oldest queued entry.
    pub oldest_created_at: Option<Millis>,
    /// Bytes of queued requests.
    pub bytes: usize,
    /// Origins paused now, with the pause end.
    pub paused: Vec<(String, Millis)>,
    /// Lanes held by a dead letter ([`crate::hold`]): the lane and the dead
    /// letter's id.
    pub held: Vec<(String, EntryId)>,
}

impl Stats {
    /// Queued entries (everything but dead letters).
    pub fn queued(&self) -> usize {
        self.pending + self.in_flight + self.awaiting_token
    }

    /// Counts one queued entry, in `state`, created at `created_at`, of
    /// `bytes`, as seen at `now` ([`EntryState::seen_at`]: one whose lease
    /// ran out counts as pending).
    pub fn count(&mut self, state: EntryState, created_at: Millis, bytes: usize, now: Millis) {
        match state.seen_at(now) {
            EntryState::InFlight { .. } => self.in_flight += 1,
            EntryState::Pending => self.pending += 1,
            EntryState::AwaitingToken => self.awaiting_token += 1,
            EntryState::Dead { .. } => {}
        }
        self.bytes = self.bytes.saturating_add(bytes);
        self.oldest_created_at = Some(
            self.oldest_created_at
                .map_or(created_at, |o| o.min(created_at)),
        );
    }

    /// Takes the origins paused at `now` and the held lanes from `schedule`.
    pub fn read_schedule(&mut self, schedule: &ScheduleState, now: Millis) {
        self.paused = schedule
            .origins
            .iter()
            .filter(|(_, p)| p.paused_until > now)
            .map(|(o, p)| (o.clone(), p.paused_until))
            .collect();
        self.held = schedule.holds.list();
    }
}

/// How a claim leases the entries it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTerms {
    /// The time.
    pub now: Millis,
    /// When the new leases expire.
    pub until: Millis,
    /// Take over unexpired leases too: only for a flusher that holds the
    /// origin-wide flush lock, for which every lease still standing was
    /// left by a sender that died.
    pub steal: bool,
    /// Find the lane heads from the queue itself (the first claim of every
    /// flush). Otherwise a store may find them from a list of lanes it
    /// keeps as it writes — faster with many lanes, but blind to a lane
    /// that a writer which keeps no such list added (an older version of
    /// the code, sharing the database during an update) until the next
    /// survey.
    pub survey: bool,
}

impl LeaseTerms {
    /// Whether `entry` may be leased under these terms (due; parked for a
    /// token, which the planner only sends once one is in hand; or in
    /// flight with a lease that ran out or may be stolen).
    pub fn allows(&self, entry: &Entry) -> bool {
        use crate::entry::EntryState;
        entry.is_ready(self.now)
            || entry.state == EntryState::AwaitingToken
            || (self.steal && matches!(entry.state, EntryState::InFlight { .. }))
    }
}

/// The planner a claim runs inside its transaction (synchronously: a
/// store awaits nothing but its own requests between these calls).
///
/// A claim first calls [`plan`](Self::plan) with every lane's head and
/// applies the claims it returns. Then, for each lane whose head it leased
/// to send and while [`follow_room`](Self::follow_room) is not zero, it
/// reads the entries behind that head in `seq` order and leases each one
/// [`follow`](Self::follow) accepts, stopping at the first it refuses;
/// those go into [`Claimed::sends`] after the heads, in `seq` order per
/// lane. Any `FnMut(&mut ScheduleState, &[Head]) -> (claims, next_wake)`
/// is a planner that lets nothing follow.
pub trait Planner {
    /// Which heads to lease, park or bury, and when to look again.
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>);

    /// How many entries may still follow the heads this cycle (0: do not
    /// read any).
    fn follow_room(&self) -> usize {
        0
    }

    /// Whether `next`, the entry right behind one just leased in its lane,
    /// is leased to follow it (it takes from the pacing budget in
    /// `schedule` when it is).
    fn follow(&mut self, _schedule: &mut ScheduleState, _next: &Head) -> bool {
        false
    }
}

/// A closure as a [`Planner`] (it lets nothing follow): names the
/// closure's argument types where a `&mut dyn Planner` is expected.
pub fn planning<F>(plan: F) -> F
where
    F: FnMut(&mut ScheduleState, &[Head]) -> (Vec<(Seq, Claim)>, Option<Millis>),
{
    plan
}

impl<F> Planner for F
where
    F: FnMut(&mut ScheduleState, &[Head]) -> (Vec<(Seq, Claim)>, Option<Millis>),
{
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        self(schedule, heads)
    }
}

/// Durable storage for the outbox. Async without `Send` (wasm is
/// single-threaded); each method is atomic.
#[allow(async_fn_in_trait)]
pub trait Store {
    /// The store's own error.
    type Error: std::error::Error + 'static;

    /// Adds an entry at the end of its lane, assigning the next `seq` (the
    /// entry's own `seq` is ignored). Answers only once the entry is
    /// durable. Refuses, keeping nothing, when full or too large.
    async fn enqueue(
        &self,
        entry: Entry,
        limits: &QueueLimits,
    ) -> Result<Entry, EnqueueError<Self::Error>>;

    /// Whether the lane has queued entries (any state but dead).
    async fn lane_busy(&self, lane: &str) -> Result<bool, Self::Error>;

    /// In one read, what an intercepted request is decided on:
    /// [`lane_busy`](Self::lane_busy) and the pacing state
    /// ([`schedule`](Self::schedule)). A store with transactions should
    /// read both in one (the live pass-through pays for each).
    async fn lane_and_schedule(&self, lane: &str) -> Result<(bool, ScheduleState), Self::Error> {
        Ok((self.lane_busy(lane).await?, self.schedule().await?))
    }

    /// In one transaction: reads the pacing state and every lane's head,
    /// asks `planner` what to do, and applies it — leasing sends until
    /// `terms.until` when [`LeaseTerms::allows`] them ([`Entry::lease`]),
    /// parking entries that await a token ([`Entry::park_for_token`]),
    /// moving expired ones to the dead letters ([`Entry::bury`]); then
    /// leases the entries that follow the heads it sends, as the
    /// [`Planner`] says — and saves the pacing state.
    async fn claim(
        &self,
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<Claimed, Self::Error>;

    /// In one transaction: applies attempt results with
    /// [`Entry::settle`] (deliveries removed, retries rescheduled, dead
    /// letters moved), then lets `schedule` update the pacing state, given
    /// the settlements that applied (stale ones are skipped). Returns those.
    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
    ) -> Result<Vec<Settlement>, Self::Error>;

    /// In one transaction: [`Store::settle`] at `terms.now`, then
    /// [`Store::claim`] on the state it left (the lane heads after the
    /// deliveries, the pacing state after `schedule`). A flush settles the
    /// answers of one cycle and claims the next in one step: one
    /// transaction per cycle instead of two. A claim that fails undoes the
    /// settle with it (the leases then run out, and the entries go again,
    /// as after a crash).
    ///
    /// The default runs the two one after the other, for stores where a
    /// step costs nothing (the memory store).
    async fn settle_and_claim(
        &self,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<(Vec<Settlement>, Claimed), Self::Error> {
        let applied = self.settle(terms.now, settlements, schedule).await?;
        let claimed = self.claim(terms, planner).await?;
        Ok((applied, claimed))
    }

    /// The pacing state.
    async fn schedule(&self) -> Result<ScheduleState, Self::Error>;

    /// Updates the pacing state (e.g. a pause after a `429` seen while
    /// passing a request through).
    async fn update_schedule(
        &self,
        update: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<(), Self::Error>;

    /// Makes every entry of `origin` that awaits a token pending again
    /// ([`Entry::release_for_token`]: a fresh token arrived). Returns them
    /// as heads, in `seq` order.
    async fn release_awaiting_token(&self, origin: &str) -> Result<Vec<Head>, Self::Error>;

    /// Makes pending entries whose last attempt got no answer at all
    /// (network failure, timeout) due at `now`: the device says the network
    /// is back, so their backoff no longer means anything. Returns how many.
    async fn retry_unreachable_now(&self, now: Millis) -> Result<usize, Self::Error>;

    /// The queued entry or dead letter with this id.
    async fn get(&self, id: EntryId) -> Result<Option<Entry>, Self::Error>;

    /// Queued entries in `seq` order, at most `limit`.
    async fn queued(&self, limit: usize) -> Result<Vec<Entry>, Self::Error>;

    /// Dead letters in `seq` order, at most `limit`.
    async fn dead_letters(&self, limit: usize) -> Result<Vec<Entry>, Self::Error>;

    /// Moves a dead letter back into the queue, at its original place in its
    /// lane, with fresh counters, due at `now` ([`Entry::revive`]); lifts
    /// its hold, if it holds a lane, in the same transaction. A corrupt
    /// dead letter ([`Entry::is_corrupt`]) stays where it is (`None`).
    async fn revive(&self, id: EntryId, now: Millis) -> Result<Option<Entry>, Self::Error>;

    /// Deletes a dead letter for good, lifting its hold in the same
    /// transaction. Returns it, if it existed.
    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, Self::Error>;

    /// Removes a queued entry that is not being sent.
    async fn cancel(&self, id: EntryId) -> Result<CancelResult, Self::Error>;

    /// Deletes every queued entry and dead letter, and the pacing state.
    async fn purge(&self) -> Result<Purged, Self::Error>;

    /// Counts and ages.
    async fn stats(&self, now: Millis) -> Result<Stats, Self::Error>;
}
