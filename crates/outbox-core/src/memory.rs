//! An in-memory [`Store`]: for tests, the simulator, and pages that opt
//! out of persistence. Clones share the same data (like two handles on one
//! IndexedDB database), so a "crashed" engine's successor sees what it left.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::convert::Infallible;
use std::rc::Rc;

use crate::clock::Millis;
use crate::entry::{Entry, EntryId, EntryState, Head, LEASE_EXPIRED, LastError, Seq};
use crate::pacer::ScheduleState;
use crate::retry::Action;
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

    fn bury(&mut self, mut entry: Entry, now: Millis) -> Entry {
        entry.state = EntryState::Dead { at: now };
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
        planner: &mut Planner<'_>,
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
        let (claims, next_wake) = planner(&mut inner.schedule, &heads);
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
                    if matches!(entry.state, EntryState::InFlight { .. }) {
                        entry.failures += 1;
                        entry.last_error = Some(LastError::new(
                            LEASE_EXPIRED,
                            "the sender stopped before an answer",
                        ));
                    }
                    entry.attempts += 1;
                    entry.state = EntryState::InFlight { lease_until };
                    claimed.sends.push(entry.clone());
                }
                Claim::AwaitToken => {
                    let Some(entry) = inner.queue.get_mut(&seq) else {
                        continue;
                    };
                    entry.state = EntryState::AwaitingToken;
                    claimed.awaiting_token.push(entry.clone());
                }
                Claim::Expire(error) => {
                    let Some(mut entry) = inner.remove(seq) else {
                        continue;
                    };
                    entry.last_error = Some(error);
                    claimed.expired.push(inner.bury(entry, now));
                }
            }
        }
        Ok(claimed)
    }

    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<Vec<Settlement>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let mut applied = Vec::with_capacity(settlements.len());
        for s in settlements {
            let current = inner.queue.get(&s.seq).is_some_and(|e| {
                e.attempts == s.attempt && matches!(e.state, EntryState::InFlight { .. })
            });
            if !current {
                continue;
            }
            match &s.action {
                Action::Delivered { .. } => {
                    inner.remove(s.seq);
                }
                Action::Retry {
                    not_before,
                    failures,
                    error,
                } => {
                    if let Some(e) = inner.queue.get_mut(&s.seq) {
                        e.state = EntryState::Pending;
                        e.not_before = *not_before;
                        e.failures = *failures;
                        e.auth_failures = 0;
                        e.last_error = Some(error.clone());
                    }
                }
                Action::AwaitToken {
                    auth_failures,
                    error,
                } => {
                    if let Some(e) = inner.queue.get_mut(&s.seq) {
                        e.state = EntryState::AwaitingToken;
                        e.auth_failures = *auth_failures;
                        e.last_error = Some(error.clone());
                    }
                }
                Action::Dead { error } => {
                    if let Some(mut e) = inner.remove(s.seq) {
                        e.last_error = Some(error.clone());
                        inner.bury(e, now);
                    }
                }
            }
            applied.push(s);
        }
        schedule(&mut inner.schedule);
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

    async fn release_awaiting_token(
        &self,
        origin: &str,
        now: Millis,
    ) -> Result<Vec<Head>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let mut released = Vec::new();
        for e in inner.queue.values_mut() {
            if e.state == EntryState::AwaitingToken && e.origin == origin {
                e.state = EntryState::Pending;
                e.not_before = e.not_before.min(now);
                released.push(e.head());
            }
        }
        Ok(released)
    }

    async fn retry_unreachable_now(&self, now: Millis) -> Result<usize, Infallible> {
        let mut inner = self.0.borrow_mut();
        let mut n = 0;
        for e in inner.queue.values_mut() {
            if e.state == EntryState::Pending && e.not_before > now && e.last_attempt_unanswered() {
                e.not_before = now;
                n += 1;
            }
        }
        Ok(n)
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
        let Some(seq) = inner.dead_ids.remove(&id) else {
            return Ok(None);
        };
        let Some(mut entry) = inner.dead.remove(&seq) else {
            return Ok(None);
        };
        entry.state = EntryState::Pending;
        entry.not_before = now;
        entry.attempts = 0;
        entry.failures = 0;
        entry.auth_failures = 0;
        entry.created_at = now;
        inner.insert(entry.clone());
        Ok(Some(entry))
    }

    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, Infallible> {
        let mut inner = self.0.borrow_mut();
        let Some(seq) = inner.dead_ids.remove(&id) else {
            return Ok(None);
        };
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
            match e.state {
                EntryState::Pending => stats.pending += 1,
                EntryState::InFlight { .. } => stats.in_flight += 1,
                EntryState::AwaitingToken => stats.awaiting_token += 1,
                EntryState::Dead { .. } => {}
            }
            stats.bytes += e.request.size_bytes();
            stats.oldest_created_at = Some(
                stats
                    .oldest_created_at
                    .map_or(e.created_at, |o| o.min(e.created_at)),
            );
        }
        stats.paused = inner
            .schedule
            .origins
            .iter()
            .filter(|(_, p)| p.paused_until > now)
            .map(|(o, p)| (o.clone(), p.paused_until))
            .collect();
        Ok(stats)
    }
}
