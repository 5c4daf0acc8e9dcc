//! Outbox's one browser module: `outbox-core`'s machines and decisions
//! behind a narrow boundary, for the TypeScript host of the page and the
//! service worker (`web/host/`).
//!
//! The module has no `async` code, no `web-sys` and no wasm-bindgen glue:
//! it is `no_std`, its exports are plain functions over linear memory
//! (`abi.rs`, built with the `module` feature by `cargo xtask build`), and
//! the same file serves the page and the worker. Everything it decides is
//! core's; this crate only sequences core's machines for the host and
//! translates:
//!
//! * [`frame`]: what crosses the boundary — frames of JSON texts, plain
//!   texts and bytes (bodies never inside JSON).
//! * [`host`]: the module's state and every call: engines (a configuration
//!   and its tokens), jobs (a flush, an intercepted request, a send, …)
//!   driven until they need the host, one ask at a time.
//! * [`idb`]: a core transaction as IndexedDB operations, the schema, and
//!   how each read is made cheap; [`record`]: the stored record's codec
//!   (the layout the Rust store wrote: an existing database opens as it
//!   is).
//! * [`tokens`]: the tokens in hand, in memory only; [`view`]: entries,
//!   stats and reports as the page API gives them.
//!
//! The host drives it like this (a flush, in `web/host/engine.ts`):
//!
//! ```text
//!   job = flush(engine, exclusive)
//!   loop match step(job, now) {
//!     STORE  → open an IndexedDB transaction; loop tx(job) { OPS → issue, await the reads;
//!              COMMIT → issue, commit }; tx_end(job)
//!     TOKENS → ask the token source; reply(job)
//!     SEND   → fetch each request at once; reply(job)
//!     DONE   → the report
//!   }
//! ```

#![no_std]

extern crate alloc;
// Everywhere but the browser module itself, `std` gives the allocator and
// the panic handler (the test crates, native builds).
#[cfg(not(all(target_arch = "wasm32", feature = "module")))]
extern crate std;

#[cfg(all(target_arch = "wasm32", feature = "module"))]
mod abi;
pub mod error;
pub mod frame;
pub mod host;
pub mod idb;
pub mod record;
pub mod tokens;
pub mod view;
