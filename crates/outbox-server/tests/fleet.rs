//! The fleet crash test: three `outbox serve` instances on one PostgreSQL
//! queue, a seeded load of thousands of messages over many lanes sent to
//! all three at random through both doors, the emulator's faults
//! (outages, `5xx`, `429`, lost acknowledgements, expired tokens), and
//! instances killed with SIGKILL, paused with SIGSTOP past their lease and
//! resumed, and restarted.
//!
//! What must hold:
//! * **0 lost**: every message an instance accepted reaches Genesys (dead
//!   letters are reported, retried, and must then arrive).
//! * **0 reordered within a lane**: per lane, the first arrivals are in
//!   the order the fleet accepted them.
//! * **No delivery through a stale lease**: on the agentless lanes (no
//!   idempotency carrier: Genesys records every copy) every arrival,
//!   duplicates included, is in lane order — an instance that sent through
//!   a lease that had passed on would deliver an entry again *after* the
//!   entries behind it, which the fleet delivered meanwhile. Core fences
//!   each send (its leases re-read right before it) and gives each request
//!   a time to leave by (its lease's end less a margin), which the native
//!   transport enforces where the request leaves (`outbox_native::lease`),
//!   so that a pause between the fence and the send no longer lets a copy
//!   out after its lease.
//! * **Duplicates only where an acknowledgement was lost**: none on the
//!   de-duplicating Open Messaging route; on the agentless one no more
//!   than the acknowledgements lost (cut by the emulator after recording,
//!   sends under way when an instance was killed or paused, the client's
//!   own retries of a request whose answer was cut).
//! * **One budget for the fleet**: the requests of the fleet's OAuth client
//!   in any 10 s are within the pacer's rate × 10 s + its burst (the
//!   callers' own live attempts go under another client).
//! * **Drained within a bound** once the faults end (the time is printed).
//!
//! Faults and process events happen at counts of accepted messages; every
//! wait is on a condition (a pause lasts until the clock is past the
//! lease). The seed is printed; `OUTBOX_FLEET_SEED=<seed>` replays the
//! schedule, `OUTBOX_FLEET_MESSAGES` changes the load's size.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use genesys_emulator::{Config, Faults, RouteKind};
use outbox_core::clock::{Random, SplitMix64};

/// The fleet's settings, and why each differs from the default:
/// * the pacer allows 3,000 a minute with a burst of 50 (default 150 and
///   10) so that thousands of messages drain in a test's time — it is the
///   fleet's one budget, which the test checks;
/// * the retry backoff is 100 ms … 1 s (default 2 s … 60 s), for the same
///   reason;
/// * a lease lasts 3 s and a send may take 1.5 s (default 60 s and 30 s),
///   so that a paused or killed instance's lanes move on within the test.
const TOML: &str = "leaseMs = 3000\nsendTimeoutMs = 1500\nforwardTimeoutMs = 1500\n\
    [pacer]\nratePerMinute = 3000\nburst = 50\n[retry]\nbaseMs = 100\ncapMs = 1000\n";
const RATE_PER_MINUTE: u64 = 3_000;
const BURST: u64 = 50;
const LEASE: Duration = Duration::from_millis(3_000);

/// Core's batch size: at most this many sends are under way in one
/// instance when it is killed or paused.
const BATCH: u64 = 8;

const INSTANCES: usize = 3;
const INTEGRATION: &str = "3b2c1a00-0000-4000-8000-000000000001";
/// The OAuth client the callers' own bearers belong to (the fleet's is
/// `CLIENT_ID`).
const CALLER: &str = "caller-client";

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

/// One instance as the load sees it.
#[derive(Default)]
struct Slot {
    base: Mutex<String>,
    /// The load may send to it.
    usable: AtomicBool,
    /// Requests of the load under way to it.
    inflight: AtomicU64,
}

#[derive(Default)]
struct Load {
    accepted: Mutex<HashMap<String, Vec<String>>>,
    count: AtomicU64,
    ambiguous: AtomicU64,
    slots: [Slot; INSTANCES],
    caller_token: Mutex<String>,
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

/// Sends every message of `lane`, one at a time, each to an instance
/// picked at random among those the load may use, until one accepts it.
async fn run_lane(load: Arc<Load>, http: reqwest::Client, lane: Lane, seed: u64) {
    let mut rng = SplitMix64::new(seed);
    for i in 0..lane.count {
        // The load's pace: about 100 messages a second over 40 lanes, twice
        // the fleet's budget, so that a backlog builds while the faults and
        // the process events happen.
        tokio::time::sleep(Duration::from_millis(300 + rng.next_u64() % 200)).await;
        let text = format!("{}#{i}", lane.name);
        loop {
            let usable: Vec<usize> = (0..INSTANCES)
                .filter(|&s| load.slots[s].usable.load(Ordering::SeqCst))
                .collect();
            if usable.is_empty() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            let slot = &load.slots[usable[(rng.next_u64() % usable.len() as u64) as usize]];
            slot.inflight.fetch_add(1, Ordering::SeqCst);
            if !slot.usable.load(Ordering::SeqCst) {
                slot.inflight.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
            let base = slot.base.lock().unwrap().clone();
            let request = match lane.door {
                Door::Pass => {
                    let token = load.caller_token.lock().unwrap().clone();
                    http.post(format!("{base}{AGENTLESS}"))
                        .header("content-type", "application/json")
                        .header("authorization", format!("Bearer {token}"))
                        .body(agentless(&lane.name, &text))
                }
                Door::Api => http
                    .post(format!("{base}/outbox/v1/messages"))
                    .header("content-type", "application/json")
                    .body(open_body(&lane.name, &text)),
            };
            let sent = request.send().await;
            let outcome = match sent {
                Ok(answer) => {
                    let status = answer.status().as_u16();
                    let body = answer.text().await.unwrap_or_default();
                    Ok((status, body))
                }
                Err(e) => Err(e),
            };
            slot.inflight.fetch_sub(1, Ordering::SeqCst);
            match outcome {
                Ok((200 | 202, _)) => {
                    load.accepted
                        .lock()
                        .unwrap()
                        .entry(lane.name.clone())
                        .or_default()
                        .push(text.clone());
                    load.count.fetch_add(1, Ordering::SeqCst);
                    break;
                }
                // Stopping, or the body was cut: try again.
                Ok((502 | 503, _)) => {}
                Ok((other, body)) => panic!("{text}: unexpected {other}: {body}"),
                Err(e) => {
                    if !e.is_connect() {
                        load.ambiguous.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

fn seed() -> u64 {
    match std::env::var("OUTBOX_FLEET_SEED") {
        Ok(s) => s.parse().expect("OUTBOX_FLEET_SEED is a number"),
        Err(_) => outbox_native::clock::random_seed() % 1_000_000,
    }
}

/// Starts `outbox serve` on the PostgreSQL queue.
fn start(dir: &Path, url: &str, schema: &str, api_base: &str) -> Proxy {
    let toml = dir.join("fleet.toml");
    std::fs::write(&toml, TOML).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_outbox"))
        .arg("serve")
        .arg("--config")
        .arg(&toml)
        .args([
            "--store",
            url,
            "--pg-schema",
            schema,
            "--api-base",
            api_base,
        ])
        .args(["--listen", "127.0.0.1:0", "--client-id", CLIENT_ID])
        .env("OUTBOX_CLIENT_SECRET", CLIENT_SECRET)
        .env_remove("OUTBOX_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the outbox binary runs");
    let stderr = child.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    let _ = reader.read_line(&mut first);
    std::thread::spawn(move || for _ in reader.lines().map_while(Result::ok) {});
    match first.trim().strip_prefix("outbox listening on ") {
        Some(base) => Proxy {
            child,
            base: base.to_owned(),
            stderr: Some(stderr),
        },
        None => {
            let _ = child.wait();
            panic!(
                "outbox serve did not start:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
    }
}

fn signal(proxy: &Proxy, sig: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(proxy.child.id().to_string())
        .status();
}

/// Milliseconds of an emulator time (`2026-12-01T12:00:00.000Z`) since the
/// start of its day.
fn ms_of_day(time: &str) -> Option<u64> {
    let t = time.split('T').nth(1)?.trim_end_matches('Z');
    let mut parts = t.split(':');
    let h: u64 = parts.next()?.parse().ok()?;
    let m: u64 = parts.next()?.parse().ok()?;
    let s: f64 = parts.next()?.parse().ok()?;
    Some((h * 3600 + m * 60) * 1000 + (s * 1000.0) as u64)
}

#[derive(Debug, Clone, Copy)]
enum Act {
    Faults(usize),
    Clear,
    Kill(usize),
    Pause(usize),
    Restart(usize),
}

#[test]
fn three_instances_on_one_queue_lose_nothing_reorder_nothing_and_share_one_budget() {
    let seed = seed();
    println!("fleet test seed: {seed} (replay: OUTBOX_FLEET_SEED={seed})");
    eprintln!("fleet test seed: {seed} (replay: OUTBOX_FLEET_SEED={seed})");
    let mut rng = SplitMix64::new(seed);
    let total: usize = std::env::var("OUTBOX_FLEET_MESSAGES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(2_000);
    let lanes_n = 40;
    let url = pg_throwaway::shared_url().unwrap_or_else(|e| panic!("no test database: {e}"));
    let schema = format!("fleet_{seed}_{}", std::process::id());

    let mut emu_config = Config {
        rate_limit: 1_000_000,
        rate_window: Duration::from_secs(2),
        idempotency: true,
        seed,
        ..Config::ephemeral()
    };
    emu_config
        .clients
        .push(genesys_emulator::ClientCredentials {
            id: CALLER.into(),
            secret: "caller-secret".into(),
        });
    let emu = emulator(emu_config);
    let dir = tempfile::tempdir().unwrap();
    let mut fleet: Vec<Proxy> = (0..INSTANCES)
        .map(|_| start(dir.path(), &url, &schema, &emu.base_url()))
        .collect();

    let mut lanes = Vec::new();
    let mut left = total;
    for l in 0..lanes_n {
        let door = if l % 2 == 0 { Door::Pass } else { Door::Api };
        let count = if l == lanes_n - 1 {
            left
        } else {
            let share = total / lanes_n;
            (share / 2 + (rng.next_u64() as usize % (share + 1))).min(left)
        };
        left -= count;
        let name = match door {
            Door::Pass => format!("+1555{l:04}"),
            Door::Api => format!("open-{l:02}"),
        };
        lanes.push(Lane { name, door, count });
    }

    let phases: Vec<(&str, Faults)> = {
        let mut p = vec![
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
        for i in (1..p.len()).rev() {
            let j = (rng.next_u64() as usize) % (i + 1);
            p.swap(i, j);
        }
        p
    };
    let slice = (total / (phases.len() + 1)) as u64;
    let mut schedule: Vec<(u64, Act)> = (0..phases.len())
        .map(|p| ((p as u64 + 1) * slice, Act::Faults(p)))
        .collect();
    schedule.push(((phases.len() as u64 + 1) * slice, Act::Clear));
    let at = |rng: &mut SplitMix64| 50 + rng.next_u64() % (total as u64 - 150);
    for _ in 0..2 {
        let (when, who) = (at(&mut rng), (rng.next_u64() % INSTANCES as u64) as usize);
        schedule.push((when, Act::Kill(who)));
        let (when, who) = (at(&mut rng), (rng.next_u64() % INSTANCES as u64) as usize);
        schedule.push((when, Act::Pause(who)));
    }
    let (when, who) = (at(&mut rng), (rng.next_u64() % INSTANCES as u64) as usize);
    schedule.push((when, Act::Restart(who)));
    schedule.sort_by_key(|e| e.0);
    println!(
        "{total} messages over {lanes_n} lanes to {INSTANCES} instances; phases {:?}; schedule {schedule:?}",
        phases.iter().map(|p| p.0).collect::<Vec<_>>()
    );

    let load = Arc::new(Load::default());
    for (slot, proxy) in load.slots.iter().zip(&fleet) {
        *slot.base.lock().unwrap() = proxy.base.clone();
        slot.usable.store(true, Ordering::SeqCst);
    }
    *load.caller_token.lock().unwrap() = emu.control().mint_token(Some(CALLER), None).access_token;
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
        let seeds: Vec<u64> = (0..lanes.len()).map(|_| rng.next_u64()).collect();
        runtime.spawn(async move {
            let tasks: Vec<_> = lanes
                .into_iter()
                .zip(seeds)
                .map(|(lane, s)| tokio::spawn(run_lane(load.clone(), http.clone(), lane, s)))
                .collect();
            for t in tasks {
                t.await.expect("a lane's sender");
            }
            load.done.store(true, Ordering::SeqCst);
        })
    };

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
    // Takes an instance out of the load's hands and waits until none of
    // its requests is under way.
    let drain = |i: usize| {
        load.slots[i].usable.store(false, Ordering::SeqCst);
        wait_for("its requests answered", Duration::from_secs(60), || {
            (load.slots[i].inflight.load(Ordering::SeqCst) == 0).then_some(())
        });
    };
    let (mut killed, mut paused) = (0u64, 0u64);
    for (when, act) in schedule {
        wait_count(when);
        let now = load.count.load(Ordering::SeqCst);
        match act {
            Act::Faults(p) => {
                println!("at {now} accepted: faults {}", phases[p].0);
                emu.control().set_faults(phases[p].1.clone()).unwrap();
                if phases[p].0 == "expired tokens" {
                    emu.control().expire_all_tokens();
                    *load.caller_token.lock().unwrap() =
                        emu.control().mint_token(Some(CALLER), None).access_token;
                }
            }
            Act::Clear => {
                println!("at {now} accepted: faults cleared");
                emu.control().clear_faults();
            }
            Act::Kill(i) => {
                println!("at {now} accepted: instance {i} killed (SIGKILL) and restarted");
                load.slots[i].usable.store(false, Ordering::SeqCst);
                let old = std::mem::replace(
                    &mut fleet[i],
                    start(dir.path(), &url, &schema, &emu.base_url()),
                );
                old.kill();
                killed += 1;
                *load.slots[i].base.lock().unwrap() = fleet[i].base.clone();
                load.slots[i].usable.store(true, Ordering::SeqCst);
            }
            Act::Pause(i) => {
                println!("at {now} accepted: instance {i} paused (SIGSTOP) past its lease");
                drain(i);
                signal(&fleet[i], "STOP");
                let until = Instant::now() + LEASE + LEASE / 2;
                wait_for("the lease's end", LEASE * 3, || {
                    (Instant::now() >= until).then_some(())
                });
                signal(&fleet[i], "CONT");
                paused += 1;
                load.slots[i].usable.store(true, Ordering::SeqCst);
                println!(
                    "at {} accepted: instance {i} resumed",
                    load.count.load(Ordering::SeqCst)
                );
            }
            Act::Restart(i) => {
                println!("at {now} accepted: instance {i} restarted (SIGTERM)");
                drain(i);
                let old = std::mem::replace(
                    &mut fleet[i],
                    start(dir.path(), &url, &schema, &emu.base_url()),
                );
                let (status, _) = old.terminate();
                assert!(status.success(), "a graceful stop");
                *load.slots[i].base.lock().unwrap() = fleet[i].base.clone();
                load.slots[i].usable.store(true, Ordering::SeqCst);
            }
        }
    }
    wait_for("the load sent", Duration::from_secs(600), || {
        load.done.load(Ordering::SeqCst).then_some(())
    });
    runtime.block_on(load_task).unwrap();
    emu.control().clear_faults();
    let faults_ended = Instant::now();

    // Drained: any instance answers for the whole queue.
    let client = Client::new();
    let stats_of = |i: usize| client.get(&fleet[i].url("/outbox/v1/stats")).json();
    let backlog = stats_of(0)["queued"].as_u64().unwrap_or(0);
    let bound = Duration::from_secs(60 + backlog * 2 * 60 / RATE_PER_MINUTE);
    wait_for("the backlog drained", bound, || {
        let stats = stats_of(1);
        (stats["pending"] == 0 && stats["inFlight"] == 0 && stats["awaitingToken"] == 0)
            .then_some(())
    });
    let drained_in = faults_ended.elapsed();
    println!(
        "backlog of {backlog} drained in {drained_in:.1?} after the faults ended (bound {bound:?})"
    );
    assert_eq!(
        stats_of(2)["queued"],
        0,
        "every instance sees the one queue"
    );

    let dead = client
        .get(&fleet[2].url("/outbox/v1/dead?limit=10000"))
        .json();
    let dead = dead.as_array().unwrap().clone();
    println!("dead letters reported: {}", dead.len());
    for (n, d) in dead.iter().enumerate() {
        println!(
            "  dead: {} lane {} — {}",
            d["id"], d["lane"], d["lastError"]
        );
        let id = d["id"].as_str().unwrap();
        let revived = client.post(
            &fleet[n % INSTANCES].url(&format!("/outbox/v1/dead/{id}/retry")),
            &[],
            "",
        );
        assert_eq!(revived.status, 200, "{}", revived.body);
    }
    if !dead.is_empty() {
        wait_for("the revived delivered", Duration::from_secs(120), || {
            let stats = stats_of(0);
            (stats["queued"] == 0 && stats["dead"] == 0).then_some(())
        });
    }

    let report = emu.control().messages();
    let requests = emu.control().requests();
    let lost_acks = requests
        .entries
        .iter()
        .filter(|e| e.outcome == genesys_emulator::Outcome::LostAck)
        .count() as u64;
    let ambiguous = load.ambiguous.load(Ordering::SeqCst);
    let accepted = load.accepted.lock().unwrap().clone();
    let (mut pass_dups, mut open_dups, mut stale) = (0u64, 0u64, Vec::new());
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
        let dups = got.iter().filter(|m| m.duplicate_of.is_some()).count() as u64;
        match route {
            RouteKind::OpenInbound => open_dups += dups,
            _ => {
                pass_dups += dups;
                // Every arrival, copies included, in lane order.
                let index = |m: &genesys_emulator::RecordedMessage| {
                    m.text
                        .as_deref()
                        .and_then(|t| t.rsplit('#').next())
                        .and_then(|i| i.parse::<u64>().ok())
                };
                let order: Vec<u64> = got.iter().filter_map(index).collect();
                if let Some(w) = order.windows(2).find(|w| w[1] < w[0]) {
                    stale.push(format!("{lane}: #{} arrived after #{}", w[1], w[0]));
                }
            }
        }
        let missing = texts.iter().filter(|t| !firsts.contains(t)).count();
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

    // The fleet's one budget: its client's requests in any 10 s.
    let mut times: Vec<u64> = requests
        .entries
        .iter()
        .filter(|e| e.client_id.as_deref() == Some(CLIENT_ID) && e.path.starts_with("/api/"))
        .filter_map(|e| ms_of_day(&e.time))
        .collect();
    times.sort_unstable();
    let window = 10_000;
    let (mut most, mut j) = (0usize, 0usize);
    for i in 0..times.len() {
        while times[i] - times[j] >= window {
            j += 1;
        }
        most = most.max(i - j + 1);
    }
    // The budget, plus a second's worth for the gap between a take (on an
    // instance's clock) and an arrival (on the emulator's).
    let budget = (RATE_PER_MINUTE * (window + 1_000) / 60_000 + BURST) as usize;
    let callers = requests
        .entries
        .iter()
        .filter(|e| e.client_id.as_deref() == Some(CALLER))
        .count();
    println!(
        "accepted {accepted_n}; duplicates: open (de-duplicating) {open_dups}, agentless {pass_dups} \
         (lost acks {lost_acks}, kills {killed} and pauses {paused} × batch {BATCH}, client retries {ambiguous}); \
         the fleet's client sent {} requests, at most {most} in 10 s (budget {budget}); callers' own live attempts {callers}",
        times.len()
    );
    assert_eq!(accepted_n, total, "the load's every message accepted once");
    // The fence (a read of the leases right before each send) and the
    // transport's deadline (nothing of a request leaves past its lease less
    // the margin) leave no send through a lease that passed on, paused or
    // not (README, "Outbox for many instances").
    println!("sends through a lease that had passed on: {stale:?}");
    assert!(
        stale.is_empty(),
        "deliveries through a stale lease: {stale:?}"
    );
    assert_eq!(open_dups, 0, "the de-duplicating route saw no duplicate");
    assert!(
        pass_dups <= lost_acks + (killed + paused) * BATCH + ambiguous,
        "duplicates only where an acknowledgement was lost"
    );
    assert!(most <= budget, "the fleet kept within its one budget");
    for proxy in fleet {
        let (status, _) = proxy.terminate();
        assert!(status.success());
    }
}
