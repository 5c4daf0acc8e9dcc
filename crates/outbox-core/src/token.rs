//! The machines' bookkeeping of token asks. A token is attached at send
//! time and never stored: the driver's token source keeps the last good
//! one in memory only and asks open pages (or a same-origin token URL) for
//! a fresh one; entries wait, kept, until one arrives. *When* to ask again
//! is the machines' decision ([`Flush`](crate::flush::Flush) and
//! [`Forward`](crate::door::Forward) note every ask here).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::clock::Millis;

/// When a token was last asked for, per origin: entries parked for a token
/// ask again every [`Config::token_retry_ms`](crate::config::Config::token_retry_ms).
/// Clones share one record, so that every machine of one engine sees the
/// others' asks; it lives in memory (a restarted engine asks at once).
#[derive(Debug, Clone, Default)]
pub struct TokenAsks(Rc<RefCell<HashMap<String, Millis>>>);

impl TokenAsks {
    /// A token was asked for `origin` at `now`.
    pub fn asked(&self, origin: &str, now: Millis) {
        self.0.borrow_mut().insert(origin.to_owned(), now);
    }

    /// When `origin` may be asked again, if it was asked before.
    pub fn again_at(&self, origin: &str, retry_ms: u64) -> Option<Millis> {
        self.0.borrow().get(origin).map(|at| at + retry_ms)
    }
}
