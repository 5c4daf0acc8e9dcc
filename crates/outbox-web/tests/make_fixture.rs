//! Writes the upgrade fixture: a database made by this IndexedDB store
//! through the real engine, dumped raw (every store, every key). Run once,
//! by hand; its output is testdata/idb-v1/outbox.json.
#![cfg(target_arch = "wasm32")]
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::rc::Rc;

use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::{Clock, SplitMix64};
use outbox_core::config::OutboxConfig;
use outbox_core::event::NoEvents;
use outbox_core::queue::{LeaseTerms, Planner};
use outbox_core::request::{IncomingRequest, OutgoingRequest};
use outbox_core::scheduler::Claim;
use outbox_driver::engine::Engine;
use outbox_driver::store::Store;
use outbox_driver::token::MemoryTokens;
use outbox_driver::transport::Transport;
use outbox_web::IdbStore;
use outbox_web::js::JsClock;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{console_log, wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const ORIGIN: &str = "http://127.0.0.1:8081";

struct Scripted(Rc<RefCell<Vec<String>>>);

impl Transport for Scripted {
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError> {
        self.0.borrow_mut().push(request.url.to_owned());
        let status = if request.url.contains("/conv-b/") {
            503
        } else if request.url.contains("/conv-d/") {
            403
        } else if request.url.contains("/conv-e/") {
            401
        } else {
            return Err(TransportError {
                kind: FailureKind::Network,
                message: "Failed to fetch".into(),
            });
        };
        Ok(Response {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: format!(
                r#"{{"message":"refused","code":"c{status}","status":{status},"contextId":"ctx-{status}"}}"#
            )
            .into_bytes(),
        })
    }
}

fn request(lane: &str, text: &str) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        url: format!(
            "{ORIGIN}/api/v2/conversations/messages/{lane}/communications/comm-1/messages"
        ),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("authorization".into(), "Bearer fixture-token".into()),
            ("x-trace".into(), "dropped".into()),
        ],
        body: format!(r#"{{"textBody":"{text}"}}"#).into_bytes(),
    }
}

const DUMP: &str = r#"
return new Promise((resolve, reject) => {
  const open = indexedDB.open(name);
  open.onerror = () => reject(open.error);
  open.onsuccess = () => {
    const db = open.result;
    const out = { name, version: db.version, stores: {} };
    const tx = db.transaction(Array.from(db.objectStoreNames), 'readonly');
    for (const s of Array.from(db.objectStoreNames)) {
      const os = tx.objectStore(s);
      const info = { keyPath: os.keyPath, autoIncrement: os.autoIncrement, indexes: [], records: [] };
      for (const i of Array.from(os.indexNames)) {
        const ix = os.index(i);
        info.indexes.push({ name: ix.name, keyPath: ix.keyPath, unique: ix.unique, multiEntry: ix.multiEntry });
      }
      out.stores[s] = info;
      const c = os.openCursor();
      c.onsuccess = () => {
        const cur = c.result;
        if (!cur) return;
        const v = cur.value;
        info.records.push({ key: cur.primaryKey, value: v instanceof Uint8Array ? { $bytes: Array.from(v) } : v });
        cur.continue();
      };
    }
    tx.oncomplete = () => { db.close(); resolve(JSON.stringify(out, null, 1)); };
    tx.onerror = () => reject(tx.error);
  };
});
"#;

// Run by hand (`-- --include-ignored --nocapture`), not in the suites.
#[wasm_bindgen_test]
#[ignore]
async fn make_fixture() {
    let name = "outbox";
    IdbStore::delete_database(name).await.unwrap();
    let store = IdbStore::open(name).await.unwrap();
    let config = OutboxConfig::parse(
        &format!(r#"{{"origins":["{ORIGIN}"],"genesysRegions":false}}"#),
        ORIGIN,
    )
    .unwrap();
    let sent = Rc::new(RefCell::new(Vec::new()));
    let tokens = MemoryTokens::new();
    let engine = Engine::new(
        config.core.clone(),
        store.clone(),
        Scripted(sent.clone()),
        JsClock,
        tokens.clone(),
        NoEvents,
        7,
    );
    // Lanes: a (network failures), b (503), d (403: a dead letter holding
    // its lane), e (401: awaiting a token), then f (leased by a sender
    // that died) and g (never tried).
    for (lane, n) in [("conv-a", 3), ("conv-b", 2), ("conv-d", 2), ("conv-e", 1)] {
        for i in 0..n {
            engine
                .submit(&request(lane, &format!("{lane}-{i}")))
                .await
                .unwrap();
        }
    }
    let report = engine.flush().await.unwrap();
    console_log!("flush: {report:?}; sent {:?}", sent.borrow());
    // The token is gone: conv-h, sent without one, waits for a token.
    outbox_driver::token::TokenSource::rejected(&tokens, ORIGIN, "fixture-token");
    let mut h = request("conv-h", "conv-h-0");
    h.headers.retain(|(n, _)| n != "authorization");
    engine.submit(&h).await.unwrap();
    let report = engine.flush().await.unwrap();
    console_log!("flush again: {report:?}");
    engine.submit(&request("conv-f", "conv-f-0")).await.unwrap();
    // conv-f's head leased by a sender that then died (a lease of 1 ms).
    // conv-h's head parked for a token by a claim (as a plan without a
    // token in hand does).
    struct Park;
    impl Planner for Park {
        fn plan(
            &mut self,
            _: &mut outbox_core::pacer::ScheduleState,
            heads: &[outbox_core::entry::Head],
        ) -> (Vec<(u64, Claim)>, Option<u64>) {
            (
                heads
                    .iter()
                    .filter(|h| h.lane == "conv-h")
                    .map(|h| (h.seq, Claim::AwaitToken))
                    .collect(),
                None,
            )
        }
    }
    let now = JsClock.now();
    let parked = store
        .claim(
            LeaseTerms {
                now,
                until: now + 60_000,
                steal: false,
                survey: false,
            },
            &mut Park,
        )
        .await
        .unwrap();
    assert_eq!(parked.awaiting_token.len(), 1);
    struct LeaseF;
    impl Planner for LeaseF {
        fn plan(
            &mut self,
            _: &mut outbox_core::pacer::ScheduleState,
            heads: &[outbox_core::entry::Head],
        ) -> (Vec<(u64, Claim)>, Option<u64>) {
            (
                heads
                    .iter()
                    .filter(|h| h.lane == "conv-f")
                    .map(|h| (h.seq, Claim::Send))
                    .collect(),
                None,
            )
        }
    }
    let now = JsClock.now();
    let claimed = store
        .claim(
            LeaseTerms {
                now,
                until: now + 1,
                steal: false,
                survey: true,
            },
            &mut LeaseF,
        )
        .await
        .unwrap();
    assert_eq!(claimed.sends.len(), 1);
    engine.submit(&request("conv-g", "conv-g-0")).await.unwrap();
    let stats = store.stats(JsClock.now()).await.unwrap();
    console_log!("stats: {stats:?}");
    let _ = SplitMix64::new(1);
    store.close();
    let dump = js_sys::Function::new_with_args("name", DUMP)
        .call1(&JsValue::NULL, &JsValue::from_str(name))
        .unwrap();
    let text = JsFuture::from(js_sys::Promise::from(dump)).await.unwrap();
    console_log!("FIXTURE-BEGIN\n{}\nFIXTURE-END", text.as_string().unwrap());
}
