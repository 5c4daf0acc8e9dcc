//! Outbox in the browser: the durable IndexedDB store.
//!
//! This crate holds the browser half of Outbox. For now that is
//! `IdbStore`, an implementation of [`outbox_core::store::Store`] on raw
//! `web-sys` IndexedDB; the service-worker and page front doors come on top.
//! It works the same in a page, a dedicated worker and a service worker
//! (it finds `indexedDB` on the global object).
//!
//! Everything that touches JavaScript only exists on `wasm32`; on a native
//! host the crate compiles to the typed errors alone, so that native
//! `cargo build`/`clippy`/`test` over the whole workspace keep working.
//!
//! # Layout
//!
//! * [`error`]: [`IdbError`] (every failure, with the DOM exception's name
//!   and message) and [`CodecError`] (a stored value that does not decode).
//! * `idb` (wasm only): a small IndexedDB layer — versioned open with
//!   migrations, request and transaction futures, `strict` durability.
//! * `codec` (wasm only): entries to and from plain JS objects.
//! * `store` (wasm only): `IdbStore` itself and the schema
//!   (documented there).
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
//!   cargo test -p outbox-web --target wasm32-unknown-unknown
//! ```
//!
//! `webdriver.json` in this crate's folder gives Chromium its flags
//! (`--no-sandbox` for root, no background networking). Natively, only the
//! error tests run.
//!
//! # Example (wasm)
//!
//! ```ignore
//! use outbox_core::store::{QueueLimits, Store};
//! use outbox_web::IdbStore;
//!
//! let store = IdbStore::open(outbox_web::DEFAULT_DATABASE).await?;
//! let entry = store.enqueue(entry, &QueueLimits::default()).await?; // durable now
//! ```

pub mod error;

#[cfg(target_arch = "wasm32")]
mod codec;
#[cfg(target_arch = "wasm32")]
mod idb;
#[cfg(target_arch = "wasm32")]
mod store;

pub use error::{CodecError, IdbError};
#[cfg(target_arch = "wasm32")]
pub use store::IdbStore;

/// The database name `IdbStore` uses unless told otherwise.
pub const DEFAULT_DATABASE: &str = "outbox";

/// The schema version this code writes and understands. A database at a
/// higher version (written by newer code) is refused with
/// [`IdbError::NewerVersion`] and left untouched.
pub const SCHEMA_VERSION: u32 = 1;

#[cfg(all(test, target_arch = "wasm32"))]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);
