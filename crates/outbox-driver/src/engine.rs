//! The engine as an async Rust program runs it: [`Engine`] holds the I/O
//! parts and drives core's machines over them.
//!
//! # What it is
//!
//! `outbox-core` decides everything (its crate doc tells the design): a
//! flush ([`Flush`]) and each front door ([`door`]) is a synchronous
//! machine, polled for the next piece of I/O ([`Io`]) and fed the reply.
//! An [`Engine`] is handed a [`Store`] (the queue: IndexedDB in the
//! browser, [`MemoryStore`](crate::memory::MemoryStore) in tests), a
//! [`Transport`] (`fetch`, the Guest WebSocket, the simulator), a
//! [`Clock`], a [`TokenSource`] and an [`EventSink`]; each public method
//! builds a machine and runs it with the one driver loop
//! (`Engine::run`), which only performs:
//!
//! * [`Io::Store`]: runs the transaction over the store ([`Store::run`]),
//!   with the machine as its hooks ([`Hooks`]), and replies
//!   [`StoreAsk::done`](outbox_core::io::StoreAsk::done) (for an enqueue
//!   the store refused for its quota, that refusal).
//! * [`Io::Offer`], [`Io::AskTokens`], [`Io::Forget`]: the token source
//!   (a token that comes at once when asked for is offered to it).
//! * [`Io::Send`]: the requests the ask assembles (the token in hand
//!   attached), sent concurrently ([`join_all`]).
//!
//! It tells each machine's events after every poll, and hands the machine
//! the time and randomness with each reply. It is runtime-agnostic: its
//! futures need no `Send` and no executor in particular (the browser runs
//! them as promises, the tests with `futures-executor` or by hand).
//!
//! The dead-letter and admin calls are one transaction each, and the event
//! core decides for what it did ([`door::revived`], …).

use std::cell::RefCell;
use std::rc::Rc;

use outbox_core::classify::{LastError, Response, TransportError};
use outbox_core::clock::{Clock, SplitMix64};
use outbox_core::config::Config;
use outbox_core::door::{self, Forwarded};
use outbox_core::entry::{Entry, EntryId, Prepared};
use outbox_core::event::{Event, EventSink};
use outbox_core::flush::{Flush, Surveys};
use outbox_core::intercept::BeforeForward;
use outbox_core::io::{Cx, Hooks, Io, Machine};
use outbox_core::queue::{CancelResult, EnqueueError, Purged, Stats};
use outbox_core::report::FlushReport;
use outbox_core::request::IncomingRequest;
use outbox_core::route::Routing;
use outbox_core::throttle::ProbeGaps;
use outbox_core::token::TokenAsks;

use crate::join::join_all;
use crate::store::{Boxed, Store};
use crate::token::TokenSource;
use crate::transport::Transport;

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

/// The outbox engine: core's machines over a store, a transport, a clock,
/// a token source and an event sink.
pub struct Engine<S, T, C, K, E> {
    config: Rc<Config>,
    store: S,
    transport: T,
    clock: C,
    tokens: K,
    events: E,
    rng: RefCell<SplitMix64>,
    /// When a token was last asked for, per origin: the machines'
    /// bookkeeping, kept here between them (in memory: a restarted engine
    /// asks at once).
    asks: TokenAsks,
    /// When its flushes last surveyed the queue for lane heads (in memory).
    surveys: Surveys,
    /// Which origins its flushes leave alone after a request got no
    /// answer, until when (in memory).
    gaps: ProbeGaps,
    /// Whether flushes re-read their leases before each send
    /// ([`Engine::fenced`]).
    fenced: bool,
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
            config: Rc::new(config),
            store,
            transport,
            clock,
            tokens,
            events,
            rng: RefCell::new(SplitMix64::new(seed)),
            asks: TokenAsks::default(),
            surveys: Surveys::default(),
            gaps: ProbeGaps::default(),
            fenced: false,
        }
    }

    /// The same engine over a store that other processes share
    /// (PostgreSQL): each flush reads right before every send whether the
    /// leases it is about to send under still stand ([`Flush::fenced`]),
    /// so that a process paused past its leases never sends through one
    /// that has passed to another.
    pub fn fenced(mut self, on: bool) -> Self {
        self.fenced = on;
        self
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
    /// (its lane has a backlog, its origin is paused, or the origin's herd
    /// throttle has nothing to give: a probe already out, a spent reduced
    /// rate). A bearer token on the request is taken as the latest token
    /// for its origin ([`door::Intercept`]).
    pub async fn before_forward(&self, prepared: &Prepared) -> Result<BeforeForward, S::Error> {
        let mut door = door::Intercept::new(prepared, self.config.pacer);
        self.run(&mut door).await?;
        Ok(finished(door.decision()))
    }

    /// Second decision, once the forwarded request answered (or did not):
    /// pass the answer through, or queue the request ([`door::Forward`]).
    /// `decision` is what [`before_forward`](Self::before_forward) said (its
    /// throttle may be waiting for this answer).
    pub async fn after_forward(
        &self,
        prepared: Prepared,
        result: &Result<Response, TransportError>,
        decision: BeforeForward,
    ) -> Result<Forwarded, EnqueueError<S::Error>> {
        let mut door = door::Forward::new(
            prepared,
            result,
            self.config.clone(),
            self.asks.clone(),
            self.clock.now(),
            decision.watched(),
        );
        self.run(&mut door).await.map_err(EnqueueError::Store)?;
        finished(door.result()).map_err(|refused| refused.widen())
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
        let limits = self.config.limits;
        let mut door = door::Write::new(prepared, limits, awaiting_token, error, reason);
        self.run(&mut door).await.map_err(EnqueueError::Store)?;
        finished(door.result()).map_err(|refused| refused.widen())
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
                let mut door = door::Write::through(*prepared, self.config.limits);
                self.run(&mut door)
                    .await
                    .map_err(|e| SubmitError::Enqueue(EnqueueError::Store(e)))?;
                Ok(finished(door.result()).map_err(|refused| refused.widen())?)
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
    /// is spent ([`Flush`]). Returns when to run again. Entries leased by a
    /// sender that died are sent again once their lease runs out.
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
        self.flush_until(exclusive, &|| false).await
    }

    /// A flush ([`flush`](Self::flush), or with `exclusive`
    /// [`flush_exclusive`](Self::flush_exclusive)) that winds down once
    /// `stop` says so ([`Flush::wind_down`]): what is being sent is
    /// answered and settled, and nothing more is claimed, so no lease is
    /// left standing. For a host shutting down.
    pub async fn flush_until(
        &self,
        exclusive: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<FlushReport, S::Error> {
        let mut flush = WindDown {
            flush: Flush::new(self.config.clone(), self.asks.clone(), exclusive)
                .fenced(self.fenced)
                .surveys(self.surveys.clone())
                .probe_gaps(self.gaps.clone()),
            stop,
        };
        self.run(&mut flush).await?;
        Ok(flush.flush.report().clone())
    }

    /// The device is back online (a page's `online` event): entries that
    /// were backing off only because no answer came are due now, each
    /// origin that was unreachable probed first ([`door::NetworkBack`],
    /// [`outbox_core::throttle`]). Returns how many; flush afterwards.
    pub async fn network_back(&self) -> Result<usize, S::Error> {
        let mut door = door::NetworkBack::new(self.asks.clone()).probe_gaps(self.gaps.clone());
        self.run(&mut door).await?;
        Ok(door.due())
    }

    /// Puts a dead letter back in the queue.
    pub async fn revive(&self, id: EntryId) -> Result<Option<Entry>, S::Error> {
        let entry = self.store.revive(id, self.clock.now()).await?;
        self.tell(door::revived(id, entry.as_ref()));
        Ok(entry)
    }

    /// Deletes a dead letter.
    pub async fn discard(&self, id: EntryId) -> Result<bool, S::Error> {
        let entry = self.store.discard(id).await?;
        self.tell(door::discarded(id, entry.as_ref()));
        Ok(entry.is_some())
    }

    /// Removes a queued entry that is not being sent.
    pub async fn cancel(&self, id: EntryId) -> Result<CancelResult, S::Error> {
        let result = self.store.cancel(id).await?;
        self.tell(door::cancelled(id, result));
        Ok(result)
    }

    /// Deletes everything (log-out on a shared device).
    pub async fn purge(&self) -> Result<Purged, S::Error> {
        let purged = self.store.purge().await?;
        self.tell(Some(door::purged(purged)));
        Ok(purged)
    }

    /// Counts and ages.
    pub async fn stats(&self) -> Result<Stats, S::Error> {
        self.store.stats(self.clock.now()).await
    }

    fn tell(&self, event: Option<Event>) {
        if let Some(event) = event {
            self.events.emit(&event);
        }
    }

    /// **The driver**: runs `machine` to its end — polls it, tells its
    /// events, does the [`Io`] it asks for over the [`Store`], the
    /// [`TokenSource`] and the [`Transport`], and feeds the reply back.
    /// The only place the engine awaits; boxed, so it is compiled once
    /// for every machine.
    fn run<'a>(&'a self, machine: &'a mut dyn Machine) -> Boxed<'a, Result<(), S::Error>> {
        Box::pin(async move {
            let tokens = &self.tokens;
            let has_token = |origin: &str| tokens.current(origin).is_some();
            loop {
                let io = machine.poll(self.clock.now());
                for event in machine.take_events() {
                    self.events.emit(&event);
                }
                let reply = match io {
                    Io::Done => return Ok(()),
                    Io::Store(mut ask) => {
                        let mut hooks = Hooks {
                            machine: &mut *machine,
                            has_token: &has_token,
                        };
                        match self.store.run(ask.transaction(), &mut hooks).await {
                            Ok(()) => ask.done(),
                            Err(e) => match S::quota_exceeded(&e)
                                .and_then(|why| ask.quota_exceeded(why))
                            {
                                Some(refused) => refused,
                                None => return Err(e),
                            },
                        }
                    }
                    Io::Offer(ask) => {
                        let fresh = self.tokens.offer(ask.origin(), ask.token());
                        ask.reply(fresh)
                    }
                    Io::AskTokens(ask) => {
                        let mut came = Vec::new();
                        for origin in ask.origins() {
                            if let Some(token) = self.tokens.request(origin).await {
                                self.tokens.offer(origin, &token);
                                came.push(origin.clone());
                            }
                        }
                        ask.reply(came)
                    }
                    Io::Forget(ask) => {
                        for (origin, token) in ask.refused() {
                            self.tokens.rejected(origin, token);
                        }
                        ask.reply()
                    }
                    Io::Send(mut ask) => {
                        let requests = ask.requests(&|origin| tokens.current(origin));
                        let results =
                            join_all(requests.into_iter().map(|r| self.transport.send(r))).await;
                        ask.reply(results)
                    }
                    // This driver answers each send whole, so nothing is
                    // ever out when the machine is polled.
                    Io::Wait => unreachable!("a machine waited with nothing out"),
                };
                let mut rng = self.rng.borrow_mut();
                let mut cx = Cx {
                    now: self.clock.now(),
                    rng: &mut *rng,
                };
                machine.feed(reply, &mut cx);
            }
        })
    }
}

/// A flush that winds down when `stop` says so: it asks [`Flush::wind_down`]
/// before each poll, and is the flush in everything else.
struct WindDown<'a> {
    flush: Flush,
    stop: &'a dyn Fn() -> bool,
}

impl Machine for WindDown<'_> {
    fn poll(&mut self, now: outbox_core::clock::Millis) -> Io {
        if (self.stop)() {
            self.flush.wind_down();
        }
        self.flush.poll(now)
    }

    fn feed(&mut self, reply: outbox_core::io::Reply, cx: &mut Cx<'_>) {
        self.flush.feed(reply, cx);
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.flush.take_events()
    }

    fn edit_schedule(&mut self, schedule: &mut outbox_core::pacer::ScheduleState) {
        self.flush.edit_schedule(schedule);
    }

    fn settled_into(
        &mut self,
        schedule: &mut outbox_core::pacer::ScheduleState,
        applied: &[outbox_core::queue::Settlement],
    ) {
        Machine::settled_into(&mut self.flush, schedule, applied);
    }

    fn plan(
        &mut self,
        schedule: &mut outbox_core::pacer::ScheduleState,
        heads: &[outbox_core::entry::Head],
        has_token: &dyn Fn(&str) -> bool,
    ) -> (
        Vec<(outbox_core::entry::Seq, outbox_core::scheduler::Claim)>,
        Option<outbox_core::clock::Millis>,
    ) {
        Machine::plan(&mut self.flush, schedule, heads, has_token)
    }

    fn follow_room(&self) -> usize {
        Machine::follow_room(&self.flush)
    }

    fn follow(
        &mut self,
        schedule: &mut outbox_core::pacer::ScheduleState,
        next: &outbox_core::entry::Head,
        has_token: &dyn Fn(&str) -> bool,
    ) -> bool {
        Machine::follow(&mut self.flush, schedule, next, has_token)
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
