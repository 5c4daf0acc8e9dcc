//! Fuzzing at volume, on stable Rust, without a fuzzing engine.
//!
//! Every parser of outside input (HTTP headers, error bodies, JSON, route
//! templates, the configuration, Guest WebSocket frames, stored records,
//! the emulator's request bodies) gets many generated inputs: most are
//! *near-valid* — built by a structured generator that knows the format
//! (an HTTP-date with out-of-range fields, a configuration with one wrong
//! type, a frame of a known class with odd members) — and then, one time
//! in two, *mutated* (bytes flipped, inserted, deleted, duplicated,
//! truncated, or replaced by tokens of the format: `"`, `\u`, `{`, `]`,
//! `-`, `9e999`, …). Random bytes alone would stop at the first byte of a
//! parser; the generators take them past it.
//!
//! The runner ([`run`]) feeds each input to the parser under
//! `catch_unwind`, so one panic does not hide the next; a parser that
//! panics fails the run with the seed, the case number and the input
//! (`Debug`-escaped), and the same seed replays the same inputs. Targets
//! also check cheap invariants (an inserted field reads back; a matched
//! request keeps no credential), which fail the same way.
//!
//! How many: `OUTBOX_FUZZ_CASES` inputs per parser (default
//! [`DEFAULT_CASES`], the short pass that `cargo test` and so `cargo xtask
//! test` run), `OUTBOX_FUZZ_SEED` (default fixed). `cargo xtask fuzz` runs
//! the same tests in release with 1,000,000 cases each and prints one line
//! per parser.
//!
//! The targets on `outbox-core` live in `tests/parsers.rs`; the emulator's
//! request bodies in `genesys-emulator/src/fuzz_tests.rs` and the
//! stored-record codec in `outbox-wasm/src/record.rs` (their parsers are
//! private to those crates), with this crate as a dev-dependency. Each
//! line also says what share of the inputs the parser accepted ([`accept`]),
//! which shows that the generators get past the first checks.

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

/// Inputs per parser when `OUTBOX_FUZZ_CASES` is not set (the short pass).
pub const DEFAULT_CASES: u64 = 10_000;

/// The seed when `OUTBOX_FUZZ_SEED` is not set.
pub const DEFAULT_SEED: u64 = 0x5eed_f00d;

/// Inputs per parser for this run.
pub fn cases() -> u64 {
    std::env::var("OUTBOX_FUZZ_CASES")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(DEFAULT_CASES)
}

/// The seed for this run.
pub fn seed() -> u64 {
    std::env::var("OUTBOX_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// A small fast random generator (SplitMix64): deterministic per seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    /// One element of a non-empty slice.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    /// A number with the edge cases over-represented: 0, 1, powers of two
    /// and their neighbours, `u64::MAX`, small numbers.
    pub fn interesting_u64(&mut self) -> u64 {
        match self.below(6) {
            0 => self.below(10) as u64,
            1 => self.below(100_000) as u64,
            2 => {
                let p = 1u64 << self.below(64);
                p.wrapping_add(self.below(3) as u64).wrapping_sub(1)
            }
            3 => u64::MAX - self.below(3) as u64,
            4 => 9_007_199_254_740_991 + self.below(3) as u64 - 1,
            _ => self.next_u64(),
        }
    }

    /// A number as JSON text, valid or nearly so: integers, negatives,
    /// fractions, exponents, huge and tiny values.
    pub fn number_text(&mut self) -> String {
        match self.below(9) {
            0 => self.interesting_u64().to_string(),
            1 => format!("-{}", self.interesting_u64()),
            2 => format!("{}.{}", self.below(1000), self.below(1000)),
            3 => format!("{}e{}", self.below(10), self.below(400)),
            4 => format!("{}E-{}", self.below(10), self.below(400)),
            5 => self
                .pick(&["0", "-0", "1e3", "9e15", "9e16", "1.0", "0.5", "1e-7"])
                .to_owned(),
            6 => self
                .pick(&[
                    "01", "1.", ".5", "+1", "1e", "--1", "NaN", "Infinity", "0x10",
                ])
                .to_owned(),
            7 => self.below(100).to_string(),
            _ => self.below(100_000).to_string(),
        }
    }

    /// A string's contents (unescaped), with the characters that break
    /// parsers over-represented.
    pub fn text(&mut self, max: usize) -> String {
        let len = self.below(max + 1);
        let mut s = String::with_capacity(len);
        for _ in 0..len {
            s.push(match self.below(12) {
                0 => self.pick(&['"', '\\', '/', '{', '}', '[', ']', ':', ',']),
                1 => self.pick(&['\n', '\r', '\t', '\u{0}', '\u{1f}', '\u{7f}']),
                2 => self.pick(&['é', 'ß', '€', '😀', '\u{fffd}', '\u{2028}', '中']),
                3 => self.pick(&[' ', '-', '.', '%', '+', '=', '&', '?', '#', '@']),
                4 => char::from(b'0' + self.below(10) as u8),
                _ => char::from(b'a' + self.below(26) as u8),
            });
        }
        s
    }

    /// A JSON string literal, escaped — sometimes with `\u` escapes,
    /// surrogate pairs, or a lone surrogate.
    pub fn json_string(&mut self, max: usize) -> String {
        let mut out = outbox_core::json::string(&self.text(max));
        if self.one_in(6) {
            let esc = self.pick(&[
                "\\u0041",
                "\\u00e9",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\udc00",
                "\\u0000",
                "\\/",
                "\\b",
                "\\f",
                "\\uZZZZ",
                "\\x",
            ]);
            let at = out.len() - 1;
            out.insert_str(at, esc);
        }
        out
    }

    /// A random JSON value up to `depth` levels deep, using `keys` for
    /// object members (so that the parser's own field names turn up).
    pub fn json_value(&mut self, depth: usize, keys: &[&str]) -> String {
        let kind = if depth == 0 {
            self.below(4)
        } else {
            self.below(7)
        };
        match kind {
            0 => self.number_text(),
            1 => self.json_string(12),
            2 => self.pick(&["true", "false", "null"]).to_owned(),
            3 => self.json_string(3),
            4 | 5 => {
                let n = self.below(5);
                let mut out = String::from("{");
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    if !keys.is_empty() && !self.one_in(4) {
                        out.push_str(&outbox_core::json::string(self.pick(keys)));
                    } else {
                        out.push_str(&self.json_string(6));
                    }
                    out.push_str(self.pick(&[":", " : ", ":\n"]));
                    out.push_str(&self.json_value(depth - 1, keys));
                }
                out.push('}');
                out
            }
            _ => {
                let n = self.below(5);
                let items: Vec<String> = (0..n).map(|_| self.json_value(depth - 1, keys)).collect();
                format!("[{}]", items.join(self.pick(&[",", ", "])))
            }
        }
    }
}

/// Tokens every mutation may insert: JSON and HTTP punctuation, edges of
/// numbers and encodings.
pub const COMMON_TOKENS: &[&str] = &[
    "\"",
    "\\",
    "\\u",
    "\\ud800",
    "{",
    "}",
    "[",
    "]",
    ":",
    ",",
    "null",
    "true",
    "-",
    "0",
    "9e999",
    "18446744073709551616",
    "-1",
    " ",
    "\n",
    "\r\n",
    "\t",
    "\u{0}",
    "\u{fffd}",
    "é",
    "😀",
    "%",
    "%00",
    "%ZZ",
    "/",
    "//",
    "{}",
    "[]",
    "\"\":",
    "GMT",
    ";",
    "=",
];

/// Applies 1–3 random mutations (most often one) to `input`, inserting tokens from `dict`
/// (the format's own) or [`COMMON_TOKENS`].
pub fn mutate(rng: &mut Rng, input: &mut Vec<u8>, dict: &[&str]) {
    let count = 1 + rng.below(3) * rng.below(2);
    for _ in 0..count {
        let len = input.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = rng.pick(&[0u8, 0x7f, 0x80, 0xff, 0xc3, 0xe2, b'"', b'\\']);
            }
            2 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(8)).min(len);
                input.drain(start..end);
            }
            3 if len > 0 => {
                let start = rng.below(len);
                let end = (start + 1 + rng.below(16)).min(len);
                let copy = input[start..end].to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, copy);
            }
            4 if len > 0 => input.truncate(rng.below(len)),
            5 => {
                let at = rng.below(len + 1);
                input.insert(at, rng.next_u64() as u8);
            }
            6 if len > 1 => {
                let (a, b) = (rng.below(len), rng.below(len));
                input.swap(a, b);
            }
            7 | 8 if !dict.is_empty() => {
                let token = rng.pick(dict).as_bytes().to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, token);
            }
            _ => {
                let token = rng.pick(COMMON_TOKENS).as_bytes().to_vec();
                let at = rng.below(len + 1);
                input.splice(at..at, token);
            }
        }
    }
}

thread_local! {
    static ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// Called by a target when the parser accepted its input (parsed it,
/// matched it): the runner prints the share accepted, which shows that the
/// generators reach past the parser's first checks.
pub fn accept() {
    ACCEPTED.with(|a| a.set(a.get() + 1));
}

/// What one target did.
#[derive(Debug, Clone)]
pub struct Report {
    /// The parser's name.
    pub name: &'static str,
    /// Inputs fed.
    pub inputs: u64,
    /// Inputs the parser accepted (see [`accept`]).
    pub accepted: u64,
    /// Inputs on which the parser panicked or an invariant failed.
    pub failures: Vec<(u64, String, String)>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Feeds `cases()` inputs to `target`: each input is `generate`d, then
/// (three times in four) [`mutate`]d with `dict`. `target` gets the bytes
/// and returns `Err` when an invariant fails; a panic is caught and
/// counted. Prints one line, and panics at the end (failing the test)
/// listing up to five failing inputs, if any.
pub fn run(
    name: &'static str,
    dict: &[&str],
    mut generate: impl FnMut(&mut Rng) -> Vec<u8>,
    mut target: impl FnMut(&[u8]) -> Result<(), String>,
) -> Report {
    let cases = cases();
    let seed = seed();
    let started = Instant::now();
    let mut failures = Vec::new();
    let mut fed = 0;
    ACCEPTED.with(|a| a.set(0));
    // One generator per target, so that adding a target changes no other's inputs.
    let mut rng = Rng::new(seed ^ fnv(name));
    for case in 0..cases {
        fed += 1;
        let mut input = generate(&mut rng);
        if rng.one_in(2) {
            mutate(&mut rng, &mut input, dict);
        }
        let result = catch_unwind(AssertUnwindSafe(|| target(&input)));
        let problem = match result {
            Ok(Ok(())) => continue,
            Ok(Err(why)) => why,
            Err(panic) => format!(
                "panic: {}",
                panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default()
            ),
        };
        failures.push((
            case,
            problem,
            format!("{:?}", String::from_utf8_lossy(&input)),
        ));
        if failures.len() >= 5 {
            break;
        }
    }
    let report = Report {
        name,
        inputs: fed,
        accepted: ACCEPTED.with(Cell::get),
        failures,
        seconds: started.elapsed().as_secs_f64(),
    };
    println!(
        "fuzz {:<32} {:>9} inputs  {:>5.1} % accepted  {} failures  {:>6.1} s  (seed {seed})",
        report.name,
        report.inputs,
        100.0 * report.accepted as f64 / report.inputs.max(1) as f64,
        report.failures.len(),
        report.seconds
    );
    if !report.failures.is_empty() {
        let mut text = format!("{name}: failures with OUTBOX_FUZZ_SEED={seed}:\n");
        for (case, problem, input) in &report.failures {
            text.push_str(&format!("  case {case}: {problem}\n    input {input}\n"));
        }
        panic!("{text}");
    }
    report
}

/// FNV-1a of a name (a stable per-target seed offset).
fn fnv(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
