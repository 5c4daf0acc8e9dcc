//! The entry: one outbound request made durable.

use alloc::{string::String, vec::Vec};
use core::fmt;
use core::str::FromStr;

use crate::classify::LastError;
use crate::clock::{Millis, Random};

/// Global sequence number: the order entries were written in. Assigned by
/// the store, strictly increasing, never reused.
pub type Seq = u64;

/// An entry's identity: a UUID v4, also its default idempotency key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryId([u8; 16]);

impl EntryId {
    /// A fresh random UUID v4.
    pub fn random(rng: &mut dyn Random) -> Self {
        let mut b = rng.bytes16();
        b[6] = (b[6] & 0x0f) | 0x40; // version 4
        b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
        Self(b)
    }

    /// The raw 16 bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The hyphenated text (8-4-4-4-12 lower-case hex digits), as
    /// [`Display`](fmt::Display) writes it, built without `core::fmt`.
    pub fn hyphenated(&self) -> String {
        let mut out = String::with_capacity(36);
        for (i, part) in [0..4, 4..6, 6..8, 8..10, 10..16].into_iter().enumerate() {
            if i > 0 {
                out.push('-');
            }
            crate::json::push_hex(&mut out, &self.0[part]);
        }
        out
    }

    /// Builds an id from raw bytes.
    pub fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(bytes)
    }
}

impl fmt::Display for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hyphenated())
    }
}

impl fmt::Debug for EntryId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// The text is not a hyphenated UUID.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a UUID (expected 8-4-4-4-12 hex digits)")]
pub struct BadEntryId(pub String);

impl FromStr for EntryId {
    type Err = BadEntryId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadEntryId(s.chars().take(64).collect());
        let bytes = s.as_bytes();
        if bytes.len() != 36 {
            return Err(bad());
        }
        let mut out = [0u8; 16];
        let mut nibbles = 0;
        for (i, &c) in bytes.iter().enumerate() {
            if matches!(i, 8 | 13 | 18 | 23) {
                if c != b'-' {
                    return Err(bad());
                }
                continue;
            }
            let v = (c as char).to_digit(16).ok_or_else(bad)? as u8;
            out[nibbles / 2] |= if nibbles % 2 == 0 { v << 4 } else { v };
            nibbles += 1;
        }
        Ok(Self(out))
    }
}

/// A request as kept at rest: never a credential header (see
/// [`crate::headers`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRequest {
    /// HTTP method, upper case.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// Kept headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The body, byte for byte.
    pub body: Vec<u8>,
}

impl StoredRequest {
    /// Approximate size at rest, used for the per-entry limit.
    pub fn size_bytes(&self) -> usize {
        self.method.len()
            + self.url.len()
            + self.body.len()
            + self
                .headers
                .iter()
                .map(|(n, v)| n.len() + v.len())
                .sum::<usize>()
    }

    /// The value of header `name` (case-insensitive), if kept.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Where an entry stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryState {
    /// Waiting for its turn (and for `not_before`).
    Pending,
    /// Being sent; if the sender dies, the lease runs out and the entry is
    /// sent again with the same idempotency key.
    InFlight {
        /// When the lease expires.
        lease_until: Millis,
    },
    /// The server wanted a fresh token; waiting for one to arrive.
    AwaitingToken,
    /// Given up on: a dead letter, kept with its reason until retried or
    /// discarded.
    Dead {
        /// When it died.
        at: Millis,
    },
}

impl EntryState {
    /// The state as the app sees it at `now`: an entry is in flight only
    /// while its lease stands; one whose lease ran out is pending (its
    /// sender stopped before an answer, and it goes again in its turn,
    /// the lost lease counted as a failure when it is leased again).
    pub fn seen_at(self, now: Millis) -> Self {
        match self {
            EntryState::InFlight { lease_until } if lease_until <= now => EntryState::Pending,
            state => state,
        }
    }

    /// A short stable name (`pending`, `in-flight`, `awaiting-token`, `dead`).
    pub fn name(&self) -> &'static str {
        match self {
            EntryState::Pending => "pending",
            EntryState::InFlight { .. } => "in-flight",
            EntryState::AwaitingToken => "awaiting-token",
            EntryState::Dead { .. } => "dead",
        }
    }
}

/// The error code an entry gets when it is leased again after its sender
/// stopped before an answer.
pub const LEASE_EXPIRED: &str = "lease-expired";

/// The error code of a dead letter made from a stored record that could
/// not be read back (a "poison record"): see [`Entry::is_corrupt`].
pub const CORRUPT: &str = "corrupt";

/// A matched request, made ready to store and send: credentials removed,
/// idempotency carriers in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    /// The entry id it will have.
    pub id: EntryId,
    /// Route name.
    pub route: String,
    /// Target origin.
    pub origin: String,
    /// Lane key.
    pub lane: String,
    /// What will be stored (no credentials).
    pub request: StoredRequest,
    /// The idempotency key the request carries.
    pub idempotency_key: String,
    /// Whether sending needs a bearer token.
    pub needs_token: bool,
    /// Whether a `409` means "already delivered" on this route.
    pub conflict_is_delivered: bool,
    /// The bearer token the app attached, kept in memory only (never
    /// stored): the worker uses it as its last good token.
    pub bearer: Option<String>,
}

/// What to do with an entry after an attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Delivered: remove it.
    Delivered {
        /// HTTP status.
        status: u16,
        /// True when a `409` said the server already had it.
        duplicate: bool,
    },
    /// Try again later.
    Retry {
        /// Earliest next attempt.
        not_before: Millis,
        /// Server failures so far, this one included.
        failures: u32,
        /// What went wrong.
        error: LastError,
    },
    /// Wait for a fresh token, then go again no sooner than `not_before`.
    AwaitToken {
        /// `401`s in a row so far.
        auth_failures: u32,
        /// When this run of `401`s began.
        since: Millis,
        /// Earliest next attempt (a backoff between token refreshes).
        not_before: Millis,
        /// What went wrong.
        error: LastError,
    },
    /// Give up: a dead letter.
    Dead {
        /// Why.
        error: LastError,
    },
    /// Never sent: leased to follow its lane's previous entry in the same
    /// cycle ([`crate::flush`]), which did not get through (or the lease
    /// would have run out before an answer). It goes back as it was, the
    /// attempt its lease counted taken back.
    Unsent,
}

/// One outbound request made durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Identity (UUID v4).
    pub id: EntryId,
    /// Global write order; assigned by the store on enqueue.
    pub seq: Seq,
    /// Ordering key: entries of one lane are delivered strictly in `seq` order.
    pub lane: String,
    /// Name of the route that matched.
    pub route: String,
    /// Origin the request goes to (`https://api.mypurecloud.ie`); pacing and
    /// tokens are per origin.
    pub origin: String,
    /// The request itself, credential-free.
    pub request: StoredRequest,
    /// The idempotency key this entry carries (in a header or the body, per
    /// route), usually the id.
    pub idempotency_key: String,
    /// Whether a bearer token must be attached when sending.
    pub needs_token: bool,
    /// When it was written.
    pub created_at: Millis,
    /// Sends started so far.
    pub attempts: u32,
    /// Server-side failures (408, 5xx) so far; `max_attempts` counts these.
    /// Network failures do not count: an offline device is not the
    /// message's fault (they are bounded by `max_age`).
    pub failures: u32,
    /// 401 answers in a row, each with a fresh token.
    pub auth_failures: u32,
    /// When the current run of `401`s began (`None`: no run). A run
    /// becomes a dead letter only once it spans
    /// [`RetryPolicy::auth_window_ms`](crate::retry::RetryPolicy::auth_window_ms).
    pub auth_since: Option<Millis>,
    /// Not to be sent before this time.
    pub not_before: Millis,
    /// Where it stands.
    pub state: EntryState,
    /// What went wrong last, if anything.
    pub last_error: Option<LastError>,
}

/// What a settlement leaves of the stored entry (see [`Entry::settle`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// It stays in the queue, changed.
    Keep,
    /// It leaves the queue: delivered.
    Remove,
    /// It leaves the queue for the dead letters.
    Bury,
}

/// The state transitions of an entry. Every store applies these and
/// nothing else, so that stores only persist what the engine decided (the
/// conformance suite holds them to it). Counters read from storage may be
/// anything: they saturate, never overflow.
impl Entry {
    /// A new entry for a `prepared` request, queued at `now`: pending, or
    /// (after a `401`) parked for a token, with the error that queued it.
    /// Its `seq` is the store's to assign.
    pub fn queued(
        prepared: crate::entry::Prepared,
        now: Millis,
        awaiting_token: bool,
        error: Option<LastError>,
    ) -> Self {
        Self {
            id: prepared.id,
            seq: 0,
            lane: prepared.lane,
            route: prepared.route,
            origin: prepared.origin,
            request: prepared.request,
            idempotency_key: prepared.idempotency_key,
            needs_token: prepared.needs_token,
            created_at: now,
            attempts: 0,
            failures: 0,
            auth_failures: 0,
            auth_since: None,
            not_before: now,
            state: if awaiting_token {
                EntryState::AwaitingToken
            } else {
                EntryState::Pending
            },
            last_error: error,
        }
    }

    /// Leases the entry for a send until `until`, counting the attempt. A
    /// lease still standing means its sender stopped before an answer: that
    /// counts a server-side failure.
    pub fn lease(&mut self, until: Millis) {
        if matches!(self.state, EntryState::InFlight { .. }) {
            self.failures = self.failures.saturating_add(1);
            self.last_error = Some(LastError::new(
                LEASE_EXPIRED,
                "the sender stopped before an answer",
            ));
        }
        self.attempts = self.attempts.saturating_add(1);
        self.state = EntryState::InFlight { lease_until: until };
    }

    /// Parks the entry until a token for its origin is in hand.
    pub fn park_for_token(&mut self) {
        self.state = EntryState::AwaitingToken;
    }

    /// Makes the entry a dead letter at `now`, with its reason.
    pub fn bury(&mut self, error: LastError, now: Millis) {
        self.last_error = Some(error);
        self.state = EntryState::Dead { at: now };
    }

    /// Whether a settlement for lease number `attempt` still applies: the
    /// entry is in flight under that very lease (not re-leased, retried,
    /// cancelled or purged since).
    pub fn holds_lease(&self, attempt: u32) -> bool {
        self.attempts == attempt && matches!(self.state, EntryState::InFlight { .. })
    }

    /// Applies the engine's decision after an attempt.
    pub fn settle(&mut self, action: &Action, now: Millis) -> Fate {
        match action {
            Action::Delivered { .. } => Fate::Remove,
            Action::Retry {
                not_before,
                failures,
                error,
            } => {
                self.state = EntryState::Pending;
                self.not_before = *not_before;
                self.failures = *failures;
                self.auth_failures = 0;
                self.auth_since = None;
                self.last_error = Some(error.clone());
                Fate::Keep
            }
            Action::AwaitToken {
                auth_failures,
                since,
                not_before,
                error,
            } => {
                self.state = EntryState::AwaitingToken;
                self.auth_failures = *auth_failures;
                self.auth_since = Some(*since);
                self.not_before = *not_before;
                self.last_error = Some(error.clone());
                Fate::Keep
            }
            Action::Dead { error } => {
                self.bury(error.clone(), now);
                Fate::Bury
            }
            Action::Unsent => {
                self.state = EntryState::Pending;
                self.attempts = self.attempts.saturating_sub(1);
                Fate::Keep
            }
        }
    }

    /// A token arrived for its origin: the entry goes again, once its
    /// backoff after a `401` (if any) has passed.
    pub fn release_for_token(&mut self) {
        self.state = EntryState::Pending;
    }

    /// The network is back: a pending entry that backs off only because its
    /// last attempt got no answer becomes due at `now`. Returns whether it
    /// changed.
    pub fn hurry(&mut self, now: Millis) -> bool {
        let hurried = self.state == EntryState::Pending
            && self.not_before > now
            && self.last_attempt_unanswered();
        if hurried {
            self.not_before = now;
        }
        hurried
    }

    /// A dead letter goes back into the queue, due at `now`, with fresh
    /// counters and a fresh age.
    pub fn revive(&mut self, now: Millis) {
        self.state = EntryState::Pending;
        self.not_before = now;
        self.attempts = 0;
        self.failures = 0;
        self.auth_failures = 0;
        self.auth_since = None;
        self.created_at = now;
    }

    /// Whether this dead letter was salvaged from a stored record that could
    /// not be read back: what could be read of it is kept for inspection,
    /// but it cannot be sent, so it is never revived (only discarded).
    pub fn is_corrupt(&self) -> bool {
        self.last_error
            .as_ref()
            .is_some_and(|e| e.code.as_deref() == Some(CORRUPT))
    }

    /// Whether the entry can be sent at `now` (pending and due, or in flight
    /// with an expired lease).
    pub fn is_ready(&self, now: Millis) -> bool {
        match self.state {
            EntryState::Pending => self.not_before <= now,
            EntryState::InFlight { lease_until } => lease_until <= now,
            EntryState::AwaitingToken | EntryState::Dead { .. } => false,
        }
    }

    /// Whether the last attempt got no answer at all (network failure,
    /// timeout, or a sender that died mid-send): the server may or may not
    /// have the message.
    pub fn last_attempt_unanswered(&self) -> bool {
        self.last_error.as_ref().is_some_and(|e| {
            e.status.is_none()
                && matches!(
                    e.code.as_deref(),
                    Some(LEASE_EXPIRED | "network" | "timeout")
                )
        })
    }

    /// The entry's view for scheduling (everything but the request).
    pub fn head(&self) -> Head {
        Head {
            seq: self.seq,
            id: self.id,
            lane: self.lane.clone(),
            route: self.route.clone(),
            origin: self.origin.clone(),
            corrupt: false,
            needs_token: self.needs_token,
            created_at: self.created_at,
            attempts: self.attempts,
            failures: self.failures,
            not_before: self.not_before,
            state: self.state,
        }
    }
}

/// What the scheduler needs to know of a lane's first entry: the entry
/// without its request, so that planning never copies bodies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// See [`Entry::seq`].
    pub seq: Seq,
    /// See [`Entry::id`].
    pub id: EntryId,
    /// See [`Entry::lane`].
    pub lane: String,
    /// See [`Entry::route`].
    pub route: String,
    /// See [`Entry::origin`].
    pub origin: String,
    /// The stored record could not be read back: what could be read of it
    /// is here, and the plan makes it a dead letter ([`CORRUPT`]).
    pub corrupt: bool,
    /// See [`Entry::needs_token`].
    pub needs_token: bool,
    /// See [`Entry::created_at`].
    pub created_at: Millis,
    /// See [`Entry::attempts`].
    pub attempts: u32,
    /// See [`Entry::failures`].
    pub failures: u32,
    /// See [`Entry::not_before`].
    pub not_before: Millis,
    /// See [`Entry::state`].
    pub state: EntryState,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SplitMix64;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    #[test]
    fn an_entry_is_seen_in_flight_only_while_its_lease_stands() {
        let leased = EntryState::InFlight { lease_until: 2_000 };
        assert_eq!(leased.seen_at(1_999), leased);
        assert_eq!(
            leased.seen_at(2_000),
            EntryState::Pending,
            "its sender died"
        );
        let dead = EntryState::Dead { at: 5 };
        assert_eq!(dead.seen_at(9_999), dead);
        assert_eq!(
            EntryState::AwaitingToken.seen_at(0),
            EntryState::AwaitingToken
        );
    }

    #[test]
    fn ids_are_written_as_8_4_4_4_12_hex_digits() {
        let id = EntryId::from_bytes(core::array::from_fn(|i| (i as u8) * 17));
        assert_eq!(id.hyphenated(), "00112233-4455-6677-8899-aabbccddeeff");
    }

    #[test]
    fn ids_are_v4_and_round_trip_through_text() {
        let mut rng = SplitMix64::new(1);
        for _ in 0..100 {
            let id = EntryId::random(&mut rng);
            let text = id.to_string();
            assert_eq!(text, id.hyphenated());
            assert_eq!(text.len(), 36);
            assert_eq!(&text[14..15], "4");
            assert!(matches!(&text[19..20], "8" | "9" | "a" | "b"));
            assert_eq!(text.parse::<EntryId>(), Ok(id));
        }
    }

    #[test]
    fn bad_ids_are_refused() {
        for bad in [
            "",
            "xyz",
            "123e4567-e89b-12d3-a456-42661417400",
            "123e4567+e89b-12d3-a456-426614174000",
            "g23e4567-e89b-12d3-a456-426614174000",
        ] {
            assert!(bad.parse::<EntryId>().is_err(), "{bad}");
        }
        assert!(
            "123E4567-E89B-12D3-A456-426614174000"
                .parse::<EntryId>()
                .is_ok()
        );
    }
}
