//! The Outbox service worker engine.
//!
//! The worker module (`web/outbox-worker.js`, and the shim `web/sw.js`
//! around it) registers the worker's listeners when the script is first
//! evaluated, decides at once whether a request is Outbox's (as core's
//! `RouteTable::is_candidate` does), and hands each event it owns to an
//! [`OutboxWorker`]. Intercepted requests follow the design's decisions:
//! passed through while healthy, queued durably (`202 Queued`) when the
//! network or the server fails or the lane has a backlog, and replayed in
//! order by the flusher. The engine is `outbox-driver`'s, over the browser
//! drivers of `outbox-web`.
//!
//! ```js
//! importScripts('./outbox_sw.js');
//! const worker = await wasm_bindgen.OutboxWorker.start(configJson);
//! self.addEventListener('fetch', e => {
//!   if (owns(e.request)) e.respondWith(worker.respond(e.request)); // see outbox-worker.js
//! });
//! ```
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

#[cfg(target_arch = "wasm32")]
mod worker;

#[cfg(target_arch = "wasm32")]
pub use worker::OutboxWorker;
