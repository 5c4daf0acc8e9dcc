//! Entries, stats and reports as the page API gives them to an app: JSON
//! objects with camelCase fields (the host parses them; their types are
//! the TypeScript API's, `web/host/types.ts`).

use alloc::string::String;

use outbox_core::clock::Millis;
use outbox_core::entry::{Entry, EntryState};
use outbox_core::event::{error_json, limit_json};
use outbox_core::json::{self, Object};
use outbox_core::queue::Stats;
use outbox_core::report::FlushReport;

/// `{id, seq, lane, route, origin, state, attempts, createdAt, notBefore,
/// leaseUntil?, deadAt?, method, url, idempotencyKey, body, lastError?}`,
/// its state as seen at `now` ([`EntryState::seen_at`], as `stats()`
/// counts it); the body as text.
pub fn entry(e: &Entry, now: Millis) -> String {
    let mut o = Object::new();
    let state = e.state.seen_at(now);
    o.str("id", &e.id.hyphenated())
        .num("seq", e.seq)
        .str("lane", &e.lane)
        .str("route", &e.route)
        .str("origin", &e.origin)
        .str("state", state.name())
        .num("attempts", u64::from(e.attempts))
        .num("createdAt", e.created_at)
        .num("notBefore", e.not_before);
    match state {
        EntryState::InFlight { lease_until } => {
            o.num("leaseUntil", lease_until);
        }
        EntryState::Dead { at } => {
            o.num("deadAt", at);
        }
        EntryState::Pending | EntryState::AwaitingToken => {}
    }
    o.str("method", &e.request.method)
        .str("url", &e.request.url)
        .str("idempotencyKey", &e.idempotency_key)
        .str("body", &String::from_utf8_lossy(&e.request.body));
    if let Some(err) = &e.last_error {
        o.raw("lastError", &error_json(err));
    }
    o.finish()
}

/// A list of entries ([`entry`]).
pub fn entries(list: &[Entry], now: Millis) -> String {
    let mut out = String::from("[");
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&entry(e, now));
    }
    out.push(']');
    out
}

/// `{pending, inFlight, awaitingToken, dead, queued, lanes,
/// oldestCreatedAt, bytes, paused: [{origin, until}], held: [{lane, id}],
/// throttled: [{origin, reason, ratePerMinute?, shedPercent?}]}`.
pub fn stats(s: &Stats) -> String {
    let mut o = Object::new();
    o.num("pending", s.pending as u64)
        .num("inFlight", s.in_flight as u64)
        .num("awaitingToken", s.awaiting_token as u64)
        .num("dead", s.dead as u64)
        .num("queued", s.queued() as u64)
        .num("lanes", s.lanes as u64);
    match s.oldest_created_at {
        Some(t) => o.num("oldestCreatedAt", t),
        None => o.raw("oldestCreatedAt", "null"),
    };
    o.num("bytes", s.bytes as u64);
    let mut paused = String::from("[");
    for (i, (origin, until)) in s.paused.iter().enumerate() {
        if i > 0 {
            paused.push(',');
        }
        let mut p = Object::new();
        p.str("origin", origin).num("until", *until);
        paused.push_str(&p.finish());
    }
    paused.push(']');
    o.raw("paused", &paused);
    let mut held = String::from("[");
    for (i, (lane, id)) in s.held.iter().enumerate() {
        if i > 0 {
            held.push(',');
        }
        let mut h = Object::new();
        h.str("lane", lane).str("id", &id.hyphenated());
        held.push_str(&h.finish());
    }
    held.push(']');
    o.raw("held", &held);
    let mut throttled = String::from("[");
    for (i, (origin, limit)) in s.throttled.iter().enumerate() {
        if i > 0 {
            throttled.push(',');
        }
        let mut t = Object::new();
        t.str("origin", origin);
        limit_json(&mut t, Some(limit));
        throttled.push_str(&t.finish());
    }
    throttled.push(']');
    o.raw("throttled", &throttled);
    o.finish()
}

/// A flush's report: `{cycles, attempts, delivered, retried, dead,
/// awaitingToken, nextWake}` (`nextWake`: ms since the epoch, or `null`).
pub fn report(r: &FlushReport) -> String {
    let mut o = Object::new();
    o.num("cycles", r.cycles as u64)
        .num("attempts", r.attempts as u64)
        .num("delivered", r.delivered as u64)
        .num("retried", r.retried as u64)
        .num("dead", r.dead as u64)
        .num("awaitingToken", r.awaiting_token as u64);
    match r.next_wake {
        Some(t) => o.num("nextWake", t),
        None => o.raw("nextWake", "null"),
    };
    o.finish()
}

/// `{id, lane, seq, state}` of an accepted entry.
pub fn accepted(e: &Entry) -> String {
    let mut o = Object::new();
    o.str("id", &e.id.hyphenated())
        .str("lane", &e.lane)
        .num("seq", e.seq)
        .str("state", e.state.name());
    o.finish()
}

/// `{"error": message}`.
pub fn error(message: &str) -> String {
    let mut out = String::from("{\"error\":");
    json::write_string(&mut out, message);
    out.push('}');
    out
}
