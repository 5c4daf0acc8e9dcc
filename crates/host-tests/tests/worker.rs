//! The TypeScript host's IndexedDB store inside a real service worker
//! (Chromium, Firefox, WebKit): the store conformance suite, where the
//! outbox really runs.
#![cfg(target_arch = "wasm32")]
// Test code: a failed unwrap is a failed test (clippy.toml's allowance does
// not reach helpers of `wasm_bindgen_test` functions).
#![allow(clippy::unwrap_used)]

use host_tests::TsStore;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_service_worker);

/// Every case checks first that it really runs inside a service worker.
async fn conformance_store(case: &'static str) -> TsStore {
    assert!(
        js_sys::global()
            .dyn_into::<web_sys::ServiceWorkerGlobalScope>()
            .is_ok(),
        "this test must run inside a service worker"
    );
    let name = format!("conformance-worker-{case}");
    TsStore::delete_database(&name).await.unwrap();
    TsStore::open(&name).await.unwrap()
}

outbox_driver::store_conformance_tests!(async #[wasm_bindgen_test], conformance_store);
