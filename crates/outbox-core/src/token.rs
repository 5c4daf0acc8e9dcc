//! Where bearer tokens come from. A token is attached at send time and
//! never stored: the worker keeps the last good one in memory only, asks
//! open pages (or a same-origin token URL) for a fresh one, and otherwise
//! waits, entries kept, until one arrives.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use crate::clock::Millis;

/// When a token was last asked for, per origin: entries parked for a token
/// ask again every [`Config::token_retry_ms`]. Kept in memory by the
/// driver across flushes (a restarted driver asks at once).
#[derive(Debug, Clone, Default)]
pub struct TokenAsks(HashMap<String, Millis>);

impl TokenAsks {
    /// A token was asked for `origin` at `now`.
    pub fn asked(&mut self, origin: &str, now: Millis) {
        self.0.insert(origin.to_owned(), now);
    }

    /// When `origin` may be asked again, if it was asked before.
    pub fn again_at(&self, origin: &str, retry_ms: u64) -> Option<Millis> {
        self.0.get(origin).map(|at| at + retry_ms)
    }
}

/// A source of bearer tokens, per origin.
#[allow(async_fn_in_trait)]
pub trait TokenSource {
    /// The token in hand for `origin`, if any.
    fn current(&self, origin: &str) -> Option<String>;

    /// A token arrived (seen on an app's request, or sent by a page).
    /// Returns true when it differs from the one in hand.
    fn offer(&self, origin: &str, token: &str) -> bool;

    /// The server refused `token` (`401`): forget it if it is still the one
    /// in hand.
    fn rejected(&self, origin: &str, token: &str);

    /// Asks for a fresh token. Returns it when it can be had at once (a
    /// token URL); `None` when the request went out (to pages) and the
    /// token will arrive later through [`offer`](Self::offer).
    async fn request(&self, origin: &str) -> Option<String>;
}

/// Tokens held in memory, set by hand; [`request`](TokenSource::request)
/// only counts the requests. Clones share state.
#[derive(Debug, Clone, Default)]
pub struct MemoryTokens {
    tokens: Rc<RefCell<HashMap<String, String>>>,
    requests: Rc<RefCell<Vec<String>>>,
}

impl MemoryTokens {
    /// No tokens.
    pub fn new() -> Self {
        Self::default()
    }

    /// The origins asked for a token so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.borrow().clone()
    }
}

impl TokenSource for MemoryTokens {
    fn current(&self, origin: &str) -> Option<String> {
        self.tokens.borrow().get(origin).cloned()
    }

    fn offer(&self, origin: &str, token: &str) -> bool {
        let old = self
            .tokens
            .borrow_mut()
            .insert(origin.to_owned(), token.to_owned());
        old.as_deref() != Some(token)
    }

    fn rejected(&self, origin: &str, token: &str) {
        let mut tokens = self.tokens.borrow_mut();
        if tokens.get(origin).map(String::as_str) == Some(token) {
            tokens.remove(origin);
        }
    }

    async fn request(&self, origin: &str) -> Option<String> {
        self.requests.borrow_mut().push(origin.to_owned());
        None
    }
}
