//! The control API: the Rust [`Control`] handle and the same operations over
//! HTTP under `/__emulator/`. Control endpoints are never faulted (they keep
//! answering during an outage), are not rate limited, need no token, and are
//! not written to the request log.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::body::Incoming;
use hyper::{Method, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::TokenGrant;
use crate::config::Config;
use crate::faults::{Faults, FaultsError};
use crate::guest::state::{AgentReply, GuestMessageReport, ReplyError, SessionReport};
use crate::inspect::{AgentReplyRecord, MessagesReport, RecordedMessage, RequestsReport};
use crate::response::{self, Resp};
use crate::state::{Shared, lock};
use crate::urlencoded;

/// The path prefix of the HTTP control API.
pub const CONTROL_PREFIX: &str = "/__emulator/";

/// A cheap, cloneable handle to drive and inspect a running emulator.
#[derive(Debug, Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    /// The configuration the emulator started with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.faults()
    }

    /// Message requests held by the `holdAfter` fault right now.
    pub fn held_requests(&self) -> u32 {
        crate::state::lock(&self.shared.faults).held
    }

    /// Replaces the faults. Switching `outage` on cuts open guest sockets at once.
    pub fn set_faults(&self, faults: Faults) -> Result<(), FaultsError> {
        faults.validate()?;
        self.shared.set_faults(faults);
        Ok(())
    }

    /// Changes some faults in place and returns the result.
    pub fn update_faults(&self, change: impl FnOnce(&mut Faults)) -> Result<Faults, FaultsError> {
        let mut f = self.faults();
        change(&mut f);
        self.set_faults(f.clone())?;
        Ok(f)
    }

    /// Turns every fault off.
    pub fn clear_faults(&self) {
        self.shared.set_faults(Faults::default());
    }

    /// Restarts the fault generator from `seed` (reproducible sequences).
    pub fn reseed(&self, seed: u64) {
        lock(&self.shared.faults).reseed(seed);
    }

    /// Messages grouped per lane (the body of `GET /__emulator/messages`).
    pub fn messages(&self) -> MessagesReport {
        lock(&self.shared.recorder).report()
    }

    /// Every recorded message in arrival order.
    pub fn recorded(&self) -> Vec<RecordedMessage> {
        lock(&self.shared.recorder).messages().to_vec()
    }

    /// The request log (the body of `GET /__emulator/requests`).
    pub fn requests(&self) -> RequestsReport {
        lock(&self.shared.recorder).requests(0)
    }

    /// Guest WebSocket sessions (the body of `GET /__emulator/sessions`).
    pub fn sessions(&self) -> Vec<SessionReport> {
        self.shared.guest.report(
            self.shared.clock.now(),
            self.shared.config.guest.session_ttl,
        )
    }

    /// Clears messages, the request log, idempotency records, rate-limit
    /// windows, guest sessions (their sockets are closed) and faults. Tokens,
    /// the clock offset and the idempotency switch are kept.
    pub fn reset(&self) {
        lock(&self.shared.recorder).clear();
        lock(&self.shared.limiter).clear();
        self.shared.guest.clear();
        self.clear_faults();
        lock(&self.shared.faults).reseed(self.shared.config.seed);
    }

    /// Issues a token without the OAuth round trip (for a token broker or a
    /// test). `client_id` defaults to the first configured client, `ttl` to
    /// the configured token lifetime.
    pub fn mint_token(&self, client_id: Option<&str>, ttl: Option<Duration>) -> TokenGrant {
        let client = client_id
            .map(str::to_owned)
            .or_else(|| self.shared.config.clients.first().map(|c| c.id.clone()))
            .unwrap_or_default();
        let ttl = ttl.unwrap_or(self.shared.config.token_ttl);
        lock(&self.shared.tokens).issue(&client, ttl, self.shared.clock.now())
    }

    /// Makes one token expired (it then answers `credentials.expired`); false when unknown.
    pub fn expire_token(&self, token: &str) -> bool {
        lock(&self.shared.tokens).expire(token, self.shared.clock.now())
    }

    /// Makes every token expired; returns how many were valid.
    pub fn expire_all_tokens(&self) -> usize {
        lock(&self.shared.tokens).expire_all(self.shared.clock.now())
    }

    /// Moves the emulator's clock forward (token expiry, rate windows,
    /// session expiry); returns the total offset.
    pub fn advance_clock(&self, by: Duration) -> Duration {
        self.shared.clock.advance(by)
    }

    /// Whether idempotency keys are honoured.
    pub fn idempotency(&self) -> bool {
        self.shared.idempotency()
    }

    /// Switches idempotency on or off.
    pub fn set_idempotency(&self, on: bool) {
        self.shared
            .idempotency
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// Cuts guest sockets abruptly (the browser sees close code 1006): one
    /// session's, or all when `token` is `None`. Returns how many were cut.
    pub fn drop_guest_sockets(&self, token: Option<&str>) -> usize {
        self.shared.guest.drop_sockets(token)
    }

    /// The agent answers a guest: in the session `token`, or in the guest
    /// session whose conversation is `conversation_id`, or (neither given)
    /// in the newest session that can still talk. The message goes to the
    /// session's sockets as an `Outbound` `StructuredMessage` and into its
    /// history.
    pub fn agent_reply(
        &self,
        token: Option<&str>,
        conversation_id: Option<&str>,
        reply: &AgentReply,
    ) -> Result<GuestMessageReport, ReplyError> {
        let time = crate::clock::iso8601(self.shared.clock.system_now());
        self.shared
            .guest
            .agent_reply(token, conversation_id, reply, crate::ids::new_uuid(), time)
    }

    /// The agent answers in a REST conversation (agent send, agentless,
    /// open messaging): by conversation id, or else by lane. The answer is
    /// listed under `replies` in [`Control::messages`].
    pub fn agent_reply_rest(
        &self,
        conversation_id: Option<&str>,
        lane: Option<&str>,
        text: &str,
    ) -> Result<AgentReplyRecord, ReplyError> {
        if text.trim().is_empty() {
            return Err(ReplyError::Empty);
        }
        let time = crate::clock::iso8601(self.shared.clock.system_now());
        let mut rec = lock(&self.shared.recorder);
        let target = rec.conversation_of(conversation_id, lane).ok_or_else(|| {
            ReplyError::NoSession(conversation_id.or(lane).unwrap_or("(none)").to_owned())
        })?;
        Ok(rec.add_reply(target, text.to_owned(), crate::ids::new_uuid(), time))
    }

    /// Makes the agent answer every guest message by itself (`Some(prefix)`:
    /// the answer is the prefix followed by the guest's words), or stops it.
    pub fn set_auto_reply(&self, prefix: Option<String>) {
        self.shared.guest.set_auto_reply(prefix);
    }

    /// The automatic answer's prefix, when on.
    pub fn auto_reply(&self) -> Option<String> {
        self.shared.guest.auto_reply()
    }

    /// Makes a guest session expired (its requests then answer 4006).
    pub fn expire_guest_session(&self, token: &str) -> bool {
        self.shared.guest.expire(token)
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct MintRequest {
    client_id: Option<String>,
    ttl_seconds: Option<u64>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct TokenRequest {
    token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
struct ClockRequest {
    advance_ms: Option<u64>,
    advance_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SwitchRequest {
    enabled: bool,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ReplyRequest {
    token: Option<String>,
    conversation_id: Option<String>,
    lane: Option<String>,
    text: String,
    #[serde(default)]
    quick_replies: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AutoReplyRequest {
    enabled: bool,
    prefix: Option<String>,
}

/// The prefix of automatic agent answers when none is given.
const AUTO_REPLY_PREFIX: &str = "Agent here. You said: ";

#[derive(Debug, Serialize)]
struct ControlError {
    error: String,
}

/// A refused control request: status and message.
#[derive(Debug)]
struct Refusal(u16, String);

impl Refusal {
    fn into_response(self) -> Resp {
        response::json(self.0, &ControlError { error: self.1 })
    }
}

fn bad(status: u16, e: impl std::fmt::Display) -> Refusal {
    Refusal(status, e.to_string())
}

fn parse<T: for<'de> Deserialize<'de> + Default>(body: &Bytes) -> Result<T, Refusal> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| bad(400, format!("invalid JSON: {e}")))
}

/// Handles a request under `/__emulator/`. The body may be sent with any
/// content type (a browser's `text/plain` avoids a preflight).
pub(crate) async fn handle(shared: &Arc<Shared>, req: Request<Incoming>) -> Resp {
    let control = Control::new(shared.clone());
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_owned();
    let query = urlencoded::parse_pairs(req.uri().query().unwrap_or(""));
    let body = match Limited::new(req.into_body(), 1 << 20).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad(400, format!("cannot read body: {e}")).into_response(),
    };
    let name = path
        .strip_prefix(CONTROL_PREFIX.trim_end_matches('/'))
        .unwrap_or("");
    let r = match (&method, name) {
        (&Method::GET, "/health") => Ok(response::json(200, &json!({"ok": true}))),
        (&Method::GET, "/config") => Ok(response::json(
            200,
            &json!({
                "config": control.config(),
                "idempotency": control.idempotency(),
                "clockOffsetMs": u64::try_from(shared.clock.offset().as_millis()).unwrap_or(u64::MAX),
            }),
        )),
        (&Method::GET, "/faults") => Ok(response::json(200, &control.faults())),
        (&Method::POST, "/faults") => post_faults(&control, &query, &body),
        (&Method::DELETE, "/faults") | (&Method::POST, "/faults/clear") => {
            control.clear_faults();
            Ok(response::json(200, &control.faults()))
        }
        (&Method::GET, "/messages") => Ok(response::json(200, &control.messages())),
        (&Method::GET, "/requests") => {
            let since = urlencoded::get(&query, "since")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            Ok(response::json(200, &lock(&shared.recorder).requests(since)))
        }
        (&Method::GET, "/sessions") => Ok(response::json(200, &control.sessions())),
        (&Method::POST, "/reset") => {
            control.reset();
            Ok(response::json(200, &json!({"reset": true})))
        }
        (&Method::POST, "/tokens") => parse::<MintRequest>(&body).map(|m| {
            let grant = control.mint_token(
                m.client_id.as_deref(),
                m.ttl_seconds.map(Duration::from_secs),
            );
            response::json(200, &grant)
        }),
        (&Method::POST, "/tokens/expire") => parse::<TokenRequest>(&body).map(|t| {
            let n = match t.token {
                Some(tok) => usize::from(control.expire_token(&tok)),
                None => control.expire_all_tokens(),
            };
            response::json(200, &json!({"expired": n}))
        }),
        (&Method::POST, "/clock") => parse::<ClockRequest>(&body).map(|c| {
            let by = Duration::from_millis(c.advance_ms.unwrap_or(0))
                + Duration::from_secs(c.advance_seconds.unwrap_or(0));
            let off = control.advance_clock(by);
            response::json(
                200,
                &json!({"offsetMs": u64::try_from(off.as_millis()).unwrap_or(u64::MAX)}),
            )
        }),
        (&Method::POST, "/idempotency") => serde_json::from_slice::<SwitchRequest>(&body)
            .map_err(|e| bad(400, format!("expected {{\"enabled\": bool}}: {e}")))
            .map(|s| {
                control.set_idempotency(s.enabled);
                response::json(200, &json!({"enabled": control.idempotency()}))
            }),
        (&Method::POST, "/sessions/drop") => parse::<TokenRequest>(&body).map(|t| {
            let n = control.drop_guest_sockets(t.token.as_deref());
            response::json(200, &json!({"dropped": n}))
        }),
        (&Method::POST, "/sessions/expire") => {
            parse::<TokenRequest>(&body).and_then(|t| match t.token {
                Some(tok) => Ok(response::json(
                    200,
                    &json!({"expired": control.expire_guest_session(&tok)}),
                )),
                None => Err(bad(400, "token is required")),
            })
        }
        (&Method::POST, "/agent/reply") => serde_json::from_slice::<ReplyRequest>(&body)
            .map_err(|e| bad(400, format!("expected {{\"text\", \"token\"?, \"conversationId\"?, \"quickReplies\"?}}: {e}")))
            .and_then(|r| agent_reply(&control, r)),
        (&Method::GET, "/agent/auto-reply") => Ok(auto_reply_answer(&control)),
        (&Method::POST, "/agent/auto-reply") => serde_json::from_slice::<AutoReplyRequest>(&body)
            .map_err(|e| bad(400, format!("expected {{\"enabled\": bool, \"prefix\"?}}: {e}")))
            .map(|r| {
                control.set_auto_reply(
                    r.enabled
                        .then(|| r.prefix.unwrap_or_else(|| AUTO_REPLY_PREFIX.to_owned())),
                );
                auto_reply_answer(&control)
            }),
        _ => Err(bad(404, format!("no control endpoint {method} {path}"))),
    };
    r.unwrap_or_else(Refusal::into_response)
}

/// `POST /agent/reply`: a guest session (by token, or by its conversation
/// id, or the newest one when nothing is named), else a REST conversation
/// (by conversation id or lane).
fn agent_reply(control: &Control, r: ReplyRequest) -> Result<Resp, Refusal> {
    let refusal = |e: ReplyError| match e {
        ReplyError::NoSession(_) => bad(404, e),
        ReplyError::ReadOnly(_) => bad(409, e),
        ReplyError::Empty => bad(400, e),
    };
    let reply = AgentReply {
        text: r.text,
        quick_replies: r.quick_replies,
    };
    let rest = |conversation: Option<&str>, lane: Option<&str>| {
        control
            .agent_reply_rest(conversation, lane, &reply.text)
            .map(|m| response::json(200, &json!({"reply": m})))
            .map_err(refusal)
    };
    let guest = |token: Option<&str>, conversation: Option<&str>| {
        control
            .agent_reply(token, conversation, &reply)
            .map(|m| response::json(200, &json!({"message": m})))
    };
    match (
        r.token.as_deref(),
        r.conversation_id.as_deref(),
        r.lane.as_deref(),
    ) {
        (Some(t), _, _) => guest(Some(t), None).map_err(refusal),
        (None, Some(c), _) => match guest(None, Some(c)) {
            Err(ReplyError::NoSession(_)) => rest(Some(c), None),
            other => other.map_err(refusal),
        },
        (None, None, Some(l)) => rest(None, Some(l)),
        (None, None, None) => guest(None, None).map_err(refusal),
    }
}

fn auto_reply_answer(control: &Control) -> Resp {
    let prefix = control.auto_reply();
    response::json(200, &json!({"enabled": prefix.is_some(), "prefix": prefix}))
}

fn post_faults(
    control: &Control,
    query: &[(String, String)],
    body: &Bytes,
) -> Result<Resp, Refusal> {
    if let Some(seed) = urlencoded::get(query, "seed") {
        let seed: u64 = seed
            .parse()
            .map_err(|_| bad(400, "seed must be an unsigned integer"))?;
        control.reseed(seed);
    }
    let patch: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(body).map_err(|e| bad(400, format!("invalid JSON: {e}")))?
    };
    let merged = control.faults().merged(&patch).map_err(|e| bad(400, e))?;
    control.set_faults(merged).map_err(|e| bad(400, e))?;
    Ok(response::json(200, &control.faults()))
}
