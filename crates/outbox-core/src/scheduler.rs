//! Planning a flush: which lane heads go now.
//!
//! Lanes are strict FIFO: only a lane's first entry is ever considered, so
//! a lane's head blocks its own lane and no other. Ready heads go oldest
//! first (global `seq` order), at most one per lane, up to the batch size,
//! skipping paused origins and origins whose bucket is empty. Planning
//! looks at lane heads only: its cost is O(lanes · log lanes + batch),
//! whatever the queue's length.

use crate::clock::Millis;
use crate::entry::{EntryState, Head, LEASE_EXPIRED, LastError, Seq};
use crate::pacer::{PacerConfig, ScheduleState};
use crate::retry::RetryPolicy;

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
}

/// Plans a cycle from the lane heads (one per lane, any order), taking
/// pacing tokens from `schedule` for what it sends.
pub fn plan(heads: &[Head], schedule: &mut ScheduleState, ctx: &PlanContext<'_>) -> Plan {
    let now = ctx.now;
    let mut next_wake: Option<Millis> = None;
    let mut wake = |t: Millis| next_wake = Some(next_wake.map_or(t, |w| w.min(t)));
    let mut ready: Vec<&Head> = Vec::with_capacity(heads.len());
    let mut token_wanted: Vec<String> = Vec::new();
    for head in heads {
        match head.state {
            EntryState::Pending if head.not_before <= now => ready.push(head),
            EntryState::Pending => wake(head.not_before),
            EntryState::InFlight { lease_until } if lease_until <= now || ctx.steal_leases => {
                ready.push(head)
            }
            EntryState::InFlight { lease_until } => wake(lease_until),
            // Parked for a token: goes again once one is in hand.
            EntryState::AwaitingToken if (ctx.has_token)(&head.origin) => ready.push(head),
            EntryState::AwaitingToken => {
                if !token_wanted.contains(&head.origin) {
                    token_wanted.push(head.origin.clone());
                }
            }
            EntryState::Dead { .. } => {}
        }
    }
    let mut claims = Vec::new();
    let mut sendable: Vec<&Head> = Vec::with_capacity(ready.len());
    for head in ready {
        // A lease still standing here means its sender died mid-send: that
        // counts as a server-side failure, so a poison entry cannot loop
        // forever.
        let lease_lost = matches!(head.state, EntryState::InFlight { .. });
        let failures = head.failures + u32::from(lease_lost);
        if failures >= ctx.policy.max_attempts {
            let why = LastError::new(LEASE_EXPIRED, "sender stopped before an answer");
            claims.push((
                head.seq,
                Claim::Expire(ctx.policy.max_attempts_error(Some(&why))),
            ));
        } else if ctx.policy.is_expired(head.created_at, now) {
            claims.push((head.seq, Claim::Expire(ctx.policy.max_age_error(None))));
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
    }
}
