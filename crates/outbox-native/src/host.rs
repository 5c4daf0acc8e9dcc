//! The host: core's machines on a thread of their own, and a handle any
//! thread can call.
//!
//! # Design
//!
//! `outbox-driver`'s [`Engine`] and its traits have no `Send` bounds (the
//! browser is single-threaded), so the engine runs as an **actor**: one
//! dedicated thread ("outbox-engine") with a current-thread tokio runtime
//! and a `LocalSet`. Everything else — an HTTP server's handlers on a
//! multi-threaded runtime, a backend's own code — holds a [`Host`]
//! (`Send + Sync + Clone`) and talks to the actor over a channel: each call
//! sends a job, the actor runs it as a local task (so many requests are
//! under way at once on the one thread), and the answer comes back on a
//! oneshot. The store keeps its own thread (SQLite's writer, with group
//! commit: [`outbox_sqlite`]).
//!
//! ```text
//!  handlers (any thread) ──job──▶ outbox-engine thread (LocalSet)          outbox-sqlite thread
//!        ▲                          ├ Engine: doors, flush  ──tx steps──▶   one connection,
//!        └──────oneshot answer──────┤ flusher task (one flush at a time)    savepoints, group COMMIT
//!                                   ├ token refresh task
//!                                   └ events ─▶ broadcast (SSE) + metrics
//! ```
//!
//! The host decides nothing. The pass-through door is the service
//! worker's: [`Engine::route`], then [`Engine::before_forward`] (queue at
//! once behind a busy or held lane, or a paused origin), else the live
//! attempt ([`OutgoingRequest::live`]) and [`Engine::after_forward`]
//! (the answer passed through, or the request kept and answered `202`);
//! the API door is the page's write-through ([`Engine::submit`]). A
//! flusher task runs [`Engine::flush_until`] whenever something was queued
//! and when the last flush's report says (`next_wake`): every decision of
//! what goes, when, and what an answer means is core's.
//!
//! With a store that is this process's alone (the SQLite file's lock),
//! every flush is *exclusive*: leases left standing by a process that was
//! killed are taken over at the first claim after a restart, not after
//! their length. A store shared by several processes (PostgreSQL, issue
//! 26) says so with [`HostOptions::exclusive`] `false`.
//!
//! Shutdown ([`Host::shutdown`]): the flush under way is wound down
//! ([`outbox_core::flush::Flush::wind_down`]: what it sent is answered and
//! settled, nothing more is leased), then the engine and the store are
//! dropped (SQLite commits what is open). Nothing queued is lost at any
//! point; a kill at any moment leaves at most leases, taken over at the
//! next start.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use outbox_core::classify::{Response, TransportError};
use outbox_core::clock::Clock;
use outbox_core::config::OutboxConfig;
use outbox_core::door::Forwarded;
use outbox_core::entry::EntryId;
use outbox_core::event::{Event, EventSink};
use outbox_core::intercept::BeforeForward;
use outbox_core::queue::{CancelResult, Stats, queued_body};
use outbox_core::request::{IncomingRequest, OutgoingRequest};
use outbox_core::route::Routing;
use outbox_driver::engine::{Engine, SubmitError};
use outbox_driver::store::Store;
use outbox_driver::token::TokenSource;
use outbox_driver::transport::Transport;
use serde_json::{Value, json};
use tokio::sync::{Notify, broadcast, mpsc, oneshot};

use crate::clock::SystemClock;
use crate::http::HttpTransport;
use crate::metrics::Metrics;
use crate::tokens::{ClientCredentials, ProxyTokens};
use crate::view;

/// What a host is started with.
#[derive(Debug, Clone)]
pub struct HostOptions {
    /// The outbox configuration (the browser's schema, parsed by core).
    pub config: OutboxConfig,
    /// The host's own OAuth client, if it has one (see [`crate::tokens`]).
    pub credentials: Option<ClientCredentials>,
    /// Whether the store is this process's alone: then every flush takes
    /// over standing leases at once (see the [module](self)). A store
    /// shared with other processes (`false`: PostgreSQL) leaves each lease
    /// to its length, and every flush re-reads its leases right before each
    /// send, sending only those that still stand for longer than a send
    /// ([`Engine::fenced`]).
    pub exclusive: bool,
    /// Seeds ids and jitter ([`crate::clock::random_seed`] in production).
    pub seed: u64,
}

/// Why the host could not be started or answer.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The engine thread could not be started.
    #[error("cannot start the engine thread: {0}")]
    Thread(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Client(#[from] crate::http::ClientError),
    /// The engine thread has stopped (the host is shutting down).
    #[error("the outbox is shutting down")]
    Gone,
    /// The store failed.
    #[error("store error: {0}")]
    Store(String),
}

/// An HTTP answer for a caller: the upstream's own, or the host's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Status.
    pub status: u16,
    /// Headers (the upstream's, hop-by-hop ones left out; or
    /// `content-type: application/json`).
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
    /// The entry, when one was queued.
    pub queued: Option<EntryId>,
}

impl Answer {
    /// A JSON answer of the host's own.
    pub fn json(status: u16, body: String) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.into_bytes(),
            queued: None,
        }
    }

    /// An error answer: `{"error": code, "message": message}`.
    pub fn error(status: u16, code: &str, message: &str) -> Self {
        Self::json(
            status,
            json!({"error": code, "message": message}).to_string(),
        )
    }

    fn upstream(response: Response) -> Self {
        Self {
            status: response.status,
            headers: response.headers,
            body: response.body,
            queued: None,
        }
    }
}

/// The events sink: each event as JSON to the subscribers (the SSE
/// stream), and to the metrics.
struct HostEvents {
    tx: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
}

impl EventSink for HostEvents {
    fn emit(&self, event: &Event) {
        self.metrics.event(event);
        let _ = self.tx.send(Arc::from(event.to_json()));
    }
}

type HostEngine<S> = Engine<S, HttpTransport, SystemClock, ProxyTokens, HostEvents>;

/// What the actor's jobs see.
struct Ctx<S: Store> {
    engine: HostEngine<S>,
    transport: HttpTransport,
    kick: Notify,
    stopping: Cell<bool>,
    forward_timeout_ms: u64,
    metrics: Arc<Metrics>,
    exclusive: bool,
}

type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;
type Job<S> = Box<dyn FnOnce(Rc<Ctx<S>>) -> LocalFuture + Send>;

enum Cmd<S: Store> {
    Job(Job<S>),
    Shutdown(oneshot::Sender<()>),
}

/// A handle on a running host. `Send + Sync`; clones talk to the same
/// engine.
pub struct Host<S: Store> {
    tx: mpsc::UnboundedSender<Cmd<S>>,
    events: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
}

impl<S: Store> Clone for Host<S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            events: self.events.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

fn store_error(e: impl std::fmt::Display) -> HostError {
    HostError::Store(e.to_string())
}

impl<S: Store + Send + 'static> Host<S> {
    /// Starts the engine thread over `store` (see the [module](self)).
    pub fn start(options: HostOptions, store: S) -> Result<Self, HostError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(4096);
        let metrics = Arc::new(Metrics::default());
        let transport = HttpTransport::new()?;
        let thread_events = events.clone();
        let thread_metrics = metrics.clone();
        std::thread::Builder::new()
            .name("outbox-engine".into())
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(_) => return,
                };
                let local = tokio::task::LocalSet::new();
                local.block_on(
                    &runtime,
                    actor(options, store, transport, thread_events, thread_metrics, rx),
                );
            })
            .map_err(HostError::Thread)?;
        Ok(Self {
            tx,
            events,
            metrics,
        })
    }

    /// Runs `job` on the engine thread and returns what it sends back.
    async fn ask<T: Send + 'static>(
        &self,
        job: impl FnOnce(Rc<Ctx<S>>) -> Pin<Box<dyn Future<Output = T>>> + Send + 'static,
    ) -> Result<T, HostError> {
        let (reply, answer) = oneshot::channel();
        let job: Job<S> = Box::new(move |ctx| {
            Box::pin(async move {
                let _ = reply.send(job(ctx).await);
            })
        });
        self.tx.send(Cmd::Job(job)).map_err(|_| HostError::Gone)?;
        answer.await.map_err(|_| HostError::Gone)
    }

    /// The pass-through door: a request as a caller sent it, its URL
    /// already on the upstream origin. Not Outbox's (no configured route
    /// matches, or it cannot be keyed): sent on as is, its answer returned.
    /// Outbox's: forwarded live while the lane is idle and the origin not
    /// paused, its answer returned as is — or kept and answered `202
    /// {"queued":true,"id","lane","reason"}` when the upstream does not take
    /// it (`507`/`413` when the queue refuses it: the caller keeps it).
    pub async fn pass_through(&self, request: IncomingRequest) -> Result<Answer, HostError> {
        let arrived = Instant::now();
        self.ask(move |ctx| Box::pin(async move { pass_through(&ctx, request, arrived).await }))
            .await
    }

    /// The API door (write-through): `request` is made durable at once and
    /// delivered by the flusher. `202` with the queued body, `404` when no
    /// route matches, `400` when it cannot be keyed, the refusal's status
    /// otherwise.
    pub async fn submit(&self, request: IncomingRequest) -> Result<Answer, HostError> {
        let arrived = Instant::now();
        self.ask(move |ctx| {
            Box::pin(async move {
                match ctx.engine.submit(&request).await {
                    Ok(entry) => {
                        ctx.metrics.enqueued(arrived.elapsed());
                        ctx.kick.notify_one();
                        let mut a = Answer::json(202, submitted_body(&entry));
                        a.queued = Some(entry.id);
                        a
                    }
                    Err(SubmitError::NoRoute { method, url }) => Answer::error(
                        404,
                        "no-route",
                        &format!("no configured route matches {method} {url}"),
                    ),
                    Err(e @ SubmitError::Unroutable { .. }) => {
                        Answer::error(400, "unroutable", &e.to_string())
                    }
                    Err(SubmitError::Enqueue(e)) => Answer::json(e.status(), e.body()),
                }
            })
        })
        .await
    }

    /// The queued entry or dead letter with this id, as JSON.
    pub async fn entry(&self, id: EntryId) -> Result<Option<Value>, HostError> {
        self.ask(move |ctx| {
            Box::pin(async move {
                let now = ctx.engine.clock().now();
                ctx.engine
                    .store()
                    .get(id)
                    .await
                    .map(|e| e.map(|e| view::entry(&e, now)))
                    .map_err(store_error)
            })
        })
        .await?
    }

    /// Counts and ages.
    pub async fn stats(&self) -> Result<Stats, HostError> {
        self.ask(|ctx| Box::pin(async move { ctx.engine.stats().await.map_err(store_error) }))
            .await?
    }

    /// The first `limit` queued entries (or dead letters), as JSON.
    pub async fn list(&self, dead: bool, limit: usize) -> Result<Vec<Value>, HostError> {
        self.ask(move |ctx| {
            Box::pin(async move {
                let now = ctx.engine.clock().now();
                let store = ctx.engine.store();
                let entries = if dead {
                    store.dead_letters(limit).await
                } else {
                    store.queued(limit).await
                };
                entries
                    .map(|es| es.iter().map(|e| view::entry(e, now)).collect())
                    .map_err(store_error)
            })
        })
        .await?
    }

    /// Puts a dead letter back in the queue (its lane's hold lifted);
    /// `None` when there is no such dead letter (or it is corrupt).
    pub async fn revive(&self, id: EntryId) -> Result<Option<Value>, HostError> {
        self.ask(move |ctx| {
            Box::pin(async move {
                let now = ctx.engine.clock().now();
                let revived = ctx.engine.revive(id).await.map_err(store_error)?;
                ctx.kick.notify_one();
                Ok(revived.map(|e| view::entry(&e, now)))
            })
        })
        .await?
    }

    /// Deletes a dead letter; whether there was one.
    pub async fn discard(&self, id: EntryId) -> Result<bool, HostError> {
        self.ask(move |ctx| {
            Box::pin(async move {
                let gone = ctx.engine.discard(id).await.map_err(store_error)?;
                ctx.kick.notify_one();
                Ok(gone)
            })
        })
        .await?
    }

    /// Removes a queued entry that is not being sent.
    pub async fn cancel(&self, id: EntryId) -> Result<CancelResult, HostError> {
        self.ask(move |ctx| {
            Box::pin(async move { ctx.engine.cancel(id).await.map_err(store_error) })
        })
        .await?
    }

    /// Runs a flush soon (the flusher runs by itself; this only hurries
    /// it).
    pub fn kick(&self) {
        let job: Job<S> = Box::new(|ctx| {
            Box::pin(async move {
                ctx.kick.notify_one();
            })
        });
        let _ = self.tx.send(Cmd::Job(job));
    }

    /// The events core tells, as JSON (the browser's `BroadcastChannel`
    /// form), from now on.
    pub fn events(&self) -> broadcast::Receiver<Arc<str>> {
        self.events.subscribe()
    }

    /// The metrics (counters and latencies; the gauges come with
    /// [`metrics_text`](Self::metrics_text)).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// `/metrics`, in the Prometheus text format, with the store's own
    /// counters `extra`.
    pub async fn metrics_text(&self, extra: &[(&str, &str, u64)]) -> Result<String, HostError> {
        let stats = self.stats().await?;
        Ok(self.metrics.render(&stats, SystemClock.now(), extra))
    }

    /// Winds the flush under way down (its sends answered and settled,
    /// nothing more leased), then stops the engine and closes the store.
    /// Returns once done.
    pub async fn shutdown(&self) {
        let (reply, done) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(reply)).is_ok() {
            let _ = done.await;
        }
    }
}

/// The API door's `202` body: core's, with the route.
fn submitted_body(entry: &outbox_core::entry::Entry) -> String {
    let mut body: Value =
        serde_json::from_str(&queued_body(entry, "write-through")).unwrap_or_default();
    body["route"] = json!(entry.route);
    body.to_string()
}

/// The engine thread's life.
async fn actor<S: Store + 'static>(
    options: HostOptions,
    store: S,
    transport: HttpTransport,
    events: broadcast::Sender<Arc<str>>,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<Cmd<S>>,
) {
    let tokens = ProxyTokens::new(options.credentials.clone(), transport.client().clone());
    let refresh_tokens = tokens.clone();
    let engine = Engine::new(
        options.config.core.clone(),
        store,
        transport.clone(),
        SystemClock,
        tokens.clone(),
        HostEvents {
            tx: events,
            metrics: metrics.clone(),
        },
        options.seed,
    )
    // A store shared with other processes: re-read the leases right before
    // each send (see `HostOptions::exclusive`).
    .fenced(!options.exclusive);
    let ctx = Rc::new(Ctx {
        engine,
        transport,
        kick: Notify::new(),
        stopping: Cell::new(false),
        forward_timeout_ms: options.config.forward_timeout_ms,
        metrics,
        exclusive: options.exclusive,
    });
    let refresher = tokio::task::spawn_local(refresher(ctx.clone(), refresh_tokens));
    let flusher = tokio::task::spawn_local(flusher(ctx.clone()));
    let mut shutdown = None;
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Cmd::Job(job) => {
                tokio::task::spawn_local(job(ctx.clone()));
            }
            Cmd::Shutdown(reply) => {
                shutdown = Some(reply);
                break;
            }
        }
    }
    ctx.stopping.set(true);
    ctx.kick.notify_one();
    let _ = flusher.await;
    refresher.abort();
    // The jobs still running end with the runtime; the store closes when
    // the last handle on it (the engine, in `ctx`) is dropped.
    drop(ctx);
    if let Some(reply) = shutdown {
        let _ = reply.send(());
    }
}

/// Keeps the host's own token fresh (nothing to do without client
/// credentials): fetches one at start, again before the one in hand ends
/// ([`ProxyTokens::refresh_due`]), and every 5 s while none can be had
/// (an outage of the OAuth server). A token fetched here releases the
/// entries parked for one ([`Engine::token_updated`]) and wakes the
/// flusher: they do not wait for core's next ask.
async fn refresher<S: Store + 'static>(ctx: Rc<Ctx<S>>, tokens: ProxyTokens) {
    let Some(origin) = tokens.own_origin().map(str::to_owned) else {
        return;
    };
    loop {
        let due = tokens.refresh_due().unwrap_or(0);
        let now = ctx.engine.clock().now();
        if due > now {
            tokio::time::sleep(Duration::from_millis(due - now)).await;
            continue;
        }
        if tokens.fetch().await.is_ok() {
            if ctx
                .engine
                .token_updated(&origin, None)
                .await
                .is_ok_and(|n| n > 0)
            {
                ctx.kick.notify_one();
            }
        } else {
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }
}

/// The flusher: one flush at a time, run when kicked (something was
/// queued, a dead letter revived, a token came) and when the last report
/// says; wound down when the host stops.
async fn flusher<S: Store + 'static>(ctx: Rc<Ctx<S>>) {
    let stopping = || ctx.stopping.get();
    loop {
        if stopping() {
            return;
        }
        let next_wake = match ctx.engine.flush_until(ctx.exclusive, &stopping).await {
            Ok(report) => report.next_wake,
            // The store failed (full disk, I/O error): nothing was lost
            // (the transaction rolled back); try again in a second.
            Err(_) => Some(ctx.engine.clock().now() + 1_000),
        };
        if stopping() {
            return;
        }
        let now = ctx.engine.clock().now();
        match next_wake {
            Some(at) if at <= now => {
                // Due at once: let the waiting jobs run first.
                tokio::task::yield_now().await;
            }
            Some(at) => {
                tokio::select! {
                    () = ctx.kick.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(at - now)) => {}
                }
            }
            None => ctx.kick.notified().await,
        }
    }
}

/// The pass-through door (see [`Host::pass_through`]).
async fn pass_through<S: Store>(
    ctx: &Ctx<S>,
    request: IncomingRequest,
    arrived: Instant,
) -> Answer {
    let engine = &ctx.engine;
    let prepared = match engine.route(&request) {
        Routing::Matched(prepared) => *prepared,
        Routing::Unmatched | Routing::Unroutable { .. } => {
            // Not Outbox's: on as is (the server's own error reaches the
            // caller of a request that cannot be keyed).
            ctx.metrics.passed("unmatched");
            return plain(ctx, &request).await;
        }
    };
    let decision = match engine.before_forward(&prepared).await {
        Ok(d) => d,
        // The store is unusable: it cannot keep the request, so the host
        // does not pretend to; the caller gets the upstream's answer.
        Err(_) => {
            ctx.metrics.passed("unmatched");
            return plain(ctx, &request).await;
        }
    };
    match decision {
        BeforeForward::Queue(reason) => {
            let result = engine.enqueue(prepared, false, None, reason.name()).await;
            match result {
                Ok(entry) => queued(ctx, &entry, reason.name(), arrived),
                Err(e) => {
                    ctx.metrics.passed("refused");
                    Answer::json(e.status(), e.body())
                }
            }
        }
        BeforeForward::Forward | BeforeForward::ForwardWatched => {
            let token = engine.tokens().current(&prepared.origin);
            let result = {
                let live = OutgoingRequest::live(
                    &request,
                    &prepared,
                    token.as_deref(),
                    ctx.forward_timeout_ms,
                );
                ctx.transport.send(live).await
            };
            match engine.after_forward(prepared, &result, decision).await {
                Ok(Forwarded::PassThrough(_)) => {
                    ctx.metrics.passed("forwarded");
                    match result {
                        Ok(response) => Answer::upstream(response),
                        Err(e) => unreachable_answer(&e),
                    }
                }
                Ok(Forwarded::Queued(entry)) => {
                    let reason = entry
                        .last_error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_default();
                    queued(ctx, &entry, &reason, arrived)
                }
                Err(e) => {
                    ctx.metrics.passed("refused");
                    Answer::json(e.status(), e.body())
                }
            }
        }
    }
}

fn queued<S: Store>(
    ctx: &Ctx<S>,
    entry: &outbox_core::entry::Entry,
    reason: &str,
    arrived: Instant,
) -> Answer {
    ctx.metrics.enqueued(arrived.elapsed());
    ctx.metrics.passed("queued");
    ctx.kick.notify_one();
    let mut answer = Answer::json(202, queued_body(entry, reason));
    answer.queued = Some(entry.id);
    answer
}

/// A request that is not Outbox's, sent on as is.
async fn plain<S: Store>(ctx: &Ctx<S>, request: &IncomingRequest) -> Answer {
    let out = OutgoingRequest {
        method: &request.method,
        url: &request.url,
        headers: request.headers.clone(),
        body: &request.body,
        timeout_ms: ctx.forward_timeout_ms,
        unknown_outcome: false,
        leave_by: None,
    };
    match ctx.transport.send(out).await {
        Ok(response) => Answer::upstream(response),
        Err(e) => unreachable_answer(&e),
    }
}

fn unreachable_answer(e: &TransportError) -> Answer {
    Answer::error(502, "upstream-unreachable", &e.to_string())
}
