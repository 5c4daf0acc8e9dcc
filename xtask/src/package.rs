//! The npm side of the bundle: the dev-only npm tools (TypeScript,
//! esbuild, publint, attw), installed into `.tools/npm` like `wasm-opt`, and the
//! checks that use them — the declarations `tsc` wrote from the host's
//! source type-checked against usage files (`tsc --noEmit --strict`, lib
//! ES2022 and ESNext), the package linted and packed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::tools;

/// The TypeScript compiler the declarations are checked with.
pub const TYPESCRIPT_VERSION: &str = "5.9.3";
/// The native TypeScript 7 compiler, checked with too (npm alias `typescript7`).
pub const TYPESCRIPT_7_VERSION: &str = "7.0.2";
/// The npm package linter.
pub const PUBLINT_VERSION: &str = "0.3.25";
/// The bundler and minifier of the TypeScript host (`web/host`).
pub const ESBUILD_VERSION: &str = "0.28.2";
/// The check that the package's types resolve in every module system
/// (`attw`, profile `esm-only`: the package is ES modules).
pub const ATTW_VERSION: &str = "0.18.5";
/// Node's types, for the bundler plugins (`web/npm/src`, run by Node 20).
pub const TYPES_NODE_VERSION: &str = "20.19.43";

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

/// Installs TypeScript, esbuild and publint into `.tools/npm` when missing.
pub fn ensure_npm_tools() -> Result<(), String> {
    // (folder in node_modules, what to install)
    let wanted = [
        (
            "typescript",
            TYPESCRIPT_VERSION,
            format!("typescript@{TYPESCRIPT_VERSION}"),
        ),
        (
            "typescript7",
            TYPESCRIPT_7_VERSION,
            format!("typescript7@npm:typescript@{TYPESCRIPT_7_VERSION}"),
        ),
        (
            "publint",
            PUBLINT_VERSION,
            format!("publint@{PUBLINT_VERSION}"),
        ),
        (
            "esbuild",
            ESBUILD_VERSION,
            format!("esbuild@{ESBUILD_VERSION}"),
        ),
        (
            "@types/node",
            TYPES_NODE_VERSION,
            format!("@types/node@{TYPES_NODE_VERSION}"),
        ),
        (
            "@arethetypeswrong/cli",
            ATTW_VERSION,
            format!("@arethetypeswrong/cli@{ATTW_VERSION}"),
        ),
    ];
    let missing: Vec<String> = wanted
        .iter()
        .filter(|(name, version, _)| installed_version(name).as_deref() != Some(*version))
        .map(|(_, _, spec)| spec.clone())
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

/// Type-checks `web/host/check/usage.ts` against the page declarations
/// `cargo xtask build` wrote from the host's source, under lib ES2022 and
/// ESNext (both with the DOM), and `worker_usage.ts` against the worker
/// module's, under lib ES2022 with WebWorker; with TypeScript 5.9 and the
/// native TypeScript 7. The declarations are laid out as in the package.
pub fn check_types(dist: &Path, scratch: &Path) -> Result<(), String> {
    ensure_npm_tools()?;
    let root = tools::root();
    let check = root.join("web/host/check");
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch.join("worker"))
        .map_err(|e| format!("{}: {e}", scratch.display()))?;
    for (from, to) in [
        (dist.join("outbox_page.d.ts"), "outbox_page.d.ts"),
        (dist.join("types.d.ts"), "types.d.ts"),
        (dist.join("types.d.ts"), "worker/types.d.ts"),
        (dist.join("outbox-worker.d.ts"), "worker/outbox-worker.d.ts"),
        (check.join("usage.ts"), "usage.ts"),
        (check.join("worker_usage.ts"), "worker_usage.ts"),
    ] {
        std::fs::copy(&from, scratch.join(to)).map_err(|e| format!("{}: {e}", from.display()))?;
    }
    let compilers = [
        npm_bin("tsc"),
        node_modules().join("typescript7").join("bin").join("tsc"),
    ];
    for (compiler, (lib, file)) in compilers.iter().flat_map(|c| {
        [
            ("ES2022,DOM", "usage.ts"),
            ("ESNext,DOM", "usage.ts"),
            ("ES2022,WebWorker", "worker_usage.ts"),
        ]
        .map(|check| (c, check))
    }) {
        tools::run(Command::new(compiler).current_dir(scratch).args([
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
            file,
        ]))?;
    }
    Ok(())
}

/// The packed npm package (its folder is `target/npm/package`).
pub struct Package {
    /// `target/npm/<name>-<version>.tgz` (`npm pack`).
    pub tarball: PathBuf,
    /// The package name.
    pub name: String,
}

/// The wasm crate's Cargo metadata, with the workspace's fields resolved.
fn page_metadata() -> Result<serde_json::Value, String> {
    let out = tools::cargo()
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .output()
        .map_err(|e| format!("cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let all: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata: {e}"))?;
    let manifest = tools::root().join("crates/outbox-wasm/Cargo.toml");
    all["packages"]
        .as_array()
        .and_then(|packages| {
            packages.iter().find(|p| {
                p["manifest_path"]
                    .as_str()
                    .is_some_and(|m| Path::new(m) == manifest)
            })
        })
        .cloned()
        .ok_or_else(|| "cargo metadata lists no crates/outbox-wasm".into())
}

/// `package.json`, from the wasm crate's Cargo metadata (version, license,
/// repository, homepage; name, description and keywords from
/// `[package.metadata.npm]`), with its keys in a fixed order (export
/// conditions are order-sensitive). Returns (name, version, text).
pub fn package_json(meta: &serde_json::Value) -> Result<(String, String, String), String> {
    let npm = &meta["metadata"]["npm"];
    let text = |v: &serde_json::Value, what: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| format!("crates/outbox-wasm/Cargo.toml needs {what}"))
    };
    let name = text(&npm["name"], "[package.metadata.npm] name")?;
    let version = text(&meta["version"], "a version")?;
    let repository = text(&meta["repository"], "a repository (workspace)")?;
    let homepage = meta["homepage"].as_str().unwrap_or(&repository).to_owned();
    let description = npm["description"]
        .as_str()
        .or(meta["description"].as_str())
        .unwrap_or_default();
    let license = text(&meta["license"], "a license")?;
    let q = |s: &str| serde_json::Value::from(s).to_string();
    let keywords = serde_json::to_string(&npm["keywords"]).map_err(|e| e.to_string())?;
    let json = format!(
        r#"{{
  "name": {name},
  "version": {version},
  "description": {description},
  "license": {license},
  "repository": {{ "type": "git", "url": {git} }},
  "homepage": {homepage},
  "bugs": {{ "url": {bugs} }},
  "keywords": {keywords},
  "type": "module",
  "main": "./outbox_page.js",
  "types": "./outbox_page.d.ts",
  "exports": {{
    ".": {{ "types": "./outbox_page.d.ts", "default": "./outbox_page.js" }},
    "./outbox-core.js": {{ "types": "./outbox-core.d.ts", "default": "./outbox-core.js" }},
    "./outbox-core.wasm": {{ "types": "./outbox-core.wasm.d.ts", "default": "./outbox-core.wasm" }},
    "./worker": {{ "types": "./worker.d.ts", "default": "./worker.js" }},
    "./vite": {{ "types": "./vite.d.ts", "default": "./vite.js" }},
    "./esbuild": {{ "types": "./esbuild.d.ts", "default": "./esbuild.js" }},
    "./broker": {{ "types": "./broker.d.ts", "default": "./broker.js" }},
    "./worker/*": "./worker/*",
    "./package.json": "./package.json"
  }},
  "bin": {{ {name}: "bin.js" }},
  "files": [
    "outbox_page.js",
    "outbox_page.d.ts",
    "types.d.ts",
    "outbox-core.js",
    "outbox-core.d.ts",
    "outbox-core.wasm",
    "outbox-core.wasm.d.ts",
    "worker.js",
    "worker.d.ts",
    "worker/",
    "files.js",
    "files.d.ts",
    "vite.js",
    "vite.d.ts",
    "esbuild.js",
    "esbuild.d.ts",
    "broker.js",
    "broker.d.ts",
    "bin.js",
    "LICENSE-MIT",
    "LICENSE-APACHE",
    "README.md"
  ],
  "sideEffects": false
}}
"#,
        name = q(&name),
        version = q(&version),
        description = q(description),
        license = q(&license),
        git = q(&format!("git+{repository}.git")),
        homepage = q(&homepage),
        bugs = q(&format!("{repository}/issues")),
    );
    // Well-formed, whatever the metadata held.
    serde_json::from_str::<serde_json::Value>(&json)
        .map_err(|e| format!("package.json is not JSON: {e}"))?;
    Ok((name, version, json))
}

/// Files of the bundle in the package: (from `dist/`, to the package).
const PACKAGE_FILES: &[(&str, &str)] = &[
    ("outbox_page.js", "outbox_page.js"),
    ("outbox_page.d.ts", "outbox_page.d.ts"),
    ("types.d.ts", "types.d.ts"),
    ("outbox-core.js", "outbox-core.js"),
    ("outbox-core.wasm", "outbox-core.wasm"),
    ("outbox-worker.mjs", "worker.js"),
    ("outbox-worker.d.ts", "worker.d.ts"),
    ("sw.js", "worker/sw.js"),
    ("outbox-worker.js", "worker/outbox-worker.js"),
    ("outbox-worker.d.ts", "worker/outbox-worker.d.ts"),
    ("types.d.ts", "worker/types.d.ts"),
];

/// The declaration of `outbox-genesys/outbox-core.wasm`.
pub const WASM_DECLARATION: &str = "\
/**
 * The core as a bare wasm module, imported through a bundler that makes a
 * `.wasm` import the URL of a file it emits (esbuild `--loader:.wasm=file`,
 * webpack `type: 'asset/resource'`; with Vite import `…/outbox-core.wasm?url`).
 * Load it with `init({ module_or_path: url })` before `Outbox.open`.
 */
declare const url: string;
export default url;
";

/// The declaration of `outbox-genesys/outbox-core.js`: a classic script,
/// loaded by URL, which exports nothing.
pub const CORE_SCRIPT_DECLARATION: &str = "\
/**
 * The core as a classic script (it sets `self.outboxCore`): not a module to
 * import, but a file to load by its URL, as the worker does
 * (`importScripts`) and the page does (`init({ module_or_path })`, or by
 * default from beside `outbox_page.js`). `copy-worker` and the bundler
 * plugins put it where your site serves it.
 */
export {};
";

/// Stages the npm package from the bundle in `dist`, checks it (types,
/// publint) and packs it.
pub fn package(dist: &Path) -> Result<Package, String> {
    ensure_npm_tools()?;
    let root = tools::root();
    let out = root.join("target").join("npm");
    let dir = out.join("package");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("worker")).map_err(|e| format!("{}: {e}", dir.display()))?;
    let copy = |from: &Path, to: &Path| {
        std::fs::copy(from, to)
            .map(|_| ())
            .map_err(|e| format!("{}: {e}", from.display()))
    };
    for (from, to) in PACKAGE_FILES {
        copy(&dist.join(from), &dir.join(to))?;
    }
    for (from, to) in [
        ("LICENSE-MIT", "LICENSE-MIT"),
        ("LICENSE-APACHE", "LICENSE-APACHE"),
        ("web/npm/README.md", "README.md"),
        ("web/npm/bin.js", "bin.js"),
    ] {
        copy(&root.join(from), &dir.join(to))?;
    }
    // The bundler plugins (`outbox-genesys/vite`, `outbox-genesys/esbuild`)
    // and what they share, Node code: JavaScript and declarations by tsc
    // from one source.
    tools::run(
        Command::new(npm_bin("tsc"))
            .current_dir(root.join("web/npm/src"))
            .args(["-p", "tsconfig.json", "--outDir"])
            .arg(&dir),
    )?;
    // `import coreUrl from 'outbox-genesys/outbox-core.wasm'` under a
    // bundler that turns it into the URL of a file it emits (esbuild's
    // `--loader:.wasm=file`, webpack's `asset/resource`).
    std::fs::write(dir.join("outbox-core.wasm.d.ts"), WASM_DECLARATION)
        .map_err(|e| e.to_string())?;
    std::fs::write(dir.join("outbox-core.d.ts"), CORE_SCRIPT_DECLARATION)
        .map_err(|e| e.to_string())?;
    // The worker files are classic scripts, not ES modules.
    std::fs::write(
        dir.join("worker/package.json"),
        "{\n  \"type\": \"commonjs\"\n}\n",
    )
    .map_err(|e| e.to_string())?;
    let (name, version, text) = package_json(&page_metadata()?)?;
    std::fs::write(dir.join("package.json"), text).map_err(|e| e.to_string())?;
    check_types(dist, &out.join("ts-check"))?;
    tools::run(Command::new(npm_bin("publint")).arg("--strict").arg(&dir))?;
    tools::run(
        Command::new("npm")
            .current_dir(&dir)
            .args(["pack", "--silent", "--pack-destination"])
            .arg(&out),
    )?;
    let tarball = out.join(format!("{name}-{version}.tgz"));
    if !tarball.is_file() {
        return Err(format!("npm pack wrote no {}", tarball.display()));
    }
    // Every entry point's types resolve (ES modules only: no CommonJS).
    tools::run(
        Command::new(npm_bin("attw"))
            .arg(&tarball)
            .args(["--profile", "esm-only"]),
    )?;
    eprintln!("xtask: packed {}", tarball.display());
    Ok(Package { tarball, name })
}

#[cfg(test)]
mod tests {
    /// The page API's configuration types (the TypeScript source's own,
    /// `web/host/types.ts`) declare exactly the fields `outbox-core`'s
    /// parser reads (`config::FIELDS`, which a core test holds to the
    /// parser), `getToken` aside; a guest's, only fields a guest reads.
    #[test]
    fn config_types_are_cores() {
        super::ensure_npm_tools().expect("the npm tools install");
        let root = crate::tools::root();
        let out = std::process::Command::new("node")
            .arg(root.join("web/host/check/config-fields.cjs"))
            .arg(super::node_modules().join("typescript"))
            .output()
            .expect("node (the build needs it for npm) runs");
        assert!(
            out.status.success(),
            "node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let types: serde_json::Value =
            serde_json::from_slice(&out.stdout).expect("the script prints JSON");
        let list = |name: &str| -> Vec<String> {
            types[name]
                .as_array()
                .unwrap_or_else(|| panic!("no {name} in {types}"))
                .iter()
                .map(|v| v.as_str().unwrap_or_default().to_owned())
                .collect()
        };
        let mut core: Vec<String> = outbox_core::config::FIELDS
            .iter()
            .map(|f| (*f).to_owned())
            .collect();
        core.sort();
        assert_eq!(
            list("OutboxConfig"),
            core,
            "web/host/types.ts OutboxConfig against outbox_core::config::FIELDS"
        );
        for field in list("GuestConfig") {
            assert!(
                outbox_core::config::FIELDS.contains(&field.as_str())
                    || outbox_core::config::GUEST_FIELDS.contains(&field.as_str()),
                "GuestConfig declares `{field}`, which a guest's configuration does not read"
            );
        }
        for field in outbox_core::config::GUEST_FIELDS {
            assert!(
                list("GuestConfig").iter().any(|f| f == field),
                "GuestConfig lacks `{field}`"
            );
        }
    }
}
