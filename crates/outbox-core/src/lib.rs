//! The Outbox engine, free of I/O.
//!
//! Outbox makes every outbound Genesys Cloud message durable before it is
//! sent, then delivers it in order, retrying with backoff, pacing under the
//! rate limit, and never dropping anything silently. This crate holds every
//! decision; the browser crate only does I/O (IndexedDB, `fetch`, timers).
//! It has no `web-sys` and no async runtime, and runs the same under a
//! virtual clock in tests as in a service worker.
//!
//! The style is sans-I/O: the [`Engine`](engine::Engine) is generic over a
//! [`Store`](store::Store), a [`Transport`](transport::Transport), a
//! [`Clock`](clock::Clock), a [`TokenSource`](token::TokenSource) and an
//! [`EventSink`](event::EventSink). Everything it does is a synchronous
//! machine — a [`Flush`](flush::Flush), or a front door of [`door`] —
//! polled for the next piece of I/O ([`io::Io`]) and fed the results; the
//! engine's one driver loop does that I/O for every machine. The
//! decisions the machines ask for are pure functions ([`scheduler`],
//! [`verdict`], [`intercept`], [`classify`], [`retry`], [`pacer`]).
//!
//! # Example
//!
//! ```
//! use outbox_core::prelude::*;
//! use outbox_core::sim::{SimServer, SimTransport};
//!
//! let clock = ManualClock::new(1_700_000_000_000);
//! let server = SimServer::new(clock.clone(), 1);
//! let mut config = Config::default();
//! config.routes.add_origin(SimServer::ORIGIN).unwrap();
//! let tokens = MemoryTokens::new();
//! tokens.offer(SimServer::ORIGIN, "t1");
//! let events = EventLog::default();
//! let engine = Engine::new(config, MemoryStore::new(), SimTransport::new(server.clone()),
//!                          clock.clone(), tokens, events.clone(), 42);
//!
//! let request = IncomingRequest {
//!     method: "POST".into(),
//!     url: format!("{}/api/v2/conversations/messages/c1/communications/m1/messages", SimServer::ORIGIN),
//!     headers: vec![("content-type".into(), "application/json".into())],
//!     body: br#"{"textBody":"hello"}"#.to_vec(),
//! };
//! futures_executor::block_on(async {
//!     let entry = engine.submit(&request).await.unwrap();   // durable first
//!     let report = engine.flush().await.unwrap();           // then delivered
//!     assert_eq!(report.delivered, 1);
//!     assert_eq!(server.delivered_lane("c1"), ["hello"]);   // no carrier on this route:
//!     assert!(engine.stats().await.unwrap().queued() == 0);  // the sim keys it by text
//!     let _ = entry;
//! });
//! assert_eq!(events.kinds(), ["queued", "sending", "sent"]);
//! ```

pub mod classify;
pub mod clock;
pub mod config;
pub mod conformance;
pub mod door;
pub mod engine;
pub mod entry;
pub mod event;
pub mod flush;
pub mod genesys;
pub mod guest;
pub mod headers;
pub mod hold;
pub mod intercept;
pub mod io;
pub mod join;
pub mod json;
pub mod memory;
pub mod pacer;
pub mod report;
pub mod request;
pub mod retry;
pub mod retry_after;
pub mod route;
pub mod scheduler;
pub mod sim;
pub mod store;
pub mod throttle;
pub mod token;
pub mod transport;
pub mod url;
pub mod verdict;

/// The names most programs need.
pub mod prelude {
    pub use crate::classify::LastError;
    pub use crate::classify::{FailureKind, Outcome, Response, TransportError};
    pub use crate::clock::{Clock, ManualClock, Millis, Random, SplitMix64};
    pub use crate::config::Config;
    pub use crate::door::Forwarded;
    pub use crate::engine::{Engine, SubmitError};
    pub use crate::entry::Prepared;
    pub use crate::entry::{Entry, EntryId, EntryState, Seq};
    pub use crate::event::{Event, EventLog, EventSink, NoEvents};
    pub use crate::intercept::BeforeForward;
    pub use crate::memory::MemoryStore;
    pub use crate::report::FlushReport;
    pub use crate::request::{IncomingRequest, OutgoingRequest};
    pub use crate::route::{RouteTable, Routing};
    pub use crate::store::{EnqueueError, QueueLimits, Stats, Store};
    pub use crate::token::{MemoryTokens, TokenSource};
    pub use crate::transport::Transport;
}

/// The crate's README, whose example runs as a doc test.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
