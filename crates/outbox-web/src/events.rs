//! Events out to every page of the origin over a `BroadcastChannel`, and
//! to local listeners (a channel does not echo to its sender).

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Function;
use outbox_core::event::{Event, EventSink};
use wasm_bindgen::JsValue;
use web_sys::BroadcastChannel;

use crate::js;

/// Posts each event as a plain object (`{type, id, lane, …}`).
#[derive(Clone)]
pub struct BroadcastEvents {
    channel: Option<BroadcastChannel>,
    listeners: Rc<RefCell<Vec<(u32, Function)>>>,
    next: Rc<RefCell<u32>>,
}

impl BroadcastEvents {
    /// Events on the channel `name` (nothing is posted where
    /// `BroadcastChannel` is missing; local listeners still hear them).
    pub fn new(name: &str) -> Self {
        Self {
            channel: BroadcastChannel::new(name).ok(),
            listeners: Rc::default(),
            next: Rc::default(),
        }
    }

    /// Adds a local listener; returns its handle for [`Self::unlisten`].
    pub fn listen(&self, f: Function) -> u32 {
        let mut next = self.next.borrow_mut();
        *next += 1;
        self.listeners.borrow_mut().push((*next, f));
        *next
    }

    /// Removes a local listener.
    pub fn unlisten(&self, handle: u32) {
        self.listeners.borrow_mut().retain(|(h, _)| *h != handle);
    }

    /// Hands an event object (from this context or another) to the local
    /// listeners.
    pub fn deliver_local(&self, event: &JsValue) {
        let listeners: Vec<Function> = self
            .listeners
            .borrow()
            .iter()
            .map(|(_, f)| f.clone())
            .collect();
        for f in listeners {
            // A throwing listener must not stop the others or the engine.
            let _ = f.call1(&JsValue::NULL, event);
        }
    }

    /// Posts any object on the channel (and to local listeners).
    pub fn post(&self, value: &JsValue) {
        if let Some(c) = &self.channel {
            let _ = c.post_message(value);
        }
        self.deliver_local(value);
    }

    /// The channel, for listening to other contexts.
    pub fn channel(&self) -> Option<&BroadcastChannel> {
        self.channel.as_ref()
    }
}

impl EventSink for BroadcastEvents {
    fn emit(&self, event: &Event) {
        let value = js::parse_json(&event.to_json());
        js::set(&value, "at", js_sys::Date::now());
        self.post(&value);
    }
}
