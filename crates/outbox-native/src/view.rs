//! Entries and stats as the API door's JSON (camelCase, as the browser's
//! page API shows them). Only shapes: every value is core's.

use outbox_core::entry::{Entry, EntryState};
use outbox_core::event::{error_json, limit_json};
use outbox_core::json::Object;
use outbox_core::queue::Stats;
use serde_json::{Value, json};

fn raw(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

/// An entry (queued or dead): its id, lane, route, state as seen at `now`
/// ([`EntryState::seen_at`]), counters, times, last error, and the request
/// (the body as text; credentials are never stored, so never shown).
pub fn entry(e: &Entry, now: u64) -> Value {
    let state = e.state.seen_at(now);
    let mut v = json!({
        "id": e.id.hyphenated(),
        "seq": e.seq,
        "lane": e.lane,
        "route": e.route,
        "origin": e.origin,
        "state": state.name(),
        "attempts": e.attempts,
        "failures": e.failures,
        "createdAt": e.created_at,
        "notBefore": e.not_before,
        "idempotencyKey": e.idempotency_key,
        "request": {
            "method": e.request.method,
            "url": e.request.url,
            "headers": e.request.headers,
            "body": String::from_utf8_lossy(&e.request.body),
        },
    });
    match state {
        EntryState::InFlight { lease_until } => v["leaseUntil"] = json!(lease_until),
        EntryState::Dead { at } => v["deadAt"] = json!(at),
        EntryState::Pending | EntryState::AwaitingToken => {}
    }
    if let Some(error) = &e.last_error {
        v["lastError"] = raw(&error_json(error));
    }
    v
}

/// Counts and ages ([`Stats`]): per state, lanes, the oldest entry, bytes,
/// paused origins, held lanes, and the origins the herd throttle limits
/// (how and why, as the `throttle` event says it).
pub fn stats(s: &Stats) -> Value {
    json!({
        "pending": s.pending,
        "inFlight": s.in_flight,
        "awaitingToken": s.awaiting_token,
        "queued": s.queued(),
        "dead": s.dead,
        "lanes": s.lanes,
        "oldestCreatedAt": s.oldest_created_at,
        "bytes": s.bytes,
        "paused": s.paused.iter().map(|(origin, until)| json!({"origin": origin, "until": until})).collect::<Vec<_>>(),
        "held": s.held.iter().map(|(lane, id)| json!({"lane": lane, "id": id.hyphenated()})).collect::<Vec<_>>(),
        "throttled": s.throttled.iter().map(|(origin, limit)| {
            let mut o = Object::new();
            o.str("origin", origin);
            limit_json(&mut o, Some(limit));
            raw(&o.finish())
        }).collect::<Vec<_>>(),
    })
}
