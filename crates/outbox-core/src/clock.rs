//! Time and randomness, injected so that the engine runs the same under a
//! virtual clock in tests and under `Date.now()` in the browser.

use alloc::rc::Rc;
use core::cell::Cell;

/// Milliseconds since the Unix epoch (wall-clock time: entries outlive the
/// process, so a monotonic clock would not do).
pub type Millis = u64;

/// A source of the current time.
pub trait Clock {
    /// The current time in milliseconds since the Unix epoch.
    fn now(&self) -> Millis;
}

/// A clock that moves only when told to: for tests and the simulator.
/// Clones share the same time.
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Rc<Cell<Millis>>);

impl ManualClock {
    /// A clock standing at `start`.
    pub fn new(start: Millis) -> Self {
        Self(Rc::new(Cell::new(start)))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: Millis) {
        self.0.set(self.0.get().saturating_add(ms));
    }

    /// Sets the time; the clock never goes backwards, so earlier times are ignored.
    pub fn set(&self, at: Millis) {
        if at > self.0.get() {
            self.0.set(at);
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Millis {
        self.0.get()
    }
}

/// A source of random numbers (backoff jitter, entry ids).
pub trait Random {
    /// 64 random bits.
    fn next_u64(&mut self) -> u64;

    /// A uniform value in `0..=max`.
    fn below_or_eq(&mut self, max: u64) -> u64 {
        if max == u64::MAX {
            return self.next_u64();
        }
        // Rejection sampling keeps the distribution exactly uniform.
        let span = max + 1;
        let zone = u64::MAX - (u64::MAX % span);
        loop {
            let v = self.next_u64();
            if v < zone {
                return v % span;
            }
        }
    }

    /// 16 random bytes.
    fn bytes16(&mut self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.next_u64().to_le_bytes());
        out[8..].copy_from_slice(&self.next_u64().to_le_bytes());
        out
    }
}

/// SplitMix64: small, fast, statistically sound, and deterministic from a
/// seed. The browser seeds it from `crypto.getRandomValues`.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator starting from `seed`.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
}

impl Random for SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    #[test]
    fn below_or_eq_stays_in_range_and_reaches_both_ends() {
        let mut r = SplitMix64::new(7);
        let mut seen = [false; 4];
        for _ in 0..1000 {
            let v = r.below_or_eq(3);
            assert!(v <= 3);
            seen[v as usize] = true;
        }
        assert_eq!(seen, [true; 4]);
        assert_eq!(r.below_or_eq(0), 0);
    }

    #[test]
    fn manual_clock_is_shared_and_monotonic() {
        let a = ManualClock::new(10);
        let b = a.clone();
        a.advance(5);
        assert_eq!(b.now(), 15);
        b.set(3);
        assert_eq!(a.now(), 15);
    }
}
