//! The store's typed errors: what the host reports of IndexedDB, and a
//! stored value that does not decode.

use alloc::string::String;

/// Why a transaction of the IndexedDB store failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The browser refused or failed an operation (a `DOMException`, as the
    /// host reports it).
    Dom {
        /// What the store was doing (`enqueue`, `claim`, …).
        operation: &'static str,
        /// The exception's name (`QuotaExceededError`, `AbortError`, …).
        name: String,
        /// The exception's message.
        message: String,
    },
    /// A stored value does not have the shape this code writes.
    Corrupt(CodecError),
}

impl core::fmt::Display for StoreError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl core::error::Error for StoreError {}

impl From<CodecError> for StoreError {
    fn from(e: CodecError) -> Self {
        StoreError::Corrupt(e)
    }
}

/// Firefox's message when it refuses to write to a database
/// (`NS_ERROR_DOM_INDEXEDDB_NOT_ALLOWED_ERR`).
const FIREFOX_NOT_ALLOWED: &str = "did not allow mutations";

impl StoreError {
    /// The message (the same text as `Display`, built without
    /// `core::fmt`).
    pub fn text(&self) -> String {
        match self {
            StoreError::Dom {
                operation,
                name,
                message,
            } => [
                "IndexedDB ",
                operation,
                " failed: ",
                name.as_str(),
                ": ",
                message.as_str(),
            ]
            .concat(),
            StoreError::Corrupt(e) => ["IndexedDB holds a malformed value: ", &e.text()].concat(),
        }
    }

    /// The message of a quota failure ([`is_quota_exceeded`](Self::is_quota_exceeded)):
    /// the store's answer to an enqueue it had no room for (the caller
    /// keeps its request, told `QuotaExceeded`); `None` for any other
    /// failure.
    pub fn quota_message(&self) -> Option<String> {
        match self {
            StoreError::Dom { message, .. } if self.is_quota_exceeded() => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether the host should replace its database connection after this
    /// failure (close it; the next transaction reopens). Firefox keeps a
    /// connection that met its quota refusing every later write
    /// (`InvalidStateError` "…did not allow mutations") even once space is
    /// freed, while a new connection writes again; any failure of the
    /// browser's may leave the connection so, and reopening after one is
    /// cheap. A `ConstraintError` is the store's own answer (a key taken)
    /// and a malformed value is the data's fault: the connection is fine.
    pub fn replaces_connection(&self) -> bool {
        match self {
            StoreError::Dom { name, .. } => name != "ConstraintError",
            StoreError::Corrupt(_) => false,
        }
    }

    /// Whether the browser's storage quota is exhausted. A quota failure
    /// may come from a request or, at commit, as the transaction's abort
    /// (the host reports the first failing request's error where an engine
    /// reports only `AbortError` or nothing). Firefox, once a site is over
    /// its quota, refuses further writes outright with an
    /// `InvalidStateError` "…database that did not allow mutations" (the
    /// same refusal it gives where storage is disabled): the browser will
    /// not store, which is the same answer for the caller.
    pub fn is_quota_exceeded(&self) -> bool {
        match self {
            StoreError::Dom { name, message, .. } => {
                name == "QuotaExceededError"
                    || (name == "InvalidStateError" && message.contains(FIREFOX_NOT_ALLOWED))
            }
            StoreError::Corrupt(_) => false,
        }
    }
}

/// A stored value that does not decode: which record, which field, what is
/// wrong with it. Decoding never panics on odd data; it returns this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CodecError {
    /// The kind of record (`entry`, `body`, `meta`).
    pub record: &'static str,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl core::fmt::Display for CodecError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl core::error::Error for CodecError {}

impl CodecError {
    /// The message (the same text as `Display`, built without
    /// `core::fmt`).
    pub fn text(&self) -> String {
        [self.record, ": field `", self.field, "` ", self.problem].concat()
    }

    /// A new error.
    pub fn new(record: &'static str, field: &'static str, problem: &'static str) -> Self {
        Self {
            record,
            field,
            problem,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::string::ToString;

    fn dom(name: &str, message: &str) -> StoreError {
        StoreError::Dom {
            operation: "enqueue",
            name: name.into(),
            message: message.into(),
        }
    }

    #[test]
    fn a_browser_failure_replaces_the_connection_and_a_rule_or_value_does_not() {
        assert!(dom("QuotaExceededError", "full").replaces_connection());
        assert!(
            dom(
                "InvalidStateError",
                "A mutation operation was attempted on a database that did not allow mutations."
            )
            .replaces_connection()
        );
        assert!(dom("UnknownError", "").replaces_connection());
        assert!(!dom("ConstraintError", "key exists").replaces_connection());
        let corrupt = StoreError::from(CodecError::new("entry", "seq", "is not a safe integer"));
        assert!(!corrupt.replaces_connection());
    }

    #[test]
    fn quota_failures_are_recognised_by_name_and_firefox_refusal() {
        let quota = dom("QuotaExceededError", "the quota has been exceeded");
        assert_eq!(
            quota.quota_message().as_deref(),
            Some("the quota has been exceeded")
        );
        assert_eq!(dom("AbortError", "").quota_message(), None);
        let refused = dom(
            "InvalidStateError",
            "A mutation operation was attempted on a database that did not allow mutations.",
        );
        assert!(refused.is_quota_exceeded(), "Firefox over its quota");
        assert!(
            !dom("InvalidStateError", "The database connection is closing.").is_quota_exceeded()
        );
        let corrupt = StoreError::from(CodecError::new("entry", "seq", "is not a safe integer"));
        assert!(!corrupt.is_quota_exceeded());
        assert_eq!(
            corrupt.to_string(),
            "IndexedDB holds a malformed value: entry: field `seq` is not a safe integer"
        );
        let dom = dom("QuotaExceededError", "full");
        assert_eq!(
            dom.to_string(),
            "IndexedDB enqueue failed: QuotaExceededError: full"
        );
    }
}
