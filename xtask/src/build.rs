//! `cargo xtask build`: the browser bundle in `dist/`.
//!
//! * `outbox-worker.js` — the worker module (a classic script a site's own
//!   service worker imports), stamped with the engine's hash (so that a new
//!   engine replaces the cached one) and the route facts of `outbox-core`
//!   (Genesys regions, default routes) it decides ownership from;
//! * `sw.js` — the stand-alone service worker built on it;
//! * `outbox_sw.js` + `outbox_sw_bg.wasm` — the worker engine
//!   (wasm-bindgen `no-modules`, global `outbox_wasm_bindgen`, loaded with
//!   `importScripts`);
//! * `outbox_page.js` + `outbox_page_bg.wasm` + `outbox_page.d.ts` — the
//!   page API as an ES module (the glue with `crates/outbox-page/ts/auto_init.js`
//!   appended) with its hand-written TypeScript types;
//! * `sizes.json` with raw and gzip sizes, and `size-report.txt`: bytes per
//!   function and per crate ([`crate::size`]).

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
pub const WORKER_FILES: &[&str] = &[
    "sw.js",
    "outbox-worker.js",
    "outbox_sw.js",
    "outbox_sw_bg.wasm",
];
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
        "genesys-outbox-sw",
        "-p",
        "genesys-outbox-page",
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
        if target == "no-modules" {
            // Not `wasm_bindgen`: a site's own worker may load another such glue.
            cmd.args(["--no-modules-global", "outbox_wasm_bindgen"]);
        }
        tools::run(cmd.arg(out.join(crate_file)))?;
        let wasm = dist.join(format!("{name}_bg.wasm"));
        // A twin with names, for the size report (the shipped file has none).
        tools::run(
            Command::new(&tools.wasm_opt)
                .args(["-Oz", "-g"])
                .arg(&wasm)
                .arg("-o")
                .arg(named_twin(name)),
        )?;
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
    let stamp = format!("{:016x}", fnv1a(&engine));
    let web = tools::root().join("web");
    let read = |name: &str| {
        std::fs::read_to_string(web.join(name)).map_err(|e| format!("web/{name}: {e}"))
    };
    let module = read("outbox-worker.js")?
        .replace("__OUTBOX_BUILD__", &stamp)
        .replace("__OUTBOX_FACTS__", &worker_facts());
    std::fs::write(dist.join("outbox-worker.js"), module).map_err(|e| e.to_string())?;
    std::fs::copy(
        web.join("outbox-worker.d.ts"),
        dist.join("outbox-worker.d.ts"),
    )
    .map_err(|e| format!("web/outbox-worker.d.ts: {e}"))?;
    let shim = read("sw.js")?.replace("__OUTBOX_BUILD__", &stamp);
    std::fs::write(dist.join("sw.js"), shim).map_err(|e| e.to_string())?;
    // The npm package is staged apart (`cargo xtask package`).
    let _ = std::fs::remove_file(dist.join("package.json"));
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
    crate::size::write(
        &bundle.dist,
        &[
            ("worker (outbox_sw_bg.wasm)", &named_twin("outbox_sw")),
            ("page (outbox_page_bg.wasm)", &named_twin("outbox_page")),
        ],
    )?;
    eprintln!(
        "xtask: built {} — worker bundle {:.1} KiB gzip, page bundle {:.1} KiB gzip",
        bundle.dist.display(),
        bundle.gzip_of(WORKER_FILES) as f64 / 1024.0,
        bundle.gzip_of(PAGE_FILES) as f64 / 1024.0
    );
    Ok(bundle)
}

/// Where the named twin of module `name` goes (outside `dist/`: not shipped).
fn named_twin(name: &str) -> PathBuf {
    target_dir().join(format!("{name}.named.wasm"))
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

/// What the worker module decides ownership from before its engine has
/// started: `{"regions": [...], "routes": [{"method", "path"}], "messages":
/// [...]}`, from `outbox-core` (regions, routes) and `outbox-web`'s
/// protocol (the message types a worker takes): one home for each.
pub fn worker_facts() -> String {
    use outbox_core::json::string;
    let regions: Vec<String> = outbox_core::genesys::REGIONS
        .iter()
        .map(|r| string(r))
        .collect();
    let routes: Vec<String> = outbox_core::route::default_routes()
        .iter()
        .map(|r| {
            format!(
                r#"{{"method":{},"path":{}}}"#,
                string(&r.method),
                string(&r.path.to_string())
            )
        })
        .collect();
    let messages: Vec<String> = outbox_web::protocol::Message::TO_WORKER
        .iter()
        .map(|m| string(m))
        .collect();
    format!(
        r#"{{"regions":[{}],"routes":[{}],"messages":[{}]}}"#,
        regions.join(","),
        routes.join(","),
        messages.join(",")
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn worker_facts_name_every_region_and_default_route() {
        let facts = super::worker_facts();
        assert!(facts.contains(r#""mypurecloud.ie""#), "{facts}");
        assert!(
            facts.contains(r#"{"method":"POST","path":"/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages"}"#),
            "{facts}"
        );
        assert_eq!(facts.matches(r#""method""#).count(), 4, "{facts}");
        assert!(
            facts.contains(r#""messages":["TOKEN_UPDATED","flush","online","OUTBOX_REPLAY"]"#),
            "{facts}"
        );
    }

    /// The worker module decides ownership before its engine starts, in
    /// JavaScript (a synchronous answer, and the engine's wasm cannot be
    /// had synchronously); core decides it once the engine runs
    /// (`config::route_table`, `RouteTable::is_candidate`). Core is the
    /// rule: here the module's `matcher`, run by Node with the facts a
    /// build stamps in, answers every request of every configuration as
    /// core does.
    #[test]
    fn the_worker_modules_ownership_is_cores() {
        let root = crate::tools::root();
        let module = std::fs::read_to_string(root.join("web/outbox-worker.js"))
            .expect("web/outbox-worker.js");
        let start = module
            .find("  function matcher(config) {")
            .expect("the module's matcher");
        let end = start
            + module[start..]
                .find("\n  }\n")
                .expect("the end of the matcher")
            + "\n  }\n".len();
        let matcher = &module[start..end];

        let origins = [
            "http://127.0.0.1:8081",
            "https://API.example.test:443",
            "https://api.example.test:8443",
        ];
        let configs = [
            "{}".to_owned(),
            r#"{"genesysRegions":false}"#.to_owned(),
            r#"{"defaultRoutes":false,"routes":[{"name":"x","path":"/chat/{room}/send","lane":["path:room"]}]}"#.to_owned(),
            format!(
                r#"{{"genesysRegions":false,"origins":["{}","{}"],"routes":[{{"name":"p","method":"put","path":"/v1/{{a}}/{{b}}","lane":["path:a"]}}]}}"#,
                origins[0], origins[1]
            ),
            format!(r#"{{"apiBase":"{}","defaultRoutes":false,"routes":[{{"name":"r","path":"/r","lane":["body:x"]}}]}}"#, origins[2]),
            r#"{"region":"mypurecloud.de","genesysRegions":false}"#.to_owned(),
            r#"{"genesysRegions":false,"defaultRoutes":false}"#.to_owned(),
        ];
        let paths = [
            "/api/v2/conversations/messages/c1/communications/m1/messages",
            "/api/v2/conversations/messages/c1/communications//messages",
            "/api/v2/conversations/messages/c1/communications/m1/messages/",
            "/api/v2/conversations/messages/i1/inbound/open/message?x=1",
            "/api/v2/conversations/messages/agentless#frag",
            "/api/v2/conversations/messaging/messages",
            "/api/v2/conversations/messaging",
            "/chat/room-1/send",
            "/chat//send",
            "/v1/a/b",
            "/v1/a",
            "/r",
            "/R",
        ];
        let hosts = [
            "https://api.mypurecloud.ie",
            "https://api.mypurecloud.de",
            "https://API.MYPURECLOUD.IE",
            "https://api.mypurecloud.ie:443",
            "https://login.mypurecloud.ie",
            "http://127.0.0.1:8081",
            "http://localhost:8081",
            "https://api.example.test",
            "https://api.example.test:8443",
        ];
        let methods = ["POST", "post", "PUT", "GET"];
        let mut requests = Vec::new();
        for host in hosts {
            for path in paths {
                for method in methods {
                    requests.push((method, format!("{host}{path}")));
                }
            }
        }
        let cases: Vec<String> = configs.iter().map(|c| format!("{c:?}")).collect();
        let asked: Vec<String> = requests
            .iter()
            .map(|(m, u)| format!(r#"{{"method":{m:?},"url":{u:?}}}"#))
            .collect();
        let script = format!(
            "const FACTS = {facts};\n{matcher}\nconst configs = [{cases}];\nconst requests = [{asked}];\n\
             console.log(JSON.stringify(configs.map((c) => {{ const owns = matcher(JSON.parse(c)); return requests.map((r) => owns(r)); }})));\n",
            facts = super::worker_facts(),
            cases = cases.join(","),
            asked = asked.join(","),
        );
        let out = std::process::Command::new("node")
            .args(["-e", &script])
            .output()
            .expect("node (the build needs it for npm) runs");
        assert!(
            out.status.success(),
            "node: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let js: Vec<Vec<bool>> =
            serde_json::from_slice(&out.stdout).expect("the matcher's answers as JSON");
        for (config, answers) in configs.iter().zip(&js) {
            let table = outbox_core::config::route_table(config).expect("a valid configuration");
            for ((method, url), js_owns) in requests.iter().zip(answers) {
                assert_eq!(
                    *js_owns,
                    table.is_candidate(method, url),
                    "{method} {url} under {config}: the worker module must answer as core does"
                );
            }
        }
    }
}
