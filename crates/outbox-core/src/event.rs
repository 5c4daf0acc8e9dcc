//! Events: every state change, for the UI and for logs.

use crate::classify::LastError;
use crate::clock::Millis;
use crate::entry::EntryId;
use crate::json::Object;
use crate::throttle::Limit;
use alloc::{string::String, vec::Vec};

/// A state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Made durable.
    Queued {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// Why it was queued rather than sent at once (`lane-busy`,
        /// `origin-paused`, `network`, `HTTP 503`, `write-through`, …).
        reason: String,
    },
    /// An attempt started.
    Sending {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// Attempt number, from 1.
        attempt: u32,
    },
    /// Delivered.
    Sent {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// The server's status.
        status: u16,
        /// True when a `409` said the server already had it.
        duplicate: bool,
    },
    /// An attempt failed; another will follow.
    Retrying {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// Attempts so far.
        attempt: u32,
        /// Earliest next attempt.
        next_attempt_at: Millis,
        /// What went wrong.
        error: LastError,
    },
    /// Parked until a fresh token arrives.
    AwaitingToken {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// The origin that needs a token.
        origin: String,
    },
    /// An origin is paused (rate limit).
    Paused {
        /// The origin.
        origin: String,
        /// End of the pause.
        until: Millis,
        /// Why.
        reason: String,
    },
    /// Became a dead letter.
    Dead {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
        /// Why.
        error: LastError,
    },
    /// A lane holds: its head became a dead letter, and the entries behind
    /// it wait until that dead letter is revived or discarded
    /// ([`crate::hold`]).
    Held {
        /// The dead letter holding the lane.
        id: EntryId,
        /// The lane.
        lane: String,
    },
    /// A dead letter went back into the queue.
    Revived {
        /// Entry id.
        id: EntryId,
        /// Its lane.
        lane: String,
    },
    /// A dead letter was deleted.
    Discarded {
        /// Entry id.
        id: EntryId,
    },
    /// A queued entry was removed before it was sent.
    Cancelled {
        /// Entry id.
        id: EntryId,
    },
    /// An origin's herd throttle started, changed or stopped limiting it
    /// ([`crate::throttle`]): what `stats().throttled` shows, as it
    /// happens.
    Throttle {
        /// The origin.
        origin: String,
        /// What the throttle does now; `None`: it no longer limits.
        limit: Option<Limit>,
    },
    /// Everything was deleted.
    Purged {
        /// Queued entries removed.
        queued: usize,
        /// Dead letters removed.
        dead: usize,
    },
}

impl Event {
    /// The event's type name (`queued`, `sending`, `sent`, `retrying`,
    /// `awaiting-token`, `paused`, `dead`, `revived`, `discarded`,
    /// `cancelled`, `purged`, `held`, `throttle`).
    pub fn kind(&self) -> &'static str {
        match self {
            Event::Queued { .. } => "queued",
            Event::Sending { .. } => "sending",
            Event::Sent { .. } => "sent",
            Event::Retrying { .. } => "retrying",
            Event::AwaitingToken { .. } => "awaiting-token",
            Event::Paused { .. } => "paused",
            Event::Dead { .. } => "dead",
            Event::Held { .. } => "held",
            Event::Revived { .. } => "revived",
            Event::Discarded { .. } => "discarded",
            Event::Cancelled { .. } => "cancelled",
            Event::Purged { .. } => "purged",
            Event::Throttle { .. } => "throttle",
        }
    }

    /// The entry the event is about, if any.
    pub fn id(&self) -> Option<EntryId> {
        match self {
            Event::Queued { id, .. }
            | Event::Sending { id, .. }
            | Event::Sent { id, .. }
            | Event::Retrying { id, .. }
            | Event::AwaitingToken { id, .. }
            | Event::Dead { id, .. }
            | Event::Held { id, .. }
            | Event::Revived { id, .. }
            | Event::Discarded { id }
            | Event::Cancelled { id } => Some(*id),
            Event::Paused { .. } | Event::Purged { .. } | Event::Throttle { .. } => None,
        }
    }

    /// The event as a JSON object with a `type` field and camelCase fields,
    /// the form pages receive over `BroadcastChannel`.
    pub fn to_json(&self) -> String {
        let mut o = typed(self.kind());
        // The entry's id first, for every event about one entry.
        if let Some(id) = self.id() {
            o.str("id", &id.hyphenated());
        }
        match self {
            Event::Queued { lane, reason, .. } => {
                o.str("lane", lane).str("reason", reason);
            }
            Event::Sending { lane, attempt, .. } => {
                o.str("lane", lane).num("attempt", *attempt as u64);
            }
            Event::Sent {
                lane,
                status,
                duplicate,
                ..
            } => {
                o.str("lane", lane)
                    .num("status", *status as u64)
                    .bool("duplicate", *duplicate);
            }
            Event::Retrying {
                lane,
                attempt,
                next_attempt_at,
                error,
                ..
            } => {
                o.str("lane", lane)
                    .num("attempt", *attempt as u64)
                    .num("nextAttemptAt", *next_attempt_at)
                    .raw("error", &error_json(error));
            }
            Event::AwaitingToken { lane, origin, .. } => {
                o.str("lane", lane).str("origin", origin);
            }
            Event::Paused {
                origin,
                until,
                reason,
            } => {
                o.str("origin", origin)
                    .num("until", *until)
                    .str("reason", reason);
            }
            Event::Dead { lane, error, .. } => {
                o.str("lane", lane).raw("error", &error_json(error));
            }
            Event::Revived { lane, .. } | Event::Held { lane, .. } => {
                o.str("lane", lane);
            }
            Event::Discarded { .. } | Event::Cancelled { .. } => {}
            Event::Purged { queued, dead } => {
                o.num("queued", *queued as u64).num("dead", *dead as u64);
            }
            Event::Throttle { origin, limit } => {
                o.str("origin", origin);
                limit_json(&mut o, limit.as_ref());
            }
        }
        o.finish()
    }
}

/// A [`LastError`] as a JSON object (`status`, `code`, `message`, `contextId`).
pub fn error_json(e: &LastError) -> String {
    let mut o = Object::new();
    if let Some(s) = e.status {
        o.num("status", s as u64);
    }
    if let Some(c) = &e.code {
        o.str("code", c);
    }
    o.str("message", &e.message);
    if let Some(c) = &e.context_id {
        o.str("contextId", c);
    }
    o.finish()
}

/// Writes what a throttle does into `o`: `reason` (`probing`, `shedding`
/// or `none`), and when shedding `ratePerMinute` (requests a minute, up
/// to three decimals) and `shedPercent`. The form of a `throttle` event
/// and of each entry of `stats().throttled`.
pub fn limit_json(o: &mut Object, limit: Option<&Limit>) {
    match limit {
        None => {
            o.str("reason", "none");
        }
        Some(limit @ Limit::Probing) => {
            o.str("reason", limit.reason());
        }
        Some(limit @ Limit::Shedding { rate, shed_percent }) => {
            let mut per_minute = String::new();
            crate::json::push_u64(&mut per_minute, rate / 1000);
            let milli = rate % 1000;
            if milli != 0 {
                per_minute.push('.');
                let digits = [milli / 100, milli / 10 % 10, milli % 10];
                let keep = if milli % 10 != 0 {
                    3
                } else if milli % 100 != 0 {
                    2
                } else {
                    1
                };
                for d in &digits[..keep] {
                    per_minute.push(char::from(b'0' + *d as u8));
                }
            }
            o.str("reason", limit.reason())
                .raw("ratePerMinute", &per_minute)
                .num("shedPercent", u64::from(*shed_percent));
        }
    }
}

/// An event's JSON object: its `type` first.
fn typed(kind: &str) -> Object {
    let mut o = Object::new();
    o.str("type", kind);
    o
}

/// Receives events. Implementations must not block (the browser posts them
/// to a `BroadcastChannel`).
pub trait EventSink {
    /// Called for every state change, in order.
    fn emit(&self, event: &Event);
}

/// Discards events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoEvents;

impl EventSink for NoEvents {
    fn emit(&self, _event: &Event) {}
}

/// Keeps every event, for tests.
#[derive(Debug, Clone, Default)]
pub struct EventLog(pub alloc::rc::Rc<core::cell::RefCell<Vec<Event>>>);

impl EventLog {
    /// The events so far.
    pub fn events(&self) -> Vec<Event> {
        self.0.borrow().clone()
    }

    /// The kinds of the events so far.
    pub fn kinds(&self) -> Vec<&'static str> {
        self.0.borrow().iter().map(Event::kind).collect()
    }
}

impl EventSink for EventLog {
    fn emit(&self, event: &Event) {
        self.0.borrow_mut().push(event.clone());
    }
}
