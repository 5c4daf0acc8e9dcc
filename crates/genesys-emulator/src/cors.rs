//! CORS, so that a page or service worker on another origin (the demo on
//! `http://127.0.0.1:8080`) can call the emulator.
//!
//! Allowed request headers: `Authorization`, `Content-Type`, `Idempotency-Key`.
//! Exposed response headers: `Retry-After`, `inin-ratelimit-count`,
//! `inin-ratelimit-allowed`, `inin-ratelimit-reset`, `ININ-Correlation-Id`,
//! `Idempotent-Replayed`. No credentials (cookies) are involved.

use hyper::header::{HeaderMap, HeaderValue};

use crate::config::CorsPolicy;

/// Request headers a browser may send.
pub const ALLOWED_HEADERS: &str = "Authorization, Content-Type, Idempotency-Key";
/// Response headers a browser may read.
pub const EXPOSED_HEADERS: &str = "Retry-After, inin-ratelimit-count, inin-ratelimit-allowed, inin-ratelimit-reset, ININ-Correlation-Id, Idempotent-Replayed";
/// Methods allowed cross-origin.
pub const ALLOWED_METHODS: &str = "GET, POST, PUT, DELETE, OPTIONS";

/// The `Access-Control-Allow-Origin` value for `origin`, if allowed.
fn allowed_origin(policy: &CorsPolicy, origin: &str) -> Option<HeaderValue> {
    let ok = match policy {
        CorsPolicy::Any => true,
        CorsPolicy::Origins(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
    };
    if ok {
        HeaderValue::from_str(origin).ok()
    } else {
        None
    }
}

/// Adds CORS headers to an ordinary response, given the request's `Origin`.
pub(crate) fn decorate(policy: &CorsPolicy, origin: Option<&str>, out: &mut HeaderMap) {
    out.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
    if let Some(v) = origin.and_then(|o| allowed_origin(policy, o)) {
        out.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
        out.insert(
            hyper::header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
    }
}

/// Adds the preflight answer's headers (an `OPTIONS` with an allowed `Origin`).
pub(crate) fn preflight(policy: &CorsPolicy, req: &HeaderMap, out: &mut HeaderMap) {
    let origin = req.get(hyper::header::ORIGIN).and_then(|v| v.to_str().ok());
    out.append(hyper::header::VARY, HeaderValue::from_static("Origin"));
    let Some(v) = origin.and_then(|o| allowed_origin(policy, o)) else {
        return;
    };
    out.insert(hyper::header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    out.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOWED_METHODS),
    );
    out.insert(
        hyper::header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static(ALLOWED_HEADERS),
    );
    out.insert(
        hyper::header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("600"),
    );
    // Chromium's Private Network Access preflight.
    if req
        .get("access-control-request-private-network")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"))
    {
        out.insert(
            "access-control-allow-private-network",
            HeaderValue::from_static("true"),
        );
    }
}
