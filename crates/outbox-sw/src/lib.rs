//! The Outbox service worker engine.
//!
//! The JavaScript shim (`web/sw.js`) registers the worker's listeners when
//! the script is first evaluated and hands each event to an
//! [`OutboxWorker`]. Intercepted requests follow the design's decisions:
//! passed through while healthy, queued durably (`202 Queued`) when the
//! network or the server fails or the lane has a backlog, and replayed in
//! order by the flusher.
//!
//! ```js
//! importScripts('./outbox_sw.js');
//! const worker = await wasm_bindgen.OutboxWorker.start(configJson);
//! self.addEventListener('fetch', e => {
//!   if (worker.isCandidate(e.request.method, e.request.url)) e.respondWith(worker.respond(e.request));
//! });
//! ```
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use worker::OutboxWorker;
