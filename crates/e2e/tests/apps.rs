//! Outbox in real apps, end to end in every engine: an app's own
//! service worker adding Outbox through the worker module
//! (`web/test/app-sw.js`), and the replay guard between a page and the
//! worker that controls it, against the emulator on another origin.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::stack::encode;
use e2e::{Browser, Capability, Page, Stack};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

fn agent_url(stack: &Stack, conversation: &str) -> String {
    format!(
        "{}/api/v2/conversations/messages/{conversation}/communications/comm-1/messages",
        stack.emulator.base_url()
    )
}

/// The app harness (`web/test/app.html`) with `config`, and the app's own
/// worker when `sw` is given.
fn app_page(stack: &Stack, config: &Value, sw: Option<&str>) -> String {
    let mut config = config.clone();
    config["origins"] = json!([stack.emulator.base_url()]);
    config["apiBase"] = json!(stack.emulator.base_url());
    let mut url = format!(
        "{}/test/app.html?config={}",
        stack.demo.url(),
        encode(&config.to_string())
    );
    if let Some(sw) = sw {
        url.push_str(&format!("&sw={}", encode(sw)));
    }
    url
}

async fn ready(page: &Page<'_>, browser: &Browser) {
    if let Err(e) = page.eval::<bool>("T.ready").await {
        let console = browser.console().await.join("\n");
        panic!("app page not ready: {e}\nconsole:\n{console}");
    }
}

/// The page's fetch, with a broker token, as an app would send it.
async fn post(page: &Page<'_>, url: &str, body: Value) -> Value {
    page.eval(&format!(
        "T.token().then(t => T.post({}, {}, {{ authorization: 'Bearer ' + t }}))",
        json!(url),
        body
    ))
    .await
    .unwrap()
}

async fn app_echo(page: &Page<'_>) -> Value {
    page.eval("T.post('/test/app/echo', { ping: 1 })")
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_apps_own_worker_keeps_its_routes_and_adds_outbox() {
    let stack = Stack::start("app-worker", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let url = app_page(&stack, &json!({}), Some("/test/app-sw.js"));
    let page = browser.new_page(&url).await.unwrap();
    ready(&page, &browser).await;
    // The app's worker does not claim pages (Outbox never makes it): a
    // reload brings the page under it.
    page.reload().await.unwrap();
    ready(&page, &browser).await;
    page.wait_for("T.controlled()", WAIT).await.unwrap();

    // The app's own POST route is answered by the app's handler.
    let echo = app_echo(&page).await;
    assert_eq!(echo["status"], 200, "{echo}");
    assert_eq!(echo["body"]["app"], true, "{echo}");

    // Offline: Outbox's route answers 202, kept.
    stack.set_outage(true);
    for i in 0..3 {
        let answer = post(
            &page,
            &agent_url(&stack, "conv-app"),
            json!({ "textBody": format!("m{i}") }),
        )
        .await;
        assert_eq!(answer["status"], 202, "m{i}: {answer}");
        assert_eq!(answer["body"]["queued"], true, "{answer}");
    }

    // The browser stops the worker; the restarted worker's first event is
    // the app's own POST: still the app's (Outbox does not own it, even
    // while its engine starts). The restarted worker evaluates the stored
    // copy of the worker module, imported from another folder than its own
    // (Firefox names that copy's frames by the path given to
    // `importScripts`).
    if !e2e::skip_step(Capability::StopWorker, "the worker restart") {
        browser.stop_service_workers(&page).await.unwrap();
        let echo = app_echo(&page).await;
        assert_eq!(echo["status"], 200, "after a restart: {echo}");
        assert_eq!(echo["body"]["app"], true, "after a restart: {echo}");
    }

    // The app answers Outbox's route with a 503 of its own, handing the
    // request to Outbox: kept, not lost.
    page.eval::<Value>("T.message({ type: 'app-maintenance', on: true }), null")
        .await
        .unwrap();
    let handed = post(
        &page,
        &agent_url(&stack, "conv-app"),
        json!({ "textBody": "m3" }),
    )
    .await;
    assert_eq!(handed["status"], 202, "{handed}");
    assert_eq!(handed["body"]["reason"], "handed-over", "{handed}");
    page.eval::<Value>("T.message({ type: 'app-maintenance', on: false }), null")
        .await
        .unwrap();
    assert_eq!(stack.emulator.control().messages().total, 0);

    // Recovery: delivered in order, once each.
    stack.set_outage(false);
    page.eval::<Value>("window.dispatchEvent(new Event('online')), null")
        .await
        .unwrap();
    if let Err(e) = page
        .wait_for("T.outbox.stats().then(s => s.queued === 0)", WAIT)
        .await
    {
        let console = browser.console().await.join("\n");
        panic!("not drained: {e}\nconsole:\n{console}");
    }
    assert_eq!(texts(&stack, "conv-app"), ["m0", "m1", "m2", "m3"]);
    assert_eq!(stack.emulator.control().messages().duplicates, 0);
    let echo = app_echo(&page).await;
    assert_eq!(echo["body"]["app"], true, "{echo}");
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pages_own_send_to_another_origin_is_never_queued_again_by_its_worker() {
    let stack = Stack::start("replay-guard", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    // Fast retries, so the page sends again soon after it is controlled.
    let config = json!({ "retry": { "baseMs": 100, "capMs": 300 } });
    let page = browser
        .new_page(&app_page(&stack, &config, None))
        .await
        .unwrap();
    ready(&page, &browser).await;

    // No worker yet: the page sends itself (with a token it got while
    // online), and fails (offline).
    page.eval::<Value>("T.token().then(t => T.outbox.setToken(t, 3600)).then(() => null)")
        .await
        .unwrap();
    stack.set_outage(true);
    let accepted: Value = page
        .eval("T.outbox.sendAgentMessage('conv-guard', 'comm-1', 'once')")
        .await
        .unwrap();
    page.wait_for("T.ofType('retrying').length >= 1", WAIT)
        .await
        .unwrap();

    // A worker takes control of the page. It has a database of its own, so
    // that only the page can send the page's entry: every further attempt
    // is a page's send through its worker, to the emulator's origin.
    let worker_config = json!({
        "origins": [stack.emulator.base_url()],
        "apiBase": stack.emulator.base_url(),
        "database": "outbox-worker",
        "tokenUrl": "/token",
    });
    page.eval::<bool>(&format!("T.register('/sw.js', {worker_config})"))
        .await
        .unwrap();
    page.wait_for("T.controlled()", WAIT).await.unwrap();
    let before: u64 = page.eval("T.ofType('retrying').length").await.unwrap();
    page.wait_for(
        &format!(
            "T.ofType('retrying').length >= {} || T.ofType('sent').length > 0",
            before + 2
        ),
        WAIT,
    )
    .await
    .unwrap();
    let sent: Vec<Value> = page.eval("T.ofType('sent')").await.unwrap();
    assert!(
        sent.is_empty(),
        "the worker answered the page's own send (queued it again): {sent:?}"
    );
    let kept: Vec<Value> = page.eval("T.rawEntries('outbox-worker')").await.unwrap();
    assert!(kept.is_empty(), "the worker kept a copy: {kept:?}");

    // Back online: the page's send passes through its worker to the server.
    stack.set_outage(false);
    page.wait_for("T.ofType('sent').length > 0", WAIT)
        .await
        .unwrap();
    let sent: Vec<Value> = page.eval("T.ofType('sent')").await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["id"], accepted["id"], "{sent:?}");
    assert_eq!(sent[0]["status"], 200, "the server's answer: {sent:?}");
    assert_eq!(texts(&stack, "conv-guard"), ["once"]);
    let kept: Vec<Value> = page.eval("T.rawEntries('outbox-worker')").await.unwrap();
    assert!(kept.is_empty(), "the worker kept a copy: {kept:?}");
    browser.close().await;
    stack.stop().await;
}
