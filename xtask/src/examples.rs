//! `cargo xtask examples`: the example apps built from the packed npm
//! package, as a user would. Each of `examples/<name>` is copied to
//! `target/examples/<name>` (without `node_modules` or build output), the
//! package's tarball is installed into it with `npm ci` (the example's
//! committed `package-lock.json` pins everything else, from the npm
//! registry; the lock's entry for the package is pointed at the tarball
//! just packed; an example without a lock file gets one written by `npm
//! install <tarball>`, to commit), `npm ls` must be clean, then `npm run build` and `tsc --noEmit -p` on its `tsconfig.json`
//! (and `tsconfig.sw.json`, a worker's, and `tsconfig.node.json`, a build
//! configuration's, where there is one). The
//! end-to-end tests in `crates/e2e/tests/examples.rs` drive the result.

use std::path::Path;
use std::process::Command;

use crate::package::{self, Package};
use crate::tools;

/// The example apps.
pub const EXAMPLES: &[&str] = &["vite", "esbuild", "workbox"];

/// What is never copied from an example (installed or built output).
const SKIP: &[&str] = &["node_modules", "dist", "outbox"];

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

/// The READMEs whose marked TypeScript snippets are compiled.
pub const READMES: &[&str] = &["README.md", "web/npm/README.md"];

/// A README snippet marked for `tsc`.
#[derive(Debug, PartialEq)]
pub struct Snippet {
    /// `page` (lib ES2022 + DOM), `worker` (lib ES2022 + WebWorker) or
    /// `build` (a bundler's configuration, lib ES2022).
    pub kind: String,
    /// The 1-based line of its marker.
    pub line: usize,
    /// The code.
    pub code: String,
}

/// The fenced ```ts blocks of `text` that follow a line
/// `<!-- check: tsc page -->` (or `tsc worker`, `tsc build`); a marker not followed by
/// such a block is an error (a check silently lost).
pub fn snippets(text: &str) -> Result<Vec<Snippet>, String> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(rest) = lines[i].trim().strip_prefix("<!-- check: tsc ") else {
            i += 1;
            continue;
        };
        let kind = rest.split_whitespace().next().unwrap_or_default();
        if !["page", "worker", "build"].contains(&kind) {
            return Err(format!(
                "line {}: `check: tsc {kind}`: page, worker or build",
                i + 1
            ));
        }
        if lines.get(i + 1).map(|l| l.trim()) != Some("```ts") {
            return Err(format!(
                "line {}: the marker is not followed by a ```ts block",
                i + 1
            ));
        }
        let start = i + 2;
        let end = (start..lines.len())
            .find(|&j| lines[j].trim() == "```")
            .ok_or_else(|| format!("line {}: the ```ts block is not closed", i + 1))?;
        out.push(Snippet {
            kind: kind.to_owned(),
            line: i + 1,
            code: lines[start..end].join("\n"),
        });
        i = end + 1;
    }
    Ok(out)
}

/// Compiles every marked TypeScript snippet of the READMEs with
/// `tsc --strict` against the packed package installed into
/// `target/examples/readme` (as an app that installed it; the app's own
/// names they use are declared in `web/host/check/readme.d.ts`).
pub fn check_readme_snippets(package: &Package) -> Result<(), String> {
    let root = tools::root();
    let dir = root.join("target").join("examples").join("readme");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("{name}: {e}"))
    };
    write(
        "package.json",
        "{ \"name\": \"readme-snippets\", \"private\": true, \"type\": \"module\" }\n",
    )?;
    std::fs::copy(
        root.join("web/host/check/readme.d.ts"),
        dir.join("readme.d.ts"),
    )
    .map_err(|e| format!("web/host/check/readme.d.ts: {e}"))?;
    // The package, and Node's types for the build configurations.
    tools::run(
        Command::new("npm")
            .current_dir(&dir)
            .args(["install", "--no-audit", "--no-fund"])
            .arg(&package.tarball)
            .arg(format!("@types/node@{}", package::TYPES_NODE_VERSION)),
    )?;
    let mut files: Vec<(String, String)> = Vec::new();
    for readme in READMES {
        let text =
            std::fs::read_to_string(root.join(readme)).map_err(|e| format!("{readme}: {e}"))?;
        for snippet in snippets(&text).map_err(|e| format!("{readme}: {e}"))? {
            let name = format!(
                "{}-{}.ts",
                readme.replace(['/', '.'], "_").to_lowercase(),
                snippet.line
            );
            // A module of its own (top-level await, no clashes), named
            // after its README and line, as tsc's errors will show.
            write(&name, &format!("{}\nexport {{}};\n", snippet.code))?;
            files.push((snippet.kind, name));
        }
    }
    // One project per kind: its libraries, and only the types it names
    // (Node's for a build configuration, none for pages and workers).
    for (kind, lib, types) in [
        ("page", "\"ES2022\", \"DOM\"", ""),
        ("worker", "\"ES2022\", \"WebWorker\"", ""),
        ("build", "\"ES2022\"", "\"node\""),
    ] {
        let mut these: Vec<String> = files
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, f)| format!("\"{f}\""))
            .collect();
        if these.is_empty() {
            continue;
        }
        eprintln!(
            "xtask: tsc --strict on {} README snippet(s) ({kind})",
            these.len()
        );
        // The app's names (a build configuration's snippets name none).
        if kind != "build" {
            these.push("\"readme.d.ts\"".to_owned());
        }
        let project = format!("tsconfig.{kind}.json");
        write(
            &project,
            &format!(
                "{{\n  \"compilerOptions\": {{ \"noEmit\": true, \"strict\": true, \"target\": \"ES2022\", \
                 \"module\": \"ESNext\", \"moduleResolution\": \"bundler\", \"lib\": [{lib}], \"types\": [{types}] }},\n  \
                 \"files\": [{}]\n}}\n",
                these.join(", ")
            ),
        )?;
        tools::run(
            Command::new(package::npm_bin("tsc"))
                .current_dir(&dir)
                .args(["-p", &project]),
        )?;
    }
    Ok(())
}

/// The lock file's entry for the package without its `integrity` (the
/// tarball is packed anew by every build; the registry's packages keep
/// theirs).
fn without_tarball_integrity(lock: &str, package: &str) -> String {
    let key = format!("\"node_modules/{package}\": {{");
    let mut inside = false;
    let mut out = String::with_capacity(lock.len());
    for line in lock.split_inclusive('\n') {
        let trimmed = line.trim();
        if trimmed == key {
            inside = true;
        } else if inside && trimmed.starts_with('}') {
            inside = false;
        } else if inside && trimmed.starts_with("\"integrity\"") {
            continue;
        }
        out.push_str(line);
    }
    out
}

/// Makes the copied example's `package.json` and lock file name the tarball
/// just packed as the package's source (`file:…`), the lock entry without
/// an integrity, so that `npm ci` installs it with the locked rest.
fn point_at_tarball(dir: &Path, package: &str, spec: &str) -> Result<(), String> {
    let read = |name: &str| -> Result<serde_json::Value, String> {
        let text = std::fs::read_to_string(dir.join(name)).map_err(|e| format!("{name}: {e}"))?;
        serde_json::from_str(&text).map_err(|e| format!("{name}: {e}"))
    };
    let write = |name: &str, value: &serde_json::Value| -> Result<(), String> {
        let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
        std::fs::write(dir.join(name), text + "\n").map_err(|e| format!("{name}: {e}"))
    };
    let mut manifest = read("package.json")?;
    manifest["dependencies"][package] = spec.into();
    write("package.json", &manifest)?;
    let mut lock = read("package-lock.json")?;
    lock["packages"][""]["dependencies"][package] = spec.into();
    let entry = &mut lock["packages"][format!("node_modules/{package}")];
    if !entry.is_object() {
        return Err(format!(
            "package-lock.json has no node_modules/{package}: delete it, and `cargo xtask examples` writes a new one"
        ));
    }
    entry["resolved"] = spec.into();
    if let Some(fields) = entry.as_object_mut() {
        fields.remove("integrity");
    }
    write("package-lock.json", &lock)
}

/// Installs the package into a copy of every example, builds and
/// type-checks it; then compiles the READMEs' snippets against it.
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
        // The package from the tarball just packed; everything else as
        // the committed lock file says (`npm ci`).
        let tarball = package
            .tarball
            .file_name()
            .map(|f| format!("file:../../npm/{}", f.to_string_lossy()))
            .ok_or("the tarball has no file name")?;
        let lock = source.join("package-lock.json");
        if lock.is_file() {
            point_at_tarball(&dir, &package.name, &tarball)?;
            tools::run(&mut npm(&["ci", "--no-audit", "--no-fund"]))?;
        } else {
            // A new example (or a dependency changed): resolve from the
            // registry once and commit the lock file this writes.
            eprintln!("xtask: example {name}: no package-lock.json, resolving and writing one");
            tools::run(npm(&["install", "--no-audit", "--no-fund"]).arg(&package.tarball))?;
            let text = std::fs::read_to_string(dir.join("package-lock.json"))
                .map_err(|e| format!("{name}: package-lock.json: {e}"))?;
            std::fs::write(&lock, without_tarball_integrity(&text, &package.name))
                .map_err(|e| format!("{}: {e}", lock.display()))?;
        }
        tools::run(&mut npm(&["ls", "--depth=0"]))?;
        tools::run(&mut npm(&["run", "build"]))?;
        // Every TypeScript project of the example (its page, its worker,
        // its build configuration).
        for project in ["tsconfig.json", "tsconfig.sw.json", "tsconfig.node.json"] {
            if dir.join(project).is_file() {
                tools::run(
                    Command::new(package::npm_bin("tsc"))
                        .current_dir(&dir)
                        .args(["--noEmit", "-p", project]),
                )?;
            }
        }
    }
    check_readme_snippets(package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readmes_mark_their_typescript_for_tsc() {
        let root = tools::root();
        let mut kinds = Vec::new();
        for readme in READMES {
            let text = std::fs::read_to_string(root.join(readme)).unwrap_or_default();
            let found = snippets(&text).unwrap_or_else(|e| panic!("{readme}: {e}"));
            assert!(!found.is_empty(), "{readme} marks no snippet for tsc");
            kinds.extend(found.into_iter().map(|s| s.kind));
        }
        assert!(kinds.iter().any(|k| k == "page"));
    }

    /// Where `copy-worker <dir>` puts the files, as the site serves them
    /// (`public/` and a build's `dist/` are served at `/`).
    fn served_at(dir: &str) -> Option<String> {
        let dir = dir.trim_end_matches('/');
        ["public", "dist"].iter().find_map(|root| {
            if dir == *root {
                Some("/".to_owned())
            } else {
                dir.strip_prefix(&format!("{root}/"))
                    .map(|rest| format!("/{rest}/"))
            }
        })
    }

    /// The quoted strings after every `prefix` (`call('`, `key: '`) in `text`.
    fn urls<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
        text.match_indices(prefix)
            .filter_map(|(at, m)| {
                let rest = &text[at + m.len()..];
                rest.find('\'').map(|end| &rest[..end])
            })
            .collect()
    }

    /// Every file a README (or an example) loads from where `copy-worker`
    /// put it is where a `copy-worker` line of the same text puts it.
    fn paths_agree(what: &str, text: &str) {
        let mut folders: Vec<String> = text
            .match_indices("copy-worker ")
            .filter_map(|(at, m)| text[at + m.len()..].split_whitespace().next())
            .filter_map(served_at)
            .collect();
        // The bundler plugins: `outbox({ path: '/outbox/' })`.
        folders.extend(urls(text, "outbox({ path: '").into_iter().map(|p| {
            let p = p.trim_matches('/');
            if p.is_empty() {
                "/".to_owned()
            } else {
                format!("/{p}/")
            }
        }));
        let loaded: Vec<&str> = [
            "importScripts('",
            "registerServiceWorker('",
            "module_or_path: '",
            "base: '",
        ]
        .iter()
        .flat_map(|call| urls(text, call))
        .filter(|url| url.starts_with('/') && !url.contains('$'))
        .collect();
        assert!(
            !loaded.is_empty(),
            "{what} loads nothing copy-worker copies"
        );
        for url in loaded {
            let folder = &url[..=url.rfind('/').unwrap_or(0)];
            assert!(
                folders.iter().any(|f| f == folder),
                "{what} loads `{url}`, but no copy-worker line of it puts files at `{folder}` (it puts them at {folders:?})"
            );
        }
    }

    #[test]
    fn the_readmes_load_the_files_where_copy_worker_puts_them() {
        let root = tools::root();
        for readme in READMES {
            let text = std::fs::read_to_string(root.join(readme)).unwrap_or_default();
            let section = text.find("copy-worker").map_or("", |at| &text[at..]);
            paths_agree(readme, section);
        }
        for (example, files) in [
            ("vite", &["vite.config.ts", "public/sw.js"][..]),
            ("esbuild", &["build.mjs", "main.ts"][..]),
            ("workbox", &["package.json", "sw.ts", "main.ts"][..]),
        ] {
            let text: String = files
                .iter()
                .map(|f| {
                    std::fs::read_to_string(root.join("examples").join(example).join(f))
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join("\n");
            paths_agree(&format!("examples/{example}"), &text);
        }
    }

    #[test]
    fn paths_that_disagree_are_found() {
        let text =
            "npx outbox-genesys copy-worker public/\nimportScripts('/outbox/outbox-worker.js');";
        assert!(std::panic::catch_unwind(|| paths_agree("t", text)).is_err());
        paths_agree(
            "t",
            "copy-worker public/outbox --no-sw\nimportScripts('/outbox/outbox-worker.js');",
        );
    }

    #[test]
    fn the_tarballs_integrity_is_left_out_of_the_lock() {
        let lock = "{\n  \"packages\": {\n    \"node_modules/outbox-genesys\": {\n      \"version\": \"0.1.0\",\n      \"integrity\": \"sha512-x\",\n      \"license\": \"MIT\"\n    },\n    \"node_modules/vite\": {\n      \"integrity\": \"sha512-y\"\n    }\n  }\n}\n";
        let out = without_tarball_integrity(lock, "outbox-genesys");
        assert!(
            !out.contains("sha512-x") && out.contains("sha512-y"),
            "{out}"
        );
        assert!(
            serde_json::from_str::<serde_json::Value>(&out).is_ok(),
            "{out}"
        );
    }

    #[test]
    fn a_lost_marker_is_an_error() {
        let text = "a\n<!-- check: tsc page -->\n```js\nx\n```\n";
        assert!(snippets(text).is_err());
        let text = "<!-- check: tsc page -->\n```ts\nlet x = 1;\n```\n";
        let found = snippets(text).unwrap_or_default();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].code, "let x = 1;");
    }
}
