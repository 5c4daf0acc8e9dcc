//! The Guest WebSocket link: the transport of a guest outbox.
//!
//! It connects lazily (when something is to be sent), runs
//! `configureSession` with the persisted session token, sends each message
//! (text or quick-reply answer) as `onMessage` and resolves only on its echo
//! (matched by `tracingId`). After a drop, before sending again anything
//! whose outcome is unknown, it reads the session's history once per
//! connection (`getJwt`, then the history endpoint) and treats a message
//! found there (by `metadata.outboxId` or `metadata.customMessageId`) as
//! delivered. Typing indicators go straight to an open socket, never queued. Backoff
//! and jitter between reconnections come from the engine's retry policy:
//! a failed connection is a failed send.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{MessageEvent, WebSocket};

use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::SplitMix64;
use outbox_core::entry::EntryId;
use outbox_core::guest::{self, Frame};
use outbox_core::request::OutgoingRequest;
use outbox_web::fetch::{self, DynTransport, Parts, with_timeout};
use outbox_web::js;

/// How long opening a socket and configuring the session may take.
const CONNECT_TIMEOUT_MS: u64 = 10_000;
/// History pages read when reconciling (newest first, 100 a page).
const HISTORY_PAGES: u64 = 3;

type Waiter = oneshot::Sender<Result<Frame, String>>;

#[derive(Default)]
struct State {
    socket: Option<WebSocket>,
    ready: bool,
    /// Increments with every configured connection.
    epoch: u64,
    waiters: HashMap<String, Waiter>,
    /// Outbox ids found in history, and the connection they were read on.
    history: Option<(u64, HashSet<String>)>,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    next_tracing: u64,
}

/// The guest's link to Web Messaging.
pub struct GuestLink {
    url: String,
    deployment_id: String,
    api_base: String,
    storage_key: String,
    token: RefCell<String>,
    state: Rc<RefCell<State>>,
}

fn network(message: impl Into<String>) -> TransportError {
    TransportError {
        kind: FailureKind::Network,
        message: message.into(),
    }
}

fn local_storage() -> Option<JsValue> {
    js::get(&js::global(), "localStorage")
}

impl GuestLink {
    /// A link to `url` (`wss://webmessaging.<domain>/v1`, `?deploymentId`
    /// is added), reading history from `api_base`. The session token is
    /// read from (or created in) local storage under `storage_key`.
    pub fn new(url: &str, deployment_id: &str, api_base: &str, storage_key: &str) -> Self {
        let sep = if url.contains('?') { '&' } else { '?' };
        let encoded: String = js_sys::encode_uri_component(deployment_id).into();
        let token = local_storage()
            .and_then(|s| js::call(&s, "getItem", &[JsValue::from_str(storage_key)]).ok())
            .and_then(|v| v.as_string())
            .filter(|t| !t.is_empty() && t.len() <= 2048)
            .unwrap_or_else(|| Self::new_token(storage_key));
        Self {
            url: format!("{url}{sep}deploymentId={encoded}"),
            deployment_id: deployment_id.to_owned(),
            api_base: api_base.trim_end_matches('/').to_owned(),
            storage_key: storage_key.to_owned(),
            token: RefCell::new(token),
            state: Rc::default(),
        }
    }

    /// The socket URL (with the deployment).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The guest's session token (persisted across reloads).
    pub fn session_token(&self) -> String {
        self.token.borrow().clone()
    }

    fn new_token(storage_key: &str) -> String {
        let token = EntryId::random(&mut SplitMix64::new(js::random_seed())).to_string();
        if let Some(s) = local_storage() {
            let _ = js::call(
                &s,
                "setItem",
                &[JsValue::from_str(storage_key), JsValue::from_str(&token)],
            );
        }
        token
    }

    /// Starts a new session (the old one expired or its conversation ended).
    fn rotate_token(&self) {
        *self.token.borrow_mut() = Self::new_token(&self.storage_key);
    }

    fn tracing_id(&self, what: &str) -> String {
        let mut s = self.state.borrow_mut();
        s.next_tracing += 1;
        format!("{what}-{}", s.next_tracing)
    }

    /// Closes the socket (queued entries stay queued).
    pub fn close(&self) {
        let socket = self.state.borrow_mut().socket.take();
        if let Some(ws) = socket {
            let _ = ws.close();
        }
        drop_connection(&self.state, "closed by the page");
    }

    /// Sends a frame and waits for the answer with the same tracing id.
    async fn request(
        &self,
        tracing_id: &str,
        frame: &str,
        timeout_ms: u64,
    ) -> Result<Frame, TransportError> {
        let (tx, rx) = oneshot::channel();
        let socket = {
            let mut s = self.state.borrow_mut();
            s.waiters.insert(tracing_id.to_owned(), tx);
            s.socket.clone()
        };
        let socket = socket.ok_or_else(|| network("not connected"))?;
        if let Err(e) = socket.send_with_str(frame) {
            self.state.borrow_mut().waiters.remove(tracing_id);
            return Err(network(js::error_text(&e)));
        }
        match with_timeout(rx, timeout_ms).await {
            Some(Ok(Ok(frame))) => Ok(frame),
            Some(Ok(Err(why))) => Err(network(why)),
            Some(Err(_)) => Err(network("the socket went away")),
            None => {
                self.state.borrow_mut().waiters.remove(tracing_id);
                Err(TransportError {
                    kind: FailureKind::Timeout,
                    message: format!("no answer within {timeout_ms} ms"),
                })
            }
        }
    }

    async fn ensure_connected(&self) -> Result<(), TransportError> {
        if self.state.borrow().ready {
            return Ok(());
        }
        self.open().await?;
        for _ in 0..2 {
            let tracing = self.tracing_id("session");
            let token = self.session_token();
            let frame = guest::configure_session(&self.deployment_id, &token, &tracing);
            match self.request(&tracing, &frame, CONNECT_TIMEOUT_MS).await? {
                Frame::Session {
                    connected: true,
                    read_only: false,
                    ..
                } => {
                    let mut s = self.state.borrow_mut();
                    s.ready = true;
                    s.epoch += 1;
                    return Ok(());
                }
                // The conversation ended, or the session expired or is
                // unknown: start a new session and configure again.
                Frame::Session { .. }
                | Frame::Error {
                    code: 4006 | 4007, ..
                } => self.rotate_token(),
                Frame::Error { code, message, .. } => {
                    return Err(network(format!(
                        "configureSession refused ({code}): {message}"
                    )));
                }
                other => {
                    return Err(network(format!(
                        "unexpected answer to configureSession: {other:?}"
                    )));
                }
            }
        }
        Err(network("could not configure a session"))
    }

    /// Opens the socket and wires its handlers.
    async fn open(&self) -> Result<(), TransportError> {
        let old = self.state.borrow_mut().socket.take();
        if let Some(ws) = old {
            let _ = ws.close();
        }
        drop_connection(&self.state, "reconnecting");
        let ws = WebSocket::new(&self.url).map_err(|e| network(js::error_text(&e)))?;
        let (opened_tx, opened_rx) = oneshot::channel::<Result<(), String>>();
        let opened = Rc::new(RefCell::new(Some(opened_tx)));
        let state = self.state.clone();
        let on_message = Closure::<dyn FnMut(JsValue)>::new(move |e: JsValue| {
            let Some(text) = e
                .dyn_ref::<MessageEvent>()
                .and_then(|m| m.data().as_string())
            else {
                return;
            };
            let Ok(frame) = guest::parse_frame(&text) else {
                return;
            };
            let mut s = state.borrow_mut();
            if matches!(frame, Frame::SessionEnded { .. }) {
                s.ready = false;
            }
            if let Some(waiter) = frame.tracing_id().and_then(|t| s.waiters.remove(t)) {
                let _ = waiter.send(Ok(frame));
            }
        });
        let state = self.state.clone();
        let opened_close = opened.clone();
        let on_close = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            if let Some(tx) = opened_close.borrow_mut().take() {
                let _ = tx.send(Err("the socket closed before opening".into()));
            }
            state.borrow_mut().socket = None;
            drop_connection(&state, "the socket closed before the answer");
        });
        let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            if let Some(tx) = opened.borrow_mut().take() {
                let _ = tx.send(Ok(()));
            }
        });
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        {
            let mut s = self.state.borrow_mut();
            s.socket = Some(ws.clone());
            s.handlers = vec![on_message, on_close, on_open];
        }
        match with_timeout(opened_rx, CONNECT_TIMEOUT_MS).await {
            Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(why))) => Err(network(why)),
            Some(Err(_)) => Err(network("the socket went away")),
            None => {
                let _ = ws.close();
                Err(network("connecting timed out"))
            }
        }
    }

    /// Whether the session's history holds the message tagged `outbox_id`.
    /// Read once per connection.
    async fn in_history(&self, outbox_id: &str) -> Result<bool, TransportError> {
        let epoch = self.state.borrow().epoch;
        if let Some((seen_epoch, ids)) = &self.state.borrow().history
            && *seen_epoch == epoch
        {
            return Ok(ids.contains(outbox_id));
        }
        let tracing = self.tracing_id("jwt");
        let token = self.session_token();
        let jwt = match self
            .request(
                &tracing,
                &guest::get_jwt(&token, &tracing),
                CONNECT_TIMEOUT_MS,
            )
            .await?
        {
            Frame::Jwt { jwt, .. } => jwt,
            other => return Err(network(format!("getJwt failed: {other:?}"))),
        };
        let mut ids = HashSet::new();
        let headers = [
            ("authorization".to_owned(), format!("Bearer {jwt}")),
            ("accept".to_owned(), "application/json".to_owned()),
        ];
        let mut page_number = 1;
        loop {
            let url = format!(
                "{}/api/v2/webmessaging/messages?pageSize=100&pageNumber={page_number}",
                self.api_base
            );
            let response = fetch::fetch(
                Parts {
                    method: "GET",
                    url: &url,
                    headers: &headers,
                    body: &[],
                },
                CONNECT_TIMEOUT_MS,
            )
            .await?;
            let status = response.status();
            let body = js::call_async(&response.into(), "text", &[])
                .await
                .ok()
                .and_then(|t| t.as_string())
                .unwrap_or_default();
            if status != 200 {
                return Err(network(format!(
                    "history answered {status}; resending would risk a duplicate"
                )));
            }
            let page = guest::parse_history(body.as_bytes()).map_err(|e| network(e.to_string()))?;
            ids.extend(page.messages.into_iter().filter_map(|m| m.outbox_id));
            if page_number >= page.page_count.min(HISTORY_PAGES) {
                break;
            }
            page_number += 1;
        }
        let found = ids.contains(outbox_id);
        self.state.borrow_mut().history = Some((epoch, ids));
        Ok(found)
    }

    /// Sends a typing indicator if the socket is open and configured
    /// (best-effort: no answer is awaited, nothing is kept).
    pub fn typing(&self) -> bool {
        let socket = {
            let s = self.state.borrow();
            s.socket.clone().filter(|_| s.ready)
        };
        let Some(socket) = socket else {
            return false;
        };
        let tracing = self.tracing_id("typing");
        let now: String = js_sys::Date::new_0().to_iso_string().into();
        socket
            .send_with_str(&guest::typing(&self.session_token(), &tracing, &now))
            .is_ok()
    }

    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError> {
        let entry =
            guest::GuestEntry::parse(request.body).ok_or_else(|| network("not a guest entry"))?;
        let id = request
            .headers
            .iter()
            .find(|(n, _)| n == "idempotency-key")
            .map(|(_, v)| v.clone())
            .ok_or_else(|| network("guest entry without an id"))?;
        self.ensure_connected().await?;
        if request.unknown_outcome && self.in_history(&id).await? {
            // The server had it: its echo was lost. Delivered, not resent.
            return Ok(Response {
                status: 200,
                headers: vec![("x-outbox-reconciled".into(), "history".into())],
                body: Vec::new(),
            });
        }
        let token = self.session_token();
        let now: String = js_sys::Date::new_0().to_iso_string().into();
        let frame = guest::on_message_entry(&token, &id, &entry, &id, &now);
        let answer = self.request(&id, &frame, request.timeout_ms).await?;
        if matches!(
            answer,
            Frame::Error {
                code: 4006 | 4007,
                ..
            }
        ) {
            self.rotate_token();
            self.state.borrow_mut().ready = false;
        }
        guest::answer(&answer).ok_or_else(|| network(format!("unexpected answer: {answer:?}")))
    }
}

/// The connection is gone: every waiter learns it (their outcome is
/// unknown), and the session must be configured again.
fn drop_connection(state: &Rc<RefCell<State>>, why: &str) {
    let waiters: Vec<Waiter> = {
        let mut s = state.borrow_mut();
        s.ready = false;
        s.waiters.drain().map(|(_, w)| w).collect()
    };
    for w in waiters {
        let _ = w.send(Err(why.to_owned()));
    }
}

impl DynTransport for GuestLink {
    fn send_dyn<'a>(
        &'a self,
        request: OutgoingRequest<'a>,
    ) -> Pin<Box<dyn Future<Output = Result<Response, TransportError>> + 'a>> {
        Box::pin(self.send(request))
    }
}
