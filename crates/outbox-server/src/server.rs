//! The HTTP side of `outbox serve`: two doors in front of a
//! [`Host`](outbox_native::Host).
//!
//! | route | answer |
//! |---|---|
//! | anything not below | **the pass-through door**: the request goes to the upstream origin (same path and query). On a configured route (the browser's route table) it is forwarded live while the upstream answers — its answer returned as is — and kept and answered `202 {"queued":true,"id","lane","reason"}` when it does not (`507` when the outbox is full, `413` when too large; the caller keeps its request). Not on a route: proxied as is. |
//! | `POST /outbox/v1/messages` | **the API door**: `{"path": "/api/v2/…", "body": {…}, "method"?: "POST", "headers"?: {…}}`, made durable at once: `202 {"queued":true,"id","lane","reason":"write-through","route"}`; `404` no route, `400` not keyable or bad JSON, `507`/`413` refused |
//! | `GET /outbox/v1/messages?limit=N` | queued entries, oldest first (default 100) |
//! | `GET /outbox/v1/messages/{id}` | a queued entry or dead letter; `404` |
//! | `DELETE /outbox/v1/messages/{id}` | cancel: `200 {"cancelled":true}`; `409` being sent; `404` |
//! | `GET /outbox/v1/dead?limit=N` | dead letters |
//! | `POST /outbox/v1/dead/{id}/retry` | revive (its lane's hold lifted): `200` the entry; `404` |
//! | `DELETE /outbox/v1/dead/{id}` | discard: `200 {"discarded":true}`; `404` |
//! | `GET /outbox/v1/stats` | counts, lanes, paused, held, throttled |
//! | `GET /outbox/v1/events` | server-sent events: first `event: ready`, then each of core's events, `event: <type>`, `data: <JSON>` (the browser's form) |
//! | `GET /metrics` | Prometheus text format |
//! | `GET /healthz` | `200 {"ok":true,"queued":N}` while the engine and the store answer; `503` otherwise |
//!
//! Errors of the host's own are JSON `{"error": code, "message": text}`.
//! With an API key set, every route but `/healthz` needs the header
//! `x-outbox-key` (it is not forwarded upstream); `401` without it.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use futures_util::stream::Stream;
use outbox_core::entry::EntryId;
use outbox_core::queue::CancelResult;
use outbox_core::request::IncomingRequest;
use outbox_driver::store::Store;
use outbox_native::tokens::Secret;
use outbox_native::{Answer, Host, HostError};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The header an API key travels in.
pub const KEY_HEADER: &str = "x-outbox-key";

/// The store's own counters for `/metrics`: `(name, help, value)`.
pub type StoreMetrics = Arc<dyn Fn() -> Vec<(&'static str, &'static str, u64)> + Send + Sync>;

/// What the handlers share, over the host's store `S` (SQLite, or
/// PostgreSQL shared by several instances).
pub struct App<S: Store> {
    /// The host.
    pub host: Host<S>,
    /// The store's own counters, for `/metrics`.
    pub store_metrics: StoreMetrics,
    /// The API origin.
    pub upstream: Arc<str>,
    /// The key callers must send, if any.
    pub api_key: Option<Arc<Secret>>,
    /// Set when the server stops: event streams end.
    pub stopping: watch::Receiver<bool>,
}

impl<S: Store> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            host: self.host.clone(),
            store_metrics: self.store_metrics.clone(),
            upstream: self.upstream.clone(),
            api_key: self.api_key.clone(),
            stopping: self.stopping.clone(),
        }
    }
}

/// What a store must be to serve: the host's bound, shareable.
pub trait Served: Store + Send + 'static {}

impl<S: Store + Send + 'static> Served for S {}

/// The routes (see the [module](self)).
pub fn router<S: Served>(app: App<S>, body_limit: usize) -> Router {
    Router::new()
        .route("/healthz", get(healthz::<S>))
        .route("/metrics", get(metrics::<S>))
        .route("/outbox/v1/messages", post(submit::<S>).get(queued::<S>))
        .route(
            "/outbox/v1/messages/{id}",
            get(entry::<S>).delete(cancel::<S>),
        )
        .route("/outbox/v1/dead", get(dead::<S>))
        .route("/outbox/v1/dead/{id}", axum::routing::delete(discard::<S>))
        .route("/outbox/v1/dead/{id}/retry", post(revive::<S>))
        .route("/outbox/v1/stats", get(stats::<S>))
        .route("/outbox/v1/events", get(events::<S>))
        .fallback(pass_through::<S>)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            check_key::<S>,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

fn json_answer(status: u16, body: Value) -> Response {
    answer(Answer::json(status, body.to_string()))
}

fn error(status: u16, code: &str, message: &str) -> Response {
    answer(Answer::error(status, code, message))
}

fn host_error(e: HostError) -> Response {
    match e {
        HostError::Gone => error(503, "shutting-down", &e.to_string()),
        other => error(500, "store-error", &other.to_string()),
    }
}

fn answer(a: Answer) -> Response {
    let mut response = Response::new(Body::from(a.body));
    *response.status_mut() = StatusCode::from_u16(a.status).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = response.headers_mut();
    for (name, value) in a.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(&value),
        ) {
            headers.append(name, value);
        }
    }
    response
}

/// The API key check: constant-time over the key's bytes.
async fn check_key<S: Served>(
    State(app): State<App<S>>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(key) = &app.api_key else {
        return next.run(request).await;
    };
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let given = request
        .headers()
        .get(KEY_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    let want = key.expose().as_bytes();
    let same = given.len() == want.len()
        && given
            .iter()
            .zip(want)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    if same {
        next.run(request).await
    } else {
        error(
            401,
            "api-key",
            "this outbox needs its API key in the x-outbox-key header",
        )
    }
}

async fn healthz<S: Served>(State(app): State<App<S>>) -> Response {
    match app.host.stats().await {
        Ok(stats) => json_answer(200, json!({"ok": true, "queued": stats.queued()})),
        Err(e) => json_answer(503, json!({"ok": false, "message": e.to_string()})),
    }
}

async fn metrics<S: Served>(State(app): State<App<S>>) -> Response {
    let extra = (app.store_metrics)();
    match app.host.metrics_text(&extra).await {
        Ok(text) => ([("content-type", "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => host_error(e),
    }
}

/// The body of `POST /outbox/v1/messages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Submit {
    path: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(default)]
    headers: serde_json::Map<String, Value>,
    body: Value,
}

async fn submit<S: Served>(State(app): State<App<S>>, body: Bytes) -> Response {
    let submit: Submit = match serde_json::from_slice(&body) {
        Ok(s) => s,
        Err(e) => {
            return error(
                400,
                "bad-request",
                &format!(
                    "expected {{\"path\": \"/api/v2/…\", \"body\": {{…}}, \"method\"?, \"headers\"?}}: {e}"
                ),
            );
        }
    };
    if !submit.path.starts_with('/') {
        return error(400, "bad-request", "`path` must start with `/`");
    }
    let mut headers = vec![("content-type".to_owned(), "application/json".to_owned())];
    for (name, value) in submit.headers {
        match value {
            Value::String(v) => headers.push((name.to_ascii_lowercase(), v)),
            _ => {
                return error(
                    400,
                    "bad-request",
                    &format!("header `{name}` must be a string"),
                );
            }
        }
    }
    let request = IncomingRequest {
        method: submit
            .method
            .unwrap_or_else(|| "POST".into())
            .to_ascii_uppercase(),
        url: format!("{}{}", app.upstream, submit.path),
        headers,
        body: submit.body.to_string().into_bytes(),
    };
    match app.host.submit(request).await {
        Ok(a) => answer(a),
        Err(e) => host_error(e),
    }
}

#[derive(Debug, Deserialize)]
struct Limit {
    limit: Option<usize>,
}

fn parse_id(id: &str) -> Result<EntryId, Box<Response>> {
    id.parse::<EntryId>()
        .map_err(|e| Box::new(error(400, "bad-id", &e.to_string())))
}

async fn queued<S: Served>(State(app): State<App<S>>, Query(q): Query<Limit>) -> Response {
    list(&app, false, q.limit).await
}

async fn dead<S: Served>(State(app): State<App<S>>, Query(q): Query<Limit>) -> Response {
    list(&app, true, q.limit).await
}

async fn list<S: Served>(app: &App<S>, dead: bool, limit: Option<usize>) -> Response {
    match app.host.list(dead, limit.unwrap_or(100).min(10_000)).await {
        Ok(entries) => json_answer(200, Value::Array(entries)),
        Err(e) => host_error(e),
    }
}

async fn entry<S: Served>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match app.host.entry(id).await {
        Ok(Some(e)) => json_answer(200, e),
        Ok(None) => error(
            404,
            "not-found",
            "no queued entry or dead letter has this id",
        ),
        Err(e) => host_error(e),
    }
}

async fn cancel<S: Served>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match app.host.cancel(id).await {
        Ok(CancelResult::Cancelled) => json_answer(200, json!({"cancelled": true})),
        Ok(CancelResult::InFlight) => {
            error(409, "in-flight", "it is being sent: too late to cancel")
        }
        Ok(CancelResult::NotFound) => error(404, "not-found", "no queued entry has this id"),
        Err(e) => host_error(e),
    }
}

async fn revive<S: Served>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match app.host.revive(id).await {
        Ok(Some(e)) => json_answer(200, e),
        Ok(None) => error(
            404,
            "not-found",
            "no dead letter has this id (or it is corrupt: discard it)",
        ),
        Err(e) => host_error(e),
    }
}

async fn discard<S: Served>(State(app): State<App<S>>, Path(id): Path<String>) -> Response {
    let id = match parse_id(&id) {
        Ok(id) => id,
        Err(r) => return *r,
    };
    match app.host.discard(id).await {
        Ok(true) => json_answer(200, json!({"discarded": true})),
        Ok(false) => error(404, "not-found", "no dead letter has this id"),
        Err(e) => host_error(e),
    }
}

async fn stats<S: Served>(State(app): State<App<S>>) -> Response {
    match app.host.stats().await {
        Ok(s) => json_answer(200, outbox_native::view::stats(&s)),
        Err(e) => host_error(e),
    }
}

async fn events<S: Served>(
    State(app): State<App<S>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = app.host.events();
    let stopping = app.stopping.clone();
    let stream =
        futures_util::stream::unfold((rx, stopping), |(mut rx, mut stopping)| async move {
            if *stopping.borrow() {
                return None;
            }
            tokio::select! {
                _ = stopping.changed() => None,
                got = rx.recv() => match got {
                    Ok(json) => {
                        let kind = serde_json::from_str::<Value>(&json)
                            .ok()
                            .and_then(|v| v["type"].as_str().map(str::to_owned))
                            .unwrap_or_else(|| "event".into());
                        let event = SseEvent::default().event(kind).data(&*json);
                        Some((Ok(event), (rx, stopping)))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        let event = SseEvent::default()
                            .event("lagged")
                            .data(json!({"type": "lagged", "missed": n}).to_string());
                        Some((Ok(event), (rx, stopping)))
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => None,
                }
            }
        });
    // A first event says the stream is open: what happens from now on is
    // told on it.
    let ready = SseEvent::default()
        .event("ready")
        .data(json!({"type": "ready"}).to_string());
    let stream =
        futures_util::StreamExt::chain(futures_util::stream::once(async { Ok(ready) }), stream);
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// The pass-through door: the request, on the upstream origin.
async fn pass_through<S: Served>(
    State(app): State<App<S>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let headers = headers
        .iter()
        .filter(|(name, _)| name.as_str() != KEY_HEADER)
        .filter(|(name, _)| !outbox_native::http::is_hop_by_hop(name.as_str()))
        .map(|(name, value)| {
            (
                name.as_str().to_owned(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect();
    let request = IncomingRequest {
        method: method.as_str().to_owned(),
        url: format!("{}{}", app.upstream, path),
        headers,
        body: body.to_vec(),
    };
    match app.host.pass_through(request).await {
        Ok(a) => answer(a),
        Err(e) => host_error(e),
    }
}
