//! The herd simulation: N clients, each holding M messages written during
//! a network outage of T minutes, all coming back at once to one server
//! with a global capacity and per-token limits. Native, deterministic
//! (seeded), in virtual time, event-driven over the clients' next wake-up
//! so that 100,000 clients stay fast.
//!
//! Four strategies:
//!
//! * [`Strategy::SeedBatch`] — tutorial `000`: on `online`, replay the queue
//!   in batches of 5 sent one after another; `429` → sleep `Retry-After`
//!   (5 s without one); `5xx` → sleep 2ⁿ s capped at 30 s, no jitter.
//! * [`Strategy::SeedJitter`] — tutorial `001`: a 5 s poll and the `online`
//!   event each send every due message, one after another; backoff
//!   2 s × 2ⁿ + up to 1 s jitter capped at 60 s; `429` → `Retry-After`
//!   (30 s without one); the sixth try drops the message.
//! * [`Strategy::Workbox`] — Workbox background sync: on `sync`, replay one
//!   request at a time, deleting each before sending it; any HTTP answer is
//!   success; a network error puts it back and fails the sync, which
//!   Chromium retries after 5 min then 15 min, and gives up after 3 tries.
//! * [`Strategy::Outbox`] — the real [`Engine`](outbox_driver::engine::Engine)
//!   with its default policy, one engine and memory store per client; also
//!   on its timers alone, and with its herd throttle switched off (the
//!   engine as it was before it had one).
//!
//! Every client learns that the network is back within a detection delay
//! (the browser's `online` event, or Background Sync firing): each
//! strategy's best case.

mod clients;
mod outbox;
pub mod server;

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use outbox_core::clock::{Millis, Random, SplitMix64};
use serde::{Deserialize, Serialize};

use server::{Server, ServerConfig};

/// Where virtual time starts (the outage begins here).
pub const T0: Millis = 1_700_000_000_000;

/// One herd scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Scenario {
    /// A short name for tables.
    pub name: String,
    /// Clients (N).
    pub clients: usize,
    /// Messages each client writes during the outage (M).
    pub messages: usize,
    /// Conversations (lanes) per client; message `k` goes to lane `k % lanes`.
    pub lanes: usize,
    /// Outage length (T).
    pub outage_ms: Millis,
    /// A flaky period after the outage, before recovery: short outages
    /// (2–8 s, 5–20 s apart) and a share of requests failed with `5xx`.
    #[serde(default)]
    pub flaky_ms: Millis,
    /// The share of requests failed with `500`/`502`/`503`/`504` during
    /// the flaky period, in percent.
    #[serde(default)]
    pub flaky_error_percent: u32,
    /// Server capacity, requests per second.
    pub capacity_per_s: u32,
    /// Per-token limit: requests per window.
    pub token_limit: u32,
    /// Per-token window.
    pub token_window_ms: Millis,
    /// Lost-acknowledgement rate.
    pub lost_ack_rate: f64,
    /// Round trip.
    pub rtt_ms: Millis,
    /// Round-trip jitter (uniform, added).
    pub rtt_jitter_ms: Millis,
    /// Clients learn of the recovery within this long (uniform).
    pub detect_ms: Millis,
    /// The simulation stops this long after recovery.
    pub horizon_ms: Millis,
    /// Seed of everything random.
    pub seed: u64,
}

impl Scenario {
    /// The strategies run through this scenario: all of them, but for
    /// the herd of 100,000 clients (the full mode only) the engine
    /// without its herd throttle, the slowest of all to simulate (9 of
    /// the full run's minutes, measured on 2026-11-30) for a comparison
    /// the herds of 1,000 and 10,000 already make.
    pub fn strategies(&self) -> Vec<Strategy> {
        Strategy::ALL
            .into_iter()
            .filter(|s| self.clients < 100_000 || *s != Strategy::OutboxUnthrottled)
            .collect()
    }

    /// The standard herd: `clients` clients, 10 messages each over 3
    /// conversations, a 10-minute outage, a service that takes 2,000
    /// requests a second, Genesys's 300 requests a minute per token,
    /// 0.1 % lost acknowledgements, 100–150 ms round trips.
    pub fn herd(clients: usize) -> Self {
        Self {
            name: format!("herd-{clients}"),
            clients,
            messages: 10,
            lanes: 3,
            outage_ms: 10 * 60_000,
            flaky_ms: 0,
            flaky_error_percent: 0,
            capacity_per_s: 2_000,
            token_limit: 300,
            token_window_ms: 60_000,
            lost_ack_rate: 0.001,
            rtt_ms: 100,
            rtt_jitter_ms: 50,
            detect_ms: 2_000,
            horizon_ms: 2 * 3_600_000,
            seed: 7,
        }
    }

    /// Heavy senders: `clients` clients holding `messages` messages each
    /// (more than the per-token limit allows in a minute).
    pub fn backlog(clients: usize, messages: usize) -> Self {
        Self {
            name: format!("backlog-{clients}x{messages}"),
            messages,
            lanes: 20,
            ..Self::herd(clients)
        }
    }

    /// One client after a short blip: `runs` independent clients (they
    /// share nothing the server could run short of: 10 messages each, far
    /// under its capacity), 10 messages over 3 conversations, a 30-second
    /// outage.
    pub fn blip(runs: usize) -> Self {
        Self {
            name: format!("blip-{runs}"),
            outage_ms: 30_000,
            horizon_ms: 10 * 60_000,
            ..Self::herd(runs)
        }
    }

    /// One client after a 10-minute outage: `runs` independent clients,
    /// as [`blip`](Self::blip) but for the outage's length.
    pub fn lone(runs: usize) -> Self {
        Self {
            name: format!("lone-{runs}"),
            horizon_ms: 10 * 60_000,
            ..Self::herd(runs)
        }
    }

    /// A flaky network before recovery: no long outage, but two minutes of
    /// short outages and 30 % of the requests that get through failed with
    /// `5xx` (as the emulator's error fault: `500`, `502`, `503`, `504`),
    /// while `clients` clients write their messages. `runs` independent
    /// clients (one client, many times) or a herd, by `clients`.
    pub fn flaky(clients: usize) -> Self {
        Self {
            name: format!("flaky-{clients}"),
            outage_ms: 0,
            flaky_ms: 2 * 60_000,
            flaky_error_percent: 30,
            horizon_ms: 30 * 60_000,
            ..Self::herd(clients)
        }
    }

    /// The time the server needs at full capacity: N·M ÷ capacity.
    pub fn ideal_ms(&self) -> Millis {
        (self.clients * self.messages) as u64 * 1000 / u64::from(self.capacity_per_s.max(1))
    }

    fn recover_at(&self) -> Millis {
        T0 + self.outage_ms + self.flaky_ms
    }

    /// The flaky period's outage windows (seeded; the same for every
    /// client: the network of a region, or the service, is flaky).
    fn flaky_outages(&self) -> Vec<(Millis, Millis)> {
        let mut rng = SplitMix64::new(self.seed ^ 0xf1a4);
        let (from, end) = (T0 + self.outage_ms, self.recover_at());
        let mut out = Vec::new();
        let mut t = from + 5_000 + rng.below_or_eq(15_000);
        while t < end {
            let stop = (t + 2_000 + rng.below_or_eq(6_000)).min(end);
            out.push((t, stop));
            t = stop + 5_000 + rng.below_or_eq(15_000);
        }
        out
    }
}

/// A retry strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Strategy {
    /// Tutorial `000`.
    SeedBatch,
    /// Tutorial `001`.
    SeedJitter,
    /// Workbox background sync.
    Workbox,
    /// Outbox's engine.
    Outbox,
    /// Outbox's engine on its timers alone: the page does not forward the
    /// `online` event, so nothing is made due at the moment of recovery.
    OutboxTimers,
    /// Outbox's engine with the herd throttle off (probe, spread, rate
    /// cuts): the engine before it had one, `online` forwarded.
    OutboxUnthrottled,
}

impl Strategy {
    /// All of them, in table order.
    pub const ALL: [Strategy; 6] = [
        Strategy::SeedBatch,
        Strategy::SeedJitter,
        Strategy::Workbox,
        Strategy::Outbox,
        Strategy::OutboxTimers,
        Strategy::OutboxUnthrottled,
    ];

    /// A label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Strategy::SeedBatch => "seed 000 (batches of 5, 2ⁿ s ≤ 30 s)",
            Strategy::SeedJitter => "seed 001 (2 s·2ⁿ + jitter ≤ 60 s, 5 retries)",
            Strategy::Workbox => "Workbox-like (serial, on sync)",
            Strategy::Outbox => "Outbox (real engine)",
            Strategy::OutboxTimers => "Outbox, timers only (no `online` signal)",
            Strategy::OutboxUnthrottled => "Outbox, herd throttle off (the engine before it)",
        }
    }

    /// A short key.
    pub fn key(self) -> &'static str {
        match self {
            Strategy::SeedBatch => "seed000",
            Strategy::SeedJitter => "seed001",
            Strategy::Workbox => "workbox",
            Strategy::Outbox => "outbox",
            Strategy::OutboxTimers => "outbox-timers",
            Strategy::OutboxUnthrottled => "outbox-unthrottled",
        }
    }
}

/// What one strategy did in one scenario.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HerdResult {
    /// The scenario.
    pub scenario: Scenario,
    /// The strategy.
    pub strategy: Strategy,
    /// Messages written (N × M).
    pub messages: u64,
    /// Messages the server recorded at least once.
    pub delivered: u64,
    /// Messages never recorded (`dropped + stranded + dead_letters`).
    pub lost: u64,
    /// Lost messages the client threw away (gave up, or took a non-2xx as success).
    pub dropped: u64,
    /// Lost messages still queued at the horizon.
    pub stranded: u64,
    /// Outbox dead letters (kept, reported, not delivered).
    pub dead_letters: u64,
    /// Extra recordings of already recorded messages.
    pub duplicates: u64,
    /// Time from recovery to first recording, median (delivered only).
    pub p50_ms: Millis,
    /// The same, 99th percentile.
    pub p99_ms: Millis,
    /// The same, the last one.
    pub last_ms: Millis,
    /// Time from recovery to each client's first recorded message, median
    /// over the clients that got one through.
    #[serde(default)]
    pub first_p50_ms: Millis,
    /// Busiest second after recovery: arrivals ÷ capacity.
    pub peak_load: f64,
    /// `429` answers.
    pub too_many: u64,
    /// `503` answers (shed over capacity).
    pub shed: u64,
    /// Requests that reached the server.
    pub requests: u64,
    /// Attempts while the network was down (they never reached it).
    pub offline_attempts: u64,
    /// Arrivals per second after recovery (for the plot).
    pub arrivals_per_s: Vec<u32>,
    /// First recordings per second after recovery (for the plot).
    pub delivered_per_s: Vec<u32>,
    /// Wall-clock time the simulation took.
    pub wall_ms: u64,
}

/// What each client's accounting tells the runner at the end.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientEnd {
    /// Messages thrown away without delivery being known.
    pub dropped: u64,
    /// Messages still queued.
    pub queued: u64,
    /// Dead letters.
    pub dead: u64,
}

/// Facts every client is built from.
pub struct ClientSetup {
    /// The client's index.
    pub index: usize,
    /// Its first message's global index.
    pub first_message: usize,
    /// When it writes each of its messages (sorted).
    pub writes: Vec<Millis>,
    /// When it first learns that the network is back.
    pub online_at: Millis,
    /// Every time it learns so (the end of each outage of a flaky period,
    /// then the recovery), sorted; the first is `online_at`.
    pub online_events: Vec<Millis>,
    /// Its own seed.
    pub seed: u64,
}

/// A simulated client: handles everything due at `now`, returns when it
/// next needs to run.
pub trait Client {
    /// Runs what is due at `now`.
    fn wake(&mut self, now: Millis, server: &mut Server) -> Option<Millis>;
    /// Final accounting.
    fn end(&self) -> ClientEnd;
}

fn setups(s: &Scenario) -> Vec<ClientSetup> {
    let mut rng = SplitMix64::new(s.seed);
    let flaky = s.flaky_outages();
    let written_over = (s.outage_ms + s.flaky_ms).saturating_sub(1);
    (0..s.clients)
        .map(|index| {
            let mut writes: Vec<Millis> = (0..s.messages)
                .map(|_| T0 + rng.below_or_eq(written_over))
                .collect();
            writes.sort_unstable();
            let mut online_events: Vec<Millis> = flaky
                .iter()
                .map(|(_, end)| *end)
                .chain([s.recover_at()])
                .map(|back| back + rng.below_or_eq(s.detect_ms))
                .collect();
            online_events.sort_unstable();
            ClientSetup {
                index,
                first_message: index * s.messages,
                writes,
                online_at: online_events[0],
                online_events,
                seed: rng.next_u64(),
            }
        })
        .collect()
}

/// Runs one strategy through one scenario.
pub fn run(scenario: &Scenario, strategy: Strategy) -> HerdResult {
    let started = Instant::now();
    let config = ServerConfig {
        capacity_per_s: scenario.capacity_per_s,
        token_limit: scenario.token_limit,
        token_window_ms: scenario.token_window_ms,
        lost_ack_rate: scenario.lost_ack_rate,
        rtt_ms: scenario.rtt_ms,
        rtt_jitter_ms: scenario.rtt_jitter_ms,
        offline_fail_ms: 5,
        outage_from: T0,
        recover_at: scenario.recover_at(),
        flaky: server::Flaky {
            from: if scenario.flaky_ms > 0 {
                T0 + scenario.outage_ms
            } else {
                0
            },
            outages: scenario.flaky_outages(),
            error_percent: scenario.flaky_error_percent,
        },
    };
    let total = scenario.clients * scenario.messages;
    let mut server = Server::new(config, scenario.clients, total, scenario.seed ^ 0x5eed);
    let setups = setups(scenario);
    let clock = outbox_core::clock::ManualClock::new(T0);
    let ends = match strategy {
        Strategy::SeedBatch => drive(
            setups.into_iter().map(clients::SeedBatch::new).collect(),
            &mut server,
            scenario,
            &clock,
        ),
        Strategy::SeedJitter => drive(
            setups.into_iter().map(clients::SeedJitter::new).collect(),
            &mut server,
            scenario,
            &clock,
        ),
        Strategy::Workbox => drive(
            setups.into_iter().map(clients::Workbox::new).collect(),
            &mut server,
            scenario,
            &clock,
        ),
        Strategy::Outbox | Strategy::OutboxTimers | Strategy::OutboxUnthrottled => {
            let online_signal = strategy != Strategy::OutboxTimers;
            let throttle = strategy != Strategy::OutboxUnthrottled;
            let shared = outbox::Shared::new(clock.clone(), scenario, online_signal, throttle);
            drive(
                setups
                    .into_iter()
                    .map(|s| outbox::OutboxClient::new(s, &shared))
                    .collect(),
                &mut server,
                scenario,
                &clock,
            )
        }
    };
    summarize(scenario, strategy, &server, ends, started)
}

/// The scenarios of a run. Quick: the herd at 1,000 and 10,000 clients,
/// 200 heavy senders and one client after a blip; full: the herd also at
/// 100,000 clients.
pub fn scenarios(quick: bool) -> Vec<Scenario> {
    let mut herds = vec![Scenario::herd(1_000), Scenario::herd(10_000)];
    if !quick {
        herds.push(Scenario::herd(100_000));
    }
    herds.extend([
        Scenario::backlog(200, 400),
        Scenario::blip(100),
        Scenario::lone(100),
        Scenario::flaky(100),
        Scenario::flaky(10_000),
    ]);
    herds
}

/// Runs every strategy through every scenario of the run (or only the one
/// named `only`), calling `progress` after each.
pub fn run_all(
    quick: bool,
    only: Option<&str>,
    mut progress: impl FnMut(&HerdResult),
) -> Vec<HerdResult> {
    let mut list = scenarios(quick);
    if let Some(n) = only
        .and_then(|o| o.strip_prefix("herd-"))
        .and_then(|n| n.parse().ok())
        && !list.iter().any(|s| s.name == format!("herd-{n}"))
    {
        list.push(Scenario::herd(n));
    }
    let jobs: Vec<(Scenario, Strategy)> = list
        .into_iter()
        .filter(|s| only.is_none_or(|o| o == s.name))
        .flat_map(|s| s.strategies().into_iter().map(move |k| (s.clone(), k)))
        .collect();
    // Each run is a simulation in virtual time: what it measures does not
    // depend on the wall clock, so runs go on every core at once (the
    // N = 100,000 runs take minutes each). The biggest start first, so
    // that the small ones fill in behind them; results keep the list's order.
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| core::cmp::Reverse(jobs[i].0.clients * jobs[i].0.messages));
    let threads = std::env::var("OUTBOX_HERD_THREADS")
        .ok()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from))
        .clamp(1, jobs.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<Option<HerdResult>> = jobs.iter().map(|_| None).collect();
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..threads {
            let tx = tx.clone();
            let (jobs, order, next) = (&jobs, &order, &next);
            scope.spawn(move || {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(&i) = order.get(k) else { break };
                    let (scenario, strategy) = &jobs[i];
                    if tx.send((i, run(scenario, *strategy))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        for (i, r) in rx {
            progress(&r);
            out[i] = Some(r);
        }
    });
    out.into_iter().flatten().collect()
}

/// The event loop: a heap of (time, client); a client's stale entries
/// (it rescheduled since) are skipped.
fn drive<C: Client>(
    mut clients: Vec<C>,
    server: &mut Server,
    scenario: &Scenario,
    clock: &outbox_core::clock::ManualClock,
) -> Vec<ClientEnd> {
    let end = scenario.recover_at() + scenario.horizon_ms;
    let mut heap = BinaryHeap::with_capacity(clients.len());
    let mut scheduled = vec![Millis::MAX; clients.len()];
    for (i, c) in clients.iter_mut().enumerate() {
        if let Some(t) = c.wake(T0, server) {
            scheduled[i] = t;
            heap.push(Reverse((t, i)));
        }
    }
    let mut same_time = 0u32;
    let mut last = 0;
    while let Some(Reverse((t, i))) = heap.pop() {
        if scheduled[i] != t {
            continue;
        }
        if t > end {
            break;
        }
        if t == last {
            same_time += 1;
            assert!(
                same_time < 50_000_000,
                "the simulation makes no progress at {t}"
            );
        } else {
            same_time = 0;
            last = t;
        }
        clock.set(t);
        let next = clients[i].wake(t, server);
        scheduled[i] = next.unwrap_or(Millis::MAX);
        if let Some(n) = next {
            heap.push(Reverse((n.max(t), i)));
            scheduled[i] = n.max(t);
        }
    }
    clients.iter().map(Client::end).collect()
}

fn summarize(
    scenario: &Scenario,
    strategy: Strategy,
    server: &Server,
    ends: Vec<ClientEnd>,
    started: Instant,
) -> HerdResult {
    let recover = scenario.recover_at();
    let mut delays: Vec<Millis> = server
        .first_at
        .iter()
        .filter(|t| **t != Millis::MAX)
        .map(|t| t.saturating_sub(recover))
        .collect();
    delays.sort_unstable();
    let pct = |p: f64| -> Millis {
        if delays.is_empty() {
            return 0;
        }
        let i = ((delays.len() as f64 * p).ceil() as usize).clamp(1, delays.len()) - 1;
        delays[i]
    };
    let mut delivered_per_s = vec![0u32; server.arrivals_per_s.len().max(1)];
    for d in &delays {
        let s = (*d / 1000) as usize;
        if delivered_per_s.len() <= s {
            delivered_per_s.resize(s + 1, 0);
        }
        delivered_per_s[s] += 1;
    }
    let m = scenario.messages.max(1);
    let mut firsts: Vec<Millis> = server
        .first_at
        .chunks(m)
        .filter_map(|c| c.iter().copied().min())
        .filter(|t| *t != Millis::MAX)
        .map(|t| t.saturating_sub(recover))
        .collect();
    firsts.sort_unstable();
    let first_p50_ms = firsts
        .get(firsts.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(0);
    let messages = server.recorded.len() as u64;
    let delivered = delays.len() as u64;
    let recordings: u64 = server.recorded.iter().map(|r| u64::from(*r)).sum();
    let (queued, dead) = ends
        .iter()
        .fold((0, 0), |(q, d), e| (q + e.queued, d + e.dead));
    let lost = messages - delivered;
    // Messages a client dropped after the server had in fact recorded them
    // (a lost acknowledgement) are delivered, not lost: count losses from
    // the server's side and split them by what the clients still hold.
    let stranded = queued.min(lost);
    let dead_letters = dead.min(lost - stranded);
    let peak = server.arrivals_per_s.iter().copied().max().unwrap_or(0);
    HerdResult {
        scenario: scenario.clone(),
        strategy,
        messages,
        delivered,
        lost,
        dropped: lost - stranded - dead_letters,
        stranded,
        dead_letters,
        duplicates: recordings - delivered,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        last_ms: delays.last().copied().unwrap_or(0),
        first_p50_ms,
        peak_load: f64::from(peak) / f64::from(scenario.capacity_per_s.max(1)),
        too_many: server.too_many,
        shed: server.shed,
        requests: server.requests,
        offline_attempts: server.offline_attempts,
        arrivals_per_s: server.arrivals_per_s.clone(),
        delivered_per_s,
        wall_ms: started.elapsed().as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> Scenario {
        Scenario {
            horizon_ms: 3_600_000,
            outage_ms: 120_000,
            ..Scenario::herd(200)
        }
    }

    #[test]
    fn every_strategy_runs_and_accounts_for_every_message() {
        for strategy in Strategy::ALL {
            let r = run(&small(), strategy);
            assert_eq!(r.messages, 2_000, "{strategy:?}");
            assert_eq!(
                r.delivered + r.lost,
                r.messages,
                "{strategy:?}: {} + {}",
                r.delivered,
                r.lost
            );
            assert_eq!(r.lost, r.dropped + r.stranded + r.dead_letters);
            assert!(r.requests >= r.delivered, "{strategy:?}");
        }
    }

    #[test]
    fn only_the_largest_herd_goes_without_the_unthrottled_engine() {
        assert_eq!(Scenario::herd(10_000).strategies(), Strategy::ALL);
        let largest = Scenario::herd(100_000).strategies();
        assert_eq!(largest.len(), Strategy::ALL.len() - 1);
        assert!(!largest.contains(&Strategy::OutboxUnthrottled));
        assert!(largest.contains(&Strategy::Outbox));
    }

    #[test]
    fn outbox_loses_nothing_and_is_deterministic() {
        let a = run(&small(), Strategy::Outbox);
        assert_eq!(a.lost, 0);
        let b = run(&small(), Strategy::Outbox);
        assert_eq!((a.requests, a.p99_ms), (b.requests, b.p99_ms));
    }
}
