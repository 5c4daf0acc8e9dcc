//! The crash test: `outbox serve` on SQLite, killed with SIGKILL at
//! random moments and restarted, while a seeded load of thousands of
//! messages over many lanes runs through both doors with outages, `5xx`,
//! `429`, lost acknowledgements and expired tokens.
//!
//! What must hold:
//! * **0 lost**: every message the proxy accepted (`200` passed through,
//!   or `202` kept) reaches Genesys, or is a dead letter the proxy
//!   reports (each is listed, then retried, and must then arrive).
//! * **0 reordered within a lane**: per lane, the first arrivals are in
//!   the order the proxy accepted them.
//! * **Duplicates only where an acknowledgement was lost**: none on the
//!   Open Messaging lanes (the route carries `channel.messageId`, and the
//!   emulator de-duplicates on it); on the agentless lanes (no carrier:
//!   Genesys cannot tell a repeat) no more than the acknowledgements lost:
//!   answers the emulator cut after recording (`loseAcks`,
//!   `lostAckRate`), sends under way when the proxy was killed (at most a
//!   batch per kill), and the client's own retries of a request whose
//!   answer a kill cut off.
//! * **Drained within a bound** once the faults end (the time is printed).
//!
//! Faults are switched by the count of messages accepted, kills happen at
//! seeded counts, and every wait is on a condition. The seed is printed;
//! `OUTBOX_CRASH_SEED=<seed>` replays the same schedule (the machine's
//! timing still varies). `OUTBOX_CRASH_MESSAGES` changes the load's size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use genesys_emulator::{Config, Faults, RouteKind};
use outbox_core::clock::{Random, SplitMix64};

/// The settings the load needs, and why each differs from the default:
/// * the pacer allows 6,000 a minute (default 150) so that thousands of
///   messages drain in a test's time; pacing and the herd throttle are
///   tested in `outbox-core` and through the engine in `outbox-driver`;
/// * the retry backoff is 100 ms … 1 s (default 2 s … 60 s), for the same
///   reason; the shipped backoff is tested in `outbox-core`.
const TOML: &str =
    "[pacer]\nratePerMinute = 6000\nburst = 100\n[retry]\nbaseMs = 100\ncapMs = 1000\n";

/// The batch size in force (core's default): at most this many sends are
/// under way when the proxy is killed.
const BATCH: u64 = 8;

const INTEGRATION: &str = "3b2c1a00-0000-4000-8000-000000000001";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Door {
    /// Agentless, through the pass-through door (no idempotency carrier).
    Pass,
    /// Open Messaging inbound, through the API door (`channel.messageId`).
    Api,
}

struct Lane {
    name: String,
    door: Door,
    count: usize,
}

/// What the load saw.
#[derive(Default)]
struct Load {
    /// Per lane, the texts the proxy accepted, in order.
    accepted: Mutex<HashMap<String, Vec<String>>>,
    /// Messages accepted so far.
    count: AtomicU64,
    /// Requests whose answer never came (a kill): resent by the client.
    ambiguous: AtomicU64,
    /// The proxy's address (changes at each restart).
    base: Mutex<String>,
    done: AtomicBool,
}

fn open_body(lane: &str, text: &str) -> String {
    serde_json::json!({
        "path": format!("/api/v2/conversations/messages/{INTEGRATION}/inbound/open/message"),
        "body": {
            "channel": {
                "from": {"id": lane, "idType": "Opaque"},
                "time": "2026-12-01T12:00:00.000Z",
                "messageId": text,
            },
            "text": text,
        },
    })
    .to_string()
}

/// Sends every message of `lane`, one at a time, until the proxy accepts
/// each (retrying through kills and restarts).
async fn run_lane(load: Arc<Load>, http: reqwest::Client, lane: Lane) {
    for i in 0..lane.count {
        let text = format!("{}#{i}", lane.name);
        loop {
            let base = load.base.lock().unwrap().clone();
            let request = match lane.door {
                Door::Pass => http
                    .post(format!("{base}{AGENTLESS}"))
                    .header("content-type", "application/json")
                    .body(agentless(&lane.name, &text)),
                Door::Api => http
                    .post(format!("{base}/outbox/v1/messages"))
                    .header("content-type", "application/json")
                    .body(open_body(&lane.name, &text)),
            };
            match request.send().await {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let body = answer.text().await.unwrap_or_default();
                    match status {
                        200 | 202 => {
                            load.accepted
                                .lock()
                                .unwrap()
                                .entry(lane.name.clone())
                                .or_default()
                                .push(text.clone());
                            load.count.fetch_add(1, Ordering::SeqCst);
                            break;
                        }
                        // The host is stopping (a kill is under way), or
                        // the body was cut: try again.
                        503 | 502 => {}
                        other => panic!("{text}: unexpected {other}: {body}"),
                    }
                }
                Err(e) => {
                    // Connection refused (restarting) is not ambiguous; a
                    // request cut mid-way is.
                    if !e.is_connect() {
                        load.ambiguous.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn seed() -> u64 {
    match std::env::var("OUTBOX_CRASH_SEED") {
        Ok(s) => s.parse().expect("OUTBOX_CRASH_SEED is a number"),
        Err(_) => outbox_native::clock::random_seed() % 1_000_000,
    }
}

#[test]
fn killed_at_random_and_restarted_under_faults_nothing_is_lost_or_reordered() {
    let seed = seed();
    println!("crash test seed: {seed} (replay: OUTBOX_CRASH_SEED={seed})");
    eprintln!("crash test seed: {seed} (replay: OUTBOX_CRASH_SEED={seed})");
    let mut rng = SplitMix64::new(seed);
    let total: usize = std::env::var("OUTBOX_CRASH_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let lanes_n = 40;

    let emu = emulator(Config {
        rate_limit: 1_000_000,
        rate_window: Duration::from_secs(2),
        idempotency: true,
        seed,
        ..Config::ephemeral()
    });
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::new(dir.path(), &emu.base_url(), TOML);
    let mut proxy = Proxy::start(&config);

    // The lanes: half agentless through the pass-through door, half Open
    // Messaging through the API door, with messages spread unevenly.
    let mut lanes = Vec::new();
    let mut left = total;
    for l in 0..lanes_n {
        let door = if l % 2 == 0 { Door::Pass } else { Door::Api };
        let count = if l == lanes_n - 1 {
            left
        } else {
            let share = total / lanes_n;
            let n = share / 2 + (rng.next_u64() as usize % (share + 1));
            n.min(left)
        };
        left -= count;
        let name = match door {
            Door::Pass => format!("+1555{l:04}"),
            Door::Api => format!("open-{l:02}"),
        };
        lanes.push(Lane { name, door, count });
    }

    // The schedule: a fault phase per slice of the load, in a seeded
    // order, and kills at seeded counts.
    let mut phases: Vec<(&str, Faults)> = vec![
        (
            "outage",
            Faults {
                outage: true,
                ..Faults::default()
            },
        ),
        (
            "5xx",
            Faults {
                error_rate: 0.3,
                ..Faults::default()
            },
        ),
        (
            "429",
            Faults {
                rate_limit: Some(5),
                ..Faults::default()
            },
        ),
        (
            "lost acks",
            Faults {
                lose_acks: 25,
                lost_ack_rate: 0.05,
                ..Faults::default()
            },
        ),
        (
            "expired tokens",
            Faults {
                force_unauthorized: 30,
                ..Faults::default()
            },
        ),
    ];
    for i in (1..phases.len()).rev() {
        let j = (rng.next_u64() as usize) % (i + 1);
        phases.swap(i, j);
    }
    let slice = (total / (phases.len() + 1)) as u64;
    let kills_n = 4 + rng.next_u64() % 3;
    let mut kills: Vec<u64> = (0..kills_n)
        .map(|_| 50 + rng.next_u64() % (total as u64 - 100))
        .collect();
    kills.sort_unstable();
    println!(
        "{total} messages over {lanes_n} lanes; phases {:?}; kills at {kills:?} accepted",
        phases.iter().map(|p| p.0).collect::<Vec<_>>()
    );

    let load = Arc::new(Load::default());
    *load.base.lock().unwrap() = proxy.base.clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();
    let load_task = {
        let load = load.clone();
        runtime.spawn(async move {
            let tasks: Vec<_> = lanes
                .into_iter()
                .map(|lane| tokio::spawn(run_lane(load.clone(), http.clone(), lane)))
                .collect();
            for t in tasks {
                t.await.expect("a lane's sender");
            }
            load.done.store(true, Ordering::SeqCst);
        })
    };

    // The chaos: phases and kills at counts of accepted messages.
    let wait_count = |n: u64| {
        wait_for(
            &format!("{n} messages accepted"),
            Duration::from_secs(600),
            || {
                (load.count.load(Ordering::SeqCst) >= n || load.done.load(Ordering::SeqCst))
                    .then_some(())
            },
        )
    };
    let mut events: Vec<(u64, Option<usize>)> = kills.iter().map(|k| (*k, None)).collect();
    for p in 0..phases.len() {
        events.push(((p as u64 + 1) * slice, Some(p)));
    }
    events.push(((phases.len() as u64 + 1) * slice, None));
    events.sort_by_key(|e| e.0);
    let mut killed = 0u64;
    let mut kills_left: Vec<u64> = kills.clone();
    for (at, what) in events {
        wait_count(at);
        match what {
            Some(p) => {
                println!(
                    "at {} accepted: faults {}",
                    load.count.load(Ordering::SeqCst),
                    phases[p].0
                );
                emu.control().set_faults(phases[p].1.clone()).unwrap();
                if phases[p].0 == "expired tokens" {
                    emu.control().expire_all_tokens();
                }
            }
            None if kills_left.first() == Some(&at) => {
                kills_left.remove(0);
                proxy.kill();
                killed += 1;
                proxy = Proxy::start(&config);
                *load.base.lock().unwrap() = proxy.base.clone();
                println!(
                    "at {} accepted: killed and restarted",
                    load.count.load(Ordering::SeqCst)
                );
            }
            None => {
                println!(
                    "at {} accepted: faults cleared",
                    load.count.load(Ordering::SeqCst)
                );
                emu.control().clear_faults();
            }
        }
    }
    wait_for("the load sent", Duration::from_secs(600), || {
        load.done.load(Ordering::SeqCst).then_some(())
    });
    runtime.block_on(load_task).unwrap();
    emu.control().clear_faults();
    let faults_ended = Instant::now();

    // Drained: nothing queued.
    let client = Client::new();
    let backlog = client.get(&proxy.url("/outbox/v1/stats")).json()["queued"]
        .as_u64()
        .unwrap_or(0);
    // A bound, not a speed goal: the backlog at the pacer's rate (6,000 a
    // minute), twice over, plus a minute for backoffs, token asks and
    // throttle recovery.
    let bound = Duration::from_secs(60 + backlog * 2 * 60 / 6_000);
    wait_for("the backlog drained", bound, || {
        let stats = client.get(&proxy.url("/outbox/v1/stats")).json();
        (stats["pending"] == 0 && stats["inFlight"] == 0 && stats["awaitingToken"] == 0)
            .then_some(())
    });
    let drained_in = faults_ended.elapsed();
    println!(
        "backlog of {backlog} drained in {drained_in:.1?} after the faults ended (bound {bound:?})"
    );

    // Every dead letter is reported; retried, each must then arrive.
    let dead = client.get(&proxy.url("/outbox/v1/dead?limit=10000")).json();
    let dead = dead.as_array().unwrap().clone();
    println!("dead letters reported: {}", dead.len());
    for d in &dead {
        println!(
            "  dead: {} lane {} — {}",
            d["id"], d["lane"], d["lastError"]
        );
        let id = d["id"].as_str().unwrap();
        let revived = client.post(&proxy.url(&format!("/outbox/v1/dead/{id}/retry")), &[], "");
        assert_eq!(revived.status, 200, "{}", revived.body);
    }
    if !dead.is_empty() {
        wait_for("the revived delivered", Duration::from_secs(120), || {
            let stats = client.get(&proxy.url("/outbox/v1/stats")).json();
            (stats["queued"] == 0 && stats["dead"] == 0).then_some(())
        });
    }

    // What arrived, lane by lane.
    let report = emu.control().messages();
    let lost_acks = emu
        .control()
        .requests()
        .entries
        .iter()
        .filter(|e| e.outcome == genesys_emulator::Outcome::LostAck)
        .count() as u64;
    let ambiguous = load.ambiguous.load(Ordering::SeqCst);
    let accepted = load.accepted.lock().unwrap().clone();
    let mut lost = 0;
    let mut pass_dups = 0;
    let mut open_dups = 0;
    for (lane, texts) in &accepted {
        let route = if lane.starts_with("open-") {
            RouteKind::OpenInbound
        } else {
            RouteKind::Agentless
        };
        let got = report
            .lane(route, lane)
            .map(|l| l.messages.clone())
            .unwrap_or_default();
        let firsts: Vec<String> = got
            .iter()
            .filter(|m| m.duplicate_of.is_none())
            .filter_map(|m| m.text.clone())
            .collect();
        let dups = got.iter().filter(|m| m.duplicate_of.is_some()).count();
        match route {
            RouteKind::OpenInbound => open_dups += dups,
            _ => pass_dups += dups,
        }
        let missing = texts.iter().filter(|t| !firsts.contains(t)).count();
        lost += missing;
        assert_eq!(
            missing, 0,
            "lane {lane}: {missing} accepted messages never arrived"
        );
        assert_eq!(
            &firsts, texts,
            "lane {lane}: arrived out of the order accepted"
        );
    }
    let accepted_n: usize = accepted.values().map(Vec::len).sum();
    println!(
        "accepted {accepted_n}, lost {lost}, duplicates: open (de-duplicating) {open_dups}, agentless {pass_dups} \
         (lost acks {lost_acks}, kills {killed} × batch {BATCH}, client retries after a cut answer {ambiguous})"
    );
    assert_eq!(accepted_n, total, "the load's every message accepted once");
    assert_eq!(open_dups, 0, "the de-duplicating route saw no duplicate");
    assert!(
        pass_dups as u64 <= lost_acks + killed * BATCH + ambiguous,
        "duplicates only where an acknowledgement was lost"
    );
    let (status, _) = proxy.terminate();
    assert!(status.success());
}
