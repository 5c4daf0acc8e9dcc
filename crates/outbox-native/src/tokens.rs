//! Where the host's bearer tokens come from.
//!
//! # Design
//!
//! A server may hold a secret (a browser may not), so the host can get its
//! own tokens: the OAuth **client-credentials** grant of Genesys Cloud
//! (`POST <login>/oauth/token`, `grant_type=client_credentials`, Basic
//! auth with the client id and secret; answer `{access_token, expires_in}`).
//! [`ProxyTokens`] is the engine's [`TokenSource`]:
//!
//! * **With client credentials** ([`ClientCredentials`]) the host's own
//!   token sends every replay. It is fetched when core asks for one
//!   ([`TokenSource::request`]: at the first need, and after a `401`, once
//!   core has called [`rejected`](TokenSource::rejected)), fetched at start
//!   and refreshed *before* it expires by the host
//!   ([`ProxyTokens::refresh_due`]: at 80 % of its lifetime; every 5 s
//!   while none can be had); [`current`](TokenSource::current) stops
//!   handing it out 30 s before its end. A caller's bearer is used for that caller's own live
//!   attempt only (it goes out with its request) and is never taken for
//!   replays: it may belong to another client (another rate budget) or to
//!   a user whose session ends.
//! * **Without** them, the host does what a browser's worker does: the
//!   latest bearer a caller sent for an origin is kept in memory and sends
//!   the replays while it lasts; after a `401` the entries wait
//!   (awaiting-token) for the next caller's bearer.
//!
//! Tokens live in memory only. The secret is read from the environment or
//! a file by the caller of [`Secret::new`]; its `Debug` is redacted and it
//! is never logged or stored. When to ask is core's decision
//! ([`outbox_core::token::TokenAsks`]).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use base64::Engine as _;
use outbox_core::clock::{Clock, Millis};
use outbox_driver::token::TokenSource;

use crate::clock::SystemClock;

/// A secret: its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret (trailing line ends, as a file holds them, are cut).
    pub fn new(secret: impl Into<String>) -> Self {
        let mut s = secret.into();
        while s.ends_with(['\n', '\r']) {
            s.pop();
        }
        Self(s)
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An OAuth client for the client-credentials grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCredentials {
    /// The token endpoint (`https://login.<region>/oauth/token`).
    pub token_url: String,
    /// The client id.
    pub client_id: String,
    /// The client secret.
    pub secret: Secret,
    /// The API origin its tokens are for (`https://api.<region>`).
    pub origin: String,
}

/// Why no token could be had. Never holds the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The token endpoint could not be reached.
    #[error("cannot reach {url}: {message}")]
    Unreachable {
        /// The token URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The endpoint refused the client (its OAuth error, cut short).
    #[error("{url} refused the client credentials (HTTP {status}): {body}")]
    Refused {
        /// The token URL.
        url: String,
        /// The status.
        status: u16,
        /// The answer.
        body: String,
    },
    /// The answer was not a token.
    #[error("{url} answered something that is not a token")]
    Malformed {
        /// The token URL.
        url: String,
    },
}

/// A token in hand.
#[derive(Debug, Clone)]
struct Held {
    token: String,
    /// When it stops being handed out (`None`: a caller's bearer, whose
    /// lifetime is unknown).
    use_until: Option<Millis>,
    /// When to fetch the next one.
    refresh_at: Option<Millis>,
}

/// The host's token source (see the [module](self)). Clones share state.
#[derive(Clone)]
pub struct ProxyTokens {
    held: Rc<RefCell<HashMap<String, Held>>>,
    creds: Option<Rc<ClientCredentials>>,
    http: reqwest::Client,
    /// Fetches made, and the last failure (for `/healthz` and the logs).
    fetches: Rc<RefCell<(u64, Option<TokenError>)>>,
}

impl std::fmt::Debug for ProxyTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyTokens")
            .field("creds", &self.creds)
            .field("origins", &self.held.borrow().keys().collect::<Vec<_>>())
            .finish()
    }
}

/// How long before its end a fetched token stops being handed out.
const END_MARGIN_MS: u64 = 30_000;

impl ProxyTokens {
    /// A token source with `creds` (or callers' bearers only), fetching over
    /// `http`.
    pub fn new(creds: Option<ClientCredentials>, http: reqwest::Client) -> Self {
        Self {
            held: Rc::default(),
            creds: creds.map(Rc::new),
            http,
            fetches: Rc::default(),
        }
    }

    /// Whether the host has its own client credentials.
    pub fn has_credentials(&self) -> bool {
        self.creds.is_some()
    }

    /// Tokens fetched so far, and the last failure if the last fetch failed.
    pub fn fetch_record(&self) -> (u64, Option<TokenError>) {
        self.fetches.borrow().clone()
    }

    /// Fetches a token with the client credentials and holds it.
    pub async fn fetch(&self) -> Result<String, TokenError> {
        let Some(creds) = self.creds.clone() else {
            return Err(TokenError::Malformed {
                url: "(no client credentials)".into(),
            });
        };
        let result = self.grant(&creds).await;
        let mut record = self.fetches.borrow_mut();
        match result {
            Ok((token, lifetime_s)) => {
                record.0 += 1;
                record.1 = None;
                let now = SystemClock.now();
                let life = lifetime_s.saturating_mul(1000);
                self.held.borrow_mut().insert(
                    creds.origin.clone(),
                    Held {
                        token: token.clone(),
                        use_until: Some(now + life.saturating_sub(END_MARGIN_MS.min(life / 2))),
                        refresh_at: Some(now + life / 5 * 4),
                    },
                );
                Ok(token)
            }
            Err(e) => {
                record.1 = Some(e.clone());
                Err(e)
            }
        }
    }

    async fn grant(&self, creds: &ClientCredentials) -> Result<(String, u64), TokenError> {
        let url = creds.token_url.clone();
        let basic = base64::engine::general_purpose::STANDARD.encode(format!(
            "{}:{}",
            creds.client_id,
            creds.secret.expose()
        ));
        let unreachable = |e: reqwest::Error| TokenError::Unreachable {
            url: url.clone(),
            message: e.to_string(),
        };
        let answer = self
            .http
            .post(&url)
            .header("authorization", format!("Basic {basic}"))
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .timeout(Duration::from_secs(15))
            .send()
            .await
            .map_err(unreachable)?;
        let status = answer.status().as_u16();
        let body = answer.text().await.map_err(unreachable)?;
        if status != 200 {
            return Err(TokenError::Refused {
                url,
                status,
                body: body.chars().take(300).collect(),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&body).map_err(|_| TokenError::Malformed { url: url.clone() })?;
        let token = json["access_token"]
            .as_str()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| TokenError::Malformed { url: url.clone() })?;
        Ok((
            token.to_owned(),
            json["expires_in"].as_u64().unwrap_or(3600),
        ))
    }

    /// The origin the host's own token is for, if it has client
    /// credentials.
    pub fn own_origin(&self) -> Option<&str> {
        self.creds.as_deref().map(|c| c.origin.as_str())
    }

    /// When the host's own token should be fetched again: at 80 % of the
    /// lifetime of the one in hand; now when none is in hand (at start, or
    /// after a `401` made core forget it).
    pub fn refresh_due(&self) -> Option<Millis> {
        let creds = self.creds.as_ref()?;
        Some(
            self.held
                .borrow()
                .get(&creds.origin)
                .and_then(|h| h.refresh_at)
                .unwrap_or(0),
        )
    }
}

impl TokenSource for ProxyTokens {
    fn current(&self, origin: &str) -> Option<String> {
        let held = self.held.borrow();
        let h = held.get(origin)?;
        match h.use_until {
            Some(until) if until <= SystemClock.now() => None,
            _ => Some(h.token.clone()),
        }
    }

    fn offer(&self, origin: &str, token: &str) -> bool {
        if self.creds.is_some() {
            // The host's own token sends the replays.
            return false;
        }
        let old = self.held.borrow_mut().insert(
            origin.to_owned(),
            Held {
                token: token.to_owned(),
                use_until: None,
                refresh_at: None,
            },
        );
        old.map(|h| h.token).as_deref() != Some(token)
    }

    fn rejected(&self, origin: &str, token: &str) {
        let mut held = self.held.borrow_mut();
        if held.get(origin).is_some_and(|h| h.token == token) {
            held.remove(origin);
        }
    }

    async fn request(&self, origin: &str) -> Option<String> {
        match &self.creds {
            Some(creds) if creds.origin == origin => self.fetch().await.ok(),
            // Callers' bearers: the next request that carries one brings it.
            _ => None,
        }
    }
}
