//! What a flush did, counted as it goes: the cycles it ran, the requests
//! it sent and what became of them (the answers' share is counted by
//! [`Verdicts::events`](crate::verdict::Verdicts::events)), and when to
//! flush again.

use crate::clock::Millis;

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Cycles run.
    pub cycles: usize,
    /// Requests sent.
    pub attempts: usize,
    /// Entries delivered.
    pub delivered: usize,
    /// Entries rescheduled.
    pub retried: usize,
    /// Entries that became dead letters.
    pub dead: usize,
    /// Entries parked for a token.
    pub awaiting_token: usize,
    /// Entries not sent because their lease had passed to another process
    /// by the time they were to go ([`Flush::fenced`](crate::flush::Flush::fenced)).
    pub fenced: usize,
    /// When to flush again; `None` when nothing is waiting on time.
    pub next_wake: Option<Millis>,
}
