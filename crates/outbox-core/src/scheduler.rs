//! Planning a flush: which lane heads go now.
//!
//! Lanes are strict FIFO: only a lane's first entry is ever considered, so
//! a lane's head blocks its own lane and no other. Ready heads go oldest
//! first (global `seq` order), at most one per lane, up to the batch size,
//! skipping paused origins and origins whose bucket is empty. Planning
//! looks at lane heads only: its cost is O(lanes · log lanes + batch),
//! whatever the queue's length.
//!
//! The entries right behind the heads being sent may be leased to
//! *follow* them ([`follows`]; a cycle leases up to
//! [`BATCHES_PER_CYCLE`](crate::flush::BATCHES_PER_CYCLE) batches' worth):
//! each goes in the same cycle, only once the entry before it in its lane
//! got through ([`crate::flush`]), so one conversation's backlog pays one
//! store step per cycle instead of one per message, and its order is kept.

use crate::classify::LastError;
use crate::clock::Millis;
use crate::entry::{CORRUPT, EntryId, EntryState, Head, LEASE_EXPIRED, Seq};
use crate::hold::OnDead;
use crate::pacer::{PacerConfig, ScheduleState};
use crate::retry::RetryPolicy;
use alloc::{string::String, vec::Vec};

/// What the plan does with a head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Lease it and send it now.
    Send,
    /// No token for its origin: park it until one arrives.
    AwaitToken,
    /// Too old or too often failed: make it a dead letter.
    Expire(LastError),
}

/// A plan for one flush cycle.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    /// What to do with which heads, oldest first.
    pub claims: Vec<(Seq, Claim)>,
    /// When something not ready now becomes ready (a backoff ends, a lease
    /// expires, a pause ends, the bucket refills). `None`: nothing to wait
    /// for (empty, or everything awaits a token).
    pub next_wake: Option<Millis>,
    /// Origins whose lane heads wait for a token that is still not in hand
    /// (ask again).
    pub token_wanted: Vec<String>,
    /// Lanes this plan put on hold (their head expired), with the dead
    /// letter holding each.
    pub held: Vec<(String, EntryId)>,
}

impl Plan {
    /// How many heads are to be sent.
    pub fn sends(&self) -> usize {
        self.claims
            .iter()
            .filter(|(_, c)| *c == Claim::Send)
            .count()
    }
}

/// What planning needs besides the heads.
pub struct PlanContext<'a> {
    /// The time.
    pub now: Millis,
    /// Most sends in one cycle (also the concurrency).
    pub batch_size: usize,
    /// Expiry rules.
    pub policy: &'a RetryPolicy,
    /// Pacing.
    pub pacer: &'a PacerConfig,
    /// Whether a token is in hand for an origin.
    pub has_token: &'a dyn Fn(&str) -> bool,
    /// Treat every unexpired lease as orphaned (the flusher holds the
    /// origin-wide lock, so no other sender is alive).
    pub steal_leases: bool,
    /// What a lane of a route does when its head dies.
    pub on_dead: &'a dyn Fn(&str) -> OnDead,
}

/// Why an entry with `failures` failures, created at `created_at`, is past
/// its limits at `ctx.now` (too many failures, or too old): it dies instead
/// of going. `None`: within them.
fn past_limits(failures: u32, created_at: Millis, ctx: &PlanContext<'_>) -> Option<LastError> {
    if failures >= ctx.policy.max_attempts {
        let why = LastError::new(LEASE_EXPIRED, "sender stopped before an answer");
        Some(ctx.policy.max_attempts_error(Some(&why)))
    } else if ctx.policy.is_expired(created_at, ctx.now) {
        Some(ctx.policy.max_age_error(None))
    } else {
        None
    }
}

/// Whether a lease standing until `lease_until` is an orphan at `ctx.now`:
/// it ran out, or the planner takes over every lease (its sender died
/// before an answer either way).
fn orphaned(lease_until: Millis, ctx: &PlanContext<'_>) -> bool {
    lease_until <= ctx.now || ctx.steal_leases
}

/// Makes `head` a dead letter; it holds its lane when its route says so, in
/// this same plan (so in the claim's transaction).
fn expire(
    head: &Head,
    error: LastError,
    schedule: &mut ScheduleState,
    ctx: &PlanContext<'_>,
    claims: &mut Vec<(Seq, Claim)>,
    held: &mut Vec<(String, EntryId)>,
) {
    if (ctx.on_dead)(&head.route) == OnDead::Hold && schedule.holds.hold(&head.lane, head.id) {
        held.push((head.lane.clone(), head.id));
    }
    claims.push((head.seq, Claim::Expire(error)));
}

/// Plans a cycle from the lane heads (one per lane, any order), taking
/// pacing tokens from `schedule` for what it sends. A held lane
/// ([`crate::hold`]) is skipped, unless its head is the very dead letter
/// holding it (revived): then the hold lifts and the head goes first.
pub fn plan(heads: &[Head], schedule: &mut ScheduleState, ctx: &PlanContext<'_>) -> Plan {
    let now = ctx.now;
    let mut next_wake: Option<Millis> = None;
    let mut wake = |t: Millis| next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
    let mut ready: Vec<&Head> = Vec::with_capacity(heads.len());
    let mut token_wanted: Vec<String> = Vec::new();
    let mut held = Vec::new();
    let mut claims = Vec::new();
    for head in heads {
        // A record that cannot be read can never be sent: it dies at once,
        // even in a held lane (whose first hole keeps the hold).
        if head.corrupt {
            let error = LastError::new(CORRUPT, "the stored record could not be read back");
            expire(head, error, schedule, ctx, &mut claims, &mut held);
            continue;
        }
        match schedule.holds.holder(&head.lane) {
            Some(holder) if holder == head.id => {
                schedule.holds.lift(holder);
            }
            Some(_) => continue,
            None => {}
        }
        match head.state {
            EntryState::Pending if head.not_before <= now => ready.push(head),
            EntryState::Pending => wake(head.not_before),
            EntryState::InFlight { lease_until } if orphaned(lease_until, ctx) => ready.push(head),
            EntryState::InFlight { lease_until } => wake(lease_until),
            // Parked for a token: goes again once one is in hand, and once
            // the backoff after a `401` (if any) has passed.
            EntryState::AwaitingToken if (ctx.has_token)(&head.origin) => {
                if head.not_before <= now {
                    ready.push(head)
                } else {
                    wake(head.not_before)
                }
            }
            EntryState::AwaitingToken => {
                if !token_wanted.contains(&head.origin) {
                    token_wanted.push(head.origin.clone());
                }
            }
            EntryState::Dead { .. } => {}
        }
    }
    let mut sendable: Vec<&Head> = Vec::with_capacity(ready.len());
    for head in ready {
        // A lease still standing here means its sender died mid-send: that
        // counts as a server-side failure, so a poison entry cannot loop
        // forever.
        let lease_lost = matches!(head.state, EntryState::InFlight { .. });
        let failures = head.failures.saturating_add(u32::from(lease_lost));
        if let Some(error) = past_limits(failures, head.created_at, ctx) {
            expire(head, error, schedule, ctx, &mut claims, &mut held);
        } else if head.needs_token && !(ctx.has_token)(&head.origin) {
            claims.push((head.seq, Claim::AwaitToken));
            if !token_wanted.contains(&head.origin) {
                token_wanted.push(head.origin.clone());
            }
        } else {
            sendable.push(head);
        }
    }

    // Oldest first, up to the batch: pick the smallest `seq` each time (a
    // batch is small; no sort of every head is needed). An origin whose
    // bucket is empty or that is paused drops out at once.
    let mut sends = 0;
    while sends < ctx.batch_size {
        let Some(i) = (0..sendable.len()).min_by_key(|&i| sendable[i].seq) else {
            break;
        };
        let head = sendable.swap_remove(i);
        match schedule.try_take(&head.origin, ctx.pacer, now) {
            Ok(()) => {
                claims.push((head.seq, Claim::Send));
                sends += 1;
            }
            Err(at) => {
                wake(at);
                sendable.retain(|h| h.origin != head.origin);
            }
        }
    }
    if !sendable.is_empty() {
        wake(now); // more is ready: come back at once
    }
    Plan {
        claims,
        next_wake,
        token_wanted,
        held,
    }
}

/// Whether `next`, the entry right behind one of its lane that this cycle
/// sends, may be leased to follow it (sent in the same cycle once that one
/// clears the lane). Only a plain pending entry that is due, or one whose
/// lease is an orphan (leased to follow by a sender that died: like a
/// head's, its lost lease counts one failure), within its
/// limits, with a token in hand if it needs one, in a lane no dead letter
/// holds, and within its origin's pacing budget, of which it takes one
/// request (so an origin being probed after an outage, or spreading its
/// backlog, lets nothing follow beyond what its throttle allows). An
/// origin whose throttle limited it when the claim began (`throttled`:
/// probing, spreading a backlog or slowed by refusals) lets nothing follow
/// at all: there every request waits for the throttle's own decision. The
/// caller counts the batch.
pub fn follows(
    next: &Head,
    throttled: bool,
    schedule: &mut ScheduleState,
    ctx: &PlanContext<'_>,
) -> bool {
    let now = ctx.now;
    // A lease still standing behind the head is an orphan: its sender died
    // with the cycle that leased it to follow. Like a head's, it counts one
    // failure, and the entry may follow again (else it would stay "in
    // flight" until it became the head).
    let lease_lost = match next.state {
        EntryState::Pending if next.not_before <= now => false,
        EntryState::InFlight { lease_until } if orphaned(lease_until, ctx) => true,
        _ => return false,
    };
    let failures = next.failures.saturating_add(u32::from(lease_lost));
    !throttled
        && !next.corrupt
        && past_limits(failures, next.created_at, ctx).is_none()
        && (!next.needs_token || (ctx.has_token)(&next.origin))
        && schedule.holds.holder(&next.lane).is_none()
        && schedule.try_take(&next.origin, ctx.pacer, now).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entry::EntryId;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    const NOW: Millis = 1_000_000;

    fn head(seq: Seq, lane: &str) -> Head {
        Head {
            seq,
            id: EntryId::from_bytes([seq as u8; 16]),
            lane: lane.into(),
            route: "agent-send".into(),
            origin: "https://api.mypurecloud.ie".into(),
            corrupt: false,
            needs_token: false,
            created_at: NOW,
            attempts: 0,
            failures: 0,
            not_before: NOW,
            state: EntryState::Pending,
        }
    }

    fn run(heads: &[Head], schedule: &mut ScheduleState, on_dead: OnDead) -> Plan {
        let policy = RetryPolicy::default();
        let pacer = PacerConfig::default();
        let ctx = PlanContext {
            now: NOW,
            batch_size: 8,
            policy: &policy,
            pacer: &pacer,
            has_token: &|_| true,
            steal_leases: false,
            on_dead: &move |_| on_dead,
        };
        plan(heads, schedule, &ctx)
    }

    #[test]
    fn a_corrupt_head_dies_and_holds_its_lane_even_if_held() {
        let mut bad = head(2, "b");
        bad.corrupt = true;
        let mut schedule = ScheduleState::default();
        let p = run(&[head(1, "a"), bad.clone()], &mut schedule, OnDead::Hold);
        assert_eq!(p.claims[0].0, 2);
        assert!(matches!(&p.claims[0].1, Claim::Expire(e) if e.code.as_deref() == Some(CORRUPT)));
        assert_eq!(p.claims[1], (1, Claim::Send));
        assert_eq!(p.held, vec![("b".to_owned(), bad.id)]);
        assert_eq!(schedule.holds.holder("b"), Some(bad.id));
        // In a lane already held by an older hole, it still dies; the
        // older hole keeps the hold.
        let mut worse = head(3, "b");
        worse.corrupt = true;
        let p = run(&[worse], &mut schedule, OnDead::Hold);
        assert!(matches!(p.claims[0].1, Claim::Expire(_)));
        assert!(p.held.is_empty());
        assert_eq!(schedule.holds.holder("b"), Some(bad.id));
    }

    #[test]
    fn held_lanes_are_skipped_until_their_dead_letter_is_back_at_the_head() {
        let mut schedule = ScheduleState::default();
        let holder = head(1, "a");
        schedule.holds.hold("a", holder.id);
        let p = run(&[head(5, "a"), head(6, "b")], &mut schedule, OnDead::Hold);
        assert_eq!(p.claims, vec![(6, Claim::Send)]);
        assert_eq!(
            p.next_wake, None,
            "a held lane waits for the user, not time"
        );
        // Revived: the holder is the head again; the hold lifts, it goes.
        let p = run(core::slice::from_ref(&holder), &mut schedule, OnDead::Hold);
        assert_eq!(p.claims, vec![(1, Claim::Send)]);
        assert!(!schedule.holds.is_held("a"));
    }

    #[test]
    fn an_expired_head_of_a_skip_route_holds_nothing() {
        let mut old = head(1, "a");
        old.failures = RetryPolicy::default().max_attempts;
        let mut schedule = ScheduleState::default();
        let p = run(&[old], &mut schedule, OnDead::Skip);
        assert!(matches!(p.claims[0].1, Claim::Expire(_)));
        assert!(p.held.is_empty() && schedule.holds.0.is_empty());
    }
}
