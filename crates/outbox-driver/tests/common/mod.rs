//! A harness around the real engine, the memory store and the simulated
//! server, on a virtual clock.
#![allow(dead_code, clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use outbox_core::clock::{Clock, ManualClock, Millis};
use outbox_core::config::Config;
use outbox_core::entry::Entry;
use outbox_core::event::{Event, EventSink};
use outbox_core::report::FlushReport;
use outbox_core::request::IncomingRequest;
use outbox_driver::engine::Engine;
use outbox_driver::memory::MemoryStore;
use outbox_driver::sim::{SimServer, SimTokens, SimTransport, run_until_stalled};

pub const T0: Millis = 1_700_000_000_000;
pub const SEED_PATH: &str = "/api/v2/conversations/messaging/messages";

/// Events with the virtual time they were emitted at.
#[derive(Clone)]
pub struct TimedEvents {
    pub clock: ManualClock,
    pub log: Rc<RefCell<Vec<(Millis, Event)>>>,
}

impl EventSink for TimedEvents {
    fn emit(&self, event: &Event) {
        self.log
            .borrow_mut()
            .push((self.clock.now(), event.clone()));
    }
}

impl TimedEvents {
    pub fn kinds(&self) -> Vec<&'static str> {
        self.log.borrow().iter().map(|(_, e)| e.kind()).collect()
    }
    pub fn events(&self) -> Vec<Event> {
        self.log.borrow().iter().map(|(_, e)| e.clone()).collect()
    }
}

pub type SimEngine<K> = Engine<MemoryStore, SimTransport, ManualClock, K, TimedEvents>;

pub struct Harness<K> {
    pub clock: ManualClock,
    pub server: SimServer,
    pub store: MemoryStore,
    pub transport: SimTransport,
    pub events: TimedEvents,
    pub engine: SimEngine<K>,
    pub config: Config,
}

pub fn config() -> Config {
    let mut config = Config::default();
    config.routes.add_origin(SimServer::ORIGIN).unwrap();
    config
}

impl Harness<SimTokens> {
    pub fn new(seed: u64) -> Self {
        Self::with_config(seed, config())
    }

    pub fn with_config(seed: u64, config: Config) -> Self {
        let clock = ManualClock::new(T0);
        let server = SimServer::new(clock.clone(), seed);
        let tokens = SimTokens::new(server.clone());
        Self::build(seed, config, clock, server, tokens)
    }
}

impl<K: outbox_driver::token::TokenSource + Clone> Harness<K> {
    pub fn build(
        seed: u64,
        config: Config,
        clock: ManualClock,
        server: SimServer,
        tokens: K,
    ) -> Self {
        let store = MemoryStore::new();
        let transport = SimTransport::new(server.clone());
        let events = TimedEvents {
            clock: clock.clone(),
            log: Rc::default(),
        };
        let engine = Engine::new(
            config.clone(),
            store.clone(),
            transport.clone(),
            clock.clone(),
            tokens,
            events.clone(),
            seed,
        );
        Self {
            clock,
            server,
            store,
            transport,
            events,
            engine,
            config,
        }
    }

    /// A new engine on the same store, server and events: a restarted worker.
    pub fn restart(&mut self, tokens: K, seed: u64) {
        self.transport = SimTransport::new(self.server.clone());
        self.engine = Engine::new(
            self.config.clone(),
            self.store.clone(),
            self.transport.clone(),
            self.clock.clone(),
            tokens,
            self.events.clone(),
            seed,
        );
    }

    /// A message on the seed route: lane `to.id`, key in externalId + header.
    pub fn request(&self, lane: &str, text: &str) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            url: format!("{}{SEED_PATH}", SimServer::ORIGIN),
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!(r#"{{"to":{{"id":"{lane}"}},"text":"{text}"}}"#).into_bytes(),
        }
    }

    pub fn submit(&self, lane: &str, text: &str) -> Entry {
        run_until_stalled(self.engine.submit(&self.request(lane, text)))
            .unwrap()
            .unwrap()
    }

    pub fn flush(&self) -> FlushReport {
        run_until_stalled(self.engine.flush())
            .expect("flush stalled")
            .unwrap()
    }

    /// A flush by a sender that holds the flush lock (takes over leases).
    pub fn flush_exclusive(&self) -> FlushReport {
        run_until_stalled(self.engine.flush_exclusive())
            .expect("flush stalled")
            .unwrap()
    }

    /// Flushes, advancing the clock to each wake-up, until nothing waits on
    /// time or `max_steps` run out. Returns the number of steps.
    pub fn drain(&self, max_steps: usize) -> usize {
        for step in 0..max_steps {
            let report = self.flush();
            match report.next_wake {
                Some(at) => self.clock.set(at.max(self.clock.now())),
                None => return step + 1,
            }
        }
        max_steps
    }

    pub fn stats(&self) -> outbox_core::queue::Stats {
        run_until_stalled(self.engine.stats()).unwrap().unwrap()
    }

    pub fn dead(&self) -> Vec<Entry> {
        use outbox_driver::store::Store;
        run_until_stalled(self.store.dead_letters(usize::MAX))
            .unwrap()
            .unwrap()
    }
}
