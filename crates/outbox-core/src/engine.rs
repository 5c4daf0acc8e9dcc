//! The engine: every outbound message made durable, then delivered in
//! order, with nothing lost and nothing silently dropped.
//!
//! This doc tells the whole design before any code; `docs/DESIGN.md` tells
//! it for the product, this for the engine.
//!
//! # What it is
//!
//! An [`Engine`] owns no I/O. A driver hands it a [`Store`] (the queue:
//! IndexedDB in the browser, [`MemoryStore`](crate::memory::MemoryStore) in
//! tests), a [`Transport`] (`fetch`, the Guest WebSocket, the simulator), a
//! [`Clock`], a [`TokenSource`] and an [`EventSink`]; the engine makes
//! every decision and calls them. The service worker, the page, the native
//! tests and the simulator run this same code; only the drivers differ.
//! Every decision it makes is a pure function elsewhere in the crate
//! (routing in [`route`](crate::route), intercept rules in
//! [`intercept`], what an answer means in [`classify`](crate::classify),
//! what to do about it in [`retry`](crate::retry), which heads go in
//! [`scheduler`](crate::scheduler), pacing in [`pacer`](crate::pacer)); the
//! engine wires them to the store and the network.
//!
//! # Entries, lanes and order
//!
//! A request a [`Route`](crate::route::Route) matches becomes an
//! [`Entry`]: a fresh id (also its idempotency key unless the request
//! carries one), a global `seq`, a *lane* (the ordering key, usually the
//! conversation), the request without credentials. Entries of one lane go
//! out strictly one at a time, in `seq` order: a lane's head blocks its own
//! lane and no other. An entry is in one of four states:
//!
//! ```text
//!             enqueue                       claim (lease)
//!   request ─────────▶ pending ─────────────────────────▶ in-flight
//!                        ▲  ▲                                 │ settle:
//!                        │  └──── retry (backoff, not_before) ┤ 2xx / 409 on a carrier route → deleted (sent)
//!      token arrives     │                                    │ 401 → awaiting-token
//!  awaiting-token ───────┘◀───────────────────────────────────┤ 4xx, limits → dead
//!                                                             │ lease runs out (sender died) → sent again
//!   dead ──revive──▶ pending      dead ──discard──▶ gone      ▼
//! ```
//!
//! A dead letter keeps its request and its last error until the app
//! revives or discards it; nothing leaves the queue without an event. Its
//! lane **holds** meanwhile ([`hold`](crate::hold)): later entries wait,
//! visibly, so that a conversation never arrives with a hole — unless the
//! route says `onDead: skip`. Every transition above is written once, in
//! `impl Entry`; the stores persist what it returns.
//!
//! # The two front doors
//!
//! * **Intercept** (the service worker): [`Engine::route`], then
//!   [`Engine::before_forward`] — a lane with a backlog or held behind a
//!   dead letter, or an origin paused by a rate limit, queues at once
//!   (`202`); otherwise the driver forwards
//!   the request live, and [`Engine::after_forward`] passes `2xx` and real
//!   `4xx` answers through and queues the rest (network failure, timeout,
//!   `408`, `429`, `5xx`; `401` queued awaiting a token).
//! * **Write-through** (the page): [`Engine::submit`] makes the request
//!   durable at once; a flush delivers it.
//!
//! Enqueue is durable before anyone is told "queued".
//!
//! # The flush
//!
//! [`Engine::flush`] runs short *cycles* until nothing is ready or
//! [`Config::max_cycles_per_flush`] is spent (browsers kill long-running
//! workers), and returns when to run again. What a flush decides is a
//! synchronous machine, [`Flush`]: it is polled for the next piece of I/O
//! and fed the result; `Engine::flush` is its one
//! driver, a loop that does that I/O over the [`Store`], the
//! [`Transport`] and the [`TokenSource`]. One cycle is **one store step**,
//! then the network:
//!
//! 1. **Settle and claim** (one transaction,
//!    [`Store::settle_and_claim`]): apply the previous cycle's settlements
//!    whose lease still matches ([`Entry::settle`]), with their pacing
//!    consequences
//!    ([`Verdicts::update_schedule`](crate::verdict::Verdicts::update_schedule):
//!    lanes held behind new dead letters, throttle signals, a `429` or a `503` with
//!    `Retry-After` pausing the whole origin, `inin-ratelimit-*` capping
//!    what is left of the window); then, on the state just written, read
//!    every lane's head and the pacing state,
//!    [`plan`](crate::scheduler::plan) which heads go
//!    (ready, one per lane, at most [`Config::batch_size`], within each
//!    origin's pacing budget, a token in hand, its lane not held), lease
//!    them until `now + lease_ms`, and move heads past their limits (or
//!    unreadable: `corrupt`) to dead, holding their lanes, and heads
//!    without a token to awaiting-token. The first cycle of a flush only
//!    claims; a flush whose budget runs out settles its last answers alone.
//! 2. **Events** for what applied, then for what was claimed.
//! 3. **Tokens**: ask for a token for each origin that lacks one (and again
//!    every `token_retry_ms` while entries wait).
//! 4. **Send** the claimed entries concurrently, outside any transaction,
//!    each with the token in hand. Entries leased to *follow* a head of
//!    their lane (up to [`BATCHES_PER_CYCLE`](crate::flush::BATCHES_PER_CYCLE)
//!    batches' worth a cycle) go one after the other, each once the one
//!    before it is delivered (see [`flush`](crate::flush)): one store step
//!    per cycle, not per message, and never more than a batch in flight.
//! 5. **Judge** the answers ([`verdict::judge`](crate::verdict::judge),
//!    pure): [`classify`] then
//!    [`RetryPolicy::decide`](crate::retry::RetryPolicy::decide) —
//!    delivered, retry at a time (exponential backoff with full jitter,
//!    never before a `Retry-After`), await a token, or dead — into
//!    settlements for the next cycle's store step.
//!
//! An origin that just came back from an outage gets its backlog spread
//! ([`crate::throttle`]) before the claim that would send it: that store
//! step claims nothing, and the next one claims within the spread.
//!
//! # Crash safety and duplicates
//!
//! A sender that dies leaves leases behind; when they run out the entries
//! are claimed again and sent with the same idempotency key, counted as a
//! failure. A flusher that holds the origin-wide flush lock
//! ([`Engine::flush_exclusive`]) knows no other sender lives and takes
//! standing leases over at once. Delivery is therefore at-least-once
//! everywhere and exactly-once where the server honours the key (a carrier
//! route with idempotency on); a `409` on such a route counts as delivered.
//!
//! # Tokens
//!
//! No token or secret is ever stored. An entry that needs a token and has
//! none waits in awaiting-token; the [`TokenSource`] is asked (a same-origin
//! token URL, or the page), and [`Engine::token_updated`] releases the
//! origin's parked entries. A `401` marks the token rejected and parks the
//! entry until a fresh token *and* a backoff; a run of `401`s becomes a
//! dead letter only with at least
//! [`max_auth_failures`](crate::retry::RetryPolicy::max_auth_failures)
//! answers spread over at least
//! [`auth_window_ms`](crate::retry::RetryPolicy::auth_window_ms), so a
//! token blip is not fatal.
//!
use std::cell::RefCell;

use crate::join::join_all;

use crate::classify::{ClassifyConfig, Outcome, Response, TransportError, classify};
use crate::clock::{Clock, Millis, Random, SplitMix64};
use crate::entry::{Entry, EntryId, EntryState, LastError};
use crate::entry::{Head, Seq};
use crate::event::{Event, EventSink};
use crate::flush::{Flush, Io, TokenAsks};
use crate::intercept::{self, AfterForward, BeforeForward, QueueReason};
use crate::pacer::PacerConfig;
use crate::pacer::ScheduleState;
use crate::retry::RetryPolicy;
use crate::route::{IncomingRequest, Prepared, RouteTable, Routing};
use crate::scheduler::Claim;
use crate::store::{
    CancelResult, Claimed, EnqueueError, Planner, QueueLimits, Settlement, Stats, Store,
};
use crate::token::TokenSource;
use crate::transport::{OutgoingRequest, Transport};
use crate::verdict::{Answer, OriginNote};

/// Everything the engine can be told.
#[derive(Debug, Clone)]
pub struct Config {
    /// What is intercepted, lanes, idempotency carriers.
    pub routes: RouteTable,
    /// Backoff and dead-letter limits.
    pub retry: RetryPolicy,
    /// Pacing per origin.
    pub pacer: PacerConfig,
    /// `Retry-After` fallback and cap.
    pub classify: ClassifyConfig,
    /// Queue size limits.
    pub limits: QueueLimits,
    /// Most requests sent at once in a flush cycle (default 8; one per lane).
    pub batch_size: usize,
    /// Send timeout (default 30 s).
    pub send_timeout_ms: u64,
    /// How long a send's lease lasts (default 60 s; longer than the
    /// timeout, so only a dead sender lets it expire).
    pub lease_ms: u64,
    /// Most cycles one [`Engine::flush`] runs before handing back (default
    /// 64; browsers kill long-running workers, so runs stay short).
    pub max_cycles_per_flush: usize,
    /// How long entries parked for a token wait before a token is asked
    /// for again (default 15 s).
    pub token_retry_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            routes: RouteTable::genesys(),
            retry: RetryPolicy::default(),
            pacer: PacerConfig::default(),
            classify: ClassifyConfig::default(),
            limits: QueueLimits::default(),
            batch_size: 8,
            send_timeout_ms: 30_000,
            lease_ms: 60_000,
            max_cycles_per_flush: 64,
            token_retry_ms: 15_000,
        }
    }
}

/// What a flush did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlushReport {
    /// Cycles run.
    pub cycles: usize,
    /// Requests sent.
    pub attempts: usize,
    /// Entries delivered.
    pub delivered: usize,
    /// Entries rescheduled.
    pub retried: usize,
    /// Entries that became dead letters.
    pub dead: usize,
    /// Entries parked for a token.
    pub awaiting_token: usize,
    /// When to flush again; `None` when nothing is waiting on time.
    pub next_wake: Option<Millis>,
}

/// What became of a forwarded request.
#[derive(Debug)]
pub enum Forwarded {
    /// Hand the server's answer to the caller.
    PassThrough(Outcome),
    /// It was queued; answer `202`.
    Queued(Box<Entry>),
}

/// Why [`Engine::submit`] refused a request. The caller keeps it.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError<E: std::error::Error + 'static> {
    /// No configured route matches.
    #[error("no configured route matches {method} {url}")]
    NoRoute {
        /// Method.
        method: String,
        /// URL.
        url: String,
    },
    /// A route matches but the request cannot be keyed.
    #[error("route `{route}` cannot take this request: {reason}")]
    Unroutable {
        /// Route.
        route: String,
        /// Why.
        reason: String,
    },
    /// The queue refused it.
    #[error(transparent)]
    Enqueue(#[from] EnqueueError<E>),
}

/// A boxed local future: large async bodies with several callers are
/// boxed once instead of being inlined into each caller.
type Boxed<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + 'a>>;

/// The outbox engine.
pub struct Engine<S, T, C, K, E> {
    config: Config,
    store: S,
    transport: T,
    clock: C,
    tokens: K,
    events: E,
    rng: RefCell<SplitMix64>,
    /// When a token was last asked for, per origin (in memory: a restarted
    /// engine asks at once).
    token_asks: RefCell<TokenAsks>,
}

impl<S, T, C, K, E> Engine<S, T, C, K, E>
where
    S: Store,
    T: Transport,
    C: Clock,
    K: TokenSource,
    E: EventSink,
{
    /// An engine over the given parts; `seed` seeds jitter and ids (the
    /// browser passes `crypto.getRandomValues`).
    pub fn new(
        config: Config,
        store: S,
        transport: T,
        clock: C,
        tokens: K,
        events: E,
        seed: u64,
    ) -> Self {
        Self {
            config,
            store,
            transport,
            clock,
            tokens,
            events,
            rng: RefCell::new(SplitMix64::new(seed)),
            token_asks: RefCell::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The token source.
    pub fn tokens(&self) -> &K {
        &self.tokens
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    fn new_id(&self) -> EntryId {
        EntryId::random(&mut *self.rng.borrow_mut())
    }

    /// Matches a request against the route table and prepares it (fresh id,
    /// credentials stripped, carriers filled).
    pub fn route(&self, request: &IncomingRequest) -> Routing {
        self.config.routes.prepare(request, self.new_id())
    }

    /// First decision for a matched request: forward it now, or queue it
    /// (its lane has a backlog, or its origin is paused). A bearer token on
    /// the request is taken as the latest token for its origin.
    pub async fn before_forward(&self, prepared: &Prepared) -> Result<BeforeForward, S::Error> {
        if let Some(token) = &prepared.bearer {
            self.token_updated(&prepared.origin, Some(token)).await?;
        }
        let now = self.clock.now();
        let (busy, schedule) = self.store.lane_and_schedule(&prepared.lane).await?;
        Ok(intercept::before_forward(
            busy,
            schedule.holds.is_held(&prepared.lane),
            schedule.paused_until(&prepared.origin, now),
            now,
        ))
    }

    /// Second decision, once the forwarded request answered (or did not):
    /// pass the answer through, or queue the request.
    pub async fn after_forward(
        &self,
        prepared: Prepared,
        result: &Result<Response, TransportError>,
    ) -> Result<Forwarded, EnqueueError<S::Error>> {
        let now = self.clock.now();
        let outcome = classify(
            result,
            prepared.conflict_is_delivered,
            now,
            &self.config.classify,
        );
        let note = OriginNote::read(result, &outcome, &self.config, now);
        self.heed(&prepared.origin, &note, now)
            .await
            .map_err(EnqueueError::Store)?;
        match intercept::after_forward(&outcome) {
            AfterForward::PassThrough => Ok(Forwarded::PassThrough(outcome)),
            AfterForward::Queue {
                awaiting_token,
                error,
            } => {
                if let (true, Some(token)) = (awaiting_token, &prepared.bearer) {
                    self.tokens.rejected(&prepared.origin, token);
                }
                let reason = error.to_string();
                let entry = self
                    .enqueue(prepared, awaiting_token, Some(error), &reason)
                    .await?;
                if awaiting_token {
                    self.request_token(&entry.origin)
                        .await
                        .map_err(EnqueueError::Store)?;
                }
                Ok(Forwarded::Queued(Box::new(entry)))
            }
        }
    }

    /// Writes what a live answer told its origin's pacing (a `429`'s
    /// pause, a nearly spent server window), as a flush would
    /// ([`OriginNote::apply`]); nothing when it told neither, to keep a
    /// healthy pass-through free of writes.
    async fn heed(&self, origin: &str, note: &OriginNote, now: Millis) -> Result<(), S::Error> {
        let pacer = self.config.pacer;
        if note.lets_more_go(&pacer) {
            return Ok(());
        }
        let mut paused = Vec::new();
        self.store
            .update_schedule(&mut |s| paused = note.apply(origin, s, &pacer, now))
            .await?;
        for (until, reason) in paused {
            self.events.emit(&Event::Paused {
                origin: origin.to_owned(),
                until,
                reason,
            });
        }
        Ok(())
    }

    /// Makes a prepared request durable.
    pub async fn enqueue(
        &self,
        prepared: Prepared,
        awaiting_token: bool,
        error: Option<LastError>,
        reason: &str,
    ) -> Result<Entry, EnqueueError<S::Error>> {
        let boxed: Boxed<'_, _> =
            Box::pin(self.enqueue_inner(prepared, awaiting_token, error, reason));
        boxed.await
    }

    /// The body of [`enqueue`](Self::enqueue), behind a box so that its
    /// state machine is compiled once however many callers it has (the
    /// wasm bundle's size depends on it).
    async fn enqueue_inner(
        &self,
        prepared: Prepared,
        awaiting_token: bool,
        error: Option<LastError>,
        reason: &str,
    ) -> Result<Entry, EnqueueError<S::Error>> {
        let now = self.clock.now();
        let entry = Entry {
            id: prepared.id,
            seq: 0,
            lane: prepared.lane,
            route: prepared.route,
            origin: prepared.origin,
            request: prepared.request,
            idempotency_key: prepared.idempotency_key,
            needs_token: prepared.needs_token,
            created_at: now,
            attempts: 0,
            failures: 0,
            auth_failures: 0,
            auth_since: None,
            not_before: now,
            state: if awaiting_token {
                EntryState::AwaitingToken
            } else {
                EntryState::Pending
            },
            last_error: error,
        };
        let entry = self.store.enqueue(entry, &self.config.limits).await?;
        self.events.emit(&Event::Queued {
            id: entry.id,
            lane: entry.lane.clone(),
            reason: reason.to_owned(),
        });
        if awaiting_token {
            self.events.emit(&Event::AwaitingToken {
                id: entry.id,
                lane: entry.lane.clone(),
                origin: entry.origin.clone(),
            });
        }
        Ok(entry)
    }

    /// The page door: routes a request and makes it durable at once
    /// ("write-through"); call [`flush`](Self::flush) to deliver.
    pub async fn submit(&self, request: &IncomingRequest) -> Result<Entry, SubmitError<S::Error>> {
        match self.route(request) {
            Routing::Unmatched => Err(SubmitError::NoRoute {
                method: request.method.clone(),
                url: request.url.clone(),
            }),
            Routing::Unroutable { route, reason } => Err(SubmitError::Unroutable { route, reason }),
            Routing::Matched(prepared) => {
                if let Some(token) = &prepared.bearer {
                    self.token_updated(&prepared.origin, Some(token))
                        .await
                        .map_err(|e| SubmitError::Enqueue(EnqueueError::Store(e)))?;
                }
                Ok(self
                    .enqueue(*prepared, false, None, "write-through")
                    .await?)
            }
        }
    }

    /// A token arrived for `origin` (or, with `None`, may have): entries
    /// waiting for one become pending again.
    pub async fn token_updated(
        &self,
        origin: &str,
        token: Option<&str>,
    ) -> Result<usize, S::Error> {
        let fresh = token.is_none_or(|t| self.tokens.offer(origin, t));
        if !fresh {
            return Ok(0);
        }
        self.release(origin).await
    }

    /// Makes the origin's parked entries pending again.
    fn release<'a>(&'a self, origin: &'a str) -> Boxed<'a, Result<usize, S::Error>> {
        Box::pin(async move {
            let released = self.store.release_awaiting_token(origin).await?;
            for head in &released {
                self.events.emit(&Event::Queued {
                    id: head.id,
                    lane: head.lane.clone(),
                    reason: "token arrived".into(),
                });
            }
            Ok(released.len())
        })
    }

    /// Asks for a token; when one comes at once, releases the origin's
    /// parked entries. Returns whether a token is in hand now.
    fn request_token<'a>(&'a self, origin: &'a str) -> Boxed<'a, Result<bool, S::Error>> {
        Box::pin(async move {
            self.token_asks.borrow_mut().asked(origin, self.clock.now());
            match self.tokens.request(origin).await {
                Some(token) => {
                    self.tokens.offer(origin, &token);
                    self.release(origin).await?;
                    Ok(true)
                }
                None => Ok(false),
            }
        })
    }

    /// Runs flush cycles — claim ready lane heads, send them concurrently,
    /// write the results back — until nothing is ready or the cycle budget
    /// is spent. Returns when to run again. Entries leased by a sender that
    /// died are sent again once their lease runs out.
    pub async fn flush(&self) -> Result<FlushReport, S::Error> {
        self.flush_with(false).await
    }

    /// Like [`flush`](Self::flush), for a caller that holds the origin-wide
    /// flush lock: then no other sender can be alive, every lease still
    /// standing was orphaned by a dead one, and those entries go at once
    /// instead of after their lease.
    pub async fn flush_exclusive(&self) -> Result<FlushReport, S::Error> {
        self.flush_with(true).await
    }

    /// The driver of a [`Flush`]: does the I/O it polls for, feeds the
    /// results back, tells its events.
    async fn flush_with(&self, exclusive: bool) -> Result<FlushReport, S::Error> {
        // The store calls two of the machine's methods inside its
        // transaction; a `RefCell` lends it to both (never across an await).
        let flush = RefCell::new(Flush::new(&self.config, exclusive));
        let tokens = &self.tokens;
        let has_token = |origin: &str| tokens.current(origin).is_some();
        loop {
            let io = flush.borrow_mut().poll(self.clock.now());
            let events = flush.borrow_mut().take_events();
            for event in &events {
                self.events.emit(event);
            }
            let mut settled_into = |schedule: &mut ScheduleState, applied: &[Settlement]| {
                flush.borrow_mut().settled_into(schedule, applied);
            };
            match io {
                Io::Store { settlements, terms } => {
                    let mut planner = FlushPlanner {
                        flush: &flush,
                        has_token: &has_token,
                    };
                    let (applied, claimed) = match settlements {
                        None => (Vec::new(), self.store.claim(terms, &mut planner).await?),
                        Some(settlements) => {
                            self.store
                                .settle_and_claim(
                                    settlements,
                                    &mut settled_into,
                                    terms,
                                    &mut planner,
                                )
                                .await?
                        }
                    };
                    let asks = self.token_asks.borrow();
                    flush.borrow_mut().stored(&applied, claimed, &asks);
                }
                Io::Settle { now, settlements } => {
                    let applied = self
                        .store
                        .settle(now, settlements, &mut settled_into)
                        .await?;
                    let asks = self.token_asks.borrow();
                    flush
                        .borrow_mut()
                        .stored(&applied, Claimed::default(), &asks);
                }
                Io::Spread(back) => self.spread_backlog(Some(back)).await?,
                Io::AskTokens(origins) => {
                    let mut in_hand = false;
                    for origin in &origins {
                        in_hand |= self.request_token(origin).await?;
                    }
                    flush.borrow_mut().token_asked(in_hand);
                }
                Io::Send(entries) => {
                    let answers = join_all(entries.iter().map(|e| self.send(e))).await;
                    let now = self.clock.now();
                    flush
                        .borrow_mut()
                        .answered(entries, answers, now, &mut *self.rng.borrow_mut());
                }
                Io::Forget(refused) => {
                    for (origin, token) in &refused {
                        self.tokens.rejected(origin, token);
                    }
                }
                Io::Done(report) => return Ok(report),
            }
        }
    }

    /// Sends one leased entry, attaching the token in hand.
    async fn send(&self, entry: &Entry) -> Answer {
        let token = if entry.needs_token {
            self.tokens.current(&entry.origin)
        } else {
            None
        };
        let mut headers = entry.request.headers.clone();
        if let Some(token) = &token {
            headers.push(crate::headers::authorization(token));
        }
        let request = OutgoingRequest {
            method: &entry.request.method,
            url: &entry.request.url,
            headers,
            body: &entry.request.body,
            timeout_ms: self.config.send_timeout_ms,
            unknown_outcome: entry.last_attempt_unanswered(),
        };
        let result = self.transport.send(request).await;
        Answer { token, result }
    }

    /// The device is back online (a page's `online` event): entries that
    /// were backing off only because no answer came are due now — within
    /// the spread of each origin that was unreachable (one probe first,
    /// the rest over a window growing with the outage; see
    /// [`crate::throttle`]). Returns how many; flush afterwards.
    pub async fn network_back(&self) -> Result<usize, S::Error> {
        let due = self.store.retry_unreachable_now(self.clock.now()).await?;
        self.spread_backlog(None).await?;
        Ok(due)
    }

    /// Spreads the backlog of origins back from an outage: those given
    /// `(origin, outage)`, or (`None`) every origin still unanswered.
    fn spread_backlog(
        &self,
        back: Option<Vec<(String, Millis)>>,
    ) -> Boxed<'_, Result<(), S::Error>> {
        Box::pin(async move {
            let now = self.clock.now();
            let backlog = self.store.stats(now).await?.queued() as u64;
            let phase = self.rng.borrow_mut().next_u64();
            let pacer = self.config.pacer;
            self.store
                .update_schedule(&mut |s| match &back {
                    Some(back) => {
                        for (origin, outage) in back {
                            s.spread(origin, *outage, backlog, &pacer, now, phase);
                        }
                    }
                    None => {
                        s.network_back(backlog, &pacer, now, phase);
                    }
                })
                .await
        })
    }

    /// Puts a dead letter back in the queue.
    pub async fn revive(&self, id: EntryId) -> Result<Option<Entry>, S::Error> {
        let entry = self.store.revive(id, self.clock.now()).await?;
        if let Some(e) = &entry {
            self.events.emit(&Event::Revived {
                id,
                lane: e.lane.clone(),
            });
        }
        Ok(entry)
    }

    /// Deletes a dead letter.
    pub async fn discard(&self, id: EntryId) -> Result<bool, S::Error> {
        let found = self.store.discard(id).await?.is_some();
        if found {
            self.events.emit(&Event::Discarded { id });
        }
        Ok(found)
    }

    /// Removes a queued entry that is not being sent.
    pub async fn cancel(&self, id: EntryId) -> Result<CancelResult, S::Error> {
        let result = self.store.cancel(id).await?;
        if result == CancelResult::Cancelled {
            self.events.emit(&Event::Cancelled { id });
        }
        Ok(result)
    }

    /// Deletes everything (log-out on a shared device).
    pub async fn purge(&self) -> Result<crate::store::Purged, S::Error> {
        let purged = self.store.purge().await?;
        self.events.emit(&Event::Purged {
            queued: purged.queued,
            dead: purged.dead,
        });
        Ok(purged)
    }

    /// Counts and ages.
    pub async fn stats(&self) -> Result<Stats, S::Error> {
        self.store.stats(self.clock.now()).await
    }
}

/// The reason text of a queue-at-once decision.
pub fn queue_reason(reason: QueueReason) -> &'static str {
    match reason {
        QueueReason::LaneBusy => "lane-busy",
        QueueReason::LaneHeld => "lane-held",
        QueueReason::OriginPaused { .. } => "origin-paused",
    }
}

/// Lends a [`Flush`] to a store's claim as its [`Planner`] (inside the
/// transaction; never across an await).
struct FlushPlanner<'f, 'c> {
    flush: &'f RefCell<Flush<'c>>,
    has_token: &'f dyn Fn(&str) -> bool,
}

impl Planner for FlushPlanner<'_, '_> {
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        self.flush
            .borrow_mut()
            .plan(schedule, heads, self.has_token)
    }

    fn follow_room(&self) -> usize {
        self.flush.borrow().follow_room()
    }

    fn follow(&mut self, schedule: &mut ScheduleState, next: &Head) -> bool {
        self.flush
            .borrow_mut()
            .follow(schedule, next, self.has_token)
    }
}
