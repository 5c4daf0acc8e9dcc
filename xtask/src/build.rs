//! `cargo xtask build`: the browser bundle in `dist/`.
//!
//! * `outbox-core.js` — the core: `crates/outbox-wasm` built for wasm32
//!   (feature `module`), through `wasm-opt -Oz`, as a classic script that
//!   sets `self.outboxCore` to the module's bytes (a string of one
//!   character per byte, see [`core_script`]). The one engine of the page
//!   and the worker: a worker `importScripts` it and compiles it at once, a
//!   page fetches the same file.
//! * `outbox-worker.js` — the worker module (a classic script a site's own
//!   service worker imports), `web/host/worker.ts` bundled and minified by
//!   esbuild;
//! * `sw.js` — the stand-alone service worker built on it, stamped with the
//!   core's hash (so that a new core replaces the installed worker);
//! * `outbox_page.js` + `outbox_page.d.ts` + `types.d.ts` — the page API
//!   as an ES module (`web/host/page.ts`, bundled by esbuild) and its
//!   declarations, written by `tsc` from the same source;
//!   `outbox-worker.d.ts` the worker module's;
//! * `outbox-core.wasm` — the same module bare (for a bundler that emits
//!   it as a file: `init({ module_or_path })` takes it);
//! * `sizes.json` with raw and gzip sizes, and `size-report.txt`: bytes per
//!   function and per crate of the core ([`crate::size`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::package::{self, npm_bin};
use crate::tools::{self, Tools};

/// One shipped file and its sizes.
pub struct Size {
    /// File name in `dist/`.
    pub name: String,
    /// Bytes.
    pub raw: usize,
    /// Bytes after gzip -9.
    pub gzip: usize,
}

/// What a build produced.
pub struct Bundle {
    /// The output folder.
    pub dist: PathBuf,
    /// Sizes of every shipped file.
    pub sizes: Vec<Size>,
}

impl Bundle {
    /// Total gzip size of the named files.
    pub fn gzip_of(&self, names: &[&str]) -> usize {
        self.sizes
            .iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .map(|s| s.gzip)
            .sum()
    }
}

/// The files a service worker loads.
pub const WORKER_FILES: &[&str] = &["sw.js", "outbox-worker.js", "outbox-core.js"];
/// The files a page loads (the core only when it must decide itself: with
/// no worker, for a send, a listing, the guest channel).
pub const PAGE_FILES: &[&str] = &["outbox_page.js", "outbox-core.js"];
/// The files of a first visit with the page API and the worker: each
/// once (the core is one file, fetched by the page and imported by the
/// worker at the same URL).
pub const FIRST_VISIT_FILES: &[&str] = &[
    "outbox_page.js",
    "sw.js",
    "outbox-worker.js",
    "outbox-core.js",
];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"))
}

/// Builds the core's wasm (the module as shipped, and its twin with names
/// for the size report): `target/outbox-core.wasm`,
/// `target/outbox-core.named.wasm`.
pub fn build_core(tools: &Tools) -> Result<(PathBuf, PathBuf), String> {
    tools::run(tools::cargo().args([
        "build",
        "-p",
        "genesys-outbox-wasm",
        "--features",
        "module",
        "--lib",
        "--target",
        tools::WASM_TARGET,
        "--profile",
        "wasm-release",
    ]))?;
    let built = target_dir()
        .join(tools::WASM_TARGET)
        .join("wasm-release")
        .join("outbox_wasm.wasm");
    let core = target_dir().join("outbox-core.wasm");
    let named = target_dir().join("outbox-core.named.wasm");
    // A twin with names, for the size report (the shipped file has none).
    tools::run(
        Command::new(&tools.wasm_opt)
            .args(["-Oz", "-g"])
            .arg(&built)
            .arg("-o")
            .arg(&named),
    )?;
    tools::run(
        Command::new(&tools.wasm_opt)
            .args(["-Oz", "--strip-debug", "--strip-producers"])
            .arg(&built)
            .arg("-o")
            .arg(&core),
    )?;
    Ok((core, named))
}

/// `outbox-core.js`: a classic script setting `self.outboxCore` to the
/// module's bytes as a string of one character per byte (U+0000–U+00FF),
/// escaped only where a string literal must be (`\\`, `\"`, `\n`, `\r`):
/// about 4 % more than the bare module after gzip, where base64 costs
/// about 30 %. `web/host/core.ts` (`stringBytes`, `scriptBytes`) reads it back.
pub fn core_script(wasm: &[u8], stamp: &str) -> String {
    let mut out = String::with_capacity(wasm.len() * 2 + 256);
    out.push_str("/* Outbox core ");
    out.push_str(stamp);
    out.push_str(": outbox-core's machines and decisions, one wasm module for the page and the worker. */\nself.outboxCore=\"");
    for &b in wasm {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            _ => out.push(char::from(b)),
        }
    }
    out.push_str("\";\n");
    out
}

/// Bundles the TypeScript host with esbuild, and writes the declarations
/// with `tsc` (installed by [`package::ensure_npm_tools`]).
fn build_host(dist: &Path) -> Result<(), String> {
    package::ensure_npm_tools()?;
    let host = tools::root().join("web").join("host");
    let esbuild = |entry: &str, format: &str, out: &str| -> Result<(), String> {
        tools::run(
            Command::new(npm_bin("esbuild"))
                .current_dir(&host)
                .arg(entry)
                .args([
                    "--bundle",
                    "--minify",
                    "--target=es2022",
                    "--legal-comments=none",
                    "--log-level=warning",
                ])
                .arg(format!("--format={format}"))
                .arg(format!("--outfile={}", dist.join(out).display())),
        )
    };
    esbuild("page.ts", "esm", "outbox_page.js")?;
    esbuild("worker.ts", "iife", "outbox-worker.js")?;
    // The same as an ES module, for a worker an app bundles
    // (`import { start } from 'outbox-genesys/worker'`).
    esbuild("worker.ts", "esm", "outbox-worker.mjs")?;
    // The types: tsc from the same source, strict.
    let types = target_dir().join("host-types");
    let _ = std::fs::remove_dir_all(&types);
    for project in ["tsconfig.json", "tsconfig.worker.json"] {
        tools::run(
            Command::new(npm_bin("tsc"))
                .current_dir(&host)
                .args([
                    "-p",
                    project,
                    "--noEmit",
                    "false",
                    "--declaration",
                    "--emitDeclarationOnly",
                ])
                .arg("--outDir")
                .arg(&types),
        )?;
    }
    for (from, to) in [
        ("page.d.ts", "outbox_page.d.ts"),
        ("types.d.ts", "types.d.ts"),
        ("worker.d.ts", "outbox-worker.d.ts"),
    ] {
        let text = std::fs::read_to_string(types.join(from))
            .map_err(|e| format!("{}: {e}", types.join(from).display()))?;
        // What ships describes the public surface only: the declarations
        // may import each other's types and nothing internal.
        for line in text.lines().filter(|l| {
            let l = l.trim_start();
            (l.starts_with("import ") || l.starts_with("export ")) && l.contains(" from '")
        }) {
            if !line.contains("'./types.js'") {
                return Err(format!(
                    "{from} imports more than ./types.js ({line}): keep the host's internals private (#fields)"
                ));
            }
        }
        std::fs::write(dist.join(to), text).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Builds the bundle into `dist` (default `<root>/dist`).
pub fn build(tools: &Tools, dist: Option<&Path>) -> Result<Bundle, String> {
    let dist = dist.map_or_else(|| tools::root().join("dist"), Path::to_path_buf);
    std::fs::create_dir_all(&dist).map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    // What an older build left behind.
    for stale in [
        "outbox_sw.js",
        "outbox_sw_bg.wasm",
        "outbox_page_bg.wasm",
        "package.json",
    ] {
        let _ = std::fs::remove_file(dist.join(stale));
    }
    let (core, named) = build_core(tools)?;
    let wasm = std::fs::read(&core).map_err(|e| format!("{}: {e}", core.display()))?;
    let stamp = format!("{:016x}", fnv1a(&wasm));
    std::fs::write(dist.join("outbox-core.js"), core_script(&wasm, &stamp))
        .map_err(|e| e.to_string())?;
    // The bare module too, for an app whose bundler emits it as a file of
    // its own (`init({ module_or_path })` takes either).
    std::fs::copy(&core, dist.join("outbox-core.wasm"))
        .map_err(|e| format!("{}: {e}", core.display()))?;
    build_host(&dist)?;
    let web = tools::root().join("web");
    let shim = std::fs::read_to_string(web.join("sw.js"))
        .map_err(|e| format!("web/sw.js: {e}"))?
        .replace("__OUTBOX_BUILD__", &stamp);
    std::fs::write(dist.join("sw.js"), shim).map_err(|e| e.to_string())?;
    let mut sizes = Vec::new();
    for name in FIRST_VISIT_FILES {
        let bytes = std::fs::read(dist.join(name)).map_err(|e| format!("{name}: {e}"))?;
        sizes.push(Size {
            name: (*name).to_owned(),
            raw: bytes.len(),
            gzip: gzip_len(&bytes),
        });
    }
    sizes.push(Size {
        name: "outbox-core.wasm (the bare module, for the report)".to_owned(),
        raw: wasm.len(),
        gzip: gzip_len(&wasm),
    });
    let bundle = Bundle { dist, sizes };
    let mut json = String::from("{\n");
    for s in &bundle.sizes {
        json.push_str(&format!(
            "  \"{}\": {{ \"raw\": {}, \"gzip\": {} }},\n",
            s.name, s.raw, s.gzip
        ));
    }
    json.push_str(&format!(
        "  \"worker_total_gzip\": {},\n  \"page_total_gzip\": {},\n  \"first_visit_gzip\": {}\n}}\n",
        bundle.gzip_of(WORKER_FILES),
        bundle.gzip_of(PAGE_FILES),
        bundle.gzip_of(FIRST_VISIT_FILES)
    ));
    std::fs::write(bundle.dist.join("sizes.json"), json).map_err(|e| e.to_string())?;
    crate::size::write(&bundle.dist, &[("core (outbox-core.wasm)", &named)])?;
    eprintln!(
        "xtask: built {} — worker {:.1} KiB gzip, page {:.1} KiB, first visit {:.1} KiB",
        bundle.dist.display(),
        bundle.gzip_of(WORKER_FILES) as f64 / 1024.0,
        bundle.gzip_of(PAGE_FILES) as f64 / 1024.0,
        bundle.gzip_of(FIRST_VISIT_FILES) as f64 / 1024.0,
    );
    Ok(bundle)
}

/// Gzip size at the highest level.
pub fn gzip_len(bytes: &[u8]) -> usize {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let _ = encoder.write_all(bytes);
    encoder.finish().map(|v| v.len()).unwrap_or(0)
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_core_script_holds_every_byte_once() {
        let wasm: Vec<u8> = (0..=255u8).chain([b'"', b'\\', b'\n', b'\r', 0]).collect();
        let script = super::core_script(&wasm, "0");
        let start = script.find('"').unwrap() + 1;
        let end = script.rfind('"').unwrap();
        let mut back = Vec::new();
        let mut chars = script[start..end].chars();
        while let Some(c) = chars.next() {
            let c = if c == '\\' {
                match chars.next().unwrap() {
                    'n' => '\n',
                    'r' => '\r',
                    other => other,
                }
            } else {
                c
            };
            back.push(u8::try_from(u32::from(c)).unwrap());
        }
        assert_eq!(back, wasm);
        assert!(!script[start..end].contains(['\n', '\r']));
    }
}
