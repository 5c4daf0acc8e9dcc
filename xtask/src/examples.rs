//! `cargo xtask examples`: the example apps built from the packed npm
//! package, as a user would. Each of `examples/<name>` is copied to
//! `target/examples/<name>` (without `node_modules` or build output), the
//! package's tarball is installed into it (`npm install <tarball>`, with
//! the example's pinned bundler from the npm registry), `npm ls` must be
//! clean, then `npm run build` and `tsc --noEmit -p tsconfig.json`. The
//! end-to-end tests in `crates/e2e/tests/examples.rs` drive the result.

use std::path::Path;
use std::process::Command;

use crate::package::{self, Package};
use crate::tools;

/// The example apps.
pub const EXAMPLES: &[&str] = &["vite", "esbuild", "workbox"];

/// What is never copied from an example (installed or built output).
const SKIP: &[&str] = &["node_modules", "dist", "package-lock.json", "outbox"];

fn copy_tree(from: &Path, to: &Path) -> Result<(), String> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from)
        .map_err(|e| format!("{}: {e}", from.display()))?
        .flatten()
    {
        let name = entry.file_name();
        if SKIP.iter().any(|s| name == *s) {
            continue;
        }
        let path = entry.path();
        if path.is_dir() {
            copy_tree(&path, &to.join(&name))?;
        } else {
            std::fs::copy(&path, to.join(&name)).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Installs the package into a copy of every example, builds and
/// type-checks it.
pub fn build_examples(package: &Package) -> Result<(), String> {
    let root = tools::root();
    for name in EXAMPLES {
        let source = root.join("examples").join(name);
        let dir = root.join("target").join("examples").join(name);
        let _ = std::fs::remove_dir_all(&dir);
        copy_tree(&source, &dir)?;
        eprintln!("xtask: example {name}: installing {}", package.name);
        let npm = |args: &[&str]| {
            let mut cmd = Command::new("npm");
            cmd.current_dir(&dir).args(args);
            cmd
        };
        tools::run(npm(&["install", "--no-audit", "--no-fund"]).arg(&package.tarball))?;
        tools::run(&mut npm(&["ls", "--depth=0"]))?;
        tools::run(&mut npm(&["run", "build"]))?;
        tools::run(
            Command::new(package::npm_bin("tsc"))
                .current_dir(&dir)
                .args(["--noEmit", "-p", "tsconfig.json"]),
        )?;
    }
    Ok(())
}
