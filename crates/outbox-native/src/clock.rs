//! The wall clock, in milliseconds since the Unix epoch (what core's
//! times are: they are stored, and compared across restarts).

use outbox_core::clock::{Clock, Millis};

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Millis {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A seed for ids and jitter from the operating system's randomness (the
/// keys of std's `RandomState`), the time and the process id.
pub fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(SystemClock.now());
    h.write_u32(std::process::id());
    h.finish()
}
