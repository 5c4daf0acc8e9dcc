//! The example apps (`examples/vite`, `examples/workbox`,
//! `examples/esbuild`) as a user builds
//! them from the packed npm package: `cargo xtask examples` packs the
//! package, installs the tarball into a copy of each example under
//! `target/examples/`, builds it and type-checks it; these tests serve the
//! built site (with the demo server's same-origin token broker) and drive
//! it in headless Chromium against the emulator on another origin.
//! Ignored by a plain `cargo test`: they need that build (`cargo xtask
//! test` runs them after it).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use e2e::stack::{encode, root};
use e2e::{Browser, Page, Stack};
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
    browser.stop_service_workers(&page).await.unwrap();
    let own: Value = page.eval("app.appRoute()").await.unwrap();
    assert_eq!(own["body"]["handledBy"], "app", "after a restart: {own}");
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs `cargo xtask examples` (run by `cargo xtask test`)"]
async fn vite_example_with_its_own_worker() {
    own_worker_example("vite", "conv-vite").await;
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
    assert_eq!(stack.emulator.control().messages().total, 0);
    recover_and_drain(&page, &browser, &stack).await;
    assert_eq!(texts(&stack, "conv-esbuild"), ["m0", "m1", "m2", "m3"]);
    assert_eq!(stack.emulator.control().messages().duplicates, 0);
    browser.close().await;
    stack.stop().await;
}
