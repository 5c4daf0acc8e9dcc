//! Property tests: the real engine and memory store against the simulated
//! server with random faults, crashes and token expiry, under a virtual
//! clock. After every scenario the faults clear and the queue drains; then
//! the design's invariants must hold:
//!
//! (a) every enqueued entry ends delivered or dead with a reason — none lost;
//! (b) per lane, first deliveries arrive in enqueue order;
//! (c) with a server that honours idempotency keys, nothing is delivered twice;
//! (d) no origin gets more than rate × window + burst requests in any window;
//! (e) after a 429 with Retry-After t, nothing is sent to that origin before t;
//! (f) after recovery, while an origin's herd throttle limits it, a flush
//!     sends it no more requests than the throttle allowed when it began —
//!     unless the flush's accepted answers could raise the throttle's rate
//!     to the pacer's, where it switches itself off by design and the
//!     pacer alone limits (checked by (d)).
//! (g) no lane has a hole: a dead head holds its lane, so once the user
//!     revives the dead letters, every entry is delivered (and, by (b), in
//!     order).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use common::{Harness, config};
use outbox_core::clock::Clock;
use outbox_driver::sim::{SimFaults, SimOutcome, SimServer, SimTokens, run_until_stalled};
use outbox_driver::store::Store;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Submit {
        lane: usize,
        count: usize,
    },
    Flush,
    /// A flush holding the origin-wide lock: it takes over standing leases.
    FlushExclusive,
    Advance(u64),
    Faults(SimFaults),
    Crash {
        after: u32,
    },
    ExpireTokens,
    /// The page's `online` event.
    NetworkBack,
}

fn faults(honour: bool) -> impl Strategy<Value = SimFaults> {
    (
        prop::bool::weighted(0.2),
        0.0..0.5f64,
        0.0..0.3f64,
        0.0..0.3f64,
        0.0..0.05f64,
        0.0..0.2f64,
        prop::option::weighted(0.4, (3u32..40, Just(60_000u64))),
        prop::option::weighted(0.3, (0.0..0.2f64, 0u64..120)),
    )
        .prop_map(
            move |(outage, net, lost, e5xx, perm, unauth, rate_limit, random_429)| SimFaults {
                outage,
                network_error_rate: net,
                lost_ack_rate: lost,
                server_error_rate: e5xx,
                permanent_error_rate: perm,
                unauthorized_rate: unauth,
                unauthorized_next: 0,
                rate_limit,
                random_429,
                honour_idempotency: honour,
            },
        )
}

fn step(honour: bool, lanes: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..lanes, 1usize..6).prop_map(|(lane, count)| Step::Submit { lane, count }),
        3 => Just(Step::Flush),
        1 => Just(Step::FlushExclusive),
        3 => prop_oneof![0u64..5_000, 5_000u64..120_000, 120_000u64..3_600_000].prop_map(Step::Advance),
        2 => faults(honour).prop_map(Step::Faults),
        1 => (0u32..6).prop_map(|after| Step::Crash { after }),
        1 => Just(Step::ExpireTokens),
        1 => Just(Step::NetworkBack),
    ]
}

fn scenario() -> impl Strategy<Value = (u64, bool, usize, Vec<Step>)> {
    (any::<u64>(), any::<bool>(), 1usize..6).prop_flat_map(|(seed, honour, lanes)| {
        (
            Just(seed),
            Just(honour),
            Just(lanes),
            prop::collection::vec(step(honour, lanes), 1..60),
        )
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn the_outbox_invariants_hold((seed, honour, _lanes, steps) in scenario()) {
        let mut h = Harness::new(seed);
        h.server.set_faults(SimFaults { honour_idempotency: honour, ..SimFaults::default() });
        let mut submitted: Vec<(String, String, String)> = Vec::new(); // (lane, id, key)
        let mut crashed_ticks: Vec<(u64, u64)> = Vec::new();
        let mut restarts = 0u64;
        for step in &steps {
            match step {
                Step::Submit { lane, count } => {
                    for i in 0..*count {
                        let lane = format!("lane{lane}");
                        let e = h.submit(&lane, &format!("m{}-{i}", submitted.len()));
                        submitted.push((lane, e.id.to_string(), e.idempotency_key.clone()));
                    }
                }
                Step::Flush => {
                    h.flush();
                }
                Step::FlushExclusive => {
                    h.flush_exclusive();
                }
                Step::Advance(ms) => h.clock.advance(*ms),
                Step::Faults(f) => h.server.set_faults(f.clone()),
                Step::ExpireTokens => h.server.expire_tokens(),
                Step::NetworkBack => {
                    run_until_stalled(h.engine.network_back()).unwrap().unwrap();
                }
                Step::Crash { after } => {
                    let start = h.server.tick();
                    h.transport.crash_after(*after);
                    let finished = run_until_stalled(h.engine.flush());
                    if finished.is_none() {
                        crashed_ticks.push((start, h.server.tick()));
                        restarts += 1;
                        let tokens = SimTokens::new(h.server.clone());
                        h.restart(tokens, seed ^ restarts);
                    } else {
                        h.transport.crash_after(u32::MAX); // disarm
                    }
                }
            }
        }
        // Recovery: faults clear (limits and idempotency stay), the queue drains.
        let last = h.server.faults();
        h.transport.crash_after(u32::MAX);
        h.server.set_faults(SimFaults { rate_limit: last.rate_limit, honour_idempotency: honour, ..SimFaults::default() });
        let mut revived = 0usize;
        let cfg = config();
        let allowance = |h: &Harness<SimTokens>| {
            run_until_stalled(h.store.schedule()).unwrap().unwrap().allowance(SimServer::ORIGIN, &cfg.pacer, h.clock.now())
        };
        for _ in 0..20_000 {
            let stats = h.stats();
            if stats.queued() == 0 && stats.dead == 0 {
                break;
            }
            // The user acts on dead letters (what a held lane waits for).
            if stats.queued() == 0 || !stats.held.is_empty() {
                for e in h.dead() {
                    prop_assert!(run_until_stalled(h.engine.revive(e.id)).unwrap().unwrap().is_some());
                    revived += 1;
                }
            }
            let (before, sent_before) = (allowance(&h), h.server.requests().len());
            let report = h.flush();
            // (f) the throttle's allowance holds (while it limits), unless
            // the flush's own answers loosened it (a clean answer lowers
            // the shed share, and the rate rises with it).
            if let (Some(allowed), Some(_)) = (before, allowance(&h)) {
                let sent = h.server.requests().len() - sent_before;
                let loosened = h.server.requests()[sent_before..].iter().any(|r| {
                    matches!(r.outcome, SimOutcome::Delivered | SimOutcome::Duplicate { .. })
                });
                prop_assert!(sent as u64 <= allowed || loosened, "{sent} requests in one flush, the throttle allowed {allowed}");
            }
            if let Some(at) = report.next_wake {
                h.clock.set(at.max(h.clock.now()));
            } else if h.stats().queued() > 0 {
                // Only token waits have no wake time; SimTokens answers at once.
                h.clock.advance(1_000);
            }
        }
        prop_assert_eq!(h.stats().queued(), 0, "the queue must drain once faults clear");
        // (g) no hole: every entry was delivered in the end.
        prop_assert!(h.dead().is_empty(), "dead letters left after {revived} revivals");
        prop_assert!(h.stats().held.is_empty(), "a hold outlived its dead letter");

        let counts = h.server.delivery_counts();
        let dead: HashMap<String, _> = h.dead().into_iter().map(|e| (e.id.to_string(), e)).collect();
        // (a) none lost.
        for (_, id, key) in &submitted {
            let delivered = counts.contains_key(key);
            let dead_with_reason = dead.get(id).is_some_and(|e| e.last_error.is_some());
            prop_assert!(delivered || dead_with_reason, "entry {id} was lost");
        }
        // (b) per lane, first deliveries in enqueue order.
        let order: HashMap<&str, usize> = submitted.iter().enumerate().map(|(i, (_, _, k))| (k.as_str(), i)).collect();
        let mut last_per_lane: HashMap<String, usize> = HashMap::new();
        for (lane, key) in h.server.first_deliveries() {
            let i = order[key.as_str()];
            if let Some(prev) = last_per_lane.insert(lane.clone(), i) {
                prop_assert!(prev < i, "lane {lane}: {key} (#{i}) arrived after #{prev}");
            }
        }
        // (c) exactly once where the server honours keys.
        if honour {
            for (key, n) in &counts {
                prop_assert_eq!(*n, 1, "{} delivered {} times", key, n);
            }
        }
        let requests = h.server.requests();
        // (d) pacing: rate × window + burst in every window.
        let cfg = config();
        let mut times: Vec<u64> = requests.iter().map(|r| r.at).collect();
        times.sort_unstable();
        for window in [1_000u64, 10_000, 60_000, 600_000] {
            let bound = u64::from(cfg.pacer.rate_per_minute) * window / 60_000 + u64::from(cfg.pacer.burst);
            let mut j = 0;
            for i in 0..times.len() {
                while times[j] + window <= times[i] {
                    j += 1;
                }
                prop_assert!((i - j + 1) as u64 <= bound, "{} requests within {window} ms (bound {bound})", i - j + 1);
            }
        }
        // (e) nothing before Retry-After (429s the engine lived to record).
        let in_crash = |tick: u64| crashed_ticks.iter().any(|(s, e)| tick > *s && tick <= *e);
        for r in &requests {
            let SimOutcome::RateLimited { retry_after_ms } = r.outcome else { continue };
            if r.answered_tick == 0 || in_crash(r.answered_tick) {
                continue;
            }
            for later in requests.iter().filter(|q| q.tick > r.answered_tick && q.origin == r.origin) {
                prop_assert!(
                    later.at >= r.at + retry_after_ms,
                    "request at {} sent {} ms after a 429 that asked for {} ms",
                    later.at, later.at - r.at, retry_after_ms
                );
            }
        }
    }
}

/// The crash window bookkeeping must be right for (e) to mean anything: a
/// scenario with a 429 followed by an immediate flush must send nothing.
#[test]
fn a_429_followed_by_immediate_flushes_sends_nothing_more() {
    let h = Harness::new(99);
    h.server.set_faults(SimFaults {
        random_429: Some((1.0, 30)),
        ..SimFaults::default()
    });
    h.submit("a", "x");
    h.flush();
    h.server.set_faults(SimFaults::default());
    for _ in 0..5 {
        h.flush();
    }
    assert_eq!(h.server.requests().len(), 1);
    h.clock.advance(30_000);
    h.drain(10);
    assert_eq!(h.server.first_deliveries().len(), 1);
}
