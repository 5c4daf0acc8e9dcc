//! Entries to and from rows of `queue` and `dead`.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `seq` | integer | [`Entry::seq`], the primary key |
//! | `id` | blob (16 bytes) | [`Entry::id`] |
//! | `lane`, `route`, `origin`, `method`, `url` | text | as in [`Entry`] and its request |
//! | `headers` | text | the kept headers, JSON `[[name, value], …]` |
//! | `idem_key` | text | [`Entry::idempotency_key`] |
//! | `needs_token` | integer (0, 1) | [`Entry::needs_token`] |
//! | `created_at`, `not_before`, `auth_since` | integer | ms since the epoch (`auth_since` null: no run of `401`s) |
//! | `attempts`, `failures`, `auth_failures` | integer | counters |
//! | `state` | text | `pending`, `in-flight`, `awaiting-token` (`dead` in `dead`) |
//! | `lease_until` | integer | only when `in-flight` |
//! | `error` | text | JSON `{status?, code?, message, contextId?}` ([`LastError`]), or null |
//! | `size` | integer | [`StoredRequest::size_bytes`], so that stats never read bodies |
//! | `dead_at` | integer, `dead` only | when it died |
//!
//! The body is kept apart, in `bodies`. Every number is an SQLite integer
//! (a signed 64-bit one); a value that does not fit its field, an unknown
//! state, an id that is not 16 bytes or headers that are not the JSON above
//! make a [`CodecError`], never a panic: such a record (a hand edit, a
//! bug) is *salvaged* ([`salvage`]) and becomes a `corrupt` dead letter
//! when it reaches the head of its lane, as in the browser's store.

use outbox_core::classify::LastError;
use outbox_core::entry::{CORRUPT, Entry, EntryId, EntryState, Head, Seq, StoredRequest};
use outbox_core::store::Summary;
use rusqlite::Row;
use rusqlite::types::{Value, ValueRef};

/// The columns every entry query selects, in this order.
pub const COLS: &str = "seq, id, lane, route, origin, method, url, headers, idem_key, needs_token, \
     created_at, not_before, attempts, failures, auth_failures, auth_since, state, lease_until, error, size";

/// The same columns, each `q.`-qualified (for joins).
pub const Q_COLS: &str = "q.seq, q.id, q.lane, q.route, q.origin, q.method, q.url, q.headers, q.idem_key, \
     q.needs_token, q.created_at, q.not_before, q.attempts, q.failures, q.auth_failures, q.auth_since, \
     q.state, q.lease_until, q.error, q.size";

/// A row that does not read back as an entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("column `{column}`: {problem}")]
pub struct CodecError {
    /// The column.
    pub column: &'static str,
    /// What is wrong.
    pub problem: String,
}

fn bad(column: &'static str, problem: impl Into<String>) -> CodecError {
    CodecError {
        column,
        problem: problem.into(),
    }
}

/// The row's values, read loosely (any type), so that decoding decides
/// what is wrong.
pub struct Raw(Vec<Value>);

impl Raw {
    /// The first `n` columns of `row`.
    pub fn of(row: &Row<'_>, n: usize) -> rusqlite::Result<Self> {
        (0..n)
            .map(|i| row.get_ref(i).map(Value::from))
            .collect::<rusqlite::Result<Vec<_>>>()
            .map(Self)
    }

    fn at(&self, i: usize) -> &Value {
        self.0.get(i).unwrap_or(&Value::Null)
    }

    fn int(&self, i: usize, column: &'static str) -> Result<i64, CodecError> {
        match self.at(i) {
            Value::Integer(n) => Ok(*n),
            other => Err(bad(column, format!("not an integer: {other:?}"))),
        }
    }

    fn u64(&self, i: usize, column: &'static str) -> Result<u64, CodecError> {
        u64::try_from(self.int(i, column)?).map_err(|_| bad(column, "negative"))
    }

    fn u32(&self, i: usize, column: &'static str) -> Result<u32, CodecError> {
        u32::try_from(self.int(i, column)?).map_err(|_| bad(column, "out of range"))
    }

    fn opt_u64(&self, i: usize, column: &'static str) -> Result<Option<u64>, CodecError> {
        match self.at(i) {
            Value::Null => Ok(None),
            _ => self.u64(i, column).map(Some),
        }
    }

    fn text(&self, i: usize, column: &'static str) -> Result<String, CodecError> {
        match self.at(i) {
            Value::Text(s) => Ok(s.clone()),
            other => Err(bad(column, format!("not text: {other:?}"))),
        }
    }

    /// The text at `i`, or empty: for salvage.
    fn text_or_empty(&self, i: usize) -> String {
        match self.at(i) {
            Value::Text(s) => s.clone(),
            _ => String::new(),
        }
    }

    fn id(&self) -> Result<EntryId, CodecError> {
        match self.at(1) {
            Value::Blob(b) => <[u8; 16]>::try_from(b.as_slice())
                .map(EntryId::from_bytes)
                .map_err(|_| bad("id", format!("{} bytes, not 16", b.len()))),
            other => Err(bad("id", format!("not a blob: {other:?}"))),
        }
    }

    fn state(&self) -> Result<EntryState, CodecError> {
        match self.text(16, "state")?.as_str() {
            "pending" => Ok(EntryState::Pending),
            "awaiting-token" => Ok(EntryState::AwaitingToken),
            "in-flight" => Ok(EntryState::InFlight {
                lease_until: self
                    .opt_u64(17, "lease_until")?
                    .ok_or_else(|| bad("lease_until", "missing for an entry in flight"))?,
            }),
            other => Err(bad("state", format!("unknown state `{other}`"))),
        }
    }
}

/// Reads a row of [`COLS`] (a queued entry, or a dead letter when
/// `dead_at` is given) without its body.
pub fn entry(raw: &Raw, dead_at: Option<u64>) -> Result<Entry, CodecError> {
    let headers = raw.text(7, "headers")?;
    let headers: Vec<(String, String)> =
        serde_json::from_str(&headers).map_err(|e| bad("headers", e.to_string()))?;
    let error = match raw.at(18) {
        Value::Null => None,
        Value::Text(t) => Some(decode_error(t)?),
        other => return Err(bad("error", format!("not text: {other:?}"))),
    };
    let needs_token = match raw.int(9, "needs_token")? {
        0 => false,
        1 => true,
        n => return Err(bad("needs_token", format!("{n} is not 0 or 1"))),
    };
    Ok(Entry {
        id: raw.id()?,
        seq: raw.u64(0, "seq")?,
        lane: raw.text(2, "lane")?,
        route: raw.text(3, "route")?,
        origin: raw.text(4, "origin")?,
        request: StoredRequest {
            method: raw.text(5, "method")?,
            url: raw.text(6, "url")?,
            headers,
            body: Vec::new(),
        },
        idempotency_key: raw.text(8, "idem_key")?,
        needs_token,
        created_at: raw.u64(10, "created_at")?,
        not_before: raw.u64(11, "not_before")?,
        attempts: raw.u32(12, "attempts")?,
        failures: raw.u32(13, "failures")?,
        auth_failures: raw.u32(14, "auth_failures")?,
        auth_since: raw.opt_u64(15, "auth_since")?,
        state: match dead_at {
            Some(at) => EntryState::Dead { at },
            None => raw.state()?,
        },
        last_error: error,
    })
}

/// Reads what stats count of a row (`lane, state, lease_until,
/// created_at, size`).
pub fn summary(row: &Row<'_>) -> rusqlite::Result<Result<Summary, (String, CodecError)>> {
    let lane = match row.get_ref(0)? {
        ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned(),
        _ => String::new(),
    };
    let mut values = vec![Value::Null; 20];
    values[16] = row.get_ref(1)?.into();
    values[17] = row.get_ref(2)?.into();
    values[10] = row.get_ref(3)?.into();
    values[19] = row.get_ref(4)?.into();
    let raw = Raw(values);
    let read = || -> Result<(EntryState, u64, u64), CodecError> {
        Ok((
            raw.state()?,
            raw.u64(10, "created_at")?,
            raw.u64(19, "size")?,
        ))
    };
    Ok(match read() {
        Ok((state, created_at, size)) => Ok(Summary {
            lane,
            state,
            created_at,
            size,
        }),
        Err(e) => Err((lane, e)),
    })
}

/// What can be read of an entry row that does not decode, as a dead
/// letter-to-be with reason [`CORRUPT`]: its `seq`, and its id, lane,
/// route, origin, method and URL where they read (a lane that does not is
/// `corrupt-<seq>`; an id that does not is made from the `seq`).
pub fn salvage(raw: &Raw, why: &CodecError, now: u64) -> Entry {
    let seq = raw.u64(0, "seq").unwrap_or(0);
    let id = raw.id().unwrap_or_else(|_| {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        EntryId::from_bytes(bytes)
    });
    let lane = Some(raw.text_or_empty(2))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("corrupt-{seq}"));
    Entry {
        id,
        seq,
        lane,
        route: raw.text_or_empty(3),
        origin: raw.text_or_empty(4),
        request: StoredRequest {
            method: raw.text_or_empty(5),
            url: raw.text_or_empty(6),
            headers: Vec::new(),
            body: Vec::new(),
        },
        idempotency_key: raw.text_or_empty(8),
        needs_token: false,
        created_at: raw.u64(10, "created_at").unwrap_or(now),
        attempts: 0,
        failures: 0,
        auth_failures: 0,
        auth_since: None,
        not_before: now,
        state: EntryState::Pending,
        last_error: Some(LastError::new(
            CORRUPT,
            format!("the stored record could not be read back ({why})"),
        )),
    }
}

/// A salvaged entry's head, marked corrupt.
pub fn corrupt_head(entry: &Entry) -> Head {
    let mut head = entry.head();
    head.corrupt = true;
    head
}

/// The values of [`COLS`] for `entry` (the state's columns as a queued
/// entry writes them; a dead letter's are the same with `state` `dead`).
pub fn values(entry: &Entry) -> Vec<Value> {
    let int = |n: u64| Value::Integer(i64::try_from(n).unwrap_or(i64::MAX));
    let (state, lease) = match entry.state {
        EntryState::InFlight { lease_until } => ("in-flight", int(lease_until)),
        other => (other.name(), Value::Null),
    };
    let headers = serde_json::to_string(&entry.request.headers).unwrap_or_else(|_| "[]".into());
    vec![
        int(entry.seq),
        Value::Blob(entry.id.as_bytes().to_vec()),
        Value::Text(entry.lane.clone()),
        Value::Text(entry.route.clone()),
        Value::Text(entry.origin.clone()),
        Value::Text(entry.request.method.clone()),
        Value::Text(entry.request.url.clone()),
        Value::Text(headers),
        Value::Text(entry.idempotency_key.clone()),
        Value::Integer(i64::from(entry.needs_token)),
        int(entry.created_at),
        int(entry.not_before),
        Value::Integer(i64::from(entry.attempts)),
        Value::Integer(i64::from(entry.failures)),
        Value::Integer(i64::from(entry.auth_failures)),
        entry.auth_since.map_or(Value::Null, int),
        Value::Text(state.to_owned()),
        lease,
        entry.last_error.as_ref().map_or(Value::Null, |e| {
            Value::Text(outbox_core::event::error_json(e))
        }),
        int(entry.request.size_bytes() as u64),
    ]
}

/// Reads [`outbox_core::event::error_json`]'s form back.
fn decode_error(text: &str) -> Result<LastError, CodecError> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| bad("error", e.to_string()))?;
    let message = v
        .get("message")
        .and_then(|m| m.as_str())
        .ok_or_else(|| bad("error", "no message"))?;
    let status = match v.get("status") {
        None | Some(serde_json::Value::Null) => None,
        Some(s) => Some(
            s.as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .ok_or_else(|| bad("error", "status is not a status code"))?,
        ),
    };
    let text_of = |key: &str| v.get(key).and_then(|c| c.as_str()).map(str::to_owned);
    Ok(LastError {
        status,
        code: text_of("code"),
        message: message.to_owned(),
        context_id: text_of("contextId"),
    })
}

/// The `seq` of an entry as SQLite stores it.
pub fn seq_value(seq: Seq) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}
