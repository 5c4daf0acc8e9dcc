//! The sending interface: `fetch` in the browser, a simulated server in
//! tests.

use outbox_core::classify::{Response, TransportError};
use outbox_core::request::OutgoingRequest;

/// Sends requests. Async without `Send` (wasm is single-threaded).
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// Sends one request and returns the answer, or why none came.
    /// Implementations may truncate long bodies (only error details are read).
    async fn send(&self, request: OutgoingRequest<'_>) -> Result<Response, TransportError>;
}
