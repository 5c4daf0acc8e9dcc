//! Sliding-window rate limiting, keyed by token, session or connection.
//!
//! A request is admitted when fewer than `limit` admitted requests lie in the
//! last `window`; refused requests are not counted, so a client that honours
//! `Retry-After` gets in exactly when the oldest admitted request leaves.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The limiter's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Admitted; `count` now in the window (this one included).
    Allowed {
        /// Requests in the window, this one included.
        count: u32,
        /// The limit.
        limit: u32,
        /// Whole seconds (rounded up, ≥ 1) until the oldest request leaves the window.
        reset_secs: u64,
    },
    /// Refused.
    Limited {
        /// Requests in the window.
        count: u32,
        /// The limit.
        limit: u32,
        /// Whole seconds (rounded up, ≥ 1) until a request will be admitted.
        retry_after_secs: u64,
    },
}

/// Per-key sliding windows.
#[derive(Debug, Default)]
pub(crate) struct SlidingWindow {
    hits: HashMap<String, VecDeque<Instant>>,
}

fn ceil_secs(d: Duration) -> u64 {
    let s = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    s.max(1)
}

impl SlidingWindow {
    /// Admits or refuses one request for `key` at `now`.
    pub(crate) fn check(
        &mut self,
        key: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Verdict {
        let q = self.hits.entry(key.to_owned()).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            q.pop_front();
        }
        let count = u32::try_from(q.len()).unwrap_or(u32::MAX);
        let until_oldest_leaves = |q: &VecDeque<Instant>| {
            q.front()
                .map(|t| ceil_secs((*t + window).saturating_duration_since(now)))
                .unwrap_or_else(|| ceil_secs(window))
        };
        if count >= limit {
            return Verdict::Limited {
                count,
                limit,
                retry_after_secs: until_oldest_leaves(q),
            };
        }
        q.push_back(now);
        Verdict::Allowed {
            count: count.saturating_add(1),
            limit,
            reset_secs: until_oldest_leaves(q),
        }
    }

    /// The window of `key` without admitting anything: (count, seconds until
    /// the oldest request leaves, ≥ 1).
    pub(crate) fn peek(&mut self, key: &str, window: Duration, now: Instant) -> (u32, u64) {
        let Some(q) = self.hits.get_mut(key) else {
            return (0, ceil_secs(window));
        };
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= window)
        {
            q.pop_front();
        }
        let reset = q
            .front()
            .map(|t| ceil_secs((*t + window).saturating_duration_since(now)))
            .unwrap_or_else(|| ceil_secs(window));
        (u32::try_from(q.len()).unwrap_or(u32::MAX), reset)
    }

    /// Forgets one key's window.
    pub(crate) fn clear_key(&mut self, key: &str) {
        self.hits.remove(key);
    }

    /// Forgets every window.
    pub(crate) fn clear(&mut self) {
        self.hits.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_exactly_limit_then_honours_retry_after() {
        let mut w = SlidingWindow::default();
        let t0 = Instant::now();
        let win = Duration::from_secs(60);
        for i in 1..=3 {
            assert!(
                matches!(w.check("k", 3, win, t0), Verdict::Allowed { count, .. } if count == i)
            );
        }
        let Verdict::Limited {
            retry_after_secs, ..
        } = w.check("k", 3, win, t0 + Duration::from_millis(10_500))
        else {
            panic!("expected limited");
        };
        assert_eq!(retry_after_secs, 50);
        let later = t0 + Duration::from_millis(10_500) + Duration::from_secs(retry_after_secs);
        assert!(matches!(
            w.check("k", 3, win, later),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            w.check("other", 3, win, t0),
            Verdict::Allowed { count: 1, .. }
        ));
    }
}
