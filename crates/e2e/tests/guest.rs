//! The guest's Web Messaging channel end to end: the page API over a real
//! WebSocket to the emulator, IndexedDB, headless Chromium.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::stack::wait_until;
use e2e::{Browser, Page, Stack};
use genesys_emulator::{Faults, SessionReport};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

async fn open<'b>(browser: &'b Browser, stack: &Stack, config: Value) -> Page<'b> {
    let page = browser.new_page(&stack.guest_page(&config)).await.unwrap();
    if let Err(e) = page.eval::<bool>("T.ready").await {
        panic!(
            "guest page not ready: {e}\n{}",
            browser.console().await.join("\n")
        );
    }
    page
}

async fn send(page: &Page<'_>, text: &str) -> Value {
    page.eval(&format!("T.outbox.send({})", json!(text)))
        .await
        .unwrap()
}

async fn drained(page: &Page<'_>, browser: &Browser) {
    if let Err(e) = page
        .wait_for("T.outbox.stats().then(s => s.queued === 0)", WAIT)
        .await
    {
        let stats: Value = page.eval("T.outbox.stats()").await.unwrap_or_default();
        let events: Value = page.eval("T.events.slice(-12)").await.unwrap_or_default();
        panic!(
            "not drained: {e}\nstats {stats}\nlast events {events}\n{}",
            browser.console().await.join("\n")
        );
    }
}

fn session(stack: &Stack, token: &str) -> SessionReport {
    stack
        .emulator
        .control()
        .sessions()
        .into_iter()
        .find(|s| s.token == token)
        .unwrap_or_else(|| panic!("no session {token}"))
}

fn texts(report: &SessionReport) -> Vec<String> {
    report.messages.iter().map(|m| m.text.clone()).collect()
}

async fn token(page: &Page<'_>) -> String {
    page.eval("T.outbox.sessionToken").await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composed_offline_then_delivered_in_order_on_reconnect() {
    let stack = Stack::start("guest-offline", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack, json!({})).await;
    stack.set_outage(true);
    for i in 0..5 {
        let accepted = send(&page, &format!("g{i}")).await;
        assert_eq!(accepted["state"], "pending", "durable first: {accepted}");
    }
    page.wait_for("T.ofType('retrying').length > 0", WAIT)
        .await
        .expect("the first attempt failed offline");
    assert_eq!(
        page.eval::<Value>("T.outbox.stats()").await.unwrap()["queued"],
        5
    );
    assert!(
        stack.emulator.control().sessions().is_empty(),
        "nothing reached the server"
    );
    stack.set_outage(false);
    page.eval::<Value>("window.dispatchEvent(new Event('online')), null")
        .await
        .unwrap();
    drained(&page, &browser).await;
    let token = token(&page).await;
    assert_eq!(
        texts(&session(&stack, &token)),
        ["g0", "g1", "g2", "g3", "g4"]
    );
    assert_eq!(
        page.eval::<usize>("T.sent().length").await.unwrap(),
        5,
        "sent only on the echo"
    );
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_echo_is_reconciled_from_history_not_resent() {
    for (name, fault) in [("guest-drop", "drop"), ("guest-lost", "lost")] {
        let stack = Stack::start(name, |_| {}).await;
        let browser = stack.browser().await.unwrap();
        let page = open(
            &browser,
            &stack,
            json!({ "sendTimeoutMs": 2000, "leaseMs": 4000 }),
        )
        .await;
        stack
            .emulator
            .control()
            .update_faults(|f: &mut Faults| match fault {
                "drop" => f.ws_drop_rate = 1.0, // recorded, then the socket is cut (1006)
                _ => f.ws_lost_echo_rate = 1.0, // recorded, the echo never comes
            })
            .unwrap();
        send(&page, "only once").await;
        let token = token(&page).await;
        let deadline = tokio::time::Instant::now() + WAIT;
        while texts(
            &stack
                .emulator
                .control()
                .sessions()
                .into_iter()
                .find(|s| s.token == token)
                .unwrap_or_default(),
        )
        .is_empty()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the server never recorded the message"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        stack.emulator.control().clear_faults();
        drained(&page, &browser).await;
        let report = session(&stack, &token);
        assert_eq!(
            texts(&report),
            ["only once"],
            "{fault}: reconciled, not sent twice"
        );
        assert!(
            report.actions.get("onMessage").copied().unwrap_or(0) == 1,
            "{fault}: one onMessage in all: {:?}",
            report.actions
        );
        assert_eq!(page.eval::<usize>("T.sent().length").await.unwrap(), 1);
        browser.close().await;
        stack.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_pacing_never_meets_the_rate_limit() {
    let stack = Stack::start("guest-pace", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack, json!({})).await;
    for i in 0..8 {
        send(&page, &format!("p{i}")).await;
    }
    drained(&page, &browser).await;
    let report = session(&stack, &token(&page).await);
    assert_eq!(
        texts(&report),
        (0..8).map(|i| format!("p{i}")).collect::<Vec<_>>()
    );
    assert_eq!(
        report.actions.get("rateLimited"),
        None,
        "no 4029: {:?}",
        report.actions
    );
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_frame_is_honoured() {
    let stack = Stack::start("guest-429", |c| c.guest.message_rate = 1).await;
    let browser = stack.browser().await.unwrap();
    // Too fast on purpose: 4 a second against 1 a second.
    let page = open(
        &browser,
        &stack,
        json!({ "pacer": { "ratePerMinute": 240, "burst": 4 } }),
    )
    .await;
    for i in 0..4 {
        send(&page, &format!("r{i}")).await;
    }
    drained(&page, &browser).await;
    let report = session(&stack, &token(&page).await);
    assert_eq!(
        texts(&report),
        ["r0", "r1", "r2", "r3"],
        "in order, each once"
    );
    assert!(
        report.actions.get("rateLimited").copied().unwrap_or(0) >= 1,
        "{:?}",
        report.actions
    );
    assert!(
        page.eval::<bool>("T.ofType('paused').length > 0")
            .await
            .unwrap(),
        "paused on retryAfter"
    );
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_session_survives_a_reload() {
    let stack = Stack::start("guest-reload", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack, json!({})).await;
    send(&page, "before").await;
    drained(&page, &browser).await;
    let before = token(&page).await;
    page.reload().await.unwrap();
    page.eval::<bool>("T.ready").await.unwrap();
    assert_eq!(token(&page).await, before, "the session token was kept");
    send(&page, "after").await;
    drained(&page, &browser).await;
    let report = session(&stack, &before);
    assert_eq!(
        texts(&report),
        ["before", "after"],
        "the same conversation continues"
    );
    assert_eq!(stack.emulator.control().sessions().len(), 1);
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_long_text_is_a_dead_letter_that_holds_the_session_until_discarded() {
    let stack = Stack::start("guest-long", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack, json!({})).await;
    let long = "x".repeat(5000);
    send(&page, &long).await;
    send(&page, "short one after it").await;
    page.wait_for("T.outbox.deadLetters().then(d => d.length === 1)", WAIT)
        .await
        .expect("a dead letter");
    let dead: Vec<Value> = page.eval("T.outbox.deadLetters()").await.unwrap();
    assert_eq!(
        dead[0]["lastError"]["code"], "4011",
        "{}",
        dead[0]["lastError"]
    );
    assert!(
        dead[0]["lastError"]["message"]
            .as_str()
            .unwrap()
            .contains("maximum length")
    );
    // The session is a conversation: the dead letter holds it, and the
    // short one waits (no hole) until the user discards the long one.
    let stats: Value = page.eval("T.outbox.stats()").await.unwrap();
    assert_eq!(stats["held"][0]["id"], dead[0]["id"], "{stats}");
    assert_eq!(stats["pending"], 1, "{stats}");
    let id = dead[0]["id"].as_str().unwrap();
    assert!(
        page.eval::<bool>(&format!("T.outbox.discard('{id}')"))
            .await
            .unwrap()
    );
    drained(&page, &browser).await;
    assert_eq!(
        texts(&session(&stack, &token(&page).await)),
        ["short one after it"]
    );
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quick_reply_answered_offline_is_delivered_once() {
    let stack = Stack::start("guest-quick-reply", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, &stack, json!({})).await;
    stack.set_outage(true);
    let accepted: Value = page
        .eval("T.outbox.send({ quickReply: { text: 'Yes', payload: 'yes-1' } })")
        .await
        .unwrap();
    assert_eq!(accepted["state"], "pending", "durable first: {accepted}");
    page.wait_for("T.ofType('retrying').length > 0", WAIT)
        .await
        .expect("the first attempt failed offline");
    // Typing is best-effort: offline, it is not sent and not kept.
    assert!(!page.eval::<bool>("T.outbox.sendTyping()").await.unwrap());
    assert_eq!(
        page.eval::<Value>("T.outbox.stats()").await.unwrap()["queued"],
        1
    );
    stack.set_outage(false);
    page.eval::<Value>("window.dispatchEvent(new Event('online')), null")
        .await
        .unwrap();
    drained(&page, &browser).await;
    let token = token(&page).await;
    let report = session(&stack, &token);
    assert_eq!(
        report.messages.len(),
        1,
        "delivered once: {:?}",
        report.messages
    );
    let m = &report.messages[0];
    assert_eq!(
        (m.text.as_str(), m.message_type.as_str()),
        ("", "Structured")
    );
    let br = &m.content[0]["buttonResponse"];
    assert_eq!(
        (br["text"].as_str(), br["payload"].as_str()),
        (Some("Yes"), Some("yes-1"))
    );
    assert_eq!(report.actions.get("onMessage"), Some(&1));
    // Online and configured: typing goes out, and is not a message.
    assert!(page.eval::<bool>("T.outbox.sendTyping()").await.unwrap());
    wait_until(WAIT, || {
        session(&stack, &token).actions.contains_key("typing")
    })
    .await
    .expect("typing arrived");
    assert_eq!(session(&stack, &token).messages.len(), 1);
    browser.close().await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_echo_is_reconciled_by_custom_message_id() {
    // The service keeps only Genesys's own key: reconciliation must find it.
    let stack = Stack::start("guest-custom-id", |c| {
        c.guest.metadata_keys = Some(vec!["customMessageId".to_owned()]);
    })
    .await;
    let browser = stack.browser().await.unwrap();
    let page = open(
        &browser,
        &stack,
        json!({ "sendTimeoutMs": 2000, "leaseMs": 4000 }),
    )
    .await;
    stack
        .emulator
        .control()
        .update_faults(|f: &mut Faults| f.ws_lost_echo_rate = 1.0)
        .unwrap();
    send(&page, "by custom id").await;
    let token = token(&page).await;
    wait_until(WAIT, || {
        // The session may not be there yet: not found counts as empty.
        !stack
            .emulator
            .control()
            .sessions()
            .into_iter()
            .find(|s| s.token == token)
            .unwrap_or_default()
            .messages
            .is_empty()
    })
    .await
    .expect("recorded");
    stack.emulator.control().clear_faults();
    drained(&page, &browser).await;
    let report = session(&stack, &token);
    assert_eq!(
        texts(&report),
        ["by custom id"],
        "reconciled, not sent twice"
    );
    let metadata = report.messages[0].metadata.clone().unwrap();
    assert!(
        metadata.get("outboxId").is_none() && metadata.get("customMessageId").is_some(),
        "{metadata}"
    );
    assert_eq!(report.actions.get("onMessage"), Some(&1));
    browser.close().await;
    stack.stop().await;
}
