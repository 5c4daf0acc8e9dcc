//! The HTTP transport: [`reqwest`] with `rustls` (no OpenSSL), one
//! connection pool for the host.
//!
//! It only sends and reports: an answer of any status is a
//! [`Response`]; no answer (refused, reset, cut, DNS) is a
//! [`TransportError`] of kind `Network`, and none within the request's
//! `timeout_ms` one of kind `Timeout`. What either means is core's
//! ([`outbox_core::classify`]).
//!
//! A request with a deadline ([`OutgoingRequest::leave_by`]: a send under
//! a lease another instance may take over) is guarded ([`crate::lease`]):
//! it does not start at or after the deadline, is dropped on the first
//! poll past it, and its body gives the client no chunk past it; each is
//! reported as no answer (`Timeout`).

use std::time::Duration;

use bytes::Bytes;
use outbox_core::classify::{FailureKind, Response, TransportError};
use outbox_core::clock::Millis;
use outbox_core::request::OutgoingRequest;
use outbox_driver::transport::Transport;

use crate::lease::{self, GuardedBody, LeaseGuard};

/// Headers that belong to one hop and are never forwarded (RFC 9110 §7.6.1),
/// plus those the client sets itself.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
];

/// Whether `name` is a header that is never forwarded.
pub fn is_hop_by_hop(name: &str) -> bool {
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

/// Why the HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
#[error("cannot build the HTTP client: {0}")]
pub struct ClientError(#[from] reqwest::Error);

/// Sends requests over HTTP(S). Clones share the connection pool.
#[derive(Debug, Clone)]
pub struct HttpTransport {
    client: reqwest::Client,
    max_body: usize,
}

impl HttpTransport {
    /// The largest answer body kept whole (a larger one is cut: only a
    /// pass-through hands bodies on, and Genesys answers are small).
    pub const MAX_BODY: usize = 16 * 1024 * 1024;

    /// A transport with its own pool.
    pub fn new() -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .user_agent(concat!("outbox/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(Self {
            client,
            max_body: Self::MAX_BODY,
        })
    }

    /// The client (the token source shares its pool).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }
}

fn failure(e: &reqwest::Error) -> TransportError {
    let kind = if e.is_timeout() {
        FailureKind::Timeout
    } else {
        FailureKind::Network
    };
    // The full chain: reqwest's own message is only the outer layer.
    let mut message = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        message.push_str(": ");
        message.push_str(&s.to_string());
        source = s.source();
    }
    TransportError { kind, message }
}

impl Transport for HttpTransport {
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError> {
        match request.leave_by {
            None => self.exchange(request, None).await,
            Some(leave_by) => {
                lease::check_start(leave_by)?;
                LeaseGuard::new(self.exchange(request, Some(leave_by)), leave_by).await
            }
        }
    }
}

impl HttpTransport {
    /// Sends `request` and reads its answer; with `leave_by`, its body is
    /// a [`GuardedBody`].
    async fn exchange(
        &self,
        request: OutgoingRequest<'_>,
        leave_by: Option<Millis>,
    ) -> Result<Response, TransportError> {
        let method =
            reqwest::Method::from_bytes(request.method.as_bytes()).map_err(|e| TransportError {
                kind: FailureKind::Network,
                message: format!("method `{}`: {e}", request.method),
            })?;
        let mut builder = self
            .client
            .request(method, request.url)
            .timeout(Duration::from_millis(request.timeout_ms.max(1)));
        let body = Bytes::copy_from_slice(request.body);
        builder = match leave_by {
            Some(leave_by) => builder.body(reqwest::Body::wrap(GuardedBody::new(body, leave_by))),
            None => builder.body(body),
        };
        for (name, value) in &request.headers {
            if !is_hop_by_hop(name) {
                builder = builder.header(name.as_str(), value.as_str());
            }
        }
        let mut answer = builder.send().await.map_err(|e| failure(&e))?;
        let status = answer.status().as_u16();
        let headers = answer
            .headers()
            .iter()
            .filter(|(name, _)| !is_hop_by_hop(name.as_str()))
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let mut body = Vec::new();
        while let Some(chunk) = answer.chunk().await.map_err(|e| failure(&e))? {
            let room = self.max_body.saturating_sub(body.len());
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if room < chunk.len() {
                break;
            }
        }
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}
