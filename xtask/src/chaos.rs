//! `cargo xtask chaos [--seed N] [--messages M]`: a longer run of the
//! end-to-end chaos test (`crates/e2e/tests/chaos.rs`): installs what is
//! missing, builds the bundle, then runs that one test with
//! `OUTBOX_CHAOS_SEED` and `OUTBOX_CHAOS_MESSAGES` (default 2000 messages;
//! the seed is drawn and printed when not given).

use crate::{build, tools};

/// Messages of a run when `--messages` is not given (the test suite's own
/// run sends 300).
pub const DEFAULT_MESSAGES: u64 = 2000;

/// Builds, and runs the chaos test with this seed and size.
pub fn chaos(seed: Option<u64>, messages: u64) -> Result<(), String> {
    let tools = tools::Tools::ensure(tools::Need::Everything)?;
    build::build(&tools, None)?;
    let mut test = tools::cargo();
    test.args(["test", "-p", "e2e", "--test", "chaos", "--", "--nocapture"])
        .env("CHROME", tools.chromium.clone().unwrap_or_default())
        .env("OUTBOX_CHAOS_MESSAGES", messages.to_string());
    if let Some(seed) = seed {
        test.env("OUTBOX_CHAOS_SEED", seed.to_string());
    }
    eprintln!(
        "xtask: chaos run, {messages} messages, seed {}",
        seed.map_or_else(
            || "drawn by the test (printed below)".to_owned(),
            |s| s.to_string()
        )
    );
    tools::run(&mut test)
}
