//! What a server's answer (or its absence) means for an entry: the replay
//! table of the design, and tolerant reading of Genesys `ErrorBody`s.

use alloc::{borrow::ToOwned, string::String, vec::Vec};
use core::fmt;

use crate::clock::Millis;
use crate::json;
use crate::retry_after::{RateLimitInfo, RetryAfter, parse_retry_after};

/// What went wrong on the last attempt.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LastError {
    /// HTTP status, when the server answered.
    pub status: Option<u16>,
    /// Genesys `ErrorBody.code` (e.g. `too.many.requests.retry.after`), or
    /// an Outbox code for failures without an answer (`network`, `timeout`,
    /// `max-attempts`, `max-age`, `auth-failed`).
    pub code: Option<String>,
    /// Human-readable text.
    pub message: String,
    /// Genesys `contextId`, for support requests.
    pub context_id: Option<String>,
}

impl LastError {
    /// An error with only a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: None,
            code: Some(code.to_owned()),
            message: message.into(),
            context_id: None,
        }
    }
}

impl LastError {
    /// The error as one line: `HTTP 503 [code] message (contextId …)`, as
    /// [`Display`](fmt::Display) writes it, built without `core::fmt` (it
    /// is written for every message that fails).
    pub fn text(&self) -> String {
        let mut out = String::new();
        if let Some(status) = self.status {
            out.push_str("HTTP ");
            crate::json::push_u64(&mut out, u64::from(status));
            out.push(' ');
        }
        if let Some(code) = &self.code {
            out.push('[');
            out.push_str(code);
            out.push_str("] ");
        }
        out.push_str(&self.message);
        if let Some(ctx) = &self.context_id {
            out.push_str(" (contextId ");
            out.push_str(ctx);
            out.push(')');
        }
        out
    }
}

impl fmt::Display for LastError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

/// An HTTP answer, as a transport returns it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers (names in any case).
    pub headers: Vec<(String, String)>,
    /// The body (a transport may truncate it; only error details are read).
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The `inin-ratelimit-*` headers.
    pub fn rate_limit(&self) -> RateLimitInfo {
        RateLimitInfo::from_headers(self.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))
    }
}

/// Why no answer came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The connection failed or was cut (offline, DNS, reset, CORS refusal).
    Network,
    /// No answer within the send timeout.
    Timeout,
}

/// A send that produced no HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError {
    /// What kind of failure.
    pub kind: FailureKind,
    /// Detail from the platform.
    pub message: String,
}

impl TransportError {
    /// `network error: …` or `timeout: …`, without `core::fmt`.
    pub fn text(&self) -> String {
        let mut out = String::from(match self.kind {
            FailureKind::Network => "network error: ",
            FailureKind::Timeout => "timeout: ",
        });
        out.push_str(&self.message);
        out
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text())
    }
}

impl core::error::Error for TransportError {}

/// Settings the classifier needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassifyConfig {
    /// Wait used when a 429 has no readable `Retry-After`.
    pub retry_after_fallback_ms: u64,
    /// The longest `Retry-After` honoured; longer ones are capped and reported.
    pub retry_after_cap_ms: u64,
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            retry_after_fallback_ms: 10_000,
            retry_after_cap_ms: 6 * 3_600_000,
        }
    }
}

/// What an attempt's result means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `2xx`: delivered.
    Delivered {
        /// The status.
        status: u16,
    },
    /// `409` on a route whose carrier makes it mean "already have it".
    AlreadyDelivered {
        /// The status.
        status: u16,
    },
    /// `429`: wait `max(Retry-After, backoff)` and pause the origin.
    RateLimited {
        /// The parsed `Retry-After`, if the header was there.
        retry_after: Option<RetryAfter>,
        /// Details.
        error: LastError,
    },
    /// `401`: a fresh token is needed.
    Unauthorized {
        /// Details.
        error: LastError,
    },
    /// Worth retrying with backoff: `408`, most `5xx`, network failure, timeout.
    Retryable {
        /// Details.
        error: LastError,
        /// True for answers from the server (`408`, `5xx`), which count
        /// toward `max_attempts`; false when no answer came.
        server_failure: bool,
        /// A `503`'s `Retry-After` (RFC 9110 §10.2.3): the server says how
        /// long it will be unavailable; nothing goes to it before then.
        retry_after: Option<RetryAfter>,
    },
    /// Retrying cannot help: dead letter (`403`, `404`, `413`, other `4xx`, …).
    Permanent {
        /// Details.
        error: LastError,
    },
}

impl Outcome {
    /// How long the server asked to be left alone: a `429`'s `Retry-After`
    /// (or `fallback_ms` when it sent none), a `503`'s `Retry-After`.
    /// `None` for every other outcome.
    pub fn pause_ms(&self, fallback_ms: u64) -> Option<u64> {
        match self {
            Outcome::RateLimited { retry_after, .. } => {
                Some(retry_after.as_ref().map_or(fallback_ms, |r| r.delay_ms))
            }
            Outcome::Retryable {
                retry_after: Some(ra),
                ..
            } => Some(ra.delay_ms),
            _ => None,
        }
    }

    /// Whether this outcome means the server has the message.
    pub fn is_delivered(&self) -> bool {
        matches!(
            self,
            Outcome::Delivered { .. } | Outcome::AlreadyDelivered { .. }
        )
    }

    /// The error, for outcomes that are not deliveries.
    pub fn error(&self) -> Option<&LastError> {
        match self {
            Outcome::Delivered { .. } | Outcome::AlreadyDelivered { .. } => None,
            Outcome::RateLimited { error, .. }
            | Outcome::Unauthorized { error }
            | Outcome::Retryable { error, .. }
            | Outcome::Permanent { error } => Some(error),
        }
    }
}

/// `5xx` codes that mean "this server will never do it", not "try later".
const PERMANENT_5XX: &[u16] = &[501, 505, 506, 508, 510];

/// Classifies one attempt. `conflict_is_delivered` comes from the route.
pub fn classify(
    result: &Result<Response, TransportError>,
    conflict_is_delivered: bool,
    now: Millis,
    config: &ClassifyConfig,
) -> Outcome {
    let response = match result {
        Ok(r) => r,
        Err(e) => {
            let code = match e.kind {
                FailureKind::Network => "network",
                FailureKind::Timeout => "timeout",
            };
            return Outcome::Retryable {
                error: LastError::new(code, e.text()),
                server_failure: false,
                retry_after: None,
            };
        }
    };
    let status = response.status;
    match status {
        200..=299 => Outcome::Delivered { status },
        409 if conflict_is_delivered => Outcome::AlreadyDelivered { status },
        429 => {
            let retry_after = response.header("retry-after").map(|v| {
                parse_retry_after(
                    v,
                    now,
                    config.retry_after_fallback_ms,
                    config.retry_after_cap_ms,
                )
            });
            let mut error = error_from_body(status, &response.body);
            if let Some(note) = retry_after.as_ref().and_then(|r| r.note.as_ref()) {
                error.message.push_str(" (");
                error.message.push_str(&note.text());
                error.message.push(')');
            }
            Outcome::RateLimited { retry_after, error }
        }
        401 => Outcome::Unauthorized {
            error: error_from_body(status, &response.body),
        },
        408 | 425 => Outcome::Retryable {
            error: error_from_body(status, &response.body),
            server_failure: true,
            retry_after: None,
        },
        500..=599 if !PERMANENT_5XX.contains(&status) => Outcome::Retryable {
            error: error_from_body(status, &response.body),
            server_failure: true,
            retry_after: (status == 503)
                .then(|| response.header("retry-after"))
                .flatten()
                .map(|v| {
                    parse_retry_after(
                        v,
                        now,
                        config.retry_after_fallback_ms,
                        config.retry_after_cap_ms,
                    )
                }),
        },
        _ => Outcome::Permanent {
            error: error_from_body(status, &response.body),
        },
    }
}

/// How much of an error body is read.
pub const ERROR_BODY_SCAN_LIMIT: usize = 64 * 1024;
/// Longest message kept from a non-JSON error body.
pub const ERROR_TEXT_LIMIT: usize = 300;

/// Reads a Genesys `ErrorBody` (`code`, `message`, `contextId`)
/// tolerantly: JSON or not, truncated or huge, the result is always a
/// usable error.
pub fn error_from_body(status: u16, body: &[u8]) -> LastError {
    let body = &body[..body.len().min(ERROR_BODY_SCAN_LIMIT)];
    let text_field = |name: &str| {
        json::find(body, &[name])
            .and_then(|v| v.as_str().map(|s| clip(&s, ERROR_TEXT_LIMIT)))
            .filter(|s| !s.is_empty())
    };
    let code = text_field("code").or_else(|| text_field("error"));
    let message = text_field("message")
        .or_else(|| text_field("error_description"))
        .or_else(|| text_field("errorMessage"));
    let context_id = text_field("contextId");
    let message = message.unwrap_or_else(|| {
        let looks_json = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{');
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if text.is_empty() || looks_json {
            reason_phrase(status).to_owned()
        } else {
            clip(text, ERROR_TEXT_LIMIT)
        }
    });
    LastError {
        status: Some(status),
        code,
        message,
        context_id,
    }
}

fn clip(s: &str, max_chars: usize) -> String {
    let mut out: String = s.chars().take(max_chars).collect();
    if s.chars().nth(max_chars).is_some() {
        out.push('…');
    }
    out
}

/// A short reason phrase for common statuses.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "HTTP error",
    }
}
