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
//! [`Clock`], a [`TokenSource`] and an [`EventSink`]. The service worker,
//! the page, the native tests and the simulator run this same code; only
//! those parts differ.
//!
//! Every decision is made by a **synchronous machine** ([`crate::io`]):
//! a [`Flush`], or one of the front doors of [`crate::door`]. A machine
//! is polled for the next piece of I/O ([`Io`]: a store call, a token
//! ask, sends) and fed the result ([`Done`]); it never awaits, reads a
//! clock or touches the store. The machines in turn ask pure functions:
//! routing in [`route`](crate::route), intercept rules in
//! [`intercept`](crate::intercept), what an answer means in
//! [`classify`](crate::classify), what to do about it in
//! [`retry`](crate::retry), which heads go in
//! [`scheduler`](crate::scheduler), pacing in [`pacer`](crate::pacer).
//! The engine's one piece of `async` code is the driver loop that runs a
//! machine over the parts (`Engine::run`); each public method builds a
//! machine, runs it and returns its result.
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
//! workers), and returns when to run again; the machine is [`Flush`].
//! One cycle is **one store step**, then the network:
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
//!    pure): [`classify`](crate::classify::classify) then
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

use crate::classify::{LastError, Response, TransportError};
use crate::clock::{Clock, Millis, SplitMix64};
use crate::config::Config;
use crate::door::{self, AdminCall, Forwarded};
use crate::entry::{Entry, EntryId, Head, Prepared, Seq};
use crate::event::EventSink;
use crate::flush::Flush;
use crate::intercept::BeforeForward;
use crate::io::{Cx, Done, Io, Machine};
use crate::join::join_all;
use crate::pacer::ScheduleState;
use crate::report::FlushReport;
use crate::request::{IncomingRequest, OutgoingRequest};
use crate::route::Routing;
use crate::scheduler::Claim;
use crate::store::{CancelResult, Claimed, EnqueueError, Planner, Settlement, Stats, Store};
use crate::token::{TokenAsks, TokenSource};
use crate::transport::Transport;
use crate::verdict::Answer;

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

/// Does the store calls of [`door::Admin`] (see `Engine::run_with`).
type DoorIo<'a, E> = dyn Fn(Io) -> Boxed<'a, Result<Done<E>, E>> + 'a;

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
    /// the request is taken as the latest token for its origin
    /// ([`door::Intercept`]).
    pub async fn before_forward(&self, prepared: &Prepared) -> Result<BeforeForward, S::Error> {
        let mut door = door::Intercept::new(prepared);
        self.run(&mut door).await?;
        Ok(finished(door.decision()))
    }

    /// Second decision, once the forwarded request answered (or did not):
    /// pass the answer through, or queue the request ([`door::Forward`]).
    pub async fn after_forward(
        &self,
        prepared: Prepared,
        result: &Result<Response, TransportError>,
    ) -> Result<Forwarded, EnqueueError<S::Error>> {
        let mut door = door::Forward::new(prepared, result, &self.config, self.clock.now());
        self.run(&mut door).await.map_err(EnqueueError::Store)?;
        finished(door.result())
    }

    /// Makes a prepared request durable ([`door::Write`]); `reason` is
    /// told with its `queued` event.
    pub async fn enqueue(
        &self,
        prepared: Prepared,
        awaiting_token: bool,
        error: Option<LastError>,
        reason: &str,
    ) -> Result<Entry, EnqueueError<S::Error>> {
        let mut door = door::Write::new(prepared, awaiting_token, error, reason);
        self.run(&mut door).await.map_err(EnqueueError::Store)?;
        finished(door.result())
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
                let mut door = door::Write::through(*prepared);
                self.run(&mut door)
                    .await
                    .map_err(|e| SubmitError::Enqueue(EnqueueError::Store(e)))?;
                Ok(finished(door.result())?)
            }
        }
    }

    /// A token arrived for `origin` (or, with `None`, may have): entries
    /// waiting for one become pending again ([`door::Arrival`]). Returns
    /// how many.
    pub async fn token_updated(
        &self,
        origin: &str,
        token: Option<&str>,
    ) -> Result<usize, S::Error> {
        let mut door = door::Arrival::new(origin, token);
        self.run(&mut door).await?;
        Ok(door.released())
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

    async fn flush_with(&self, exclusive: bool) -> Result<FlushReport, S::Error> {
        let mut flush = Flush::new(&self.config, exclusive);
        self.run(&mut flush).await?;
        Ok(flush.report().clone())
    }

    /// The device is back online (a page's `online` event): entries that
    /// were backing off only because no answer came are due now — within
    /// the spread of each origin that was unreachable (one probe first,
    /// the rest over a window growing with the outage; see
    /// [`crate::throttle`] and [`door::NetworkBack`]). Returns how many;
    /// flush afterwards.
    pub async fn network_back(&self) -> Result<usize, S::Error> {
        let mut door = door::NetworkBack::new(self.config.pacer);
        self.run(&mut door).await?;
        Ok(door.due())
    }

    /// Puts a dead letter back in the queue.
    pub async fn revive(&self, id: EntryId) -> Result<Option<Entry>, S::Error> {
        match self.admin(AdminCall::Revive(id)).await? {
            Some(Done::Entry(entry)) => Ok(entry),
            _ => Ok(None),
        }
    }

    /// Deletes a dead letter.
    pub async fn discard(&self, id: EntryId) -> Result<bool, S::Error> {
        let done = self.admin(AdminCall::Discard(id)).await?;
        Ok(matches!(done, Some(Done::Entry(Some(_)))))
    }

    /// Removes a queued entry that is not being sent.
    pub async fn cancel(&self, id: EntryId) -> Result<CancelResult, S::Error> {
        match self.admin(AdminCall::Cancel(id)).await? {
            Some(Done::Cancelled(result)) => Ok(result),
            _ => Ok(CancelResult::NotFound),
        }
    }

    /// Deletes everything (log-out on a shared device).
    pub async fn purge(&self) -> Result<crate::store::Purged, S::Error> {
        match self.admin(AdminCall::Purge).await? {
            Some(Done::Purged(purged)) => Ok(purged),
            _ => Ok(crate::store::Purged::default()),
        }
    }

    /// Counts and ages.
    pub async fn stats(&self) -> Result<Stats, S::Error> {
        match self.admin(AdminCall::Stats).await? {
            Some(Done::Stats(stats)) => Ok(stats),
            _ => Ok(Stats::default()),
        }
    }

    /// Runs an [`AdminCall`]; its result is the store's answer (the
    /// driver feeds each [`Io`] the [`Done`] it names, so the callers'
    /// other arms are never taken).
    async fn admin(&self, call: AdminCall) -> Result<Option<Done<S::Error>>, S::Error> {
        let mut door = door::Admin::new(call);
        let door_io = |io: Io| -> Boxed<'_, Result<Done<S::Error>, S::Error>> {
            Box::pin(async move {
                Ok(match io {
                    Io::Revive(id, now) => Done::Entry(self.store.revive(id, now).await?),
                    Io::Discard(id) => Done::Entry(self.store.discard(id).await?),
                    Io::Cancel(id) => Done::Cancelled(self.store.cancel(id).await?),
                    Io::Purge => Done::Purged(self.store.purge().await?),
                    _ => Done::Nothing,
                })
            })
        };
        self.run_with(&mut door, Some(&door_io)).await?;
        Ok(door.result())
    }

    /// **The driver**: runs `machine` to its end — polls it, tells its
    /// events, does the [`Io`] it asks for over the [`Store`], the
    /// [`TokenSource`] and the [`Transport`], and feeds the result back.
    /// The only place the engine awaits; boxed, so it is compiled once
    /// for every machine.
    fn run<'a>(
        &'a self,
        machine: &'a mut dyn Machine<S::Error>,
    ) -> Boxed<'a, Result<(), S::Error>> {
        self.run_with(machine, None)
    }

    /// [`run`](Self::run), with the store calls only [`door::Admin`]
    /// asks for (revive, discard, cancel, purge) done by `door_io`, which
    /// [`admin`](Self::admin) passes: a service worker makes none of them,
    /// and so they stay out of its bundle (4 KB of it), as they did when
    /// each was its own `async` method. Without `door_io` they are
    /// answered [`Done::Nothing`].
    fn run_with<'a>(
        &'a self,
        machine: &'a mut dyn Machine<S::Error>,
        door_io: Option<&'a DoorIo<'a, S::Error>>,
    ) -> Boxed<'a, Result<(), S::Error>> {
        Box::pin(async move {
            // The store calls the machine inside its transaction; a
            // `RefCell` lends it there (never across an await).
            let machine = RefCell::new(machine);
            let tokens = &self.tokens;
            let has_token = |origin: &str| tokens.current(origin).is_some();
            loop {
                let io = machine.borrow_mut().poll(self.clock.now());
                for event in machine.borrow_mut().take_events() {
                    self.events.emit(&event);
                }
                let mut settled_into = |schedule: &mut ScheduleState, applied: &[Settlement]| {
                    machine.borrow_mut().settled_into(schedule, applied);
                };
                let done = match io {
                    Io::Done => return Ok(()),
                    Io::Store { settlements, terms } => {
                        let mut planner = MachinePlanner {
                            machine: &machine,
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
                        Done::Stored { applied, claimed }
                    }
                    Io::Settle { now, settlements } => Done::Stored {
                        applied: self
                            .store
                            .settle(now, settlements, &mut settled_into)
                            .await?,
                        claimed: Claimed::default(),
                    },
                    Io::LaneAndSchedule(lane) => {
                        let (busy, schedule) = self.store.lane_and_schedule(&lane).await?;
                        Done::Lane { busy, schedule }
                    }
                    Io::EditSchedule => {
                        self.store
                            .update_schedule(&mut |s| machine.borrow_mut().edit_schedule(s))
                            .await?;
                        Done::Nothing
                    }
                    Io::Enqueue(entry) => {
                        Done::Enqueued(self.store.enqueue(*entry, &self.config.limits).await)
                    }
                    Io::Release(origin) => {
                        Done::Released(self.store.release_awaiting_token(&origin).await?)
                    }
                    Io::RetryUnreachable(now) => {
                        Done::Count(self.store.retry_unreachable_now(now).await?)
                    }
                    Io::Stats(now) => Done::Stats(self.store.stats(now).await?),
                    io @ (Io::Revive(..) | Io::Discard(_) | Io::Cancel(_) | Io::Purge) => {
                        match door_io {
                            Some(door_io) => door_io(io).await?,
                            None => Done::Nothing,
                        }
                    }
                    Io::Offer { origin, token } => Done::Fresh(self.tokens.offer(&origin, &token)),
                    Io::AskTokens(origins) => {
                        let mut came = Vec::new();
                        for origin in origins {
                            self.token_asks
                                .borrow_mut()
                                .asked(&origin, self.clock.now());
                            if let Some(token) = self.tokens.request(&origin).await {
                                self.tokens.offer(&origin, &token);
                                came.push(origin);
                            }
                        }
                        Done::Tokens(came)
                    }
                    Io::Forget(refused) => {
                        for (origin, token) in &refused {
                            self.tokens.rejected(origin, token);
                        }
                        Done::Nothing
                    }
                    Io::Send(sent) => {
                        let answers = join_all(sent.iter().map(|e| self.send(e))).await;
                        Done::Answered { sent, answers }
                    }
                };
                let asks = self.token_asks.borrow();
                let mut cx = Cx {
                    now: self.clock.now(),
                    rng: &mut *self.rng.borrow_mut(),
                    asks: &asks,
                };
                machine.borrow_mut().feed(done, &mut cx);
            }
        })
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
}

/// The result of a machine the driver ran to [`Io::Done`]: every machine
/// sets its result before it answers `Done`, so a missing one is a bug in
/// the machine, not something outside input can cause.
#[track_caller]
fn finished<T>(result: Option<T>) -> T {
    match result {
        Some(result) => result,
        None => unreachable!("a finished machine always has its result"),
    }
}

/// Lends a [`Machine`] to a store's claim as its [`Planner`] (inside the
/// transaction; never across an await).
struct MachinePlanner<'m, 'r, E: std::error::Error + 'static> {
    machine: &'m RefCell<&'r mut dyn Machine<E>>,
    has_token: &'m dyn Fn(&str) -> bool,
}

impl<E: std::error::Error + 'static> Planner for MachinePlanner<'_, '_, E> {
    fn plan(
        &mut self,
        schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        self.machine
            .borrow_mut()
            .plan(schedule, heads, self.has_token)
    }

    fn follow_room(&self) -> usize {
        self.machine.borrow().follow_room()
    }

    fn follow(&mut self, schedule: &mut ScheduleState, next: &Head) -> bool {
        self.machine
            .borrow_mut()
            .follow(schedule, next, self.has_token)
    }
}
