//! Sending with `fetch`, with a timeout (`AbortController`), in a window
//! or a worker alike.

use js_sys::{Promise, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{AbortController, Headers, Request, RequestInit, Response};

use outbox_core::classify::{self, FailureKind, TransportError};
use outbox_core::json;
use outbox_core::request::OutgoingRequest;
use outbox_driver::transport::Transport;

use crate::js;
use crate::protocol::Message;

/// The replay guard: a page's own send must never be queued again by the
/// service worker that controls it. Before such a send the page posts
/// [`Message::Replay`] to its controller and waits for the
/// worker's acknowledgement; the worker lets the next request from that
/// client (the fetch event's `clientId`, the message's `source.id`) with
/// that key go by untouched. The key is a digest of the method, the URL as
/// the `Request` normalised it, and the body: nothing is added to the
/// request itself, so no server sees a marker and no CORS preflight is
/// caused (a referrer marker is trimmed to the origin cross-origin, and a
/// custom header would need a preflight).
/// How long a page waits for its controller to acknowledge a replay before
/// sending anyway (a controller without Outbox never answers).
const REPLAY_ACK_TIMEOUT_MS: u64 = 3_000;

/// The replay key of a request: FNV-1a (64 bits) of method, URL and body,
/// in hex.
pub fn replay_key(method: &str, url: &str, body: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [method.as_bytes(), b"\0", url.as_bytes(), b"\0", body] {
        for b in part {
            hash = (hash ^ u64::from(*b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    let mut key = String::with_capacity(16);
    json::push_hex(&mut key, &hash.to_be_bytes());
    key
}

/// In a page controlled by a service worker, announces the request as an
/// Outbox send and waits (bounded) for the worker's acknowledgement. Does
/// nothing elsewhere (a worker's own fetches never pass through a worker).
async fn announce_replay(method: &str, url: &str, body: &[u8]) {
    let global = js::global();
    let Some(controller) = js::get(&global, "navigator")
        .and_then(|n| js::get(&n, "serviceWorker"))
        .and_then(|c| js::get(&c, "controller"))
        .filter(|c| !c.is_null())
    else {
        return;
    };
    let Some(channel) = js::get(&global, "MessageChannel")
        .and_then(|c| c.dyn_into::<js_sys::Function>().ok())
        .and_then(|c| js_sys::Reflect::construct(&c, &js_sys::Array::new()).ok())
    else {
        return;
    };
    let (Some(mine), Some(theirs)) = (js::get(&channel, "port1"), js::get(&channel, "port2"))
    else {
        return;
    };
    // Resolved by the worker's answer on the port.
    let acknowledged = Promise::new(&mut |resolve, _reject| {
        js::set(&mine, "onmessage", resolve);
    });
    let message = Message::Replay {
        key: replay_key(method, url, body),
    }
    .to_js();
    let transfer = js_sys::Array::of1(&theirs);
    if js::call(&controller, "postMessage", &[message, transfer.into()]).is_ok() {
        let _ = with_timeout(JsFuture::from(acknowledged), REPLAY_ACK_TIMEOUT_MS).await;
    }
    let _ = js::call(&mine, "close", &[]);
}

/// Largest error body read back (only error details are looked at).
const ERROR_BODY_LIMIT: usize = classify::ERROR_BODY_SCAN_LIMIT;

/// A request to send, by parts.
pub struct Parts<'a> {
    /// Method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Headers.
    pub headers: &'a [(String, String)],
    /// Body.
    pub body: &'a [u8],
}

/// Sends a request, failing with a [`TransportError`] when no answer comes
/// within `timeout_ms`. Returns the real `Response` (for pass-through).
pub async fn fetch(parts: Parts<'_>, timeout_ms: u64) -> Result<Response, TransportError> {
    let network = |message: String| TransportError {
        kind: FailureKind::Network,
        message,
    };
    let headers = Headers::new().map_err(|e| network(js::error_text(&e)))?;
    for (name, value) in parts.headers {
        headers
            .append(name, value)
            .map_err(|e| network(format!("header {name}: {}", js::error_text(&e))))?;
    }
    let init = RequestInit::new();
    init.set_method(parts.method);
    init.set_headers(&headers);
    init.set_mode(web_sys::RequestMode::Cors);
    init.set_credentials(web_sys::RequestCredentials::Omit);
    init.set_cache(web_sys::RequestCache::NoStore);
    if !parts.body.is_empty() && !matches!(parts.method, "GET" | "HEAD") {
        let body = Uint8Array::from(parts.body);
        init.set_body(&body);
    }
    let controller = AbortController::new().ok();
    if let Some(c) = &controller {
        init.set_signal(Some(&c.signal()));
    }
    let request = Request::new_with_str_and_init(parts.url, &init)
        .map_err(|e| network(js::error_text(&e)))?;
    announce_replay(parts.method, &request.url(), parts.body).await;
    let promise = js::call(&js::global(), "fetch", &[request.into()])
        .map_err(|e| network(js::error_text(&e)))?;
    let fetch = JsFuture::from(Promise::resolve(&promise));
    let outcome = with_timeout(fetch, timeout_ms).await;
    match outcome {
        None => {
            if let Some(c) = controller {
                c.abort();
            }
            Err(TransportError {
                kind: FailureKind::Timeout,
                message: format!("no answer within {timeout_ms} ms"),
            })
        }
        Some(Err(e)) => Err(network(js::error_text(&e))),
        Some(Ok(v)) => v
            .dyn_into::<Response>()
            .map_err(|_| network("fetch did not return a Response".into())),
    }
}

/// Races `future` against a timer; `None` when the timer wins.
pub async fn with_timeout<F: std::future::Future>(future: F, ms: u64) -> Option<F::Output> {
    use outbox_driver::join::{Either, race};
    match race(future, js::sleep(ms)).await {
        Either::Left(v) => Some(v),
        Either::Right(()) => None,
    }
}

/// A `Headers` as `(name, value)` pairs, in the browser's order (names in
/// lower case, as `Headers` gives them).
pub fn header_pairs(headers: &web_sys::Headers) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if let Ok(Some(iter)) = js_sys::try_iter(headers) {
        for pair in iter.flatten() {
            let pair = js_sys::Array::from(&pair);
            if let (Some(n), Some(v)) = (pair.get(0).as_string(), pair.get(1).as_string()) {
                pairs.push((n, v));
            }
        }
    }
    pairs
}

/// Reads a `Response` into the engine's form: status, headers, and the body
/// when it is an error (up to 64 KiB). The original is left unread when
/// `clone_first` is set, so it can still be handed to the page.
pub async fn read(response: &Response, clone_first: bool) -> classify::Response {
    let headers = header_pairs(&response.headers());
    let status = response.status();
    let mut body = Vec::new();
    if status >= 300 {
        // `Response::clone` is the JS clone; `Clone::clone` the same object.
        let source = if clone_first {
            response.clone().ok()
        } else {
            Some(Clone::clone(response))
        };
        if let Some(p) = source.and_then(|r| r.array_buffer().ok())
            && let Ok(buf) = JsFuture::from(p).await
        {
            let array = Uint8Array::new(&buf);
            let len = (array.length() as usize).min(ERROR_BODY_LIMIT);
            body = vec![0; len];
            array.subarray(0, len as u32).copy_to(&mut body);
        }
    }
    classify::Response {
        status,
        headers,
        body,
    }
}

/// A transport behind a trait object (the page's Guest WebSocket), so
/// that code the service worker never uses stays out of its bundle.
pub trait DynTransport {
    /// Sends one request; see [`Transport::send`].
    fn send_dyn<'a>(
        &'a self,
        request: OutgoingRequest<'a>,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<classify::Response, TransportError>> + 'a>,
    >;
}

/// The browser's transports: `fetch`, or one supplied by the page.
#[derive(Clone)]
pub enum BrowserTransport {
    /// HTTP with `fetch`.
    Fetch(FetchTransport),
    /// Anything else (the Guest WebSocket).
    Custom(std::rc::Rc<dyn DynTransport>),
}

impl Transport for BrowserTransport {
    async fn send(
        &self,
        request: OutgoingRequest<'_>,
    ) -> Result<classify::Response, TransportError> {
        match self {
            BrowserTransport::Fetch(f) => f.send(request).await,
            BrowserTransport::Custom(c) => c.send_dyn(request).await,
        }
    }
}

/// The engine's transport over `fetch`.
#[derive(Debug, Clone, Copy, Default)]
pub struct FetchTransport;

impl Transport for FetchTransport {
    async fn send(
        &self,
        request: OutgoingRequest<'_>,
    ) -> Result<classify::Response, TransportError> {
        let response = fetch(
            Parts {
                method: request.method,
                url: request.url,
                headers: &request.headers,
                body: request.body,
            },
            request.timeout_ms,
        )
        .await?;
        Ok(read(&response, false).await)
    }
}
