//! Runs the engine's flush: one at a time per context (calls made while
//! one runs are folded into one more run), under the origin-wide flush
//! lock, and again when the engine says something becomes ready.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use js_sys::Function;
use outbox_core::clock::{Clock, Millis};
use outbox_core::engine::FlushReport;
use wasm_bindgen::prelude::*;

use crate::WebEngine;
use crate::js::{self, JsClock};
use crate::locks::{FLUSH_LOCK, with_lock};

#[derive(Default)]
struct State {
    running: bool,
    again: bool,
    timer: Option<f64>,
    timer_at: Option<Millis>,
    last: Option<FlushReport>,
}

/// The flush loop of one context (a page or the service worker).
#[derive(Clone)]
pub struct Flusher {
    engine: Rc<WebEngine>,
    lock: Rc<str>,
    state: Rc<RefCell<State>>,
}

/// A flush failed.
#[derive(Debug, thiserror::Error)]
#[error("flush failed: {0}")]
pub struct FlushError(pub String);

impl Flusher {
    /// A flusher for `engine`, whose store is the database `database`
    /// (one flusher at a time per database, across the origin).
    pub fn new(engine: Rc<WebEngine>, database: &str) -> Self {
        Self {
            engine,
            lock: Rc::from(format!("{FLUSH_LOCK}:{database}")),
            state: Rc::default(),
        }
    }

    /// The engine.
    pub fn engine(&self) -> &Rc<WebEngine> {
        &self.engine
    }

    /// What the last flush reported.
    pub fn last_report(&self) -> Option<FlushReport> {
        self.state.borrow().last.clone()
    }

    /// Flushes until nothing is ready now. If a flush is already running in
    /// this context, asks it to go round once more and returns at once.
    ///
    /// Boxed on purpose: the flush is the largest state machine of the
    /// bundle, and a boxed future is compiled once instead of being inlined
    /// into every caller (this halves the worker's size).
    pub fn run(&self) -> Pin<Box<dyn Future<Output = Result<FlushReport, FlushError>>>> {
        let me = self.clone();
        Box::pin(async move { me.run_inner().await })
    }

    async fn run_inner(&self) -> Result<FlushReport, FlushError> {
        {
            let mut s = self.state.borrow_mut();
            if s.running {
                s.again = true;
                return Ok(FlushReport::default());
            }
            s.running = true;
        }
        let result = self.run_loop().await;
        self.state.borrow_mut().running = false;
        if let Ok(report) = &result {
            self.schedule(report.next_wake);
        }
        result
    }

    async fn run_loop(&self) -> Result<FlushReport, FlushError> {
        let mut total = FlushReport::default();
        loop {
            self.state.borrow_mut().again = false;
            let engine = self.engine.clone();
            // Under the lock no other sender is alive: leases still standing
            // are orphaned and may be taken over at once.
            let exclusive = crate::locks::available();
            let report = with_lock(&self.lock, async move {
                if exclusive {
                    engine.flush_exclusive().await
                } else {
                    engine.flush().await
                }
            })
            .await
            .map_err(|e| FlushError(js::error_text(&e)))?
            .map_err(|e| FlushError(e.to_string()))?;
            total.cycles += report.cycles;
            total.attempts += report.attempts;
            total.delivered += report.delivered;
            total.retried += report.retried;
            total.dead += report.dead;
            total.awaiting_token += report.awaiting_token;
            total.next_wake = report.next_wake;
            self.state.borrow_mut().last = Some(total.clone());
            let due_now = report.next_wake.is_some_and(|t| t <= JsClock.now());
            if !(self.state.borrow().again || due_now) {
                return Ok(total);
            }
        }
    }

    /// Sets (or moves earlier) the timer for the next flush.
    fn schedule(&self, at: Option<Millis>) {
        let Some(at) = at else { return };
        let mut s = self.state.borrow_mut();
        if s.timer_at.is_some_and(|t| t <= at) {
            return;
        }
        let g = js::global();
        if let Some(id) = s.timer.take() {
            let _ = js::call(&g, "clearTimeout", &[JsValue::from_f64(id)]);
        }
        let delay = at.saturating_sub(JsClock.now()).min(i32::MAX as u64);
        let me = self.clone();
        let callback = Closure::once_into_js(move || {
            {
                let mut s = me.state.borrow_mut();
                s.timer = None;
                s.timer_at = None;
            }
            wasm_bindgen_futures::spawn_local(async move {
                let _ = me.run().await;
            });
        });
        let callback: Function = callback.into();
        if let Ok(id) = js::call(
            &g,
            "setTimeout",
            &[callback.into(), JsValue::from_f64(delay as f64)],
        ) {
            s.timer = id.as_f64();
            s.timer_at = Some(at);
        }
    }

    /// Starts a flush without waiting for it.
    pub fn kick(&self) {
        let me = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let _ = me.run().await;
        });
    }
}
