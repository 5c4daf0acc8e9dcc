//! The page ↔ service worker protocol: every message that crosses
//! `postMessage` between an Outbox page and the Outbox service worker, as
//! one Rust enum with one codec.
//!
//! # Design
//!
//! The two sides are separate wasm modules (`outbox-page`, `outbox-sw`)
//! built from this crate, so the protocol lives here, once: a sender builds
//! a [`Message`] and encodes it; a receiver decodes whatever `data` it got
//! and matches on the variant. Nothing else spells a message type or a
//! field name. A message is a plain object (structured clone copies it),
//! `{type, …fields}`:
//!
//! | `type` | direction | fields | meaning |
//! |---|---|---|---|
//! | `TOKEN_UPDATED` | page → worker | `token`, `origin?`, `expiresIn?` | a fresh token, for one origin or every configured one; kept in memory only |
//! | `flush` | page → worker | — | deliver what is due now |
//! | `online` | page → worker | — | the page saw `online` (workers get no such event in Chromium): what waited only for the network is due |
//! | `OUTBOX_REPLAY` | page → worker | `key` | the page is about to send a request itself: let the next request of this client with this [`replay_key`](crate::fetch::replay_key) pass untouched; acknowledged on the transferred port |
//! | `TOKEN_REFRESH_REQUIRED` | worker → page | `origin`, `queueId` | entries wait for a token of `origin`: the page asks its app (`getToken`) and answers `TOKEN_UPDATED` |
//! | `OUTBOX_WAKE` | worker → page | `queueId`, `at` | the worker's next flush is due at `at` (ms since the epoch): each page keeps a timer and sends `flush` then, because an idle worker's own timer dies with it (Firefox and Safari stop a worker ~30 s after its last event and have no Background Sync) |
//!
//! Decoding is strict about the messages it knows (a missing or mistyped
//! field is a [`CodecError`] naming it) and quiet about the rest: a message
//! with another `type` — an app's own, on a worker the app shares with
//! Outbox — decodes to `Ok(None)` and is left to the app.
//!
//! The codec is written over the record traits of `codec.rs`, so it
//! also builds and is tested natively.

// Natively (xtask, which reads the message types) the codec is not called.
#![cfg_attr(not(any(target_arch = "wasm32", test)), allow(dead_code))]

use crate::codec::{RecordBuild, RecordValue};
use crate::error::CodecError;

/// A message between an Outbox page and the Outbox service worker.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Page → worker: a fresh token for `origin` (or every configured
    /// origin), valid for `expires_in` seconds when known.
    TokenUpdated {
        /// The bearer token (kept in memory only).
        token: String,
        /// The API origin it is for; `None`: every configured origin.
        origin: Option<String>,
        /// Seconds it stays valid, when the app said.
        expires_in: Option<f64>,
    },
    /// Page → worker: deliver what is due now.
    Flush,
    /// Page → worker: the page saw the `online` event.
    Online,
    /// Page → worker: the page sends a request with this replay key itself.
    Replay {
        /// [`crate::fetch::replay_key`] of the request.
        key: String,
    },
    /// Worker → page: entries of `queue_id` wait for a token of `origin`.
    TokenRefreshRequired {
        /// The worker's queue (its database name).
        queue_id: String,
        /// The API origin a token is needed for.
        origin: String,
    },
    /// Worker → page: the worker's next flush of `queue_id` is due at `at`.
    Wake {
        /// The worker's queue (its database name).
        queue_id: String,
        /// When, in milliseconds since the epoch.
        at: f64,
    },
}

impl Message {
    /// `type` of [`Message::TokenUpdated`].
    pub const TOKEN_UPDATED: &'static str = "TOKEN_UPDATED";
    /// `type` of [`Message::Flush`].
    pub const FLUSH: &'static str = "flush";
    /// `type` of [`Message::Online`].
    pub const ONLINE: &'static str = "online";
    /// `type` of [`Message::Replay`].
    pub const REPLAY: &'static str = "OUTBOX_REPLAY";
    /// `type` of [`Message::TokenRefreshRequired`].
    pub const TOKEN_REFRESH_REQUIRED: &'static str = "TOKEN_REFRESH_REQUIRED";
    /// `type` of [`Message::Wake`].
    pub const WAKE: &'static str = "OUTBOX_WAKE";

    /// The `type`s a worker takes from pages (the worker module's message
    /// listener hands only these to the engine).
    pub const TO_WORKER: [&'static str; 4] =
        [Self::TOKEN_UPDATED, Self::FLUSH, Self::ONLINE, Self::REPLAY];

    /// This message's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::TokenUpdated { .. } => Self::TOKEN_UPDATED,
            Message::Flush => Self::FLUSH,
            Message::Online => Self::ONLINE,
            Message::Replay { .. } => Self::REPLAY,
            Message::TokenRefreshRequired { .. } => Self::TOKEN_REFRESH_REQUIRED,
            Message::Wake { .. } => Self::WAKE,
        }
    }

    /// The message as a plain object, ready for `postMessage`.
    pub(crate) fn encode<V: RecordBuild>(&self) -> V {
        let mut m = V::object();
        m.set("type", V::string(self.kind()));
        match self {
            Message::TokenUpdated {
                token,
                origin,
                expires_in,
            } => {
                m.set("token", V::string(token));
                if let Some(origin) = origin {
                    m.set("origin", V::string(origin));
                }
                if let Some(seconds) = expires_in {
                    m.set("expiresIn", V::number(*seconds));
                }
            }
            Message::Flush | Message::Online => {}
            Message::Replay { key } => m.set("key", V::string(key)),
            Message::TokenRefreshRequired { queue_id, origin } => {
                m.set("queueId", V::string(queue_id));
                m.set("origin", V::string(origin));
            }
            Message::Wake { queue_id, at } => {
                m.set("queueId", V::string(queue_id));
                m.set("at", V::number(*at));
            }
        }
        m
    }

    /// Reads a received `data`: `Ok(None)` when it is not an Outbox message
    /// (no `type`, or one this protocol does not have).
    pub(crate) fn decode<V: RecordValue>(data: &V) -> Result<Option<Self>, CodecError> {
        let Some(kind) = data.get("type").as_string() else {
            return Ok(None);
        };
        let message = match kind.as_str() {
            Self::TOKEN_UPDATED => Message::TokenUpdated {
                token: required(data, Self::TOKEN_UPDATED, "token")?,
                origin: optional(data, Self::TOKEN_UPDATED, "origin")?,
                expires_in: match data.get("expiresIn") {
                    v if v.is_absent() => None,
                    _ => Some(number(data, Self::TOKEN_UPDATED, "expiresIn")?),
                },
            },
            Self::FLUSH => Message::Flush,
            Self::ONLINE => Message::Online,
            Self::REPLAY => Message::Replay {
                key: required(data, Self::REPLAY, "key")?,
            },
            Self::TOKEN_REFRESH_REQUIRED => Message::TokenRefreshRequired {
                queue_id: optional(data, Self::TOKEN_REFRESH_REQUIRED, "queueId")?
                    .unwrap_or_default(),
                origin: required(data, Self::TOKEN_REFRESH_REQUIRED, "origin")?,
            },
            Self::WAKE => Message::Wake {
                queue_id: required(data, Self::WAKE, "queueId")?,
                at: number(data, Self::WAKE, "at")?,
            },
            _ => return Ok(None),
        };
        Ok(Some(message))
    }
}

#[cfg(target_arch = "wasm32")]
impl Message {
    /// The message as a JS object, ready for `postMessage`.
    pub fn to_js(&self) -> wasm_bindgen::JsValue {
        self.encode()
    }

    /// Reads a received `event.data` (the same strict decoding as every message).
    pub fn from_js(data: &wasm_bindgen::JsValue) -> Result<Option<Self>, CodecError> {
        Self::decode(data)
    }
}

/// A string field that must be there.
fn required<V: RecordValue>(
    data: &V,
    kind: &'static str,
    field: &'static str,
) -> Result<String, CodecError> {
    optional(data, kind, field)?.ok_or(CodecError::new(kind, field, "missing"))
}

/// A finite number field that must be there.
fn number<V: RecordValue>(
    data: &V,
    kind: &'static str,
    field: &'static str,
) -> Result<f64, CodecError> {
    let value = data.get(field);
    if value.is_absent() {
        return Err(CodecError::new(kind, field, "missing"));
    }
    value
        .as_f64()
        .filter(|n| n.is_finite())
        .ok_or(CodecError::new(kind, field, "not a number"))
}

/// A string field that may be absent (but is a string when present).
fn optional<V: RecordValue>(
    data: &V,
    kind: &'static str,
    field: &'static str,
) -> Result<Option<String>, CodecError> {
    let value = data.get(field);
    if value.is_absent() {
        return Ok(None);
    }
    value
        .as_string()
        .map(Some)
        .ok_or(CodecError::new(kind, field, "not a string"))
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod tests {
    use super::*;
    use crate::codec::plain::Plain;

    fn every_message() -> Vec<Message> {
        vec![
            Message::TokenUpdated {
                token: "t".into(),
                origin: Some("https://api.mypurecloud.com".into()),
                expires_in: Some(3599.0),
            },
            Message::TokenUpdated {
                token: "t".into(),
                origin: None,
                expires_in: None,
            },
            Message::Flush,
            Message::Online,
            Message::Replay {
                key: "00ff00ff00ff00ff".into(),
            },
            Message::TokenRefreshRequired {
                queue_id: "outbox".into(),
                origin: "https://api.mypurecloud.com".into(),
            },
            Message::Wake {
                queue_id: "outbox".into(),
                at: 1_796_000_000_000.0,
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in every_message() {
            let encoded: Plain = message.encode();
            assert_eq!(
                Message::decode(&encoded),
                Ok(Some(message.clone())),
                "{message:?}"
            );
        }
    }

    #[test]
    fn the_worker_takes_exactly_the_page_to_worker_messages() {
        let mut to_worker: Vec<_> = every_message()
            .iter()
            .map(Message::kind)
            .filter(|k| ![Message::TOKEN_REFRESH_REQUIRED, Message::WAKE].contains(k))
            .collect();
        to_worker.dedup();
        assert_eq!(to_worker, Message::TO_WORKER);
    }

    #[test]
    fn other_messages_are_left_alone() {
        let mut app = Plain::object();
        app.set("type", Plain::string("SKIP_WAITING"));
        assert_eq!(Message::decode(&app), Ok(None));
        assert_eq!(Message::decode(&Plain::string("hello")), Ok(None));
        assert_eq!(Message::decode(&Plain::Undefined), Ok(None));
    }

    #[test]
    fn a_broken_outbox_message_names_its_field() {
        let mut m = Plain::object();
        m.set("type", Plain::string(Message::TOKEN_UPDATED));
        assert_eq!(
            Message::decode(&m),
            Err(CodecError::new(Message::TOKEN_UPDATED, "token", "missing"))
        );
        m.set("token", Plain::number(7.0));
        assert_eq!(
            Message::decode(&m),
            Err(CodecError::new(
                Message::TOKEN_UPDATED,
                "token",
                "not a string"
            ))
        );
        m.set("token", Plain::string("t"));
        m.set("expiresIn", Plain::string("soon"));
        assert_eq!(
            Message::decode(&m),
            Err(CodecError::new(
                Message::TOKEN_UPDATED,
                "expiresIn",
                "not a number"
            ))
        );
        let mut r = Plain::object();
        r.set("type", Plain::string(Message::REPLAY));
        assert_eq!(
            Message::decode(&r),
            Err(CodecError::new(Message::REPLAY, "key", "missing"))
        );
        let mut w = Plain::object();
        w.set("type", Plain::string(Message::WAKE));
        w.set("queueId", Plain::string("outbox"));
        assert_eq!(
            Message::decode(&w),
            Err(CodecError::new(Message::WAKE, "at", "missing"))
        );
        w.set("at", Plain::number(f64::NAN));
        assert_eq!(
            Message::decode(&w),
            Err(CodecError::new(Message::WAKE, "at", "not a number"))
        );
    }
}
