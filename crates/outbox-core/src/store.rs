//! What a store is asked: the reads and writes of one transaction.
//!
//! # Design
//!
//! A store (IndexedDB, memory, SQLite, …) decides nothing. Every rule of
//! the queue — what an enqueue refuses and in which order, what a claim
//! leases, parks or buries, which entries follow a head, what a
//! settlement does, what revive, discard and cancel check, how stats
//! count — is written once, in [`crate::queue`], as a
//! [`Transaction`](crate::queue::Transaction): a synchronous machine that
//! a store runs inside one transaction of its own. It is polled for the
//! next [`Step`] — some [`Read`]s, some [`Write`]s, or the commit — and
//! fed what was read, until it commits:
//!
//! ```text
//!   open a transaction of tx.access()
//!   loop match tx.poll(hooks) {
//!       Step::Read(reads)   → answer each read (read.reply(..)), tx.feed(found)
//!       Step::Write(writes) → carry them out, in order
//!       Step::Commit        → commit; the result is the transaction's
//!   }
//! ```
//!
//! The reads are the few a store must be able to answer (a lane's head, the
//! entries behind it, an entry by id, counts, …); each [`Read`] variant
//! holds an ask whose only way to make the answer ([`Found`]) is its
//! `reply` method, so an answer of the wrong kind does not compile. The
//! [`Write`]s are the few changes a store must be able to make. Reads
//! come one step at a time, so a store that cannot call back into Rust in
//! the middle of a read (IndexedDB driven from JavaScript) still runs a
//! transaction step by step: it reads, then calls the transaction, then
//! writes, and so on; one that can (SQLite, PostgreSQL, the memory store)
//! does the same with plain calls.
//!
//! Writes are carried out before the next read, and a read sees the
//! transaction's earlier writes (IndexedDB, SQL and the memory store all
//! behave so). A step's reads may be answered in any order.

use crate::clock::Millis;
use crate::entry::{Entry, EntryId, EntryState, Head, Seq};
use crate::pacer::ScheduleState;
use alloc::{boxed::Box, string::String, vec::Vec};

/// How a transaction uses its store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// It only reads.
    Read,
    /// It reads and writes.
    Write,
    /// It writes, and answers only once the writes are on disk
    /// (IndexedDB's `durability: "strict"`): an enqueue.
    Durable,
}

/// What a transaction asks its store for next.
#[derive(Debug)]
pub enum Step {
    /// Answer these reads (each with its ask's `reply`), then feed the
    /// answers back.
    Read(Vec<Read>),
    /// Make these changes, in order.
    Write(Vec<Write>),
    /// Commit: the transaction is done, its result is in it.
    Commit,
}

/// One change to make.
///
/// A stored entry is a record plus a body; a body never changes after
/// [`Add`](Self::Add) (a store may keep it apart and ignore the body of
/// the entry in [`Put`](Self::Put), [`Bury`](Self::Bury) and
/// [`Revive`](Self::Revive)).
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// A new queued entry, body included; its `seq` is now the last one
    /// given (a `seq` is never given twice, even after a purge), and its
    /// lane has entries.
    Add(Entry),
    /// A queued entry's record changed (its state, counters, last error).
    Put(Entry),
    /// A queued entry is gone (delivered, cancelled), body and all.
    Remove(Seq),
    /// A queued entry is now a dead letter (already made one:
    /// [`Entry::bury`]); its body stays.
    Bury(Entry),
    /// A dead letter is queued again (already revived: [`Entry::revive`]),
    /// at its `seq`; its body stays, and its lane has entries.
    Revive(Entry),
    /// A dead letter is gone, body and all.
    Discard(Seq),
    /// The pacing state changed.
    Schedule(ScheduleState),
    /// Everything is gone — queued entries, dead letters, bodies and the
    /// pacing state — but the last `seq` given.
    Purge,
}

/// Where an entry is looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Among {
    /// The queue.
    Queued,
    /// The dead letters.
    Dead,
    /// The queue, then the dead letters.
    Either,
}

/// Which queued entries a [`StateRead`] wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting {
    /// Pending ones.
    Pending,
    /// Those parked for a token.
    AwaitingToken,
}

impl Waiting {
    /// Whether `state` is this one.
    pub fn is(self, state: EntryState) -> bool {
        match self {
            Self::Pending => state == EntryState::Pending,
            Self::AwaitingToken => state == EntryState::AwaitingToken,
        }
    }
}

/// The entries behind a lane's head that a claim may lease to follow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Behind {
    /// The lane.
    pub lane: String,
    /// Only entries with a greater `seq` (the head's).
    pub after: Seq,
    /// At most this many.
    pub limit: usize,
}

/// What stats count of a queued entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Its lane.
    pub lane: String,
    /// Its state as stored.
    pub state: EntryState,
    /// When it was created.
    pub created_at: Millis,
    /// The request's size at rest.
    pub size: u64,
}

/// One read a transaction asks for. Each variant's ask says what to read
/// and makes the answer with its `reply`.
#[derive(Debug)]
pub enum Read {
    /// The pacing state.
    Schedule(ScheduleRead),
    /// Every lane's head.
    Heads(HeadsRead),
    /// Queued entries by `seq`.
    Entries(EntriesRead),
    /// The entries behind lane heads.
    Behind(BehindRead),
    /// Bodies by `seq`.
    Bodies(BodiesRead),
    /// Queued entries in one state, a page at a time.
    State(StateRead),
    /// An entry by id.
    Find(FindRead),
    /// The first entries of the queue or of the dead letters.
    List(ListRead),
    /// Whether a lane has queued entries.
    Lane(LaneRead),
    /// Whether the queue holds at least so many entries.
    Full(FullRead),
    /// Whether an id is taken.
    Taken(TakenRead),
    /// The last `seq` given.
    LastSeq(LastSeqRead),
    /// How many entries the queue or the dead letters hold.
    Count(CountRead),
    /// What stats count of the queued entries, a page at a time.
    Summaries(SummariesRead),
}

/// What a store read, for the transaction that asked. Made only by the
/// asks' `reply` methods.
#[derive(Debug)]
pub struct Found(pub(crate) Answer);

/// The answers, by read.
#[derive(Debug)]
pub(crate) enum Answer {
    Schedule(ScheduleState),
    Heads(Vec<Head>),
    Entries(Vec<Entry>),
    Behind(Vec<Vec<Option<Entry>>>),
    Bodies(Vec<(Seq, Vec<u8>)>),
    State(Vec<Entry>, Option<Seq>),
    Find(Option<Box<Entry>>),
    List(Vec<Entry>),
    Lane(bool),
    Full(bool),
    Taken(bool),
    LastSeq(Seq),
    Count(Among, usize),
    Summaries(Vec<Summary>, Option<Seq>),
}

/// The pacing state (a store that has none answers the default).
#[derive(Debug)]
pub struct ScheduleRead;

impl ScheduleRead {
    /// The answer.
    pub fn reply(self, schedule: ScheduleState) -> Found {
        Found(Answer::Schedule(schedule))
    }
}

/// The head of every lane: its queued entry with the lowest `seq`, as a
/// [`Head`]. A record that cannot be read back is given as what could be
/// read of it, marked [`Head::corrupt`] (and [`EntriesRead`] gives it as
/// a salvaged entry, [`Entry::is_corrupt`]).
#[derive(Debug)]
pub struct HeadsRead {
    /// Find the heads from the queue itself rather than from a list of
    /// lanes the store keeps (see
    /// [`LeaseTerms::survey`](crate::queue::LeaseTerms::survey)).
    pub survey: bool,
}

impl HeadsRead {
    /// The answer, one head per lane, in any order.
    pub fn reply(self, heads: Vec<Head>) -> Found {
        Found(Answer::Heads(heads))
    }
}

/// The queued entries with these `seq`s (their bodies may be left
/// empty). A record that cannot be read back is given salvaged: what
/// could be read of it, with the `corrupt` error ([`Entry::is_corrupt`]).
#[derive(Debug)]
pub struct EntriesRead {
    /// The entries wanted.
    pub seqs: Vec<Seq>,
}

impl EntriesRead {
    /// The answer: those queued, in any order.
    pub fn reply(self, entries: Vec<Entry>) -> Found {
        Found(Answer::Entries(entries))
    }
}

/// For each [`Behind`], the queued entries of its lane after its `seq`,
/// in `seq` order, at most its limit (their bodies may be left empty).
#[derive(Debug)]
pub struct BehindRead {
    /// The lanes.
    pub lanes: Vec<Behind>,
}

impl BehindRead {
    /// The answer: one list per lane asked, in the same order; `None` for
    /// a record that cannot be read back (nothing behind it follows).
    pub fn reply(self, lists: Vec<Vec<Option<Entry>>>) -> Found {
        Found(Answer::Behind(lists))
    }
}

/// The bodies of these entries, queued or dead.
#[derive(Debug)]
pub struct BodiesRead {
    /// The entries.
    pub seqs: Vec<Seq>,
}

impl BodiesRead {
    /// The answer: `(seq, body)` for those that have one, in any order.
    pub fn reply(self, bodies: Vec<(Seq, Vec<u8>)>) -> Found {
        Found(Answer::Bodies(bodies))
    }
}

/// One page of the queued entries in one state, of one origin or of every
/// origin: those with a `seq` above `after`, in `seq` order, at most
/// `limit` of them (their bodies may be left empty; a record that cannot
/// be read back is left out: a claim salvages it in its turn). A rule
/// reads the queue a page at a time ([`Paged`](crate::queue::Paged)), so
/// that neither the store nor the rule ever holds the whole of a long
/// queue.
#[derive(Debug)]
pub struct StateRead {
    /// The state.
    pub state: Waiting,
    /// Only this origin's, when set.
    pub origin: Option<String>,
    /// Only entries after this `seq` (0: from the start).
    pub after: Seq,
    /// At most this many (more than zero).
    pub limit: usize,
}

impl StateRead {
    /// The answer: the page's entries, and `next`, the `seq` of the last
    /// record the page looked at when it stopped at its limit (more may
    /// follow: the rule reads on after it), `None` when it reached the end
    /// of the queue.
    pub fn reply(self, entries: Vec<Entry>, next: Option<Seq>) -> Found {
        Found(Answer::State(entries, next))
    }
}

/// The entry with this id, body included.
#[derive(Debug)]
pub struct FindRead {
    /// Its id.
    pub id: EntryId,
    /// Where to look.
    pub among: Among,
}

impl FindRead {
    /// The answer.
    pub fn reply(self, entry: Option<Entry>) -> Found {
        Found(Answer::Find(entry.map(Box::new)))
    }
}

/// The first `limit` entries of the queue or of the dead letters, in `seq`
/// order, bodies included (a record that cannot be read back is given
/// salvaged, so that a listing shows it).
#[derive(Debug)]
pub struct ListRead {
    /// Which ([`Among::Queued`] or [`Among::Dead`]).
    pub among: Among,
    /// At most this many (more than zero).
    pub limit: usize,
}

impl ListRead {
    /// The answer.
    pub fn reply(self, entries: Vec<Entry>) -> Found {
        Found(Answer::List(entries))
    }
}

/// Whether this lane has queued entries.
#[derive(Debug)]
pub struct LaneRead {
    /// The lane.
    pub lane: String,
}

impl LaneRead {
    /// The answer.
    pub fn reply(self, busy: bool) -> Found {
        Found(Answer::Lane(busy))
    }
}

/// Whether at least `at_least` entries are queued.
#[derive(Debug)]
pub struct FullRead {
    /// The count that makes the queue full.
    pub at_least: usize,
}

impl FullRead {
    /// The answer.
    pub fn reply(self, full: bool) -> Found {
        Found(Answer::Full(full))
    }
}

/// Whether an entry with this id is queued or dead.
#[derive(Debug)]
pub struct TakenRead {
    /// The id.
    pub id: EntryId,
}

impl TakenRead {
    /// The answer.
    pub fn reply(self, taken: bool) -> Found {
        Found(Answer::Taken(taken))
    }
}

/// The last `seq` given (0 when none was), read to give the next one to a
/// new entry of `lane`.
///
/// A store that several writers share (PostgreSQL, several processes)
/// answers it so that no two transactions can be given the same `seq` and
/// so that one lane's new entries commit in `seq` order: it first takes a
/// lock on `lane` that it keeps until the commit (two enqueues of one lane
/// then run one after the other, enqueues of different lanes at once),
/// then reserves the next number of a sequence and answers the one before
/// it (a refused enqueue leaves a gap: a `seq` is never given twice, not
/// necessarily without gaps). A store with one writer reads its counter.
#[derive(Debug)]
pub struct LastSeqRead {
    /// The lane of the entry the next `seq` is for.
    pub lane: String,
}

impl LastSeqRead {
    /// The answer.
    pub fn reply(self, seq: Seq) -> Found {
        Found(Answer::LastSeq(seq))
    }
}

/// How many entries are queued, or dead.
#[derive(Debug)]
pub struct CountRead {
    /// Which ([`Among::Queued`] or [`Among::Dead`]).
    pub among: Among,
}

impl CountRead {
    /// The answer.
    pub fn reply(self, count: usize) -> Found {
        Found(Answer::Count(self.among, count))
    }
}

/// One page of what stats count of the queued entries: those with a `seq`
/// above `after`, at most `limit` of them, in `seq` order (paged as
/// [`StateRead`] is).
#[derive(Debug)]
pub struct SummariesRead {
    /// The time stats are counted at.
    pub now: Millis,
    /// Only entries after this `seq` (0: from the start).
    pub after: Seq,
    /// At most this many (more than zero).
    pub limit: usize,
}

impl SummariesRead {
    /// What is counted of a record that cannot be read back, found in
    /// `lane`: a pending entry of no size, created now (the next claim
    /// makes it a dead letter if it is its lane's head).
    pub fn unreadable(&self, lane: String) -> Summary {
        Summary {
            lane,
            state: EntryState::Pending,
            created_at: self.now,
            size: 0,
        }
    }

    /// The answer: one summary per queued entry of the page, and `next` as
    /// for [`StateRead::reply`].
    pub fn reply(self, summaries: Vec<Summary>, next: Option<Seq>) -> Found {
        Found(Answer::Summaries(summaries, next))
    }
}

/// What a step's reads found, taken by kind (a step asks each kind at most
/// once, but for counts, taken by what they count). Only core's rules read
/// it.
#[derive(Debug, Default)]
pub struct Answers(Vec<Found>);

impl Answers {
    pub(crate) fn new(found: Vec<Found>) -> Self {
        Self(found)
    }

    /// The first answer `like` accepts, taken out.
    fn take(&mut self, like: fn(&Answer) -> bool) -> Option<Answer> {
        let at = self.0.iter().position(|f| like(&f.0))?;
        Some(self.0.swap_remove(at).0)
    }

    /// Whether the pacing state was read.
    pub(crate) fn has_schedule(&self) -> bool {
        self.0.iter().any(|f| matches!(f.0, Answer::Schedule(_)))
    }

    pub(crate) fn schedule(&mut self) -> ScheduleState {
        match self.take(|a| matches!(a, Answer::Schedule(_))) {
            Some(Answer::Schedule(s)) => s,
            _ => ScheduleState::default(),
        }
    }

    pub(crate) fn heads(&mut self) -> Vec<Head> {
        match self.take(|a| matches!(a, Answer::Heads(_))) {
            Some(Answer::Heads(h)) => h,
            _ => Vec::new(),
        }
    }

    pub(crate) fn entries(&mut self) -> Vec<Entry> {
        let like = |a: &Answer| matches!(a, Answer::Entries(_) | Answer::List(_));
        match self.take(like) {
            Some(Answer::Entries(e) | Answer::List(e)) => e,
            _ => Vec::new(),
        }
    }

    /// A page of entries in one state, and where to read on (see
    /// [`StateRead::reply`]).
    pub(crate) fn page(&mut self) -> (Vec<Entry>, Option<Seq>) {
        match self.take(|a| matches!(a, Answer::State(..))) {
            Some(Answer::State(e, next)) => (e, next),
            _ => (Vec::new(), None),
        }
    }

    pub(crate) fn behind(&mut self) -> Vec<Vec<Option<Entry>>> {
        match self.take(|a| matches!(a, Answer::Behind(_))) {
            Some(Answer::Behind(b)) => b,
            _ => Vec::new(),
        }
    }

    pub(crate) fn bodies(&mut self) -> Vec<(Seq, Vec<u8>)> {
        match self.take(|a| matches!(a, Answer::Bodies(_))) {
            Some(Answer::Bodies(b)) => b,
            _ => Vec::new(),
        }
    }

    pub(crate) fn found(&mut self) -> Option<Entry> {
        match self.take(|a| matches!(a, Answer::Find(_))) {
            Some(Answer::Find(e)) => e.map(|e| *e),
            _ => None,
        }
    }

    /// A yes-or-no answer of the kind `like` accepts (lane, full, taken):
    /// no answer is no.
    pub(crate) fn yes(&mut self, like: fn(&Answer) -> bool) -> bool {
        matches!(
            self.take(like),
            Some(Answer::Lane(true) | Answer::Full(true) | Answer::Taken(true))
        )
    }

    pub(crate) fn last_seq(&mut self) -> Seq {
        match self.take(|a| matches!(a, Answer::LastSeq(_))) {
            Some(Answer::LastSeq(s)) => s,
            _ => 0,
        }
    }

    pub(crate) fn count(&mut self, among: Among) -> usize {
        let at = self
            .0
            .iter()
            .position(|f| matches!(f.0, Answer::Count(of, _) if of == among));
        match at.map(|at| self.0.swap_remove(at).0) {
            Some(Answer::Count(_, n)) => n,
            _ => 0,
        }
    }

    pub(crate) fn summaries(&mut self) -> (Vec<Summary>, Option<Seq>) {
        match self.take(|a| matches!(a, Answer::Summaries(..))) {
            Some(Answer::Summaries(s, next)) => (s, next),
            _ => (Vec::new(), None),
        }
    }
}
