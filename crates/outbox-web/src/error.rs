//! The store's typed errors. Plain Rust (no JavaScript types), so that
//! they exist, and are tested, on every target.

/// Why an IndexedDB operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdbError {
    /// There is no `indexedDB` on the global object (not a browser, or a
    /// context where storage is disabled).
    #[error("IndexedDB is not available in this context")]
    Unavailable,
    /// The database was written by newer code (a higher schema version).
    /// Nothing was changed: the data stays for the newer code to use.
    #[error(
        "database `{name}` has schema version {found}, newer than version {supported} that this code \
         understands; it was left untouched (is an older build running next to a newer one?)"
    )]
    NewerVersion {
        /// The database name.
        name: String,
        /// Its version on disk.
        found: u64,
        /// The newest version this code knows ([`crate::SCHEMA_VERSION`]).
        supported: u32,
    },
    /// The browser refused or failed an operation (a `DOMException`).
    #[error("IndexedDB {operation} failed: {name}: {message}")]
    Dom {
        /// What the store was doing (`open`, `enqueue`, `claim`, …).
        operation: &'static str,
        /// The exception's name (`QuotaExceededError`, `VersionError`,
        /// `TransactionInactiveError`, `AbortError`, …).
        name: String,
        /// The exception's message.
        message: String,
    },
    /// A stored value does not have the shape this code writes.
    #[error("IndexedDB holds a malformed value: {0}")]
    Corrupt(#[from] CodecError),
}

/// Firefox's message when it refuses to write to a database
/// (`NS_ERROR_DOM_INDEXEDDB_NOT_ALLOWED_ERR`).
const FIREFOX_NOT_ALLOWED: &str = "did not allow mutations";

impl IdbError {
    /// The `DOMException` name, when the browser reported one.
    pub fn dom_name(&self) -> Option<&str> {
        match self {
            IdbError::Dom { name, .. } => Some(name),
            _ => None,
        }
    }

    /// The message of a quota failure ([`is_quota_exceeded`](Self::is_quota_exceeded)):
    /// the store's answer to an enqueue it had no room for (the caller
    /// keeps its request, told `QuotaExceeded`); `None` for any other
    /// failure.
    pub fn quota_message(&self) -> Option<String> {
        match self {
            IdbError::Dom { message, .. } if self.is_quota_exceeded() => Some(message.clone()),
            _ => None,
        }
    }

    /// Whether the browser's storage quota is exhausted. A quota failure
    /// may come from a request or, at commit, as the transaction's abort
    /// (see `idb` for how the request's own error is kept where an engine
    /// reports only `AbortError` or nothing). Firefox, once a site is over
    /// its quota, refuses further writes outright with an
    /// `InvalidStateError` "…database that did not allow mutations" (the
    /// same refusal it gives where storage is disabled): the browser will
    /// not store, which is the same answer for the caller.
    pub fn is_quota_exceeded(&self) -> bool {
        match self {
            IdbError::Dom { name, message, .. } => {
                name == "QuotaExceededError"
                    || (name == "InvalidStateError" && message.contains(FIREFOX_NOT_ALLOWED))
            }
            _ => false,
        }
    }
}

/// A stored value that does not decode: which record, which field, what is
/// wrong with it. Decoding never panics on odd data; it returns this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{record}: field `{field}` {problem}")]
pub struct CodecError {
    /// The kind of record (`entry`, `body`, `meta`).
    pub record: &'static str,
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub problem: &'static str,
}

impl CodecError {
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

    #[test]
    fn quota_failures_become_quota_exceeded() {
        let quota = IdbError::Dom {
            operation: "enqueue",
            name: "QuotaExceededError".into(),
            message: "the quota has been exceeded".into(),
        };
        assert_eq!(
            quota.quota_message().as_deref(),
            Some("the quota has been exceeded")
        );
        let abort = IdbError::Dom {
            operation: "enqueue",
            name: "AbortError".into(),
            message: String::new(),
        };
        assert_eq!(
            abort.quota_message(),
            None,
            "anything else is a store error"
        );
    }

    #[test]
    fn quota_is_recognised_by_dom_name() {
        let quota = IdbError::Dom {
            operation: "enqueue",
            name: "QuotaExceededError".into(),
            message: "full".into(),
        };
        assert!(quota.is_quota_exceeded());
        assert_eq!(quota.dom_name(), Some("QuotaExceededError"));
        let other = IdbError::Dom {
            operation: "enqueue",
            name: "AbortError".into(),
            message: String::new(),
        };
        assert!(!other.is_quota_exceeded());
        let refused = IdbError::Dom {
            operation: "enqueue",
            name: "InvalidStateError".into(),
            message:
                "A mutation operation was attempted on a database that did not allow mutations."
                    .into(),
        };
        assert!(refused.is_quota_exceeded(), "Firefox over its quota");
        let closed = IdbError::Dom {
            operation: "enqueue",
            name: "InvalidStateError".into(),
            message: "The database connection is closing.".into(),
        };
        assert!(!closed.is_quota_exceeded());
        assert!(!IdbError::Unavailable.is_quota_exceeded());
    }

    #[test]
    fn messages_name_what_failed() {
        let e = IdbError::NewerVersion {
            name: "outbox".into(),
            found: 7,
            supported: 1,
        };
        let text = e.to_string();
        assert!(text.contains("outbox") && text.contains('7') && text.contains("untouched"));
        let c = IdbError::from(CodecError::new("entry", "seq", "is not a safe integer"));
        assert_eq!(
            c.to_string(),
            "IndexedDB holds a malformed value: entry: field `seq` is not a safe integer"
        );
    }
}
