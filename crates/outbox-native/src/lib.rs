//! Outbox for backends: the native host.
//!
//! The browser runs Outbox's core in a service worker over IndexedDB; a
//! server runs the *same* core here, over SQLite: the same routes, lanes,
//! leases, idempotency keys, retry, pacing, herd throttle, held lanes and
//! dead letters, because every one of those is a decision of
//! `outbox-core`, and this crate decides none of them. It only does I/O:
//!
//! * [`host`]: the engine as an actor on its own thread, and the [`Host`]
//!   handle every other thread uses (the pass-through and API doors, the
//!   admin calls, events, metrics, shutdown).
//! * [`http`]: the transport, `reqwest` with `rustls`; [`lease`]: how it
//!   lets no request leave through a lease that ran out (the deadline core
//!   gives a fenced send).
//! * [`tokens`]: the OAuth client-credentials token source (the secret
//!   from the environment or a file, never logged), refreshed before
//!   expiry and after a `401`; or callers' bearers, as the browser keeps
//!   them.
//! * [`metrics`]: counters from core's events and latencies timed at the
//!   doors, in the Prometheus text format.
//! * [`view`]: entries and stats as JSON.
//! * [`clock`]: the wall clock and a random seed.
//!
//! The `outbox` binary (`crates/outbox-server`, `outbox serve`) puts an
//! HTTP server in front of a [`Host`] on an
//! [`outbox_sqlite::SqliteStore`]; a Rust backend can embed a [`Host`]
//! directly:
//!
//! ```no_run
//! use outbox_core::config::OutboxConfig;
//! use outbox_native::{Host, HostOptions};
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = OutboxConfig::parse(r#"{"region":"mypurecloud.ie"}"#, "")?;
//! let store = outbox_sqlite::SqliteStore::open("outbox.db")?;
//! let host = Host::start(
//!     HostOptions { config, credentials: None, exclusive: true, seed: outbox_native::clock::random_seed() },
//!     store,
//! )?;
//! println!("{:?}", host.stats().await?);
//! host.shutdown().await;
//! # Ok(()) }
//! ```

pub mod clock;
pub mod host;
pub mod http;
pub mod lease;
pub mod metrics;
pub mod tokens;
pub mod view;

pub use host::{Answer, Host, HostError, HostOptions};
