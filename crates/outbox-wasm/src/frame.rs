//! What crosses the boundary: a frame of items, each a JSON text, a plain
//! text, bytes or nothing.
//!
//! Every call of the module reads its input from one frame (which the
//! host writes into the module's input buffer) and writes its output as
//! another. An item is a tag byte, its length (`u32`, little-endian) and
//! its payload:
//!
//! | tag | payload |
//! |---|---|
//! | `j` | a JSON text (UTF-8): records, lists, events, descriptions |
//! | `t` | a plain text (UTF-8): a URL, a token, a message |
//! | `b` | bytes: a body |
//! | `n` | nothing (`undefined` or `null` on the host's side) |
//!
//! Bodies travel as bytes, never inside JSON (no base64, no copy into a
//! string); everything else that has structure travels as JSON, which the
//! host reads and writes natively and the module with core's scanner
//! ([`outbox_core::json`]). The host's side is `web/host/frame.ts`.

use alloc::vec::Vec;

/// Tag of a JSON text.
pub const JSON: u8 = b'j';
/// Tag of a plain text.
pub const TEXT: u8 = b't';
/// Tag of bytes.
pub const BYTES: u8 = b'b';
/// Tag of nothing.
pub const NULL: u8 = b'n';

/// One item of a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Item<'a> {
    /// A JSON text.
    Json(&'a str),
    /// A plain text.
    Text(&'a str),
    /// Bytes.
    Bytes(&'a [u8]),
    /// Nothing.
    Null,
}

impl<'a> Item<'a> {
    /// The text of a JSON or plain text item.
    pub fn text(self) -> Option<&'a str> {
        match self {
            Item::Json(t) | Item::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// Reads a frame item by item. A frame that ends early or holds an
/// unknown tag or text that is not UTF-8 reads as ending there: the
/// reader of each call treats a missing item as a missing argument.
#[derive(Debug, Clone)]
pub struct Frame<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Frame<'a> {
    /// A frame over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    /// The next item, if any.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Item<'a>> {
        let tag = *self.buf.get(self.pos)?;
        let len = self.buf.get(self.pos + 1..self.pos + 5)?;
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        let start = self.pos + 5;
        let payload = self.buf.get(start..start.checked_add(len)?)?;
        self.pos = start + len;
        match tag {
            JSON => core::str::from_utf8(payload).ok().map(Item::Json),
            TEXT => core::str::from_utf8(payload).ok().map(Item::Text),
            BYTES => Some(Item::Bytes(payload)),
            NULL => Some(Item::Null),
            _ => None,
        }
    }

    /// The next item's text (JSON or plain); `None` when it is not one.
    pub fn text(&mut self) -> Option<&'a str> {
        self.next().and_then(Item::text)
    }

    /// The next item's bytes (a text's bytes too); empty when missing.
    pub fn bytes(&mut self) -> &'a [u8] {
        match self.next() {
            Some(Item::Bytes(b)) => b,
            Some(Item::Json(t) | Item::Text(t)) => t.as_bytes(),
            _ => &[],
        }
    }
}

/// Writes a frame.
#[derive(Debug, Default)]
pub struct Out(Vec<u8>);

impl Out {
    /// An empty frame.
    pub fn new() -> Self {
        Self(Vec::new())
    }

    fn item(&mut self, tag: u8, payload: &[u8]) -> &mut Self {
        self.0.push(tag);
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_le_bytes());
        self.0.extend_from_slice(payload);
        self
    }

    /// Adds a JSON text.
    pub fn json(&mut self, text: &str) -> &mut Self {
        self.item(JSON, text.as_bytes())
    }

    /// Adds a plain text.
    pub fn text(&mut self, text: &str) -> &mut Self {
        self.item(TEXT, text.as_bytes())
    }

    /// Adds bytes.
    pub fn bytes(&mut self, bytes: &[u8]) -> &mut Self {
        self.item(BYTES, bytes)
    }

    /// Adds nothing (an absent value).
    pub fn null(&mut self) -> &mut Self {
        self.item(NULL, &[])
    }

    /// The frame's bytes.
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }

    /// The frame's bytes so far.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_round_trip_and_damage_ends_the_frame() {
        let mut out = Out::new();
        out.json("{\"a\":1}").text("héllo").bytes(&[0, 255]).null();
        let bytes = out.into_vec();
        let mut f = Frame::new(&bytes);
        assert_eq!(f.next(), Some(Item::Json("{\"a\":1}")));
        assert_eq!(f.text(), Some("héllo"));
        assert_eq!(f.bytes(), &[0, 255]);
        assert_eq!(f.next(), Some(Item::Null));
        assert_eq!(f.next(), None);
        // Cut short, or a tag that is not one: the frame ends there.
        assert_eq!(Frame::new(&bytes[..7]).nth_json(), None);
        assert_eq!(Frame::new(&[b'x', 0, 0, 0, 0]).next(), None);
        assert_eq!(Frame::new(&[JSON, 2, 0, 0, 0, 0xff, 0xfe]).next(), None);
        assert_eq!(Frame::new(&[]).bytes(), &[] as &[u8]);
    }

    impl Frame<'_> {
        fn nth_json(&mut self) -> Option<&str> {
            self.text()
        }
    }
}
