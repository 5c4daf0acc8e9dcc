//! The Guest WebSocket protocol codec against the Guest API's own schema
//! (`testdata/genesys/webmessaging-guest.swagger.json`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::classify::{ClassifyConfig, Outcome, classify};
use outbox_core::guest::{self, Frame};
use serde_json::{Value, json};

fn swagger() -> Value {
    serde_json::from_str(include_str!(
        "../../../testdata/genesys/webmessaging-guest.swagger.json"
    ))
    .unwrap()
}

/// Checks `value` against a definition: required fields present, every
/// field a known property of the right JSON type, enums respected; recurses
/// through `$ref`s and inline objects.
fn conforms(defs: &Value, schema: &Value, value: &Value, path: &str) {
    let schema = match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => &defs[r.trim_start_matches("#/definitions/")],
        None => schema,
    };
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        assert!(
            values.contains(value),
            "{path}: {value} is not one of {values:?}"
        );
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => assert!(value.is_string(), "{path}: {value} is not a string"),
        Some("boolean") => assert!(value.is_boolean(), "{path}: not a boolean"),
        Some("integer") | Some("number") => assert!(value.is_number(), "{path}: not a number"),
        Some("array") => {
            for (i, item) in value.as_array().expect("array").iter().enumerate() {
                conforms(defs, &schema["items"], item, &format!("{path}[{i}]"));
            }
        }
        Some("object") | None => {
            let Some(obj) = value.as_object() else {
                panic!("{path}: {value} is not an object")
            };
            for req in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let req = req.as_str().unwrap();
                assert!(
                    obj.contains_key(req),
                    "{path}: required `{req}` missing in {value}"
                );
            }
            let Some(props) = schema.get("properties").and_then(Value::as_object) else {
                return; // a free-form object
            };
            let props = Some(props);
            let extra = schema.get("additionalProperties");
            for (k, v) in obj {
                match props.and_then(|p| p.get(k)) {
                    Some(p) => conforms(defs, p, v, &format!("{path}.{k}")),
                    None => match extra {
                        Some(Value::Object(s)) => {
                            conforms(defs, &Value::Object(s.clone()), v, &format!("{path}.{k}"))
                        }
                        _ => panic!("{path}: `{k}` is not a property of this type"),
                    },
                }
            }
        }
        Some(other) => panic!("unhandled schema type {other}"),
    }
}

fn check(definition: &str, frame: &str) {
    let sw = swagger();
    let defs = &sw["definitions"];
    let value: Value = serde_json::from_str(frame).unwrap();
    // Requests may not carry fields the schema does not know.
    let mut strict = defs[definition].clone();
    strict["additionalProperties"] = json!(false);
    conforms(defs, &strict, &value, definition);
}

#[test]
fn requests_match_the_schema() {
    check(
        "ConfigureSessionRequest",
        &guest::configure_session("dep-1", "tok-1", "tr-1"),
    );
    let msg = guest::on_message(
        "tok-1",
        "tr-2",
        "hello \"there\"\n",
        "entry-1",
        "2026-01-01T00:00:00.000Z",
    );
    check("SendMessageRequest", &msg);
    let v: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(v["message"]["text"], "hello \"there\"\n");
    assert_eq!(v["message"]["metadata"]["outboxId"], "entry-1");
    assert_eq!(v["tracingId"], "tr-2");
    check("GetJwtRequest", &guest::get_jwt("tok-1", "tr-3"));
    check("SendEchoRequest", &guest::echo("tok-1", "tr-4"));
}

fn frame(class: &str, code: u32, body: Value, tracing: Option<&str>) -> String {
    let mut f = json!({ "type": if class == "StructuredMessage" { "message" } else { "response" }, "class": class, "code": code, "body": body });
    if let Some(t) = tracing {
        f["tracingId"] = json!(t);
    }
    let sw = swagger();
    let defs = &sw["definitions"];
    // `body` is typed per class (a plain string for class `string`, as
    // Genesys sends it), so the envelope is checked without it.
    let mut envelope = f.clone();
    envelope["body"] = json!({});
    conforms(defs, &defs["BaseMessage"], &envelope, "BaseMessage");
    if let Some(def) = defs.get(class).filter(|d| d.is_object()) {
        conforms(defs, def, &f["body"], class);
    }
    f.to_string()
}

#[test]
fn server_frames_are_read() {
    let session = frame(
        "SessionResponse",
        200,
        json!({ "connected": true, "newSession": false, "readOnly": false }),
        Some("s-1"),
    );
    assert_eq!(
        guest::parse_frame(&session).unwrap(),
        Frame::Session {
            tracing_id: Some("s-1".into()),
            connected: true,
            new_session: false,
            read_only: false
        }
    );
    let echo = frame(
        "StructuredMessage",
        200,
        json!({ "type": "Text", "direction": "Inbound", "id": "m-1", "text": "hi", "channel": { "time": "2026-01-01T00:00:00Z", "messageId": "m-1" } }),
        Some("tr-2"),
    );
    let parsed = guest::parse_frame(&echo).unwrap();
    assert_eq!(parsed.tracing_id(), Some("tr-2"));
    assert!(
        matches!(parsed, Frame::Message { ref direction, .. } if direction.as_deref() == Some("Inbound"))
    );
    let jwt = frame(
        "JwtResponse",
        200,
        json!({ "jwt": "j.w.t", "exp": 1_900_000_000 }),
        Some("tr-3"),
    );
    assert_eq!(
        guest::parse_frame(&jwt).unwrap(),
        Frame::Jwt {
            tracing_id: Some("tr-3".into()),
            jwt: "j.w.t".into(),
            exp: 1_900_000_000
        }
    );
    let tmr = frame(
        "TooManyRequestsErrorMessage",
        429,
        json!({ "name": "TooManyRequests", "message": "x", "retryAfter": 3, "errorCode": 4029, "errorMessage": "Message rate too high for this session" }),
        Some("tr-4"),
    );
    assert_eq!(
        guest::parse_frame(&tmr).unwrap(),
        Frame::TooManyRequests {
            tracing_id: Some("tr-4".into()),
            retry_after_secs: 3,
            message: "Message rate too high for this session".into()
        }
    );
    let too_long = frame(
        "string",
        4011,
        json!("Message exceeds the maximum length of 4096 characters"),
        Some("tr-5"),
    );
    assert_eq!(
        guest::parse_frame(&too_long).unwrap(),
        Frame::Error {
            tracing_id: Some("tr-5".into()),
            code: 4011,
            message: "Message exceeds the maximum length of 4096 characters".into()
        }
    );
    assert_eq!(
        guest::parse_frame(&frame("SessionExpiredEvent", 200, json!({}), None)).unwrap(),
        Frame::SessionEnded {
            class: "SessionExpiredEvent".into()
        }
    );
    assert_eq!(
        guest::parse_frame(&frame("ConnectionClosedEvent", 200, json!({}), None)).unwrap(),
        Frame::ConnectionClosed
    );
    for bad in [
        "",
        "{",
        "[]",
        r#"{"type":"response"}"#,
        r#"{"class":"JwtResponse","code":200,"body":{}}"#,
    ] {
        assert!(guest::parse_frame(bad).is_err(), "{bad}");
    }
}

fn outcome(frame: &Frame) -> Outcome {
    classify(
        &Ok(guest::answer(frame).unwrap()),
        false,
        0,
        &ClassifyConfig::default(),
    )
}

#[test]
fn answers_mean_what_the_design_says() {
    let echo = Frame::Message {
        tracing_id: Some("t".into()),
        id: Some("m".into()),
        direction: Some("Inbound".into()),
        text: None,
    };
    assert_eq!(outcome(&echo), Outcome::Delivered { status: 200 });
    let tmr = Frame::TooManyRequests {
        tracing_id: None,
        retry_after_secs: 3,
        message: "slow down".into(),
    };
    match outcome(&tmr) {
        Outcome::RateLimited {
            retry_after: Some(ra),
            error,
        } => {
            assert_eq!(ra.delay_ms, 3_000);
            assert_eq!(error.code.as_deref(), Some("4029"));
        }
        other => panic!("{other:?}"),
    }
    for (code, status) in [(4011, 413), (4013, 413)] {
        match outcome(&Frame::Error {
            tracing_id: None,
            code,
            message: "too big".into(),
        }) {
            Outcome::Permanent { error } => {
                assert_eq!(
                    (error.status, error.code.as_deref(), error.message.as_str()),
                    (Some(status), Some(code.to_string().as_str()), "too big")
                );
            }
            other => panic!("{code}: {other:?}"),
        }
    }
    for code in [4006, 4007] {
        assert!(
            matches!(
                outcome(&Frame::Error {
                    tracing_id: None,
                    code,
                    message: String::new()
                }),
                Outcome::Retryable { .. }
            ),
            "{code}"
        );
    }
    assert!(matches!(
        outcome(&Frame::Error {
            tracing_id: None,
            code: 403,
            message: String::new()
        }),
        Outcome::Permanent { .. }
    ));
    assert!(guest::answer(&Frame::ConnectionClosed).is_none());
}

#[test]
fn history_pages_find_tagged_messages() {
    let body = json!({
        "entities": [
            { "id": "m-2", "type": "Text", "text": "second", "direction": "Inbound", "channel": { "time": "t" }, "metadata": { "outboxId": "e-2" } },
            { "id": "a-1", "type": "Text", "text": "hello from an agent", "direction": "Outbound" },
            { "id": "m-1", "type": "Text", "text": "first", "direction": "Inbound" },
            { "no-id": true }
        ],
        "pageSize": 25, "pageNumber": 1, "total": 3, "pageCount": 2
    });
    let page = guest::parse_history(body.to_string().as_bytes()).unwrap();
    assert_eq!(page.page_count, 2);
    let ids: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.id.as_str(), m.outbox_id.as_deref()))
        .collect();
    assert_eq!(ids, [("m-2", Some("e-2")), ("a-1", None), ("m-1", None)]);
    assert!(guest::parse_history(b"{\"entities\":3}").is_err());
    assert!(guest::parse_history(b"<html>").is_err());
}

#[test]
fn guest_entries_are_keyed_by_session_and_paced_per_socket_origin() {
    use outbox_core::clock::SplitMix64;
    use outbox_core::entry::EntryId;
    let id = EntryId::random(&mut SplitMix64::new(3));
    let p = guest::prepare(
        id,
        "wss://webmessaging.mypurecloud.ie/v1?deploymentId=d-1",
        "session-9",
        "hi",
    );
    assert_eq!(
        (p.route.as_str(), p.lane.as_str(), p.origin.as_str()),
        ("guest", "session-9", "wss://webmessaging.mypurecloud.ie")
    );
    assert_eq!(
        p.request.header("idempotency-key"),
        Some(id.to_string().as_str())
    );
    assert_eq!(guest::entry_text(&p.request.body).as_deref(), Some("hi"));
    assert!(!p.needs_token && p.bearer.is_none());
    let local = guest::prepare(id, "ws://127.0.0.1:8081/v1?deploymentId=d", "s", "x");
    assert_eq!(local.origin, "ws://127.0.0.1:8081");
    assert_eq!(
        guest::http_origin("wss://webmessaging.mypurecloud.ie/v1?x=1").as_deref(),
        Some("https://webmessaging.mypurecloud.ie")
    );
    assert_eq!(
        guest::http_origin("ws://127.0.0.1:8081/v1").as_deref(),
        Some("http://127.0.0.1:8081")
    );
    assert_eq!(guest::http_origin("https://x/v1"), None);
}

#[test]
fn entry_bodies_round_trip() {
    let body = guest::entry_body("a \"quoted\" ✓ text");
    assert_eq!(
        guest::entry_text(&body).as_deref(),
        Some("a \"quoted\" ✓ text")
    );
}

#[test]
fn quick_reply_answers_and_typing_match_the_schema() {
    let entry = guest::GuestEntry::quick_reply("Yes \"please\"", "yes");
    let msg = guest::on_message_entry(
        "tok-1",
        "tr-5",
        &entry,
        "entry-2",
        "2026-01-01T00:00:00.000Z",
    );
    check("SendMessageRequest", &msg);
    let v: Value = serde_json::from_str(&msg).unwrap();
    assert_eq!(v["message"]["type"], "Text");
    assert_eq!(v["message"]["text"], "");
    let br = &v["message"]["content"][0];
    assert_eq!(br["contentType"], "ButtonResponse");
    assert_eq!(
        br["buttonResponse"],
        json!({"type": "QuickReply", "text": "Yes \"please\"", "payload": "yes"})
    );
    assert_eq!(v["message"]["metadata"]["customMessageId"], "entry-2");
    assert_eq!(v["message"]["metadata"]["outboxId"], "entry-2");
    // Text messages carry both keys too.
    let text: Value = serde_json::from_str(&guest::on_message(
        "t",
        "tr",
        "x",
        "e-3",
        "2026-01-01T00:00:00.000Z",
    ))
    .unwrap();
    assert_eq!(text["message"]["metadata"]["customMessageId"], "e-3");
    assert!(text["message"].get("content").is_none());
    let typing = guest::typing("tok-1", "tr-6", "2026-01-01T00:00:00.000Z");
    check("SendMessageRequest", &typing);
    let t: Value = serde_json::from_str(&typing).unwrap();
    assert_eq!(
        t["message"]["events"][0],
        json!({"eventType": "Typing", "typing": {"type": "On"}})
    );
}

#[test]
fn quick_reply_entries_round_trip() {
    let entry = guest::GuestEntry::quick_reply("Yes", "yes-payload");
    let body = entry.body();
    assert_eq!(guest::GuestEntry::parse(&body), Some(entry));
    assert_eq!(guest::entry_text(&body).as_deref(), Some("Yes"));
    let plain = guest::entry_body("just text");
    assert_eq!(
        guest::GuestEntry::parse(&plain),
        Some(guest::GuestEntry::text("just text"))
    );
    assert_eq!(guest::GuestEntry::parse(b"{\"nope\":1}"), None);
    use outbox_core::clock::SplitMix64;
    use outbox_core::entry::EntryId;
    let id = EntryId::random(&mut SplitMix64::new(5));
    let p = guest::prepare_entry(
        id,
        "ws://127.0.0.1:8081/v1?deploymentId=d",
        "s",
        &guest::GuestEntry::quick_reply("No", "no"),
    );
    assert_eq!(p.lane, "s");
    assert_eq!(
        guest::GuestEntry::parse(&p.request.body)
            .and_then(|e| e.button)
            .map(|b| b.payload),
        Some("no".to_owned())
    );
}

#[test]
fn history_finds_messages_by_custom_message_id() {
    let body = json!({
        "entities": [
            { "id": "m-3", "type": "Text", "text": "", "direction": "Inbound", "metadata": { "customMessageId": "e-9" } },
            { "id": "m-2", "type": "Text", "text": "both", "direction": "Inbound", "metadata": { "customMessageId": "x", "outboxId": "e-8" } }
        ],
        "pageSize": 25, "pageNumber": 1, "total": 2, "pageCount": 1
    });
    let page = guest::parse_history(body.to_string().as_bytes()).unwrap();
    let ids: Vec<_> = page
        .messages
        .iter()
        .map(|m| m.outbox_id.as_deref())
        .collect();
    assert_eq!(ids, [Some("e-9"), Some("e-8")]);
}
