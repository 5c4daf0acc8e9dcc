//! `cargo xtask chaos [--seed N] [--messages M] [--browser …]`: a longer
//! run of the end-to-end chaos test (`crates/e2e/tests/chaos.rs`):
//! installs what is missing, builds the bundle, then runs that one test
//! with `OUTBOX_CHAOS_SEED` and `OUTBOX_CHAOS_MESSAGES` (default 2000
//! messages; the seed is drawn and printed when not given), once per
//! engine named (Chromium unless told), with the same seed in each.

use std::time::Instant;

use crate::e2e::{self, BrowserArg};
use crate::{build, tools};

/// Messages of a run when `--messages` is not given (the test suite's own
/// run sends 150, `DEFAULT_MESSAGES` in the test).
pub const DEFAULT_MESSAGES: u64 = 2000;

/// Builds, and runs the chaos test with this seed and size in each of
/// `browsers`; fails when any engine failed (after running them all).
pub fn chaos(seed: Option<u64>, messages: u64, browsers: &[BrowserArg]) -> Result<(), String> {
    let (engines, tools) = e2e::prepare(browsers)?;
    build::build(&tools, None)?;
    // One seed for every engine: the same schedule, engine by engine.
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
    });
    let mut failed = Vec::new();
    for engine in engines {
        let mut test = tools::cargo();
        test.args(["test", "-p", "e2e", "--test", "chaos", "--", "--nocapture"])
            .env("OUTBOX_BROWSER", engine.name())
            .env("OUTBOX_CHAOS_MESSAGES", messages.to_string())
            .env("OUTBOX_CHAOS_SEED", seed.to_string());
        if let Some(chrome) = &tools.chromium {
            test.env("CHROME", chrome);
        }
        eprintln!(
            "xtask: chaos run in {}, {messages} messages, seed {seed}",
            engine.name()
        );
        let started = Instant::now();
        let outcome = tools::run(&mut test);
        eprintln!(
            "xtask: chaos run in {} {} in {:.0?}",
            engine.name(),
            if outcome.is_ok() { "passed" } else { "FAILED" },
            started.elapsed()
        );
        if outcome.is_err() {
            failed.push(engine.name());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "chaos run (seed {seed}, {messages} messages) failed in {}",
            failed.join(", ")
        ))
    }
}
