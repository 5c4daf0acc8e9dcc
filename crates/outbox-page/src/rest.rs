//! The REST outbox: the `Outbox` class for Genesys Cloud's REST message
//! routes (and any configured route). Sends are write-through: durable in
//! IndexedDB before the promise resolves, then delivered by the controlling
//! service worker, or by this page under the origin-wide flush lock.

use std::rc::Rc;

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use outbox_core::genesys::{self, IdType, OpenFrom};
use outbox_core::request::IncomingRequest;
use outbox_web::js;
use outbox_web::tokens::absolute_url;

use crate::common::{
    Inner, accepted, build, deliver, err, give_token, queue_methods, service_worker_container,
};

/// A durable outbox for Genesys Cloud messages, in a page.
#[wasm_bindgen]
pub struct Outbox {
    pub(crate) inner: Rc<Inner>,
}

#[wasm_bindgen]
impl Outbox {
    /// Opens the outbox (IndexedDB), starts listening for online events,
    /// the service worker's token requests and other tabs' events, and
    /// flushes whatever waits.
    pub async fn open(
        #[wasm_bindgen(unchecked_param_type = "OutboxConfig")] config: JsValue,
    ) -> Result<Outbox, JsValue> {
        let web = outbox_web::config::from_js(&config).map_err(err)?;
        Ok(Outbox {
            inner: build(web, &config, None).await?,
        })
    }
}

queue_methods!(Outbox);

#[wasm_bindgen]
impl Outbox {
    /// Registers the Outbox service worker at `url` (e.g. `/sw.js`) with
    /// this outbox's configuration (in the script URL's `config`
    /// parameter), within `options.scope` when given, and resolves with the
    /// registration once its worker is active (whether or not its scope
    /// covers this page); rejects when the worker fails to install.
    #[wasm_bindgen(js_name = registerServiceWorker)]
    pub fn register_service_worker(&self, url: String, options: JsValue) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let container = service_worker_container().ok_or_else(|| {
                err("service workers are not available here (a secure context is needed)")
            })?;
            let sep = if url.contains('?') { '&' } else { '?' };
            let encoded: String = js_sys::encode_uri_component(&inner.config.json).into();
            let full = format!("{url}{sep}config={encoded}");
            let register_options = js::object();
            if let Some(scope) = js::get_str(&options, "scope") {
                js::set(&register_options, "scope", scope);
            }
            let registration = js::call_async(
                &container,
                "register",
                &[JsValue::from_str(&full), register_options],
            )
            .await?;
            active(&registration).await?;
            Ok(registration)
        })
    }

    /// Makes a request durable, then delivers it (write-through). Resolves
    /// once it is in IndexedDB with `{id, lane, seq, state}`; rejects with
    /// the reason when it cannot be kept (the caller still holds it).
    pub fn send(
        &self,
        #[wasm_bindgen(unchecked_param_type = "OutboxRequest")] request: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let incoming = incoming(&request)?;
            submit(&inner, incoming).await
        })
    }

    /// Sends an agent's message: `POST {apiBase}/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`.
    #[wasm_bindgen(js_name = sendAgentMessage)]
    pub fn send_agent_message(
        &self,
        conversation_id: String,
        communication_id: String,
        text: String,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let base = api_base(&inner)?;
            let request = genesys::agent_message(&base, &conversation_id, &communication_id, &text)
                .map_err(err)?;
            submit(&inner, request).await
        })
    }

    /// Sends an Open Messaging inbound message from `fromId` (idType
    /// `Opaque` unless `options.idType` says otherwise; `options.nickname`
    /// optional): `POST {apiBase}/api/v2/conversations/messages/{integrationId}/inbound/open/message`.
    #[wasm_bindgen(js_name = sendOpenMessage)]
    pub fn send_open_message(
        &self,
        integration_id: String,
        from_id: String,
        text: String,
        #[wasm_bindgen(
            unchecked_param_type = "{ idType?: 'Email' | 'Phone' | 'Opaque'; nickname?: string }"
        )]
        options: JsValue,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let base = api_base(&inner)?;
            let id_type = match js::get_str(&options, "idType") {
                Some(name) => name.parse::<IdType>().map_err(err)?,
                None => IdType::default(),
            };
            let nickname = js::get_str(&options, "nickname");
            let from = OpenFrom {
                id: &from_id,
                id_type,
                nickname: nickname.as_deref(),
            };
            let time: String = js_sys::Date::new_0().to_iso_string().into();
            let request =
                genesys::open_message(&base, &integration_id, &from, &text, &time).map_err(err)?;
            submit(&inner, request).await
        })
    }

    /// Hands the outbox a fresh access token (kept in memory only), for
    /// `origin` or every configured origin, and passes it to the service
    /// worker (`TOKEN_UPDATED`).
    #[wasm_bindgen(js_name = setToken)]
    pub fn set_token(
        &self,
        token: String,
        expires_in: Option<f64>,
        origin: Option<String>,
    ) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            give_token(&inner, &token, expires_in, origin.as_deref()).await?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// Resolves once `registration` has an active worker (the one installing
/// or waiting reaches `activated`), or fails when it becomes `redundant`.
async fn active(registration: &JsValue) -> Result<(), JsValue> {
    let present = |key: &str| js::get(registration, key).filter(|w| !w.is_null());
    loop {
        let Some(worker) = present("installing").or_else(|| present("waiting")) else {
            return match present("active") {
                Some(_) => Ok(()),
                None => Err(err("the service worker registration has no worker")),
            };
        };
        match js::get_str(&worker, "state").as_deref() {
            Some("activated") => return Ok(()),
            Some("redundant") => {
                return Err(err(
                    "the service worker failed to install (see the worker's console)",
                ));
            }
            _ => {}
        }
        let (tx, rx) = futures_channel::oneshot::channel::<()>();
        let tx = std::cell::Cell::new(Some(tx));
        let on_change = Closure::<dyn FnMut(JsValue)>::new(move |_e: JsValue| {
            if let Some(tx) = tx.take() {
                let _ = tx.send(());
            }
        });
        let listen = [JsValue::from_str("statechange"), on_change.as_ref().clone()];
        js::call(&worker, "addEventListener", &listen)?;
        let _ = rx.await;
        js::call(&worker, "removeEventListener", &listen)?;
    }
}

fn api_base(inner: &Inner) -> Result<String, JsValue> {
    inner.config.api_base.clone().ok_or_else(|| {
        err("set `apiBase` or `region` in the configuration to use the Genesys helpers")
    })
}

fn incoming(request: &JsValue) -> Result<IncomingRequest, JsValue> {
    let url = js::get_str(request, "url").ok_or_else(|| err("send() needs a `url`"))?;
    let url = absolute_url(&url);
    let method = js::get_str(request, "method")
        .unwrap_or_else(|| "POST".into())
        .to_ascii_uppercase();
    let mut headers = Vec::new();
    if let Some(h) = js::get(request, "headers") {
        if js_sys::Array::is_array(&h) {
            for pair in js_sys::Array::from(&h).iter() {
                let pair = js_sys::Array::from(&pair);
                if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                    headers.push((n, v));
                }
            }
        } else {
            for key in js_sys::Object::keys(h.unchecked_ref::<js_sys::Object>()).iter() {
                if let Some(k) = key.as_string()
                    && let Some(v) = js::get_str(&h, &k)
                {
                    headers.push((k, v));
                }
            }
        }
    }
    let body = match js::get(request, "body") {
        None => Vec::new(),
        Some(b) if b.is_string() => b.as_string().unwrap_or_default().into_bytes(),
        Some(b) if b.is_instance_of::<Uint8Array>() => Uint8Array::new(&b).to_vec(),
        Some(b) => {
            if !headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
            {
                headers.push(("content-type".into(), "application/json".into()));
            }
            js_sys::JSON::stringify(&b)
                .ok()
                .and_then(|s| s.as_string())
                .ok_or_else(|| {
                    err("body must be a string, a Uint8Array or a JSON-serialisable object")
                })?
                .into_bytes()
        }
    };
    Ok(IncomingRequest {
        method,
        url,
        headers,
        body,
    })
}

async fn submit(inner: &Rc<Inner>, request: IncomingRequest) -> Result<JsValue, JsValue> {
    let entry = inner.engine.submit(&request).await.map_err(err)?;
    deliver(inner);
    Ok(accepted(&entry))
}
