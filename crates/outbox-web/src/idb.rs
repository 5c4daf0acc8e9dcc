//! A small IndexedDB layer on raw `web-sys`: versioned open with
//! migrations, requests and transactions as futures, and `strict`
//! durability.
//!
//! # Keeping a transaction alive
//!
//! A transaction stays active while one of its requests' `success`
//! callbacks runs, *and during the microtask checkpoint that follows it*.
//! [`Request`] stores the result and wakes its task from inside that
//! callback; `wasm-bindgen-futures` polls woken tasks from a microtask
//! (`queueMicrotask`), so code after `request.next().await` (or [`all`],
//! or [`values`]) runs while the transaction is still active and may
//! issue more requests. A promise that settles in a microtask is harmless
//! too. Awaiting anything else — a `fetch`, a timer, a promise that
//! settles in a later task — lets the transaction auto-commit, and the next
//! request fails with `TransactionInactiveError`.
//! Hence the rule: inside a transaction, await only its own requests (and,
//! last, [`Tx::commit`]). The tests below show both sides.
//!
//! Issue every request of a step first, then await them together with
//! [`all`]: the browser runs them back to back, and fewer await points make
//! smaller wasm.
//!
//! A commit only counts when `complete` fires: [`Tx::commit`] waits for it
//! and reports an `abort` (with the transaction's error, e.g.
//! `QuotaExceededError` at commit) as an error. Engines differ in the
//! error an aborted transaction reports after an explicit `commit()`:
//! Chromium gives the failing request's (`ConstraintError`,
//! `QuotaExceededError`), Firefox `AbortError`, WebKit `null`. So the
//! transaction also listens to its requests' `error` events (they bubble
//! to it) and, when its own error says no more than "aborted", reports the
//! first failing request's error instead: a quota failure is recognised
//! (and answered `507`) in every engine. A read-write [`Tx`] dropped
//! before [`Tx::commit`] (an early return, a cancelled future) is aborted,
//! so that a half-done write never commits.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use js_sys::{Array, Object, Reflect};
use wasm_bindgen::prelude::*;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    DomException, IdbCursorWithValue, IdbDatabase, IdbFactory, IdbObjectStore, IdbOpenDbRequest,
    IdbRequest, IdbTransaction, IdbTransactionMode, IdbVersionChangeEvent,
};

use crate::error::IdbError;

#[wasm_bindgen]
extern "C" {
    /// `IDBDatabase`, for the one call web-sys lacks.
    #[wasm_bindgen(js_name = IDBDatabase)]
    type Database;

    /// `IDBDatabase.transaction(storeNames, mode, options)`: web-sys gates
    /// the options overload (`durability`) behind `web_sys_unstable_apis`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    fn transaction_with_options(
        this: &Database,
        store_names: &Array,
        mode: IdbTransactionMode,
        options: &Object,
    ) -> Result<IdbTransaction, JsValue>;

    /// `IDBTransaction`, for `commit()` (marked deprecated in web-sys).
    #[wasm_bindgen(js_name = IDBTransaction)]
    type Transaction;

    /// `IDBTransaction.commit()`: commit as soon as the pending requests
    /// are done. Throws where unsupported or already finishing.
    #[wasm_bindgen(method, catch, js_name = commit)]
    fn commit(this: &Transaction) -> Result<(), JsValue>;
}

/// Turns a thrown value (normally a `DOMException`) into an [`IdbError`].
pub(crate) fn dom_error(operation: &'static str, thrown: &JsValue) -> IdbError {
    if let Some(e) = thrown.dyn_ref::<DomException>() {
        return IdbError::Dom {
            operation,
            name: e.name(),
            message: e.message(),
        };
    }
    if let Some(e) = thrown.dyn_ref::<js_sys::Error>() {
        return IdbError::Dom {
            operation,
            name: String::from(e.name()),
            message: String::from(e.message()),
        };
    }
    IdbError::Dom {
        operation,
        name: "Error".into(),
        message: crate::js::thrown_text(thrown),
    }
}

fn exception(operation: &'static str, e: Option<DomException>, otherwise: &str) -> IdbError {
    match e {
        Some(e) => IdbError::Dom {
            operation,
            name: e.name(),
            message: e.message(),
        },
        None => IdbError::Dom {
            operation,
            name: otherwise.into(),
            message: String::new(),
        },
    }
}

/// The `indexedDB` of this global scope (window or any worker).
pub(crate) fn factory() -> Result<IdbFactory, IdbError> {
    Reflect::get(&js_sys::global(), &JsValue::from_str("indexedDB"))
        .ok()
        .and_then(|f| f.dyn_into::<IdbFactory>().ok())
        .ok_or(IdbError::Unavailable)
}

/// Where an event-driven operation stands.
struct Slot<T> {
    ready: Option<T>,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    fn shared() -> Rc<RefCell<Self>> {
        Rc::new(RefCell::new(Self {
            ready: None,
            waker: None,
        }))
    }
}

fn fill<T>(slot: &RefCell<Slot<T>>, value: T) {
    let waker = {
        let mut s = slot.borrow_mut();
        s.ready = Some(value);
        s.waker.take()
    };
    if let Some(w) = waker {
        w.wake();
    }
}

fn poll_slot<T>(slot: &RefCell<Slot<T>>, cx: &mut Context<'_>) -> Poll<T> {
    let mut s = slot.borrow_mut();
    match s.ready.take() {
        Some(v) => Poll::Ready(v),
        None => {
            s.waker = Some(cx.waker().clone());
            Poll::Pending
        }
    }
}

/// An `IDBRequest` whose `success`/`error` events can be awaited; a cursor
/// request fires `success` once per step, so [`next`](Self::next) may be
/// awaited again after `cursor.continue()`.
pub(crate) struct Request {
    request: IdbRequest,
    operation: &'static str,
    slot: Rc<RefCell<Slot<Result<JsValue, IdbError>>>>,
    _on_success: Closure<dyn FnMut()>,
    _on_error: Closure<dyn FnMut()>,
}

impl Request {
    /// Watches `request` (call right after creating it).
    pub(crate) fn new(operation: &'static str, request: IdbRequest) -> Self {
        let slot = Slot::shared();
        let on_success = {
            let slot = slot.clone();
            let request = request.clone();
            Closure::<dyn FnMut()>::new(move || {
                let result = request.result().map_err(|e| dom_error(operation, &e));
                fill(&slot, result);
            })
        };
        let on_error = {
            let slot = slot.clone();
            let request = request.clone();
            Closure::<dyn FnMut()>::new(move || {
                let error = match request.error() {
                    Ok(e) => exception(operation, e, "UnknownError"),
                    Err(e) => dom_error(operation, &e),
                };
                fill(&slot, Err(error));
            })
        };
        request.set_onsuccess(Some(on_success.as_ref().unchecked_ref()));
        request.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Self {
            request,
            operation,
            slot,
            _on_success: on_success,
            _on_error: on_error,
        }
    }

    /// Watches the request a web-sys call returned, or reports what it threw.
    pub(crate) fn from(
        operation: &'static str,
        made: Result<IdbRequest, JsValue>,
    ) -> Result<Self, IdbError> {
        made.map(|r| Self::new(operation, r))
            .map_err(|e| dom_error(operation, &e))
    }

    /// The next `success` result (or the `error`).
    pub(crate) fn next(&self) -> Next<'_> {
        Next(self)
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        // The closures die with us; a late event must not call them.
        self.request.set_onsuccess(None);
        self.request.set_onerror(None);
    }
}

/// The future of [`Request::next`].
pub(crate) struct Next<'a>(&'a Request);

impl Future for Next<'_> {
    type Output = Result<JsValue, IdbError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_slot(&self.0.slot, cx)
    }
}

/// Awaits every request of `requests`, in order: their results, or the
/// first error. One await point for many requests keeps callers' state
/// machines (and the wasm) small.
pub(crate) fn all(requests: Vec<Request>) -> All {
    All {
        requests,
        results: Vec::new(),
    }
}

/// The future of [`all`].
pub(crate) struct All {
    requests: Vec<Request>,
    results: Vec<JsValue>,
}

impl Future for All {
    type Output = Result<Vec<JsValue>, IdbError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        while let Some(request) = this.requests.get(this.results.len()) {
            match poll_slot(&request.slot, cx) {
                Poll::Ready(Ok(v)) => this.results.push(v),
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(std::mem::take(&mut this.results)))
    }
}

/// Walks the cursor `request` opened to its end, collecting each value.
pub(crate) fn values(request: Request) -> Values {
    Values {
        request,
        values: Vec::new(),
        first_per_key: false,
    }
}

/// Walks an index cursor over string keys (opened with direction `next`)
/// collecting only the first value of each key — the lowest primary key —
/// by seeking straight past the rest (`continue(key + "\0")`, the next
/// possible string). A `nextunique` cursor gives the same values but, in
/// Chromium, steps over every duplicate: with one long lane a claim would
/// cost as much as the queue is long.
pub(crate) fn first_per_key(request: Request) -> Values {
    Values {
        request,
        values: Vec::new(),
        first_per_key: true,
    }
}

/// The future of [`values`] and [`first_per_key`].
pub(crate) struct Values {
    request: Request,
    values: Vec<JsValue>,
    first_per_key: bool,
}

impl Future for Values {
    type Output = Result<Vec<JsValue>, IdbError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let operation = this.request.operation;
        loop {
            let v = match poll_slot(&this.request.slot, cx) {
                Poll::Ready(Ok(v)) => v,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            };
            if v.is_null() || v.is_undefined() {
                return Poll::Ready(Ok(std::mem::take(&mut this.values)));
            }
            let Some(cursor) = v.dyn_ref::<IdbCursorWithValue>() else {
                return Poll::Ready(Err(IdbError::Dom {
                    operation,
                    name: "TypeError".into(),
                    message: "a cursor request gave something other than a cursor".into(),
                }));
            };
            // Both calls run inside the success callback's window (we are
            // polled from its microtask checkpoint), so the transaction is
            // active.
            let step = cursor
                .value()
                .map(|value| this.values.push(value))
                .and_then(|()| match cursor.key().map(|k| k.as_string()) {
                    Ok(Some(mut key)) if this.first_per_key => {
                        key.push('\0');
                        cursor.continue_with_key(&JsValue::from_str(&key))
                    }
                    _ => cursor.continue_(),
                });
            if let Err(e) = step {
                return Poll::Ready(Err(dom_error(operation, &e)));
            }
        }
    }
}

/// How a transaction may touch its stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `readonly`.
    Read,
    /// `readwrite`, default durability.
    Write,
    /// `readwrite` with `durability: "strict"`: `complete` fires only once
    /// the data is flushed to disk.
    WriteStrict,
}

/// An open transaction. Dropping a read-write one before
/// [`commit`](Self::commit) aborts it.
pub(crate) struct Tx {
    tx: IdbTransaction,
    operation: &'static str,
    write: bool,
    done: bool,
    slot: Rc<RefCell<Slot<Result<(), IdbError>>>>,
    _on_complete: Closure<dyn FnMut()>,
    _on_abort: Closure<dyn FnMut()>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

/// The error an `abort` reports: the transaction's own, unless it is
/// missing or a bare `AbortError` and a request failed first (see the
/// module documentation).
fn abort_error(
    operation: &'static str,
    own: Option<DomException>,
    request: Option<IdbError>,
) -> IdbError {
    match (own, request) {
        (Some(e), _) if e.name() != "AbortError" => exception(operation, Some(e), "AbortError"),
        (_, Some(request)) => request,
        (own, None) => exception(operation, own, "AbortError"),
    }
}

impl Tx {
    /// Starts a transaction over `stores`.
    pub(crate) fn new(
        db: &IdbDatabase,
        operation: &'static str,
        stores: &[&str],
        mode: Mode,
    ) -> Result<Self, IdbError> {
        let names = Array::new();
        for s in stores {
            names.push(&JsValue::from_str(s));
        }
        let tx = match mode {
            Mode::Read => {
                db.transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readonly)
            }
            Mode::Write => {
                db.transaction_with_str_sequence_and_mode(&names, IdbTransactionMode::Readwrite)
            }
            Mode::WriteStrict => {
                let options = Object::new();
                let _ = Reflect::set(
                    &options,
                    &JsValue::from_str("durability"),
                    &JsValue::from_str("strict"),
                );
                db.unchecked_ref::<Database>().transaction_with_options(
                    &names,
                    IdbTransactionMode::Readwrite,
                    &options,
                )
            }
        }
        .map_err(|e| dom_error(operation, &e))?;
        let slot = Slot::shared();
        let on_complete = {
            let slot = slot.clone();
            Closure::<dyn FnMut()>::new(move || fill(&slot, Ok(())))
        };
        // The first failing request's error (requests' `error` events
        // bubble to their transaction).
        let failed: Rc<RefCell<Option<IdbError>>> = Rc::new(RefCell::new(None));
        let on_error = {
            let failed = failed.clone();
            Closure::<dyn FnMut(web_sys::Event)>::new(move |event: web_sys::Event| {
                let mut first = failed.borrow_mut();
                if first.is_some() {
                    return;
                }
                let error = event
                    .target()
                    .and_then(|t| t.dyn_into::<IdbRequest>().ok())
                    .and_then(|r| r.error().ok().flatten());
                if let Some(e) = error {
                    *first = Some(exception(operation, Some(e), "UnknownError"));
                }
            })
        };
        let on_abort = {
            let slot = slot.clone();
            let tx = tx.clone();
            Closure::<dyn FnMut()>::new(move || {
                let error = abort_error(operation, tx.error(), failed.borrow_mut().take());
                fill(&slot, Err(error));
            })
        };
        tx.set_oncomplete(Some(on_complete.as_ref().unchecked_ref()));
        tx.set_onabort(Some(on_abort.as_ref().unchecked_ref()));
        tx.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Self {
            tx,
            operation,
            write: mode != Mode::Read,
            done: false,
            slot,
            _on_complete: on_complete,
            _on_abort: on_abort,
            _on_error: on_error,
        })
    }

    /// One of the transaction's object stores.
    pub(crate) fn store(&self, name: &str) -> Result<IdbObjectStore, IdbError> {
        self.tx
            .object_store(name)
            .map_err(|e| dom_error(self.operation, &e))
    }

    /// The operation name, for errors.
    pub(crate) fn operation(&self) -> &'static str {
        self.operation
    }

    /// Commits and waits for `complete`; an `abort` (a failed request, a
    /// quota error at commit) is the error.
    pub(crate) async fn commit(mut self) -> Result<(), IdbError> {
        self.done = true;
        // Ask for the commit now rather than when the event loop turns;
        // a transaction that is already finishing refuses, which is fine.
        let _ = self.tx.unchecked_ref::<Transaction>().commit();
        TxDone(&self.slot).await
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.write && !self.done {
            // Throws only when the transaction already finished.
            let _ = self.tx.abort();
        }
        self.tx.set_oncomplete(None);
        self.tx.set_onabort(None);
        self.tx.set_onerror(None);
    }
}

struct TxDone<'a>(&'a Rc<RefCell<Slot<Result<(), IdbError>>>>);

impl Future for TxDone<'_> {
    type Output = Result<(), IdbError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        poll_slot(self.0, cx)
    }
}

/// One schema upgrade step, from version `i` to `i + 1` (for step `i` of
/// the list), run inside the `versionchange` transaction. Steps only add
/// (stores, indexes, converted records); they never drop queued data.
pub(crate) type Migration = fn(&IdbDatabase, &IdbTransaction) -> Result<(), JsValue>;

/// How many index ids an upgrade of an existing database skips first (see
/// [`skip_index_ids`]): more than any failed upgrade creates.
const SKIPPED_INDEX_IDS: usize = 16;

/// A scratch store, created and deleted within one upgrade.
const SCRATCH_STORE: &str = "outbox-upgrade-scratch";

/// Works around WebKit: after an upgrade that created an index on an
/// existing store was aborted, WebKit hands the next upgrade the same
/// index ids again, and creating an index on that store then aborts the
/// upgrade (`open` fails with `AbortError`, every time). Creating (and
/// dropping) a few indexes on a scratch store first moves the next ids
/// past the ones the failed upgrade left behind. Harmless elsewhere: the
/// scratch store is empty and gone when the upgrade commits.
fn skip_index_ids(db: &IdbDatabase) -> Result<(), JsValue> {
    let scratch = db.create_object_store(SCRATCH_STORE)?;
    for i in 0..SKIPPED_INDEX_IDS {
        scratch.create_index_with_str(&format!("i{i}"), "i")?;
    }
    db.delete_object_store(SCRATCH_STORE)
}

/// Opens `name` at version `migrations.len()`, running the steps a
/// database at an older version lacks. A database at a newer version is
/// refused with [`IdbError::NewerVersion`] and left as it is.
pub(crate) async fn open(name: &str, migrations: &[Migration]) -> Result<IdbDatabase, IdbError> {
    let version = u32::try_from(migrations.len()).unwrap_or(u32::MAX);
    let factory = factory()?;
    let open_request: IdbOpenDbRequest = factory
        .open_with_u32(name, version)
        .map_err(|e| dom_error("open", &e))?;
    let upgrade_error: Rc<RefCell<Option<IdbError>>> = Rc::new(RefCell::new(None));
    let on_upgrade = {
        let open_request = open_request.clone();
        let upgrade_error = upgrade_error.clone();
        let migrations = migrations.to_vec();
        Closure::<dyn FnMut(IdbVersionChangeEvent)>::new(move |event: IdbVersionChangeEvent| {
            let failed = |e: IdbError| {
                *upgrade_error.borrow_mut() = Some(e);
                if let Some(tx) = open_request.transaction() {
                    let _ = tx.abort();
                }
            };
            let db = match open_request.result() {
                Ok(db) => db.unchecked_into::<IdbDatabase>(),
                Err(e) => return failed(dom_error("upgrade", &e)),
            };
            let Some(tx) = open_request.transaction() else {
                return failed(IdbError::Dom {
                    operation: "upgrade",
                    name: "InvalidStateError".into(),
                    message: "no versionchange transaction".into(),
                });
            };
            let from = event.old_version();
            if from >= 1.0
                && let Err(e) = skip_index_ids(&db)
            {
                return failed(dom_error("upgrade", &e));
            }
            for (i, step) in migrations.iter().enumerate() {
                if (i as f64) < from {
                    continue;
                }
                if let Err(e) = step(&db, &tx) {
                    return failed(dom_error("upgrade", &e));
                }
            }
        })
    };
    open_request.set_onupgradeneeded(Some(on_upgrade.as_ref().unchecked_ref()));
    let request = Request::new("open", open_request.clone().unchecked_into());
    let result = request.next().await;
    open_request.set_onupgradeneeded(None);
    drop(on_upgrade);
    match result {
        Ok(db) => Ok(db.unchecked_into()),
        Err(e) => {
            if let Some(upgrade) = upgrade_error.borrow_mut().take() {
                return Err(upgrade);
            }
            if e.dom_name() == Some("VersionError") {
                return Err(newer_version(&factory, name, version).await);
            }
            Err(e)
        }
    }
}

/// The error for a database found at a version above `supported`: opens it
/// without a version to learn which (never upgrading or deleting it).
async fn newer_version(factory: &IdbFactory, name: &str, supported: u32) -> IdbError {
    let newer = |found: f64| IdbError::NewerVersion {
        name: name.to_owned(),
        found: if found.is_finite() && found > 0.0 {
            found as u64
        } else {
            0
        },
        supported,
    };
    let probe = match factory.open(name) {
        Ok(r) => r,
        Err(_) => return newer(0.0),
    };
    // Should the database have vanished meanwhile, do not create an empty
    // one: abort the creation.
    let abort_creation = {
        let probe = probe.clone();
        Closure::<dyn FnMut()>::new(move || {
            if let Some(tx) = probe.transaction() {
                let _ = tx.abort();
            }
        })
    };
    probe.set_onupgradeneeded(Some(abort_creation.as_ref().unchecked_ref()));
    let request = Request::new("open", probe.clone().unchecked_into());
    let result = request.next().await;
    probe.set_onupgradeneeded(None);
    match result {
        Ok(db) => {
            let db: IdbDatabase = db.unchecked_into();
            let found = db.version();
            db.close();
            newer(found)
        }
        Err(_) => newer(0.0),
    }
}

/// Deletes the database `name` (waiting until other connections close).
pub(crate) async fn delete(name: &str) -> Result<(), IdbError> {
    let request = factory()?
        .delete_database(name)
        .map_err(|e| dom_error("delete", &e))?;
    Request::new("delete", request.unchecked_into())
        .next()
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use js_sys::{Function, Promise};
    use wasm_bindgen_futures::JsFuture;
    use wasm_bindgen_test::wasm_bindgen_test;

    fn v1(db: &IdbDatabase, _: &IdbTransaction) -> Result<(), JsValue> {
        db.create_object_store("s")?;
        Ok(())
    }

    fn v2(_: &IdbDatabase, tx: &IdbTransaction) -> Result<(), JsValue> {
        tx.object_store("s")?.create_index_with_str("by-x", "x")?;
        Ok(())
    }

    fn broken(_: &IdbDatabase, _: &IdbTransaction) -> Result<(), JsValue> {
        Err(js_sys::Error::new("step failed").into())
    }

    async fn scratch(name: &str) -> IdbDatabase {
        delete(name).await.unwrap();
        open(name, &[v1]).await.unwrap()
    }

    fn key(i: u32) -> JsValue {
        JsValue::from_f64(f64::from(i))
    }

    async fn count(db: &IdbDatabase) -> f64 {
        let tx = Tx::new(db, "count", &["s"], Mode::Read).unwrap();
        let r = Request::from("count", tx.store("s").unwrap().count()).unwrap();
        r.next().await.unwrap().as_f64().unwrap()
    }

    /// A promise that settles in a later task (a timer), like a `fetch`.
    async fn next_task() {
        let promise: Promise = Function::new_no_args("return new Promise(r => setTimeout(r, 0))")
            .call0(&JsValue::NULL)
            .unwrap()
            .unchecked_into();
        JsFuture::from(promise).await.unwrap();
    }

    #[wasm_bindgen_test]
    async fn requests_keep_a_transaction_alive_a_timer_does_not() {
        let db = scratch("idb-layer-alive").await;
        let tx = Tx::new(&db, "test", &["s"], Mode::Write).unwrap();
        let s = tx.store("s").unwrap();
        for i in 0..50 {
            let r = Request::from("put", s.put_with_key(&key(i), &key(i))).unwrap();
            r.next().await.unwrap();
        }
        // A promise that settles in a microtask is fine too...
        JsFuture::from(Promise::resolve(&JsValue::NULL))
            .await
            .unwrap();
        let r = Request::from("put", s.put_with_key(&key(50), &key(50))).unwrap();
        r.next().await.unwrap();
        // ...but waiting for another task lets the transaction commit.
        next_task().await;
        let thrown = s.put_with_key(&key(51), &key(51)).unwrap_err();
        assert_eq!(
            dom_error("put", &thrown).dom_name(),
            Some("TransactionInactiveError")
        );
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 51.0);
        db.close();
    }

    #[wasm_bindgen_test]
    async fn a_dropped_write_transaction_is_aborted() {
        let db = scratch("idb-layer-drop").await;
        {
            let tx = Tx::new(&db, "test", &["s"], Mode::Write).unwrap();
            let s = tx.store("s").unwrap();
            let r = Request::from("put", s.put_with_key(&key(1), &key(1))).unwrap();
            r.next().await.unwrap();
            let _ = s.put_with_key(&key(2), &key(2)).unwrap();
            // An early return: `tx` is dropped without commit.
        }
        assert_eq!(count(&db).await, 0.0, "nothing of a dropped write commits");
        db.close();
    }

    #[wasm_bindgen_test]
    async fn an_abort_is_the_commit_error() {
        let db = scratch("idb-layer-abort").await;
        let tx = Tx::new(&db, "test", &["s"], Mode::WriteStrict).unwrap();
        let s = tx.store("s").unwrap();
        let _ = s.add_with_key(&key(1), &key(1)).unwrap();
        let _ = s.add_with_key(&key(2), &key(2)).unwrap();
        let _ = s.add_with_key(&key(1), &key(1)).unwrap(); // same key: ConstraintError
        let err = tx.commit().await.unwrap_err();
        assert_eq!(err.dom_name(), Some("ConstraintError"), "{err}");
        assert_eq!(
            count(&db).await,
            0.0,
            "an aborted transaction keeps nothing"
        );
        // Strict durability commits like any other.
        let tx = Tx::new(&db, "test", &["s"], Mode::WriteStrict).unwrap();
        let _ = tx
            .store("s")
            .unwrap()
            .add_with_key(&key(1), &key(1))
            .unwrap();
        tx.commit().await.unwrap();
        assert_eq!(count(&db).await, 1.0);
        db.close();
    }

    #[wasm_bindgen_test]
    async fn upgrades_keep_data_and_a_failed_step_changes_nothing() {
        let name = "idb-layer-upgrade";
        let db = scratch(name).await;
        let tx = Tx::new(&db, "test", &["s"], Mode::Write).unwrap();
        let _ = tx
            .store("s")
            .unwrap()
            .put_with_key(&key(7), &key(7))
            .unwrap();
        tx.commit().await.unwrap();
        db.close();

        let err = open(name, &[v1, v2, broken]).await.unwrap_err();
        assert_eq!(
            (err.dom_name(), format!("{err}").contains("step failed")),
            (Some("Error"), true),
            "{err}"
        );
        let db = open(name, &[v1]).await.unwrap();
        assert_eq!(db.version(), 1.0, "a failed upgrade leaves the old version");
        assert_eq!(count(&db).await, 1.0);
        db.close();

        let db = open(name, &[v1, v2]).await.unwrap();
        assert_eq!(db.version(), 2.0);
        assert_eq!(count(&db).await, 1.0, "upgrading keeps the data");
        db.close();
        let err = open(name, &[v1]).await.unwrap_err();
        assert_eq!(
            err,
            IdbError::NewerVersion {
                name: name.into(),
                found: 2,
                supported: 1
            }
        );
    }
}
