//! Fault injection: what can go wrong, switchable at run time.
//!
//! Two kinds. *Rates* (`errorRate`, `lostAckRate`, `ws*Rate`) are rolled by a
//! seeded random generator, so that a chaos run can be reproduced; they suit
//! soak and chaos runs. *Counts* (`failNext`, `loseAcks`,
//! `forceUnauthorized`) hit exactly the next N matching requests and count
//! down under the fault lock, one per request; they suit tests that need
//! faults in a known order, since a test never has to race the product to
//! switch a rate off again. A count is consumed before a rate is rolled.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{RngExt as _, SeedableRng as _};
use serde::{Deserialize, Serialize};

/// Statuses the 5xx fault may answer when `errorStatuses` is empty.
pub const DEFAULT_ERROR_STATUSES: [u16; 4] = [500, 502, 503, 504];

/// The status `failNext` answers unless `failStatus` says otherwise.
pub const DEFAULT_FAIL_STATUS: u16 = 500;

/// Statuses `errorStatuses` and `failStatus` may name.
const FAULT_STATUSES: [u16; 7] = [403, 404, 408, 500, 502, 503, 504];

/// The faults in force. JSON (camelCase) is what `GET /__emulator/faults`
/// answers and `POST /__emulator/faults` merges.
///
/// HTTP faults apply to `/api/…` (and, for outage and latency, `/oauth/…` and
/// the `/v1` WebSocket upgrade); `ws*` faults apply to guest WebSocket sessions.
/// Control endpoints (`/__emulator/…`) are never faulted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Faults {
    /// Drop connections without an answer (new and kept-alive ones) on
    /// `/api`, `/oauth` and `/v1`; open guest sockets are cut at once.
    pub outage: bool,
    /// Fixed delay before answering, in milliseconds.
    pub latency_ms: u64,
    /// Extra random delay, uniform in `0..=jitterMs`.
    pub jitter_ms: u64,
    /// Probability (0–1) that an authenticated `/api` request answers a server error.
    pub error_rate: f64,
    /// Statuses to pick from for `errorRate` (403, 404, 408, 500, 502, 503,
    /// 504 — the 4xx ones stand for a refusal on replay); empty means
    /// 500/502/503/504.
    pub error_statuses: Vec<u16>,
    /// Probability (0–1) that an accepted message is recorded and then the
    /// connection is cut before the answer.
    pub lost_ack_rate: f64,
    /// The next N message requests (REST message routes only, past the
    /// token, rate-limit and validation checks) answer `failStatus` and
    /// record nothing (counts down; before `errorRate`).
    pub fail_next: u32,
    /// The status `failNext` answers (403, 404, 408, 500, 502, 503, 504);
    /// default 500.
    pub fail_status: u16,
    /// The next N messages accepted on a REST message route (recorded or
    /// replayed) lose their acknowledgement: recorded, then the connection
    /// is cut before the answer (counts down; before `lostAckRate`).
    pub lose_acks: u32,
    /// The next N `/api` requests answer 401 `credentials.expired` (counts down).
    pub force_unauthorized: u32,
    /// Holds message requests after the next N: those N go on as usual
    /// (counting down), every later one (REST message routes, past the
    /// token, rate-limit and validation checks) waits unrecorded until
    /// `holdAfter` is cleared (`null`), then answers `503` and records
    /// nothing. A test can thus stop a sender mid-drain at a known point,
    /// with no race against the clock.
    pub hold_after: Option<u32>,
    /// Every authenticated `/api` request answers 429 with a `Retry-After` of hours.
    pub daily_limit: bool,
    /// Overrides the per-token rate limit (requests per window) while set.
    pub rate_limit: Option<u32>,
    /// Probability (0–1) that a guest `onMessage` is recorded and then the socket is cut (close 1006).
    pub ws_drop_rate: f64,
    /// Probability (0–1) that a guest `onMessage` is recorded but its echo is never sent.
    pub ws_lost_echo_rate: f64,
    /// Delay of each echo in milliseconds.
    pub ws_echo_delay_ms: u64,
    /// Hold each echo until the next one of the session and send them swapped
    /// (a lone held echo is released after 200 ms).
    pub ws_reorder: bool,
}

impl Default for Faults {
    fn default() -> Self {
        Self {
            outage: false,
            latency_ms: 0,
            jitter_ms: 0,
            error_rate: 0.0,
            error_statuses: Vec::new(),
            lost_ack_rate: 0.0,
            fail_next: 0,
            fail_status: DEFAULT_FAIL_STATUS,
            lose_acks: 0,
            force_unauthorized: 0,
            hold_after: None,
            daily_limit: false,
            rate_limit: None,
            ws_drop_rate: 0.0,
            ws_lost_echo_rate: 0.0,
            ws_echo_delay_ms: 0,
            ws_reorder: false,
        }
    }
}

/// Why a faults update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FaultsError {
    /// The JSON was not an object of known fields with the right types.
    #[error("invalid faults JSON: {0}")]
    Json(String),
    /// A value is out of range.
    #[error("invalid fault value: {0}")]
    Invalid(String),
}

impl Faults {
    /// Checks ranges: rates in 0–1, statuses among 403/404/408/500/502/503/504, rate limit ≥ 1.
    pub fn validate(&self) -> Result<(), FaultsError> {
        for (name, r) in [
            ("errorRate", self.error_rate),
            ("lostAckRate", self.lost_ack_rate),
            ("wsDropRate", self.ws_drop_rate),
            ("wsLostEchoRate", self.ws_lost_echo_rate),
        ] {
            if !(0.0..=1.0).contains(&r) {
                return Err(FaultsError::Invalid(format!("{name} must be within 0..=1")));
            }
        }
        if let Some(s) = self
            .error_statuses
            .iter()
            .find(|s| !FAULT_STATUSES.contains(s))
        {
            return Err(FaultsError::Invalid(format!(
                "errorStatuses: {s} is not one of 403, 404, 408, 500, 502, 503, 504"
            )));
        }
        if !FAULT_STATUSES.contains(&self.fail_status) {
            return Err(FaultsError::Invalid(format!(
                "failStatus: {} is not one of 403, 404, 408, 500, 502, 503, 504",
                self.fail_status
            )));
        }
        if self.rate_limit == Some(0) {
            return Err(FaultsError::Invalid(
                "rateLimit must be at least 1".to_owned(),
            ));
        }
        Ok(())
    }

    /// Applies a JSON object of changed fields onto `self` (fields absent are
    /// kept; `null` resets a field to its default).
    pub fn merged(&self, patch: &serde_json::Value) -> Result<Faults, FaultsError> {
        let serde_json::Value::Object(p) = patch else {
            return Err(FaultsError::Json("expected a JSON object".to_owned()));
        };
        let mut cur = serde_json::to_value(self).map_err(|e| FaultsError::Json(e.to_string()))?;
        let defaults = serde_json::to_value(Faults::default())
            .map_err(|e| FaultsError::Json(e.to_string()))?;
        if let serde_json::Value::Object(c) = &mut cur {
            for (k, v) in p {
                let v = if v.is_null() {
                    defaults.get(k).cloned().unwrap_or(serde_json::Value::Null)
                } else {
                    v.clone()
                };
                c.insert(k.clone(), v);
            }
        }
        let f: Faults =
            serde_json::from_value(cur).map_err(|e| FaultsError::Json(e.to_string()))?;
        f.validate()?;
        Ok(f)
    }
}

/// Whether these faults may lose an acknowledgement (see [`FaultState::may_lose_acks`]).
pub(crate) fn may_lose_acks(f: &Faults) -> bool {
    f.lost_ack_rate > 0.0 || f.lose_acks > 0
}

/// The faults in force plus the seeded generator that rolls them.
#[derive(Debug)]
pub(crate) struct FaultState {
    pub(crate) faults: Faults,
    rng: SmallRng,
    /// Message requests held by `holdAfter` right now.
    pub(crate) held: u32,
}

impl FaultState {
    pub(crate) fn new(seed: u64) -> Self {
        Self {
            faults: Faults::default(),
            rng: SmallRng::seed_from_u64(seed),
            held: 0,
        }
    }

    /// Restarts the generator from `seed`.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.rng = SmallRng::seed_from_u64(seed);
    }

    /// True with probability `p`.
    pub(crate) fn roll(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.rng.random_bool(p)
        }
    }

    /// The latency to apply now (fixed + jitter).
    pub(crate) fn latency(&mut self) -> Duration {
        let f = &self.faults;
        let jitter = if f.jitter_ms > 0 {
            self.rng.random_range(0..=f.jitter_ms)
        } else {
            0
        };
        Duration::from_millis(f.latency_ms.saturating_add(jitter))
    }

    /// Whether lost acknowledgements may happen (a count pending or a rate
    /// above 0): answers then close their connection.
    pub(crate) fn may_lose_acks(&self) -> bool {
        may_lose_acks(&self.faults)
    }

    /// Whether to fail a message request, and with which status: one of
    /// `failNext` if any is left, else a roll of `errorRate`.
    pub(crate) fn message_error(&mut self) -> Option<u16> {
        if self.faults.fail_next > 0 {
            self.faults.fail_next -= 1;
            return Some(self.faults.fail_status);
        }
        self.injected_error()
    }

    /// Whether to hold a message request (see [`Faults::hold_after`]):
    /// counts down the requests let through first, and counts the ones
    /// held ([`FaultState::held`]; the caller lets go with
    /// [`FaultState::unhold`]).
    pub(crate) fn hold_message(&mut self) -> bool {
        match &mut self.faults.hold_after {
            None => false,
            Some(0) => {
                self.held += 1;
                true
            }
            Some(n) => {
                *n -= 1;
                false
            }
        }
    }

    /// A held request is answered (or its client went away).
    pub(crate) fn unhold(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// Whether held message requests still wait (`holdAfter` is spent and
    /// not cleared).
    pub(crate) fn holding(&self) -> bool {
        self.faults.hold_after == Some(0)
    }

    /// Whether to lose the acknowledgement of an accepted message: one of
    /// `loseAcks` if any is left, else a roll of `lostAckRate`.
    pub(crate) fn lose_ack(&mut self) -> bool {
        if self.faults.lose_acks > 0 {
            self.faults.lose_acks -= 1;
            return true;
        }
        self.roll(self.faults.lost_ack_rate)
    }

    /// Whether to inject a server error (by `errorRate`), and which status.
    pub(crate) fn injected_error(&mut self) -> Option<u16> {
        if !self.roll(self.faults.error_rate) {
            return None;
        }
        let n = if self.faults.error_statuses.is_empty() {
            DEFAULT_ERROR_STATUSES.len()
        } else {
            self.faults.error_statuses.len()
        };
        let i = self.rng.random_range(0..n);
        Some(if self.faults.error_statuses.is_empty() {
            DEFAULT_ERROR_STATUSES[i]
        } else {
            self.faults.error_statuses[i]
        })
    }

    /// Consumes one forced 401 if any are pending.
    pub(crate) fn take_forced_unauthorized(&mut self) -> bool {
        if self.faults.force_unauthorized > 0 {
            self.faults.force_unauthorized -= 1;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_keeps_absent_fields_and_resets_nulls() {
        let base = Faults {
            latency_ms: 5,
            rate_limit: Some(3),
            ..Faults::default()
        };
        let f = base
            .merged(&serde_json::json!({"outage": true, "rateLimit": null}))
            .expect("merge");
        assert!(f.outage);
        assert_eq!(f.latency_ms, 5);
        assert_eq!(f.rate_limit, None);
        assert!(base.merged(&serde_json::json!({"nope": 1})).is_err());
        assert!(base.merged(&serde_json::json!({"errorRate": 2.0})).is_err());
        assert!(
            base.merged(&serde_json::json!({"errorStatuses": [400]}))
                .is_err()
        );
    }

    #[test]
    fn counts_parse_validate_and_count_down() {
        let f = Faults::default()
            .merged(&serde_json::json!({"failNext": 2, "failStatus": 503, "loseAcks": 1}))
            .expect("merge");
        assert_eq!((f.fail_next, f.fail_status, f.lose_acks), (2, 503, 1));
        assert!(
            Faults::default()
                .merged(&serde_json::json!({"failStatus": 429}))
                .is_err()
        );
        assert!(
            Faults::default()
                .merged(&serde_json::json!({"loseAcks": -1}))
                .is_err()
        );
        let reset = f
            .merged(&serde_json::json!({"failStatus": null}))
            .expect("merge");
        assert_eq!(reset.fail_status, DEFAULT_FAIL_STATUS);

        let mut s = FaultState::new(1);
        s.faults = f;
        assert!(s.may_lose_acks());
        assert_eq!(s.message_error(), Some(503));
        assert_eq!(s.message_error(), Some(503));
        assert_eq!(s.message_error(), None, "two, then none (errorRate is 0)");
        assert!(s.lose_ack());
        assert!(!s.lose_ack(), "one, then none (lostAckRate is 0)");
        assert!(!s.may_lose_acks());
        assert_eq!((s.faults.fail_next, s.faults.lose_acks), (0, 0));
    }

    #[test]
    fn hold_after_lets_n_through_then_holds_until_cleared() {
        let f = Faults::default()
            .merged(&serde_json::json!({"holdAfter": 2}))
            .expect("merge");
        let mut s = FaultState::new(1);
        s.faults = f;
        assert!(!s.holding());
        assert!(!s.hold_message());
        assert!(!s.hold_message());
        assert!(s.holding(), "two let through: later ones wait");
        assert!(s.hold_message(), "the third is held");
        assert_eq!(s.held, 1);
        s.unhold();
        assert_eq!(s.held, 0);
        s.faults = s
            .faults
            .merged(&serde_json::json!({"holdAfter": null}))
            .expect("merge");
        assert!(!s.holding(), "cleared: the held ones are released");
        assert!(!s.hold_message());
    }

    #[test]
    fn counts_come_before_rates_and_do_not_move_the_generator() {
        let mut a = FaultState::new(9);
        let mut b = FaultState::new(9);
        a.faults.error_rate = 0.5;
        b.faults.error_rate = 0.5;
        a.faults.fail_next = 3;
        let counted: Vec<_> = (0..3).map(|_| a.message_error()).collect();
        assert_eq!(counted, [Some(500); 3]);
        let ra: Vec<_> = (0..40).map(|_| a.message_error()).collect();
        let rb: Vec<_> = (0..40).map(|_| b.message_error()).collect();
        assert_eq!(ra, rb, "the rolls after the counts are the seed's");
    }

    #[test]
    fn rolls_are_reproducible() {
        let mut a = FaultState::new(7);
        let mut b = FaultState::new(7);
        a.faults.error_rate = 0.5;
        b.faults.error_rate = 0.5;
        let ra: Vec<_> = (0..50).map(|_| a.injected_error()).collect();
        let rb: Vec<_> = (0..50).map(|_| b.injected_error()).collect();
        assert_eq!(ra, rb);
        assert!(ra.iter().any(Option::is_some) && ra.iter().any(Option::is_none));
    }
}
