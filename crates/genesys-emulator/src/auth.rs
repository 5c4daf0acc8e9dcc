//! OAuth client credentials and bearer-token checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::config::ClientCredentials;
use crate::errors::ApiError;
use crate::ids::new_token;
use crate::urlencoded;

/// The answer of `POST /oauth/token` (and of the token control call).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// The bearer token.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: String,
    /// Lifetime in seconds.
    pub expires_in: u64,
}

/// The OAuth error body: `{"error","description","error_description"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OAuthError {
    /// `unauthorized_client`, `unsupported_grant_type` or `invalid_request`.
    pub error: String,
    /// Human-readable text.
    pub description: String,
    /// The same text, under the OAuth 2 name.
    pub error_description: String,
}

impl OAuthError {
    fn new(error: &str, text: &str) -> Self {
        Self {
            error: error.to_owned(),
            description: text.to_owned(),
            error_description: text.to_owned(),
        }
    }
}

#[derive(Debug, Clone)]
struct TokenRecord {
    client_id: String,
    expires_at: Instant,
}

/// Who a valid bearer token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Bearer {
    pub(crate) token: String,
    pub(crate) client_id: String,
}

/// Issued tokens. Expired tokens are kept so they answer `credentials.expired`.
#[derive(Debug, Default)]
pub(crate) struct TokenStore {
    tokens: HashMap<String, TokenRecord>,
}

impl TokenStore {
    /// Issues a token for `client_id` valid for `ttl` from `now`.
    pub(crate) fn issue(&mut self, client_id: &str, ttl: Duration, now: Instant) -> TokenGrant {
        let token = new_token();
        self.tokens.insert(
            token.clone(),
            TokenRecord {
                client_id: client_id.to_owned(),
                expires_at: now + ttl,
            },
        );
        TokenGrant {
            access_token: token,
            token_type: "bearer".to_owned(),
            expires_in: ttl.as_secs(),
        }
    }

    /// Marks one token expired; false when unknown.
    pub(crate) fn expire(&mut self, token: &str, now: Instant) -> bool {
        match self.tokens.get_mut(token) {
            Some(r) => {
                r.expires_at = now;
                true
            }
            None => false,
        }
    }

    /// Marks every token expired; returns how many were still valid.
    pub(crate) fn expire_all(&mut self, now: Instant) -> usize {
        let mut n = 0;
        for r in self.tokens.values_mut() {
            if r.expires_at > now {
                n += 1;
                r.expires_at = now;
            }
        }
        n
    }

    /// Checks an `Authorization` header value.
    pub(crate) fn check(
        &self,
        authorization: Option<&str>,
        now: Instant,
    ) -> Result<Bearer, ApiError> {
        let token = bearer_token(authorization)
            .ok_or_else(|| ApiError::unauthorized("authentication.required"))?;
        let rec = self
            .tokens
            .get(token)
            .ok_or_else(|| ApiError::unauthorized("bad.credentials"))?;
        if rec.expires_at <= now {
            return Err(ApiError::unauthorized("credentials.expired"));
        }
        Ok(Bearer {
            token: token.to_owned(),
            client_id: rec.client_id.clone(),
        })
    }
}

/// The token of `Authorization: Bearer <token>`, if that is what the header holds.
pub(crate) fn bearer_token(authorization: Option<&str>) -> Option<&str> {
    let v = authorization?.trim();
    let (scheme, rest) = v.split_once(' ')?;
    let t = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !t.is_empty()).then_some(t)
}

/// Validates a client-credentials request and names the client.
///
/// Credentials come from `Authorization: Basic base64(id:secret)` or, failing
/// that, from `client_id`/`client_secret` in the form. `scope` is ignored.
pub(crate) fn authenticate_client(
    clients: &[ClientCredentials],
    authorization: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<String, OAuthError> {
    let is_form = content_type.is_some_and(|c| {
        c.split(';').next().is_some_and(|m| {
            m.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
    });
    if !is_form {
        return Err(OAuthError::new(
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        ));
    }
    let form = urlencoded::parse_pairs(&String::from_utf8_lossy(body));
    match urlencoded::get(&form, "grant_type") {
        Some("client_credentials") => {}
        None => return Err(OAuthError::new("invalid_request", "grant_type is required")),
        Some(_) => {
            return Err(OAuthError::new(
                "unsupported_grant_type",
                "Only grant_type=client_credentials is supported by this emulator",
            ));
        }
    }
    let basic = authorization.and_then(|h| {
        let (scheme, rest) = h.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .ok()?;
        let s = String::from_utf8(raw).ok()?;
        let (id, secret) = s.split_once(':')?;
        Some((id.to_owned(), secret.to_owned()))
    });
    let (id, secret) = match basic {
        Some(pair) => pair,
        None => match (
            urlencoded::get(&form, "client_id"),
            urlencoded::get(&form, "client_secret"),
        ) {
            (Some(i), Some(s)) => (i.to_owned(), s.to_owned()),
            _ => {
                return Err(OAuthError::new(
                    "unauthorized_client",
                    "client credentials are missing or malformed",
                ));
            }
        },
    };
    if clients.iter().any(|c| c.id == id && c.secret == secret) {
        Ok(id)
    } else {
        Err(OAuthError::new(
            "unauthorized_client",
            "client is not authorized or the secret is wrong",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_parsing() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc"));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }

    #[test]
    fn token_lifecycle() {
        let mut s = TokenStore::default();
        let now = Instant::now();
        let g = s.issue("c", Duration::from_secs(10), now);
        let h = format!("Bearer {}", g.access_token);
        assert!(s.check(Some(&h), now).is_ok());
        let e = s
            .check(Some(&h), now + Duration::from_secs(10))
            .err()
            .map(|e| e.code);
        assert_eq!(e, Some("credentials.expired"));
        assert_eq!(
            s.check(Some("Bearer nope"), now).err().map(|e| e.code),
            Some("bad.credentials")
        );
        assert_eq!(
            s.check(None, now).err().map(|e| e.code),
            Some("authentication.required")
        );
    }

    #[test]
    fn client_auth_variants() {
        let clients = vec![ClientCredentials::new("id", "se:cret")];
        let form = Some("application/x-www-form-urlencoded");
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("id:se:cret")
        );
        assert!(
            authenticate_client(
                &clients,
                Some(&basic),
                form,
                b"grant_type=client_credentials&scope=x"
            )
            .is_ok()
        );
        assert!(
            authenticate_client(
                &clients,
                None,
                form,
                b"grant_type=client_credentials&client_id=id&client_secret=se%3Acret"
            )
            .is_ok()
        );
        let e = authenticate_client(
            &clients,
            None,
            form,
            b"grant_type=client_credentials&client_id=id&client_secret=no",
        );
        assert_eq!(
            e.err().map(|e| e.error),
            Some("unauthorized_client".to_owned())
        );
        let e = authenticate_client(&clients, Some(&basic), form, b"grant_type=password");
        assert_eq!(
            e.err().map(|e| e.error),
            Some("unsupported_grant_type".to_owned())
        );
        let e = authenticate_client(&clients, Some(&basic), Some("application/json"), b"{}");
        assert_eq!(e.err().map(|e| e.error), Some("invalid_request".to_owned()));
    }
}
