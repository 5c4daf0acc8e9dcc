//! The example apps (`examples/vite`, `examples/workbox`,
//! `examples/esbuild`) as a user builds
//! them from the packed npm package: `cargo xtask examples` packs the
//! package, installs the tarball into a copy of each example under
//! `target/examples/`, builds it and type-checks it; these tests serve the
//! built site (with the demo server's same-origin token broker) and drive
//! it in the engine `OUTBOX_BROWSER` names (Chromium, Firefox, WebKit)
//! against the emulator on another origin.
//! Ignored by a plain `cargo test`: they need that build (`cargo xtask
//! test` runs them after it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use e2e::stack::{encode, root};
use e2e::{Browser, Capability, Page, Stack};
use genesys_emulator::{Config, Emulator};
use outbox_demo::{DemoOptions, DemoServer, Upstream};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Serves the built example `name` at `/` (its `index.html`), with the
/// emulator beside it.
async fn serve(name: &str) -> Stack {
    let site = root().join("target/examples").join(name).join("dist");
    assert!(
        site.join("index.html").is_file(),
        "{} is missing: run `cargo xtask examples` (cargo xtask test does)",
        site.display()
    );
    // The demo server answers `/` from `<web>/demo/index.html`, every
    // other path from the site first.
    let web = root().join("target/examples").join(name).join("served-web");
    std::fs::create_dir_all(web.join("demo")).unwrap();
    std::fs::copy(site.join("index.html"), web.join("demo/index.html")).unwrap();
    let emulator = Emulator::start(Config::ephemeral()).await.unwrap();
    let upstream = Upstream::emulator(&emulator.base_url(), "demo-client", "demo-secret");
    let mut options = DemoOptions::new("127.0.0.1:0".parse().unwrap(), upstream);
    options.dist = site;
    options.web = web;
    let demo = DemoServer::start(options).await.unwrap();
    let profile: PathBuf =
        std::env::temp_dir().join(format!("outbox-example-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    Stack {
        emulator,
        demo,
        profile,
    }
}

async fn open<'b>(browser: &'b Browser, stack: &Stack) -> Page<'b> {
    let url = format!(
        "{}/?api={}",
        stack.demo.url(),
        encode(&stack.emulator.base_url())
    );
    let page = browser.new_page(&url).await.unwrap();
    app_ready(&page, browser).await;
    page
}

async fn app_ready(page: &Page<'_>, browser: &Browser) {
    if let Err(e) = page.wait_for("!!window.app", WAIT).await {
        let console = browser.console().await.join("\n");
        panic!("the example did not start: {e}\nconsole:\n{console}");
    }
}

async fn post(page: &Page<'_>, lane: &str, text: &str) -> Value {
    page.eval(&format!("app.post({}, {})", json!(lane), json!(text)))
        .await
        .unwrap()
}

fn texts(stack: &Stack, lane: &str) -> Vec<String> {
    stack
        .emulator
        .control()
        .messages()
        .lanes
        .iter()
        .filter(|l| l.lane == lane)
        .flat_map(|l| l.messages.iter().filter_map(|m| m.text.clone()))
        .collect()
}

async fn recover_and_drain(page: &Page<'_>, browser: &Browser, stack: &Stack) {
    stack.set_outage(false);
    page.eval::<Value>("window.dispatchEvent(new Event('online')), null")
        .await
        .unwrap();
    if let Err(e) = page
        .wait_for("app.outbox.stats().then(s => s.queued === 0)", WAIT)
        .await
    {
        let console = browser.console().await.join("\n");
        panic!("not drained: {e}\nconsole:\n{console}");
    }
}

/// An example whose app has its own worker (`app.appRoute()` is its own
/// POST route; a `maintenance` message makes it hand Outbox's requests over
/// instead of answering 503).
async fn own_worker_example(name: &str, lane: &str) {
    let stack = serve(name).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack).await;
    // The app's worker does not claim pages: once it is active, a reload
    // brings this one under it.
    page.eval::<bool>("navigator.serviceWorker.ready.then(() => true)")
        .await
        .unwrap();
    page.reload().await.unwrap();
    app_ready(&page, &browser).await;
    page.wait_for("!!navigator.serviceWorker.controller", WAIT)
        .await
        .unwrap();
    let own: Value = page.eval("app.appRoute()").await.unwrap();
    assert_eq!(own["body"]["handledBy"], "app", "{own}");

    // Offline: 202, kept.
    stack.set_outage(true);
    for i in 0..3 {
        let answer = post(&page, lane, &format!("m{i}")).await;
        assert_eq!(answer["status"], 202, "m{i}: {answer}");
        assert_eq!(answer["body"]["queued"], true, "{answer}");
    }
    // A worker restart: the app's own POST is still the app's.
    if !e2e::skip_step(Capability::StopWorker, "the worker restart") {
        browser.stop_service_workers(&page).await.unwrap();
        let own: Value = page.eval("app.appRoute()").await.unwrap();
        if own["body"]["handledBy"] != "app" {
            let console = browser.console().await.join("\n");
            panic!("after a restart: {own}\nconsole:\n{console}");
        }
    }
    // The app's own 503 path hands the request to Outbox: kept.
    page.eval::<Value>(
        "navigator.serviceWorker.controller.postMessage({ type: 'maintenance', on: true }), null",
    )
    .await
    .unwrap();
    let handed = post(&page, lane, "m3").await;
    assert_eq!(handed["status"], 202, "{handed}");
    assert_eq!(handed["body"]["reason"], "handed-over", "{handed}");
    page.eval::<Value>(
        "navigator.serviceWorker.controller.postMessage({ type: 'maintenance', on: false }), null",
    )
    .await
    .unwrap();
    assert_eq!(stack.emulator.control().messages().total, 0);

    recover_and_drain(&page, &browser, &stack).await;
    assert_eq!(texts(&stack, lane), ["m0", "m1", "m2", "m3"]);
    assert_eq!(stack.emulator.control().messages().duplicates, 0);
    let own: Value = page.eval("app.appRoute()").await.unwrap();
    assert_eq!(own["body"]["handledBy"], "app", "{own}");
    browser.close().await;
    stack.stop().await;
}

/// The manifest a bundler plugin wrote at `manifest` (a URL of the site),
/// checked in the page: every file it names, fetched, has the revision it
/// gives (the first 16 hex digits of its SHA-256). Returns the URLs.
async fn manifest_files(page: &Page<'_>, manifest: &str) -> Vec<String> {
    let checked: Vec<(String, bool)> = page
        .eval(&format!(
            "(async () => {{
               const m = await (await fetch({})).json();
               const out = [];
               for (const f of m.files) {{
                 const bytes = await (await fetch(f.url, {{ cache: 'no-store' }})).arrayBuffer();
                 const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
                 const hex = [...digest].map((b) => b.toString(16).padStart(2, '0')).join('');
                 out.push([f.url, f.revision === hex.slice(0, 16)]);
               }}
               return out;
             }})()",
            json!(manifest)
        ))
        .await
        .unwrap();
    for (url, ok) in &checked {
        assert!(
            ok,
            "{manifest}: the revision of {url} is not its content's hash"
        );
    }
    checked.into_iter().map(|(url, _)| url).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn vite_example_with_its_own_worker() {
    own_worker_example("vite", "conv-vite").await;
}

/// The Vite plugin emitted the files at `/outbox/` with a manifest that
/// names them with their hashes (the app's own worker is not Outbox's
/// `sw.js`: left out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn vite_plugin_emits_the_files_and_their_manifest() {
    let stack = serve("vite").await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack).await;
    let files = manifest_files(&page, "/outbox/outbox-manifest.json").await;
    assert_eq!(
        files,
        ["/outbox/outbox-worker.js", "/outbox/outbox-core.js"]
    );
    browser.close().await;
    stack.stop().await;
}

/// `vite dev` and `vite preview` of the Vite example answer the worker's
/// files at `/outbox/` with the package's own bytes (not the HTML
/// fallback), and the manifest.
#[test]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
fn vite_dev_and_preview_serve_the_workers_files() {
    let app = root().join("target/examples/vite");
    let package = app.join("node_modules/outbox-genesys");
    let worker = std::fs::read(package.join("worker/outbox-worker.js")).unwrap();
    for (mode, port) in [("dev", 5391u16), ("preview", 5392u16)] {
        let mut args = vec!["--host", "127.0.0.1", "--strictPort"];
        if mode == "preview" {
            args.insert(0, "preview");
        }
        let mut server = std::process::Command::new(app.join("node_modules/.bin/vite"))
            .current_dir(&app)
            .args(args)
            .args(["--port", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("vite starts");
        let base = format!("http://127.0.0.1:{port}");
        // Until it answers (a condition, polled; bounded).
        let deadline = std::time::Instant::now() + WAIT;
        let got = loop {
            match ureq::get(&format!("{base}/outbox/outbox-worker.js")).call() {
                Ok(r) => break r,
                Err(e) if std::time::Instant::now() > deadline => {
                    let _ = server.kill();
                    panic!("vite {mode} never answered: {e}");
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let kind = got
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = got.into_body().read_to_vec().unwrap();
        let manifest: Value = ureq::get(&format!("{base}/outbox/outbox-manifest.json"))
            .call()
            .and_then(|r| r.into_body().read_to_string())
            .ok()
            .and_then(|text| serde_json::from_str(&text).ok())
            .unwrap_or(Value::Null);
        let _ = server.kill();
        let _ = server.wait();
        assert!(kind.contains("javascript"), "vite {mode}: {kind}");
        assert!(
            body == worker,
            "vite {mode}: /outbox/outbox-worker.js is not the package's"
        );
        assert_eq!(
            manifest["files"][0]["url"], "/outbox/outbox-worker.js",
            "vite {mode}: {manifest}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn workbox_example_with_outbox_as_a_route() {
    own_worker_example("workbox", "conv-workbox").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn esbuild_example_with_outboxs_worker() {
    let stack = serve("esbuild").await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack).await;
    // Outbox's stand-alone worker claims the page.
    page.wait_for("!!navigator.serviceWorker.controller", WAIT)
        .await
        .unwrap();
    // The esbuild plugin wrote the files at the root, sw.js with them.
    let files = manifest_files(&page, "/outbox-manifest.json").await;
    assert_eq!(files, ["/sw.js", "/outbox-worker.js", "/outbox-core.js"]);
    stack.set_outage(true);
    for i in 0..3 {
        let answer = post(&page, "conv-esbuild", &format!("m{i}")).await;
        assert_eq!(answer["status"], 202, "m{i}: {answer}");
    }
    // The page door too: durable first, then delivered in order.
    let accepted: Value = page
        .eval("app.outbox.sendAgentMessage('conv-esbuild', 'c', 'm3')")
        .await
        .unwrap();
    assert_eq!(accepted["lane"], "conv-esbuild", "{accepted}");
    // `send` on any route, its headers a `Headers` (any HeadersInit).
    let sent: Value = page
        .eval(
            "app.outbox.send({
               url: new URLSearchParams(location.search).get('api')
                 + '/api/v2/conversations/messages/conv-esbuild/communications/c/messages',
               headers: new Headers({ 'content-type': 'application/json' }),
               body: JSON.stringify({ textBody: 'm4' }),
             })",
        )
        .await
        .unwrap();
    assert_eq!(sent["lane"], "conv-esbuild", "{sent}");
    assert_eq!(stack.emulator.control().messages().total, 0);
    recover_and_drain(&page, &browser, &stack).await;
    assert_eq!(
        texts(&stack, "conv-esbuild"),
        ["m0", "m1", "m2", "m3", "m4"]
    );
    assert_eq!(stack.emulator.control().messages().duplicates, 0);
    browser.close().await;
    stack.stop().await;
}

/// An app bundled as an `iife` (no `import.meta.url`): `Outbox.open`
/// throws an error that names the way out, `init({ module_or_path })`, and
/// after it works. Bundled here with the esbuild example's own esbuild and
/// installed package, loaded into a fresh browser (no worker: the page
/// must load the core itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn an_iife_bundle_is_told_to_call_init() {
    let app = root().join("target/examples/esbuild");
    let entry = app.join("iife-check.ts");
    std::fs::write(
        &entry,
        "import init, { Outbox } from 'outbox-genesys';\n\
         Object.assign(window, { iife: {\n\
           open: () => Outbox.open().then((o) => { o.close(); return 'opened'; }, (e: Error) => e.message),\n\
           init: (url: string) => init({ module_or_path: url }),\n\
         } });\n",
    )
    .unwrap();
    let status = std::process::Command::new(app.join("node_modules/.bin/esbuild"))
        .current_dir(&app)
        .args([
            "iife-check.ts",
            "--bundle",
            "--format=iife",
            "--target=es2022",
            "--outfile=dist/iife-check.js",
        ])
        .status()
        .expect("the esbuild example's esbuild runs");
    assert!(status.success(), "esbuild --format=iife failed");
    std::fs::write(
        app.join("dist/iife-check.html"),
        "<!doctype html><meta charset=utf-8><title>iife</title><script src=\"/iife-check.js\"></script>\n",
    )
    .unwrap();
    let stack = serve("esbuild").await;
    let browser = stack.browser().await.unwrap();
    let page = browser
        .new_page(&format!("{}/iife-check.html", stack.demo.url()))
        .await
        .unwrap();
    page.wait_for("!!window.iife", WAIT).await.unwrap();
    let refused: String = page.eval("iife.open()").await.unwrap();
    assert!(
        refused.contains("import.meta.url") && refused.contains("init({ module_or_path"),
        "{refused}"
    );
    let opened: String = page
        .eval("iife.init('/outbox-core.js').then(() => iife.open())")
        .await
        .unwrap();
    assert_eq!(opened, "opened");
    browser.close().await;
    stack.stop().await;
}

/// `copy-worker` (the installed package's bin, as `npx outbox-genesys`
/// runs it) never overwrites a file it did not write: not the app's own
/// `sw.js`, and nothing else either when it stops; `--no-sw` leaves `sw.js`
/// out, a second run replaces its own files, `--force` overwrites.
#[test]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
fn copy_worker_never_overwrites_a_file_it_did_not_write() {
    let bin = root().join("target/examples/vite/node_modules/.bin/outbox-genesys");
    let dir = std::env::temp_dir().join(format!("outbox-copy-worker-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let own = "// the app's own worker\nself.addEventListener('fetch', () => {});\n";
    std::fs::write(dir.join("sw.js"), own).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(&bin)
            .arg("copy-worker")
            .arg(&dir)
            .args(extra)
            .output()
            .expect("the bin runs")
    };
    let read = |name: &str| std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let marked = |name: &str| read(name).starts_with("// Written by outbox-genesys copy-worker");

    let refused = run(&[]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("sw.js") && said.contains("--no-sw") && said.contains("--force"),
        "{said}"
    );
    assert_eq!(read("sw.js"), own);
    assert!(!dir.join("outbox-worker.js").exists(), "all or nothing");

    let copied = run(&["--no-sw"]);
    assert!(copied.status.success(), "{copied:?}");
    assert_eq!(read("sw.js"), own);
    assert!(marked("outbox-worker.js") && marked("outbox-core.js"));
    // Its own files it replaces (an upgrade).
    assert!(run(&["--no-sw"]).status.success());
    // A file of the app's under one of its names is the app's.
    std::fs::write(dir.join("outbox-core.js"), "mine").unwrap();
    assert_eq!(run(&["--no-sw"]).status.code(), Some(1));
    assert_eq!(read("outbox-core.js"), "mine");

    let forced = run(&["--force"]);
    assert!(forced.status.success(), "{forced:?}");
    assert!(marked("sw.js") && marked("outbox-core.js"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The update flow (`registerServiceWorker` with `skipWaiting: false` and
/// `onLifecycle`, as the esbuild example registers Outbox's worker): a
/// first install reports `installed`, `activated`, `controlling`; a new
/// version of `sw.js` waits (`waiting`) while the old worker keeps serving
/// (and delivers), until the app calls `skipWaiting()` (the example's update
/// button); then it controls the page (`controlling`, an update), keeps and
/// delivers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn esbuild_example_updates_its_worker_when_the_app_says() {
    let stack = serve("esbuild").await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack).await;
    let steps = "app.lifecycle.map((e) => e.type + (e.isUpdate ? ' (update)' : ''))";
    // `controlling` and `activated` come in either order (a worker that
    // claims its pages does it while it activates: `controllerchange` may
    // come before the worker's `activated` state, as WebKit under load
    // showed), so the first install is over once both have come.
    page.wait_for(
        "['installed', 'activated', 'controlling'].every((t) => app.lifecycle.some((e) => e.type === t))",
        WAIT,
    )
    .await
    .unwrap();
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v
    };
    let first: Vec<String> = page.eval(steps).await.unwrap();
    assert_eq!(first[0], "installed", "{first:?}");
    assert_eq!(
        sorted(first.clone()),
        ["activated", "controlling", "installed"],
        "{first:?}"
    );

    // A new version of the worker script.
    let sw = root().join("target/examples/esbuild/dist/sw.js");
    let original = std::fs::read_to_string(&sw).unwrap();
    std::fs::write(&sw, format!("{original}\n// a new version\n")).unwrap();
    page.eval::<Value>("app.registration.update().then(() => null)")
        .await
        .unwrap();
    let waited = page
        .wait_for(
            "app.lifecycle.some((e) => e.type === 'waiting' && e.isUpdate)",
            WAIT,
        )
        .await;
    std::fs::write(&sw, &original).unwrap();
    waited.unwrap();
    // It waits: the old worker still controls the page, and still serves.
    let old_in_charge: bool = page
        .eval("!!app.registration.waiting && navigator.serviceWorker.controller === app.registration.active")
        .await
        .unwrap();
    assert!(old_in_charge);
    assert!(
        !page
            .eval::<bool>("document.getElementById('update').hidden")
            .await
            .unwrap()
    );
    stack.set_outage(true);
    let kept = post(&page, "conv-update", "m0").await;
    assert_eq!(kept["status"], 202, "{kept}");
    // The old worker delivers it. (A worker busy flushing into an outage,
    // in a Background Sync event, is not replaced until it is idle:
    // Chromium lets it finish its events first, up to minutes.)
    recover_and_drain(&page, &browser, &stack).await;
    assert_eq!(texts(&stack, "conv-update"), ["m0"]);

    // The app's choice: take the update now.
    page.eval::<Value>("document.getElementById('update').click(), null")
        .await
        .unwrap();
    if let Err(e) = page
        .wait_for(
            "['controlling', 'activated'].every((t) => app.lifecycle.some((e) => e.type === t && e.isUpdate)) \
             && app.lifecycle.some((e) => e.type === 'redundant')",
            WAIT,
        )
        .await
    {
        let seen: Vec<String> = page.eval(steps).await.unwrap_or_default();
        let console = browser.console().await.join("\n");
        panic!("{e}: {seen:?}\nconsole:\n{console}");
    }
    // The old worker is `redundant` once the new one is in charge.
    let all: Vec<String> = page.eval(steps).await.unwrap();
    assert_eq!(all.len(), 8, "{all:?}");
    assert_eq!(all[..3], first[..], "{all:?}");
    assert_eq!(
        all[3..5],
        ["installed (update)", "waiting (update)"],
        "{all:?}"
    );
    assert_eq!(
        sorted(all[5..].to_vec()),
        ["activated (update)", "controlling (update)", "redundant"],
        "{all:?}"
    );
    stack.set_outage(true);
    let kept = post(&page, "conv-update", "m1").await;
    assert_eq!(kept["status"], 202, "the new worker keeps it too: {kept}");
    recover_and_drain(&page, &browser, &stack).await;
    assert_eq!(texts(&stack, "conv-update"), ["m0", "m1"]);
    browser.close().await;
    stack.stop().await;
}

/// A server process of an example (`vite`, `node server.mjs`), stopped
/// (by its own handle) when dropped.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `GET` of the token broker at `url` with `headers`: (status, body).
fn get_token(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let mut request = agent.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.call().expect("the broker answers");
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// The broker's rule, as any same-origin token broker must keep it: a
/// token for the server's own pages, `403` for anything else.
fn broker_answers_same_origin_only(url: &str, origin: &str, emulator: &str) {
    let (status, body) = get_token(url, &[("sec-fetch-site", "same-origin")]);
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().expect("a token").to_owned();
    assert!(body["expires_in"].as_u64().is_some_and(|s| s > 0), "{body}");
    let (status, _) = get_token(url, &[("origin", origin)]);
    assert_eq!(status, 200, "a matching Origin (no Sec-Fetch-Site)");
    for refused in [
        &[("sec-fetch-site", "cross-site")][..],
        &[("sec-fetch-site", "same-site")][..],
        &[("origin", "http://evil.example")][..],
        &[][..],
    ] {
        let (status, body) = get_token(url, refused);
        assert_eq!(status, 403, "{refused:?}: {body}");
        assert!(body.get("access_token").is_none());
    }
    // The token is the emulator's own.
    let sent = ureq::post(&format!(
        "{emulator}/api/v2/conversations/messages/conv-broker/communications/c/messages"
    ))
    .header("authorization", &format!("Bearer {token}"))
    .header("content-type", "application/json")
    .send("{\"textBody\":\"with the broker's token\"}");
    assert!(sent.is_ok(), "{sent:?}");
}

/// The Vite example's dev server answers `/token` with the broker
/// (`outbox-genesys/broker` as dev-server middleware, configured from the
/// environment), same-origin pages only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn vite_dev_server_hands_tokens_to_same_origin_pages_only() {
    let emulator = Emulator::start(Config::ephemeral()).await.unwrap();
    let app = root().join("target/examples/vite");
    let port = 5393u16;
    let _server = Server(
        std::process::Command::new(app.join("node_modules/.bin/vite"))
            .current_dir(&app)
            .args([
                "--host",
                "127.0.0.1",
                "--strictPort",
                "--port",
                &port.to_string(),
            ])
            .env("OUTBOX_CLIENT_ID", "demo-client")
            .env("OUTBOX_CLIENT_SECRET", "demo-secret")
            .env("OUTBOX_LOGIN_URL", emulator.base_url())
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("vite starts"),
    );
    let origin = format!("http://127.0.0.1:{port}");
    let url = format!("{origin}/token");
    let deadline = std::time::Instant::now() + WAIT;
    // Until the server answers (a condition, polled; bounded).
    while ureq::get(&format!("{origin}/outbox/outbox-manifest.json"))
        .call()
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "vite dev never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let emulator_url = emulator.base_url();
    tokio::task::spawn_blocking(move || {
        broker_answers_same_origin_only(&url, &origin, &emulator_url)
    })
    .await
    .unwrap();
    emulator.shutdown().await;
}

/// The esbuild example served by plain Node `http` (`node server.mjs`:
/// its files and the broker at `/token`), driven in the browser: the page's
/// own fetch and Outbox's worker both get their tokens from the broker, and
/// both messages are delivered in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn esbuild_example_served_by_node_with_its_token_broker() {
    use std::io::BufRead;
    let emulator = Emulator::start(Config::ephemeral()).await.unwrap();
    let app = root().join("target/examples/esbuild");
    let mut child = std::process::Command::new("node")
        .current_dir(&app)
        .arg("server.mjs")
        .env("PORT", "0")
        .env("OUTBOX_CLIENT_ID", "demo-client")
        .env("OUTBOX_CLIENT_SECRET", "demo-secret")
        .env("OUTBOX_LOGIN_URL", emulator.base_url())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("node runs");
    let stdout = child.stdout.take().unwrap();
    let server = Server(child);
    // It says where it listens once it does.
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .unwrap();
    let site = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("node server.mjs said: {line}"))
        .trim_end_matches('/')
        .to_owned();
    let (url, origin, emulator_url) = (format!("{site}/token"), site.clone(), emulator.base_url());
    tokio::task::spawn_blocking(move || {
        broker_answers_same_origin_only(&url, &origin, &emulator_url)
    })
    .await
    .unwrap();

    let profile = std::env::temp_dir().join(format!("outbox-example-node-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    let browser = Browser::launch(&profile).await.unwrap();
    let page = browser
        .new_page(&format!("{site}/?api={}", encode(&emulator.base_url())))
        .await
        .unwrap();
    app_ready(&page, &browser).await;
    page.wait_for("!!navigator.serviceWorker.controller", WAIT)
        .await
        .unwrap();
    // The page's own fetch (its token from /token), passed through live.
    let live = post(&page, "conv-node", "m0").await;
    assert_eq!(live["status"], 200, "{live}");
    // The page door: the worker sends, with a token it asked the broker for.
    page.eval::<Value>("app.outbox.sendAgentMessage('conv-node', 'c', 'm1')")
        .await
        .unwrap();
    page.wait_for("app.outbox.stats().then(s => s.queued === 0)", WAIT)
        .await
        .unwrap();
    let texts: Vec<String> = emulator
        .control()
        .messages()
        .lanes
        .iter()
        .filter(|l| l.lane == "conv-node")
        .flat_map(|l| l.messages.iter().filter_map(|m| m.text.clone()))
        .collect();
    assert_eq!(texts, ["m0", "m1"]);
    browser.close().await;
    drop(server);
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&profile);
}
