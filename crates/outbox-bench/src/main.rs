//! `outbox-bench`: runs one part of the benchmarks and writes its results
//! as JSON; `report` turns them into `BENCHMARKS.md`. `cargo xtask bench`
//! runs every part in order (see the crate docs).
//!
//! ```text
//! outbox-bench herd    [--quick] [--scenario NAME] --out DIR
//! outbox-bench browser [--quick] --out DIR --site DIR --web DIR
//! outbox-bench memory  [--entries N] --out DIR --site DIR --web DIR   (the memory part alone)
//! outbox-bench native  [--quick] --out DIR --outbox BIN --dir DIR
//! outbox-bench report  [--quick] --results DIR --criterion DIR --site DIR --write FILE --svg FILE [--elapsed S] [--only PART]
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use outbox_bench::{browser, herd, native, report};

/// The harness's allocator: the herd simulation allocates and frees entries
/// at every step of every client, and runs faster on mimalloc than on
/// glibc's allocator (the measured `outbox` binary and the browser are
/// other processes).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn flag(args: &[String], name: &str) -> Option<PathBuf> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
}

fn need(args: &[String], name: &str) -> Result<PathBuf, String> {
    flag(args, name).ok_or_else(|| format!("missing {name} <path>"))
}

fn write_json<T: serde::Serialize>(
    dir: &std::path::Path,
    name: &str,
    value: &T,
) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let text = serde_json::to_string(value).map_err(|e| e.to_string())?;
    std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let result = match args.first().map(String::as_str) {
        Some("herd") => need(&args, "--out").and_then(|out| {
            let only = flag(&args, "--scenario").and_then(|s| s.to_str().map(str::to_owned));
            let results = herd::run_all(quick, only.as_deref(), |r| {
                eprintln!(
                    "bench: herd: {} {}: lost {} first {:.1} s p99 {:.1} s ({:.2}× ideal) peak {:.2}× 429 {} 503 {} of {} ({} ms)",
                    r.scenario.name,
                    r.strategy.key(),
                    r.lost,
                    r.first_p50_ms as f64 / 1e3,
                    r.p99_ms as f64 / 1e3,
                    r.p99_ms as f64 / r.scenario.ideal_ms().max(1) as f64,
                    r.peak_load,
                    r.too_many,
                    r.shed,
                    r.requests,
                    r.wall_ms
                )
            });
            write_json(&out, "herd.json", &results)
        }),
        Some(part @ ("browser" | "memory")) => (|| {
            let out = need(&args, "--out")?;
            let options = browser::Options {
                quick,
                site: need(&args, "--site")?,
                web: need(&args, "--web")?,
                memory_entries: flag(&args, "--entries")
                    .and_then(|e| e.to_str()?.parse().ok())
                    .unwrap_or(if quick { 5_000 } else { 100_000 }),
                variants: part == "browser",
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let results = runtime.block_on(browser::run(&options))?;
            write_json(&out, &format!("{part}.json"), &results)
        })(),
        Some("native") => (|| {
            let out = need(&args, "--out")?;
            let options = native::Options {
                outbox: need(&args, "--outbox")?,
                dir: need(&args, "--dir")?,
                quick,
            };
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            let results = runtime.block_on(native::run(&options))?;
            eprintln!("bench: native: {results:?}");
            write_json(&out, "native.json", &results)
        })(),
        Some("report") => (|| {
            let inputs = report::Inputs {
                quick,
                results: need(&args, "--results")?,
                criterion: need(&args, "--criterion")?,
                site: need(&args, "--site")?,
                elapsed_s: flag(&args, "--elapsed").and_then(|e| e.to_str()?.parse().ok()),
                only: flag(&args, "--only").and_then(|p| p.to_str().map(str::to_owned)),
            };
            report::write(&inputs, &need(&args, "--write")?, &need(&args, "--svg")?)
        })(),
        _ => Err("usage: outbox-bench herd|browser|report [--quick] … (see the source)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("outbox-bench: {e}");
            ExitCode::FAILURE
        }
    }
}
