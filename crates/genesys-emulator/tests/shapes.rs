//! The shape-conformance suite: every route and every guest frame class the
//! emulator serves, checked field by field against Genesys's shapes in
//! `testdata/genesys/` (Platform models from the SDKs, the Guest API schema,
//! the deployment configuration). The checks are strict (no undeclared
//! field), so a change that drifts from Genesys fails here. The first test
//! shows the checker itself refuses drifted bodies.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::shapes::{self, assert_platform, frame_problems, model_problems};
use common::ws::*;
use common::*;
use genesys_emulator::{AgentReply, Faults};
use serde_json::{Value, json};

#[test]
fn the_checker_refuses_drift() {
    let ok = json!({"id": "m", "timestamp": "2024-05-01T12:00:00.000Z", "status": "queued"});
    assert!(model_problems(&ok, "MessageData").is_empty());
    let cases = [
        json!({"timestamp": "2024-05-01T12:00:00.000Z", "status": "queued", "extra": 1}),
        json!({"timestamp": "2024-05-01T12:00:00.000Z"}),
        json!({"timestamp": "2024-05-01T12:00:00Z", "status": "queued"}),
        json!({"timestamp": "2024-05-01T12:00:00.000Z", "status": "lost"}),
        json!({"timestamp": "2024-05-01T12:00:00.000Z", "status": "queued", "normalizedMessage": {"text": "no type"}}),
    ];
    for c in cases {
        assert!(
            !model_problems(&c, "MessageData").is_empty(),
            "accepted {c}"
        );
    }
    // Open inbound's answer without the channel's required `to`.
    let no_to = json!({"channel": {"from": {"id": "u", "idType": "Opaque"}, "time": "2024-05-01T12:00:00.000Z"}, "type": "Text"});
    assert!(!model_problems(&no_to, "OpenMessageNormalizedMessage").is_empty());
    // Frames: an unknown class, a body field the schema lacks, a missing required one.
    let frames = [
        json!({"type": "message", "class": "Nope", "code": 200, "body": {}}),
        json!({"type": "response", "class": "JwtResponse", "code": 200, "body": {"jwt": "j", "exp": 1, "x": 1}}),
        json!({"type": "response", "class": "PresignedUrlResponse", "code": 200, "body": {"attachmentId": "a", "url": "u"}}),
        json!({"type": "later", "class": "SessionResponse", "code": 200, "body": {"connected": true}}),
        json!({"type": "message", "class": "StructuredMessage", "code": 200, "body": {"type": "Text", "direction": "Sideways"}}),
    ];
    for f in frames {
        assert!(!frame_problems(&f).is_empty(), "accepted {f}");
    }
    assert!(frame_problems(&json!({"type": "response", "class": "SessionResponse", "code": 200, "body": {"connected": true}})).is_empty());
}

/// A POST with a bearer token on a fresh connection.
async fn post(emu: &Emulator, token: &str, path: &str, body: &Value) -> Resp {
    post_json(emu, token, path, body).await.unwrap()
}

#[tokio::test]
async fn every_rest_answer_has_its_genesys_shape() {
    let emu = start_with(|c| c.guest.message_rate = 100).await;
    let t = oauth_token(&emu).await;
    let ok = |r: &Resp| {
        assert!(
            (200..300).contains(&r.status),
            "{}: {}",
            r.status,
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    };

    // OAuth: no Platform model; the fields Genesys's login service answers.
    let grant = emu.control().mint_token(None, None);
    let g = serde_json::to_value(&grant).unwrap();
    let keys: BTreeSet<&str> = g.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        BTreeSet::from(["access_token", "token_type", "expires_in"])
    );
    let refused = call(
        emu.local_addr(),
        "POST",
        "/oauth/token",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", "Basic eDp5"),
        ],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(refused.status, 400);
    let keys: BTreeSet<String> = refused
        .json()
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        keys,
        ["description", "error", "error_description"]
            .map(String::from)
            .into()
    );

    // Agent send: text, media, template.
    for body in [
        json!({"textBody": "hi"}),
        json!({"mediaIds": ["m-1"]}),
        json!({"messagingTemplate": {"responseId": "r"}}),
    ] {
        assert_platform(&ok(&post(&emu, &t, AGENT_PATH, &body).await), "MessageData");
    }
    // Agentless: every messenger type, by address or external contact.
    for body in [
        json!({"fromAddress": "+1", "toAddress": "+2", "toAddressMessengerType": "sms", "textBody": "x"}),
        json!({"fromAddress": "i", "toAddress": "155", "toAddressMessengerType": "whatsapp", "messagingTemplate": {"responseId": "r"}}),
        json!({"fromAddress": "i", "toAddress": "u", "toAddressMessengerType": "open", "textBody": "x", "useExistingActiveConversation": true}),
        json!({"fromAddress": "i", "toAddress": "+3", "toAddressMessengerType": "apple", "textBody": "x"}),
        json!({"fromAddress": "demo-deployment", "externalContactId": "ec", "toAddressMessengerType": "webmessaging", "textBody": "x"}),
    ] {
        assert_platform(
            &ok(&post(&emu, &t, AGENTLESS_PATH, &body).await),
            "SendAgentlessOutboundMessageResponse",
        );
    }
    // Open inbound: text, attachment, both, with metadata.
    let channel = json!({"from": {"id": "c", "idType": "Phone", "firstName": "A"}, "time": "2024-05-01T12:00:00.25-05:00", "messageId": "p"});
    let attachment = json!([{"attachment": {"mediaType": "File", "url": "https://e/x.pdf", "mime": "application/pdf", "filename": "x.pdf", "sha256": "00"}}]);
    for body in [
        json!({"channel": channel, "text": "t"}),
        json!({"channel": channel, "content": attachment}),
        json!({"channel": channel, "text": "t", "content": attachment, "metadata": {"k": "v"}}),
    ] {
        let v = ok(&post(&emu, &t, OPEN_PATH, &body).await);
        assert_platform(&v, "OpenMessageNormalizedMessage");
        assert_eq!(v["channel"]["time"], "2024-05-01T17:00:00.250Z");
    }
    // The seed tutorials' route has no Genesys model (Genesys has no such
    // route); its documented shape, with the service's time format.
    let seed = ok(&post(
        &emu,
        &t,
        SEED_PATH,
        &json!({"to": {"id": "u"}, "text": "x", "externalId": "e"}),
    )
    .await);
    let keys: BTreeSet<&str> = seed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "id",
            "conversationId",
            "text",
            "timestamp",
            "status",
            "externalId"
        ])
    );
    assert!(shapes::is_service_time(seed["timestamp"].as_str().unwrap()));

    // Errors: every status the REST side answers is an ErrorBody.
    let errors = [
        (
            post(&emu, &t, AGENT_PATH, &json!({})).await,
            400,
            "bad.request",
        ),
        (
            call(
                emu.local_addr(),
                "POST",
                AGENT_PATH,
                &[("content-type", "application/json")],
                "{}",
            )
            .await,
            401,
            "authentication.required",
        ),
        (
            post(&emu, "nope", AGENT_PATH, &json!({})).await,
            401,
            "bad.credentials",
        ),
        (
            post(&emu, &t, "/api/v2/nothing", &json!({})).await,
            404,
            "not.found",
        ),
        (
            call(
                emu.local_addr(),
                "POST",
                AGENT_PATH,
                &[
                    ("authorization", &format!("Bearer {t}")),
                    ("content-type", "text/plain"),
                ],
                "x",
            )
            .await,
            415,
            "unsupported.media.type",
        ),
    ];
    for (r, status, code) in &errors {
        assert_error(r, *status, code);
    }
    let expired = emu.control().mint_token(None, None).access_token;
    emu.control().expire_token(&expired);
    assert_error(
        &post(&emu, &expired, AGENT_PATH, &json!({})).await,
        401,
        "credentials.expired",
    );
    let big = json!({"textBody": "x".repeat(70_000)});
    assert_error(
        &post(&emu, &t, AGENT_PATH, &big).await,
        413,
        "request.entity.too.large",
    );
    emu.control()
        .set_faults(Faults {
            daily_limit: true,
            ..Faults::default()
        })
        .unwrap();
    assert_error(
        &post(&emu, &t, AGENT_PATH, &json!({"textBody": "x"})).await,
        429,
        "too.many.requests.retry.after",
    );
    emu.control()
        .set_faults(Faults {
            rate_limit: Some(1),
            ..Faults::default()
        })
        .unwrap();
    assert_error(
        &post(&emu, &t, AGENT_PATH, &json!({"textBody": "x"})).await,
        429,
        "too.many.requests.retry.after",
    );
    emu.control()
        .set_faults(Faults {
            error_rate: 1.0,
            error_statuses: vec![503],
            ..Faults::default()
        })
        .unwrap();
    assert_error(
        &post(&emu, &t, AGENT_PATH, &json!({"textBody": "x"})).await,
        503,
        "service.unavailable",
    );
    emu.control().clear_faults();

    // Deployment configuration.
    let cfg = call(
        emu.local_addr(),
        "GET",
        "/webdeployments/v1/deployments/demo-deployment/config.json",
        &[],
        "",
    )
    .await;
    let problems =
        shapes::schema_problems(shapes::deployment_schema(), &ok(&cfg), "DeploymentConfig");
    assert!(problems.is_empty(), "{problems:?}");

    // Guest history with every kind of entity: text, agent text with quick
    // replies, a button response, an attachment.
    let mut guest = Guest::connect(&emu).await;
    guest.configure("hist").await;
    guest.message("hist", "hello", "m1").await;
    guest.recv().await;
    emu.control()
        .agent_reply(
            Some("hist"),
            None,
            &AgentReply {
                text: "choose".into(),
                quick_replies: vec!["A".into()],
            },
        )
        .unwrap();
    guest.recv().await;
    guest.send(json!({"action": "onMessage", "token": "hist", "tracingId": "br", "message": {"type": "Text", "text": "",
        "content": [{"contentType": "ButtonResponse", "buttonResponse": {"type": "QuickReply", "text": "A", "payload": "A"}}]}})).await;
    guest.recv().await;
    guest.send(json!({"action": "onAttachment", "token": "hist", "attachmentId": "f", "fileName": "f.png", "fileType": "image/png", "fileSize": 3})).await;
    let url = guest.recv().await["body"]["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let put = call(
        emu.local_addr(),
        "PUT",
        url.strip_prefix(&emu.base_url()).unwrap(),
        &[("content-type", "image/png")],
        "png",
    )
    .await;
    assert_eq!((put.status, put.body.len()), (200, 0));
    guest.recv().await;
    guest.send(json!({"action": "onMessage", "token": "hist", "tracingId": "at", "message": {"type": "Text", "text": "pic",
        "content": [{"contentType": "Attachment", "attachment": {"id": "f"}}]}})).await;
    guest.recv().await;
    guest
        .send(json!({"action": "getJwt", "token": "hist"}))
        .await;
    let jwt = guest.recv().await["body"]["jwt"]
        .as_str()
        .unwrap()
        .to_owned();
    let h = call(
        emu.local_addr(),
        "GET",
        "/api/v2/webmessaging/messages",
        &[("authorization", &format!("Bearer {jwt}"))],
        "",
    )
    .await;
    let h = ok(&h);
    assert_platform(&h, "WebMessagingMessageEntityList");
    assert_eq!(h["total"], 4);
    // History's own errors.
    let bad = call(
        emu.local_addr(),
        "GET",
        "/api/v2/webmessaging/messages",
        &[("authorization", "Bearer nope")],
        "",
    )
    .await;
    assert_error(&bad, 401, "bad.credentials");
}

#[tokio::test]
async fn every_guest_frame_class_has_its_schema() {
    let emu = start_with(|c| {
        c.guest.message_rate = 3;
        c.guest.attachment_max_bytes = 100;
    })
    .await;
    let mut seen = BTreeSet::new();
    let mut note = |v: &Value| {
        // `Guest::recv` has already checked the frame against the schema.
        seen.insert(v["class"].as_str().unwrap().to_owned());
    };
    let mut a = Guest::connect(&emu).await;
    let mut b = Guest::connect(&emu).await;
    note(&a.configure("f").await);
    note(&b.configure("f").await);
    // Messages, events, health check, JWT.
    a.message("f", "hi", "m1").await;
    note(&a.recv().await);
    note(&b.recv().await);
    a.send(json!({"action": "onMessage", "token": "f", "tracingId": "j", "message": {"type": "Event", "events": [{"eventType": "Presence", "presence": {"type": "Join"}}]}})).await;
    note(&a.recv().await);
    note(&b.recv().await);
    a.send(json!({"action": "echo", "token": "f", "tracingId": "e", "message": {"type": "Text", "text": "ping"}})).await;
    note(&a.recv().await);
    a.send(json!({"action": "getJwt", "token": "f"})).await;
    note(&a.recv().await);
    // 429 (the fourth onMessage within the window).
    a.message("f", "x", "m4").await;
    note(&a.recv().await);
    note(&b.recv().await);
    a.message("f", "y", "m5").await;
    let limited = a.recv().await;
    assert_eq!(limited["class"], "TooManyRequestsErrorMessage");
    note(&limited);
    emu.control().advance_clock(Duration::from_secs(2));
    // An error frame.
    a.send(json!({"action": "nope", "token": "f"})).await;
    note(&a.recv().await);
    // Attachments: refused, presigned, uploaded, failed, deleted.
    a.send(json!({"action": "onAttachment", "token": "f", "attachmentId": "big", "fileName": "b.png", "fileType": "image/png", "fileSize": 1000})).await;
    note(&a.recv().await);
    a.send(json!({"action": "onAttachment", "token": "f", "attachmentId": "ok", "fileName": "o.png", "fileType": "image/png", "fileSize": 2})).await;
    let p = a.recv().await;
    note(&p);
    let path = p["body"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&emu.base_url())
        .unwrap()
        .to_owned();
    assert_eq!(
        call(emu.local_addr(), "PUT", &path, &[], "ok").await.status,
        200
    );
    note(&a.recv().await);
    note(&b.recv().await);
    assert_eq!(
        call(emu.local_addr(), "PUT", &path, &[], &"x".repeat(200))
            .await
            .status,
        413
    );
    note(&a.recv().await);
    note(&b.recv().await);
    a.send(json!({"action": "deleteAttachment", "token": "f", "attachmentId": "ok"}))
        .await;
    note(&a.recv().await);
    // Agent message.
    emu.control()
        .agent_reply(
            Some("f"),
            None,
            &AgentReply {
                text: "agent".into(),
                quick_replies: vec![],
            },
        )
        .unwrap();
    note(&a.recv().await);
    note(&b.recv().await);
    // closeSession with closeAllConnections: b is closed, a is read-only.
    a.send(json!({"action": "closeSession", "token": "f", "closeAllConnections": true}))
        .await;
    note(&a.recv().await);
    note(&b.recv().await);
    // Start over, then clear.
    a.send(json!({"action": "configureSession", "token": "f", "deploymentId": DEPLOYMENT, "startNew": true})).await;
    note(&a.recv().await);
    a.send(json!({"action": "onMessage", "token": "f", "message": {"type": "Event", "events": [{"eventType": "Presence", "presence": {"type": "Clear"}}]}})).await;
    note(&a.recv().await);
    note(&a.recv().await);
    // Expiry by control.
    let mut c = Guest::connect(&emu).await;
    note(&c.configure("exp").await);
    emu.control().expire_guest_session("exp");
    note(&c.recv().await);

    let expected: BTreeSet<String> = [
        "SessionResponse",
        "StructuredMessage",
        "JwtResponse",
        "TooManyRequestsErrorMessage",
        "string",
        "GenerateUrlError",
        "PresignedUrlResponse",
        "UploadSuccessEvent",
        "UploadFailureEvent",
        "AttachmentDeletedResponse",
        "ConnectionClosedEvent",
        "SessionClearedEvent",
        "SessionExpiredEvent",
    ]
    .map(String::from)
    .into();
    assert_eq!(
        seen, expected,
        "every frame class the emulator sends was checked"
    );
}
