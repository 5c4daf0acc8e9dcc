//! Bearer tokens, in memory only: never stored.
//!
//! A token comes from a request the app made (its `Authorization` header),
//! from the app (`setToken`, a page's `TOKEN_UPDATED`), or from a
//! same-origin token URL (`{access_token, expires_in}`), which the host
//! fetches when a machine asks for one. One is kept per origin; a token is
//! not offered for sending from a minute before it expires, so that a
//! fresh one is fetched ahead of time; a token the server refused is
//! dropped.

use alloc::borrow::ToOwned;
use alloc::string::String;
use alloc::vec::Vec;

use outbox_core::clock::Millis;

/// Stop offering a token this long before it expires.
pub const REFRESH_AHEAD_MS: Millis = 60_000;

#[derive(Debug, Clone)]
struct Held {
    origin: String,
    token: String,
    expires_at: Option<Millis>,
}

/// The tokens in hand, one per origin (a list: an outbox talks to a
/// handful of origins).
#[derive(Debug, Clone, Default)]
pub struct Tokens(Vec<Held>);

impl Tokens {
    /// Keeps `token` for `origin`, valid for `expires_in_s` seconds from
    /// `now` when known (a number that is not a positive finite count of
    /// seconds counts as unknown). Returns whether it differs from the one
    /// held.
    pub fn install(
        &mut self,
        origin: &str,
        token: &str,
        expires_in_s: Option<f64>,
        now: Millis,
    ) -> bool {
        let expires_at = expires_in_s
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(|s| now.saturating_add((s * 1000.0) as Millis));
        match self.0.iter_mut().find(|h| h.origin == origin) {
            Some(held) => {
                let fresh = held.token != token;
                held.token = token.to_owned();
                held.expires_at = expires_at;
                fresh
            }
            None => {
                self.0.push(Held {
                    origin: origin.to_owned(),
                    token: token.to_owned(),
                    expires_at,
                });
                true
            }
        }
    }

    /// The token to send to `origin` at `now`, if one is in hand and not
    /// about to expire.
    pub fn current(&self, origin: &str, now: Millis) -> Option<&str> {
        let held = self.0.iter().find(|h| h.origin == origin)?;
        match held.expires_at {
            Some(at) if now.saturating_add(REFRESH_AHEAD_MS) >= at => None,
            _ => Some(&held.token),
        }
    }

    /// The server refused `token` for `origin`: it is dropped (unless a
    /// newer one replaced it meanwhile).
    pub fn rejected(&mut self, origin: &str, token: &str) {
        self.0.retain(|h| !(h.origin == origin && h.token == token));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_a_minute_early_and_refusals_drop_them() {
        let mut t = Tokens::default();
        assert!(t.install("o", "a", Some(3600.0), 0));
        assert_eq!(t.current("o", 0), Some("a"));
        assert_eq!(t.current("o", 3_540_000 - 1), Some("a"));
        assert_eq!(
            t.current("o", 3_540_000),
            None,
            "a minute before it expires"
        );
        assert!(!t.install("o", "a", None, 0), "the same token is not new");
        assert_eq!(t.current("o", u64::MAX), Some("a"), "no lifetime: kept");
        for odd in [f64::NAN, -1.0, 0.0, f64::INFINITY] {
            t.install("p", "b", Some(odd), 0);
            assert_eq!(t.current("p", 10_000_000), Some("b"));
        }
        t.rejected("o", "old");
        assert_eq!(t.current("o", 0), Some("a"), "only the refused token goes");
        t.rejected("o", "a");
        assert_eq!(t.current("o", 0), None);
        assert_eq!(t.current("nowhere", 0), None);
    }
}
