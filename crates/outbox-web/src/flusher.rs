//! Runs the engine's flush: one at a time per context (calls made while
//! one runs are folded into one more run), under the origin-wide flush
//! lock, and again when the engine says something becomes ready.
//!
//! "Again" is a timer in this context, and a timer lives only as long as
//! its context: a service worker is stopped about 30 s after its last
//! event (Firefox, Safari) whatever timers it has. So a flusher can also
//! tell someone else when its next run is due
//! ([`on_next_wake`](Flusher::on_next_wake)); the worker tells its pages,
//! whose timers then wake it with a `flush` message.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

use outbox_core::clock::{Clock, Millis};
use outbox_core::report::FlushReport;

use crate::WebEngine;
use crate::js::{self, JsClock};
use crate::locks::{FLUSH_LOCK, with_lock};

#[derive(Default)]
struct State {
    running: bool,
    again: bool,
    timer: js::Timer,
    last: Option<FlushReport>,
    on_next_wake: Option<Rc<dyn Fn(Millis)>>,
    /// Callers folded into the running flush, resolved when it ends.
    waiting: Vec<js_sys::Function>,
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

    /// Calls `tell` with the next wake-up after every run that leaves one
    /// (every time: a page that just opened knows nothing yet).
    pub fn on_next_wake(&self, tell: impl Fn(Millis) + 'static) {
        self.state.borrow_mut().on_next_wake = Some(Rc::new(tell));
    }

    /// What the last flush reported.
    pub fn last_report(&self) -> Option<FlushReport> {
        self.state.borrow().last.clone()
    }

    /// Flushes until nothing is ready now. If a flush is already running in
    /// this context, asks it to go round once more and waits for it to
    /// end (resolving with what it reported): a worker's event that asked
    /// for a flush thus keeps the worker alive until the flush is done.
    ///
    /// Boxed on purpose: the flush is the largest state machine of the
    /// bundle, and a boxed future is compiled once instead of being inlined
    /// into every caller (this halves the worker's size).
    pub fn run(&self) -> Pin<Box<dyn Future<Output = Result<FlushReport, FlushError>>>> {
        let me = self.clone();
        Box::pin(async move { me.run_inner().await })
    }

    async fn run_inner(&self) -> Result<FlushReport, FlushError> {
        let folded = {
            let mut s = self.state.borrow_mut();
            if s.running {
                s.again = true;
                Some(js_sys::Promise::new(&mut |resolve, _| {
                    s.waiting.push(resolve)
                }))
            } else {
                s.running = true;
                None
            }
        };
        if let Some(done) = folded {
            let _ = wasm_bindgen_futures::JsFuture::from(done).await;
            return Ok(self.last_report().unwrap_or_default());
        }
        let result = self.run_loop().await;
        let waiting = {
            let mut s = self.state.borrow_mut();
            s.running = false;
            std::mem::take(&mut s.waiting)
        };
        for resolve in waiting {
            let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
        }
        if let Ok(report) = &result {
            self.schedule(report.next_wake);
            self.tell_next_wake(report.next_wake);
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

    fn tell_next_wake(&self, at: Option<Millis>) {
        let tell = self.state.borrow().on_next_wake.clone();
        if let (Some(tell), Some(at)) = (tell, at) {
            tell(at);
        }
    }

    /// Sets (or moves earlier) the timer for the next flush.
    fn schedule(&self, at: Option<Millis>) {
        let Some(at) = at else { return };
        let mut s = self.state.borrow_mut();
        if s.timer.at().is_some_and(|t| t <= at) {
            return;
        }
        let me = self.clone();
        s.timer.set(at, move || {
            me.state.borrow_mut().timer.fired();
            me.kick();
        });
    }

    /// Starts a flush once the current task is done (a timer due now): a
    /// worker woken by an event serves that event before its start-up
    /// flush takes the store.
    pub fn kick_soon(&self) {
        use outbox_core::clock::Clock;
        self.schedule(Some(js::JsClock.now()));
    }

    /// Starts a flush without waiting for it.
    pub fn kick(&self) {
        let me = self.clone();
        wasm_bindgen_futures::spawn_local(async move {
            let _ = me.run().await;
        });
    }
}
