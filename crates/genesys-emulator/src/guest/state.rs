//! What the emulator knows about guests: sessions (one per guest token), the
//! conversation each is in, the messages both ways, uploaded attachments,
//! guest JWTs, the per-session and per-socket rate windows, and the handles of
//! open sockets. Plain data behind one mutex; no I/O and no reference to the
//! rest of the emulator, so the socket, history and control code can all use
//! it without an import circle.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::frames;
use crate::ratelimit::{SlidingWindow, Verdict};
use crate::sync::lock;

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

fn inbound() -> String {
    "Inbound".to_owned()
}

fn text_type() -> String {
    "Text".to_owned()
}

/// One message of a guest session: what the guest sent (`Inbound`) or what
/// the agent answered (`Outbound`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GuestMessageReport {
    /// The message id (echo `body.id` and `channel.messageId`).
    pub id: String,
    /// The request's `tracingId` (none for agent messages).
    pub tracing_id: Option<String>,
    /// The text (empty for a quick-reply answer or a bare attachment).
    pub text: String,
    /// Arrival time, ISO-8601.
    pub time: String,
    /// The socket it came on (emulator-wide connection number; 0 for agent messages).
    pub connection: u64,
    /// What became of the echo (agent messages: whether a socket got it).
    pub echo: EchoState,
    /// The message's `metadata` (string values), shown again in history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Value>,
    /// `Inbound` (from the guest) or `Outbound` (from the agent).
    #[serde(default = "inbound")]
    pub direction: String,
    /// `Text` or `Structured` (quick replies, button responses).
    #[serde(default = "text_type", rename = "type")]
    pub message_type: String,
    /// The message's `content` items (attachments, button responses, quick replies).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub content: Vec<Value>,
    /// The conversation the message belongs to (a session gets a new one
    /// when it starts over).
    #[serde(default)]
    pub conversation_id: String,
}

impl GuestMessageReport {
    /// The message as Genesys shows it: the body of a `StructuredMessage`
    /// frame, or (`history`) a `WebMessagingMessage` of guest history. Both
    /// have `id, type, text?, direction, channel {time, messageId, from?},
    /// content?, metadata?`; history and agent messages add
    /// `originatingEntity`.
    pub(crate) fn body(&self, history: bool) -> Value {
        let outbound = self.direction == "Outbound";
        let mut channel = json!({"time": self.time, "messageId": self.id});
        if outbound && let Value::Object(c) = &mut channel {
            c.insert(
                "from".to_owned(),
                json!({"nickname": AGENT_NAME, "firstName": "Emulated", "lastName": "Agent"}),
            );
        }
        let mut body = json!({
            "id": self.id,
            "type": self.message_type,
            "direction": self.direction,
            "channel": channel,
        });
        if let Value::Object(o) = &mut body {
            if !self.text.is_empty() {
                o.insert("text".to_owned(), json!(self.text));
            }
            if !self.content.is_empty() {
                o.insert("content".to_owned(), Value::Array(self.content.clone()));
            }
            if let Some(m) = &self.metadata {
                o.insert("metadata".to_owned(), m.clone());
            }
            if history || outbound {
                o.insert("originatingEntity".to_owned(), json!("Human"));
            }
        }
        body
    }
}

/// The display name of the emulated agent.
pub(crate) const AGENT_NAME: &str = "Agent";

/// One guest session, as shown by `GET /__emulator/sessions`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// The guest's session token.
    pub token: String,
    /// The deployment it was configured with.
    pub deployment_id: String,
    /// The conversation of the session (the current one).
    pub conversation_id: String,
    /// Creation time, ISO-8601.
    pub created_at: String,
    /// Whether it has expired (lifetime over, or expired by control).
    pub expired: bool,
    /// Whether its conversation is over (`closeSession` with
    /// `closeAllConnections`): read-only until `startNew`.
    #[serde(default)]
    pub read_only: bool,
    /// Sockets currently attached.
    pub connections: usize,
    /// Requests received per action, plus `rateLimited`, `errors`, `typing`,
    /// `presence`.
    pub actions: BTreeMap<String, u64>,
    /// Messages both ways, in order, over every conversation of the session.
    pub messages: Vec<GuestMessageReport>,
}

/// What a socket task is told to do.
#[derive(Debug)]
pub(crate) enum Outbound {
    Frame(String),
    Close(u16, String),
    Abort,
}

/// A socket attached to a session.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::UnboundedSender<Outbound>,
}

/// An echo held back by the `wsReorder` fault.
#[derive(Debug)]
pub(crate) struct HeldEcho {
    pub(crate) generation: u64,
    pub(crate) message_id: String,
    pub(crate) frame: String,
}

/// A file a guest announced with `onAttachment`.
#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) token: String,
    pub(crate) file_name: String,
    pub(crate) file_type: String,
    /// The uploaded bytes, once the presigned URL was used.
    pub(crate) data: Option<Bytes>,
    pub(crate) download_url: String,
}

impl Attachment {
    /// The `attachment` of a content item (`BaseContentAttachment`).
    pub(crate) fn content(&self, id: &str) -> Value {
        let size = self.data.as_ref().map_or(0, Bytes::len);
        json!({
            "id": id,
            "filename": self.file_name,
            "fileSize": size,
            "mediaType": media_type(&self.file_type),
            "mime": self.file_type,
            "url": self.download_url,
        })
    }
}

/// The Genesys media type of a MIME type.
fn media_type(mime: &str) -> &'static str {
    match mime.split('/').next().unwrap_or("") {
        "image" => "Image",
        "video" => "Video",
        "audio" => "Audio",
        _ => "File",
    }
}

#[derive(Debug)]
pub(crate) struct Session {
    pub(crate) deployment_id: String,
    pub(crate) conversation_id: String,
    pub(crate) created_at: Instant,
    pub(crate) created_time: String,
    pub(crate) expired: bool,
    /// The conversation is over (closeSession with closeAllConnections, or
    /// cleared): messages are refused until `startNew`.
    pub(crate) read_only: bool,
    pub(crate) connections: Vec<ConnHandle>,
    pub(crate) messages: Vec<GuestMessageReport>,
    pub(crate) actions: BTreeMap<String, u64>,
    pub(crate) held: Option<HeldEcho>,
    pub(crate) hold_generation: u64,
}

impl Session {
    pub(crate) fn new(
        deployment_id: String,
        conversation_id: String,
        now: Instant,
        time: String,
    ) -> Self {
        Self {
            deployment_id,
            conversation_id,
            created_at: now,
            created_time: time,
            expired: false,
            read_only: false,
            connections: Vec::new(),
            messages: Vec::new(),
            actions: BTreeMap::new(),
            held: None,
            hold_generation: 0,
        }
    }

    pub(crate) fn count(&mut self, action: &str) {
        *self.actions.entry(action.to_owned()).or_default() += 1;
    }

    /// Sends a frame to every socket of the session; whether any took it.
    pub(crate) fn send_all(&self, frame: &str) -> bool {
        let mut any = false;
        for c in &self.connections {
            any |= c.tx.send(Outbound::Frame(frame.to_owned())).is_ok();
        }
        any
    }

    /// Sends a frame then a close (1000) to every socket, and detaches them.
    pub(crate) fn close_all(&mut self, frame: &str, reason: &str) -> Vec<ConnHandle> {
        let targets = std::mem::take(&mut self.connections);
        for c in &targets {
            let _ = c.tx.send(Outbound::Frame(frame.to_owned()));
            let _ = c.tx.send(Outbound::Close(1000, reason.to_owned()));
        }
        targets
    }

    pub(crate) fn set_echo(&mut self, message_id: &str, state: EchoState) {
        if let Some(m) = self.messages.iter_mut().find(|m| m.id == message_id) {
            m.echo = state;
        }
    }

    /// The id of the newest agent message offering quick replies (what a
    /// button response answers).
    pub(crate) fn last_offer(&self) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .find(|m| {
                m.direction == "Outbound"
                    && m.content.iter().any(|c| c["contentType"] == "QuickReply")
            })
            .map(|m| m.id.as_str())
    }

    /// Starts a new conversation (startNew, or after a clear).
    pub(crate) fn start_over(&mut self, conversation_id: String) {
        self.conversation_id = conversation_id;
        self.read_only = false;
        self.held = None;
    }
}

#[derive(Debug)]
pub(crate) struct JwtRecord {
    pub(crate) token: String,
    pub(crate) expires_at: Instant,
}

/// An agent's answer, sent by the control API or the agent REST route.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentReply {
    /// The text.
    pub text: String,
    /// Quick replies offered with it (each becomes a `QuickReply` content
    /// item; the guest answers with a `ButtonResponse`).
    #[serde(default)]
    pub quick_replies: Vec<String>,
}

/// Why an agent reply was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// No such session, or no guest session in that conversation.
    #[error("no guest session {0}")]
    NoSession(String),
    /// The session's conversation is over (read-only).
    #[error("the conversation of session {0} is read-only")]
    ReadOnly(String),
    /// Empty text and no quick replies.
    #[error("a reply needs text")]
    Empty,
}

#[derive(Debug, Default)]
pub(crate) struct GuestInner {
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) order: Vec<String>,
    pub(crate) connections: HashMap<u64, (Option<String>, mpsc::UnboundedSender<Outbound>)>,
    pub(crate) jwts: HashMap<String, JwtRecord>,
    pub(crate) attachments: HashMap<String, Attachment>,
    pub(crate) message_limiter: SlidingWindow,
    pub(crate) connection_limiter: SlidingWindow,
    pub(crate) history_limiter: SlidingWindow,
    /// When set, the agent answers every guest message with this text
    /// followed by the guest's words.
    pub(crate) auto_reply: Option<String>,
}

impl GuestInner {
    /// The session whose current conversation is `conversation_id`.
    pub(crate) fn token_of_conversation(&self, conversation_id: &str) -> Option<String> {
        self.sessions
            .iter()
            .find(|(_, s)| s.conversation_id == conversation_id)
            .map(|(t, _)| t.clone())
    }

    /// Delivers an agent message to a session: stored for history and sent
    /// to its sockets as an `Outbound` `StructuredMessage`.
    pub(crate) fn agent_message(
        &mut self,
        token: &str,
        reply: &AgentReply,
        id: String,
        time: String,
    ) -> Result<GuestMessageReport, ReplyError> {
        if reply.text.trim().is_empty() && reply.quick_replies.is_empty() {
            return Err(ReplyError::Empty);
        }
        let s = self
            .sessions
            .get_mut(token)
            .ok_or_else(|| ReplyError::NoSession(token.to_owned()))?;
        if s.read_only {
            return Err(ReplyError::ReadOnly(token.to_owned()));
        }
        let content: Vec<Value> = reply
            .quick_replies
            .iter()
            .map(|q| {
                json!({"contentType": "QuickReply", "quickReply": {"text": q, "payload": q, "action": "Message"}})
            })
            .collect();
        let mut report = GuestMessageReport {
            id,
            tracing_id: None,
            text: reply.text.clone(),
            time,
            connection: 0,
            echo: EchoState::Pending,
            metadata: None,
            direction: "Outbound".to_owned(),
            message_type: if content.is_empty() {
                "Text"
            } else {
                "Structured"
            }
            .to_owned(),
            content,
            conversation_id: s.conversation_id.clone(),
        };
        let frame = frames::event("StructuredMessage", report.body(false), None);
        report.echo = if s.send_all(&frame) {
            EchoState::Sent
        } else {
            EchoState::Undelivered
        };
        s.messages.push(report.clone());
        s.count("agentReplies");
        Ok(report)
    }
}

/// All guest sessions and sockets of one emulator.
#[derive(Debug, Default)]
pub(crate) struct GuestState {
    pub(crate) inner: Mutex<GuestInner>,
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
    pub(crate) fn register(&self, tx: mpsc::UnboundedSender<Outbound>) -> u64 {
        let id = self.next_connection.fetch_add(1, Ordering::SeqCst) + 1;
        lock(&self.inner).connections.insert(id, (None, tx));
        id
    }

    pub(crate) fn unregister(&self, id: u64) {
        let mut g = lock(&self.inner);
        if let Some((Some(token), _)) = g.connections.remove(&id)
            && let Some(s) = g.sessions.get_mut(&token)
        {
            s.connections.retain(|c| c.id != id);
        }
        g.connection_limiter.clear_key(&id.to_string());
    }

    /// The inspection report; `now` and `ttl` decide which sessions have expired.
    pub(crate) fn report(&self, now: Instant, ttl: Duration) -> Vec<SessionReport> {
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
                read_only: s.read_only,
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
        let ev = frames::event("SessionExpiredEvent", json!({}), None);
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

    /// A page of the history of a session's current conversation, newest
    /// first, both directions (`WebMessagingMessage` entities).
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
        let current: Vec<&GuestMessageReport> = s
            .messages
            .iter()
            .filter(|m| m.conversation_id == s.conversation_id)
            .collect();
        let skip = page_size.saturating_mul(page_number.saturating_sub(1));
        let entities = current
            .iter()
            .rev()
            .skip(skip)
            .take(page_size)
            .map(|m| m.body(true))
            .collect();
        HistoryPage {
            entities,
            total: current.len(),
        }
    }

    /// The agent answers: by session token, or by the conversation id of a
    /// guest session. Returns the message as stored.
    pub(crate) fn agent_reply(
        &self,
        token: Option<&str>,
        conversation_id: Option<&str>,
        reply: &AgentReply,
        id: String,
        time: String,
    ) -> Result<GuestMessageReport, ReplyError> {
        let mut g = lock(&self.inner);
        let token = match (token, conversation_id) {
            (Some(t), _) => t.to_owned(),
            (None, Some(c)) => g
                .token_of_conversation(c)
                .ok_or_else(|| ReplyError::NoSession(c.to_owned()))?,
            (None, None) => {
                // The newest session that can still talk.
                let newest = g
                    .order
                    .iter()
                    .rev()
                    .find(|t| {
                        g.sessions
                            .get(*t)
                            .is_some_and(|s| !s.read_only && !s.expired)
                    })
                    .cloned();
                newest.ok_or_else(|| ReplyError::NoSession("(none)".to_owned()))?
            }
        };
        g.agent_message(&token, reply, id, time)
    }

    /// Switches the automatic agent answer on (`Some(prefix)`) or off.
    pub(crate) fn set_auto_reply(&self, prefix: Option<String>) {
        lock(&self.inner).auto_reply = prefix;
    }

    /// The automatic agent answer's prefix, if on.
    pub(crate) fn auto_reply(&self) -> Option<String> {
        lock(&self.inner).auto_reply.clone()
    }
}
