//! Bundles the TypeScript host's store (`web/host/test/harness.ts`) with
//! the project's esbuild (`cargo xtask install` puts it in `.tools/npm`)
//! into `OUT_DIR/harness.js`, which the tests evaluate: only for wasm32.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it")).join("../..");
    println!("cargo:rerun-if-changed={}", root.join("web/host").display());
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() != Ok("wasm32") {
        return;
    }
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it")).join("harness.js");
    let esbuild = root.join(".tools/npm/node_modules/.bin/esbuild");
    let status = Command::new(&esbuild)
        .current_dir(root.join("web/host"))
        .args([
            "test/harness.ts",
            "--bundle",
            "--format=iife",
            "--target=es2022",
            "--log-level=warning",
        ])
        .arg(format!("--outfile={}", out.display()))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("esbuild failed ({s}) bundling web/host/test/harness.ts"),
        Err(e) => panic!(
            "cannot run {} ({e}): run `cargo xtask install` first (it installs esbuild project-locally)",
            esbuild.display()
        ),
    }
}
