//! The native part: `outbox serve` on SQLite, measured against the disk's
//! own limit in the same run.
//!
//! 1. **The fsync ceiling**: a bare loop of single-row `INSERT`s, each its
//!    own commit, on a SQLite file in the same folder, with the proxy's
//!    settings (WAL, `synchronous=FULL`).
//! 2. **Durable enqueues through the proxy** (its API door, write-through:
//!    each answer comes once the entry is on disk), from one sender, then
//!    from 32 at once: messages a second, and each request's latency (p50,
//!    p99). The upstream is a closed port, so nothing is delivered and the
//!    queue only grows.
//! 3. **Memory with 100,000 queued**: the proxy's resident set (`VmRSS`)
//!    once the 32 senders have queued 100,000 entries.
//! 4. **Delivery into a fast local sink** (a server that answers `200` at
//!    once): messages queued while the sink is down, then the proxy
//!    restarted with the sink up, timed from the sink's first request to
//!    its last — with the shipped pacing (150 a minute, burst 10), and with
//!    pacing lifted.
//!
//! Nothing here asserts a speed; the report compares the ratios with the
//! goals of issue 25.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// What the native part is run with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The `outbox` binary (release build).
    pub outbox: PathBuf,
    /// A scratch folder on the disk being measured.
    pub dir: PathBuf,
    /// Smaller counts.
    pub quick: bool,
}

/// Enqueues through the proxy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enqueues {
    /// Concurrent senders.
    pub senders: usize,
    /// Messages sent.
    pub messages: usize,
    /// Durable enqueues a second.
    pub per_s: f64,
    /// Latency of one enqueue, median, ms.
    pub p50_ms: f64,
    /// Latency, 99th percentile, ms.
    pub p99_ms: f64,
}

/// Delivery into the sink.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    /// Messages delivered.
    pub messages: usize,
    /// Lanes they were spread over.
    pub lanes: usize,
    /// The pacer's rate a minute (`None`: the shipped default).
    pub rate_per_minute: Option<u32>,
    /// Delivered a second, from the sink's first request to its last.
    pub per_s: f64,
    /// SQLite commits per delivered message during the drain.
    pub commits_per_message: f64,
}

/// The native part's results.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NativeResults {
    /// Single-row commits a second of the bare loop.
    pub bare_commits_per_s: f64,
    /// Commits the bare loop made.
    pub bare_commits: usize,
    /// One sender.
    pub single: Enqueues,
    /// 32 senders.
    pub concurrent: Enqueues,
    /// Store transactions and SQLite commits during the 32-sender run.
    pub concurrent_group: (u64, u64),
    /// Entries queued when the memory was read.
    pub rss_queued: usize,
    /// The proxy's resident set then, bytes.
    pub rss_bytes: u64,
    /// Delivery with the shipped pacing.
    pub paced: Delivery,
    /// Delivery with pacing lifted.
    pub lifted: Delivery,
}

/// The bare loop: `n` single-row commits (WAL, `synchronous=FULL`).
fn bare_loop(dir: &Path, n: usize) -> Result<f64, String> {
    let path = dir.join("bare.db");
    let _ = std::fs::remove_file(&path);
    let conn = rusqlite::Connection::open(&path).map_err(|e| e.to_string())?;
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .map_err(|e| e.to_string())?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(|e| e.to_string())?;
    conn.execute_batch(
        "CREATE TABLE t (seq INTEGER PRIMARY KEY, lane TEXT NOT NULL, body BLOB NOT NULL)",
    )
    .map_err(|e| e.to_string())?;
    let body = vec![b'x'; 200];
    let started = Instant::now();
    for i in 0..n {
        conn.execute(
            "INSERT INTO t (lane, body) VALUES (?1, ?2)",
            rusqlite::params![format!("lane-{}", i % 1000), body],
        )
        .map_err(|e| e.to_string())?;
    }
    Ok(n as f64 / started.elapsed().as_secs_f64())
}

/// A running `outbox serve`.
struct Proxy {
    child: Child,
    base: String,
}

impl Proxy {
    fn start(
        outbox: &Path,
        dir: &Path,
        db: &str,
        upstream: &str,
        toml: &str,
    ) -> Result<Self, String> {
        let config = dir.join(format!("{db}.toml"));
        std::fs::write(&config, toml).map_err(|e| e.to_string())?;
        let mut child = Command::new(outbox)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .arg("--store")
            .arg(dir.join(db))
            .arg("--api-base")
            .arg(upstream)
            .arg("--listen")
            .arg("127.0.0.1:0")
            // The sink's OAuth endpoint hands any client a token.
            .env("OUTBOX_CLIENT_ID", "bench")
            .env("OUTBOX_CLIENT_SECRET", "bench-secret")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("{}: {e}", outbox.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let mut reader = BufReader::new(stdout);
        let mut first = String::new();
        let _ = reader.read_line(&mut first);
        std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
        let base = first
            .trim()
            .strip_prefix("outbox listening on ")
            .ok_or_else(|| format!("outbox serve did not start: {first:?}"))?
            .to_owned();
        Ok(Self { child, base })
    }

    fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn body(lane: usize, i: usize) -> String {
    serde_json::json!({
        "path": "/api/v2/conversations/messages/agentless",
        "body": {
            "fromAddress": "+15550000000",
            "toAddress": format!("+1555{lane:07}"),
            "toAddressMessengerType": "sms",
            "textBody": format!("benchmark message {i}"),
        },
    })
    .to_string()
}

/// `messages` durable enqueues from `senders` at once, over `lanes` lanes;
/// `offset` keeps texts unique across runs.
async fn enqueue(
    http: &reqwest::Client,
    base: &str,
    senders: usize,
    messages: usize,
    lanes: usize,
    offset: usize,
) -> Result<Enqueues, String> {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (http, base, next) = (http.clone(), base.to_owned(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= messages {
                    return Ok::<_, String>(latencies);
                }
                let t = Instant::now();
                let answer = http
                    .post(format!("{base}/outbox/v1/messages"))
                    .header("content-type", "application/json")
                    .body(body((offset + i) % lanes, offset + i))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = answer.status().as_u16();
                let _ = answer.bytes().await;
                if status != 202 {
                    return Err(format!("enqueue answered {status}"));
                }
                latencies.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.map_err(|e| e.to_string())??);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Enqueues {
        senders,
        messages,
        per_s: messages as f64 / elapsed,
        p50_ms: pct(0.5),
        p99_ms: pct(0.99),
    })
}

/// A free loopback port (bound, then let go).
fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A counter of the store's commits and transactions, from `/metrics`.
async fn store_counters(http: &reqwest::Client, base: &str) -> (u64, u64) {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => return (0, 0),
    };
    let get = |name: &str| {
        text.lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .map(|v| v.trim().parse::<u64>().unwrap_or(0))
            })
            .unwrap_or(0)
    };
    (
        get("outbox_store_transactions_total "),
        get("outbox_store_commits_total "),
    )
}

/// The fast sink: answers `200` at once, counts, and times the first and
/// last request; its `/oauth/token` hands out a token (the proxy runs with
/// client credentials, as in production).
#[derive(Default)]
struct Sink {
    count: AtomicU64,
    first: std::sync::Mutex<Option<Instant>>,
    last: std::sync::Mutex<Option<Instant>>,
}

async fn sink(listener: tokio::net::TcpListener, state: Arc<Sink>) {
    let token = axum::routing::post(|| async {
        (
            [("content-type", "application/json")],
            r#"{"access_token":"sink-token","token_type":"bearer","expires_in":86399}"#,
        )
    });
    let app = axum::Router::new()
        .route("/oauth/token", token)
        .fallback(move || {
            let state = state.clone();
            async move {
                let now = Instant::now();
                state.first.lock().map(|mut f| *f.get_or_insert(now)).ok();
                if let Ok(mut l) = state.last.lock() {
                    *l = Some(now);
                }
                state.count.fetch_add(1, Ordering::Relaxed);
                (
                    [("content-type", "application/json")],
                    r#"{"id":"sink","status":"queued"}"#,
                )
            }
        });
    let _ = axum::serve(listener, app).await;
}

/// Delivery of `messages` over `lanes` into the sink, with `pacer` TOML.
async fn delivery(
    options: &Options,
    http: &reqwest::Client,
    name: &str,
    messages: usize,
    lanes: usize,
    rate_per_minute: Option<u32>,
) -> Result<Delivery, String> {
    let port = free_port()?;
    let upstream = format!("http://127.0.0.1:{port}");
    let mut toml = String::from("maxEntries = 200000\n");
    if let Some(rate) = rate_per_minute {
        toml.push_str(&format!(
            "[pacer]\nratePerMinute = {rate}\nburst = {rate}\n"
        ));
    }
    let db = format!("{name}.db");
    // Queued while the sink is down (its port closed).
    let proxy = Proxy::start(&options.outbox, &options.dir, &db, &upstream, &toml)?;
    enqueue(http, &proxy.base, 32, messages, lanes, 0).await?;
    proxy.stop();
    // The sink comes up; the proxy starts again on the same file.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let state = Arc::new(Sink::default());
    let server = tokio::spawn(sink(listener, state.clone()));
    let proxy = Proxy::start(&options.outbox, &options.dir, &db, &upstream, &toml)?;
    let before = store_counters(http, &proxy.base).await;
    let deadline = Instant::now() + Duration::from_secs(1800);
    while (state.count.load(Ordering::Relaxed) as usize) < messages {
        if Instant::now() > deadline {
            return Err(format!(
                "{name}: the sink got {} of {messages}",
                state.count.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let after = store_counters(http, &proxy.base).await;
    proxy.stop();
    server.abort();
    let first = state.first.lock().ok().and_then(|f| *f);
    let last = state.last.lock().ok().and_then(|l| *l);
    let secs = match (first, last) {
        (Some(f), Some(l)) => (l - f).as_secs_f64().max(1e-3),
        _ => 1.0,
    };
    Ok(Delivery {
        messages,
        lanes,
        rate_per_minute,
        // The first request opens the window: the others came after it.
        per_s: (messages.saturating_sub(1)) as f64 / secs,
        commits_per_message: (after.1.saturating_sub(before.1)) as f64 / messages as f64,
    })
}

/// Runs the native part.
pub async fn run(options: &Options) -> Result<NativeResults, String> {
    std::fs::create_dir_all(&options.dir).map_err(|e| e.to_string())?;
    for entry in std::fs::read_dir(&options.dir)
        .map_err(|e| e.to_string())?
        .flatten()
    {
        let _ = std::fs::remove_file(entry.path());
    }
    let q = options.quick;
    let bare_commits = if q { 300 } else { 1_000 };
    eprintln!("bench: native: bare SQLite commit loop ({bare_commits} commits)");
    let bare = bare_loop(&options.dir, bare_commits)?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;

    // Enqueues, into a queue that only grows (the upstream is closed).
    let closed = format!("http://127.0.0.1:{}", free_port()?);
    let proxy = Proxy::start(
        &options.outbox,
        &options.dir,
        "enqueue.db",
        &closed,
        "maxEntries = 200000\n",
    )?;
    let single_n = if q { 300 } else { 1_000 };
    eprintln!("bench: native: {single_n} enqueues from one sender");
    let single = enqueue(&http, &proxy.base, 1, single_n, 1_000, 0).await?;
    let concurrent_n = if q { 3_000 } else { 10_000 };
    eprintln!("bench: native: {concurrent_n} enqueues from 32 senders");
    let before = store_counters(&http, &proxy.base).await;
    let concurrent = enqueue(&http, &proxy.base, 32, concurrent_n, 1_000, single_n).await?;
    let after = store_counters(&http, &proxy.base).await;
    let rss_queued = if q { 20_000 } else { 100_000 };
    let fill = rss_queued - single_n - concurrent_n;
    eprintln!("bench: native: filling to {rss_queued} queued");
    enqueue(&http, &proxy.base, 32, fill, 1_000, single_n + concurrent_n).await?;
    let rss_bytes = proxy.rss_bytes();
    proxy.stop();

    let paced_n = if q { 30 } else { 60 };
    eprintln!("bench: native: delivery of {paced_n} with the shipped pacing");
    let paced = delivery(options, &http, "paced", paced_n, paced_n, None).await?;
    let lifted_n = if q { 2_000 } else { 10_000 };
    eprintln!("bench: native: delivery of {lifted_n} with pacing lifted");
    let lifted = delivery(options, &http, "lifted", lifted_n, 1_000, Some(6_000_000)).await?;
    Ok(NativeResults {
        bare_commits_per_s: bare,
        bare_commits,
        single,
        concurrent,
        concurrent_group: (after.0 - before.0, after.1 - before.1),
        rss_queued,
        rss_bytes,
        paced,
        lifted,
    })
}
