//! Listening, connections, and sending each request to its handler.
//!
//! Each TCP connection runs in its own task, so the emulator can cut one
//! without answering (outage, lost acknowledgement): the handler asks for the
//! cut, and the task drops the connection, closing the socket. A browser then
//! sees a network error and `fetch` rejects.
//!
//! Lost acknowledgements and keep-alive: Chromium silently resends a request
//! whose *reused* connection closed before any response header. So while
//! `lostAckRate > 0` every answer (control ones included) carries
//! `Connection: close`, and idle kept-alive connections are closed when the
//! fault is switched on: each request then arrives on a fresh connection, and
//! a lost acknowledgement reaches the page as one network error.
//!
//! Outage applies to `/api/…`, `/oauth/…` and `/v1` — on new connections and on
//! kept-alive ones alike, since every such request is checked when it arrives
//! (and again after any injected latency). Control endpoints under
//! `/__emulator/` on the same port keep answering.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

use crate::auth;
use crate::clock::iso8601;
use crate::control::{self, CONTROL_PREFIX};
use crate::cors;
use crate::errors::ApiError;
use crate::ids::new_uuid;
use crate::inspect::{Outcome, RequestLogEntry};
use crate::response::{self, Reply, Resp};
use crate::state::{Shared, lock};
use crate::sync::until_true;

/// What part of the emulator a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Control,
    Api,
    OAuth,
    Guest,
    /// The Web Messaging deployment configuration (Genesys serves it from its CDN).
    Deployment,
    Other,
}

fn area(path: &str) -> Area {
    if path.starts_with(CONTROL_PREFIX) || path == CONTROL_PREFIX.trim_end_matches('/') {
        Area::Control
    } else if path == "/api" || path.starts_with("/api/") {
        Area::Api
    } else if path == "/oauth" || path.starts_with("/oauth/") {
        Area::OAuth
    } else if path == "/v1" || path.starts_with("/v1/") {
        Area::Guest
    } else if path.starts_with(crate::guest::DEPLOYMENT_PREFIX) {
        Area::Deployment
    } else {
        Area::Other
    }
}

/// Resolves when the watched flag changes to true after subscription.
async fn becomes_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if rx.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        if *rx.borrow_and_update() {
            return;
        }
    }
}

/// Per-connection controls.
#[derive(Debug, Default)]
struct ConnCtl {
    /// Notified to drop the connection without an answer.
    cut: Notify,
}

/// Accepts connections until shutdown, then closes them gracefully (1 s at most).
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>) {
    let mut shutdown = shared.shutdown.subscribe();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let _ = stream.set_nodelay(true);
                    conns.spawn(connection(stream, shared.clone()));
                }
                // Out of file descriptors and the like: wait and carry on.
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            () = until_true(&mut shutdown) => break,
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    conns.shutdown().await;
}

async fn connection(stream: TcpStream, shared: Arc<Shared>) {
    let ctl = Arc::new(ConnCtl::default());
    let mut shutdown: watch::Receiver<bool> = shared.shutdown.subscribe();
    let mut no_keepalive = shared.no_keepalive.subscribe();
    let svc = {
        let ctl = ctl.clone();
        let shared = shared.clone();
        service_fn(move |req| {
            let ctl = ctl.clone();
            let shared = shared.clone();
            async move { Ok::<_, Infallible>(dispatch(shared, ctl, req).await) }
        })
    };
    let conn = http1::Builder::new()
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ctl.cut.notified() => {}
        () = until_true(&mut shutdown) => finish(conn, &ctl).await,
        () = becomes_true(&mut no_keepalive) => finish(conn, &ctl).await,
    }
}

/// Ends a connection gracefully: the request in flight (if any) is answered,
/// an idle connection closes at once.
async fn finish<C>(mut conn: std::pin::Pin<&mut C>, ctl: &ConnCtl)
where
    C: std::future::Future + GracefulShutdown,
{
    conn.as_mut().graceful_shutdown_now();
    tokio::select! {
        _ = conn.as_mut() => {}
        () = ctl.cut.notified() => {}
    }
}

/// Graceful shutdown of a served connection.
trait GracefulShutdown {
    fn graceful_shutdown_now(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulShutdown for http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown_now(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

/// Answers one request, or cuts the connection.
async fn dispatch(shared: Arc<Shared>, ctl: Arc<ConnCtl>, req: Request<Incoming>) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let origin = req
        .headers()
        .get(hyper::header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let area = area(&path);
    if area == Area::Control {
        let mut resp = if method == Method::OPTIONS {
            let mut r = response::empty(204);
            cors::preflight(&shared.config.cors, req.headers(), r.headers_mut());
            r
        } else {
            control::handle(&shared, req).await
        };
        cors::decorate(&shared.config.cors, origin.as_deref(), resp.headers_mut());
        close_if_needed(&shared, &mut resp);
        return resp;
    }
    let reply = answer(&shared, area, req).await;
    let time = iso8601(shared.clock.system_now());
    lock(&shared.recorder).log(RequestLogEntry {
        seq: 0,
        time,
        method: method.to_string(),
        path,
        status: reply.status(),
        outcome: reply.outcome,
        correlation_id: reply.correlation_id.clone(),
        client_id: reply.client_id.clone(),
        message_seq: reply.message_seq,
    });
    match reply.response {
        Some(mut resp) => {
            if method != Method::OPTIONS {
                cors::decorate(&shared.config.cors, origin.as_deref(), resp.headers_mut());
            }
            if resp.status() != hyper::StatusCode::SWITCHING_PROTOCOLS {
                close_if_needed(&shared, &mut resp);
            }
            resp
        }
        None => {
            ctl.cut.notify_one();
            std::future::pending::<Resp>().await
        }
    }
}

/// Adds `Connection: close` while lost acknowledgements are on.
fn close_if_needed(shared: &Shared, resp: &mut Resp) {
    if shared.keepalive_off() {
        resp.headers_mut()
            .insert(hyper::header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// The faulted part: outage, preflight, latency, then the area's handler.
async fn answer(shared: &Arc<Shared>, area: Area, req: Request<Incoming>) -> Reply {
    let faulted = matches!(
        area,
        Area::Api | Area::OAuth | Area::Guest | Area::Deployment
    );
    if faulted && shared.in_outage() {
        return Reply::cut(Outcome::OutageDropped);
    }
    if req.method() == Method::OPTIONS {
        let mut r = response::empty(204);
        cors::preflight(&shared.config.cors, req.headers(), r.headers_mut());
        return Reply::respond(r, Outcome::Preflight);
    }
    if faulted {
        let delay = lock(&shared.faults).latency();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
            if shared.in_outage() {
                return Reply::cut(Outcome::OutageDropped);
            }
        }
    }
    match area {
        Area::Api => crate::api::handle(shared, req).await,
        Area::OAuth => oauth(shared, req).await,
        Area::Guest => crate::guest::http::handle_v1(shared, req).await,
        Area::Deployment => crate::guest::http::deployment_config(shared, &req),
        Area::Control | Area::Other => {
            let correlation = new_uuid();
            Reply::error(
                &ApiError::not_found(req.uri().path()),
                Outcome::NotFound,
                &correlation,
            )
        }
    }
}

/// `POST /oauth/token`.
async fn oauth(shared: &Shared, req: Request<Incoming>) -> Reply {
    use http_body_util::{BodyExt as _, Limited};
    let correlation = new_uuid();
    if req.uri().path().trim_end_matches('/') != "/oauth/token" || req.method() != Method::POST {
        return Reply::error(
            &ApiError::not_found(req.uri().path()),
            Outcome::NotFound,
            &correlation,
        );
    }
    let authorization = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let content_type = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            let e = ApiError::new(
                413,
                "request.entity.too.large",
                "The token request is too large",
            );
            return Reply::error(&e, Outcome::TokenRefused, &correlation);
        }
    };
    match auth::authenticate_client(
        &shared.config.clients,
        authorization.as_deref(),
        content_type.as_deref(),
        &body,
    ) {
        Ok(client) => {
            let grant =
                lock(&shared.tokens).issue(&client, shared.config.token_ttl, shared.clock.now());
            let mut r = response::json(200, &grant);
            r.headers_mut().insert(
                hyper::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
            Reply::respond(r, Outcome::TokenIssued)
                .with_client(Some(client))
                .with_correlation(&correlation)
        }
        Err(e) => Reply::respond(response::json(400, &e), Outcome::TokenRefused)
            .with_correlation(&correlation),
    }
}
