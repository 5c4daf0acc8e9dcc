//! `cargo xtask fuzz [--cases N] [--seed S]`: every parser of outside input
//! gets N generated inputs (default 1,000,000), in release builds, with the
//! generators and mutations of `crates/outbox-fuzz`. The same tests run in
//! `cargo xtask test` (inside `cargo test --workspace`) with 10,000 inputs
//! each: the short pass.
//!
//! Prints one line per parser (inputs, failures, seconds) and a summary;
//! fails when any parser panicked or broke an invariant, naming the seed
//! that replays it (`--seed`).

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::Instant;

use crate::tools;

/// The test binaries that hold fuzz targets: (package, cargo test arguments).
const SUITES: &[(&str, &[&str])] = &[
    ("outbox-fuzz", &["--test", "parsers"]),
    ("genesys-emulator", &["--lib", "fuzz_tests"]),
    ("genesys-outbox-wasm", &["--lib", "record::tests::fuzz"]),
];

/// Runs every fuzz target with `cases` inputs each (`seed`: replay one).
pub fn fuzz(cases: u64, seed: Option<u64>) -> Result<(), String> {
    let cases = cases.to_string();
    let seed = seed.map(|s| s.to_string());
    let started = Instant::now();
    let mut lines = Vec::new();
    let mut failed = Vec::new();
    for (package, selector) in SUITES {
        let mut command = tools::cargo();
        command
            .args(["test", "--release", "-p", package])
            .args(*selector)
            .args(["--", "--nocapture", "--test-threads=2"])
            .env("OUTBOX_FUZZ_CASES", &cases)
            .stdout(Stdio::piped());
        if let Some(seed) = &seed {
            command.env("OUTBOX_FUZZ_SEED", seed);
        }
        eprintln!("xtask: fuzzing {package} ({cases} inputs per parser)");
        let mut child = command
            .spawn()
            .map_err(|e| format!("could not start cargo test: {e}"))?;
        if let Some(out) = child.stdout.take() {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                println!("{line}");
                if line.starts_with("fuzz ") {
                    lines.push(line);
                }
            }
        }
        let status = child.wait().map_err(|e| e.to_string())?;
        if !status.success() {
            failed.push(*package);
        }
    }
    println!(
        "\nfuzz summary ({:.0} s in all):",
        started.elapsed().as_secs_f64()
    );
    for line in &lines {
        println!("  {line}");
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("fuzzing found failures in {}", failed.join(", ")))
    }
}
