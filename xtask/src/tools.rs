//! Finding and installing the tools the build and the tests need.
//!
//! Every step is idempotent: it first checks whether the tool is there (at
//! the pinned version) and installs only what is missing, saying what it
//! does. Tools go into `.tools/` at the repository root, never into the
//! user's global environment, except the browsers, which come from
//! Debian's packages with `apt-get`: `chromium` and `chromium-driver`,
//! `firefox-esr`, `webkit2gtk-driver` and `xvfb`.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The `wasm-bindgen-cli` version; it must equal the `wasm-bindgen` crate
/// version in `Cargo.lock` (checked by [`Tools::ensure`]).
pub const WASM_BINDGEN_VERSION: &str = "0.2.130";
/// The npm `binaryen` major version that provides `wasm-opt`.
pub const BINARYEN_VERSION: &str = "132";
/// The Rust target for the browser build.
pub const WASM_TARGET: &str = "wasm32-unknown-unknown";

/// How much of the tool set a command needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// The wasm build: target, `wasm-bindgen`, `wasm-opt`.
    Build,
    /// The build plus a headless browser and its driver.
    Everything,
}

/// Paths of the installed tools.
#[allow(dead_code)] // fields are read by later commands (build, demo, e2e)
pub struct Tools {
    /// `wasm-bindgen` executable.
    pub wasm_bindgen: PathBuf,
    /// `wasm-bindgen-test-runner` executable.
    pub wasm_bindgen_test_runner: PathBuf,
    /// `wasm-opt` executable.
    pub wasm_opt: PathBuf,
    /// Chromium executable, when needed.
    pub chromium: Option<PathBuf>,
    /// ChromeDriver executable, when needed.
    pub chromedriver: Option<PathBuf>,
}

/// The repository root (the parent of `xtask/`).
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Where project-local tools live.
pub fn tools_dir() -> PathBuf {
    root().join(".tools")
}

/// A `cargo` command run at the repository root, with the project's tools
/// first on `PATH`.
pub fn cargo() -> Command {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut command = Command::new(cargo);
    command.current_dir(root()).env("PATH", path_with_tools());
    command
}

/// `PATH` with `.tools/cargo/bin` and the npm bin folder in front.
pub fn path_with_tools() -> OsString {
    let mut paths = vec![
        tools_dir().join("cargo").join("bin"),
        tools_dir().join("npm").join("node_modules").join(".bin"),
    ];
    if let Some(existing) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&existing));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

/// Runs a command, echoing it, and turns a failure into an error message.
pub fn run(command: &mut Command) -> Result<(), String> {
    eprintln!("xtask: $ {}", describe(command));
    let status = command
        .status()
        .map_err(|e| format!("could not start `{}`: {e}", describe(command)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(command)))
    }
}

/// Runs a command quietly and returns its standard output, or `None` when it
/// cannot run or fails.
fn output(command: &mut Command) -> Option<String> {
    let out = command.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line of `command`, for messages.
pub fn describe(command: &Command) -> String {
    let mut text = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        text.push(' ');
        text.push_str(&arg.to_string_lossy());
    }
    text
}

impl Tools {
    /// Checks for every tool `need` asks for and installs what is missing.
    pub fn ensure(need: Need) -> Result<Tools, String> {
        ensure_wasm_target()?;
        check_lockfile_pin()?;
        let (wasm_bindgen, wasm_bindgen_test_runner) = ensure_wasm_bindgen()?;
        let wasm_opt = ensure_wasm_opt()?;
        // esbuild and TypeScript: the host's build, and the store tests'.
        crate::package::ensure_npm_tools()?;
        let (chromium, chromedriver) = if need == Need::Everything {
            let (c, d) = ensure_chromium()?;
            (Some(c), Some(d))
        } else {
            (None, None)
        };
        Ok(Tools {
            wasm_bindgen,
            wasm_bindgen_test_runner,
            wasm_opt,
            chromium,
            chromedriver,
        })
    }
}

fn ensure_wasm_target() -> Result<(), String> {
    let installed = output(Command::new("rustup").args(["target", "list", "--installed"]));
    match installed {
        Some(list) if list.lines().any(|l| l.trim() == WASM_TARGET) => Ok(()),
        Some(_) => {
            eprintln!("xtask: installing the Rust target {WASM_TARGET}");
            run(Command::new("rustup").args(["target", "add", WASM_TARGET]))
        }
        None => {
            // No rustup: accept a toolchain that already ships the target.
            let sysroot = output(Command::new("rustc").args(["--print", "sysroot"]))
                .ok_or("neither rustup nor rustc could be run")?;
            let lib = Path::new(sysroot.trim())
                .join("lib/rustlib")
                .join(WASM_TARGET);
            if lib.is_dir() {
                Ok(())
            } else {
                Err(format!(
                    "the Rust target {WASM_TARGET} is missing and there is no rustup to add it; \
                     install it with your toolchain manager"
                ))
            }
        }
    }
}

/// The `wasm-bindgen` crate in `Cargo.lock` and the CLI must be the same
/// version, or the generated glue does not load.
fn check_lockfile_pin() -> Result<(), String> {
    let Ok(lock) = std::fs::read_to_string(root().join("Cargo.lock")) else {
        return Ok(()); // no lock file yet: cargo will create one with the pin
    };
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line.trim() == "name = \"wasm-bindgen\"" {
            let version = lines.next().unwrap_or_default().trim();
            let want = format!("version = \"{WASM_BINDGEN_VERSION}\"");
            if version != want {
                return Err(format!(
                    "Cargo.lock pins wasm-bindgen at `{version}` but xtask installs the CLI \
                     {WASM_BINDGEN_VERSION}; keep them equal"
                ));
            }
        }
    }
    Ok(())
}

fn ensure_wasm_bindgen() -> Result<(PathBuf, PathBuf), String> {
    let root = tools_dir().join("cargo");
    let bin = root.join("bin");
    let wasm_bindgen = bin.join("wasm-bindgen");
    let runner = bin.join("wasm-bindgen-test-runner");
    let have = output(Command::new(&wasm_bindgen).arg("--version"))
        .is_some_and(|v| v.split_whitespace().nth(1) == Some(WASM_BINDGEN_VERSION));
    if !have || !runner.exists() {
        eprintln!(
            "xtask: installing wasm-bindgen-cli {WASM_BINDGEN_VERSION} into {} (takes a few minutes)",
            root.display()
        );
        // Without --locked: one locked dependency is missing from the registry mirror.
        run(cargo().args([
            "install",
            "--root",
            &root.to_string_lossy(),
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
        ]))?;
    }
    Ok((wasm_bindgen, runner))
}

fn ensure_wasm_opt() -> Result<PathBuf, String> {
    let prefix = tools_dir().join("npm");
    let wasm_opt = prefix.join("node_modules").join(".bin").join("wasm-opt");
    let have = output(Command::new(&wasm_opt).arg("--version"))
        .is_some_and(|v| v.contains(&format!("version {BINARYEN_VERSION}")));
    if !have {
        if output(Command::new("npm").arg("--version")).is_none() {
            return Err(
                "wasm-opt comes from the npm package `binaryen`, but `npm` is not installed; \
                 install Node.js and npm (Debian: `apt-get install nodejs npm`)"
                    .into(),
            );
        }
        eprintln!(
            "xtask: installing wasm-opt (npm binaryen@{BINARYEN_VERSION}) into {}",
            prefix.display()
        );
        std::fs::create_dir_all(&prefix)
            .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
        run(Command::new("npm")
            .current_dir(&prefix)
            .args(["install", "--prefix", ".", "--no-audit", "--no-fund"])
            .arg(format!("binaryen@{BINARYEN_VERSION}")))?;
    }
    Ok(wasm_opt)
}

/// Chromium and ChromeDriver: `CHROME`/`CHROMEDRIVER` when set, else
/// Debian's packages, installed with `apt-get` when missing and possible.
fn ensure_chromium() -> Result<(PathBuf, PathBuf), String> {
    let chrome = std::env::var_os("CHROME")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let driver = std::env::var_os("CHROMEDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/chromedriver"), PathBuf::from);
    ensure_apt(
        "the browser tests need Chromium and ChromeDriver",
        &[&chrome, &driver],
        &["chromium", "chromium-driver"],
        "or point CHROME and CHROMEDRIVER at your own binaries",
    )?;
    Ok((chrome, driver))
}

/// Firefox for the end-to-end suites (driven over WebDriver BiDi, no
/// driver): `FIREFOX` when set, else Debian's `firefox-esr`, installed
/// with `apt-get` when missing and possible.
pub fn ensure_firefox() -> Result<PathBuf, String> {
    let firefox = std::env::var_os("FIREFOX")
        .map_or_else(|| PathBuf::from("/usr/bin/firefox-esr"), PathBuf::from);
    ensure_apt(
        "the Firefox tests need Firefox",
        &[&firefox],
        &["firefox-esr"],
        "or point FIREFOX at your own binary",
    )?;
    Ok(firefox)
}

/// WebKitGTK for the end-to-end and wasm suites: `WebKitWebDriver` (and
/// the MiniBrowser next to the library) from Debian's `webkit2gtk-driver`,
/// plus `Xvfb` for a display, installed with `apt-get` when missing and
/// possible. Returns the driver and Xvfb.
pub fn ensure_webkit() -> Result<(PathBuf, PathBuf), String> {
    let driver = std::env::var_os("WEBKIT_WEBDRIVER")
        .map_or_else(|| PathBuf::from("/usr/bin/WebKitWebDriver"), PathBuf::from);
    let xvfb =
        std::env::var_os("XVFB").map_or_else(|| PathBuf::from("/usr/bin/Xvfb"), PathBuf::from);
    ensure_apt(
        "the WebKit tests need WebKitWebDriver and Xvfb",
        &[&driver, &xvfb],
        &["webkit2gtk-driver", "xvfb"],
        "or point WEBKIT_WEBDRIVER and XVFB at your own binaries",
    )?;
    Ok((driver, xvfb))
}

/// PostgreSQL's server binaries (for the PostgreSQL store's tests, the
/// fleet crash test and the fleet benchmark), installed from Debian's
/// `postgresql-15` with `apt-get` when missing and possible. The package's
/// own cluster is never used: each run starts a throw-away one
/// (`pg_throwaway`).
pub fn ensure_postgres() -> Result<PathBuf, String> {
    if let Ok(bin) = pg_throwaway::bin_dir() {
        return Ok(bin);
    }
    let started = std::time::Instant::now();
    ensure_apt(
        "PostgreSQL is needed by the PostgreSQL store's tests",
        &[Path::new("/usr/lib/postgresql/15/bin/initdb")],
        &["postgresql-15"],
        "or set OUTBOX_PG_BIN to the directory of your PostgreSQL's initdb and postgres",
    )?;
    eprintln!("xtask: PostgreSQL installed in {:.1?}", started.elapsed());
    pg_throwaway::bin_dir().map_err(|e| e.to_string())
}

/// Makes sure every file of `wanted` exists, installing the Debian
/// `packages` with `apt-get` when one is missing and this is root on a
/// Debian-like system; otherwise says what to install.
fn ensure_apt(
    purpose: &str,
    wanted: &[&Path],
    packages: &[&str],
    alternative: &str,
) -> Result<(), String> {
    let missing = || wanted.iter().filter(|p| !p.exists()).collect::<Vec<_>>();
    if missing().is_empty() {
        return Ok(());
    }
    let is_root = output(Command::new("id").arg("-u")).is_some_and(|u| u.trim() == "0");
    let has_apt = output(Command::new("apt-get").arg("--version")).is_some();
    let list = packages.join(" ");
    if !(is_root && has_apt) {
        let paths: Vec<String> = missing().iter().map(|p| p.display().to_string()).collect();
        return Err(format!(
            "{purpose} ({} not found). Install Debian's packages: `sudo apt-get install {list}`, \
             {alternative}.",
            paths.join(", ")
        ));
    }
    eprintln!("xtask: installing Debian's {list} with apt-get");
    run(Command::new("apt-get").arg("update"))?;
    let mut install = Command::new("apt-get");
    install
        // Another install (a second checkout, unattended upgrades) may hold
        // the dpkg lock for a while: wait for it rather than fail.
        .args(["-o", "DPkg::Lock::Timeout=900"])
        .args(["install", "-y", "--no-install-recommends"])
        .args(packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run(&mut install)?;
    let still: Vec<String> = missing().iter().map(|p| p.display().to_string()).collect();
    if still.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "apt-get installed {list} but {} is still missing",
            still.join(", ")
        ))
    }
}
