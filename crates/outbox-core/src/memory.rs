//! An in-memory [`Store`]: for tests, the simulator, and pages that opt
//! out of persistence. Clones share the same data (like two handles on one
//! IndexedDB database), so a "crashed" engine's successor sees what it left.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::rc::Rc;

use crate::clock::Millis;
use crate::entry::{Entry, EntryId, EntryState, Fate, Head, Seq};
use crate::pacer::ScheduleState;
use crate::scheduler::Claim;
use crate::store::{
    CancelResult, Claimed, EnqueueError, LeaseTerms, Planner, Purged, QueueLimits, Settlement,
    Stats, Store,
};

#[derive(Default)]
struct Inner {
    next_seq: Seq,
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

    /// Files an entry already made dead ([`Entry::bury`]).
    fn file_dead(&mut self, entry: Entry) -> Entry {
        self.dead_ids.insert(entry.id, entry.seq);
        self.dead.insert(entry.seq, entry.clone());
        entry
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

impl Store for MemoryStore {
    type Error = Infallible;

    async fn enqueue(
        &self,
        mut entry: Entry,
        limits: &QueueLimits,
    ) -> Result<Entry, EnqueueError<Infallible>> {
        let mut inner = self.0.borrow_mut();
        if inner.queue.len() >= limits.max_entries {
            return Err(EnqueueError::Full {
                max_entries: limits.max_entries,
            });
        }
        let size = entry.request.size_bytes();
        if size > limits.max_entry_bytes {
            return Err(EnqueueError::TooLarge {
                size,
                max: limits.max_entry_bytes,
            });
        }
        if inner.ids.contains_key(&entry.id) || inner.dead_ids.contains_key(&entry.id) {
            return Err(EnqueueError::Duplicate(entry.id));
        }
        inner.next_seq += 1;
        entry.seq = inner.next_seq;
        inner.insert(entry.clone());
        Ok(entry)
    }

    async fn lane_busy(&self, lane: &str) -> Result<bool, Infallible> {
        Ok(self.0.borrow().lanes.contains_key(lane))
    }

    async fn claim(
        &self,
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<Claimed, Infallible> {
        let (now, lease_until) = (terms.now, terms.until);
        let mut inner = self.0.borrow_mut();
        let inner = &mut *inner;
        let heads: Vec<Head> = inner
            .lanes
            .values()
            .filter_map(|seqs| seqs.first())
            .filter_map(|seq| inner.queue.get(seq))
            .map(Entry::head)
            .collect();
        let (claims, next_wake) = planner.plan(&mut inner.schedule, &heads);
        let mut claimed = Claimed {
            next_wake,
            ..Claimed::default()
        };
        for (seq, claim) in claims {
            match claim {
                Claim::Send => {
                    let Some(entry) = inner.queue.get_mut(&seq) else {
                        continue;
                    };
                    if !terms.allows(entry) {
                        continue;
                    }
                    entry.lease(lease_until);
                    claimed.sends.push(entry.clone());
                }
                Claim::AwaitToken => {
                    let Some(entry) = inner.queue.get_mut(&seq) else {
                        continue;
                    };
                    entry.park_for_token();
                    claimed.awaiting_token.push(entry.clone());
                }
                Claim::Expire(error) => {
                    let Some(mut entry) = inner.remove(seq) else {
                        continue;
                    };
                    entry.bury(error, now);
                    claimed.expired.push(inner.file_dead(entry));
                }
            }
        }
        // Followers: behind each head leased to send, in `seq` order.
        let leads: Vec<(String, Seq)> = claimed
            .sends
            .iter()
            .map(|e| (e.lane.clone(), e.seq))
            .collect();
        for (lane, lead) in leads {
            let room = planner.follow_room();
            if room == 0 {
                break;
            }
            let behind: Vec<Seq> = inner.lanes.get(&lane).map_or_else(Vec::new, |seqs| {
                seqs.range(lead + 1..).take(room).copied().collect()
            });
            for seq in behind {
                let Some(entry) = inner.queue.get_mut(&seq) else {
                    break;
                };
                if !planner.follow(&mut inner.schedule, &entry.head()) {
                    break;
                }
                entry.lease(lease_until);
                claimed.sends.push(entry.clone());
            }
        }
        Ok(claimed)
    }

    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
    ) -> Result<Vec<Settlement>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let mut applied = Vec::with_capacity(settlements.len());
        for s in settlements {
            let Some(e) = inner.queue.get_mut(&s.seq) else {
                continue;
            };
            if !e.holds_lease(s.attempt) {
                continue;
            }
            match e.settle(&s.action, now) {
                Fate::Keep => {}
                Fate::Remove => {
                    inner.remove(s.seq);
                }
                Fate::Bury => {
                    if let Some(e) = inner.remove(s.seq) {
                        inner.file_dead(e);
                    }
                }
            }
            applied.push(s);
        }
        schedule(&mut inner.schedule, &applied);
        Ok(applied)
    }

    async fn schedule(&self) -> Result<ScheduleState, Infallible> {
        Ok(self.0.borrow().schedule.clone())
    }

    async fn update_schedule(
        &self,
        update: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<(), Infallible> {
        update(&mut self.0.borrow_mut().schedule);
        Ok(())
    }

    async fn release_awaiting_token(&self, origin: &str) -> Result<Vec<Head>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let mut released = Vec::new();
        for e in inner.queue.values_mut() {
            if e.state == EntryState::AwaitingToken && e.origin == origin {
                e.release_for_token();
                released.push(e.head());
            }
        }
        Ok(released)
    }

    async fn retry_unreachable_now(&self, now: Millis) -> Result<usize, Infallible> {
        let mut inner = self.0.borrow_mut();
        Ok(inner
            .queue
            .values_mut()
            .map(|e| e.hurry(now))
            .filter(|&hurried| hurried)
            .count())
    }

    async fn get(&self, id: EntryId) -> Result<Option<Entry>, Infallible> {
        let inner = self.0.borrow();
        Ok(inner
            .ids
            .get(&id)
            .and_then(|s| inner.queue.get(s))
            .or_else(|| inner.dead_ids.get(&id).and_then(|s| inner.dead.get(s)))
            .cloned())
    }

    async fn queued(&self, limit: usize) -> Result<Vec<Entry>, Infallible> {
        Ok(self
            .0
            .borrow()
            .queue
            .values()
            .take(limit)
            .cloned()
            .collect())
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Entry>, Infallible> {
        Ok(self.0.borrow().dead.values().take(limit).cloned().collect())
    }

    async fn revive(&self, id: EntryId, now: Millis) -> Result<Option<Entry>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let Some(&seq) = inner.dead_ids.get(&id) else {
            return Ok(None);
        };
        if inner.dead.get(&seq).is_none_or(Entry::is_corrupt) {
            return Ok(None);
        }
        inner.dead_ids.remove(&id);
        let Some(mut entry) = inner.dead.remove(&seq) else {
            return Ok(None);
        };
        entry.revive(now);
        inner.schedule.holds.lift(id);
        inner.insert(entry.clone());
        Ok(Some(entry))
    }

    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let Some(seq) = inner.dead_ids.remove(&id) else {
            return Ok(None);
        };
        inner.schedule.holds.lift(id);
        Ok(inner.dead.remove(&seq))
    }

    async fn cancel(&self, id: EntryId) -> Result<CancelResult, Infallible> {
        let mut inner = self.0.borrow_mut();
        let Some(&seq) = inner.ids.get(&id) else {
            return Ok(CancelResult::NotFound);
        };
        if matches!(
            inner.queue.get(&seq).map(|e| e.state),
            Some(EntryState::InFlight { .. })
        ) {
            return Ok(CancelResult::InFlight);
        }
        inner.remove(seq);
        Ok(CancelResult::Cancelled)
    }

    async fn purge(&self) -> Result<Purged, Infallible> {
        let mut inner = self.0.borrow_mut();
        let purged = Purged {
            queued: inner.queue.len(),
            dead: inner.dead.len(),
        };
        let next_seq = inner.next_seq;
        *inner = Inner {
            next_seq,
            ..Inner::default()
        };
        Ok(purged)
    }

    async fn stats(&self, now: Millis) -> Result<Stats, Infallible> {
        let inner = self.0.borrow();
        let mut stats = Stats {
            dead: inner.dead.len(),
            lanes: inner.lanes.len(),
            ..Stats::default()
        };
        for e in inner.queue.values() {
            stats.count(e.state, e.created_at, e.request.size_bytes(), now);
        }
        stats.read_schedule(&inner.schedule, now);
        Ok(stats)
    }
}
