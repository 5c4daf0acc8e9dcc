//! Web Locks: one flusher at a time across every tab and the service
//! worker of an origin. (`LockManager` is behind `web_sys_unstable_apis`
//! in web-sys, so it is reached through the global.)

use std::cell::RefCell;
use std::future::Future;
use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use crate::js;

/// The prefix of the lock every flusher takes (followed by the database
/// name).
pub const FLUSH_LOCK: &str = "outbox-flush";

/// Whether Web Locks exist here.
pub fn available() -> bool {
    js::get(&js::global(), "navigator")
        .and_then(|n| js::get(&n, "locks"))
        .is_some()
}

/// Runs `work` while holding the exclusive lock `name`, waiting for it if
/// another context holds it. Where Web Locks are missing, runs it
/// unlocked (leases still keep two senders off the same entry).
pub async fn with_lock<F, T>(name: &str, work: F) -> Result<T, JsValue>
where
    F: Future<Output = T> + 'static,
    T: 'static,
{
    let locks = js::get(&js::global(), "navigator").and_then(|n| js::get(&n, "locks"));
    let Some(locks) = locks else {
        return Ok(work.await);
    };
    let output: Rc<RefCell<Option<T>>> = Rc::default();
    let slot = output.clone();
    let work = RefCell::new(Some(work));
    let callback = Closure::once(move |_lock: JsValue| -> Promise {
        let work = work.borrow_mut().take();
        future_to_promise(async move {
            if let Some(w) = work {
                *slot.borrow_mut() = Some(w.await);
            }
            Ok(JsValue::UNDEFINED)
        })
    });
    let promise = js::call(
        &locks,
        "request",
        &[JsValue::from_str(name), callback.as_ref().clone()],
    )?;
    JsFuture::from(Promise::resolve(&promise)).await?;
    drop(callback);
    output
        .borrow_mut()
        .take()
        .ok_or_else(|| JsValue::from_str("the lock callback did not run"))
}
