//! Bearer tokens in the browser: kept in memory only, never stored.
//!
//! A token comes from a request the app made (its `Authorization`
//! header), from a page (`TOKEN_UPDATED`), or from a same-origin token URL
//! (`{access_token, expires_in}`) — the demo's token broker, which holds the
//! client secret on the server. A token is dropped a minute before it
//! expires, so that a fresh one is fetched ahead of time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use outbox_core::clock::{Clock, Millis};
use outbox_driver::token::TokenSource;

use crate::fetch::{self, Parts};
use crate::js::{self, JsClock};

/// Refresh this long before a token expires.
const REFRESH_AHEAD_MS: Millis = 60_000;

#[derive(Clone)]
struct Held {
    token: String,
    expires_at: Option<Millis>,
}

/// Asks someone for a token when none is in hand (a service worker posts
/// `TOKEN_REFRESH_REQUIRED` to its pages; a page calls the app's
/// callback).
pub type Asker = Rc<dyn Fn(&str)>;

/// The browser's token source.
#[derive(Clone)]
pub struct BrowserTokens {
    held: Rc<RefCell<HashMap<String, Held>>>,
    token_url: Option<String>,
    asker: Option<Asker>,
}

impl BrowserTokens {
    /// Tokens from `token_url` (same-origin) when set, else from `asker`.
    pub fn new(token_url: Option<String>, asker: Option<Asker>) -> Self {
        Self {
            held: Rc::default(),
            token_url,
            asker,
        }
    }

    /// Installs a token with an optional lifetime in seconds. Returns
    /// whether it differs from the one held.
    pub fn install(&self, origin: &str, token: &str, expires_in_s: Option<f64>) -> bool {
        let expires_at = expires_in_s
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| JsClock.now() + (s * 1000.0) as Millis);
        let old = self.held.borrow_mut().insert(
            origin.to_owned(),
            Held {
                token: token.to_owned(),
                expires_at,
            },
        );
        old.map(|h| h.token).as_deref() != Some(token)
    }

    /// Origins a token is held for.
    pub fn origins(&self) -> Vec<String> {
        self.held.borrow().keys().cloned().collect()
    }

    /// Fetches a token from the token URL, if one is configured:
    /// `(token, expires_in seconds)`.
    pub async fn fetch_token(&self) -> Option<(String, Option<f64>)> {
        let url = absolute_url(self.token_url.as_deref()?);
        self.get_token(&url).await
    }

    async fn get_token(&self, url: &str) -> Option<(String, Option<f64>)> {
        let headers = [("accept".to_owned(), "application/json".to_owned())];
        let response = fetch::fetch(
            Parts {
                method: "GET",
                url,
                headers: &headers,
                body: &[],
            },
            10_000,
        )
        .await
        .ok()?;
        if !response.ok() {
            return None;
        }
        let json = js::call_async(&response.into(), "json", &[]).await.ok()?;
        let token = js::get_str(&json, "access_token")?;
        Some((token, js::get_f64(&json, "expires_in")))
    }
}

impl TokenSource for BrowserTokens {
    fn current(&self, origin: &str) -> Option<String> {
        let held = self.held.borrow();
        let h = held.get(origin)?;
        match h.expires_at {
            Some(at) if JsClock.now() + REFRESH_AHEAD_MS >= at => None,
            _ => Some(h.token.clone()),
        }
    }

    fn offer(&self, origin: &str, token: &str) -> bool {
        self.install(origin, token, None)
    }

    fn rejected(&self, origin: &str, token: &str) {
        let mut held = self.held.borrow_mut();
        if held.get(origin).is_some_and(|h| h.token == token) {
            held.remove(origin);
        }
    }

    async fn request(&self, origin: &str) -> Option<String> {
        if let Some((token, expires_in)) = self.fetch_token().await {
            self.install(origin, &token, expires_in);
            return Some(token);
        }
        if let Some(ask) = &self.asker {
            ask(origin);
        }
        None
    }
}

/// Resolves a relative URL against the global's location.
pub fn absolute_url(url: &str) -> String {
    let base = js::get(&js::global(), "location")
        .and_then(|l| js::get_str(&l, "href"))
        .unwrap_or_default();
    web_sys::Url::new_with_base(url, &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| url.to_owned())
}
