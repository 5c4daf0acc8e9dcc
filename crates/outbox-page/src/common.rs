//! What the REST outbox ([`crate::rest::Outbox`]) and the guest outbox
//! ([`crate::guest_outbox::GuestOutbox`]) share: the engine and its
//! drivers ([`Inner`]), opening them ([`build`]), the page's listeners
//! (online, other tabs' events, the worker's token requests), who flushes
//! (the controlling worker, else this page), and the queue methods both
//! classes expose ([`queue_methods!`]).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::{Function, Promise};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, future_to_promise};

use outbox_core::clock::{Clock, Millis};
use outbox_core::entry::EntryId;
use outbox_core::queue::CancelResult;
use outbox_core::report::FlushReport;
use outbox_driver::store::Store;
use outbox_web::config::WebConfig;
use outbox_web::events::BroadcastEvents;
use outbox_web::fetch::{BrowserTransport, FetchTransport};
use outbox_web::flusher::Flusher;
use outbox_web::protocol::Message;
use outbox_web::tokens::{Asker, BrowserTokens};
use outbox_web::{WebEngine, js, open_engine, take_token, view};

use crate::guest::GuestLink;

/// An event listener this page added: (target, event name, closure).
type Listener = (JsValue, &'static str, Closure<dyn FnMut(JsValue)>);

pub(crate) struct Inner {
    pub(crate) config: WebConfig,
    pub(crate) engine: Rc<WebEngine>,
    pub(crate) flusher: Flusher,
    pub(crate) tokens: BrowserTokens,
    pub(crate) events: BroadcastEvents,
    pub(crate) get_token: Option<Function>,
    /// Listeners to remove on `close`: (target, event name, closure).
    pub(crate) closures: RefCell<Vec<Listener>>,
    /// The Guest WebSocket, for a guest outbox (`Outbox.guest`).
    pub(crate) guest: Option<Rc<GuestLink>>,
    /// The worker's next flush, which this page will ask for
    /// ([`Message::Wake`]).
    pub(crate) wake: RefCell<js::Timer>,
}

pub(crate) use outbox_web::js::error as err;

/// An entry id from JavaScript, or an error naming it.
pub(crate) fn parse_id(id: &str) -> Result<EntryId, JsValue> {
    id.parse::<EntryId>().map_err(err)
}

/// Opens the engine on `web`, starts the page's listeners and flushes
/// whatever waits.
pub(crate) async fn build(
    web: WebConfig,
    config: &JsValue,
    guest: Option<Rc<GuestLink>>,
) -> Result<Rc<Inner>, JsValue> {
    {
        let get_token = js::get(config, "getToken").and_then(|f| f.dyn_into::<Function>().ok());
        let events = BroadcastEvents::new(&web.channel);
        // A token is asked for through the app's callback when there is no token URL.
        let asker_slot: Rc<RefCell<Option<std::rc::Weak<Inner>>>> = Rc::default();
        let asker: Asker = {
            let slot = asker_slot.clone();
            Rc::new(move |origin: &str| {
                let inner = slot.borrow().as_ref().and_then(std::rc::Weak::upgrade);
                if let Some(inner) = inner {
                    let origin = origin.to_owned();
                    wasm_bindgen_futures::spawn_local(async move {
                        if let Some((token, expires)) = token_from_app(&inner).await {
                            inner.tokens.install(&origin, &token, expires);
                            let _ = inner.engine.token_updated(&origin, None).await;
                            deliver(&inner);
                        }
                    });
                }
            })
        };
        let tokens = BrowserTokens::new(web.token_url.clone(), Some(asker));
        let transport = match &guest {
            Some(link) => BrowserTransport::Custom(link.clone()),
            None => BrowserTransport::Fetch(FetchTransport),
        };
        let engine = Rc::new(
            open_engine(&web, transport, tokens.clone(), events.clone())
                .await
                .map_err(err)?,
        );
        let flusher = Flusher::new(engine.clone(), &web.database);
        let inner = Rc::new(Inner {
            config: web,
            engine,
            flusher,
            tokens,
            events,
            get_token,
            closures: RefCell::default(),
            guest,
            wake: RefCell::default(),
        });
        *asker_slot.borrow_mut() = Some(Rc::downgrade(&inner));
        listen(&inner);
        deliver(&inner);
        Ok(inner)
    }
}

/// `{id, lane, seq, state}` of an accepted entry.
pub(crate) fn accepted(entry: &outbox_core::entry::Entry) -> JsValue {
    let out = js::object();
    js::set(&out, "id", entry.id.to_string());
    js::set(&out, "lane", entry.lane.as_str());
    js::set(&out, "seq", entry.seq as f64);
    js::set(&out, "state", entry.state.name());
    out
}

/// Asks the app for a token: `getToken()` (string or `{token, expiresIn}`),
/// else the token URL.
pub(crate) async fn token_from_app(inner: &Inner) -> Option<(String, Option<f64>)> {
    if let Some(f) = &inner.get_token {
        let value = f.call0(&JsValue::NULL).ok()?;
        let value = JsFuture::from(Promise::resolve(&value)).await.ok()?;
        if let Some(t) = value.as_string() {
            return Some((t, None));
        }
        return js::get_str(&value, "token").map(|t| (t, js::get_f64(&value, "expiresIn")));
    }
    inner.tokens.fetch_token().await
}

/// Installs a token for `origin` (or every configured origin) and passes it
/// to the worker.
pub(crate) async fn give_token(
    inner: &Inner,
    token: &str,
    expires_in: Option<f64>,
    origin: Option<&str>,
) -> Result<(), JsValue> {
    take_token(&inner.engine, &inner.tokens, token, origin, expires_in)
        .await
        .map_err(err)?;
    let message = Message::TokenUpdated {
        token: token.to_owned(),
        origin: origin.map(str::to_owned),
        expires_in,
    };
    if !tell_worker(&message) {
        inner.flusher.kick();
    }
    Ok(())
}

/// `navigator.serviceWorker`, where there is one.
pub(crate) fn service_worker_container() -> Option<JsValue> {
    js::get(&js::global(), "navigator").and_then(|n| js::get(&n, "serviceWorker"))
}

/// Posts to the controlling service worker, if any; returns whether there
/// is one.
pub(crate) fn tell_worker(message: &Message) -> bool {
    match service_worker_container().and_then(|c| js::get(&c, "controller")) {
        Some(controller) => {
            let _ = js::call(&controller, "postMessage", &[message.to_js()]);
            true
        }
        None => false,
    }
}

/// Gets queued entries delivered: by the service worker when one controls
/// this page (it alone sends, so the two never race), else by this page
/// under the origin-wide flush lock.
pub(crate) fn deliver(inner: &Inner) {
    // A guest outbox is the page's alone (no worker sees its socket).
    if inner.guest.is_some() || !tell_worker(&Message::Flush) {
        inner.flusher.kick();
    }
}

fn listen(inner: &Rc<Inner>) {
    let mut closures = inner.closures.borrow_mut();
    let mut add = |target: JsValue, name: &'static str, closure: Closure<dyn FnMut(JsValue)>| {
        let _ = js::call(
            &target,
            "addEventListener",
            &[JsValue::from_str(name), closure.as_ref().clone()],
        );
        closures.push((target, name, closure));
    };
    // Pages get `online`; workers do not (Chromium): pass it on.
    let weak = Rc::downgrade(inner);
    add(
        js::global(),
        "online",
        Closure::new(move |_e: JsValue| {
            let Some(inner) = weak.upgrade() else { return };
            if inner.guest.is_some() || !tell_worker(&Message::Online) {
                wasm_bindgen_futures::spawn_local(async move {
                    let _ = inner.engine.network_back().await;
                    inner.flusher.kick();
                });
            }
        }),
    );
    // Other tabs' and the worker's events.
    if let Some(channel) = inner.events.channel() {
        let events = inner.events.clone();
        add(
            channel.clone().into(),
            "message",
            Closure::new(move |e: JsValue| {
                if let Some(data) = js::get(&e, "data") {
                    events.deliver_local(&data);
                }
            }),
        );
    }
    // The worker's token protocol (a guest outbox has no worker).
    if let Some(container) = service_worker_container().filter(|_| inner.guest.is_none()) {
        let weak = Rc::downgrade(inner);
        add(
            container,
            "message",
            Closure::new(move |e: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let data = js::get(&e, "data").unwrap_or(JsValue::NULL);
                match Message::from_js(&data) {
                    Ok(Some(Message::TokenRefreshRequired { origin, .. })) => {
                        wasm_bindgen_futures::spawn_local(async move {
                            if let Some((token, expires)) = token_from_app(&inner).await {
                                let _ = give_token(&inner, &token, expires, Some(&origin)).await;
                            }
                        });
                    }
                    Ok(Some(Message::Wake { queue_id, at }))
                        if queue_id == inner.config.database =>
                    {
                        wake_worker_at(&inner, at as Millis);
                    }
                    _ => {}
                }
            }),
        );
    }
}

/// How long after the worker's own wake-up a page asks for a flush: a
/// live worker's timer fires first, and the `OUTBOX_WAKE` it sends after
/// that run replaces the page's timer before it fires, so only a stopped
/// worker is woken by its pages (that late), not every live one twice.
const WAKE_GRACE_MS: Millis = 2_000;

/// Asks for a flush soon after `at`, the worker's next wake-up: an idle
/// worker is stopped with its timers (Firefox, Safari: ~30 s after its
/// last event, and no Background Sync), this page is not. One timer per
/// page, set from the latest time the worker told.
fn wake_worker_at(inner: &Rc<Inner>, at: Millis) {
    let at = at.saturating_add(WAKE_GRACE_MS);
    let mut wake = inner.wake.borrow_mut();
    if wake.at() == Some(at) {
        return;
    }
    let weak = Rc::downgrade(inner);
    wake.set(at, move || {
        let Some(inner) = weak.upgrade() else { return };
        inner.wake.borrow_mut().fired();
        deliver(&inner);
    });
}

/// `on`: listens to every event; returns the function that stops it.
pub(crate) fn on(inner: &Inner, listener: Function) -> Function {
    let handle = inner.events.listen(listener);
    let events = inner.events.clone();
    Closure::once_into_js(move || events.unlisten(handle)).unchecked_into()
}

/// `stats()`.
pub(crate) fn stats(inner: &Rc<Inner>) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move { Ok(view::stats(&inner.engine.stats().await.map_err(err)?)) })
}

/// `queued(limit?)`.
pub(crate) fn queued(inner: &Rc<Inner>, limit: Option<u32>) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let list = inner
            .engine
            .store()
            .queued(limit.unwrap_or(1000) as usize)
            .await
            .map_err(err)?;
        Ok(view::entries(&list, inner.engine.clock().now()))
    })
}

/// `deadLetters(limit?)`.
pub(crate) fn dead_letters(inner: &Rc<Inner>, limit: Option<u32>) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let list = inner
            .engine
            .store()
            .dead_letters(limit.unwrap_or(1000) as usize)
            .await
            .map_err(err)?;
        Ok(view::entries(&list, inner.engine.clock().now()))
    })
}

/// `retry(id)`: a dead letter back in its lane, then a flush.
pub(crate) fn retry(inner: &Rc<Inner>, id: String) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let found = inner
            .engine
            .revive(parse_id(&id)?)
            .await
            .map_err(err)?
            .is_some();
        if found {
            deliver(&inner);
        }
        Ok(found.into())
    })
}

/// `discard(id)`, then a flush: the conversation it held (if any) goes on.
pub(crate) fn discard(inner: &Rc<Inner>, id: String) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let found = inner.engine.discard(parse_id(&id)?).await.map_err(err)?;
        if found {
            deliver(&inner);
        }
        Ok(found.into())
    })
}

/// `cancel(id)`.
pub(crate) fn cancel(inner: &Rc<Inner>, id: String) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let result = inner.engine.cancel(parse_id(&id)?).await.map_err(err)?;
        Ok(JsValue::from_str(match result {
            CancelResult::Cancelled => "cancelled",
            CancelResult::InFlight => "in-flight",
            CancelResult::NotFound => "not-found",
        }))
    })
}

/// `flush()`: by the controlling worker (REST only), else here.
pub(crate) fn flush(inner: &Rc<Inner>) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        if inner.guest.is_none() && tell_worker(&Message::Flush) {
            // The worker sends; this page must not race it.
            return Ok(view::flush_report(&FlushReport::default(), true));
        }
        let report = inner.flusher.run().await.map_err(err)?;
        Ok(view::flush_report(&report, false))
    })
}

/// `purge()`.
pub(crate) fn purge(inner: &Rc<Inner>) -> Promise {
    let inner = inner.clone();
    future_to_promise(async move {
        let purged = inner.engine.purge().await.map_err(err)?;
        let out = js::object();
        js::set(&out, "queued", purged.queued as f64);
        js::set(&out, "dead", purged.dead as f64);
        Ok(out)
    })
}

/// `close()`: stops the socket (guest) and every listener.
pub(crate) fn close(inner: &Inner) {
    if let Some(link) = &inner.guest {
        link.close();
    }
    // A closed outbox no longer wakes the worker.
    inner.wake.borrow_mut().clear();
    for (target, name, closure) in inner.closures.borrow_mut().drain(..) {
        let _ = js::call(
            &target,
            "removeEventListener",
            &[JsValue::from_str(name), closure.as_ref().clone()],
        );
    }
}

/// The queue methods both classes expose, on `$class` (which has an
/// `inner: Rc<Inner>`); the bodies are the functions above.
macro_rules! queue_methods {
    ($class:ident) => {
        #[wasm_bindgen]
        impl $class {
            /// Listens to every event of every tab (and the worker). Returns a
            /// function that stops listening.
            pub fn on(&self, listener: ::js_sys::Function) -> ::js_sys::Function {
                $crate::common::on(&self.inner, listener)
            }

            /// Counts per state, lanes, oldest age, pauses.
            pub fn stats(&self) -> ::js_sys::Promise {
                $crate::common::stats(&self.inner)
            }

            /// Queued entries, oldest first (at most `limit`, default 1000).
            pub fn queued(&self, limit: Option<u32>) -> ::js_sys::Promise {
                $crate::common::queued(&self.inner, limit)
            }

            /// Dead letters, oldest first, each with its error.
            #[wasm_bindgen(js_name = deadLetters)]
            pub fn dead_letters(&self, limit: Option<u32>) -> ::js_sys::Promise {
                $crate::common::dead_letters(&self.inner, limit)
            }

            /// Puts a dead letter back in its lane and flushes. Resolves `false`
            /// when no dead letter has that id.
            pub fn retry(&self, id: String) -> ::js_sys::Promise {
                $crate::common::retry(&self.inner, id)
            }

            /// Deletes a dead letter. Resolves `false` when none has that id.
            pub fn discard(&self, id: String) -> ::js_sys::Promise {
                $crate::common::discard(&self.inner, id)
            }

            /// Removes a queued entry before it is sent: `"cancelled"`,
            /// `"in-flight"` (too late) or `"not-found"`.
            pub fn cancel(&self, id: String) -> ::js_sys::Promise {
                $crate::common::cancel(&self.inner, id)
            }

            /// Flushes now: asks the controlling service worker to (and
            /// resolves with `{worker: true}`), or, without one, flushes in this
            /// page under the origin-wide lock and resolves with `{delivered,
            /// attempts, nextWake}`.
            pub fn flush(&self) -> ::js_sys::Promise {
                $crate::common::flush(&self.inner)
            }

            /// Deletes every queued entry and dead letter (log-out on a shared
            /// device). Resolves with `{queued, dead}` removed.
            pub fn purge(&self) -> ::js_sys::Promise {
                $crate::common::purge(&self.inner)
            }

            /// Stops listening to events (the database stays as it is).
            pub fn close(&self) {
                $crate::common::close(&self.inner)
            }
        }
    };
}
pub(crate) use queue_methods;
