//! What `/metrics` shows, in the Prometheus text format (version 0.0.4).
//!
//! Counters are counted from core's events as the engine tells them
//! (`sent`, `retrying` by cause, `dead`), and by the host's doors
//! (enqueues, pass-through results); latencies are timed by the host
//! (enqueue: from a request's arrival to its durable answer; delivery:
//! from an entry's `queued` event to its `sent` event, for entries queued
//! since the host started). The gauges (queued, in flight, dead, held
//! lanes, throttled origins and their rate) are read from core's stats at
//! each scrape. Counting decides nothing.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use outbox_core::entry::EntryId;
use outbox_core::event::Event;
use outbox_core::queue::Stats;
use outbox_core::throttle::Limit;

/// Histogram bucket bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 3600.0,
];

/// A fixed-bucket histogram of durations.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// Counts one duration.
    pub fn observe(&mut self, d: Duration) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS.len()];
        }
        let s = d.as_secs_f64();
        for (i, bound) in BUCKETS.iter().enumerate() {
            if s <= *bound {
                self.counts[i] += 1;
            }
        }
        self.sum += s;
        self.count += 1;
    }

    /// How many were counted.
    pub fn count(&self) -> u64 {
        self.count
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        for (i, bound) in BUCKETS.iter().enumerate() {
            let n = self.counts.get(i).copied().unwrap_or(0);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum {}", self.sum);
        let _ = writeln!(out, "{name}_count {}", self.count);
    }
}

#[derive(Debug, Default)]
struct State {
    enqueued: u64,
    passthrough: BTreeMap<&'static str, u64>,
    sent: u64,
    sent_duplicates: u64,
    retries: BTreeMap<String, u64>,
    dead: u64,
    enqueue_latency: Histogram,
    delivery_latency: Histogram,
    queued_at: HashMap<EntryId, Instant>,
}

/// Entries whose queueing time is remembered for the delivery latency, at
/// most (older ones are simply not timed).
const TIMED_MAX: usize = 1_000_000;

/// The host's metrics. Shared between the engine thread (events) and the
/// server (doors, scrapes).
#[derive(Debug, Default)]
pub struct Metrics(Mutex<State>);

/// The cause a retry is counted under: the status when the server
/// answered, else core's code (`network`, `timeout`, `lease-expired`).
fn cause(e: &outbox_core::classify::LastError) -> String {
    match (e.status, &e.code) {
        (Some(status), _) => status.to_string(),
        (None, Some(code)) => code.clone(),
        (None, None) => "unknown".into(),
    }
}

impl Metrics {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts what an event says.
    pub fn event(&self, event: &Event) {
        let mut s = self.state();
        match event {
            Event::Queued { id, .. } | Event::Revived { id, .. }
                if s.queued_at.len() < TIMED_MAX =>
            {
                s.queued_at.entry(*id).or_insert_with(Instant::now);
            }
            Event::Sent { id, duplicate, .. } => {
                s.sent += 1;
                if *duplicate {
                    s.sent_duplicates += 1;
                }
                if let Some(at) = s.queued_at.remove(id) {
                    s.delivery_latency.observe(at.elapsed());
                }
            }
            Event::Retrying { error, .. } => {
                *s.retries.entry(cause(error)).or_default() += 1;
            }
            Event::Dead { id, .. } => {
                s.dead += 1;
                s.queued_at.remove(id);
            }
            Event::Cancelled { id } | Event::Discarded { id } => {
                s.queued_at.remove(id);
            }
            Event::Purged { .. } => s.queued_at.clear(),
            _ => {}
        }
    }

    /// A request was made durable `took` after it arrived.
    pub fn enqueued(&self, took: Duration) {
        let mut s = self.state();
        s.enqueued += 1;
        s.enqueue_latency.observe(took);
    }

    /// What the pass-through door did with a request: `forwarded`
    /// (answered live), `queued`, `refused`, or `unmatched` (not Outbox's:
    /// proxied as is).
    pub fn passed(&self, result: &'static str) {
        *self.state().passthrough.entry(result).or_default() += 1;
    }

    /// Messages delivered so far.
    pub fn sent(&self) -> u64 {
        self.state().sent
    }

    /// The text format, with the gauges of `stats` read at `now` and
    /// `extra` counters (name, help, value) of the store.
    pub fn render(&self, stats: &Stats, now: u64, extra: &[(&str, &str, u64)]) -> String {
        let s = self.state();
        let mut out = String::new();
        let mut gauge = |name: &str, help: &str, value: String| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        gauge(
            "outbox_queued",
            "Entries queued (pending, in flight, awaiting a token).",
            stats.queued().to_string(),
        );
        gauge(
            "outbox_pending",
            "Entries waiting their turn.",
            stats.pending.to_string(),
        );
        gauge(
            "outbox_in_flight",
            "Entries being sent (their lease stands).",
            stats.in_flight.to_string(),
        );
        gauge(
            "outbox_awaiting_token",
            "Entries waiting for a token.",
            stats.awaiting_token.to_string(),
        );
        gauge("outbox_dead", "Dead letters.", stats.dead.to_string());
        gauge(
            "outbox_lanes",
            "Lanes with queued entries.",
            stats.lanes.to_string(),
        );
        gauge(
            "outbox_held_lanes",
            "Lanes held behind a dead letter.",
            stats.held.len().to_string(),
        );
        gauge(
            "outbox_queued_bytes",
            "Bytes of queued requests.",
            stats.bytes.to_string(),
        );
        gauge(
            "outbox_oldest_age_seconds",
            "Age of the oldest queued entry.",
            stats
                .oldest_created_at
                .map_or(0.0, |t| now.saturating_sub(t) as f64 / 1000.0)
                .to_string(),
        );
        gauge(
            "outbox_paused_origins",
            "Origins paused by a rate limit.",
            stats.paused.len().to_string(),
        );
        let _ = writeln!(
            out,
            "# HELP outbox_throttled Origins the herd throttle limits (1), by reason.\n# TYPE outbox_throttled gauge"
        );
        for (origin, limit) in &stats.throttled {
            let _ = writeln!(
                out,
                "outbox_throttled{{origin=\"{}\",reason=\"{}\"}} 1",
                label(origin),
                limit.reason()
            );
        }
        let _ = writeln!(
            out,
            "# HELP outbox_throttle_rate_per_minute The rate the herd throttle allows an origin that sheds load.\n# TYPE outbox_throttle_rate_per_minute gauge"
        );
        for (origin, limit) in &stats.throttled {
            if let Limit::Shedding { rate, .. } = limit {
                let _ = writeln!(
                    out,
                    "outbox_throttle_rate_per_minute{{origin=\"{}\"}} {}",
                    label(origin),
                    *rate as f64 / 1000.0
                );
            }
        }
        let mut counter = |name: &str, help: &str, value: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        counter(
            "outbox_enqueued_total",
            "Requests made durable by this process.",
            s.enqueued,
        );
        counter("outbox_sent_total", "Entries delivered.", s.sent);
        counter(
            "outbox_sent_duplicates_total",
            "Entries a 409 said the server already had.",
            s.sent_duplicates,
        );
        counter("outbox_dead_total", "Entries made dead letters.", s.dead);
        for (name, help, value) in extra {
            counter(name, help, *value);
        }
        let _ = writeln!(
            out,
            "# HELP outbox_retries_total Attempts that failed and will be retried, by cause (status, or network/timeout/lease-expired).\n# TYPE outbox_retries_total counter"
        );
        for (cause, n) in &s.retries {
            let _ = writeln!(
                out,
                "outbox_retries_total{{cause=\"{}\"}} {n}",
                label(cause)
            );
        }
        let _ = writeln!(
            out,
            "# HELP outbox_passthrough_total Requests on the pass-through door, by what became of them.\n# TYPE outbox_passthrough_total counter"
        );
        for (result, n) in &s.passthrough {
            let _ = writeln!(out, "outbox_passthrough_total{{result=\"{result}\"}} {n}");
        }
        s.enqueue_latency.render(
            &mut out,
            "outbox_enqueue_seconds",
            "From a request's arrival to its durable answer.",
        );
        s.delivery_latency.render(
            &mut out,
            "outbox_delivery_seconds",
            "From an entry's queueing to its delivery.",
        );
        out
    }
}

/// A label value, escaped.
fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
