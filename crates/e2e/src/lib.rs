//! End-to-end harness: a Genesys Cloud emulator and the demo server on
//! loopback, and headless Chromium driven over the DevTools protocol.
//!
//! The tests need the browser bundle (`cargo xtask build`, which
//! `cargo xtask test` runs first) and Chromium (`CHROME`, default
//! `/usr/bin/chromium`). Run them one at a time: each starts its own
//! browser.

pub mod cdp;
pub mod console;
pub mod stack;

pub use cdp::{Browser, CdpError, Page};
pub use stack::Stack;
