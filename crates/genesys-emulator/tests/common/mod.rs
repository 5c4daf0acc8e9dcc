//! Test helpers: a bare HTTP/1.1 client over loopback (one connection per
//! `Conn`, so tests control keep-alive), and model-shape checks against the
//! copied Platform API models.
#![allow(dead_code, clippy::unwrap_used)]

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

pub mod shapes;
pub mod ws;

pub use genesys_emulator::{Config, Emulator};

/// An answer.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// One kept-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Full<Bytes>>,
    addr: SocketAddr,
}

impl Conn {
    pub async fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Conn { sender, addr }
    }

    /// Sends one request; `Err` is a transport error (connection dropped).
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Resp, hyper::Error> {
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", self.addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let req = b.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// Whether the connection is still usable.
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }
}

/// One request on a fresh connection.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Resp, hyper::Error> {
    Conn::open(addr)
        .await
        .send(method, path, headers, body)
        .await
}

/// Same, unwrapping the transport result.
pub async fn call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Resp {
    send(addr, method, path, headers, body).await.unwrap()
}

pub async fn start() -> Emulator {
    Emulator::start(Config::ephemeral()).await.unwrap()
}

pub async fn start_with(f: impl FnOnce(&mut Config)) -> Emulator {
    let mut c = Config::ephemeral();
    f(&mut c);
    Emulator::start(c).await.unwrap()
}

/// A token by the real OAuth route.
pub async fn oauth_token(emu: &Emulator) -> String {
    let r = call(
        emu.local_addr(),
        "POST",
        "/oauth/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ="), // demo-client:demo-secret
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.json()["access_token"].as_str().unwrap().to_owned()
}

pub const AGENT_PATH: &str = "/api/v2/conversations/messages/conv-1/communications/comm-1/messages";
pub const AGENTLESS_PATH: &str = "/api/v2/conversations/messages/agentless";
pub const OPEN_PATH: &str = "/api/v2/conversations/messages/integ-1/inbound/open/message";
pub const SEED_PATH: &str = "/api/v2/conversations/messaging/messages";

/// POST JSON with a bearer token on a fresh connection.
pub async fn post_json(
    emu: &Emulator,
    token: &str,
    path: &str,
    body: &Value,
) -> Result<Resp, hyper::Error> {
    let auth = format!("Bearer {token}");
    send(
        emu.local_addr(),
        "POST",
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &body.to_string(),
    )
    .await
}

pub fn agent_body(text: &str) -> Value {
    serde_json::json!({ "textBody": text })
}

/// The copied Platform API models.
pub fn models() -> Value {
    serde_json::from_str(include_str!(
        "../../../../testdata/genesys/platform-models.json"
    ))
    .unwrap()
}

/// The copied Guest WebSocket swagger.
pub fn guest_swagger() -> Value {
    serde_json::from_str(include_str!(
        "../../../../testdata/genesys/webmessaging-guest.swagger.json"
    ))
    .unwrap()
}

/// Asserts `v` conforms to the Platform `model` (strictly, see `shapes`)
/// and has the `required` fields this test expects besides the model's own.
pub fn assert_model(v: &Value, model: &str, required: &[&str]) {
    shapes::assert_platform(v, model);
    let models = models();
    let fields = models[model]
        .as_object()
        .unwrap_or_else(|| panic!("no model {model}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("{model}: not an object: {v}"));
    for k in obj.keys() {
        assert!(
            fields.contains_key(k),
            "{model} has no field {k:?} (body {v})"
        );
    }
    for r in required {
        assert!(
            obj.contains_key(*r),
            "{model}: required field {r:?} missing (body {v})"
        );
    }
    for (k, val) in obj {
        if let Some(allowed) = fields[k].get("enum").and_then(Value::as_array) {
            assert!(
                allowed.contains(val),
                "{model}.{k} = {val} is not in its enum"
            );
        }
    }
}

/// Asserts `v` is a Genesys ErrorBody with this status and code.
pub fn assert_error(r: &Resp, status: u16, code: &str) -> Value {
    assert_eq!(
        r.status,
        status,
        "body: {}",
        String::from_utf8_lossy(&r.body)
    );
    let v = r.json();
    assert_model(
        &v,
        "ErrorBody",
        &[
            "message",
            "code",
            "status",
            "messageWithParams",
            "messageParams",
            "contextId",
            "details",
            "errors",
        ],
    );
    assert_eq!(v["code"], code);
    assert_eq!(v["status"], status);
    assert_eq!(
        Some(v["contextId"].as_str().unwrap()),
        r.header("inin-correlation-id")
    );
    for d in v["details"].as_array().unwrap() {
        assert_model(d, "Detail", &["errorCode"]);
    }
    v
}
