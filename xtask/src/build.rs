//! `cargo xtask build`: the browser bundle in `dist/`.
//!
//! * `sw.js` — the service worker shim, stamped with the engine's hash so
//!   that a new engine replaces the cached one;
//! * `outbox_sw.js` + `outbox_sw_bg.wasm` — the worker engine
//!   (wasm-bindgen `no-modules`, loaded with `importScripts`);
//! * `outbox_page.js` + `outbox_page_bg.wasm` + `outbox_page.d.ts` — the
//!   page API as an ES module (the glue with `crates/outbox-page/ts/auto_init.js`
//!   appended) with its hand-written TypeScript types;
//! * `package.json`, and `sizes.json` with raw and gzip sizes.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

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
pub const WORKER_FILES: &[&str] = &["sw.js", "outbox_sw.js", "outbox_sw_bg.wasm"];
/// The files a page loads.
pub const PAGE_FILES: &[&str] = &["outbox_page.js", "outbox_page_bg.wasm"];

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| tools::root().join("target"))
}

/// Builds the bundle into `dist` (default `<root>/dist`).
pub fn build(tools: &Tools, dist: Option<&Path>) -> Result<Bundle, String> {
    let dist = dist.map_or_else(|| tools::root().join("dist"), Path::to_path_buf);
    std::fs::create_dir_all(&dist).map_err(|e| format!("cannot create {}: {e}", dist.display()))?;
    tools::run(tools::cargo().args([
        "build",
        "-p",
        "outbox-sw",
        "-p",
        "outbox-page",
        "--target",
        tools::WASM_TARGET,
        "--profile",
        "wasm-release",
    ]))?;
    let out = target_dir().join(tools::WASM_TARGET).join("wasm-release");
    for (crate_file, name, target) in [
        ("outbox_sw.wasm", "outbox_sw", "no-modules"),
        ("outbox_page.wasm", "outbox_page", "web"),
    ] {
        let mut cmd = Command::new(&tools.wasm_bindgen);
        cmd.arg("--target")
            .arg(target)
            .arg("--out-dir")
            .arg(&dist)
            .arg("--out-name")
            .arg(name);
        // The page's types are written by hand (crates/outbox-page/ts).
        cmd.arg("--no-typescript");
        tools::run(cmd.arg(out.join(crate_file)))?;
        let wasm = dist.join(format!("{name}_bg.wasm"));
        tools::run(
            Command::new(&tools.wasm_opt)
                .arg("-Oz")
                .arg(&wasm)
                .arg("-o")
                .arg(&wasm),
        )?;
    }
    page_module(&dist)?;
    let engine = std::fs::read(dist.join("outbox_sw_bg.wasm")).map_err(|e| e.to_string())?;
    let shim =
        std::fs::read_to_string(tools::root().join("web/sw.js")).map_err(|e| e.to_string())?;
    let stamped = shim.replace("__OUTBOX_BUILD__", &format!("{:016x}", fnv1a(&engine)));
    std::fs::write(dist.join("sw.js"), stamped).map_err(|e| e.to_string())?;
    std::fs::write(dist.join("package.json"), PACKAGE_JSON).map_err(|e| e.to_string())?;
    let mut sizes = Vec::new();
    for name in WORKER_FILES.iter().chain(PAGE_FILES) {
        let bytes = std::fs::read(dist.join(name)).map_err(|e| format!("{name}: {e}"))?;
        sizes.push(Size {
            name: (*name).to_owned(),
            raw: bytes.len(),
            gzip: gzip_len(&bytes),
        });
    }
    let bundle = Bundle { dist, sizes };
    let mut json = String::from("{\n");
    for s in &bundle.sizes {
        json.push_str(&format!(
            "  \"{}\": {{ \"raw\": {}, \"gzip\": {} }},\n",
            s.name, s.raw, s.gzip
        ));
    }
    json.push_str(&format!(
        "  \"worker_total_gzip\": {},\n  \"page_total_gzip\": {}\n}}\n",
        bundle.gzip_of(WORKER_FILES),
        bundle.gzip_of(PAGE_FILES)
    ));
    std::fs::write(bundle.dist.join("sizes.json"), json).map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: built {} — worker bundle {:.1} KB gzip, page bundle {:.1} KB gzip",
        bundle.dist.display(),
        bundle.gzip_of(WORKER_FILES) as f64 / 1024.0,
        bundle.gzip_of(PAGE_FILES) as f64 / 1024.0
    );
    Ok(bundle)
}

/// The page module: the glue with automatic `init()` appended, and the
/// hand-written declarations beside it.
fn page_module(dist: &Path) -> Result<(), String> {
    let ts = tools::root().join("crates/outbox-page/ts");
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut glue = read(&dist.join("outbox_page.js"))?;
    for needed in ["async function __wbg_init(", "export class Outbox "] {
        if !glue.contains(needed) {
            return Err(format!(
                "outbox_page.js has no `{needed}`: crates/outbox-page/ts/auto_init.js must follow the wasm-bindgen glue"
            ));
        }
    }
    glue.push_str(&read(&ts.join("auto_init.js"))?);
    std::fs::write(dist.join("outbox_page.js"), glue).map_err(|e| e.to_string())?;
    std::fs::copy(ts.join("outbox_page.d.ts"), dist.join("outbox_page.d.ts"))
        .map_err(|e| format!("outbox_page.d.ts: {e}"))?;
    Ok(())
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

const PACKAGE_JSON: &str = r#"{
  "name": "outbox-genesys",
  "version": "0.1.0",
  "description": "A durable outbox for Genesys Cloud messaging in the browser: IndexedDB first, then delivered in order, with backoff, rate-limit pacing and token refresh.",
  "license": "MIT OR Apache-2.0",
  "type": "module",
  "main": "outbox_page.js",
  "module": "outbox_page.js",
  "types": "outbox_page.d.ts",
  "files": ["outbox_page.js", "outbox_page_bg.wasm", "outbox_page.d.ts", "outbox_page_bg.wasm.d.ts", "sw.js", "outbox_sw.js", "outbox_sw_bg.wasm"],
  "sideEffects": false,
  "keywords": ["genesys", "outbox", "offline", "service-worker", "indexeddb", "wasm"]
}
"#;
