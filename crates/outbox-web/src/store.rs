//! [`IdbStore`]: the outbox's [`Store`] on IndexedDB. The schema is
//! described on [`IdbStore`].

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;

use outbox_core::clock::Millis;
use outbox_core::entry::{Entry, EntryId, EntryState, Fate, Head, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::scheduler::Claim;
use outbox_core::store::{
    CancelResult, Claimed, EnqueueError, LeaseTerms, Planner, Purged, QueueLimits, Settlement,
    Stats, Store,
};
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
use crate::error::{CodecError, IdbError, enqueue_error};
use crate::idb::{self, Migration, Mode, Request, Tx, all, dom_error, first_per_key, values};

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
/// Every method is one IndexedDB transaction that awaits nothing but its
/// own requests; [`enqueue`](Store::enqueue) uses `durability: "strict"`
/// and answers only after `complete`. Clones share one connection. The
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
/// * Iterating the `lane` index with direction `nextunique` yields each
///   lane's first record in (lane, `seq`) order: exactly each lane's head.
///   [`claim`](Store::claim) reads heads this way, in O(lanes), and decodes
///   them without touching bodies.
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

fn get_schedule(tx: &Tx, meta: &IdbObjectStore) -> Result<Request, IdbError> {
    watch(tx, meta.get(&JsValue::from_str(SCHEDULE)))
}

/// Writes the pacing state if it changed.
fn save_schedule(
    tx: &Tx,
    meta: &IdbObjectStore,
    before: &ScheduleState,
    after: &ScheduleState,
) -> Result<(), IdbError> {
    if before == after {
        return Ok(());
    }
    fire(
        tx,
        meta.put_with_key(
            &JsValue::from_str(&after.encode()),
            &JsValue::from_str(SCHEDULE),
        ),
    )
}

/// Lifts the hold of dead letter `id`, if it holds a lane (inside the
/// transaction that revives or discards it).
async fn lift_hold(tx: &Tx, id: EntryId) -> Result<(), IdbError> {
    let meta = tx.store(META)?;
    let before = decode_schedule(&get_schedule(tx, &meta)?.next().await?);
    let mut after = before.clone();
    after.holds.lift(id);
    save_schedule(tx, &meta, &before, &after)
}

fn put_record(tx: &Tx, store: &IdbObjectStore, record: &Record) -> Result<(), IdbError> {
    fire(tx, store.put(&encode_entry(record)?))
}

fn delete_seq(tx: &Tx, store: &IdbObjectStore, seq: Seq) -> Result<(), IdbError> {
    fire(tx, store.delete(&seq_key(seq)?))
}

/// Adds requests for the bodies of `entries`, in order, to `reads`.
fn body_reads(
    tx: &Tx,
    bodies: &IdbObjectStore,
    entries: &[Entry],
    reads: &mut Vec<Request>,
) -> Result<(), IdbError> {
    for e in entries {
        reads.push(watch(tx, bodies.get(&seq_key(e.seq)?))?);
    }
    Ok(())
}

/// Puts the bodies read by [`body_reads`] in place.
fn fill_bodies(
    entries: &mut [Entry],
    bodies: &mut std::vec::IntoIter<JsValue>,
) -> Result<(), IdbError> {
    for e in entries {
        let body = decode_body(&bodies.next().unwrap_or_default());
        // A salvaged poison record keeps whatever body it had, if any.
        e.request.body = if e.is_corrupt() {
            body.unwrap_or_default()
        } else {
            body?
        };
    }
    Ok(())
}

/// Reads the bodies of `entries` and puts them in place.
async fn with_bodies(
    tx: &Tx,
    bodies: &IdbObjectStore,
    entries: &mut [Entry],
) -> Result<(), IdbError> {
    let mut reads = Vec::with_capacity(entries.len());
    body_reads(tx, bodies, entries, &mut reads)?;
    fill_bodies(entries, &mut all(reads).await?.into_iter())
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

/// Decodes a `getAll` result (poison records salvaged, so that a listing
/// shows them rather than fails).
fn decode_list(records: &JsValue) -> Result<Vec<Entry>, IdbError> {
    let records = records
        .dyn_ref::<js_sys::Array>()
        .ok_or_else(|| CodecError::new("entry", "(list)", "getAll gave a non-array"))?;
    let mut entries = Vec::with_capacity(records.length() as usize);
    for record in records.iter() {
        entries.push(decode_or_salvage(&record, 0)?.entry);
    }
    Ok(entries)
}

/// One entry of `store` (by its `id` index) with its body, if there.
async fn find(
    tx: &Tx,
    store: &IdbObjectStore,
    bodies: &IdbObjectStore,
    id: EntryId,
) -> Result<Option<Entry>, IdbError> {
    let found = watch(tx, index(tx, store, BY_ID)?.get(&id_key(id)))?
        .next()
        .await?;
    if absent(&found) {
        return Ok(None);
    }
    let mut entry = [decode_entry(&found)?.entry];
    with_bodies(tx, bodies, &mut entry).await?;
    let [entry] = entry;
    Ok(Some(entry))
}

/// The entry records a transaction reads and changes, as they stand now
/// (`None`: not, or no longer, in `entries`). A list: it holds one batch.
type Working = Vec<(Seq, Option<Record>)>;

fn slot(work: &mut Working, seq: Seq) -> Option<&mut Option<Record>> {
    work.iter_mut().find(|(s, _)| *s == seq).map(|(_, r)| r)
}

/// Applies a plan's decisions to the working records, issuing the writes.
/// Runs synchronously, inside the claim's transaction.
#[allow(clippy::too_many_arguments)]
fn apply_claims(
    tx: &Tx,
    entries: &IdbObjectStore,
    dead: &IdbObjectStore,
    terms: LeaseTerms,
    claims: Vec<(Seq, Claim)>,
    work: &mut Working,
    claimed: &mut Claimed,
) -> Result<(), IdbError> {
    for (seq, claim) in claims {
        let Some(slot) = slot(work, seq) else {
            continue;
        };
        let Some(record) = slot else {
            continue;
        };
        let entry = &mut record.entry;
        let salvaged = record.raw.is_some();
        match claim {
            Claim::Send | Claim::AwaitToken if salvaged => continue,
            Claim::Send => {
                if !terms.allows(entry) {
                    continue;
                }
                entry.lease(terms.until);
                put_record(tx, entries, record)?;
                claimed.sends.push(record.entry.clone());
            }
            Claim::AwaitToken => {
                entry.park_for_token();
                put_record(tx, entries, record)?;
                claimed.awaiting_token.push(record.entry.clone());
            }
            Claim::Expire(error) => {
                // A salvaged record keeps its own, more telling, reason.
                let error = match (salvaged, entry.last_error.take()) {
                    (true, Some(own)) => own,
                    _ => error,
                };
                entry.bury(error, terms.now);
                delete_seq(tx, entries, seq)?;
                put_record(tx, dead, record)?;
                if let Some(record) = slot.take() {
                    claimed.expired.push(record.entry);
                }
            }
        }
    }
    Ok(())
}

/// Applies the settlements that match their lease, issuing the writes.
/// Runs synchronously, inside the settle's transaction.
fn apply_settlements(
    tx: &Tx,
    stores: [&IdbObjectStore; 3],
    now: Millis,
    settlements: Vec<Settlement>,
    work: &mut Working,
) -> Result<Vec<Settlement>, IdbError> {
    let [entries, dead, bodies] = stores;
    let mut applied = Vec::with_capacity(settlements.len());
    for s in settlements {
        let Some(slot) = slot(work, s.seq) else {
            continue;
        };
        let Some(record) = slot else {
            continue;
        };
        if !record.entry.holds_lease(s.attempt) {
            continue;
        }
        match record.entry.settle(&s.action, now) {
            Fate::Keep => put_record(tx, entries, record)?,
            Fate::Remove => {
                delete_seq(tx, entries, s.seq)?;
                delete_seq(tx, bodies, s.seq)?;
                *slot = None;
            }
            Fate::Bury => {
                delete_seq(tx, entries, s.seq)?;
                put_record(tx, dead, record)?;
                *slot = None;
            }
        }
        applied.push(s);
    }
    Ok(applied)
}

/// A claim inside `tx` (see [`Store::claim`]): reads the pacing state and
/// every lane's head, runs the planner, applies its decisions.
async fn claim_in(
    tx: &Tx,
    terms: LeaseTerms,
    planner: &mut dyn Planner,
) -> Result<Claimed, IdbError> {
    let entries = tx.store(ENTRIES)?;
    let dead = tx.store(DEAD)?;
    let meta = tx.store(META)?;
    let schedule = get_schedule(tx, &meta)?;
    let lanes = index(tx, &entries, BY_LANE)?;
    let records = if terms.survey {
        // The lane index, first record of each lane: its lowest `seq`, its
        // head (seeking from lane to lane, O(lanes · log n), one request
        // after the other); every lane found is listed again.
        let cursor = watch(tx, lanes.open_cursor())?;
        let records = first_per_key(cursor).await?;
        for value in &records {
            if let Some(lane) = codec::field(value, "lane").as_string() {
                fire(tx, meta.put_with_key(&JsValue::TRUE, &lane_key(&lane)))?;
            }
        }
        records
    } else {
        listed_heads(tx, &meta, &lanes).await?
    };
    let before = decode_schedule(&schedule.next().await?);
    let mut heads: Vec<Head> = Vec::with_capacity(records.len());
    // Poison records, by their place in `records`: the plan makes them
    // dead letters.
    let mut salvaged: Vec<(usize, Record)> = Vec::new();
    for (i, value) in records.iter().enumerate() {
        match decode_head(value) {
            Ok(head) => heads.push(head),
            Err(_) => {
                let record = decode_or_salvage(value, terms.now)?;
                let mut head = record.entry.head();
                head.corrupt = true;
                heads.push(head);
                salvaged.push((i, record));
            }
        }
    }

    // The planner runs synchronously, inside the transaction.
    let mut after = before.clone();
    let (claims, next_wake) = planner.plan(&mut after, &heads);

    // Decode in full only what the plan names; a plan names heads, and
    // anything else it names is read first.
    let mut work = Working::new();
    let mut others = Vec::new();
    let mut reads = Vec::new();
    for (seq, _) in &claims {
        if slot(&mut work, *seq).is_some() {
            continue;
        }
        match heads.iter().position(|h| h.seq == *seq) {
            Some(i) => {
                let record = match salvaged.iter().position(|(at, _)| *at == i) {
                    Some(k) => salvaged.swap_remove(k).1,
                    None => decode_entry(&records[i])?,
                };
                work.push((*seq, Some(record)));
            }
            None => {
                others.push(work.len());
                work.push((*seq, None));
                reads.push(watch(tx, entries.get(&seq_key(*seq)?))?);
            }
        }
    }
    if !reads.is_empty() {
        for (i, value) in others.into_iter().zip(all(reads).await?) {
            if !absent(&value) {
                work[i].1 = Some(decode_entry(&value)?);
            }
        }
    }

    let mut claimed = Claimed {
        next_wake,
        ..Claimed::default()
    };
    apply_claims(tx, &entries, &dead, terms, claims, &mut work, &mut claimed)?;
    claim_followers(tx, &entries, terms, planner, &mut after, &mut claimed).await?;
    save_schedule(tx, &meta, &before, &after)?;
    let bodies = tx.store(BODIES)?;
    let mut reads = Vec::new();
    body_reads(tx, &bodies, &claimed.sends, &mut reads)?;
    body_reads(tx, &bodies, &claimed.awaiting_token, &mut reads)?;
    body_reads(tx, &bodies, &claimed.expired, &mut reads)?;
    let mut read = all(reads).await?.into_iter();
    fill_bodies(&mut claimed.sends, &mut read)?;
    fill_bodies(&mut claimed.awaiting_token, &mut read)?;
    fill_bodies(&mut claimed.expired, &mut read)?;
    Ok(claimed)
}

/// The head of every listed lane ([`lane_key`]): the list in one request,
/// then one `get` per lane on the lane index (its lowest `seq`), all
/// issued at once. A listed lane with no entry left is unlisted.
async fn listed_heads(
    tx: &Tx,
    meta: &IdbObjectStore,
    lanes: &IdbIndex,
) -> Result<Vec<JsValue>, IdbError> {
    let range = IdbKeyRange::bound(
        &JsValue::from_str(LANE_PREFIX),
        &JsValue::from_str(LANE_END),
    )
    .map_err(|e| dom_error("claim", &e))?;
    let keys = watch(tx, meta.get_all_keys_with_key(&range))?
        .next()
        .await?;
    let keys: Vec<JsValue> = js_sys::Array::from(&keys).iter().collect();
    let mut reads = Vec::with_capacity(keys.len());
    for key in &keys {
        let lane = key
            .as_string()
            .and_then(|k| k.strip_prefix(LANE_PREFIX).map(str::to_owned))
            .unwrap_or_default();
        reads.push(watch(tx, lanes.get(&JsValue::from_str(&lane)))?);
    }
    let mut heads = Vec::with_capacity(keys.len());
    for (key, value) in keys.iter().zip(all(reads).await?) {
        if absent(&value) {
            fire(tx, meta.delete(key))?;
        } else {
            heads.push(value);
        }
    }
    Ok(heads)
}

/// Leases the entries that follow the heads `claimed` sends, as the
/// planner accepts them (see [`Planner`]): one `getAll` per lane on the
/// lane index (whose records of one lane come in `seq` order), at most the
/// planner's room past the head. A record that cannot be read stops its
/// lane's followers: it dies as a head, in its turn.
async fn claim_followers(
    tx: &Tx,
    entries: &IdbObjectStore,
    terms: LeaseTerms,
    planner: &mut dyn Planner,
    schedule: &mut ScheduleState,
    claimed: &mut Claimed,
) -> Result<(), IdbError> {
    let room = planner.follow_room();
    if room == 0 || claimed.sends.is_empty() {
        return Ok(());
    }
    let leads: Vec<Seq> = claimed.sends.iter().map(|e| e.seq).collect();
    let lanes = index(tx, entries, BY_LANE)?;
    let limit = u32::try_from(room + 1).unwrap_or(u32::MAX);
    let mut reads = Vec::with_capacity(leads.len());
    for e in &claimed.sends {
        let lane = JsValue::from_str(&e.lane);
        reads.push(watch(tx, lanes.get_all_with_key_and_limit(&lane, limit))?);
    }
    for (lead, values) in leads.into_iter().zip(all(reads).await?) {
        for value in js_sys::Array::from(&values).iter() {
            let Ok(mut record) = decode_entry(&value) else {
                break;
            };
            if record.entry.seq <= lead {
                continue;
            }
            if planner.follow_room() == 0 || !planner.follow(schedule, &record.entry.head()) {
                break;
            }
            record.entry.lease(terms.until);
            put_record(tx, entries, &record)?;
            claimed.sends.push(record.entry);
        }
    }
    Ok(())
}

/// A settle inside `tx` (see [`Store::settle`]).
async fn settle_in(
    tx: &Tx,
    now: Millis,
    settlements: Vec<Settlement>,
    schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
) -> Result<Vec<Settlement>, IdbError> {
    let entries = tx.store(ENTRIES)?;
    let meta = tx.store(META)?;
    let mut work = Working::new();
    let mut reads = vec![get_schedule(tx, &meta)?];
    for s in &settlements {
        if slot(&mut work, s.seq).is_none() {
            work.push((s.seq, None));
            reads.push(watch(tx, entries.get(&seq_key(s.seq)?))?);
        }
    }
    let mut results = all(reads).await?.into_iter();
    let before = decode_schedule(&results.next().unwrap_or_default());
    for ((_, record), value) in work.iter_mut().zip(results) {
        if !absent(&value) {
            *record = Some(decode_entry(&value)?);
        }
    }
    let stores = [&entries, &tx.store(DEAD)?, &tx.store(BODIES)?];
    let applied = apply_settlements(tx, stores, now, settlements, &mut work)?;
    let mut after = before.clone();
    schedule(&mut after, &applied);
    save_schedule(tx, &meta, &before, &after)?;
    Ok(applied)
}

/// Counts and ages from every entry record, and the pauses.
fn compute_stats(
    records: &JsValue,
    dead: &JsValue,
    schedule: &JsValue,
    now: Millis,
) -> Result<Stats, IdbError> {
    let records = records
        .dyn_ref::<js_sys::Array>()
        .ok_or_else(|| CodecError::new("entry", "(list)", "getAll gave a non-array"))?;
    let mut stats = Stats {
        dead: count(dead)?,
        ..Stats::default()
    };
    let mut lanes = HashSet::new();
    for record in records.iter() {
        // A record that cannot be read still counts (as pending: the next
        // claim makes it a dead letter if it is a lane's head).
        let s = codec::decode_summary(&record).unwrap_or_else(|_| codec::Summary {
            lane: codec::field(&record, "lane")
                .as_string()
                .unwrap_or_default(),
            state: EntryState::Pending,
            created_at: now,
            size: 0,
        });
        let size = usize::try_from(s.size).unwrap_or(usize::MAX);
        stats.count(s.state, s.created_at, size, now);
        lanes.insert(s.lane);
    }
    stats.lanes = lanes.len();
    stats.read_schedule(&decode_schedule(schedule), now);
    Ok(stats)
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

    async fn tx(
        &self,
        operation: &'static str,
        stores: &[&str],
        mode: Mode,
    ) -> Result<Tx, IdbError> {
        let db = self.db().await?;
        Tx::new(&db, operation, stores, mode)
    }

    async fn enqueue_inner(
        &self,
        mut entry: Entry,
        limits: &QueueLimits,
    ) -> Result<Result<Entry, EnqueueError<IdbError>>, IdbError> {
        let tx = self
            .tx("enqueue", &[ENTRIES, DEAD, BODIES, META], Mode::WriteStrict)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let dead = tx.store(DEAD)?;
        let meta = tx.store(META)?;
        let id = id_key(entry.id);
        // Counting a store walks it (slow with a long queue), so the
        // lowest queued `seq` comes first: every queued entry lies between
        // it and the last `seq` handed out, and only when that span could
        // reach the limit are the entries counted.
        let reads = vec![
            watch(&tx, entries.open_key_cursor())?,
            watch(&tx, index(&tx, &entries, BY_ID)?.get_key(&id))?,
            watch(&tx, index(&tx, &dead, BY_ID)?.get_key(&id))?,
            watch(&tx, meta.get(&JsValue::from_str(NEXT_SEQ)))?,
        ];
        let mut results = all(reads).await?.into_iter();
        let mut next = || results.next().unwrap_or_default();
        let (first, queued_id, dead_id, last) = (next(), next(), next(), next());
        let last = if absent(&last) {
            0
        } else {
            codec::decode_seq(&last, "meta", NEXT_SEQ)?
        };
        let span = if absent(&first) {
            0
        } else {
            let lowest = codec::decode_seq(&codec::field(&first, "key"), "entries", "(first key)")?;
            usize::try_from(last.saturating_sub(lowest).saturating_add(1)).unwrap_or(usize::MAX)
        };
        // The order of refusals is the memory store's.
        let full = span >= limits.max_entries && {
            let n = watch(&tx, entries.count())?.next().await?;
            count(&n)? >= limits.max_entries
        };
        if full {
            return Ok(Err(EnqueueError::Full {
                max_entries: limits.max_entries,
            }));
        }
        let size = entry.request.size_bytes();
        if size > limits.max_entry_bytes {
            return Ok(Err(EnqueueError::TooLarge {
                size,
                max: limits.max_entry_bytes,
            }));
        }
        if !absent(&queued_id) || !absent(&dead_id) {
            return Ok(Err(EnqueueError::Duplicate(entry.id)));
        }
        entry.seq = last + 1;
        let seq = seq_key(entry.seq)?;
        let record = Record::new(entry);
        fire(&tx, entries.add(&encode_entry(&record)?))?;
        fire(
            &tx,
            tx.store(BODIES)?
                .add_with_key(&encode_body(&record.entry.request.body), &seq),
        )?;
        fire(&tx, meta.put_with_key(&seq, &JsValue::from_str(NEXT_SEQ)))?;
        fire(
            &tx,
            meta.put_with_key(&JsValue::TRUE, &lane_key(&record.entry.lane)),
        )?;
        tx.commit().await?;
        Ok(Ok(record.entry))
    }

    /// `queued`/`dead_letters`: the first `limit` records of `store` in
    /// `seq` order, with bodies.
    async fn list(
        &self,
        operation: &'static str,
        store: &str,
        limit: usize,
    ) -> Result<Vec<Entry>, IdbError> {
        if limit == 0 {
            // `getAll(query, 0)` would mean "no limit".
            return Ok(Vec::new());
        }
        let tx = self.tx(operation, &[store, BODIES], Mode::Read).await?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let read = watch(
            &tx,
            tx.store(store)?
                .get_all_with_key_and_limit(&JsValue::NULL, limit),
        )?;
        let mut entries = decode_list(&read.next().await?)?;
        with_bodies(&tx, &tx.store(BODIES)?, &mut entries).await?;
        Ok(entries)
    }
}

impl Store for IdbStore {
    type Error = IdbError;

    async fn enqueue(
        &self,
        entry: Entry,
        limits: &QueueLimits,
    ) -> Result<Entry, EnqueueError<IdbError>> {
        self.enqueue_inner(entry, limits)
            .await
            .map_err(enqueue_error)?
    }

    async fn lane_busy(&self, lane: &str) -> Result<bool, IdbError> {
        let tx = self.tx("lane_busy", &[ENTRIES], Mode::Read).await?;
        let lanes = index(&tx, &tx.store(ENTRIES)?, BY_LANE)?;
        let read = watch(&tx, lanes.get_key(&JsValue::from_str(lane)))?;
        Ok(!absent(&read.next().await?))
    }

    async fn lane_and_schedule(&self, lane: &str) -> Result<(bool, ScheduleState), IdbError> {
        let tx = self
            .tx("lane_and_schedule", &[ENTRIES, META], Mode::Read)
            .await?;
        let lanes = index(&tx, &tx.store(ENTRIES)?, BY_LANE)?;
        let reads = vec![
            watch(&tx, lanes.get_key(&JsValue::from_str(lane)))?,
            get_schedule(&tx, &tx.store(META)?)?,
        ];
        let mut read = all(reads).await?.into_iter();
        let busy = !absent(&read.next().unwrap_or_default());
        Ok((busy, decode_schedule(&read.next().unwrap_or_default())))
    }

    async fn claim(
        &self,
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<Claimed, IdbError> {
        let tx = self
            .tx("claim", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let claimed = claim_in(&tx, terms, planner).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
    ) -> Result<Vec<Settlement>, IdbError> {
        let tx = self
            .tx("settle", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let applied = settle_in(&tx, now, settlements, schedule).await?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn settle_and_claim(
        &self,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState, &[Settlement]),
        terms: LeaseTerms,
        planner: &mut dyn Planner,
    ) -> Result<(Vec<Settlement>, Claimed), IdbError> {
        let tx = self
            .tx(
                "settle_and_claim",
                &[ENTRIES, DEAD, BODIES, META],
                Mode::Write,
            )
            .await?;
        // The claim reads what the settle wrote: IndexedDB requests of one
        // transaction see its earlier writes.
        let applied = settle_in(&tx, terms.now, settlements, schedule).await?;
        let claimed = claim_in(&tx, terms, planner).await?;
        tx.commit().await?;
        Ok((applied, claimed))
    }

    async fn schedule(&self) -> Result<ScheduleState, IdbError> {
        let tx = self.tx("schedule", &[META], Mode::Read).await?;
        let read = get_schedule(&tx, &tx.store(META)?)?;
        Ok(decode_schedule(&read.next().await?))
    }

    async fn update_schedule(
        &self,
        update: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<(), IdbError> {
        let tx = self.tx("update_schedule", &[META], Mode::Write).await?;
        let meta = tx.store(META)?;
        let before = decode_schedule(&get_schedule(&tx, &meta)?.next().await?);
        let mut after = before.clone();
        update(&mut after);
        save_schedule(&tx, &meta, &before, &after)?;
        tx.commit().await
    }

    async fn release_awaiting_token(&self, origin: &str) -> Result<Vec<Head>, IdbError> {
        let tx = self
            .tx("release_awaiting_token", &[ENTRIES], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let cursor = watch(
            &tx,
            index(&tx, &entries, BY_ORIGIN)?.open_cursor_with_range(&JsValue::from_str(origin)),
        )?;
        let mut ids = Vec::new();
        // Same origin: in `seq` order.
        for value in values(cursor).await? {
            if codec::field(&value, "state").as_string().as_deref() != Some("awaiting-token") {
                continue;
            }
            // A poison record stays as it is: a claim salvages it.
            let Ok(mut record) = decode_entry(&value) else {
                continue;
            };
            record.entry.release_for_token();
            ids.push(record.entry.head());
            put_record(&tx, &entries, &record)?;
        }
        tx.commit().await?;
        Ok(ids)
    }

    async fn retry_unreachable_now(&self, now: Millis) -> Result<usize, IdbError> {
        let tx = self
            .tx("retry_unreachable_now", &[ENTRIES], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let cursor = watch(&tx, entries.open_cursor())?;
        let mut hurried = 0;
        for value in values(cursor).await? {
            if codec::field(&value, "state").as_string().as_deref() != Some("pending") {
                continue;
            }
            // A poison record stays as it is: a claim salvages it.
            let Ok(mut record) = decode_entry(&value) else {
                continue;
            };
            if record.entry.hurry(now) {
                put_record(&tx, &entries, &record)?;
                hurried += 1;
            }
        }
        tx.commit().await?;
        Ok(hurried)
    }

    async fn get(&self, id: EntryId) -> Result<Option<Entry>, IdbError> {
        let tx = self.tx("get", &[ENTRIES, DEAD, BODIES], Mode::Read).await?;
        let key = id_key(id);
        let reads = vec![
            watch(&tx, index(&tx, &tx.store(ENTRIES)?, BY_ID)?.get(&key))?,
            watch(&tx, index(&tx, &tx.store(DEAD)?, BY_ID)?.get(&key))?,
        ];
        let mut results = all(reads).await?.into_iter();
        let queued = results.next().unwrap_or_default();
        let found = if absent(&queued) {
            results.next().unwrap_or_default()
        } else {
            queued
        };
        if absent(&found) {
            return Ok(None);
        }
        let mut entry = [decode_entry(&found)?.entry];
        with_bodies(&tx, &tx.store(BODIES)?, &mut entry).await?;
        let [entry] = entry;
        Ok(Some(entry))
    }

    async fn queued(&self, limit: usize) -> Result<Vec<Entry>, IdbError> {
        self.list("queued", ENTRIES, limit).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Entry>, IdbError> {
        self.list("dead_letters", DEAD, limit).await
    }

    async fn revive(&self, id: EntryId, now: Millis) -> Result<Option<Entry>, IdbError> {
        let tx = self
            .tx("revive", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let dead = tx.store(DEAD)?;
        let Some(mut entry) = find(&tx, &dead, &tx.store(BODIES)?, id).await? else {
            return Ok(None);
        };
        if entry.is_corrupt() {
            return Ok(None);
        }
        lift_hold(&tx, id).await?;
        delete_seq(&tx, &dead, entry.seq)?;
        entry.revive(now);
        let record = Record::new(entry);
        put_record(&tx, &tx.store(ENTRIES)?, &record)?;
        fire(
            &tx,
            tx.store(META)?
                .put_with_key(&JsValue::TRUE, &lane_key(&record.entry.lane)),
        )?;
        tx.commit().await?;
        Ok(Some(record.entry))
    }

    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, IdbError> {
        let tx = self
            .tx("discard", &[DEAD, BODIES, META], Mode::Write)
            .await?;
        let dead = tx.store(DEAD)?;
        let bodies = tx.store(BODIES)?;
        let Some(entry) = find(&tx, &dead, &bodies, id).await? else {
            return Ok(None);
        };
        lift_hold(&tx, id).await?;
        delete_seq(&tx, &dead, entry.seq)?;
        delete_seq(&tx, &bodies, entry.seq)?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    async fn cancel(&self, id: EntryId) -> Result<CancelResult, IdbError> {
        let tx = self.tx("cancel", &[ENTRIES, BODIES], Mode::Write).await?;
        let entries = tx.store(ENTRIES)?;
        let read = watch(&tx, index(&tx, &entries, BY_ID)?.get(&id_key(id)))?;
        let found = read.next().await?;
        if absent(&found) {
            return Ok(CancelResult::NotFound);
        }
        let entry = decode_entry(&found)?.entry;
        if matches!(entry.state, EntryState::InFlight { .. }) {
            return Ok(CancelResult::InFlight);
        }
        delete_seq(&tx, &entries, entry.seq)?;
        delete_seq(&tx, &tx.store(BODIES)?, entry.seq)?;
        tx.commit().await?;
        Ok(CancelResult::Cancelled)
    }

    async fn purge(&self) -> Result<Purged, IdbError> {
        let tx = self
            .tx("purge", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let dead = tx.store(DEAD)?;
        let reads = vec![watch(&tx, entries.count())?, watch(&tx, dead.count())?];
        let mut results = all(reads).await?.into_iter();
        let purged = Purged {
            queued: count(&results.next().unwrap_or_default())?,
            dead: count(&results.next().unwrap_or_default())?,
        };
        fire(&tx, entries.clear())?;
        fire(&tx, dead.clear())?;
        fire(&tx, tx.store(BODIES)?.clear())?;
        // `nextSeq` stays: seq is never reused.
        fire(&tx, tx.store(META)?.delete(&JsValue::from_str(SCHEDULE)))?;
        tx.commit().await?;
        Ok(purged)
    }

    async fn stats(&self, now: Millis) -> Result<Stats, IdbError> {
        let tx = self.tx("stats", &[ENTRIES, DEAD, META], Mode::Read).await?;
        let reads = vec![
            watch(&tx, tx.store(ENTRIES)?.get_all())?,
            watch(&tx, tx.store(DEAD)?.count())?,
            get_schedule(&tx, &tx.store(META)?)?,
        ];
        let mut results = all(reads).await?.into_iter();
        let mut next = || results.next().unwrap_or_default();
        let (records, dead, schedule) = (next(), next(), next());
        compute_stats(&records, &dead, &schedule, now)
    }
}
