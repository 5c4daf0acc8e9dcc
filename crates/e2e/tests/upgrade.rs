//! An existing database, written by the Rust IndexedDB store that the
//! TypeScript host replaced (`testdata/idb-v1`: every state an entry can
//! be in, a lane held by a dead letter, the pacing state, the listed
//! lanes), opens under the new code and drains: everything delivered, in
//! order per lane, the held lane once its dead letter is retried. In
//! Chromium, Firefox and WebKit.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::Stack;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);
const DUMP: &str = include_str!("../../../testdata/idb-v1/outbox.json");

/// Texts the emulator recorded for a conversation, in arrival order.
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
async fn a_database_of_the_rust_store_opens_and_drains() {
    let stack = Stack::start("upgrade", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = browser
        .new_page(&format!("{}/test/upgrade.html", stack.demo.url()))
        .await
        .unwrap();
    let _: bool = page.eval("T.ready").await.unwrap();
    // The entries are made as old, relative to now, as when they were
    // written; the emulator's origin replaces the one they were written for.
    let dump: Value = serde_json::from_str(DUMP).unwrap();
    let written = dump["stores"]["entries"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["value"]["createdAt"].as_u64())
        .max()
        .unwrap();
    let origin = stack.emulator.base_url();
    let loaded: bool = page
        .eval(&format!(
            "T.load({DUMP}, {{ origin: {}, shift: Date.now() - {written} }})",
            json!(origin)
        ))
        .await
        .unwrap();
    assert!(loaded);
    let config = json!({ "origins": [origin], "apiBase": origin, "tokenUrl": "/token" });
    let _: bool = page.eval(&format!("T.open({config})")).await.unwrap();

    let lanes = [
        ("conv-a", vec!["conv-a-0", "conv-a-1", "conv-a-2"]),
        ("conv-b", vec!["conv-b-0", "conv-b-1"]),
        ("conv-e", vec!["conv-e-0"]),
        ("conv-h", vec!["conv-h-0"]),
        ("conv-f", vec!["conv-f-0"]),
        ("conv-g", vec!["conv-g-0"]),
    ];
    let delivered = |stack: &Stack| lanes.iter().all(|(lane, want)| texts(stack, lane) == *want);
    if let Err(e) = e2e::stack::wait_until(WAIT, || delivered(&stack)).await {
        let got: Vec<(&str, Vec<String>)> =
            lanes.iter().map(|(l, _)| (*l, texts(&stack, l))).collect();
        let stats: Value = page.eval("T.outbox.stats()").await.unwrap_or_default();
        panic!(
            "not delivered: {e}: {got:?}\nstats: {stats}\nconsole:\n{}",
            browser.console().await.join("\n")
        );
    }
    // The held lane waits behind its dead letter (a 403 when it was written).
    assert!(texts(&stack, "conv-d").is_empty());
    let dead: Vec<Value> = page.eval("T.outbox.deadLetters()").await.unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["lane"], "conv-d");
    assert_eq!(dead[0]["lastError"]["status"], 403);
    let stats: Value = page.eval("T.outbox.stats()").await.unwrap();
    assert_eq!(stats["held"][0]["lane"], "conv-d", "{stats}");
    // Retried, it goes first, then the one it held.
    let retried: bool = page
        .eval(&format!("T.outbox.retry({})", dead[0]["id"]))
        .await
        .unwrap();
    assert!(retried);
    e2e::stack::wait_until(WAIT, || texts(&stack, "conv-d") == ["conv-d-0", "conv-d-1"])
        .await
        .unwrap();
    page.wait_for(
        "T.outbox.stats().then(s => s.queued === 0 && s.dead === 0)",
        WAIT,
    )
    .await
    .unwrap();
    // Every lane once, in order: nothing twice.
    for (lane, want) in &lanes {
        assert_eq!(texts(&stack, lane), *want, "{lane}");
    }
    drop(page);
    browser.close().await;
    stack.stop().await;
}
