//! The guest outbox: the `GuestOutbox` class behind `Outbox.guest`, for a
//! Web Messaging guest on the Guest WebSocket (which no service worker can
//! see, so this page alone sends). Messages are text, durable in their own
//! database, paced under the per-session rate, and sent only when their
//! echo arrives ([`crate::guest::GuestLink`]).

use std::rc::Rc;

use js_sys::Promise;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use outbox_core::clock::SplitMix64;
use outbox_core::entry::EntryId;
use outbox_core::guest;
use outbox_web::js;

use crate::common::{Inner, accepted, build, err, queue_methods};
use crate::guest::GuestLink;
use crate::rest::Outbox;

/// A guest's durable outbox on the Guest WebSocket (`Outbox.guest`).
#[wasm_bindgen]
pub struct GuestOutbox {
    inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Outbox {
    /// Opens a guest's outbox on the Web Messaging Guest WebSocket
    /// (`wss://webmessaging.<region>/v1`, or `url`): messages are made
    /// durable (database `outbox-guest` unless `database` says otherwise),
    /// sent in order under the per-session rate, and count as sent only
    /// when their echo arrives. The session token is created once and kept
    /// in local storage, so a reload continues the conversation.
    pub async fn guest(
        #[wasm_bindgen(unchecked_param_type = "GuestConfig")] config: JsValue,
    ) -> Result<GuestOutbox, JsValue> {
        let guest = outbox_web::config::guest_from_js(&config).map_err(err)?;
        let link = Rc::new(GuestLink::new(
            &guest.socket_url,
            &guest.deployment_id,
            &guest.api_base,
            &guest.storage_key(),
        ));
        Ok(GuestOutbox {
            inner: build(guest.outbox, &config, Some(link)).await?,
        })
    }
}

queue_methods!(GuestOutbox);

#[wasm_bindgen]
impl GuestOutbox {
    /// The guest's session token (created on first use, kept in local
    /// storage).
    #[wasm_bindgen(getter, js_name = sessionToken)]
    pub fn session_token(&self) -> String {
        self.inner
            .guest
            .as_ref()
            .map(|g| g.session_token())
            .unwrap_or_default()
    }

    /// Makes a text message, or the answer to an agent's quick reply,
    /// durable, then sends it on the socket in order. Resolves once it is
    /// in IndexedDB with `{id, lane, seq, state}`.
    pub fn send(&self, message: JsValue) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let Some(link) = &inner.guest else {
                return Err(err("not a guest outbox"));
            };
            let message = guest_message(&message)?;
            let id = EntryId::random(&mut SplitMix64::new(js::random_seed()));
            let prepared = guest::prepare_entry(id, link.url(), &link.session_token(), &message);
            let entry = inner
                .engine
                .enqueue(prepared, false, None, "write-through")
                .await
                .map_err(err)?;
            inner.flusher.kick();
            Ok(accepted(&entry))
        })
    }

    /// Tells the agent the guest is typing: best-effort, sent only while
    /// the socket is open and configured, never queued or retried. Returns
    /// whether it was sent.
    #[wasm_bindgen(js_name = sendTyping)]
    pub fn send_typing(&self) -> bool {
        self.inner.guest.as_ref().is_some_and(|link| link.typing())
    }
}

/// What a guest outbox was asked to send: a string, `{text}`, or
/// `{quickReply: {text, payload?}}` (a quick-reply answer; the payload
/// defaults to the text).
fn guest_message(request: &JsValue) -> Result<guest::GuestEntry, JsValue> {
    if let Some(reply) = js::get(request, "quickReply").filter(|v| v.is_object()) {
        let text = js::get_str(&reply, "text")
            .filter(|t| !t.trim().is_empty())
            .ok_or_else(|| err("a quick-reply answer needs the button's text"))?;
        let payload = js::get_str(&reply, "payload").unwrap_or_else(|| text.clone());
        return Ok(guest::GuestEntry::quick_reply(&text, &payload));
    }
    let text = request
        .as_string()
        .or_else(|| js::get_str(request, "text"))
        .ok_or_else(|| {
            err("a guest outbox sends text or a quick-reply answer: send('hello'), send({ text }) or send({ quickReply: { text, payload } })")
        })?;
    if text.trim().is_empty() {
        return Err(err("a guest message needs some text"));
    }
    Ok(guest::GuestEntry::text(&text))
}
