//! The retry policy: exponential backoff with full jitter, and the limits
//! that turn an entry into a dead letter (never a silent drop).

use crate::classify::LastError;
use crate::classify::Outcome;
use crate::clock::{Millis, Random};
use crate::entry::{Action, Entry};
use alloc::string::String;

/// When and how often to retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// First backoff ceiling (default 2 s).
    pub base_ms: u64,
    /// Growth of the ceiling per attempt (default 2).
    pub factor: u32,
    /// Largest ceiling (default 60 s).
    pub cap_ms: u64,
    /// Server-side failures (`408`, `5xx`, expired leases) after which the
    /// entry dies (default 25). Network failures without an answer do not
    /// count: an offline device is not the message's fault; nor is a busy
    /// server's `503` or `408` ever the last straw (the count stops one
    /// short of the limit on them).
    pub max_attempts: u32,
    /// Age after which an entry dies, whatever happened (default 72 h).
    pub max_age_ms: u64,
    /// `401`s in a row, each after a fresh token, that an entry needs before
    /// it can die of them (default 3) …
    pub max_auth_failures: u32,
    /// … and how long such a run must span (default 60 s): a burst of
    /// `401`s while a token is being rotated is a blip, not a verdict.
    /// The first `401` of a run goes again as soon as a fresh token is in
    /// hand; after each later one the entry also backs off as after a
    /// server failure (equal jitter, ceiling growing from `base_ms`).
    ///
    /// The window is judged on the server's answers, not on the sender's
    /// pace: a run dies only once it spans the window both on the clock
    /// *and* in that backoff schedule ([`auth_schedule_ms`](Self::auth_schedule_ms)),
    /// so a sender slowed by something else (a throttled origin, an
    /// offline device, a paused worker) needs as many `401`s as one at
    /// the backoff's own pace before it concludes the refusal is for good.
    pub auth_window_ms: u64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 2_000,
            factor: 2,
            cap_ms: 60_000,
            max_attempts: 25,
            max_age_ms: 72 * 3_600_000,
            max_auth_failures: 3,
            auth_window_ms: 60_000,
        }
    }
}

impl RetryPolicy {
    /// The backoff before retry number `attempt` (1-based): uniform in
    /// `0..=min(cap, base × factor^(attempt-1))` ("full jitter").
    pub fn backoff_ms(&self, attempt: u32, rng: &mut dyn Random) -> u64 {
        rng.below_or_eq(self.ceiling_ms(attempt))
    }

    /// The backoff ceiling for retry number `attempt`.
    pub fn ceiling_ms(&self, attempt: u32) -> u64 {
        let growth = (self.factor.max(1) as u64).saturating_pow(attempt.saturating_sub(1).min(64));
        self.base_ms.saturating_mul(growth).min(self.cap_ms)
    }

    /// The shortest time the backoff schedule itself puts between the
    /// first and the `auth_failures`-th `401` of a run: none before the
    /// second (it waits only for a fresh token), then at least half of
    /// each later ceiling (equal jitter). A run of `401`s dies only once
    /// this too reaches [`auth_window_ms`](Self::auth_window_ms).
    pub fn auth_schedule_ms(&self, auth_failures: u32) -> u64 {
        (1..auth_failures.saturating_sub(1))
            .map(|n| self.ceiling_ms(n) / 2)
            .fold(0u64, u64::saturating_add)
    }

    /// Whether an entry created at `created_at` is too old at `now`.
    pub fn is_expired(&self, created_at: Millis, now: Millis) -> bool {
        now.saturating_sub(created_at) >= self.max_age_ms
    }

    /// The error a dead letter carries when it ran out of age.
    pub fn max_age_error(&self, last: Option<&LastError>) -> LastError {
        with_cause(
            LastError::new("max-age", {
                let mut m = String::from("not delivered within ");
                crate::json::push_u64(&mut m, self.max_age_ms / 1000);
                m.push_str(" s");
                m
            }),
            last,
        )
    }

    /// The error a dead letter carries when it ran out of attempts.
    pub fn max_attempts_error(&self, last: Option<&LastError>) -> LastError {
        with_cause(
            LastError::new("max-attempts", {
                let mut m = String::new();
                crate::json::push_u64(&mut m, u64::from(self.max_attempts));
                m.push_str(" server failures");
                m
            }),
            last,
        )
    }

    /// Decides what follows an attempt on `entry` (as leased: `attempts`
    /// counts this attempt) that ended in `outcome` at `now`.
    /// `rate_limit_wait_ms` is how long the origin is paused for a `429` (or
    /// a `503` with `Retry-After`).
    pub fn decide(
        &self,
        entry: &Entry,
        outcome: &Outcome,
        now: Millis,
        rate_limit_wait_ms: u64,
        rng: &mut dyn Random,
    ) -> Action {
        match outcome {
            Outcome::Delivered { status } => Action::Delivered {
                status: *status,
                duplicate: false,
            },
            Outcome::AlreadyDelivered { status } => Action::Delivered {
                status: *status,
                duplicate: true,
            },
            Outcome::Permanent { error } => Action::Dead {
                error: error.clone(),
            },
            Outcome::Unauthorized { error } => {
                let auth_failures = entry.auth_failures.saturating_add(1);
                let since = entry.auth_since.unwrap_or(now).min(now);
                let span = now - since;
                if auth_failures >= self.max_auth_failures
                    && span >= self.auth_window_ms
                    && self.auth_schedule_ms(auth_failures) >= self.auth_window_ms
                {
                    Action::Dead {
                        error: with_cause(
                            LastError::new("auth-failed", {
                                let mut m = String::new();
                                crate::json::push_u64(&mut m, u64::from(auth_failures));
                                m.push_str(" times 401 with fresh tokens over ");
                                crate::json::push_u64(&mut m, span / 1000);
                                m.push_str(" s");
                                m
                            }),
                            Some(error),
                        ),
                    }
                } else {
                    // The first 401 of a run goes again as soon as a fresh
                    // token is in hand: its token may simply have expired
                    // (a message queued through an outage carries the token
                    // of its time). From the second on, equal jitter: never
                    // at once (a burst of 401s while a token rotates must not
                    // burn the run in milliseconds), never in lockstep.
                    let wait = match auth_failures {
                        0 | 1 => 0,
                        n => {
                            let ceiling = self.ceiling_ms(n - 1);
                            ceiling / 2 + rng.below_or_eq(ceiling - ceiling / 2)
                        }
                    };
                    Action::AwaitToken {
                        auth_failures,
                        since,
                        not_before: now.saturating_add(wait),
                        error: error.clone(),
                    }
                }
            }
            Outcome::RateLimited { error, .. } => {
                if self.is_expired(entry.created_at, now) {
                    return Action::Dead {
                        error: self.max_age_error(Some(error)),
                    };
                }
                // The backoff grows with the server's refusals, not with
                // attempts an outage failed before the server was reached.
                let wait = rate_limit_wait_ms.max(self.backoff_ms(entry.failures + 1, rng));
                Action::Retry {
                    not_before: now.saturating_add(wait),
                    failures: entry.failures,
                    error: error.clone(),
                }
            }
            Outcome::Retryable {
                error,
                server_failure,
                ..
            } => {
                // A server that only says it is busy (`503`) or that the
                // request came too slowly (`408`) says nothing about the
                // message: such an answer is never the failure that kills
                // it (a herd after an outage meets many; the throttle
                // slows them). Its count stops one short of the limit.
                let busy = *server_failure && matches!(error.status, Some(408 | 503));
                let mut failures = entry.failures + u32::from(*server_failure);
                if busy {
                    failures = failures.min(self.max_attempts.saturating_sub(1));
                }
                if failures >= self.max_attempts {
                    Action::Dead {
                        error: self.max_attempts_error(Some(error)),
                    }
                } else if self.is_expired(entry.created_at, now) {
                    Action::Dead {
                        error: self.max_age_error(Some(error)),
                    }
                } else {
                    // At least the backoff, and at least what a `503` asked.
                    // A server failure backs off by the server failures so
                    // far (the first after an outage waits ≤ 2 s, not the
                    // outage's 60 s); no answer at all, by attempts.
                    let exponent = if *server_failure {
                        failures
                    } else {
                        entry.attempts
                    };
                    let wait = rate_limit_wait_ms.max(self.backoff_ms(exponent, rng));
                    Action::Retry {
                        not_before: now.saturating_add(wait),
                        failures,
                        error: error.clone(),
                    }
                }
            }
        }
    }
}

/// Folds the last cause into a summary error, keeping its status and
/// Genesys details.
fn with_cause(mut summary: LastError, cause: Option<&LastError>) -> LastError {
    if let Some(cause) = cause {
        summary.message.push_str("; last error: ");
        summary.message.push_str(&cause.text());
        summary.status = cause.status;
        summary.context_id = cause.context_id.clone();
    }
    summary
}
