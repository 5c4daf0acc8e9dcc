//! Turns the parts' results into `BENCHMARKS.md` and the herd plot (SVG).
//!
//! Inputs: `herd.json`, `browser.json` (and `memory.json` when the memory
//! part ran alone; the newer of the two gives the memory section) from the
//! results folder, Criterion's
//! `<group>/<bench>/new/{benchmark,estimates}.json`, and the staged bundle
//! for sizes. A missing part is reported as missing, never invented.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::browser::{self, Drain, Variant};
use crate::herd::{HerdResult, Strategy};
use crate::svg;

/// Where the report reads from.
pub struct Inputs {
    /// The `--quick` mode.
    pub quick: bool,
    /// Folder with the parts' JSON results.
    pub results: PathBuf,
    /// Criterion's output folder (`target/criterion`).
    pub criterion: PathBuf,
    /// The staged bundle (Outbox's `dist/` plus `workbox-sw.js`).
    pub site: PathBuf,
    /// How long the whole run took so far, seconds (from `cargo xtask bench`).
    pub elapsed_s: Option<f64>,
    /// The one part run now (`cargo xtask bench --only`), the others'
    /// results being their last runs'.
    pub only: Option<String>,
}

fn read<T: serde::de::DeserializeOwned>(path: &Path) -> Option<T> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The files Outbox's worker loads.
pub const OUTBOX_WORKER: &[&str] = &["sw.js", "outbox-worker.js", "outbox-core.js"];
/// The file Outbox's page API loads (and the core, `outbox-core.js`, when
/// the page must decide itself: no worker, a send, a listing).
pub const OUTBOX_PAGE: &[&str] = &["outbox_page.js"];
/// A first visit with the page API and the worker: each file once.
pub const OUTBOX_FIRST_VISIT: &[&str] = &[
    "outbox_page.js",
    "sw.js",
    "outbox-worker.js",
    "outbox-core.js",
];
/// The Workbox worker bundle.
pub const WORKBOX_WORKER: &[&str] = &["workbox-sw.js"];

/// Writes `BENCHMARKS.md` to `md` and the herd plot to `svg_path` (linked
/// from the Markdown by a path relative to it).
pub fn write(inputs: &Inputs, md: &Path, svg_path: &Path) -> Result<(), String> {
    let herd: Option<Vec<HerdResult>> = read(&inputs.results.join("herd.json"));
    let browser: Option<browser::Results> = read(&inputs.results.join("browser.json"));
    // The memory part's latest run: its own file when it ran alone after
    // the browser part, else the browser part's.
    let alone = inputs.results.join("memory.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let memory = match read::<browser::Results>(&alone) {
        Some(m) if modified(&alone) >= modified(&inputs.results.join("browser.json")) => {
            Some(m.memory)
        }
        _ => browser.as_ref().map(|b| b.memory.clone()),
    };
    let native: Option<crate::native::NativeResults> = read(&inputs.results.join("native.json"));
    let micro = criterion(&inputs.criterion);
    let mode = if inputs.quick { "quick" } else { "full" };
    let flag = if inputs.quick { " --quick" } else { "" };

    let mut o = String::new();
    let _ = writeln!(o, "# Benchmarks\n");
    let _ = writeln!(
        o,
        "> **Generated** by `cargo xtask bench{flag}` ({mode} mode) on {} — do not edit by hand; \
         run it again. Speed and memory are given as ratios against a baseline measured in the \
         same run, with the absolute value for context. Single runs on a shared machine: \
         treat differences under ~20 % as noise.\n",
        today()
    );
    let _ = writeln!(o, "**Machine:** {}.\n", machine(browser.as_ref()));
    if let Some(t) = inputs.elapsed_s {
        // The full mode's biggest part is its 100,000-entry memory drain:
        // say what it takes at this run's drain rate (the full mode itself
        // is not timed by a quick run).
        let drain = memory
            .as_ref()
            .and_then(|m| drain_rate(m, 0.0, 0.2))
            .filter(|r| *r > 0.0)
            .map(|r| {
                format!(
                    " At this run's drain rate, the full mode's 100,000-entry memory drain alone \
                     takes about {} (its seeding and the herd of 100,000 clients come on top; \
                     the full mode is not timed here).",
                    secs((100_000.0 / r * 1000.0) as u64)
                )
            })
            .unwrap_or_default();
        let run = match &inputs.only {
            Some(part) => format!(
                "this run of the {part} part alone (`--only {part}`; the other parts are \
                 their last runs')"
            ),
            None => format!("this {mode} run"),
        };
        let _ = writeln!(
            o,
            "**Duration:** {run} took {:.1} min, builds included.{drain}\n",
            t / 60.0
        );
    }
    let _ = writeln!(
        o,
        "Reproduce everything with `cargo xtask bench{flag}` (installs what is missing: \
         the wasm tools, Chromium, `npm ci` in `bench/`). Each part alone: \
         `cargo xtask bench{flag} --only herd|browser|micro|memory|native` — the exact \
         commands it runs are given under each part.\n"
    );
    let _ = writeln!(
        o,
        "Contents: [1. Herd simulation](#1-herd-simulation) · [2. Browser](#2-browser-outbox-vs-workbox-vs-no-worker) · [3. Engine micro-benchmarks](#3-engine-micro-benchmarks) · [4. Memory](#4-memory) · [5. Native host](#5-native-host-outbox-serve-on-sqlite) · [Findings](#findings-where-outbox-loses-and-why)\n"
    );

    // A part whose results this machine does not have (`--only` another
    // part, on a machine that never ran it) keeps its section from the
    // report as it was, rather than losing it.
    let previous = std::fs::read_to_string(md).unwrap_or_default();
    let carried = |o: &mut String, heading: &str| match section(&previous, heading) {
        Some(text) => {
            o.push_str(text);
            true
        }
        None => false,
    };
    if herd.is_some() || !carried(&mut o, "## 1. ") {
        herd_section(&mut o, herd.as_deref(), inputs, md, svg_path)?;
    }
    if browser.is_some() || !carried(&mut o, "## 2. ") {
        browser_section(&mut o, browser.as_ref(), inputs);
    }
    if !micro.is_empty() || !carried(&mut o, "## 3. ") {
        micro_section(&mut o, &micro, inputs);
    }
    if memory.is_some() || !carried(&mut o, "## 4. ") {
        memory_section(&mut o, memory.as_ref(), inputs);
    }
    if native.is_some() || !carried(&mut o, "## 5. ") {
        native_section(&mut o, native.as_ref(), inputs);
    }
    if (herd.is_some() && browser.is_some()) || !carried(&mut o, "## Findings") {
        findings(
            &mut o,
            herd.as_deref(),
            browser.as_ref(),
            &micro,
            memory.as_ref(),
            &inputs.site,
        );
    }

    std::fs::write(md, o).map_err(|e| format!("{}: {e}", md.display()))
}

// ---------------------------------------------------------------------------
// Machine and date

fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = (secs / 86_400) as i64;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        (secs % 86_400) / 3600,
        (secs % 3600) / 60
    )
}

fn machine(browser: Option<&browser::Results>) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| format!("{:.0} GB RAM", kb / 1024.0 / 1024.0))
        .unwrap_or_default();
    let os = std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|t| {
            t.lines().find(|l| l.starts_with("PRETTY_NAME=")).map(|l| {
                l.trim_start_matches("PRETTY_NAME=")
                    .trim_matches('"')
                    .to_owned()
            })
        })
        .unwrap_or_default();
    let rustc = std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let chromium = browser
        .map(|b| b.chromium.replace("Chrome/", "Chromium "))
        .unwrap_or_default();
    format!(
        "{cpu}, {cores} cores (shared with other work), {mem}, {os}; {rustc}; {chromium} headless"
    )
}

// ---------------------------------------------------------------------------
// Formatting

fn secs(ms: u64) -> String {
    let s = ms as f64 / 1000.0;
    if s < 10.0 {
        format!("{s:.1} s")
    } else if s < 600.0 {
        format!("{s:.0} s")
    } else {
        format!("{:.1} min", s / 60.0)
    }
}

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(part: u64, whole: u64) -> String {
    if whole == 0 {
        return "–".into();
    }
    let p = part as f64 * 100.0 / whole as f64;
    if part == 0 {
        "0".into()
    } else if p < 0.1 {
        format!("{} ({:.2} %)", count(part), p)
    } else {
        format!("{} ({:.0} %)", count(part), p)
    }
}

/// A share in percent with two decimals (`0 %` for none).
fn share(part: u64, whole: u64) -> String {
    if part == 0 {
        return "0 %".into();
    }
    format!("{:.2} %", part as f64 * 100.0 / whole.max(1) as f64)
}

/// What each drain cost the machine's processors, per message delivered
/// ([`crate::cpu`]): the browser's processes, and the bench's own (the
/// emulator and the demo servers).
fn drain_cpu(o: &mut String, variants: [&Variant; 3]) {
    let per = |d: &Drain, ms: Option<f64>| ms.map(|ms| ms / d.delivered.max(1) as f64);
    if variants
        .iter()
        .all(|v| v.drains.iter().all(|d| d.browser_cpu_ms.is_none()))
    {
        return;
    }
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let _ = writeln!(
        o,
        "**What a drain costs the processors** (user + system time from `/proc` over each drain, \
         per message delivered: all of the browser's processes, and the bench's own — the emulator \
         and the demo servers; `crates/outbox-bench/src/cpu.rs`). On this machine's {cores} cores \
         a drain cannot go faster than {cores} × 1,000 ms ÷ the total per message:\n\n\
         | drain | variant | browser, ms a message | emulator + servers, ms a message | total | bound on {cores} cores | measured |\n\
         |---|---|--:|--:|--:|--:|--:|"
    );
    for d in &variants[2].drains {
        for v in variants {
            let Some(x) = drain(v, d.messages, d.lanes) else {
                continue;
            };
            let (b, e) = (per(x, x.browser_cpu_ms), per(x, x.bench_cpu_ms));
            let total = b.zip(e).map(|(b, e)| b + e);
            let cell = |v: Option<f64>| v.map_or_else(|| "–".into(), |v| format!("{v:.2}"));
            let _ = writeln!(
                o,
                "| {} × {} {} | {} | {} | {} | {} | {} | {:.0}/s |",
                count(d.messages as u64),
                d.lanes,
                if d.lanes == 1 { "lane" } else { "lanes" },
                v.mode,
                cell(b),
                cell(e),
                cell(total),
                total.filter(|t| *t > 0.0).map_or_else(
                    || "–".into(),
                    |t| format!("{:.0}/s", cores as f64 * 1000.0 / t)
                ),
                x.per_s
            );
        }
    }
    let _ = writeln!(o);
}

/// The drain finding's processor part: what the bare page and Outbox
/// spend per message over 100 lanes ([`crate::cpu`]), and the rate it
/// bounds.
fn cpu_bound(none: &Variant, ob: &Variant) -> String {
    let per = |v: &Variant| {
        let d = v.drains.iter().rev().find(|d| d.lanes == 100)?;
        Some((
            d.messages,
            (d.browser_cpu_ms? + d.bench_cpu_ms?) / d.delivered.max(1) as f64,
            d.per_s,
        ))
    };
    let (Some((n, bare_ms, bare_rate)), Some((_, ob_ms, ob_rate))) = (per(none), per(ob)) else {
        return String::new();
    };
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    format!(
        "On this {cores:.0}-core machine the processor is the bound, shared by the browser's \
         processes (the worker, IndexedDB, the network stack) and the emulator (the table \
         above): draining {} messages over 100 lanes, a bare page spends {bare_ms:.2} ms of \
         processor time a message (bound {:.0}/s, measured {bare_rate:.0}/s) and Outbox \
         {ob_ms:.2} ms (bound {:.0}/s, measured {ob_rate:.0}/s): the worker's hop, the claims, \
         the deletes and the events. 0.9× the bare page's rate would need Outbox's whole cost \
         a message within {:.0} % of a bare fetch's on the same cores.",
        count(n as u64),
        cores * 1000.0 / bare_ms,
        cores * 1000.0 / ob_ms,
        (1.0 / 0.9 - 1.0) * 100.0,
    )
}

/// The finding on sends and start-up: the figures, and where Outbox's
/// time goes (its worker's marks and timelines).
fn send_costs(none: &Variant, wb: &Variant, ob: &Variant) -> String {
    let first = |v: &Variant| v.drains.first().map_or(0.0, |d| d.enqueue.p50);
    let step =
        |list: &[(String, f64)], name: &str| list.iter().find(|(s, _)| s == name).map(|(_, t)| *t);
    let mut text = format!(
        "* **Sends and start-up cost more.** An offline send answers in {} (Workbox {}), an \
         online pass-through in {} (Workbox {}, baseline {}), and a stopped worker its first \
         request in {} (Workbox {}, no worker {}).",
        ms(first(ob)),
        ms(first(wb)),
        ms(ob.online.p50),
        ms(wb.online.p50),
        ms(none.online.p50),
        ms(ob.cold_start.p50),
        ms(wb.cold_start.p50),
        ms(none.cold_start.p50)
    );
    let (on, off) = (&ob.online_steps, &ob.offline_steps);
    if let (Some(body), Some(lane), Some(sent), Some(back)) = (
        step(on, "body"),
        step(on, "tx lane_and_schedule"),
        step(on, "live-sent"),
        step(on, "live-answered"),
    ) {
        let _ = write!(
            text,
            " Warm, in the worker (tables above), a pass-through reads the request's body \
             ({}: the message must be in hand to be kept if the live attempt fails) and the \
             lane ({} more: a message must not overtake the ones queued before it) before the \
             request goes; the request itself takes {}, as Workbox's does.",
            ms(body),
            ms(lane - body),
            ms(back - sent)
        );
    }
    if let (Some(lane), Some(enq)) = (step(off, "tx lane_and_schedule"), step(off, "tx enqueue")) {
        let _ = write!(
            text,
            " Offline, the entry's commit takes {} after the lane read: it is `strict` (flushed \
             to disk), because Outbox's `202` promises the message survives a crash; Workbox \
             commits with the browser's default.",
            ms(enq - lane)
        );
    }
    let cold = cold_medians(ob);
    let at = |name: &str| cold.iter().find(|(s, _)| s == name).map(|(_, t)| *t);
    if let (Some(start), Some(engine), Some(open), Some(sent), Some(answer)) = (
        at("start"),
        at("engine"),
        at("store-open"),
        at("live-sent"),
        at("answer"),
    ) {
        // Whether the start-up flush began before the lane read ended.
        let beside = match at("flush") {
            Some(flush) if flush < sent => "beside the start-up flush's first claim",
            Some(_) => "the start-up flush waiting for this answer",
            None => "no start-up flush marked",
        };
        let _ = write!(
            text,
            " From a stop, the worker's own marks put its answer {} after its global scope \
             was made: {} of scripts before Outbox starts, {} to load, compile and instantiate \
             the core and read the configuration, {} more until the database is open, and {} \
             for the lane read (the first store transaction of a fresh worker, {beside}; warm, \
             the same read takes well under a millisecond). Workbox \
             opens no database to pass a request on: these steps are what holds the cold start \
             above Workbox's, and the lane read and the commit what hold the sends.",
            ms(answer),
            ms(start),
            ms(engine - start),
            ms(open - engine),
            ms(sent - open),
        );
    }
    text
}

/// The median time of each start-up mark over the cold starts, in the
/// order of their medians.
fn cold_medians(ob: &Variant) -> Vec<(String, f64)> {
    let mut steps: Vec<(String, f64)> = Vec::new();
    for marks in &ob.cold_marks {
        for (step, _) in marks {
            if steps.iter().all(|(s, _)| s != step) {
                steps.push((step.clone(), 0.0));
            }
        }
    }
    for (step, at) in &mut steps {
        let mut times: Vec<f64> = ob
            .cold_marks
            .iter()
            .filter_map(|m| m.iter().find(|(s, _)| s == step).map(|(_, t)| *t))
            .collect();
        times.sort_by(f64::total_cmp);
        *at = times.get(times.len() / 2).copied().unwrap_or(0.0);
    }
    steps.sort_by(|a, b| a.1.total_cmp(&b.1));
    steps
}

/// Where Outbox's warm sends spent their time: its worker's timelines of
/// its last requests (`web/host/marks.ts`), medians.
fn send_steps(o: &mut String, ob: &Variant) {
    if ob.online_steps.is_empty() && ob.offline_steps.is_empty() {
        return;
    }
    let mut steps: Vec<&str> = Vec::new();
    for (step, _) in ob.online_steps.iter().chain(&ob.offline_steps) {
        if !steps.contains(&step.as_str()) {
            steps.push(step);
        }
    }
    let _ = writeln!(
        o,
        "**Where Outbox's warm sends go** (its worker's timeline of each of its last 100 requests \
         of a kind, `web/host/marks.ts`: median ms from the request's arrival in the worker to the \
         end of each step; `body`: the request's body read; `tx <name>`: one of the core's store \
         transactions; `live-sent`/`live-answered`: the live attempt; `answer`: the answer ready):\n\n\
         | step | online (pass-through) | offline send |\n|---|--:|--:|"
    );
    let at = |list: &[(String, f64)], step: &str| {
        list.iter()
            .find(|(s, _)| s == step)
            .map_or_else(|| "–".into(), |(_, t)| ms(*t))
    };
    for step in steps {
        let _ = writeln!(
            o,
            "| `{step}` | {} | {} |",
            at(&ob.online_steps, step),
            at(&ob.offline_steps, step)
        );
    }
    let _ = writeln!(o);
}

/// Where Outbox's cold starts spent their time: the worker's own start-up
/// marks (`web/host/marks.ts`), medians over the starts.
fn cold_steps(o: &mut String, ob: &Variant) {
    if ob.cold_marks.is_empty() {
        return;
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    };
    let steps = cold_medians(ob);
    let _ = writeln!(
        o,
        "**Where Outbox's cold start goes** (its worker's own start-up marks, `web/host/marks.ts`, \
         read after each of the {} starts above; ms since the worker's global scope was made, and \
         since the step before, medians over the starts that set both):\n\n\
         | step | at | after the step before |\n|---|--:|--:|",
        ob.cold_marks.len()
    );
    let mut before: Option<&str> = None;
    for (step, at) in &steps {
        let gap = before.and_then(|b| {
            median(
                ob.cold_marks
                    .iter()
                    .filter_map(|m| {
                        let t = |name: &str| m.iter().find(|(s, _)| s == name).map(|(_, t)| *t);
                        Some(t(step)? - t(b)?)
                    })
                    .collect(),
            )
        });
        let _ = writeln!(
            o,
            "| `{step}` | {} | {} |",
            ms(*at),
            gap.map_or_else(|| "–".into(), ms)
        );
        before = Some(step);
    }
    let answer = steps.iter().find(|(s, _)| s == "answer").map(|(_, t)| *t);
    if let Some(answer) = answer {
        let _ = writeln!(
            o,
            "\nThe page waited {} (p50) from its fetch to the answer; the worker had its answer {} \
             after its global scope was made. The difference is the browser starting the worker \
             and carrying the request and the answer between page and worker, which Workbox's \
             start pays as well.\n",
            ms(ob.cold_start.p50),
            ms(answer)
        );
    }
}

fn ms(v: f64) -> String {
    if v < 10.0 {
        format!("{v:.1} ms")
    } else {
        format!("{v:.0} ms")
    }
}

fn ratio(v: f64, base: f64) -> String {
    if base <= 0.0 || !v.is_finite() {
        return "–".into();
    }
    let r = v / base;
    if r < 10.0 {
        format!("{r:.2}×")
    } else {
        format!("{r:.0}×")
    }
}

fn kb(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1024.0 / 1024.0)
}

// ---------------------------------------------------------------------------
// 1. Herd

fn herd_section(
    o: &mut String,
    herd: Option<&[HerdResult]>,
    inputs: &Inputs,
    md: &Path,
    svg_path: &Path,
) -> Result<(), String> {
    let flag = if inputs.quick { " --quick" } else { "" };
    let _ = writeln!(o, "## 1. Herd simulation\n");
    let _ = writeln!(
        o,
        "Command: `cargo run --release -p outbox-bench -- herd{flag} --out target/bench-results` \
         (native, deterministic: seed 7, virtual time; `crates/outbox-bench/src/herd/`).\n"
    );
    let Some(herd) = herd.filter(|h| !h.is_empty()) else {
        let _ = writeln!(o, "*Not run.*\n");
        return Ok(());
    };
    let s0 = &herd[0].scenario;
    let _ = writeln!(
        o,
        "**Model.** N browsers each write M messages (over {} conversations; the heavy-sender \
         scenario uses {}) at random times during a network outage of {} min; the network comes \
         back for everyone at once and each client learns it within {} s (the `online` event or \
         Background Sync firing — every strategy's best case). One server: a global capacity of \
         {} requests/s (more is shed with `503`), a per-token limit of {} requests per {} s \
         (`429` + `Retry-After` + `inin-ratelimit-*`, as Genesys and the emulator send them), \
         {:.1} % lost acknowledgements (recorded, then the connection cut), {}–{} ms round trips, \
         no de-duplication (real Genesys has none). Horizon: {} after recovery.\n",
        s0.lanes,
        herd.iter()
            .map(|r| r.scenario.lanes)
            .max()
            .unwrap_or(s0.lanes),
        s0.outage_ms / 60_000,
        s0.detect_ms / 1000,
        count(u64::from(s0.capacity_per_s)),
        s0.token_limit,
        s0.token_window_ms / 1000,
        s0.lost_ack_rate * 100.0,
        s0.rtt_ms,
        s0.rtt_ms + s0.rtt_jitter_ms,
        secs(s0.horizon_ms),
    );
    let _ = writeln!(
        o,
        "**Strategies** (faithful to their code; `herd/clients.rs` quotes it):\n\n\
         * *seed 000* — the service-worker tutorial: on `online`, replay in batches of 5 sent one \
         after another; `429` → sleep `Retry-After`; `5xx` → sleep 2ⁿ s capped at 30 s, no jitter; \
         never drops. As written it replays only on `online`; the model generously starts another \
         pass while anything is left.\n\
         * *seed 001* — the page tutorial: a 5 s poll (and `online`) sends every due message one \
         after another; backoff 2 s × 2ⁿ + up to 1 s jitter capped at 60 s; the sixth try drops the \
         message. (As written the delay counts from the message's creation, which backs off even \
         less; the model counts from the last attempt.)\n\
         * *Workbox-like* — background sync: on `sync`, one request at a time, each deleted before \
         it is sent, any HTTP answer (`429`, `503`) taken as success, no backoff; a network error \
         puts it back and fails the sync, retried by Chromium after 5 then 15 min.\n\
         * *Outbox* — the real `Engine` (one engine and memory store per client) with its default \
         policy: full-jitter backoff (2 s × 2ⁿ, cap 60 s), pacing (150/min, burst 10), \
         `Retry-After`, `inin-ratelimit-*`, leases, batches of 8 across lanes, and the herd \
         throttle: one probe per origin while it gives no answer; a rate that follows the share \
         of shed answers (`429`/`408`/`502`/`503`/`504`) among the recent ones — nothing within \
         30 %, halved per 5 points beyond, the share falling by an eighth per clean answer and \
         fading by half in 2 min (`outbox-core/src/throttle.rs`). The page forwards `online` \
         (`network_back` + flush).\n\
         * *Outbox, timers only* — the same engine when nothing tells it the network is back: it \
         retries when its backoff says so; the first answer ends the outage.\n\
         * *Outbox, herd throttle off* — the same engine with `pacer.throttle.enabled = false`: \
         the engine before herd safety (`online` forwarded makes every backed-off entry due at once); \
         not run at N = 100,000, where it alone would take some nine minutes to simulate.\n"
    );
    let _ = writeln!(
        o,
        "Columns: *lost* = never recorded by the server (dropped by the client, still queued at the \
         horizon, or an Outbox dead letter — kept and reported, not silent); *dup* = recorded more \
         than once; *first* = time from recovery to a client's first recorded message, median over \
         the clients; *p50/p99/last* = time from recovery to a message's first recording, over the \
         messages delivered; *ideal* = N·M ÷ capacity, the least time the server needs for the \
         whole backlog; *peak* = busiest second's requests ÷ capacity; *503* with its share of the \
         requests; *requests* = requests that reached the server (attempts while offline in \
         brackets); *sim time* = the wall time the run took to simulate (runs go one per core at \
         once: in virtual time, their figures do not depend on it).\n"
    );
    let mut scenarios: Vec<&str> = Vec::new();
    for r in herd {
        if !scenarios.contains(&r.scenario.name.as_str()) {
            scenarios.push(&r.scenario.name);
        }
    }
    for name in &scenarios {
        let rows: Vec<&HerdResult> = herd.iter().filter(|r| &r.scenario.name == name).collect();
        let s = &rows[0].scenario;
        let ideal = s.ideal_ms();
        if s.name.starts_with("blip") || s.name.starts_with("lone") {
            let _ = writeln!(
                o,
                "### One client after a {}, M = {} messages ({} independent runs, which \
                 share nothing the server could run short of)\n",
                if s.outage_ms >= 60_000 {
                    format!("{}-minute outage", s.outage_ms / 60_000)
                } else {
                    format!("{}-second blip", s.outage_ms / 1000)
                },
                s.messages,
                count(s.clients as u64),
            );
        } else if s.flaky_ms > 0 {
            let who = if s.clients <= 100 {
                format!(
                    "one client ({} independent runs), M = {} messages",
                    count(s.clients as u64),
                    s.messages
                )
            } else {
                format!(
                    "N = {} clients × M = {} messages; at full capacity the server needs ≥ {}",
                    count(s.clients as u64),
                    s.messages,
                    secs(ideal)
                )
            };
            let _ = writeln!(
                o,
                "### A flaky network, then recovery: {who}\n\n\
                 For {} the network drops for 2–8 s every 5–20 s (the same windows for every \
                 client; each end is an `online` event) and {} % of the requests that get through \
                 are answered `500`, `502`, `503` or `504`, evenly (as the emulator's error \
                 fault), while the messages are written; then everything is healthy. Times count \
                 from the end of the flaky period (a message delivered during it counts 0).\n",
                secs(s.flaky_ms),
                s.flaky_error_percent,
            );
        } else {
            let _ = writeln!(
                o,
                "### N = {} clients × M = {} messages ({} messages; at full capacity the server needs ≥ {})\n",
                count(s.clients as u64),
                s.messages,
                count((s.clients * s.messages) as u64),
                secs(ideal)
            );
        }
        let _ = writeln!(
            o,
            "| strategy | lost | dup | first | p50 | p99 | last | ideal | p99 ÷ ideal | peak | 429 | 503 | requests | sim time |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"
        );
        for r in rows {
            let lost = if r.lost == 0 {
                "0".to_owned()
            } else {
                let mut why = Vec::new();
                if r.dropped > 0 {
                    why.push(format!("{} dropped", count(r.dropped)));
                }
                if r.stranded > 0 {
                    why.push(format!("{} still queued", count(r.stranded)));
                }
                if r.dead_letters > 0 {
                    why.push(format!("{} dead letters", count(r.dead_letters)));
                }
                format!("{}: {}", pct(r.lost, r.messages), why.join(", "))
            };
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} | {} ({}) | {} ({}) | {:.1} s |",
                r.strategy.label(),
                lost,
                count(r.duplicates),
                secs(r.first_p50_ms),
                secs(r.p50_ms),
                secs(r.p99_ms),
                secs(r.last_ms),
                secs(ideal),
                r.p99_ms as f64 / ideal.max(1) as f64,
                r.peak_load,
                count(r.too_many),
                count(r.shed),
                share(r.shed, r.requests),
                count(r.requests),
                count(r.offline_attempts),
                r.wall_ms as f64 / 1000.0
            );
        }
        let _ = writeln!(o);
    }
    // The plot: the largest herd scenario.
    let largest = herd
        .iter()
        .filter(|r| r.scenario.name.starts_with("herd"))
        .max_by_key(|r| r.scenario.clients)
        .map(|r| r.scenario.name.clone());
    if let Some(name) = largest {
        let rows: Vec<&HerdResult> = herd.iter().filter(|r| r.scenario.name == name).collect();
        let text = svg::herd_plot(&rows);
        if let Some(dir) = svg_path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        }
        std::fs::write(svg_path, text).map_err(|e| format!("{}: {e}", svg_path.display()))?;
        let rel = relative(md, svg_path);
        let s = &rows[0].scenario;
        let _ = writeln!(
            o,
            "![Requests per second ÷ capacity, and share delivered, after recovery; N = {} (log time)]({rel})\n\n\
             *Left: the load each strategy puts on the server after recovery (requests per second ÷ \
             capacity, log scale; the dashed line is the capacity). Right: the share of all \
             messages delivered (first recording) over time since recovery; a line that stops short \
             of 100 % lost the rest. N = {}, M = {}.*\n",
            count(s.clients as u64),
            count(s.clients as u64),
            s.messages
        );
    }
    Ok(())
}

fn relative(md: &Path, target: &Path) -> String {
    let base = md.parent().unwrap_or(Path::new("."));
    target
        .strip_prefix(base)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| target.display().to_string())
}

// ---------------------------------------------------------------------------
// 2. Browser

fn drain(v: &Variant, n: usize, lanes: usize) -> Option<&Drain> {
    v.drains
        .iter()
        .find(|d| d.messages == n && d.lanes == lanes)
}

fn browser_section(o: &mut String, b: Option<&browser::Results>, inputs: &Inputs) {
    let flag = if inputs.quick { " --quick" } else { "" };
    let _ = writeln!(o, "## 2. Browser: Outbox vs Workbox vs no worker\n");
    let _ = writeln!(
        o,
        "Command: `cargo run --release -p outbox-bench -- browser{flag} --out target/bench-results \
         --site target/bench-site --web bench/web` (after `cargo xtask bench` staged `target/bench-site/`: \
         `dist/` from `cargo xtask build` plus `workbox-sw.js` bundled by `bench/node_modules/.bin/esbuild \
         bench/workbox-sw.js --bundle --minify --format=iife --define:process.env.NODE_ENV='\"production\"'`).\n"
    );
    let Some(b) = b.filter(|b| b.variants.len() == 3) else {
        let _ = writeln!(o, "*Not run.*\n");
        return;
    };
    let _ = writeln!(
        o,
        "**Setup.** One headless Chromium (the e2e harness's flags), one emulator, one page \
         (`bench/web/test/index.html`) served by three demo servers (three origins, so three \
         service-worker registrations and databases): with Outbox's worker, with a Workbox \
         background-sync worker (`bench/workbox-sw.js`: `NetworkOnly` + `BackgroundSyncPlugin` on the \
         agent-send route, plus a `handlerDidError` that answers `202` once stored), and with no \
         worker — the **baseline**. \"Offline\" is the emulator's outage (connections dropped). The \
         emulator's rate limit and Outbox's pacer are lifted so that the drains measure the workers, \
         not a configured rate, and Outbox's `maxEntries` is raised from 10,000 to 1,000,000 for the \
         memory part (past the limit Outbox answers `507` and the caller keeps the message). Recovery: Outbox gets the message its page API sends on `online`; \
         Workbox gets a `sync` event dispatched through DevTools at once (Chromium itself would wait \
         for its retry delay, minutes after a failed sync); with no worker the page sends the \
         messages itself, in order per lane, every lane at once. This part took {:.0} s.\n",
        b.wall_s
    );
    let none = &b.variants[0];
    let wb = &b.variants[1];
    let ob = &b.variants[2];
    let _ = writeln!(
        o,
        "| measure | no worker (baseline) | Workbox | × baseline | Outbox | × baseline |\n|---|--:|--:|--:|--:|--:|"
    );
    let row = |o: &mut String,
               name: &str,
               f: &dyn Fn(&Variant) -> Option<f64>,
               fmt: &dyn Fn(f64) -> String| {
        let base = f(none);
        let cell = |v: &Variant| f(v).map_or("–".into(), fmt);
        let r = |v: &Variant| match (f(v), base) {
            (Some(x), Some(y)) => ratio(x, y),
            _ => "–".into(),
        };
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} |",
            cell(none),
            cell(wb),
            r(wb),
            cell(ob),
            r(ob)
        );
    };
    let first = |v: &Variant| v.drains.first().map(|d| d.enqueue.clone());
    row(
        o,
        "offline send, fetch call → answer, p50 ¹",
        &|v| first(v).map(|l| l.p50),
        &ms,
    );
    row(o, "offline send, p99 ¹", &|v| first(v).map(|l| l.p99), &ms);
    row(
        o,
        "online send (pass-through), p50",
        &|v| Some(v.online.p50),
        &ms,
    );
    row(
        o,
        "online send (pass-through), p99",
        &|v| Some(v.online.p99),
        &ms,
    );
    row(
        o,
        "cold start → first answer, p50 ²",
        &|v| Some(v.cold_start.p50),
        &ms,
    );
    let mut sizes: Vec<(usize, usize)> = ob.drains.iter().map(|d| (d.messages, d.lanes)).collect();
    sizes.dedup();
    for (n, lanes) in sizes {
        let lane_word = if lanes == 1 { "lane" } else { "lanes" };
        row(
            o,
            &format!(
                "drain after recovery, {} queued, {lanes} {lane_word} (msg/s) ³",
                count(n as u64)
            ),
            &|v| drain(v, n, lanes).map(|d| d.per_s),
            &|x| format!("{x:.0}/s"),
        );
    }
    let _ = writeln!(
        o,
        "\n¹ The first drain's {} sends, one at a time, while offline. With no worker the fetch \
         simply rejects and nothing is kept: the ratio is the price of durability. \
         ² The worker stopped through DevTools, then one online send: start-up (the scripts, \
         the core imported with them and compiled, IndexedDB opened) plus the send; with no worker, \
         a plain send; the median of {} such starts. \
         ³ From the recovery signal to the last message recorded by the emulator; with no worker, \
         the page re-sending everything itself.\n",
        ob.drains.first().map_or(0, |d| d.enqueue.n),
        ob.cold_start.n
    );
    cold_steps(o, ob);
    send_steps(o, ob);
    drain_cpu(o, [none, wb, ob]);
    // Correctness side of the drains.
    let _ = writeln!(
        o,
        "Every drain delivered: {}.\n",
        [none, wb, ob]
            .iter()
            .map(|v| {
                let lost: usize = v
                    .drains
                    .iter()
                    .map(|d| d.messages - d.delivered.min(d.messages))
                    .sum();
                let dups: usize = v.drains.iter().map(|d| d.duplicates).sum();
                let order = v.drains.iter().all(|d| d.in_order);
                let stopped: Vec<String> = v
                    .drains
                    .iter()
                    .filter_map(|d| {
                        d.stopped_at_ms.map(|ms| {
                            format!(
                                "{} × {} lanes stopped at its limit, {:.0} s ({}× its 1,000-message drain), {} undelivered",
                                count(d.messages as u64),
                                d.lanes,
                                ms / 1000.0,
                                browser::REFERENCE_LIMIT,
                                count((d.messages - d.delivered.min(d.messages)) as u64)
                            )
                        })
                    })
                    .collect();
                format!(
                    "{} — {} missing{}, {} duplicates, {}",
                    v.mode,
                    lost,
                    if stopped.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", stopped.join("; "))
                    },
                    dups,
                    if order {
                        "in order per lane"
                    } else {
                        "**out of order**"
                    }
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    );
    // Sizes.
    let gz = |files: &[&str]| browser::gzip_size(&inputs.site, files).ok();
    let (outbox_gz, workbox_gz, page_gz) = (gz(OUTBOX_WORKER), gz(WORKBOX_WORKER), gz(OUTBOX_PAGE));
    let first_gz = gz(OUTBOX_FIRST_VISIT);
    let _ = writeln!(o, "**What each ships** (gzip -9):\n");
    let _ = writeln!(
        o,
        "| | no worker | Workbox | Outbox | Outbox ÷ Workbox |\n|---|--:|--:|--:|--:|"
    );
    if let (Some(obz), Some(wbz)) = (outbox_gz, workbox_gz) {
        let _ = writeln!(
            o,
            "| service worker | 0 | {} (`workbox-sw.js`: background-sync + routing + strategies + core, minified) | {} (`sw.js` + `outbox-worker.js` + `outbox-core.js`) | {} |",
            kb(wbz),
            kb(obz),
            ratio(obz as f64, wbz as f64)
        );
    }
    if let Some(p) = page_gz {
        let _ = writeln!(
            o,
            "| page API (optional; not used by this benchmark) | 0 | 0 | {} (`outbox_page.js`; the core, `outbox-core.js`, only when the page decides itself) | – |",
            kb(p)
        );
    }
    if let (Some(f), Some(wbz)) = (first_gz, workbox_gz) {
        let _ = writeln!(
            o,
            "| first visit, page API and worker (each file once) | 0 | {} | {} | {} |",
            kb(wbz),
            kb(f),
            ratio(f as f64, wbz as f64)
        );
    }
    let _ = writeln!(
        o,
        "\nSizes have no \"no worker\" ratio (its size is zero): the reference is Workbox.\n"
    );
}

// ---------------------------------------------------------------------------
// 3. Micro

/// One Criterion result.
#[derive(Debug, Clone)]
pub struct Micro {
    /// Group.
    pub group: String,
    /// Function.
    pub function: String,
    /// Median, ns.
    pub median_ns: f64,
}

fn criterion(dir: &Path) -> Vec<Micro> {
    let mut out = Vec::new();
    let Ok(groups) = std::fs::read_dir(dir) else {
        return out;
    };
    for g in groups.flatten() {
        let Ok(benches) = std::fs::read_dir(g.path()) else {
            continue;
        };
        for b in benches.flatten() {
            let new = b.path().join("new");
            let (Some(meta), Some(est)) = (
                read::<Value>(&new.join("benchmark.json")),
                read::<Value>(&new.join("estimates.json")),
            ) else {
                continue;
            };
            out.push(Micro {
                group: meta["group_id"].as_str().unwrap_or_default().to_owned(),
                function: meta["function_id"].as_str().unwrap_or_default().to_owned(),
                median_ns: est["median"]["point_estimate"].as_f64().unwrap_or(0.0),
            });
        }
    }
    out.sort_by(|a, b| (&a.group, &a.function).cmp(&(&b.group, &b.function)));
    out
}

fn dur(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

fn reference_label(group: &str) -> &'static str {
    match group {
        "classify" => "`serde_json` → `Value`, same body",
        "plan" => "sort the heads by `seq`",
        "backoff" => "one `SplitMix64` draw",
        "retry_after" => "`str::parse::<u64>` / `httpdate`",
        _ => "–",
    }
}

fn micro_section(o: &mut String, micro: &[Micro], inputs: &Inputs) {
    let args = if inputs.quick {
        " -- --warm-up-time 0.3 --measurement-time 1"
    } else {
        ""
    };
    let _ = writeln!(o, "## 3. Engine micro-benchmarks\n");
    let _ = writeln!(
        o,
        "Command: `cargo bench -p outbox-bench --bench engine{args}` (Criterion, \
         `crates/outbox-bench/benches/engine.rs`; medians). Each Outbox function is measured beside \
         a reference doing the nearest standard job, in the same run.\n"
    );
    if micro.is_empty() {
        let _ = writeln!(o, "*Not run.*\n");
        return;
    }
    let _ = writeln!(
        o,
        "| group | case | Outbox | reference | reference time | × reference |\n|---|---|--:|---|--:|--:|"
    );
    let mut groups: Vec<&str> = micro.iter().map(|m| m.group.as_str()).collect();
    groups.dedup();
    for g in groups {
        for m in micro
            .iter()
            .filter(|m| m.group == g && m.function.starts_with("outbox "))
        {
            let case = m.function.trim_start_matches("outbox ");
            let reference = micro
                .iter()
                .find(|r| r.group == g && r.function == format!("reference {case}"));
            let (rtime, r) = match reference {
                Some(r) => (dur(r.median_ns), ratio(m.median_ns, r.median_ns)),
                None => ("–".into(), "–".into()),
            };
            let _ = writeln!(
                o,
                "| `{g}` | {case} | {} | {} | {rtime} | {r} |",
                dur(m.median_ns),
                reference_label(g)
            );
        }
    }
    let _ = writeln!(
        o,
        "\nReferences: `classify` — `serde_json` parsing the same Genesys error body into a `Value` \
         (classifying also reads headers, `Retry-After` and the body's `code`/`message`/`contextId`); \
         `plan` — sorting the same 10,000 lane heads by `seq`, the floor of any oldest-first plan; \
         `backoff` — one draw of the generator it uses; `retry_after` — `\"120\".parse::<u64>()` for \
         seconds, the `httpdate` crate for the same HTTP-date.\n"
    );
}

// ---------------------------------------------------------------------------
// 4. Memory

/// Deliveries per second over the samples between the `from` and `to`
/// shares of all deliveries.
fn drain_rate(m: &browser::Memory, from: f64, to: f64) -> Option<f64> {
    let n = m.entries as f64;
    let a = m.samples.iter().find(|s| s.delivered as f64 >= from * n)?;
    let b = m.samples.iter().find(|s| s.delivered as f64 >= to * n)?;
    (b.t > a.t).then(|| (b.delivered - a.delivered) as f64 / (b.t - a.t))
}

/// Time to queue `n` entries through the door, if the time per entry grows
/// linearly with the queue's length as between the two measurements.
fn door_extrapolation_ms(empty: &browser::DoorRate, full: &browser::DoorRate, n: u64) -> u64 {
    let t0 = 1.0 / empty.per_s.max(1e-9);
    let t1 = 1.0 / full.per_s.max(1e-9);
    let slope = ((t1 - t0) / (full.queued.max(1) as f64)).max(0.0);
    let n = n as f64;
    ((n * t0 + slope * n * n / 2.0) * 1000.0) as u64
}

/// The wasm memory when `share` of the entries had been delivered.
fn wasm_at(m: &browser::Memory, share: f64) -> f64 {
    m.samples
        .iter()
        .find(|s| s.delivered as f64 >= share * m.entries as f64)
        .map_or(0.0, |s| s.wasm_memory)
}

fn memory_section(o: &mut String, m: Option<&browser::Memory>, inputs: &Inputs) {
    let _ = writeln!(o, "## 4. Memory\n");
    let entries = m.map_or(if inputs.quick { 5_000 } else { 100_000 }, |m| m.entries);
    let _ = writeln!(
        o,
        "Command: `cargo run --release -p outbox-bench -- memory --entries {entries} --out \
         target/bench-results --site target/bench-site --web bench/web` (also the last step of the \
         browser part). {} messages over 100 lanes are queued in Outbox's worker while offline, \
         then drained; every 0.5 s DevTools samples the worker's JS heap (`Runtime.getHeapUsage` on \
         the worker target), its wasm linear memory (`memory.buffer.byteLength`) and the page's JS \
         heap. A few hundred go through the fetch door (8 in flight) with the queue empty, again \
         with 4,500 queued (the goal's length; seeded up to it first) and with it full; the bulk is a fixture — copies of a real queued entry written straight into \
         Outbox's IndexedDB — because queueing them all through the door takes far longer (below).\n",
        count(entries as u64)
    );
    let Some(m) = m.filter(|m| !m.samples.is_empty()) else {
        let _ = writeln!(o, "*Not run.*\n");
        return;
    };
    let first = m.samples[0];
    let last = *m.samples.last().unwrap_or(&first);
    let peak =
        |f: &dyn Fn(&browser::MemorySample) -> f64| m.samples.iter().map(f).fold(0.0f64, f64::max);
    let _ = writeln!(
        o,
        "| | before the drain (baseline) | peak while draining | × baseline | after the drain | × baseline |\n|---|--:|--:|--:|--:|--:|"
    );
    for (name, f) in [
        (
            "worker JS heap (used)",
            &(|s: &browser::MemorySample| s.worker_heap) as &dyn Fn(&browser::MemorySample) -> f64,
        ),
        ("worker wasm memory", &|s: &browser::MemorySample| {
            s.wasm_memory
        }),
        ("page JS heap (used)", &|s: &browser::MemorySample| {
            s.page_heap
        }),
    ] {
        let p = peak(f);
        let _ = writeln!(
            o,
            "| {name} | {} | {} | {} | {} | {} |",
            mb(f(&first)),
            mb(p),
            ratio(p, f(&first)),
            mb(f(&last)),
            ratio(f(&last), f(&first))
        );
    }
    let _ = writeln!(
        o,
        "\nWasm memory at 10 % / 50 % / 90 % of the drain: {} / {} / {} (linear memory never \
         shrinks: these are high-water marks). {} samples.\n",
        mb(wasm_at(m, 0.1)),
        mb(wasm_at(m, 0.5)),
        mb(wasm_at(m, 0.9)),
        m.samples.len()
    );
    let _ = writeln!(
        o,
        "**Queue length costs time** (same run):\n\n| | with a short queue | with a long queue | × |\n|---|--:|--:|--:|"
    );
    if let [empty, longer @ ..] = m.door.as_slice() {
        for full in longer {
            let _ = writeln!(
                o,
                "| fetch door, offline sends queued per second (8 in flight) | {:.0}/s ({} queued; p50 {}) | {:.0}/s ({} queued; p50 {}) | {} |",
                empty.per_s,
                count(empty.queued as u64),
                ms(empty.latency.p50),
                full.per_s,
                count(full.queued as u64),
                ms(full.latency.p50),
                ratio(full.per_s, empty.per_s)
            );
        }
    }
    if let (Some(late), Some(early)) = (drain_rate(m, 0.8, 0.98), drain_rate(m, 0.0, 0.2)) {
        let _ = writeln!(
            o,
            "| drain, messages delivered per second | {late:.0}/s (last 20 %) | {early:.0}/s (first 20 %, {} queued) | {} |",
            count(m.entries as u64),
            ratio(early, late)
        );
    }
    let through_door: usize = m.door.iter().map(|d| d.latency.n).sum::<usize>() + 1;
    let _ = writeln!(
        o,
        "\nThe whole drain took {:.0} s; the fixture wrote {} entries in {:.1} s ({} went through \
         the door).\n",
        m.drain_ms / 1000.0,
        count(m.entries.saturating_sub(through_door) as u64),
        m.enqueue_ms / 1000.0,
        count(through_door as u64)
    );
}

// ---------------------------------------------------------------------------
// Findings

/// The findings about the herd throttle: each goal of issue 22 from this
/// run, the bound that blocks the ones no client-side rule can meet, and
/// the engine without its throttle for comparison.
fn herd_safety(o: &mut String, h: &[HerdResult]) {
    let get = |name: &str, s: Strategy| {
        h.iter()
            .find(|r| r.scenario.name == name && r.strategy == s)
    };
    let verdict = |ok: bool| if ok { "met" } else { "**not met**" };
    let herds: Vec<&HerdResult> = h
        .iter()
        .filter(|r| r.scenario.name.starts_with("herd") && r.strategy == Strategy::Outbox)
        .collect();
    // The herd goals.
    let mut goals = Vec::new();
    let mut blocked = Vec::new();
    for ob in &herds {
        let n = ob.scenario.clients;
        let ideal = ob.scenario.ideal_ms().max(1) as f64;
        let ratio = ob.p99_ms as f64 / ideal;
        let peak_goal = if n >= 100_000 { 2.0 } else { 1.0 };
        let mut parts = vec![
            format!("p99 {ratio:.2}× ideal (≤ 1.5×) {}", verdict(ratio <= 1.5)),
            format!("lost {} {}", count(ob.lost), verdict(ob.lost == 0)),
        ];
        let peak = format!("peak {:.2}× (≤ {peak_goal:.1}×)", ob.peak_load);
        if ob.peak_load <= peak_goal {
            parts.push(format!("{peak} met"));
        } else {
            parts.push(format!("{peak} blocked (below)"));
            blocked.push(format!("N = {}: {peak}", count(n as u64)));
        }
        if n >= 100_000 {
            let shed = ob.shed as f64 / ob.requests.max(1) as f64;
            let text = format!("`503`s {} (≤ 5 %)", share(ob.shed, ob.requests));
            if shed <= 0.05 {
                parts.push(format!("{text} met"));
            } else {
                parts.push(format!("{text} blocked (below)"));
                blocked.push(format!("N = {}: {text}", count(n as u64)));
            }
        }
        goals.push(format!("N = {}: {}", count(n as u64), parts.join(", ")));
    }
    if !herds.iter().any(|r| r.scenario.clients >= 100_000) {
        goals.push(
            "N = 100,000 runs in the full mode only (`cargo xtask bench --only herd`)".to_owned(),
        );
    }
    // The lone client: all ten messages within 3 s of recovery (p99).
    for (name, what) in [
        ("lone-100", "after a 10-minute outage"),
        ("blip-100", "after a 30-second blip"),
        ("flaky-100", "after two minutes of flaky network"),
    ] {
        if let Some(r) = get(name, Strategy::Outbox) {
            goals.push(format!(
                "one client {what}: p99 {} after recovery (≤ 3 s) {}, lost {}",
                secs(r.p99_ms),
                verdict(r.p99_ms <= 3_000 && r.lost == 0),
                count(r.lost)
            ));
        }
    }
    if let Some(f) = get("flaky-10000", Strategy::Outbox) {
        let ratio = f.p99_ms as f64 / f.scenario.ideal_ms().max(1) as f64;
        goals.push(format!(
            "a herd of {} after two minutes of flaky network (no goal set; the same rule): p99 \
             {ratio:.2}× ideal, lost {}, `503`s {}",
            count(f.scenario.clients as u64),
            count(f.lost),
            share(f.shed, f.requests)
        ));
    }
    let _ = writeln!(
        o,
        "* **The goals of herd safety (issue 22), from this run.** {}.",
        goals.join("; ")
    );
    if !blocked.is_empty() {
        let cap = herds
            .first()
            .map_or(2_000, |r| u64::from(r.scenario.capacity_per_s));
        let bound = |n: u64, per_client: u64, window_s: u64| n * per_client / window_s;
        let _ = writeln!(
            o,
            "* **Blocked, with the bound no client-side rule gets under: {}.** Until its first \
             answer, a client of a herd has seen exactly what a client alone sees (the same \
             outage, the same backlog), so it sends on the same schedule — and the lone-client \
             goal fixes that schedule: all ten messages within 3 s of recovery, the `online` \
             event coming within 2 s. A herd's first answers come back before anything tells it \
             apart, so its first seconds carry the lone schedule times N: at N = 1,000, ten \
             messages a client within about 3 s is some {} requests a second against a capacity \
             of {} (the server sheds only once its second of burst is spent, so the busiest \
             second is over capacity before any client can know); at N = 10,000 the first \
             request of each client alone, 99 % of them within 3 s, is some {} a second, and at \
             N = 100,000 some {} a second, of which the server takes {} in those 3 s and sheds \
             the rest: {} `503`s at least, several percent of the herd's requests. The rule this \
             one replaced spread the first contact over a tenth of the outage (a minute for a \
             10-minute outage): it kept N = 10,000 under capacity and made one client wait a \
             minute, N = 1,000 eleven times its ideal time, and a client after a flaky minute \
             crawl for an hour. Meeting the lone-client goals and the p99 goals at every N is \
             the choice made here; the server's own `Retry-After` on its `503`s (honoured, as on \
             a `429`) is what could spread a herd's first contact further.",
            blocked.join("; "),
            count(bound(1_000, 10, 3)),
            count(cap),
            count(bound(10_000 * 99 / 100, 1, 3)),
            count(bound(100_000 * 99 / 100, 1, 3)),
            count(cap * 4),
            count(100_000 * 99 / 100 - cap * 4),
        );
    }
    // Against the engine without its throttle.
    let mut before_after = Vec::new();
    for ob in &herds {
        let Some(off) = get(&ob.scenario.name, Strategy::OutboxUnthrottled) else {
            continue;
        };
        before_after.push(format!(
            "N = {}: p99 {} → {} (ideal {}), `503`s {} → {}, peak {:.2}× → {:.2}×",
            count(ob.scenario.clients as u64),
            secs(off.p99_ms),
            secs(ob.p99_ms),
            secs(ob.scenario.ideal_ms()),
            share(off.shed, off.requests),
            share(ob.shed, ob.requests),
            off.peak_load,
            ob.peak_load,
        ));
    }
    if !before_after.is_empty() {
        let _ = writeln!(
            o,
            "* **What the throttle buys over none** (throttle off → on; its probe keeps a \
             client's first contact to one request, and its shed-share rate brings the herd's \
             offer down to the capacity instead of each entry backing off on its own): {}.",
            before_after.join("; ")
        );
    }
}

fn findings(
    o: &mut String,
    herd: Option<&[HerdResult]>,
    b: Option<&browser::Results>,
    micro: &[Micro],
    memory: Option<&browser::Memory>,
    site: &Path,
) {
    let _ = writeln!(o, "## Findings: where Outbox loses, and why\n");
    let _ = writeln!(
        o,
        "Written from this run's numbers; a weakness is reported, not tuned away.\n"
    );
    if let Some(h) = herd {
        let get = |name: &str, s: Strategy| {
            h.iter()
                .find(|r| r.scenario.name == name && r.strategy == s)
        };
        let largest = h
            .iter()
            .filter(|r| r.scenario.name.starts_with("herd"))
            .max_by_key(|r| r.scenario.clients)
            .map(|r| r.scenario.name.clone())
            .unwrap_or_default();
        if let (Some(ob), Some(wb), Some(s1), Some(s0), Some(ot)) = (
            get(&largest, Strategy::Outbox),
            get(&largest, Strategy::Workbox),
            get(&largest, Strategy::SeedJitter),
            get(&largest, Strategy::SeedBatch),
            get(&largest, Strategy::OutboxTimers),
        ) {
            let _ = writeln!(
                o,
                "* **Losses (herd, N = {}).** Outbox lost {} (dead letters are kept and can be \
                 revived); Workbox lost {} — every `503`/`429` it met counts as delivered and is \
                 deleted; seed 001 lost {} — its five retries are spent during the outage itself; \
                 seed 000 lost {} but only because the model restarts its pass (as written it would \
                 wait for the next `online`).",
                count(ob.scenario.clients as u64),
                pct(ob.lost, ob.messages),
                pct(wb.lost, wb.messages),
                pct(s1.lost, s1.messages),
                pct(s0.lost, s0.messages)
            );
            let _ = writeln!(
                o,
                "* **Raw speed: Workbox and seed 001 \"win\" p50/p99** ({} / {} and {} / {} vs \
                 Outbox's {} / {}) because they measure only what they delivered: they throw away \
                 what the server refuses, so the survivors arrive early. Outbox delivers everything, \
                 at the pace the server's capacity allows (the floor for this N is in the table \
                 header).",
                secs(wb.p50_ms),
                secs(wb.p99_ms),
                secs(s1.p50_ms),
                secs(s1.p99_ms),
                secs(ob.p50_ms),
                secs(ob.p99_ms)
            );
            // Seed 000 against Outbox, scenario by scenario.
            let mut cmp = Vec::new();
            for r in h.iter().filter(|r| {
                r.scenario.name.starts_with("herd") && r.strategy == Strategy::SeedBatch
            }) {
                if let Some(ob) = get(&r.scenario.name, Strategy::Outbox) {
                    cmp.push(format!(
                        "N = {}: p99 {} vs Outbox's {}, peak {:.2}× vs {:.2}×, {} vs {} `503`s",
                        count(r.scenario.clients as u64),
                        secs(r.p99_ms),
                        secs(ob.p99_ms),
                        r.peak_load,
                        ob.peak_load,
                        count(r.shed),
                        count(ob.shed)
                    ));
                }
            }
            let _ = writeln!(
                o,
                "* **Seed 000 against Outbox.** Seed 000 loses nothing in this (generous) model and \
                 replays each client serially with a fixed, unjittered backoff; it keeps the server \
                 over capacity for as long as anything is left. {}. Where it finishes sooner, it \
                 does so by sending more of the load the server sheds; its synchronized waits \
                 (every client sleeps the same 1, 2, 4 … s) are what stretches its tail as N grows.",
                cmp.join("; ")
            );
            let _ = ot;
            herd_safety(o, h);
            if ob.dead_letters > 0 {
                let _ = writeln!(
                    o,
                    "* **Dead letters under an extreme herd.** {} entries reached `max_attempts` \
                     (25 server failures; a busy `503` is never the last of them, so these met \
                     other failures too) before the server had room for them. They are not lost \
                     silently (dead letters, revivable).",
                    count(ob.dead_letters)
                );
            }
        }
        if let Some(bk) = h.iter().find(|r| r.scenario.name.starts_with("backlog")) {
            let name = bk.scenario.name.clone();
            if let (Some(ob), Some(s0), Some(wb)) = (
                get(&name, Strategy::Outbox),
                get(&name, Strategy::SeedBatch),
                get(&name, Strategy::Workbox),
            ) {
                let _ = writeln!(
                    o,
                    "* **Heavy senders (M = {} > the per-token limit).** Outbox's pacer keeps `429`s \
                     at {} (seed 000: {}, Workbox: {}, of which Workbox dropped every one). The price: \
                     the pacer's default is half of Genesys's 300/min per token (room for the rest \
                     of the app), so a client's backlog drains at 150/min — Outbox's p99 {} vs seed \
                     000's {}, which simply obeys `Retry-After`. The herd throttle leaves these \
                     clients alone: nothing is shed, so only the pacer paces them (throttle off: \
                     p99 {}).",
                    bk.scenario.messages,
                    count(ob.too_many),
                    count(s0.too_many),
                    count(wb.too_many),
                    secs(ob.p99_ms),
                    secs(s0.p99_ms),
                    get(&name, Strategy::OutboxUnthrottled)
                        .map_or("–".into(), |r| secs(r.p99_ms))
                );
            }
        }
    }
    if let Some(b) = b.filter(|b| b.variants.len() == 3) {
        let (none, wb, ob) = (&b.variants[0], &b.variants[1], &b.variants[2]);
        let one = |v: &Variant| drain(v, 1000, 1).map_or(0.0, |d| d.per_s);
        let many = |v: &Variant| drain(v, 1000, 100).map_or(0.0, |d| d.per_s);
        let _ = writeln!(
            o,
            "* **Draining is bound by the lane and the batch, and on 2 cores by the processor.** \
             One conversation drains at {:.0}/s in Outbox vs {:.0}/s in Workbox and {:.0}/s from \
             a bare page: a lane is strict FIFO with one request in flight, so each message waits \
             for the answer to the one before; the entries behind a lane's head follow it within \
             one flush cycle, so up to 32 messages (four batches) cost one IndexedDB transaction \
             (Workbox does one per message), but the fetches stay in series. Across 100 lanes \
             Outbox has 8 in flight at once (each lane going on as soon as its own answer comes, \
             not after the round's slowest) and each claim reads 100 lane heads: {:.0}/s vs \
             Workbox's {:.0}/s (Workbox is serial whatever the lanes); the bare page sends all \
             100 lanes at once. {}",
            one(ob),
            one(wb),
            one(none),
            many(ob),
            many(wb),
            cpu_bound(none, ob)
        );
        let _ = writeln!(o, "{}", send_costs(none, wb, ob));
    }
    if let (Ok(obz), Ok(wbz)) = (
        browser::gzip_size(site, OUTBOX_WORKER),
        browser::gzip_size(site, WORKBOX_WORKER),
    ) {
        let _ = writeln!(
            o,
            "* **Size.** Outbox's worker ships {} gzip against Workbox's {} ({}), almost all of \
             it the wasm engine. That buys the decisions Workbox does not make (classification, \
             `Retry-After`, pacing, lanes, leases, dead letters), but it is the biggest cost a \
             user pays on first load.",
            kb(obz),
            kb(wbz),
            ratio(obz as f64, wbz as f64)
        );
    }
    browser_goals(o, b, memory, site);
    if let Some(r) = micro
        .iter()
        .find(|m| m.group == "retry_after" && m.function == "outbox http-date")
        .zip(
            micro
                .iter()
                .find(|m| m.group == "retry_after" && m.function == "reference http-date"),
        )
    {
        let _ = writeln!(
            o,
            "* **Micro.** Parsing an HTTP-date `Retry-After` takes {} vs `httpdate`'s {} ({}): it is \
             tolerant (obsolete date formats, odd spacing, absurd values capped and reported) and \
             not tuned; it runs once per `429`, so it does not matter.",
            dur(r.0.median_ns),
            dur(r.1.median_ns),
            ratio(r.0.median_ns, r.1.median_ns)
        );
    }
    if let Some(m) = memory.filter(|m| m.samples.len() > 1) {
        let first = m.samples[0];
        let heap_peak = m
            .samples
            .iter()
            .map(|s| s.worker_heap)
            .fold(0.0f64, f64::max);
        let (w10, w90) = (wasm_at(m, 0.1), wasm_at(m, 0.9));
        let wasm_peak = m
            .samples
            .iter()
            .map(|s| s.wasm_memory)
            .fold(0.0f64, f64::max);
        let _ = writeln!(
            o,
            "* **Memory stays bounded, not perfectly flat.** Draining {} entries, the worker's JS \
             heap peaks at {} (a garbage-collected sawtooth; {} before) and its wasm memory at {} \
             (from {}); between 10 % and 90 % of the drain the wasm memory went from {} to {}{}.",
            count(m.entries as u64),
            mb(heap_peak),
            mb(first.worker_heap),
            mb(wasm_peak),
            mb(first.wasm_memory),
            mb(w10),
            mb(w90),
            if w90 > w10 * 1.1 {
                " — it keeps creeping up, which deserves a look (linear memory never shrinks)"
            } else {
                " — flat once the drain is under way"
            }
        );
        if let ([empty, .., full], Some(late), Some(early)) = (
            m.door.as_slice(),
            drain_rate(m, 0.8, 0.98),
            drain_rate(m, 0.0, 0.2),
        ) {
            let _ = writeln!(
                o,
                "* **Long queues in IndexedDB (the host's store, `crates/outbox-wasm/src/idb.rs`).** The fetch door queues {:.0}/s \
                 with an empty queue and {:.0}/s with {} queued, and the drain runs at {:.0}/s while \
                 {} are queued, {:.0}/s near the end. \
                 Enqueue counts the queue for `maxEntries` only when the span of queued `seq`s \
                 could reach the limit (`IDBObjectStore.count()` walks the records); a claim \
                 reads the heads of the lanes the store lists, all at once, and a survey (the \
                 first claim of a flush, at most once a minute) seeks from lane to lane on the \
                 lane index instead (O(lanes · log n), not a walk of the queue). What competes \
                 with the door once the fixture is queued is the flusher: offline, the fixture's \
                 100 lanes come due for retry and it tries them one probe at a time (the herd \
                 throttle's rule while an origin gives no answer), each probe a store transaction \
                 beside the door's enqueues. Extrapolating the two door rates linearly, \
                 queueing 100,000 entries through the door would take about {} — this benchmark \
                 seeds the bulk instead.",
                empty.per_s,
                full.per_s,
                count(full.queued as u64),
                early,
                count(m.entries as u64),
                late,
                secs(door_extrapolation_ms(empty, full, 100_000))
            );
        }
    }
    let _ = writeln!(o);
}

/// The goals of the thin browser host (issue 24), each from this run's
/// figures: met, or missed with the figure.
fn browser_goals(
    o: &mut String,
    b: Option<&browser::Results>,
    memory: Option<&browser::Memory>,
    site: &Path,
) {
    let mut goals: Vec<String> = Vec::new();
    let verdict = |met: bool| if met { "met" } else { "**missed**" };
    let gz = |files: &[&str]| browser::gzip_size(site, files).ok();
    if let Some(worker) = gz(OUTBOX_WORKER) {
        goals.push(format!(
            "worker {} (≤ 40 KB) {}",
            kb(worker),
            verdict(worker <= 40 * 1024)
        ));
    }
    if let Some(first) = gz(OUTBOX_FIRST_VISIT) {
        goals.push(format!(
            "first visit {} (≤ 60 KB) {}",
            kb(first),
            verdict(first <= 60 * 1024)
        ));
    }
    if let Some(b) = b.filter(|b| b.variants.len() == 3) {
        let (none, wb, ob) = (&b.variants[0], &b.variants[1], &b.variants[2]);
        let offline = |v: &Variant| v.drains.first().map_or(0.0, |d| d.enqueue.p50);
        for (what, o_ms, w_ms) in [
            ("offline send p50", offline(ob), offline(wb)),
            ("pass-through p50", ob.online.p50, wb.online.p50),
            ("cold start p50", ob.cold_start.p50, wb.cold_start.p50),
        ] {
            goals.push(format!(
                "{what} {} Workbox's (≤ 1.0×) {}",
                ratio(o_ms, w_ms),
                verdict(w_ms > 0.0 && o_ms <= w_ms)
            ));
        }
        for d in &ob.drains {
            let (base, goal, against) = if d.lanes == 1 {
                (drain(wb, d.messages, 1), 1.5, "Workbox")
            } else {
                (drain(none, d.messages, d.lanes), 0.9, "the bare page")
            };
            let Some(base) = base.filter(|b| b.per_s > 0.0) else {
                continue;
            };
            goals.push(format!(
                "drain of {} over {} {} {against}'s (≥ {goal}×) {}",
                count(d.messages as u64),
                if d.lanes == 1 {
                    "1 lane".to_owned()
                } else {
                    format!("{} lanes", d.lanes)
                },
                ratio(d.per_s, base.per_s),
                verdict(d.per_s >= goal * base.per_s)
            ));
        }
    }
    if let Some(m) = memory {
        if let (Some(empty), Some(at)) = (
            m.door.first(),
            m.door.iter().find(|d| d.queued == browser::DOOR_QUEUED),
        ) {
            goals.push(format!(
                "fetch door with {} queued {} its empty rate (≥ 0.95×) {}",
                count(at.queued as u64),
                ratio(at.per_s, empty.per_s),
                verdict(at.per_s >= 0.95 * empty.per_s)
            ));
        }
        let peak = m
            .samples
            .iter()
            .map(|s| s.worker_heap)
            .fold(0.0f64, f64::max);
        if peak > 0.0 {
            goals.push(format!(
                "worker heap peak {} with {} queued (≤ 32 MB) {}",
                mb(peak),
                count(m.entries as u64),
                verdict(peak <= 32.0 * 1024.0 * 1024.0)
            ));
        }
    }
    if !goals.is_empty() {
        let _ = writeln!(
            o,
            "* **The goals of the thin browser host (issue 24), from this run.** {}.",
            goals.join("; ")
        );
    }
}

// ---------------------------------------------------------------------------
// 5. Native host

fn native_section(o: &mut String, n: Option<&crate::native::NativeResults>, inputs: &Inputs) {
    let _ = writeln!(o, "## 5. Native host: `outbox serve` on SQLite\n");
    let flag = if inputs.quick { " --quick" } else { "" };
    let _ = writeln!(
        o,
        "Command: `cargo xtask bench{flag} --only native` (it builds the `outbox` binary in \
         release and runs `outbox-bench native --out target/bench-results --outbox \
         target/release/outbox --dir target/bench-native`). Everything on one disk, in one run: \
         a bare loop of single-row SQLite commits (WAL, `synchronous=FULL`, the proxy's own \
         settings) is the fsync ceiling; durable enqueues go through the proxy's API door \
         (each `202` answered once the entry is on disk), from one sender and from 32 at once, \
         into a queue whose upstream is a closed port; the proxy's resident memory is read once \
         the 32 senders have queued the whole count; delivery goes into a local sink that answers \
         `200` at once, the messages queued while it was down and the proxy restarted with it up, \
         timed from the sink's first request to its last.\n"
    );
    let Some(n) = n else {
        let _ = writeln!(o, "_Not run yet: `cargo xtask bench --only native`._\n");
        return;
    };
    let _ = writeln!(
        o,
        "Measured {} (this part's results file; the disk's sync rate on this shared machine \
         moved between 290 and 1,900 commits/s across runs of the same day, so compare within a run).\n",
        results_date(&inputs.results.join("native.json"))
    );
    let met = |ok: bool| if ok { "**met**" } else { "**blocked**" };
    let single_ratio = n.single.per_s / n.bare_commits_per_s.max(1e-9);
    let concurrent_ratio = n.concurrent.per_s / n.bare_commits_per_s.max(1e-9);
    let rss_mb = n.rss_bytes as f64 / (1024.0 * 1024.0);
    let (tx, commits) = n.concurrent_group;
    let _ = writeln!(o, "| measure | value | against | goal |\n|---|--:|---|---|");
    let _ = writeln!(
        o,
        "| bare SQLite commit loop ({} commits) | {:.0} commits/s | the fsync ceiling | — |",
        n.bare_commits, n.bare_commits_per_s
    );
    let _ = writeln!(
        o,
        "| durable enqueues, 1 sender ({} messages) | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms | {:.2}× the bare loop | ≥ 0.8×: {} |",
        n.single.messages,
        n.single.per_s,
        n.single.p50_ms,
        n.single.p99_ms,
        single_ratio,
        met(single_ratio >= 0.8)
    );
    let _ = writeln!(
        o,
        "| durable enqueues, 32 senders ({} messages) | {:.0}/s, p50 {:.1} ms, p99 {:.1} ms | {:.1}× the bare loop ({} transactions in {} synced commits: {:.1} a sync) | ≥ 10×: {} |",
        n.concurrent.messages,
        n.concurrent.per_s,
        n.concurrent.p50_ms,
        n.concurrent.p99_ms,
        concurrent_ratio,
        tx,
        commits,
        tx as f64 / commits.max(1) as f64,
        met(concurrent_ratio >= 10.0)
    );
    let _ = writeln!(
        o,
        "| resident memory with {} queued | {:.1} MB | — | ≤ 64 MB: {} |",
        count(n.rss_queued as u64),
        rss_mb,
        met(rss_mb <= 64.0)
    );
    let paced_rate = 150.0 / 60.0;
    let _ = writeln!(
        o,
        "| delivery, shipped pacing (150 a minute, burst 10; {} messages over {} lanes) | {:.2}/s | the pacer: {:.1}/s after a burst of 10 | limited by the pacer: {} |",
        n.paced.messages,
        n.paced.lanes,
        n.paced.per_s,
        paced_rate,
        met(n.paced.per_s <= paced_rate * 2.0 + 1.0)
    );
    let _ = writeln!(
        o,
        "| delivery, pacing lifted ({} messages over {} lanes) | {:.0}/s | {:.3} SQLite commits a message (not synced) | given, with its bound below |\n",
        n.lifted.messages, n.lifted.lanes, n.lifted.per_s, n.lifted.commits_per_message
    );
    let _ = writeln!(
        o,
        "**What bounds each.** A single sender waits for its own commit, so it cannot beat the \
         bare loop: one sync per message is the floor, and the rest costs {:.0} % on top here — \
         the proxy's HTTP and JSON, two thread hops each way (handler → engine → store writer), and \
         above all the flusher, which each enqueue wakes and whose claim reads every lane's head \
         (1,000 lanes here) on the same writer thread between two enqueues. Concurrent senders share commits (group commit: \
         the store's writer thread runs every transaction waiting when a sync ends inside one \
         SQLite transaction, each under a savepoint, and answers them all after one `COMMIT`), so \
         32 senders pay about one sync per round of 32 — what caps them is the engine thread and \
         the HTTP stack on 2 cores, not the disk. Only enqueues sync (core asks durability of them \
         alone); the flusher's claims and settles beside them commit with `synchronous=NORMAL` and \
         are synced by the next enqueue's commit. Delivery with the shipped pacing runs at the \
         pacer's 150 a minute after its burst: the host is idle between slots. With pacing \
         lifted, a flush cycle is one store transaction (settle the last cycle's answers and \
         claim up to a batch of 8 lane heads and the entries that follow them) and one round \
         of concurrent sends; {:.3} commits per message delivered here means about {:.0} \
         messages share each commit (none synced), so the rate is bounded by the batch size (8 requests in \
         flight, one per lane) times the sink's round trip, on one engine thread.\n",
        (1.0 - single_ratio).max(0.0) * 100.0,
        n.lifted.commits_per_message,
        1.0 / n.lifted.commits_per_message.max(1e-9)
    );
}

/// The section of `report` whose heading line starts with `heading`, up to
/// the next `## ` heading (its text as written).
fn section<'a>(report: &'a str, heading: &str) -> Option<&'a str> {
    let start = report
        .match_indices("\n## ")
        .map(|(i, _)| i + 1)
        .find(|&i| report[i..].starts_with(heading))?;
    let end = report[start + 3..]
        .find("\n## ")
        .map_or(report.len(), |i| start + 3 + i + 1);
    Some(&report[start..end])
}

/// When a results file was written (UTC), for a section that may be
/// carried into a later report.
fn results_date(path: &Path) -> String {
    let secs = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs());
    let days = (secs / 86_400) as i64;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs % 86_400 / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod section_tests {
    use super::section;

    #[test]
    fn a_section_runs_to_the_next_heading() {
        let md = "# B\n\n## 1. Herd\n\na\n### sub\n\n## 2. Browser\n\nb\n## Findings\n\nc\n";
        assert_eq!(section(md, "## 1. "), Some("## 1. Herd\n\na\n### sub\n\n"));
        assert_eq!(section(md, "## Findings"), Some("## Findings\n\nc\n"));
        assert_eq!(section(md, "## 5. "), None);
    }
}
