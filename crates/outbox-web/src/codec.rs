//! Entries to and from plain JavaScript objects, as IndexedDB stores them.
//!
//! No serde: objects are built and read through two small traits,
//! [`RecordValue`] (read a field, a number, a string, …) and
//! [`RecordBuild`] (make one), which `JsValue` implements with `Reflect`
//! in the browser. The codec is written once, over the traits, so that it
//! also builds natively — a plain tree ([`plain::Plain`]) implements them
//! for the native tests, where the codec is fuzzed at volume. Bodies are
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

#[cfg(target_arch = "wasm32")]
use js_sys::{Array, Object, Reflect, Uint8Array};
use outbox_core::classify::LastError;
#[cfg(target_arch = "wasm32")]
use outbox_core::entry::CORRUPT;
use outbox_core::entry::{Entry, EntryId, EntryState, Head, Seq, StoredRequest};
use outbox_core::store::Summary;
#[cfg(target_arch = "wasm32")]
use wasm_bindgen::{JsCast, JsValue};

use crate::error::CodecError;

/// The largest integer a JS number holds exactly (2⁵³ − 1).
pub(crate) const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

const ENTRY: &str = "entry";

/// A stored value, read: what decoding asks of a JS value.
pub(crate) trait RecordValue: Sized {
    /// `self[key]`: `undefined` when missing (or when `self` is not an object).
    fn get(&self, key: &str) -> Self;
    /// `undefined` or `null`.
    fn is_absent(&self) -> bool;
    /// An object (arrays included, as in JS).
    fn is_object(&self) -> bool;
    /// The number, when it is one.
    fn as_f64(&self) -> Option<f64>;
    /// The string, when it is one.
    fn as_string(&self) -> Option<String>;
    /// The boolean, when it is one.
    fn as_bool(&self) -> Option<bool>;
    /// The elements, when it is an array.
    fn items(&self) -> Option<Vec<Self>>;
}

/// A stored value, built: what encoding asks of a JS value.
pub(crate) trait RecordBuild: Sized {
    /// A new empty object.
    fn object() -> Self;
    /// `self[key] = value` on an object made by [`RecordBuild::object`].
    fn set(&mut self, key: &str, value: Self);
    /// A number.
    fn number(n: f64) -> Self;
    /// A string.
    fn string(s: &str) -> Self;
    /// A boolean.
    fn boolean(b: bool) -> Self;
    /// An array.
    fn array(items: Vec<Self>) -> Self;
}

#[cfg(target_arch = "wasm32")]
impl RecordValue for JsValue {
    fn get(&self, key: &str) -> Self {
        Reflect::get(self, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
    }
    fn is_absent(&self) -> bool {
        self.is_undefined() || self.is_null()
    }
    fn is_object(&self) -> bool {
        JsValue::is_object(self)
    }
    fn as_f64(&self) -> Option<f64> {
        JsValue::as_f64(self)
    }
    fn as_string(&self) -> Option<String> {
        JsValue::as_string(self)
    }
    fn as_bool(&self) -> Option<bool> {
        JsValue::as_bool(self)
    }
    fn items(&self) -> Option<Vec<Self>> {
        Array::is_array(self).then(|| self.unchecked_ref::<Array>().iter().collect())
    }
}

#[cfg(target_arch = "wasm32")]
impl RecordBuild for JsValue {
    fn object() -> Self {
        Object::new().into()
    }
    fn set(&mut self, key: &str, value: Self) {
        // Defining a data property on a fresh ordinary object cannot fail.
        let _ = Reflect::set(self, &JsValue::from_str(key), &value);
    }
    fn number(n: f64) -> Self {
        JsValue::from_f64(n)
    }
    fn string(s: &str) -> Self {
        JsValue::from_str(s)
    }
    fn boolean(b: bool) -> Self {
        JsValue::from_bool(b)
    }
    fn array(items: Vec<Self>) -> Self {
        items.into_iter().collect::<Array>().into()
    }
}

/// A `u64` as a JS value: a number when exact, else a decimal string.
fn u64_value<V: RecordBuild>(v: u64) -> V {
    if v <= MAX_SAFE_INTEGER {
        V::number(v as f64)
    } else {
        V::string(&v.to_string())
    }
}

/// A safe non-negative integer, or an error naming `record`/`field`.
fn safe_integer<V: RecordValue>(
    v: &V,
    record: &'static str,
    field: &'static str,
) -> Result<u64, CodecError> {
    let n = match v.as_f64() {
        Some(n) => n,
        None if v.is_absent() => return Err(CodecError::new(record, field, "is missing")),
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

fn get_u64<V: RecordValue>(obj: &V, field: &'static str) -> Result<u64, CodecError> {
    let v = obj.get(field);
    if let Some(text) = v.as_string() {
        return text
            .parse()
            .map_err(|_| CodecError::new(ENTRY, field, "is a string but not a u64"));
    }
    safe_integer(&v, ENTRY, field)
}

fn get_u32<V: RecordValue>(obj: &V, field: &'static str) -> Result<u32, CodecError> {
    let n = safe_integer(&obj.get(field), ENTRY, field)?;
    u32::try_from(n).map_err(|_| CodecError::new(ENTRY, field, "is larger than a u32"))
}

fn get_string<V: RecordValue>(obj: &V, field: &'static str) -> Result<String, CodecError> {
    let v = obj.get(field);
    match v.as_string() {
        Some(s) => Ok(s),
        None if v.is_absent() => Err(CodecError::new(ENTRY, field, "is missing")),
        None => Err(CodecError::new(ENTRY, field, "is not a string")),
    }
}

fn get_bool<V: RecordValue>(obj: &V, field: &'static str) -> Result<bool, CodecError> {
    let v = obj.get(field);
    match v.as_bool() {
        Some(b) => Ok(b),
        None if v.is_absent() => Err(CodecError::new(ENTRY, field, "is missing")),
        None => Err(CodecError::new(ENTRY, field, "is not a boolean")),
    }
}

fn check_object<V: RecordValue>(value: &V, record: &'static str) -> Result<(), CodecError> {
    if value.is_object() {
        Ok(())
    } else {
        Err(CodecError::new(record, "(record)", "is not an object"))
    }
}

/// Checks that `seq` can be a key: a JS number. Errors above 2⁵³ − 1
/// (which a counter that counts one by one never reaches).
fn check_seq(seq: Seq) -> Result<f64, CodecError> {
    if seq > MAX_SAFE_INTEGER {
        return Err(CodecError::new(
            ENTRY,
            "seq",
            "is above 2^53-1 and cannot be a key",
        ));
    }
    Ok(seq as f64)
}

/// A `seq` as a key: a JS number. Errors above 2⁵³ − 1.
#[cfg(target_arch = "wasm32")]
pub(crate) fn seq_key(seq: Seq) -> Result<JsValue, CodecError> {
    check_seq(seq).map(JsValue::from_f64)
}

/// Reads a `seq` (a key, or the `nextSeq` counter).
pub(crate) fn decode_seq<V: RecordValue>(
    value: &V,
    record: &'static str,
    field: &'static str,
) -> Result<Seq, CodecError> {
    safe_integer(value, record, field)
}

fn encode_error<V: RecordBuild>(e: &LastError) -> V {
    let mut obj = V::object();
    if let Some(status) = e.status {
        obj.set("status", V::number(f64::from(status)));
    }
    if let Some(code) = &e.code {
        obj.set("code", V::string(code));
    }
    obj.set("message", V::string(&e.message));
    if let Some(ctx) = &e.context_id {
        obj.set("contextId", V::string(ctx));
    }
    obj
}

fn decode_error<V: RecordValue>(v: &V) -> Result<Option<LastError>, CodecError> {
    if v.is_absent() {
        return Ok(None);
    }
    check_object(v, ENTRY).map_err(|_| CodecError::new(ENTRY, "error", "is not an object"))?;
    let status = v.get("status");
    let status = if status.is_absent() {
        None
    } else {
        let n = safe_integer(&status, ENTRY, "error.status")?;
        Some(
            u16::try_from(n)
                .map_err(|_| CodecError::new(ENTRY, "error.status", "is larger than a u16"))?,
        )
    };
    let message = v
        .get("message")
        .as_string()
        .ok_or_else(|| CodecError::new(ENTRY, "error.message", "is not a string"))?;
    let opt = |field: &'static str, name: &'static str| -> Result<Option<String>, CodecError> {
        let x = v.get(name);
        if x.is_absent() {
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

/// Encodes everything of `record` but the body (stored apart), as a JS value.
#[cfg(target_arch = "wasm32")]
pub(crate) fn encode_entry(record: &Record) -> Result<JsValue, CodecError> {
    encode_entry_to(record)
}

/// Encodes everything of `record` but the body (stored apart).
pub(crate) fn encode_entry_to<V: RecordBuild>(record: &Record) -> Result<V, CodecError> {
    let entry = &record.entry;
    let size = entry.request.size_bytes() - entry.request.body.len() + record.body_len;
    let mut obj = V::object();
    obj.set("seq", V::number(check_seq(entry.seq)?));
    obj.set("id", V::string(&entry.id.hyphenated()));
    obj.set("lane", V::string(&entry.lane));
    obj.set("route", V::string(&entry.route));
    obj.set("origin", V::string(&entry.origin));
    obj.set("method", V::string(&entry.request.method));
    obj.set("url", V::string(&entry.request.url));
    let headers = entry
        .request
        .headers
        .iter()
        .map(|(name, value)| V::array(vec![V::string(name), V::string(value)]))
        .collect();
    obj.set("headers", V::array(headers));
    obj.set("size", u64_value(size as u64));
    obj.set("bodyLen", u64_value(record.body_len as u64));
    obj.set("key", V::string(&entry.idempotency_key));
    obj.set("needsToken", V::boolean(entry.needs_token));
    obj.set("createdAt", u64_value(entry.created_at));
    obj.set("attempts", V::number(f64::from(entry.attempts)));
    obj.set("failures", V::number(f64::from(entry.failures)));
    obj.set("authFailures", V::number(f64::from(entry.auth_failures)));
    if let Some(since) = entry.auth_since {
        obj.set("authSince", u64_value(since));
    }
    obj.set("notBefore", u64_value(entry.not_before));
    obj.set("state", V::string(entry.state.name()));
    match entry.state {
        EntryState::InFlight { lease_until } => obj.set("leaseUntil", u64_value(lease_until)),
        EntryState::Dead { at } => obj.set("deadAt", u64_value(at)),
        EntryState::Pending | EntryState::AwaitingToken => {}
    }
    if let Some(error) = &entry.last_error {
        obj.set("error", encode_error(error));
    }
    if let Some(raw) = &record.raw {
        obj.set("raw", V::string(raw));
    }
    Ok(obj)
}

fn decode_state<V: RecordValue>(v: &V) -> Result<EntryState, CodecError> {
    let name = v
        .get("state")
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

fn decode_id<V: RecordValue>(v: &V) -> Result<EntryId, CodecError> {
    get_string(v, "id")?
        .parse()
        .map_err(|_| CodecError::new(ENTRY, "id", "is not a UUID"))
}

fn decode_headers<V: RecordValue>(v: &V) -> Result<Vec<(String, String)>, CodecError> {
    let headers = v
        .get("headers")
        .items()
        .ok_or_else(|| CodecError::new(ENTRY, "headers", "is not an array"))?;
    let mut out = Vec::with_capacity(headers.len());
    for pair in headers {
        let pair = pair
            .items()
            .ok_or_else(|| CodecError::new(ENTRY, "headers", "holds a non-array"))?;
        let [name, value] = pair.as_slice() else {
            return Err(not_a_pair());
        };
        let (Some(name), Some(value)) = (name.as_string(), value.as_string()) else {
            return Err(not_a_pair());
        };
        out.push((name, value));
    }
    Ok(out)
}

fn not_a_pair() -> CodecError {
    CodecError::new(
        ENTRY,
        "headers",
        "holds something other than a [name, value] pair of strings",
    )
}

/// Decodes an entry record; its body is left empty (it lives apart).
pub(crate) fn decode_entry<V: RecordValue>(value: &V) -> Result<Record, CodecError> {
    check_object(value, ENTRY)?;
    let body_len = usize::try_from(get_u64(value, "bodyLen")?)
        .map_err(|_| CodecError::new(ENTRY, "bodyLen", "is too large"))?;
    let entry = Entry {
        id: decode_id(value)?,
        seq: safe_integer(&value.get("seq"), ENTRY, "seq")?,
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
        auth_since: if value.get("authSince").is_absent() {
            None
        } else {
            Some(get_u64(value, "authSince")?)
        },
        not_before: get_u64(value, "notBefore")?,
        state: decode_state(value)?,
        last_error: decode_error(&value.get("error"))?,
    };
    let raw = value.get("raw").as_string();
    Ok(Record {
        entry,
        body_len,
        raw,
    })
}

/// Decodes what scheduling needs from an entry record: no request, no body.
pub(crate) fn decode_head<V: RecordValue>(value: &V) -> Result<Head, CodecError> {
    check_object(value, ENTRY)?;
    Ok(Head {
        seq: safe_integer(&value.get("seq"), ENTRY, "seq")?,
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
#[cfg(target_arch = "wasm32")]
const RAW_QUOTE: usize = 2_000;

/// Makes what can be read of an undecodable entry record (a "poison
/// record") into a dead letter with reason [`CORRUPT`]: its `seq` (given:
/// the record's key), and its id, lane, route, origin, method and URL
/// where they read as they should; the decoding error and the raw record,
/// as JSON, in its error message and, whole, in `raw`. The head it gives
/// the planner is marked [`Head::corrupt`].
#[cfg(target_arch = "wasm32")]
pub(crate) fn salvage(value: &JsValue, seq: Seq, why: &CodecError, now: u64) -> Record {
    let text = |field: &str| value.get(field).as_string().unwrap_or_default();
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

/// Decodes what stats count of an entry record ([`Summary`]).
pub(crate) fn decode_summary<V: RecordValue>(value: &V) -> Result<Summary, CodecError> {
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
#[cfg(target_arch = "wasm32")]
pub(crate) fn field(value: &JsValue, field: &str) -> JsValue {
    value.get(field)
}

/// A body as stored: a `Uint8Array` holding a copy of the bytes.
#[cfg(target_arch = "wasm32")]
pub(crate) fn encode_body(body: &[u8]) -> Uint8Array {
    Uint8Array::from(body)
}

/// Reads a stored body (a `Uint8Array`; an `ArrayBuffer` is accepted too).
#[cfg(target_arch = "wasm32")]
pub(crate) fn decode_body(value: &JsValue) -> Result<Vec<u8>, CodecError> {
    if let Some(bytes) = value.dyn_ref::<Uint8Array>() {
        return Ok(bytes.to_vec());
    }
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buffer).to_vec());
    }
    if value.is_absent() {
        return Err(CodecError::new("body", "(record)", "is missing"));
    }
    Err(CodecError::new("body", "(record)", "is not a Uint8Array"))
}

/// A plain value tree that implements the record traits natively: the
/// codec's native tests (and its fuzzing) run on it.
#[cfg(not(target_arch = "wasm32"))]
pub(crate) mod plain {
    use super::{RecordBuild, RecordValue};

    /// A JS value as a tree.
    #[derive(Debug, Clone, PartialEq)]
    pub(crate) enum Plain {
        /// `undefined`.
        Undefined,
        /// `null`.
        Null,
        /// A boolean.
        Bool(bool),
        /// A number.
        Number(f64),
        /// A string.
        Str(String),
        /// An array.
        Array(Vec<Plain>),
        /// An object (members in insertion order; a later `set` replaces).
        Object(Vec<(String, Plain)>),
    }

    impl RecordValue for Plain {
        fn get(&self, key: &str) -> Self {
            match self {
                Plain::Object(members) => members
                    .iter()
                    .find(|(k, _)| k == key)
                    .map_or(Plain::Undefined, |(_, v)| v.clone()),
                _ => Plain::Undefined,
            }
        }
        fn is_absent(&self) -> bool {
            matches!(self, Plain::Undefined | Plain::Null)
        }
        fn is_object(&self) -> bool {
            matches!(self, Plain::Object(_) | Plain::Array(_))
        }
        fn as_f64(&self) -> Option<f64> {
            match self {
                Plain::Number(n) => Some(*n),
                _ => None,
            }
        }
        fn as_string(&self) -> Option<String> {
            match self {
                Plain::Str(s) => Some(s.clone()),
                _ => None,
            }
        }
        fn as_bool(&self) -> Option<bool> {
            match self {
                Plain::Bool(b) => Some(*b),
                _ => None,
            }
        }
        fn items(&self) -> Option<Vec<Self>> {
            match self {
                Plain::Array(items) => Some(items.clone()),
                _ => None,
            }
        }
    }

    impl RecordBuild for Plain {
        fn object() -> Self {
            Plain::Object(Vec::new())
        }
        fn set(&mut self, key: &str, value: Self) {
            if let Plain::Object(members) = self {
                match members.iter_mut().find(|(k, _)| k == key) {
                    Some(slot) => slot.1 = value,
                    None => members.push((key.to_owned(), value)),
                }
            }
        }
        fn number(n: f64) -> Self {
            Plain::Number(n)
        }
        fn string(s: &str) -> Self {
            Plain::Str(s.to_owned())
        }
        fn boolean(b: bool) -> Self {
            Plain::Bool(b)
        }
        fn array(items: Vec<Self>) -> Self {
            Plain::Array(items)
        }
    }
}

#[cfg(test)]
#[cfg(target_arch = "wasm32")]
mod tests {
    use super::*;
    use outbox_core::clock::SplitMix64;
    use outbox_driver::conformance::sample_entry;
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
        let mut bad_error = JsValue::object();
        bad_error.set("message", JsValue::from_str("m"));
        bad_error.set("status", JsValue::from_f64(70_000.0));
        expect_bad("error", bad_error, "error.status");
        let bad_error = <JsValue as RecordBuild>::object();
        expect_bad("error", bad_error, "error.message");
        let mut bad_error = JsValue::object();
        bad_error.set("message", JsValue::from_str("m"));
        bad_error.set("code", JsValue::from_f64(1.0));
        expect_bad("error", bad_error, "error.code");
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

/// The codec on plain trees, natively: the round trip, and fuzzing at
/// volume (`OUTBOX_FUZZ_CASES` records; `cargo xtask fuzz` runs 1,000,000).
#[cfg(test)]
#[cfg(not(target_arch = "wasm32"))]
mod native_tests {
    use super::plain::Plain;
    use super::*;
    use outbox_core::clock::SplitMix64;
    use outbox_driver::conformance::sample_entry;
    use outbox_fuzz::{Rng, run};

    /// An entry with every field drawn at random, edges over-represented.
    fn random_entry(rng: &mut Rng) -> Entry {
        let mut seed = SplitMix64::new(rng.next_u64());
        let mut e = sample_entry(&mut seed, &rng.text(8), "https://api.mypurecloud.ie", b"{}");
        e.seq = rng.interesting_u64() % (MAX_SAFE_INTEGER + 1);
        e.request.body = vec![0; rng.below(4)];
        for _ in 0..rng.below(3) {
            e.request.headers.push((rng.text(6), rng.text(6)));
        }
        e.needs_token = rng.one_in(2);
        e.created_at = rng.interesting_u64();
        e.not_before = rng.interesting_u64();
        e.attempts = rng.interesting_u64() as u32;
        e.failures = rng.below(5) as u32;
        e.auth_failures = rng.below(3) as u32;
        e.auth_since = rng.one_in(2).then(|| rng.interesting_u64());
        e.state = match rng.below(4) {
            0 => EntryState::Pending,
            1 => EntryState::AwaitingToken,
            2 => EntryState::InFlight {
                lease_until: rng.interesting_u64(),
            },
            _ => EntryState::Dead {
                at: rng.interesting_u64(),
            },
        };
        e.last_error = rng.one_in(2).then(|| LastError {
            status: rng.one_in(2).then(|| rng.below(70_000) as u16),
            code: rng.one_in(2).then(|| rng.text(6)),
            message: rng.text(10),
            context_id: rng.one_in(2).then(|| rng.text(6)),
        });
        e
    }

    fn to_json(v: &Plain) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            Plain::Undefined | Plain::Null => J::Null,
            Plain::Bool(b) => J::Bool(*b),
            Plain::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
            Plain::Str(s) => J::String(s.clone()),
            Plain::Array(items) => J::Array(items.iter().map(to_json).collect()),
            Plain::Object(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        }
    }

    fn from_json(v: &serde_json::Value) -> Plain {
        use serde_json::Value as J;
        match v {
            J::Null => Plain::Null,
            J::Bool(b) => Plain::Bool(*b),
            J::Number(n) => Plain::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => Plain::Str(s.clone()),
            J::Array(items) => Plain::Array(items.iter().map(from_json).collect()),
            J::Object(m) => {
                Plain::Object(m.iter().map(|(k, v)| (k.clone(), from_json(v))).collect())
            }
        }
    }

    const FIELDS: &[&str] = &[
        "authSince",
        "raw",
        "seq",
        "id",
        "lane",
        "route",
        "origin",
        "method",
        "url",
        "headers",
        "size",
        "bodyLen",
        "key",
        "needsToken",
        "createdAt",
        "attempts",
        "failures",
        "authFailures",
        "notBefore",
        "state",
        "leaseUntil",
        "deadAt",
        "error",
        "status",
        "code",
        "message",
        "contextId",
    ];

    /// A value of a random kind for a field (the wrong kind, often).
    fn odd_value(rng: &mut Rng) -> Plain {
        match rng.below(9) {
            0 => Plain::Undefined,
            1 => Plain::Null,
            2 => Plain::Bool(rng.one_in(2)),
            3 => Plain::Number(rng.pick(&[
                -1.0,
                0.5,
                1e300,
                f64::NAN,
                f64::INFINITY,
                9_007_199_254_740_992.0,
                4_294_967_296.0,
                70_000.0,
            ])),
            4 => Plain::Number(rng.interesting_u64() as f64),
            5 => Plain::Str(
                rng.pick(&[
                    "pending",
                    "in-flight",
                    "dead",
                    "awaiting-token",
                    "sleeping",
                    "-1",
                    "18446744073709551616",
                    "00000000-0000-0000-0000-000000000000",
                ])
                .to_owned(),
            ),
            6 => Plain::Str(rng.text(8)),
            7 => Plain::Array(vec![Plain::Str(rng.text(3)); rng.below(3)]),
            _ => Plain::Object(vec![("message".into(), Plain::Str(rng.text(3)))]),
        }
    }

    #[test]
    fn entries_round_trip_on_plain_trees() {
        let mut rng = Rng::new(7);
        for _ in 0..2_000 {
            let entry = random_entry(&mut rng);
            let plain: Plain = encode_entry_to(&Record::new(entry.clone())).expect("encodes");
            let record = decode_entry(&plain).expect("decodes");
            let mut without_body = entry.clone();
            without_body.request.body.clear();
            assert_eq!(record.entry, without_body);
            assert_eq!(record.body_len, entry.request.body.len());
            assert_eq!(decode_head(&plain).expect("head"), entry.head());
            let summary = decode_summary(&plain).expect("summary");
            assert_eq!(summary.size, entry.request.size_bytes() as u64);
            assert_eq!((summary.lane, summary.state), (entry.lane, entry.state));
            assert_eq!(summary.created_at, entry.created_at);
            assert_eq!(decode_seq(&plain.get("seq"), ENTRY, "seq"), Ok(entry.seq));
        }
        let mut e = random_entry(&mut rng);
        e.seq = MAX_SAFE_INTEGER + 1;
        assert!(encode_entry_to::<Plain>(&Record::new(e)).is_err());
    }

    /// Stored records, mangled: every decoder answers with a value or a
    /// `CodecError`, never a panic; what decodes re-encodes to a record
    /// that decodes to the same entry.
    #[test]
    fn fuzz_stored_record_codec() {
        run(
            "stored-record codec",
            &[
                "\"seq\":",
                "\"state\":\"dead\"",
                "\"error\":{}",
                "\"headers\":[[]]",
                "1e300",
                "-1",
                "null",
            ],
            |rng| {
                let mut plain: Plain =
                    encode_entry_to(&Record::new(random_entry(rng))).unwrap_or(Plain::Null);
                for _ in 0..rng.below(4) {
                    let field = rng.pick(FIELDS);
                    if rng.one_in(3) {
                        if let Plain::Object(m) = &mut plain {
                            m.retain(|(k, _)| k != field);
                        }
                    } else if field == "status"
                        || field == "code"
                        || field == "message"
                        || field == "contextId"
                    {
                        let mut error = plain.get("error");
                        if !matches!(error, Plain::Object(_)) {
                            error = Plain::object();
                        }
                        error.set(field, odd_value(rng));
                        plain.set("error", error);
                    } else {
                        plain.set(field, odd_value(rng));
                    }
                }
                to_json(&plain).to_string().into_bytes()
            },
            |input| {
                let plain = match serde_json::from_slice::<serde_json::Value>(input) {
                    Ok(v) => from_json(&v),
                    Err(_) => Plain::Str(String::from_utf8_lossy(input).into_owned()),
                };
                let _ = decode_head(&plain);
                let _ = decode_summary(&plain);
                let _ = decode_seq(&plain.get("seq"), ENTRY, "seq");
                let Ok(record) = decode_entry(&plain) else {
                    return Ok(());
                };
                outbox_fuzz::accept();
                let again: Plain = encode_entry_to(&record).map_err(|e| e.to_string())?;
                let back = decode_entry(&again).map_err(|e| format!("re-encoded record: {e}"))?;
                if back != record {
                    return Err("a decoded record does not round-trip".into());
                }
                Ok(())
            },
        );
    }
}
