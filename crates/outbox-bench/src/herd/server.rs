//! The herd's server: one Genesys-like service shared by every simulated
//! client, with a global capacity (load beyond it is shed with `503`), a
//! per-token sliding-window limit (`429` + `Retry-After` and the
//! `inin-ratelimit-*` headers, as the emulator sends them), lost
//! acknowledgements, and a network outage before `recover_at`.
//!
//! Requests are handled when they are sent; the answer reaches the client
//! one round trip later. The server counts what a capacity planner wants:
//! requests per second, `429`s, `503`s, first deliveries and duplicates.

use std::collections::VecDeque;

use outbox_core::clock::{Millis, Random, SplitMix64};

/// The server's settings.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Requests per second the service can take; more are shed with `503`.
    pub capacity_per_s: u32,
    /// Requests admitted per token per window.
    pub token_limit: u32,
    /// The per-token window.
    pub token_window_ms: Millis,
    /// Probability that a processed request's answer is lost (the message
    /// is recorded, the client sees a network error).
    pub lost_ack_rate: f64,
    /// Round trip of an answered request.
    pub rtt_ms: Millis,
    /// Up to this much more, uniformly.
    pub rtt_jitter_ms: Millis,
    /// How long a failed attempt takes while the network is down.
    pub offline_fail_ms: Millis,
    /// Start of the outage (nothing reaches the server before `recover_at`).
    pub outage_from: Millis,
    /// When the network comes back.
    pub recover_at: Millis,
    /// A flaky period before `recover_at` ([`Flaky`]): the network is up
    /// between short outages, and the server fails a share of requests.
    pub flaky: Flaky,
}

/// A flaky period: from `from` until `recover_at`, the network drops for
/// the `outages` windows (absolute, sorted) and is up between them, and
/// the server answers `error_percent` % of the requests that reach it with
/// a server error (`500`, `502`, `503` or `504`, evenly) without
/// processing them — an injected fault, not load.
#[derive(Debug, Clone, Default)]
pub struct Flaky {
    /// Start of the flaky period (0: none).
    pub from: Millis,
    /// Outage windows `[start, end)` within it.
    pub outages: Vec<(Millis, Millis)>,
    /// Share of the requests answered with a server error.
    pub error_percent: u32,
}

impl Flaky {
    /// Whether the network is down at `now` (within the period).
    fn down(&self, now: Millis) -> bool {
        let i = self.outages.partition_point(|(start, _)| *start <= now);
        i > 0 && now < self.outages[i - 1].1
    }
}

/// What a client gets back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// `200`: recorded.
    Ok {
        /// Requests admitted in this token's window, this one included.
        count: u32,
        /// The token's limit.
        allowed: u32,
        /// Seconds until the window's oldest request leaves it.
        reset_s: u64,
    },
    /// `429` from the per-token limit.
    TooMany {
        /// `Retry-After` in seconds.
        retry_after_s: u64,
        /// The token's limit.
        allowed: u32,
    },
    /// `503`: shed, over capacity. Not processed.
    Unavailable,
    /// An injected server error of a flaky period (`500`, `502`, `503` or
    /// `504`), load or not. Not processed.
    Failed(u16),
    /// Processed, then the connection was cut: a network error.
    LostAck,
    /// The network is down: a network error, nothing reached the server.
    Offline,
}

impl Answer {
    /// Whether the client sees a network error rather than an HTTP answer.
    pub fn is_network_error(&self) -> bool {
        matches!(self, Answer::LostAck | Answer::Offline)
    }
    /// Whether it is a `2xx`.
    pub fn is_ok(&self) -> bool {
        matches!(self, Answer::Ok { .. })
    }
}

/// The shared server.
pub struct Server {
    config: ServerConfig,
    rng: SplitMix64,
    credit: u64,
    credit_at: Millis,
    windows: Vec<VecDeque<Millis>>,
    /// Times each message was recorded.
    pub recorded: Vec<u16>,
    /// When each message was first recorded (`Millis::MAX`: never).
    pub first_at: Vec<Millis>,
    /// Requests that reached the server.
    pub requests: u64,
    /// Attempts that failed because the network was down.
    pub offline_attempts: u64,
    /// `429` answers.
    pub too_many: u64,
    /// `503` answers.
    pub shed: u64,
    /// Injected server errors of the flaky period.
    pub injected: u64,
    /// Lost acknowledgements.
    pub lost_acks: u64,
    /// Requests arriving in each second after recovery.
    pub arrivals_per_s: Vec<u32>,
}

/// Credit units per request in the capacity bucket: with this unit a
/// bucket refilling at `c` requests a second gains `c` units a millisecond.
const UNIT: u64 = 1000;

impl Server {
    /// A server for `clients` clients holding `messages` messages in all.
    pub fn new(config: ServerConfig, clients: usize, messages: usize, seed: u64) -> Self {
        let burst = u64::from(config.capacity_per_s.max(1)) * UNIT;
        Self {
            credit: burst,
            credit_at: config.recover_at,
            config,
            rng: SplitMix64::new(seed),
            windows: (0..clients).map(|_| VecDeque::new()).collect(),
            recorded: vec![0; messages],
            first_at: vec![Millis::MAX; messages],
            requests: 0,
            offline_attempts: 0,
            too_many: 0,
            shed: 0,
            injected: 0,
            lost_acks: 0,
            arrivals_per_s: Vec::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (self.rng.next_u64() as f64 / u64::MAX as f64) < p
    }

    /// Client `client` sends message `message` at `now`: the answer, and
    /// when it reaches the client.
    pub fn handle(&mut self, now: Millis, client: usize, message: usize) -> (Answer, Millis) {
        let flaky = &self.config.flaky;
        let in_flaky = flaky.from != 0 && now >= flaky.from && now < self.config.recover_at;
        let down = if in_flaky {
            flaky.down(now)
        } else {
            now < self.config.recover_at && now >= self.config.outage_from
        };
        if down {
            self.offline_attempts += 1;
            return (Answer::Offline, now + self.config.offline_fail_ms.max(1));
        }
        let rtt = self.config.rtt_ms + self.rng.below_or_eq(self.config.rtt_jitter_ms);
        let at = now + rtt.max(1);
        self.requests += 1;
        if now >= self.config.recover_at {
            let second = ((now - self.config.recover_at) / 1000) as usize;
            if self.arrivals_per_s.len() <= second {
                self.arrivals_per_s.resize(second + 1, 0);
            }
            self.arrivals_per_s[second] += 1;
        }
        if in_flaky && self.chance(f64::from(flaky.error_percent) / 100.0) {
            self.injected += 1;
            let status = [500, 502, 503, 504][self.rng.below_or_eq(3) as usize];
            return (Answer::Failed(status), at);
        }

        // The edge: per-token sliding window.
        let (limit, window) = (self.config.token_limit, self.config.token_window_ms);
        let times = &mut self.windows[client];
        while times.front().is_some_and(|t| *t + window <= now) {
            times.pop_front();
        }
        if times.len() >= limit as usize {
            let oldest = times.front().copied().unwrap_or(now);
            let wait = oldest + window - now;
            self.too_many += 1;
            return (
                Answer::TooMany {
                    retry_after_s: wait.div_ceil(1000).max(1),
                    allowed: limit,
                },
                at,
            );
        }
        times.push_back(now);
        let count = times.len() as u32;
        let reset_s = (times.front().copied().unwrap_or(now) + window - now)
            .div_ceil(1000)
            .max(1);

        // The back end: global capacity (token bucket, one second of burst).
        let cap = u64::from(self.config.capacity_per_s.max(1));
        if now > self.credit_at {
            self.credit = (self.credit + (now - self.credit_at) * cap).min(cap * UNIT);
            self.credit_at = now;
        }
        if self.credit < UNIT {
            self.shed += 1;
            return (Answer::Unavailable, at);
        }
        self.credit -= UNIT;

        self.recorded[message] = self.recorded[message].saturating_add(1);
        if self.first_at[message] == Millis::MAX {
            self.first_at[message] = now;
        }
        if self.chance(self.config.lost_ack_rate) {
            self.lost_acks += 1;
            return (Answer::LostAck, at);
        }
        (
            Answer::Ok {
                count,
                allowed: limit,
                reset_s,
            },
            at,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ServerConfig {
        ServerConfig {
            capacity_per_s: 3,
            token_limit: 2,
            token_window_ms: 10_000,
            lost_ack_rate: 0.0,
            rtt_ms: 100,
            rtt_jitter_ms: 0,
            offline_fail_ms: 5,
            outage_from: 0,
            recover_at: 1_000,
            flaky: Flaky::default(),
        }
    }

    #[test]
    fn offline_before_recovery_then_limits_apply() {
        let mut s = Server::new(config(), 3, 10, 1);
        assert_eq!(s.handle(500, 0, 0), (Answer::Offline, 505));
        assert_eq!(s.requests, 0);
        assert!(s.handle(1_000, 0, 0).0.is_ok());
        assert!(s.handle(1_000, 0, 1).0.is_ok());
        // Third from the same token: 429, retry when the oldest leaves.
        assert_eq!(
            s.handle(1_000, 0, 2).0,
            Answer::TooMany {
                retry_after_s: 10,
                allowed: 2
            }
        );
        assert!(s.handle(1_000, 1, 3).0.is_ok());
        // Capacity 3 a second is spent: shed.
        assert_eq!(s.handle(1_000, 2, 4).0, Answer::Unavailable);
        assert!(s.handle(1_400, 2, 4).0.is_ok(), "refilled");
        assert_eq!((s.too_many, s.shed, s.requests), (1, 1, 6));
        assert_eq!(s.first_at[4], 1_400);
        assert_eq!(s.arrivals_per_s, vec![6]);
    }
}
