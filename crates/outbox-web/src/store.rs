//! [`IdbStore`]: the outbox's [`Store`] on IndexedDB, and [`IdbTx`], one of
//! its transactions. The schema is described on [`IdbStore`].
//!
//! The store only reads and writes: every rule of the queue is core's
//! ([`outbox_core::queue`]), run by [`Store::run`] over an [`IdbTx`], which
//! answers the reads of [`outbox_core::store`] and issues its writes. What
//! is IndexedDB's own stays here: the schema, the records' codec (bodies
//! kept apart, a poison record salvaged), the list of lanes kept in `meta`,
//! and how each read is made cheap (a count only when the span of `seq`s
//! could reach the limit, heads without bodies).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use outbox_core::clock::{Clock, Millis};
use outbox_core::entry::{Entry, EntryId, Head, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::store::{
    Access, Among, Behind, FindRead, Found, FullRead, HeadsRead, ListRead, Read, Waiting, Write,
};
use outbox_driver::store::{Store, StoreTx};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    IdbDatabase, IdbIndex, IdbIndexParameters, IdbKeyRange, IdbObjectStore,
    IdbObjectStoreParameters, IdbRequest, IdbTransaction,
};

use crate::codec::{
    self, Record, decode_body, decode_entry, decode_head, encode_body, encode_entry, salvage,
    seq_key,
};
use crate::error::{CodecError, IdbError};
use crate::idb::{self, Migration, Mode, Request, Tx, all, dom_error, first_per_key, values};
use crate::js::JsClock;

const ENTRIES: &str = "entries";
const DEAD: &str = "dead";
const BODIES: &str = "bodies";
const META: &str = "meta";
const BY_LANE: &str = "lane";
const BY_ID: &str = "id";
const BY_ORIGIN: &str = "origin";
const NEXT_SEQ: &str = "nextSeq";
const SCHEDULE: &str = "schedule";
/// The prefix of the `meta` keys that list the lanes (`lane:<lane>`; see
/// [`lane_key`]).
const LANE_PREFIX: &str = "lane:";
/// The first string after every `lane:` key (`;` follows `:`).
const LANE_END: &str = "lane;";

/// The `meta` key that lists `lane`: written with every entry the store
/// adds to it (enqueue, revive), found and pruned by a claim that does not
/// survey ([`LeaseTerms::survey`]), rewritten by one that does. A claim
/// then reads each listed lane's head with one `get` on the lane index,
/// all at once, instead of seeking from lane to lane, one request after
/// the other.
fn lane_key(lane: &str) -> JsValue {
    let mut key = String::with_capacity(LANE_PREFIX.len() + lane.len());
    key.push_str(LANE_PREFIX);
    key.push_str(lane);
    JsValue::from_str(&key)
}

/// The upgrade steps; step `i` takes the database from version `i` to
/// `i + 1`, so the schema version is the list's length. Append only.
const MIGRATIONS: &[Migration] = &[create_v1];
const _: () = assert!(MIGRATIONS.len() == crate::SCHEMA_VERSION as usize);

/// Version 1: the four stores and their indexes.
fn create_v1(db: &IdbDatabase, _tx: &IdbTransaction) -> Result<(), JsValue> {
    let by_seq = IdbObjectStoreParameters::new();
    by_seq.set_key_path(&JsValue::from_str("seq"));
    let unique = IdbIndexParameters::new();
    unique.set_unique(true);
    let entries = db.create_object_store_with_optional_parameters(ENTRIES, &by_seq)?;
    entries.create_index_with_str(BY_LANE, "lane")?;
    entries.create_index_with_str_and_optional_parameters(BY_ID, "id", &unique)?;
    entries.create_index_with_str(BY_ORIGIN, "origin")?;
    let dead = db.create_object_store_with_optional_parameters(DEAD, &by_seq)?;
    dead.create_index_with_str_and_optional_parameters(BY_ID, "id", &unique)?;
    db.create_object_store(BODIES)?;
    db.create_object_store(META)?;
    Ok(())
}

/// An open connection, closed (and forgotten) when another context asks to
/// upgrade or delete the database, or when the browser closes it.
struct Connection {
    db: IdbDatabase,
    closed: Rc<Cell<bool>>,
    _on_versionchange: Closure<dyn FnMut()>,
    _on_close: Closure<dyn FnMut()>,
}

impl Connection {
    fn new(db: IdbDatabase) -> Self {
        let closed = Rc::new(Cell::new(false));
        let on_versionchange = {
            let (db, closed) = (db.clone(), closed.clone());
            // Let the newer code (or a delete) proceed; the next operation
            // reopens, and meets `NewerVersion` if the schema moved on.
            Closure::<dyn FnMut()>::new(move || {
                db.close();
                closed.set(true);
            })
        };
        let on_close = {
            let closed = closed.clone();
            Closure::<dyn FnMut()>::new(move || closed.set(true))
        };
        db.set_onversionchange(Some(on_versionchange.as_ref().unchecked_ref()));
        db.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Self {
            db,
            closed,
            _on_versionchange: on_versionchange,
            _on_close: on_close,
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.db.set_onversionchange(None);
        self.db.set_onclose(None);
        self.db.close();
    }
}

struct Shared {
    name: String,
    connection: RefCell<Option<Connection>>,
}

/// The outbox's [`Store`] on IndexedDB.
///
/// It decides nothing: each operation runs one of core's transactions
/// ([`outbox_core::queue`]) in one IndexedDB transaction that awaits
/// nothing but its own requests, answering the transaction's reads and
/// issuing its writes ([`IdbTx`]); an enqueue's (`Access::Durable`) uses
/// `durability: "strict"` and answers only after `complete`. Clones share one connection. The
/// connection is opened by [`open`](Self::open), closed when another
/// context upgrades or deletes the database, and reopened by the next call.
///
/// # Schema (version 1, [`SCHEMA_VERSION`](crate::SCHEMA_VERSION))
///
/// | store | key | indexes | holds |
/// |---|---|---|---|
/// | `entries` | keyPath `seq` | `lane` (non-unique), `id` (unique), `origin` (non-unique) | queued entries, without body |
/// | `dead` | keyPath `seq` | `id` (unique) | dead letters, without body |
/// | `bodies` | out-of-line: the `seq` | — | each entry's body, a `Uint8Array`, queued or dead |
/// | `meta` | out-of-line: a name | — | `nextSeq` (number): the last `seq` given, never reset, so `seq` is never reused, even after a purge; `schedule` (string): [`ScheduleState::encode`] |
///
/// The entry record's fields are listed in the `codec` module; in short,
/// every [`Entry`] field in camelCase, the request flattened (`method`,
/// `url`, `headers` as `[name, value]` pairs), plus `size` (the request's
/// size at rest, for stats).
///
/// * Iterating the `lane` index seeking from lane to lane yields each
///   lane's first record in (lane, `seq`) order: exactly each lane's head.
///   A surveying heads read ([`HeadsRead::survey`]) reads them this way,
///   in O(lanes); otherwise the lanes listed in `meta` are read, one `get`
///   each, all at once. Heads are decoded without touching bodies.
/// * Bodies live apart so that scheduling, leasing and settling (which
///   rewrite the entry record) never read or rewrite a body, and so that a
///   dead letter keeps its body where it was.
/// * `seq` is a JS number (safe up to 2⁵³ − 1).
///
/// Upgrades are a list of steps by version, each run in the
/// `versionchange` transaction; a step only adds. A database at a newer
/// version than this code is refused with [`IdbError::NewerVersion`] and
/// left untouched.
#[derive(Clone)]
pub struct IdbStore {
    shared: Rc<Shared>,
}

impl std::fmt::Debug for IdbStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdbStore")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}

/// Issues a write whose result nobody awaits: if it fails, the transaction
/// aborts and [`Tx::commit`] reports it.
fn fire(tx: &Tx, made: Result<IdbRequest, JsValue>) -> Result<(), IdbError> {
    made.map(drop).map_err(|e| dom_error(tx.operation(), &e))
}

/// Issues a read whose result is awaited (with [`all`] or [`values`]).
fn watch(tx: &Tx, made: Result<IdbRequest, JsValue>) -> Result<Request, IdbError> {
    Request::from(tx.operation(), made)
}

fn index(tx: &Tx, store: &IdbObjectStore, name: &str) -> Result<IdbIndex, IdbError> {
    store.index(name).map_err(|e| dom_error(tx.operation(), &e))
}

fn count(v: &JsValue) -> Result<usize, IdbError> {
    let n = codec::decode_seq(v, "count", "(result)")?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

fn id_key(id: EntryId) -> JsValue {
    JsValue::from_str(&id.hyphenated())
}

fn absent(v: &JsValue) -> bool {
    v.is_undefined() || v.is_null()
}

/// The pacing state as stored. Pacing is advisory: a value that is not a
/// string counts as no state (as bad lines do in [`ScheduleState::decode`]).
fn decode_schedule(v: &JsValue) -> ScheduleState {
    v.as_string()
        .map(|s| ScheduleState::decode(&s))
        .unwrap_or_default()
}

/// The last `seq` given, as stored in `meta`.
fn decode_last_seq(v: &JsValue) -> Result<Seq, IdbError> {
    if absent(v) {
        return Ok(0);
    }
    Ok(codec::decode_seq(v, "meta", NEXT_SEQ)?)
}

/// Decodes an entry record; one that cannot be read back (a poison
/// record) is salvaged ([`salvage`]) as long as its key is a `seq`.
fn decode_or_salvage(value: &JsValue, now: Millis) -> Result<Record, IdbError> {
    match decode_entry(value) {
        Ok(record) => Ok(record),
        Err(why) => {
            let seq = codec::decode_seq(&codec::field(value, "seq"), "entry", "seq")
                .map_err(|_| why.clone())?;
            Ok(salvage(value, seq, &why, now))
        }
    }
}

/// The records of a `getAll` result.
fn array(records: &JsValue) -> Result<&js_sys::Array, IdbError> {
    Ok(records
        .dyn_ref::<js_sys::Array>()
        .ok_or_else(|| CodecError::new("entry", "(list)", "getAll gave a non-array"))?)
}

/// What a read waits for.
enum Wait {
    /// The results of these requests, in order.
    All(Vec<Request>),
    /// Every value a cursor walks over.
    Cursor(idb::Values),
}

/// A read after its first requests: done, or waiting for more.
enum Next {
    Done(Found),
    Wait(Wait, Then),
}

/// The ask of a read whose bodies come last.
enum Listed {
    Find(FindRead),
    List(ListRead),
}

/// How a read goes on once what it waited for came (each is plain,
/// synchronous code; the one loop that waits is [`IdbTx::read`]).
enum Then {
    /// The read itself, at its first stage.
    Read(Read),
    /// The listed lanes' `get`s (their `meta` keys), for their heads.
    Heads(HeadsRead, Vec<JsValue>),
    /// The entries found or listed, for their bodies.
    WithBodies(Listed, Vec<Entry>),
    /// The count, once the span of `seq`s could reach the limit.
    Full(FullRead),
}

/// What a transaction keeps of each record it decoded, to write it back as
/// it was but for the entry: the length of its body (kept apart) and, for a
/// salvaged poison record, the record as it was.
struct Kept {
    body_len: usize,
    raw: Option<String>,
}

/// One IndexedDB transaction of an [`IdbStore`]: answers core's reads,
/// issues its writes (fired, not awaited: a failed one aborts the
/// transaction, and [`commit`](StoreTx::commit) reports it).
pub struct IdbTx {
    tx: Tx,
    entries: IdbObjectStore,
    dead: IdbObjectStore,
    bodies: IdbObjectStore,
    meta: IdbObjectStore,
    access: Access,
    now: Millis,
    /// By `seq`, sorted (records mostly come in `seq` order).
    kept: Vec<(Seq, Kept)>,
}

impl IdbTx {
    fn store(&self, name: &str) -> &IdbObjectStore {
        match name {
            DEAD => &self.dead,
            BODIES => &self.bodies,
            META => &self.meta,
            _ => &self.entries,
        }
    }

    /// Remembers what writing `record` back needs, and gives its entry.
    fn keep(&mut self, record: Record) -> Entry {
        let kept = Kept {
            body_len: record.body_len,
            raw: record.raw,
        };
        match self
            .kept
            .binary_search_by_key(&record.entry.seq, |(seq, _)| *seq)
        {
            Ok(at) => self.kept[at].1 = kept,
            Err(at) => self.kept.insert(at, (record.entry.seq, kept)),
        }
        record.entry
    }

    /// What was kept of the record of `seq`, if it was read here.
    fn kept(&self, seq: Seq) -> Option<&Kept> {
        let at = self.kept.binary_search_by_key(&seq, |(s, _)| *s).ok()?;
        Some(&self.kept[at].1)
    }

    /// `entry` as a record to write back: its body length and raw record as
    /// read in this transaction (an entry not read here holds its body).
    fn record(&self, entry: Entry) -> Record {
        match self.kept(entry.seq) {
            Some(kept) => Record {
                body_len: kept.body_len,
                raw: kept.raw.clone(),
                entry,
            },
            None => Record::new(entry),
        }
    }

    fn put(&self, store: &str, entry: Entry) -> Result<(), IdbError> {
        let record = self.record(entry);
        fire(&self.tx, self.store(store).put(&encode_entry(&record)?))
    }

    fn delete(&self, store: &str, seq: Seq) -> Result<(), IdbError> {
        fire(&self.tx, self.store(store).delete(&seq_key(seq)?))
    }

    /// Lists `lane` in `meta` (see [`lane_key`]).
    fn list_lane(&self, lane: &str) -> Result<(), IdbError> {
        fire(
            &self.tx,
            self.meta.put_with_key(&JsValue::TRUE, &lane_key(lane)),
        )
    }

    /// Issues a read request.
    fn request(&self, made: Result<IdbRequest, JsValue>) -> Result<Request, IdbError> {
        watch(&self.tx, made)
    }

    /// Waits for the results of `requests`, then goes on with `then`.
    fn all(requests: Vec<Request>, then: Then) -> Next {
        Next::Wait(Wait::All(requests), then)
    }

    /// Issues the first requests of `read` (see [`Then`]).
    fn ask(&mut self, read: Read) -> Result<Next, IdbError> {
        let entries = &self.entries;
        let meta = &self.meta;
        Ok(match read {
            Read::Schedule(ask) => Self::all(
                vec![self.request(meta.get(&JsValue::from_str(SCHEDULE)))?],
                Then::Read(Read::Schedule(ask)),
            ),
            Read::Heads(ask) if ask.survey => {
                // The lane index, first record of each lane: its lowest
                // `seq`, its head (seeking from lane to lane, O(lanes · log
                // n), one request after the other); every lane found is
                // listed again.
                let lanes = index(&self.tx, entries, BY_LANE)?;
                let cursor = self.request(lanes.open_cursor())?;
                Next::Wait(
                    Wait::Cursor(first_per_key(cursor)),
                    Then::Read(Read::Heads(ask)),
                )
            }
            Read::Heads(ask) => {
                let range = IdbKeyRange::bound(
                    &JsValue::from_str(LANE_PREFIX),
                    &JsValue::from_str(LANE_END),
                )
                .map_err(|e| dom_error(self.tx.operation(), &e))?;
                Self::all(
                    vec![self.request(meta.get_all_keys_with_key(&range))?],
                    Then::Read(Read::Heads(ask)),
                )
            }
            Read::Entries(ask) => {
                let mut requests = Vec::with_capacity(ask.seqs.len());
                for seq in &ask.seqs {
                    requests.push(self.request(entries.get(&seq_key(*seq)?))?);
                }
                Self::all(requests, Then::Read(Read::Entries(ask)))
            }
            Read::Behind(ask) => {
                // One `getAll` per lane on the lane index (whose records of
                // one lane come in `seq` order); the head is the lane's first
                // record: one more is read.
                let lanes = index(&self.tx, entries, BY_LANE)?;
                let mut requests = Vec::with_capacity(ask.lanes.len());
                for behind in &ask.lanes {
                    let limit = u32::try_from(behind.limit.saturating_add(1)).unwrap_or(u32::MAX);
                    let lane = JsValue::from_str(&behind.lane);
                    requests.push(self.request(lanes.get_all_with_key_and_limit(&lane, limit))?);
                }
                Self::all(requests, Then::Read(Read::Behind(ask)))
            }
            Read::Bodies(ask) => {
                let requests = self.body_requests(&ask.seqs)?;
                Self::all(requests, Then::Read(Read::Bodies(ask)))
            }
            Read::State(ask) => {
                let cursor = match &ask.origin {
                    // Same origin: in `seq` order.
                    Some(origin) => index(&self.tx, entries, BY_ORIGIN)?
                        .open_cursor_with_range(&JsValue::from_str(origin)),
                    None => entries.open_cursor(),
                };
                let cursor = self.request(cursor)?;
                Next::Wait(Wait::Cursor(values(cursor)), Then::Read(Read::State(ask)))
            }
            Read::Find(ask) => {
                // Both at once; the queued one counts first.
                let key = id_key(ask.id);
                let mut requests = Vec::with_capacity(2);
                if ask.among != Among::Dead {
                    requests.push(self.request(index(&self.tx, entries, BY_ID)?.get(&key))?);
                }
                if ask.among != Among::Queued {
                    let dead = &self.dead;
                    requests.push(self.request(index(&self.tx, dead, BY_ID)?.get(&key))?);
                }
                Self::all(requests, Then::Read(Read::Find(ask)))
            }
            Read::List(ask) => {
                let store = match ask.among {
                    Among::Dead => &self.dead,
                    Among::Queued | Among::Either => entries,
                };
                let limit = u32::try_from(ask.limit.max(1)).unwrap_or(u32::MAX);
                Self::all(
                    vec![self.request(store.get_all_with_key_and_limit(&JsValue::NULL, limit))?],
                    Then::Read(Read::List(ask)),
                )
            }
            Read::Lane(ask) => {
                let lanes = index(&self.tx, entries, BY_LANE)?;
                Self::all(
                    vec![self.request(lanes.get_key(&JsValue::from_str(&ask.lane)))?],
                    Then::Read(Read::Lane(ask)),
                )
            }
            Read::Full(ask) => {
                // Counting a store walks it (slow with a long queue), so the
                // lowest queued `seq` comes first: every queued entry lies
                // between it and the last `seq` given, and only when that
                // span could reach the limit are the entries counted.
                let requests = vec![
                    self.request(entries.open_key_cursor())?,
                    self.request(meta.get(&JsValue::from_str(NEXT_SEQ)))?,
                ];
                Self::all(requests, Then::Read(Read::Full(ask)))
            }
            Read::Taken(ask) => {
                let key = id_key(ask.id);
                let dead = &self.dead;
                let requests = vec![
                    self.request(index(&self.tx, entries, BY_ID)?.get_key(&key))?,
                    self.request(index(&self.tx, dead, BY_ID)?.get_key(&key))?,
                ];
                Self::all(requests, Then::Read(Read::Taken(ask)))
            }
            Read::LastSeq(ask) => Self::all(
                vec![self.request(meta.get(&JsValue::from_str(NEXT_SEQ)))?],
                Then::Read(Read::LastSeq(ask)),
            ),
            Read::Count(ask) => {
                let store = match ask.among {
                    Among::Dead => &self.dead,
                    Among::Queued | Among::Either => entries,
                };
                Self::all(
                    vec![self.request(store.count())?],
                    Then::Read(Read::Count(ask)),
                )
            }
            Read::Summaries(ask) => Self::all(
                vec![self.request(entries.get_all())?],
                Then::Read(Read::Summaries(ask)),
            ),
        })
    }

    /// Requests for the bodies of these entries.
    fn body_requests(&self, seqs: &[Seq]) -> Result<Vec<Request>, IdbError> {
        let bodies = &self.bodies;
        let mut requests = Vec::with_capacity(seqs.len());
        for seq in seqs {
            requests.push(self.request(bodies.get(&seq_key(*seq)?))?);
        }
        Ok(requests)
    }

    /// The bodies read for `seqs`. A salvaged poison record keeps whatever
    /// body it had, if any.
    fn bodies(&self, seqs: &[Seq], values: Vec<JsValue>) -> Result<Vec<(Seq, Vec<u8>)>, IdbError> {
        let mut bodies = Vec::with_capacity(seqs.len());
        for (seq, value) in seqs.iter().zip(values) {
            let salvaged = self.kept(*seq).is_some_and(|k| k.raw.is_some());
            let body = decode_body(&value);
            bodies.push((
                *seq,
                if salvaged {
                    body.unwrap_or_default()
                } else {
                    body?
                },
            ));
        }
        Ok(bodies)
    }

    /// Decodes heads; a poison record is salvaged, its head marked corrupt
    /// (the plan makes it a dead letter).
    fn heads(&mut self, records: &[JsValue]) -> Result<Vec<Head>, IdbError> {
        let mut heads = Vec::with_capacity(records.len());
        for value in records {
            match decode_head(value) {
                Ok(head) => heads.push(head),
                Err(_) => {
                    let entry = self.keep(decode_or_salvage(value, self.now)?);
                    let mut head = entry.head();
                    head.corrupt = true;
                    heads.push(head);
                }
            }
        }
        Ok(heads)
    }

    /// Goes on with a read once what it waited for came (see [`Then`]).
    fn then(&mut self, then: Then, values: Vec<JsValue>) -> Result<Next, IdbError> {
        let mut values = values.into_iter();
        let mut next = || values.next().unwrap_or_default();
        Ok(Next::Done(match then {
            Then::Read(Read::Schedule(ask)) => ask.reply(decode_schedule(&next())),
            Then::Read(Read::Heads(ask)) if ask.survey => {
                let records: Vec<JsValue> = std::iter::from_fn(|| values.next()).collect();
                for value in &records {
                    if let Some(lane) = codec::field(value, "lane").as_string() {
                        self.list_lane(&lane)?;
                    }
                }
                ask.reply(self.heads(&records)?)
            }
            Then::Heads(ask, keys) => {
                // A listed lane with no entry left is unlisted.
                let meta = &self.meta;
                let mut records = Vec::with_capacity(keys.len());
                for (key, value) in keys.iter().zip(values) {
                    if absent(&value) {
                        fire(&self.tx, meta.delete(key))?;
                    } else {
                        records.push(value);
                    }
                }
                ask.reply(self.heads(&records)?)
            }
            Then::Read(Read::Heads(ask)) => {
                // Then one `get` per listed lane on the lane index (its
                // lowest `seq`), all at once.
                let keys: Vec<JsValue> = js_sys::Array::from(&next()).iter().collect();
                let lanes = index(&self.tx, &self.entries, BY_LANE)?;
                let mut requests = Vec::with_capacity(keys.len());
                for key in &keys {
                    let lane = key
                        .as_string()
                        .and_then(|k| k.strip_prefix(LANE_PREFIX).map(str::to_owned))
                        .unwrap_or_default();
                    requests.push(self.request(lanes.get(&JsValue::from_str(&lane)))?);
                }
                return Ok(Self::all(requests, Then::Heads(ask, keys)));
            }
            Then::Read(Read::Entries(ask)) => {
                let mut found = Vec::with_capacity(ask.seqs.len());
                for value in values {
                    if !absent(&value) {
                        found.push(self.keep(decode_or_salvage(&value, self.now)?));
                    }
                }
                ask.reply(found)
            }
            Then::Read(Read::Behind(ask)) => {
                let mut lists = Vec::with_capacity(ask.lanes.len());
                for (behind, value) in ask.lanes.iter().zip(values) {
                    lists.push(self.behind(behind, &value));
                }
                ask.reply(lists)
            }
            Then::Read(Read::Bodies(ask)) => {
                let bodies = self.bodies(&ask.seqs, values.collect())?;
                ask.reply(bodies)
            }
            Then::Read(Read::State(ask)) => {
                let name = match ask.state {
                    Waiting::Pending => "pending",
                    Waiting::AwaitingToken => "awaiting-token",
                };
                let mut found = Vec::new();
                let mut next = None;
                for value in values {
                    // The state is read before the record is decoded; a
                    // poison record stays as it is: a claim salvages it.
                    if codec::field(&value, "state").as_string().as_deref() != Some(name) {
                        continue;
                    }
                    let Ok(seq) = codec::decode_seq(&codec::field(&value, "seq"), "entry", "seq")
                    else {
                        continue;
                    };
                    if seq <= ask.after {
                        continue;
                    }
                    if found.len() == ask.limit {
                        next = found.last().map(|e: &Entry| e.seq);
                        break;
                    }
                    if let Ok(record) = decode_entry(&value) {
                        found.push(self.keep(record));
                    }
                }
                ask.reply(found, next)
            }
            Then::Read(Read::Find(ask)) => {
                let Some(value) = values.find(|v| !absent(v)) else {
                    return Ok(Next::Done(ask.reply(None)));
                };
                let entry = self.keep(decode_entry(&value)?);
                let requests = self.body_requests(&[entry.seq])?;
                return Ok(Self::all(
                    requests,
                    Then::WithBodies(Listed::Find(ask), vec![entry]),
                ));
            }
            Then::WithBodies(ask, mut entries) => {
                let seqs: Vec<Seq> = entries.iter().map(|e| e.seq).collect();
                let bodies = self.bodies(&seqs, values.collect())?;
                for (entry, (_, body)) in entries.iter_mut().zip(bodies) {
                    entry.request.body = body;
                }
                match ask {
                    Listed::Find(ask) => ask.reply(entries.pop()),
                    Listed::List(ask) => ask.reply(entries),
                }
            }
            Then::Read(Read::List(ask)) => {
                // Poison records salvaged, so that a listing shows them
                // rather than fails.
                let records = next();
                let mut entries = Vec::new();
                for record in array(&records)?.iter() {
                    entries.push(self.keep(decode_or_salvage(&record, 0)?));
                }
                let seqs: Vec<Seq> = entries.iter().map(|e| e.seq).collect();
                let requests = self.body_requests(&seqs)?;
                return Ok(Self::all(
                    requests,
                    Then::WithBodies(Listed::List(ask), entries),
                ));
            }
            Then::Read(Read::Lane(ask)) => ask.reply(!absent(&next())),
            Then::Read(Read::Full(ask)) => {
                let (first, last) = (next(), next());
                let last = decode_last_seq(&last)?;
                let span = if absent(&first) {
                    0
                } else {
                    let key = codec::field(&first, "key");
                    let lowest = codec::decode_seq(&key, "entries", "(first key)")?;
                    usize::try_from(last.saturating_sub(lowest).saturating_add(1))
                        .unwrap_or(usize::MAX)
                };
                if span < ask.at_least {
                    ask.reply(false)
                } else {
                    let count = self.request(self.entries.count())?;
                    return Ok(Self::all(vec![count], Then::Full(ask)));
                }
            }
            Then::Full(ask) => {
                let full = count(&next())? >= ask.at_least;
                ask.reply(full)
            }
            Then::Read(Read::Taken(ask)) => ask.reply(values.any(|v| !absent(&v))),
            Then::Read(Read::LastSeq(ask)) => ask.reply(decode_last_seq(&next())?),
            Then::Read(Read::Count(ask)) => ask.reply(count(&next())?),
            Then::Read(Read::Summaries(ask)) => {
                let records = next();
                let mut summaries = Vec::new();
                let mut next_seq = None;
                let mut last = None;
                for record in array(&records)?.iter() {
                    let seq = codec::decode_seq(&codec::field(&record, "seq"), "entry", "seq")
                        .unwrap_or(0);
                    if seq <= ask.after {
                        continue;
                    }
                    if summaries.len() == ask.limit {
                        next_seq = last;
                        break;
                    }
                    last = Some(seq);
                    // A record that cannot be read still counts.
                    summaries.push(match codec::decode_summary(&record) {
                        Ok(summary) => summary,
                        Err(_) => ask.unreadable(
                            codec::field(&record, "lane")
                                .as_string()
                                .unwrap_or_default(),
                        ),
                    });
                }
                ask.reply(summaries, next_seq)
            }
        }))
    }

    /// The entries of one lane behind its head, from a `getAll` of it: in
    /// `seq` order, at most the limit; a record that cannot be read stops
    /// the list (`None`).
    fn behind(&mut self, behind: &Behind, values: &JsValue) -> Vec<Option<Entry>> {
        let mut list = Vec::new();
        for value in js_sys::Array::from(values).iter() {
            if list.len() == behind.limit {
                break;
            }
            match decode_entry(&value) {
                Ok(record) if record.entry.seq <= behind.after => {}
                Ok(record) => list.push(Some(self.keep(record))),
                Err(_) => {
                    list.push(None);
                    break;
                }
            }
        }
        list
    }

    fn carry_out(&mut self, write: Write) -> Result<(), IdbError> {
        match write {
            Write::Add(entry) => {
                let seq = seq_key(entry.seq)?;
                let record = Record::new(entry);
                fire(&self.tx, self.entries.add(&encode_entry(&record)?))?;
                fire(
                    &self.tx,
                    self.bodies
                        .add_with_key(&encode_body(&record.entry.request.body), &seq),
                )?;
                fire(
                    &self.tx,
                    self.meta.put_with_key(&seq, &JsValue::from_str(NEXT_SEQ)),
                )?;
                self.list_lane(&record.entry.lane)
            }
            Write::Put(entry) => self.put(ENTRIES, entry),
            Write::Remove(seq) => {
                self.delete(ENTRIES, seq)?;
                self.delete(BODIES, seq)
            }
            Write::Bury(entry) => {
                self.delete(ENTRIES, entry.seq)?;
                self.put(DEAD, entry)
            }
            Write::Revive(entry) => {
                self.delete(DEAD, entry.seq)?;
                let lane = entry.lane.clone();
                self.put(ENTRIES, entry)?;
                self.list_lane(&lane)
            }
            Write::Discard(seq) => {
                self.delete(DEAD, seq)?;
                self.delete(BODIES, seq)
            }
            Write::Schedule(schedule) => fire(
                &self.tx,
                self.meta.put_with_key(
                    &JsValue::from_str(&schedule.encode()),
                    &JsValue::from_str(SCHEDULE),
                ),
            ),
            Write::Purge => {
                fire(&self.tx, self.entries.clear())?;
                fire(&self.tx, self.dead.clear())?;
                fire(&self.tx, self.bodies.clear())?;
                // `nextSeq` stays: seq is never reused.
                fire(&self.tx, self.meta.delete(&JsValue::from_str(SCHEDULE)))
            }
        }
    }
}

impl StoreTx for IdbTx {
    type Error = IdbError;

    /// Issues every read's first requests at once, then waits for each in
    /// turn (a read of several stages issues its next requests as the
    /// previous ones come back).
    async fn read(&mut self, reads: Vec<Read>) -> Result<Vec<Found>, IdbError> {
        let mut pending = Vec::with_capacity(reads.len());
        for read in reads {
            pending.push(self.ask(read)?);
        }
        let mut found = Vec::with_capacity(pending.len());
        for mut next in pending {
            loop {
                match next {
                    Next::Done(answer) => {
                        found.push(answer);
                        break;
                    }
                    Next::Wait(wait, then) => {
                        let values = match wait {
                            Wait::All(requests) => all(requests).await?,
                            Wait::Cursor(cursor) => cursor.await?,
                        };
                        next = self.then(then, values)?;
                    }
                }
            }
        }
        Ok(found)
    }

    fn write(&mut self, writes: Vec<Write>) -> Result<(), IdbError> {
        for write in writes {
            self.carry_out(write)?;
        }
        Ok(())
    }

    async fn commit(self) -> Result<(), IdbError> {
        match self.access {
            // A read-only transaction ends by itself.
            Access::Read => Ok(()),
            Access::Write | Access::Durable => self.tx.commit().await,
        }
    }
}

impl IdbStore {
    /// Opens (creating or upgrading as needed) the database `name`; see
    /// [`DEFAULT_DATABASE`](crate::DEFAULT_DATABASE).
    pub async fn open(name: &str) -> Result<Self, IdbError> {
        let store = Self {
            shared: Rc::new(Shared {
                name: name.to_owned(),
                connection: RefCell::new(None),
            }),
        };
        store.db().await?;
        Ok(store)
    }

    /// Deletes the database `name` and everything in it. Open connections
    /// of this crate close themselves to let it happen.
    pub async fn delete_database(name: &str) -> Result<(), IdbError> {
        idb::delete(name).await
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Closes the connection (of every clone). The next operation reopens.
    pub fn close(&self) {
        self.shared.connection.borrow_mut().take();
    }

    /// The open connection, (re)opening it when needed.
    async fn db(&self) -> Result<IdbDatabase, IdbError> {
        if let Some(c) = self.shared.connection.borrow().as_ref()
            && !c.closed.get()
        {
            return Ok(c.db.clone());
        }
        let db = idb::open(&self.shared.name, MIGRATIONS).await?;
        let mut slot = self.shared.connection.borrow_mut();
        if let Some(c) = slot.as_ref()
            && !c.closed.get()
        {
            // Another call opened it meanwhile: keep one connection.
            db.close();
            return Ok(c.db.clone());
        }
        *slot = Some(Connection::new(db.clone()));
        Ok(db)
    }
}

impl Store for IdbStore {
    type Error = IdbError;
    type Tx<'a> = IdbTx;

    async fn begin(&self, access: Access, name: &'static str) -> Result<IdbTx, IdbError> {
        let db = self.db().await?;
        let mode = match access {
            Access::Read => Mode::Read,
            Access::Write => Mode::Write,
            Access::Durable => Mode::WriteStrict,
        };
        let tx = Tx::new(&db, name, &[ENTRIES, DEAD, BODIES, META], mode)?;
        Ok(IdbTx {
            entries: tx.store(ENTRIES)?,
            dead: tx.store(DEAD)?,
            bodies: tx.store(BODIES)?,
            meta: tx.store(META)?,
            tx,
            access,
            now: JsClock.now(),
            kept: Vec::new(),
        })
    }

    /// A quota failure (from a request, or the transaction's abort at
    /// commit) refuses an enqueue ([`IdbError::is_quota_exceeded`]).
    fn quota_exceeded(error: &IdbError) -> Option<String> {
        error.quota_message()
    }
}
