//! Outbox in the browser: the drivers the service worker (`outbox-sw`) and
//! the page API (`outbox-page`) share.
//!
//! `IdbStore` implements [`outbox_driver::store::Store`] on raw `web-sys`
//! IndexedDB: it reads and writes what core's transactions ask for, and
//! decides nothing; `fetch::FetchTransport` sends with `fetch` and a timeout;
//! `tokens::BrowserTokens` keeps tokens in memory only (token URL or page
//! protocol); `events::BroadcastEvents` posts events on a
//! `BroadcastChannel`; `locks` takes the origin-wide flush lock;
//! `flusher::Flusher` runs the engine's flush with timers; `config` reads
//! the browser configuration. Everything works the same in a page, a
//! dedicated worker and a service worker (it uses the global object).
//!
//! Everything that touches JavaScript only exists on `wasm32`; on a native
//! host the crate compiles to the typed errors alone (plus, in tests, the
//! record codec), so that native `cargo build`/`clippy`/`test` over the
//! whole workspace keep working.
//!
//! # Layout
//!
//! * [`error`]: [`IdbError`] (every failure, with the DOM exception's name
//!   and message) and [`CodecError`] (a stored value that does not decode).
//! * `idb` (wasm only): a small IndexedDB layer — versioned open with
//!   migrations, request and transaction futures, `strict` durability.
//! * `codec`: entries to and from plain JS objects (written over two small
//!   traits, so that it also builds and is fuzzed natively, in tests).
//! * `store` (wasm only): `IdbStore` and its transaction `IdbTx` (core's
//!   reads answered, its writes made), and the schema (documented there).
//! * [`protocol`]: the page ↔ service worker messages, one enum and one
//!   codec.
//! * `config`, `fetch`, `tokens`, `events`, `locks`, `flusher`, `view`,
//!   `js` (wasm only): the rest of the browser drivers.
//!
//! # Testing
//!
//! The store is tested in headless Chromium with `wasm-bindgen-test`: the
//! codec and IndexedDB-layer unit tests and `tests/idb_page.rs` in a page,
//! `tests/idb_worker.rs` (the store conformance suite) inside a real
//! service worker. One command runs all three binaries, one after the
//! other (from the repository root):
//!
//! ```text
//! PATH=$PWD/.tools/cargo/bin:$PATH CHROMEDRIVER=/usr/bin/chromedriver \
//!   WASM_BINDGEN_USE_NO_MODULE=1 \
//!   cargo test -p genesys-outbox-web --target wasm32-unknown-unknown
//! ```
//!
//! `webdriver.json` in this crate's folder gives Chromium its flags
//! (`--no-sandbox` for root, no background networking). Natively, the error
//! tests and the codec's round-trip and fuzz tests run.
//!
//! # Example (wasm)
//!
//! ```ignore
//! use outbox_core::queue::QueueLimits;
//! use outbox_driver::store::Store;
//! use outbox_web::IdbStore;
//!
//! let store = IdbStore::open(outbox_web::DEFAULT_DATABASE).await?;
//! let entry = store.enqueue(entry, &QueueLimits::default()).await?; // durable now
//! ```

pub mod error;

// Natively only the protocol uses the record traits (xtask reads its
// message types); the rest of the codec serves the wasm store and the tests.
#[cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]
mod codec;
#[cfg(target_arch = "wasm32")]
mod idb;
pub mod protocol;
#[cfg(target_arch = "wasm32")]
mod store;

#[cfg(target_arch = "wasm32")]
pub mod config;
#[cfg(target_arch = "wasm32")]
pub mod events;
#[cfg(target_arch = "wasm32")]
pub mod fetch;
#[cfg(target_arch = "wasm32")]
pub mod flusher;
#[cfg(target_arch = "wasm32")]
pub mod js;
#[cfg(target_arch = "wasm32")]
pub mod locks;
#[cfg(target_arch = "wasm32")]
pub mod tokens;
#[cfg(target_arch = "wasm32")]
pub mod view;

pub use error::{CodecError, IdbError};
#[cfg(target_arch = "wasm32")]
pub use store::{IdbStore, IdbTx};

/// The engine as the browser runs it.
#[cfg(target_arch = "wasm32")]
pub type WebEngine = outbox_driver::engine::Engine<
    IdbStore,
    fetch::BrowserTransport,
    js::JsClock,
    tokens::BrowserTokens,
    events::BroadcastEvents,
>;

/// Opens the store named in `config` and builds the engine on it.
#[cfg(target_arch = "wasm32")]
pub async fn open_engine(
    config: &config::WebConfig,
    transport: fetch::BrowserTransport,
    tokens: tokens::BrowserTokens,
    events: events::BroadcastEvents,
) -> Result<WebEngine, IdbError> {
    let store = IdbStore::open(&config.database).await?;
    Ok(outbox_driver::engine::Engine::new(
        config.core.clone(),
        store,
        transport,
        js::JsClock,
        tokens,
        events,
        js::random_seed(),
    ))
}

/// Takes a fresh token from the app (a page's `setToken`, or a page's
/// [`protocol::Message::TokenUpdated`] in the worker): kept in memory for
/// `origin`, or for every configured origin when `None`, and the entries
/// that waited for it released (their backoff, if any, still applies).
#[cfg(target_arch = "wasm32")]
pub async fn take_token(
    engine: &WebEngine,
    tokens: &tokens::BrowserTokens,
    token: &str,
    origin: Option<&str>,
    expires_in: Option<f64>,
) -> Result<(), IdbError> {
    let origins = match origin {
        Some(o) => vec![o.to_owned()],
        None => engine.config().routes.origins().to_vec(),
    };
    for origin in &origins {
        tokens.install(origin, token, expires_in);
        engine.token_updated(origin, None).await?;
    }
    Ok(())
}

/// The database name `IdbStore` uses unless told otherwise.
pub const DEFAULT_DATABASE: &str = "outbox";

/// The schema version this code writes and understands. A database at a
/// higher version (written by newer code) is refused with
/// [`IdbError::NewerVersion`] and left untouched.
pub const SCHEMA_VERSION: u32 = 1;

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
