//! The HTTP server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::{Broker, Upstream};
use crate::files;

/// How to run the demo server.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Address to listen on (port 0 picks one).
    pub addr: SocketAddr,
    /// Where tokens and messages come from.
    pub upstream: Upstream,
    /// The browser bundle (`cargo xtask build` output).
    pub dist: PathBuf,
    /// The `web/` folder (demo page in `web/demo/`, test page in `web/test/`).
    pub web: PathBuf,
    /// The Web Messaging deployment the demo's guest chat uses.
    pub deployment_id: String,
}

impl DemoOptions {
    /// Options with the repository's `dist/` and `web/` folders.
    pub fn new(addr: SocketAddr, upstream: Upstream) -> Self {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        Self {
            addr,
            upstream,
            dist: root.join("dist"),
            web: root.join("web"),
            deployment_id: "demo-deployment".into(),
        }
    }
}

/// A running demo server.
pub struct DemoServer {
    addr: SocketAddr,
    offline: Arc<AtomicBool>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

struct App {
    options: DemoOptions,
    broker: Broker,
    origin: String,
}

impl DemoServer {
    /// Binds and starts serving.
    pub async fn start(options: DemoOptions) -> std::io::Result<DemoServer> {
        let listener = TcpListener::bind(options.addr).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App {
            broker: Broker::new(options.upstream.clone()),
            origin: format!("http://{addr}"),
            options,
        });
        let (stop, mut stopped) = watch::channel(false);
        let offline = Arc::new(AtomicBool::new(false));
        let gate = offline.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        if gate.load(Ordering::SeqCst) {
                            drop(stream);
                            continue;
                        }
                        let app = app.clone();
                        let gate = gate.clone();
                        let mut stop = stopped.clone();
                        tokio::spawn(async move {
                            let service = service_fn(move |req| {
                                let app = app.clone();
                                let offline = gate.load(Ordering::SeqCst);
                                async move {
                                    if offline {
                                        // Cut the connection without an answer.
                                        return Err(Offline);
                                    }
                                    Ok(handle(&app, req).await)
                                }
                            });
                            let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), service);
                            tokio::select! {
                                _ = conn => {}
                                _ = stop.changed() => {}
                            }
                        });
                    }
                }
            }
        });
        Ok(DemoServer {
            addr,
            offline,
            stop,
            task,
        })
    }

    /// Drops every connection while `true`, as if the network were gone
    /// (for the offline cold-start test: the worker cannot refetch anything).
    pub fn set_offline(&self, offline: bool) {
        self.offline.store(offline, Ordering::SeqCst);
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

/// The error that makes hyper drop a connection unanswered.
#[derive(Debug)]
struct Offline;

impl std::fmt::Display for Offline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("offline")
    }
}

impl std::error::Error for Offline {}

fn respond(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        r.headers_mut().insert(CONTENT_TYPE, v);
    }
    r.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn json(status: StatusCode, value: serde_json::Value) -> Response<Full<Bytes>> {
    respond(status, "application/json", value.to_string())
}

async fn handle(app: &App, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    match (req.method(), path.as_str()) {
        (&Method::GET, "/token") => token(app, &req).await,
        (&Method::GET, "/demo-config.json") => {
            let up = app.broker.upstream();
            let host = req
                .headers()
                .get(hyper::header::HOST)
                .and_then(|v| v.to_str().ok());
            let public = |url: &str| reachable_from(url, host);
            let emulator = up.emulator.as_deref().map(public);
            let ws = emulator
                .as_ref()
                .map(|e| format!("{}/v1", e.replacen("http", "ws", 1)))
                .or_else(|| {
                    up.region
                        .as_ref()
                        .map(|d| format!("wss://webmessaging.{d}/v1"))
                });
            json(
                StatusCode::OK,
                serde_json::json!({
                    "apiBase": public(&up.api_base),
                    "emulator": emulator,
                    "region": up.region,
                    "deploymentId": app.options.deployment_id,
                    "guestSocket": ws,
                }),
            )
        }
        (&Method::GET | &Method::HEAD, _) => static_file(app, &path),
        _ => json(
            StatusCode::METHOD_NOT_ALLOWED,
            serde_json::json!({ "error": "method not allowed" }),
        ),
    }
}

/// A URL for the page: an emulator bound to every interface
/// (`http://0.0.0.0:8081`) is reached on the host the page used to reach
/// this server (its `Host` header), with the emulator's port.
fn reachable_from(url: &str, host_header: Option<&str>) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let Some((host, port)) = authority.rsplit_once(':') else {
        return url.to_owned();
    };
    if !matches!(host, "0.0.0.0" | "[::]") {
        return url.to_owned();
    }
    let Some(page_host) = host_header.map(host_name).filter(|h| !h.is_empty()) else {
        return url.to_owned();
    };
    format!("{scheme}://{page_host}:{port}{path}")
}

/// The host name of a `Host` header (`example:8080` → `example`,
/// `[::1]:8080` → `[::1]`).
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').map_or(host, |end| &host[..=end]);
    }
    host.split(':').next().unwrap_or(host)
}

fn static_file(app: &App, path: &str) -> Response<Full<Bytes>> {
    let o = &app.options;
    let found = if path == "/" || path == "/index.html" {
        files::resolve(&o.web.join("demo"), "/index.html")
    } else if let Some(rest) = path.strip_prefix("/test/") {
        files::resolve(&o.web.join("test"), &format!("/{rest}"))
    } else {
        files::resolve(&o.dist, path).or_else(|| files::resolve(&o.web.join("demo"), path))
    };
    let Some(file) = found else {
        let hint = if path.starts_with("/outbox_") || path == "/sw.js" {
            " (run `cargo xtask build`)"
        } else {
            ""
        };
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({ "error": format!("no file at {path}{hint}") }),
        );
    };
    match std::fs::read(&file) {
        Ok(bytes) => respond(StatusCode::OK, files::content_type(&file), bytes),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

/// `GET /token`: same-origin pages only; never the secret.
async fn token(app: &App, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let header = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let same_origin = match (header("sec-fetch-site"), header("origin")) {
        (Some(site), _) => site == "same-origin",
        (None, Some(origin)) => origin == app.origin,
        (None, None) => false,
    };
    if !same_origin {
        return json(
            StatusCode::FORBIDDEN,
            serde_json::json!({ "error": "forbidden", "message": "tokens are handed to same-origin pages only" }),
        );
    }
    let broker = app.broker.clone();
    match tokio::task::spawn_blocking(move || broker.mint()).await {
        Ok(Ok(grant)) => json(
            StatusCode::OK,
            serde_json::json!({ "access_token": grant.access_token, "token_type": "bearer", "expires_in": grant.expires_in }),
        ),
        Ok(Err(e)) => json(
            StatusCode::BAD_GATEWAY,
            serde_json::json!({ "error": "token-upstream", "message": e.to_string() }),
        ),
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": e.to_string() }),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_emulator_on_every_interface_is_reached_on_the_pages_host() {
        let any = "http://0.0.0.0:8081";
        assert_eq!(
            reachable_from(any, Some("192.168.1.5:8080")),
            "http://192.168.1.5:8081"
        );
        assert_eq!(
            reachable_from(any, Some("demo.local")),
            "http://demo.local:8081"
        );
        assert_eq!(
            reachable_from("http://[::]:8081", Some("[::1]:8080")),
            "http://[::1]:8081"
        );
        assert_eq!(reachable_from(any, None), any);
        // Anything else is left alone.
        for url in ["http://127.0.0.1:8081", "https://api.mypurecloud.ie"] {
            assert_eq!(reachable_from(url, Some("192.168.1.5:8080")), url);
        }
    }
}
