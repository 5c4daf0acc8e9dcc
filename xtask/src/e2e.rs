//! `cargo xtask e2e --browser chromium|firefox|webkit|all [-- <test filter and flags>]`:
//! installs what the named engines need, builds the bundle, and runs the
//! end-to-end suites (`crates/e2e`) once per engine — one test binary,
//! the engine chosen by `OUTBOX_BROWSER`. Each engine's run is timed; at
//! the end a summary names the engines that passed or failed and every
//! scenario an engine skipped, with the reason (the tests write them to
//! `target/e2e-artifacts/skipped-<engine>.txt`). With `--examples`, each
//! engine also drives the example apps (`tests/examples.rs`), built first
//! from the packed package as `cargo xtask examples` builds them;
//! `cargo xtask test` runs them in all three engines.
//!
//! [`store_suites`] runs the host's IndexedDB store's wasm suites
//! (`crates/host-tests`: the conformance suite and the store's own tests in
//! a page, the conformance suite in a service worker) in Firefox
//! (through `geckodriver`, installed with cargo) and WebKitGTK (through
//! `WebKitWebDriver`, which speaks the W3C session protocol the runner
//! uses for geckodriver; the runner's `webdriver.json` names MiniBrowser).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::build;
use crate::tools::{self, Need, Tools};

/// A browser engine, as `OUTBOX_BROWSER` spells it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Engine {
    Chromium,
    Firefox,
    Webkit,
}

impl Engine {
    const ALL: [Engine; 3] = [Engine::Chromium, Engine::Firefox, Engine::Webkit];

    /// The name `OUTBOX_BROWSER` takes.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Chromium => "chromium",
            Engine::Firefox => "firefox",
            Engine::Webkit => "webkit",
        }
    }
}

/// An engine named on the command line (`all`: the three).
#[derive(clap::ValueEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum BrowserArg {
    /// Chromium, through the DevTools protocol.
    Chromium,
    /// Firefox ESR, through WebDriver BiDi.
    Firefox,
    /// WebKitGTK, through WebKitWebDriver under Xvfb.
    Webkit,
    /// All three.
    All,
}

/// `cargo xtask e2e`: see the module documentation. With `examples`, the
/// npm package is packed and the example apps built from it
/// ([`crate::examples`]), and each engine runs them after its suites.
pub fn e2e(browsers: &[BrowserArg], examples: bool, passthrough: &[String]) -> Result<(), String> {
    let (engines, tools) = prepare(browsers)?;
    let bundle = build::build(&tools, None)?;
    if examples {
        crate::examples::build_examples(&crate::package::package(&bundle.dist)?)?;
    }
    run_engines(&engines, tools.chromium.as_deref(), passthrough, examples)
}

/// The engines `browsers` names (all three when none; each once, in the
/// order given), with everything they need installed.
pub fn prepare(browsers: &[BrowserArg]) -> Result<(Vec<Engine>, Tools), String> {
    let mut engines = Vec::new();
    for b in browsers {
        match b {
            BrowserArg::All => engines.extend(Engine::ALL),
            BrowserArg::Chromium => engines.push(Engine::Chromium),
            BrowserArg::Firefox => engines.push(Engine::Firefox),
            BrowserArg::Webkit => engines.push(Engine::Webkit),
        }
    }
    if engines.is_empty() {
        engines.extend(Engine::ALL);
    }
    let mut seen = Vec::new();
    engines.retain(|e| {
        let first = !seen.contains(e);
        seen.push(*e);
        first
    });
    let tools = Tools::ensure(if engines.contains(&Engine::Chromium) {
        Need::Everything
    } else {
        Need::Build
    })?;
    if engines.contains(&Engine::Firefox) {
        tools::ensure_firefox()?;
    }
    if engines.contains(&Engine::Webkit) {
        tools::ensure_webkit()?;
    }
    Ok((engines, tools))
}

/// `cargo test -p e2e --test examples -- --ignored`: the example apps, as
/// `cargo xtask examples` built them from the packed package, in the engine
/// `OUTBOX_BROWSER` names.
pub fn examples_tests(engine: Engine) -> Command {
    let mut test = tools::cargo();
    test.args([
        "test",
        "-p",
        "e2e",
        "--test",
        "examples",
        "--",
        "--ignored",
        "--test-threads=1",
    ])
    .env("OUTBOX_BROWSER", engine.name());
    test
}

/// Runs the e2e test binaries once per engine (and the example apps' when
/// `examples`: they must have been built), then prints the summary; fails
/// when any engine failed (after running them all).
fn run_engines(
    engines: &[Engine],
    chromium: Option<&Path>,
    passthrough: &[String],
    examples: bool,
) -> Result<(), String> {
    let artifacts = tools::root().join("target").join("e2e-artifacts");
    let mut results = Vec::new();
    for &engine in engines {
        let skipped = artifacts.join(format!("skipped-{}.txt", engine.name()));
        let _ = std::fs::remove_file(&skipped);
        let mut test = tools::cargo();
        test.args(["test", "-p", "e2e", "--", "--test-threads=1"])
            .args(passthrough)
            .env("OUTBOX_BROWSER", engine.name());
        if let Some(chrome) = chromium {
            test.env("CHROME", chrome);
        }
        eprintln!("xtask: end-to-end suites in {}", engine.name());
        let started = Instant::now();
        let mut outcome = tools::run(&mut test);
        if examples {
            eprintln!("xtask: the example apps in {}", engine.name());
            let mut apps = examples_tests(engine);
            apps.args(passthrough);
            if let Some(chrome) = chromium {
                apps.env("CHROME", chrome);
            }
            outcome = outcome.and(tools::run(&mut apps));
        }
        let took = started.elapsed();
        let skips = std::fs::read_to_string(&skipped).unwrap_or_default();
        results.push((engine, outcome, took, skips));
    }
    eprintln!("\nxtask: end-to-end summary");
    let mut failed = Vec::new();
    for (engine, outcome, took, skips) in &results {
        let verdict = if outcome.is_ok() { "passed" } else { "FAILED" };
        eprintln!("  {:<8} {verdict} in {}", engine.name(), minutes(*took));
        for line in skips.lines() {
            eprintln!("           skipped {line}");
        }
        if outcome.is_err() {
            failed.push(engine.name());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(format!("end-to-end suites failed in {}", failed.join(", ")))
    }
}

fn minutes(d: Duration) -> String {
    format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
}

/// What `cargo xtask test` runs beyond Chromium, once the bundle and the
/// example apps are built: the store's wasm suites, and the end-to-end
/// suites and the example apps in Firefox and WebKit.
pub fn other_engines() -> Result<(), String> {
    tools::ensure_firefox()?;
    tools::ensure_webkit()?;
    store_suites()?;
    run_engines(&[Engine::Firefox, Engine::Webkit], None, &[], true)
}

/// The store's wasm suites (`cargo test -p host-tests --target wasm32`:
/// page and service-worker conformance, the store's own tests) in Firefox
/// and WebKitGTK.
fn store_suites() -> Result<(), String> {
    let firefox = tools::ensure_firefox()?;
    tools::run(
        wasm_tests()
            .env("GECKODRIVER", firefox_driver()?)
            .env("FIREFOX", &firefox),
    )?;
    let (driver, xvfb) = tools::ensure_webkit()?;
    let minibrowser = minibrowser().ok_or(
        "no MiniBrowser found under /usr/lib/*/webkit2gtk-4.1 (Debian: libwebkit2gtk-4.1-0)",
    )?;
    let capabilities = tools::root().join("target").join("webkit-webdriver.json");
    let json = format!(
        "{{\"webkitgtk:browserOptions\": {{\"binary\": {:?}, \"args\": [\"--automation\"]}}}}",
        minibrowser.display().to_string()
    );
    std::fs::create_dir_all(tools::root().join("target"))
        .and_then(|()| std::fs::write(&capabilities, json))
        .map_err(|e| format!("cannot write {}: {e}", capabilities.display()))?;
    let display = Display::start(&xvfb)?;
    // The runner speaks W3C sessions to a driver named GECKODRIVER; so
    // does WebKitWebDriver, which ignores the Firefox options it adds.
    tools::run(
        wasm_tests()
            .env("GECKODRIVER", &driver)
            .env("WASM_BINDGEN_TEST_WEBDRIVER_JSON", &capabilities)
            .env("DISPLAY", &display.name),
    )
}

/// `cargo test -p host-tests` for the browser, as in the Chromium run.
fn wasm_tests() -> Command {
    let mut test = tools::cargo();
    test.args(["test", "-p", "host-tests", "--target", tools::WASM_TARGET])
        .env_remove("CHROMEDRIVER")
        .env("WASM_BINDGEN_USE_NO_MODULE", "1")
        .env("WASM_BINDGEN_TEST_TIMEOUT", "120");
    test
}

/// `bidi-webdriver` (crates/e2e): the classic WebDriver commands the wasm
/// test runner uses, over Firefox's own WebDriver BiDi. It replaces
/// `geckodriver`, which has no Debian package and takes about 6 minutes to
/// compile on 2 cores; `GECKODRIVER` still wins when set.
fn firefox_driver() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("GECKODRIVER") {
        return Ok(PathBuf::from(p));
    }
    tools::run(tools::cargo().args(["build", "-p", "e2e", "--bin", "bidi-webdriver"]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"));
    Ok(target.join("debug").join("bidi-webdriver"))
}

/// WebKitGTK's MiniBrowser (`WEBKIT_BROWSER`, else Debian's, any
/// architecture).
fn minibrowser() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("WEBKIT_BROWSER") {
        return Some(PathBuf::from(p));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib")
        .ok()?
        .flatten()
        .map(|arch| arch.path().join("webkit2gtk-4.1").join("MiniBrowser"))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.into_iter().next()
}

/// An Xvfb display for the length of a run.
struct Display {
    child: Child,
    name: String,
}

impl Display {
    fn start(xvfb: &Path) -> Result<Display, String> {
        use std::io::BufRead as _;
        let mut child = Command::new(xvfb)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x900x24",
                "-nolisten",
                "tcp",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", xvfb.display()))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            let _ = std::io::BufReader::new(out).read_line(&mut line);
        }
        let number = line.trim();
        if number.is_empty() {
            let _ = child.kill();
            return Err("Xvfb did not report a display".into());
        }
        Ok(Display {
            name: format!(":{number}"),
            child,
        })
    }
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
