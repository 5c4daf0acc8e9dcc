//! Guest history (placeholder until the Web Messaging part lands).

use hyper::Request;
use hyper::body::Incoming;

use crate::errors::ApiError;
use crate::inspect::Outcome;
use crate::response::Reply;
use crate::state::Shared;

/// `GET /api/v2/webmessaging/messages`.
pub(crate) fn handle(_shared: &Shared, req: Request<Incoming>, correlation: &str) -> Reply {
    Reply::error(
        &ApiError::not_found(req.uri().path()),
        Outcome::NotFound,
        correlation,
    )
}
