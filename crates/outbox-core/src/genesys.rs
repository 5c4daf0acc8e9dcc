//! Genesys Cloud's addresses and the REST requests the page API builds for
//! an app, free of I/O.
//!
//! * **Regions**: every Genesys Cloud region domain ([`REGIONS`]); a
//!   region's REST API lives at `https://api.<region>` ([`api_origin`]) and
//!   its Guest WebSocket at `wss://webmessaging.<region>/v1`
//!   ([`guest_socket_url`]). The route table, the configuration and the
//!   guest outbox all ask here.
//! * **Requests**: an agent's message ([`agent_message`]) and an Open
//!   Messaging inbound message ([`open_message`]), in the shapes of
//!   Genesys's API (see `../shared/genesys` in the design notes; the
//!   emulator answers them as Genesys does). Each is an
//!   [`IncomingRequest`], routed and queued like one an app sent itself.
//!   Ids become single URL path segments, escaped as `encodeURIComponent`
//!   escapes them; an id that would change the path (`/`, `?`, `#`) or is
//!   empty is refused.
//!
//! ```
//! use outbox_core::genesys::{self, IdType, OpenFrom};
//! let base = genesys::api_origin(genesys::region("mypurecloud.ie").unwrap());
//! let agent = genesys::agent_message(&base, "conv-1", "comm 2", "Hello").unwrap();
//! assert_eq!(
//!     agent.url,
//!     "https://api.mypurecloud.ie/api/v2/conversations/messages/conv-1/communications/comm%202/messages"
//! );
//! assert_eq!(agent.body, br#"{"textBody":"Hello"}"#);
//! let from = OpenFrom { id: "cust-7", id_type: IdType::Opaque, nickname: None };
//! let open = genesys::open_message(&base, "integ", &from, "Hi", "2026-11-30T07:00:00.000Z").unwrap();
//! assert!(open.url.ends_with("/api/v2/conversations/messages/integ/inbound/open/message"));
//! ```

use alloc::{borrow::ToOwned, string::String, vec};
use core::str::FromStr;

use crate::json::Object;
use crate::request::IncomingRequest;

/// Every Genesys Cloud region domain (from Genesys's own SDKs).
pub const REGIONS: &[&str] = &[
    "mypurecloud.com",
    "mypurecloud.ie",
    "mypurecloud.com.au",
    "mypurecloud.jp",
    "mypurecloud.de",
    "usw2.pure.cloud",
    "cac1.pure.cloud",
    "apne2.pure.cloud",
    "apse1.pure.cloud",
    "euw2.pure.cloud",
    "aps1.pure.cloud",
    "use2.us-gov-pure.cloud",
    "sae1.pure.cloud",
    "mec1.pure.cloud",
    "apne3.pure.cloud",
    "euc2.pure.cloud",
    "mxc1.pure.cloud",
    "edee1.eusc-pure.cloud",
];

/// What cannot be built, and why (the page API throws it as the message of
/// an `Error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GenesysError {
    /// Not one of [`REGIONS`].
    NotARegion(String),
    /// An id that is empty or would change the URL's path.
    BadId(String),
    /// An Open Messaging `idType` Genesys does not know.
    BadIdType(String),
}

impl GenesysError {
    /// The message (the same text as `Display`, built without `core::fmt`).
    pub fn text(&self) -> String {
        let (before, value, after) = match self {
            Self::NotARegion(v) => ("`", v, "` is not a Genesys Cloud region domain"),
            Self::BadId(v) => ("`", v, "` is not a valid id"),
            Self::BadIdType(v) => ("idType must be Email, Phone or Opaque, not `", v, "`"),
        };
        [before, value.as_str(), after].concat()
    }
}

impl core::fmt::Display for GenesysError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(&self.text())
    }
}

impl core::error::Error for GenesysError {}

/// `domain` as a known region, or why not.
pub fn region(domain: &str) -> Result<&'static str, GenesysError> {
    REGIONS
        .iter()
        .find(|r| **r == domain)
        .copied()
        .ok_or_else(|| GenesysError::NotARegion(domain.to_owned()))
}

/// The REST API origin of a region: `https://api.<region>`.
pub fn api_origin(region: &str) -> String {
    let mut origin = String::from("https://api.");
    origin.push_str(region);
    origin
}

/// The Guest WebSocket of a region: `wss://webmessaging.<region>/v1`.
pub fn guest_socket_url(region: &str) -> String {
    let mut url = String::from("wss://webmessaging.");
    url.push_str(region);
    url.push_str("/v1");
    url
}

/// An agent's message into a conversation:
/// `POST {api}/api/v2/conversations/messages/{conversationId}/communications/{communicationId}/messages`
/// with `{"textBody": text}`.
pub fn agent_message(
    api: &str,
    conversation_id: &str,
    communication_id: &str,
    text: &str,
) -> Result<IncomingRequest, GenesysError> {
    let mut url = path(api, "/api/v2/conversations/messages/");
    push_segment(&mut url, conversation_id)?;
    url.push_str("/communications/");
    push_segment(&mut url, communication_id)?;
    url.push_str("/messages");
    let mut body = Object::new();
    body.str("textBody", text);
    Ok(json_post(url, body))
}

/// How Open Messaging identifies the sender of an inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IdType {
    /// An e-mail address.
    Email,
    /// A phone number.
    Phone,
    /// Any id of the app's own (the default).
    #[default]
    Opaque,
}

impl IdType {
    /// The name Genesys uses.
    pub fn as_str(self) -> &'static str {
        match self {
            IdType::Email => "Email",
            IdType::Phone => "Phone",
            IdType::Opaque => "Opaque",
        }
    }
}

impl FromStr for IdType {
    type Err = GenesysError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "Email" => Ok(IdType::Email),
            "Phone" => Ok(IdType::Phone),
            "Opaque" => Ok(IdType::Opaque),
            other => Err(GenesysError::BadIdType(other.to_owned())),
        }
    }
}

/// The sender of an Open Messaging inbound message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenFrom<'a> {
    /// The sender's id.
    pub id: &'a str,
    /// What kind of id it is.
    pub id_type: IdType,
    /// A display name, if any.
    pub nickname: Option<&'a str>,
}

/// An Open Messaging inbound message from `from`, sent at `time` (an ISO
/// 8601 instant): `POST {api}/api/v2/conversations/messages/{integrationId}/inbound/open/message`
/// with `{"channel": {"from": {...}, "time": time}, "text": text}`.
pub fn open_message(
    api: &str,
    integration_id: &str,
    from: &OpenFrom<'_>,
    text: &str,
    time: &str,
) -> Result<IncomingRequest, GenesysError> {
    let mut url = path(api, "/api/v2/conversations/messages/");
    push_segment(&mut url, integration_id)?;
    url.push_str("/inbound/open/message");
    let mut sender = Object::new();
    sender
        .str("id", from.id)
        .str("idType", from.id_type.as_str());
    if let Some(nickname) = from.nickname {
        sender.str("nickname", nickname);
    }
    let mut channel = Object::new();
    channel.raw("from", &sender.finish()).str("time", time);
    let mut body = Object::new();
    body.raw("channel", &channel.finish()).str("text", text);
    Ok(json_post(url, body))
}

fn path(api: &str, path: &str) -> String {
    let mut url = String::with_capacity(api.len() + path.len() + 64);
    url.push_str(api.trim_end_matches('/'));
    url.push_str(path);
    url
}

fn json_post(url: String, body: Object) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        url,
        headers: vec![("content-type".into(), "application/json".into())],
        body: body.finish().into_bytes(),
    }
}

/// Appends `id` as one path segment, escaped as `encodeURIComponent`
/// escapes it; an empty id, or one with `/`, `?` or `#`, is refused.
fn push_segment(url: &mut String, id: &str) -> Result<(), GenesysError> {
    if id.is_empty() || id.contains(['/', '?', '#']) {
        return Err(GenesysError::BadId(id.to_owned()));
    }
    for &b in id.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b) {
            url.push(char::from(b));
        } else {
            url.push('%');
            crate::json::push_hex_in(url, &[b], b"0123456789ABCDEF");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;
    #[allow(unused_imports)]
    use std::{
        borrow::ToOwned,
        boxed::Box,
        format,
        string::{String, ToString},
        vec,
        vec::Vec,
    };

    const BASE: &str = "https://api.mypurecloud.ie";

    #[test]
    fn regions_are_known_and_give_their_addresses() {
        assert_eq!(region("mypurecloud.ie"), Ok("mypurecloud.ie"));
        assert_eq!(
            region("example.com").map_err(|e| e.to_string()),
            Err("`example.com` is not a Genesys Cloud region domain".to_owned())
        );
        assert_eq!(api_origin("usw2.pure.cloud"), "https://api.usw2.pure.cloud");
        assert_eq!(
            guest_socket_url("usw2.pure.cloud"),
            "wss://webmessaging.usw2.pure.cloud/v1"
        );
    }

    #[test]
    fn an_agent_message_has_genesys_path_and_body() {
        let r = agent_message(&format!("{BASE}/"), "c-1", "m-2", "say \"hi\"").unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(
            r.url,
            format!("{BASE}/api/v2/conversations/messages/c-1/communications/m-2/messages")
        );
        assert_eq!(
            r.headers,
            [("content-type".into(), "application/json".into())]
        );
        let body = r.body.as_slice();
        assert_eq!(
            json::find(body, &["textBody"])
                .and_then(|v| v.as_str())
                .as_deref(),
            Some("say \"hi\"")
        );
    }

    #[test]
    fn an_open_message_names_its_sender_channel_and_time() {
        let from = OpenFrom {
            id: "+353 1",
            id_type: "Phone".parse().unwrap(),
            nickname: Some("Ann"),
        };
        let r = open_message(BASE, "integ-7", &from, "hello", "2026-11-30T07:00:00Z").unwrap();
        assert_eq!(
            r.url,
            format!("{BASE}/api/v2/conversations/messages/integ-7/inbound/open/message")
        );
        let body = r.body.as_slice();
        let get = |path: &[&str]| {
            json::find(body, path)
                .and_then(|v| v.as_str())
                .map(|s| s.into_owned())
        };
        assert_eq!(get(&["channel", "from", "id"]).as_deref(), Some("+353 1"));
        assert_eq!(
            get(&["channel", "from", "idType"]).as_deref(),
            Some("Phone")
        );
        assert_eq!(
            get(&["channel", "from", "nickname"]).as_deref(),
            Some("Ann")
        );
        assert_eq!(
            get(&["channel", "time"]).as_deref(),
            Some("2026-11-30T07:00:00Z")
        );
        assert_eq!(get(&["text"]).as_deref(), Some("hello"));
        let anonymous = OpenFrom {
            nickname: None,
            ..from
        };
        let r = open_message(BASE, "i", &anonymous, "x", "t").unwrap();
        assert!(json::find(&r.body, &["channel", "from", "nickname"]).is_none());
    }

    #[test]
    fn ids_are_one_escaped_segment_and_bad_ones_are_refused() {
        let r = agent_message(BASE, "a b+é", "(x)!*'~._-", "t").unwrap();
        assert!(
            r.url
                .contains("/messages/a%20b%2B%C3%A9/communications/(x)!*'~._-/messages"),
            "{}",
            r.url
        );
        for bad in ["", "a/b", "a?b", "a#b"] {
            assert_eq!(
                agent_message(BASE, bad, "c", "t").map_err(|e| e.to_string()),
                Err(format!("`{bad}` is not a valid id"))
            );
            assert!(
                open_message(
                    BASE,
                    bad,
                    &OpenFrom {
                        id: "x",
                        id_type: IdType::Opaque,
                        nickname: None
                    },
                    "t",
                    "z"
                )
                .is_err()
            );
        }
        assert_eq!(
            "Fax".parse::<IdType>().map_err(|e| e.to_string()),
            Err("idType must be Email, Phone or Opaque, not `Fax`".to_owned())
        );
        assert_eq!(IdType::default(), IdType::Opaque);
    }
}
