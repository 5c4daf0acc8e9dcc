//! The TypeScript host's IndexedDB store as an
//! [`outbox_driver::store::Store`], for the store conformance suite and the
//! store's own browser tests (`tests/page.rs` in a page, `tests/worker.rs`
//! in a service worker), in Chromium, Firefox and WebKit.
//!
//! What runs is what ships: each transaction is a core transaction turned
//! into IndexedDB operations by `outbox-wasm`'s [`IdbRun`] (compiled into
//! this test's wasm), carried out by the host's `Store` and `Transaction`
//! (`web/host/store.ts`, bundled by `build.rs` and evaluated at the first
//! use). The shipped host asks the core for each next step inside the last
//! read's `success` callback; here the next step comes in the microtask
//! after it, which IndexedDB allows as well (the transaction is active
//! until that checkpoint ends).
//!
//! Test-only: wasm-bindgen lives here, never in what ships.
#![cfg(target_arch = "wasm32")]
// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use js_sys::{Array, Reflect, Uint8Array};
use outbox_core::clock::Millis;
use outbox_core::queue::{Planner, Transaction};
use outbox_core::store::{Access, Found, Read, Write};
use outbox_driver::store::{Boxed, Store, StoreTx};
use outbox_wasm::error::StoreError;
use outbox_wasm::frame::Frame;
use outbox_wasm::idb::{Advance, IdbRun, SCHEMA, SCHEMA_VERSION};
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = store)]
    fn harness_store(name: &str, version: u32, schema: &str) -> JsValue;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = connect, catch)]
    async fn harness_connect(store: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = close)]
    fn harness_close(store: &JsValue);
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = deleteDatabase, catch)]
    async fn harness_delete(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = begin, catch)]
    async fn harness_begin(store: &JsValue, mode: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = execute, catch)]
    async fn harness_execute(tx: &JsValue, ops: &str, blobs: &Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = finish)]
    async fn harness_finish(tx: &JsValue, ops: &str, blobs: &Array) -> JsValue;
    #[wasm_bindgen(js_namespace = outboxStoreHarness, js_name = abort)]
    async fn harness_abort(tx: &JsValue) -> JsValue;
}

/// The host's store, bundled by `build.rs`.
const HARNESS: &str = include_str!(concat!(env!("OUT_DIR"), "/harness.js"));

/// Evaluates the harness once per global.
fn load() {
    let loaded = Reflect::has(&js_sys::global(), &"outboxStoreHarness".into()).unwrap_or(false);
    if !loaded {
        js_sys::eval(HARNESS).unwrap();
    }
}

/// `Date.now()`.
pub fn now() -> Millis {
    js_sys::Date::now() as Millis
}

/// A failure as the host reports it (`{name, message}` or an `Error`).
fn failure(run: &IdbRun, thrown: &JsValue) -> StoreError {
    let text = |key: &str| {
        Reflect::get(thrown, &key.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    let name = text("name");
    run.failed(
        if name.is_empty() { "Error" } else { &name },
        &text("message"),
    )
}

fn blobs(batch: &outbox_wasm::idb::Batch) -> Array {
    batch
        .blobs
        .iter()
        .map(|b| JsValue::from(Uint8Array::from(b.as_slice())))
        .collect()
}

/// The TypeScript host's store of one database. Clones share one
/// connection.
#[derive(Clone)]
pub struct TsStore {
    name: String,
    store: JsValue,
}

impl std::fmt::Debug for TsStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TsStore").field("name", &self.name).finish()
    }
}

impl TsStore {
    /// Opens (creating or upgrading) the database `name`; rejects with the
    /// open's error (a database of newer code: `VersionError`, left
    /// untouched).
    pub async fn open(name: &str) -> Result<Self, String> {
        load();
        let store = harness_store(name, SCHEMA_VERSION, SCHEMA);
        harness_connect(&store).await.map_err(|e| text_of(&e))?;
        Ok(Self {
            name: name.to_owned(),
            store,
        })
    }

    /// Deletes the database `name`.
    pub async fn delete_database(name: &str) -> Result<(), String> {
        load();
        harness_delete(name)
            .await
            .map(drop)
            .map_err(|e| text_of(&e))
    }

    /// Closes the connection (of every clone); the next call reopens.
    pub fn close(&self) {
        harness_close(&self.store);
    }

    /// Runs a batch of the host's store operations (`ops`, a JSON array as
    /// `IdbRun` writes them) in one transaction of `mode` and commits:
    /// how the transaction ended (`name: message` of its failure).
    pub async fn run_ops(&self, mode: &str, ops: &str) -> Result<(), String> {
        let open = harness_begin(&self.store, mode)
            .await
            .map_err(|e| text_of(&e))?;
        let ended = harness_finish(&open, ops, &Array::new()).await;
        if ended.is_null() || ended.is_undefined() {
            Ok(())
        } else {
            Err(text_of(&ended))
        }
    }
}

/// A thrown value's `name: message`.
pub fn text_of(e: &JsValue) -> String {
    let get = |k: &str| {
        Reflect::get(e, &k.into())
            .ok()
            .and_then(|v| v.as_string())
            .unwrap_or_default()
    };
    format!("{}: {}", get("name"), get("message"))
}

/// This store runs every transaction through [`Store::run`], as the host
/// does: it has no transaction to hand out read by read.
pub struct NoTx;

impl StoreTx for NoTx {
    type Error = StoreError;

    async fn read(&mut self, _reads: Vec<Read>) -> Result<Vec<Found>, StoreError> {
        unreachable!("TsStore runs transactions through Store::run")
    }

    fn write(&mut self, _writes: Vec<Write>) -> Result<(), StoreError> {
        unreachable!("TsStore runs transactions through Store::run")
    }

    async fn commit(self) -> Result<(), StoreError> {
        unreachable!("TsStore runs transactions through Store::run")
    }
}

impl Store for TsStore {
    type Error = StoreError;
    type Tx<'a> = NoTx;

    async fn begin(&self, _access: Access, name: &'static str) -> Result<NoTx, StoreError> {
        Err(StoreError::Dom {
            operation: name,
            name: "NotSupportedError".into(),
            message: "TsStore runs transactions through Store::run".into(),
        })
    }

    fn quota_exceeded(error: &StoreError) -> Option<String> {
        error.quota_message()
    }

    fn run<'a>(
        &'a self,
        tx: &'a mut dyn Transaction,
        hooks: &'a mut dyn Planner,
    ) -> Boxed<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut run = IdbRun::new(tx.name(), now());
            let open = harness_begin(&self.store, IdbRun::mode(tx.access()))
                .await
                .map_err(|e| failure(&run, &e))?;
            let mut results: Vec<u8> = Vec::new();
            loop {
                match run.advance(tx, hooks, &mut Frame::new(&results)) {
                    Ok(Advance::Ops(batch)) => {
                        match harness_execute(&open, &batch.ops, &blobs(&batch)).await {
                            Ok(answers) => results = Uint8Array::from(answers).to_vec(),
                            Err(e) => return Err(failure(&run, &e)),
                        }
                    }
                    Ok(Advance::Commit(batch)) => {
                        let ended = harness_finish(&open, &batch.ops, &blobs(&batch)).await;
                        return if ended.is_null() || ended.is_undefined() {
                            Ok(())
                        } else {
                            Err(failure(&run, &ended))
                        };
                    }
                    Err(error) => {
                        let _ = harness_abort(&open).await;
                        return Err(error);
                    }
                }
            }
        })
    }
}
