//! Entries to and from plain JavaScript objects, as IndexedDB stores them.
//!
//! No serde: objects are built and read with `Reflect`, bodies are
//! `Uint8Array`s (kept apart, in the `bodies` store). Decoding checks every
//! field and returns a [`CodecError`] on anything odd — a wrong type, a
//! fractional or negative number, an unknown state — and never panics.
//!
//! # The entry record (`entries` and `dead` stores)
//!
//! | field | JS type | meaning |
//! |---|---|---|
//! | `seq` | number | [`Entry::seq`], the primary key (a safe integer) |
//! | `id` | string | [`Entry::id`], hyphenated lower-case UUID |
//! | `lane`, `route`, `origin` | string | as in [`Entry`] |
//! | `method`, `url` | string | the stored request |
//! | `headers` | `[name, value][]` | the kept headers, in order |
//! | `size` | number | [`StoredRequest::size_bytes`], so that stats never read bodies |
//! | `bodyLen` | number | the length of the body stored apart |
//! | `key` | string | [`Entry::idempotency_key`] |
//! | `needsToken` | boolean | [`Entry::needs_token`] |
//! | `createdAt`, `notBefore` | number ¹ | times in ms since the epoch |
//! | `attempts`, `failures`, `authFailures` | number | counters |
//! | `authSince` | number ¹ or absent | when the current run of `401`s began |
//! | `state` | string | `pending`, `in-flight`, `awaiting-token` or `dead` |
//! | `leaseUntil` | number ¹ | only when `in-flight` |
//! | `deadAt` | number ¹ | only when `dead` |
//! | `error` | object or absent | `{status?, code?, message, contextId?}` ([`LastError`]) |
//! | `raw` | string, dead letters only | a record that could not be read back, as JSON, kept for inspection ([`salvage`]) |
//!
//! ¹ A `u64` above 2⁵³−1 (not a safe JS integer) is stored as a decimal
//! string instead, so every value round-trips exactly.
//!
//! The body is stored apart, as a `Uint8Array` keyed by `seq`.

use js_sys::{Array, Object, Reflect, Uint8Array};
use outbox_core::entry::{
    CORRUPT, Entry, EntryId, EntryState, Head, LastError, Seq, StoredRequest,
};
use wasm_bindgen::{JsCast, JsValue};

use crate::error::CodecError;

/// The largest integer a JS number holds exactly (2⁵³ − 1).
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

const ENTRY: &str = "entry";

fn set(obj: &Object, key: &str, value: &JsValue) {
    // Defining a data property on a fresh ordinary object cannot fail.
    let _ = Reflect::set(obj, &JsValue::from_str(key), value);
}

fn get(obj: &JsValue, key: &str) -> JsValue {
    Reflect::get(obj, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

/// A `u64` as a JS value: a number when exact, else a decimal string.
fn u64_value(v: u64) -> JsValue {
    if v <= MAX_SAFE_INTEGER {
        JsValue::from_f64(v as f64)
    } else {
        JsValue::from_str(&v.to_string())
    }
}

/// A safe non-negative integer, or an error naming `record`/`field`.
fn safe_integer(v: &JsValue, record: &'static str, field: &'static str) -> Result<u64, CodecError> {
    let n = match v.as_f64() {
        Some(n) => n,
        None if absent(v) => return Err(CodecError::new(record, field, "is missing")),
        None => return Err(CodecError::new(record, field, "is not a number")),
    };
    if !n.is_finite() || n < 0.0 || n.fract() != 0.0 || n > MAX_SAFE_INTEGER as f64 {
        return Err(CodecError::new(
            record,
            field,
            "is not a safe non-negative integer",
        ));
    }
    Ok(n as u64)
}

fn get_u64(obj: &JsValue, field: &'static str) -> Result<u64, CodecError> {
    let v = get(obj, field);
    if let Some(text) = v.as_string() {
        return text
            .parse()
            .map_err(|_| CodecError::new(ENTRY, field, "is a string but not a u64"));
    }
    safe_integer(&v, ENTRY, field)
}

fn get_u32(obj: &JsValue, field: &'static str) -> Result<u32, CodecError> {
    let n = safe_integer(&get(obj, field), ENTRY, field)?;
    u32::try_from(n).map_err(|_| CodecError::new(ENTRY, field, "is larger than a u32"))
}

fn get_string(obj: &JsValue, field: &'static str) -> Result<String, CodecError> {
    let v = get(obj, field);
    match v.as_string() {
        Some(s) => Ok(s),
        None if absent(&v) => Err(CodecError::new(ENTRY, field, "is missing")),
        None => Err(CodecError::new(ENTRY, field, "is not a string")),
    }
}

fn get_bool(obj: &JsValue, field: &'static str) -> Result<bool, CodecError> {
    let v = get(obj, field);
    match v.as_bool() {
        Some(b) => Ok(b),
        None if absent(&v) => Err(CodecError::new(ENTRY, field, "is missing")),
        None => Err(CodecError::new(ENTRY, field, "is not a boolean")),
    }
}

fn check_object(value: &JsValue, record: &'static str) -> Result<(), CodecError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(CodecError::new(record, "(record)", "is not an object"))
    }
}

/// A `seq` as a key: a JS number. Errors above 2⁵³ − 1 (which a counter
/// that counts one by one never reaches).
pub(crate) fn seq_key(seq: Seq) -> Result<JsValue, CodecError> {
    if seq > MAX_SAFE_INTEGER {
        return Err(CodecError::new(
            ENTRY,
            "seq",
            "is above 2^53-1 and cannot be a key",
        ));
    }
    Ok(JsValue::from_f64(seq as f64))
}

/// Reads a `seq` (a key, or the `nextSeq` counter).
pub(crate) fn decode_seq(
    value: &JsValue,
    record: &'static str,
    field: &'static str,
) -> Result<Seq, CodecError> {
    safe_integer(value, record, field)
}

fn encode_error(e: &LastError) -> Object {
    let obj = Object::new();
    if let Some(status) = e.status {
        set(&obj, "status", &JsValue::from_f64(f64::from(status)));
    }
    if let Some(code) = &e.code {
        set(&obj, "code", &JsValue::from_str(code));
    }
    set(&obj, "message", &JsValue::from_str(&e.message));
    if let Some(ctx) = &e.context_id {
        set(&obj, "contextId", &JsValue::from_str(ctx));
    }
    obj
}

fn decode_error(v: &JsValue) -> Result<Option<LastError>, CodecError> {
    if absent(v) {
        return Ok(None);
    }
    check_object(v, ENTRY).map_err(|_| CodecError::new(ENTRY, "error", "is not an object"))?;
    let status = get(v, "status");
    let status = if absent(&status) {
        None
    } else {
        let n = safe_integer(&status, ENTRY, "error.status")?;
        Some(
            u16::try_from(n)
                .map_err(|_| CodecError::new(ENTRY, "error.status", "is larger than a u16"))?,
        )
    };
    let message = get(v, "message");
    let message = message
        .as_string()
        .ok_or_else(|| CodecError::new(ENTRY, "error.message", "is not a string"))?;
    let opt = |field: &'static str, name: &'static str| -> Result<Option<String>, CodecError> {
        let x = get(v, name);
        if absent(&x) {
            Ok(None)
        } else {
            x.as_string()
                .map(Some)
                .ok_or_else(|| CodecError::new(ENTRY, field, "is not a string"))
        }
    };
    Ok(Some(LastError {
        status,
        code: opt("error.code", "code")?,
        message,
        context_id: opt("error.contextId", "contextId")?,
    }))
}

/// An entry as the `entries`/`dead` stores hold it: without its body,
/// which lives apart, but with the body's length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    /// The entry; `request.body` is empty unless attached.
    pub entry: Entry,
    /// The length of the body stored apart.
    pub body_len: usize,
    /// A record that could not be read back, as JSON ([`salvage`]).
    pub raw: Option<String>,
}

impl Record {
    /// The record of an entry that holds its body.
    pub(crate) fn new(entry: Entry) -> Self {
        Self {
            body_len: entry.request.body.len(),
            entry,
            raw: None,
        }
    }
}

/// Encodes everything of `record` but the body (stored apart).
pub(crate) fn encode_entry(record: &Record) -> Result<JsValue, CodecError> {
    let entry = &record.entry;
    let size = entry.request.size_bytes() - entry.request.body.len() + record.body_len;
    let obj = Object::new();
    set(&obj, "seq", &seq_key(entry.seq)?);
    set(&obj, "id", &JsValue::from_str(&entry.id.to_string()));
    set(&obj, "lane", &JsValue::from_str(&entry.lane));
    set(&obj, "route", &JsValue::from_str(&entry.route));
    set(&obj, "origin", &JsValue::from_str(&entry.origin));
    set(&obj, "method", &JsValue::from_str(&entry.request.method));
    set(&obj, "url", &JsValue::from_str(&entry.request.url));
    let headers = Array::new();
    for (name, value) in &entry.request.headers {
        headers.push(&Array::of2(
            &JsValue::from_str(name),
            &JsValue::from_str(value),
        ));
    }
    set(&obj, "headers", &headers);
    set(&obj, "size", &u64_value(size as u64));
    set(&obj, "bodyLen", &u64_value(record.body_len as u64));
    set(&obj, "key", &JsValue::from_str(&entry.idempotency_key));
    set(&obj, "needsToken", &JsValue::from_bool(entry.needs_token));
    set(&obj, "createdAt", &u64_value(entry.created_at));
    set(
        &obj,
        "attempts",
        &JsValue::from_f64(f64::from(entry.attempts)),
    );
    set(
        &obj,
        "failures",
        &JsValue::from_f64(f64::from(entry.failures)),
    );
    set(
        &obj,
        "authFailures",
        &JsValue::from_f64(f64::from(entry.auth_failures)),
    );
    if let Some(since) = entry.auth_since {
        set(&obj, "authSince", &u64_value(since));
    }
    set(&obj, "notBefore", &u64_value(entry.not_before));
    set(&obj, "state", &JsValue::from_str(entry.state.name()));
    match entry.state {
        EntryState::InFlight { lease_until } => set(&obj, "leaseUntil", &u64_value(lease_until)),
        EntryState::Dead { at } => set(&obj, "deadAt", &u64_value(at)),
        EntryState::Pending | EntryState::AwaitingToken => {}
    }
    if let Some(error) = &entry.last_error {
        set(&obj, "error", &encode_error(error));
    }
    if let Some(raw) = &record.raw {
        set(&obj, "raw", &JsValue::from_str(raw));
    }
    Ok(obj.into())
}

fn decode_state(v: &JsValue) -> Result<EntryState, CodecError> {
    let name = get(v, "state")
        .as_string()
        .ok_or_else(|| CodecError::new(ENTRY, "state", "is not a string"))?;
    Ok(match name.as_str() {
        "pending" => EntryState::Pending,
        "in-flight" => EntryState::InFlight {
            lease_until: get_u64(v, "leaseUntil")?,
        },
        "awaiting-token" => EntryState::AwaitingToken,
        "dead" => EntryState::Dead {
            at: get_u64(v, "deadAt")?,
        },
        _ => return Err(CodecError::new(ENTRY, "state", "is not a known state")),
    })
}

fn decode_id(v: &JsValue) -> Result<EntryId, CodecError> {
    get_string(v, "id")?
        .parse()
        .map_err(|_| CodecError::new(ENTRY, "id", "is not a UUID"))
}

fn decode_headers(v: &JsValue) -> Result<Vec<(String, String)>, CodecError> {
    let headers = get(v, "headers");
    if !Array::is_array(&headers) {
        return Err(CodecError::new(ENTRY, "headers", "is not an array"));
    }
    let headers: Array = headers.unchecked_into();
    let mut out = Vec::with_capacity(headers.length() as usize);
    for pair in headers.iter() {
        if !Array::is_array(&pair) {
            return Err(CodecError::new(ENTRY, "headers", "holds a non-array"));
        }
        let pair: Array = pair.unchecked_into();
        let (Some(name), Some(value), 2) = (
            pair.get(0).as_string(),
            pair.get(1).as_string(),
            pair.length(),
        ) else {
            return Err(CodecError::new(
                ENTRY,
                "headers",
                "holds something other than a [name, value] pair of strings",
            ));
        };
        out.push((name, value));
    }
    Ok(out)
}

/// Decodes an entry record; its body is left empty (it lives apart).
pub(crate) fn decode_entry(value: &JsValue) -> Result<Record, CodecError> {
    check_object(value, ENTRY)?;
    let body_len = usize::try_from(get_u64(value, "bodyLen")?)
        .map_err(|_| CodecError::new(ENTRY, "bodyLen", "is too large"))?;
    let entry = Entry {
        id: decode_id(value)?,
        seq: safe_integer(&get(value, "seq"), ENTRY, "seq")?,
        lane: get_string(value, "lane")?,
        route: get_string(value, "route")?,
        origin: get_string(value, "origin")?,
        request: StoredRequest {
            method: get_string(value, "method")?,
            url: get_string(value, "url")?,
            headers: decode_headers(value)?,
            body: Vec::new(),
        },
        idempotency_key: get_string(value, "key")?,
        needs_token: get_bool(value, "needsToken")?,
        created_at: get_u64(value, "createdAt")?,
        attempts: get_u32(value, "attempts")?,
        failures: get_u32(value, "failures")?,
        auth_failures: get_u32(value, "authFailures")?,
        auth_since: if absent(&get(value, "authSince")) {
            None
        } else {
            Some(get_u64(value, "authSince")?)
        },
        not_before: get_u64(value, "notBefore")?,
        state: decode_state(value)?,
        last_error: decode_error(&get(value, "error"))?,
    };
    let raw = get(value, "raw").as_string();
    Ok(Record {
        entry,
        body_len,
        raw,
    })
}

/// Decodes what scheduling needs from an entry record: no request, no body.
pub(crate) fn decode_head(value: &JsValue) -> Result<Head, CodecError> {
    check_object(value, ENTRY)?;
    Ok(Head {
        seq: safe_integer(&get(value, "seq"), ENTRY, "seq")?,
        id: decode_id(value)?,
        lane: get_string(value, "lane")?,
        route: get_string(value, "route")?,
        origin: get_string(value, "origin")?,
        corrupt: false,
        needs_token: get_bool(value, "needsToken")?,
        created_at: get_u64(value, "createdAt")?,
        attempts: get_u32(value, "attempts")?,
        failures: get_u32(value, "failures")?,
        not_before: get_u64(value, "notBefore")?,
        state: decode_state(value)?,
    })
}

/// The longest raw record a salvaged dead letter's message quotes.
const RAW_QUOTE: usize = 2_000;

/// Makes what can be read of an undecodable entry record (a "poison
/// record") into a dead letter with reason [`CORRUPT`]: its `seq` (given:
/// the record's key), and its id, lane, route, origin, method and URL
/// where they read as they should; the decoding error and the raw record,
/// as JSON, in its error message and, whole, in `raw`. The head it gives
/// the planner is marked [`Head::corrupt`].
pub(crate) fn salvage(value: &JsValue, seq: Seq, why: &CodecError, now: u64) -> Record {
    let text = |field: &str| get(value, field).as_string().unwrap_or_default();
    let raw = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|s| s.as_string())
        .unwrap_or_else(|| "(not serialisable)".into());
    let quoted: String = raw.chars().take(RAW_QUOTE).collect();
    let id = decode_id(value).unwrap_or_else(|_| {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        EntryId::from_bytes(bytes)
    });
    let lane = Some(text("lane"))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("corrupt-{seq}"));
    let entry = Entry {
        id,
        seq,
        lane,
        route: text("route"),
        origin: text("origin"),
        request: StoredRequest {
            method: text("method"),
            url: text("url"),
            headers: Vec::new(),
            body: Vec::new(),
        },
        idempotency_key: text("key"),
        needs_token: false,
        created_at: get_u64(value, "createdAt").unwrap_or(now),
        attempts: 0,
        failures: 0,
        auth_failures: 0,
        auth_since: None,
        not_before: now,
        state: EntryState::Pending,
        last_error: Some(LastError::new(
            CORRUPT,
            format!("the stored record could not be read back ({why}); record: {quoted}"),
        )),
    };
    let body_len = get_u64(value, "bodyLen")
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    Record {
        entry,
        body_len,
        raw: Some(raw),
    }
}

/// What `stats` needs from an entry record.
pub(crate) struct Summary {
    /// The lane.
    pub lane: String,
    /// The state.
    pub state: EntryState,
    /// Creation time.
    pub created_at: u64,
    /// The request's size at rest.
    pub size: u64,
}

/// Decodes an entry record's [`Summary`].
pub(crate) fn decode_summary(value: &JsValue) -> Result<Summary, CodecError> {
    check_object(value, ENTRY)?;
    Ok(Summary {
        lane: get_string(value, "lane")?,
        state: decode_state(value)?,
        created_at: get_u64(value, "createdAt")?,
        size: get_u64(value, "size")?,
    })
}

/// The value field `field` of an entry record, for reading one field
/// without decoding the rest.
pub(crate) fn field(value: &JsValue, field: &str) -> JsValue {
    get(value, field)
}

/// A body as stored: a `Uint8Array` holding a copy of the bytes.
pub(crate) fn encode_body(body: &[u8]) -> Uint8Array {
    Uint8Array::from(body)
}

/// Reads a stored body (a `Uint8Array`; an `ArrayBuffer` is accepted too).
pub(crate) fn decode_body(value: &JsValue) -> Result<Vec<u8>, CodecError> {
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(bytes.to_vec());
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buffer).to_vec());
    }
    if absent(value) {
        return Err(CodecError::new("body", "(record)", "is missing"));
    }
    Err(CodecError::new("body", "(record)", "is not a Uint8Array"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use outbox_core::clock::SplitMix64;
    use outbox_core::conformance::sample_entry;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn entries() -> Vec<Entry> {
        let mut rng = SplitMix64::new(77);
        let mut out = Vec::new();
        let plain = sample_entry(&mut rng, "lane-1", "https://api.mypurecloud.ie", b"{}");
        out.push(plain.clone());
        let mut e = plain.clone();
        e.seq = MAX_SAFE_INTEGER;
        e.lane = "héllo ✓ \u{0} lane".into();
        e.request.headers.clear();
        e.request.body = vec![0, 255, 1, 2];
        e.needs_token = false;
        e.created_at = u64::MAX;
        e.not_before = MAX_SAFE_INTEGER + 1;
        e.attempts = u32::MAX;
        e.failures = 3;
        e.auth_failures = 2;
        e.state = EntryState::InFlight {
            lease_until: 12_345,
        };
        e.last_error = Some(LastError {
            status: Some(503),
            code: Some("service.unavailable".into()),
            message: "down".into(),
            context_id: Some("ctx-1".into()),
        });
        out.push(e.clone());
        e.state = EntryState::AwaitingToken;
        e.last_error = Some(LastError::new("network", ""));
        out.push(e.clone());
        e.state = EntryState::Dead { at: u64::MAX - 1 };
        e.last_error = Some(LastError {
            status: Some(0),
            code: None,
            message: "x".into(),
            context_id: None,
        });
        out.push(e);
        out
    }

    fn without_body(e: &Entry) -> Entry {
        let mut e = e.clone();
        e.request.body.clear();
        e
    }

    #[wasm_bindgen_test]
    fn entries_round_trip() {
        for entry in entries() {
            let obj = encode_entry(&Record::new(entry.clone())).unwrap();
            let record = decode_entry(&obj).unwrap();
            assert_eq!(record.entry, without_body(&entry));
            assert_eq!(record.body_len, entry.request.body.len());
            // Re-encoding a record without its body keeps size and length.
            let again = decode_entry(&encode_entry(&record).unwrap()).unwrap();
            assert_eq!(again, record);
            let summary = decode_summary(&encode_entry(&record).unwrap()).unwrap();
            assert_eq!(summary.size, entry.request.size_bytes() as u64);
            assert_eq!(decode_head(&obj).unwrap(), entry.head());
            let summary = decode_summary(&obj).unwrap();
            assert_eq!(summary.lane, entry.lane);
            assert_eq!(summary.state, entry.state);
            assert_eq!(summary.size, entry.request.size_bytes() as u64);
            let body = encode_body(&entry.request.body);
            assert_eq!(decode_body(&body).unwrap(), entry.request.body);
        }
    }

    #[wasm_bindgen_test]
    fn entries_survive_structured_clone() {
        // What IndexedDB does to a value: a structured clone.
        let clone = js_sys::Function::new_with_args("v", "return structuredClone(v)");
        for entry in entries() {
            let obj = encode_entry(&Record::new(entry.clone())).unwrap();
            let cloned = clone.call1(&JsValue::NULL, &obj).unwrap();
            assert_eq!(decode_entry(&cloned).unwrap().entry, without_body(&entry));
            let body = clone
                .call1(&JsValue::NULL, &encode_body(&entry.request.body))
                .unwrap();
            assert_eq!(decode_body(&body).unwrap(), entry.request.body);
        }
    }

    #[wasm_bindgen_test]
    fn seq_keys_are_safe_integers() {
        assert_eq!(seq_key(7).unwrap().as_f64(), Some(7.0));
        assert!(seq_key(MAX_SAFE_INTEGER + 1).is_err());
        let mut e = entries().remove(0);
        e.seq = MAX_SAFE_INTEGER + 1;
        assert!(encode_entry(&Record::new(e)).is_err());
        assert_eq!(
            decode_seq(&JsValue::from_f64(3.0), "meta", "nextSeq"),
            Ok(3)
        );
        for bad in [
            JsValue::from_f64(-1.0),
            JsValue::from_f64(1.5),
            JsValue::from_f64(f64::NAN),
            JsValue::from_f64(f64::INFINITY),
            JsValue::from_f64(9_007_199_254_740_992.0),
            JsValue::from_str("3"),
            JsValue::TRUE,
            JsValue::UNDEFINED,
        ] {
            assert!(decode_seq(&bad, "meta", "nextSeq").is_err(), "{bad:?}");
        }
    }

    /// Replaces one field of a good record and expects an error naming it.
    fn expect_bad(field_name: &str, value: JsValue, expected_field: &str) {
        let obj = encode_entry(&Record::new(entries()[1].clone())).unwrap();
        if value.is_undefined() {
            Reflect::delete_property(
                obj.unchecked_ref::<Object>(),
                &JsValue::from_str(field_name),
            )
            .unwrap();
        } else {
            Reflect::set(&obj, &JsValue::from_str(field_name), &value).unwrap();
        }
        let err = decode_entry(&obj).expect_err(field_name);
        assert_eq!(err.field, expected_field, "{field_name}: {err}");
    }

    #[wasm_bindgen_test]
    fn odd_records_are_errors_not_panics() {
        for not_object in [
            JsValue::NULL,
            JsValue::UNDEFINED,
            JsValue::from_f64(1.0),
            JsValue::from_str("entry"),
        ] {
            assert!(decode_entry(&not_object).is_err());
            assert!(decode_head(&not_object).is_err());
            assert!(decode_summary(&not_object).is_err());
        }
        expect_bad("seq", JsValue::UNDEFINED, "seq");
        expect_bad("seq", JsValue::from_f64(-3.0), "seq");
        expect_bad("id", JsValue::from_str("not-a-uuid"), "id");
        expect_bad("id", JsValue::from_f64(4.0), "id");
        expect_bad("lane", JsValue::NULL, "lane");
        expect_bad("lane", JsValue::from_f64(1.0), "lane");
        expect_bad("headers", JsValue::from_str("a: b"), "headers");
        expect_bad(
            "headers",
            Array::of1(&JsValue::from_str("a")).into(),
            "headers",
        );
        expect_bad(
            "headers",
            Array::of1(&Array::of1(&JsValue::from_str("a"))).into(),
            "headers",
        );
        expect_bad(
            "headers",
            Array::of1(&Array::of2(
                &JsValue::from_str("a"),
                &JsValue::from_f64(1.0),
            ))
            .into(),
            "headers",
        );
        expect_bad("bodyLen", JsValue::UNDEFINED, "bodyLen");
        expect_bad("needsToken", JsValue::from_str("yes"), "needsToken");
        expect_bad("createdAt", JsValue::from_str("soon"), "createdAt");
        expect_bad("createdAt", JsValue::from_str("-1"), "createdAt");
        expect_bad("attempts", JsValue::from_f64(4_294_967_296.0), "attempts");
        expect_bad("attempts", JsValue::from_f64(0.5), "attempts");
        expect_bad("state", JsValue::from_str("sleeping"), "state");
        expect_bad("state", JsValue::UNDEFINED, "state");
        expect_bad("leaseUntil", JsValue::UNDEFINED, "leaseUntil");
        expect_bad("error", JsValue::from_str("oops"), "error");
        let bad_error = Object::new();
        set(&bad_error, "message", &JsValue::from_str("m"));
        set(&bad_error, "status", &JsValue::from_f64(70_000.0));
        expect_bad("error", bad_error.into(), "error.status");
        let bad_error = Object::new();
        expect_bad("error", bad_error.into(), "error.message");
        let bad_error = Object::new();
        set(&bad_error, "message", &JsValue::from_str("m"));
        set(&bad_error, "code", &JsValue::from_f64(1.0));
        expect_bad("error", bad_error.into(), "error.code");
        // A null error is no error.
        let obj = encode_entry(&Record::new(entries()[0].clone())).unwrap();
        Reflect::set(&obj, &JsValue::from_str("error"), &JsValue::NULL).unwrap();
        assert_eq!(decode_entry(&obj).unwrap().entry.last_error, None);
    }

    #[wasm_bindgen_test]
    fn odd_bodies_are_errors() {
        assert_eq!(
            decode_body(&js_sys::ArrayBuffer::new(3).into()).unwrap(),
            vec![0, 0, 0]
        );
        for bad in [
            JsValue::UNDEFINED,
            JsValue::from_str("body"),
            Array::new().into(),
        ] {
            assert!(decode_body(&bad).is_err());
        }
    }
}
