//! The `Outbox` class.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use outbox_core::clock::SplitMix64;
use outbox_core::entry::EntryId;
use outbox_core::guest;
use outbox_core::json;
use outbox_core::route::IncomingRequest;
use outbox_core::store::{CancelResult, Store};
use outbox_web::config::WebConfig;
use outbox_web::events::BroadcastEvents;
use outbox_web::fetch::{BrowserTransport, FetchTransport};
use outbox_web::flusher::Flusher;
use outbox_web::tokens::{Asker, BrowserTokens, absolute_url};
use outbox_web::{WebEngine, js, open_engine, view};

use crate::guest::GuestLink;

#[wasm_bindgen(typescript_custom_section)]
const TYPES: &str = r#"
/** Configuration of an outbox (every field optional). */
export interface OutboxConfig {
  /** Origins the routes apply to, besides every Genesys region's `https://api.<domain>`. */
  origins?: string[];
  /** Include the Genesys region origins (default true). */
  genesysRegions?: boolean;
  /** Include the four default message routes (default true). */
  defaultRoutes?: boolean;
  /** Extra routes. */
  routes?: OutboxRoute[];
  /** Also carry the idempotency key in an `Idempotency-Key` header on every route (default false: real CORS may refuse it). */
  idempotencyHeaders?: boolean;
  /** Extra (non-credential) headers to keep at rest. */
  keepHeaders?: string[];
  /** Same-origin URL answering `{access_token, expires_in}` (a token broker). */
  tokenUrl?: string;
  /** Called when a fresh token is needed (when there is no tokenUrl). */
  getToken?: () => Promise<string | { token: string; expiresIn?: number }>;
  /** Base of the Genesys API for the helpers, e.g. `https://api.mypurecloud.ie`. */
  apiBase?: string;
  /** A Genesys region domain, e.g. `mypurecloud.ie` (sets apiBase). */
  region?: string;
  /** IndexedDB database name (default "outbox"). */
  database?: string;
  /** BroadcastChannel name for events (default "outbox"). */
  channel?: string;
  maxEntries?: number;
  maxEntryBytes?: number;
  retry?: { baseMs?: number; factor?: number; capMs?: number; maxAttempts?: number; maxAgeMs?: number; maxAuthFailures?: number };
  pacer?: { ratePerMinute?: number; burst?: number };
  batchSize?: number;
  sendTimeoutMs?: number;
  leaseMs?: number;
  forwardTimeoutMs?: number;
  retryAfterCapMs?: number;
}

/** Configuration of a guest outbox (`Outbox.guest`); the retry, pacer and size fields of OutboxConfig apply too. */
export interface GuestConfig {
  /** The Web Messaging deployment. */
  deploymentId: string;
  /** A Genesys Cloud region domain, e.g. `mypurecloud.ie` (socket `wss://webmessaging.<region>/v1`). */
  region?: string;
  /** The socket URL instead of a region (e.g. the emulator's `ws://127.0.0.1:8081/v1`). */
  url?: string;
  /** Base of the history endpoint (default `https://api.<region>`, or the socket's host). */
  apiBase?: string;
  /** IndexedDB database name (default "outbox-guest"). */
  database?: string;
  /** BroadcastChannel name for events (default "outbox-guest"). */
  channel?: string;
  maxEntries?: number;
  retry?: OutboxConfig["retry"];
  /** Default 60 a minute with a burst of 1: under the 2 messages a second per session. */
  pacer?: OutboxConfig["pacer"];
  sendTimeoutMs?: number;
}

export interface OutboxRoute {
  name: string;
  /** Path template, e.g. `/chat/{room}/send`. */
  path: string;
  method?: string;
  /** Lane sources: `path:NAME` or `body:a.b`; the first that yields a value wins. */
  lane: string[];
  /** Idempotency carriers: `header:NAME` or `body:a.b`. */
  carriers?: string[];
  conflictMeansDelivered?: boolean;
  needsToken?: boolean;
}

export interface OutboxRequest {
  url: string;
  method?: string;
  headers?: Record<string, string> | [string, string][];
  /** A string, a Uint8Array, or an object (sent as JSON). */
  body?: string | Uint8Array | object;
}

/** What a guest outbox sends: text, or the answer to an agent's quick reply (durable like text). */
export type GuestMessage = string | { text: string } | { quickReply: { text: string; payload?: string } };

export interface OutboxError { status?: number; code?: string; message: string; contextId?: string }

export type EntryState = "pending" | "in-flight" | "awaiting-token" | "dead";

export interface OutboxEntry {
  id: string; seq: number; lane: string; route: string; origin: string; state: EntryState;
  attempts: number; createdAt: number; notBefore: number; leaseUntil?: number; deadAt?: number;
  method: string; url: string; idempotencyKey: string; body: string; lastError?: OutboxError;
}

export interface OutboxStats {
  pending: number; inFlight: number; awaitingToken: number; dead: number; queued: number;
  lanes: number; oldestCreatedAt: number | null; bytes: number; paused: { origin: string; until: number }[];
}

export type OutboxEvent =
  | { type: "queued"; id: string; lane: string; reason: string; at: number }
  | { type: "sending"; id: string; lane: string; attempt: number; at: number }
  | { type: "sent"; id: string; lane: string; status: number; duplicate: boolean; at: number }
  | { type: "retrying"; id: string; lane: string; attempt: number; nextAttemptAt: number; error: OutboxError; at: number }
  | { type: "awaiting-token"; id: string; lane: string; origin: string; at: number }
  | { type: "paused"; origin: string; until: number; reason: string; at: number }
  | { type: "dead"; id: string; lane: string; error: OutboxError; at: number }
  | { type: "revived"; id: string; lane: string; at: number }
  | { type: "discarded"; id: string; at: number }
  | { type: "cancelled"; id: string; at: number }
  | { type: "purged"; queued: number; dead: number; at: number };
"#;

/// An event listener this page added: (target, event name, closure).
type Listener = (JsValue, &'static str, Closure<dyn FnMut(JsValue)>);

struct Inner {
    config: WebConfig,
    engine: Rc<WebEngine>,
    flusher: Flusher,
    tokens: BrowserTokens,
    events: BroadcastEvents,
    get_token: Option<Function>,
    /// Listeners to remove on `close`: (target, event name, closure).
    closures: RefCell<Vec<Listener>>,
    /// The Guest WebSocket, for a guest outbox (`Outbox.guest`).
    guest: Option<Rc<GuestLink>>,
}

/// A durable outbox for Genesys Cloud messages, in a page.
#[wasm_bindgen]
pub struct Outbox {
    inner: Rc<Inner>,
}

fn err(e: impl std::fmt::Display) -> JsValue {
    js_sys::Error::new(&e.to_string()).into()
}

fn parse_id(id: &str) -> Result<EntryId, JsValue> {
    id.parse::<EntryId>().map_err(err)
}

#[wasm_bindgen]
impl Outbox {
    /// Opens the outbox (IndexedDB), starts listening for online events,
    /// the service worker's token requests and other tabs' events, and
    /// flushes whatever waits.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "OutboxConfig")] config: JsValue,
    ) -> Result<Outbox, JsValue> {
        let web = WebConfig::from_js(&config).map_err(err)?;
        build(web, &config, None).await
    }

    /// Opens a guest's outbox on the Web Messaging Guest WebSocket
    /// (`wss://webmessaging.<region>/v1`, or `url`): messages are made
    /// durable (database `outbox-guest` unless `database` says otherwise),
    /// sent in order under the per-session rate, and count as sent only
    /// when their echo arrives. The session token is created once and kept
    /// in local storage, so a reload continues the conversation.
    pub async fn guest(
        #[wasm_bindgen(unchecked_param_type = "GuestConfig")] config: JsValue,
    ) -> Result<Outbox, JsValue> {
        let deployment = js::get_str(&config, "deploymentId")
            .ok_or_else(|| err("Outbox.guest needs a `deploymentId`"))?;
        let region = js::get_str(&config, "region");
        if let Some(r) = &region
            && !outbox_core::route::GENESYS_REGIONS.contains(&r.as_str())
        {
            return Err(err(format!("`{r}` is not a Genesys Cloud region domain")));
        }
        let url = js::get_str(&config, "url")
            .or_else(|| {
                region
                    .as_ref()
                    .map(|r| format!("wss://webmessaging.{r}/v1"))
            })
            .ok_or_else(|| err("Outbox.guest needs a `region` or a socket `url`"))?;
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            return Err(err(format!("`{url}` is not a ws:// or wss:// URL")));
        }
        let api_base = js::get_str(&config, "apiBase")
            .or_else(|| region.as_ref().map(|r| format!("https://api.{r}")))
            .or_else(|| guest::http_origin(&url))
            .unwrap_or_else(|| url.clone());
        // Guest defaults: its own database and channel, and the per-session
        // rate (2 messages a second) kept with room to spare.
        let defaults = js::object();
        js::set(&defaults, "database", "outbox-guest");
        js::set(&defaults, "channel", "outbox-guest");
        js::set(&defaults, "genesysRegions", false);
        js::set(&defaults, "defaultRoutes", false);
        js::set(&defaults, "sendTimeoutMs", 15_000.0);
        js::set(&defaults, "leaseMs", 30_000.0);
        let pacer = js::object();
        js::set(&pacer, "ratePerMinute", 60.0);
        js::set(&pacer, "burst", 1.0);
        js::set(&defaults, "pacer", pacer);
        let merged = js_sys::Object::new();
        js_sys::Object::assign(&merged, defaults.unchecked_ref::<js_sys::Object>());
        if config.is_object() {
            js_sys::Object::assign(&merged, config.unchecked_ref::<js_sys::Object>());
        }
        let merged: JsValue = merged.into();
        let web = WebConfig::from_js(&merged).map_err(err)?;
        let storage_key = format!("outbox-guest-token:{}:{deployment}", web.database);
        let link = Rc::new(GuestLink::new(&url, &deployment, &api_base, &storage_key));
        build(web, &merged, Some(link)).await
    }

    /// The guest's session token (a guest outbox only; `undefined`
    /// otherwise).
    #[wasm_bindgen(getter, js_name = sessionToken)]
    pub fn session_token(&self) -> Option<String> {
        self.inner.guest.as_ref().map(|g| g.session_token())
    }
}

async fn build(
    web: WebConfig,
    config: &JsValue,
    guest: Option<Rc<GuestLink>>,
) -> Result<Outbox, JsValue> {
    {
        let get_token = js::get(config, "getToken").and_then(|f| f.dyn_into::<Function>().ok());
        let events = BroadcastEvents::new(&web.channel);
        // A token is asked for through the app's callback when there is no token URL.
        let asker_slot: Rc<RefCell<Option<std::rc::Weak<Inner>>>> = Rc::default();
        let asker: Asker = {
            let slot = asker_slot.clone();
            Rc::new(move |origin: &str| {
                let inner = slot.borrow().as_ref().and_then(std::rc::Weak::upgrade);
                if let Some(inner) = inner {
                    let origin = origin.to_owned();
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Some((token, expires)) = token_from_app(&inner).await {
                            inner.tokens.install(&origin, &token, expires);
                            let _ = inner.engine.token_updated(&origin, None).await;
                            deliver(&inner);
                        }
                    });
                }
            })
        };
        let tokens = BrowserTokens::new(web.token_url.clone(), Some(asker));
        let transport = match &guest {
            Some(link) => BrowserTransport::Custom(link.clone()),
            None => BrowserTransport::Fetch(FetchTransport),
        };
        let engine = Rc::new(
            open_engine(&web, transport, tokens.clone(), events.clone())
                .await
                .map_err(err)?,
        );
        let flusher = Flusher::new(engine.clone(), &web.database);
        let inner = Rc::new(Inner {
            config: web,
            engine,
            flusher,
            tokens,
            events,
            get_token,
            closures: RefCell::default(),
            guest,
        });
        *asker_slot.borrow_mut() = Some(Rc::downgrade(&inner));
        listen(&inner);
        deliver(&inner);
        Ok(Outbox { inner })
    }
}

#[wasm_bindgen]
impl Outbox {
    /// Registers the Outbox service worker at `url` (e.g. `/sw.js`) with
    /// this outbox's configuration, and resolves with the registration once
    /// a worker is active.
    #[wasm_bindgen(js_name = registerServiceWorker)]
    pub fn register_service_worker(&self, url: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if inner.guest.is_some() {
                return Err(err(
                    "a guest outbox needs no service worker (no worker sees its socket)",
                ));
            }
            let container = service_worker_container().ok_or_else(|| {
                err("service workers are not available here (a secure context is needed)")
            })?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let encoded: String = js_sys::encode_uri_component(&inner.config.json).into();
            let full = format!("{url}{sep}config={encoded}");
            js::call_async(&container, "register", &[JsValue::from_str(&full)]).await?;
            let ready = js::get(&container, "ready")
                .ok_or_else(|| err("navigator.serviceWorker.ready is missing"))?;
            JsFuture::from(Promise::resolve(&ready)).await
        })
    }

    /// Makes a request durable, then delivers it (write-through). Resolves
    /// once it is in IndexedDB with `{id, lane, seq, state}`; rejects with
    /// the reason when it cannot be kept (the caller still holds it).
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OutboxRequest | GuestMessage")] request: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if let Some(link) = &inner.guest {
                let message = guest_message(&request)?;
                let id = EntryId::random(&mut SplitMix64::new(js::random_seed()));
                let prepared =
                    guest::prepare_entry(id, link.url(), &link.session_token(), &message);
                let entry = inner
                    .engine
                    .enqueue(prepared, false, None, "write-through")
                    .await
                    .map_err(err)?;
                inner.flusher.kick();
                return Ok(accepted(&entry));
            }
            let incoming = incoming(&request)?;
            submit(&inner, incoming).await
        })
    }

    /// Sends an agent's message: `POST {apiBase}/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`.
    #[wasm_bindgen(js_name = sendAgentMessage)]
    pub fn send_agent_message(
        &self,
        conversation_id: String,
        communication_id: String,
        text: String,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let base = api_base(&inner)?;
            let url = format!(
                "{base}/api/v2/conversations/messages/{}/communications/{}/messages",
                segment(&conversation_id)?,
                segment(&communication_id)?
            );
            let body = format!(r#"{{"textBody":{}}}"#, json::string(&text));
            submit(&inner, json_post(url, body)).await
        })
    }

    /// Sends an Open Messaging inbound message from `fromId` (idType
    /// `Opaque` unless `options.idType` says otherwise; `options.nickname`
    /// optional): `POST {apiBase}/api/v2/conversations/messages/{integrationId}/inbound/open/message`.
    #[wasm_bindgen(js_name = sendOpenMessage)]
    pub fn send_open_message(
        &self,
        integration_id: String,
        from_id: String,
        text: String,
        #[wasm_bindgen(
            unchecked_param_type = "{ idType?: 'Email' | 'Phone' | 'Opaque'; nickname?: string }"
        )]
        options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let base = api_base(&inner)?;
            let url = format!(
                "{base}/api/v2/conversations/messages/{}/inbound/open/message",
                segment(&integration_id)?
            );
            let id_type = js::get_str(&options, "idType").unwrap_or_else(|| "Opaque".into());
            if !matches!(id_type.as_str(), "Email" | "Phone" | "Opaque") {
                return Err(err(format!(
                    "idType must be Email, Phone or Opaque, not `{id_type}`"
                )));
            }
            let mut from = format!(
                r#"{{"id":{},"idType":{}"#,
                json::string(&from_id),
                json::string(&id_type)
            );
            if let Some(nick) = js::get_str(&options, "nickname") {
                from.push_str(&format!(r#","nickname":{}"#, json::string(&nick)));
            }
            from.push('}');
            let time: String = js_sys::Date::new_0().to_iso_string().into();
            let body = format!(
                r#"{{"channel":{{"from":{from},"time":{}}},"text":{}}}"#,
                json::string(&time),
                json::string(&text)
            );
            submit(&inner, json_post(url, body)).await
        })
    }

    /// Listens to every event of every tab and the worker. Returns a
    /// function that stops listening.
    pub fn on(
        &self,
        #[wasm_bindgen(unchecked_param_type = "(event: OutboxEvent) => void")] listener: Function,
    ) -> Function {
        let handle = self.inner.events.listen(listener);
        let events = self.inner.events.clone();
        Closure::once_into_js(move || events.unlisten(handle)).unchecked_into()
    }

    /// Counts per state, lanes, oldest age, pauses.
    #[wasm_bindgen(unchecked_return_type = "Promise<OutboxStats>")]
    pub fn stats(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move { Ok(view::stats(&inner.engine.stats().await.map_err(err)?)) })
    }

    /// Queued entries, oldest first (at most `limit`, default 1000).
    #[wasm_bindgen(unchecked_return_type = "Promise<OutboxEntry[]>")]
    pub fn queued(&self, limit: Option<u32>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let list = inner
                .engine
                .store()
                .queued(limit.unwrap_or(1000) as usize)
                .await
                .map_err(err)?;
            Ok(view::entries(&list))
        })
    }

    /// Dead letters, oldest first, each with its error.
    #[wasm_bindgen(js_name = deadLetters, unchecked_return_type = "Promise<OutboxEntry[]>")]
    pub fn dead_letters(&self, limit: Option<u32>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let list = inner
                .engine
                .store()
                .dead_letters(limit.unwrap_or(1000) as usize)
                .await
                .map_err(err)?;
            Ok(view::entries(&list))
        })
    }

    /// Puts a dead letter back in its lane and flushes. Resolves `false`
    /// when no dead letter has that id.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn retry(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let found = inner
                .engine
                .revive(parse_id(&id)?)
                .await
                .map_err(err)?
                .is_some();
            if found {
                deliver(&inner);
            }
            Ok(found.into())
        })
    }

    /// Deletes a dead letter. Resolves `false` when none has that id.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn discard(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            Ok(inner
                .engine
                .discard(parse_id(&id)?)
                .await
                .map_err(err)?
                .into())
        })
    }

    /// Removes a queued entry before it is sent: `"cancelled"`,
    /// `"in-flight"` (too late) or `"not-found"`.
    #[wasm_bindgen(unchecked_return_type = "Promise<'cancelled' | 'in-flight' | 'not-found'>")]
    pub fn cancel(&self, id: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let result = inner.engine.cancel(parse_id(&id)?).await.map_err(err)?;
            Ok(JsValue::from_str(match result {
                CancelResult::Cancelled => "cancelled",
                CancelResult::InFlight => "in-flight",
                CancelResult::NotFound => "not-found",
            }))
        })
    }

    /// Flushes now: asks the controlling service worker to (and resolves
    /// with `{worker: true}`), or, without one, flushes in this page under
    /// the origin-wide lock and resolves with `{delivered, attempts,
    /// nextWake}`.
    #[wasm_bindgen(
        unchecked_return_type = "Promise<{ delivered: number; attempts: number; nextWake: number | null }>"
    )]
    pub fn flush(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if tell_worker(&flush_message()) {
                // The worker sends; this page must not race it.
                let out = js::object();
                js::set(&out, "delivered", 0.0);
                js::set(&out, "attempts", 0.0);
                js::set(&out, "nextWake", JsValue::NULL);
                js::set(&out, "worker", true);
                return Ok(out);
            }
            let report = inner.flusher.run().await.map_err(err)?;
            let out = js::object();
            js::set(&out, "delivered", report.delivered as f64);
            js::set(&out, "attempts", report.attempts as f64);
            js::set(
                &out,
                "nextWake",
                report
                    .next_wake
                    .map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64)),
            );
            Ok(out)
        })
    }

    /// Deletes every queued entry and dead letter (log-out on a shared
    /// device). Resolves with `{queued, dead}` removed.
    #[wasm_bindgen(unchecked_return_type = "Promise<{ queued: number; dead: number }>")]
    pub fn purge(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let purged = inner.engine.purge().await.map_err(err)?;
            let out = js::object();
            js::set(&out, "queued", purged.queued as f64);
            js::set(&out, "dead", purged.dead as f64);
            Ok(out)
        })
    }

    /// Hands the outbox a fresh access token (kept in memory only), for
    /// `origin` or every configured origin, and passes it to the service
    /// worker (`TOKEN_UPDATED`).
    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(
        &self,
        token: String,
        expires_in: Option<f64>,
        origin: Option<String>,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            give_token(&inner, &token, expires_in, origin.as_deref()).await?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A guest outbox tells the agent the guest is typing: best-effort, sent
    /// only while the socket is open and configured, never queued or
    /// retried. Returns whether it was sent.
    #[wasm_bindgen(js_name = sendTyping)]
    pub fn send_typing(&self) -> bool {
        self.inner.guest.as_ref().is_some_and(|link| link.typing())
    }

    /// Stops listening to events (the database stays as it is).
    pub fn close(&self) {
        if let Some(link) = &self.inner.guest {
            link.close();
        }
        for (target, name, closure) in self.inner.closures.borrow_mut().drain(..) {
            let _ = js::call(
                &target,
                "removeEventListener",
                &[JsValue::from_str(name), closure.as_ref().clone()],
            );
        }
    }
}

/// `{id, lane, seq, state}` of an accepted entry.
fn accepted(entry: &outbox_core::entry::Entry) -> JsValue {
    let out = js::object();
    js::set(&out, "id", entry.id.to_string());
    js::set(&out, "lane", entry.lane.as_str());
    js::set(&out, "seq", entry.seq as f64);
    js::set(&out, "state", entry.state.name());
    out
}

fn api_base(inner: &Inner) -> Result<String, JsValue> {
    if inner.guest.is_some() {
        return Err(err("this is a guest outbox: use send(text)"));
    }
    inner.config.api_base.clone().ok_or_else(|| {
        err("set `apiBase` or `region` in the configuration to use the Genesys helpers")
    })
}

/// A path segment: non-empty and free of `/`, `?`, `#`.
fn segment(s: &str) -> Result<String, JsValue> {
    if s.is_empty() || s.contains(['/', '?', '#']) {
        return Err(err(format!("`{s}` is not a valid id")));
    }
    Ok(js_sys::encode_uri_component(s).into())
}

fn json_post(url: String, body: String) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.into_bytes(),
    }
}

fn incoming(request: &JsValue) -> Result<IncomingRequest, JsValue> {
    let url = js::get_str(request, "url").ok_or_else(|| err("send() needs a `url`"))?;
    let url = absolute_url(&url);
    let method = js::get_str(request, "method")
        .unwrap_or_else(|| "POST".into())
        .to_ascii_uppercase();
    let mut headers = Vec::new();
    if let Some(h) = js::get(request, "headers") {
        if js_sys::Array::is_array(&h) {
            for pair in js_sys::Array::from(&h).iter() {
                let pair = js_sys::Array::from(&pair);
                if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                    headers.push((n, v));
                }
            }
        } else {
            for key in js_sys::Object::keys(h.unchecked_ref::<js_sys::Object>()).iter() {
                if let Some(k) = key.as_string()
                    && let Some(v) = js::get_str(&h, &k)
                {
                    headers.push((k, v));
                }
            }
        }
    }
    let body = match js::get(request, "body") {
        None => Vec::new(),
        Some(b) if b.is_string() => b.as_string().unwrap_or_default().into_bytes(),
        Some(b) if b.is_instance_of::<Uint8Array>() => Uint8Array::new(&b).to_vec(),
        Some(b) => {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into()));
            }
            js_sys::JSON::stringify(&b)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| {
                    err("body must be a string, a Uint8Array or a JSON-serialisable object")
                })?
                .into_bytes()
        }
    };
    Ok(IncomingRequest {
        method,
        url,
        headers,
        body,
    })
}

async fn submit(inner: &Rc<Inner>, request: IncomingRequest) -> Result<JsValue, JsValue> {
    let entry = inner.engine.submit(&request).await.map_err(err)?;
    deliver(inner);
    Ok(accepted(&entry))
}

/// Asks the app for a token: `getToken()` (string or `{token, expiresIn}`),
/// else the token URL.
async fn token_from_app(inner: &Inner) -> Option<(String, Option<f64>)> {
    if let Some(f) = &inner.get_token {
        let value = f.call0(&JsValue::NULL).ok()?;
        let value = JsFuture::from(Promise::resolve(&value)).await.ok()?;
        if let Some(t) = value.as_string() {
            return Some((t, None));
        }
        return js::get_str(&value, "token").map(|t| (t, js::get_f64(&value, "expiresIn")));
    }
    inner.tokens.fetch_token().await
}

async fn give_token(
    inner: &Inner,
    token: &str,
    expires_in: Option<f64>,
    origin: Option<&str>,
) -> Result<(), JsValue> {
    let origins = match origin {
        Some(o) => vec![o.to_owned()],
        None => inner.config.core.routes.origins().to_vec(),
    };
    for o in &origins {
        inner.tokens.install(o, token, expires_in);
        inner.engine.token_updated(o, None).await.map_err(err)?;
    }
    let message = js::object();
    js::set(&message, "type", "TOKEN_UPDATED");
    js::set(&message, "token", token);
    if let Some(e) = expires_in {
        js::set(&message, "expiresIn", e);
    }
    if let Some(o) = origin {
        js::set(&message, "origin", o);
    }
    if !tell_worker(&message) {
        inner.flusher.kick();
    }
    Ok(())
}

fn service_worker_container() -> Option<JsValue> {
    js::get(&js::global(), "navigator").and_then(|n| js::get(&n, "serviceWorker"))
}

fn flush_message() -> JsValue {
    let m = js::object();
    js::set(&m, "type", "flush");
    m
}

/// Posts to the controlling service worker, if any; returns whether there
/// is one.
fn tell_worker(message: &JsValue) -> bool {
    match service_worker_container().and_then(|c| js::get(&c, "controller")) {
        Some(controller) => {
            let _ = js::call(&controller, "postMessage", std::slice::from_ref(message));
            true
        }
        None => false,
    }
}

/// Gets queued entries delivered: by the service worker when one controls
/// this page (it alone sends, so the two never race), else by this page
/// under the origin-wide flush lock.
fn deliver(inner: &Inner) {
    // A guest outbox is the page's alone (no worker sees its socket).
    if inner.guest.is_some() || !tell_worker(&flush_message()) {
        inner.flusher.kick();
    }
}

fn listen(inner: &Rc<Inner>) {
    let mut closures = inner.closures.borrow_mut();
    let mut add = |target: JsValue, name: &'static str, closure: Closure<dyn FnMut(JsValue)>| {
        let _ = js::call(
            &target,
            "addEventListener",
            &[JsValue::from_str(name), closure.as_ref().clone()],
        );
        closures.push((target, name, closure));
    };
    // Pages get `online`; workers do not (Chromium): pass it on.
    let weak = Rc::downgrade(inner);
    add(
        js::global(),
        "online",
        Closure::new(move |_e: JsValue| {
            let Some(inner) = weak.upgrade() else { return };
            let online = js::object();
            js::set(&online, "type", "online");
            if inner.guest.is_some() || !tell_worker(&online) {
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = inner.engine.network_back().await;
                    inner.flusher.kick();
                });
            }
        }),
    );
    // Other tabs' and the worker's events.
    if let Some(channel) = inner.events.channel() {
        let events = inner.events.clone();
        add(
            channel.clone().into(),
            "message",
            Closure::new(move |e: JsValue| {
                if let Some(data) = js::get(&e, "data") {
                    events.deliver_local(&data);
                }
            }),
        );
    }
    // The worker's token protocol (a guest outbox has no worker).
    if let Some(container) = service_worker_container().filter(|_| inner.guest.is_none()) {
        let weak = Rc::downgrade(inner);
        add(
            container,
            "message",
            Closure::new(move |e: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let data = js::get(&e, "data").unwrap_or(JsValue::NULL);
                if js::get_str(&data, "type").as_deref() != Some("TOKEN_REFRESH_REQUIRED") {
                    return;
                }
                let origin = js::get_str(&data, "origin");
                wasm_bindgen_futures::spawn_local(async move {
                    if let Some((token, expires)) = token_from_app(&inner).await {
                        let _ = give_token(&inner, &token, expires, origin.as_deref()).await;
                    }
                });
            }),
        );
    }
}

/// What a guest outbox was asked to send: a string, `{text}`, or
/// `{quickReply: {text, payload?}}` (a quick-reply answer; the payload
/// defaults to the text).
fn guest_message(request: &JsValue) -> Result<guest::GuestEntry, JsValue> {
    if let Some(reply) = js::get(request, "quickReply").filter(|v| v.is_object()) {
        let text = js::get_str(&reply, "text")
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| err("a quick-reply answer needs the button's text"))?;
        let payload = js::get_str(&reply, "payload").unwrap_or_else(|| text.clone());
        return Ok(guest::GuestEntry::quick_reply(&text, &payload));
    }
    let text = request
        .as_string()
        .or_else(|| js::get_str(request, "text"))
        .ok_or_else(|| {
            err("a guest outbox sends text or a quick-reply answer: send('hello'), send({ text }) or send({ quickReply: { text, payload } })")
        })?;
    if text.trim().is_empty() {
        return Err(err("a guest message needs some text"));
    }
    Ok(guest::GuestEntry::text(&text))
}
