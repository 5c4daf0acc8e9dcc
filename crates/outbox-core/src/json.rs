//! A small, tolerant JSON scanner.
//!
//! The engine reads a handful of fields from request and response bodies
//! (a lane key, an idempotency carrier, a Genesys `ErrorBody` code) and
//! inserts one field when a carrier is missing. A full JSON library costs
//! about 22 KB gzip in the service worker, so this module scans bytes
//! instead: it validates the document, finds the span of a value at a path,
//! unescapes strings, and splices a string field into an object. It never
//! allocates for values it skips and never recurses deeper than
//! [`MAX_DEPTH`].

use alloc::borrow::Cow;
use alloc::{string::String, vec::Vec};

/// Nesting deeper than this is refused (guards the recursion).
pub const MAX_DEPTH: usize = 64;

/// Why a document could not be scanned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JsonError {
    /// The bytes are not a JSON document.
    Invalid {
        /// Byte offset of the problem.
        offset: usize,
        /// What was expected or found.
        what: &'static str,
    },
    /// Nesting deeper than [`MAX_DEPTH`].
    TooDeep,
    /// A path segment names something that is not an object.
    NotAnObject(String),
}

impl JsonError {
    /// The message (the same text as `Display`, built without `core::fmt`).
    pub fn text(&self) -> String {
        let mut m = String::new();
        match self {
            Self::Invalid { offset, what } => {
                m.push_str("invalid JSON at byte ");
                push_u64(&mut m, *offset as u64);
                m.push_str(": ");
                m.push_str(what);
            }
            Self::TooDeep => {
                m.push_str("JSON nested deeper than ");
                push_u64(&mut m, MAX_DEPTH as u64);
                m.push_str(" levels");
            }
            Self::NotAnObject(path) => {
                m.push('`');
                m.push_str(path);
                m.push_str("` is not a JSON object");
            }
        }
        m
    }
}

impl core::fmt::Display for JsonError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl core::error::Error for JsonError {}

/// The kind of a scanned JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `{…}`
    Object,
    /// `[…]`
    Array,
    /// `"…"`
    String,
    /// A number.
    Number,
    /// `true` or `false`.
    Bool,
    /// `null`.
    Null,
}

/// A value found in a document: its kind and its raw bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Value<'a> {
    /// What the value is.
    pub kind: Kind,
    /// The raw text of the value, quotes included for strings.
    pub raw: &'a [u8],
    /// Byte offset of the value in the document.
    pub offset: usize,
}

impl<'a> Value<'a> {
    /// The string's contents, unescaped; `None` when the value is not a string.
    pub fn as_str(&self) -> Option<Cow<'a, str>> {
        if self.kind != Kind::String {
            return None;
        }
        unescape(&self.raw[1..self.raw.len() - 1])
    }

    /// The value as text: a string's contents, or the raw text of a number or
    /// boolean (useful for lane keys that may be numeric). `None` for
    /// objects, arrays and `null`.
    pub fn as_key(&self) -> Option<Cow<'a, str>> {
        match self.kind {
            Kind::String => self.as_str(),
            Kind::Number | Kind::Bool => core::str::from_utf8(self.raw).ok().map(Cow::Borrowed),
            _ => None,
        }
    }

    /// The whole part of a non-negative number (`1.9` is 1, `2e3` is 2000),
    /// when the value is one and it fits a `u64`; `None` for what is not a
    /// number, a negative one, or one too large. Read on the digits: no
    /// float parsing, whose tables would weigh more than all the numbers
    /// the engine reads (codes, counts, seconds).
    pub fn as_u64(&self) -> Option<u64> {
        if self.kind != Kind::Number || self.raw.first() == Some(&b'-') {
            return None;
        }
        let raw = self.raw;
        let end = raw
            .iter()
            .position(|b| matches!(b, b'.' | b'e' | b'E'))
            .unwrap_or(raw.len());
        let (int, rest) = raw.split_at(end);
        let (frac, exp) = match rest.split_first() {
            Some((b'.', after)) => {
                let e = after
                    .iter()
                    .position(|b| matches!(b, b'e' | b'E'))
                    .unwrap_or(after.len());
                (&after[..e], &after[e..])
            }
            _ => (&[][..], rest),
        };
        let exp: u32 = match exp.split_first() {
            None => 0,
            Some((_, e)) => {
                let (negative, digits) = match e.split_first() {
                    Some((b'-', d)) => (true, d),
                    Some((b'+', d)) => (false, d),
                    _ => (false, e),
                };
                let n = digits.iter().try_fold(0u32, |n, d| {
                    n.checked_mul(10)?.checked_add(u32::from(d - b'0'))
                })?;
                if negative {
                    // A negative exponent: only the whole part of a small
                    // number is left, computed as the digits say.
                    return whole(int, frac, 0).map(|v| (0..n).fold(v, |v, _| v / 10));
                }
                n
            }
        };
        whole(int, frac, exp)
    }
}

/// The whole number of `int` digits followed by `frac` digits moved `exp`
/// places left of the point, cut to its whole part.
fn whole(int: &[u8], frac: &[u8], exp: u32) -> Option<u64> {
    let mut n: u64 = 0;
    for d in int {
        n = n.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    for i in 0..exp {
        let d = frac.get(i as usize).map_or(0, |d| u64::from(d - b'0'));
        n = n.checked_mul(10)?.checked_add(d)?;
    }
    Some(n)
}

/// Checks that `doc` is one complete JSON value (surrounding white space allowed).
pub fn validate(doc: &[u8]) -> Result<(), JsonError> {
    let mut s = Scanner { doc, pos: 0 };
    s.value(0)?;
    s.ws();
    if s.pos != doc.len() {
        return Err(s.err("trailing characters"));
    }
    Ok(())
}

/// Finds the value at `path` (object keys from the root). Returns
/// `Ok(None)` when a key is absent or an intermediate value is not an
/// object. The whole document is validated.
pub fn get<'a>(doc: &'a [u8], path: &[&str]) -> Result<Option<Value<'a>>, JsonError> {
    validate(doc)?;
    Ok(find(doc, path))
}

/// Like [`get`] but without validating the rest of the document: for bodies
/// that may be truncated or huge (error bodies), a value that stands
/// complete before the damage is still found. With repeated keys the first
/// one wins.
pub fn find<'a>(doc: &'a [u8], path: &[&str]) -> Option<Value<'a>> {
    let mut s = Scanner { doc, pos: 0 };
    s.ws();
    if path.is_empty() {
        return s.value_span(0).ok();
    }
    let mut found = None;
    for (depth, key) in path.iter().enumerate() {
        if s.peek() != Some(b'{') {
            return None;
        }
        let value = s.member(key, depth).ok()??;
        s.pos = value.offset;
        found = Some(value);
    }
    found
}

/// The elements of the array `doc` (a complete JSON array), or `None`
/// when it is not one.
pub fn items(doc: &[u8]) -> Option<Vec<Value<'_>>> {
    let mut s = Scanner { doc, pos: 0 };
    s.ws();
    if s.peek() != Some(b'[') {
        return None;
    }
    s.pos += 1;
    let mut out = Vec::new();
    s.ws();
    if s.peek() == Some(b']') {
        return Some(out);
    }
    loop {
        out.push(s.value_span(1).ok()?);
        s.ws();
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b']') => return Some(out),
            _ => return None,
        }
    }
}

/// The members of the object `doc` (a complete JSON object), in order,
/// keys unescaped; `None` when it is not one (or a key is not valid
/// UTF-8 once unescaped).
pub fn members(doc: &[u8]) -> Option<Vec<(Cow<'_, str>, Value<'_>)>> {
    let mut s = Scanner { doc, pos: 0 };
    s.ws();
    if s.peek() != Some(b'{') {
        return None;
    }
    s.pos += 1;
    let mut out = Vec::new();
    s.ws();
    if s.peek() == Some(b'}') {
        return Some(out);
    }
    loop {
        s.ws();
        if s.peek() != Some(b'"') {
            return None;
        }
        let key_start = s.pos;
        s.string().ok()?;
        let key = unescape(&doc[key_start + 1..s.pos - 1])?;
        s.ws();
        if s.peek() != Some(b':') {
            return None;
        }
        s.pos += 1;
        out.push((key, s.value_span(1).ok()?));
        s.ws();
        match s.peek() {
            Some(b',') => s.pos += 1,
            Some(b'}') => return Some(out),
            _ => return None,
        }
    }
}

/// Inserts `"key":"value"` as the first member of the object at
/// `object_path`, creating missing intermediate objects. Fails when the
/// document is invalid, when something on the path is not an object, or
/// when `key` already exists there (callers check with [`get`] first).
pub fn insert_string(
    doc: &[u8],
    object_path: &[&str],
    key: &str,
    value: &str,
) -> Result<Vec<u8>, JsonError> {
    validate(doc)?;
    let mut target = find(doc, &[]).ok_or(JsonError::Invalid {
        offset: 0,
        what: "empty document",
    })?;
    let mut missing: &[&str] = &[];
    for (i, segment) in object_path.iter().enumerate() {
        if target.kind != Kind::Object {
            return Err(JsonError::NotAnObject(object_path[..i].join(".")));
        }
        match find(target.raw, &[segment]) {
            Some(inner) => {
                target = Value {
                    offset: target.offset + inner.offset,
                    ..inner
                };
            }
            None => {
                missing = &object_path[i..];
                break;
            }
        }
    }
    if target.kind != Kind::Object {
        return Err(JsonError::NotAnObject(object_path.join(".")));
    }
    if missing.is_empty() && find(target.raw, &[key]).is_some() {
        return Err(JsonError::Invalid {
            offset: target.offset,
            what: "key already present",
        });
    }
    // Build the member to splice in, wrapping it in the missing objects.
    let mut member = String::new();
    for segment in missing {
        write_string(&mut member, segment);
        member.push_str(":{");
    }
    write_string(&mut member, key);
    member.push(':');
    write_string(&mut member, value);
    for _ in missing {
        member.push('}');
    }
    // Is the target object empty? Look past the `{` for the next non-space byte.
    let open = target.offset + 1;
    let empty = doc[open..]
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'}');
    let mut out = Vec::with_capacity(doc.len() + member.len() + 1);
    out.extend_from_slice(&doc[..open]);
    out.extend_from_slice(member.as_bytes());
    if !empty {
        out.push(b',');
    }
    out.extend_from_slice(&doc[open..]);
    Ok(out)
}

/// Appends `s` to `out` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                out.push_str("\\u00");
                push_hex(out, &[c as u8]);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Returns `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    write_string(&mut out, s);
    out
}

/// Appends `n` in decimal (without `core::fmt`, whose machinery the
/// worker's hot paths keep out of the bundle; hand-written rather than
/// `itoa`, whose checked conversions bring panic formatting with them:
/// the worker bundle measured 0.5 KB gzip larger with it).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[at..] {
        out.push(char::from(d));
    }
}

/// Appends `bytes` as lower-case hexadecimal, two digits a byte.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    push_hex_in(out, bytes, b"0123456789abcdef");
}

/// Appends `bytes` as hexadecimal, two digits a byte, from `digits` (the
/// sixteen digits of the case wanted).
pub(crate) fn push_hex_in(out: &mut String, bytes: &[u8], digits: &[u8; 16]) {
    for b in bytes {
        out.push(char::from(digits[usize::from(b >> 4)]));
        out.push(char::from(digits[usize::from(b & 0x0f)]));
    }
}

/// A JSON object written field by field, keys in the order given:
/// ```
/// let mut o = outbox_core::json::Object::new();
/// o.str("lane", "c1").num("attempt", 2).raw("duplicate", "false");
/// assert_eq!(o.finish(), r#"{"lane":"c1","attempt":2,"duplicate":false}"#);
/// ```
#[derive(Debug, Clone)]
pub struct Object(String);

impl Default for Object {
    fn default() -> Self {
        Self::new()
    }
}

impl Object {
    /// An empty object.
    pub fn new() -> Self {
        Self(String::from("{"))
    }

    fn key(&mut self, key: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        write_string(&mut self.0, key);
        self.0.push(':');
    }

    /// Adds a string field.
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        write_string(&mut self.0, value);
        self
    }

    /// Adds a number field.
    pub fn num(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        push_u64(&mut self.0, value);
        self
    }

    /// Adds a boolean field.
    pub fn bool(&mut self, key: &str, value: bool) -> &mut Self {
        self.raw(key, if value { "true" } else { "false" })
    }

    /// Adds a field whose value is already JSON (an object built apart,
    /// a literal).
    pub fn raw(&mut self, key: &str, json: &str) -> &mut Self {
        self.key(key);
        self.0.push_str(json);
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn unescape(inner: &[u8]) -> Option<Cow<'_, str>> {
    if !inner.contains(&b'\\') {
        return core::str::from_utf8(inner).ok().map(Cow::Borrowed);
    }
    let mut out = String::with_capacity(inner.len());
    let text = core::str::from_utf8(inner).ok()?;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '"' => out.push('"'),
            '\\' => out.push('\\'),
            '/' => out.push('/'),
            'b' => out.push('\u{8}'),
            'f' => out.push('\u{c}'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            't' => out.push('\t'),
            'u' => {
                let high = hex4(&mut chars)?;
                let code = if (0xD800..0xDC00).contains(&high) {
                    // A surrogate pair must follow.
                    if chars.next()? != '\\' || chars.next()? != 'u' {
                        return None;
                    }
                    let low = hex4(&mut chars)?;
                    if !(0xDC00..0xE000).contains(&low) {
                        return None;
                    }
                    0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
                } else {
                    high
                };
                out.push(char::from_u32(code)?);
            }
            _ => return None,
        }
    }
    Some(Cow::Owned(out))
}

fn hex4(chars: &mut core::str::Chars<'_>) -> Option<u32> {
    let mut v = 0;
    for _ in 0..4 {
        v = v * 16 + chars.next()?.to_digit(16)?;
    }
    Some(v)
}

struct Scanner<'a> {
    doc: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn err(&self, what: &'static str) -> JsonError {
        JsonError::Invalid {
            offset: self.pos,
            what,
        }
    }

    fn ws(&mut self) {
        while self
            .doc
            .get(self.pos)
            .is_some_and(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
        {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.doc.get(self.pos).copied()
    }

    /// Skips one value, returning its span.
    fn value_span(&mut self, depth: usize) -> Result<Value<'a>, JsonError> {
        self.ws();
        let start = self.pos;
        let kind = self.value(depth)?;
        Ok(Value {
            kind,
            raw: &self.doc[start..self.pos],
            offset: start,
        })
    }

    fn value(&mut self, depth: usize) -> Result<Kind, JsonError> {
        if depth > MAX_DEPTH {
            return Err(JsonError::TooDeep);
        }
        self.ws();
        match self.peek() {
            Some(b'{') => {
                self.object(depth)?;
                Ok(Kind::Object)
            }
            Some(b'[') => {
                self.array(depth)?;
                Ok(Kind::Array)
            }
            Some(b'"') => {
                self.string()?;
                Ok(Kind::String)
            }
            Some(b't') => self.literal(b"true", Kind::Bool),
            Some(b'f') => self.literal(b"false", Kind::Bool),
            Some(b'n') => self.literal(b"null", Kind::Null),
            Some(b'-' | b'0'..=b'9') => {
                self.number()?;
                Ok(Kind::Number)
            }
            Some(_) => Err(self.err("unexpected character")),
            None => Err(self.err("unexpected end")),
        }
    }

    fn literal(&mut self, word: &[u8], kind: Kind) -> Result<Kind, JsonError> {
        if self.doc[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(kind)
        } else {
            Err(self.err("bad literal"))
        }
    }

    fn number(&mut self) -> Result<(), JsonError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err("bad number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("bad fraction"));
            }
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if !self.peek().is_some_and(|b| b.is_ascii_digit()) {
                return Err(self.err("bad exponent"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
    }

    fn string(&mut self) -> Result<(), JsonError> {
        let start = self.pos;
        self.pos += 1; // opening quote
        loop {
            match self.peek() {
                None => return Err(self.err("unterminated string")),
                Some(b'"') => {
                    self.pos += 1;
                    break;
                }
                Some(b'\\') => {
                    self.pos += 1;
                    match self.peek() {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = self.doc.get(self.pos + 1..self.pos + 5);
                            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                                return Err(self.err("bad \\u escape"));
                            }
                            self.pos += 5;
                        }
                        _ => return Err(self.err("bad escape")),
                    }
                }
                Some(b) if b < 0x20 => return Err(self.err("control character in string")),
                Some(_) => self.pos += 1,
            }
        }
        if core::str::from_utf8(&self.doc[start..self.pos]).is_err() {
            return Err(JsonError::Invalid {
                offset: start,
                what: "string is not UTF-8",
            });
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<(), JsonError> {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth + 1)?;
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.err("expected , or ]")),
            }
        }
    }

    fn object(&mut self, depth: usize) -> Result<(), JsonError> {
        self.member_scan(None, depth).map(|_| ())
    }

    /// From the `{` at `self.pos`, finds the value of the first member named
    /// `key`, stopping there.
    fn member(&mut self, key: &str, depth: usize) -> Result<Option<Value<'a>>, JsonError> {
        self.member_scan(Some(key), depth)
    }

    fn member_scan(
        &mut self,
        key: Option<&str>,
        depth: usize,
    ) -> Result<Option<Value<'a>>, JsonError> {
        self.pos += 1;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(None);
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(self.err("expected a key"));
            }
            let key_start = self.pos;
            self.string()?;
            let raw_key = &self.doc[key_start + 1..self.pos - 1];
            self.ws();
            if self.peek() != Some(b':') {
                return Err(self.err("expected :"));
            }
            self.pos += 1;
            let value = self.value_span(depth + 1)?;
            if key.is_some_and(|wanted| unescape(raw_key).is_some_and(|k| k == wanted)) {
                return Ok(Some(value));
            }
            self.ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(None);
                }
                _ => return Err(self.err("expected , or }")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Random;
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
    fn whole_numbers_are_read_on_their_digits() {
        let n = |text: &str| {
            let v = find(text.as_bytes(), &[]).unwrap();
            v.as_u64()
        };
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("4029"), Some(4029));
        assert_eq!(n("1.9"), Some(1));
        assert_eq!(n("2e3"), Some(2000));
        assert_eq!(n("2.5E1"), Some(25));
        assert_eq!(n("1.234e2"), Some(123));
        assert_eq!(n("1500e-3"), Some(1));
        assert_eq!(n("18446744073709551615"), Some(u64::MAX));
        assert_eq!(n("18446744073709551616"), None);
        assert_eq!(n("1e30"), None);
        assert_eq!(n("-1"), None);
        assert_eq!(n("\"1\""), None);
        assert_eq!(n("true"), None);
    }

    #[test]
    fn numbers_and_hex_are_written_as_fmt_would() {
        let mut rng = crate::clock::SplitMix64::new(9);
        let mut samples = vec![0, 9, 10, 99, 100, 1_000_000_007, u64::MAX];
        samples.extend((0..200).map(|_| rng.next_u64() >> (rng.next_u64() % 64)));
        for n in samples {
            let mut out = String::from("x");
            push_u64(&mut out, n);
            assert_eq!(out, format!("x{n}"));
            let mut hex = String::new();
            push_hex(&mut hex, &n.to_be_bytes());
            assert_eq!(hex, format!("{n:016x}"));
        }
    }

    #[test]
    fn objects_escape_keys_and_values() {
        let mut o = Object::new();
        o.str("a\"b", "line\nbreak\u{1}")
            .num("n", 42)
            .bool("t", true);
        assert_eq!(
            o.finish(),
            r#"{"a\"b":"line\nbreak\u0001","n":42,"t":true}"#
        );
        assert_eq!(Object::new().finish(), "{}");
    }
}
