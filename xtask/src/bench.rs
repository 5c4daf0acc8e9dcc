//! `cargo xtask bench [--quick] [--only herd|browser|micro|memory|native|fleet]`:
//! runs the benchmarks of `crates/outbox-bench` and `crates/outbox-fleet-bench`
//! (PostgreSQL, a throw-away cluster) and writes `BENCHMARKS.md`.
//!
//! Steps: install what is missing (wasm tools; Chromium for the browser
//! parts; `npm ci` in `bench/` for Workbox and esbuild), build the bundle,
//! stage it with the esbuild-bundled Workbox worker in
//! `target/bench-site/`, then run the Criterion micro-benchmarks, the herd
//! simulation, the browser benchmark (which ends with the memory part) and
//! the native host's (`outbox serve` on SQLite), and write the report. `--quick` keeps the whole run under five minutes
//! once everything is compiled; `--only` runs one part and rewrites the
//! report with the other parts' last results.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::build;
use crate::tools::{self, Need, Tools};

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"))
}

/// One part of the benchmarks.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// The herd simulation.
    Herd,
    /// The browser benchmark (ends with the memory part).
    Browser,
    /// The Criterion micro-benchmarks.
    Micro,
    /// The browser memory part alone.
    Memory,
    /// The native host: `outbox serve` on SQLite (enqueues against the
    /// bare commit loop, memory with 100,000 queued, delivery).
    Native,
    /// Outbox instances on one PostgreSQL queue against a bare SKIP LOCKED
    /// loop (`crates/outbox-fleet-bench`).
    Fleet,
}

impl Part {
    fn name(self) -> &'static str {
        match self {
            Part::Herd => "herd",
            Part::Browser => "browser",
            Part::Micro => "micro",
            Part::Memory => "memory",
            Part::Native => "native",
            Part::Fleet => "fleet",
        }
    }
}

/// The flags of `cargo xtask bench`.
#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    /// Keep the whole run under five minutes once everything is compiled.
    #[arg(long)]
    pub quick: bool,
    /// Run one part only, and rewrite the report with the other parts' last results.
    #[arg(long, value_enum)]
    pub only: Option<Part>,
}

/// Runs the benchmarks.
pub fn bench(args: &BenchArgs) -> Result<(), String> {
    let started = Instant::now();
    let quick = args.quick;
    let only = args.only.map(Part::name);
    let want = |p: &str| only.is_none_or(|o| o == p);
    let browser_parts = want("browser") || want("memory");
    let tools = Tools::ensure(if browser_parts {
        Need::Everything
    } else {
        Need::Build
    })?;
    let root = tools::root();
    let target = target_dir();
    let results = target.join("bench-results");
    let site = target.join("bench-site");
    if only.is_none() {
        // A full run starts from nothing: no stale part can leak into the report.
        let _ = std::fs::remove_dir_all(&results);
    }
    std::fs::create_dir_all(&results).map_err(|e| e.to_string())?;

    // The bundle, staged with the Workbox worker (sizes are reported from
    // here); the native part alone needs none of it.
    if only != Some("native") {
        npm_ci(&root.join("bench"))?;
        let bundle = build::build(&tools, None)?;
        stage(&bundle.dist, &site, &root.join("bench"))?;
    }

    let q: &[&str] = if quick { &["--quick"] } else { &[] };
    let out = results.to_string_lossy().into_owned();
    let site_arg = site.to_string_lossy().into_owned();
    let web = root
        .join("bench")
        .join("web")
        .to_string_lossy()
        .into_owned();
    let chrome = tools.chromium.clone().unwrap_or_default();

    if want("micro") {
        // Only this run's benchmarks (renamed ones would linger).
        let _ = std::fs::remove_dir_all(target.join("criterion"));
        let mut cmd = tools::cargo();
        cmd.args(["bench", "-p", "outbox-bench", "--bench", "engine"]);
        if quick {
            cmd.args(["--", "--warm-up-time", "0.3", "--measurement-time", "1"]);
        }
        tools::run(&mut cmd)?;
    }
    let bench_bin = |part: &str| {
        let mut cmd = tools::cargo();
        cmd.args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "outbox-bench",
            "--",
            part,
        ]);
        cmd.args(q);
        cmd
    };
    if want("herd") {
        tools::run(bench_bin("herd").args(["--out", &out]))?;
    }
    if want("browser") {
        tools::run(
            bench_bin("browser")
                .args(["--out", &out, "--site", &site_arg, "--web", &web])
                .env("CHROME", &chrome),
        )?;
    } else if want("memory") {
        tools::run(
            bench_bin("memory")
                .args(["--out", &out, "--site", &site_arg, "--web", &web])
                .env("CHROME", &chrome),
        )?;
    }
    if want("native") {
        // The `outbox` binary as it ships (release), on this disk.
        tools::run(tools::cargo().args(["build", "--release", "--quiet", "-p", "outbox-server"]))?;
        tools::run(bench_bin("native").args([
            "--out",
            &out,
            "--outbox",
            &target.join("release").join("outbox").to_string_lossy(),
            "--dir",
            &target.join("bench-native").to_string_lossy(),
        ]))?;
    }
    // The fleet part: its own binary and its own section of the report
    // (between markers, kept from the last run when not run now), run
    // before the report so that the duration it gives is the whole run's.
    let fleet = results.join("fleet.md");
    if want("fleet") {
        tools::ensure_postgres()?;
        let mut cmd = tools::cargo();
        cmd.args([
            "run",
            "--release",
            "--quiet",
            "-p",
            "outbox-fleet-bench",
            "--",
        ])
        .arg(&fleet);
        if quick {
            cmd.env("OUTBOX_FLEET_BENCH_MESSAGES", "2000");
        }
        tools::run(&mut cmd)?;
    }
    let md = root.join("BENCHMARKS.md");
    let svg = root.join("docs").join("herd.svg");
    tools::run(
        bench_bin("report")
            .args([
                "--results",
                &out,
                "--criterion",
                &target.join("criterion").to_string_lossy(),
                "--site",
                &site_arg,
                "--write",
                &md.to_string_lossy(),
                "--svg",
                &svg.to_string_lossy(),
                "--elapsed",
                &format!("{:.0}", started.elapsed().as_secs_f64()),
            ])
            .args(only.map(|part| ["--only", part]).into_iter().flatten()),
    )?;
    if let Ok(section) = std::fs::read_to_string(&fleet) {
        splice_fleet(&md, &section)?;
    }
    eprintln!(
        "xtask: wrote {} and {} in {:.0} s",
        md.display(),
        svg.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Puts the fleet benchmark's `section` into the report at `md`, between
/// its markers (appended the first time).
fn splice_fleet(md: &Path, section: &str) -> Result<(), String> {
    const BEGIN: &str = "<!-- fleet-bench:begin (cargo xtask bench --only fleet) -->";
    const END: &str = "<!-- fleet-bench:end -->";
    let text = std::fs::read_to_string(md).map_err(|e| format!("{}: {e}", md.display()))?;
    let block = format!(
        "{BEGIN}\n## Outbox for many instances: one PostgreSQL queue (measured)\n\n{}\n{END}",
        section.trim_end()
    );
    let new = match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if e > b => format!("{}{block}{}", &text[..b], &text[e + END.len()..]),
        _ => format!("{}\n\n{block}\n", text.trim_end()),
    };
    std::fs::write(md, new).map_err(|e| format!("{}: {e}", md.display()))
}

/// `npm ci` in `bench/` (Workbox and esbuild, dev-only), unless its
/// `node_modules` already matches the lock file.
fn npm_ci(dir: &Path) -> Result<(), String> {
    let lock = dir.join("package-lock.json");
    let installed = dir.join("node_modules").join(".package-lock.json");
    let fresh = match (std::fs::metadata(&lock), std::fs::metadata(&installed)) {
        (Ok(l), Ok(i)) => matches!((l.modified(), i.modified()), (Ok(a), Ok(b)) if b >= a),
        _ => false,
    };
    if fresh && dir.join("node_modules/.bin/esbuild").exists() {
        return Ok(());
    }
    if Command::new("npm").arg("--version").output().is_err() {
        return Err(
            "the browser benchmark bundles Workbox with npm packages, but `npm` is not installed; \
             install Node.js and npm (Debian: `apt-get install nodejs npm`)"
                .into(),
        );
    }
    eprintln!(
        "xtask: installing the benchmark's npm packages (Workbox, esbuild) into bench/node_modules"
    );
    tools::run(
        Command::new("npm")
            .current_dir(dir)
            .args(["ci", "--no-audit", "--no-fund"]),
    )
}

/// Copies the bundle into `site` and bundles the Workbox worker there.
fn stage(dist: &Path, site: &Path, bench: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(site);
    std::fs::create_dir_all(site).map_err(|e| format!("{}: {e}", site.display()))?;
    for entry in std::fs::read_dir(dist)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), site.join(entry.file_name()))
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    tools::run(
        Command::new(bench.join("node_modules/.bin/esbuild"))
            .current_dir(bench)
            .args([
                "workbox-sw.js",
                "--bundle",
                "--minify",
                "--format=iife",
                "--define:process.env.NODE_ENV=\"production\"",
                "--log-level=warning",
            ])
            .arg(format!(
                "--outfile={}",
                site.join("workbox-sw.js").display()
            )),
    )
}
