//! The Guest WebSocket (`GET /v1?deploymentId=…`): the handshake, one task per
//! socket, and the request actions.
//!
//! | `action` | answer |
//! |---|---|
//! | `configureSession`, `configureAuthenticatedSession` | `SessionResponse`; `startNew: true` starts a new conversation |
//! | `onMessage` `Text`/`Structured` | the echo `StructuredMessage` to every socket of the session (text, and/or `content`: `ButtonResponse`, `Attachment`) |
//! | `onMessage` `Event` | typing: accepted, no answer; presence `Join`: echoed as an `Event`; presence `Clear`: `SessionClearedEvent`, then the sockets close and the next configuration starts a new conversation |
//! | `echo` | `StructuredMessage` to the asking socket (health check) |
//! | `getJwt` | `JwtResponse` |
//! | `onAttachment` | `PresignedUrlResponse` (upload URL on this emulator); after the upload, `UploadSuccessEvent` |
//! | `deleteAttachment` | `AttachmentDeletedResponse` |
//! | `closeSession` | all connections: `ConnectionClosedEvent` + close to the others, `SessionResponse {connected:false, readOnly:true}` to this one; else `ConnectionClosedEvent` + close to this one |
//!
//! Errors are `string` frames: 400 malformed, 403 unknown deployment, 4002
//! attachment too large, 4006 session expired, 4007 session not found, 4009
//! attachment not found, 4010 attachment not uploaded, 4011 text too long,
//! 4013 custom attributes too large; 429 `TooManyRequestsErrorMessage`.
//!
//! Faults: `wsDropRate` (record, then cut the socket), `wsLostEchoRate`
//! (record, never echo), `wsEchoDelayMs`, `wsReorder` (echoes swapped in
//! pairs), and `outage` (open sockets cut at once, upgrades dropped).

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use hyper::body::Incoming;
use hyper::header::{
    CONNECTION, HOST, HeaderValue, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};
use hyper::upgrade::Upgraded;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};

use super::frames;
use super::state::{
    AgentReply, Attachment, ConnHandle, EchoState, GuestInner, GuestMessageReport, HeldEcho,
    JwtRecord, Outbound, Session,
};
use crate::clock::{iso8601, unix_secs};
use crate::errors::ApiError;
use crate::ids::new_uuid;
use crate::inspect::{NewMessage, Outcome, RouteKind};
use crate::ratelimit::Verdict;
use crate::response::{self, Reply};
use crate::state::{Shared, lock};
use crate::sync::until_true;
use crate::urlencoded;

/// How long a lone echo is held by the `wsReorder` fault before it is sent.
const REORDER_HOLD: Duration = Duration::from_millis(200);
/// Longest guest session token accepted.
const MAX_TOKEN_CHARS: usize = 2048;
/// File types announced as accepted (`allowedMedia`, deployment config).
pub(crate) const FILE_TYPES: [&str; 6] = [
    "image/png",
    "image/jpeg",
    "image/gif",
    "application/pdf",
    "text/plain",
    "video/mp4",
];
/// File extensions refused (`blockedExtensions`).
pub(crate) const BLOCKED_EXTENSIONS: [&str; 3] = [".exe", ".bat", ".js"];
/// Button response types (`ButtonResponseType`).
const BUTTON_TYPES: [&str; 5] = ["Button", "DatePicker", "Form", "ListPicker", "QuickReply"];

/// `http://HOST` of a request, for URLs that point back at this emulator.
pub(crate) fn origin_of(req: &Request<Incoming>, shared: &Shared) -> String {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| !h.is_empty())
        .map_or_else(|| shared.config.bind.to_string(), str::to_owned);
    format!("http://{host}")
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
    let origin = origin_of(&req, shared);
    let on_upgrade = hyper::upgrade::on(&mut req);
    let task_shared = shared.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let cfg = WebSocketConfig::default().max_message_size(Some(1 << 20));
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(cfg))
                    .await;
            run_socket(task_shared, ws, deployment, origin).await;
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
    /// `http://HOST` the socket was opened on (upload and download URLs).
    origin: String,
    session: Option<String>,
}

impl Conn {
    fn send(&self, frame: String) {
        let _ = self.tx.send(Outbound::Frame(frame));
    }

    fn error(&self, code: u16, text: &str, tracing: Option<&str>) {
        self.send(frames::error(code, text, tracing));
    }
}

async fn run_socket(
    shared: Arc<Shared>,
    mut ws: WebSocketStream<TokioIo<Upgraded>>,
    deployment: String,
    origin: String,
) {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.guest.register(tx.clone());
    let mut conn = Conn {
        id,
        tx,
        query_deployment: deployment,
        origin,
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
                Some(Ok(Message::Binary(_))) => conn.error(400, "Binary frames are not supported", None),
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
        conn.error(400, "Request is not valid JSON", None);
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
            conn.send(frames::too_many(
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
        "configureSession" => configure(shared, conn, &v, token, tracing, false),
        "configureAuthenticatedSession" => configure(shared, conn, &v, token, tracing, true),
        "onMessage" | "echo" | "getJwt" | "closeSession" | "onAttachment" | "deleteAttachment" => {
            let Some(token) = token else {
                conn.error(400, "token is required", tracing);
                return;
            };
            match action {
                "onMessage" => on_message(shared, conn, &v, token, tracing),
                "echo" => echo(shared, conn, &v, token, tracing),
                "getJwt" => get_jwt(shared, conn, token, tracing),
                "onAttachment" => on_attachment(shared, conn, &v, token, tracing),
                "deleteAttachment" => delete_attachment(shared, conn, &v, token, tracing),
                _ => close_session(shared, conn, &v, token, tracing),
            }
        }
        "" => conn.error(400, "action is required", tracing),
        other => conn.error(400, &format!("Unsupported action: {other}"), tracing),
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

/// The `SessionResponse` body.
fn session_body(shared: &Shared, s: &Session, new_session: bool, connected: bool) -> Value {
    let cfg = &shared.config.guest;
    let now = shared.clock.now();
    let ttl = cfg.session_ttl.as_secs();
    let age = now
        .saturating_duration_since(s.created_at)
        .as_secs()
        .min(ttl);
    let expiration = unix_secs(shared.clock.system_now()) + ttl - age;
    json!({
        "connected": connected,
        "newSession": new_session,
        "readOnly": s.read_only,
        "maxCustomDataBytes": shared.config.text_limits.guest_attributes_bytes,
        "allowedMedia": {"inbound": {
            "fileTypes": FILE_TYPES.iter().map(|t| json!({"type": t})).collect::<Vec<_>>(),
            "maxFileSizeKB": cfg.attachment_max_bytes / 1000,
        }},
        "blockedExtensions": BLOCKED_EXTENSIONS,
        "durationSeconds": ttl,
        "expirationDate": expiration,
    })
}

fn configure(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: Option<&str>,
    tracing: Option<&str>,
    authenticated: bool,
) {
    let cfg = &shared.config.guest;
    let Some(token) = token.filter(|t| !t.is_empty() && t.chars().count() <= MAX_TOKEN_CHARS)
    else {
        conn.error(400, "token is required (at most 2048 characters)", tracing);
        return;
    };
    if authenticated
        && v.pointer("/data/code")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
    {
        conn.error(400, "data.code is required", tracing);
        return;
    }
    let deployment = v
        .get("deploymentId")
        .and_then(Value::as_str)
        .unwrap_or(&conn.query_deployment)
        .to_owned();
    if !cfg.deployments.contains(&deployment) || deployment != conn.query_deployment {
        conn.error(403, "Deployment not found or not allowed", tracing);
        return;
    }
    let start_new = v.get("startNew").and_then(Value::as_bool) == Some(true);
    let now = shared.clock.now();
    let mut g = lock(&shared.guest.inner);
    let mut new_session = !g.sessions.contains_key(token);
    if new_session {
        g.sessions.insert(
            token.to_owned(),
            Session::new(
                deployment,
                new_uuid(),
                now,
                iso8601(shared.clock.system_now()),
            ),
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
    s.count(if authenticated {
        "configureAuthenticatedSession"
    } else {
        "configureSession"
    });
    if s.expired || now >= s.created_at + cfg.session_ttl {
        s.count("errors");
        conn.error(4006, "Session has expired", tracing);
        return;
    }
    if start_new && !new_session {
        // A new conversation on the same session token.
        s.start_over(new_uuid());
        new_session = true;
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
        let _ = oldest.tx.send(Outbound::Frame(frames::event(
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
    conn.send(frames::response(
        "SessionResponse",
        session_body(shared, s, new_session, true),
        tracing,
    ));
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

/// What an `onMessage` carries, once validated.
enum GuestInput {
    /// A message (text and/or content) to record and echo.
    Message {
        message_type: &'static str,
        text: String,
        content: Vec<Value>,
    },
    /// Typing indicator: accepted, nothing answered.
    Typing,
    /// Presence `Join` (auto-start): echoed as an event.
    Join(Value),
    /// Presence `Clear`: the conversation is cleared.
    Clear,
    /// Another presence event: accepted.
    OtherEvent,
}

/// Validates the `message` of an `onMessage` (`IncomingNormalizedMessage`).
fn parse_message(
    g: &GuestInner,
    s: &Session,
    token: &str,
    message: &Value,
    max_text: usize,
) -> Result<GuestInput, (u16, String)> {
    let bad = |code: u16, text: &str| Err((code, text.to_owned()));
    match message.get("type").and_then(Value::as_str) {
        Some("Event") => {
            let Some(events) = message
                .get("events")
                .and_then(Value::as_array)
                .filter(|e| !e.is_empty())
            else {
                return bad(400, "message.events is required for an Event");
            };
            let first = &events[0];
            match (
                first.get("eventType").and_then(Value::as_str),
                first.pointer("/presence/type").and_then(Value::as_str),
            ) {
                (Some("Typing"), _) => Ok(GuestInput::Typing),
                (Some("Presence"), Some("Join")) => {
                    Ok(GuestInput::Join(Value::Array(events.clone())))
                }
                (Some("Presence"), Some("Clear")) => Ok(GuestInput::Clear),
                (Some("Presence"), Some(_)) => Ok(GuestInput::OtherEvent),
                (Some("Presence"), None) => bad(400, "message.events[0].presence.type is required"),
                _ => bad(
                    400,
                    "message.events[0].eventType must be Typing or Presence",
                ),
            }
        }
        Some(t @ ("Text" | "Structured")) => {
            let text = match message.get("text") {
                None | Some(Value::Null) => "",
                Some(Value::String(s)) => s.as_str(),
                Some(_) => return bad(400, "message.text must be a string"),
            };
            let content = parse_content(g, s, token, message.get("content"))?;
            if text.trim().is_empty() && content.is_empty() {
                return bad(400, "message.text is required");
            }
            if text.chars().count() > max_text {
                return Err((
                    4011,
                    format!("Message exceeds the maximum length of {max_text} characters"),
                ));
            }
            let structured =
                t == "Structured" || content.iter().any(|c| c["contentType"] == "ButtonResponse");
            Ok(GuestInput::Message {
                message_type: if structured { "Structured" } else { "Text" },
                text: text.to_owned(),
                content,
            })
        }
        _ => bad(400, "message.type must be Text, Structured or Event"),
    }
}

/// Validates `content` items: `ButtonResponse` (a quick-reply answer) and
/// `Attachment` (an uploaded file of this session).
fn parse_content(
    g: &GuestInner,
    s: &Session,
    token: &str,
    content: Option<&Value>,
) -> Result<Vec<Value>, (u16, String)> {
    let Some(items) = content.filter(|c| !c.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(items) = items.as_array() else {
        return Err((400, "message.content must be an array".to_owned()));
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.get("contentType").and_then(Value::as_str) {
            Some("ButtonResponse") => {
                let b = item.get("buttonResponse").filter(|b| b.is_object());
                let field = |name: &str| b.and_then(|b| b.get(name)).and_then(Value::as_str);
                let (Some(text), Some(payload)) = (field("text"), field("payload")) else {
                    return Err((
                        400,
                        format!("message.content[{i}].buttonResponse needs text and payload"),
                    ));
                };
                let kind = field("type").unwrap_or("QuickReply");
                if !BUTTON_TYPES.contains(&kind) {
                    return Err((
                        400,
                        format!(
                            "message.content[{i}].buttonResponse.type must be one of {}",
                            BUTTON_TYPES.join(", ")
                        ),
                    ));
                }
                let mut br = json!({"type": kind, "text": text, "payload": payload});
                if let (Value::Object(o), Some(origin)) = (
                    &mut br,
                    field("originatingMessageId").or_else(|| s.last_offer()),
                ) {
                    o.insert("originatingMessageId".to_owned(), json!(origin));
                }
                out.push(json!({"contentType": "ButtonResponse", "buttonResponse": br}));
            }
            Some("Attachment") => {
                let Some(id) = item.pointer("/attachment/id").and_then(Value::as_str) else {
                    return Err((
                        400,
                        format!("message.content[{i}].attachment.id is required"),
                    ));
                };
                let Some(a) = g.attachments.get(id).filter(|a| a.token == token) else {
                    return Err((4009, format!("Attachment {id} not found")));
                };
                if a.data.is_none() {
                    return Err((4010, format!("Attachment {id} was not uploaded")));
                }
                out.push(json!({"contentType": "Attachment", "attachment": a.content(id)}));
            }
            other => {
                return Err((
                    400,
                    format!(
                        "message.content[{i}].contentType {} is not accepted from a guest (ButtonResponse, Attachment)",
                        other.unwrap_or("(missing)")
                    ),
                ));
            }
        }
    }
    Ok(out)
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
        conn.error(code, text, tracing);
        return;
    }
    let verdict = g
        .message_limiter
        .check(token, cfg.message_rate, cfg.message_window, now);
    let parsed = {
        let Some(s) = g.sessions.get(token) else {
            return;
        };
        match v.get("message").filter(|m| m.is_object()) {
            None => Err((400, "message is required".to_owned())),
            Some(m) if attributes_bytes(m) > limits.guest_attributes_bytes => Err((
                4013,
                format!(
                    "Custom attributes exceed the maximum of {} bytes",
                    limits.guest_attributes_bytes
                ),
            )),
            Some(m) => parse_message(&g, s, token, m, limits.guest),
        }
    };
    let Some(s) = g.sessions.get_mut(token) else {
        return;
    };
    s.count("onMessage");
    if matches!(verdict, Verdict::Limited { .. }) {
        s.count("rateLimited");
        conn.send(frames::too_many(
            cfg.retry_after_secs,
            "Message rate too high for this session",
            tracing,
        ));
        return;
    }
    let parsed = match parsed {
        Ok(p) => p,
        Err((code, text)) => {
            s.count("errors");
            conn.error(code, &text, tracing);
            return;
        }
    };
    let time = iso8601(shared.clock.system_now());
    let metadata = v
        .pointer("/message/metadata")
        .and_then(Value::as_object)
        .map(|m| {
            let kept = m
                .iter()
                .filter(|(k, _)| {
                    cfg.metadata_keys
                        .as_ref()
                        .is_none_or(|keep| keep.contains(k))
                })
                .map(|(k, v)| (k.clone(), v.clone()));
            Value::Object(kept.collect())
        })
        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()));
    let (message_type, text, content) = match parsed {
        GuestInput::Typing => {
            s.count("typing");
            return;
        }
        GuestInput::OtherEvent => {
            s.count("presence");
            return;
        }
        GuestInput::Join(events) => {
            s.count("presence");
            let id = new_uuid();
            let mut body = json!({
                "id": id,
                "type": "Event",
                "direction": "Inbound",
                "channel": {"time": time, "messageId": id},
                "events": events,
            });
            if let (Value::Object(o), Some(m)) = (&mut body, metadata) {
                o.insert("metadata".to_owned(), m);
            }
            s.send_all(&frames::event("StructuredMessage", body, tracing));
            return;
        }
        GuestInput::Clear => {
            s.count("presence");
            // Cleared: every socket hears it and is closed; the session
            // starts a new conversation when configured again.
            s.send_all(&frames::event("SessionClearedEvent", json!({}), tracing));
            let closed = s.close_all(
                &frames::event(
                    "ConnectionClosedEvent",
                    json!({"reasonCode": "ConversationCleared"}),
                    None,
                ),
                "Conversation cleared",
            );
            s.start_over(new_uuid());
            for c in closed {
                if let Some(e) = g.connections.get_mut(&c.id) {
                    e.0 = None;
                }
            }
            conn.session = None;
            return;
        }
        GuestInput::Message {
            message_type,
            text,
            content,
        } => (message_type, text, content),
    };
    if s.read_only {
        s.count("errors");
        conn.error(
            400,
            "The conversation is read-only; configureSession with startNew: true starts a new one",
            tracing,
        );
        return;
    }
    let id = new_uuid();
    let report = GuestMessageReport {
        id: id.clone(),
        tracing_id: tracing.map(str::to_owned),
        text: text.clone(),
        time: time.clone(),
        connection: conn.id,
        echo: EchoState::Pending,
        metadata,
        direction: "Inbound".to_owned(),
        message_type: message_type.to_owned(),
        content,
        conversation_id: s.conversation_id.clone(),
    };
    let frame = frames::event("StructuredMessage", report.body(false), tracing);
    let kind = if report
        .content
        .iter()
        .any(|c| c["contentType"] == "ButtonResponse")
    {
        "button-response"
    } else if !report.content.is_empty() {
        "attachment"
    } else {
        "text"
    };
    let recorded_text = if text.is_empty() {
        report
            .content
            .iter()
            .find_map(|c| c.pointer("/buttonResponse/text").and_then(Value::as_str))
            .map(str::to_owned)
    } else {
        Some(text.clone())
    };
    let conversation_id = s.conversation_id.clone();
    s.messages.push(report);
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
            text: recorded_text.clone(),
            content: kind,
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
    let auto = g.auto_reply.clone();
    drop(g);
    let auto = auto.map(|prefix| AgentReply {
        text: format!("{prefix}{}", recorded_text.unwrap_or_default()),
        quick_replies: Vec::new(),
    });
    if delay > 0 {
        let shared = shared.clone();
        let token = token.to_owned();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            deliver_echo(&shared, &token, &id, frame);
            auto_answer(&shared, &token, auto.as_ref());
        });
    } else {
        deliver_echo(shared, token, &id, frame);
        auto_answer(shared, token, auto.as_ref());
    }
}

/// The automatic agent answer, after the echo.
fn auto_answer(shared: &Shared, token: &str, reply: Option<&AgentReply>) {
    if let Some(reply) = reply {
        let time = iso8601(shared.clock.system_now());
        let _ = lock(&shared.guest.inner).agent_message(token, reply, new_uuid(), time);
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
        conn.error(code, text, tracing);
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
    let id = new_uuid();
    let body = json!({
        "text": text,
        "type": "Text",
        "direction": "Inbound",
        "id": id,
        "channel": {"time": time, "messageId": id},
    });
    conn.send(frames::event("StructuredMessage", body, tracing));
}

fn get_jwt(shared: &Arc<Shared>, conn: &mut Conn, token: &str, tracing: Option<&str>) {
    use base64::Engine as _;
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.error(code, text, tracing);
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
    conn.send(frames::response(
        "JwtResponse",
        json!({"jwt": jwt, "exp": exp}),
        tracing,
    ));
}

/// `onAttachment`: announces a file; answers where to upload it.
fn on_attachment(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: &str,
    tracing: Option<&str>,
) {
    let max = shared.config.guest.attachment_max_bytes;
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.error(code, text, tracing);
        return;
    }
    if let Some(s) = g.sessions.get_mut(token) {
        s.count("onAttachment");
    }
    let str_field = |name: &str| {
        v.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let id = str_field("attachmentId").map_or_else(new_uuid, str::to_owned);
    let (Some(file_name), Some(file_type)) = (str_field("fileName"), str_field("fileType")) else {
        conn.error(400, "fileName and fileType are required", tracing);
        return;
    };
    let size = v.get("fileSize").and_then(Value::as_u64);
    let time = iso8601(shared.clock.system_now());
    let refuse = |code: u16, text: &str| {
        conn.send(frames::attachment_error(
            "GenerateUrlError",
            &id,
            code,
            text,
            &time,
            tracing,
        ));
    };
    if BLOCKED_EXTENSIONS
        .iter()
        .any(|e| file_name.to_ascii_lowercase().ends_with(e))
    {
        return refuse(4001, "File type is not allowed");
    }
    if size.is_some_and(|n| n > max) {
        return refuse(
            4002,
            &format!("File size exceeds the maximum of {max} bytes"),
        );
    }
    let upload_url = format!("{}{}{id}", conn.origin, super::UPLOAD_PREFIX);
    let download_url = format!("{}{}{id}", conn.origin, super::DOWNLOAD_PREFIX);
    g.attachments.insert(
        id.clone(),
        Attachment {
            token: token.to_owned(),
            file_name: file_name.to_owned(),
            file_type: file_type.to_owned(),
            data: None,
            download_url,
        },
    );
    let mut body = json!({
        "attachmentId": id,
        "headers": {"Content-Type": file_type},
        "url": upload_url,
        "fileName": file_name,
        "fileType": file_type,
    });
    if let (Value::Object(o), Some(n)) = (&mut body, size) {
        o.insert("fileSize".to_owned(), json!(n));
    }
    conn.send(frames::response("PresignedUrlResponse", body, tracing));
}

/// `deleteAttachment`: forgets an attachment of this session.
fn delete_attachment(
    shared: &Arc<Shared>,
    conn: &mut Conn,
    v: &Value,
    token: &str,
    tracing: Option<&str>,
) {
    let mut g = lock(&shared.guest.inner);
    if let Err((code, text)) = session_check(shared, &mut g, conn, token) {
        conn.error(code, text, tracing);
        return;
    }
    let Some(id) = v.get("attachmentId").and_then(Value::as_str) else {
        conn.error(400, "attachmentId is required", tracing);
        return;
    };
    if g.attachments.get(id).is_none_or(|a| a.token != token) {
        conn.error(4009, &format!("Attachment {id} not found"), tracing);
        return;
    }
    g.attachments.remove(id);
    conn.send(frames::response(
        "AttachmentDeletedResponse",
        json!({"attachmentId": id}),
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
        conn.error(code, text, tracing);
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
    let ev = frames::event("ConnectionClosedEvent", json!({}), tracing);
    let targets: Vec<ConnHandle> = if all {
        // The others are closed; this socket stays, told the conversation
        // is over (read-only) so that it can start a new one.
        let (mine, others): (Vec<ConnHandle>, Vec<ConnHandle>) = std::mem::take(&mut s.connections)
            .into_iter()
            .partition(|c| c.id == conn.id);
        s.connections = mine;
        s.read_only = true;
        conn.send(frames::response(
            "SessionResponse",
            session_body(shared, s, false, false),
            tracing,
        ));
        others
    } else {
        let mine: Vec<ConnHandle> = s
            .connections
            .iter()
            .filter(|c| c.id == conn.id)
            .cloned()
            .collect();
        s.connections.retain(|c| c.id != conn.id);
        conn.session = None;
        mine
    };
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
}
