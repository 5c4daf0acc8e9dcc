//! Where bearer tokens come from: the token source a driver performs the
//! machines' token I/O on ([`Io::Offer`](outbox_core::io::Io::Offer),
//! [`Io::AskTokens`](outbox_core::io::Io::AskTokens),
//! [`Io::Forget`](outbox_core::io::Io::Forget)) and whose tokens it
//! attaches to each send ([`SendAsk::requests`](outbox_core::io::SendAsk::requests)).
//! A token is never stored: a source keeps the last good one in memory
//! only, asks open pages (or a same-origin token URL) for a fresh one, and
//! otherwise waits, entries kept, until one arrives. When to ask is the
//! machines' decision ([`TokenAsks`](outbox_core::token::TokenAsks)).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

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
