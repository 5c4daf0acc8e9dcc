//! Project automation for Outbox.
//!
//! `cargo xtask test` installs what is missing and runs every test;
//! `cargo xtask demo` builds and serves the demo; `cargo xtask bench`
//! runs the benchmarks and writes `BENCHMARKS.md`. Every install step lives
//! here (never in a shell history) so that a fresh machine behaves like a
//! developer's.
//!
//! Arguments are parsed by clap before anything runs: `--help` on any
//! subcommand prints and exits 0 without installing or building, and an
//! unknown flag or a bad value exits 2 at once. A new subcommand is one
//! variant of [`Command`] (its flags as fields, or a `Vec<String>` of
//! arguments handed on) and one arm in [`main`].

mod bench;
mod build;
mod chaos;
mod e2e;
mod examples;
mod fuzz;
mod package;
mod size;
mod tools;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Outbox's project automation: installs what is missing, then builds,
/// tests, serves the demo or runs the benchmarks.
#[derive(Parser, Debug)]
#[command(name = "cargo xtask", bin_name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What `cargo xtask` was asked to do.
#[derive(Subcommand, Debug)]
enum Command {
    /// Install what is missing, then run every test (native, wasm, end-to-end).
    Test,
    /// Install what is missing, build, and serve the demo with the emulator.
    Demo(DemoArgs),
    /// Build the browser bundle into dist/.
    Build {
        /// Output folder (default: dist/ at the repository root).
        #[arg(long, value_name = "DIR")]
        dist: Option<PathBuf>,
    },
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench(bench::BenchArgs),
    /// Build the bundle and the npm package (target/npm/): check its types,
    /// lint it (publint), pack it.
    Package,
    /// Package, then install the tarball into each example app (examples/)
    /// under target/examples/, build and type-check it.
    Examples,
    /// Only install the tools (wasm target, wasm-bindgen-cli, wasm-opt, chromium).
    Install,
    /// Run the end-to-end suites (crates/e2e) in real browsers, timed per
    /// engine, with every skipped scenario named.
    E2e {
        /// Engines, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "all")]
        browser: Vec<e2e::BrowserArg>,
        /// Also pack the npm package, build the example apps from it
        /// (as `examples` does) and drive them in each engine.
        #[arg(long)]
        examples: bool,
        /// Arguments for the test binaries (e.g. a test name filter), after `--`.
        #[arg(last = true)]
        rest: Vec<String>,
    },
    /// Fuzz every parser of outside input (crates/outbox-fuzz and the
    /// emulator's and codec's targets), printing the count per parser.
    Fuzz {
        /// Generated inputs per parser.
        #[arg(long, default_value_t = 1_000_000)]
        cases: u64,
        /// Seed (replays a reported failure).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// A longer end-to-end chaos run (crates/e2e/tests/chaos.rs).
    Chaos {
        /// Seed of the fault schedule (drawn and printed when not given).
        #[arg(long)]
        seed: Option<u64>,
        /// Messages to send.
        #[arg(long, default_value_t = chaos::DEFAULT_MESSAGES)]
        messages: u64,
        /// Engines, comma-separated (each runs the same seed).
        #[arg(long, value_enum, value_delimiter = ',', default_value = "chromium")]
        browser: Vec<e2e::BrowserArg>,
    },
}

fn main() -> ExitCode {
    // Usage errors exit 2 (clap's convention); `--help` exits 0.
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Test => test(),
        Command::Install => tools::Tools::ensure(tools::Need::Everything).map(|_| ()),
        Command::Build { dist } => tools::Tools::ensure(tools::Need::Build)
            .and_then(|t| build::build(&t, dist.as_deref()).map(|_| ())),
        Command::Demo(args) => demo(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Package => tools::Tools::ensure(tools::Need::Build)
            .and_then(|t| build::build(&t, None))
            .and_then(|b| package::package(&b.dist))
            .map(|_| ()),
        Command::Chaos {
            seed,
            messages,
            browser,
        } => chaos::chaos(seed, messages, &browser),
        Command::Fuzz { cases, seed } => fuzz::fuzz(cases, seed),
        Command::E2e {
            browser,
            examples,
            rest,
        } => e2e::e2e(&browser, examples, &rest),
        Command::Examples => tools::Tools::ensure(tools::Need::Build)
            .and_then(|t| build::build(&t, None))
            .and_then(|b| package::package(&b.dist))
            .and_then(|p| examples::build_examples(&p)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The crates linted for the browser with their tests (the core module is
/// linted apart, as it ships: see [`test`]).
const WASM_CRATES: &[&str] = &["host-tests"];

/// `cargo xtask test`: lint, then every suite — native, wasm in Chromium
/// (page and service worker), end-to-end; then the wasm and end-to-end
/// suites in Firefox and WebKit.
fn test() -> Result<(), String> {
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
    // For the browser: the core module as it ships (its exports, allocator
    // and panic handler: the library alone), then the crates around it
    // with their tests (the store's browser tests).
    tools::run(tools::cargo().args([
        "clippy",
        "-p",
        "genesys-outbox-wasm",
        "--features",
        "module",
        "--lib",
        "--target",
        tools::WASM_TARGET,
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
        "genesys-outbox-core",
        "--target",
        tools::WASM_TARGET,
    ]))?;
    // One throw-away PostgreSQL cluster for every test process of the run
    // (the PostgreSQL store's suites, the fleet crash test); stopped when
    // this function returns, on failure too, and with this process if it
    // dies.
    tools::ensure_postgres()?;
    let started = std::time::Instant::now();
    let cluster = pg_throwaway::Cluster::start().map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: throw-away PostgreSQL on port {} (started in {:.1?})",
        cluster.port(),
        started.elapsed()
    );
    tools::run(
        tools::cargo()
            .args(["test", "--workspace", "--exclude", "e2e"])
            .env(pg_throwaway::ENV_URL, cluster.url()),
    )?;
    drop(cluster);
    // The host's IndexedDB store in real Chromium: the conformance suite
    // and its own tests in a page, then the suite inside a service worker
    // (one binary after the other, each with its own browser).
    tools::run(
        tools::cargo()
            .args(["test", "-p", "host-tests", "--target", tools::WASM_TARGET])
            .env("CHROMEDRIVER", &chromedriver)
            .env("WASM_BINDGEN_USE_NO_MODULE", "1")
            .env("WASM_BINDGEN_TEST_TIMEOUT", "120"),
    )?;
    // End to end: the real bundle, service worker, IndexedDB, emulator;
    // the npm package (types, publint) as an app installs it.
    let bundle = build::build(&tools, None)?;
    let npm_package = package::package(&bundle.dist)?;
    let chrome = tools.chromium.clone().unwrap_or_default();
    tools::run(
        tools::cargo()
            .args(["test", "-p", "e2e", "--", "--test-threads=1"])
            .env("CHROME", &chrome),
    )?;
    // The example apps, built from the packed package as a user would.
    examples::build_examples(&npm_package)?;
    tools::run(e2e::examples_tests(e2e::Engine::Chromium).env("CHROME", &chrome))?;
    // Firefox and WebKit: the store's wasm suites, the end-to-end suites
    // and the example apps.
    e2e::other_engines()?;
    Ok(())
}

/// The flags of `cargo xtask demo`, handed on to `outbox-demo` (they mirror
/// its own, so that a wrong one is refused before minutes of building).
#[derive(Args, Debug)]
struct DemoArgs {
    /// Port of the demo page and token broker [default: 8080].
    #[arg(long)]
    port: Option<u16>,
    /// Port of the embedded Genesys Cloud emulator [default: 8081].
    #[arg(long)]
    emulator_port: Option<u16>,
    /// Address to bind both servers to [default: 127.0.0.1].
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// The browser bundle folder [default: the one this command builds].
    #[arg(long, value_name = "DIR")]
    dist: Option<PathBuf>,
    /// The `web/` folder holding `demo/` and `test/`.
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// Use the real Genesys Cloud region DOMAIN (e.g. mypurecloud.ie) instead of
    /// the emulator; credentials come from OUTBOX_CLIENT_ID / OUTBOX_CLIENT_SECRET.
    #[arg(long, value_name = "DOMAIN")]
    region: Option<String>,
    /// OAuth client id (real region mode) [env: OUTBOX_CLIENT_ID].
    #[arg(long)]
    client_id: Option<String>,
    /// OAuth client secret (real region mode; never sent to a browser)
    /// [env: OUTBOX_CLIENT_SECRET].
    #[arg(long)]
    client_secret: Option<String>,
    /// Replace the region's login/api hosts with this base URL (testing).
    #[arg(long, hide = true)]
    upstream_override: Option<String>,
    /// Web Messaging deployment id for the guest chat [default: demo-deployment].
    #[arg(long)]
    deployment: Option<String>,
}

impl DemoArgs {
    /// The flags as `outbox-demo` reads them.
    fn forwarded(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut flag = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                out.push(format!("--{name}"));
                out.push(value);
            }
        };
        flag("port", self.port.map(|p| p.to_string()));
        flag("emulator-port", self.emulator_port.map(|p| p.to_string()));
        flag("bind", self.bind.map(|b| b.to_string()));
        flag("dist", self.dist.as_ref().map(|d| d.display().to_string()));
        flag("web", self.web.as_ref().map(|d| d.display().to_string()));
        flag("region", self.region.clone());
        flag("client-id", self.client_id.clone());
        flag("client-secret", self.client_secret.clone());
        flag("upstream-override", self.upstream_override.clone());
        flag("deployment", self.deployment.clone());
        out
    }
}

/// `cargo xtask demo [flags]`: installs what is missing, builds the bundle,
/// then runs `outbox-demo` with the same flags. On Unix the server replaces
/// this process, so that Ctrl-C reaches it alone and it stops the page
/// server and the emulator cleanly.
fn demo(args: &DemoArgs) -> Result<(), String> {
    if args.region.is_some() {
        // Say it before minutes of building, not after.
        for (given, var) in [
            (&args.client_id, "OUTBOX_CLIENT_ID"),
            (&args.client_secret, "OUTBOX_CLIENT_SECRET"),
        ] {
            let given = given.as_deref().is_some_and(|v| !v.trim().is_empty())
                || std::env::var(var).is_ok_and(|v| !v.trim().is_empty());
            if !given {
                return Err("real region mode needs OAuth client credentials: set OUTBOX_CLIENT_ID and OUTBOX_CLIENT_SECRET (a client-credentials client of your org)".into());
            }
        }
    }
    let tools = tools::Tools::ensure(tools::Need::Build)?;
    let bundle = build::build(&tools, None)?;
    let mut run = tools::cargo();
    run.args(["run", "-p", "outbox-demo", "--"]);
    if args.dist.is_none() {
        run.arg("--dist").arg(&bundle.dist);
    }
    run.args(args.forwarded());
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_flags_are_usage_errors() {
        for argv in [
            &["xtask", "demo", "--nope"][..],
            &["xtask", "test", "--nope"],
            &["xtask", "build", "extra"],
            &["xtask", "bench", "--only", "nothing"],
            &["xtask", "frobnicate"],
        ] {
            let error = Cli::try_parse_from(argv).expect_err("must be refused");
            assert_eq!(error.exit_code(), 2, "{argv:?}");
        }
    }

    #[test]
    fn help_is_not_an_error() {
        for sub in [
            "test", "demo", "build", "bench", "install", "package", "examples",
        ] {
            let error = Cli::try_parse_from(["xtask", sub, "--help"]).expect_err("help exits");
            assert_eq!(error.exit_code(), 0, "{sub}");
        }
    }

    #[test]
    fn demo_flags_are_handed_on() {
        let cli = Cli::try_parse_from(["xtask", "demo", "--port", "9000", "--region", "x.ie"])
            .expect("valid");
        let Command::Demo(args) = cli.command else {
            panic!("not demo")
        };
        assert_eq!(
            args.forwarded(),
            ["--port", "9000", "--region", "x.ie"].map(String::from)
        );
    }
}
