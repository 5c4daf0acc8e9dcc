//! The module's state and every call the host makes.
//!
//! # Engines and jobs
//!
//! An **engine** is a configuration read once ([`OutboxConfig::parse`], or
//! a guest's [`GuestConfig::parse`]) with what its machines share: the
//! tokens in hand ([`Tokens`]), when tokens were last asked for
//! ([`TokenAsks`]), the randomness (ids, jitter) and the page replays a
//! service worker was told of. A page or a worker keeps one per outbox,
//! by its handle.
//!
//! A **job** is one operation of an engine run to its end: a flush, the
//! answer to an intercepted request, a page's send, a token's arrival, the
//! network coming back, or one admin transaction (stats, listings,
//! revive, discard, cancel, purge). A job drives core's machines
//! ([`outbox_core::flush`], [`outbox_core::door`]) and does itself what
//! needs no host: offering a token to the table, forgetting a refused one.
//! What needs the host it hands over, one ask at a time:
//!
//! ```text
//!   step(job, now) ─▶ STORE  name, mode      → the host opens a transaction and
//!                                               loops tx(job) until COMMIT, then tx_end(job)
//!                  ─▶ TOKENS origins          → the host asks its token source, reply(job)
//!                  ─▶ SEND   first, requests, bodies
//!                                             → the host sends them at once and steps on;
//!                                               request `first + i` answered: answer(job, k)
//!                  ─▶ WAIT                    → the host waits for an answer to a request
//!                                               out, answer(job, k), and steps on
//!                  ─▶ LIVE   one request      → the worker's live attempt, reply(job)
//!                  ─▶ DONE   result           → the job is over
//! ```
//!
//! Every output begins with the events decided since the last one (a JSON
//! array, in order), which the host tells on its `BroadcastChannel` before
//! it does the ask: a message's `sending` is told before its send.
//!
//! Nothing here decides a rule: the machines and transactions are core's;
//! this module sequences them and translates (configuration facts, JSON
//! results, the IndexedDB operations of [`crate::idb`]).

use alloc::borrow::ToOwned;
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::rc::Rc;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use outbox_core::classify::{FailureKind, LastError, Response, TransportError};
use outbox_core::clock::{Millis, SplitMix64};
use outbox_core::config::{Config, GuestConfig, OutboxConfig};
use outbox_core::door::{self, Forwarded};
use outbox_core::entry::{Entry, EntryId, Prepared};
use outbox_core::event::Event;
use outbox_core::flush::{Flush, Surveys};
use outbox_core::intercept::BeforeForward;
use outbox_core::io::{Cx, Hooks, Io, Machine, SendAsk, StoreAsk, TokensAsk};
use outbox_core::json::{self, Kind, Object};
use outbox_core::queue::{
    Cancel, CancelResult, Discard, EnqueueError, Get, List, NoHooks, Purge, Revive, Tally,
    Transaction,
};
use outbox_core::request::{IncomingRequest, OutgoingRequest};
use outbox_core::route::Routing;
use outbox_core::throttle::ProbeGaps;
use outbox_core::token::TokenAsks;
use outbox_core::{genesys, guest};

use crate::error::StoreError;
use crate::frame::{Frame, Out};
use crate::idb::{Advance, IdbRun};
use crate::tokens::Tokens;
use crate::view;

/// What [`Module::step`] asks of the host.
pub mod ask {
    /// The job is over: its result follows the events.
    pub const DONE: u32 = 0;
    /// Run a store transaction: its name and mode follow the events.
    pub const STORE: u32 = 1;
    /// Ask the token source: the origins follow the events.
    pub const TOKENS: u32 = 2;
    /// Send requests: their description and bodies follow the events.
    pub const SEND: u32 = 3;
    /// The worker's live attempt of an intercepted request: one request
    /// as `SEND` describes it (no number: answered with `reply`).
    pub const LIVE: u32 = 4;
    /// Wait for the answer to one of the requests out, and give it
    /// (`answer`): nothing follows the events.
    pub const WAIT: u32 = 5;
    /// Not a job, or not where this call belongs (a host bug): nothing
    /// follows.
    pub const NONE: u32 = 9;
}

/// What [`Module::tx`] asks of the host.
pub mod tx {
    /// Carry out the operations, then call `tx` again with their reads'
    /// results.
    pub const OPS: u32 = 1;
    /// Carry out the operations (writes only), then commit.
    pub const COMMIT: u32 = 2;
    /// The transaction failed here (a malformed record): abort it, then
    /// `tx_end` with nothing (the job has its error already).
    pub const FAILED: u32 = 3;
}

/// How many announced page replays a worker remembers (oldest forgotten
/// first; a replay whose fetch never came is simply never matched).
const REPLAYS_KEPT: usize = 64;

/// An engine: a configuration and what its jobs share.
pub struct Engine {
    config: Rc<Config>,
    token_url: Option<String>,
    database: String,
    channel: String,
    forward_timeout_ms: u64,
    api_base: Option<String>,
    json: String,
    guest: Option<Guest>,
    tokens: Tokens,
    asks: TokenAsks,
    surveys: Surveys,
    gaps: ProbeGaps,
    rng: SplitMix64,
    /// Page replays announced (`OUTBOX_REPLAY`): (client id, replay key).
    replays: VecDeque<(String, String)>,
}

/// Where a guest's conversation lives.
struct Guest {
    socket_url: String,
    deployment_id: String,
    history_base: String,
    storage_key: String,
}

impl Engine {
    fn of(outbox: OutboxConfig, guest: Option<Guest>, seed: u64) -> Self {
        Self {
            config: Rc::new(outbox.core),
            token_url: outbox.token_url,
            database: outbox.database,
            channel: outbox.channel,
            forward_timeout_ms: outbox.forward_timeout_ms,
            api_base: outbox.api_base,
            json: outbox.json,
            guest,
            tokens: Tokens::default(),
            asks: TokenAsks::default(),
            surveys: Surveys::default(),
            gaps: ProbeGaps::default(),
            rng: SplitMix64::new(seed),
            replays: VecDeque::new(),
        }
    }

    /// What the host needs of the configuration: `{database, channel,
    /// tokenUrl, apiBase, forwardTimeoutMs, origins, config, guest?}`
    /// (`config`: the text it was read from, for the service worker's
    /// URL).
    fn facts(&self) -> String {
        let mut o = Object::new();
        o.str("database", &self.database)
            .str("channel", &self.channel)
            .num("forwardTimeoutMs", self.forward_timeout_ms)
            .str("config", &self.json)
            .num("schemaVersion", u64::from(crate::idb::SCHEMA_VERSION))
            .raw("schema", crate::idb::SCHEMA);
        match &self.token_url {
            Some(url) => o.str("tokenUrl", url),
            None => o.raw("tokenUrl", "null"),
        };
        match &self.api_base {
            Some(base) => o.str("apiBase", base),
            None => o.raw("apiBase", "null"),
        };
        o.raw("origins", &strings(self.config.routes.origins()));
        if let Some(g) = &self.guest {
            let mut guest = Object::new();
            guest
                .str("socketUrl", &g.socket_url)
                .str("linkUrl", &guest_socket(&g.socket_url, &g.deployment_id))
                .str("deploymentId", &g.deployment_id)
                .str("historyBase", &g.history_base)
                .str("storageKey", &g.storage_key);
            o.raw("guest", &guest.finish());
        }
        o.finish()
    }

    fn new_id(&mut self) -> EntryId {
        EntryId::random(&mut self.rng)
    }

    /// Whether `client` announced a replay with `key`; forgets it if so.
    fn take_replay(&mut self, client: &str, key: &str) -> bool {
        match self
            .replays
            .iter()
            .position(|(c, k)| c == client && k == key)
        {
            Some(at) => {
                self.replays.remove(at);
                true
            }
            None => false,
        }
    }
}

/// A JSON array of strings.
fn strings(list: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_string(&mut out, s);
    }
    out.push(']');
    out
}

/// The replay key of a request: FNV-1a (64 bits) of method, URL and body,
/// in hex. A page about to send a request itself while a worker controls
/// it tells the worker this key, and the worker lets the next request of
/// that client with that key go by: nothing is added to the request, so
/// no server sees a marker and no CORS preflight is caused.
pub fn replay_key(method: &str, url: &str, body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [method.as_bytes(), b"\0", url.as_bytes(), b"\0", body] {
        for b in part {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut key = String::with_capacity(16);
    json::push_hex(&mut key, &hash.to_be_bytes());
    key
}

/// What a job does next, once its machine (if any) has finished.
enum Next {
    /// Drive [`Job::machine`].
    Machine,
    /// Run [`Job::transaction`] (with no hooks).
    Store,
    /// The live attempt of this request.
    Live(Live),
    /// Over, with this result (JSON).
    Done(String),
}

/// A request to send, as the host gets it.
struct Live {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout_ms: u64,
}

/// One operation run to its end (see the [module](self)).
trait Job {
    /// The machine being driven (while [`Next::Machine`] stands).
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        None
    }
    /// What comes next: called first, and each time the machine finishes
    /// or the host answered.
    fn next(&mut self, engine: &mut Engine, now: Millis) -> Next;
    /// The transaction of [`Next::Store`].
    fn transaction(&mut self) -> Option<&mut dyn Transaction> {
        None
    }
    /// The transaction of [`Next::Store`] committed, or failed.
    fn stored(&mut self, _result: Result<(), StoreError>) {}
    /// The answer to [`Next::Live`].
    fn live(
        &mut self,
        _result: Result<Response, TransportError>,
        _engine: &mut Engine,
        _now: Millis,
    ) {
    }
    /// A machine's store transaction failed (not for a quota): the job
    /// ends with the error.
    fn failed(&mut self, error: StoreError);
    /// Events the job decided itself (an admin call's), told with the
    /// next output.
    fn take_events(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// The error result of a job.
fn failure(error: &StoreError) -> String {
    view::error(&error.text())
}

/// What the host has out for a job.
enum Open {
    Nothing,
    /// A store transaction: the machine's ask (`None`: the job's own).
    Store(IdbRun, Option<StoreAsk>),
    Tokens(TokensAsk),
    Live,
}

/// A job and what it has out.
struct Running {
    engine: usize,
    job: Box<dyn Job>,
    /// A machine is being driven.
    driving: bool,
    open: Open,
    /// The requests of `SEND`s out, by number, each answered on its own.
    sent: Vec<(u32, SendAsk)>,
    /// The number of the next request sent.
    next_request: u32,
}

/// The module: its buffers, its engines and its jobs, by handle.
#[derive(Default)]
pub struct Module {
    input: Vec<u8>,
    output: Vec<u8>,
    engines: Vec<Option<Engine>>,
    jobs: Vec<Option<Running>>,
}

/// A handle (1-based) of a slot list.
fn insert<T>(list: &mut Vec<Option<T>>, value: T) -> u32 {
    let at = match list.iter().position(Option::is_none) {
        Some(at) => {
            list[at] = Some(value);
            at
        }
        None => {
            list.push(Some(value));
            list.len() - 1
        }
    };
    u32::try_from(at + 1).unwrap_or(0)
}

fn slot<T>(list: &mut [Option<T>], handle: u32) -> Option<&mut T> {
    list.get_mut((handle as usize).checked_sub(1)?)?.as_mut()
}

impl Module {
    /// The input buffer, `len` bytes long, for the host to write a call's
    /// input frame into.
    pub fn input(&mut self, len: usize) -> &mut Vec<u8> {
        self.input.clear();
        self.input.resize(len, 0);
        &mut self.input
    }

    /// The last call's output frame.
    pub fn output(&self) -> &[u8] {
        &self.output
    }

    fn set_output(&mut self, out: Out) {
        self.output = out.into_vec();
    }

    /// Reads a configuration (input: its JSON text, and the origin the
    /// host runs on) and makes an engine of it; `guest`: a guest outbox's.
    /// Returns its handle, with its facts as output; 0 with the error's
    /// text when the configuration is refused.
    pub fn engine(&mut self, guest: bool, seed: u64) -> u32 {
        let input = core::mem::take(&mut self.input);
        let mut f = Frame::new(&input);
        let text = f.text().unwrap_or("");
        let here = f.text().unwrap_or("");
        let made = if guest {
            GuestConfig::parse(text, here).map(|g| {
                let facts = Guest {
                    storage_key: g.storage_key(),
                    socket_url: g.socket_url,
                    deployment_id: g.deployment_id,
                    history_base: g.api_base,
                };
                Engine::of(g.outbox, Some(facts), seed)
            })
        } else {
            OutboxConfig::parse(text, here).map(|c| Engine::of(c, None, seed))
        };
        let mut out = Out::new();
        let handle = match made {
            Ok(engine) => {
                out.json(&engine.facts());
                insert(&mut self.engines, engine)
            }
            Err(e) => {
                out.text(&e.to_string());
                0
            }
        };
        self.input = input;
        self.set_output(out);
        handle
    }

    /// Forgets an engine or a job.
    pub fn drop_engine(&mut self, handle: u32) {
        if let Some(s) = self.engines.get_mut((handle as usize).wrapping_sub(1)) {
            *s = None;
        }
    }

    /// Forgets a job (the host dropped it: its open transaction is
    /// aborted on the host's side).
    pub fn drop_job(&mut self, handle: u32) {
        if let Some(s) = self.jobs.get_mut((handle as usize).wrapping_sub(1)) {
            *s = None;
        }
    }

    /// Whether a request (input: method, URL) is on one of the engine's
    /// routes: its method, origin and path template alone
    /// ([`RouteTable::is_candidate`](outbox_core::route::RouteTable::is_candidate)),
    /// the synchronous answer a service worker gives before anything else.
    pub fn owns(&mut self, engine: u32) -> bool {
        let Some(e) = slot(&mut self.engines, engine) else {
            return false;
        };
        let mut f = Frame::new(&self.input);
        let (Some(method), Some(url)) = (f.text(), f.text()) else {
            return false;
        };
        e.config.routes.is_candidate(method, url)
    }

    /// A page announced that it sends a request itself (input: its client
    /// id, the replay key): the next request of that client with that key
    /// goes by untouched.
    pub fn replay(&mut self, engine: u32) {
        let Some(e) = slot(&mut self.engines, engine) else {
            return;
        };
        let mut f = Frame::new(&self.input);
        let (Some(client), Some(key)) = (f.text(), f.text()) else {
            return;
        };
        if e.replays.len() >= REPLAYS_KEPT {
            e.replays.pop_front();
        }
        e.replays.push_back((client.to_owned(), key.to_owned()));
    }

    /// The replay key of a request (input: method, URL as the browser
    /// normalised it, body) as output text ([`replay_key`]).
    pub fn replay_key(&mut self) {
        let mut f = Frame::new(&self.input);
        let method = f.text().unwrap_or("");
        let url = f.text().unwrap_or("");
        let key = replay_key(method, url, f.bytes());
        let mut out = Out::new();
        out.text(&key);
        self.set_output(out);
    }

    /// Builds a guest frame ([`outbox_core::guest`]) as output text:
    /// `kind` 0 `configureSession` (input: deployment, token, tracing id),
    /// 1 `getJwt` (token, tracing id), 2 a typing indicator (token, tracing
    /// id, time), 3 `onMessage` of a stored entry (token, its id, its body,
    /// time; empty when the body is not a guest entry).
    pub fn guest_frame(&mut self, kind: u32) {
        let mut f = Frame::new(&self.input);
        let mut t = || f.text().unwrap_or("").to_owned();
        let text = match kind {
            0 => {
                let (d, token, tracing) = (t(), t(), t());
                guest::configure_session(&d, &token, &tracing)
            }
            1 => {
                let (token, tracing) = (t(), t());
                guest::get_jwt(&token, &tracing)
            }
            2 => {
                let (token, tracing, time) = (t(), t(), t());
                guest::typing(&token, &tracing, &time)
            }
            _ => {
                let (token, id) = (t(), t());
                let body = f.bytes().to_vec();
                let time = f.text().unwrap_or("");
                match guest::GuestEntry::parse(&body) {
                    Some(entry) => guest::on_message_entry(&token, &id, &entry, &id, time),
                    None => String::new(),
                }
            }
        };
        let mut out = Out::new();
        out.text(&text);
        self.set_output(out);
    }

    /// Reads for the guest link: `kind` 0 a frame (input: its text) →
    /// `{tracingId, ended, session, rotates, jwt, message}` (`session`:
    /// `ready`, `rotate`, `refused` for a `configureSession` answer, else
    /// `null`); 1 an `onMessage` answer (its text) → the answer as `SEND`
    /// takes it (`{status, headers}`, body), or an empty text when it is
    /// not one; 2 a history page (its body) → `{ids, pageCount}` or
    /// `{error}`; 3 → the answer of an entry the history holds
    /// ([`guest::reconciled`]).
    pub fn guest_read(&mut self, kind: u32) {
        let mut f = Frame::new(&self.input);
        let mut out = Out::new();
        match kind {
            0 => {
                let text = f.text().unwrap_or("");
                let mut o = Object::new();
                match guest::parse_frame(text) {
                    Ok(frame) => {
                        match frame.tracing_id() {
                            Some(t) => o.str("tracingId", t),
                            None => o.raw("tracingId", "null"),
                        };
                        o.bool("ended", matches!(frame, guest::Frame::SessionEnded { .. }));
                        let (session, message) = match guest::session(&frame) {
                            guest::Session::Ready => ("ready", String::new()),
                            guest::Session::Rotate => ("rotate", String::new()),
                            guest::Session::Refused(why) => ("refused", why),
                        };
                        if matches!(
                            frame,
                            guest::Frame::Session { .. } | guest::Frame::Error { .. }
                        ) {
                            o.str("session", session);
                        } else {
                            o.raw("session", "null");
                        }
                        o.bool("rotates", guest::rotates(&frame));
                        match &frame {
                            guest::Frame::Jwt { jwt, .. } => o.str("jwt", jwt),
                            _ => o.raw("jwt", "null"),
                        };
                        o.str("message", &message);
                    }
                    Err(e) => {
                        o.raw("tracingId", "null")
                            .bool("ended", false)
                            .raw("session", "null")
                            .bool("rotates", false)
                            .raw("jwt", "null")
                            .str("message", &e.0);
                    }
                }
                out.json(&o.finish());
            }
            1 => {
                let answer = guest::parse_frame(f.text().unwrap_or(""))
                    .ok()
                    .and_then(|frame| guest::answer(&frame));
                match answer {
                    Some(r) => write_answer(&mut out, &r),
                    None => {
                        out.text("");
                    }
                }
            }
            2 => {
                let text = match guest::parse_history(f.bytes()) {
                    Ok(page) => {
                        let ids: Vec<String> = page
                            .messages
                            .into_iter()
                            .filter_map(|m| m.outbox_id)
                            .collect();
                        let mut o = Object::new();
                        o.raw("ids", &strings(&ids))
                            .num("pageCount", page.page_count);
                        o.finish()
                    }
                    Err(e) => view::error(&e.0),
                };
                out.json(&text);
            }
            _ => write_answer(&mut out, &guest::reconciled()),
        }
        self.set_output(out);
    }

    fn start(&mut self, engine: u32, job: Box<dyn Job>) -> u32 {
        if slot(&mut self.engines, engine).is_none() {
            return 0;
        }
        insert(
            &mut self.jobs,
            Running {
                engine: engine as usize,
                job,
                driving: false,
                open: Open::Nothing,
                sent: Vec::new(),
                next_request: 0,
            },
        )
    }

    /// A flush ([`Flush`]); `exclusive`: the host holds the origin-wide
    /// flush lock.
    pub fn flush(&mut self, engine: u32, exclusive: bool) -> u32 {
        let Some(e) = slot(&mut self.engines, engine) else {
            return 0;
        };
        let flush = Flush::new(e.config.clone(), e.asks.clone(), exclusive)
            .surveys(e.surveys.clone())
            .probe_gaps(e.gaps.clone());
        self.start(
            engine,
            Box::new(FlushJob {
                flush,
                started: false,
                error: None,
            }),
        )
    }

    /// The answer to an intercepted request (input: method, URL, headers
    /// as JSON pairs, body, client id); `queue`: keep it at once, without
    /// a live attempt (the app's handler answered for the network).
    pub fn respond(&mut self, engine: u32, queue: bool) -> u32 {
        let mut f = Frame::new(&self.input);
        let request = incoming(&mut f);
        let client = f.text().unwrap_or("").to_owned();
        let job = Respond {
            request: Some(request),
            client,
            queue,
            stage: Stage::Start,
            result: None,
        };
        self.start(engine, Box::new(job))
    }

    /// A page's send (input: method, URL, headers as JSON pairs, body):
    /// routed, then made durable ([`door::Write::through`]).
    pub fn submit(&mut self, engine: u32) -> u32 {
        let mut request = incoming(&mut Frame::new(&self.input));
        request.method.make_ascii_uppercase();
        self.start_submit(engine, Ok(request))
    }

    /// A page's `sendAgentMessage` (input: conversation id, communication
    /// id, text) or `sendOpenMessage` (`open`; input: integration id,
    /// sender id, text, id type, nickname (empty: none), the time as an
    /// ISO 8601 instant): the request built on the engine's `apiBase`
    /// ([`outbox_core::genesys`]), then sent as [`submit`](Self::submit)
    /// sends.
    pub fn submit_genesys(&mut self, engine: u32, open: bool) -> u32 {
        let mut f = Frame::new(&self.input);
        let Some(e) = slot(&mut self.engines, engine) else {
            return 0;
        };
        let Some(base) = e.api_base.clone() else {
            return self.start_submit(
                engine,
                Err(String::from(
                    "set `apiBase` or `region` in the configuration to use the Genesys helpers",
                )),
            );
        };
        let (a, b, text) = (
            f.text().unwrap_or(""),
            f.text().unwrap_or(""),
            f.text().unwrap_or(""),
        );
        let built = if open {
            let id_type = f.text().filter(|t| !t.is_empty());
            let nickname = f.text().filter(|t| !t.is_empty());
            let time = f.text().unwrap_or("");
            match id_type.map_or(Ok(genesys::IdType::default()), str::parse) {
                Ok(id_type) => {
                    let from = genesys::OpenFrom {
                        id: b,
                        id_type,
                        nickname,
                    };
                    genesys::open_message(&base, a, &from, text, time)
                }
                Err(e) => Err(e),
            }
        } else {
            genesys::agent_message(&base, a, b, text)
        };
        let built = built.map_err(|e| e.text());
        self.start_submit(engine, built)
    }

    fn start_submit(&mut self, engine: u32, request: Result<IncomingRequest, String>) -> u32 {
        let (request, result) = match request {
            Ok(r) => (Some(r), None),
            Err(why) => (None, Some(view::error(&why))),
        };
        self.start(
            engine,
            Box::new(Submit {
                request,
                write: None,
                result,
            }),
        )
    }

    /// A guest's message (input: the session token, then the message as
    /// JSON: `"text"`, `{"text"}` or `{"quickReply": {"text", "payload"?}}`)
    /// made durable.
    pub fn guest_send(&mut self, engine: u32) -> u32 {
        let mut f = Frame::new(&self.input);
        let token = f.text().unwrap_or("").to_owned();
        let message = f.text().unwrap_or("").to_owned();
        self.start(
            engine,
            Box::new(GuestSend {
                token,
                message,
                write: None,
                result: None,
            }),
        )
    }

    /// A token arrived (input: its origin, empty for every configured
    /// origin, and the token), valid for `expires_in` seconds when known:
    /// kept in memory, and the entries that waited for it released
    /// ([`door::Arrival`]).
    pub fn token(&mut self, engine: u32, expires_in: f64) -> u32 {
        let mut f = Frame::new(&self.input);
        let origin = f.text().unwrap_or("").to_owned();
        let token = f.text().unwrap_or("").to_owned();
        let Some(e) = slot(&mut self.engines, engine) else {
            return 0;
        };
        let origins = if origin.is_empty() {
            e.config.routes.origins().to_vec()
        } else {
            alloc::vec![origin]
        };
        let expires_in = (expires_in.is_finite() && expires_in > 0.0).then_some(expires_in);
        self.start(
            engine,
            Box::new(TokenJob {
                origins,
                token,
                expires_in,
                arrival: None,
                released: 0,
                error: None,
            }),
        )
    }

    /// The network is back ([`door::NetworkBack`]).
    pub fn network_back(&mut self, engine: u32) -> u32 {
        let Some(e) = slot(&mut self.engines, engine) else {
            return 0;
        };
        let back = door::NetworkBack::new(e.asks.clone()).probe_gaps(e.gaps.clone());
        self.start(engine, Box::new(Back(back, false, None)))
    }

    /// One admin transaction: `op` 0 stats, 1 queued, 2 dead letters (the
    /// limit in `n`), 3 revive, 4 discard, 5 cancel (input: the id), 6
    /// purge, 7 get (input: the id).
    pub fn admin(&mut self, engine: u32, op: u32, n: u32, now: Millis) -> u32 {
        let id = Frame::new(&self.input)
            .text()
            .and_then(|t| t.parse::<EntryId>().ok());
        let tx = match (op, id) {
            (0, _) => AdminTx::Stats(Tally::new(now)),
            (1, _) => AdminTx::List(List::queued(n as usize)),
            (2, _) => AdminTx::List(List::dead_letters(n as usize)),
            (3, Some(id)) => AdminTx::Revive(Revive::new(id, now), id),
            (4, Some(id)) => AdminTx::Discard(Discard::new(id), id),
            (5, Some(id)) => AdminTx::Cancel(Cancel::new(id), id),
            (6, _) => AdminTx::Purge(Purge::new()),
            (7, Some(id)) => AdminTx::Get(Get::new(id)),
            _ => {
                let mut out = Out::new();
                out.text("not an entry id");
                self.set_output(out);
                return 0;
            }
        };
        self.start(
            engine,
            Box::new(Admin {
                tx,
                now,
                state: AdminState::Start,
                event: None,
            }),
        )
    }

    /// Runs `job` on until it needs the host (see the [module](self)):
    /// returns the [`ask`], its output after the events.
    pub fn step(&mut self, job: u32, now: Millis) -> u32 {
        let mut out = Out::new();
        let kind = self.step_into(job, now, &mut out);
        self.set_output(out);
        kind
    }

    fn step_into(&mut self, handle: u32, now: Millis, out: &mut Out) -> u32 {
        let Some(running) = slot(&mut self.jobs, handle) else {
            return ask::NONE;
        };
        let Some(engine) = slot(&mut self.engines, running.engine as u32) else {
            return ask::NONE;
        };
        if !matches!(running.open, Open::Nothing) {
            return ask::NONE;
        }
        let mut events: Vec<Event> = Vec::new();
        loop {
            if running.driving {
                let Some(machine) = running.job.machine() else {
                    running.driving = false;
                    continue;
                };
                let io = machine.poll(now);
                events.append(&mut machine.take_events());
                match io {
                    Io::Done => running.driving = false,
                    Io::Offer(offer) => {
                        let fresh = engine
                            .tokens
                            .install(offer.origin(), offer.token(), None, now);
                        feed(machine, offer.reply(fresh), engine, now);
                    }
                    Io::Forget(forget) => {
                        for (origin, token) in forget.refused() {
                            engine.tokens.rejected(origin, token);
                        }
                        feed(machine, forget.reply(), engine, now);
                    }
                    Io::Store(mut store) => {
                        let (name, mode) = {
                            let tx = store.transaction();
                            (tx.name(), IdbRun::mode(tx.access()))
                        };
                        write_events(out, &events);
                        out.text(name).text(mode);
                        running.open = Open::Store(IdbRun::new(name, now), Some(store));
                        break ask::STORE;
                    }
                    Io::AskTokens(tokens) => {
                        write_events(out, &events);
                        out.json(&strings(tokens.origins()));
                        running.open = Open::Tokens(tokens);
                        break ask::TOKENS;
                    }
                    Io::Send(mut send) => {
                        write_events(out, &events);
                        let first = running.next_request;
                        let mut number = String::new();
                        json::push_u64(&mut number, u64::from(first));
                        out.text(&number);
                        let requests = send.requests(&|origin| {
                            engine.tokens.current(origin, now).map(str::to_owned)
                        });
                        write_requests(out, &requests);
                        drop(requests);
                        for part in send.split() {
                            running.sent.push((running.next_request, part));
                            running.next_request = running.next_request.wrapping_add(1);
                        }
                        break ask::SEND;
                    }
                    Io::Wait => {
                        write_events(out, &events);
                        break ask::WAIT;
                    }
                }
                continue;
            }
            let next = running.job.next(engine, now);
            events.append(&mut running.job.take_events());
            match next {
                Next::Machine => running.driving = true,
                Next::Store => {
                    let Some(tx) = running.job.transaction() else {
                        continue;
                    };
                    let (name, mode) = (tx.name(), IdbRun::mode(tx.access()));
                    write_events(out, &events);
                    out.text(name).text(mode);
                    running.open = Open::Store(IdbRun::new(name, now), None);
                    break ask::STORE;
                }
                Next::Live(live) => {
                    write_events(out, &events);
                    let request = OutgoingRequest {
                        method: &live.method,
                        url: &live.url,
                        headers: live.headers,
                        body: &live.body,
                        timeout_ms: live.timeout_ms,
                        unknown_outcome: false,
                        leave_by: None,
                    };
                    write_requests(out, core::slice::from_ref(&request));
                    running.open = Open::Live;
                    break ask::LIVE;
                }
                Next::Done(result) => {
                    write_events(out, &events);
                    out.json(&result);
                    break ask::DONE;
                }
            }
        }
    }

    /// The next step of the job's open store transaction: its input is the
    /// results of the last batch's reads (nothing the first time). Returns
    /// [`tx::OPS`] or [`tx::COMMIT`], the batch (operations, bodies) as
    /// output; [`tx::FAILED`] when the transaction cannot go on.
    pub fn tx(&mut self, handle: u32, now: Millis) -> u32 {
        let input = core::mem::take(&mut self.input);
        let mut out = Out::new();
        let kind = self.tx_into(handle, now, &mut Frame::new(&input), &mut out);
        self.input = input;
        self.set_output(out);
        kind
    }

    fn tx_into(&mut self, handle: u32, now: Millis, results: &mut Frame<'_>, out: &mut Out) -> u32 {
        let Some(running) = slot(&mut self.jobs, handle) else {
            return tx::FAILED;
        };
        let Some(engine) = slot(&mut self.engines, running.engine as u32) else {
            return tx::FAILED;
        };
        let Open::Store(run, ask) = &mut running.open else {
            return tx::FAILED;
        };
        let tokens = &engine.tokens;
        let has_token = |origin: &str| tokens.current(origin, now).is_some();
        let advanced = match ask {
            Some(ask) => match running.job.machine() {
                Some(machine) => {
                    let mut hooks = Hooks {
                        machine,
                        has_token: &has_token,
                    };
                    run.advance(ask.transaction(), &mut hooks, results)
                }
                None => return tx::FAILED,
            },
            None => match running.job.transaction() {
                Some(transaction) => run.advance(transaction, &mut NoHooks, results),
                None => return tx::FAILED,
            },
        };
        match advanced {
            Ok(Advance::Ops(batch)) => {
                write_batch(out, &batch);
                tx::OPS
            }
            Ok(Advance::Commit(batch)) => {
                write_batch(out, &batch);
                tx::COMMIT
            }
            Err(error) => {
                running.open = Open::Nothing;
                running.driving = false;
                running.job.failed(error);
                tx::FAILED
            }
        }
    }

    /// The job's store transaction ended: `ok`, committed; else the host's
    /// input is the failure's name and message (a quota failure refuses an
    /// enqueue; any other ends the job with the error). Returns whether the
    /// host replaces its connection ([`StoreError::replaces_connection`]).
    pub fn tx_end(&mut self, handle: u32, ok: bool, now: Millis) -> bool {
        let input = core::mem::take(&mut self.input);
        let mut f = Frame::new(&input);
        let (name, message) = (f.text().unwrap_or("Error"), f.text().unwrap_or(""));
        let mut replace = false;
        if let Some(running) = slot(&mut self.jobs, handle)
            && let Some(engine) = slot(&mut self.engines, running.engine as u32)
            && let Open::Store(run, ask) = core::mem::replace(&mut running.open, Open::Nothing)
        {
            let result = if ok {
                Ok(())
            } else {
                let error = run.failed(name, message);
                replace = error.replaces_connection();
                Err(error)
            };
            match (ask, result) {
                (Some(ask), Ok(())) => {
                    if let Some(machine) = running.job.machine() {
                        feed(machine, ask.done(), engine, now);
                    }
                }
                (Some(ask), Err(error)) => {
                    let refused = error
                        .quota_message()
                        .and_then(|why| ask.quota_exceeded(why));
                    match (refused, running.job.machine()) {
                        (Some(reply), Some(machine)) => feed(machine, reply, engine, now),
                        _ => {
                            running.driving = false;
                            running.job.failed(error);
                        }
                    }
                }
                (None, result) => running.job.stored(result),
            }
        }
        self.input = input;
        replace
    }

    /// The answer to request `k` of a `SEND` (input: one answer, as
    /// `reply` takes it); the host steps the job on after it.
    pub fn answer(&mut self, handle: u32, k: u32, now: Millis) {
        let input = core::mem::take(&mut self.input);
        let mut f = Frame::new(&input);
        if let Some(running) = slot(&mut self.jobs, handle)
            && let Some(engine) = slot(&mut self.engines, running.engine as u32)
            && let Some(at) = running.sent.iter().position(|(n, _)| *n == k)
        {
            let (_, ask) = running.sent.swap_remove(at);
            let result = answer(&mut f);
            if let Some(machine) = running.job.machine() {
                feed(machine, ask.reply(alloc::vec![result]), engine, now);
            }
        }
        self.input = input;
    }

    /// The host's answer to the job's open `TOKENS` or `LIVE`
    /// (input: see `web/host/core.ts`).
    pub fn reply(&mut self, handle: u32, now: Millis) {
        let input = core::mem::take(&mut self.input);
        let mut f = Frame::new(&input);
        if let Some(running) = slot(&mut self.jobs, handle)
            && let Some(engine) = slot(&mut self.engines, running.engine as u32)
        {
            match core::mem::replace(&mut running.open, Open::Nothing) {
                Open::Tokens(ask) => {
                    // [[origin, token, expiresIn | null], …]: what came.
                    let mut came = Vec::new();
                    let text = f.text().unwrap_or("[]");
                    for item in json::items(text.as_bytes()).unwrap_or_default() {
                        let fields = json::items(item.raw).unwrap_or_default();
                        let origin = fields.first().and_then(|v| v.as_str());
                        let token = fields.get(1).and_then(|v| v.as_str());
                        let expires = fields.get(2).and_then(seconds);
                        if let (Some(origin), Some(token)) = (origin, token) {
                            engine.tokens.install(&origin, &token, expires, now);
                            came.push(origin.into_owned());
                        }
                    }
                    if let Some(machine) = running.job.machine() {
                        feed(machine, ask.reply(came), engine, now);
                    }
                }
                Open::Live => {
                    let result = answer(&mut f);
                    running.job.live(result, engine, now);
                }
                open => running.open = open,
            }
        }
        self.input = input;
    }
}

/// A number of seconds from a JSON value (`null`: unknown).
fn seconds(v: &json::Value<'_>) -> Option<f64> {
    if v.kind != Kind::Number {
        return None;
    }
    // Whole seconds (`expires_in` is a count); a fraction is cut.
    let text = core::str::from_utf8(v.raw).ok()?;
    let whole = text.split(['.', 'e', 'E']).next()?;
    whole.parse::<u64>().ok().map(|n| n as f64)
}

fn feed(
    machine: &mut dyn Machine,
    reply: outbox_core::io::Reply,
    engine: &mut Engine,
    now: Millis,
) {
    let mut cx = Cx {
        now,
        rng: &mut engine.rng,
    };
    machine.feed(reply, &mut cx);
}

fn write_events(out: &mut Out, events: &[Event]) {
    let mut text = String::from("[");
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&e.to_json());
    }
    text.push(']');
    out.json(&text);
}

/// The requests of a `SEND` (or `LIVE`): `[{method, url, headers,
/// timeoutMs, unknownOutcome, replay}, …]`, then each body.
fn write_requests(out: &mut Out, requests: &[OutgoingRequest<'_>]) {
    let mut text = String::from("[");
    for (i, r) in requests.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        let mut headers = String::from("[");
        for (j, (name, value)) in r.headers.iter().enumerate() {
            if j > 0 {
                headers.push(',');
            }
            headers.push('[');
            json::write_string(&mut headers, name);
            headers.push(',');
            json::write_string(&mut headers, value);
            headers.push(']');
        }
        headers.push(']');
        let mut o = Object::new();
        o.str("method", r.method)
            .str("url", r.url)
            .raw("headers", &headers)
            .num("timeoutMs", r.timeout_ms)
            .bool("unknownOutcome", r.unknown_outcome)
            .str("replay", &replay_key(r.method, r.url, r.body));
        text.push_str(&o.finish());
    }
    text.push(']');
    out.json(&text);
    for r in requests {
        out.bytes(r.body);
    }
}

fn write_batch(out: &mut Out, batch: &crate::idb::Batch) {
    out.json(&batch.ops);
    for blob in &batch.blobs {
        out.bytes(blob);
    }
}

/// An answer as the host reports it: `{"status", "headers"}` then the
/// body, or `{"error": "network" | "timeout", "message"}`. Shared by
/// `reply` (`LIVE`) and `answer` (`SEND`); kept out of line (it made no
/// measurable difference to the shipped size: 122.3 KiB gzip either way
/// within 0.1 KiB).
#[inline(never)]
fn answer(f: &mut Frame<'_>) -> Result<Response, TransportError> {
    let head = f.text().unwrap_or("{}");
    let body = f.bytes();
    let doc = head.as_bytes();
    if let Some(kind) = json::find(doc, &["error"]).and_then(|v| v.as_str()) {
        let message = json::find(doc, &["message"])
            .and_then(|v| v.as_str())
            .map(|m| m.into_owned())
            .unwrap_or_default();
        return Err(TransportError {
            kind: if kind == "timeout" {
                FailureKind::Timeout
            } else {
                FailureKind::Network
            },
            message,
        });
    }
    let status = json::find(doc, &["status"])
        .and_then(|v| core::str::from_utf8(v.raw).ok()?.parse::<u16>().ok())
        .unwrap_or(0);
    Ok(Response {
        status,
        headers: pairs(json::find(doc, &["headers"]).map_or(&[][..], |v| v.raw)),
        body: body.to_vec(),
    })
}

/// An answer as `SEND` takes it: `{status, headers}`, then the body.
fn write_answer(out: &mut Out, r: &Response) {
    let mut headers = String::from("[");
    for (i, (name, value)) in r.headers.iter().enumerate() {
        if i > 0 {
            headers.push(',');
        }
        headers.push('[');
        json::write_string(&mut headers, name);
        headers.push(',');
        json::write_string(&mut headers, value);
        headers.push(']');
    }
    headers.push(']');
    let mut o = Object::new();
    o.num("status", u64::from(r.status))
        .raw("headers", &headers);
    out.json(&o.finish());
    out.bytes(&r.body);
}

/// `[[name, value], …]` as pairs.
fn pairs(doc: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for pair in json::items(doc).unwrap_or_default() {
        let items = json::items(pair.raw).unwrap_or_default();
        if let (Some(n), Some(v)) = (
            items.first().and_then(|v| v.as_str()),
            items.get(1).and_then(|v| v.as_str()),
        ) {
            out.push((n.into_owned(), v.into_owned()));
        }
    }
    out
}

/// A request as the host hands it over: method, URL, headers (JSON
/// pairs), body.
fn incoming(f: &mut Frame<'_>) -> IncomingRequest {
    let method = f.text().unwrap_or("POST").to_owned();
    let url = f.text().unwrap_or("").to_owned();
    let headers = pairs(f.text().unwrap_or("[]").as_bytes());
    let body = f.bytes().to_vec();
    IncomingRequest {
        method,
        url,
        headers,
        body,
    }
}

/// A flush: its report, or the store's error.
struct FlushJob {
    flush: Flush,
    started: bool,
    error: Option<StoreError>,
}

impl Job for FlushJob {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        Some(&mut self.flush)
    }
    fn next(&mut self, _: &mut Engine, _: Millis) -> Next {
        if let Some(error) = &self.error {
            return Next::Done(failure(error));
        }
        if core::mem::replace(&mut self.started, true) {
            Next::Done(view::report(self.flush.report()))
        } else {
            Next::Machine
        }
    }
    fn failed(&mut self, error: StoreError) {
        self.error = Some(error);
    }
}

/// The network is back.
struct Back(door::NetworkBack, bool, Option<StoreError>);

impl Job for Back {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        Some(&mut self.0)
    }
    fn next(&mut self, _: &mut Engine, _: Millis) -> Next {
        if let Some(error) = &self.2 {
            return Next::Done(failure(error));
        }
        if core::mem::replace(&mut self.1, true) {
            let mut o = Object::new();
            o.num("due", self.0.due() as u64);
            Next::Done(o.finish())
        } else {
            Next::Machine
        }
    }
    fn failed(&mut self, error: StoreError) {
        self.2 = Some(error);
    }
}

/// A token for some origins: each kept, then each origin's parked entries
/// released.
struct TokenJob {
    origins: Vec<String>,
    token: String,
    expires_in: Option<f64>,
    arrival: Option<door::Arrival>,
    released: usize,
    error: Option<StoreError>,
}

impl Job for TokenJob {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        self.arrival.as_mut().map(|a| a as &mut dyn Machine)
    }
    fn next(&mut self, engine: &mut Engine, now: Millis) -> Next {
        if let Some(error) = &self.error {
            return Next::Done(failure(error));
        }
        if let Some(done) = self.arrival.take() {
            self.released += done.released();
        }
        match self.origins.pop() {
            Some(origin) => {
                engine
                    .tokens
                    .install(&origin, &self.token, self.expires_in, now);
                self.arrival = Some(door::Arrival::new(&origin, None));
                Next::Machine
            }
            None => {
                let mut o = Object::new();
                o.num("released", self.released as u64);
                Next::Done(o.finish())
            }
        }
    }
    fn failed(&mut self, error: StoreError) {
        self.arrival = None;
        self.origins.clear();
        self.error = Some(error);
    }
}

/// A page's send: routed, then made durable.
struct Submit {
    request: Option<IncomingRequest>,
    write: Option<door::Write>,
    result: Option<String>,
}

/// Why a page's send was refused: the request is on no configured route.
fn no_route(request: &IncomingRequest) -> String {
    let mut text = String::from("no configured route matches ");
    text.push_str(&request.method);
    text.push(' ');
    text.push_str(&request.url);
    text
}

/// Why a page's send was refused: a route matched, but the request cannot
/// be keyed.
fn unroutable(route: &str, reason: &str) -> String {
    let mut text = String::from("route `");
    text.push_str(route);
    text.push_str("` cannot take this request: ");
    text.push_str(reason);
    text
}

/// The result of a write: `{"accepted": {…}}`, or the refusal's text.
fn written(write: door::Write) -> String {
    match write.result() {
        Some(Ok(entry)) => {
            let mut o = Object::new();
            o.raw("accepted", &view::accepted(&entry));
            o.finish()
        }
        Some(Err(refused)) => view::error(&refused.text()),
        None => view::error("the send was not kept"),
    }
}

impl Job for Submit {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        self.write.as_mut().map(|w| w as &mut dyn Machine)
    }
    fn next(&mut self, engine: &mut Engine, _: Millis) -> Next {
        if let Some(result) = self.result.take() {
            return Next::Done(result);
        }
        if let Some(write) = self.write.take() {
            return Next::Done(written(write));
        }
        let Some(request) = self.request.take() else {
            return Next::Done(view::error("the send was not kept"));
        };
        let id = engine.new_id();
        match engine.config.routes.prepare(&request, id) {
            Routing::Unmatched => Next::Done(view::error(&no_route(&request))),
            Routing::Unroutable { route, reason } => {
                Next::Done(view::error(&unroutable(&route, &reason)))
            }
            Routing::Matched(prepared) => {
                self.write = Some(door::Write::through(*prepared, engine.config.limits));
                Next::Machine
            }
        }
    }
    fn failed(&mut self, error: StoreError) {
        self.write = None;
        self.result = Some(failure(&error));
    }
}

/// A guest's message made durable.
struct GuestSend {
    token: String,
    message: String,
    write: Option<door::Write>,
    result: Option<String>,
}

/// What a guest outbox was asked to send: `"text"`, `{"text"}`, or
/// `{"quickReply": {"text", "payload"?}}` (the payload defaults to the
/// text).
fn guest_message(text: &str) -> Result<guest::GuestEntry, &'static str> {
    let doc = text.as_bytes();
    let value = json::find(doc, &[]).ok_or("not a message")?;
    if let Some(reply) = json::find(doc, &["quickReply"]).filter(|v| v.kind == Kind::Object) {
        let text = json::find(reply.raw, &["text"])
            .and_then(|v| v.as_str())
            .filter(|t| !t.trim().is_empty())
            .ok_or("a quick-reply answer needs the button's text")?;
        let payload = json::find(reply.raw, &["payload"])
            .and_then(|v| v.as_str())
            .unwrap_or_else(|| text.clone());
        return Ok(guest::GuestEntry::quick_reply(&text, &payload));
    }
    let text = match value.kind {
        Kind::String => value.as_str(),
        Kind::Object => json::find(doc, &["text"]).and_then(|v| v.as_str()),
        _ => None,
    }
    .ok_or(
        "a guest outbox sends text or a quick-reply answer: send('hello'), send({ text }) or send({ quickReply: { text, payload } })",
    )?;
    if text.trim().is_empty() {
        return Err("a guest message needs some text");
    }
    Ok(guest::GuestEntry::text(&text))
}

impl Job for GuestSend {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        self.write.as_mut().map(|w| w as &mut dyn Machine)
    }
    fn next(&mut self, engine: &mut Engine, _: Millis) -> Next {
        if let Some(result) = self.result.take() {
            return Next::Done(result);
        }
        if let Some(write) = self.write.take() {
            return Next::Done(written(write));
        }
        let Some(link) = engine.guest.as_ref() else {
            return Next::Done(view::error("not a guest outbox"));
        };
        let entry = match guest_message(&self.message) {
            Ok(entry) => entry,
            Err(why) => return Next::Done(view::error(why)),
        };
        let url = guest_socket(&link.socket_url, &link.deployment_id);
        let id = engine.new_id();
        let prepared = guest::prepare_entry(id, &url, &self.token, &entry);
        self.write = Some(door::Write::new(
            prepared,
            engine.config.limits,
            false,
            None,
            "write-through",
        ));
        Next::Machine
    }
    fn failed(&mut self, error: StoreError) {
        self.write = None;
        self.result = Some(failure(&error));
    }
}

/// The guest socket's URL with its deployment (`?deploymentId=`), as the
/// link connects to it and as a guest entry keeps it.
pub fn guest_socket(url: &str, deployment_id: &str) -> String {
    let mut out = String::from(url);
    out.push(if url.contains('?') { '&' } else { '?' });
    out.push_str("deploymentId=");
    for b in deployment_id.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            out.push(b as char);
        } else {
            out.push('%');
            for nibble in [b >> 4, b & 0xf] {
                out.push(char::from(b"0123456789ABCDEF"[usize::from(nibble)]));
            }
        }
    }
    out
}

/// Where an intercepted request stands.
enum Stage {
    Start,
    Intercept(door::Intercept, Prepared, IncomingRequest),
    Live(Prepared, bool),
    /// The live answer came: the forward is to run.
    Answered(door::Forward),
    Forward(door::Forward),
    Write(door::Write, &'static str),
    Done,
}

/// The answer to an intercepted request: a page's announced replay goes
/// by; otherwise forwarded live or kept, as core decides
/// ([`door::Intercept`], [`door::Forward`], [`door::Write`]).
struct Respond {
    request: Option<IncomingRequest>,
    client: String,
    queue: bool,
    stage: Stage,
    result: Option<String>,
}

/// The result of an intercepted request: `{"pass": "original"}` (the host
/// lets the request go as it is), `{"pass": "live"}` (it answers the live
/// attempt's response), `{"status", "body", "kick"}` (it answers this, and
/// flushes when `kick`), or `{"error"}` (it rejects).
fn pass(what: &str) -> String {
    let mut o = Object::new();
    o.str("pass", what);
    o.finish()
}

fn kept<E: core::error::Error>(result: &Result<Entry, EnqueueError<E>>, reason: &str) -> String {
    let (status, body) = door::kept_answer(result, reason);
    let mut o = Object::new();
    o.num("status", u64::from(status))
        .str("body", &body)
        .bool("kick", result.is_ok());
    o.finish()
}

impl Job for Respond {
    fn machine(&mut self) -> Option<&mut dyn Machine> {
        match &mut self.stage {
            Stage::Intercept(m, ..) => Some(m),
            Stage::Forward(m) => Some(m),
            Stage::Write(m, _) => Some(m),
            _ => None,
        }
    }

    fn next(&mut self, engine: &mut Engine, now: Millis) -> Next {
        if let Some(result) = self.result.take() {
            self.stage = Stage::Done;
            return Next::Done(result);
        }
        match core::mem::replace(&mut self.stage, Stage::Done) {
            Stage::Start => {
                let Some(request) = self.request.take() else {
                    return Next::Done(pass("original"));
                };
                if !self.client.is_empty() {
                    let key = replay_key(&request.method, &request.url, &request.body);
                    if engine.take_replay(&self.client, &key) {
                        return Next::Done(pass("original"));
                    }
                }
                let id = engine.new_id();
                let prepared = match engine.config.routes.prepare(&request, id) {
                    Routing::Matched(p) => *p,
                    Routing::Unmatched | Routing::Unroutable { .. } if self.queue => {
                        return Next::Done(view::error(
                            "Outbox keeps only requests on its configured routes (this one is not)",
                        ));
                    }
                    Routing::Unmatched | Routing::Unroutable { .. } => {
                        return Next::Done(pass("original"));
                    }
                };
                if self.queue {
                    let reason = "handed-over";
                    let write =
                        door::Write::new(prepared, engine.config.limits, false, None, reason);
                    self.stage = Stage::Write(write, reason);
                } else {
                    self.stage = Stage::Intercept(
                        door::Intercept::new(&prepared, engine.config.pacer),
                        prepared,
                        request,
                    );
                }
                Next::Machine
            }
            Stage::Intercept(intercept, prepared, request) => match intercept.decision() {
                Some(BeforeForward::Queue(reason)) => {
                    let write = door::Write::new(
                        prepared,
                        engine.config.limits,
                        false,
                        None,
                        reason.name(),
                    );
                    self.stage = Stage::Write(write, reason.name());
                    Next::Machine
                }
                Some(decision @ (BeforeForward::Forward | BeforeForward::ForwardWatched)) => {
                    let token = engine.tokens.current(&prepared.origin, now);
                    let live = OutgoingRequest::live(
                        &request,
                        &prepared,
                        token,
                        engine.forward_timeout_ms,
                    );
                    let live = Live {
                        method: live.method.to_owned(),
                        url: live.url.to_owned(),
                        headers: live.headers,
                        body: live.body.to_vec(),
                        timeout_ms: live.timeout_ms,
                    };
                    self.stage = Stage::Live(prepared, decision.watched());
                    Next::Live(live)
                }
                // The store is unusable: we cannot keep it, so do not
                // pretend to.
                None => Next::Done(pass("original")),
            },
            Stage::Write(write, reason) => {
                let result = write.result().unwrap_or(Err(EnqueueError::Full {
                    max_entries: engine.config.limits.max_entries,
                }));
                Next::Done(kept(&result, reason))
            }
            Stage::Answered(forward) => {
                self.stage = Stage::Forward(forward);
                Next::Machine
            }
            Stage::Forward(forward) => match forward.result() {
                Some(Ok(Forwarded::PassThrough(_))) => Next::Done(pass("live")),
                Some(Ok(Forwarded::Queued(entry))) => {
                    let reason = entry
                        .last_error
                        .as_ref()
                        .map(LastError::text)
                        .unwrap_or_default();
                    Next::Done(kept::<core::convert::Infallible>(&Ok(*entry), &reason))
                }
                Some(Err(refused)) => Next::Done(kept(&Err::<Entry, _>(refused), "")),
                None => Next::Done(pass("live")),
            },
            stage @ (Stage::Live(..) | Stage::Done) => {
                self.stage = stage;
                Next::Done(pass("original"))
            }
        }
    }

    fn live(&mut self, result: Result<Response, TransportError>, engine: &mut Engine, now: Millis) {
        if let Stage::Live(prepared, watched) = core::mem::replace(&mut self.stage, Stage::Done) {
            let forward = door::Forward::new(
                prepared,
                &result,
                engine.config.clone(),
                engine.asks.clone(),
                now,
                watched,
            );
            self.stage = Stage::Answered(forward);
        }
    }

    fn failed(&mut self, error: StoreError) {
        self.result = Some(match core::mem::replace(&mut self.stage, Stage::Done) {
            // The lane read failed: the request goes as if Outbox were
            // not there.
            Stage::Intercept(..) => pass("original"),
            _ => kept(&Err::<Entry, _>(EnqueueError::Store(error)), ""),
        });
    }
}

/// The admin transactions.
enum AdminTx {
    Stats(Tally),
    List(List),
    Revive(Revive, EntryId),
    Discard(Discard, EntryId),
    Cancel(Cancel, EntryId),
    Purge(Purge),
    Get(Get),
}

enum AdminState {
    Start,
    Running,
    Done(Result<(), StoreError>),
}

/// One admin transaction; the event core decides for what it did
/// ([`door::revived`], …).
struct Admin {
    tx: AdminTx,
    now: Millis,
    state: AdminState,
    event: Option<Event>,
}

impl Job for Admin {
    fn next(&mut self, _engine: &mut Engine, _now: Millis) -> Next {
        match core::mem::replace(&mut self.state, AdminState::Running) {
            AdminState::Start => Next::Store,
            AdminState::Running => Next::Done(view::error("the transaction did not end")),
            AdminState::Done(Err(e)) => Next::Done(failure(&e)),
            AdminState::Done(Ok(())) => {
                let placeholder = AdminTx::Purge(Purge::new());
                let (result, event) = match core::mem::replace(&mut self.tx, placeholder) {
                    AdminTx::Stats(t) => (view::stats(&t.finish()), None),
                    AdminTx::List(t) => (view::entries(&t.finish(), self.now), None),
                    AdminTx::Get(t) => (
                        t.finish()
                            .map_or_else(|| String::from("null"), |e| view::entry(&e, self.now)),
                        None,
                    ),
                    AdminTx::Revive(t, id) => {
                        let entry = t.finish();
                        let event = door::revived(id, entry.as_ref());
                        (bool_text(entry.is_some()), event)
                    }
                    AdminTx::Discard(t, id) => {
                        let entry = t.finish();
                        let event = door::discarded(id, entry.as_ref());
                        (bool_text(entry.is_some()), event)
                    }
                    AdminTx::Cancel(t, id) => {
                        let result = t.finish();
                        let text = json::string(match result {
                            CancelResult::Cancelled => "cancelled",
                            CancelResult::InFlight => "in-flight",
                            CancelResult::NotFound => "not-found",
                        });
                        (text, door::cancelled(id, result))
                    }
                    AdminTx::Purge(t) => {
                        let purged = t.finish();
                        let mut o = Object::new();
                        o.num("queued", purged.queued as u64)
                            .num("dead", purged.dead as u64);
                        (o.finish(), Some(door::purged(purged)))
                    }
                };
                self.event = event;
                Next::Done(result)
            }
        }
    }

    fn transaction(&mut self) -> Option<&mut dyn Transaction> {
        Some(match &mut self.tx {
            AdminTx::Stats(t) => t,
            AdminTx::List(t) => t,
            AdminTx::Revive(t, _) => t,
            AdminTx::Discard(t, _) => t,
            AdminTx::Cancel(t, _) => t,
            AdminTx::Purge(t) => t,
            AdminTx::Get(t) => t,
        })
    }

    fn stored(&mut self, result: Result<(), StoreError>) {
        self.state = AdminState::Done(result);
    }

    fn failed(&mut self, error: StoreError) {
        self.state = AdminState::Done(Err(error));
    }

    fn take_events(&mut self) -> Vec<Event> {
        self.event.take().into_iter().collect()
    }
}

fn bool_text(b: bool) -> String {
    String::from(if b { "true" } else { "false" })
}
