//! Entries to and from the records IndexedDB stores, as JSON text.
//!
//! The host hands the module a stored record as the JSON of the value it
//! read (`JSON.stringify`), and stores what the module hands back as the
//! value of `JSON.parse`: the record layout *is* the JSON object below, so
//! the host translates nothing. The layout is the one the Rust store wrote
//! before the TypeScript host (an existing database opens and drains
//! unchanged: `testdata/idb-v1`).
//!
//! Decoding is written once, over two small traits — [`RecordValue`] (read
//! a field, a number, a string, …) and [`RecordBuild`] (make one) — which
//! the JSON text implements ([`Json`], [`JsonOut`]) and, in the tests, a
//! plain tree (`plain::Plain`) on which the codec is fuzzed at volume.
//! Decoding checks every field and returns a [`CodecError`] on anything
//! odd — a wrong type, a fractional or negative number, an unknown state —
//! and never panics.
//!
//! # The entry record (`entries` and `dead` stores)
//!
//! | field | JSON type | meaning |
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
//! The body is stored apart, as a `Uint8Array` keyed by `seq` (the
//! `bodies` store); it crosses the boundary as bytes.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use outbox_core::classify::LastError;
use outbox_core::entry::{CORRUPT, Entry, EntryId, EntryState, Head, Seq, StoredRequest};
use outbox_core::json::{self, Kind, Value};
use outbox_core::store::Summary;

use crate::error::CodecError;

/// The largest integer a JS number holds exactly (2⁵³ − 1).
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

const ENTRY: &str = "entry";

/// A stored value, read: what decoding asks of a value.
pub trait RecordValue: Sized {
    /// `self[key]`: absent when missing (or when `self` is not an object).
    fn get(&self, key: &str) -> Self;
    /// `undefined` or `null`.
    fn is_absent(&self) -> bool;
    /// An object (arrays included, as in JS).
    fn is_object(&self) -> bool;
    /// A number: `Some(Some(n))` for a whole number from 0 to 2⁵³ − 1,
    /// `Some(None)` for any other number, `None` for what is not a number.
    fn as_count(&self) -> Option<Option<u64>>;
    /// The string, when it is one.
    fn as_string(&self) -> Option<String>;
    /// The boolean, when it is one.
    fn as_bool(&self) -> Option<bool>;
    /// The elements, when it is an array.
    fn items(&self) -> Option<Vec<Self>>;
}

/// A stored value, built: what encoding asks of a value.
pub trait RecordBuild: Sized {
    /// A new empty object.
    fn object() -> Self;
    /// `self[key] = value` on an object made by [`RecordBuild::object`]
    /// (each key set once).
    fn set(&mut self, key: &str, value: Self);
    /// A whole number (every number of a record is one).
    fn number(n: u64) -> Self;
    /// A string.
    fn string(s: &str) -> Self;
    /// A boolean.
    fn boolean(b: bool) -> Self;
    /// An array.
    fn array(items: Vec<Self>) -> Self;
}

/// A value of a JSON text, as the host wrote it (`JSON.stringify`), read
/// where it stands.
#[derive(Debug, Clone, Copy)]
pub struct Json<'a>(Option<Value<'a>>);

impl<'a> Json<'a> {
    /// The value of the JSON text `text` (absent when it is not JSON).
    pub fn root(text: &'a str) -> Self {
        Self(json::find(text.as_bytes(), &[]))
    }

    /// Its raw text.
    pub fn raw(&self) -> &'a [u8] {
        self.0.map_or(&[][..], |v| v.raw)
    }
}

impl RecordValue for Json<'_> {
    fn get(&self, key: &str) -> Self {
        match self.0 {
            Some(v) if v.kind == Kind::Object => Self(json::find(v.raw, &[key])),
            _ => Self(None),
        }
    }
    fn is_absent(&self) -> bool {
        self.0.is_none_or(|v| v.kind == Kind::Null)
    }
    fn is_object(&self) -> bool {
        self.0
            .is_some_and(|v| matches!(v.kind, Kind::Object | Kind::Array))
    }
    fn as_count(&self) -> Option<Option<u64>> {
        let v = self.0.filter(|v| v.kind == Kind::Number)?;
        // `JSON.stringify` writes a whole number below 10²¹ as plain
        // digits; anything else (a sign, a fraction, an exponent) is not a
        // safe non-negative integer.
        let digits = v.raw;
        let whole =
            !digits.is_empty() && digits.len() <= 16 && digits.iter().all(u8::is_ascii_digit);
        Some(
            whole
                .then(|| {
                    digits
                        .iter()
                        .fold(0u64, |n, d| n * 10 + u64::from(d - b'0'))
                })
                .filter(|n| *n <= MAX_SAFE_INTEGER),
        )
    }
    fn as_string(&self) -> Option<String> {
        self.0?.as_str().map(|s| s.into_owned())
    }
    fn as_bool(&self) -> Option<bool> {
        let v = self.0.filter(|v| v.kind == Kind::Bool)?;
        Some(v.raw == b"true")
    }
    fn items(&self) -> Option<Vec<Self>> {
        let v = self.0.filter(|v| v.kind == Kind::Array)?;
        Some(
            json::items(v.raw)?
                .into_iter()
                .map(|i| Self(Some(i)))
                .collect(),
        )
    }
}

/// A JSON text being built: the value the host stores is its `JSON.parse`.
#[derive(Debug, Clone)]
pub struct JsonOut {
    text: String,
    /// An object not yet closed (its `}` is added by [`JsonOut::finish`]).
    open: bool,
}

impl JsonOut {
    fn done(text: String) -> Self {
        Self { text, open: false }
    }

    /// The JSON text.
    pub fn finish(mut self) -> String {
        if self.open {
            self.text.push('}');
        }
        self.text
    }
}

impl RecordBuild for JsonOut {
    fn object() -> Self {
        Self {
            text: String::from("{"),
            open: true,
        }
    }
    fn set(&mut self, key: &str, value: Self) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        json::write_string(&mut self.text, key);
        self.text.push(':');
        self.text.push_str(&value.finish());
    }
    fn number(n: u64) -> Self {
        let mut text = String::new();
        json::push_u64(&mut text, n);
        Self::done(text)
    }
    fn string(s: &str) -> Self {
        Self::done(json::string(s))
    }
    fn boolean(b: bool) -> Self {
        Self::done(String::from(if b { "true" } else { "false" }))
    }
    fn array(items: Vec<Self>) -> Self {
        let mut text = String::from("[");
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push_str(&item.finish());
        }
        text.push(']');
        Self::done(text)
    }
}

/// A `u64` as a stored value: a number when exact, else a decimal string.
fn u64_value<V: RecordBuild>(v: u64) -> V {
    if v <= MAX_SAFE_INTEGER {
        V::number(v)
    } else {
        let mut text = String::new();
        json::push_u64(&mut text, v);
        V::string(&text)
    }
}

/// A safe non-negative integer, or an error naming `record`/`field`.
fn safe_integer<V: RecordValue>(
    v: &V,
    record: &'static str,
    field: &'static str,
) -> Result<u64, CodecError> {
    match v.as_count() {
        Some(Some(n)) => Ok(n),
        Some(None) => Err(CodecError::new(
            record,
            field,
            "is not a safe non-negative integer",
        )),
        None if v.is_absent() => Err(CodecError::new(record, field, "is missing")),
        None => Err(CodecError::new(record, field, "is not a number")),
    }
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
pub fn check_seq(seq: Seq) -> Result<Seq, CodecError> {
    if seq > MAX_SAFE_INTEGER {
        return Err(CodecError::new(
            ENTRY,
            "seq",
            "is above 2^53-1 and cannot be a key",
        ));
    }
    Ok(seq)
}

/// Reads a `seq` (a key, or the `nextSeq` counter).
pub fn decode_seq<V: RecordValue>(
    value: &V,
    record: &'static str,
    field: &'static str,
) -> Result<Seq, CodecError> {
    safe_integer(value, record, field)
}

fn encode_error<V: RecordBuild>(e: &LastError) -> V {
    let mut obj = V::object();
    if let Some(status) = e.status {
        obj.set("status", V::number(u64::from(status)));
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
pub struct Record {
    /// The entry; `request.body` is empty unless attached.
    pub entry: Entry,
    /// The length of the body stored apart.
    pub body_len: usize,
    /// A record that could not be read back, as JSON ([`salvage`]).
    pub raw: Option<String>,
}

impl Record {
    /// The record of an entry that holds its body.
    pub fn new(entry: Entry) -> Self {
        Self {
            body_len: entry.request.body.len(),
            entry,
            raw: None,
        }
    }
}

/// Encodes everything of `record` but the body (stored apart), as the JSON
/// text of the value to store.
pub fn encode(record: &Record) -> Result<String, CodecError> {
    encode_to::<JsonOut>(record).map(JsonOut::finish)
}

/// Encodes everything of `record` but the body (stored apart).
pub fn encode_to<V: RecordBuild>(record: &Record) -> Result<V, CodecError> {
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
        .map(|(name, value)| V::array(alloc::vec![V::string(name), V::string(value)]))
        .collect();
    obj.set("headers", V::array(headers));
    obj.set("size", u64_value(size as u64));
    obj.set("bodyLen", u64_value(record.body_len as u64));
    obj.set("key", V::string(&entry.idempotency_key));
    obj.set("needsToken", V::boolean(entry.needs_token));
    obj.set("createdAt", u64_value(entry.created_at));
    obj.set("attempts", V::number(u64::from(entry.attempts)));
    obj.set("failures", V::number(u64::from(entry.failures)));
    obj.set("authFailures", V::number(u64::from(entry.auth_failures)));
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
pub fn decode<V: RecordValue>(value: &V) -> Result<Record, CodecError> {
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
pub fn decode_head<V: RecordValue>(value: &V) -> Result<Head, CodecError> {
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

/// Decodes what stats count of an entry record ([`Summary`]).
pub fn decode_summary<V: RecordValue>(value: &V) -> Result<Summary, CodecError> {
    check_object(value, ENTRY)?;
    Ok(Summary {
        lane: get_string(value, "lane")?,
        state: decode_state(value)?,
        created_at: get_u64(value, "createdAt")?,
        size: get_u64(value, "size")?,
    })
}

/// The longest raw record a salvaged dead letter's message quotes.
const RAW_QUOTE: usize = 2_000;

/// Makes what can be read of an undecodable entry record (a "poison
/// record", `text` its JSON) into a dead letter with reason [`CORRUPT`]:
/// its `seq` (given: the record's key), and its id, lane, route, origin,
/// method and URL where they read as they should; the decoding error and
/// the raw record in its error message and, whole, in `raw`. The head it
/// gives the planner is marked [`Head::corrupt`].
pub fn salvage(text: &str, seq: Seq, why: &CodecError, now: u64) -> Record {
    let value = Json::root(text);
    let text_of = |field: &str| value.get(field).as_string().unwrap_or_default();
    let quoted: String = text.chars().take(RAW_QUOTE).collect();
    let id = decode_id(&value).unwrap_or_else(|_| {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        EntryId::from_bytes(bytes)
    });
    let lane = Some(text_of("lane"))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| {
            let mut lane = String::from("corrupt-");
            json::push_u64(&mut lane, seq);
            lane
        });
    let mut message = String::from("the stored record could not be read back (");
    message.push_str(&why.text());
    message.push_str("); record: ");
    message.push_str(&quoted);
    let entry = Entry {
        id,
        seq,
        lane,
        route: text_of("route"),
        origin: text_of("origin"),
        request: StoredRequest {
            method: text_of("method"),
            url: text_of("url"),
            headers: Vec::new(),
            body: Vec::new(),
        },
        idempotency_key: text_of("key"),
        needs_token: false,
        created_at: get_u64(&value, "createdAt").unwrap_or(now),
        attempts: 0,
        failures: 0,
        auth_failures: 0,
        auth_since: None,
        not_before: now,
        state: EntryState::Pending,
        last_error: Some(LastError::new(CORRUPT, message)),
    };
    let body_len = get_u64(&value, "bodyLen")
        .ok()
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(0);
    Record {
        entry,
        body_len,
        raw: Some(text.to_owned()),
    }
}

/// A plain value tree that implements the record traits: the codec's tests
/// (and its fuzzing) run on it.
#[cfg(test)]
pub(crate) mod plain {
    use super::{MAX_SAFE_INTEGER, RecordBuild, RecordValue};
    use std::borrow::ToOwned;
    use std::string::String;
    use std::vec::Vec;

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
        fn as_count(&self) -> Option<Option<u64>> {
            match self {
                Plain::Number(n) => Some(
                    (n.is_finite()
                        && *n >= 0.0
                        && n.fract() == 0.0
                        && *n <= MAX_SAFE_INTEGER as f64)
                        .then_some(*n as u64),
                ),
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
        fn number(n: u64) -> Self {
            Plain::Number(n as f64)
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
mod tests {
    use super::plain::Plain;
    use super::*;
    use outbox_core::clock::SplitMix64;
    use outbox_driver::conformance::sample_entry;
    use outbox_fuzz::{Rng, run};
    use std::string::ToString;
    use std::vec;

    fn entries() -> Vec<Entry> {
        let mut rng = SplitMix64::new(77);
        let mut out = Vec::new();
        let plain = sample_entry(&mut rng, "lane-1", "https://api.mypurecloud.ie", b"{}");
        out.push(plain.clone());
        let mut e = plain.clone();
        e.seq = MAX_SAFE_INTEGER;
        e.lane = "héllo ✓ \u{0} \"lane\"".into();
        e.request.headers.clear();
        e.request.body = vec![0, 255, 1, 2];
        e.needs_token = false;
        e.created_at = u64::MAX;
        e.not_before = MAX_SAFE_INTEGER + 1;
        e.attempts = u32::MAX;
        e.failures = 3;
        e.auth_failures = 2;
        e.auth_since = Some(MAX_SAFE_INTEGER);
        e.state = EntryState::InFlight {
            lease_until: 12_345,
        };
        e.last_error = Some(LastError {
            status: Some(503),
            code: Some("service.unavailable".into()),
            message: "down \u{2028} \\ \"x\"".into(),
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

    #[test]
    fn entries_round_trip_through_json_text() {
        for entry in entries() {
            let text = encode(&Record::new(entry.clone())).unwrap();
            serde_json::from_str::<serde_json::Value>(&text).expect("the text is JSON");
            let record = decode(&Json::root(&text)).unwrap();
            assert_eq!(record.entry, without_body(&entry));
            assert_eq!(record.body_len, entry.request.body.len());
            // Re-encoding a record without its body keeps size and length.
            let again = decode(&Json::root(&encode(&record).unwrap())).unwrap();
            assert_eq!(again, record);
            assert_eq!(decode_head(&Json::root(&text)).unwrap(), entry.head());
            let summary = decode_summary(&Json::root(&text)).unwrap();
            assert_eq!(
                (summary.lane, summary.state, summary.size),
                (entry.lane, entry.state, entry.request.size_bytes() as u64)
            );
        }
    }

    /// What the host hands over is `JSON.stringify` of what IndexedDB
    /// gives back: serde's printing of the same value stands in for it
    /// (numbers as plain digits, any key order).
    #[test]
    fn records_as_the_host_stringifies_them_decode() {
        for entry in entries() {
            let text = encode(&Record::new(entry.clone())).unwrap();
            let value: serde_json::Value = serde_json::from_str(&text).unwrap();
            let mut members: Vec<_> = value.as_object().unwrap().iter().collect();
            members.reverse();
            let reordered = serde_json::Value::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
            .to_string();
            assert_eq!(
                decode(&Json::root(&reordered)).unwrap().entry,
                without_body(&entry)
            );
        }
    }

    #[test]
    fn the_fixture_of_the_rust_store_decodes_as_it_was_written() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../testdata/idb-v1/outbox.json"
        ))
        .unwrap();
        let dump: serde_json::Value = serde_json::from_str(&text).unwrap();
        let mut seen = 0;
        for store in ["entries", "dead"] {
            for r in dump["stores"][store]["records"].as_array().unwrap() {
                let json = r["value"].to_string();
                let record = decode(&Json::root(&json)).unwrap();
                assert_eq!(Some(record.entry.seq), r["key"].as_u64());
                // Written back, it is the record as it was.
                let again: serde_json::Value =
                    serde_json::from_str(&encode(&record).unwrap()).unwrap();
                assert_eq!(again, r["value"], "{store} {}", r["key"]);
                seen += 1;
            }
        }
        assert_eq!(seen, 11);
    }

    #[test]
    fn odd_records_are_errors_naming_the_field() {
        let good = encode(&Record::new(entries()[1].clone())).unwrap();
        let base: serde_json::Value = serde_json::from_str(&good).unwrap();
        let bad = |field: &str, value: Option<serde_json::Value>, expected: &str| {
            let mut v = base.clone();
            match value {
                Some(x) => v[field] = x,
                None => {
                    v.as_object_mut().unwrap().remove(field);
                }
            }
            let text = v.to_string();
            let err = decode(&Json::root(&text)).expect_err(field);
            assert_eq!(err.field, expected, "{field}: {err}");
        };
        use serde_json::json;
        bad("seq", None, "seq");
        bad("seq", Some(json!(-3)), "seq");
        bad("seq", Some(json!(1.5)), "seq");
        bad("id", Some(json!("not-a-uuid")), "id");
        bad("lane", Some(json!(null)), "lane");
        bad("lane", Some(json!(1)), "lane");
        bad("headers", Some(json!("a: b")), "headers");
        bad("headers", Some(json!([["a"]])), "headers");
        bad("headers", Some(json!([["a", 1]])), "headers");
        bad("bodyLen", None, "bodyLen");
        bad("needsToken", Some(json!("yes")), "needsToken");
        bad("createdAt", Some(json!("soon")), "createdAt");
        bad("attempts", Some(json!(4_294_967_296u64)), "attempts");
        bad("state", Some(json!("sleeping")), "state");
        bad("leaseUntil", None, "leaseUntil");
        bad("error", Some(json!("oops")), "error");
        bad(
            "error",
            Some(json!({"message": "m", "status": 70000})),
            "error.status",
        );
        bad("error", Some(json!({})), "error.message");
        bad(
            "error",
            Some(json!({"message": "m", "code": 1})),
            "error.code",
        );
        for not_object in ["null", "1", "\"entry\"", "", "{"] {
            assert!(decode(&Json::root(not_object)).is_err(), "{not_object}");
            assert!(decode_head(&Json::root(not_object)).is_err());
            assert!(decode_summary(&Json::root(not_object)).is_err());
        }
        // A null error is no error.
        let mut v = base.clone();
        v["error"] = serde_json::Value::Null;
        assert_eq!(
            decode(&Json::root(&v.to_string()))
                .unwrap()
                .entry
                .last_error,
            None
        );
    }

    #[test]
    fn a_poison_record_is_salvaged_with_what_reads() {
        let text = r#"{"seq":9,"id":"nope","lane":"c1","route":"agent-send","origin":"https://a","method":"POST","url":"https://a/x","createdAt":5,"bodyLen":3}"#;
        let why = decode(&Json::root(text)).expect_err("poison");
        let r = salvage(text, 9, &why, 77);
        assert_eq!((r.entry.seq, r.entry.lane.as_str()), (9, "c1"));
        assert_eq!(
            (r.entry.created_at, r.entry.not_before, r.body_len),
            (5, 77, 3)
        );
        assert!(r.entry.is_corrupt());
        assert_eq!(r.raw.as_deref(), Some(text));
        let message = &r.entry.last_error.as_ref().unwrap().message;
        assert!(
            message.contains("field `id`") && message.contains(text),
            "{message}"
        );
        let r = salvage("[1]", 4, &why, 77);
        assert_eq!(r.entry.lane, "corrupt-4");
        // A salvaged record is written, and read back, as a record.
        let again = decode(&Json::root(&encode(&r).unwrap())).unwrap();
        assert_eq!(again, r);
    }

    #[test]
    fn seq_keys_are_safe_integers() {
        assert_eq!(check_seq(7), Ok(7));
        assert!(check_seq(MAX_SAFE_INTEGER + 1).is_err());
        let mut e = entries().remove(0);
        e.seq = MAX_SAFE_INTEGER + 1;
        assert!(encode(&Record::new(e)).is_err());
        assert_eq!(decode_seq(&Json::root("3"), "meta", "nextSeq"), Ok(3));
        for bad in [
            "-1",
            "1.5",
            "9007199254740992",
            "\"3\"",
            "true",
            "null",
            "1e3",
        ] {
            assert!(
                decode_seq(&Json::root(bad), "meta", "nextSeq").is_err(),
                "{bad}"
            );
        }
    }

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
            Plain::Number(n) if n.fract() == 0.0 && *n >= 0.0 && *n < 1.8e19 => J::from(*n as u64),
            Plain::Number(n) => serde_json::Number::from_f64(*n).map_or(J::Null, J::Number),
            Plain::Str(s) => J::String(s.clone()),
            Plain::Array(items) => J::Array(items.iter().map(to_json).collect()),
            Plain::Object(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), to_json(v))).collect()),
        }
    }

    #[test]
    fn plain_trees_and_json_text_agree() {
        let mut rng = Rng::new(7);
        for _ in 0..2_000 {
            let entry = random_entry(&mut rng);
            let plain: Plain = encode_to(&Record::new(entry.clone())).expect("encodes");
            let record = decode(&plain).expect("decodes");
            assert_eq!(record.entry, without_body(&entry));
            // The JSON text the module writes is the plain tree's JSON.
            let text = encode(&Record::new(entry.clone())).unwrap();
            let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert_eq!(parsed, to_json(&plain));
            assert_eq!(decode(&Json::root(&text)).unwrap(), record);
            assert_eq!(decode_head(&plain).expect("head"), entry.head());
        }
        for absent in [Plain::Null, Plain::Undefined, Plain::Str("x".into())] {
            assert!(decode(&absent).is_err());
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
    fn odd_value(rng: &mut Rng) -> serde_json::Value {
        use serde_json::json;
        match rng.below(9) {
            0 => json!(null),
            1 => json!(rng.one_in(2)),
            2 => json!(rng.pick(&[
                -1.0,
                0.5,
                1e300,
                9_007_199_254_740_992.0,
                4_294_967_296.0,
                70_000.0
            ])),
            3 => json!(rng.interesting_u64()),
            4 => json!(rng.pick(&[
                "pending",
                "in-flight",
                "dead",
                "awaiting-token",
                "sleeping",
                "-1",
                "18446744073709551616",
                "00000000-0000-0000-0000-000000000000",
            ])),
            5 => json!(rng.text(8)),
            6 => json!(vec![rng.text(3); rng.below(3)]),
            7 => json!([[rng.text(2), rng.text(2)]]),
            _ => json!({"message": rng.text(3)}),
        }
    }

    /// Stored records, mangled, as JSON text: every decoder answers with a
    /// value or a `CodecError`, never a panic; what decodes re-encodes to
    /// a record that decodes to the same entry; what does not is salvaged.
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
                let text = encode(&Record::new(random_entry(rng))).unwrap_or_default();
                let mut v: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
                for _ in 0..rng.below(4) {
                    let field = rng.pick(FIELDS);
                    let Some(m) = v.as_object_mut() else { break };
                    if rng.one_in(3) {
                        m.remove(field);
                    } else if ["status", "code", "message", "contextId"].contains(&field) {
                        let error = m.entry("error").or_insert_with(|| serde_json::json!({}));
                        if !error.is_object() {
                            *error = serde_json::json!({});
                        }
                        error[field] = odd_value(rng);
                    } else {
                        m.insert(field.to_string(), odd_value(rng));
                    }
                }
                v.to_string().into_bytes()
            },
            |input| {
                let text = std::string::String::from_utf8_lossy(input);
                let value = Json::root(&text);
                let _ = decode_head(&value);
                let _ = decode_summary(&value);
                let _ = decode_seq(&value.get("seq"), ENTRY, "seq");
                let record = match decode(&value) {
                    Ok(record) => record,
                    Err(why) => {
                        let salvaged = salvage(&text, 1, &why, 5);
                        if !salvaged.entry.is_corrupt() {
                            return Err("a salvaged record must be corrupt".into());
                        }
                        return Ok(());
                    }
                };
                outbox_fuzz::accept();
                let again = encode(&record).map_err(|e| e.to_string())?;
                let back = decode(&Json::root(&again))
                    .map_err(|e| std::format!("re-encoded record: {e}"))?;
                if back != record {
                    return Err("a decoded record does not round-trip".into());
                }
                Ok(())
            },
        );
    }
}
