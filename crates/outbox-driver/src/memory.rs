//! An in-memory [`Store`]: for tests, the simulator, the benchmarks, and
//! hosts that opt out of persistence. Clones share the same data (like two
//! handles on one IndexedDB database), so a "crashed" engine's successor
//! sees what it left.
//!
//! It only reads and writes: every rule is core's
//! ([`outbox_core::queue`]), run by [`Store::run`]. A transaction never
//! waits (nothing here awaits), so it runs whole before anything else does:
//! atomic without locks.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::rc::Rc;

use outbox_core::entry::{Entry, EntryId, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::store::{Access, Among, Found, Read, Summary, Write};

use crate::store::{Store, StoreTx};

#[derive(Default)]
struct Inner {
    last_seq: Seq,
    queue: BTreeMap<Seq, Entry>,
    lanes: HashMap<String, BTreeSet<Seq>>,
    ids: HashMap<EntryId, Seq>,
    dead: BTreeMap<Seq, Entry>,
    dead_ids: HashMap<EntryId, Seq>,
    schedule: ScheduleState,
}

impl Inner {
    fn insert(&mut self, entry: Entry) {
        self.lanes
            .entry(entry.lane.clone())
            .or_default()
            .insert(entry.seq);
        self.ids.insert(entry.id, entry.seq);
        self.queue.insert(entry.seq, entry);
    }

    fn remove(&mut self, seq: Seq) -> Option<Entry> {
        let entry = self.queue.remove(&seq)?;
        self.ids.remove(&entry.id);
        if let Some(lane) = self.lanes.get_mut(&entry.lane) {
            lane.remove(&seq);
            if lane.is_empty() {
                self.lanes.remove(&entry.lane);
            }
        }
        Some(entry)
    }

    fn remove_dead(&mut self, seq: Seq) -> Option<Entry> {
        let entry = self.dead.remove(&seq)?;
        self.dead_ids.remove(&entry.id);
        Some(entry)
    }

    /// `entry`, keeping the body of the one it replaces (a body never
    /// changes after it is added).
    fn with_body_of(mut entry: Entry, old: Option<Entry>) -> Entry {
        if let Some(old) = old {
            entry.request.body = old.request.body;
        }
        entry
    }

    fn find(&self, id: EntryId, among: Among) -> Option<&Entry> {
        let queued = || self.ids.get(&id).and_then(|s| self.queue.get(s));
        let dead = || self.dead_ids.get(&id).and_then(|s| self.dead.get(s));
        match among {
            Among::Queued => queued(),
            Among::Dead => dead(),
            Among::Either => queued().or_else(dead),
        }
    }

    fn read(&self, read: Read) -> Found {
        match read {
            Read::Schedule(ask) => ask.reply(self.schedule.clone()),
            Read::Heads(ask) => ask.reply(
                self.lanes
                    .values()
                    .filter_map(|seqs| seqs.first())
                    .filter_map(|seq| self.queue.get(seq))
                    .map(Entry::head)
                    .collect(),
            ),
            Read::Entries(ask) => {
                let found = ask
                    .seqs
                    .iter()
                    .filter_map(|seq| self.queue.get(seq).cloned())
                    .collect();
                ask.reply(found)
            }
            Read::Behind(ask) => {
                let lists = ask
                    .lanes
                    .iter()
                    .map(|behind| {
                        self.lanes.get(&behind.lane).map_or_else(Vec::new, |seqs| {
                            seqs.range(behind.after + 1..)
                                .take(behind.limit)
                                .map(|seq| self.queue.get(seq).cloned())
                                .collect()
                        })
                    })
                    .collect();
                ask.reply(lists)
            }
            Read::Bodies(ask) => {
                let bodies = ask
                    .seqs
                    .iter()
                    .filter_map(|seq| self.queue.get(seq).or_else(|| self.dead.get(seq)))
                    .map(|e| (e.seq, e.request.body.clone()))
                    .collect();
                ask.reply(bodies)
            }
            Read::State(ask) => {
                let mut entries: Vec<Entry> = Vec::new();
                let mut next = None;
                for (_, e) in self.queue.range(ask.after.saturating_add(1)..) {
                    if !ask.state.is(e.state) || ask.origin.as_ref().is_some_and(|o| *o != e.origin)
                    {
                        continue;
                    }
                    if entries.len() == ask.limit {
                        next = entries.last().map(|e| e.seq);
                        break;
                    }
                    entries.push(e.clone());
                }
                ask.reply(entries, next)
            }
            Read::Find(ask) => {
                let entry = self.find(ask.id, ask.among).cloned();
                ask.reply(entry)
            }
            Read::List(ask) => {
                let store = match ask.among {
                    Among::Dead => &self.dead,
                    Among::Queued | Among::Either => &self.queue,
                };
                let entries = store.values().take(ask.limit).cloned().collect();
                ask.reply(entries)
            }
            Read::Lane(ask) => {
                let busy = self.lanes.contains_key(&ask.lane);
                ask.reply(busy)
            }
            Read::Full(ask) => {
                let full = self.queue.len() >= ask.at_least;
                ask.reply(full)
            }
            Read::Taken(ask) => {
                let taken = self.ids.contains_key(&ask.id) || self.dead_ids.contains_key(&ask.id);
                ask.reply(taken)
            }
            Read::LastSeq(ask) => ask.reply(self.last_seq),
            Read::Count(ask) => {
                let count = match ask.among {
                    Among::Dead => self.dead.len(),
                    Among::Queued | Among::Either => self.queue.len(),
                };
                ask.reply(count)
            }
            Read::Summaries(ask) => {
                let mut page: Vec<(Seq, Summary)> = self
                    .queue
                    .range(ask.after.saturating_add(1)..)
                    .take(ask.limit.saturating_add(1))
                    .map(|(seq, e)| {
                        let summary = Summary {
                            lane: e.lane.clone(),
                            state: e.state,
                            created_at: e.created_at,
                            size: e.request.size_bytes() as u64,
                        };
                        (*seq, summary)
                    })
                    .collect();
                let more = page.len() > ask.limit;
                page.truncate(ask.limit);
                let next = page.last().map(|(seq, _)| *seq).filter(|_| more);
                ask.reply(page.into_iter().map(|(_, s)| s).collect(), next)
            }
        }
    }

    fn write(&mut self, write: Write) {
        match write {
            Write::Add(entry) => {
                self.last_seq = self.last_seq.max(entry.seq);
                self.insert(entry);
            }
            Write::Put(entry) => {
                let old = self.remove(entry.seq);
                if old.is_some() {
                    self.insert(Self::with_body_of(entry, old));
                }
            }
            Write::Remove(seq) => {
                self.remove(seq);
            }
            Write::Bury(entry) => {
                if let Some(old) = self.remove(entry.seq) {
                    let dead = Self::with_body_of(entry, Some(old));
                    self.dead_ids.insert(dead.id, dead.seq);
                    self.dead.insert(dead.seq, dead);
                }
            }
            Write::Revive(entry) => {
                if let Some(old) = self.remove_dead(entry.seq) {
                    self.insert(Self::with_body_of(entry, Some(old)));
                }
            }
            Write::Discard(seq) => {
                self.remove_dead(seq);
            }
            Write::Schedule(schedule) => self.schedule = schedule,
            Write::Purge => {
                *self = Inner {
                    last_seq: self.last_seq,
                    ..Inner::default()
                };
            }
        }
    }
}

/// A [`Store`] in memory. Never fails.
#[derive(Clone, Default)]
pub struct MemoryStore(Rc<RefCell<Inner>>);

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

/// A transaction of a [`MemoryStore`]: its reads and writes go straight to
/// the data.
pub struct MemoryTx<'a>(&'a MemoryStore);

impl StoreTx for MemoryTx<'_> {
    type Error = Infallible;

    async fn read(&mut self, reads: Vec<Read>) -> Result<Vec<Found>, Infallible> {
        let inner = self.0.0.borrow();
        Ok(reads.into_iter().map(|read| inner.read(read)).collect())
    }

    fn write(&mut self, writes: Vec<Write>) -> Result<(), Infallible> {
        let mut inner = self.0.0.borrow_mut();
        for write in writes {
            inner.write(write);
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), Infallible> {
        Ok(())
    }
}

impl Store for MemoryStore {
    type Error = Infallible;
    type Tx<'a> = MemoryTx<'a>;

    async fn begin(
        &self,
        _access: Access,
        _name: &'static str,
    ) -> Result<MemoryTx<'_>, Infallible> {
        Ok(MemoryTx(self))
    }
}
