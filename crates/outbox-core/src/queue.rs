//! The queue's rules, each written once, as a transaction a store runs.
//!
//! # Design
//!
//! Every step that reads or changes the queue is one atomic
//! [`Transaction`]: enqueue ([`Enqueue`]), a flush cycle's settle and
//! claim ([`Cycle`]), the intercept's lane read ([`LaneAndSchedule`]), an
//! edit of the pacing state ([`EditSchedule`]), the release of entries
//! parked for a token ([`Release`]), hurrying unanswered retries
//! ([`Hurry`]), stats ([`Tally`]), the dead-letter and admin calls
//! ([`Revive`], [`Discard`], [`Cancel`], [`Purge`]) and the listings
//! ([`Get`], [`List`], [`ReadSchedule`]). Each is a small synchronous
//! machine over the protocol of [`crate::store`]: it asks for reads,
//! decides from what was read, and hands back the writes — so that every
//! store (IndexedDB, memory, SQLite, PostgreSQL, a host in another
//! language) only reads, writes and commits, and all of them behave alike
//! (the conformance suite holds them to it).
//!
//! The transitions of one entry are [`Entry`]'s ([`Entry::lease`],
//! [`Entry::settle`], …); what a transaction adds is the rest of a rule:
//! which entries it touches, in which order, what it checks first, and
//! what it writes.
//!
//! A flush cycle decides *inside* its store step (IndexedDB commits a
//! transaction that awaits anything else): which heads to lease, what
//! follows them, the pacing consequences of the answers it settles. Those
//! decisions are the flush machine's, reached through the [`Planner`]
//! hooks a store passes to [`Transaction::poll`].
//!
//! ```text
//!   Cycle:  read schedule (+ the entries settled)
//!           → settle: Entry::settle each whose lease still matches; Planner::settled
//!           → write; read every lane's head
//!           → Planner::plan → read the heads it names
//!           → lease / park / bury → write; read the entries behind the heads sent
//!           → Planner::follow each → write; read the bodies of what was claimed
//!           → write the pacing state if it changed → commit
//! ```

use std::convert::Infallible;

use crate::clock::Millis;
use crate::entry::{Entry, EntryId, EntryState, Fate, Head, Seq};
use crate::pacer::ScheduleState;
use crate::scheduler::Claim;
use crate::store::{
    Access, Among, Answer, Answers, Behind, BehindRead, BodiesRead, CountRead, EntriesRead,
    FindRead, Found, FullRead, HeadsRead, LaneRead, LastSeqRead, ListRead, Read, ScheduleRead,
    StateRead, Step, SummariesRead, TakenRead, Waiting, Write,
};

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
/// `E` is the store's error; the rules never meet one ([`Refusal`]).
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

/// A refusal of the queue's rules (or of the store's quota): an
/// [`EnqueueError`] without a store error.
pub type Refusal = EnqueueError<Infallible>;

impl Refusal {
    /// The same refusal, as the error of a store with errors `E`.
    pub fn widen<E: std::error::Error + 'static>(self) -> EnqueueError<E> {
        match self {
            Self::Full { max_entries } => EnqueueError::Full { max_entries },
            Self::TooLarge { size, max } => EnqueueError::TooLarge { size, max },
            Self::QuotaExceeded(why) => EnqueueError::QuotaExceeded(why),
            Self::Duplicate(id) => EnqueueError::Duplicate(id),
            Self::Store(never) => match never {},
        }
    }
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
    pub action: crate::entry::Action,
}

/// Counts of a [`Purge`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Purged {
    /// Queued entries removed.
    pub queued: usize,
    /// Dead letters removed.
    pub dead: usize,
}

/// What a [`Cancel`] found.
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
        entry.is_ready(self.now)
            || entry.state == EntryState::AwaitingToken
            || (self.steal && matches!(entry.state, EntryState::InFlight { .. }))
    }
}

/// What decides inside a transaction, synchronously (a store awaits
/// nothing but its own reads between these calls): a flush machine, or a
/// closure. Every hook does nothing unless implemented.
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
        _schedule: &mut ScheduleState,
        _heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        (Vec::new(), None)
    }

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

    /// The pacing consequences of the settlements that `applied` (stale
    /// ones are skipped).
    fn settled(&mut self, _schedule: &mut ScheduleState, _applied: &[Settlement]) {}

    /// An [`EditSchedule`]'s edit.
    fn edit(&mut self, _schedule: &mut ScheduleState) {}
}

/// A transaction that needs no hooks.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Planner for NoHooks {}

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

/// One atomic step on the queue, decided here and carried out by a store
/// (see [`crate::store`] for the protocol). After [`Step::Commit`] the
/// transaction holds its result (each type's `finish`).
pub trait Transaction {
    /// What it does, for a store's error messages (`enqueue`, `claim`, …).
    fn name(&self) -> &'static str;

    /// How it uses the store.
    fn access(&self) -> Access;

    /// The next step; `hooks` decide inside the transaction where a rule
    /// asks them (a flush cycle's plan, followers and settle; a schedule
    /// edit). After [`Step::Commit`] it answers `Commit` again.
    fn poll(&mut self, hooks: &mut dyn Planner) -> Step;

    /// The answers to the last [`Step::Read`]'s reads, in any order.
    fn feed(&mut self, found: Vec<Found>);
}

/// The phases of a transaction of one read step: ask, decide (and write),
/// commit.
#[derive(Debug)]
enum Once<T> {
    Ask,
    Asked(Option<Answers>),
    Decided(T),
}

impl<T> Once<T> {
    fn new() -> Self {
        Self::Ask
    }

    /// The step of a one-read transaction: `reads` first, then the writes
    /// that `decide` makes from the answers, then the commit.
    fn step(
        &mut self,
        reads: impl FnOnce() -> Vec<Read>,
        decide: impl FnOnce(Answers) -> (Vec<Write>, T),
    ) -> Step {
        match self {
            Self::Ask => {
                *self = Self::Asked(None);
                let reads = reads();
                if reads.is_empty() {
                    *self = Self::Asked(Some(Answers::default()));
                    return self.step(Vec::new, decide);
                }
                Step::Read(reads)
            }
            Self::Asked(answers) => {
                let (writes, result) = decide(answers.take().unwrap_or_default());
                *self = Self::Decided(result);
                if writes.is_empty() {
                    Step::Commit
                } else {
                    Step::Write(writes)
                }
            }
            Self::Decided(_) => Step::Commit,
        }
    }

    fn feed(&mut self, found: Vec<Found>) {
        if let Self::Asked(answers) = self {
            *answers = Some(Answers::new(found));
        }
    }

    fn finish(self) -> Option<T> {
        match self {
            Self::Decided(result) => Some(result),
            Self::Ask | Self::Asked(_) => None,
        }
    }
}

/// The result of a transaction that committed; a store answers
/// [`Step::Commit`] only at the end, so a missing result is a bug in the
/// store (a transaction returned before it committed).
#[track_caller]
fn committed<T>(result: Option<T>) -> T {
    match result {
        Some(result) => result,
        None => unreachable!("a transaction's result was taken before it committed"),
    }
}

/// Makes `entry` durable at the end of its lane, under `limits`. The
/// refusals come in this order: full, too large, an id already taken
/// (queued or dead). The entry's `seq` becomes the last one given plus
/// one (its own is ignored).
#[derive(Debug)]
pub struct Enqueue {
    entry: Option<Entry>,
    limits: QueueLimits,
    once: Once<Result<Entry, Refusal>>,
}

impl Enqueue {
    /// Enqueues `entry`.
    pub fn new(entry: Entry, limits: QueueLimits) -> Self {
        Self {
            entry: Some(entry),
            limits,
            once: Once::new(),
        }
    }

    /// The store refused the write for lack of room (a quota): the entry
    /// was not kept.
    pub fn quota_exceeded(&mut self, why: String) {
        self.once = Once::Decided(Err(EnqueueError::QuotaExceeded(why)));
    }

    /// The stored entry (its `seq` assigned), or the refusal.
    pub fn finish(self) -> Result<Entry, Refusal> {
        committed(self.once.finish())
    }
}

impl Transaction for Enqueue {
    fn name(&self) -> &'static str {
        "enqueue"
    }

    fn access(&self) -> Access {
        Access::Durable
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let (entry, limits) = (&mut self.entry, self.limits);
        let id = entry.as_ref().map(|e| e.id);
        self.once.step(
            || {
                let mut reads = vec![
                    Read::Full(FullRead {
                        at_least: limits.max_entries,
                    }),
                    Read::LastSeq(LastSeqRead),
                ];
                reads.extend(id.map(|id| Read::Taken(TakenRead { id })));
                reads
            },
            |mut found| {
                let Some(mut entry) = entry.take() else {
                    unreachable!("an enqueue decides once")
                };
                let size = entry.request.size_bytes();
                let refused = if found.yes(|a| matches!(a, Answer::Full(_))) {
                    Some(EnqueueError::Full {
                        max_entries: limits.max_entries,
                    })
                } else if size > limits.max_entry_bytes {
                    Some(EnqueueError::TooLarge {
                        size,
                        max: limits.max_entry_bytes,
                    })
                } else if found.yes(|a| matches!(a, Answer::Taken(_))) {
                    Some(EnqueueError::Duplicate(entry.id))
                } else {
                    None
                };
                if let Some(refused) = refused {
                    return (Vec::new(), Err(refused));
                }
                entry.seq = found.last_seq() + 1;
                (vec![Write::Add(entry.clone())], Ok(entry))
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Where a [`Cycle`] stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Start,
    Settle,
    Heads,
    Plan,
    Apply,
    Follow,
    Followed,
    Bodies,
    Attach,
    Save,
    Done,
}

/// A flush cycle's store step, in one transaction: settle the answers of
/// the last cycle (if any), then claim the next heads (unless settling
/// alone). A claim that fails undoes the settle with it (the leases then
/// run out, and the entries go again, as after a crash).
///
/// * **Settle**: each settlement whose entry is queued and still holds the
///   lease it was sent under ([`Entry::holds_lease`]) is applied
///   ([`Entry::settle`]): kept, removed (delivered), or moved to the dead
///   letters; the others are stale and skipped. [`Planner::settled`] then
///   writes their pacing consequences.
/// * **Claim**: the pacing state and every lane's head go to
///   [`Planner::plan`]; of what it names, a head to send is leased
///   ([`Entry::lease`]) if [`LeaseTerms::allows`] it, one without a token
///   parked ([`Entry::park_for_token`]), one past its limits buried
///   ([`Entry::bury`]). A salvaged record ([`Entry::is_corrupt`]) is never
///   leased or parked, and is buried with its own error. Then the entries
///   behind each head sent follow it as [`Planner::follow`] accepts them.
/// * The pacing state is written once, at the end, if it changed.
#[derive(Debug)]
pub struct Cycle {
    now: Millis,
    settlements: Option<Vec<Settlement>>,
    terms: Option<LeaseTerms>,
    phase: Phase,
    answers: Answers,
    read: ScheduleState,
    schedule: ScheduleState,
    applied: Vec<Settlement>,
    claims: Vec<(Seq, Claim)>,
    leads: Vec<(String, Seq)>,
    claimed: Claimed,
}

impl Cycle {
    /// Settles `settlements` at `terms.now`, then claims under `terms`.
    pub fn settle_and_claim(settlements: Vec<Settlement>, terms: LeaseTerms) -> Self {
        Self::new(terms.now, Some(settlements), Some(terms))
    }

    /// Claims under `terms`.
    pub fn claim(terms: LeaseTerms) -> Self {
        Self::new(terms.now, None, Some(terms))
    }

    /// Settles `settlements` at `now`, and claims nothing.
    pub fn settle(now: Millis, settlements: Vec<Settlement>) -> Self {
        Self::new(now, Some(settlements), None)
    }

    fn new(now: Millis, settlements: Option<Vec<Settlement>>, terms: Option<LeaseTerms>) -> Self {
        Self {
            now,
            settlements,
            terms,
            phase: Phase::Start,
            answers: Answers::default(),
            read: ScheduleState::default(),
            schedule: ScheduleState::default(),
            applied: Vec::new(),
            claims: Vec::new(),
            leads: Vec::new(),
            claimed: Claimed::default(),
        }
    }

    /// The settlements that applied, and what the claim leased, parked
    /// and buried (each entry with its body).
    pub fn finish(self) -> (Vec<Settlement>, Claimed) {
        if self.phase != Phase::Done {
            committed(None::<()>);
        }
        (self.applied, self.claimed)
    }

    /// Its time, settlements and terms: for the tests.
    #[cfg(test)]
    pub(crate) fn parts(&self) -> (Millis, Option<Vec<Settlement>>, Option<LeaseTerms>) {
        (self.now, self.settlements.clone(), self.terms)
    }

    /// Applies the settlements to the entries read, making the writes.
    fn settle_entries(&mut self, hooks: &mut dyn Planner) -> Vec<Write> {
        let mut work = self.answers.entries();
        let mut writes = Vec::new();
        for s in self.settlements.take().unwrap_or_default() {
            // Not queued, or gone already: skipped.
            let Some(at) = work.iter().position(|e| e.seq == s.seq) else {
                continue;
            };
            let entry = &mut work[at];
            if !entry.holds_lease(s.attempt) {
                continue;
            }
            match entry.settle(&s.action, self.now) {
                Fate::Keep => writes.push(Write::Put(entry.clone())),
                Fate::Remove => {
                    work.swap_remove(at);
                    writes.push(Write::Remove(s.seq));
                }
                Fate::Bury => writes.push(Write::Bury(work.swap_remove(at))),
            }
            self.applied.push(s);
        }
        hooks.settled(&mut self.schedule, &self.applied);
        writes
    }

    /// Applies the plan's claims to the heads read, making the writes.
    fn apply_claims(&mut self, terms: LeaseTerms) -> Vec<Write> {
        let mut work = self.answers.entries();
        let mut writes = Vec::new();
        for (seq, claim) in std::mem::take(&mut self.claims) {
            // Not queued, or buried already: skipped.
            let Some(at) = work.iter().position(|e| e.seq == seq) else {
                continue;
            };
            let entry = &mut work[at];
            let corrupt = entry.is_corrupt();
            match claim {
                Claim::Send | Claim::AwaitToken if corrupt => {}
                Claim::Send => {
                    if terms.allows(entry) {
                        entry.lease(terms.until);
                        writes.push(Write::Put(entry.clone()));
                        self.claimed.sends.push(entry.clone());
                    }
                }
                Claim::AwaitToken => {
                    entry.park_for_token();
                    writes.push(Write::Put(entry.clone()));
                    self.claimed.awaiting_token.push(entry.clone());
                }
                Claim::Expire(error) => {
                    // A salvaged record keeps its own, more telling, reason.
                    let error = match (corrupt, entry.last_error.take()) {
                        (true, Some(own)) => own,
                        _ => error,
                    };
                    entry.bury(error, terms.now);
                    let dead = work.swap_remove(at);
                    writes.push(Write::Bury(dead.clone()));
                    self.claimed.expired.push(dead);
                }
            }
        }
        writes
    }

    /// Leases the entries behind the heads sent, as `hooks` accept them.
    fn follow(&mut self, terms: LeaseTerms, hooks: &mut dyn Planner) -> Vec<Write> {
        let mut writes = Vec::new();
        let lists = self.answers.behind();
        for ((_, lead), list) in std::mem::take(&mut self.leads).into_iter().zip(lists) {
            for next in list {
                // A record that cannot be read stops its lane's followers:
                // it dies as a head, in its turn.
                let Some(mut next) = next else { break };
                if next.seq <= lead {
                    continue;
                }
                if hooks.follow_room() == 0 || !hooks.follow(&mut self.schedule, &next.head()) {
                    break;
                }
                next.lease(terms.until);
                writes.push(Write::Put(next.clone()));
                self.claimed.sends.push(next);
            }
        }
        writes
    }

    /// Every list of entries claimed, for their bodies.
    fn claimed_lists(&mut self) -> [&mut Vec<Entry>; 3] {
        let c = &mut self.claimed;
        [&mut c.sends, &mut c.awaiting_token, &mut c.expired]
    }
}

impl Transaction for Cycle {
    fn name(&self) -> &'static str {
        match (&self.settlements, &self.terms) {
            (Some(_), Some(_)) => "settle_and_claim",
            (_, Some(_)) => "claim",
            _ => "settle",
        }
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, hooks: &mut dyn Planner) -> Step {
        loop {
            match self.phase {
                Phase::Start => {
                    let mut reads = vec![Read::Schedule(ScheduleRead)];
                    match (&self.settlements, self.terms) {
                        (Some(settlements), _) => {
                            let mut seqs: Vec<Seq> = Vec::with_capacity(settlements.len());
                            for s in settlements {
                                if !seqs.contains(&s.seq) {
                                    seqs.push(s.seq);
                                }
                            }
                            reads.push(Read::Entries(EntriesRead { seqs }));
                            self.phase = Phase::Settle;
                        }
                        (None, Some(terms)) => {
                            reads.push(Read::Heads(HeadsRead {
                                survey: terms.survey,
                            }));
                            self.phase = Phase::Settle;
                        }
                        (None, None) => self.phase = Phase::Settle,
                    }
                    return Step::Read(reads);
                }
                Phase::Settle => {
                    self.read = self.answers.schedule();
                    self.schedule = self.read.clone();
                    if self.settlements.is_some() {
                        self.phase = Phase::Heads;
                        let writes = self.settle_entries(hooks);
                        if !writes.is_empty() {
                            return Step::Write(writes);
                        }
                    } else {
                        // A claim alone read its heads with the schedule.
                        self.phase = Phase::Plan;
                    }
                }
                Phase::Heads => match self.terms {
                    Some(terms) => {
                        self.phase = Phase::Plan;
                        return Step::Read(vec![Read::Heads(HeadsRead {
                            survey: terms.survey,
                        })]);
                    }
                    None => self.phase = Phase::Save,
                },
                Phase::Plan => {
                    let heads = self.answers.heads();
                    let (claims, next_wake) = hooks.plan(&mut self.schedule, &heads);
                    self.claimed.next_wake = next_wake;
                    let mut seqs: Vec<Seq> = Vec::with_capacity(claims.len());
                    for (seq, _) in &claims {
                        if !seqs.contains(seq) {
                            seqs.push(*seq);
                        }
                    }
                    self.claims = claims;
                    self.phase = Phase::Apply;
                    if !seqs.is_empty() {
                        return Step::Read(vec![Read::Entries(EntriesRead { seqs })]);
                    }
                }
                Phase::Apply => {
                    let Some(terms) = self.terms else {
                        self.phase = Phase::Save;
                        continue;
                    };
                    let writes = self.apply_claims(terms);
                    self.phase = Phase::Follow;
                    if !writes.is_empty() {
                        return Step::Write(writes);
                    }
                }
                Phase::Follow => {
                    self.phase = Phase::Bodies;
                    let room = hooks.follow_room();
                    if room > 0 && !self.claimed.sends.is_empty() {
                        self.leads = self
                            .claimed
                            .sends
                            .iter()
                            .map(|e| (e.lane.clone(), e.seq))
                            .collect();
                        let lanes = self
                            .leads
                            .iter()
                            .map(|(lane, after)| Behind {
                                lane: lane.clone(),
                                after: *after,
                                limit: room,
                            })
                            .collect();
                        self.phase = Phase::Followed;
                        return Step::Read(vec![Read::Behind(BehindRead { lanes })]);
                    }
                }
                Phase::Followed => {
                    self.phase = Phase::Bodies;
                    if let Some(terms) = self.terms {
                        let writes = self.follow(terms, hooks);
                        if !writes.is_empty() {
                            return Step::Write(writes);
                        }
                    }
                }
                Phase::Bodies => {
                    let mut seqs: Vec<Seq> = Vec::new();
                    for list in self.claimed_lists() {
                        seqs.extend(list.iter().map(|e| e.seq));
                    }
                    if seqs.is_empty() {
                        self.phase = Phase::Save;
                    } else {
                        self.phase = Phase::Attach;
                        return Step::Read(vec![Read::Bodies(BodiesRead { seqs })]);
                    }
                }
                Phase::Attach => {
                    let mut bodies = self.answers.bodies();
                    for list in self.claimed_lists() {
                        for entry in list.iter_mut() {
                            if let Some(at) = bodies.iter().position(|(seq, _)| *seq == entry.seq) {
                                entry.request.body = bodies.swap_remove(at).1;
                            }
                        }
                    }
                    self.phase = Phase::Save;
                }
                Phase::Save => {
                    self.phase = Phase::Done;
                    if self.schedule != self.read {
                        return Step::Write(vec![Write::Schedule(self.schedule.clone())]);
                    }
                }
                Phase::Done => return Step::Commit,
            }
        }
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.answers = Answers::new(found);
    }
}

/// The intercept's one read: whether the lane has queued entries (any
/// state but dead), and the pacing state.
#[derive(Debug)]
pub struct LaneAndSchedule {
    lane: String,
    once: Once<(bool, ScheduleState)>,
}

impl LaneAndSchedule {
    /// Reads `lane`.
    pub fn new(lane: &str) -> Self {
        Self {
            lane: lane.to_owned(),
            once: Once::new(),
        }
    }

    /// Whether the lane is busy, and the pacing state.
    pub fn finish(self) -> (bool, ScheduleState) {
        committed(self.once.finish())
    }
}

impl Transaction for LaneAndSchedule {
    fn name(&self) -> &'static str {
        "lane_and_schedule"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let lane = &self.lane;
        self.once.step(
            || {
                vec![
                    Read::Lane(LaneRead { lane: lane.clone() }),
                    Read::Schedule(ScheduleRead),
                ]
            },
            |mut found| {
                let busy = found.yes(|a| matches!(a, Answer::Lane(_)));
                (Vec::new(), (busy, found.schedule()))
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Edits the pacing state ([`Planner::edit`]), writing it if it changed.
#[derive(Debug)]
pub struct EditSchedule {
    once: Once<()>,
}

impl EditSchedule {
    /// An edit.
    pub fn new() -> Self {
        Self { once: Once::new() }
    }

    /// Done.
    pub fn finish(self) {
        committed(self.once.finish());
    }
}

impl Default for EditSchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction for EditSchedule {
    fn name(&self) -> &'static str {
        "update_schedule"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, hooks: &mut dyn Planner) -> Step {
        self.once.step(
            || vec![Read::Schedule(ScheduleRead)],
            |mut found| {
                let read = found.schedule();
                let mut schedule = read.clone();
                hooks.edit(&mut schedule);
                let writes = if schedule == read {
                    Vec::new()
                } else {
                    vec![Write::Schedule(schedule)]
                };
                (writes, ())
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Reads the pacing state.
#[derive(Debug)]
pub struct ReadSchedule {
    once: Once<ScheduleState>,
}

impl ReadSchedule {
    /// A read.
    pub fn new() -> Self {
        Self { once: Once::new() }
    }

    /// The pacing state.
    pub fn finish(self) -> ScheduleState {
        committed(self.once.finish())
    }
}

impl Default for ReadSchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction for ReadSchedule {
    fn name(&self) -> &'static str {
        "schedule"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        self.once.step(
            || vec![Read::Schedule(ScheduleRead)],
            |mut found| (Vec::new(), found.schedule()),
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// A fresh token arrived for an origin: every entry of it parked for a
/// token is pending again ([`Entry::release_for_token`]).
#[derive(Debug)]
pub struct Release {
    origin: String,
    once: Once<Vec<Head>>,
}

impl Release {
    /// Releases `origin`'s parked entries.
    pub fn new(origin: &str) -> Self {
        Self {
            origin: origin.to_owned(),
            once: Once::new(),
        }
    }

    /// The entries released, as heads, in `seq` order.
    pub fn finish(self) -> Vec<Head> {
        committed(self.once.finish())
    }
}

impl Transaction for Release {
    fn name(&self) -> &'static str {
        "release_awaiting_token"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let origin = &self.origin;
        self.once.step(
            || {
                vec![Read::State(StateRead {
                    state: Waiting::AwaitingToken,
                    origin: Some(origin.clone()),
                })]
            },
            |mut found| {
                let mut writes = Vec::new();
                let mut released = Vec::new();
                for mut entry in found.entries() {
                    if entry.state != EntryState::AwaitingToken || entry.origin != *origin {
                        continue;
                    }
                    entry.release_for_token();
                    released.push(entry.head());
                    writes.push(Write::Put(entry));
                }
                (writes, released)
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// The device says the network is back: pending entries whose last
/// attempt got no answer at all (network failure, timeout) are due now,
/// their backoff meaning nothing any more ([`Entry::hurry`]).
#[derive(Debug)]
pub struct Hurry {
    now: Millis,
    once: Once<usize>,
}

impl Hurry {
    /// Hurries at `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            now,
            once: Once::new(),
        }
    }

    /// How many became due.
    pub fn finish(self) -> usize {
        committed(self.once.finish())
    }
}

impl Transaction for Hurry {
    fn name(&self) -> &'static str {
        "retry_unreachable_now"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let now = self.now;
        self.once.step(
            || {
                vec![Read::State(StateRead {
                    state: Waiting::Pending,
                    origin: None,
                })]
            },
            |mut found| {
                let mut writes = Vec::new();
                for mut entry in found.entries() {
                    if entry.hurry(now) {
                        writes.push(Write::Put(entry));
                    }
                }
                let hurried = writes.len();
                (writes, hurried)
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Counts and ages at a time ([`Stats::count`] for each queued entry; the
/// distinct lanes; the paused origins and held lanes of the pacing state).
#[derive(Debug)]
pub struct Tally {
    now: Millis,
    once: Once<Stats>,
}

impl Tally {
    /// Counts at `now`.
    pub fn new(now: Millis) -> Self {
        Self {
            now,
            once: Once::new(),
        }
    }

    /// The counts.
    pub fn finish(self) -> Stats {
        committed(self.once.finish())
    }
}

impl Transaction for Tally {
    fn name(&self) -> &'static str {
        "stats"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let now = self.now;
        self.once.step(
            || {
                vec![
                    Read::Summaries(SummariesRead { now }),
                    Read::Count(CountRead { among: Among::Dead }),
                    Read::Schedule(ScheduleRead),
                ]
            },
            |mut found| {
                let mut stats = Stats {
                    dead: found.count(),
                    ..Stats::default()
                };
                let mut lanes: Vec<String> = Vec::new();
                for s in found.summaries() {
                    let size = usize::try_from(s.size).unwrap_or(usize::MAX);
                    stats.count(s.state, s.created_at, size, now);
                    if let Err(at) = lanes.binary_search(&s.lane) {
                        lanes.insert(at, s.lane);
                    }
                }
                stats.lanes = lanes.len();
                stats.read_schedule(&found.schedule(), now);
                (Vec::new(), stats)
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Puts a dead letter back in the queue, at its original place in its
/// lane, with fresh counters, due now ([`Entry::revive`]), and lifts its
/// hold, if it holds a lane, in the same transaction. A corrupt dead
/// letter ([`Entry::is_corrupt`]) cannot be sent: it stays where it is.
#[derive(Debug)]
pub struct Revive {
    id: EntryId,
    now: Millis,
    once: Once<Option<Entry>>,
}

impl Revive {
    /// Revives `id` at `now`.
    pub fn new(id: EntryId, now: Millis) -> Self {
        Self {
            id,
            now,
            once: Once::new(),
        }
    }

    /// The entry queued again; `None` if there was no such dead letter, or
    /// it is corrupt.
    pub fn finish(self) -> Option<Entry> {
        committed(self.once.finish())
    }
}

impl Transaction for Revive {
    fn name(&self) -> &'static str {
        "revive"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let (id, now) = (self.id, self.now);
        self.once.step(
            || dead_letter_reads(id),
            |mut found| {
                let schedule = found.schedule();
                let Some(mut entry) = found.found().filter(|e| !e.is_corrupt()) else {
                    return (Vec::new(), None);
                };
                entry.revive(now);
                let mut writes = vec![Write::Revive(entry.clone())];
                writes.extend(lifted(schedule, id));
                (writes, Some(entry))
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Deletes a dead letter for good, lifting its hold in the same
/// transaction.
#[derive(Debug)]
pub struct Discard {
    id: EntryId,
    once: Once<Option<Entry>>,
}

impl Discard {
    /// Discards `id`.
    pub fn new(id: EntryId) -> Self {
        Self {
            id,
            once: Once::new(),
        }
    }

    /// The dead letter deleted, if it existed.
    pub fn finish(self) -> Option<Entry> {
        committed(self.once.finish())
    }
}

impl Transaction for Discard {
    fn name(&self) -> &'static str {
        "discard"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let id = self.id;
        self.once.step(
            || dead_letter_reads(id),
            |mut found| {
                let schedule = found.schedule();
                let Some(entry) = found.found() else {
                    return (Vec::new(), None);
                };
                let mut writes = vec![Write::Discard(entry.seq)];
                writes.extend(lifted(schedule, id));
                (writes, Some(entry))
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// What revive and discard read: the dead letter, and the pacing state
/// that may hold its lane.
fn dead_letter_reads(id: EntryId) -> Vec<Read> {
    vec![
        Read::Find(FindRead {
            id,
            among: Among::Dead,
        }),
        Read::Schedule(ScheduleRead),
    ]
}

/// The write that lifts dead letter `id`'s hold, if it holds a lane.
fn lifted(mut schedule: ScheduleState, id: EntryId) -> Option<Write> {
    let read = schedule.clone();
    schedule.holds.lift(id);
    (schedule != read).then_some(Write::Schedule(schedule))
}

/// Removes a queued entry that is not being sent (one in flight, by its
/// state as stored, is too late to cancel).
#[derive(Debug)]
pub struct Cancel {
    id: EntryId,
    once: Once<CancelResult>,
}

impl Cancel {
    /// Cancels `id`.
    pub fn new(id: EntryId) -> Self {
        Self {
            id,
            once: Once::new(),
        }
    }

    /// What was found.
    pub fn finish(self) -> CancelResult {
        committed(self.once.finish())
    }
}

impl Transaction for Cancel {
    fn name(&self) -> &'static str {
        "cancel"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let id = self.id;
        self.once.step(
            || {
                vec![Read::Find(FindRead {
                    id,
                    among: Among::Queued,
                })]
            },
            |mut found| match found.found() {
                None => (Vec::new(), CancelResult::NotFound),
                Some(e) if matches!(e.state, EntryState::InFlight { .. }) => {
                    (Vec::new(), CancelResult::InFlight)
                }
                Some(e) => (vec![Write::Remove(e.seq)], CancelResult::Cancelled),
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// Deletes every queued entry and dead letter, and the pacing state (the
/// last `seq` given stays: a `seq` is never reused).
#[derive(Debug)]
pub struct Purge {
    queued: Option<usize>,
    once: Once<Purged>,
}

impl Purge {
    /// A purge.
    pub fn new() -> Self {
        Self {
            queued: None,
            once: Once::new(),
        }
    }

    /// How many were deleted.
    pub fn finish(self) -> Purged {
        committed(self.once.finish())
    }
}

impl Default for Purge {
    fn default() -> Self {
        Self::new()
    }
}

impl Transaction for Purge {
    fn name(&self) -> &'static str {
        "purge"
    }

    fn access(&self) -> Access {
        Access::Write
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        if self.queued.is_none() {
            self.queued = Some(0);
            return Step::Read(vec![Read::Count(CountRead {
                among: Among::Queued,
            })]);
        }
        let queued = self.queued.unwrap_or(0);
        self.once.step(
            || vec![Read::Count(CountRead { among: Among::Dead })],
            |mut found| {
                let purged = Purged {
                    queued,
                    dead: found.count(),
                };
                (vec![Write::Purge], purged)
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        match self.once {
            Once::Ask => self.queued = Some(Answers::new(found).count()),
            _ => self.once.feed(found),
        }
    }
}

/// The queued entry or dead letter with an id, body included.
#[derive(Debug)]
pub struct Get {
    id: EntryId,
    once: Once<Option<Entry>>,
}

impl Get {
    /// Looks for `id`.
    pub fn new(id: EntryId) -> Self {
        Self {
            id,
            once: Once::new(),
        }
    }

    /// The entry, if there is one.
    pub fn finish(self) -> Option<Entry> {
        committed(self.once.finish())
    }
}

impl Transaction for Get {
    fn name(&self) -> &'static str {
        "get"
    }

    fn access(&self) -> Access {
        Access::Read
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let id = self.id;
        self.once.step(
            || {
                vec![Read::Find(FindRead {
                    id,
                    among: Among::Either,
                })]
            },
            |mut found| (Vec::new(), found.found()),
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}

/// The first entries of the queue or of the dead letters, in `seq` order,
/// bodies included.
#[derive(Debug)]
pub struct List {
    among: Among,
    limit: usize,
    once: Once<Vec<Entry>>,
}

impl List {
    /// The first `limit` queued entries.
    pub fn queued(limit: usize) -> Self {
        Self::new(Among::Queued, limit)
    }

    /// The first `limit` dead letters.
    pub fn dead_letters(limit: usize) -> Self {
        Self::new(Among::Dead, limit)
    }

    fn new(among: Among, limit: usize) -> Self {
        Self {
            among,
            limit,
            once: Once::new(),
        }
    }

    /// The entries.
    pub fn finish(self) -> Vec<Entry> {
        committed(self.once.finish())
    }
}

impl Transaction for List {
    fn name(&self) -> &'static str {
        match self.among {
            Among::Dead => "dead_letters",
            Among::Queued | Among::Either => "queued",
        }
    }

    fn access(&self) -> Access {
        Access::Read
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        let (among, limit) = (self.among, self.limit);
        self.once.step(
            || {
                if limit == 0 {
                    return Vec::new();
                }
                vec![Read::List(ListRead { among, limit })]
            },
            |mut found| {
                let mut entries = found.entries();
                entries.truncate(limit);
                (Vec::new(), entries)
            },
        )
    }

    fn feed(&mut self, found: Vec<Found>) {
        self.once.feed(found);
    }
}
