//! Guest history: `GET /api/v2/webmessaging/messages?pageSize&pageNumber`
//! with `Authorization: Bearer <guest JWT from getJwt>`.
//!
//! Answers `{entities:[WebMessagingMessage], pageSize, pageNumber, total,
//! pageCount}`, newest message first (as Genesys does). `pageSize` defaults to
//! 25 (1–100), `pageNumber` to 1. Reads are limited per session
//! (`historyRate` per `historyWindow`, default 10 per minute) with the same
//! 429 body and headers as the REST rate limit.

use hyper::Request;
use hyper::body::Incoming;
use serde_json::json;

use super::state::JwtError;
use crate::auth::bearer_token;
use crate::errors::{ApiError, Limit};
use crate::inspect::Outcome;
use crate::ratelimit::Verdict;
use crate::response::{self, Reply};
use crate::state::{Shared, lock};
use crate::urlencoded;

/// Default and largest `pageSize`.
const DEFAULT_PAGE_SIZE: usize = 25;
const MAX_PAGE_SIZE: usize = 100;

fn number(
    query: &[(String, String)],
    name: &str,
    default: usize,
    max: usize,
) -> Result<usize, ApiError> {
    match urlencoded::get(query, name) {
        None => Ok(default),
        Some(s) => s
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_field(
                    name,
                    "invalid.value",
                    format!("{name} must be a whole number from 1 to {max}"),
                )
            }),
    }
}

/// Handles the history route (after the forced-401 fault).
pub(crate) fn handle(shared: &Shared, req: Request<Incoming>, correlation: &str) -> Reply {
    let now = shared.clock.now();
    let authorization = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let Some(jwt) = bearer_token(authorization) else {
        return Reply::error(
            &ApiError::unauthorized("authentication.required"),
            Outcome::Unauthorized,
            correlation,
        );
    };
    let token = match shared.guest.jwt_session(jwt, now) {
        Ok(t) => t,
        Err(JwtError::Unknown) => {
            return Reply::error(
                &ApiError::unauthorized("bad.credentials"),
                Outcome::Unauthorized,
                correlation,
            );
        }
        Err(JwtError::Expired) => {
            return Reply::error(
                &ApiError::unauthorized("credentials.expired"),
                Outcome::Unauthorized,
                correlation,
            );
        }
    };
    let g = &shared.config.guest;
    let (count, allowed, reset) =
        match shared
            .guest
            .history_check(&token, g.history_rate, g.history_window, now)
        {
            Verdict::Allowed {
                count,
                limit,
                reset_secs,
            } => (count, limit, reset_secs),
            Verdict::Limited {
                count,
                limit,
                retry_after_secs,
            } => {
                let err = ApiError::too_many_requests(
                    retry_after_secs,
                    Limit {
                        key: "webmessaging.history.per.minute".to_owned(),
                        namespace: "web.messaging".to_owned(),
                        value: u64::from(limit),
                    },
                );
                let mut r = Reply::error(&err, Outcome::RateLimited, correlation);
                if let Some(resp) = &mut r.response {
                    response::set_rate_headers(resp, count, limit, retry_after_secs);
                }
                return r;
            }
        };
    let query = urlencoded::parse_pairs(req.uri().query().unwrap_or(""));
    let mut r = match (
        number(&query, "pageSize", DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE),
        number(&query, "pageNumber", 1, usize::MAX),
    ) {
        (Err(e), _) | (_, Err(e)) => Reply::error(&e, Outcome::Rejected, correlation),
        (Ok(size), Ok(page)) => match lock(&shared.faults).injected_error() {
            Some(status) => Reply::error(
                &ApiError::server_error(status),
                Outcome::InjectedError,
                correlation,
            ),
            None => {
                let p = shared.guest.history_page(&token, size, page);
                let body = json!({
                    "entities": p.entities,
                    "pageSize": size,
                    "pageNumber": page,
                    "total": p.total,
                    "pageCount": p.total.div_ceil(size),
                });
                Reply::respond(response::json(200, &body), Outcome::Ok)
                    .with_correlation(correlation)
            }
        },
    };
    if let Some(resp) = &mut r.response {
        response::set_rate_headers(resp, count, allowed, reset);
    }
    r
}
