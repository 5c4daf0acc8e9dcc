//! The sending interface: `fetch` in the browser, a simulated server in
//! tests.

use crate::classify::{Response, TransportError};

/// A request on its way out: the stored request plus what is attached at
/// send time (the bearer token), never stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingRequest<'a> {
    /// HTTP method.
    pub method: &'a str,
    /// Absolute URL.
    pub url: &'a str,
    /// Headers, `authorization` included when a token is attached.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: &'a [u8],
    /// Give up after this long (a timeout is a [`TransportError`]).
    pub timeout_ms: u64,
    /// The previous attempt got no answer (network failure, timeout, dead
    /// sender): the server may already have this message. A transport that
    /// can look it up (the guest channel reads the session's history) does
    /// so before sending again.
    pub unknown_outcome: bool,
}

/// Sends requests. Async without `Send` (wasm is single-threaded).
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends one request and returns the answer, or why none came.
    /// Implementations may truncate long bodies (only error details are read).
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError>;
}
