//! Project automation for Outbox.
//!
//! `cargo xtask test` installs what is missing and runs every test;
//! `cargo xtask demo` builds and serves the demo. Every install step lives
//! here (never in a shell history) so that a fresh machine behaves like a
//! developer's.

mod tools;

use std::process::ExitCode;

/// What `cargo xtask` was asked to do.
const USAGE: &str = "\
usage: cargo xtask <command> [options]

commands:
  test      install what is missing, then run every test (native, wasm, end-to-end)
  demo      install what is missing, build, and serve the demo with the emulator
  build     build the browser bundle into dist/
  bench     run the benchmarks and write BENCHMARKS.md
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
        "demo" | "build" | "bench" => Err(format!(
            "`cargo xtask {command}` does not exist yet: it arrives with its issue (see `issues`)."
        )),
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

/// `cargo xtask test`: lint, then every suite.
fn test(_args: &[String]) -> Result<(), String> {
    let _tools = tools::Tools::ensure(tools::Need::Everything)?;
    tools::run(tools::cargo().args(["fmt", "--all", "--check"]))?;
    tools::run(tools::cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    tools::run(tools::cargo().args(["test", "--workspace"]))?;
    // The engine must stay free of I/O and build for the browser.
    tools::run(tools::cargo().args([
        "build",
        "-p",
        "outbox-core",
        "--target",
        tools::WASM_TARGET,
    ]))?;
    Ok(())
}
