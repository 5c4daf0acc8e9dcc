//! Outbox in the herd: the real [`Engine`] with its default policy (full
//! jitter backoff, pacing, `Retry-After`, `inin-ratelimit-*`, leases), one
//! engine and [`MemoryStore`] per client, driven like the browser's flusher
//! (flush; again at once while work is due; else a timer at `next_wake`).
//!
//! The transport does not call the server itself: a send parks its request
//! in a slot and returns `Pending`; the client's driver hands parked
//! requests to the shared server at the current virtual time and polls the
//! flush again when the answers are due.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::{Clock, ManualClock, Millis};
use outbox_core::config::Config;
use outbox_core::event::NoEvents;
use outbox_core::report::FlushReport;
use outbox_core::request::IncomingRequest;
use outbox_core::request::OutgoingRequest;
use outbox_core::route::{RouteTable, default_routes};
use outbox_driver::engine::Engine;
use outbox_driver::memory::MemoryStore;
use outbox_driver::sim::run_until_stalled;
use outbox_driver::token::{MemoryTokens, TokenSource};
use outbox_driver::transport::Transport;

use super::server::{Answer, Server};
use super::{Client, ClientEnd, ClientSetup, Scenario};

/// The herd's API origin.
pub const ORIGIN: &str = "https://api.herd.outbox.test";

#[derive(Clone, Copy)]
enum Slot {
    Parked(usize),
    Sent(Answer, Millis),
    Done,
}

type Slots = Rc<RefCell<Vec<Rc<Cell<Slot>>>>>;

/// A send waiting for the driver, then for its answer's time.
struct Send {
    slot: Rc<Cell<Slot>>,
    clock: ManualClock,
}

impl Future for Send {
    type Output = Result<Response, TransportError>;
    fn poll(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.slot.get() {
            Slot::Sent(answer, at) if at <= self.clock.now() => {
                self.slot.set(Slot::Done);
                Poll::Ready(response(answer))
            }
            _ => Poll::Pending,
        }
    }
}

fn error_body(status: u16, code: &str, message: &str) -> Vec<u8> {
    format!(r#"{{"message":"{message}","code":"{code}","status":{status},"contextId":"herd"}}"#)
        .into_bytes()
}

fn response(answer: Answer) -> Result<Response, TransportError> {
    let json = ("content-type".to_owned(), "application/json".to_owned());
    match answer {
        Answer::Ok {
            count,
            allowed,
            reset_s,
        } => Ok(Response {
            status: 200,
            headers: vec![
                json,
                ("inin-ratelimit-count".into(), count.to_string()),
                ("inin-ratelimit-allowed".into(), allowed.to_string()),
                ("inin-ratelimit-reset".into(), reset_s.to_string()),
            ],
            body: br#"{"id":"herd","status":"queued"}"#.to_vec(),
        }),
        Answer::TooMany {
            retry_after_s,
            allowed,
        } => Ok(Response {
            status: 429,
            headers: vec![
                json,
                ("retry-after".into(), retry_after_s.to_string()),
                ("inin-ratelimit-count".into(), allowed.to_string()),
                ("inin-ratelimit-allowed".into(), allowed.to_string()),
                ("inin-ratelimit-reset".into(), retry_after_s.to_string()),
            ],
            body: error_body(
                429,
                "too.many.requests.retry.after",
                &format!(
                    "Rate limit exceeded the maximum. Retry the request in [{retry_after_s}] seconds"
                ),
            ),
        }),
        Answer::Unavailable => Ok(Response {
            status: 503,
            headers: vec![json],
            body: error_body(503, "service.unavailable", "Service Unavailable"),
        }),
        Answer::Failed(status) => Ok(Response {
            status,
            headers: vec![json],
            body: error_body(status, "internal.server.error", "Injected server error"),
        }),
        Answer::LostAck | Answer::Offline => Err(TransportError {
            kind: FailureKind::Network,
            message: "Failed to fetch".into(),
        }),
    }
}

/// A transport whose sends wait for the client's driver.
#[derive(Clone)]
pub struct HerdTransport {
    slots: Slots,
    clock: ManualClock,
}

impl Transport for HerdTransport {
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError> {
        let message = message_of(request.body);
        let slot = Rc::new(Cell::new(Slot::Parked(message)));
        self.slots.borrow_mut().push(slot.clone());
        Send {
            slot,
            clock: self.clock.clone(),
        }
        .await
    }
}

/// The message index a body names (`{"textBody":"<index>"}`).
fn message_of(body: &[u8]) -> usize {
    body.iter()
        .filter(|b| b.is_ascii_digit())
        .fold(0usize, |n, d| n * 10 + usize::from(d - b'0'))
}

type HerdEngine = Engine<MemoryStore, HerdTransport, ManualClock, MemoryTokens, NoEvents>;

/// What every Outbox client shares: the clock and the configuration.
pub struct Shared {
    clock: ManualClock,
    config: Config,
    lanes: usize,
    online_signal: bool,
}

impl Shared {
    /// The engine's default configuration on the herd's origin.
    /// `online_signal`: whether the page forwards the `online` event;
    /// `throttle`: whether the herd throttle is on (the default).
    pub fn new(
        clock: ManualClock,
        scenario: &Scenario,
        online_signal: bool,
        throttle: bool,
    ) -> Self {
        let mut config = Config::default();
        config.pacer.throttle.enabled = throttle;
        let mut routes = RouteTable::empty();
        for r in default_routes() {
            routes.add_route(r);
        }
        // A constant, valid origin.
        let _ = routes.add_origin(ORIGIN);
        config.routes = routes;
        assert!(
            config.batch_size <= 30,
            "the driver relies on join_all polling every send"
        );
        Self {
            clock,
            config,
            lanes: scenario.lanes.max(1),
            online_signal,
        }
    }
}

type Flush = Pin<Box<dyn Future<Output = FlushReport>>>;

/// One simulated browser running Outbox.
pub struct OutboxClient {
    index: usize,
    first: usize,
    lanes: usize,
    engine: Rc<HerdEngine>,
    slots: Slots,
    writes: Vec<Millis>,
    next_write: usize,
    /// The `online` events still to come, sorted.
    online_events: Vec<Millis>,
    online_signal: bool,
    timer_at: Option<Millis>,
    flush: Option<Flush>,
    again: bool,
}

impl OutboxClient {
    /// A client with its own engine and store.
    pub fn new(s: ClientSetup, shared: &Shared) -> Self {
        let slots: Slots = Rc::default();
        let tokens = MemoryTokens::new();
        tokens.offer(ORIGIN, &format!("token-{}", s.index));
        let transport = HerdTransport {
            slots: slots.clone(),
            clock: shared.clock.clone(),
        };
        let engine = Engine::new(
            shared.config.clone(),
            MemoryStore::new(),
            transport,
            shared.clock.clone(),
            tokens,
            NoEvents,
            s.seed,
        );
        Self {
            index: s.index,
            first: s.first_message,
            lanes: shared.lanes,
            engine: Rc::new(engine),
            slots,
            writes: s.writes,
            next_write: 0,
            online_events: s.online_events,
            online_signal: shared.online_signal,
            timer_at: None,
            flush: None,
            again: false,
        }
    }

    fn request(&self, k: usize) -> IncomingRequest {
        IncomingRequest {
            method: "POST".into(),
            url: format!(
                "{ORIGIN}/api/v2/conversations/messages/conv-{}/communications/agent/messages",
                k % self.lanes
            ),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                (
                    "authorization".into(),
                    format!("Bearer token-{}", self.index),
                ),
            ],
            body: format!(r#"{{"textBody":"{}"}}"#, self.first + k).into_bytes(),
        }
    }

    fn start_flush(&self) -> Flush {
        let engine = self.engine.clone();
        Box::pin(async move {
            match engine.flush().await {
                Ok(report) => report,
                Err(never) => match never {},
            }
        })
    }
}

impl Client for OutboxClient {
    fn wake(&mut self, now: Millis, server: &mut Server) -> Option<Millis> {
        let mut kick = false;
        while self.writes.get(self.next_write).is_some_and(|t| *t <= now) {
            let request = self.request(self.next_write);
            self.next_write += 1;
            // The page door: durable first (write-through), then a flush.
            let submitted = run_until_stalled(self.engine.submit(&request));
            assert!(
                matches!(submitted, Some(Ok(_))),
                "the memory store takes every entry"
            );
            kick = true;
        }
        let online = self.online_events.iter().take_while(|t| **t <= now).count();
        if online > 0 {
            self.online_events.drain(..online);
            if self.online_signal {
                // The page's `online` event: what waited for the network is due.
                let _ = run_until_stalled(self.engine.network_back());
                kick = true;
            }
        }
        if self.timer_at.is_some_and(|t| t <= now) {
            self.timer_at = None;
            kick = true;
        }
        let mut cx = Context::from_waker(Waker::noop());
        loop {
            if std::mem::take(&mut kick) {
                if self.flush.is_some() {
                    self.again = true;
                } else {
                    self.flush = Some(self.start_flush());
                }
            }
            let Some(flush) = self.flush.as_mut() else {
                break;
            };
            match flush.as_mut().poll(&mut cx) {
                Poll::Ready(report) => {
                    self.flush = None;
                    let due = report.next_wake.is_some_and(|t| t <= now);
                    if std::mem::take(&mut self.again) || due {
                        kick = true;
                        continue;
                    }
                    if let Some(t) = report.next_wake {
                        self.timer_at = Some(self.timer_at.map_or(t, |x| x.min(t)));
                    }
                    break;
                }
                Poll::Pending => {
                    // Hand the parked requests to the server, now.
                    let slots = self.slots.borrow();
                    for slot in slots.iter() {
                        if let Slot::Parked(m) = slot.get() {
                            let (answer, at) = server.handle(now, self.index, m);
                            slot.set(Slot::Sent(answer, at));
                        }
                    }
                    break;
                }
            }
        }
        self.slots
            .borrow_mut()
            .retain(|s| !matches!(s.get(), Slot::Done));
        let answers = self
            .slots
            .borrow()
            .iter()
            .filter_map(|s| match s.get() {
                Slot::Sent(_, at) => Some(at),
                _ => None,
            })
            .min();
        [
            answers,
            self.timer_at,
            self.writes.get(self.next_write).copied(),
            self.online_events.first().copied(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn end(&self) -> ClientEnd {
        let stats = run_until_stalled(self.engine.stats())
            .and_then(Result::ok)
            .unwrap_or_default();
        ClientEnd {
            dropped: 0,
            queued: stats.queued() as u64,
            dead: stats.dead as u64,
        }
    }
}
