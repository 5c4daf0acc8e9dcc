//! Outbox's benchmarks, measured side by side in one run and written to
//! `BENCHMARKS.md` by `cargo xtask bench`:
//!
//! 1. [`herd`] — N clients through an outage against one server with a
//!    global capacity and per-token limits, in virtual time, on the real
//!    engine, against the seed tutorials' strategies and a Workbox-like
//!    replay;
//! 2. [`browser`] — headless Chromium and the emulator: Outbox's service
//!    worker vs a Workbox background-sync worker vs no worker;
//! 3. the engine micro-benchmarks (Criterion, `benches/engine.rs`);
//! 4. memory while the worker drains a large queue (part of [`browser`]);
//! 5. [`native`] — `outbox serve` on SQLite: durable enqueues against the
//!    disk's bare commit loop, memory with 100,000 queued, delivery into a
//!    fast sink.
//!
//! [`report`] turns the results into `BENCHMARKS.md` and an SVG plot.
//! Speed and memory are reported as ratios against a baseline measured in
//! the same run; nothing here is a timed assertion.

pub mod browser;
pub mod cpu;
pub mod gzip;
pub mod herd;
pub mod native;
pub mod report;
pub mod svg;
