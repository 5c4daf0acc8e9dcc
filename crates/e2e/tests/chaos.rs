//! A chaos run of our own: a seeded schedule of faults and disruptions
//! against the real service worker, IndexedDB and the emulator, through
//! both doors, with the outbox as users get it — every setting at its
//! shipped default — and then the emulator's record is checked lane by
//! lane. It runs in Chromium, Firefox and WebKit (`OUTBOX_BROWSER`).
//!
//! * Configuration: nothing but what reaches the emulator (the stack adds
//!   `origins` and `apiBase`, the test page its `tokenUrl`), so the pacer
//!   (150 a minute, burst 10), the herd throttle, the backoff (2 s doubling
//!   to 60 s), the batch (8) and the auth rule are the defaults. The
//!   emulator plays Genesys, its rate limit (300 a minute per token)
//!   included; it honours idempotency keys, which the Open Messaging
//!   lanes' exactness needs.
//! * Messages: `OUTBOX_CHAOS_MESSAGES` (default [`DEFAULT_MESSAGES`]) over
//!   12 lanes, 6 agent conversations (no idempotency carrier) and 6 Open
//!   Messaging senders (`channel.messageId` carries the key, the emulator
//!   honours it); each message goes through the fetch door (a plain
//!   `fetch` POST the service worker intercepts) or the page API
//!   (`sendAgentMessage`, `sendOpenMessage`), drawn by the seed.
//! * Faults, set through the emulator's fault API: outages, server errors
//!   (`failNext` with 500/502/503/504), lost acknowledgements (`loseAcks`),
//!   401 bursts (`forceUnauthorized`, 1 to 4 at a time), latency and jitter.
//! * Disruptions: service-worker stops, page reloads, and kills of the
//!   whole browser (SIGKILL) restarted on the same profile, each at least
//!   once where the engine can. WebKit can neither stop a worker nor kill
//!   and restart its browser on a profile (`e2e::Capability`): there the
//!   schedule is the same, those disruptions are skipped and reported so
//!   (`skipped-webkit.txt`); reloads, also with requests in flight, stay.
//! * The end (the tail): once the schedule's backlog has drained, one last
//!   outage with [`tail`] messages queued behind it, kept until the outbox
//!   probes the origin; then the network stays healthy, and the backlog
//!   must drain within a bound ([`DrainBound`]).
//! * Then: nothing lost, each lane in order with no hole, duplicates on the
//!   agent lanes exactly the lost acknowledgements there, none on the Open
//!   Messaging lanes, no dead letter; the drain bound held; and the probe
//!   while down held ([`probe_check`]): while the outbox's throttle
//!   probed the origin, its flushes never had two requests out.
//!
//! What went into the outages is printed per run ([`OutageReport`]):
//! requests the emulator dropped (preflights, posts, token requests) and
//! the outbox's attempts behind them — live first attempts of the fetch
//! door and the flushes' probes. The attempts are alike in every engine;
//! the requests are not: Firefox sends up to ten `OPTIONS` for one attempt
//! into an outage (a preflight is a safe method, and Firefox retries a
//! safe request whose connection closed before any answer, up to
//! `network.http.request.max-attempts`, 10, times), Chromium one, and
//! WebKit, which keeps its preflight cache, the `POST` alone. The rule
//! holds on the outbox's attempts; what an engine makes of each is the
//! engine's.
//!
//! The seed is `OUTBOX_CHAOS_SEED` or drawn from the clock; it is printed at
//! the start and in every failure, so a failing schedule can be run again
//! (`cargo xtask chaos --seed N --messages M` runs a longer one).
//!
//! Choices that keep the assertions exact:
//! * No fault that makes a dead letter: no 403/404, few server errors per
//!   message (far below `maxAttempts`, and a `503`/`408` is never the
//!   failure that kills), and 401s by count: the whole run forces fewer
//!   than the answers a run of 401s needs before it may kill an entry
//!   ([`auth_answers_to_die`]: 8 with the defaults, where the run must
//!   also span `authWindowMs` in the backoff schedule), so no entry can
//!   die of them whatever lanes, doors and timing they meet.
//! * A disruption happens either while the emulator is in an outage and no
//!   entry is in flight, or mid-flight (slow answers, requests under way)
//!   once every queued entry is on an Open Messaging lane: a request the
//!   server recorded but whose answer a stopped worker never read is then
//!   replayed by its idempotency key. On an agent lane it would be a
//!   duplicate that no fault accounts for, and the test could not tell it
//!   from a real bug.
//! * Server errors and lost acknowledgements come in bursts of at most 3
//!   and 2, a new one only once the last is used up. Faults are by count
//!   (so the test never races the product), and a count is used up by the
//!   requests that meet it, however slowly they come: piled up, bursts
//!   made a run of shed answers (`502` nine times over, seed 7 in WebKit)
//!   that the throttle rightly answered by slowing to a few requests a
//!   minute, which stretched the same nine answers over 75 s: a server
//!   whose failure lasts longer the slower its client is, so the fault
//!   model, not the product, set the pace.
//! * Lost acknowledgements by count (`loseAcks`): the emulator keeps
//!   connections from being reused while one is pending, so no browser
//!   resends a cut `POST` behind the outbox's back (a `POST` is retried
//!   by Chromium only on a reused connection, by Firefox only when it was
//!   not fully sent or the connection was reused).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::engine::report_skip;
use e2e::stack::iso_ms;
use e2e::{Browser, Capability, Engine, Page, Stack};
use genesys_emulator::{Faults, Outcome, RouteKind};
use outbox_core::config::OutboxConfig;
use outbox_core::retry::RetryPolicy;
use serde_json::{Value, json};

/// How long a condition of the schedule may take at least (nothing in
/// flight, the origin probed; a drain waits longer for a longer backlog:
/// [`backlog_wait`]).
const WAIT: Duration = Duration::from_secs(120);
const AGENT_LANES: usize = 6;
const OPEN_LANES: usize = 6;
const INTEGRATION: &str = "integ-chaos";

/// Messages of the in-suite run: 150, a minute of the default pacer. The
/// run's time is the schedule's waits (outages until nothing is in
/// flight, lanes drained before a mid-flight disruption, browser
/// restarts, backoffs of up to a minute behind a `5xx`) more than the
/// messages, so 150 still meets every fault and disruption several times
/// and the tail's drain once, in about one to two minutes per engine on
/// a 2-core machine. `cargo xtask chaos --messages N` runs longer ones.
const DEFAULT_MESSAGES: usize = 150;

/// The fewest messages a run sends (`OUTBOX_CHAOS_MESSAGES` below is raised).
const MIN_MESSAGES: usize = 10;

/// The most messages the tail queues behind the last outage.
const TAIL_MAX: usize = 30;

/// The tail's size for a run of `total` messages: a third of them, at most
/// [`TAIL_MAX`] — enough that a crawl cannot pass the drain bound (30
/// messages at one request every 25 s take 12.5 minutes; the bound is
/// under two).
fn tail(total: usize) -> usize {
    (total / 3).clamp(1, TAIL_MAX)
}

/// SplitMix64: the schedule's generator (small, seeded, no dependency).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
    /// True with probability `percent` %.
    fn percent(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Agent,
    Open,
}

struct Lane {
    kind: Kind,
    key: String,
}

/// The settings of this run, from the environment.
fn settings() -> (u64, usize) {
    let seed = std::env::var("OUTBOX_CHAOS_SEED")
        .ok()
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .expect("OUTBOX_CHAOS_SEED is a number")
        })
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64 % 1_000_000_007)
        });
    let messages = std::env::var("OUTBOX_CHAOS_MESSAGES")
        .ok()
        .map(|s| {
            s.trim()
                .parse::<usize>()
                .expect("OUTBOX_CHAOS_MESSAGES is a number")
        })
        .unwrap_or(DEFAULT_MESSAGES);
    // At least a schedule of a few messages and a tail of three.
    (seed, messages.max(MIN_MESSAGES))
}

/// Milliseconds since the epoch, the clock the page's `Date.now()` and the
/// emulator's log also read.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The page's Outbox configuration: only what reaches the emulator, which
/// [`Stack::test_page`] adds (`origins`, `apiBase`) and the test page
/// (`tokenUrl: '/token'`). Every product setting is the shipped default.
fn page_config() -> Value {
    json!({})
}

/// The configuration the outbox runs with, read by the product's own
/// parser from what the page passes it: the limits the assertions derive
/// from are the shipped ones.
fn product_config(stack: &Stack) -> OutboxConfig {
    let mut config = page_config();
    config["origins"] = json!([stack.emulator.base_url()]);
    config["apiBase"] = json!(stack.emulator.base_url());
    config["tokenUrl"] = json!("/token");
    OutboxConfig::parse(&config.to_string(), &stack.demo.url())
        .expect("the test page's configuration parses")
}

/// How many `401` answers in a row an entry needs before it can die of
/// them under `retry`: at least `maxAuthFailures`, and a run spanning
/// `authWindowMs` in the backoff schedule too (the clock may be slower,
/// never faster). 8 with the defaults (3 and 60 s: 1 + 2 + 4 + 8 + 16 +
/// 30 s between the second and the eighth).
fn auth_answers_to_die(retry: &RetryPolicy) -> u32 {
    (retry.max_auth_failures.max(1)..=64)
        .find(|&n| retry.auth_schedule_ms(n) >= retry.auth_window_ms)
        .unwrap_or(64)
}

/// The drain bound after the last fault, from the product's limits.
///
/// A backlog of `B` entries, the network healthy for good and the origin
/// answering, drains in at most
/// * the longest wait an entry can already have ahead of it — the backoff
///   cap (`retry.capMs`, 60 s), which also covers a token asked again
///   (every 15 s) and a `Retry-After` of the emulator's rate window (60 s);
/// * plus `B ÷ pacer.ratePerMinute` (150 a minute: 0.4 s each), the pacer
///   being the slowest a healthy origin is sent to (the throttle slows
///   only while the server sheds, and the last outage sheds nothing);
/// * plus a margin for a loaded 2-core CI machine: half the pacer term
///   again, and 30 s (a worker started again, the pages' 2 s wake-up
///   grace, the test's polling).
///
/// The issue-22 crawl (one request every 25 s on a healthy network) takes
/// 25 s × `B`: with the tail's 30 entries 12.5 minutes, against a bound
/// of 108 s.
#[derive(Debug, Clone, Copy)]
struct DrainBound {
    backlog: u64,
    longest_wait: Duration,
    pacer_term: Duration,
    margin: Duration,
}

impl DrainBound {
    fn new(config: &OutboxConfig, backlog: u64) -> Self {
        let rate = u64::from(config.core.pacer.rate_per_minute.max(1));
        let pacer_term = Duration::from_millis(backlog * 60_000 / rate);
        Self {
            backlog,
            longest_wait: Duration::from_millis(config.core.retry.cap_ms),
            pacer_term,
            margin: pacer_term / 2 + Duration::from_secs(30),
        }
    }

    fn total(&self) -> Duration {
        self.longest_wait + self.pacer_term + self.margin
    }
}

impl std::fmt::Display for DrainBound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.0?} = longest backoff {:.0?} + {} entries at the pacer's rate {:.1?} + margin {:.1?}",
            self.total(),
            self.longest_wait,
            self.backlog,
            self.pacer_term,
            self.margin
        )
    }
}

/// Prints the seed when the test fails, whatever failed.
struct SeedOnFailure(u64, usize, Engine);

impl Drop for SeedOnFailure {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "chaos: FAILED in {2} with seed {0}; run it again with OUTBOX_BROWSER={2} OUTBOX_CHAOS_SEED={0} \
                 OUTBOX_CHAOS_MESSAGES={1} cargo test -p e2e --test chaos -- --nocapture",
                self.0,
                self.1,
                self.2.name()
            );
        }
    }
}

/// What happened, for the closing line and failure reports.
#[derive(Debug, Default)]
struct Tally {
    outages: u32,
    fail_next: u32,
    lose_acks: u32,
    unauthorized: u32,
    latency_changes: u32,
    worker_stops: u32,
    reloads: u32,
    kills: u32,
    /// Worker stops the schedule drew that the engine cannot do.
    worker_stops_skipped: u32,
    /// Browser kills the schedule drew that the engine cannot do.
    kills_skipped: u32,
    /// Disruptions with requests in flight (Open Messaging lanes only).
    mid_flight: u32,
    /// Entries in flight just before those disruptions.
    in_flight_cut: u32,
    fetch_door: u32,
    page_door: u32,
}

/// The run: the schedule's state between browser sessions.
struct Run {
    seed: u64,
    total: usize,
    engine: Engine,
    rng: Rng,
    lanes: Vec<Lane>,
    /// Per lane, the texts accepted, in the order they were accepted.
    expected: Vec<Vec<String>>,
    sent: usize,
    tally: Tally,
    killed: bool,
    stopped: bool,
    reloaded: bool,
    /// 401s the run may still force (fewer than [`auth_answers_to_die`]).
    unauthorized_left: u32,
    /// The outbox's events as the page saw them, one list per page
    /// lifetime (a reload or a kill starts the next), each stamped `at`.
    events: Vec<Vec<Value>>,
    /// Outage windows, `[from, to)` in ms since the epoch.
    outages: Vec<(u64, u64)>,
    outage_since: Option<u64>,
    /// The emulator, for the record a failure leaves behind.
    control: genesys_emulator::Control,
    /// The configuration the outbox runs with ([`product_config`]).
    config: OutboxConfig,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{} seed {} (OUTBOX_BROWSER={} OUTBOX_CHAOS_SEED={} OUTBOX_CHAOS_MESSAGES={}), {} of {} sent, {:?}",
            self.engine.name(),
            self.seed,
            self.engine.name(),
            self.seed,
            self.total,
            self.sent,
            self.total,
            self.tally
        )
    }

    /// Messages of the schedule (the rest is the tail).
    fn scheduled(&self) -> usize {
        self.total - tail(self.total)
    }

    /// Messages the schedule may still send.
    fn room(&self) -> usize {
        self.scheduled().saturating_sub(self.sent)
    }

    fn can(&self, capability: Capability) -> bool {
        self.engine.lacks(capability).is_none()
    }

    /// Leaves the run's record in the artifacts folder for a failure
    /// report: the events the pages saw (`pending`: those not taken yet)
    /// and the emulator's request log. Returns where.
    fn dump(&self, pending: &Value) -> String {
        let dir = e2e::stack::artifacts();
        let stem = format!("chaos-{}-{}", self.engine.name(), self.seed);
        let mut events = self.events.clone();
        if let (Some(last), Some(more)) = (events.last_mut(), pending.as_array()) {
            last.extend(more.iter().cloned());
        }
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| {
                std::fs::write(
                    dir.join(format!("{stem}-events.json")),
                    serde_json::to_string(&events).unwrap_or_default(),
                )
            })
            .and_then(|()| {
                std::fs::write(
                    dir.join(format!("{stem}-requests.json")),
                    serde_json::to_string(&self.control.requests().entries).unwrap_or_default(),
                )
            });
        match written {
            Ok(()) => format!(
                "events and requests in {}",
                dir.join(format!("{stem}-*.json")).display()
            ),
            Err(e) => format!("(record not written: {e})"),
        }
    }
}

fn faults(stack: &Stack, change: impl FnOnce(&mut Faults)) {
    stack.emulator.control().update_faults(change).unwrap();
}

/// Switches the emulator's outage, noting the window.
fn set_outage(stack: &Stack, run: &mut Run, on: bool) {
    stack.set_outage(on);
    match (on, run.outage_since) {
        (true, None) => run.outage_since = Some(now_ms()),
        (false, Some(from)) => {
            run.outages.push((from, now_ms()));
            run.outage_since = None;
        }
        _ => {}
    }
}

async fn open<'b>(browser: &'b Browser, stack: &Stack, run: &mut Run) -> Page<'b> {
    let page = browser
        .new_page(&stack.test_page(&page_config()))
        .await
        .unwrap();
    ready(&page, browser, run).await;
    page
}

/// Waits for the test page, then records its events from now on.
async fn ready(page: &Page<'_>, browser: &Browser, run: &mut Run) {
    if let Err(e) = page.eval::<bool>("T.ready").await {
        panic!(
            "{}: test page not ready: {e}\n{}",
            run.context(),
            browser.console().await.join("\n")
        );
    }
    // Every event of this page's outbox and, over BroadcastChannel, the
    // worker's, stamped with its arrival.
    page.eval::<bool>(
        "T.chaos = [], T.outbox.on((e) => T.chaos.push(Object.assign({ at: Date.now() }, e))), true",
    )
    .await
    .unwrap();
    run.events.push(Vec::new());
}

/// Takes the events the page recorded since the last call.
async fn take_events(page: &Page<'_>, run: &mut Run) {
    let events: Vec<Value> = page.eval("T.chaos.splice(0)").await.unwrap_or_default();
    if let Some(list) = run.events.last_mut() {
        list.extend(events);
    }
}

async fn stats(page: &Page<'_>) -> Value {
    page.eval("T.outbox.stats()").await.unwrap_or_default()
}

/// How long the outbox may take to drain what it holds now: the drain
/// bound of that backlog ([`DrainBound`]), at least [`WAIT`]. The schedule
/// hands messages over faster than the pacer's 150 a minute, so a wait
/// for a drain grows with the backlog.
async fn backlog_wait(page: &Page<'_>, run: &Run) -> Duration {
    let queued = stats(page).await["queued"].as_u64().unwrap_or(0);
    DrainBound::new(&run.config, queued).total().max(WAIT)
}

async fn wait_or_panic(
    page: &Page<'_>,
    browser: &Browser,
    run: &Run,
    condition: &str,
    what: &str,
    timeout: Duration,
) {
    if let Err(e) = page.wait_for(condition, timeout).await {
        let stats = stats(page).await;
        let dead: Value = page
            .eval("T.outbox.deadLetters()")
            .await
            .unwrap_or_default();
        let pending: Value = page.eval("T.chaos").await.unwrap_or_default();
        let last: Vec<&Value> = pending
            .as_array()
            .map(|a| a.iter().rev().take(20).rev().collect())
            .unwrap_or_default();
        panic!(
            "{}: {what}: {e}\nstats {stats}\ndead letters {dead}\nlast events {}\n{}\nconsole:\n{}",
            run.context(),
            json!(last),
            run.dump(&pending),
            browser.console().await.join("\n")
        );
    }
}

/// Back online: the outage ends and the page is told.
async fn online(stack: &Stack, page: &Page<'_>, run: &mut Run) {
    set_outage(stack, run, false);
    page.eval::<Value>(
        "window.dispatchEvent(new Event('online')), T.outbox.flush().then(() => null)",
    )
    .await
    .unwrap();
}

/// Outage on, then wait until no entry is in flight: what follows cannot
/// cut a request the server has recorded.
async fn quiesce(stack: &Stack, page: &Page<'_>, browser: &Browser, run: &mut Run) {
    set_outage(stack, run, true);
    wait_or_panic(
        page,
        browser,
        run,
        "T.outbox.stats().then(s => s.inFlight === 0)",
        "nothing in flight under the outage",
        WAIT,
    )
    .await;
}

/// Which messages a chunk may draw.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Draw {
    /// Any lane, either door.
    Any,
    /// Open Messaging lanes through the page API only (it answers once the
    /// entry is durable, so they are still in flight when it returns).
    OpenByPage,
    /// Any lane, through the fetch door.
    Fetch,
}

/// Prepares a disruption that cuts requests in flight, with no outage: slow
/// answers, a chunk of Open Messaging messages, and the agent lanes empty.
/// Only entries with an idempotency carrier can then be cut after the
/// server recorded them (it replays their retry: no duplicate), so the
/// agent lanes' duplicates still equal their lost acknowledgements.
async fn mid_flight(stack: &Stack, page: &Page<'_>, browser: &Browser, run: &mut Run) {
    let latency = run.rng.range(200, 600);
    set_outage(stack, run, false);
    faults(stack, |f| f.latency_ms = latency);
    let n = run.rng.range(4, 12) as usize;
    send_chunk(
        page,
        browser,
        stack,
        run,
        n.min(run.room()),
        Draw::OpenByPage,
    )
    .await;
    let agent = json!(
        run.lanes
            .iter()
            .filter(|l| l.kind == Kind::Agent)
            .map(|l| l.key.clone())
            .collect::<Vec<_>>()
    );
    let timeout = backlog_wait(page, run).await;
    wait_or_panic(
        page,
        browser,
        run,
        &format!("T.outbox.queued().then(q => !q.some(e => {agent}.includes(e.lane)))"),
        "the agent lanes empty before a mid-flight disruption",
        timeout,
    )
    .await;
    let in_flight = stats(page).await["inFlight"].as_u64().unwrap_or(0);
    run.tally.mid_flight += 1;
    run.tally.in_flight_cut += in_flight as u32;
}

/// Sends the next `n` messages in one script, each awaited in turn.
async fn send_chunk(
    page: &Page<'_>,
    browser: &Browser,
    stack: &Stack,
    run: &mut Run,
    n: usize,
    draw: Draw,
) {
    let base = stack.emulator.base_url();
    let mut batch = Vec::new();
    let mut lanes = Vec::new();
    for _ in 0..n.min(run.total - run.sent) {
        let lane = match draw {
            Draw::Any | Draw::Fetch => run.rng.range(0, run.lanes.len() as u64 - 1) as usize,
            Draw::OpenByPage => {
                run.rng
                    .range(AGENT_LANES as u64, run.lanes.len() as u64 - 1) as usize
            }
        };
        let l = &run.lanes[lane];
        let number = run.expected[lane].len();
        let text = format!("{}#{number:03}", l.key);
        let door = if draw == Draw::Fetch || (draw == Draw::Any && run.rng.percent(50)) {
            "fetch"
        } else {
            "page"
        };
        let (url, body) = match l.kind {
            Kind::Agent => (
                format!(
                    "{base}/api/v2/conversations/messages/{}/communications/comm-1/messages",
                    l.key
                ),
                json!({ "textBody": text }),
            ),
            Kind::Open => (
                format!("{base}/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"),
                json!({
                    "channel": { "from": { "id": l.key, "idType": "Opaque" }, "time": "2026-01-01T00:00:00.000Z" },
                    "text": text,
                }),
            ),
        };
        batch.push(json!({
            "door": door,
            "kind": if l.kind == Kind::Agent { "agent" } else { "open" },
            "key": l.key,
            "text": text,
            "url": url,
            "body": body,
        }));
        if door == "fetch" {
            run.tally.fetch_door += 1;
        } else {
            run.tally.page_door += 1;
        }
        // Counted before sending: the expectation is what was handed over.
        run.expected[lane].push(text);
        lanes.push(lane);
    }
    let script = format!(
        r"(async () => {{
  const out = [];
  let token = null;
  try {{ token = await T.token(); }} catch (e) {{}}
  for (const m of {batch}) {{
    if (m.door === 'page') {{
      try {{
        const r = m.kind === 'agent'
          ? await T.outbox.sendAgentMessage(m.key, 'comm-1', m.text)
          : await T.outbox.sendOpenMessage({integration}, m.key, m.text, {{}});
        out.push({{ ok: true, text: m.text, state: r.state }});
      }} catch (e) {{ out.push({{ ok: false, text: m.text, error: String(e) }}); }}
    }} else {{
      const r = await T.post(m.url, m.body, token ? {{ authorization: 'Bearer ' + token }} : {{}});
      out.push({{ ok: r.status === 200 || r.status === 202, text: m.text, status: r.status, body: r.body, error: r.error }});
    }}
  }}
  return out;
}})()",
        batch = Value::Array(batch),
        integration = json!(INTEGRATION),
    );
    let answers: Vec<Value> = match page.eval(&script).await {
        Ok(a) => a,
        Err(e) => panic!(
            "{}: sending failed: {e}\n{}",
            run.context(),
            browser.console().await.join("\n")
        ),
    };
    run.sent += lanes.len();
    let refused: Vec<&Value> = answers.iter().filter(|a| a["ok"] != true).collect();
    assert!(
        refused.is_empty(),
        "{}: a door refused a message (the outbox must accept: 200 passed through or 202 queued): {refused:#?}",
        run.context()
    );
}

/// The disruptions of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Disruption {
    StopWorker,
    Reload,
    Kill,
}

/// One browser session: steps until the schedule's messages are all sent
/// (then the tail, and true) or the schedule kills the browser (false).
async fn session(stack: &Stack, run: &mut Run) -> bool {
    let browser = stack.browser().await.unwrap();
    let page = open(&browser, stack, run).await;
    online(stack, &page, run).await;
    let mut in_outage = false;
    while run.sent < run.scheduled() {
        let progress = run.sent as f64 / run.scheduled() as f64;
        // The disruptions each happen at least once, at a seeded point
        // (where the engine can: see `Run::can`).
        let force_stop = !run.stopped && progress >= 0.2;
        let force_reload = !run.reloaded && progress >= 0.35;
        let force_kill = !run.killed && progress >= 0.5;
        if force_kill || force_stop || force_reload || run.rng.percent(20) {
            let forced = force_kill || force_stop || force_reload;
            if !forced && run.rng.percent(50) {
                mid_flight(stack, &page, &browser, run).await;
            } else {
                quiesce(stack, &page, &browser, run).await;
            }
            let roll = run.rng.range(0, 99);
            let disruption = if force_kill || (!force_stop && !force_reload && roll >= 85) {
                Disruption::Kill
            } else if force_stop || (!force_reload && roll < 50) {
                Disruption::StopWorker
            } else {
                Disruption::Reload
            };
            match disruption {
                Disruption::Kill => {
                    run.killed = true;
                    if run.can(Capability::Kill) && run.can(Capability::Restart) {
                        run.tally.kills += 1;
                        take_events(&page, run).await;
                        drop(page);
                        browser.kill().await;
                        faults(stack, |f| f.latency_ms = 0);
                        return false;
                    }
                    run.tally.kills_skipped += 1;
                }
                Disruption::StopWorker => {
                    run.stopped = true;
                    if run.can(Capability::StopWorker) {
                        run.tally.worker_stops += 1;
                        browser.stop_service_workers(&page).await.unwrap();
                    } else {
                        run.tally.worker_stops_skipped += 1;
                    }
                }
                Disruption::Reload => {
                    run.reloaded = true;
                    run.tally.reloads += 1;
                    take_events(&page, run).await;
                    page.reload().await.unwrap();
                    ready(&page, &browser, run).await;
                }
            }
            faults(stack, |f| f.latency_ms = 0);
            // Some messages queue (offline, unless mid-flight), then the network returns.
            let n = run.rng.range(1, 8) as usize;
            send_chunk(&page, &browser, stack, run, n.min(run.room()), Draw::Any).await;
            online(stack, &page, run).await;
            in_outage = false;
        }
        // The faults for the next chunk.
        let roll = run.rng.range(0, 99);
        if in_outage {
            online(stack, &page, run).await;
            in_outage = false;
        } else if roll < 15 {
            run.tally.outages += 1;
            set_outage(stack, run, true);
            in_outage = true;
        } else if roll < 35 {
            // A burst of server errors, unless one is still pending.
            let n = run.rng.range(1, 3) as u32;
            let status = [500, 502, 503, 504][run.rng.range(0, 3) as usize];
            if stack.emulator.control().faults().fail_next == 0 {
                run.tally.fail_next += n;
                faults(stack, |f| {
                    f.fail_next = n;
                    f.fail_status = status;
                });
            }
        } else if roll < 55 {
            // Lost acknowledgements, unless some are still pending.
            let n = run.rng.range(1, 2) as u32;
            if stack.emulator.control().faults().lose_acks == 0 {
                run.tally.lose_acks += n;
                faults(stack, |f| f.lose_acks = n);
            }
        } else if roll < 65 {
            let (latency, jitter) = if run.rng.percent(50) {
                (run.rng.range(20, 200), run.rng.range(0, 100))
            } else {
                (0, 0)
            };
            run.tally.latency_changes += 1;
            faults(stack, |f| {
                f.latency_ms = latency;
                f.jitter_ms = jitter;
            });
        } else if roll < 72 {
            // A 401 burst, from what the run may still force.
            let n = (run.rng.range(1, 4) as u32).min(run.unauthorized_left);
            run.unauthorized_left -= n;
            run.tally.unauthorized += n;
            faults(stack, |f| f.force_unauthorized += n);
        }
        let n = run.rng.range(3, 15) as usize;
        send_chunk(&page, &browser, stack, run, n.min(run.room()), Draw::Any).await;
    }
    let drain = the_tail(stack, &page, &browser, run).await;
    take_events(&page, run).await;
    let end = stats(&page).await;
    let dead: Value = page.eval("T.outbox.deadLetters()").await.unwrap();
    assert_eq!(
        end["dead"],
        0,
        "{}: dead letters: {dead:#}\n{}",
        run.context(),
        browser.console().await.join("\n")
    );
    eprintln!("chaos: {drain}");
    drop(page);
    browser.close().await;
    true
}

/// The end: the schedule's faults off and its backlog drained, then one
/// last outage with the tail queued behind it (kept until the outbox
/// probes the origin), then the network healthy for good and the drain
/// bound. Returns the drain's figures.
async fn the_tail(stack: &Stack, page: &Page<'_>, browser: &Browser, run: &mut Run) -> String {
    stack.emulator.control().clear_faults();
    online(stack, page, run).await;
    let timeout = backlog_wait(page, run).await;
    wait_or_panic(
        page,
        browser,
        run,
        "T.outbox.stats().then(s => s.queued === 0)",
        "the schedule's backlog drained",
        timeout,
    )
    .await;
    // One message through the fetch door first, with the app's token: the
    // worker takes it, so the outbox can send (and probe) in the outage
    // even when its worker started again since it last had a token.
    send_chunk(page, browser, stack, run, 1, Draw::Fetch).await;
    set_outage(stack, run, true);
    run.tally.outages += 1;
    let rest = run.total - run.sent;
    send_chunk(page, browser, stack, run, rest, Draw::Any).await;
    wait_or_panic(
        page,
        browser,
        run,
        "T.outbox.stats().then(s => s.throttled.some(t => t.reason === 'probing'))",
        "the outbox probing its origin in the last outage",
        WAIT,
    )
    .await;
    let backlog = stats(page).await["queued"].as_u64().unwrap_or(0);
    assert!(
        backlog >= rest as u64,
        "{}: the last outage's backlog is the tail at least: {backlog} queued, {rest} sent into it",
        run.context()
    );
    // The last fault ends.
    let bound = DrainBound::new(&product_config(stack), backlog);
    let healthy = Instant::now();
    online(stack, page, run).await;
    if let Err(e) = page
        .wait_for("T.outbox.stats().then(s => s.queued === 0)", bound.total())
        .await
    {
        let left = stats(page).await;
        let pending: Value = page.eval("T.chaos").await.unwrap_or_default();
        panic!(
            "{}: the backlog did not drain within the bound after the last fault ({bound}): \
             after {:.1?}, stats {left}: {e}\n{}\nconsole:\n{}",
            run.context(),
            healthy.elapsed(),
            run.dump(&pending),
            browser.console().await.join("\n")
        );
    }
    let took = healthy.elapsed();
    format!(
        "drained {backlog} entries in {took:.1?} after the last fault ({:.0} a minute), bound {bound}",
        backlog as f64 * 60.0 / took.as_secs_f64().max(0.001)
    )
}

/// Collapses runs of the same text (a lost acknowledgement's retry follows
/// its original at once, since the lane waits for it).
fn collapsed(texts: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for t in texts {
        if out.last() != Some(t) {
            out.push(t.clone());
        }
    }
    out
}

/// What the probe-while-down check saw.
#[derive(Debug, Default)]
struct ProbeCheck {
    /// Flush requests sent while the origin was probed.
    probes: usize,
    /// Those sent while another of the flush's requests was still out.
    breaches: Vec<String>,
}

/// Whether an event is a flush request's outcome: the answer (or its
/// absence) for an entry that was `sending`.
fn is_outcome(kind: &str) -> bool {
    matches!(kind, "sent" | "retrying" | "awaiting-token" | "dead")
}

/// The probe while down (`outbox_core::throttle`, rule 1), checked on the
/// worker's events in the order it emitted them: while the origin's
/// throttle says `probing` (its `throttle` events), no flush request goes
/// (`sending`) while another is out (sent, its outcome not yet told).
///
/// A flush tells its requests' outcomes (`sent`, `retrying`, …) in the
/// cycle after they went, before that cycle's `sending`s, and a change of
/// throttle before both; so a probe alone is `sending` with nothing out.
/// A request counts as out from its `sending` until its outcome; one
/// whose outcome never came before the entry went again, or at all (its
/// worker stopped, the page was reloading), is left out: it can hide a
/// breach, never invent one. Each page lifetime is checked alone (events
/// are lost between them), starting unknown (not probing).
fn probe_check(origin: &str, pages: &[Vec<Value>]) -> ProbeCheck {
    let mut check = ProbeCheck::default();
    for events in pages {
        let kind = |i: usize| events[i]["type"].as_str().unwrap_or_default();
        let id = |i: usize| events[i]["id"].as_str().unwrap_or_default();
        // For each `sending`, where its outcome is told (None: never).
        let outcome_at = |i: usize| {
            (i + 1..events.len())
                .take_while(|&j| !(kind(j) == "sending" && id(j) == id(i)))
                .find(|&j| is_outcome(kind(j)) && id(j) == id(i))
        };
        let mut probing = false;
        let mut out: Vec<(usize, usize)> = Vec::new(); // (sending, outcome)
        for i in 0..events.len() {
            match kind(i) {
                "throttle" if events[i]["origin"] == origin => {
                    probing = events[i]["reason"] == "probing";
                }
                "sending" => {
                    out.retain(|&(_, outcome)| outcome > i);
                    if probing {
                        check.probes += 1;
                        if !out.is_empty() {
                            let others: Vec<String> = out
                                .iter()
                                .map(|&(s, _)| format!("{} ({})", id(s), events[s]["lane"]))
                                .collect();
                            check.breaches.push(format!(
                                "{} ({}) sent at {} while probing, with {} still out",
                                id(i),
                                events[i]["lane"],
                                events[i]["at"],
                                others.join(", ")
                            ));
                        }
                    }
                    if let Some(j) = outcome_at(i) {
                        out.push((i, j));
                    }
                }
                _ => {}
            }
        }
    }
    check
}

/// What went into the outages: per window, the requests the emulator
/// dropped and the outbox's attempts behind them (as its events tell).
#[derive(Debug, Default)]
struct OutageReport {
    windows: usize,
    /// Requests to the API the emulator dropped: preflights, then posts.
    api_options: usize,
    api_posts: usize,
    /// Token requests (the demo's broker, asked by the token URL) dropped.
    token: usize,
    /// Live first attempts of the fetch door that got no answer (queued
    /// with a network reason).
    live: usize,
    /// Flush attempts that got no answer (`retrying` without a status).
    flush: usize,
    /// The most API requests dropped in one window.
    worst_window: usize,
}

impl OutageReport {
    fn new(run: &Run, log: &[genesys_emulator::RequestLogEntry]) -> Self {
        // Events arrive at the page a little after the fact.
        const SLACK_MS: u64 = 500;
        let within = |t: u64, slack: u64| run.outages.iter().any(|&(a, b)| t >= a && t < b + slack);
        let mut report = OutageReport {
            windows: run.outages.len(),
            ..Self::default()
        };
        let mut per_window = vec![0usize; run.outages.len()];
        for e in log.iter().filter(|e| e.outcome == Outcome::OutageDropped) {
            if e.path.starts_with("/oauth") {
                report.token += 1;
                continue;
            }
            if e.method == "OPTIONS" {
                report.api_options += 1;
            } else {
                report.api_posts += 1;
            }
            let t = iso_ms(&e.time).unwrap_or(0);
            if let Some(w) = run.outages.iter().position(|&(a, b)| t >= a && t <= b) {
                per_window[w] += 1;
            }
        }
        report.worst_window = per_window.into_iter().max().unwrap_or(0);
        for e in run.events.iter().flatten() {
            let at = e["at"].as_u64().unwrap_or(0);
            if !within(at, SLACK_MS) {
                continue;
            }
            let reason = e["reason"].as_str().unwrap_or_default();
            match e["type"].as_str().unwrap_or_default() {
                "queued" if reason.starts_with("[network]") || reason.starts_with("[timeout]") => {
                    report.live += 1;
                }
                "retrying" if e["error"]["status"].is_null() => report.flush += 1,
                _ => {}
            }
        }
        report
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chaos_loses_nothing_and_keeps_every_lane_in_order() {
    let engine = Engine::from_env();
    let (seed, total) = settings();
    let _guard = SeedOnFailure(seed, total, engine);
    for (capability, what) in [
        (Capability::StopWorker, "worker stops"),
        (Capability::Kill, "browser kills"),
    ] {
        if let Some(why) = engine.lacks(capability) {
            report_skip(engine, &format!("ran without {what}: {why}"));
        }
    }
    eprintln!("chaos: {} seed {seed}, {total} messages", engine.name());
    let started = Instant::now();
    let stack = Stack::start("chaos", |c| {
        c.idempotency = true;
        c.seed = seed;
    })
    .await;
    let mut lanes = Vec::new();
    for i in 0..AGENT_LANES {
        lanes.push(Lane {
            kind: Kind::Agent,
            key: format!("chaos-a{i}"),
        });
    }
    for i in 0..OPEN_LANES {
        lanes.push(Lane {
            kind: Kind::Open,
            key: format!("chaos-o{i}"),
        });
    }
    let mut run = Run {
        seed,
        total,
        engine,
        rng: Rng(seed),
        expected: vec![Vec::new(); lanes.len()],
        lanes,
        sent: 0,
        tally: Tally::default(),
        killed: false,
        stopped: false,
        reloaded: false,
        unauthorized_left: auth_answers_to_die(&product_config(&stack).core.retry) - 1,
        events: Vec::new(),
        outages: Vec::new(),
        outage_since: None,
        control: stack.emulator.control(),
        config: product_config(&stack),
    };
    while !session(&stack, &mut run).await {}

    // The emulator's record, lane by lane.
    let control = stack.emulator.control();
    let report = control.messages();
    let log = control.requests();
    assert_eq!(log.discarded, 0, "the request log kept everything");
    let lost = |open: bool| {
        log.entries
            .iter()
            .filter(|e| {
                e.outcome == Outcome::LostAck && e.path.ends_with("/inbound/open/message") == open
            })
            .count()
    };
    let (lost_agent, lost_open) = (lost(false), lost(true));
    let mut duplicates_agent = 0;
    let mut problems = Vec::new();
    for (i, lane) in run.lanes.iter().enumerate() {
        let route = match lane.kind {
            Kind::Agent => RouteKind::AgentSend,
            Kind::Open => RouteKind::OpenInbound,
        };
        let got = report
            .lane(route, &lane.key)
            .map(|l| (l.texts.clone(), l.duplicates))
            .unwrap_or_default();
        let want = &run.expected[i];
        let distinct = collapsed(&got.0);
        if &distinct != want {
            let missing: Vec<_> = want.iter().filter(|t| !got.0.contains(t)).collect();
            problems.push(format!(
                "lane {}: lost or out of order; missing {missing:?}\n  expected {want:?}\n  recorded {:?}",
                lane.key, got.0
            ));
        }
        match lane.kind {
            Kind::Agent => duplicates_agent += got.1,
            Kind::Open if got.1 > 0 => problems.push(format!(
                "lane {}: {} duplicates on a route with an idempotency carrier",
                lane.key, got.1
            )),
            Kind::Open => {}
        }
    }
    if duplicates_agent != lost_agent {
        problems.push(format!(
            "agent lanes: {duplicates_agent} duplicates for {lost_agent} lost acknowledgements"
        ));
    }
    let probe = probe_check(&stack.emulator.base_url(), &run.events);
    if probe.probes == 0 {
        problems.push(
            "probe while down: no flush request went while the origin was probed (the last outage must leave it probing, and recovery starts with a probe)".to_owned(),
        );
    }
    for breach in &probe.breaches {
        problems.push(format!("probe while down: {breach}"));
    }
    let counts: BTreeMap<String, usize> = log.entries.iter().fold(BTreeMap::new(), |mut m, e| {
        *m.entry(format!("{:?}", e.outcome)).or_default() += 1;
        m
    });
    assert!(
        problems.is_empty(),
        "{}\n{}\nrequest outcomes: {counts:?}\n{}",
        run.context(),
        problems.join("\n"),
        run.dump(&Value::Null)
    );
    assert_eq!(
        report.total - report.duplicates,
        total,
        "{}: every message once",
        run.context()
    );
    let outages = OutageReport::new(&run, &log.entries);
    eprintln!(
        "chaos: {} seed {seed}: {total} messages over {} lanes delivered in order in {:.0?}; \
         lost acknowledgements {lost_agent} agent (= {duplicates_agent} duplicates) + {lost_open} open \
         (replayed, {} replays); {} requests ({} preflights); probes checked {}; into {} outages: {:?}; \
         {:?}; request outcomes {counts:?}",
        engine.name(),
        run.lanes.len(),
        started.elapsed(),
        report.replays,
        log.entries.len(),
        log.entries.iter().filter(|e| e.method == "OPTIONS").count(),
        probe.probes,
        outages.windows,
        outages,
        run.tally
    );
    stack.stop().await;
}

/// The checks' own logic, without a browser.
mod checks {
    use super::*;

    fn event(kind: &str, id: &str) -> Value {
        json!({ "type": kind, "id": id, "lane": "l", "at": 0 })
    }

    fn probing(on: bool) -> Value {
        json!({ "type": "throttle", "origin": "http://o", "reason": if on { "probing" } else { "none" } })
    }

    #[test]
    fn probes_one_at_a_time_pass_and_two_out_while_probing_do_not() {
        let one_at_a_time = vec![
            probing(true),
            event("sending", "a"),
            event("retrying", "a"),
            event("sending", "b"),
            probing(false),
            event("sent", "b"),
            event("sending", "c"),
            event("sending", "d"),
        ];
        let check = probe_check("http://o", &[one_at_a_time]);
        assert_eq!((check.probes, check.breaches.len()), (2, 0), "{check:?}");

        let two_out = vec![
            probing(true),
            event("sending", "a"),
            event("sending", "b"),
            event("retrying", "a"),
            event("retrying", "b"),
        ];
        let check = probe_check("http://o", &[two_out]);
        assert_eq!(check.breaches.len(), 1, "{check:?}");
    }

    #[test]
    fn a_request_whose_outcome_never_came_is_not_held_against_the_next() {
        // The worker stopped with `a` out; the next one sends `a` again.
        let restarted = vec![
            probing(true),
            event("sending", "a"),
            event("sending", "a"),
            event("retrying", "a"),
            event("sending", "b"),
        ];
        let check = probe_check("http://o", &[restarted]);
        assert_eq!((check.probes, check.breaches.len()), (3, 0), "{check:?}");
        // Each page lifetime starts not probing: a lost `throttle` event
        // cannot make a batch after a reload look like a breach.
        let pages = vec![
            vec![probing(true), event("sending", "a")],
            vec![
                event("sending", "b"),
                event("sending", "c"),
                event("sent", "b"),
            ],
        ];
        assert!(probe_check("http://o", &pages).breaches.is_empty());
    }

    #[test]
    fn the_drain_bound_follows_the_defaults_and_a_crawl_fails_it() {
        let config = OutboxConfig::parse("{}", "http://127.0.0.1").unwrap();
        let bound = DrainBound::new(&config, 30);
        // 60 s + 30 × 0.4 s + (6 s + 30 s).
        assert_eq!(bound.total(), Duration::from_secs(108));
        assert!(
            bound.total() < Duration::from_secs(25 * 30),
            "issue 22's crawl"
        );
        assert_eq!(auth_answers_to_die(&config.core.retry), 8);
        assert_eq!(tail(DEFAULT_MESSAGES), TAIL_MAX);
    }
}
