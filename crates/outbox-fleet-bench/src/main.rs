//! The fleet benchmark: Outbox instances on one PostgreSQL queue, against a
//! bare `SKIP LOCKED` claim-and-delete loop on the same database, in the
//! same run.
//!
//! * **Delivery rate**: a queue pre-filled with `--messages` entries over
//!   1,000 lanes (and over 10), drained into a fast local sink (an HTTP
//!   server in this process that answers `200` at once) by 1, 2 and 4
//!   instances (each a real host — engine thread, PostgreSQL store with its
//!   own connections, reqwest transport — pacing lifted), and by the bare
//!   loop: 4 workers, each `DELETE … WHERE id IN (SELECT id … ORDER BY id
//!   FOR UPDATE SKIP LOCKED LIMIT 8) RETURNING …`, then the batch sent to
//!   the same sink concurrently. The bare loop keeps no order, no lease and
//!   no record of an attempt; the ratio says what those cost. Every lane's
//!   arrivals are checked in order.
//! * **Enqueue latency**: 2,000 durable enqueues through one host's API
//!   door, 16 at a time, while it delivers.
//! * **A dead instance's lanes**: an "instance" claims the heads of 100
//!   lanes (leases of `leaseMs`) and dies; the time until a live instance
//!   has delivered every one of them.
//!
//! It starts a throw-away PostgreSQL cluster of its own (or uses
//! `OUTBOX_TEST_DATABASE_URL`), prints a Markdown section, and writes it to
//! the file given as its first argument.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use outbox_core::clock::{Clock, SplitMix64};
use outbox_core::config::OutboxConfig;
use outbox_core::entry::{Entry, EntryId};
use outbox_core::queue::{LeaseTerms, planning};
use outbox_core::request::IncomingRequest;
use outbox_core::route::Routing;
use outbox_core::scheduler::Claim;
use outbox_driver::store::Store;
use outbox_native::tokens::{ClientCredentials, Secret};
use outbox_native::{Host, HostOptions};
use outbox_postgres::{PgOptions, PostgresStore};

const AGENTLESS: &str = "/api/v2/conversations/messages/agentless";
const LEASE_MS: u64 = 5_000;

/// What the sink received: per lane, the message numbers in arrival order.
#[derive(Default)]
struct Sink {
    lanes: Mutex<HashMap<String, Vec<u64>>>,
    count: AtomicU64,
}

impl Sink {
    fn reset(&self) {
        if let Ok(mut l) = self.lanes.lock() {
            l.clear();
        }
        self.count.store(0, Ordering::SeqCst);
    }

    /// Lanes whose first arrivals are out of order.
    fn disorder(&self) -> usize {
        let lanes = self.lanes.lock().map(|l| l.clone()).unwrap_or_default();
        lanes
            .values()
            .filter(|arrivals| {
                let mut firsts: Vec<u64> = Vec::new();
                for a in *arrivals {
                    if !firsts.contains(a) {
                        firsts.push(*a);
                    }
                }
                firsts.windows(2).any(|w| w[1] < w[0])
            })
            .count()
    }

    fn distinct(&self) -> u64 {
        let lanes = self.lanes.lock().map(|l| l.clone()).unwrap_or_default();
        lanes
            .values()
            .map(|a| {
                let mut a = a.clone();
                a.sort_unstable();
                a.dedup();
                a.len() as u64
            })
            .sum()
    }
}

async fn sink_answer(sink: Arc<Sink>, path: String, body: Bytes) -> axum::response::Response {
    use axum::response::IntoResponse;
    if path == "/oauth/token" {
        return (
            [("content-type", "application/json")],
            r#"{"access_token":"bench","token_type":"bearer","expires_in":86400}"#,
        )
            .into_response();
    }
    let text = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["textBody"].as_str().map(str::to_owned))
        .unwrap_or_default();
    if let Some((lane, n)) = text.rsplit_once('#')
        && let Ok(n) = n.parse::<u64>()
        && let Ok(mut lanes) = sink.lanes.lock()
    {
        lanes.entry(lane.to_owned()).or_default().push(n);
    }
    sink.count.fetch_add(1, Ordering::SeqCst);
    ([("content-type", "application/json")], r#"{"id":"x"}"#).into_response()
}

async fn start_sink(sink: Arc<Sink>) -> Result<String, String> {
    let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: Bytes| {
        let sink = sink.clone();
        async move { sink_answer(sink, uri.path().to_owned(), body).await }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(format!("http://{addr}"))
}

fn config(sink: &str) -> Result<OutboxConfig, String> {
    // Pacing lifted: the sink has no budget to keep to.
    let json = serde_json::json!({
        "apiBase": sink,
        "maxEntries": 1_000_000,
        "leaseMs": LEASE_MS,
        "sendTimeoutMs": 2_000,
        "pacer": {"ratePerMinute": 60_000_000, "burst": 1_000_000},
    });
    OutboxConfig::parse(&json.to_string(), "").map_err(|e| e.to_string())
}

fn request(sink: &str, lane: &str, n: u64) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        url: format!("{sink}{AGENTLESS}"),
        headers: vec![("content-type".into(), "application/json".into())],
        body: serde_json::json!({
            "fromAddress": "+15550000000",
            "toAddress": lane,
            "toAddressMessengerType": "sms",
            "textBody": format!("{lane}#{n}"),
        })
        .to_string()
        .into_bytes(),
    }
}

fn entry(config: &OutboxConfig, sink: &str, lane: &str, n: u64, rng: &mut SplitMix64) -> Entry {
    match config
        .core
        .routes
        .prepare(&request(sink, lane, n), EntryId::random(rng))
    {
        Routing::Matched(p) => {
            Entry::queued(*p, outbox_native::clock::SystemClock.now(), false, None)
        }
        _ => unreachable!("the agentless route matches"),
    }
}

fn lane_name(l: usize) -> String {
    format!("+1666{l:06}")
}

static SCHEMA: AtomicU64 = AtomicU64::new(0);

async fn fresh(url: &str, what: &str) -> Result<PostgresStore, String> {
    let schema = format!(
        "bench_{what}_{}_{}",
        std::process::id(),
        SCHEMA.fetch_add(1, Ordering::SeqCst)
    );
    PostgresStore::open(PgOptions {
        schema,
        retention_ms: 24 * 3_600_000,
        ..PgOptions::new(url)
    })
    .await
    .map_err(|e| e.to_string())
}

/// Fills `store` with `messages` entries over `lanes` lanes, each lane's
/// in order (lanes at once).
async fn prefill(
    store: &PostgresStore,
    config: &OutboxConfig,
    sink: &str,
    lanes: usize,
    messages: u64,
) -> Result<(), String> {
    let per_lane = messages / lanes as u64;
    let limits = config.core.limits;
    let mut lane_ids: Vec<usize> = (0..lanes).collect();
    for chunk in lane_ids.chunks_mut(64) {
        let jobs = chunk.iter().map(|&l| {
            let store = store.clone();
            let mut rng = SplitMix64::new(l as u64 + 1);
            async move {
                for n in 0..per_lane {
                    let e = entry(config, sink, &lane_name(l), n, &mut rng);
                    store.enqueue(e, &limits).await.map_err(|e| e.to_string())?;
                }
                Ok::<(), String>(())
            }
        });
        for r in futures_util::future::join_all(jobs).await {
            r?;
        }
    }
    Ok(())
}

async fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> Result<(), String> {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return Err(format!("gave up after {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// `instances` hosts drain a queue of `messages` over `lanes` lanes:
/// messages per second, and whether every lane kept its order.
async fn outbox_rate(
    url: &str,
    sink: &Arc<Sink>,
    sink_url: &str,
    instances: usize,
    lanes: usize,
    messages: u64,
) -> Result<(f64, usize), String> {
    let config = config(sink_url)?;
    let store = fresh(url, "run").await?;
    let messages = messages / lanes as u64 * lanes as u64;
    prefill(&store, &config, sink_url, lanes, messages).await?;
    sink.reset();
    let started = Instant::now();
    let mut hosts = Vec::new();
    for i in 0..instances {
        let own = PostgresStore::open(store.options().clone())
            .await
            .map_err(|e| e.to_string())?;
        let host = Host::start(
            HostOptions {
                config: config.clone(),
                credentials: Some(ClientCredentials {
                    token_url: format!("{sink_url}/oauth/token"),
                    client_id: "bench".into(),
                    secret: Secret::new("bench"),
                    origin: sink_url.to_owned(),
                }),
                exclusive: false,
                seed: 7 + i as u64,
            },
            own,
        )
        .map_err(|e| e.to_string())?;
        hosts.push(host);
    }
    wait_until(Duration::from_secs(600), || {
        sink.count.load(Ordering::SeqCst) >= messages && sink.distinct() >= messages
    })
    .await?;
    let elapsed = started.elapsed();
    for h in &hosts {
        h.shutdown().await;
    }
    Ok((messages as f64 / elapsed.as_secs_f64(), sink.disorder()))
}

/// The bare loop: `workers` connections claim-and-delete 8 at a time with
/// `SKIP LOCKED` and send each batch to the sink.
async fn bare_rate(
    url: &str,
    sink: &Arc<Sink>,
    sink_url: &str,
    workers: usize,
    lanes: usize,
    messages: u64,
) -> Result<f64, String> {
    let store = fresh(url, "bare").await?;
    let schema = store.options().schema.clone();
    let client = store.pool().raw().await.map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!(
            "CREATE TABLE {}.bare (id bigserial PRIMARY KEY, lane text NOT NULL, body bytea NOT NULL)",
            outbox_postgres::schema::ident(&schema)
        ))
        .await
        .map_err(|e| e.to_string())?;
    let per_lane = messages / lanes as u64;
    let messages = per_lane * lanes as u64;
    for n in 0..per_lane {
        let mut rows = Vec::new();
        for l in 0..lanes {
            let lane = lane_name(l);
            rows.push((lane.clone(), request(sink_url, &lane, n).body));
        }
        let lanes_col: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let bodies: Vec<Vec<u8>> = rows.into_iter().map(|r| r.1).collect();
        client
            .execute(
                "INSERT INTO bare (lane, body) SELECT * FROM unnest($1::text[], $2::bytea[])",
                &[&lanes_col, &bodies],
            )
            .await
            .map_err(|e| e.to_string())?;
    }
    sink.reset();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let jobs = (0..workers).map(|_| {
        let store = store.clone();
        let http = http.clone();
        let target = format!("{sink_url}{AGENTLESS}");
        tokio::spawn(async move {
            let client = store.pool().raw().await.map_err(|e| e.to_string())?;
            let claim = client
                .prepare(
                    "DELETE FROM bare WHERE id IN (SELECT id FROM bare ORDER BY id \
                     FOR UPDATE SKIP LOCKED LIMIT 8) RETURNING body",
                )
                .await
                .map_err(|e| e.to_string())?;
            loop {
                let rows = client.query(&claim, &[]).await.map_err(|e| e.to_string())?;
                if rows.is_empty() {
                    return Ok::<(), String>(());
                }
                let sends = rows.into_iter().map(|r| {
                    let body: Vec<u8> = r.get(0);
                    http.post(&target)
                        .header("content-type", "application/json")
                        .header("authorization", "Bearer bench")
                        .body(body)
                        .send()
                });
                for r in futures_util::future::join_all(sends).await {
                    r.map_err(|e| e.to_string())?;
                }
            }
        })
    });
    for j in futures_util::future::join_all(jobs).await {
        j.map_err(|e| e.to_string())??;
    }
    let elapsed = started.elapsed();
    Ok(messages as f64 / elapsed.as_secs_f64())
}

/// Durable enqueues through one host's API door, 16 at a time: p50 and p99
/// in ms.
async fn enqueue_latency(url: &str, sink_url: &str, n: usize) -> Result<(f64, f64), String> {
    let config = config(sink_url)?;
    let store = fresh(url, "enqueue").await?;
    let host = Host::start(
        HostOptions {
            config,
            credentials: Some(ClientCredentials {
                token_url: format!("{sink_url}/oauth/token"),
                client_id: "bench".into(),
                secret: Secret::new("bench"),
                origin: sink_url.to_owned(),
            }),
            exclusive: false,
            seed: 3,
        },
        store,
    )
    .map_err(|e| e.to_string())?;
    let times = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let jobs = (0..16).map(|w| {
        let host = host.clone();
        let times = times.clone();
        let sink_url = sink_url.to_owned();
        tokio::spawn(async move {
            for i in 0..n / 16 {
                let lane = format!("+1777{:06}", w * 1000 + i % 50);
                let r = request(&sink_url, &lane, i as u64);
                let t = Instant::now();
                let answer = host.submit(r).await.map_err(|e| e.to_string())?;
                if answer.status != 202 {
                    return Err(format!("enqueue answered {}", answer.status));
                }
                if let Ok(mut v) = times.lock() {
                    v.push(t.elapsed().as_secs_f64() * 1000.0);
                }
            }
            Ok::<(), String>(())
        })
    });
    for j in futures_util::future::join_all(jobs).await {
        j.map_err(|e| e.to_string())??;
    }
    host.shutdown().await;
    let mut v = times.lock().map(|v| v.clone()).unwrap_or_default();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| {
        v.get(((v.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0.0)
    };
    Ok((at(0.5), at(0.99)))
}

/// An instance claims the heads of `lanes` lanes and dies; the seconds until
/// a live one delivered them all.
async fn dead_instance(
    url: &str,
    sink: &Arc<Sink>,
    sink_url: &str,
    lanes: usize,
) -> Result<f64, String> {
    let config = config(sink_url)?;
    let store = fresh(url, "dead").await?;
    prefill(&store, &config, sink_url, lanes, lanes as u64 * 3).await?;
    sink.reset();
    let now = outbox_native::clock::SystemClock.now();
    let claimed = store
        .claim(
            LeaseTerms {
                now,
                until: now + LEASE_MS,
                steal: false,
                survey: true,
            },
            &mut planning(|_, heads| (heads.iter().map(|h| (h.seq, Claim::Send)).collect(), None)),
        )
        .await
        .map_err(|e| e.to_string())?;
    // It died here, holding those leases.
    let died = Instant::now();
    let leased: Vec<(String, u64)> = claimed.sends.iter().map(|e| (e.lane.clone(), 0)).collect();
    let live = Host::start(
        HostOptions {
            config,
            credentials: Some(ClientCredentials {
                token_url: format!("{sink_url}/oauth/token"),
                client_id: "bench".into(),
                secret: Secret::new("bench"),
                origin: sink_url.to_owned(),
            }),
            exclusive: false,
            seed: 11,
        },
        PostgresStore::open(store.options().clone())
            .await
            .map_err(|e| e.to_string())?,
    )
    .map_err(|e| e.to_string())?;
    wait_until(Duration::from_secs(120), || {
        let got = sink.lanes.lock().map(|l| l.clone()).unwrap_or_default();
        leased
            .iter()
            .all(|(lane, n)| got.get(lane).is_some_and(|a| a.contains(n)))
    })
    .await?;
    let moved_on = died.elapsed().as_secs_f64();
    live.shutdown().await;
    Ok(moved_on)
}

fn main() -> std::process::ExitCode {
    let out = std::env::args().nth(1);
    let messages: u64 = std::env::var("OUTBOX_FLEET_BENCH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(6_000);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("fleet bench: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(messages)) {
        Ok(text) => {
            println!("{text}");
            if let Some(path) = out
                && let Err(e) = std::fs::write(&path, &text)
            {
                eprintln!("fleet bench: cannot write {path}: {e}");
                return std::process::ExitCode::FAILURE;
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fleet bench: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(messages: u64) -> Result<String, String> {
    let cluster;
    let url = match std::env::var(pg_throwaway::ENV_URL) {
        Ok(url) => url,
        Err(_) => {
            cluster = pg_throwaway::Cluster::start().map_err(|e| e.to_string())?;
            cluster.url()
        }
    };
    let sink = Arc::new(Sink::default());
    let sink_url = start_sink(sink.clone()).await?;
    let mut text = String::new();
    let mut rows = Vec::new();
    let mut goal = None;
    for lanes in [1_000usize, 10] {
        let bare = bare_rate(&url, &sink, &sink_url, 4, lanes, messages).await?;
        eprintln!("fleet bench: {lanes} lanes, bare loop {bare:.0}/s");
        let mut line = vec![format!("{lanes}"), format!("{bare:.0}")];
        for instances in [1usize, 2, 4] {
            let (rate, disorder) =
                outbox_rate(&url, &sink, &sink_url, instances, lanes, messages).await?;
            eprintln!(
                "fleet bench: {lanes} lanes, {instances} instance(s) {rate:.0}/s, lanes out of order {disorder}"
            );
            if disorder > 0 {
                return Err(format!("{disorder} lanes out of order"));
            }
            line.push(format!("{rate:.0} ({:.2}×)", rate / bare));
            if lanes == 1_000 && instances == 4 {
                goal = Some((rate, bare));
            }
        }
        rows.push(line);
    }
    let (p50, p99) = enqueue_latency(&url, &sink_url, 2_000).await?;
    eprintln!("fleet bench: enqueue p50 {p50:.1} ms, p99 {p99:.1} ms");
    let moved = dead_instance(&url, &sink, &sink_url, 100).await?;
    eprintln!("fleet bench: a dead instance's lanes moved on in {moved:.1} s");

    text.push_str(&format!(
        "Delivered messages per second into a local sink, pacing lifted, {messages} messages a run \
         (each lane's arrivals checked in order: all kept), PostgreSQL 15 with its default \
         settings (`synchronous_commit = on`), everything on this 2-core machine:\n\n\
         | lanes | bare `SKIP LOCKED` loop (4 workers) | 1 instance | 2 instances | 4 instances |\n\
         |--:|--:|--:|--:|--:|\n"
    ));
    for r in &rows {
        text.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    text.push_str(&format!(
        "\nEnqueue latency (durable, through one instance's API door, 16 at a time, while it \
         delivers): p50 {p50:.1} ms, p99 {p99:.1} ms.\n\n\
         A dead instance's lanes (100 heads leased for {} s by an instance that then died) were \
         all delivered by a live one {moved:.1} s after it died: {:.2}× the lease (goal ≤ 2×: {}).\n",
        LEASE_MS / 1000,
        moved * 1000.0 / LEASE_MS as f64,
        if moved * 1000.0 <= 2.0 * LEASE_MS as f64 { "met" } else { "**blocked**" },
    ));
    if let Some((rate, bare)) = goal {
        text.push_str(&format!(
            "\n4 instances over 1,000 lanes: {rate:.0} messages/s, {:.2}× the bare loop's {bare:.0} \
             (goal ≥ 0.8×: {}).\n",
            rate / bare,
            if rate >= 0.8 * bare { "met" } else { "**blocked**" }
        ));
    }
    Ok(text)
}
