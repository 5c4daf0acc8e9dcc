//! The intercept decisions of the design (§6, first list), as pure
//! functions: what a service worker does with a matched request.
//!
//! 1. The lane already has queued entries, is held by a dead letter
//!    ([`crate::hold`]), or the origin is paused by a rate limit → persist and answer `202` (never let a new message
//!    overtake older ones).
//! 2. The origin's herd throttle ([`crate::throttle`]) limits it: while
//!    the origin gives no answer the live attempt may be its one probe, and
//!    while a probe is out the request is persisted and answered `202` at
//!    once; while its server sheds load, the live attempt takes a request
//!    of the reduced rate, or is persisted and answered `202` when none is
//!    left. The live attempt obeys the throttle as a flush does. (Taking
//!    from the throttle is a write, so the
//!    [`Intercept`](crate::door::Intercept) door makes it after this pure
//!    first look.)
//! 3. Otherwise forward it. `2xx` → pass the answer through.
//! 4. Network error, timeout, `408`, `429`, `5xx` → persist, answer `202`;
//!    `401` → persist as awaiting-token and ask for a token.
//! 5. Any other `4xx` → pass the real answer through; nothing is queued and
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
    /// The origin gives no answer and its one probe is already out.
    OriginDown,
    /// The origin's server sheds load and its throttle's reduced rate has
    /// nothing left to give now.
    Throttled,
}

impl QueueReason {
    /// The reason as told with the `queued` event and in a `202` body.
    pub fn name(self) -> &'static str {
        match self {
            Self::LaneBusy => "lane-busy",
            Self::LaneHeld => "lane-held",
            Self::OriginPaused { .. } => "origin-paused",
            Self::OriginDown => "origin-down",
            Self::Throttled => "throttled",
        }
    }
}

/// The decision before forwarding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BeforeForward {
    /// Try the network now.
    Forward,
    /// Try the network now, with what the origin's herd throttle gave (its
    /// probe, or a request of its reduced rate), or while it has something
    /// to learn from the answer: hand the answer to the throttle
    /// ([`Forward`](crate::door::Forward) with `watched`).
    ForwardWatched,
    /// Persist and answer `202` at once.
    Queue(QueueReason),
}

impl BeforeForward {
    /// Whether the request goes to the network now.
    pub fn forwards(self) -> bool {
        matches!(self, Self::Forward | Self::ForwardWatched)
    }

    /// Whether the origin's throttle is to learn from the live answer.
    pub fn watched(self) -> bool {
        self == Self::ForwardWatched
    }
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
