//! Errors: the Genesys `ErrorBody` the REST routes answer with, and the
//! emulator's own start-up errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Why the emulator could not start or run.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A setting cannot work (e.g. no OAuth client, a non-2xx success status).
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The background runtime of [`crate::BlockingEmulator`] could not be made.
    #[error("cannot start the emulator runtime: {0}")]
    Runtime(std::io::Error),
    /// The background thread of [`crate::BlockingEmulator`] ended before answering.
    #[error("the emulator thread ended unexpectedly")]
    ThreadGone,
}

/// One entry of `ErrorBody.details`: which field was wrong and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Detail {
    /// A short machine-readable reason, e.g. `required`, `invalid.value`, `too.long`.
    pub error_code: String,
    /// The JSON path of the field, e.g. `channel.from.idType`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_name: Option<String>,
}

/// `ErrorBody.limit`: which limit was hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Limit {
    /// The limit's key, e.g. `token.rate.per.minute`.
    pub key: String,
    /// The limit's namespace, e.g. `platform.api`.
    pub namespace: String,
    /// The limit's value.
    pub value: u64,
}

/// Genesys Cloud's error body (model `ErrorBody` of the Platform API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Human-readable message.
    pub message: String,
    /// Machine-readable code, e.g. `bad.request`, `too.many.requests.retry.after`.
    pub code: String,
    /// The HTTP status.
    pub status: u16,
    /// The message with `{param}` placeholders.
    pub message_with_params: String,
    /// Values of the placeholders.
    pub message_params: BTreeMap<String, String>,
    /// A fresh UUID per response; also sent as the `ININ-Correlation-Id` header.
    pub context_id: String,
    /// Field-level problems.
    pub details: Vec<Detail>,
    /// Nested errors (always empty here).
    pub errors: Vec<ErrorBody>,
    /// The limit that was hit, for 429s.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub limit: Option<Limit>,
}

/// An error answer of a REST route, before it gets its context id (boxed:
/// it travels in `Result`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiError(Box<ApiErrorData>);

impl std::ops::Deref for ApiError {
    type Target = ApiErrorData;
    fn deref(&self) -> &ApiErrorData {
        &self.0
    }
}

impl std::ops::DerefMut for ApiError {
    fn deref_mut(&mut self) -> &mut ApiErrorData {
        &mut self.0
    }
}

/// The fields of an [`ApiError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ApiErrorData {
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) message: String,
    pub(crate) message_with_params: Option<String>,
    pub(crate) params: BTreeMap<String, String>,
    pub(crate) details: Vec<Detail>,
    pub(crate) limit: Option<Limit>,
    /// `Retry-After` seconds, for 429 and 503.
    pub(crate) retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self(Box::new(ApiErrorData {
            status,
            code,
            message: message.into(),
            message_with_params: None,
            params: BTreeMap::new(),
            details: Vec::new(),
            limit: None,
            retry_after: None,
        }))
    }

    /// 400 `bad.request` naming one field.
    pub(crate) fn bad_field(field: &str, error_code: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new(400, "bad.request", message);
        e.details.push(Detail {
            error_code: error_code.to_owned(),
            field_name: Some(field.to_owned()),
        });
        e
    }

    /// 404 `not.found`.
    pub(crate) fn not_found(what: &str) -> Self {
        Self::new(
            404,
            "not.found",
            format!("The requested resource was not found: {what}"),
        )
    }

    /// 401 with one of `authentication.required`, `bad.credentials`, `credentials.expired`.
    pub(crate) fn unauthorized(code: &'static str) -> Self {
        let message = match code {
            "authentication.required" => {
                "No authentication bearer token specified in authorization header."
            }
            "credentials.expired" => "The supplied bearer token has expired.",
            _ => "Invalid login credentials.",
        };
        Self::new(401, code, message)
    }

    /// 429 `too.many.requests.retry.after`.
    pub(crate) fn too_many_requests(retry_after: u64, limit: Limit) -> Self {
        let mut e = Self::new(
            429,
            "too.many.requests.retry.after",
            format!(
                "Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"
            ),
        );
        e.message_with_params = Some(
            "Rate limit exceeded the maximum. Retry the request in [{retryAfter}] seconds"
                .to_owned(),
        );
        e.params
            .insert("retryAfter".to_owned(), retry_after.to_string());
        e.limit = Some(limit);
        e.retry_after = Some(retry_after);
        e
    }

    /// An injected server error with the code Genesys uses for `status`.
    pub(crate) fn server_error(status: u16) -> Self {
        let (code, message) = match status {
            403 => (
                "not.authorized",
                "You are not authorized to perform the requested action.",
            ),
            404 => ("not.found", "The requested resource was not found."),
            408 => (
                "client.timeout",
                "The client did not produce a request within the server timeout limit.",
            ),
            502 => (
                "bad.gateway",
                "The server received an invalid response from an upstream server.",
            ),
            503 => (
                "service.unavailable",
                "Service is currently unavailable, please try again later.",
            ),
            504 => ("request.timeout", "The request timed out."),
            _ => (
                "internal.server.error",
                "The server encountered an unexpected condition.",
            ),
        };
        let mut e = Self::new(status, code, message);
        if status == 503 {
            e.retry_after = Some(1);
        }
        e
    }

    /// The body, with its context id.
    pub(crate) fn body(&self, context_id: &str) -> ErrorBody {
        ErrorBody {
            message: self.message.clone(),
            code: self.code.to_owned(),
            status: self.status,
            message_with_params: self
                .message_with_params
                .clone()
                .unwrap_or_else(|| self.message.clone()),
            message_params: self.params.clone(),
            context_id: context_id.to_owned(),
            details: self.details.clone(),
            errors: Vec::new(),
            limit: self.limit.clone(),
        }
    }
}
