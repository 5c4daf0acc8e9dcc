//! End-to-end harness: a Genesys Cloud emulator and the demo server on
//! loopback, and a real browser — headless Chromium (DevTools protocol),
//! headless Firefox (WebDriver BiDi) or WebKitGTK under Xvfb (classic
//! WebDriver) — chosen by `OUTBOX_BROWSER` (`chromium`, the default,
//! `firefox` or `webkit`).
//!
//! The tests need the browser bundle (`cargo xtask build`, which
//! `cargo xtask test` runs first) and the engine (`cargo xtask e2e
//! --browser …` installs and runs them). Run them one at a time: each
//! starts its own browser. A scenario an engine cannot run reports itself
//! skipped ([`skip_without`]).

pub mod bidi;
pub mod browser;
pub mod cdp;
pub mod console;
pub mod engine;
pub mod stack;
pub mod webdriver;

pub use browser::{Browser, Error as BrowserError, Page};
pub use cdp::CdpError;
pub use engine::{Capability, Engine, skip_step, skip_without};
pub use stack::Stack;
