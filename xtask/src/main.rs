//! Project automation for Outbox.
//!
//! `cargo xtask test` installs what is missing and runs every test;
//! `cargo xtask demo` builds and serves the demo; `cargo xtask bench`
//! runs the benchmarks and writes `BENCHMARKS.md`. Every install step lives
//! here (never in a shell history) so that a fresh machine behaves like a
//! developer's.

mod bench;
mod build;
mod e2e;
mod tools;

use std::process::ExitCode;

/// What `cargo xtask` was asked to do.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test      install what is missing, then run every test (native, wasm, end-to-end; Chromium, Firefox, WebKit)
  demo      install what is missing, build, and serve the demo with the emulator
            (flags: --port, --emulator-port, --bind, --region DOMAIN; see `cargo xtask demo --help`)
  build     build the browser bundle into dist/
  e2e       run the end-to-end suites in real browsers [--browser chromium|firefox|webkit|all]
  bench     run the benchmarks and write BENCHMARKS.md [--quick] [--only herd|browser|micro|memory]
  install   only install the tools (wasm target, wasm-bindgen-cli, wasm-opt, chromium)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(command) = args.first() else {
        eprint!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match command.as_str() {
        "test" => test(rest),
        "install" => tools::Tools::ensure(tools::Need::Everything).map(|_| ()),
        "build" => tools::Tools::ensure(tools::Need::Build)
            .and_then(|t| build::build(&t, None).map(|_| ())),
        "demo" => demo(rest),
        "bench" => bench::bench(rest),
        "e2e" => e2e::e2e(rest),
        "-h" | "--help" | "help" => {
            print!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The crates that only build for the browser.
const WASM_CRATES: &[&str] = &["outbox-web", "outbox-sw", "outbox-page"];

/// `cargo xtask test`: lint, then every suite — native, wasm in Chromium
/// (page and service worker), end-to-end; then the wasm and end-to-end
/// suites in Firefox and WebKit.
fn test(_args: &[String]) -> Result<(), String> {
    let tools = tools::Tools::ensure(tools::Need::Everything)?;
    let chromedriver = tools.chromedriver.clone().unwrap_or_default();
    tools::run(tools::cargo().args(["fmt", "--all", "--check"]))?;
    tools::run(tools::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    let mut wasm_clippy = tools::cargo();
    wasm_clippy.arg("clippy");
    for c in WASM_CRATES {
        wasm_clippy.args(["-p", c]);
    }
    tools::run(wasm_clippy.args([
        "--target",
        tools::WASM_TARGET,
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // The engine must stay free of I/O and build for the browser.
    tools::run(tools::cargo().args([
        "build",
        "-p",
        "outbox-core",
        "--target",
        tools::WASM_TARGET,
    ]))?;
    tools::run(tools::cargo().args(["test", "--workspace", "--exclude", "e2e"]))?;
    // The IndexedDB store in real Chromium: unit tests and the conformance
    // suite in a page, then the suite inside a service worker (one binary
    // after the other, each with its own browser).
    tools::run(
        tools::cargo()
            .args(["test", "-p", "outbox-web", "--target", tools::WASM_TARGET])
            .env("CHROMEDRIVER", &chromedriver)
            .env("WASM_BINDGEN_USE_NO_MODULE", "1")
            .env("WASM_BINDGEN_TEST_TIMEOUT", "120"),
    )?;
    // End to end: the real bundle, service worker, IndexedDB, emulator.
    build::build(&tools, None)?;
    tools::run(
        tools::cargo()
            .args(["test", "-p", "e2e", "--", "--test-threads=1"])
            .env("CHROME", tools.chromium.clone().unwrap_or_default()),
    )?;
    // Firefox and WebKit: the store's wasm suites and the end-to-end suites.
    e2e::other_engines()?;
    Ok(())
}

/// `cargo xtask demo [--port P] [--emulator-port P] [--bind IP] [--region DOMAIN] [--dist DIR]`:
/// installs what is missing, builds the bundle, then runs `outbox-demo`
/// with the same arguments. On Unix the server replaces this process, so
/// that Ctrl-C reaches it alone and it stops the page server and the
/// emulator cleanly.
fn demo(args: &[String]) -> Result<(), String> {
    let mut run = tools::cargo();
    run.args(["run", "-p", "outbox-demo", "--"]);
    if args.iter().any(|a| a == "-h" || a == "--help") {
        // No bundle needed to read the flags.
        run.args(args);
        return exec(run);
    }
    if args
        .iter()
        .any(|a| a == "--region" || a.starts_with("--region="))
    {
        // Say it before minutes of building, not after.
        for (flag, var) in [
            ("--client-id", "OUTBOX_CLIENT_ID"),
            ("--client-secret", "OUTBOX_CLIENT_SECRET"),
        ] {
            let given = args
                .iter()
                .any(|a| a == flag || a.starts_with(&format!("{flag}=")))
                || std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
            if !given {
                return Err("real region mode needs OAuth client credentials: set OUTBOX_CLIENT_ID and OUTBOX_CLIENT_SECRET (a client-credentials client of your org)".into());
            }
        }
    }
    let tools = tools::Tools::ensure(tools::Need::Build)?;
    let bundle = build::build(&tools, None)?;
    if !args
        .iter()
        .any(|a| a == "--dist" || a.starts_with("--dist="))
    {
        run.arg("--dist").arg(&bundle.dist);
    }
    run.args(args);
    exec(run)
}

/// Runs `command` in place of this process (Unix), or as a child whose
/// failure becomes an error.
fn exec(mut command: std::process::Command) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt as _;
        eprintln!("xtask: $ {}", tools::describe(&command));
        let error = command.exec();
        Err(format!(
            "could not start `{}`: {error}",
            tools::describe(&command)
        ))
    }
    #[cfg(not(unix))]
    {
        tools::run(&mut command)
    }
}
