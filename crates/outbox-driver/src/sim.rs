//! A deterministic simulation kit: a simulated Genesys-like server with
//! faults, a transport to it, a token source it issues, and a small
//! executor. The property tests and the herd benchmark run the real
//! [`Engine`](crate::engine::Engine) against it under a
//! [`ManualClock`].
//!
//! Every request takes one poll to arrive and one more to answer, so a
//! batch's requests all reach the server before any answer reaches the
//! engine — as on a real network, and as the invariants about "after a
//! 429" need.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use crate::token::{MemoryTokens, TokenSource};
use crate::transport::Transport;
use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::{Clock, ManualClock, Millis, Random, SplitMix64};
use outbox_core::json;
use outbox_core::request::OutgoingRequest;

/// Faults and behaviour of the simulated server. Rates are probabilities
/// per request, in `0.0..=1.0`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SimFaults {
    /// Every request fails as if offline.
    pub outage: bool,
    /// Connection fails before the server sees the request.
    pub network_error_rate: f64,
    /// The server records the message, then the connection is cut.
    pub lost_ack_rate: f64,
    /// `503` without processing.
    pub server_error_rate: f64,
    /// `403` (a permanent refusal) without processing.
    pub permanent_error_rate: f64,
    /// `401`: the token presented is expired from now on.
    pub unauthorized_rate: f64,
    /// Answer the next this many requests (that reach the server with a
    /// valid token) `401`, expiring their token: a count, for tests that
    /// need a burst in order.
    pub unauthorized_next: u32,
    /// Per-origin limit: at most `limit` requests in any `window_ms`; more
    /// get `429` with `Retry-After`.
    pub rate_limit: Option<(u32, Millis)>,
    /// Answer `429` with this `Retry-After` (seconds) at this rate, beyond
    /// the window limit (a server under pressure).
    pub random_429: Option<(f64, u64)>,
    /// Whether the server de-duplicates on the idempotency key (real
    /// Genesys does not).
    pub honour_idempotency: bool,
}

/// What happened to one request at the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SimOutcome {
    /// Recorded as a first delivery.
    Delivered,
    /// Seen before: recorded again (idempotency off) or suppressed (on).
    Duplicate {
        /// Whether it was recorded again.
        recorded: bool,
    },
    /// Recorded, then the connection was cut.
    LostAck {
        /// Whether it was a first delivery.
        first: bool,
    },
    /// `429` with this `Retry-After` in milliseconds.
    RateLimited {
        /// The wait announced.
        retry_after_ms: Millis,
    },
    /// `401`.
    Unauthorized,
    /// `503`.
    ServerError,
    /// `403`.
    Refused,
    /// Failed before reaching the server.
    NetworkError,
}

/// One request as the server saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestRecord {
    /// Logical time of arrival (see [`SimServer::tick`]).
    pub tick: u64,
    /// Clock time of arrival.
    pub at: Millis,
    /// Target origin.
    pub origin: String,
    /// Lane (conversation) the request names.
    pub lane: String,
    /// Idempotency key (or message text when there is none).
    pub key: String,
    /// What happened.
    pub outcome: SimOutcome,
    /// Logical time the answer reached the client (0 until it does).
    pub answered_tick: u64,
}

struct State {
    clock: ManualClock,
    rng: SplitMix64,
    faults: SimFaults,
    tick: u64,
    requests: Vec<RequestRecord>,
    first_deliveries: Vec<(String, String)>,
    delivered: HashMap<String, u32>,
    valid_tokens: HashSet<String>,
    next_token: u64,
    recent: HashMap<String, VecDeque<Millis>>,
}

/// A simulated Genesys-like server. Clones share state.
#[derive(Clone)]
pub struct SimServer(Rc<RefCell<State>>);

impl SimServer {
    /// The origin tests route to.
    pub const ORIGIN: &'static str = "https://sim.outbox.test";

    /// A healthy server on `clock`, with fault randomness from `seed`.
    pub fn new(clock: ManualClock, seed: u64) -> Self {
        let mut valid_tokens = HashSet::new();
        valid_tokens.insert("t1".to_owned());
        Self(Rc::new(RefCell::new(State {
            clock,
            rng: SplitMix64::new(seed),
            faults: SimFaults::default(),
            tick: 0,
            requests: Vec::new(),
            first_deliveries: Vec::new(),
            delivered: HashMap::new(),
            valid_tokens,
            next_token: 1,
            recent: HashMap::new(),
        })))
    }

    /// Sets the faults.
    pub fn set_faults(&self, faults: SimFaults) {
        self.0.borrow_mut().faults = faults;
    }

    /// The faults in force.
    pub fn faults(&self) -> SimFaults {
        self.0.borrow().faults.clone()
    }

    /// The logical clock: increments at every arrival and every answer.
    pub fn tick(&self) -> u64 {
        self.0.borrow().tick
    }

    /// Every request seen, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.0.borrow().requests.clone()
    }

    /// First deliveries `(lane, key)` in arrival order.
    pub fn first_deliveries(&self) -> Vec<(String, String)> {
        self.0.borrow().first_deliveries.clone()
    }

    /// Keys first delivered on `lane`, in arrival order.
    pub fn delivered_lane(&self, lane: &str) -> Vec<String> {
        self.0
            .borrow()
            .first_deliveries
            .iter()
            .filter(|(l, _)| l == lane)
            .map(|(_, k)| k.clone())
            .collect()
    }

    /// How many times each key was recorded.
    pub fn delivery_counts(&self) -> HashMap<String, u32> {
        self.0.borrow().delivered.clone()
    }

    /// Issues a fresh valid token.
    pub fn issue_token(&self) -> String {
        let mut s = self.0.borrow_mut();
        s.next_token += 1;
        let token = format!("t{}", s.next_token);
        s.valid_tokens.insert(token.clone());
        token
    }

    /// Expires every token issued so far.
    pub fn expire_tokens(&self) {
        self.0.borrow_mut().valid_tokens.clear();
    }

    fn answered(&self, index: usize) {
        let mut s = self.0.borrow_mut();
        s.tick += 1;
        let tick = s.tick;
        if let Some(r) = s.requests.get_mut(index) {
            r.answered_tick = tick;
        }
    }

    /// Handles one request; returns the index of its record and the answer.
    fn handle(&self, request: &OutgoingRequest<'_>) -> (usize, Result<Response, TransportError>) {
        let mut guard = self.0.borrow_mut();
        let s = &mut *guard;
        s.tick += 1;
        let now = s.clock.now();
        let origin = outbox_core::url::parse(request.url)
            .map(|p| p.origin)
            .unwrap_or_default();
        let (lane, key) = identify(request);
        let token = request
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .and_then(|(_, v)| outbox_core::headers::bearer_token(v))
            .map(str::to_owned);
        let faults = s.faults.clone();
        let mut roll = |p: f64| p > 0.0 && (s.rng.next_u64() as f64 / u64::MAX as f64) < p;

        let network = || TransportError {
            kind: FailureKind::Network,
            message: "connection refused (simulated)".into(),
        };
        let (outcome, result) = if faults.outage || roll(faults.network_error_rate) {
            (SimOutcome::NetworkError, Err(network()))
        } else if token.as_ref().is_none_or(|t| !s.valid_tokens.contains(t)) {
            (
                SimOutcome::Unauthorized,
                Ok(error_response(401, "credentials.expired")),
            )
        } else if faults.unauthorized_next > 0 || roll(faults.unauthorized_rate) {
            s.faults.unauthorized_next = faults.unauthorized_next.saturating_sub(1);
            if let Some(t) = &token {
                s.valid_tokens.remove(t);
            }
            (
                SimOutcome::Unauthorized,
                Ok(error_response(401, "credentials.expired")),
            )
        } else if let Some(wait) = rate_limited(&mut s.recent, &origin, now, faults.rate_limit) {
            let secs = wait.div_ceil(1000).max(1);
            let mut r = error_response(429, "too.many.requests.retry.after");
            r.headers.push(("retry-after".into(), secs.to_string()));
            (
                SimOutcome::RateLimited {
                    retry_after_ms: secs * 1000,
                },
                Ok(r),
            )
        } else if let Some(secs) = faults
            .random_429
            .and_then(|(p, secs)| roll(p).then_some(secs))
        {
            let mut r = error_response(429, "too.many.requests.retry.after");
            r.headers.push(("retry-after".into(), secs.to_string()));
            (
                SimOutcome::RateLimited {
                    retry_after_ms: secs * 1000,
                },
                Ok(r),
            )
        } else if roll(faults.server_error_rate) {
            (
                SimOutcome::ServerError,
                Ok(error_response(503, "service.unavailable")),
            )
        } else if roll(faults.permanent_error_rate) {
            (
                SimOutcome::Refused,
                Ok(error_response(403, "not.authorized")),
            )
        } else {
            let seen = s.delivered.contains_key(&key);
            let record = !(seen && faults.honour_idempotency);
            if record {
                *s.delivered.entry(key.clone()).or_default() += 1;
                if !seen {
                    s.first_deliveries.push((lane.clone(), key.clone()));
                }
            }
            let lost = roll(faults.lost_ack_rate);
            let outcome = match (lost, seen) {
                (true, _) => SimOutcome::LostAck { first: !seen },
                (false, false) => SimOutcome::Delivered,
                (false, true) => SimOutcome::Duplicate { recorded: record },
            };
            let result = if lost {
                Err(network())
            } else {
                Ok(Response {
                    status: 200,
                    headers: vec![("content-type".into(), "application/json".into())],
                    body: br#"{"id":"sim"}"#.to_vec(),
                })
            };
            (outcome, result)
        };
        let tick = s.tick;
        s.requests.push(RequestRecord {
            tick,
            at: now,
            origin,
            lane,
            key,
            outcome,
            answered_tick: 0,
        });
        (s.requests.len() - 1, result)
    }
}

/// Sliding-window limiter: `Some(wait)` when over the limit.
fn rate_limited(
    recent: &mut HashMap<String, VecDeque<Millis>>,
    origin: &str,
    now: Millis,
    limit: Option<(u32, Millis)>,
) -> Option<Millis> {
    let (limit, window) = limit?;
    let times = recent.entry(origin.to_owned()).or_default();
    while times.front().is_some_and(|t| *t + window <= now) {
        times.pop_front();
    }
    if times.len() >= limit as usize {
        let oldest = times.front().copied().unwrap_or(now);
        return Some(oldest + window - now);
    }
    times.push_back(now);
    None
}

fn error_response(status: u16, code: &str) -> Response {
    Response {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: format!(
            r#"{{"message":"simulated {status}","code":"{code}","status":{status},"contextId":"sim-ctx"}}"#
        )
        .into_bytes(),
    }
}

/// The lane and key a request names: the conversation (from the agent-send
/// path, or `to.id`, `conversationId`, `channel.from.id`, `toAddress`) and
/// the idempotency key (header, `externalId`, `channel.messageId`, else
/// the text).
fn identify(request: &OutgoingRequest<'_>) -> (String, String) {
    let body = request.body;
    let text =
        |path: &[&str]| json::find(body, path).and_then(|v| v.as_key().map(|s| s.into_owned()));
    let path = outbox_core::url::parse(request.url)
        .map(|p| p.path)
        .unwrap_or("");
    let segments: Vec<&str> = path.split('/').collect();
    let from_path = (segments.len() == 9 && segments.get(6) == Some(&"communications"))
        .then(|| segments[5].to_owned());
    let lane = from_path
        .or_else(|| text(&["to", "id"]))
        .or_else(|| text(&["conversationId"]))
        .or_else(|| text(&["channel", "from", "id"]))
        .or_else(|| text(&["toAddress"]))
        .unwrap_or_default();
    let key = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("idempotency-key"))
        .map(|(_, v)| v.clone())
        .or_else(|| text(&["externalId"]))
        .or_else(|| text(&["channel", "messageId"]))
        .or_else(|| text(&["textBody"]))
        .or_else(|| text(&["text"]))
        .unwrap_or_default();
    (lane, key)
}

/// A transport to a [`SimServer`]. It can simulate a crash: after a set
/// number of further sends, the next send never completes (and, at the
/// roll of a die, was or was not processed), so the engine's flush stalls
/// and the harness drops it, as a browser kills a worker.
#[derive(Clone)]
pub struct SimTransport {
    server: SimServer,
    crash_after: Rc<Cell<Option<u32>>>,
    crashed: Rc<Cell<bool>>,
}

impl SimTransport {
    /// A transport to `server`.
    pub fn new(server: SimServer) -> Self {
        Self {
            server,
            crash_after: Rc::new(Cell::new(None)),
            crashed: Rc::new(Cell::new(false)),
        }
    }

    /// Crash after `sends` more sends complete normally.
    pub fn crash_after(&self, sends: u32) {
        self.crash_after.set(Some(sends));
        self.crashed.set(false);
    }

    /// Whether the crash happened.
    pub fn crashed(&self) -> bool {
        self.crashed.get()
    }
}

/// Returns `Pending` once (waking itself), then `Ready`.
struct YieldOnce(bool);

impl Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

impl Transport for SimTransport {
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError> {
        match self.crash_after.get() {
            Some(0) => {
                self.crash_after.set(None);
                self.crashed.set(true);
                // Half the time the server got it before the lights went out.
                if self.server.0.borrow_mut().rng.next_u64().is_multiple_of(2) {
                    let _ = self.server.handle(&request);
                }
                std::future::pending::<()>().await;
            }
            Some(n) => self.crash_after.set(Some(n - 1)),
            None => {}
        }
        let (index, result) = self.server.handle(&request);
        YieldOnce(false).await;
        self.server.answered(index);
        result
    }
}

/// A token source backed by the server: a request is answered at once with
/// a freshly issued token (like a same-origin token URL).
#[derive(Clone)]
pub struct SimTokens {
    server: SimServer,
    inner: MemoryTokens,
}

impl SimTokens {
    /// Tokens from `server`, starting with `"t1"` for [`SimServer::ORIGIN`].
    pub fn new(server: SimServer) -> Self {
        let inner = MemoryTokens::new();
        inner.offer(SimServer::ORIGIN, "t1");
        Self { server, inner }
    }
}

impl TokenSource for SimTokens {
    fn current(&self, origin: &str) -> Option<String> {
        self.inner.current(origin)
    }
    fn offer(&self, origin: &str, token: &str) -> bool {
        self.inner.offer(origin, token)
    }
    fn rejected(&self, origin: &str, token: &str) {
        self.inner.rejected(origin, token);
    }
    async fn request(&self, origin: &str) -> Option<String> {
        let token = self.server.issue_token();
        self.inner.offer(origin, &token);
        Some(token)
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `future` for as long as it makes progress. Returns its output, or
/// `None` when it stalls (pending without having woken itself) — a crash,
/// in the simulation; the future is then dropped.
pub fn run_until_stalled<F: Future>(future: F) -> Option<F::Output> {
    let flag = Arc::new(Flag(AtomicBool::new(false)));
    let waker = Waker::from(flag.clone());
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(future);
    loop {
        flag.0.store(false, Ordering::SeqCst);
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return Some(v),
            Poll::Pending if flag.0.load(Ordering::SeqCst) => continue,
            Poll::Pending => return None,
        }
    }
}
