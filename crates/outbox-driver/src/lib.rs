//! The Outbox engine's async driver: [`Engine`](engine::Engine) runs the
//! synchronous machines of `outbox-core` over a [`Store`](store::Store), a
//! [`Transport`](transport::Transport), a
//! [`Clock`](outbox_core::clock::Clock), a
//! [`TokenSource`](token::TokenSource) and an
//! [`EventSink`](outbox_core::event::EventSink).
//!
//! `outbox-core` is to this crate what `quinn-proto` is to `quinn`: it
//! holds every decision and no I/O; this crate holds the async traits and
//! the one loop that performs what the machines ask for, and decides
//! nothing. It needs no runtime and no `Send` (the browser crates run it
//! as promises; the tests, the simulator and the herd benchmark with
//! `futures-executor` or by hand). A store implements only
//! [`Store::begin`](store::Store::begin) and a
//! [`StoreTx`](store::StoreTx) (reads, writes, commit); every operation is
//! one of core's transactions ([`outbox_core::queue`]).
//!
//! * [`engine`]: [`Engine`](engine::Engine), the driver loop.
//! * [`store`], [`transport`], [`token`]: what the engine drives.
//! * [`memory`]: [`MemoryStore`](memory::MemoryStore), a store in memory.
//! * [`join`]: the two combinators the loop and the browser transport use.
//! * With the `testing` feature: `conformance` (the suite every store
//!   passes) and `sim` (a simulated Genesys server, its transport and
//!   tokens, and a single-threaded executor). The crate's tests, the
//!   stores' test suites and the benchmarks enable it; no browser bundle
//!   does.
//!
//! # Example
//!
//! ```
//! use outbox_driver::prelude::*;
//! use outbox_driver::sim::{SimServer, SimTransport};
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

#[cfg(feature = "testing")]
pub mod conformance;
pub mod engine;
pub mod join;
pub mod memory;
#[cfg(feature = "testing")]
pub mod sim;
pub mod store;
pub mod token;
pub mod transport;

/// The names most programs need.
pub mod prelude {
    pub use crate::engine::{Engine, SubmitError};
    pub use crate::memory::MemoryStore;
    pub use crate::store::Store;
    pub use crate::token::{MemoryTokens, TokenSource};
    pub use crate::transport::Transport;
    pub use outbox_core::prelude::*;
}
