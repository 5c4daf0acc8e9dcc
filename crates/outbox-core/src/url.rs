//! The little URL handling the engine needs: origin and path of an absolute
//! `http(s)` URL. (The `url` crate would cost the worker tens of KB.)

use alloc::{borrow::ToOwned, string::String};

/// An absolute URL split into the parts routing uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parts<'a> {
    /// `scheme://host[:port]`, lower case, default port removed.
    pub origin: String,
    /// The path, from the first `/` up to `?` or `#` (`/` when empty).
    pub path: &'a str,
}

/// The URL is not an absolute `http` or `https` URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an absolute http(s) URL: {0}")]
pub struct BadUrl(pub String);

/// Splits an absolute `http(s)` URL.
pub fn parse(url: &str) -> Result<Parts<'_>, BadUrl> {
    let bad = || BadUrl(url.chars().take(200).collect());
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return Err(bad()),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Drop user-info; it never belongs in an origin.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(bad());
    }
    let mut host = host.to_ascii_lowercase();
    if host.ends_with(default_port) {
        host.truncate(host.len() - default_port.len());
    }
    let tail = &rest[end..];
    let path_end = tail.find(['?', '#']).unwrap_or(tail.len());
    let path = if tail[..path_end].is_empty() {
        "/"
    } else {
        &tail[..path_end]
    };
    Ok(Parts {
        origin: [&*scheme, "://", &host].concat(),
        path,
    })
}

/// Normalises an origin the way [`parse`] does (for configured origins).
pub fn normalize_origin(origin: &str) -> Result<String, BadUrl> {
    let parts = parse(origin)?;
    if parts.path != "/" {
        return Err(BadUrl(origin.to_owned()));
    }
    Ok(parts.origin)
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
    fn splits_origin_and_path() {
        let p = parse("HTTPS://API.mypurecloud.ie:443/api/v2/x?y=1#z").unwrap();
        assert_eq!(p.origin, "https://api.mypurecloud.ie");
        assert_eq!(p.path, "/api/v2/x");
        let p = parse("http://127.0.0.1:8081").unwrap();
        assert_eq!(p.origin, "http://127.0.0.1:8081");
        assert_eq!(p.path, "/");
        let p = parse("http://user:pw@host:80?q").unwrap();
        assert_eq!(p.origin, "http://host");
        assert_eq!(p.path, "/");
    }

    #[test]
    fn refuses_what_is_not_http() {
        for bad in [
            "/relative",
            "ftp://x/y",
            "http:///x",
            "mailto:a@b",
            "http://a b/",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        assert!(normalize_origin("https://x/y").is_err());
        assert_eq!(normalize_origin("https://X:443/").unwrap(), "https://x");
    }
}
