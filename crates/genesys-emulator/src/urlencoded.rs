//! `application/x-www-form-urlencoded` and percent-decoding, for OAuth forms,
//! query strings and path segments.

/// Decodes `%XX` escapes (and `+` as space when `plus_is_space`). Invalid
/// escapes are kept literally; invalid UTF-8 is replaced.
pub(crate) fn percent_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = b.get(i + 1..i + 3).and_then(|h| {
                    std::str::from_utf8(h)
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                });
                if let Some(v) = hex {
                    out.push(v);
                    i += 3;
                } else {
                    out.push(b'%');
                    i += 1;
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `a=1&b=two` into ordered pairs.
pub(crate) fn parse_pairs(s: &str) -> Vec<(String, String)> {
    s.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k, true), percent_decode(v, true))
        })
        .collect()
}

/// The first value for `key` in `pairs`.
pub(crate) fn get<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_forms() {
        let p = parse_pairs("grant_type=client_credentials&client_id=a%20b&x=1+2&flag");
        assert_eq!(get(&p, "grant_type"), Some("client_credentials"));
        assert_eq!(get(&p, "client_id"), Some("a b"));
        assert_eq!(get(&p, "x"), Some("1 2"));
        assert_eq!(get(&p, "flag"), Some(""));
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("a+b", false), "a+b");
    }
}
