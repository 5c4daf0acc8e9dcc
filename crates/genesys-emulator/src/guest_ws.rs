//! Guest WebSocket (placeholder until the Web Messaging part lands).

use hyper::Request;
use hyper::body::Incoming;
use serde::{Deserialize, Serialize};

use crate::errors::ApiError;
use crate::ids::new_uuid;
use crate::inspect::Outcome;
use crate::response::Reply;
use crate::state::Shared;

/// One guest session as shown by `GET /__emulator/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionReport {
    /// The guest's session token.
    pub token: String,
}

/// Guest sessions.
#[derive(Debug, Default)]
pub(crate) struct GuestState {}

impl GuestState {
    pub(crate) fn report(&self, _shared: &Shared) -> Vec<SessionReport> {
        Vec::new()
    }
    pub(crate) fn clear(&self) {}
    pub(crate) fn drop_sockets(&self, _token: Option<&str>) -> usize {
        0
    }
    pub(crate) fn expire(&self, _shared: &Shared, _token: &str) -> bool {
        false
    }
}

/// `GET /v1`.
pub(crate) fn upgrade(_shared: &Shared, req: Request<Incoming>) -> Reply {
    let c = new_uuid();
    Reply::error(
        &ApiError::not_found(req.uri().path()),
        Outcome::NotFound,
        &c,
    )
}
