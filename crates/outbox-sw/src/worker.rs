//! The worker: intercept, queue, replay, tokens, triggers.

use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};
use web_sys::{Request, Response, ResponseInit};

use outbox_core::door::Forwarded;
use outbox_core::entry::Prepared;
use outbox_core::intercept::BeforeForward;
use outbox_core::json;
use outbox_core::queue::EnqueueError;
use outbox_core::request::{IncomingRequest, OutgoingRequest};
use outbox_core::route::Routing;
use outbox_driver::token::TokenSource;
use outbox_web::config::WebConfig;
use outbox_web::events::BroadcastEvents;
use outbox_web::fetch::{self, BrowserTransport, FetchTransport, Parts};
use outbox_web::flusher::Flusher;
use outbox_web::js;
use outbox_web::protocol::Message;
use outbox_web::tokens::BrowserTokens;
use outbox_web::{WebEngine, open_engine, take_token, view};

/// The Background Sync tag the worker registers while entries wait.
pub const SYNC_TAG: &str = "outbox-flush";
/// How long one `sync` event keeps flushing before handing back (Chromium
/// allows about three minutes).
const SYNC_BUDGET_MS: f64 = 150_000.0;

/// How many announced page replays a worker remembers (oldest forgotten
/// first; a replay whose fetch never came is simply never matched).
const REPLAYS_KEPT: usize = 64;

struct Inner {
    config: WebConfig,
    engine: Rc<WebEngine>,
    flusher: Flusher,
    tokens: BrowserTokens,
    /// Page replays announced (`OUTBOX_REPLAY`): (client id, replay key).
    replays: std::cell::RefCell<std::collections::VecDeque<(String, String)>>,
}

impl Inner {
    /// Whether `client` announced a replay with `key`; forgets it if so.
    fn take_replay(&self, client: &str, key: &str) -> bool {
        let mut replays = self.replays.borrow_mut();
        match replays.iter().position(|(c, k)| c == client && k == key) {
            Some(at) => {
                replays.remove(at);
                true
            }
            None => false,
        }
    }
}

/// The service worker's engine. Create it with [`OutboxWorker::start`].
#[wasm_bindgen]
pub struct OutboxWorker {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl OutboxWorker {
    /// Opens the store and starts the engine. `config` is the JSON of the
    /// configuration (the shim passes the `config` parameter of its own
    /// URL). Starts a flush once the event that woke the worker is served
    /// ([`Flusher::kick_soon`]): whatever waited while it slept goes out
    /// then.
    pub async fn start(config: String) -> Result<OutboxWorker, JsValue> {
        let config = outbox_web::config::from_json(&config).map_err(js::error)?;
        let asker: outbox_web::tokens::Asker = {
            let queue_id = config.database.clone();
            Rc::new(move |origin: &str| {
                tell_pages(Message::TokenRefreshRequired {
                    queue_id: queue_id.clone(),
                    origin: origin.to_owned(),
                })
            })
        };
        let tokens = BrowserTokens::new(config.token_url.clone(), Some(asker));
        let engine = Rc::new(
            open_engine(
                &config,
                BrowserTransport::Fetch(FetchTransport),
                tokens.clone(),
                BroadcastEvents::new(&config.channel),
            )
            .await
            .map_err(js::error)?,
        );
        let flusher = Flusher::new(engine.clone(), &config.database);
        // This worker's timers die with it (stopped when idle): its pages
        // keep the next wake-up and send `flush` then.
        let queue_id = config.database.clone();
        flusher.on_next_wake(move |at| {
            tell_pages(Message::Wake {
                queue_id: queue_id.clone(),
                at: at as f64,
            })
        });
        flusher.kick_soon();
        Ok(OutboxWorker {
            inner: Rc::new(Inner {
                config,
                engine,
                flusher,
                tokens,
                replays: Default::default(),
            }),
        })
    }

    /// Answers an intercepted request (for `FetchEvent.respondWith`);
    /// `client_id` is the fetch event's `clientId` (a page's announced
    /// replay from that client goes by untouched).
    pub fn respond(&self, request: Request, client_id: Option<String>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            respond(&inner, request, client_id.unwrap_or_default(), false)
                .await
                .map(JsValue::from)
        })
    }

    /// Keeps a request of a configured route without a live attempt: for an
    /// app whose own handler decided the server cannot take it now (it
    /// answered 503 itself). Resolves with `202 {"queued":true,…}`, or the
    /// refusal (`507`, `413`); rejects when the request is on no
    /// configured route.
    pub fn queue(&self, request: Request) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            respond(&inner, request, String::new(), true)
                .await
                .map(JsValue::from)
        })
    }

    /// Handles a message from a page (a [`Message`] for the worker, from
    /// the client `client_id`); anything else is left alone. Rejects with
    /// the field at fault when an Outbox message is malformed.
    /// Resolves when done (for `ExtendableMessageEvent.waitUntil`).
    #[wasm_bindgen(js_name = handleMessage)]
    pub fn handle_message(&self, data: JsValue, client_id: Option<String>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let message = Message::from_js(&data).map_err(js::error)?;
            match message {
                Some(Message::Replay { key }) => {
                    let Some(client) = client_id else {
                        return Err(JsValue::from_str("OUTBOX_REPLAY needs a client"));
                    };
                    let mut replays = inner.replays.borrow_mut();
                    if replays.len() >= REPLAYS_KEPT {
                        replays.pop_front();
                    }
                    replays.push_back((client, key));
                    Ok(JsValue::TRUE)
                }
                Some(Message::TokenUpdated {
                    token,
                    origin,
                    expires_in,
                }) => {
                    take_token(
                        &inner.engine,
                        &inner.tokens,
                        &token,
                        origin.as_deref(),
                        expires_in,
                    )
                    .await
                    .map_err(js::error)?;
                    flush(&inner).await
                }
                Some(Message::Flush) => flush(&inner).await,
                // A page's `online` event (workers get none in Chromium):
                // what waited only for the network is due now.
                Some(Message::Online) => {
                    inner.engine.network_back().await.map_err(js::error)?;
                    flush(&inner).await
                }
                // Another app's message, or one for pages.
                Some(Message::TokenRefreshRequired { .. } | Message::Wake { .. }) | None => {
                    Ok(JsValue::UNDEFINED)
                }
            }
        })
    }

    /// Handles a Background Sync event: flushes, waiting in between for
    /// entries that become due, for up to about two and a half minutes.
    /// Rejects when entries remain (so the browser tries again later),
    /// unless this is the last chance or they only wait for a token.
    #[wasm_bindgen(js_name = handleSync)]
    pub fn handle_sync(&self, tag: String, last_chance: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if tag != SYNC_TAG {
                return Ok(JsValue::UNDEFINED);
            }
            let started = js_sys::Date::now();
            loop {
                let report = inner.flusher.run().await.map_err(js::error)?;
                let Some(next) = report.next_wake else {
                    return Ok(JsValue::UNDEFINED);
                };
                let wait = (next as f64 - js_sys::Date::now()).max(0.0);
                if js_sys::Date::now() + wait - started > SYNC_BUDGET_MS {
                    return if last_chance {
                        Ok(JsValue::UNDEFINED)
                    } else {
                        Err(JsValue::from_str("entries still waiting; sync again later"))
                    };
                }
                js::sleep(wait as u64).await;
            }
        })
    }

    /// Runs a flush now; resolves with a summary object.
    pub fn flush(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { flush(&inner).await })
    }
}

async fn flush(inner: &Inner) -> Result<JsValue, JsValue> {
    let report = inner.flusher.run().await.map_err(js::error)?;
    if report.next_wake.is_some() {
        register_sync().await;
    }
    Ok(view::flush_report(&report, false))
}

/// Asks the browser for a `sync` event (Chromium; elsewhere pages and
/// timers drive the flush).
async fn register_sync() {
    let Some(sync) = js::get(&js::global(), "registration").and_then(|r| js::get(&r, "sync"))
    else {
        return;
    };
    let _ = js::call_async(&sync, "register", &[JsValue::from_str(SYNC_TAG)]).await;
}

/// Posts `message` to every page of the origin.
fn tell_pages(message: Message) {
    wasm_bindgen_futures::spawn_local(async move {
        let Some(clients) = js::get(&js::global(), "clients") else {
            return;
        };
        let options = js::object();
        js::set(&options, "type", "window");
        js::set(&options, "includeUncontrolled", true);
        let Ok(list) = js::call_async(&clients, "matchAll", &[options]).await else {
            return;
        };
        let message = message.to_js();
        for client in js_sys::Array::from(&list).iter() {
            let _ = js::call(&client, "postMessage", std::slice::from_ref(&message));
        }
    });
}

/// Answers a request on a configured route: a page's announced replay goes
/// by; otherwise forwarded live or queued, as the engine decides (`queue`:
/// kept at once, the app having answered for the network).
async fn respond(
    inner: &Rc<Inner>,
    request: Request,
    client: String,
    queue: bool,
) -> Result<Response, JsValue> {
    let method = request.method();
    let url = request.url();
    let headers = fetch::header_pairs(&request.headers());
    // Read a clone: the original stays unread for a plain pass-through.
    let body = match request.clone() {
        Ok(copy) => match copy.array_buffer() {
            Ok(p) => Uint8Array::new(&JsFuture::from(p).await?).to_vec(),
            Err(_) => Vec::new(),
        },
        Err(e) => return Err(e),
    };
    if !client.is_empty() && inner.take_replay(&client, &fetch::replay_key(&method, &url, &body)) {
        return pass_through(request).await;
    }
    let incoming = IncomingRequest {
        method,
        url,
        headers,
        body,
    };
    let prepared = match inner.engine.route(&incoming) {
        Routing::Matched(p) => *p,
        Routing::Unmatched | Routing::Unroutable { .. } if queue => {
            return Err(JsValue::from_str(
                "Outbox keeps only requests on its configured routes (this one is not)",
            ));
        }
        Routing::Unmatched | Routing::Unroutable { .. } => return pass_through(request).await,
    };
    if queue {
        let reason = "handed-over";
        let result = inner.engine.enqueue(prepared, false, None, reason).await;
        let response = queued_answer(result.map(Box::new), reason);
        inner.flusher.kick();
        register_sync().await;
        return response;
    }
    let decision = match inner.engine.before_forward(&prepared).await {
        Ok(d) => d,
        // The store is unusable: we cannot keep it, so do not pretend to.
        Err(_) => return pass_through(request).await,
    };
    match decision {
        BeforeForward::Queue(reason) => {
            let result = inner
                .engine
                .enqueue(prepared, false, None, reason.name())
                .await;
            let response = queued_answer(result.map(Box::new), reason.name());
            inner.flusher.kick();
            register_sync().await;
            response
        }
        BeforeForward::Forward | BeforeForward::ForwardWatched => {
            forward(inner, &incoming, prepared, decision).await
        }
    }
}

/// The live first attempt (assembled by core: the app's own headers, the
/// carriers, the token in hand where the route needs one and the app sent
/// none), then the design's decision on the answer.
async fn forward(
    inner: &Rc<Inner>,
    incoming: &IncomingRequest,
    prepared: Prepared,
    decision: BeforeForward,
) -> Result<Response, JsValue> {
    let token = inner.tokens.current(&prepared.origin);
    let live = OutgoingRequest::live(
        incoming,
        &prepared,
        token.as_deref(),
        inner.config.forward_timeout_ms,
    );
    let result = fetch::fetch(
        Parts {
            method: live.method,
            url: live.url,
            headers: &live.headers,
            body: live.body,
        },
        live.timeout_ms,
    )
    .await;
    let classified = match &result {
        Ok(r) => Ok(fetch::read(r, true).await),
        Err(e) => Err(e.clone()),
    };
    match inner
        .engine
        .after_forward(prepared, &classified, decision)
        .await
    {
        Ok(Forwarded::PassThrough(_)) => match result {
            Ok(r) => Ok(r),
            Err(e) => Err(js::error(e)),
        },
        Ok(Forwarded::Queued(entry)) => {
            inner.flusher.kick();
            register_sync().await;
            let reason = entry
                .last_error
                .as_ref()
                .map(|e| e.to_string())
                .unwrap_or_default();
            queued_answer::<outbox_web::IdbError>(Ok(entry), &reason)
        }
        Err(e) => queued_answer(Err(e), ""),
    }
}

async fn pass_through(request: Request) -> Result<Response, JsValue> {
    let response = js::call_async(&js::global(), "fetch", &[request.into()]).await?;
    response.dyn_into::<Response>()
}

/// `202 {"queued":true,"id","lane","reason"}`, or the refusal (`507` when
/// full or over quota, `413` when too large), the caller keeping its request.
fn queued_answer<E: std::error::Error>(
    result: Result<Box<outbox_core::entry::Entry>, EnqueueError<E>>,
    reason: &str,
) -> Result<Response, JsValue> {
    match result {
        Ok(entry) => {
            let mut body = json::Object::new();
            body.bool("queued", true)
                .str("id", &entry.id.hyphenated())
                .str("lane", &entry.lane)
                .str("reason", reason);
            json_response(202, &body.finish())
        }
        Err(e) => {
            let (status, code) = match &e {
                EnqueueError::Full { .. } => (507, "outbox-full"),
                EnqueueError::QuotaExceeded(_) => (507, "quota-exceeded"),
                EnqueueError::TooLarge { .. } => (413, "entry-too-large"),
                EnqueueError::Duplicate(_) => (409, "duplicate-entry"),
                EnqueueError::Store(_) => (500, "store-error"),
            };
            let mut body = json::Object::new();
            body.bool("queued", false)
                .str("error", code)
                .str("message", &e.to_string());
            json_response(status, &body.finish())
        }
    }
}

fn json_response(status: u16, body: &str) -> Result<Response, JsValue> {
    let init = ResponseInit::new();
    init.set_status(status);
    let headers = web_sys::Headers::new()?;
    headers.set("content-type", "application/json")?;
    headers.set("x-outbox", "1")?;
    init.set_headers(&headers);
    Response::new_with_opt_str_and_init(Some(body), &init)
}
