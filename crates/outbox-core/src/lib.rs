//! The Outbox engine, free of I/O: every decision, none of the doing.
//!
//! Outbox makes every outbound Genesys Cloud message durable before it is
//! sent, then delivers it in order, retrying with backoff, pacing under the
//! rate limit, and never dropping anything silently. This crate holds every
//! rule; the drivers only read, write, send and wait. It has no `web-sys`,
//! no `async` code and no runtime (a test, `tests/layers.rs`, checks), and
//! runs the same under a virtual clock in tests as in a service worker.
//! It is `no_std` (it needs `alloc` only), so that the browser's wasm
//! module built on it (`outbox-wasm`) carries none of `std`'s panic and
//! I/O machinery.
//!
//! # Layers
//!
//! The style is sans-I/O, after `quinn-proto` (whose async driver is the
//! separate `quinn` crate; ours is `outbox-driver`). The modules read in
//! layers, each using only those before it (`tests/layers.rs` fails on an
//! import circle):
//!
//! 1. **Basic types**: [`clock`], [`json`], [`url`], [`headers`],
//!    [`retry_after`], [`request`] (a request as the app made it and as it
//!    is sent), [`classify`] (what an answer means, [`LastError`](classify::LastError)),
//!    [`entry`] (the entry and every transition of it), [`event`],
//!    [`hold`], [`throttle`], [`pacer`] (the persisted pacing state),
//!    [`genesys`], [`route`], [`config`], [`guest`], [`report`],
//!    [`token`] (the bookkeeping of token asks).
//! 2. **Decisions**, pure functions: [`retry`], [`intercept`],
//!    [`scheduler`], [`verdict`]; and the queue's rules as transactions a
//!    store runs ([`queue`]; a flush cycle's, [`cycle`]), over the store
//!    protocol ([`store`]: the reads and writes a store must answer and
//!    make).
//! 3. **Machines**: a [`Flush`](flush::Flush) and the front doors of
//!    [`door`], polled for the next piece of I/O ([`io::Io`]) and fed the
//!    reply, which only the ask can make ([`io`]).
//! 4. **Drivers** live elsewhere: `outbox-driver` (the async Rust driver,
//!    a memory store, the conformance suite and the simulator), and the
//!    browser crates (IndexedDB, `fetch`, the service worker, the page).
//!
//! # Entries, lanes and order
//!
//! A request a [`Route`](route::Route) matches becomes an
//! [`Entry`](entry::Entry): a fresh id (also its idempotency key unless
//! the request carries one), a global `seq`, a *lane* (the ordering key,
//! usually the conversation), the request without credentials. Entries of
//! one lane go out strictly one at a time, in `seq` order: a lane's head
//! blocks its own lane and no other. An entry is in one of four states:
//!
//! ```text
//!             enqueue                       claim (lease)
//!   request ─────────▶ pending ─────────────────────────▶ in-flight
//!                        ▲  ▲                                 │ settle:
//!                        │  └──── retry (backoff, not_before) ┤ 2xx / 409 on a carrier route → deleted (sent)
//!      token arrives     │                                    │ 401 → awaiting-token
//!  awaiting-token ───────┘◀───────────────────────────────────┤ 4xx, limits → dead
//!                                                             │ lease runs out (sender died) → sent again
//!   dead ──revive──▶ pending      dead ──discard──▶ gone      ▼
//! ```
//!
//! A dead letter keeps its request and its last error until the app
//! revives or discards it; nothing leaves the queue without an event. Its
//! lane **holds** meanwhile ([`hold`]): later entries wait, visibly, so
//! that a conversation never arrives with a hole — unless the route says
//! `onDead: skip`. Every transition above is written once, in
//! `impl Entry`; every step around it (which entries a step touches, what
//! it checks, what it writes) once, in [`queue`]; the stores only persist.
//!
//! # The two front doors
//!
//! * **Intercept** (the service worker): [`RouteTable::prepare`](route::RouteTable::prepare),
//!   then [`door::Intercept`] — a lane with a backlog or held behind a
//!   dead letter, or an origin paused by a rate limit, queues at once
//!   (`202`); otherwise the driver forwards the request live
//!   ([`OutgoingRequest::live`](request::OutgoingRequest::live)), and
//!   [`door::Forward`] passes `2xx` and real `4xx` answers through and
//!   queues the rest (network failure, timeout, `408`, `429`, `5xx`; `401`
//!   queued awaiting a token). Whether a request is Outbox's at all is
//!   [`RouteTable::is_candidate`](route::RouteTable::is_candidate), which
//!   the service worker also asks before its engine has started.
//! * **Write-through** (the page): [`door::Write`] makes the request
//!   durable at once; a flush delivers it.
//!
//! Enqueue is durable before anyone is told "queued".
//!
//! # The flush
//!
//! A flush ([`flush`]) runs short cycles until nothing is ready or its
//! budget is spent (browsers kill long-running workers), and says when to
//! run again. One cycle is one store step — settle the last cycle's
//! answers and claim the next heads, in one transaction
//! ([`cycle::Cycle`]) — then the sends, outside any transaction, then the
//! verdicts ([`verdict`]) for the next step.
//!
//! # Crash safety and duplicates
//!
//! A sender that dies leaves leases behind; when they run out the entries
//! are claimed again and sent with the same idempotency key, counted as a
//! failure. A flusher that holds the origin-wide flush lock knows no other
//! sender lives and takes standing leases over at once
//! ([`LeaseTerms::steal`](queue::LeaseTerms::steal)). Delivery is therefore
//! at-least-once everywhere and exactly-once where the server honours the
//! key (a carrier route with idempotency on); a `409` on such a route
//! counts as delivered.
//!
//! # Tokens
//!
//! No token or secret is ever stored. An entry that needs a token and has
//! none waits in awaiting-token; the driver's token source is asked (a
//! same-origin token URL, or the page), and a token's arrival
//! ([`door::Arrival`]) releases the origin's parked entries. A `401` marks
//! the token rejected and parks the entry until a fresh token *and* a
//! backoff; a run of `401`s becomes a dead letter only with at least
//! [`max_auth_failures`](retry::RetryPolicy::max_auth_failures) answers
//! spread over at least
//! [`auth_window_ms`](retry::RetryPolicy::auth_window_ms), so a token blip
//! is not fatal.
//!
//! # Example: a store's side of a transaction
//!
//! A store answers a transaction's reads and carries out its writes; the
//! rules are the transaction's. Here an enqueue, driven by hand:
//!
//! ```
//! use outbox_core::entry::{Entry, EntryId};
//! use outbox_core::queue::{Enqueue, NoHooks, QueueLimits, Transaction};
//! use outbox_core::request::IncomingRequest;
//! use outbox_core::route::{RouteTable, Routing};
//! use outbox_core::store::{Read, Step, Write};
//!
//! let request = IncomingRequest {
//!     method: "POST".into(),
//!     url: "https://api.mypurecloud.ie/api/v2/conversations/messages/c1/communications/m1/messages".into(),
//!     headers: vec![("content-type".into(), "application/json".into())],
//!     body: br#"{"textBody":"hello"}"#.to_vec(),
//! };
//! let Routing::Matched(prepared) = RouteTable::genesys().prepare(&request, EntryId::from_bytes([7; 16])) else {
//!     panic!("a Genesys route")
//! };
//! let mut tx = Enqueue::new(Entry::queued(*prepared, 1_000, false, None), QueueLimits::default());
//! let Step::Read(reads) = tx.poll(&mut NoHooks) else { panic!("it reads first") };
//! let found = reads.into_iter().map(|read| match read {
//!     Read::Full(ask) => ask.reply(false),       // not full
//!     Read::Taken(ask) => ask.reply(false),      // the id is new
//!     Read::LastSeq(ask) => ask.reply(41),       // the last seq given
//!     other => panic!("{other:?}"),
//! }).collect();
//! tx.feed(found);
//! let Step::Write(writes) = tx.poll(&mut NoHooks) else { panic!("then writes") };
//! assert!(matches!(&writes[..], [Write::Add(entry)] if entry.seq == 42));
//! assert!(matches!(tx.poll(&mut NoHooks), Step::Commit));
//! assert_eq!(tx.finish().unwrap().lane, "c1");
//! ```

#![no_std]

extern crate alloc;
// The unit tests run on `std`.
#[cfg(test)]
extern crate std;

pub mod classify;
pub mod clock;
pub mod config;
pub mod cycle;
pub mod door;
pub mod entry;
pub mod event;
pub mod flush;
pub mod genesys;
pub mod guest;
pub mod headers;
pub mod hold;
pub mod intercept;
pub mod io;
pub mod json;
pub mod pacer;
pub mod queue;
pub mod report;
pub mod request;
pub mod retry;
pub mod retry_after;
pub mod route;
pub mod scheduler;
pub mod store;
pub mod throttle;
pub mod token;
pub mod url;
pub mod verdict;

/// The names most programs need.
pub mod prelude {
    pub use crate::classify::{FailureKind, LastError, Outcome, Response, TransportError};
    pub use crate::clock::{Clock, ManualClock, Millis, Random, SplitMix64};
    pub use crate::config::Config;
    pub use crate::door::Forwarded;
    pub use crate::entry::{Entry, EntryId, EntryState, Prepared, Seq};
    pub use crate::event::{Event, EventLog, EventSink, NoEvents};
    pub use crate::intercept::BeforeForward;
    pub use crate::queue::{EnqueueError, QueueLimits, Stats};
    pub use crate::report::FlushReport;
    pub use crate::request::{IncomingRequest, OutgoingRequest};
    pub use crate::route::{RouteTable, Routing};
}

/// The crate's README, whose example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
