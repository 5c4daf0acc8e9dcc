//! [`IdbStore`]: the outbox's [`Store`] on IndexedDB. The schema is
//! described on [`IdbStore`].

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::rc::Rc;

use outbox_core::clock::Millis;
use outbox_core::entry::{Entry, EntryId, EntryState, Head, Seq};
use outbox_core::pacer::ScheduleState;
use outbox_core::retry::Action;
use outbox_core::scheduler::Claim;
use outbox_core::store::{
    CancelResult, Claimed, EnqueueError, Planner, Purged, QueueLimits, Settlement, Stats, Store,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    IdbCursorDirection, IdbDatabase, IdbIndex, IdbIndexParameters, IdbObjectStore,
    IdbObjectStoreParameters, IdbRequest, IdbTransaction,
};

use crate::codec::{
    self, Record, decode_body, decode_entry, decode_head, encode_body, encode_entry, seq_key,
};
use crate::error::{CodecError, IdbError, enqueue_error};
use crate::idb::{self, Migration, Mode, Request, Tx, dom_error};

const ENTRIES: &str = "entries";
const DEAD: &str = "dead";
const BODIES: &str = "bodies";
const META: &str = "meta";
const BY_LANE: &str = "lane";
const BY_ID: &str = "id";
const BY_ORIGIN: &str = "origin";
const NEXT_SEQ: &str = "nextSeq";
const SCHEDULE: &str = "schedule";

/// The upgrade steps; step `i` takes the database from version `i` to
/// `i + 1`, so the schema version is the list's length. Append only.
const MIGRATIONS: &[Migration] = &[create_v1];

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
    JsValue::from_str(&id.to_string())
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

fn put_record(tx: &Tx, store: &IdbObjectStore, record: &Record) -> Result<(), IdbError> {
    fire(tx, store.put(&encode_entry(record)?))
}

fn delete_seq(tx: &Tx, store: &IdbObjectStore, seq: Seq) -> Result<(), IdbError> {
    fire(tx, store.delete(&seq_key(seq)?))
}

/// Reads the bodies of `entries` (in one go) and puts them in place.
async fn attach_bodies(
    tx: &Tx,
    bodies: &IdbObjectStore,
    entries: &mut [Entry],
) -> Result<(), IdbError> {
    let mut requests = Vec::with_capacity(entries.len());
    for e in entries.iter() {
        requests.push(watch(tx, bodies.get(&seq_key(e.seq)?))?);
    }
    for (e, r) in entries.iter_mut().zip(&requests) {
        e.request.body = decode_body(&r.next().await?)?;
    }
    Ok(())
}

/// Reads the entry records `records` (from `getAll`) with their bodies.
async fn with_bodies(
    tx: &Tx,
    bodies: &IdbObjectStore,
    records: &JsValue,
) -> Result<Vec<Entry>, IdbError> {
    let records: js_sys::Array = records
        .clone()
        .dyn_into()
        .map_err(|_| CodecError::new("entry", "(list)", "getAll gave a non-array"))?;
    let mut entries = records
        .iter()
        .map(|r| decode_entry(&r).map(|r| r.entry))
        .collect::<Result<Vec<_>, _>>()?;
    attach_bodies(tx, bodies, &mut entries).await?;
    Ok(entries)
}

/// One entry (by its `id` index) with its body, if there.
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
    attach_bodies(tx, bodies, &mut entry).await?;
    let [entry] = entry;
    Ok(Some(entry))
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
        let queued = watch(&tx, entries.count())?;
        let queued_id = watch(&tx, index(&tx, &entries, BY_ID)?.get_key(&id))?;
        let dead_id = watch(&tx, index(&tx, &dead, BY_ID)?.get_key(&id))?;
        let last_seq = watch(&tx, meta.get(&JsValue::from_str(NEXT_SEQ)))?;
        // The order of refusals is the memory store's.
        if count(&queued.next().await?)? >= limits.max_entries {
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
        if !absent(&queued_id.next().await?) || !absent(&dead_id.next().await?) {
            return Ok(Err(EnqueueError::Duplicate(entry.id)));
        }
        let last = last_seq.next().await?;
        let last = if absent(&last) {
            0
        } else {
            codec::decode_seq(&last, "meta", NEXT_SEQ)?
        };
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
        tx.commit().await?;
        Ok(Ok(record.entry))
    }

    fn load_schedule(tx: &Tx, meta: &IdbObjectStore) -> Result<Request, IdbError> {
        watch(tx, meta.get(&JsValue::from_str(SCHEDULE)))
    }

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
}

/// The entry records a transaction changes, as they stand now
/// (`None`: removed from `entries`).
type Working = HashMap<Seq, Option<Record>>;

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
        let entries = tx.store(ENTRIES)?;
        let first = watch(
            &tx,
            index(&tx, &entries, BY_LANE)?.get_key(&JsValue::from_str(lane)),
        )?
        .next()
        .await?;
        Ok(!absent(&first))
    }

    async fn claim(
        &self,
        now: Millis,
        lease_until: Millis,
        planner: &mut Planner<'_>,
    ) -> Result<Claimed, IdbError> {
        let tx = self
            .tx("claim", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let dead = tx.store(DEAD)?;
        let meta = tx.store(META)?;
        let schedule = Self::load_schedule(&tx, &meta)?;
        let cursor = watch(
            &tx,
            index(&tx, &entries, BY_LANE)?.open_cursor_with_range_and_direction(
                &JsValue::NULL,
                IdbCursorDirection::Nextunique,
            ),
        )?;
        let before = decode_schedule(&schedule.next().await?);
        let mut heads: Vec<Head> = Vec::new();
        let mut records: HashMap<Seq, JsValue> = HashMap::new();
        while let Some(c) = cursor.next_cursor().await? {
            let value = c.value().map_err(|e| dom_error("claim", &e))?;
            let head = decode_head(&value)?;
            records.insert(head.seq, value);
            heads.push(head);
            c.continue_().map_err(|e| dom_error("claim", &e))?;
        }
        drop(cursor);

        // The planner runs synchronously, inside the transaction.
        let mut after = before.clone();
        let (claims, next_wake) = planner(&mut after, &heads);

        let mut work = Working::new();
        let mut claimed = Claimed {
            next_wake,
            ..Claimed::default()
        };
        for (seq, claim) in claims {
            let current = match work.get(&seq) {
                Some(e) => e.clone(),
                None => match records.get(&seq) {
                    Some(value) => Some(decode_entry(value)?),
                    None => {
                        let value = watch(&tx, entries.get(&seq_key(seq)?))?.next().await?;
                        if absent(&value) {
                            None
                        } else {
                            Some(decode_entry(&value)?)
                        }
                    }
                },
            };
            let Some(mut record) = current else {
                work.insert(seq, None);
                continue;
            };
            let entry = &mut record.entry;
            match claim {
                Claim::Send => {
                    if !entry.is_ready(now) {
                        work.insert(seq, Some(record));
                        continue;
                    }
                    if matches!(entry.state, EntryState::InFlight { .. }) {
                        entry.failures += 1;
                    }
                    entry.attempts += 1;
                    entry.state = EntryState::InFlight { lease_until };
                    put_record(&tx, &entries, &record)?;
                    claimed.sends.push(record.entry.clone());
                    work.insert(seq, Some(record));
                }
                Claim::AwaitToken => {
                    entry.state = EntryState::AwaitingToken;
                    put_record(&tx, &entries, &record)?;
                    claimed.awaiting_token.push(record.entry.clone());
                    work.insert(seq, Some(record));
                }
                Claim::Expire(error) => {
                    delete_seq(&tx, &entries, seq)?;
                    entry.last_error = Some(error);
                    entry.state = EntryState::Dead { at: now };
                    put_record(&tx, &dead, &record)?;
                    claimed.expired.push(record.entry);
                    work.insert(seq, None);
                }
            }
        }
        Self::save_schedule(&tx, &meta, &before, &after)?;
        let bodies = tx.store(BODIES)?;
        attach_bodies(&tx, &bodies, &mut claimed.sends).await?;
        attach_bodies(&tx, &bodies, &mut claimed.awaiting_token).await?;
        attach_bodies(&tx, &bodies, &mut claimed.expired).await?;
        tx.commit().await?;
        Ok(claimed)
    }

    async fn settle(
        &self,
        now: Millis,
        settlements: Vec<Settlement>,
        schedule: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<Vec<Settlement>, IdbError> {
        let tx = self
            .tx("settle", &[ENTRIES, DEAD, BODIES, META], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let dead = tx.store(DEAD)?;
        let bodies = tx.store(BODIES)?;
        let meta = tx.store(META)?;
        let stored_schedule = Self::load_schedule(&tx, &meta)?;
        let mut reads = Vec::new();
        let mut seen = BTreeSet::new();
        for s in &settlements {
            if seen.insert(s.seq) {
                reads.push((s.seq, watch(&tx, entries.get(&seq_key(s.seq)?))?));
            }
        }
        let before = decode_schedule(&stored_schedule.next().await?);
        let mut work = Working::new();
        for (seq, read) in &reads {
            let value = read.next().await?;
            let entry = if absent(&value) {
                None
            } else {
                Some(decode_entry(&value)?)
            };
            work.insert(*seq, entry);
        }
        drop(reads);

        let mut applied = Vec::with_capacity(settlements.len());
        for s in settlements {
            let Some(Some(record)) = work.get_mut(&s.seq) else {
                continue;
            };
            let entry = &mut record.entry;
            if entry.attempts != s.attempt || !matches!(entry.state, EntryState::InFlight { .. }) {
                continue;
            }
            match &s.action {
                Action::Delivered { .. } => {
                    delete_seq(&tx, &entries, s.seq)?;
                    delete_seq(&tx, &bodies, s.seq)?;
                    work.insert(s.seq, None);
                }
                Action::Retry {
                    not_before,
                    failures,
                    error,
                } => {
                    entry.state = EntryState::Pending;
                    entry.not_before = *not_before;
                    entry.failures = *failures;
                    entry.auth_failures = 0;
                    entry.last_error = Some(error.clone());
                    put_record(&tx, &entries, record)?;
                }
                Action::AwaitToken {
                    auth_failures,
                    error,
                } => {
                    entry.state = EntryState::AwaitingToken;
                    entry.auth_failures = *auth_failures;
                    entry.last_error = Some(error.clone());
                    put_record(&tx, &entries, record)?;
                }
                Action::Dead { error } => {
                    entry.last_error = Some(error.clone());
                    entry.state = EntryState::Dead { at: now };
                    delete_seq(&tx, &entries, s.seq)?;
                    put_record(&tx, &dead, record)?;
                    work.insert(s.seq, None);
                }
            }
            applied.push(s);
        }
        let mut after = before.clone();
        schedule(&mut after);
        Self::save_schedule(&tx, &meta, &before, &after)?;
        tx.commit().await?;
        Ok(applied)
    }

    async fn schedule(&self) -> Result<ScheduleState, IdbError> {
        let tx = self.tx("schedule", &[META], Mode::Read).await?;
        let meta = tx.store(META)?;
        let value = Self::load_schedule(&tx, &meta)?.next().await?;
        Ok(decode_schedule(&value))
    }

    async fn update_schedule(
        &self,
        update: &mut dyn FnMut(&mut ScheduleState),
    ) -> Result<(), IdbError> {
        let tx = self.tx("update_schedule", &[META], Mode::Write).await?;
        let meta = tx.store(META)?;
        let before = decode_schedule(&Self::load_schedule(&tx, &meta)?.next().await?);
        let mut after = before.clone();
        update(&mut after);
        Self::save_schedule(&tx, &meta, &before, &after)?;
        tx.commit().await
    }

    async fn release_awaiting_token(
        &self,
        origin: &str,
        now: Millis,
    ) -> Result<Vec<EntryId>, IdbError> {
        let tx = self
            .tx("release_awaiting_token", &[ENTRIES], Mode::Write)
            .await?;
        let entries = tx.store(ENTRIES)?;
        let cursor = watch(
            &tx,
            index(&tx, &entries, BY_ORIGIN)?.open_cursor_with_range(&JsValue::from_str(origin)),
        )?;
        let mut ids = Vec::new();
        while let Some(c) = cursor.next_cursor().await? {
            let value = c.value().map_err(|e| dom_error(tx.operation(), &e))?;
            if codec::field(&value, "state").as_string().as_deref() == Some("awaiting-token") {
                let mut record = decode_entry(&value)?;
                let entry = &mut record.entry;
                entry.state = EntryState::Pending;
                entry.not_before = entry.not_before.min(now);
                ids.push(entry.id);
                fire(&tx, c.update(&encode_entry(&record)?))?;
            }
            c.continue_().map_err(|e| dom_error(tx.operation(), &e))?;
        }
        drop(cursor);
        tx.commit().await?;
        Ok(ids)
    }

    async fn get(&self, id: EntryId) -> Result<Option<Entry>, IdbError> {
        let tx = self.tx("get", &[ENTRIES, DEAD, BODIES], Mode::Read).await?;
        let bodies = tx.store(BODIES)?;
        if let Some(e) = find(&tx, &tx.store(ENTRIES)?, &bodies, id).await? {
            return Ok(Some(e));
        }
        find(&tx, &tx.store(DEAD)?, &bodies, id).await
    }

    async fn queued(&self, limit: usize) -> Result<Vec<Entry>, IdbError> {
        self.list("queued", ENTRIES, limit).await
    }

    async fn dead_letters(&self, limit: usize) -> Result<Vec<Entry>, IdbError> {
        self.list("dead_letters", DEAD, limit).await
    }

    async fn revive(&self, id: EntryId, now: Millis) -> Result<Option<Entry>, IdbError> {
        let tx = self
            .tx("revive", &[ENTRIES, DEAD, BODIES], Mode::Write)
            .await?;
        let Some(mut entry) = find(&tx, &tx.store(DEAD)?, &tx.store(BODIES)?, id).await? else {
            return Ok(None);
        };
        delete_seq(&tx, &tx.store(DEAD)?, entry.seq)?;
        entry.state = EntryState::Pending;
        entry.not_before = now;
        entry.attempts = 0;
        entry.failures = 0;
        entry.auth_failures = 0;
        entry.created_at = now;
        let record = Record::new(entry);
        put_record(&tx, &tx.store(ENTRIES)?, &record)?;
        tx.commit().await?;
        Ok(Some(record.entry))
    }

    async fn discard(&self, id: EntryId) -> Result<Option<Entry>, IdbError> {
        let tx = self.tx("discard", &[DEAD, BODIES], Mode::Write).await?;
        let bodies = tx.store(BODIES)?;
        let Some(entry) = find(&tx, &tx.store(DEAD)?, &bodies, id).await? else {
            return Ok(None);
        };
        delete_seq(&tx, &tx.store(DEAD)?, entry.seq)?;
        delete_seq(&tx, &bodies, entry.seq)?;
        tx.commit().await?;
        Ok(Some(entry))
    }

    async fn cancel(&self, id: EntryId) -> Result<CancelResult, IdbError> {
        let tx = self.tx("cancel", &[ENTRIES, BODIES], Mode::Write).await?;
        let entries = tx.store(ENTRIES)?;
        let found = watch(&tx, index(&tx, &entries, BY_ID)?.get(&id_key(id)))?
            .next()
            .await?;
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
        let queued = watch(&tx, entries.count())?;
        let dead_count = watch(&tx, dead.count())?;
        let purged = Purged {
            queued: count(&queued.next().await?)?,
            dead: count(&dead_count.next().await?)?,
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
        let all = watch(&tx, tx.store(ENTRIES)?.get_all())?;
        let dead = watch(&tx, tx.store(DEAD)?.count())?;
        let schedule = Self::load_schedule(&tx, &tx.store(META)?)?;
        let all: js_sys::Array = all
            .next()
            .await?
            .dyn_into()
            .map_err(|_| CodecError::new("entry", "(list)", "getAll gave a non-array"))?;
        let mut stats = Stats {
            dead: count(&dead.next().await?)?,
            ..Stats::default()
        };
        let mut lanes = BTreeSet::new();
        for record in all.iter() {
            let s = codec::decode_summary(&record)?;
            match s.state {
                EntryState::Pending => stats.pending += 1,
                EntryState::InFlight { .. } => stats.in_flight += 1,
                EntryState::AwaitingToken => stats.awaiting_token += 1,
                EntryState::Dead { .. } => {}
            }
            stats.bytes = stats
                .bytes
                .saturating_add(usize::try_from(s.size).unwrap_or(usize::MAX));
            stats.oldest_created_at = Some(
                stats
                    .oldest_created_at
                    .map_or(s.created_at, |o| o.min(s.created_at)),
            );
            lanes.insert(s.lane);
        }
        stats.lanes = lanes.len();
        let schedule = decode_schedule(&schedule.next().await?);
        stats.paused = schedule
            .origins
            .iter()
            .filter(|(_, p)| p.paused_until > now)
            .map(|(o, p)| (o.clone(), p.paused_until))
            .collect();
        Ok(stats)
    }
}

impl IdbStore {
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
        let records = watch(
            &tx,
            tx.store(store)?
                .get_all_with_key_and_limit(&JsValue::NULL, limit),
        )?
        .next()
        .await?;
        with_bodies(&tx, &tx.store(BODIES)?, &records).await
    }
}
