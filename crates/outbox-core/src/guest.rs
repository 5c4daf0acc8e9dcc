//! The Genesys Web Messaging Guest API ("shyrka"), free of I/O: the frames
//! a guest sends over the WebSocket, the frames it receives, and what each
//! answer means for an outbox entry.
//!
//! A guest message goes out as `onMessage` with the entry's id as its
//! `tracingId` and, in `message.metadata`, its idempotency key twice:
//! `customMessageId` (the key Genesys's own Messenger transport matches
//! history entries by) and `outboxId` (ours). The acknowledgement is the
//! echo (a `StructuredMessage` with the same `tracingId`). When the socket
//! drops before the echo, the outcome is unknown: the driver reads the
//! session's history (`getJwt`, then `GET /api/v2/webmessaging/messages`)
//! and looks for either key before sending again, so a lost echo does not
//! become a duplicate.
//!
//! Durable entries are text messages and quick-reply answers (a
//! `ButtonResponse`, sent as Genesys's transport sends it: `type: "Text"`,
//! empty `text`, the response in `content`). Typing indicators are
//! best-effort frames ([`typing`]): never stored, never retried.
//!
//! [`answer`] maps each frame to the engine's [`Response`], so the guest
//! channel runs on the same machines ([`Flush`](crate::flush::Flush)),
//! store, retry policy and pacing as the REST routes.

use crate::classify::Response;
use crate::entry::Prepared;
use crate::entry::{EntryId, StoredRequest};
use crate::json;
use crate::json::Object;
use alloc::{borrow::ToOwned, string::String, string::ToString, vec, vec::Vec};

/// The `http(s)` origin of a `ws(s)` URL (where the same host serves
/// history), or `None` when it is not one.
pub fn http_origin(socket_url: &str) -> Option<String> {
    let rest = socket_url.strip_prefix("ws")?;
    crate::url::parse(&["http", rest].concat())
        .ok()
        .map(|p| p.origin)
}

/// The route name of guest entries.
pub const ROUTE: &str = "guest";

/// A guest message made ready for the queue: lane = the session (strict
/// order within a conversation), origin = the socket's (pacing under the
/// per-session rate), the id as idempotency key (carried in the
/// `idempotency-key` header of the stored request and, on the wire, as
/// `tracingId` and `metadata.outboxId`), no bearer token.
pub fn prepare(id: EntryId, socket_url: &str, session_token: &str, text: &str) -> Prepared {
    prepare_entry(id, socket_url, session_token, &GuestEntry::text(text))
}

/// [`prepare`] for any durable guest entry (text or quick-reply answer).
pub fn prepare_entry(
    id: EntryId,
    socket_url: &str,
    session_token: &str,
    entry: &GuestEntry,
) -> Prepared {
    let key = id.hyphenated();
    let origin = http_origin(socket_url)
        .map(|o| o.replacen("http", "ws", 1))
        .unwrap_or_else(|| socket_url.to_owned());
    Prepared {
        id,
        route: ROUTE.to_owned(),
        origin,
        lane: session_token.to_owned(),
        request: StoredRequest {
            method: "WS".to_owned(),
            url: socket_url.to_owned(),
            headers: vec![("idempotency-key".to_owned(), key.clone())],
            body: entry.body(),
        },
        idempotency_key: key,
        needs_token: false,
        conflict_is_delivered: false,
        bearer: None,
    }
}

/// The `metadata` key that carries the idempotency key (ours).
pub const OUTBOX_ID_KEY: &str = "outboxId";
/// The `metadata` key Genesys's own transport matches history by; it
/// carries the idempotency key too.
pub const CUSTOM_MESSAGE_ID_KEY: &str = "customMessageId";

/// A quick-reply answer (`ButtonResponse` content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ButtonResponse {
    /// The button's text, as shown.
    pub text: String,
    /// The button's payload.
    pub payload: String,
}

/// What a durable guest entry sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestEntry {
    /// The text (empty for a quick-reply answer).
    pub text: String,
    /// The quick-reply answer, if it is one.
    pub button: Option<ButtonResponse>,
}

impl GuestEntry {
    /// A text message.
    pub fn text(text: &str) -> Self {
        Self {
            text: text.to_owned(),
            button: None,
        }
    }

    /// A quick-reply answer.
    pub fn quick_reply(text: &str, payload: &str) -> Self {
        Self {
            text: String::new(),
            button: Some(ButtonResponse {
                text: text.to_owned(),
                payload: payload.to_owned(),
            }),
        }
    }

    /// The stored body: `{"text": …}`, plus `"buttonResponse": {text, payload}`.
    pub fn body(&self) -> Vec<u8> {
        let mut o = Object::new();
        o.str("text", &self.text);
        if let Some(b) = &self.button {
            let mut br = Object::new();
            br.str("text", &b.text).str("payload", &b.payload);
            o.raw("buttonResponse", &br.finish());
        }
        o.finish().into_bytes()
    }

    /// Reads a stored body; `None` when it is not a guest entry's.
    pub fn parse(body: &[u8]) -> Option<Self> {
        let s = |path: &[&str]| json::find(body, path)?.as_str().map(|c| c.into_owned());
        let button = match (
            s(&["buttonResponse", "text"]),
            s(&["buttonResponse", "payload"]),
        ) {
            (Some(text), Some(payload)) => Some(ButtonResponse { text, payload }),
            _ => None,
        };
        Some(Self {
            text: s(&["text"])?,
            button,
        })
    }
}

/// `configureSession`: opens (or resumes) the guest's session.
pub fn configure_session(deployment_id: &str, token: &str, tracing_id: &str) -> String {
    let mut o = Object::new();
    o.str("action", "configureSession")
        .str("deploymentId", deployment_id)
        .str("token", token)
        .str("tracingId", tracing_id);
    o.finish()
}

/// `onMessage`: a text message, tagged with `outbox_id` in its metadata.
pub fn on_message(
    token: &str,
    tracing_id: &str,
    text: &str,
    outbox_id: &str,
    time_iso: &str,
) -> String {
    on_message_entry(
        token,
        tracing_id,
        &GuestEntry::text(text),
        outbox_id,
        time_iso,
    )
}

/// `onMessage` for any durable entry, tagged with `outbox_id` in its
/// metadata (as `customMessageId` and `outboxId`). A quick-reply answer
/// goes as Genesys's transport sends it: `type: "Text"`, `text: ""`,
/// `content: [{contentType: "ButtonResponse", buttonResponse: {type:
/// "QuickReply", text, payload}}]`.
pub fn on_message_entry(
    token: &str,
    tracing_id: &str,
    entry: &GuestEntry,
    outbox_id: &str,
    time_iso: &str,
) -> String {
    let mut metadata = Object::new();
    metadata
        .str(CUSTOM_MESSAGE_ID_KEY, outbox_id)
        .str(OUTBOX_ID_KEY, outbox_id);
    let mut message = Object::new();
    message.str("type", "Text").str("text", &entry.text);
    if let Some(b) = &entry.button {
        let mut br = Object::new();
        br.str("type", "QuickReply")
            .str("text", &b.text)
            .str("payload", &b.payload);
        let mut item = Object::new();
        item.str("contentType", "ButtonResponse")
            .raw("buttonResponse", &br.finish());
        message.raw("content", &["[", &item.finish(), "]"].concat());
    }
    message.raw("metadata", &metadata.finish());
    let mut o = Object::new();
    o.str("action", "onMessage")
        .str("token", token)
        .str("tracingId", tracing_id)
        .str("time", time_iso)
        .raw("message", &message.finish());
    o.finish()
}

/// `onMessage` with a typing indicator (`Event`, `Typing` `On`): best-effort,
/// sent only on an open socket, never stored; the server does not answer it.
pub fn typing(token: &str, tracing_id: &str, time_iso: &str) -> String {
    let mut typing = Object::new();
    typing.str("type", "On");
    let mut event = Object::new();
    event
        .str("eventType", "Typing")
        .raw("typing", &typing.finish());
    let mut message = Object::new();
    message
        .str("type", "Event")
        .raw("events", &["[", &event.finish(), "]"].concat());
    let mut o = Object::new();
    o.str("action", "onMessage")
        .str("token", token)
        .str("tracingId", tracing_id)
        .str("time", time_iso)
        .raw("message", &message.finish());
    o.finish()
}

/// `getJwt`: a token for the history endpoint.
pub fn get_jwt(token: &str, tracing_id: &str) -> String {
    let mut o = Object::new();
    o.str("action", "getJwt")
        .str("token", token)
        .str("tracingId", tracing_id);
    o.finish()
}

/// `echo`: the health check.
pub fn echo(token: &str, tracing_id: &str) -> String {
    let mut message = Object::new();
    message.str("type", "Text").str("text", "ping");
    let mut o = Object::new();
    o.str("action", "echo")
        .str("token", token)
        .str("tracingId", tracing_id)
        .raw("message", &message.finish());
    o.finish()
}

/// The body of a stored guest entry: `{"text": …}` (the id travels as the
/// entry's idempotency key).
pub fn entry_body(text: &str) -> Vec<u8> {
    let mut o = Object::new();
    o.str("text", text);
    o.finish().into_bytes()
}

/// The text of a stored guest entry's body (a quick-reply answer: the
/// button's text).
pub fn entry_text(body: &[u8]) -> Option<String> {
    GuestEntry::parse(body).map(|e| match e.button {
        Some(b) if e.text.is_empty() => b.text,
        _ => e.text,
    })
}

/// A frame received from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// `SessionResponse`.
    Session {
        /// Request's tracing id.
        tracing_id: Option<String>,
        /// Whether the session is connected.
        connected: bool,
        /// Whether it is a new session (false: resumed).
        new_session: bool,
        /// `readOnly`: the conversation ended; nothing can be sent.
        read_only: bool,
    },
    /// A `StructuredMessage` (an echo of the guest's own message when
    /// `direction` is `Inbound`, or an agent's message).
    Message {
        /// Same as the request's, for echoes.
        tracing_id: Option<String>,
        /// The message id the server gave.
        id: Option<String>,
        /// `Inbound` (from the guest) or `Outbound` (to the guest).
        direction: Option<String>,
        /// The text.
        text: Option<String>,
    },
    /// `JwtResponse`.
    Jwt {
        /// Request's tracing id.
        tracing_id: Option<String>,
        /// The JWT.
        jwt: String,
        /// Expiry (seconds since the epoch).
        exp: u64,
    },
    /// `TooManyRequestsErrorMessage` (code 429, `errorCode` 4029): the
    /// socket stays open.
    TooManyRequests {
        /// Request's tracing id.
        tracing_id: Option<String>,
        /// Seconds to wait.
        retry_after_secs: u64,
        /// The server's text.
        message: String,
    },
    /// An error answer (`class` `string` or `Error`): 4006 session expired,
    /// 4007 not found, 4011 too long, 4013 attributes too large, 400, 403…
    Error {
        /// Request's tracing id.
        tracing_id: Option<String>,
        /// The code.
        code: u32,
        /// The text.
        message: String,
    },
    /// `SessionExpiredEvent`, `SessionClearedEvent`, `LogoutEvent`.
    SessionEnded {
        /// The event's class.
        class: String,
    },
    /// `ConnectionClosedEvent`: the server closes this socket (e.g. a
    /// fourth connection for the session).
    ConnectionClosed,
    /// Anything else (kept for logs).
    Other {
        /// The frame's class.
        class: String,
    },
}

/// Why a frame could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unreadable guest frame: {0}")]
pub struct FrameError(pub String);

/// Parses one text frame.
pub fn parse_frame(text: &str) -> Result<Frame, FrameError> {
    let doc = text.as_bytes();
    json::validate(doc).map_err(|e| FrameError(e.text()))?;
    let s = |path: &[&str]| json::find(doc, path).and_then(|v| v.as_str().map(|c| c.into_owned()));
    let n = |path: &[&str]| json::find(doc, path).and_then(|v| v.as_u64());
    let b = |path: &[&str]| json::find(doc, path).is_some_and(|v| v.raw == b"true");
    let class = s(&["class"]).ok_or_else(|| FrameError("no `class`".into()))?;
    let code = n(&["code"]).map_or(200, |c| u32::try_from(c).unwrap_or(u32::MAX));
    let tracing_id = s(&["tracingId"]).or_else(|| s(&["body", "tracingId"]));
    Ok(match class.as_str() {
        "SessionResponse" => Frame::Session {
            tracing_id,
            connected: b(&["body", "connected"]),
            new_session: b(&["body", "newSession"]),
            read_only: b(&["body", "readOnly"]),
        },
        "StructuredMessage" => Frame::Message {
            tracing_id,
            id: s(&["body", "id"]),
            direction: s(&["body", "direction"]),
            text: s(&["body", "text"]),
        },
        "JwtResponse" => Frame::Jwt {
            tracing_id,
            jwt: s(&["body", "jwt"])
                .ok_or_else(|| FrameError("JwtResponse without `jwt`".into()))?,
            exp: n(&["body", "exp"]).unwrap_or(0),
        },
        "TooManyRequestsErrorMessage" => Frame::TooManyRequests {
            tracing_id,
            retry_after_secs: n(&["body", "retryAfter"]).unwrap_or(1),
            message: s(&["body", "errorMessage"]).unwrap_or_else(|| "too many requests".into()),
        },
        "SessionExpiredEvent" | "SessionClearedEvent" | "LogoutEvent" => {
            Frame::SessionEnded { class }
        }
        "ConnectionClosedEvent" => Frame::ConnectionClosed,
        "string" | "Error" | "ErrorMessage" => Frame::Error {
            tracing_id,
            code: n(&["body", "errorCode"]).map_or(code, |c| u32::try_from(c).unwrap_or(u32::MAX)),
            message: s(&["body"])
                .or_else(|| s(&["body", "errorMessage"]))
                .or_else(|| s(&["body", "message"]))
                .unwrap_or_default(),
        },
        _ if code >= 400 => Frame::Error {
            tracing_id,
            code,
            message: s(&["body"]).unwrap_or_else(|| class.clone()),
        },
        _ => Frame::Other { class },
    })
}

impl Frame {
    /// The request this frame answers, if it says.
    pub fn tracing_id(&self) -> Option<&str> {
        match self {
            Frame::Session { tracing_id, .. }
            | Frame::Message { tracing_id, .. }
            | Frame::Jwt { tracing_id, .. }
            | Frame::TooManyRequests { tracing_id, .. }
            | Frame::Error { tracing_id, .. } => tracing_id.as_deref(),
            _ => None,
        }
    }
}

/// What to do with the session after a `configureSession` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// Connected and writable: send.
    Ready,
    /// The conversation ended (read-only, not connected) or the session
    /// expired or is unknown (4006, 4007): start a new session (a fresh
    /// session token) and configure again.
    Rotate,
    /// Refused, with why: the send fails (and is retried as a network
    /// failure).
    Refused(String),
}

/// The decision on a `configureSession` answer.
pub fn session(frame: &Frame) -> Session {
    match frame {
        Frame::Session {
            connected: true,
            read_only: false,
            ..
        } => Session::Ready,
        Frame::Session { .. }
        | Frame::Error {
            code: 4006 | 4007, ..
        } => Session::Rotate,
        Frame::Error { code, message, .. } => {
            let mut why = String::from("configureSession refused (");
            crate::json::push_u64(&mut why, u64::from(*code));
            why.push_str("): ");
            why.push_str(message);
            Session::Refused(why)
        }
        _ => Session::Refused(String::from("unexpected answer to configureSession")),
    }
}

/// Whether an `onMessage` answer says the session is gone (expired or
/// unknown: 4006, 4007): the next send starts a new one.
pub fn rotates(frame: &Frame) -> bool {
    matches!(
        frame,
        Frame::Error {
            code: 4006 | 4007,
            ..
        }
    )
}

/// The answer for an entry whose outcome was unknown and which the
/// session's history holds: the server had it, its echo was lost;
/// delivered, not sent again.
pub fn reconciled() -> Response {
    Response {
        status: 200,
        headers: vec![("x-outbox-reconciled".into(), "history".into())],
        body: Vec::new(),
    }
}

/// What an `onMessage` answer means, as an HTTP-like [`Response`] the
/// engine's classifier understands: the echo → `200`; 4029 → `429` with
/// `Retry-After`; 4011 / 4013 (too long, attributes too large) → `413`;
/// 4006 / 4007 (session expired / not found) → `503` (retried once a new
/// session is configured); 400, 403 → as is (dead letters); anything else
/// ≥ 500 → `502`. The body is `{"code": "<guest code>", "message": …}`, so
/// a dead letter shows the guest API's own code and text.
pub fn answer(frame: &Frame) -> Option<Response> {
    let error = |status: u16, code: u32, message: &str| {
        let mut o = Object::new();
        let mut text = String::new();
        crate::json::push_u64(&mut text, u64::from(code));
        o.str("code", &text).str("message", message);
        Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: o.finish().into_bytes(),
        }
    };
    Some(match frame {
        Frame::Message { .. } => Response {
            status: 200,
            headers: Vec::new(),
            body: Vec::new(),
        },
        Frame::TooManyRequests {
            retry_after_secs,
            message,
            ..
        } => {
            let mut r = error(429, 4029, message);
            r.headers.push(("retry-after".into(), {
                let mut text = String::new();
                crate::json::push_u64(&mut text, *retry_after_secs);
                text
            }));
            r
        }
        Frame::Error { code, message, .. } => {
            let status = match code {
                4011 | 4013 => 413,
                4006 | 4007 => 503,
                400..=499 => *code as u16,
                c if *c >= 500 && *c < 600 => 502,
                _ => 400,
            };
            error(status, *code, message)
        }
        _ => return None,
    })
}

/// One message of the session's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// The server's message id.
    pub id: String,
    /// `Inbound` or `Outbound`.
    pub direction: String,
    /// The text.
    pub text: Option<String>,
    /// The idempotency key the guest tagged it with: `metadata.outboxId`,
    /// else `metadata.customMessageId`.
    pub outbox_id: Option<String>,
}

/// A page of `GET /api/v2/webmessaging/messages`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages on this page.
    pub messages: Vec<HistoryMessage>,
    /// How many pages there are.
    pub page_count: u64,
}

/// Reads a history page (`WebMessagingMessageEntityList`); entities that
/// cannot be read are skipped.
pub fn parse_history(body: &[u8]) -> Result<HistoryPage, FrameError> {
    json::validate(body).map_err(|e| FrameError(e.to_string()))?;
    let entities =
        json::find(body, &["entities"]).ok_or_else(|| FrameError("no `entities`".into()))?;
    if entities.kind != json::Kind::Array {
        return Err(FrameError("`entities` is not an array".into()));
    }
    let mut messages = Vec::new();
    for item in json::items(entities.raw).unwrap_or_default() {
        let item = item.raw;
        let s =
            |path: &[&str]| json::find(item, path).and_then(|v| v.as_str().map(|c| c.into_owned()));
        let Some(id) = s(&["id"]) else { continue };
        messages.push(HistoryMessage {
            id,
            direction: s(&["direction"]).unwrap_or_default(),
            text: s(&["text"]),
            outbox_id: s(&["metadata", OUTBOX_ID_KEY])
                .or_else(|| s(&["metadata", CUSTOM_MESSAGE_ID_KEY])),
        });
    }
    let page_count = json::find(body, &["pageCount"])
        .and_then(|v| v.as_u64())
        .unwrap_or(1);
    Ok(HistoryPage {
        messages,
        page_count,
    })
}
