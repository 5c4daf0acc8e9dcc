//! A request as Outbox meets it at each end: as the app made it
//! ([`IncomingRequest`]) and as it goes out ([`OutgoingRequest`]). In
//! between it is kept without credentials ([`StoredRequest`]).
//!
//! [`StoredRequest`]: crate::entry::StoredRequest

use crate::clock::Millis;
use crate::entry::{Entry, Prepared, StoredRequest};
use crate::headers;
use alloc::{string::String, vec::Vec};

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
    /// The last moment (wall clock, Unix ms: the clock the lease was
    /// written with) at which any of this request may leave the process,
    /// or `None` when nothing bounds it but `timeout_ms`. Core sets it for
    /// a send under a lease that other processes may take over (a fenced
    /// flush: [`crate::flush::Flush::fenced`]) to the lease's end less
    /// [`LEASE_MARGIN_MS`](crate::queue::LEASE_MARGIN_MS). A transport
    /// that can enforce it starts nothing at or after it and cuts a request
    /// still under way when it passes, answering a
    /// [`TransportError`](crate::classify::TransportError) (no answer).
    pub leave_by: Option<Millis>,
}

impl<'a> OutgoingRequest<'a> {
    /// A leased entry as a flush sends it: its stored request, plus
    /// `Authorization` with `token` (the one in hand for its origin) when
    /// it needs one.
    pub fn of(entry: &'a Entry, token: Option<&str>, timeout_ms: u64) -> Self {
        let mut headers = entry.request.headers.clone();
        if let Some(token) = token.filter(|_| entry.needs_token) {
            headers.push(headers::authorization(token));
        }
        Self::to(
            &entry.request,
            headers,
            timeout_ms,
            entry.last_attempt_unanswered(),
        )
    }

    /// The live first attempt of an intercepted request: the app's own
    /// headers (its token included) where the prepared request has none of
    /// that name, the prepared ones (the carriers), and, when the route
    /// needs a token and the app sent none, `Authorization` with `token`
    /// (the one in hand for its origin).
    pub fn live(
        incoming: &IncomingRequest,
        prepared: &'a Prepared,
        token: Option<&str>,
        timeout_ms: u64,
    ) -> Self {
        let mut headers: Vec<(String, String)> = incoming
            .headers
            .iter()
            .filter(|(name, _)| prepared.request.header(name).is_none())
            .cloned()
            .collect();
        headers.extend(prepared.request.headers.iter().cloned());
        let has_auth = headers
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
        if let Some(token) = token.filter(|_| prepared.needs_token && !has_auth) {
            headers.push(headers::authorization(token));
        }
        Self::to(&prepared.request, headers, timeout_ms, false)
    }

    /// `request` sent with `headers`.
    fn to(
        request: &'a StoredRequest,
        headers: Vec<(String, String)>,
        timeout_ms: u64,
        unknown_outcome: bool,
    ) -> Self {
        Self {
            method: &request.method,
            url: &request.url,
            headers,
            body: &request.body,
            timeout_ms,
            unknown_outcome,
            leave_by: None,
        }
    }

    /// The same request, bounded by `leave_by` (see
    /// [`leave_by`](Self::leave_by)).
    pub fn leaving_by(mut self, leave_by: Option<Millis>) -> Self {
        self.leave_by = leave_by;
        self
    }
}
