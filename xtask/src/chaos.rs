//! `cargo xtask chaos [--seed N] [--messages M]`: a longer run of the
//! end-to-end chaos test (`crates/e2e/tests/chaos.rs`): installs what is
//! missing, builds the bundle, then runs that one test with
//! `OUTBOX_CHAOS_SEED` and `OUTBOX_CHAOS_MESSAGES` (default 2000 messages;
//! the seed is drawn and printed when not given).

use crate::{build, tools};

/// Messages of a run when `--messages` is not given (the test suite's own
/// run sends 300).
const DEFAULT_MESSAGES: u64 = 2000;

const USAGE: &str = "usage: cargo xtask chaos [--seed N] [--messages M]";

/// Parses the flags, builds, and runs the chaos test.
pub fn chaos(args: &[String]) -> Result<(), String> {
    let (seed, messages) = parse(args)?;
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

/// `--seed N`, `--messages M` (also `--seed=N`), in any order.
fn parse(args: &[String]) -> Result<(Option<u64>, u64), String> {
    let mut seed = None;
    let mut messages = DEFAULT_MESSAGES;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        if matches!(flag, "-h" | "--help") {
            return Err(USAGE.to_owned());
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?,
        };
        let number: u64 = value
            .parse()
            .map_err(|_| format!("{flag}: `{value}` is not a whole number\n{USAGE}"))?;
        match flag {
            "--seed" => seed = Some(number),
            "--messages" if number > 0 => messages = number,
            "--messages" => return Err(format!("--messages must be at least 1\n{USAGE}")),
            other => return Err(format!("unknown flag `{other}`\n{USAGE}")),
        }
    }
    Ok((seed, messages))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn flags() {
        assert_eq!(parse(&[]), Ok((None, DEFAULT_MESSAGES)));
        assert_eq!(
            parse(&args(&["--seed", "7", "--messages=500"])),
            Ok((Some(7), 500))
        );
        assert!(parse(&args(&["--seed"])).is_err());
        assert!(parse(&args(&["--messages", "0"])).is_err());
        assert!(parse(&args(&["--messages", "x"])).is_err());
        assert!(parse(&args(&["--fast", "1"])).is_err());
    }
}
