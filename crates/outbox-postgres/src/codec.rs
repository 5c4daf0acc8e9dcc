//! Entries to and from rows of `queue` and `dead`.
//!
//! | column | type | meaning |
//! |---|---|---|
//! | `seq` | bigint | [`Entry::seq`], the primary key |
//! | `id` | uuid | [`Entry::id`] |
//! | `lane`, `route`, `origin`, `method`, `url` | text | as in [`Entry`] and its request |
//! | `headers` | text | the kept headers, JSON `[[name, value], …]` |
//! | `idem_key` | text | [`Entry::idempotency_key`] |
//! | `needs_token` | boolean | [`Entry::needs_token`] |
//! | `created_at`, `not_before`, `auth_since` | bigint | ms since the epoch (`auth_since` null: no run of `401`s) |
//! | `attempts`, `failures`, `auth_failures` | integer | counters; `attempts` is also the lease's fencing token |
//! | `state` | text | `pending`, `in-flight`, `awaiting-token` (`dead` in `dead`) |
//! | `lease_until` | bigint | only when `in-flight` |
//! | `error` | text | JSON `{status?, code?, message, contextId?}` ([`LastError`]), or null |
//! | `size` | bigint | [`StoredRequest::size_bytes`], so that stats never read bodies |
//! | `dead_at` | bigint, `dead` only | when it died |
//!
//! The body is kept apart, in `bodies`. A row that does not read back (a
//! hand edit: an unknown state, a negative counter, headers that are not
//! the JSON above) makes a [`CodecError`], never a panic: such a record is
//! *salvaged* ([`salvage`]) and becomes a `corrupt` dead letter when it
//! reaches the head of its lane, as in the other stores.

use outbox_core::classify::LastError;
use outbox_core::entry::{CORRUPT, Entry, EntryId, EntryState, Head, Seq, StoredRequest};
use outbox_core::store::Summary;
use tokio_postgres::Row;
use tokio_postgres::types::{FromSql, ToSql};

/// The columns every entry query selects, in this order.
pub const COLS: &str = "seq, id::text, lane, route, origin, method, url, headers, idem_key, \
     needs_token, created_at, not_before, attempts, failures, auth_failures, auth_since, state, \
     lease_until, error, size";

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

fn get<'a, T: FromSql<'a>>(row: &'a Row, i: usize, column: &'static str) -> Result<T, CodecError> {
    row.try_get(i).map_err(|e| bad(column, e.to_string()))
}

fn unsigned(row: &Row, i: usize, column: &'static str) -> Result<u64, CodecError> {
    u64::try_from(get::<i64>(row, i, column)?).map_err(|_| bad(column, "negative"))
}

fn opt_unsigned(row: &Row, i: usize, column: &'static str) -> Result<Option<u64>, CodecError> {
    get::<Option<i64>>(row, i, column)?
        .map(|n| u64::try_from(n).map_err(|_| bad(column, "negative")))
        .transpose()
}

fn counter(row: &Row, i: usize, column: &'static str) -> Result<u32, CodecError> {
    u32::try_from(get::<i32>(row, i, column)?).map_err(|_| bad(column, "negative"))
}

/// An id from its text.
pub fn parse_id(text: &str) -> Result<EntryId, CodecError> {
    text.parse()
        .map_err(|e: outbox_core::entry::BadEntryId| bad("id", e.to_string()))
}

fn state(row: &Row) -> Result<EntryState, CodecError> {
    match get::<String>(row, 16, "state")?.as_str() {
        "pending" => Ok(EntryState::Pending),
        "awaiting-token" => Ok(EntryState::AwaitingToken),
        "in-flight" => Ok(EntryState::InFlight {
            lease_until: opt_unsigned(row, 17, "lease_until")?
                .ok_or_else(|| bad("lease_until", "missing for an entry in flight"))?,
        }),
        other => Err(bad("state", format!("unknown state `{other}`"))),
    }
}

/// Reads a row of [`COLS`] (a queued entry, or a dead letter when
/// `dead_at` is given) without its body.
pub fn entry(row: &Row, dead_at: Option<u64>) -> Result<Entry, CodecError> {
    let headers: Vec<(String, String)> = serde_json::from_str(&get::<String>(row, 7, "headers")?)
        .map_err(|e| bad("headers", e.to_string()))?;
    let error = get::<Option<String>>(row, 18, "error")?
        .map(|t| decode_error(&t))
        .transpose()?;
    Ok(Entry {
        id: parse_id(&get::<String>(row, 1, "id")?)?,
        seq: unsigned(row, 0, "seq")?,
        lane: get(row, 2, "lane")?,
        route: get(row, 3, "route")?,
        origin: get(row, 4, "origin")?,
        request: StoredRequest {
            method: get(row, 5, "method")?,
            url: get(row, 6, "url")?,
            headers,
            body: Vec::new(),
        },
        idempotency_key: get(row, 8, "idem_key")?,
        needs_token: get(row, 9, "needs_token")?,
        created_at: unsigned(row, 10, "created_at")?,
        not_before: unsigned(row, 11, "not_before")?,
        attempts: counter(row, 12, "attempts")?,
        failures: counter(row, 13, "failures")?,
        auth_failures: counter(row, 14, "auth_failures")?,
        auth_since: opt_unsigned(row, 15, "auth_since")?,
        state: match dead_at {
            Some(at) => EntryState::Dead { at },
            None => state(row)?,
        },
        last_error: error,
    })
}

/// A queued entry's row, decoded, or salvaged when it does not decode.
pub fn queued(row: &Row, now: u64) -> Result<Entry, Box<Entry>> {
    entry(row, None).map_err(|why| Box::new(salvage(row, &why, now)))
}

/// A dead letter's row (`COLS, dead_at`), decoded or salvaged.
pub fn dead(row: &Row, now: u64) -> Entry {
    let at = opt_unsigned(row, 20, "dead_at").ok().flatten().unwrap_or(0);
    entry(row, Some(at)).unwrap_or_else(|why| {
        let mut e = salvage(row, &why, now);
        e.state = EntryState::Dead { at };
        e
    })
}

/// What stats count of a row (`lane, state, lease_until, created_at,
/// size`): the summary, or the lane of a row that does not read.
pub fn summary(row: &Row) -> Result<Summary, String> {
    let lane: String = row.try_get(0).unwrap_or_default();
    let read = || -> Result<Summary, CodecError> {
        let state = match get::<String>(row, 1, "state")?.as_str() {
            "pending" => EntryState::Pending,
            "awaiting-token" => EntryState::AwaitingToken,
            "in-flight" => EntryState::InFlight {
                lease_until: opt_unsigned(row, 2, "lease_until")?
                    .ok_or_else(|| bad("lease_until", "missing"))?,
            },
            other => return Err(bad("state", format!("unknown state `{other}`"))),
        };
        Ok(Summary {
            lane: lane.clone(),
            state,
            created_at: unsigned(row, 3, "created_at")?,
            size: unsigned(row, 4, "size")?,
        })
    };
    read().map_err(|_| lane.clone())
}

/// What can be read of an entry row that does not decode, as a dead
/// letter-to-be with reason [`CORRUPT`].
pub fn salvage(row: &Row, why: &CodecError, now: u64) -> Entry {
    let text = |i: usize| row.try_get::<_, String>(i).unwrap_or_default();
    let seq = unsigned(row, 0, "seq").unwrap_or(0);
    let id = parse_id(&text(1)).unwrap_or_else(|_| {
        let mut bytes = [0u8; 16];
        bytes[8..].copy_from_slice(&seq.to_be_bytes());
        EntryId::from_bytes(bytes)
    });
    let lane = Some(text(2))
        .filter(|l| !l.is_empty())
        .unwrap_or_else(|| format!("corrupt-{seq}"));
    Entry {
        id,
        seq,
        lane,
        route: text(3),
        origin: text(4),
        request: StoredRequest {
            method: text(5),
            url: text(6),
            headers: Vec::new(),
            body: Vec::new(),
        },
        idempotency_key: text(8),
        needs_token: false,
        created_at: unsigned(row, 10, "created_at").unwrap_or(now),
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

/// A number as PostgreSQL's `bigint` (saturating).
pub fn big(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// The parameters of every column of [`COLS`] for `entry` (the state's
/// columns as a queued entry writes them).
pub struct Values {
    seq: i64,
    id: String,
    lane: String,
    route: String,
    origin: String,
    method: String,
    url: String,
    headers: String,
    idem_key: String,
    needs_token: bool,
    created_at: i64,
    not_before: i64,
    attempts: i32,
    failures: i32,
    auth_failures: i32,
    auth_since: Option<i64>,
    state: String,
    lease_until: Option<i64>,
    error: Option<String>,
    size: i64,
}

fn int(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Values {
    /// The values of `entry`.
    pub fn of(entry: &Entry) -> Self {
        let (state, lease_until) = match entry.state {
            EntryState::InFlight { lease_until } => ("in-flight", Some(big(lease_until))),
            other => (other.name(), None),
        };
        Self {
            seq: big(entry.seq),
            id: entry.id.hyphenated(),
            lane: entry.lane.clone(),
            route: entry.route.clone(),
            origin: entry.origin.clone(),
            method: entry.request.method.clone(),
            url: entry.request.url.clone(),
            headers: serde_json::to_string(&entry.request.headers).unwrap_or_else(|_| "[]".into()),
            idem_key: entry.idempotency_key.clone(),
            needs_token: entry.needs_token,
            created_at: big(entry.created_at),
            not_before: big(entry.not_before),
            attempts: int(entry.attempts),
            failures: int(entry.failures),
            auth_failures: int(entry.auth_failures),
            auth_since: entry.auth_since.map(big),
            state: state.to_owned(),
            lease_until,
            error: entry
                .last_error
                .as_ref()
                .map(outbox_core::event::error_json),
            size: big(entry.request.size_bytes() as u64),
        }
    }

    /// All twenty, in the order of [`COLS`] (`id` as text: cast it).
    pub fn all(self) -> Vec<Param> {
        vec![
            Box::new(self.seq),
            Box::new(self.id),
            Box::new(self.lane),
            Box::new(self.route),
            Box::new(self.origin),
            Box::new(self.method),
            Box::new(self.url),
            Box::new(self.headers),
            Box::new(self.idem_key),
            Box::new(self.needs_token),
            Box::new(self.created_at),
            Box::new(self.not_before),
            Box::new(self.attempts),
            Box::new(self.failures),
            Box::new(self.auth_failures),
            Box::new(self.auth_since),
            Box::new(self.state),
            Box::new(self.lease_until),
            Box::new(self.error),
            Box::new(self.size),
        ]
    }

    /// What a settlement or a lease changes: `seq`, then `needs_token`,
    /// `created_at`, `not_before`, `attempts`, `failures`,
    /// `auth_failures`, `auth_since`, `state`, `lease_until`, `error`.
    pub fn changed(self) -> Vec<Param> {
        vec![
            Box::new(self.seq),
            Box::new(self.needs_token),
            Box::new(self.created_at),
            Box::new(self.not_before),
            Box::new(self.attempts),
            Box::new(self.failures),
            Box::new(self.auth_failures),
            Box::new(self.auth_since),
            Box::new(self.state),
            Box::new(self.lease_until),
            Box::new(self.error),
        ]
    }
}

/// An owned statement parameter.
pub type Param = Box<dyn ToSql + Sync + Send>;

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

/// The stripe of `counts` an entry's `seq` is counted in.
pub fn stripe(seq: Seq) -> usize {
    (seq % crate::sql::STRIPES as u64) as usize
}
