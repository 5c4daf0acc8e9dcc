//! Listening, connections, and sending each request to its handler.
//!
//! Each TCP connection runs in its own task, so the emulator can cut one
//! without answering (outage, lost acknowledgement): the handler asks for the
//! cut, and the task drops the connection, closing the socket. A browser then
//! sees a network error and `fetch` rejects.
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

/// What part of the emulator a path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Area {
    Control,
    Api,
    OAuth,
    Guest,
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
    } else {
        Area::Other
    }
}

/// Resolves once the watched flag is (or becomes) true, or its sender is gone.
pub(crate) async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
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
        () = until_true(&mut shutdown) => {
            conn.as_mut().graceful_shutdown();
            tokio::select! {
                _ = conn.as_mut() => {}
                () = ctl.cut.notified() => {}
            }
        }
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
            resp
        }
        None => {
            ctl.cut.notify_one();
            std::future::pending::<Resp>().await
        }
    }
}

/// The faulted part: outage, preflight, latency, then the area's handler.
async fn answer(shared: &Arc<Shared>, area: Area, req: Request<Incoming>) -> Reply {
    let faulted = matches!(area, Area::Api | Area::OAuth | Area::Guest);
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
        Area::Guest => crate::guest_ws::upgrade(shared, req),
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
