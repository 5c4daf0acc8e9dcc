//! A flush cycle's store step, in one transaction: [`Cycle`].
//!
//! Unlike the rules of [`crate::queue`], which read once and decide, a
//! cycle reads in steps, each decided from the last, and asks the flush
//! machine inside the transaction (its [`Planner`] hooks):
//!
//! ```text
//!   read schedule (+ the entries settled)
//!   → settle: Entry::settle each whose lease still matches; Planner::settled
//!   → write; read every lane's head
//!   → Planner::plan → read the heads it names
//!   → lease / park / bury → write; read the entries behind the heads sent
//!   → Planner::follow each → write; read the bodies of what was claimed
//!   → write the pacing state if it changed → commit
//! ```

use crate::clock::Millis;
use crate::entry::{Entry, Fate, Seq};
use crate::pacer::ScheduleState;
use crate::queue::{Claimed, LeaseTerms, Planner, Settlement, Transaction};
use crate::scheduler::Claim;
use crate::store::{
    Access, Answers, Behind, BehindRead, BodiesRead, EntriesRead, Found, HeadsRead, Read,
    ScheduleRead, Step, Write,
};
use alloc::{string::String, vec, vec::Vec};

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
    #[track_caller]
    pub fn finish(self) -> (Vec<Settlement>, Claimed) {
        if self.phase != Phase::Done {
            unreachable!("a transaction's result was taken before it committed");
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
        for (seq, claim) in core::mem::take(&mut self.claims) {
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

    /// Leases the entries behind the heads sent, as `hooks` accept them,
    /// breadth first: one entry behind each head per round, so that the
    /// cycle's room is shared by its lanes and each of the flush's sends
    /// carries one entry of every lane still going (depth first, the first
    /// lane took the whole room, and its followers went one request at a
    /// time). A lane stops at the first entry refused or unreadable (it
    /// dies as a head, in its turn); the rest go on.
    fn follow(&mut self, terms: LeaseTerms, hooks: &mut dyn Planner) -> Vec<Write> {
        let mut writes = Vec::new();
        let mut lanes: Vec<_> = core::mem::take(&mut self.leads)
            .into_iter()
            .zip(self.answers.behind())
            .map(|((_, lead), list)| (lead, list.into_iter()))
            .collect();
        while !lanes.is_empty() {
            let mut still = Vec::with_capacity(lanes.len());
            for (lead, mut list) in lanes {
                if hooks.follow_room() == 0 {
                    return writes;
                }
                let next = list.find(|e| e.as_ref().is_none_or(|e| e.seq > lead));
                let Some(Some(mut next)) = next else { continue };
                if !hooks.follow(&mut self.schedule, &next.head()) {
                    continue;
                }
                next.lease(terms.until);
                writes.push(Write::Put(next.clone()));
                self.claimed.sends.push(next);
                still.push((lead, list));
            }
            lanes = still;
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
