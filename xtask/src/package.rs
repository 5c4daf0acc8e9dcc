//! The npm side of the bundle: the dev-only npm tools (TypeScript,
//! publint), installed into `.tools/npm` like `wasm-opt`, and the checks
//! that use them — the page API's hand-written declarations type-checked
//! against a usage file (`tsc --noEmit --strict`, lib ES2022 and ESNext).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

/// The TypeScript compiler the declarations are checked with.
pub const TYPESCRIPT_VERSION: &str = "5.9.3";
/// The npm package linter.
pub const PUBLINT_VERSION: &str = "0.3.25";

/// `.tools/npm/node_modules`.
fn node_modules() -> PathBuf {
    tools::tools_dir().join("npm").join("node_modules")
}

/// The version of an installed npm package, if any.
fn installed_version(name: &str) -> Option<String> {
    let manifest = node_modules().join(name).join("package.json");
    let text = std::fs::read_to_string(manifest).ok()?;
    let at = text.find("\"version\"")?;
    let rest = &text[at + "\"version\"".len()..];
    let start = rest.find('"')? + 1;
    let end = rest[start..].find('"')? + start;
    Some(rest[start..end].to_owned())
}

/// Installs TypeScript and publint into `.tools/npm` when missing.
pub fn ensure_npm_tools() -> Result<(), String> {
    let wanted = [
        ("typescript", TYPESCRIPT_VERSION),
        ("publint", PUBLINT_VERSION),
    ];
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, version)| installed_version(name).as_deref() != Some(*version))
        .map(|(name, version)| format!("{name}@{version}"))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let prefix = tools::tools_dir().join("npm");
    std::fs::create_dir_all(&prefix)
        .map_err(|e| format!("cannot create {}: {e}", prefix.display()))?;
    eprintln!(
        "xtask: installing {} (npm, dev-only) into {}",
        missing.join(" "),
        prefix.display()
    );
    tools::run(
        Command::new("npm")
            .current_dir(&prefix)
            .args(["install", "--prefix", ".", "--no-audit", "--no-fund"])
            .args(&missing),
    )
}

/// A binary of `.tools/npm`.
pub fn npm_bin(name: &str) -> PathBuf {
    node_modules().join(".bin").join(name)
}

/// Type-checks `crates/outbox-page/ts/usage.ts` against the hand-written
/// declarations, under lib ES2022 and ESNext (both with the DOM).
pub fn check_types(scratch: &Path) -> Result<(), String> {
    ensure_npm_tools()?;
    let ts = tools::root().join("crates/outbox-page/ts");
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
    for file in ["outbox_page.d.ts", "usage.ts"] {
        std::fs::copy(ts.join(file), scratch.join(file))
            .map_err(|e| format!("{}: {e}", ts.join(file).display()))?;
    }
    for lib in ["ES2022,DOM", "ESNext,DOM"] {
        tools::run(Command::new(npm_bin("tsc")).current_dir(scratch).args([
            "--noEmit",
            "--strict",
            "--target",
            "ES2022",
            "--module",
            "ES2022",
            "--moduleResolution",
            "bundler",
            "--lib",
            lib,
            "usage.ts",
        ]))?;
    }
    Ok(())
}
