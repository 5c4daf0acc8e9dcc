//! The Guest WebSocket of Web Messaging (`GET /v1?deploymentId=…`), speaking
//! the Guest API ("shyrka") as described by `webmessaging-guest.swagger.json`.
//!
//! Requests (`action`): `configureSession`, `onMessage`, `echo`, `getJwt`,
//! `closeSession`. Every frame sent is a `BaseMessage`
//! `{"type","class","code","body","tracingId"?}`:
//!
//! * `SessionResponse` (200) to `configureSession`;
//! * `StructuredMessage` (type `message`, 200) — the echo of an `onMessage`,
//!   sent to every socket of the session with the request's `tracingId`; also
//!   the answer to `echo` (only to the asking socket, not recorded);
//! * `JwtResponse` (200) to `getJwt`;
//! * `TooManyRequestsErrorMessage` (429, socket left open) when a session
//!   sends more than `messageRate` `onMessage` per `messageWindow`, or a
//!   connection more than `connectionRate` requests per minute;
//! * `string` errors: 400 malformed request, 403 unknown deployment, 4006
//!   session expired, 4007 session not found (no `configureSession` for this
//!   token on this socket), 4011 text too long, 4013 custom attributes too large;
//! * events `ConnectionClosedEvent` (a fourth connection of a session closes
//!   the oldest; `closeSession`) and `SessionExpiredEvent`, then a close frame.
//!
//! Faults: `wsDropRate` (record, then cut the socket: the browser sees close
//! code 1006), `wsLostEchoRate` (record, never echo), `wsEchoDelayMs`,
//! `wsReorder` (echoes of a session are swapped in pairs), and `outage` (every
//! open guest socket is cut at once, new upgrades are dropped).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use crate::clock::{iso8601, unix_secs};
use crate::errors::ApiError;
use crate::ids::new_uuid;
use crate::inspect::{NewMessage, Outcome, RouteKind};
use crate::ratelimit::{SlidingWindow, Verdict};
use crate::response::{self, Reply};
use crate::server::until_true;
use crate::state::{Shared, lock};
use crate::urlencoded;

/// How long a lone echo is held by the `wsReorder` fault before it is sent.
const REORDER_HOLD: Duration = Duration::from_millis(200);
/// Longest guest session token accepted.
const MAX_TOKEN_CHARS: usize = 2048;

/// What became of a guest message's echo.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EchoState {
    /// Waiting (delayed or held for reordering).
    Pending,
    /// Sent to the session's sockets.
    Sent,
    /// Never sent (`wsLostEchoRate`).
    Lost,
    /// The socket was cut instead (`wsDropRate`).
    Dropped,
    /// Due, but the session had no open socket.
    Undelivered,
}

/// One `onMessage` a guest session received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestMessageReport {
    /// The message id (echo `body.id` and `channel.messageId`).
    pub id: String,
    /// The request's `tracingId`.
    pub tracing_id: Option<String>,
    /// The text.
    pub text: String,
    /// Arrival time, ISO-8601.
    pub time: String,
    /// The socket it came on (emulator-wide connection number).
    pub connection: u64,
    /// What became of the echo.
    pub echo: EchoState,
    /// The message's `metadata` (string values), shown again in history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
}

/// One guest session, as shown by `GET /__emulator/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// The guest's session token.
    pub token: String,
    /// The deployment it was configured with.
    pub deployment_id: String,
    /// The conversation of the session.
    pub conversation_id: String,
    /// Creation time, ISO-8601.
    pub created_at: String,
    /// Whether it has expired (lifetime over, or expired by control).
    pub expired: bool,
    /// Sockets currently attached.
    pub connections: usize,
    /// Requests received per action, plus `rateLimited` and `errors`.
    pub actions: BTreeMap<String, u64>,
    /// Messages received, in arrival order.
    pub messages: Vec<GuestMessageReport>,
}

/// What a socket task is told to do.
#[derive(Debug)]
enum Outbound {
    Frame(String),
    Close(u16, String),
    Abort,
}

#[derive(Debug, Clone)]
struct ConnHandle {
    id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
}

#[derive(Debug)]
struct HeldEcho {
    generation: u64,
    message_id: String,
    frame: String,
}

#[derive(Debug)]
struct Session {
    deployment_id: String,
    conversation_id: String,
    created_at: Instant,
    created_time: String,
    expired: bool,
    connections: Vec<ConnHandle>,
    messages: Vec<GuestMessageReport>,
    actions: BTreeMap<String, u64>,
    held: Option<HeldEcho>,
    hold_generation: u64,
}

impl Session {
    fn count(&mut self, action: &str) {
        *self.actions.entry(action.to_owned()).or_default() += 1;
    }

    fn send_all(&self, frame: &str) -> bool {
        let mut any = false;
        for c in &self.connections {
            any |= c.tx.send(Outbound::Frame(frame.to_owned())).is_ok();
        }
        any
    }

    fn set_echo(&mut self, message_id: &str, state: EchoState) {
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == message_id) {
            m.echo = state;
        }
    }
}

#[derive(Debug)]
struct JwtRecord {
    token: String,
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct GuestInner {
    sessions: HashMap<String, Session>,
    order: Vec<String>,
    connections: HashMap<u64, (Option<String>, mpsc::UnboundedSender<Outbound>)>,
    jwts: HashMap<String, JwtRecord>,
    message_limiter: SlidingWindow,
    connection_limiter: SlidingWindow,
    history_limiter: SlidingWindow,
}

/// All guest sessions and sockets of one emulator.
#[derive(Debug, Default)]
pub(crate) struct GuestState {
    inner: Mutex<GuestInner>,
    next_connection: AtomicU64,
}

/// Why a history request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JwtError {
    Unknown,
    Expired,
}

/// One page of guest history.
#[derive(Debug, Clone)]
pub(crate) struct HistoryPage {
    pub(crate) entities: Vec<Value>,
    pub(crate) total: usize,
}

impl GuestState {
    fn register(&self, tx: mpsc::UnboundedSender<Outbound>) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.inner).connections.insert(id, (None, tx));
        id
    }

    fn unregister(&self, id: u64) {
        let mut g = lock(&self.inner);
        if let Some((Some(token), _)) = g.connections.remove(&id)
            && let Some(s) = g.sessions.get_mut(&token)
        {
            s.connections.retain(|c| c.id != id);
        }
        g.connection_limiter.clear_key(&id.to_string());
    }

    /// The inspection report.
    pub(crate) fn report(&self, shared: &Shared) -> Vec<SessionReport> {
        let now = shared.clock.now();
        let ttl = shared.config.guest.session_ttl;
        let g = lock(&self.inner);
        g.order
            .iter()
            .filter_map(|t| g.sessions.get(t).map(|s| (t, s)))
            .map(|(t, s)| SessionReport {
                token: t.clone(),
                deployment_id: s.deployment_id.clone(),
                conversation_id: s.conversation_id.clone(),
                created_at: s.created_time.clone(),
                expired: s.expired || now >= s.created_at + ttl,
                connections: s.connections.len(),
                actions: s.actions.clone(),
                messages: s.messages.clone(),
            })
            .collect()
    }

    /// Forgets every session and closes every socket.
    pub(crate) fn clear(&self) {
        let mut g = lock(&self.inner);
        for (_, tx) in g.connections.values() {
            let _ = tx.send(Outbound::Close(1000, "Emulator reset".to_owned()));
        }
        let connections = std::mem::take(&mut g.connections);
        *g = GuestInner::default();
        // Sockets stay registered until their tasks end, detached from any session.
        g.connections = connections
            .into_iter()
            .map(|(id, (_, tx))| (id, (None, tx)))
            .collect();
    }

    /// Cuts sockets abruptly: one session's, or all.
    pub(crate) fn drop_sockets(&self, token: Option<&str>) -> usize {
        let g = lock(&self.inner);
        let mut n = 0;
        for (t, tx) in g.connections.values() {
            if token.is_none() || t.as_deref() == token {
                n += usize::from(tx.send(Outbound::Abort).is_ok());
            }
        }
        n
    }

    /// Expires a session: `SessionExpiredEvent` and a close to its sockets.
    pub(crate) fn expire(&self, token: &str) -> bool {
        let mut g = lock(&self.inner);
        let Some(s) = g.sessions.get_mut(token) else {
            return false;
        };
        s.expired = true;
        let ev = event_frame("SessionExpiredEvent", json!({}), None);
        for c in &s.connections {
            let _ = c.tx.send(Outbound::Frame(ev.clone()));
            let _ =
                c.tx.send(Outbound::Close(1000, "Session expired".to_owned()));
        }
        true
    }

    /// The session token a guest JWT belongs to.
    pub(crate) fn jwt_session(&self, jwt: &str, now: Instant) -> Result<String, JwtError> {
        let g = lock(&self.inner);
        let rec = g.jwts.get(jwt).ok_or(JwtError::Unknown)?;
        if rec.expires_at <= now {
            return Err(JwtError::Expired);
        }
        if !g.sessions.contains_key(&rec.token) {
            return Err(JwtError::Unknown);
        }
        Ok(rec.token.clone())
    }

    /// Admits or refuses a history read of a session.
    pub(crate) fn history_check(
        &self,
        token: &str,
        limit: u32,
        window: Duration,
        now: Instant,
    ) -> Verdict {
        lock(&self.inner)
            .history_limiter
            .check(token, limit, window, now)
    }

    /// A page of a session's history, newest first.
    pub(crate) fn history_page(
        &self,
        token: &str,
        page_size: usize,
        page_number: usize,
    ) -> HistoryPage {
        let g = lock(&self.inner);
        let Some(s) = g.sessions.get(token) else {
            return HistoryPage {
                entities: Vec::new(),
                total: 0,
            };
        };
        let skip = page_size.saturating_mul(page_number.saturating_sub(1));
        let entities = s
            .messages
            .iter()
            .rev()
            .skip(skip)
            .take(page_size)
            .map(|m| {
                let mut entity = json!({
                    "id": m.id,
                    "channel": {"time": m.time, "messageId": m.id},
                    "type": "Text",
                    "text": m.text,
                    "direction": "Inbound",
                    "originatingEntity": "Human",
                });
                if let (Value::Object(o), Some(meta)) = (&mut entity, &m.metadata) {
                    o.insert("metadata".to_owned(), meta.clone());
                }
                entity
            })
            .collect();
        HistoryPage {
            entities,
            total: s.messages.len(),
        }
    }
}

fn with_tracing(mut frame: Value, tracing_id: Option<&str>) -> String {
    if let (Value::Object(o), Some(t)) = (&mut frame, tracing_id) {
        o.insert("tracingId".to_owned(), json!(t));
    }
    frame.to_string()
}

/// `{"type":"response","class":"string","code":c,"body":"text"}`.
fn error_frame(code: u16, text: &str, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "response", "class": "string", "code": code, "body": text}),
        tracing_id,
    )
}

fn response_frame(class: &str, body: Value, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "response", "class": class, "code": 200, "body": body}),
        tracing_id,
    )
}

fn event_frame(class: &str, body: Value, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({"type": "message", "class": class, "code": 200, "body": body}),
        tracing_id,
    )
}

fn too_many_frame(retry_after: u32, message: &str, tracing_id: Option<&str>) -> String {
    with_tracing(
        json!({
            "type": "response",
            "class": "TooManyRequestsErrorMessage",
            "code": 429,
            "body": {
                "retryAfter": retry_after,
                "errorCode": 4029,
                "errorMessage": message,
                "name": "TooManyRequestsError",
                "message": message,
            },
        }),
        tracing_id,
    )
}

/// `GET /v1?deploymentId=…`: checks the handshake and upgrades.
pub(crate) fn upgrade(shared: &Arc<Shared>, mut req: Request<Incoming>) -> Reply {
    let correlation = new_uuid();
    if req.method() != Method::GET || req.uri().path().trim_end_matches('/') != "/v1" {
        return Reply::error(
            &ApiError::not_found(req.uri().path()),
            Outcome::NotFound,
            &correlation,
        );
    }
    let h = req.headers();
    let has_token = |name: hyper::header::HeaderName, token: &str| {
        h.get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|s| s.split(',').any(|p| p.trim().eq_ignore_ascii_case(token)))
        })
    };
    let key = h
        .get(SEC_WEBSOCKET_KEY)
        .map(|k| derive_accept_key(k.as_bytes()));
    let handshake_ok = has_token(UPGRADE, "websocket")
        && has_token(CONNECTION, "upgrade")
        && h.get(SEC_WEBSOCKET_VERSION).is_some_and(|v| v == "13");
    let Some(accept) = key.filter(|_| handshake_ok) else {
        let e = ApiError::bad_field("Upgrade", "invalid.value", "Expected a WebSocket handshake");
        return Reply::error(&e, Outcome::WsRefused, &correlation);
    };
    let query = urlencoded::parse_pairs(req.uri().query().unwrap_or(""));
    let Some(deployment) = urlencoded::get(&query, "deploymentId").filter(|d| !d.is_empty()) else {
        let e = ApiError::bad_field("deploymentId", "required", "deploymentId is required");
        return Reply::error(&e, Outcome::WsRefused, &correlation);
    };
    let deployment = deployment.to_owned();
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let cfg = WebSocketConfig::default().max_message_size(Some(1 << 20));
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg))
                    .await;
            run_socket(task_shared, ws, deployment).await;
        }
    });
    let mut resp = response::empty(101);
    let hs = resp.headers_mut();
    hs.insert(UPGRADE, HeaderValue::from_static("websocket"));
    hs.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        hs.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    Reply::respond(resp, Outcome::WsUpgrade).with_correlation(&correlation)
}

/// One socket's state.
#[derive(Debug)]
struct Conn {
    id: u64,
    tx: mpsc::UnboundedSender<Outbound>,
    query_deployment: String,
    session: Option<String>,
}

impl Conn {
    fn send(&self, frame: String) {
        let _ = self.tx.send(Outbound::Frame(frame));
    }
}

async fn run_socket(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<TokioIo<Upgraded>>,
    deployment: String,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.guest.register(tx.clone());
    let mut conn = Conn {
        id,
        tx,
        query_deployment: deployment,
        session: None,
    };
    let mut outage = shared.outage.subscribe();
    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            biased;
            () = until_true(&mut outage) => break,
            () = until_true(&mut shutdown) => {
                let _ = ws.close(Some(CloseFrame { code: CloseCode::Away, reason: "Emulator shutting down".into() })).await;
                break;
            }
            out = rx.recv() => match out {
                Some(Outbound::Frame(f)) => {
                    if ws.send(Message::text(f)).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close(code, reason)) => {
                    let frame = CloseFrame { code: CloseCode::from(code), reason: reason.into() };
                    if ws.close(Some(frame)).await.is_ok() {
                        // Let the peer answer the close handshake.
                        let _ = tokio::time::timeout(Duration::from_secs(1), async {
                            while let Some(Ok(_)) = ws.next().await {}
                        })
                        .await;
                    }
                    break;
                }
                // Cut: dropping the stream closes the TCP connection without a close frame.
                Some(Outbound::Abort) | None => break,
            },
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => on_frame(&shared, &mut conn, t.as_str()),
                Some(Ok(Message::Binary(_))) => conn.send(error_frame(400, "Binary frames are not supported", None)),
                Some(Ok(Message::Close(_))) => {
                    let _ = ws.flush().await;
                    break;
                }
                Some(Ok(_)) => {
                    let _ = ws.flush().await;
                }
                Some(Err(_)) | None => break,
            },
        }
    }
    shared.guest.unregister(id);
    drop(ws);
}

/// Handles one text frame from a guest.
fn on_frame(shared: &Arc<Shared>, conn: &mut Conn, text: &str) {
    let now = shared.clock.now();
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        conn.send(error_frame(400, "Request is not valid JSON", None));
        return;
    };
    let tracing = v
        .get("tracingId")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let tracing = tracing.as_deref();
    let cfg = &shared.config.guest;
    {
        let mut g = lock(&shared.guest.inner);
        let verdict = g.connection_limiter.check(
            &conn.id.to_string(),
            cfg.connection_rate,
            Duration::from_secs(60),
            now,
        );
        if let Verdict::Limited {
            retry_after_secs, ..
        } = verdict
        {
            let retry = u32::try_from(retry_after_secs).unwrap_or(u32::MAX);
            conn.send(too_many_frame(
                retry,
                "Request rate too high for this connection",
                tracing,
            ));
            if let Some(s) = conn.session.as_ref().and_then(|t| g.sessions.get_mut(t)) {
                s.count("rateLimited");
            }
            return;
        }
    }
    let action = v.get("action").and_then(Value::as_str).unwrap_or("");
    let token = v.get("token").and_then(Value::as_str);
    match action {
        "configureSession" => configure(shared, conn, &v, token, tracing),
        "onMessage" | "echo" | "getJwt" | "closeSession" => {
            let Some(token) = token else {
                conn.send(error_frame(400, "token is required", tracing));
                return;
            };
            match action {
                "onMessage" => on_message(shared, conn, &v, token, tracing),
                "echo" => echo(shared, conn, &v, token, tracing),
                "getJwt" => get_jwt(shared, conn, token, tracing),
                _ => close_session(shared, conn, &v, token, tracing),
            }
        }
        "" => conn.send(error_frame(400, "action is required", tracing)),
        other => conn.send(error_frame(
            400,
            &format!("Unsupported action: {other}"),
            tracing,
        )),
    }
}

/// Checks that `token` is this socket's configured, unexpired session.
fn session_check(
    shared: &Shared,
    g: &mut GuestInner,
    conn: &Conn,
    token: &str,
) -> Result<(), (u16, &'static str)> {
    if conn.session.as_deref() != Some(token) {
        return Err((4007, "Session not found"));
    }
    let ttl = shared.config.guest.session_ttl;
    let now = shared.clock.now();
    match g.sessions.get_mut(token) {
        None => Err((4007, "Session not found")),
        Some(s) if s.expired || now >= s.created_at + ttl => {
            s.count("errors");
            Err((4006, "Session has expired"))
        }
        Some(_) => Ok(()),
    }
}

fn configure(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: Option<&str>,
    tracing: Option<&str>,
) {
    let cfg = &shared.config.guest;
    let Some(token) = token.filter(|t| !t.is_empty() && t.chars().count() <= MAX_TOKEN_CHARS)
    else {
        conn.send(error_frame(
            400,
            "token is required (at most 2048 characters)",
            tracing,
        ));
        return;
    };
    let deployment = v
        .get("deploymentId")
        .and_then(Value::as_str)
        .unwrap_or(&conn.query_deployment)
        .to_owned();
    if !cfg.deployments.contains(&deployment) || deployment != conn.query_deployment {
        conn.send(error_frame(
            403,
            "Deployment not found or not allowed",
            tracing,
        ));
        return;
    }
    let now = shared.clock.now();
    let mut g = lock(&shared.guest.inner);
    let new_session = !g.sessions.contains_key(token);
    if new_session {
        g.sessions.insert(
            token.to_owned(),
            Session {
                deployment_id: deployment,
                conversation_id: new_uuid(),
                created_at: now,
                created_time: iso8601(shared.clock.system_now()),
                expired: false,
                connections: Vec::new(),
                messages: Vec::new(),
                actions: BTreeMap::new(),
                held: None,
                hold_generation: 0,
            },
        );
        g.order.push(token.to_owned());
    }
    // Detach this socket from a previous session.
    if let Some(old) = conn.session.take()
        && old != token
        && let Some(s) = g.sessions.get_mut(&old)
    {
        s.connections.retain(|c| c.id != conn.id);
    }
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    s.count("configureSession");
    if s.expired || now >= s.created_at + cfg.session_ttl {
        s.count("errors");
        conn.send(error_frame(4006, "Session has expired", tracing));
        return;
    }
    if !s.connections.iter().any(|c| c.id == conn.id) {
        s.connections.push(ConnHandle {
            id: conn.id,
            tx: conn.tx.clone(),
        });
    }
    let mut closed = Vec::new();
    while s.connections.len() > cfg.max_connections {
        let oldest = s.connections.remove(0);
        let _ = oldest.tx.send(Outbound::Frame(event_frame(
            "ConnectionClosedEvent",
            json!({}),
            None,
        )));
        let _ = oldest.tx.send(Outbound::Close(
            1000,
            "Too many connections for this session".to_owned(),
        ));
        closed.push(oldest.id);
    }
    let expiration = unix_secs(shared.clock.system_now()) + cfg.session_ttl.as_secs()
        - now
            .saturating_duration_since(s.created_at)
            .as_secs()
            .min(cfg.session_ttl.as_secs());
    let body = json!({
        "connected": true,
        "newSession": new_session,
        "readOnly": false,
        "maxCustomDataBytes": shared.config.text_limits.guest_attributes_bytes,
        "durationSeconds": cfg.session_ttl.as_secs(),
        "expirationDate": expiration,
    });
    conn.send(response_frame("SessionResponse", body, tracing));
    conn.session = Some(token.to_owned());
    if let Some(e) = g.connections.get_mut(&conn.id) {
        e.0 = Some(token.to_owned());
    }
    for id in closed {
        if let Some(e) = g.connections.get_mut(&id) {
            e.0 = None;
        }
    }
}

/// The custom attributes' size in JSON bytes.
fn attributes_bytes(message: &Value) -> usize {
    message
        .pointer("/channel/metadata/customAttributes")
        .map(|a| a.to_string().len())
        .unwrap_or(0)
}

fn on_message(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: &str,
    tracing: Option<&str>,
) {
    let cfg = &shared.config.guest;
    let limits = &shared.config.text_limits;
    let now = shared.clock.now();
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.send(error_frame(code, text, tracing));
        return;
    }
    let verdict = g
        .message_limiter
        .check(token, cfg.message_rate, cfg.message_window, now);
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    s.count("onMessage");
    if matches!(verdict, Verdict::Limited { .. }) {
        s.count("rateLimited");
        conn.send(too_many_frame(
            cfg.retry_after_secs,
            "Message rate too high for this session",
            tracing,
        ));
        return;
    }
    let mut fail = |code: u16, text: &str| {
        s.count("errors");
        conn.send(error_frame(code, text, tracing));
    };
    let Some(message) = v.get("message").filter(|m| m.is_object()) else {
        return fail(400, "message is required");
    };
    match message.get("type").and_then(Value::as_str) {
        Some("Text" | "Structured") => {}
        _ => return fail(400, "message.type must be Text or Structured"),
    }
    let Some(text) = message
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return fail(400, "message.text is required");
    };
    let chars = text.chars().count();
    if chars > limits.guest {
        return fail(
            4011,
            &format!(
                "Message exceeds the maximum length of {} characters",
                limits.guest
            ),
        );
    }
    if attributes_bytes(message) > limits.guest_attributes_bytes {
        return fail(
            4013,
            &format!(
                "Custom attributes exceed the maximum of {} bytes",
                limits.guest_attributes_bytes
            ),
        );
    }
    let id = new_uuid();
    let time = iso8601(shared.clock.system_now());
    s.messages.push(GuestMessageReport {
        id: id.clone(),
        tracing_id: tracing.map(str::to_owned),
        text: text.to_owned(),
        time: time.clone(),
        connection: conn.id,
        echo: EchoState::Pending,
        metadata: message.get("metadata").filter(|m| m.is_object()).cloned(),
    });
    let conversation_id = s.conversation_id.clone();
    let mut body = json!({
        "text": text,
        "type": "Text",
        "direction": "Inbound",
        "id": id,
        "channel": {"time": time, "messageId": id},
    });
    if let (Value::Object(o), Some(meta)) =
        (&mut body, message.get("metadata").filter(|m| m.is_object()))
    {
        o.insert("metadata".to_owned(), meta.clone());
    }
    let frame = event_frame("StructuredMessage", body, tracing);
    let (drop_socket, lost, delay) = {
        let mut f = lock(&shared.faults);
        let (dr, lr, d) = (
            f.faults.ws_drop_rate,
            f.faults.ws_lost_echo_rate,
            f.faults.ws_echo_delay_ms,
        );
        (f.roll(dr), f.roll(lr), d)
    };
    lock(&shared.recorder).record(
        NewMessage {
            id: id.clone(),
            route: RouteKind::Guest,
            lane: token.to_owned(),
            conversation_id,
            text: Some(text.to_owned()),
            content: "text",
            time,
            idempotency_key: tracing.map(str::to_owned),
            client_id: None,
        },
        false,
        (200, bytes::Bytes::new()),
    );
    if drop_socket {
        s.set_echo(&id, EchoState::Dropped);
        let _ = conn.tx.send(Outbound::Abort);
        return;
    }
    if lost {
        s.set_echo(&id, EchoState::Lost);
        return;
    }
    drop(g);
    if delay > 0 {
        let shared = shared.clone();
        let token = token.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            deliver_echo(&shared, &token, &id, frame);
        });
    } else {
        deliver_echo(shared, token, &id, frame);
    }
}

/// Sends an echo to the session's sockets, honouring `wsReorder`.
fn deliver_echo(shared: &Arc<Shared>, token: &str, message_id: &str, frame: String) {
    let reorder = shared.faults().ws_reorder;
    let mut g = lock(&shared.guest.inner);
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    let send = |s: &mut Session, id: &str, frame: &str| {
        let state = if s.send_all(frame) {
            EchoState::Sent
        } else {
            EchoState::Undelivered
        };
        s.set_echo(id, state);
    };
    if let Some(held) = s.held.take() {
        send(s, message_id, &frame);
        send(s, &held.message_id, &held.frame);
    } else if reorder {
        s.hold_generation += 1;
        let generation = s.hold_generation;
        s.held = Some(HeldEcho {
            generation,
            message_id: message_id.to_owned(),
            frame,
        });
        let shared = shared.clone();
        let token = token.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(REORDER_HOLD).await;
            let mut g = lock(&shared.guest.inner);
            if let Some(s) = g.sessions.get_mut(&token)
                && s.held.as_ref().is_some_and(|h| h.generation == generation)
                && let Some(h) = s.held.take()
            {
                send(s, &h.message_id, &h.frame);
            }
        });
    } else {
        send(s, message_id, &frame);
    }
}

fn echo(shared: &Arc<Shared>, conn: &mut Conn, v: &Value, token: &str, tracing: Option<&str>) {
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.send(error_frame(code, text, tracing));
        return;
    }
    if let Some(s) = g.sessions.get_mut(token) {
        s.count("echo");
    }
    let text = v
        .pointer("/message/text")
        .and_then(Value::as_str)
        .unwrap_or("");
    let time = iso8601(shared.clock.system_now());
    let body = json!({
        "text": text,
        "type": "Text",
        "direction": "Inbound",
        "id": new_uuid(),
        "channel": {"time": time},
    });
    conn.send(event_frame("StructuredMessage", body, tracing));
}

fn get_jwt(shared: &Arc<Shared>, conn: &mut Conn, token: &str, tracing: Option<&str>) {
    use base64::Engine as _;
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.send(error_frame(code, text, tracing));
        return;
    }
    let ttl = shared.config.guest.jwt_ttl;
    let exp = unix_secs(shared.clock.system_now()) + ttl.as_secs();
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    s.count("getJwt");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let claims = b64.encode(
        json!({"iss": "genesys-emulator", "sub": s.conversation_id, "deploymentId": s.deployment_id, "exp": exp, "jti": new_uuid()})
            .to_string(),
    );
    let jwt = format!("{header}.{claims}.{}", crate::ids::new_token());
    g.jwts.insert(
        jwt.clone(),
        JwtRecord {
            token: token.to_owned(),
            expires_at: shared.clock.now() + ttl,
        },
    );
    conn.send(response_frame(
        "JwtResponse",
        json!({"jwt": jwt, "exp": exp}),
        tracing,
    ));
}

fn close_session(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: &str,
    tracing: Option<&str>,
) {
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.send(error_frame(code, text, tracing));
        return;
    }
    let all = v
        .get("closeAllConnections")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    s.count("closeSession");
    let targets: Vec<ConnHandle> = if all {
        std::mem::take(&mut s.connections)
    } else {
        let mine: Vec<ConnHandle> = s
            .connections
            .iter()
            .filter(|c| c.id == conn.id)
            .cloned()
            .collect();
        s.connections.retain(|c| c.id != conn.id);
        mine
    };
    let ev = event_frame("ConnectionClosedEvent", json!({}), tracing);
    for c in &targets {
        let _ = c.tx.send(Outbound::Frame(ev.clone()));
        let _ =
            c.tx.send(Outbound::Close(1000, "Session closed".to_owned()));
    }
    for c in targets {
        if let Some(e) = g.connections.get_mut(&c.id) {
            e.0 = None;
        }
    }
    conn.session = None;
}
