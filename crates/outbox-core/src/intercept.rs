//! The intercept decisions of the design (§6, first list), as pure
//! functions: what a service worker does with a matched request.
//!
//! 1. The lane already has queued entries, is held by a dead letter
//!    ([`crate::hold`]), or the origin is paused by a rate limit → persist and answer `202` (never let a new message
//!    overtake older ones).
//! 2. Otherwise forward it. `2xx` → pass the answer through.
//! 3. Network error, timeout, `408`, `429`, `5xx` → persist, answer `202`;
//!    `401` → persist as awaiting-token and ask for a token.
//! 4. Any other `4xx` → pass the real answer through; nothing is queued and
//!    the caller still holds its message.

use crate::classify::LastError;
use crate::classify::Outcome;
use crate::clock::Millis;

/// Why a request is queued without trying the network first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueReason {
    /// Older entries of the same lane are waiting.
    LaneBusy,
    /// The lane waits for a dead letter to be revived or discarded.
    LaneHeld,
    /// The origin is paused by a rate limit until this time.
    OriginPaused {
        /// End of the pause.
        until: Millis,
    },
}

impl QueueReason {
    /// The reason as told with the `queued` event and in a `202` body.
    pub fn name(self) -> &'static str {
        match self {
            Self::LaneBusy => "lane-busy",
            Self::LaneHeld => "lane-held",
            Self::OriginPaused { .. } => "origin-paused",
        }
    }
}

/// The decision before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeForward {
    /// Try the network now.
    Forward,
    /// Persist and answer `202` at once.
    Queue(QueueReason),
}

/// Decides whether a matched request may try the network now.
pub fn before_forward(
    lane_busy: bool,
    lane_held: bool,
    paused_until: Option<Millis>,
    now: Millis,
) -> BeforeForward {
    if lane_held {
        return BeforeForward::Queue(QueueReason::LaneHeld);
    }
    if lane_busy {
        return BeforeForward::Queue(QueueReason::LaneBusy);
    }
    match paused_until {
        Some(until) if until > now => BeforeForward::Queue(QueueReason::OriginPaused { until }),
        _ => BeforeForward::Forward,
    }
}

/// The decision after forwarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterForward {
    /// Give the caller the server's answer as it is.
    PassThrough,
    /// Persist and answer `202`.
    Queue {
        /// Whether the entry starts out waiting for a token (after a `401`).
        awaiting_token: bool,
        /// What went wrong.
        error: LastError,
    },
}

/// Decides what to do with the outcome of a forwarded request.
pub fn after_forward(outcome: &Outcome) -> AfterForward {
    match outcome {
        Outcome::Delivered { .. }
        | Outcome::AlreadyDelivered { .. }
        | Outcome::Permanent { .. } => AfterForward::PassThrough,
        Outcome::Unauthorized { error } => AfterForward::Queue {
            awaiting_token: true,
            error: error.clone(),
        },
        Outcome::RateLimited { error, .. } | Outcome::Retryable { error, .. } => {
            AfterForward::Queue {
                awaiting_token: false,
                error: error.clone(),
            }
        }
    }
}
