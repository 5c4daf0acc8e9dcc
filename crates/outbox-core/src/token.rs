//! The machines' bookkeeping of token asks. A token is attached at send
//! time and never stored: the driver's token source keeps the last good
//! one in memory only and asks open pages (or a same-origin token URL) for
//! a fresh one; entries wait, kept, until one arrives. *When* to ask again
//! is the machines' decision ([`Flush`](crate::flush::Flush) and
//! [`Forward`](crate::door::Forward) note every ask here).

use alloc::rc::Rc;
use alloc::{borrow::ToOwned, string::String, vec::Vec};
use core::cell::RefCell;

use crate::clock::Millis;

/// When a token was last asked for, per origin: entries parked for a token
/// ask again every [`Config::token_retry_ms`](crate::config::Config::token_retry_ms).
/// Clones share one record, so that every machine of one engine sees the
/// others' asks; it lives in memory (a restarted engine asks at once).
/// A list: an outbox talks to a handful of origins.
#[derive(Debug, Clone, Default)]
pub struct TokenAsks(Rc<RefCell<Vec<(String, Millis)>>>);

impl TokenAsks {
    /// A token was asked for `origin` at `now`.
    pub fn asked(&self, origin: &str, now: Millis) {
        let mut asks = self.0.borrow_mut();
        match asks.iter_mut().find(|(o, _)| o == origin) {
            Some((_, at)) => *at = now,
            None => asks.push((origin.to_owned(), now)),
        }
    }

    /// Forgets every ask: the next one goes at once (the network is back,
    /// and an ask that failed while it was down says nothing any more).
    pub fn forget(&self) {
        self.0.borrow_mut().clear();
    }

    /// When `origin` may be asked again, if it was asked before.
    pub fn again_at(&self, origin: &str, retry_ms: u64) -> Option<Millis> {
        let asks = self.0.borrow();
        asks.iter()
            .find(|(o, _)| o == origin)
            .map(|(_, at)| at + retry_ms)
    }
}
