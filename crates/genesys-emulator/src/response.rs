//! Building HTTP answers: JSON bodies, Genesys error bodies, rate-limit headers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use hyper::{Response, StatusCode};
use serde::Serialize;

use crate::errors::ApiError;
use crate::inspect::Outcome;

/// The body type of every answer.
pub(crate) type Body = Full<Bytes>;
/// An answer.
pub(crate) type Resp = Response<Body>;

/// The correlation header Genesys answers with.
pub(crate) const CORRELATION_HEADER: &str = "inin-correlation-id";

/// An answer with raw JSON bytes.
pub(crate) fn json_bytes(status: u16, body: Bytes) -> Resp {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

/// Serializes `v` as JSON.
pub(crate) fn to_bytes(v: &impl Serialize) -> Bytes {
    serde_json::to_vec(v)
        .map(Bytes::from)
        .unwrap_or_else(|_| Bytes::from_static(b"null"))
}

/// An answer with `v` as JSON.
pub(crate) fn json(status: u16, v: &impl Serialize) -> Resp {
    json_bytes(status, to_bytes(v))
}

/// An empty answer.
pub(crate) fn empty(status: u16) -> Resp {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::NO_CONTENT);
    r
}

/// Sets the correlation id header.
pub(crate) fn set_correlation(r: &mut Resp, correlation_id: &str) {
    if let Ok(v) = HeaderValue::from_str(correlation_id) {
        r.headers_mut().insert(CORRELATION_HEADER, v);
    }
}

/// A Genesys `ErrorBody` answer (`contextId` = the correlation id).
pub(crate) fn error(err: &ApiError, correlation_id: &str) -> Resp {
    let mut r = json(err.status, &err.body(correlation_id));
    set_correlation(&mut r, correlation_id);
    if let Some(s) = err.retry_after {
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(s));
    }
    r
}

/// Adds `inin-ratelimit-count/allowed/reset`.
pub(crate) fn set_rate_headers(r: &mut Resp, count: u32, allowed: u32, reset_secs: u64) {
    let h = r.headers_mut();
    h.insert("inin-ratelimit-count", HeaderValue::from(count));
    h.insert("inin-ratelimit-allowed", HeaderValue::from(allowed));
    h.insert("inin-ratelimit-reset", HeaderValue::from(reset_secs));
}

/// What to do with a request, and what to log about it.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The answer; `None` cuts the connection without one.
    pub(crate) response: Option<Resp>,
    /// How it ended.
    pub(crate) outcome: Outcome,
    /// Correlation id answered.
    pub(crate) correlation_id: Option<String>,
    /// OAuth client, when known.
    pub(crate) client_id: Option<String>,
    /// Recorded message, when one was recorded.
    pub(crate) message_seq: Option<u64>,
}

impl Reply {
    /// Answer `response`.
    pub(crate) fn respond(response: Resp, outcome: Outcome) -> Self {
        Self {
            response: Some(response),
            outcome,
            correlation_id: None,
            client_id: None,
            message_seq: None,
        }
    }

    /// Cut the connection without answering.
    pub(crate) fn cut(outcome: Outcome) -> Self {
        Self {
            response: None,
            outcome,
            correlation_id: None,
            client_id: None,
            message_seq: None,
        }
    }

    /// A Genesys error answer.
    pub(crate) fn error(err: &ApiError, outcome: Outcome, correlation_id: &str) -> Self {
        Self {
            response: Some(error(err, correlation_id)),
            outcome,
            correlation_id: Some(correlation_id.to_owned()),
            client_id: None,
            message_seq: None,
        }
    }

    /// Sets the correlation id (logged, and answered as a header).
    pub(crate) fn with_correlation(mut self, id: &str) -> Self {
        if let Some(r) = &mut self.response {
            set_correlation(r, id);
        }
        self.correlation_id = Some(id.to_owned());
        self
    }

    /// Sets the client.
    pub(crate) fn with_client(mut self, client: Option<String>) -> Self {
        self.client_id = client;
        self
    }

    /// The status answered, if any.
    pub(crate) fn status(&self) -> Option<u16> {
        self.response.as_ref().map(|r| r.status().as_u16())
    }
}
