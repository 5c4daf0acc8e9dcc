//! The `/api` request pipeline: route → forced 401 → bearer check →
//! daily limit → rate limit → content type and size → validation →
//! hold (`holdAfter`) → injected server error (`failNext`, then
//! `errorRate`) → record (or replay)
//! → lost acknowledgement (`loseAcks`, then `lostAckRate`) → answer.
//!
//! So the counted faults `holdAfter`, `failNext` and `loseAcks` are consumed only by
//! message requests that would otherwise have been accepted: never by OAuth,
//! guest history, the control API, a preflight, a 401, a 429 or a 400.

use bytes::Bytes;
use http_body_util::{BodyExt as _, Limited};
use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};

use crate::clock::iso8601;
use crate::errors::{ApiError, Limit};
use crate::ids::new_uuid;
use crate::inspect::{NewMessage, Outcome, Recorded, RouteKind};
use crate::ratelimit::Verdict;
use crate::response::{self, Reply};
use crate::routes::{self, Parsed, Route};
use crate::state::{Shared, lock};

/// How often a held message request looks whether `holdAfter` was cleared.
const HOLD_POLL: std::time::Duration = std::time::Duration::from_millis(20);

/// The header that carries an idempotency key on any route.
pub const IDEMPOTENCY_HEADER: &str = "idempotency-key";
/// The header set on an answer replayed from the idempotency record.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

fn header(req: &Request<Incoming>, name: impl hyper::header::AsHeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// Whether a `Content-Type` is JSON (`application/json`, `…+json`, with parameters).
pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|c| {
        let m = c
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
    })
}

/// Rate-limit headers to put on every authenticated answer.
#[derive(Debug, Clone, Copy)]
struct RateHeaders {
    count: u32,
    allowed: u32,
    reset: u64,
}

impl RateHeaders {
    fn apply(self, mut r: Reply) -> Reply {
        if let Some(resp) = &mut r.response {
            response::set_rate_headers(resp, self.count, self.allowed, self.reset);
        }
        r
    }
}

/// Handles a request under `/api/`.
pub(crate) async fn handle(shared: &Shared, req: Request<Incoming>) -> Reply {
    let correlation = new_uuid();
    let Some(route) = routes::match_route(req.method(), req.uri().path()) else {
        let err = ApiError::not_found(req.uri().path());
        return Reply::error(&err, Outcome::NotFound, &correlation);
    };
    if lock(&shared.faults).take_forced_unauthorized() {
        let err = ApiError::unauthorized("credentials.expired");
        return Reply::error(&err, Outcome::ForcedUnauthorized, &correlation);
    }
    if route == Route::History {
        return crate::guest::history::handle(shared, req, &correlation);
    }
    let now = shared.clock.now();
    let bearer = match lock(&shared.tokens).check(header(&req, hyper::header::AUTHORIZATION), now) {
        Ok(b) => b,
        Err(e) => return Reply::error(&e, Outcome::Unauthorized, &correlation),
    };
    let client = Some(bearer.client_id.clone());
    let faults = shared.faults();
    let limit = faults.rate_limit.unwrap_or(shared.config.rate_limit);
    if faults.daily_limit {
        let secs = shared.config.daily_limit_retry_after.as_secs().max(1);
        let err = ApiError::too_many_requests(
            secs,
            Limit {
                key: "messages.per.day".to_owned(),
                namespace: "messaging".to_owned(),
                value: u64::from(limit) * 24 * 60,
            },
        );
        let (count, reset) =
            lock(&shared.limiter).peek(&bearer.token, shared.config.rate_window, now);
        let r = Reply::error(&err, Outcome::DailyLimited, &correlation).with_client(client);
        return RateHeaders {
            count,
            allowed: limit,
            reset,
        }
        .apply(r);
    }
    let verdict = lock(&shared.limiter).check(&bearer.token, limit, shared.config.rate_window, now);
    let rate = match verdict {
        Verdict::Allowed {
            count,
            limit,
            reset_secs,
        } => RateHeaders {
            count,
            allowed: limit,
            reset: reset_secs,
        },
        Verdict::Limited {
            count,
            limit,
            retry_after_secs,
        } => {
            let err = ApiError::too_many_requests(
                retry_after_secs,
                Limit {
                    key: "token.rate.per.minute".to_owned(),
                    namespace: "platform.api".to_owned(),
                    value: u64::from(limit),
                },
            );
            let r = Reply::error(&err, Outcome::RateLimited, &correlation).with_client(client);
            return RateHeaders {
                count,
                allowed: limit,
                reset: retry_after_secs,
            }
            .apply(r);
        }
    };
    let r = message(shared, route, req, &correlation, client.clone()).await;
    rate.apply(r.with_client(client))
        .with_correlation(&correlation)
}

/// The part of the pipeline after authentication and rate limiting.
async fn message(
    shared: &Shared,
    route: Route,
    req: Request<Incoming>,
    correlation: &str,
    client: Option<String>,
) -> Reply {
    if !is_json(header(&req, CONTENT_TYPE)) {
        let err = ApiError::new(
            415,
            "unsupported.media.type",
            "Content-Type must be application/json",
        );
        return Reply::error(&err, Outcome::Rejected, correlation);
    }
    let max = shared.config.max_body_bytes;
    let too_large = || {
        ApiError::new(
            413,
            "request.entity.too.large",
            format!("The request is larger than the maximum of {max} bytes"),
        )
    };
    if header(&req, CONTENT_LENGTH)
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
    {
        return Reply::error(&too_large(), Outcome::Rejected, correlation);
    }
    let idem_header = header(&req, IDEMPOTENCY_HEADER)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    let body: Bytes = match Limited::new(req.into_body(), max).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            return Reply::error(&too_large(), Outcome::Rejected, correlation);
        }
        Err(_) => return Reply::cut(Outcome::Rejected),
    };
    let json: serde_json::Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => {
            let err = ApiError::bad_field(
                "body",
                "invalid.json",
                format!("The body is not valid JSON: {e}"),
            );
            return Reply::error(&err, Outcome::Rejected, correlation);
        }
    };
    let parsed = match routes::parse(&route, &json, &shared.config.text_limits) {
        Ok(p) => p,
        Err(e) => return Reply::error(&e, Outcome::Rejected, correlation),
    };
    if lock(&shared.faults).hold_message() {
        // Held, unrecorded, until `holdAfter` is cleared; then refused.
        // (Counted out on drop too: a client may go away meanwhile.)
        struct Held<'a>(&'a Shared);
        impl Drop for Held<'_> {
            fn drop(&mut self) {
                lock(&self.0.faults).unhold();
            }
        }
        let _held = Held(shared);
        while lock(&shared.faults).holding() {
            tokio::time::sleep(HOLD_POLL).await;
        }
        return Reply::error(
            &ApiError::server_error(503),
            Outcome::InjectedError,
            correlation,
        );
    }
    if let Some(status) = lock(&shared.faults).message_error() {
        return Reply::error(
            &ApiError::server_error(status),
            Outcome::InjectedError,
            correlation,
        );
    }
    let mut reply = record(shared, &parsed, idem_header, correlation, client);
    let lost = matches!(reply.outcome, Outcome::Ok | Outcome::Replayed) && {
        let mut f = lock(&shared.faults);
        let lost = f.lose_ack();
        if lost && !f.may_lose_acks() {
            // The last counted loss: answers may keep their connection
            // again (switched under the fault lock, so that a concurrent
            // update of the faults cannot be overwritten).
            shared.set_keepalive_off(false);
        }
        lost
    };
    if lost {
        reply.response = None;
        reply.outcome = Outcome::LostAck;
    }
    reply
}

/// Records the message (or replays / refuses a repeat under idempotency).
fn record(
    shared: &Shared,
    parsed: &Parsed,
    idem_header: Option<String>,
    correlation: &str,
    client_id: Option<String>,
) -> Reply {
    let kind = parsed.route_kind();
    let lane = parsed.lane().to_owned();
    let key = idem_header.or_else(|| parsed.body_key().map(str::to_owned));
    let idempotent = shared.idempotency();
    let id = new_uuid();
    let time = iso8601(shared.clock.system_now());
    let status = shared.config.success_status;
    let mut rec = lock(&shared.recorder);
    if idempotent
        && kind == RouteKind::Seed
        && let Some(k) = &key
        && let Some(first) = rec.replay_for(kind, k)
    {
        drop(rec);
        let mut err = ApiError::new(
            409,
            "general.conflict",
            format!("A message with the idempotency key {k} was already accepted"),
        );
        err.params
            .insert("messageSeq".to_owned(), first.seq.to_string());
        return Reply::error(&err, Outcome::Conflict, correlation);
    }
    let conversation_id = parsed
        .given_conversation()
        .map(str::to_owned)
        .unwrap_or_else(|| rec.conversation_for(kind, &lane));
    let body = response::to_bytes(&routes::success_body(parsed, &id, &conversation_id, &time));
    let message_id = id.clone();
    let time_sent = time.clone();
    let outcome = rec.record(
        NewMessage {
            id,
            route: kind,
            lane,
            conversation_id,
            text: parsed.text().map(str::to_owned),
            content: parsed.content_kind(),
            time,
            idempotency_key: key,
            client_id,
        },
        idempotent,
        (status, body.clone()),
    );
    drop(rec);
    if matches!(outcome, Recorded::New(_)) {
        to_guest(shared, parsed, &message_id, &time_sent);
    }
    match outcome {
        Recorded::New(seq) => {
            let mut r = Reply::respond(response::json_bytes(status, body), Outcome::Ok);
            r.message_seq = Some(seq);
            r
        }
        Recorded::Replay(first) => {
            let mut resp = response::json_bytes(first.status, first.body);
            resp.headers_mut()
                .insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
            let mut r = Reply::respond(resp, Outcome::Replayed);
            r.message_seq = Some(first.seq);
            r
        }
    }
}

/// After a message is recorded: an agent's text in the conversation of a
/// guest session reaches the guest (on its sockets and in its history, as
/// Genesys delivers it); an open-messaging customer gets the automatic agent
/// answer when it is on.
fn to_guest(shared: &Shared, parsed: &Parsed, id: &str, time: &str) {
    if let (
        Parsed::OpenInbound {
            text: Some(text), ..
        },
        Some(prefix),
    ) = (parsed, shared.guest.auto_reply())
    {
        // The automatic agent answers the customer.
        let mut rec = lock(&shared.recorder);
        if let Some(target) = rec.conversation_of(None, Some(parsed.lane())) {
            rec.add_reply(
                target,
                format!("{prefix}{text}"),
                new_uuid(),
                time.to_owned(),
            );
        }
        return;
    }
    if let Parsed::AgentSend {
        conversation_id,
        content: routes::Content::Text(text),
        ..
    } = parsed
    {
        let reply = crate::guest::state::AgentReply {
            text: text.clone(),
            quick_replies: Vec::new(),
        };
        // Not a guest conversation: nothing to deliver.
        let _ = shared.guest.agent_reply(
            None,
            Some(conversation_id),
            &reply,
            id.to_owned(),
            time.to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/vnd.x+json")));
        assert!(!is_json(Some("text/plain")));
        assert!(!is_json(None));
    }
}
