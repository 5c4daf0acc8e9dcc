//! Which request headers may be kept at rest.
//!
//! An allow-list: only headers that change how the server reads the body
//! are kept. Credentials are refused by name even when an app adds them to
//! the allow-list, so no token, cookie or key ever reaches IndexedDB.

use alloc::{borrow::ToOwned, string::String, vec::Vec};

/// Headers kept by default (lower case).
pub const DEFAULT_KEPT: &[&str] = &[
    "content-type",
    "content-language",
    "accept",
    "accept-language",
    "idempotency-key",
];

/// Whether a header name looks like a credential. Such headers are never
/// stored, whatever the allow-list says.
pub fn is_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    const EXACT: &[&str] = &[
        "authorization",
        "proxy-authorization",
        "cookie",
        "cookie2",
        "set-cookie",
    ];
    const PARTS: &[&str] = &[
        "auth",
        "token",
        "secret",
        "password",
        "passwd",
        "cookie",
        "session",
        "api-key",
        "apikey",
        "credential",
        "signature",
        "jwt",
    ];
    EXACT.contains(&n.as_str()) || PARTS.iter().any(|p| n.contains(p))
}

/// Keeps the headers that are allowed (default list plus `extra`), never a
/// credential; names come back in lower case, values untouched.
pub fn keep<'a, I>(headers: I, extra: &[String]) -> Vec<(String, String)>
where
    I: IntoIterator<Item = (&'a str, &'a str)>,
{
    headers
        .into_iter()
        .filter_map(|(name, value)| {
            let lower = name.trim().to_ascii_lowercase();
            let allowed = DEFAULT_KEPT.contains(&lower.as_str())
                || extra.iter().any(|e| e.eq_ignore_ascii_case(&lower));
            (allowed && !is_credential(&lower)).then(|| (lower, value.to_owned()))
        })
        .collect()
}

/// The `Authorization` header that presents `token` (name in lower case).
pub fn authorization(token: &str) -> (String, String) {
    let mut value = String::with_capacity(7 + token.len());
    value.push_str("Bearer ");
    value.push_str(token);
    ("authorization".to_owned(), value)
}

/// The bearer token in an `Authorization` header value, if it is one.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    #[test]
    fn credentials_are_never_kept_even_when_allowed() {
        let input = [
            ("Authorization", "Bearer abc"),
            ("Cookie", "a=b"),
            ("Proxy-Authorization", "Basic x"),
            ("X-Api-Key", "k"),
            ("X-Auth-Token", "t"),
            ("X-Session-Id", "s"),
            ("Content-Type", "application/json"),
            ("Idempotency-Key", "k1"),
            ("X-Trace", "t1"),
            ("User-Agent", "ua"),
        ];
        let extra = vec![
            "authorization".to_string(),
            "x-api-key".to_string(),
            "x-trace".to_string(),
        ];
        let kept = keep(input, &extra);
        assert_eq!(
            kept,
            vec![
                ("content-type".to_string(), "application/json".to_string()),
                ("idempotency-key".to_string(), "k1".to_string()),
                ("x-trace".to_string(), "t1".to_string()),
            ]
        );
    }

    #[test]
    fn bearer_tokens_are_recognised() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer   abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
    }
}
