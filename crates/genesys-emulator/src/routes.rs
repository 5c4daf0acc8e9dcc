//! The REST message routes: matching paths, validating bodies, and the
//! success bodies (shapes from the Platform API models).

use hyper::Method;
use serde_json::{Map, Value, json};

use crate::config::TextLimits;
use crate::errors::ApiError;
use crate::inspect::RouteKind;
use crate::urlencoded::percent_decode;

/// A matched `/api` route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Route {
    /// Agent send.
    AgentSend {
        conversation_id: String,
        communication_id: String,
    },
    /// Agentless outbound.
    Agentless,
    /// Open Messaging inbound.
    OpenInbound { integration_id: String },
    /// The seed tutorials' invented route.
    Seed,
    /// Guest history (`GET /api/v2/webmessaging/messages`).
    History,
}

/// Matches method and path; `None` means 404.
pub(crate) fn match_route(method: &Method, path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.trim_end_matches('/').split('/').skip(1).collect();
    let post = method == Method::POST;
    match segs.as_slice() {
        ["api", "v2", "conversations", "messages", "agentless"] if post => Some(Route::Agentless),
        [
            "api",
            "v2",
            "conversations",
            "messages",
            cid,
            "communications",
            comm,
            "messages",
        ] if post && !cid.is_empty() && !comm.is_empty() => Some(Route::AgentSend {
            conversation_id: percent_decode(cid, false),
            communication_id: percent_decode(comm, false),
        }),
        [
            "api",
            "v2",
            "conversations",
            "messages",
            iid,
            "inbound",
            "open",
            "message",
        ] if post && !iid.is_empty() => Some(Route::OpenInbound {
            integration_id: percent_decode(iid, false),
        }),
        ["api", "v2", "conversations", "messaging", "messages"] if post => Some(Route::Seed),
        ["api", "v2", "webmessaging", "messages"] if method == Method::GET => Some(Route::History),
        _ => None,
    }
}

/// What a message carries.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Content {
    Text(String),
    Media(Vec<String>),
    Template(Value),
}

impl Content {
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Content::Text(_) => "text",
            Content::Media(_) => "media",
            Content::Template(_) => "template",
        }
    }

    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Content::Text(t) => Some(t),
            _ => None,
        }
    }
}

/// A validated message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parsed {
    AgentSend {
        conversation_id: String,
        communication_id: String,
        content: Content,
    },
    Agentless {
        from_address: String,
        /// `toAddress`, absent when the recipient is an `externalContactId`.
        to_address: Option<String>,
        /// `toAddress`, else `externalContactId`: the ordering key.
        recipient: String,
        messenger_type: String,
        content: Content,
        use_existing: Option<bool>,
    },
    OpenInbound {
        integration_id: String,
        /// `channel.from`, as sent.
        from: Value,
        from_id: String,
        /// `channel.time` in the service's format (UTC, milliseconds, `Z`).
        time: String,
        message_id: Option<String>,
        /// `channel.metadata`, as sent.
        channel_metadata: Option<Value>,
        text: Option<String>,
        /// The answer's `content` (`OpenMessageContent` items).
        content: Vec<Value>,
        /// `metadata`, as sent (string values).
        metadata: Option<Value>,
    },
    Seed {
        lane: String,
        conversation_id: Option<String>,
        text: String,
        external_id: Option<String>,
    },
}

impl Parsed {
    pub(crate) fn route_kind(&self) -> RouteKind {
        match self {
            Parsed::AgentSend { .. } => RouteKind::AgentSend,
            Parsed::Agentless { .. } => RouteKind::Agentless,
            Parsed::OpenInbound { .. } => RouteKind::OpenInbound,
            Parsed::Seed { .. } => RouteKind::Seed,
        }
    }

    /// The ordering key.
    pub(crate) fn lane(&self) -> &str {
        match self {
            Parsed::AgentSend {
                conversation_id, ..
            } => conversation_id,
            Parsed::Agentless { recipient, .. } => recipient,
            Parsed::OpenInbound { from_id, .. } => from_id,
            Parsed::Seed { lane, .. } => lane,
        }
    }

    /// The text, if a text message.
    pub(crate) fn text(&self) -> Option<&str> {
        match self {
            Parsed::AgentSend { content, .. } | Parsed::Agentless { content, .. } => content.text(),
            Parsed::OpenInbound { text, .. } => text.as_deref(),
            Parsed::Seed { text, .. } => Some(text),
        }
    }

    /// `text`, `media` or `template`.
    pub(crate) fn content_kind(&self) -> &'static str {
        match self {
            Parsed::AgentSend { content, .. } | Parsed::Agentless { content, .. } => content.kind(),
            Parsed::OpenInbound { text: None, .. } => "media",
            _ => "text",
        }
    }

    /// The idempotency carrier in the body (`externalId`, `channel.messageId`).
    pub(crate) fn body_key(&self) -> Option<&str> {
        match self {
            Parsed::OpenInbound { message_id, .. } => message_id.as_deref(),
            Parsed::Seed { external_id, .. } => external_id.as_deref(),
            _ => None,
        }
    }

    /// A conversation id given by the request itself.
    pub(crate) fn given_conversation(&self) -> Option<&str> {
        match self {
            Parsed::AgentSend {
                conversation_id, ..
            } => Some(conversation_id),
            Parsed::Seed {
                conversation_id, ..
            } => conversation_id.as_deref(),
            _ => None,
        }
    }
}

fn field<'a>(obj: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    obj.get(name).filter(|v| !v.is_null())
}

fn string_field(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<String>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_field(
            path,
            "invalid.type",
            format!("{path} must be a string"),
        )),
    }
}

fn required_string(obj: &Map<String, Value>, name: &str, path: &str) -> Result<String, ApiError> {
    match string_field(obj, name, path)? {
        Some(s) if !s.trim().is_empty() => Ok(s),
        _ => Err(ApiError::bad_field(
            path,
            "required",
            format!("{path} is required"),
        )),
    }
}

fn check_text(text: &str, path: &str, max: usize) -> Result<(), ApiError> {
    if text.trim().is_empty() {
        return Err(ApiError::bad_field(
            path,
            "required",
            format!("{path} must not be empty"),
        ));
    }
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::bad_field(
            path,
            "too.long",
            format!("{path} is {n} characters long; the maximum is {max}"),
        ));
    }
    Ok(())
}

fn object<'a>(v: &'a Value, path: &str) -> Result<&'a Map<String, Value>, ApiError> {
    v.as_object().ok_or_else(|| {
        let field = if path.is_empty() { "body" } else { path };
        ApiError::bad_field(
            field,
            "invalid.type",
            format!("{field} must be a JSON object"),
        )
    })
}

/// Validates the body of a message route.
pub(crate) fn parse(route: &Route, body: &Value, limits: &TextLimits) -> Result<Parsed, ApiError> {
    let obj = object(body, "")?;
    match route {
        Route::AgentSend {
            conversation_id,
            communication_id,
        } => {
            let content = exactly_one_content(obj, limits.agent)?;
            Ok(Parsed::AgentSend {
                conversation_id: conversation_id.clone(),
                communication_id: communication_id.clone(),
                content,
            })
        }
        Route::Agentless => parse_agentless(obj, limits),
        Route::OpenInbound { integration_id } => parse_open(obj, integration_id, limits),
        Route::Seed => parse_seed(obj, limits),
        Route::History => Err(ApiError::not_found("history is not a message route")),
    }
}

fn exactly_one_content(obj: &Map<String, Value>, max: usize) -> Result<Content, ApiError> {
    let present: Vec<&str> = ["textBody", "mediaIds", "messagingTemplate"]
        .into_iter()
        .filter(|k| field(obj, k).is_some())
        .collect();
    match present.as_slice() {
        [] => Err(ApiError::bad_field(
            "textBody",
            "required",
            "Exactly one of textBody, mediaIds or messagingTemplate is required",
        )),
        [one] => match *one {
            "textBody" => {
                let t = required_string(obj, "textBody", "textBody")?;
                check_text(&t, "textBody", max)?;
                Ok(Content::Text(t))
            }
            "mediaIds" => {
                let ids = field(obj, "mediaIds")
                    .and_then(Value::as_array)
                    .and_then(|a| {
                        a.iter()
                            .map(|v| v.as_str().map(str::to_owned))
                            .collect::<Option<Vec<_>>>()
                    })
                    .filter(|ids| !ids.is_empty())
                    .ok_or_else(|| {
                        ApiError::bad_field(
                            "mediaIds",
                            "invalid.type",
                            "mediaIds must be a non-empty array of strings",
                        )
                    })?;
                Ok(Content::Media(ids))
            }
            _ => {
                let t = field(obj, "messagingTemplate")
                    .filter(|v| v.is_object())
                    .cloned()
                    .ok_or_else(|| {
                        ApiError::bad_field(
                            "messagingTemplate",
                            "invalid.type",
                            "messagingTemplate must be an object",
                        )
                    })?;
                Ok(Content::Template(t))
            }
        },
        [_, second, ..] => Err(ApiError::bad_field(
            second,
            "exclusive",
            format!(
                "Only one of textBody, mediaIds or messagingTemplate may be given; got {}",
                present.join(", ")
            ),
        )),
    }
}

/// Messenger types of `SendAgentlessOutboundMessageRequest.toAddressMessengerType`.
const AGENTLESS_TYPES: [&str; 5] = ["sms", "whatsapp", "open", "webmessaging", "apple"];

fn parse_agentless(obj: &Map<String, Value>, limits: &TextLimits) -> Result<Parsed, ApiError> {
    let from_address = required_string(obj, "fromAddress", "fromAddress")?;
    let messenger_type = required_string(obj, "toAddressMessengerType", "toAddressMessengerType")?;
    if !AGENTLESS_TYPES.contains(&messenger_type.as_str()) {
        return Err(ApiError::bad_field(
            "toAddressMessengerType",
            "invalid.value",
            format!(
                "toAddressMessengerType must be one of {}",
                AGENTLESS_TYPES.join(", ")
            ),
        ));
    }
    let to_address = string_field(obj, "toAddress", "toAddress")?.filter(|s| !s.trim().is_empty());
    let external_contact = string_field(obj, "externalContactId", "externalContactId")?
        .filter(|s| !s.trim().is_empty());
    // The model: externalContactId is for webmessaging, sms and open only, and
    // webmessaging must use it instead of toAddress.
    if external_contact.is_some()
        && !matches!(messenger_type.as_str(), "webmessaging" | "sms" | "open")
    {
        return Err(ApiError::bad_field(
            "externalContactId",
            "invalid.value",
            "externalContactId is supported for webmessaging, sms and open only",
        ));
    }
    if messenger_type == "webmessaging" && to_address.is_some() {
        return Err(ApiError::bad_field(
            "toAddress",
            "invalid.value",
            "toAddress cannot be used with webmessaging; use externalContactId",
        ));
    }
    let recipient = to_address.clone().or(external_contact).ok_or_else(|| {
        let field = if messenger_type == "webmessaging" {
            "externalContactId"
        } else {
            "toAddress"
        };
        ApiError::bad_field(
            field,
            "required",
            "toAddress or externalContactId is required",
        )
    })?;
    let use_existing = match field(obj, "useExistingActiveConversation") {
        None => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            return Err(ApiError::bad_field(
                "useExistingActiveConversation",
                "invalid.type",
                "useExistingActiveConversation must be a boolean",
            ));
        }
    };
    let max = if messenger_type == "sms" {
        limits.sms
    } else {
        limits.agentless
    };
    let content = match (field(obj, "textBody"), field(obj, "messagingTemplate")) {
        (Some(_), None) => {
            let t = required_string(obj, "textBody", "textBody")?;
            check_text(&t, "textBody", max)?;
            Content::Text(t)
        }
        (None, Some(t)) if t.is_object() && messenger_type != "sms" => Content::Template(t.clone()),
        (None, Some(_)) => {
            return Err(ApiError::bad_field(
                "messagingTemplate",
                "invalid.value",
                "messagingTemplate must be an object, and SMS needs textBody",
            ));
        }
        (None, None) => {
            return Err(ApiError::bad_field(
                "textBody",
                "required",
                "textBody is required",
            ));
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_field(
                "messagingTemplate",
                "exclusive",
                "Only one of textBody or messagingTemplate may be given",
            ));
        }
    };
    Ok(Parsed::Agentless {
        from_address,
        to_address,
        recipient,
        messenger_type,
        content,
        use_existing,
    })
}

fn parse_open(
    obj: &Map<String, Value>,
    integration_id: &str,
    limits: &TextLimits,
) -> Result<Parsed, ApiError> {
    let channel_v = field(obj, "channel")
        .ok_or_else(|| ApiError::bad_field("channel", "required", "channel is required"))?;
    let channel = object(channel_v, "channel")?;
    let from_v = field(channel, "from").ok_or_else(|| {
        ApiError::bad_field("channel.from", "required", "channel.from is required")
    })?;
    let from = object(from_v, "channel.from")?;
    let from_id = required_string(from, "id", "channel.from.id")?;
    let id_type = required_string(from, "idType", "channel.from.idType")?;
    if !matches!(id_type.as_str(), "Email" | "Phone" | "Opaque") {
        return Err(ApiError::bad_field(
            "channel.from.idType",
            "invalid.value",
            "channel.from.idType must be one of Email, Phone, Opaque",
        ));
    }
    let time = required_string(channel, "time", "channel.time")?;
    let Some(time) = crate::clock::normalize_iso8601(&time) else {
        return Err(ApiError::bad_field(
            "channel.time",
            "invalid.value",
            "channel.time must be an ISO-8601 date-time, e.g. 2024-05-01T12:00:00.000Z",
        ));
    };
    let message_id = string_field(channel, "messageId", "channel.messageId")?;
    let channel_metadata = optional_object(channel, "metadata", "channel.metadata")?;
    let text = string_field(obj, "text", "text")?;
    if let Some(t) = &text
        && t.chars().count() > limits.open
    {
        check_text(t, "text", limits.open)?;
    }
    let content = open_content(obj)?;
    let text = text.filter(|t| !t.trim().is_empty());
    if text.is_none() && content.is_empty() {
        return Err(ApiError::bad_field(
            "text",
            "required",
            "text or content is required",
        ));
    }
    let metadata = string_map(obj, "metadata", "metadata")?;
    Ok(Parsed::OpenInbound {
        integration_id: integration_id.to_owned(),
        from: from_v.clone(),
        from_id,
        time,
        message_id,
        channel_metadata,
        text,
        content,
        metadata,
    })
}

/// An optional object field.
fn optional_object(
    obj: &Map<String, Value>,
    name: &str,
    path: &str,
) -> Result<Option<Value>, ApiError> {
    match field(obj, name) {
        None => Ok(None),
        Some(v) => object(v, path).map(|_| Some(v.clone())),
    }
}

/// An optional `dict(str, str)` field.
fn string_map(obj: &Map<String, Value>, name: &str, path: &str) -> Result<Option<Value>, ApiError> {
    let Some(v) = optional_object(obj, name, path)? else {
        return Ok(None);
    };
    if v.as_object()
        .is_some_and(|m| m.values().all(Value::is_string))
    {
        Ok(Some(v))
    } else {
        Err(ApiError::bad_field(
            path,
            "invalid.type",
            format!("{path} must map names to strings"),
        ))
    }
}

/// Media types of an attachment (`OpenContentAttachment.mediaType`).
const MEDIA_TYPES: [&str; 5] = ["Image", "Video", "Audio", "File", "Link"];

/// Validates `content` (`OpenInboundMessageContent` items) and makes the
/// answer's `OpenMessageContent` items (`contentType: "Attachment"`).
fn open_content(obj: &Map<String, Value>) -> Result<Vec<Value>, ApiError> {
    let Some(v) = field(obj, "content") else {
        return Ok(Vec::new());
    };
    let items = v.as_array().ok_or_else(|| {
        ApiError::bad_field("content", "invalid.type", "content must be an array")
    })?;
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let path = format!("content[{i}]");
        let item = object(item, &path)?;
        let apath = format!("{path}.attachment");
        let a = field(item, "attachment")
            .ok_or_else(|| ApiError::bad_field(&apath, "required", format!("{apath} is required")))
            .and_then(|a| object(a, &apath))?;
        let media_type = required_string(a, "mediaType", &format!("{apath}.mediaType"))?;
        if !MEDIA_TYPES.contains(&media_type.as_str()) {
            return Err(ApiError::bad_field(
                &format!("{apath}.mediaType"),
                "invalid.value",
                format!(
                    "{apath}.mediaType must be one of {}",
                    MEDIA_TYPES.join(", ")
                ),
            ));
        }
        let url = required_string(a, "url", &format!("{apath}.url"))?;
        let mime = required_string(a, "mime", &format!("{apath}.mime"))?;
        let mut attachment = json!({
            "id": string_field(a, "id", &format!("{apath}.id"))?.unwrap_or_else(crate::ids::new_uuid),
            "mediaType": media_type,
            "url": url,
            "mime": mime,
        });
        for name in ["text", "sha256", "filename"] {
            if let (Value::Object(o), Some(s)) = (
                &mut attachment,
                string_field(a, name, &format!("{apath}.{name}"))?,
            ) {
                o.insert(name.to_owned(), json!(s));
            }
        }
        out.push(json!({"contentType": "Attachment", "attachment": attachment}));
    }
    Ok(out)
}

fn parse_seed(obj: &Map<String, Value>, limits: &TextLimits) -> Result<Parsed, ApiError> {
    let to_id = match field(obj, "to") {
        None => None,
        Some(to) => {
            string_field(object(to, "to")?, "id", "to.id")?.filter(|s| !s.trim().is_empty())
        }
    };
    let conversation_id =
        string_field(obj, "conversationId", "conversationId")?.filter(|s| !s.trim().is_empty());
    let lane = to_id
        .clone()
        .or_else(|| conversation_id.clone())
        .ok_or_else(|| {
            ApiError::bad_field("to.id", "required", "to.id or conversationId is required")
        })?;
    let text = required_string(obj, "text", "text")?;
    check_text(&text, "text", limits.seed)?;
    let external_id = string_field(obj, "externalId", "externalId")?;
    Ok(Parsed::Seed {
        lane,
        conversation_id,
        text,
        external_id,
    })
}

/// A `MessageData`-shaped body.
fn message_data(
    id: &str,
    conversation_id: &str,
    content: &Content,
    time: &str,
    messenger_type: &str,
) -> Value {
    let mut m = json!({
        "id": id,
        "conversationId": conversation_id,
        "timestamp": time,
        "direction": "outbound",
        "messengerType": messenger_type,
        "status": "queued",
        "selfUri": format!("/api/v2/conversations/messages/{conversation_id}/messages/{id}"),
    });
    if let Value::Object(o) = &mut m {
        match content {
            Content::Text(t) => {
                o.insert("textBody".into(), json!(t));
                o.insert(
                    "normalizedMessage".into(),
                    json!({"id": id, "type": "Text", "text": t, "direction": "Outbound"}),
                );
            }
            Content::Media(ids) => {
                o.insert(
                    "media".into(),
                    Value::Array(ids.iter().map(|i| json!({"id": i})).collect()),
                );
            }
            Content::Template(_) => {}
        }
    }
    m
}

/// The success body of a validated message.
pub(crate) fn success_body(p: &Parsed, id: &str, conversation_id: &str, time: &str) -> Value {
    match p {
        Parsed::AgentSend { content, .. } => {
            message_data(id, conversation_id, content, time, "open")
        }
        Parsed::Agentless {
            from_address,
            to_address,
            messenger_type,
            content,
            use_existing,
            ..
        } => {
            let mut m = message_data(id, conversation_id, content, time, messenger_type);
            if let Value::Object(o) = &mut m {
                o.insert("fromAddress".into(), json!(from_address));
                if let Some(to) = to_address {
                    o.insert("toAddress".into(), json!(to));
                }
            }
            let mut r = json!({
                "id": id,
                "conversationId": conversation_id,
                "fromAddress": from_address,
                "messengerType": messenger_type,
                "timestamp": time,
                "message": m,
            });
            if let Value::Object(o) = &mut r {
                if let Some(to) = to_address {
                    o.insert("toAddress".into(), json!(to));
                }
                match content {
                    Content::Text(t) => {
                        o.insert("textBody".into(), json!(t));
                    }
                    Content::Template(t) => {
                        o.insert("messagingTemplate".into(), t.clone());
                    }
                    Content::Media(_) => {}
                }
                if let Some(b) = use_existing {
                    o.insert("useExistingActiveConversation".into(), json!(b));
                }
            }
            r
        }
        Parsed::OpenInbound {
            integration_id,
            from,
            time: sent_time,
            message_id,
            channel_metadata,
            text,
            content,
            metadata,
            ..
        } => {
            // `OpenMessagingChannel`: the integration is both the channel id
            // and the recipient (`to`, required by the model).
            let mut channel = json!({
                "id": integration_id,
                "platform": "Open",
                "type": "Private",
                "to": {"id": integration_id},
                "from": from,
                "time": sent_time,
            });
            let mut r = json!({
                "id": id,
                "type": "Text",
                "conversationId": conversation_id,
            });
            if let Value::Object(c) = &mut channel {
                if let Some(m) = message_id {
                    c.insert("messageId".into(), json!(m));
                }
                if let Some(m) = channel_metadata {
                    c.insert("metadata".into(), m.clone());
                }
            }
            if let Value::Object(o) = &mut r {
                if let Some(t) = text {
                    o.insert("text".into(), json!(t));
                }
                if !content.is_empty() {
                    o.insert("content".into(), Value::Array(content.clone()));
                }
                if let Some(m) = metadata {
                    o.insert("metadata".into(), m.clone());
                }
                o.insert("channel".into(), channel);
            }
            r
        }
        Parsed::Seed {
            text, external_id, ..
        } => {
            let mut r = json!({
                "id": id,
                "conversationId": conversation_id,
                "text": text,
                "timestamp": time,
                "status": "queued",
            });
            if let (Value::Object(o), Some(e)) = (&mut r, external_id) {
                o.insert("externalId".into(), json!(e));
            }
            r
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_routes() {
        let p = |m: Method, s: &str| match_route(&m, s);
        assert_eq!(
            p(Method::POST, "/api/v2/conversations/messages/agentless"),
            Some(Route::Agentless)
        );
        assert_eq!(
            p(
                Method::POST,
                "/api/v2/conversations/messages/c1/communications/m1/messages"
            ),
            Some(Route::AgentSend {
                conversation_id: "c1".into(),
                communication_id: "m1".into()
            })
        );
        assert_eq!(
            p(
                Method::POST,
                "/api/v2/conversations/messages/i1/inbound/open/message"
            ),
            Some(Route::OpenInbound {
                integration_id: "i1".into()
            })
        );
        assert_eq!(
            p(Method::POST, "/api/v2/conversations/messaging/messages"),
            Some(Route::Seed)
        );
        assert_eq!(
            p(Method::GET, "/api/v2/webmessaging/messages"),
            Some(Route::History)
        );
        assert_eq!(
            p(Method::GET, "/api/v2/conversations/messaging/messages"),
            None
        );
        assert_eq!(p(Method::POST, "/api/v2/nothing"), None);
    }

    #[test]
    fn agent_needs_exactly_one_content() {
        let r = Route::AgentSend {
            conversation_id: "c".into(),
            communication_id: "m".into(),
        };
        let l = TextLimits::default();
        assert!(parse(&r, &json!({"textBody": "hi"}), &l).is_ok());
        assert!(parse(&r, &json!({"mediaIds": ["a"]}), &l).is_ok());
        let none = parse(&r, &json!({}), &l)
            .err()
            .map(|e| e.details[0].field_name.clone());
        assert_eq!(none, Some(Some("textBody".into())));
        let two = parse(&r, &json!({"textBody": "a", "mediaIds": ["x"]}), &l)
            .err()
            .map(|e| e.details[0].error_code.clone());
        assert_eq!(two.as_deref(), Some("exclusive"));
        let long = "x".repeat(l.agent + 1);
        assert!(parse(&r, &json!({"textBody": long}), &l).is_err());
    }
}
