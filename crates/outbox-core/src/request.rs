//! A request as Outbox meets it at each end: as the app made it
//! ([`IncomingRequest`]) and as it goes out ([`OutgoingRequest`]). In
//! between it is kept without credentials ([`StoredRequest`]).
//!
//! [`StoredRequest`]: crate::entry::StoredRequest

/// A request as the app made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingRequest {
    /// HTTP method.
    pub method: String,
    /// Absolute URL.
    pub url: String,
    /// All headers, as sent.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

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
    /// Give up after this long (a timeout is a
    /// [`TransportError`](crate::classify::TransportError)).
    pub timeout_ms: u64,
    /// The previous attempt got no answer (network failure, timeout, dead
    /// sender): the server may already have this message. A transport that
    /// can look it up (the guest channel reads the session's history) does
    /// so before sending again.
    pub unknown_outcome: bool,
}
