//! The state shared by every connection of one emulator.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

use crate::auth::TokenStore;
use crate::clock::Clock;
use crate::config::Config;
use crate::faults::{FaultState, Faults, may_lose_acks};
use crate::guest::state::GuestState;
use crate::inspect::Recorder;
use crate::ratelimit::SlidingWindow;

pub(crate) use crate::sync::lock;

/// Everything one emulator instance knows.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) clock: Clock,
    pub(crate) tokens: Mutex<TokenStore>,
    pub(crate) limiter: Mutex<SlidingWindow>,
    pub(crate) faults: Mutex<FaultState>,
    pub(crate) recorder: Mutex<Recorder>,
    pub(crate) idempotency: AtomicBool,
    pub(crate) guest: GuestState,
    /// `true` while the outage fault is on (guest sockets watch it).
    pub(crate) outage: watch::Sender<bool>,
    /// `true` while lost acknowledgements may happen (`lostAckRate` > 0 or
    /// `loseAcks` left): no keep-alive, so that a
    /// lost answer always happens on a fresh connection (see `server`).
    pub(crate) no_keepalive: watch::Sender<bool>,
    /// Becomes `true` when the emulator shuts down.
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            clock: Clock::default(),
            tokens: Mutex::new(TokenStore::default()),
            limiter: Mutex::new(SlidingWindow::default()),
            faults: Mutex::new(FaultState::new(config.seed)),
            recorder: Mutex::new(Recorder::new(config.request_log_capacity)),
            idempotency: AtomicBool::new(config.idempotency),
            guest: GuestState::default(),
            outage: watch::channel(false).0,
            no_keepalive: watch::channel(false).0,
            shutdown: watch::channel(false).0,
            config,
        }
    }

    /// The faults in force.
    pub(crate) fn faults(&self) -> Faults {
        lock(&self.faults).faults.clone()
    }

    /// Replaces the faults (already validated) and tells guest sockets about an outage.
    pub(crate) fn set_faults(&self, f: Faults) {
        let outage = f.outage;
        let no_keepalive = may_lose_acks(&f);
        lock(&self.faults).faults = f;
        self.outage.send_replace(outage);
        self.set_keepalive_off(no_keepalive);
    }

    /// Switches keep-alive off (lost acknowledgements possible) or back on.
    pub(crate) fn set_keepalive_off(&self, off: bool) {
        // Only transitions wake the connections (they close when idle).
        self.no_keepalive.send_if_modified(|v| {
            let changed = *v != off;
            *v = off;
            changed
        });
    }

    /// Whether answers must close their connection (lost acknowledgements on).
    pub(crate) fn keepalive_off(&self) -> bool {
        *self.no_keepalive.borrow()
    }

    /// Whether the outage fault is on.
    pub(crate) fn in_outage(&self) -> bool {
        *self.outage.borrow()
    }

    pub(crate) fn idempotency(&self) -> bool {
        self.idempotency.load(Ordering::SeqCst)
    }
}
