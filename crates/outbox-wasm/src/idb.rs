//! One of core's transactions over IndexedDB, as the host runs it: each
//! step of the transaction becomes a batch of IndexedDB operations the host
//! carries out, and what they read comes back as the next step's input.
//!
//! # How a transaction runs
//!
//! The host opens an IndexedDB transaction (read-only; read-write with
//! `durability: "strict"` for an enqueue, `"relaxed"` for the others) and
//! calls [`IdbRun::advance`]
//! with no results. The run polls core's [`Transaction`] until it needs
//! something read: every read of the step becomes requests (`get`,
//! `getAll`, a cursor, …), every write becomes `put`/`add`/`delete`/
//! `clear` requests, all in one batch. The host issues the batch's
//! operations in order, at once, and waits only for the reads among them;
//! their results (in order) are the input of the next `advance`, which
//! it makes **inside the last result's `success` callback**, so that the
//! transaction is still active. A read of several stages (the heads of the
//! listed lanes, a body after its entry, a count only when it may matter)
//! asks for its next requests in the next batch. When the transaction
//! commits, the last batch (only writes) comes with [`Advance::Commit`]:
//! the host issues it and commits.
//!
//! What is IndexedDB's own stays here, as the Rust store had it: the
//! schema ([`SCHEMA`], [`SCHEMA_VERSION`]), the records' codec
//! ([`crate::record`]: bodies kept apart, a poison record salvaged), the
//! list of lanes kept in `meta`, and how each read is made cheap (a count
//! only when the span of `seq`s could reach the limit, heads without
//! bodies, the queue read a page at a time, a run of consecutive `seq`s —
//! a settled lane's — read and removed with one ranged request per store
//! instead of one per entry). The host knows none of it:
//! it runs the operations it is handed (`web/host/store.ts`).
//!
//! # Schema (version 1)
//!
//! | store | key | indexes | holds |
//! |---|---|---|---|
//! | `entries` | keyPath `seq` | `lane` (non-unique), `id` (unique), `origin` (non-unique) | queued entries, without body |
//! | `dead` | keyPath `seq` | `id` (unique) | dead letters, without body |
//! | `bodies` | out-of-line: the `seq` | — | each entry's body, a `Uint8Array`, queued or dead |
//! | `meta` | out-of-line: a name | — | `nextSeq` (number): the last `seq` given, never reset, so `seq` is never reused, even after a purge; `schedule` (string): [`ScheduleState::encode`]; `lane:<lane>` (`true`): the lanes a claim reads heads from |
//!
//! * Iterating the `lane` index seeking from lane to lane yields each
//!   lane's first record in (lane, `seq`) order: exactly each lane's head.
//!   A surveying heads read ([`HeadsRead::survey`]) reads them this way;
//!   otherwise the lanes listed in `meta` are read, one `get` each, all at
//!   once, and a listed lane found empty is unlisted.
//! * Bodies live apart so that scheduling, leasing and settling (which
//!   rewrite the entry record) never read or rewrite a body.
//! * `seq` is a JS number (safe up to 2⁵³ − 1).
//!
//! # Operations
//!
//! A batch is a JSON array of operations; the host answers the reads
//! (`get`, `key`, `all`, `keys`, `count`, `first`, `page`) in order, one
//! frame item each: the value's JSON (`null` when absent), or bytes for a
//! body. A key is a number, a string, or `{"lo": …, "hi": …}` for a bound
//! range.
//!
//! | operation | IndexedDB | result |
//! |---|---|---|
//! | `["get", store, index, key]` | `get` | the value |
//! | `["key", store, index, key]` | `getKey` | the key |
//! | `["all", store, index, query, count]` | `getAll` (`count` 0: all) | the values |
//! | `["keys", store, index, query, count]` | `getAllKeys` | the keys |
//! | `["count", store]` | `count` | a number |
//! | `["first", store, index]` | a cursor on the index, seeking past each key once read | the first value per index key |
//! | `["page", store, index, key, after, limit, field, equals]` | a cursor from the primary key after `after` (on the index, only `key`), keeping values whose `field` is `equals` (when given), stopping at `limit` | `{"next", "values"}`: `next` the last primary key kept when it stopped at the limit, else `null` |
//! | `["put", store, value, key]` | `put` | — |
//! | `["add", store, value, key]` | `add` | — |
//! | `["body", store, blob, key]` | `add` of the batch's blob `blob` as a `Uint8Array` | — |
//! | `["del", store, key]` | `delete` | — |
//! | `["clear", store]` | `clear` | — |

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use outbox_core::clock::Millis;
use outbox_core::entry::{Entry, EntryId, Head, Seq};
use outbox_core::json::{self, Kind};
use outbox_core::pacer::ScheduleState;
use outbox_core::queue::{Planner, Transaction};
use outbox_core::store::{
    Access, Among, Behind, FindRead, Found, FullRead, HeadsRead, ListRead, Read, Step, Waiting,
    Write,
};

use crate::error::{CodecError, StoreError};
use crate::frame::{Frame, Item};
use crate::record::{self, Json, Record, RecordValue};

/// The schema version this code writes and understands. A database at a
/// higher version (written by newer code) is refused and left untouched.
pub const SCHEMA_VERSION: u32 = 1;

/// The schema, for the host's upgrade step (it creates what a database at
/// an older version lacks): each store with its key path (`null`:
/// out-of-line keys) and its indexes (`[name, keyPath, unique]`). Version
/// 1 is these four stores; a later version adds to them, never removes.
pub const SCHEMA: &str = r#"[["entries","seq",[["lane","lane",false],["id","id",true],["origin","origin",false]]],["dead","seq",[["id","id",true]]],["bodies",null,[]],["meta",null,[]]]"#;

const ENTRIES: &str = "entries";
const DEAD: &str = "dead";
const BODIES: &str = "bodies";
const META: &str = "meta";
const BY_LANE: &str = "lane";
const BY_ID: &str = "id";
const BY_ORIGIN: &str = "origin";
const NEXT_SEQ: &str = "nextSeq";
const SCHEDULE: &str = "schedule";
/// The prefix of the `meta` keys that list the lanes (`lane:<lane>`).
const LANE_PREFIX: &str = "lane:";
/// The first string after every `lane:` key (`;` follows `:`).
const LANE_END: &str = "lane;";

/// A key of an operation.
enum Key<'a> {
    None,
    Seq(Seq),
    Str(&'a str),
    Range(&'a str, &'a str),
    /// Every `seq` from the first to the last, both included.
    Seqs(Seq, Seq),
}

/// What one [`IdbRun::advance`] asks of the host.
#[derive(Debug)]
pub enum Advance {
    /// Carry out these operations, and call `advance` again with the
    /// results of their reads (there is at least one).
    Ops(Batch),
    /// Carry out these operations (writes only, maybe none), then commit.
    Commit(Batch),
}

/// A batch of operations: the JSON array and the bodies it adds.
#[derive(Debug, Default)]
pub struct Batch {
    /// The operations, a JSON array.
    pub ops: String,
    /// The bodies the `body` operations add, by index.
    pub blobs: Vec<Vec<u8>>,
}

/// What a read waits for, and how it goes on.
struct Pending {
    then: Then,
    results: usize,
}

/// The ask of a read whose bodies come last.
enum Listed {
    Find(FindRead),
    List(ListRead),
}

/// How a read goes on once what it waited for came.
enum Then {
    /// The read itself, at its first stage.
    Read(Read),
    /// The listed lanes' `get`s (their `meta` keys), for their heads.
    Heads(HeadsRead, Vec<String>),
    /// The entries found or listed, for their bodies.
    WithBodies(Listed, Vec<Entry>),
    /// The count, once the span of `seq`s could reach the limit.
    Full(FullRead),
}

/// A read after its first requests: done, or waiting for more.
enum Next {
    Done(Found),
    Wait(Then, usize),
}

/// What a transaction keeps of each record it decoded, to write it back as
/// it was but for the entry: the length of its body (kept apart) and, for a
/// salvaged poison record, the record as it was.
struct Kept {
    body_len: usize,
    raw: Option<String>,
}

/// One core transaction run over IndexedDB by the host (see the
/// [module](self)).
pub struct IdbRun {
    name: &'static str,
    now: Millis,
    /// By `seq`, sorted (records mostly come in `seq` order).
    kept: Vec<(Seq, Kept)>,
    /// Reads whose requests are out, in the order of their requests.
    pending: Vec<Pending>,
    /// Reads of this step already answered.
    found: Vec<Found>,
    batch: Batch,
    /// Read operations in the batch.
    reads: usize,
}

impl IdbRun {
    /// A run of a transaction called `name`, at `now` (the time poison
    /// records are salvaged at).
    pub fn new(name: &'static str, now: Millis) -> Self {
        Self {
            name,
            now,
            kept: Vec::new(),
            pending: Vec::new(),
            found: Vec::new(),
            batch: Batch::default(),
            reads: 0,
        }
    }

    /// How a transaction of `access` opens: `r` read-only, `w`
    /// read-write with `durability: "relaxed"`, `d` read-write with
    /// `durability: "strict"`.
    pub fn mode(access: Access) -> &'static str {
        match access {
            Access::Read => "r",
            Access::Write => "w",
            Access::Durable => "d",
        }
    }

    /// Runs `tx` on, `results` answering the reads of the last batch (an
    /// empty frame the first time), `hooks` deciding inside it: the next
    /// batch, or the commit.
    pub fn advance(
        &mut self,
        tx: &mut dyn Transaction,
        hooks: &mut dyn Planner,
        results: &mut Frame<'_>,
    ) -> Result<Advance, StoreError> {
        if !self.pending.is_empty() {
            for pending in core::mem::take(&mut self.pending) {
                let mut values = Vec::with_capacity(pending.results);
                for _ in 0..pending.results {
                    values.push(results.next().unwrap_or(Item::Null));
                }
                match self.then(pending.then, values)? {
                    Next::Done(found) => self.found.push(found),
                    Next::Wait(then, results) => self.pending.push(Pending { then, results }),
                }
            }
            if !self.pending.is_empty() {
                return Ok(Advance::Ops(self.take_batch()));
            }
            tx.feed(core::mem::take(&mut self.found));
        }
        loop {
            match tx.poll(hooks) {
                Step::Read(reads) => {
                    for read in reads {
                        match self.ask(read)? {
                            Next::Done(found) => self.found.push(found),
                            Next::Wait(then, results) => {
                                self.pending.push(Pending { then, results })
                            }
                        }
                    }
                    if !self.pending.is_empty() {
                        return Ok(Advance::Ops(self.take_batch()));
                    }
                    tx.feed(core::mem::take(&mut self.found));
                }
                Step::Write(writes) => {
                    // Removals one after the other (a settled lane's
                    // delivered entries) go as one range delete per store
                    // for each run of consecutive `seq`s; every other
                    // write keeps its place.
                    let mut removals: Vec<Seq> = Vec::new();
                    for write in writes {
                        if let Write::Remove(seq) = write {
                            removals.push(seq);
                            continue;
                        }
                        self.remove_runs(&mut removals)?;
                        self.carry_out(write)?;
                    }
                    self.remove_runs(&mut removals)?;
                }
                Step::Commit => return Ok(Advance::Commit(self.take_batch())),
            }
        }
    }

    /// A failure the host reports (the transaction aborted, a request
    /// failed): the store error of this transaction.
    pub fn failed(&self, name: &str, message: &str) -> StoreError {
        StoreError::Dom {
            operation: self.name,
            name: name.to_owned(),
            message: message.to_owned(),
        }
    }

    fn take_batch(&mut self) -> Batch {
        self.reads = 0;
        let mut batch = core::mem::take(&mut self.batch);
        if batch.ops.is_empty() {
            batch.ops.push('[');
        }
        batch.ops.push(']');
        batch
    }

    /// Starts an operation: `["op","store"`.
    fn begin(&mut self, op: &str, store: &str) {
        let ops = &mut self.batch.ops;
        ops.push(if ops.is_empty() { '[' } else { ',' });
        ops.push_str("[\"");
        ops.push_str(op);
        ops.push_str("\",\"");
        ops.push_str(store);
        ops.push('"');
    }

    fn end(&mut self) {
        self.batch.ops.push(']');
    }

    fn push_key(&mut self, key: &Key<'_>) {
        let ops = &mut self.batch.ops;
        ops.push(',');
        match key {
            Key::None => ops.push_str("null"),
            Key::Seq(seq) => json::push_u64(ops, *seq),
            Key::Str(s) => json::write_string(ops, s),
            Key::Range(lo, hi) => {
                ops.push_str("{\"lo\":");
                json::write_string(ops, lo);
                ops.push_str(",\"hi\":");
                json::write_string(ops, hi);
                ops.push('}');
            }
            Key::Seqs(lo, hi) => {
                ops.push_str("{\"lo\":");
                json::push_u64(ops, *lo);
                ops.push_str(",\"hi\":");
                json::push_u64(ops, *hi);
                ops.push('}');
            }
        }
    }

    fn push_index(&mut self, index: Option<&str>) {
        match index {
            Some(i) => self.push_key(&Key::Str(i)),
            None => self.push_key(&Key::None),
        }
    }

    fn push_num(&mut self, n: u64) {
        self.batch.ops.push(',');
        json::push_u64(&mut self.batch.ops, n);
    }

    /// A read of one value (`get`) or key (`key`).
    fn get(&mut self, op: &str, store: &str, index: Option<&str>, key: Key<'_>) {
        self.begin(op, store);
        self.push_index(index);
        self.push_key(&key);
        self.end();
        self.reads += 1;
    }

    /// A read of several values (`all`) or keys (`keys`).
    fn all(&mut self, op: &str, store: &str, index: Option<&str>, query: Key<'_>, count: usize) {
        self.begin(op, store);
        self.push_index(index);
        self.push_key(&query);
        self.push_num(count as u64);
        self.end();
        self.reads += 1;
    }

    fn count(&mut self, store: &str) {
        self.begin("count", store);
        self.end();
        self.reads += 1;
    }

    /// A cursor read of one page (see the module's table).
    #[allow(clippy::too_many_arguments)]
    fn page(
        &mut self,
        store: &str,
        index: Option<&str>,
        key: Key<'_>,
        after: Seq,
        limit: usize,
        field_equals: Option<(&str, &str)>,
    ) {
        self.begin("page", store);
        self.push_index(index);
        self.push_key(&key);
        self.push_num(after);
        self.push_num(limit as u64);
        match field_equals {
            Some((field, equals)) => {
                self.push_key(&Key::Str(field));
                self.push_key(&Key::Str(equals));
            }
            None => {
                self.push_key(&Key::None);
                self.push_key(&Key::None);
            }
        }
        self.end();
        self.reads += 1;
    }

    /// A write of a JSON value (`put` or `add`), under `key` for a store
    /// of out-of-line keys.
    fn put(&mut self, op: &str, store: &str, value: &str, key: Key<'_>) {
        self.begin(op, store);
        self.batch.ops.push(',');
        self.batch.ops.push_str(value);
        self.push_key(&key);
        self.end();
    }

    fn delete(&mut self, store: &str, key: Key<'_>) {
        self.begin("del", store);
        self.push_key(&key);
        self.end();
    }

    fn clear(&mut self, store: &str) {
        self.begin("clear", store);
        self.end();
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

    fn put_entry(&mut self, store: &str, entry: Entry) -> Result<(), StoreError> {
        let text = record::encode(&self.record(entry))?;
        self.put("put", store, &text, Key::None);
        Ok(())
    }

    /// Lists `lane` in `meta`.
    fn list_lane(&mut self, lane: &str) {
        let mut key = String::with_capacity(LANE_PREFIX.len() + lane.len());
        key.push_str(LANE_PREFIX);
        key.push_str(lane);
        self.put("put", META, "true", Key::Str(&key));
    }

    /// Issues the first requests of `read`.
    fn ask(&mut self, read: Read) -> Result<Next, StoreError> {
        let before = self.reads;
        let then = match read {
            Read::Schedule(ask) => {
                self.get("get", META, None, Key::Str(SCHEDULE));
                Then::Read(Read::Schedule(ask))
            }
            Read::Heads(ask) if ask.survey => {
                self.begin("first", ENTRIES);
                self.push_index(Some(BY_LANE));
                self.end();
                self.reads += 1;
                Then::Read(Read::Heads(ask))
            }
            Read::Heads(ask) => {
                self.all("keys", META, None, Key::Range(LANE_PREFIX, LANE_END), 0);
                Then::Read(Read::Heads(ask))
            }
            Read::Entries(ask) => {
                // A run of consecutive `seq`s is one `getAll` of its range
                // (a settling lane's entries usually are one): one request
                // instead of one per entry.
                for (lo, hi) in runs(&ask.seqs) {
                    let (lo, hi) = (record::check_seq(lo)?, record::check_seq(hi)?);
                    if lo == hi {
                        self.get("get", ENTRIES, None, Key::Seq(lo));
                    } else {
                        self.all("all", ENTRIES, None, Key::Seqs(lo, hi), 0);
                    }
                }
                Then::Read(Read::Entries(ask))
            }
            Read::Behind(ask) => {
                // One `getAll` per lane on the lane index (whose records of
                // one lane come in `seq` order); the head is the lane's
                // first record: one more is read.
                for behind in &ask.lanes {
                    let limit = behind.limit.saturating_add(1);
                    self.all("all", ENTRIES, Some(BY_LANE), Key::Str(&behind.lane), limit);
                }
                Then::Read(Read::Behind(ask))
            }
            Read::Bodies(ask) => {
                for seq in &ask.seqs {
                    self.get("get", BODIES, None, Key::Seq(record::check_seq(*seq)?));
                }
                Then::Read(Read::Bodies(ask))
            }
            Read::State(ask) => {
                let state = match ask.state {
                    Waiting::Pending => "pending",
                    Waiting::AwaitingToken => "awaiting-token",
                };
                let limit = ask.limit.max(1);
                match &ask.origin {
                    // Same origin: on its index, in `seq` order.
                    Some(origin) => {
                        let origin = origin.clone();
                        self.page(
                            ENTRIES,
                            Some(BY_ORIGIN),
                            Key::Str(&origin),
                            ask.after,
                            limit,
                            Some(("state", state)),
                        );
                    }
                    None => self.page(
                        ENTRIES,
                        None,
                        Key::None,
                        ask.after,
                        limit,
                        Some(("state", state)),
                    ),
                }
                Then::Read(Read::State(ask))
            }
            Read::Find(ask) => {
                // Both at once; the queued one counts first.
                let id = ask.id.hyphenated();
                if ask.among != Among::Dead {
                    self.get("get", ENTRIES, Some(BY_ID), Key::Str(&id));
                }
                if ask.among != Among::Queued {
                    self.get("get", DEAD, Some(BY_ID), Key::Str(&id));
                }
                Then::Read(Read::Find(ask))
            }
            Read::List(ask) => {
                let store = match ask.among {
                    Among::Dead => DEAD,
                    Among::Queued | Among::Either => ENTRIES,
                };
                self.all("all", store, None, Key::None, ask.limit.max(1));
                Then::Read(Read::List(ask))
            }
            Read::Lane(ask) => {
                let lane = ask.lane.clone();
                self.get("key", ENTRIES, Some(BY_LANE), Key::Str(&lane));
                Then::Read(Read::Lane(ask))
            }
            Read::Full(ask) => {
                // Counting a store walks it (slow with a long queue), so the
                // lowest queued `seq` comes first: every queued entry lies
                // between it and the last `seq` given, and only when that
                // span could reach the limit are the entries counted.
                self.all("keys", ENTRIES, None, Key::None, 1);
                self.get("get", META, None, Key::Str(NEXT_SEQ));
                Then::Read(Read::Full(ask))
            }
            Read::Taken(ask) => {
                let id = ask.id.hyphenated();
                self.get("key", ENTRIES, Some(BY_ID), Key::Str(&id));
                self.get("key", DEAD, Some(BY_ID), Key::Str(&id));
                Then::Read(Read::Taken(ask))
            }
            Read::LastSeq(ask) => {
                self.get("get", META, None, Key::Str(NEXT_SEQ));
                Then::Read(Read::LastSeq(ask))
            }
            Read::Count(ask) => {
                self.count(match ask.among {
                    Among::Dead => DEAD,
                    Among::Queued | Among::Either => ENTRIES,
                });
                Then::Read(Read::Count(ask))
            }
            Read::Summaries(ask) => {
                self.page(ENTRIES, None, Key::None, ask.after, ask.limit.max(1), None);
                Then::Read(Read::Summaries(ask))
            }
        };
        let results = self.reads - before;
        if results == 0 {
            // A read that needs no request (no seqs asked for).
            return self.then(then, Vec::new());
        }
        Ok(Next::Wait(then, results))
    }

    /// Decodes an entry record (its JSON text); one that cannot be read
    /// back (a poison record) is salvaged as long as its key is a `seq`.
    fn decode_or_salvage(&self, text: &str) -> Result<Record, StoreError> {
        let value = Json::root(text);
        match record::decode(&value) {
            Ok(record) => Ok(record),
            Err(why) => {
                let seq = record::decode_seq(&value.get("seq"), "entry", "seq")
                    .map_err(|_| why.clone())?;
                Ok(record::salvage(text, seq, &why, self.now))
            }
        }
    }

    /// Decodes heads; a poison record is salvaged, its head marked corrupt
    /// (the plan makes it a dead letter).
    fn heads(&mut self, records: &[&str]) -> Result<Vec<Head>, StoreError> {
        let mut heads = Vec::with_capacity(records.len());
        for text in records {
            match record::decode_head(&Json::root(text)) {
                Ok(head) => heads.push(head),
                Err(_) => {
                    let salvaged = self.decode_or_salvage(text)?;
                    let entry = self.keep(salvaged);
                    let mut head = entry.head();
                    head.corrupt = true;
                    heads.push(head);
                }
            }
        }
        Ok(heads)
    }

    /// The bodies read for `seqs`. A salvaged poison record keeps whatever
    /// body it had, if any.
    fn bodies(&self, seqs: &[Seq], values: &[Item<'_>]) -> Result<Vec<(Seq, Vec<u8>)>, StoreError> {
        let mut bodies = Vec::with_capacity(seqs.len());
        for (seq, value) in seqs.iter().zip(values) {
            let salvaged = self.kept(*seq).is_some_and(|k| k.raw.is_some());
            let body = match value {
                Item::Bytes(b) => Ok(b.to_vec()),
                Item::Null => Err(CodecError::new("body", "(record)", "is missing")),
                _ => Err(CodecError::new("body", "(record)", "is not a Uint8Array")),
            };
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

    /// Goes on with a read once what it waited for came.
    fn then(&mut self, then: Then, values: Vec<Item<'_>>) -> Result<Next, StoreError> {
        let first = values.first().copied().unwrap_or(Item::Null);
        Ok(Next::Done(match then {
            Then::Read(Read::Schedule(ask)) => ask.reply(match first {
                // Pacing is advisory: a value that is not a string counts as
                // no state (as bad lines do in `ScheduleState::decode`).
                Item::Json(text) => json::find(text.as_bytes(), &[])
                    .and_then(|v| v.as_str())
                    .map(|s| ScheduleState::decode(&s))
                    .unwrap_or_default(),
                _ => ScheduleState::default(),
            }),
            Then::Read(Read::Heads(ask)) if ask.survey => {
                // Every lane found is listed again.
                let records = array(first);
                for text in &records {
                    if let Some(lane) = Json::root(text).get("lane").as_string() {
                        self.list_lane(&lane);
                    }
                }
                let heads = self.heads(&records)?;
                ask.reply(heads)
            }
            Then::Read(Read::Heads(ask)) => {
                // Then one `get` per listed lane on the lane index (its
                // lowest `seq`), all at once.
                let keys: Vec<String> = array(first)
                    .iter()
                    .filter_map(|k| Json::root(k).as_string())
                    .collect();
                for key in &keys {
                    let lane = key.strip_prefix(LANE_PREFIX).unwrap_or_default();
                    self.get("get", ENTRIES, Some(BY_LANE), Key::Str(lane));
                }
                let n = keys.len();
                if n == 0 {
                    ask.reply(Vec::new())
                } else {
                    return Ok(Next::Wait(Then::Heads(ask, keys), n));
                }
            }
            Then::Heads(ask, keys) => {
                // A listed lane with no entry left is unlisted.
                let mut records = Vec::with_capacity(keys.len());
                for (key, value) in keys.iter().zip(&values) {
                    match value {
                        Item::Json(text) if !is_null(text) => records.push(*text),
                        _ => self.delete(META, Key::Str(key)),
                    }
                }
                let heads = self.heads(&records)?;
                ask.reply(heads)
            }
            Then::Read(Read::Entries(ask)) => {
                // Each value is one record (`get`, `null` if absent) or the
                // records of a run (`getAll`, a JSON array); a record is an
                // object, never an array.
                let mut found = Vec::with_capacity(ask.seqs.len());
                for value in &values {
                    let Item::Json(text) = value else { continue };
                    let records = if text.trim_start().starts_with('[') {
                        array(*value)
                    } else if is_null(text) {
                        Vec::new()
                    } else {
                        alloc::vec![*text]
                    };
                    for text in records {
                        let record = self.decode_or_salvage(text)?;
                        found.push(self.keep(record));
                    }
                }
                ask.reply(found)
            }
            Then::Read(Read::Behind(ask)) => {
                let mut lists = Vec::with_capacity(ask.lanes.len());
                for (behind, value) in ask.lanes.iter().zip(&values) {
                    let list = self.behind(behind, array(*value));
                    lists.push(list);
                }
                ask.reply(lists)
            }
            Then::Read(Read::Bodies(ask)) => {
                let bodies = self.bodies(&ask.seqs, &values)?;
                ask.reply(bodies)
            }
            Then::Read(Read::State(ask)) => {
                let (next, records) = page(first);
                let mut found = Vec::with_capacity(records.len());
                for text in records {
                    // A poison record stays as it is: a claim salvages it.
                    if let Ok(record) = record::decode(&Json::root(text)) {
                        found.push(self.keep(record));
                    }
                }
                ask.reply(found, next)
            }
            Then::Read(Read::Find(ask)) => {
                let Some(text) = values.iter().find_map(|v| match v {
                    Item::Json(t) if !is_null(t) => Some(*t),
                    _ => None,
                }) else {
                    return Ok(Next::Done(ask.reply(None)));
                };
                let record = record::decode(&Json::root(text))?;
                let entry = self.keep(record);
                self.get("get", BODIES, None, Key::Seq(entry.seq));
                return Ok(Next::Wait(
                    Then::WithBodies(Listed::Find(ask), alloc::vec![entry]),
                    1,
                ));
            }
            Then::Read(Read::List(ask)) => {
                // Poison records salvaged, so that a listing shows them
                // rather than fails.
                let mut entries = Vec::new();
                for text in array(first) {
                    let record = self.decode_or_salvage(text)?;
                    entries.push(self.keep(record));
                }
                if entries.is_empty() {
                    ask.reply(entries)
                } else {
                    for e in &entries {
                        self.get("get", BODIES, None, Key::Seq(e.seq));
                    }
                    let n = entries.len();
                    return Ok(Next::Wait(Then::WithBodies(Listed::List(ask), entries), n));
                }
            }
            Then::WithBodies(ask, mut entries) => {
                let seqs: Vec<Seq> = entries.iter().map(|e| e.seq).collect();
                let bodies = self.bodies(&seqs, &values)?;
                for (entry, (_, body)) in entries.iter_mut().zip(bodies) {
                    entry.request.body = body;
                }
                match ask {
                    Listed::Find(ask) => ask.reply(entries.pop()),
                    Listed::List(ask) => ask.reply(entries),
                }
            }
            Then::Read(Read::Lane(ask)) => ask.reply(is_present(first)),
            Then::Read(Read::Full(ask)) => {
                let lowest = array(first)
                    .first()
                    .map(|k| record::decode_seq(&Json::root(k), "entries", "(first key)"))
                    .transpose()?;
                let last = last_seq(values.get(1).copied().unwrap_or(Item::Null))?;
                let span = lowest.map_or(0, |lowest| {
                    usize::try_from(last.saturating_sub(lowest).saturating_add(1))
                        .unwrap_or(usize::MAX)
                });
                if span < ask.at_least {
                    ask.reply(false)
                } else {
                    self.count(ENTRIES);
                    return Ok(Next::Wait(Then::Full(ask), 1));
                }
            }
            Then::Full(ask) => {
                let full = count(first)? >= ask.at_least;
                ask.reply(full)
            }
            Then::Read(Read::Taken(ask)) => ask.reply(values.iter().any(|v| is_present(*v))),
            Then::Read(Read::LastSeq(ask)) => ask.reply(last_seq(first)?),
            Then::Read(Read::Count(ask)) => {
                let n = count(first)?;
                ask.reply(n)
            }
            Then::Read(Read::Summaries(ask)) => {
                let (next, records) = page(first);
                let mut summaries = Vec::with_capacity(records.len());
                for text in records {
                    let value = Json::root(text);
                    // A record that cannot be read still counts.
                    summaries.push(match record::decode_summary(&value) {
                        Ok(summary) => summary,
                        Err(_) => ask.unreadable(value.get("lane").as_string().unwrap_or_default()),
                    });
                }
                ask.reply(summaries, next)
            }
        }))
    }

    /// The entries of one lane behind its head, from a `getAll` of it: in
    /// `seq` order, at most the limit; a record that cannot be read stops
    /// the list (`None`).
    fn behind(&mut self, behind: &Behind, records: Vec<&str>) -> Vec<Option<Entry>> {
        let mut list = Vec::new();
        for text in records {
            if list.len() == behind.limit {
                break;
            }
            match record::decode(&Json::root(text)) {
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

    /// Removes the queued entries `lo..=hi` and their bodies: a range
    /// delete holds exactly them, as every `seq` between is one of them.
    fn remove(&mut self, (lo, hi): (Seq, Seq)) -> Result<(), StoreError> {
        let (lo, hi) = (record::check_seq(lo)?, record::check_seq(hi)?);
        let key = || {
            if lo == hi {
                Key::Seq(lo)
            } else {
                Key::Seqs(lo, hi)
            }
        };
        self.delete(ENTRIES, key());
        self.delete(BODIES, key());
        Ok(())
    }

    /// Removes the queued entries `seqs` (emptied), a range delete for
    /// each run of consecutive ones ([`runs`]).
    fn remove_runs(&mut self, seqs: &mut Vec<Seq>) -> Result<(), StoreError> {
        for run in runs(seqs) {
            self.remove(run)?;
        }
        seqs.clear();
        Ok(())
    }

    fn carry_out(&mut self, write: Write) -> Result<(), StoreError> {
        match write {
            Write::Add(mut entry) => {
                let seq = record::check_seq(entry.seq)?;
                let body = core::mem::take(&mut entry.request.body);
                let lane = entry.lane.clone();
                let record = Record {
                    body_len: body.len(),
                    entry,
                    raw: None,
                };
                let text = record::encode(&record)?;
                self.put("add", ENTRIES, &text, Key::None);
                self.begin("body", BODIES);
                self.push_num(self.batch.blobs.len() as u64);
                self.push_key(&Key::Seq(seq));
                self.end();
                self.batch.blobs.push(body);
                let mut next = String::new();
                json::push_u64(&mut next, seq);
                self.put("put", META, &next, Key::Str(NEXT_SEQ));
                self.list_lane(&lane);
            }
            Write::Put(entry) => self.put_entry(ENTRIES, entry)?,
            Write::Remove(seq) => self.remove((seq, seq))?,
            Write::Bury(entry) => {
                self.delete(ENTRIES, Key::Seq(entry.seq));
                self.put_entry(DEAD, entry)?;
            }
            Write::Revive(entry) => {
                self.delete(DEAD, Key::Seq(entry.seq));
                let lane = entry.lane.clone();
                self.put_entry(ENTRIES, entry)?;
                self.list_lane(&lane);
            }
            Write::Discard(seq) => {
                self.delete(DEAD, Key::Seq(seq));
                self.delete(BODIES, Key::Seq(seq));
            }
            Write::Schedule(schedule) => {
                let text = json::string(&schedule.encode());
                self.put("put", META, &text, Key::Str(SCHEDULE));
            }
            Write::Purge => {
                self.clear(ENTRIES);
                self.clear(DEAD);
                self.clear(BODIES);
                // `nextSeq` stays: seq is never reused.
                self.delete(META, Key::Str(SCHEDULE));
            }
        }
        Ok(())
    }
}

fn is_null(text: &str) -> bool {
    text.trim() == "null"
}

/// Whether a read found something (a key, a value).
fn is_present(item: Item<'_>) -> bool {
    match item {
        Item::Json(text) => !is_null(text),
        Item::Bytes(_) | Item::Text(_) => true,
        Item::Null => false,
    }
}

/// `seqs` as runs of consecutive values, in their order: `(first, last)`
/// (`[4, 5, 6, 9, 2]` → `(4, 6), (9, 9), (2, 2)`).
fn runs(seqs: &[Seq]) -> Vec<(Seq, Seq)> {
    let mut runs: Vec<(Seq, Seq)> = Vec::new();
    for &seq in seqs {
        match runs.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(seq) => *hi = seq,
            _ => runs.push((seq, seq)),
        }
    }
    runs
}

/// The elements of a JSON array result, as their texts.
fn array(item: Item<'_>) -> Vec<&str> {
    let Item::Json(text) = item else {
        return Vec::new();
    };
    json::items(text.as_bytes())
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| core::str::from_utf8(v.raw).ok())
        .collect()
}

/// A `page` result: where to read on, and the values.
fn page(item: Item<'_>) -> (Option<Seq>, Vec<&str>) {
    let Item::Json(text) = item else {
        return (None, Vec::new());
    };
    let doc = text.as_bytes();
    let next = json::find(doc, &["next"])
        .filter(|v| v.kind == Kind::Number)
        .and_then(|v| core::str::from_utf8(v.raw).ok()?.parse::<u64>().ok());
    let values = json::find(doc, &["values"])
        .and_then(|v| core::str::from_utf8(v.raw).ok())
        .map(|t| array(Item::Json(t)))
        .unwrap_or_default();
    (next, values)
}

/// A count result.
fn count(item: Item<'_>) -> Result<usize, StoreError> {
    let text = item.text().unwrap_or("null");
    let n = record::decode_seq(&Json::root(text), "count", "(result)")?;
    Ok(usize::try_from(n).unwrap_or(usize::MAX))
}

/// The last `seq` given, as stored in `meta` (absent: none given).
fn last_seq(item: Item<'_>) -> Result<Seq, StoreError> {
    match item {
        Item::Json(text) if !is_null(text) => {
            Ok(record::decode_seq(&Json::root(text), "meta", NEXT_SEQ)?)
        }
        _ => Ok(0),
    }
}

/// The id a dead letter or queued entry is found by, as the `id` index
/// holds it.
pub fn id_key(id: EntryId) -> String {
    id.hyphenated()
}

#[cfg(test)]
mod tests {
    use super::runs;

    #[test]
    fn runs_group_consecutive_seqs_in_their_order() {
        assert_eq!(runs(&[]), []);
        assert_eq!(runs(&[7]), [(7, 7)]);
        assert_eq!(runs(&[4, 5, 6, 9, 2, 3]), [(4, 6), (9, 9), (2, 3)]);
        assert_eq!(runs(&[5, 4]), [(5, 5), (4, 4)], "only ascending runs");
        assert_eq!(runs(&[u64::MAX - 1, u64::MAX]), [(u64::MAX - 1, u64::MAX)]);
    }
}
