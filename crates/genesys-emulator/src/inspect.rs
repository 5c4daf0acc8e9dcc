//! What the emulator received: messages per lane, the request log, and the
//! idempotency records. These are the JSON bodies of
//! `GET /__emulator/messages` and `GET /__emulator/requests`.

use std::collections::{HashMap, VecDeque};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Which route a message came in by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RouteKind {
    /// Agent send: `POST /api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`; lane = conversationId.
    #[serde(rename = "agent")]
    AgentSend,
    /// Agentless: `POST /api/v2/conversations/messages/agentless`; lane = `toAddress`.
    #[serde(rename = "agentless")]
    Agentless,
    /// Open Messaging inbound: `POST /api/v2/conversations/messages/{integrationId}/inbound/open/message`; lane = `channel.from.id`.
    #[serde(rename = "open")]
    OpenInbound,
    /// The seed tutorials' invented `POST /api/v2/conversations/messaging/messages`; lane = `to.id`, else `conversationId`.
    #[serde(rename = "seed")]
    Seed,
    /// Guest WebSocket `onMessage`; lane = the session token.
    #[serde(rename = "guest")]
    Guest,
}

/// One accepted message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordedMessage {
    /// Arrival order over all routes, from 1.
    pub seq: u64,
    /// The message id the emulator answered with.
    pub id: String,
    /// The route.
    pub route: RouteKind,
    /// The ordering key (see [`RouteKind`]).
    pub lane: String,
    /// The conversation the message belongs to.
    pub conversation_id: String,
    /// The text, when it was a text message.
    pub text: Option<String>,
    /// `text`, `media` or `template`.
    pub content: String,
    /// Arrival time, ISO-8601.
    pub time: String,
    /// The idempotency key seen (`Idempotency-Key` header, `externalId`, `channel.messageId`, or the guest `tracingId`).
    pub idempotency_key: Option<String>,
    /// When this repeats an earlier message of the lane (same idempotency key, or same text when there is no key), that message's `seq`.
    pub duplicate_of: Option<u64>,
    /// Repeats answered from the idempotency record instead of being recorded (idempotency on).
    pub replays: u32,
    /// The OAuth client that sent it (REST routes).
    pub client_id: Option<String>,
}

/// The messages of one lane, in arrival order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LaneReport {
    /// The route.
    pub route: RouteKind,
    /// The lane key.
    pub lane: String,
    /// Messages recorded (duplicates included).
    pub count: usize,
    /// Messages that repeat an earlier one (`duplicateOf` set).
    pub duplicates: usize,
    /// The texts in arrival order (handy for order assertions).
    pub texts: Vec<String>,
    /// The messages in arrival order.
    pub messages: Vec<RecordedMessage>,
}

/// An agent's answer in a REST conversation (control API, or the automatic
/// answer to an open-messaging customer). Not counted among the messages
/// received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AgentReplyRecord {
    /// Order among replies, from 1.
    pub seq: u64,
    /// The reply's message id.
    pub id: String,
    /// The route of the conversation answered.
    pub route: RouteKind,
    /// The lane of the conversation answered.
    pub lane: String,
    /// The conversation answered.
    pub conversation_id: String,
    /// The text.
    pub text: String,
    /// When, ISO-8601.
    pub time: String,
}

/// The body of `GET /__emulator/messages`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MessagesReport {
    /// Messages recorded over all lanes (duplicates included).
    pub total: usize,
    /// Recorded messages that repeat an earlier one.
    pub duplicates: usize,
    /// Repeats suppressed by idempotency (not recorded).
    pub replays: u64,
    /// Lanes in order of their first message.
    pub lanes: Vec<LaneReport>,
    /// The agent's answers in REST conversations, in order.
    #[serde(default)]
    pub replies: Vec<AgentReplyRecord>,
}

impl MessagesReport {
    /// The lane with this route and key.
    pub fn lane(&self, route: RouteKind, lane: &str) -> Option<&LaneReport> {
        self.lanes
            .iter()
            .find(|l| l.route == route && l.lane == lane)
    }
}

/// How a logged request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Answered 2xx and (for message routes) recorded.
    Ok,
    /// A repeat answered from the idempotency record.
    Replayed,
    /// A duplicate refused with 409 `general.conflict` (seed route, idempotency on).
    Conflict,
    /// Refused as invalid: 400, 413, 415.
    Rejected,
    /// 404: no such route.
    NotFound,
    /// 401 for a missing, unknown or expired token.
    Unauthorized,
    /// 401 forced by the `forceUnauthorized` fault.
    ForcedUnauthorized,
    /// 429 from the per-token (or history) rate limit.
    RateLimited,
    /// 429 from the daily-limit fault.
    DailyLimited,
    /// A server error injected by `failNext` or `errorRate`.
    InjectedError,
    /// Recorded, then the connection was cut before the answer (`loseAcks`, `lostAckRate`).
    LostAck,
    /// Connection dropped without an answer: outage.
    OutageDropped,
    /// A CORS preflight.
    Preflight,
    /// `POST /oauth/token` issued a token.
    TokenIssued,
    /// `POST /oauth/token` refused.
    TokenRefused,
    /// `GET /v1` upgraded to the guest WebSocket.
    WsUpgrade,
    /// `GET /v1` refused (not a WebSocket handshake, or no `deploymentId`).
    WsRefused,
}

/// One request-log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestLogEntry {
    /// Order of arrival, from 1.
    pub seq: u64,
    /// Time, ISO-8601.
    pub time: String,
    /// HTTP method.
    pub method: String,
    /// Path (without the query).
    pub path: String,
    /// Status answered; `null` when the connection was cut instead.
    pub status: Option<u16>,
    /// How it ended.
    pub outcome: Outcome,
    /// The `ININ-Correlation-Id` answered, if any.
    pub correlation_id: Option<String>,
    /// The OAuth client, when the token was valid.
    pub client_id: Option<String>,
    /// The recorded message's `seq`, when one was recorded.
    pub message_seq: Option<u64>,
}

/// The body of `GET /__emulator/requests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestsReport {
    /// Requests logged since start or reset.
    pub total: u64,
    /// Oldest entries discarded because the log was full.
    pub discarded: u64,
    /// The entries kept (after `?since=SEQ`, when given), oldest first.
    pub entries: Vec<RequestLogEntry>,
}

/// A message about to be recorded.
#[derive(Debug, Clone)]
pub(crate) struct NewMessage {
    pub(crate) id: String,
    pub(crate) route: RouteKind,
    pub(crate) lane: String,
    pub(crate) conversation_id: String,
    pub(crate) text: Option<String>,
    pub(crate) content: &'static str,
    pub(crate) time: String,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) client_id: Option<String>,
}

/// A stored first answer, replayed to repeats.
#[derive(Debug, Clone)]
pub(crate) struct StoredReply {
    pub(crate) status: u16,
    pub(crate) body: Bytes,
    pub(crate) seq: u64,
}

/// What recording did.
#[derive(Debug, Clone)]
pub(crate) enum Recorded {
    /// Newly recorded with this `seq`.
    New(u64),
    /// A repeat under idempotency: answer the stored reply.
    Replay(StoredReply),
}

/// All inspection state behind one lock, so that "check key, then record"
/// is atomic under concurrency.
#[derive(Debug)]
pub(crate) struct Recorder {
    messages: Vec<RecordedMessage>,
    fingerprints: HashMap<(RouteKind, String, String), u64>,
    idempotency: HashMap<(RouteKind, String), StoredReply>,
    conversations: HashMap<(RouteKind, String), String>,
    replays: u64,
    requests: VecDeque<RequestLogEntry>,
    request_seq: u64,
    discarded: u64,
    capacity: usize,
    replies: Vec<AgentReplyRecord>,
}

impl Recorder {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            messages: Vec::new(),
            fingerprints: HashMap::new(),
            idempotency: HashMap::new(),
            conversations: HashMap::new(),
            replays: 0,
            requests: VecDeque::new(),
            request_seq: 0,
            discarded: 0,
            capacity,
            replies: Vec::new(),
        }
    }

    /// Forgets everything.
    pub(crate) fn clear(&mut self) {
        *self = Self::new(self.capacity);
    }

    /// A stable conversation id for a lane (created on first use).
    pub(crate) fn conversation_for(&mut self, route: RouteKind, lane: &str) -> String {
        self.conversations
            .entry((route, lane.to_owned()))
            .or_insert_with(crate::ids::new_uuid)
            .clone()
    }

    /// The stored answer for an idempotency key, if any (idempotency on).
    pub(crate) fn replay_for(&mut self, route: RouteKind, key: &str) -> Option<StoredReply> {
        let r = self.idempotency.get(&(route, key.to_owned())).cloned()?;
        self.replays += 1;
        if let Some(m) = usize::try_from(r.seq)
            .ok()
            .and_then(|s| s.checked_sub(1))
            .and_then(|i| self.messages.get_mut(i))
        {
            m.replays = m.replays.saturating_add(1);
        }
        Some(r)
    }

    /// Records a message, or replays the first answer to a repeated key when
    /// `idempotent` (the check and the record happen under one lock).
    pub(crate) fn record(
        &mut self,
        m: NewMessage,
        idempotent: bool,
        reply: (u16, Bytes),
    ) -> Recorded {
        if idempotent
            && let Some(k) = &m.idempotency_key
            && let Some(r) = self.replay_for(m.route, k)
        {
            return Recorded::Replay(r);
        }
        let seq = u64::try_from(self.messages.len())
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        let fp = match (&m.idempotency_key, &m.text) {
            (Some(k), _) => format!("key:{k}"),
            (None, Some(t)) => format!("text:{t}"),
            (None, None) => format!("id:{}", m.id),
        };
        let duplicate_of = match self
            .fingerprints
            .get(&(m.route, m.lane.clone(), fp.clone()))
        {
            Some(first) => Some(*first),
            None => {
                self.fingerprints.insert((m.route, m.lane.clone(), fp), seq);
                None
            }
        };
        if idempotent && let Some(k) = &m.idempotency_key {
            self.idempotency.insert(
                (m.route, k.clone()),
                StoredReply {
                    status: reply.0,
                    body: reply.1,
                    seq,
                },
            );
        }
        self.messages.push(RecordedMessage {
            seq,
            id: m.id,
            route: m.route,
            lane: m.lane,
            conversation_id: m.conversation_id,
            text: m.text,
            content: m.content.to_owned(),
            time: m.time,
            idempotency_key: m.idempotency_key,
            duplicate_of,
            replays: 0,
            client_id: m.client_id,
        });
        Recorded::New(seq)
    }

    /// Every recorded message in arrival order.
    pub(crate) fn messages(&self) -> &[RecordedMessage] {
        &self.messages
    }

    /// The grouped report.
    pub(crate) fn report(&self) -> MessagesReport {
        let mut index: HashMap<(RouteKind, &str), usize> = HashMap::new();
        let mut lanes: Vec<LaneReport> = Vec::new();
        for m in &self.messages {
            let i = *index.entry((m.route, m.lane.as_str())).or_insert_with(|| {
                lanes.push(LaneReport {
                    route: m.route,
                    lane: m.lane.clone(),
                    count: 0,
                    duplicates: 0,
                    texts: Vec::new(),
                    messages: Vec::new(),
                });
                lanes.len() - 1
            });
            if let Some(l) = lanes.get_mut(i) {
                l.count += 1;
                l.duplicates += usize::from(m.duplicate_of.is_some());
                if let Some(t) = &m.text {
                    l.texts.push(t.clone());
                }
                l.messages.push(m.clone());
            }
        }
        MessagesReport {
            total: self.messages.len(),
            duplicates: self
                .messages
                .iter()
                .filter(|m| m.duplicate_of.is_some())
                .count(),
            replays: self.replays,
            lanes,
            replies: self.replies.clone(),
        }
    }

    /// The route, lane and conversation of the newest message recorded in
    /// `conversation_id`, or else in `lane`.
    pub(crate) fn conversation_of(
        &self,
        conversation_id: Option<&str>,
        lane: Option<&str>,
    ) -> Option<(RouteKind, String, String)> {
        self.messages
            .iter()
            .rev()
            .find(|m| {
                conversation_id.is_some_and(|c| m.conversation_id == c)
                    || (conversation_id.is_none() && lane.is_some_and(|l| m.lane == l))
            })
            .map(|m| (m.route, m.lane.clone(), m.conversation_id.clone()))
    }

    /// Stores an agent's answer in a REST conversation.
    pub(crate) fn add_reply(
        &mut self,
        (route, lane, conversation_id): (RouteKind, String, String),
        text: String,
        id: String,
        time: String,
    ) -> AgentReplyRecord {
        let r = AgentReplyRecord {
            seq: u64::try_from(self.replies.len()).unwrap_or(u64::MAX) + 1,
            id,
            route,
            lane,
            conversation_id,
            text,
            time,
        };
        self.replies.push(r.clone());
        r
    }

    /// Appends to the request log (discarding the oldest beyond capacity).
    pub(crate) fn log(&mut self, mut e: RequestLogEntry) {
        self.request_seq += 1;
        e.seq = self.request_seq;
        if self.requests.len() >= self.capacity {
            self.requests.pop_front();
            self.discarded += 1;
        }
        self.requests.push_back(e);
    }

    /// The request log after `since` (a request `seq`).
    pub(crate) fn requests(&self, since: u64) -> RequestsReport {
        RequestsReport {
            total: self.request_seq,
            discarded: self.discarded,
            entries: self
                .requests
                .iter()
                .filter(|e| e.seq > since)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(lane: &str, text: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: crate::ids::new_uuid(),
            route: RouteKind::AgentSend,
            lane: lane.to_owned(),
            conversation_id: lane.to_owned(),
            text: Some(text.to_owned()),
            content: "text",
            time: String::new(),
            idempotency_key: key.map(str::to_owned),
            client_id: None,
        }
    }

    #[test]
    fn groups_and_counts_duplicates() {
        let mut r = Recorder::new(10);
        r.record(msg("a", "1", None), false, (200, Bytes::new()));
        r.record(msg("b", "x", None), false, (200, Bytes::new()));
        r.record(msg("a", "1", None), false, (200, Bytes::new()));
        r.record(msg("a", "2", None), false, (200, Bytes::new()));
        let rep = r.report();
        assert_eq!(rep.total, 4);
        assert_eq!(rep.duplicates, 1);
        let a = rep.lane(RouteKind::AgentSend, "a").expect("lane a");
        assert_eq!(a.texts, ["1", "1", "2"]);
        assert_eq!(a.messages[1].duplicate_of, Some(1));
        assert_eq!(rep.lanes[0].lane, "a");
    }

    #[test]
    fn idempotent_repeat_replays() {
        let mut r = Recorder::new(10);
        let first = r.record(
            msg("a", "1", Some("k")),
            true,
            (200, Bytes::from_static(b"first")),
        );
        assert!(matches!(first, Recorded::New(1)));
        let again = r.record(
            msg("a", "1", Some("k")),
            true,
            (200, Bytes::from_static(b"second")),
        );
        let Recorded::Replay(rep) = again else {
            panic!("expected replay")
        };
        assert_eq!(rep.body, Bytes::from_static(b"first"));
        assert_eq!(r.report().total, 1);
        assert_eq!(r.messages()[0].replays, 1);
    }

    #[test]
    fn request_log_is_bounded() {
        let mut r = Recorder::new(2);
        for _ in 0..3 {
            r.log(RequestLogEntry {
                seq: 0,
                time: String::new(),
                method: "GET".into(),
                path: "/".into(),
                status: Some(200),
                outcome: Outcome::Ok,
                correlation_id: None,
                client_id: None,
                message_seq: None,
            });
        }
        let rep = r.requests(0);
        assert_eq!((rep.total, rep.discarded, rep.entries.len()), (3, 1, 2));
        assert_eq!(r.requests(2).entries.len(), 1);
    }
}
