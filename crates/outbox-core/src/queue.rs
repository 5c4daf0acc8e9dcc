//! The queue's rules, each written once, as a transaction a store runs.
//!
//! # Design
//!
//! Every step that reads or changes the queue is one atomic
//! [`Transaction`]: enqueue ([`Enqueue`]), a flush cycle's settle and
//! claim ([`Cycle`](crate::cycle::Cycle)), the intercept's lane read ([`LaneAndSchedule`]), an
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
//! Every transaction but a flush's reads once and decides: it is a
//! [`Rule`] (what it reads; what it writes and gives from what was read),
//! run by [`Simple`]. A flush cycle reads in several steps, each decided
//! from the last ([`crate::cycle`]).
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

use alloc::{borrow::ToOwned, string::String, vec, vec::Vec};
use core::convert::Infallible;

use crate::clock::Millis;
use crate::entry::{Entry, EntryId, EntryState, Head, Seq};
use crate::pacer::ScheduleState;
use crate::scheduler::Claim;
use crate::store::{
    Access, Among, Answer, Answers, CountRead, FindRead, Found, FullRead, LaneRead, LastSeqRead,
    ListRead, Read, ScheduleRead, StateRead, Step, SummariesRead, TakenRead, Waiting, Write,
};
use crate::throttle::Limit;

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
#[derive(Debug)]
pub enum EnqueueError<E: core::error::Error + 'static> {
    /// The queue holds `max_entries` already.
    Full {
        /// The limit.
        max_entries: usize,
    },
    /// The request is larger than `max_entry_bytes`.
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// The browser's storage quota is exhausted.
    QuotaExceeded(String),
    /// An entry with this id is already queued.
    Duplicate(EntryId),
    /// The store failed.
    Store(E),
}

impl<E: core::error::Error + 'static> core::fmt::Display for EnqueueError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl<E: core::error::Error + 'static> core::error::Error for EnqueueError<E> {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Self::Store(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: core::error::Error + 'static> EnqueueError<E> {
    /// The HTTP status a front door answers this refusal with (the caller
    /// keeps its request): `507` for a full outbox or an exhausted quota,
    /// `413` for an entry too large, `409` for an id already taken, `500`
    /// for a store failure.
    pub fn status(&self) -> u16 {
        match self {
            Self::Full { .. } | Self::QuotaExceeded(_) => 507,
            Self::TooLarge { .. } => 413,
            Self::Duplicate(_) => 409,
            Self::Store(_) => 500,
        }
    }

    /// The refusal's stable code, for the `error` field of that answer's
    /// JSON body (`outbox-full`, `quota-exceeded`, `entry-too-large`,
    /// `duplicate-entry`, `store-error`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Full { .. } => "outbox-full",
            Self::QuotaExceeded(_) => "quota-exceeded",
            Self::TooLarge { .. } => "entry-too-large",
            Self::Duplicate(_) => "duplicate-entry",
            Self::Store(_) => "store-error",
        }
    }

    /// The JSON body a front door answers this refusal with:
    /// `{"queued":false,"error":<code>,"message":<text>}`.
    pub fn body(&self) -> String {
        let mut body = crate::json::Object::new();
        body.bool("queued", false)
            .str("error", self.code())
            .str("message", &self.text());
        body.finish()
    }
}

/// The JSON body of a front door's `202` for a queued entry:
/// `{"queued":true,"id","lane","reason"}`.
pub fn queued_body(entry: &Entry, reason: &str) -> String {
    let mut body = crate::json::Object::new();
    body.bool("queued", true)
        .str("id", &entry.id.hyphenated())
        .str("lane", &entry.lane)
        .str("reason", reason);
    body.finish()
}

/// A refusal of the queue's rules (or of the store's quota): an
/// [`EnqueueError`] without a store error.
pub type Refusal = EnqueueError<Infallible>;

impl<E: core::error::Error + 'static> EnqueueError<E> {
    /// The message, for a refusal of the rules (the same text as
    /// `Display`, built without `core::fmt`: the wasm core answers a
    /// refused send with it). A store error's text is its `Display`.
    pub fn text(&self) -> String {
        let mut m = String::new();
        match self {
            Self::Full { max_entries } => {
                m.push_str("the outbox is full (");
                crate::json::push_u64(&mut m, *max_entries as u64);
                m.push_str(" entries); nothing was dropped");
            }
            Self::TooLarge { size, max } => {
                m.push_str("the request is ");
                crate::json::push_u64(&mut m, *size as u64);
                m.push_str(" bytes, more than the ");
                crate::json::push_u64(&mut m, *max as u64);
                m.push_str(" bytes an entry may hold");
            }
            Self::QuotaExceeded(why) => {
                m.push_str("storage quota exceeded: ");
                m.push_str(why);
            }
            Self::Duplicate(id) => {
                m.push_str("an entry with id ");
                m.push_str(&id.hyphenated());
                m.push_str(" already exists");
            }
            Self::Store(e) => {
                use alloc::string::ToString;
                m.push_str("store error: ");
                m.push_str(&e.to_string());
            }
        }
        m
    }
}

impl Refusal {
    /// The same refusal, as the error of a store with errors `E`.
    pub fn widen<E: core::error::Error + 'static>(self) -> EnqueueError<E> {
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
    /// Origins the herd throttle limits ([`crate::throttle`]), with how and
    /// why: probing an origin that gives no answer, or a reduced rate while
    /// its server sheds load.
    pub throttled: Vec<(String, Limit)>,
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
        self.throttled = schedule.throttle_views();
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
    /// Find the lane heads from the queue itself (the first claim of a
    /// flush, at most once a minute per engine:
    /// [`Surveys`](crate::flush::Surveys)). Otherwise a store may find
    /// them from a list of lanes it keeps as it writes — faster with many
    /// lanes, but blind to a lane that a writer which keeps no such list
    /// added (an older version of the code, sharing the database during an
    /// update) until the next survey.
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

/// A rule that reads once and decides: every transaction but a flush's
/// [`Cycle`](crate::cycle::Cycle), run by [`Simple`]. Only core writes
/// rules (what a step found, [`Answers`], can only be read here).
pub trait Rule {
    /// What the transaction gives.
    type Output;
    /// What it does (see [`Transaction::name`]).
    const NAME: &'static str;
    /// How it uses the store.
    const ACCESS: Access;

    /// What it reads, in one step (nothing: it decides at once).
    fn reads(&self) -> Vec<Read>;

    /// What it writes and gives, from what was read; `hooks` decide where
    /// the rule asks them.
    fn decide(&mut self, found: Answers, hooks: &mut dyn Planner) -> (Vec<Write>, Self::Output);
}

/// A transaction of one read step: it asks for its [`Rule`]'s reads, then
/// makes the rule's writes, then commits.
#[derive(Debug)]
pub struct Simple<R: Rule> {
    rule: R,
    state: Once<R::Output>,
}

/// Where a [`Simple`] transaction stands.
#[derive(Debug)]
enum Once<T> {
    Ask,
    Asked(Answers),
    Decided(T),
}

impl<R: Rule> Simple<R> {
    fn of(rule: R) -> Self {
        Self {
            rule,
            state: Once::Ask,
        }
    }

    /// The transaction's result. A store answers [`Step::Commit`] only at
    /// the end, so a missing one is a bug in the store (it returned before
    /// the transaction committed).
    #[track_caller]
    pub fn finish(self) -> R::Output {
        match self.state {
            Once::Decided(result) => result,
            Once::Ask | Once::Asked(_) => {
                unreachable!("a transaction's result was taken before it committed")
            }
        }
    }
}

impl<R: Rule> Transaction for Simple<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn access(&self) -> Access {
        R::ACCESS
    }

    fn poll(&mut self, hooks: &mut dyn Planner) -> Step {
        if let Once::Ask = self.state {
            let reads = self.rule.reads();
            self.state = Once::Asked(Answers::default());
            if !reads.is_empty() {
                return Step::Read(reads);
            }
        }
        match core::mem::replace(&mut self.state, Once::Ask) {
            Once::Asked(found) => {
                let (writes, result) = self.rule.decide(found, hooks);
                self.state = Once::Decided(result);
                if writes.is_empty() {
                    Step::Commit
                } else {
                    Step::Write(writes)
                }
            }
            decided => {
                self.state = decided;
                Step::Commit
            }
        }
    }

    fn feed(&mut self, found: Vec<Found>) {
        if let Once::Asked(answers) = &mut self.state {
            *answers = Answers::new(found);
        }
    }
}

/// Makes an entry durable at the end of its lane, under the queue's limits
/// ([`EnqueueRule`]). Result: the stored entry (its `seq` assigned), or the
/// refusal.
pub type Enqueue = Simple<EnqueueRule>;

/// The rule of an [`Enqueue`]: the refusals come in this order — full, too
/// large, an id already taken (queued or dead); the entry's `seq` becomes
/// the last one given plus one (its own is ignored).
#[derive(Debug)]
pub struct EnqueueRule {
    entry: Option<Entry>,
    limits: QueueLimits,
}

impl Enqueue {
    /// Enqueues `entry` under `limits`.
    pub fn new(entry: Entry, limits: QueueLimits) -> Self {
        Self::of(EnqueueRule {
            entry: Some(entry),
            limits,
        })
    }

    /// The store refused the write for lack of room (a quota): the entry
    /// was not kept.
    pub fn quota_exceeded(&mut self, why: String) {
        self.state = Once::Decided(Err(EnqueueError::QuotaExceeded(why)));
    }
}

impl Rule for EnqueueRule {
    type Output = Result<Entry, Refusal>;
    const NAME: &'static str = "enqueue";
    const ACCESS: Access = Access::Durable;

    fn reads(&self) -> Vec<Read> {
        let mut reads = vec![Read::Full(FullRead {
            at_least: self.limits.max_entries,
        })];
        if let Some(e) = &self.entry {
            reads.push(Read::LastSeq(LastSeqRead {
                lane: e.lane.clone(),
            }));
            reads.push(Read::Taken(TakenRead { id: e.id }));
        }
        reads
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Self::Output) {
        let Some(mut entry) = self.entry.take() else {
            unreachable!("an enqueue decides once")
        };
        let limits = self.limits;
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
    }
}

/// The intercept's one read ([`LaneRule`]). Result: whether the lane is
/// busy, and the pacing state.
pub type LaneAndSchedule = Simple<LaneRule>;

/// The rule of a [`LaneAndSchedule`]: whether the lane has queued entries
/// (any state but dead), and the pacing state, in one read.
#[derive(Debug)]
pub struct LaneRule(String);

impl LaneAndSchedule {
    /// Reads `lane`.
    pub fn new(lane: &str) -> Self {
        Self::of(LaneRule(lane.to_owned()))
    }
}

impl Rule for LaneRule {
    type Output = (bool, ScheduleState);
    const NAME: &'static str = "lane_and_schedule";
    const ACCESS: Access = Access::Read;

    fn reads(&self) -> Vec<Read> {
        vec![
            Read::Lane(LaneRead {
                lane: self.0.clone(),
            }),
            Read::Schedule(ScheduleRead),
        ]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Self::Output) {
        let busy = found.yes(|a| matches!(a, Answer::Lane(_)));
        (Vec::new(), (busy, found.schedule()))
    }
}

/// Edits the pacing state ([`EditRule`]).
pub type EditSchedule = Simple<EditRule>;

/// The rule of an [`EditSchedule`]: [`Planner::edit`] edits the pacing
/// state, written back if it changed.
#[derive(Debug)]
pub struct EditRule;

impl EditSchedule {
    /// An edit.
    pub fn new() -> Self {
        Self::of(EditRule)
    }
}

impl Default for EditSchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Rule for EditRule {
    type Output = ();
    const NAME: &'static str = "update_schedule";
    const ACCESS: Access = Access::Write;

    fn reads(&self) -> Vec<Read> {
        vec![Read::Schedule(ScheduleRead)]
    }

    fn decide(&mut self, mut found: Answers, hooks: &mut dyn Planner) -> (Vec<Write>, ()) {
        let read = found.schedule();
        let mut schedule = read.clone();
        hooks.edit(&mut schedule);
        let writes = if schedule == read {
            Vec::new()
        } else {
            vec![Write::Schedule(schedule)]
        };
        (writes, ())
    }
}

/// Reads the pacing state ([`ScheduleRule`]).
pub type ReadSchedule = Simple<ScheduleRule>;

/// The rule of a [`ReadSchedule`]: the pacing state.
#[derive(Debug)]
pub struct ScheduleRule;

impl ReadSchedule {
    /// A read.
    pub fn new() -> Self {
        Self::of(ScheduleRule)
    }
}

impl Default for ReadSchedule {
    fn default() -> Self {
        Self::new()
    }
}

impl Rule for ScheduleRule {
    type Output = ScheduleState;
    const NAME: &'static str = "schedule";
    const ACCESS: Access = Access::Read;

    fn reads(&self) -> Vec<Read> {
        vec![Read::Schedule(ScheduleRead)]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, ScheduleState) {
        (Vec::new(), found.schedule())
    }
}

/// How many entries a paged read asks for at a time ([`Paged`]).
pub const PAGE: usize = 256;

/// A rule that reads the queue a page at a time: every transaction that
/// must look at each entry of a state, or at every entry (a token's
/// release, the hurry when the network comes back, stats). Each step
/// reads one page — entries after the last one seen, at most a page of
/// them ([`StateRead`], [`SummariesRead`]) — and writes what that page
/// decides, until a page ends the queue; so neither the rule nor the store
/// ever holds more than a page, however long the queue. Run by [`Paged`].
pub trait PagedRule {
    /// What the transaction gives.
    type Output;
    /// What it does (see [`Transaction::name`]).
    const NAME: &'static str;
    /// How it uses the store.
    const ACCESS: Access;

    /// The reads of the step that reads on after `after` (`None`: the
    /// first step, which may read more than the page).
    fn reads(&self, after: Option<Seq>) -> Vec<Read>;

    /// What one step's answers decide: the writes, and the `seq` to read
    /// on after (`None`: that was the last page).
    fn page(&mut self, found: Answers) -> (Vec<Write>, Option<Seq>);

    /// The result, once the last page is decided.
    fn output(&mut self) -> Self::Output;
}

/// A transaction of pages: it asks for a [`PagedRule`]'s reads, makes the
/// writes each page decides, reads the next page, and commits after the
/// last.
#[derive(Debug)]
pub struct Paged<R: PagedRule> {
    rule: R,
    state: Pages<R::Output>,
}

/// Where a [`Paged`] transaction stands.
#[derive(Debug)]
enum Pages<T> {
    /// Reads are to be asked for (the first step: `None`).
    Ask(Option<Seq>),
    /// Reads are out.
    Asked(Answers),
    /// A page's writes are made; read on after the `seq`, if any.
    Next(Option<Seq>),
    Decided(T),
}

impl<R: PagedRule> Paged<R> {
    fn of(rule: R) -> Self {
        Self {
            rule,
            state: Pages::Ask(None),
        }
    }

    /// The transaction's result (see [`Simple::finish`]).
    #[track_caller]
    pub fn finish(self) -> R::Output {
        match self.state {
            Pages::Decided(result) => result,
            _ => unreachable!("a transaction's result was taken before it committed"),
        }
    }
}

impl<R: PagedRule> Transaction for Paged<R> {
    fn name(&self) -> &'static str {
        R::NAME
    }

    fn access(&self) -> Access {
        R::ACCESS
    }

    fn poll(&mut self, _hooks: &mut dyn Planner) -> Step {
        loop {
            match core::mem::replace(&mut self.state, Pages::Next(None)) {
                Pages::Ask(after) => {
                    self.state = Pages::Asked(Answers::default());
                    return Step::Read(self.rule.reads(after));
                }
                Pages::Asked(found) => {
                    let (writes, next) = self.rule.page(found);
                    self.state = Pages::Next(next);
                    if !writes.is_empty() {
                        return Step::Write(writes);
                    }
                }
                Pages::Next(Some(after)) => self.state = Pages::Ask(Some(after)),
                Pages::Next(None) => {
                    self.state = Pages::Decided(self.rule.output());
                    return Step::Commit;
                }
                decided @ Pages::Decided(_) => {
                    self.state = decided;
                    return Step::Commit;
                }
            }
        }
    }

    fn feed(&mut self, found: Vec<Found>) {
        if let Pages::Asked(answers) = &mut self.state {
            *answers = Answers::new(found);
        }
    }
}

/// Releases an origin's entries parked for a token ([`ReleaseRule`]).
/// Result: the entries released, as heads, in `seq` order.
pub type Release = Paged<ReleaseRule>;

/// The rule of a [`Release`]: a fresh token arrived for an origin, so
/// every entry of it parked for a token is pending again
/// ([`Entry::release_for_token`]).
#[derive(Debug)]
pub struct ReleaseRule {
    origin: String,
    page: usize,
    released: Vec<Head>,
}

impl Release {
    /// Releases `origin`'s parked entries.
    pub fn new(origin: &str) -> Self {
        Self::in_pages(origin, PAGE)
    }

    /// The same, reading `page` entries at a time (the tests use small
    /// pages).
    pub fn in_pages(origin: &str, page: usize) -> Self {
        Self::of(ReleaseRule {
            origin: origin.to_owned(),
            page: page.max(1),
            released: Vec::new(),
        })
    }
}

impl PagedRule for ReleaseRule {
    type Output = Vec<Head>;
    const NAME: &'static str = "release_awaiting_token";
    const ACCESS: Access = Access::Write;

    fn reads(&self, after: Option<Seq>) -> Vec<Read> {
        vec![Read::State(StateRead {
            state: Waiting::AwaitingToken,
            origin: Some(self.origin.clone()),
            after: after.unwrap_or(0),
            limit: self.page,
        })]
    }

    fn page(&mut self, mut found: Answers) -> (Vec<Write>, Option<Seq>) {
        let (entries, next) = found.page();
        let mut writes = Vec::new();
        for mut entry in entries {
            if entry.state != EntryState::AwaitingToken || entry.origin != self.origin {
                continue;
            }
            entry.release_for_token();
            self.released.push(entry.head());
            writes.push(Write::Put(entry));
        }
        (writes, next)
    }

    fn output(&mut self) -> Vec<Head> {
        core::mem::take(&mut self.released)
    }
}

/// Makes unanswered retries due now ([`HurryRule`]). Result: how many.
pub type Hurry = Paged<HurryRule>;

/// The rule of a [`Hurry`]: the device says the network is back, so
/// pending entries whose last attempt got no answer at all (network
/// failure, timeout) are due now, their backoff meaning nothing any more
/// ([`Entry::hurry`]).
#[derive(Debug)]
pub struct HurryRule {
    now: Millis,
    page: usize,
    hurried: usize,
}

impl Hurry {
    /// Hurries at `now`.
    pub fn new(now: Millis) -> Self {
        Self::in_pages(now, PAGE)
    }

    /// The same, reading `page` entries at a time (the tests use small
    /// pages).
    pub fn in_pages(now: Millis, page: usize) -> Self {
        Self::of(HurryRule {
            now,
            page: page.max(1),
            hurried: 0,
        })
    }
}

impl PagedRule for HurryRule {
    type Output = usize;
    const NAME: &'static str = "retry_unreachable_now";
    const ACCESS: Access = Access::Write;

    fn reads(&self, after: Option<Seq>) -> Vec<Read> {
        vec![Read::State(StateRead {
            state: Waiting::Pending,
            origin: None,
            after: after.unwrap_or(0),
            limit: self.page,
        })]
    }

    fn page(&mut self, mut found: Answers) -> (Vec<Write>, Option<Seq>) {
        let (entries, next) = found.page();
        let mut writes = Vec::new();
        for mut entry in entries {
            if entry.hurry(self.now) {
                writes.push(Write::Put(entry));
            }
        }
        self.hurried += writes.len();
        (writes, next)
    }

    fn output(&mut self) -> usize {
        self.hurried
    }
}

/// Counts and ages at a time ([`TallyRule`]).
pub type Tally = Paged<TallyRule>;

/// The rule of a [`Tally`]: [`Stats::count`] for each queued entry, a page
/// at a time; the distinct lanes; the dead letters; the paused origins and
/// held lanes of the pacing state.
#[derive(Debug)]
pub struct TallyRule {
    now: Millis,
    page: usize,
    stats: Stats,
    lanes: Vec<String>,
}

impl Tally {
    /// Counts at `now`.
    pub fn new(now: Millis) -> Self {
        Self::in_pages(now, PAGE)
    }

    /// The same, reading `page` entries at a time (the tests use small
    /// pages).
    pub fn in_pages(now: Millis, page: usize) -> Self {
        Self::of(TallyRule {
            now,
            page: page.max(1),
            stats: Stats::default(),
            lanes: Vec::new(),
        })
    }
}

impl PagedRule for TallyRule {
    type Output = Stats;
    const NAME: &'static str = "stats";
    const ACCESS: Access = Access::Read;

    fn reads(&self, after: Option<Seq>) -> Vec<Read> {
        let summaries = Read::Summaries(SummariesRead {
            now: self.now,
            after: after.unwrap_or(0),
            limit: self.page,
        });
        match after {
            Some(_) => vec![summaries],
            None => vec![
                summaries,
                Read::Count(CountRead { among: Among::Dead }),
                Read::Schedule(ScheduleRead),
            ],
        }
    }

    fn page(&mut self, mut found: Answers) -> (Vec<Write>, Option<Seq>) {
        let now = self.now;
        if found.has_schedule() {
            self.stats.dead = found.count(Among::Dead);
            self.stats.read_schedule(&found.schedule(), now);
        }
        let (summaries, next) = found.summaries();
        for s in summaries {
            let size = usize::try_from(s.size).unwrap_or(usize::MAX);
            self.stats.count(s.state, s.created_at, size, now);
            if let Err(at) = self.lanes.binary_search(&s.lane) {
                self.lanes.insert(at, s.lane);
            }
        }
        (Vec::new(), next)
    }

    fn output(&mut self) -> Stats {
        self.stats.lanes = self.lanes.len();
        core::mem::take(&mut self.stats)
    }
}

/// Puts a dead letter back in the queue ([`ReviveRule`]). Result: the
/// entry queued again; `None` if there was no such dead letter, or it is
/// corrupt.
pub type Revive = Simple<ReviveRule>;

/// The rule of a [`Revive`]: the dead letter goes back at its original
/// place in its lane, with fresh counters, due now ([`Entry::revive`]), and
/// its hold, if it holds a lane, is lifted in the same transaction. A
/// corrupt dead letter ([`Entry::is_corrupt`]) cannot be sent: it stays
/// where it is.
#[derive(Debug)]
pub struct ReviveRule {
    id: EntryId,
    now: Millis,
}

impl Revive {
    /// Revives `id` at `now`.
    pub fn new(id: EntryId, now: Millis) -> Self {
        Self::of(ReviveRule { id, now })
    }
}

impl Rule for ReviveRule {
    type Output = Option<Entry>;
    const NAME: &'static str = "revive";
    const ACCESS: Access = Access::Write;

    fn reads(&self) -> Vec<Read> {
        dead_letter_reads(self.id)
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Self::Output) {
        let schedule = found.schedule();
        let Some(mut entry) = found.found().filter(|e| !e.is_corrupt()) else {
            return (Vec::new(), None);
        };
        entry.revive(self.now);
        let mut writes = vec![Write::Revive(entry.clone())];
        writes.extend(lifted(schedule, self.id));
        (writes, Some(entry))
    }
}

/// Deletes a dead letter for good ([`DiscardRule`]). Result: the dead
/// letter deleted, if it existed.
pub type Discard = Simple<DiscardRule>;

/// The rule of a [`Discard`]: the dead letter and its body go, and its
/// hold, if it holds a lane, is lifted in the same transaction.
#[derive(Debug)]
pub struct DiscardRule(EntryId);

impl Discard {
    /// Discards `id`.
    pub fn new(id: EntryId) -> Self {
        Self::of(DiscardRule(id))
    }
}

impl Rule for DiscardRule {
    type Output = Option<Entry>;
    const NAME: &'static str = "discard";
    const ACCESS: Access = Access::Write;

    fn reads(&self) -> Vec<Read> {
        dead_letter_reads(self.0)
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Self::Output) {
        let schedule = found.schedule();
        let Some(entry) = found.found() else {
            return (Vec::new(), None);
        };
        let mut writes = vec![Write::Discard(entry.seq)];
        writes.extend(lifted(schedule, self.0));
        (writes, Some(entry))
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

/// Removes a queued entry that is not being sent ([`CancelRule`]).
/// Result: what was found.
pub type Cancel = Simple<CancelRule>;

/// The rule of a [`Cancel`]: a queued entry goes, body and all, unless it
/// is in flight by its state as stored (too late to cancel).
#[derive(Debug)]
pub struct CancelRule(EntryId);

impl Cancel {
    /// Cancels `id`.
    pub fn new(id: EntryId) -> Self {
        Self::of(CancelRule(id))
    }
}

impl Rule for CancelRule {
    type Output = CancelResult;
    const NAME: &'static str = "cancel";
    const ACCESS: Access = Access::Write;

    fn reads(&self) -> Vec<Read> {
        vec![Read::Find(FindRead {
            id: self.0,
            among: Among::Queued,
        })]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, CancelResult) {
        match found.found() {
            None => (Vec::new(), CancelResult::NotFound),
            Some(e) if matches!(e.state, EntryState::InFlight { .. }) => {
                (Vec::new(), CancelResult::InFlight)
            }
            Some(e) => (vec![Write::Remove(e.seq)], CancelResult::Cancelled),
        }
    }
}

/// How long before its lease ends a request of a fenced flush must have
/// left the process ([`OutgoingRequest::leave_by`]), in ms.
///
/// Leases are times on the wall clock of the instance that wrote them; an
/// instance takes a lease over once *its own* clock is past the lease's
/// end. The margin therefore covers (a) the skew between two instances'
/// clocks (NTP keeps a fleet within milliseconds; the README asks for
/// "well under the lease") and (b) the time between the last check of the
/// clock and the request's bytes reaching the server, compared with the
/// new holder's own send. Half a second covers both with room on any
/// healthy network. A send that leaves with more than `sendTimeoutMs` and
/// the margin left on its lease (every head, with the default lease's
/// slack of `leaseMs − sendTimeoutMs` = 30 s) ends by its own timeout
/// first; one with less (a follower late in its cycle, whose lease the
/// fence still found long enough for a send) may be cut up to the margin
/// before its timeout, and counts as a timeout.
///
/// [`OutgoingRequest::leave_by`]: crate::request::OutgoingRequest::leave_by
pub const LEASE_MARGIN_MS: Millis = 500;

/// Which of a send's leases still stand, read right before it goes
/// ([`FenceRule`]). Result: the `seq`s whose lease still stands, long
/// enough for the send.
pub type Fence = Simple<FenceRule>;

/// The rule of a [`Fence`]: a lease taken by a claim still stands when
/// the entry is queued, in flight under that very lease (the attempt
/// number the claim gave it: [`Entry::holds_lease`]), and its lease ends
/// more than `margin` (a send's longest time) after `now`.
///
/// A store that several processes share (PostgreSQL) lets a lease pass to
/// another process once it runs out; a process paused past its lease
/// (`SIGSTOP`, a frozen VM, a long GC) then wakes up holding entries that
/// someone else has sent since, perhaps with the entries behind them. The
/// flush of a shared store ([`crate::flush::Flush::fenced`]) reads this
/// right before each send and sends only what still holds: a lease that
/// has passed on is never sent through (and its settlement would be
/// skipped as stale anyway, [`Entry::holds_lease`]). What remains is the
/// time between this read and the request leaving the process, which the
/// margin covers unless the process is paused inside it for longer than
/// the lease has left: that gap is closed by the deadline each request of
/// a fenced flush carries ([`OutgoingRequest::leave_by`]: the lease's end
/// less [`LEASE_MARGIN_MS`]), which the host's transport enforces with
/// the clock right where the request leaves.
///
/// [`OutgoingRequest::leave_by`]: crate::request::OutgoingRequest::leave_by
#[derive(Debug)]
pub struct FenceRule {
    leases: Vec<(Seq, u32)>,
    now: Millis,
    margin: Millis,
}

impl Fence {
    /// Checks the leases `(seq, attempt)` at `now`: each must stand for
    /// more than `margin` still.
    pub fn new(leases: Vec<(Seq, u32)>, now: Millis, margin: Millis) -> Self {
        Self::of(FenceRule {
            leases,
            now,
            margin,
        })
    }
}

impl Rule for FenceRule {
    type Output = Vec<Seq>;
    const NAME: &'static str = "fence";
    const ACCESS: Access = Access::Read;

    fn reads(&self) -> Vec<Read> {
        if self.leases.is_empty() {
            return Vec::new();
        }
        vec![Read::Entries(crate::store::EntriesRead {
            seqs: self.leases.iter().map(|(seq, _)| *seq).collect(),
        })]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Vec<Seq>) {
        let entries = found.entries();
        let until = self.now.saturating_add(self.margin);
        let standing = self
            .leases
            .iter()
            .filter(|(seq, attempt)| {
                entries.iter().any(|e| {
                    e.seq == *seq
                        && e.holds_lease(*attempt)
                        && matches!(e.state, EntryState::InFlight { lease_until } if lease_until > until)
                })
            })
            .map(|(seq, _)| *seq)
            .collect();
        (Vec::new(), standing)
    }
}

/// Deletes everything ([`PurgeRule`]). Result: how many were deleted.
pub type Purge = Simple<PurgeRule>;

/// The rule of a [`Purge`]: every queued entry and dead letter goes, and
/// the pacing state (the last `seq` given stays: a `seq` is never reused).
#[derive(Debug)]
pub struct PurgeRule;

impl Purge {
    /// A purge.
    pub fn new() -> Self {
        Self::of(PurgeRule)
    }
}

impl Default for Purge {
    fn default() -> Self {
        Self::new()
    }
}

impl Rule for PurgeRule {
    type Output = Purged;
    const NAME: &'static str = "purge";
    const ACCESS: Access = Access::Write;

    fn reads(&self) -> Vec<Read> {
        vec![
            Read::Count(CountRead {
                among: Among::Queued,
            }),
            Read::Count(CountRead { among: Among::Dead }),
        ]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Purged) {
        let purged = Purged {
            queued: found.count(Among::Queued),
            dead: found.count(Among::Dead),
        };
        (vec![Write::Purge], purged)
    }
}

/// The queued entry or dead letter with an id, body included
/// ([`GetRule`]).
pub type Get = Simple<GetRule>;

/// The rule of a [`Get`]: the queued entry with the id, else the dead
/// letter.
#[derive(Debug)]
pub struct GetRule(EntryId);

impl Get {
    /// Looks for `id`.
    pub fn new(id: EntryId) -> Self {
        Self::of(GetRule(id))
    }
}

impl Rule for GetRule {
    type Output = Option<Entry>;
    const NAME: &'static str = "get";
    const ACCESS: Access = Access::Read;

    fn reads(&self) -> Vec<Read> {
        vec![Read::Find(FindRead {
            id: self.0,
            among: Among::Either,
        })]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Option<Entry>) {
        (Vec::new(), found.found())
    }
}

/// The first entries of the queue or of the dead letters, in `seq` order,
/// bodies included ([`ListRule`]).
pub type List = Simple<ListRule>;

/// The rule of a [`List`]: at most `limit` entries (none asked: none
/// read).
#[derive(Debug)]
pub struct ListRule {
    among: Among,
    limit: usize,
}

impl List {
    /// The first `limit` queued entries.
    pub fn queued(limit: usize) -> Self {
        Self::of(ListRule {
            among: Among::Queued,
            limit,
        })
    }

    /// The first `limit` dead letters.
    pub fn dead_letters(limit: usize) -> Self {
        Self::of(ListRule {
            among: Among::Dead,
            limit,
        })
    }
}

impl Rule for ListRule {
    type Output = Vec<Entry>;
    const NAME: &'static str = "list";
    const ACCESS: Access = Access::Read;

    fn reads(&self) -> Vec<Read> {
        if self.limit == 0 {
            return Vec::new();
        }
        vec![Read::List(ListRead {
            among: self.among,
            limit: self.limit,
        })]
    }

    fn decide(&mut self, mut found: Answers, _: &mut dyn Planner) -> (Vec<Write>, Vec<Entry>) {
        let mut entries = found.entries();
        entries.truncate(self.limit);
        (Vec::new(), entries)
    }
}
