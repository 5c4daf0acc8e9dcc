//! The demo page in headless Chromium: driven only through its own
//! controls (the network switch, the composer, the fault controls, the
//! dead-letter buttons) and read back from its DOM, with the emulator's
//! own record as the cross-check.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use e2e::stack::{artifacts, wait_until};
use e2e::{Browser, Page, Stack, console};
use genesys_emulator::{Config, Emulator, Faults};
use outbox_demo::{DemoOptions, DemoServer, Upstream};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(60);

/// Test helpers installed in the page: they click and read the demo's own
/// elements by `data-testid`, nothing else.
const DRIVER: &str = r#"
window.D = {
  q: (id) => document.querySelector(`[data-testid="${id}"]`),
  send(conv, text, door) {
    D.q('tab-' + conv).click();
    D.q('composer-input').value = text;
    D.q('send-' + door).click();
    return true;
  },
  messages: (conv) => [...document.querySelectorAll(conv ? `[data-testid="thread-${conv}"] [data-testid="message"]` : '[data-testid="message"]')]
    .map((m) => ({ text: m.dataset.text, state: m.dataset.state, id: m.dataset.id || null, door: m.dataset.door,
                   detail: m.querySelector('[data-testid="message-detail"]')?.textContent ?? '',
                   context: m.querySelector('[data-testid="message-context"]')?.textContent ?? null })),
  emu: (lane) => [...document.querySelectorAll(`[data-testid="emu-lane"][data-lane="${lane}"] [data-testid="emu-message"]`)]
    .map((m) => ({ text: m.dataset.text, duplicate: m.dataset.duplicate === 'true', highlighted: m.classList.contains('dup') })),
  set(id, value) {
    const el = D.q(id);
    el.value = value;
    el.dispatchEvent(new Event('input'));
    el.dispatchEvent(new Event('change'));
    return true;
  },
  visible: (id) => { const el = D.q(id); return !!el && el.getClientRects().length > 0; },
  events: (type) => [...document.querySelectorAll(`[data-testid="event"][data-type="${type}"]`)].length,
};
true
"#;

/// Opens the demo page and waits until the outbox is open and the service
/// worker controls the page.
async fn open_demo<'b>(browser: &'b Browser, base: &str) -> Page<'b> {
    let page = browser.new_page(&format!("{base}/")).await.unwrap();
    console::enable(&page).await.unwrap();
    if let Err(e) = page
        .wait_for("document.body.dataset.ready === 'true'", WAIT)
        .await
    {
        let banner: String = page
            .eval("document.getElementById('banner').textContent")
            .await
            .unwrap_or_default();
        panic!(
            "the demo did not start: {e}\nbanner: {banner}\nconsole:\n{}",
            browser.console().await.join("\n")
        );
    }
    page.eval::<bool>(DRIVER).await.unwrap();
    page
}

/// Fails on any console error the demo logged (a failed load is not one),
/// then closes the browser.
async fn close(browser: Browser) {
    let errors = console::errors(&browser).await;
    browser.close().await;
    assert!(errors.is_empty(), "console errors:\n{}", errors.join("\n"));
}

async fn messages(page: &Page<'_>, conv: Option<&str>) -> Vec<Value> {
    page.eval(&format!("D.messages({})", json!(conv)))
        .await
        .unwrap()
}

async fn wait(page: &Page<'_>, browser: &Browser, condition: &str, what: &str) {
    if let Err(e) = page.wait_for(condition, WAIT).await {
        let all = messages(page, None).await;
        let log: String = page
            .eval("document.querySelector('[data-testid=event-log]').innerText")
            .await
            .unwrap_or_default();
        panic!(
            "{what}: {e}\nmessages: {all:#?}\nevent log:\n{log}\nconsole:\n{}",
            browser.console().await.join("\n")
        );
    }
}

async fn click(page: &Page<'_>, testid: &str) {
    page.eval::<Value>(&format!("D.q({}).click(), null", json!(testid)))
        .await
        .unwrap();
}

async fn text_of(page: &Page<'_>, testid: &str) -> String {
    page.eval(&format!("D.q({}).textContent", json!(testid)))
        .await
        .unwrap()
}

/// Waits until the emulator's faults satisfy `check` (the page sets them
/// asynchronously).
async fn wait_faults(stack: &Stack, check: impl Fn(&Faults) -> bool) -> Faults {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let f = stack.emulator.control().faults();
        if check(&f) {
            return f;
        }
        assert!(tokio::time::Instant::now() < deadline, "faults: {f:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn texts(list: &[Value]) -> Vec<&str> {
    list.iter().map(|m| m["text"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_messages_from_both_doors_are_all_sent_in_order_once() {
    let stack = Stack::start("demo-offline", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    assert_eq!(
        text_of(&page, "worker-status").await,
        "service worker: active"
    );

    // The page's own switch turns the network off (the emulator's outage).
    click(&page, "network-switch").await;
    wait(
        &page,
        &browser,
        "D.q('network-state').textContent === 'Network offline'",
        "the switch went off",
    )
    .await;
    assert!(stack.emulator.control().faults().outage, "outage is on");

    // Ten messages over two conversations, both doors mixed.
    let mut sent: Vec<(&str, String)> = Vec::new();
    for i in 0..10 {
        let conv = if i % 2 == 0 { "alice" } else { "bob" };
        let door = if i % 3 == 0 { "fetch" } else { "outbox" };
        let text = format!("{conv} {} via {door}", i / 2 + 1);
        page.eval::<bool>(&format!("D.send('{conv}', {}, '{door}')", json!(text)))
            .await
            .unwrap();
        sent.push((conv, text));
    }
    wait(
        &page,
        &browser,
        "D.messages().filter((m) => m.id).length === 10",
        "all ten kept by the outbox",
    )
    .await;
    let all = messages(&page, None).await;
    assert!(
        all.iter().all(|m| m["state"] != "sent"),
        "nothing is sent while offline: {all:#?}"
    );
    assert!(
        all.iter().any(|m| m["door"] == "fetch") && all.iter().any(|m| m["door"] == "outbox"),
        "both doors were used"
    );
    assert_eq!(stack.emulator.control().messages().total, 0);
    wait(
        &page,
        &browser,
        "Number(D.q('stat-queued').textContent) === 10",
        "the queue panel counts ten",
    )
    .await;

    // Back online: everything drains.
    click(&page, "network-switch").await;
    wait(
        &page,
        &browser,
        "D.messages().filter((m) => m.state === 'sent').length === 10",
        "all ten sent",
    )
    .await;
    for conv in ["alice", "bob"] {
        let expected: Vec<&str> = sent
            .iter()
            .filter(|(c, _)| *c == conv)
            .map(|(_, t)| t.as_str())
            .collect();
        let shown = messages(&page, Some(conv)).await;
        assert_eq!(texts(&shown), expected, "the {conv} thread, in order");
        assert!(shown.iter().all(|m| m["state"] == "sent"), "{shown:#?}");
        // The emulator panel shows each message once, in the order written.
        let lane = format!("conv-{conv}");
        wait(
            &page,
            &browser,
            &format!("D.emu('{lane}').length === {}", expected.len()),
            "the emulator panel caught up",
        )
        .await;
        let received: Vec<Value> = page.eval(&format!("D.emu('{lane}')")).await.unwrap();
        assert_eq!(texts(&received), expected, "received in {lane}");
        assert!(received.iter().all(|m| m["duplicate"] == false));
        // The emulator's own record agrees with its panel.
        let report = stack.emulator.control().messages();
        let record = report.lanes.iter().find(|l| l.lane == lane).unwrap();
        let recorded: Vec<&str> = record
            .messages
            .iter()
            .map(|m| m.text.as_deref().unwrap())
            .collect();
        assert_eq!(recorded, expected);
    }
    assert_eq!(stack.emulator.control().messages().duplicates, 0);
    wait(
        &page,
        &browser,
        "D.q('drain-text').textContent.startsWith('10 / 10 delivered')",
        "the progress bar counted the drain",
    )
    .await;
    wait(
        &page,
        &browser,
        "Number(D.q('stat-queued').textContent) === 0",
        "the queue panel is empty",
    )
    .await;
    assert_eq!(page.eval::<u32>("D.events('sent')").await.unwrap(), 10);
    page.eval::<Value>("D.q('tab-alice').click(), null")
        .await
        .unwrap();
    page.screenshot(&artifacts().join("demo.png"))
        .await
        .unwrap();
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_retry_with_a_countdown_and_a_403_is_a_dead_letter_to_retry_or_discard() {
    let stack = Stack::start("demo-dead", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;

    // Every API call answers a 5xx: the message retries, with a countdown.
    page.eval::<bool>("D.set('fault-error-kind', '5xx') && D.set('fault-error-rate', 100)")
        .await
        .unwrap();
    // The defaults: 500, 502, 503, 504.
    wait_faults(&stack, |f| {
        f.error_rate == 1.0 && f.error_statuses.is_empty()
    })
    .await;
    page.eval::<bool>("D.send('alice', 'first try fails', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        r"D.messages('alice').some((m) => m.state === 'retrying' && /next attempt in \d+ s · 50[0234] /.test(m.detail))",
        "retrying with its reason and a countdown",
    )
    .await;

    // Now a 403: the next attempt is final, a dead letter with the Genesys error.
    page.eval::<bool>("D.set('fault-error-kind', '403')")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.error_statuses == [403]).await;
    wait(
        &page,
        &browser,
        "D.messages('alice')[0].state === 'dead'",
        "dead",
    )
    .await;
    let dead = &messages(&page, Some("alice")).await[0];
    let detail = dead["detail"].as_str().unwrap();
    assert!(detail.starts_with("403 not.authorized — "), "{detail}");
    let context = dead["context"].as_str().unwrap();
    assert!(
        context.starts_with("contextId ") && context.len() > 20,
        "{context}"
    );
    wait(
        &page,
        &browser,
        "document.querySelectorAll('[data-testid=dead-letter]').length === 1",
        "the dead-letter list",
    )
    .await;
    assert!(
        text_of(&page, "dead-error")
            .await
            .starts_with("403 not.authorized")
    );
    assert_eq!(text_of(&page, "stat-dead").await, "1");
    // The dead letter holds its conversation: a later message waits, and
    // says why.
    wait(
        &page,
        &browser,
        "D.q('stat-held').textContent === '1' && !!document.querySelector('[data-testid=dead-holds]')",
        "the held lane",
    )
    .await;
    page.eval::<bool>("D.send('alice', 'waits behind', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice')[1]?.state === 'queued' && D.messages('alice')[1].detail.includes('dead letter')",
        "the second message waits behind the dead letter",
    )
    .await;
    // While it is there, a message to another conversation dies too.
    page.eval::<bool>("D.send('bob', 'never delivered', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('bob')[0]?.state === 'dead' && document.querySelectorAll('[data-testid=dead-letter]').length === 2",
        "a second dead letter",
    )
    .await;
    page.screenshot(&artifacts().join("demo-dead-letters.png"))
        .await
        .unwrap();

    // Healthy again: retry the first from the panel, discard the second from its bubble.
    click(&page, "clear-faults").await;
    wait_faults(&stack, |f| f.error_rate == 0.0).await;
    wait(
        &page,
        &browser,
        "D.q('fault-error-rate').value === '0'",
        "the slider shows the cleared faults",
    )
    .await;
    page.eval::<Value>(
        "document.querySelector('[data-testid=dead-letter] [data-testid=dead-retry]').click(), null",
    )
    .await
    .unwrap();
    page.eval::<Value>(
        "document.querySelector('[data-testid=thread-bob] [data-testid=message-discard]').click(), null",
    )
    .await
    .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice')[0].state === 'sent' && D.messages('alice')[1].state === 'sent' && D.messages('bob')[0].state === 'discarded'",
        "retried and discarded",
    )
    .await;
    wait(
        &page,
        &browser,
        "document.querySelectorAll('[data-testid=dead-letter]').length === 0 && D.q('stat-dead').textContent === '0'",
        "no dead letters left",
    )
    .await;
    let report = stack.emulator.control().messages();
    assert_eq!(report.total, 2, "the retried one, then the one it held");
    assert_eq!(report.lanes[0].texts, ["first try fails", "waits behind"]);
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_acknowledgement_shows_as_a_highlighted_duplicate() {
    let stack = Stack::start("demo-lostack", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    page.eval::<bool>("D.set('fault-lost-acks', 100)")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.lost_ack_rate == 1.0).await;
    page.eval::<bool>("D.send('bob', 'did it arrive?', 'fetch')")
        .await
        .unwrap();
    // Received, but the answer was lost: the worker kept it (202).
    wait(
        &page,
        &browser,
        "D.messages('bob')[0]?.id && D.messages('bob')[0].state !== 'saving'",
        "kept after the lost answer",
    )
    .await;
    assert!(stack.emulator.control().messages().total >= 1);
    page.eval::<bool>("D.set('fault-lost-acks', 0)")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.lost_ack_rate == 0.0).await;
    wait(
        &page,
        &browser,
        "D.messages('bob')[0].state === 'sent'",
        "sent after the retry",
    )
    .await;
    let report = stack.emulator.control().messages();
    let lane = report.lanes.iter().find(|l| l.lane == "conv-bob").unwrap();
    assert!(
        lane.duplicates >= 1,
        "agent send has no idempotency carrier by default: at least once"
    );
    wait(
        &page,
        &browser,
        &format!("D.emu('conv-bob').length === {}", lane.count),
        "the panel caught up",
    )
    .await;
    let shown: Vec<Value> = page.eval("D.emu('conv-bob')").await.unwrap();
    assert_eq!(
        shown[0]["duplicate"], false,
        "the first copy is not a duplicate"
    );
    let flagged = shown.iter().filter(|m| m["highlighted"] == true).count();
    assert_eq!(
        flagged, lane.duplicates,
        "every duplicate is highlighted: {shown:?}"
    );
    assert!(shown.iter().all(|m| m["duplicate"] == m["highlighted"]));
    assert!(
        text_of(&page, "emu-totals")
            .await
            .contains(&format!("{} duplicate", report.duplicates)),
        "the totals line"
    );
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_is_replaced_for_both_doors() {
    let stack = Stack::start("demo-token", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    page.eval::<bool>("D.send('alice', 'before', 'fetch')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice')[0].state === 'sent'",
        "sent live",
    )
    .await;
    assert!(
        messages(&page, Some("alice")).await[0]["detail"]
            .as_str()
            .unwrap()
            .starts_with("delivered live · HTTP 200"),
        "a live delivery is shown from the answer itself"
    );
    click(&page, "expire-token").await;
    wait(
        &page,
        &browser,
        "D.q('banner').textContent.includes('expired')",
        "the page says so",
    )
    .await;
    page.eval::<bool>(
        "D.send('alice', 'after, fetch', 'fetch') && D.send('alice', 'after, outbox', 'outbox')",
    )
    .await
    .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice').every((m) => m.state === 'sent')",
        "all sent with fresh tokens",
    )
    .await;
    assert!(
        page.eval::<u32>("D.events('awaiting-token')")
            .await
            .unwrap()
            >= 1
    );
    let refused = stack
        .emulator
        .control()
        .requests()
        .entries
        .iter()
        .filter(|e| e.status == Some(401))
        .count();
    assert!(refused >= 1, "the expired token was refused");
    let report = stack.emulator.control().messages();
    assert_eq!(
        report.lanes[0].texts,
        ["before", "after, fetch", "after, outbox"]
    );
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fault_controls_drive_the_emulator() {
    let stack = Stack::start("demo-controls", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    let control = stack.emulator.control();
    page.eval::<bool>("D.set('fault-latency', 300)")
        .await
        .unwrap();
    page.eval::<bool>("D.set('fault-rate-limit', 7)")
        .await
        .unwrap();
    page.eval::<bool>("D.set('fault-error-kind', '404') && D.set('fault-error-rate', 50)")
        .await
        .unwrap();
    page.eval::<bool>("D.set('fault-lost-acks', 25)")
        .await
        .unwrap();
    wait_faults(&stack, |f| {
        f.latency_ms == 300
            && f.rate_limit == Some(7)
            && f.error_rate == 0.5
            && f.error_statuses == [404]
            && f.lost_ack_rate == 0.25
    })
    .await;
    // Redrawn from the last answer, not from an older one arriving late.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let shown: Vec<String> = page
        .eval(
            "['fault-latency', 'fault-rate-limit', 'fault-error-kind', 'fault-error-rate', 'fault-lost-acks'].map((id) => D.q(id).value)",
        )
        .await
        .unwrap();
    assert_eq!(shown, ["300", "7", "404", "50", "25"]);
    // Clearing the rate limit field restores the default.
    page.eval::<bool>("D.set('fault-rate-limit', '')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.q('fault-rate-limit').value === ''",
        "cleared",
    )
    .await;
    // The change reaches the emulator asynchronously: wait for it, not for a time.
    wait_faults(&stack, |f| f.rate_limit.is_none()).await;
    click(&page, "clear-faults").await;
    wait(
        &page,
        &browser,
        "D.q('fault-latency').value === '0' && D.q('fault-lost-acks').value === '0'",
        "the controls show the cleared faults",
    )
    .await;
    wait_faults(&stack, |f| *f == Faults::default()).await;
    // A live message, then the emulator reset empties its panel.
    page.eval::<bool>("D.send('carol', 'hi from Carol', 'fetch')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.emu('carol').length === 1",
        "open messaging lane",
    )
    .await;
    assert_eq!(
        control.messages().lanes[0].route,
        genesys_emulator::RouteKind::OpenInbound
    );
    click(&page, "reset-emulator").await;
    wait(
        &page,
        &browser,
        "document.querySelectorAll('[data-testid=emu-lane]').length === 0",
        "the panel is empty after a reset",
    )
    .await;
    assert_eq!(control.messages().total, 0);
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_restores_queued_messages_ids_can_change_and_cancel_and_purge_work() {
    let stack = Stack::start("demo-reload", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    click(&page, "network-switch").await;
    wait_faults(&stack, |f| f.outage).await;
    page.eval::<bool>("D.send('alice', 'kept 1', 'outbox') && D.send('alice', 'kept 2', 'fetch')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice').filter((m) => m.id).length === 2",
        "both kept",
    )
    .await;
    let ids: Vec<Value> = page
        .eval("D.messages('alice').map((m) => m.id)")
        .await
        .unwrap();
    page.reload().await.unwrap();
    page.wait_for("document.body.dataset.ready === 'true'", WAIT)
        .await
        .unwrap();
    page.eval::<bool>(DRIVER).await.unwrap();
    let restored = messages(&page, Some("alice")).await;
    assert_eq!(texts(&restored), ["kept 1", "kept 2"], "{restored:#?}");
    assert!(restored.iter().all(|m| m["door"] == "restored"));
    let restored_ids: Vec<Value> = restored.iter().map(|m| m["id"].clone()).collect();
    assert_eq!(restored_ids, ids, "the same entries");
    assert!(
        page.eval::<bool>("D.q('network-switch').checked === false")
            .await
            .unwrap(),
        "the switch shows the emulator's state after a reload"
    );
    click(&page, "network-switch").await;
    wait(
        &page,
        &browser,
        "D.messages('alice').every((m) => m.state === 'sent')",
        "restored messages are followed to the end",
    )
    .await;
    // An id that would change the URL's path is refused by the field
    // (its `pattern` compiles: Chromium uses the `v` flag) and not saved.
    let refused: bool = page
        .eval(
            "D.q('tab-bob').click(), D.q('conv-settings').open = true, D.set('conv-conversationId', 'a/b'), !D.q('conv-conversationId').checkValidity()",
        )
        .await
        .unwrap();
    assert!(refused, "a `/` in a conversation id is invalid");
    assert!(
        !text_of(&page, "conv-summary").await.contains("a/b"),
        "and not saved"
    );
    // Bob's conversation gets another id; new messages go to that lane.
    page.eval::<Value>(
        "D.q('tab-bob').click(), D.q('conv-settings').open = true, D.set('conv-conversationId', 'conv-bob-2'), null",
    )
    .await
    .unwrap();
    assert!(
        text_of(&page, "conv-summary")
            .await
            .contains("lane conv-bob-2")
    );
    page.eval::<bool>("D.send('bob', 'to the new id', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.emu('conv-bob-2').length === 1",
        "the new lane",
    )
    .await;
    assert_eq!(
        stack
            .emulator
            .control()
            .messages()
            .lanes
            .last()
            .unwrap()
            .lane,
        "conv-bob-2"
    );
    // Offline again: cancel one queued message, then purge the rest.
    click(&page, "network-switch").await;
    wait_faults(&stack, |f| f.outage).await;
    page.eval::<bool>(
        "D.send('carol', 'c1', 'outbox') && D.send('carol', 'c2', 'outbox') && D.send('carol', 'c3', 'outbox')",
    )
    .await
    .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('carol').filter((m) => m.id).length === 3",
        "three kept",
    )
    .await;
    // Once the lane's head has been tried and found no answer, the origin
    // is probed one request at a time and nothing follows the head: the
    // last message is not leased for a send (cancelling an entry leased
    // right behind its head answers `in-flight`, as documented).
    wait(
        &page,
        &browser,
        "D.messages('carol')[0].state === 'retrying'",
        "the head tried",
    )
    .await;
    page.eval::<Value>(
        "[...document.querySelectorAll('[data-testid=thread-carol] [data-testid=message-cancel]')].pop().click(), null",
    )
    .await
    .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('carol')[2].state === 'cancelled'",
        "the last one cancelled",
    )
    .await;
    click(&page, "purge").await;
    assert_eq!(text_of(&page, "purge").await, "Really purge?", "asks first");
    click(&page, "purge").await;
    wait(
        &page,
        &browser,
        "D.messages('carol').slice(0, 2).every((m) => m.state === 'purged') && D.q('stat-queued').textContent === '0'",
        "purged",
    )
    .await;
    assert!(page.eval::<u32>("D.events('purged')").await.unwrap() >= 1);
    click(&page, "network-switch").await;
    wait_faults(&stack, |f| !f.outage).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !stack
            .emulator
            .control()
            .messages()
            .lanes
            .iter()
            .any(|l| l.lane == "carol"),
        "nothing cancelled or purged was sent"
    );
    close(browser).await;
    stack.stop().await;
}

/// The demo server in real-region mode, with an emulator standing in for
/// `login.<domain>` and `api.<domain>` (what `--upstream-override` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_mode_hides_the_emulator_controls_and_sends_through_the_region_api() {
    let emulator = Emulator::start(Config::ephemeral()).await.unwrap();
    let mut upstream = Upstream::region("mypurecloud.ie", "demo-client", "demo-secret");
    upstream.api_base = emulator.base_url();
    upstream.login_base = emulator.base_url();
    let demo = DemoServer::start(DemoOptions::new("127.0.0.1:0".parse().unwrap(), upstream))
        .await
        .unwrap();
    let profile =
        std::env::temp_dir().join(format!("outbox-e2e-demo-region-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile).unwrap();
    let browser = Browser::launch(&profile).await.unwrap();
    let page = open_demo(&browser, &demo.url()).await;
    assert_eq!(
        text_of(&page, "mode").await,
        "Genesys Cloud · mypurecloud.ie"
    );
    for hidden in [
        "faults-panel",
        "emulator-panel",
        "network-state",
        "expire-token",
    ] {
        assert!(
            !page
                .eval::<bool>(&format!("D.visible('{hidden}')"))
                .await
                .unwrap(),
            "{hidden} is hidden in region mode"
        );
    }
    assert!(page.eval::<bool>("D.visible('queue-panel')").await.unwrap());
    // What the page itself can read holds no secret.
    let seen: String = page
        .eval("Promise.all(['/token', '/demo-config.json'].map((u) => fetch(u).then((r) => r.text()))).then((a) => a.join('\\n'))")
        .await
        .unwrap();
    assert!(
        seen.contains("access_token") && seen.contains("mypurecloud.ie"),
        "{seen}"
    );
    assert!(!seen.contains("demo-secret"), "{seen}");
    page.eval::<bool>("D.send('alice', 'through the region API', 'outbox') && D.send('alice', 'and by fetch', 'fetch')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('alice').length === 2 && D.messages('alice').every((m) => m.state === 'sent')",
        "sent through the stand-in",
    )
    .await;
    let report = emulator.control().messages();
    assert_eq!(
        report.lanes[0].texts,
        ["through the region API", "and by fetch"]
    );
    close(browser).await;
    demo.shutdown().await;
    emulator.shutdown().await;
    let _ = std::fs::remove_dir_all(&profile);
}

/// Regenerates `docs/demo.png`, the README's screenshot: the outbox
/// mid-drain after an outage, with a dead letter and a duplicate.
/// `cargo test -p e2e --test demo -- --ignored readme_screenshot`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes docs/demo.png; run by hand when the page changes"]
async fn readme_screenshot() {
    let stack = Stack::start("demo-readme", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    let send = |conv: &str, text: &str, door: &str| {
        format!("D.send({}, {}, {})", json!(conv), json!(text), json!(door))
    };
    // Two live messages.
    page.eval::<bool>(&send("alice", "Hi Alice, thanks for waiting!", "fetch"))
        .await
        .unwrap();
    page.eval::<bool>(&send("bob", "Hello Bob, how can I help?", "outbox"))
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages().every((m) => m.state === 'sent')",
        "live",
    )
    .await;
    // A lost acknowledgement: delivered twice (agent send has no idempotency carrier).
    page.eval::<bool>("D.set('fault-lost-acks', 100)")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.lost_ack_rate == 1.0).await;
    page.eval::<bool>(&send("bob", "Your order shipped today", "fetch"))
        .await
        .unwrap();
    wait(&page, &browser, "D.messages('bob')[1]?.id", "kept").await;
    page.eval::<bool>("D.set('fault-lost-acks', 0)")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('bob')[1].state === 'sent'",
        "retried",
    )
    .await;
    // A dead letter: the open messaging integration refuses with 403.
    page.eval::<bool>("D.set('fault-error-kind', '403') && D.set('fault-error-rate', 100)")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.error_rate == 1.0 && f.error_statuses == [403]).await;
    page.eval::<bool>(&send("carol", "Is anyone there?", "outbox"))
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.messages('carol')[0].state === 'dead'",
        "dead",
    )
    .await;
    click(&page, "clear-faults").await;
    wait_faults(&stack, |f| *f == Faults::default()).await;
    // An outage: everything typed is kept.
    click(&page, "network-switch").await;
    wait_faults(&stack, |f| f.outage).await;
    let lines = [
        ("alice", "Let me check that for you", "outbox"),
        ("bob", "The tracking number is 1Z 999", "outbox"),
        ("alice", "Your refund was approved", "fetch"),
        ("bob", "It should arrive Thursday", "outbox"),
        ("alice", "It takes 3–5 business days", "outbox"),
        ("bob", "Anything else?", "fetch"),
        ("alice", "Anything else I can do?", "outbox"),
        ("alice", "Have a great day!", "outbox"),
    ];
    for (conv, text, door) in lines {
        page.eval::<bool>(&send(conv, text, door)).await.unwrap();
    }
    wait(
        &page,
        &browser,
        "D.messages().filter((m) => m.state === 'retrying').length >= 2",
        "retrying",
    )
    .await;
    // Back online, with slow answers so that the drain is visible.
    page.eval::<bool>("D.set('fault-latency', 1500)")
        .await
        .unwrap();
    wait_faults(&stack, |f| f.latency_ms == 1500).await;
    click(&page, "network-switch").await;
    wait(
        &page,
        &browser,
        "(([d, t]) => d >= 2 && d <= 5 && t === 8)(D.q('drain-text').textContent.split(' delivered')[0].split(' / ').map(Number))",
        "mid-drain",
    )
    .await;
    page.eval::<Value>("D.q('tab-alice').click(), null")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    page.screenshot(&e2e::stack::root().join("docs/demo.png"))
        .await
        .unwrap();
    close(browser).await;
    stack.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_in_the_chat() {
    let stack = Stack::start("demo-agent", |_| {}).await;
    let browser = stack.browser().await.unwrap();
    let page = open_demo(&browser, &stack.demo.url()).await;
    let control = stack.emulator.control();
    let replies = "[...document.querySelectorAll('[data-testid=thread-carol] [data-testid=agent-reply-message]')].map((m) => m.dataset.text)";
    page.eval::<bool>("D.send('carol', 'is anyone there?', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        "D.emu('carol').length === 1",
        "Carol's message arrives",
    )
    .await;
    click(&page, "agent-reply").await;
    wait(
        &page,
        &browser,
        &format!("{replies}.length === 1"),
        "the agent's answer shows in Carol's thread",
    )
    .await;
    assert_eq!(control.messages().replies.len(), 1);
    // Automatic answers.
    click(&page, "auto-reply").await;
    wait_until(WAIT, || control.auto_reply().is_some())
        .await
        .expect("auto-reply switched on");
    page.eval::<bool>("D.send('carol', 'my order is late', 'outbox')")
        .await
        .unwrap();
    wait(
        &page,
        &browser,
        &format!("{replies}.length === 2 && {replies}[1].endsWith('my order is late')"),
        "the automatic answer shows",
    )
    .await;
    close(browser).await;
    stack.stop().await;
}
