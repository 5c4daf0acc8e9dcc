//! Entries and stats as plain objects for application code (camelCase,
//! body as text), shared by the page API and the worker's answers.

use outbox_core::classify::LastError;
use outbox_core::clock::Millis;
use outbox_core::entry::{Entry, EntryState};
use outbox_core::event::error_json;
use outbox_core::queue::Stats;
use outbox_core::report::FlushReport;
use wasm_bindgen::JsValue;

use crate::js;

/// `{id, seq, lane, route, origin, state, attempts, createdAt, notBefore,
/// leaseUntil?, deadAt?, method, url, body, lastError?}`, its state as
/// seen at `now` ([`EntryState::seen_at`], as `stats()` counts it).
pub fn entry(e: &Entry, now: Millis) -> JsValue {
    let o = js::object();
    js::set(&o, "id", e.id.hyphenated());
    js::set(&o, "seq", e.seq as f64);
    js::set(&o, "lane", e.lane.as_str());
    js::set(&o, "route", e.route.as_str());
    js::set(&o, "origin", e.origin.as_str());
    let state = e.state.seen_at(now);
    js::set(&o, "state", state.name());
    js::set(&o, "attempts", e.attempts);
    js::set(&o, "createdAt", e.created_at as f64);
    js::set(&o, "notBefore", e.not_before as f64);
    match state {
        EntryState::InFlight { lease_until } => js::set(&o, "leaseUntil", lease_until as f64),
        EntryState::Dead { at } => js::set(&o, "deadAt", at as f64),
        _ => {}
    }
    js::set(&o, "method", e.request.method.as_str());
    js::set(&o, "url", e.request.url.as_str());
    js::set(&o, "idempotencyKey", e.idempotency_key.as_str());
    js::set(
        &o,
        "body",
        String::from_utf8_lossy(&e.request.body).into_owned(),
    );
    if let Some(err) = &e.last_error {
        js::set(&o, "lastError", error(err));
    }
    o
}

/// `{status?, code?, message, contextId?}`.
pub fn error(e: &LastError) -> JsValue {
    js::parse_json(&error_json(e))
}

/// `{pending, inFlight, awaitingToken, dead, queued, lanes, oldestCreatedAt,
/// bytes, paused: [{origin, until}], held: [{lane, id}], throttled:
/// [{origin, reason, ratePerMinute?, shedPercent?}]}`.
pub fn stats(s: &Stats) -> JsValue {
    let o = js::object();
    js::set(&o, "pending", s.pending as f64);
    js::set(&o, "inFlight", s.in_flight as f64);
    js::set(&o, "awaitingToken", s.awaiting_token as f64);
    js::set(&o, "dead", s.dead as f64);
    js::set(&o, "queued", s.queued() as f64);
    js::set(&o, "lanes", s.lanes as f64);
    js::set(
        &o,
        "oldestCreatedAt",
        s.oldest_created_at
            .map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64)),
    );
    js::set(&o, "bytes", s.bytes as f64);
    let paused = js_sys::Array::new();
    for (origin, until) in &s.paused {
        let p = js::object();
        js::set(&p, "origin", origin.as_str());
        js::set(&p, "until", *until as f64);
        paused.push(&p);
    }
    js::set(&o, "paused", paused);
    let held = js_sys::Array::new();
    for (lane, id) in &s.held {
        let h = js::object();
        js::set(&h, "lane", lane.as_str());
        js::set(&h, "id", id.hyphenated().as_str());
        held.push(&h);
    }
    js::set(&o, "held", held);
    let throttled = js_sys::Array::new();
    for (origin, limit) in &s.throttled {
        let mut t = outbox_core::json::Object::new();
        t.str("origin", origin);
        outbox_core::event::limit_json(&mut t, Some(limit));
        throttled.push(&js::parse_json(&t.finish()));
    }
    js::set(&o, "throttled", throttled);
    o
}

/// A list of entries.
pub fn entries(list: &[Entry], now: Millis) -> JsValue {
    let a = js_sys::Array::new();
    for e in list {
        a.push(&entry(e, now));
    }
    a.into()
}

/// A flush's summary, as `flush()` resolves it: `{delivered, attempts,
/// nextWake, worker}` (`nextWake`: ms since the epoch, or `null`; `worker`:
/// the controlling service worker was asked to flush instead, so the counts
/// are this side's, zero).
pub fn flush_report(report: &FlushReport, by_worker: bool) -> JsValue {
    let out = js::object();
    js::set(&out, "delivered", report.delivered as f64);
    js::set(&out, "attempts", report.attempts as f64);
    js::set(
        &out,
        "nextWake",
        report
            .next_wake
            .map_or(JsValue::NULL, |t| JsValue::from_f64(t as f64)),
    );
    if by_worker {
        js::set(&out, "worker", true);
    }
    out
}
