//! REST behaviour over real HTTP on loopback: OAuth, bearer checks, the four
//! message routes with their validation, rate limits, CORS, idempotency and
//! the inspection endpoints.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use genesys_emulator::{MessagesReport, Outcome, RequestsReport, RouteKind};
use serde_json::{Value, json};

const FORM: (&str, &str) = ("content-type", "application/x-www-form-urlencoded");

// ---------- OAuth ----------

#[tokio::test]
async fn oauth_basic_and_form_credentials_issue_tokens() {
    let emu = start().await;
    let a = emu.local_addr();
    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[
            FORM,
            ("authorization", "Basic ZGVtby1jbGllbnQ6ZGVtby1zZWNyZXQ="),
        ],
        "grant_type=client_credentials&scope=webmessaging%3Asend",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["token_type"], "bearer");
    assert_eq!(v["expires_in"], 86399);
    assert!(v["access_token"].as_str().unwrap().len() >= 32);
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");

    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[FORM],
        "grant_type=client_credentials&client_id=demo-client&client_secret=demo-secret",
    )
    .await;
    assert_eq!(r.status, 200);
    let token = r.json()["access_token"].as_str().unwrap().to_owned();
    let ok = post_json(&emu, &token, AGENT_PATH, &agent_body("hi"))
        .await
        .unwrap();
    assert_eq!(ok.status, 200);
}

#[tokio::test]
async fn oauth_refuses_bad_clients_and_grants() {
    let emu = start().await;
    let a = emu.local_addr();
    // demo-client:wrong
    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[FORM, ("authorization", "Basic ZGVtby1jbGllbnQ6d3Jvbmc=")],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.status, 400);
    let v = r.json();
    assert_eq!(v["error"], "unauthorized_client");
    assert!(v["description"].is_string() && v["error_description"].is_string());

    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[FORM],
        "grant_type=client_credentials",
    )
    .await;
    assert_eq!(r.json()["error"], "unauthorized_client");
    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[FORM],
        "grant_type=password&client_id=demo-client&client_secret=demo-secret",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("unsupported_grant_type"))
    );
    let r = call(
        a,
        "POST",
        "/oauth/token",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(
        (r.status, r.json()["error"].clone()),
        (400, json!("invalid_request"))
    );
    let outcomes: Vec<Outcome> = emu
        .control()
        .requests()
        .entries
        .iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(outcomes, vec![Outcome::TokenRefused; 4]);
}

#[tokio::test]
async fn token_lifetime_follows_config_and_clock() {
    let emu = start_with(|c| c.token_ttl = Duration::from_secs(10)).await;
    let token = oauth_token(&emu).await;
    assert_eq!(
        post_json(&emu, &token, AGENT_PATH, &agent_body("a"))
            .await
            .unwrap()
            .status,
        200
    );
    emu.control().advance_clock(Duration::from_secs(11));
    let r = post_json(&emu, &token, AGENT_PATH, &agent_body("b"))
        .await
        .unwrap();
    assert_error(&r, 401, "credentials.expired");
    assert_eq!(emu.control().messages().total, 1);
}

#[tokio::test]
async fn every_auth_error_has_its_code() {
    let emu = start().await;
    let a = emu.local_addr();
    let ct = ("content-type", "application/json");
    let r = call(a, "POST", AGENT_PATH, &[ct], r#"{"textBody":"x"}"#).await;
    assert_error(&r, 401, "authentication.required");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[ct, ("authorization", "Basic abc")],
        r#"{"textBody":"x"}"#,
    )
    .await;
    assert_error(&r, 401, "authentication.required");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[ct, ("authorization", "Bearer not-a-token")],
        r#"{"textBody":"x"}"#,
    )
    .await;
    assert_error(&r, 401, "bad.credentials");
    let token = emu.control().mint_token(None, None).access_token;
    assert!(emu.control().expire_token(&token));
    let r = post_json(&emu, &token, AGENT_PATH, &agent_body("x"))
        .await
        .unwrap();
    let v = assert_error(&r, 401, "credentials.expired");
    assert!(
        r.header("inin-ratelimit-count").is_none(),
        "unauthenticated answers carry no rate headers"
    );
    // Context ids are fresh per answer.
    let r2 = post_json(&emu, &token, AGENT_PATH, &agent_body("x"))
        .await
        .unwrap();
    assert_ne!(r2.json()["contextId"], v["contextId"]);
    assert_eq!(emu.control().messages().total, 0);
}

#[tokio::test]
async fn token_control_endpoints_mint_and_expire() {
    let emu = start().await;
    let a = emu.local_addr();
    let r = call(
        a,
        "POST",
        "/__emulator/tokens",
        &[],
        r#"{"clientId":"broker","ttlSeconds":120}"#,
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_eq!(v["expires_in"], 120);
    let token = v["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        post_json(&emu, &token, AGENT_PATH, &agent_body("a"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        emu.control().recorded()[0].client_id.as_deref(),
        Some("broker")
    );
    let r = call(
        a,
        "POST",
        "/__emulator/tokens/expire",
        &[],
        &json!({"token": token}).to_string(),
    )
    .await;
    assert_eq!(r.json()["expired"], 1);
    assert_error(
        &post_json(&emu, &token, AGENT_PATH, &agent_body("a"))
            .await
            .unwrap(),
        401,
        "credentials.expired",
    );
    let t2 = emu.control().mint_token(None, None).access_token;
    let r = call(a, "POST", "/__emulator/tokens/expire", &[], "").await;
    assert_eq!(r.json()["expired"], 1);
    assert_error(
        &post_json(&emu, &t2, AGENT_PATH, &agent_body("a"))
            .await
            .unwrap(),
        401,
        "credentials.expired",
    );
}

// ---------- routes: happy paths ----------

#[tokio::test]
async fn agent_send_answers_message_data() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("hello agent"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert!(r.header("inin-correlation-id").is_some());
    let v = r.json();
    assert_model(
        &v,
        "MessageData",
        &["id", "conversationId", "textBody", "timestamp", "status"],
    );
    assert_eq!(v["conversationId"], "conv-1");
    assert_eq!(v["textBody"], "hello agent");
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));

    let media = post_json(&emu, &t, AGENT_PATH, &json!({"mediaIds": ["m-1"]}))
        .await
        .unwrap();
    assert_eq!(media.status, 200);
    assert_model(
        &media.json(),
        "MessageData",
        &["id", "conversationId", "timestamp", "status"],
    );
    let tpl = post_json(
        &emu,
        &t,
        AGENT_PATH,
        &json!({"messagingTemplate": {"responseId": "r"}}),
    )
    .await
    .unwrap();
    assert_eq!(tpl.status, 200);

    let rec = emu.control().recorded();
    assert_eq!(rec.len(), 3);
    assert_eq!(rec[0].id, v["id"].as_str().unwrap());
    assert_eq!(
        rec.iter().map(|m| m.content.as_str()).collect::<Vec<_>>(),
        ["text", "media", "template"]
    );
}

#[tokio::test]
async fn agentless_answers_its_response_model() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let body = json!({"fromAddress": "+15550001", "toAddress": "+15550002", "toAddressMessengerType": "sms", "textBody": "hi sms", "useExistingActiveConversation": false});
    let r = post_json(&emu, &t, AGENTLESS_PATH, &body).await.unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_model(
        &v,
        "SendAgentlessOutboundMessageResponse",
        &[
            "id",
            "conversationId",
            "fromAddress",
            "toAddress",
            "messengerType",
            "textBody",
            "timestamp",
        ],
    );
    assert_model(
        &v["message"],
        "MessageData",
        &["id", "conversationId", "textBody", "timestamp", "status"],
    );
    assert_eq!(v["messengerType"], "sms");
    let again = post_json(&emu, &t, AGENTLESS_PATH, &body)
        .await
        .unwrap()
        .json();
    assert_eq!(
        again["conversationId"], v["conversationId"],
        "one conversation per recipient"
    );
    let wa = json!({"fromAddress": "f", "toAddress": "155", "toAddressMessengerType": "whatsapp", "messagingTemplate": {"responseId": "x"}});
    assert_eq!(
        post_json(&emu, &t, AGENTLESS_PATH, &wa)
            .await
            .unwrap()
            .status,
        200
    );
}

#[tokio::test]
async fn open_inbound_answers_normalized_message() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    // A client's own time format (offset, no milliseconds) and metadata.
    let body = json!({
        "channel": {"from": {"id": "cust-7", "idType": "Opaque", "nickname": "Ann"}, "time": "2024-05-01T14:00:00+02:00", "messageId": "pm-1"},
        "text": "hello open",
        "metadata": {"customMessageId": "c-1"},
    });
    let r = post_json(&emu, &t, OPEN_PATH, &body).await.unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    shapes::assert_platform(&v, "OpenMessageNormalizedMessage");
    assert_eq!(v["type"], "Text");
    assert_eq!(v["text"], "hello open");
    let ch = &v["channel"];
    assert_eq!(
        ch["to"]["id"], "integ-1",
        "the integration is the recipient"
    );
    assert_eq!(ch["id"], "integ-1");
    assert_eq!(
        (&ch["platform"], &ch["type"]),
        (&json!("Open"), &json!("Private"))
    );
    assert_eq!(ch["from"], body["channel"]["from"]);
    assert_eq!(ch["messageId"], "pm-1");
    assert_eq!(
        ch["time"], "2024-05-01T12:00:00.000Z",
        "the service's own format, UTC"
    );
    assert_eq!(v["metadata"], json!({"customMessageId": "c-1"}));
    let m = &emu.control().recorded()[0];
    assert_eq!(
        (m.route, m.lane.as_str(), m.idempotency_key.as_deref()),
        (RouteKind::OpenInbound, "cust-7", Some("pm-1"))
    );
}

#[tokio::test]
async fn open_inbound_takes_content_without_text() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let body = json!({
        "channel": {"from": {"id": "cust-8", "idType": "Email"}, "time": "2024-05-01T12:00:00.000Z"},
        "content": [{"attachment": {"mediaType": "Image", "url": "https://example.com/a.png", "mime": "image/png", "filename": "a.png"}}],
    });
    let r = post_json(&emu, &t, OPEN_PATH, &body).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    shapes::assert_platform(&v, "OpenMessageNormalizedMessage");
    assert!(v.get("text").is_none());
    let c = &v["content"][0];
    assert_eq!(c["contentType"], "Attachment");
    assert_eq!(c["attachment"]["url"], "https://example.com/a.png");
    assert_eq!(c["attachment"]["filename"], "a.png");
    assert_eq!(emu.control().recorded()[0].content, "media");

    // Neither text nor content; an attachment without its required url.
    let none = json!({"channel": body["channel"].clone()});
    expect_bad(&emu, &t, OPEN_PATH, none, "text").await;
    let no_url = json!({"channel": body["channel"].clone(), "content": [{"attachment": {"mediaType": "Image", "mime": "image/png"}}]});
    expect_bad(&emu, &t, OPEN_PATH, no_url, "content[0].attachment.url").await;
    let bad_meta = json!({"channel": body["channel"].clone(), "text": "x", "metadata": {"n": 1}});
    expect_bad(&emu, &t, OPEN_PATH, bad_meta, "metadata").await;
}

#[tokio::test]
async fn agentless_takes_every_messenger_type_and_external_contacts() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    for (ty, to) in [
        ("sms", "+15550002"),
        ("whatsapp", "155"),
        ("open", "u-1"),
        ("apple", "+15550003"),
    ] {
        let body = json!({"fromAddress": "integ", "toAddress": to, "toAddressMessengerType": ty, "textBody": "hi"});
        let r = post_json(&emu, &t, AGENTLESS_PATH, &body).await.unwrap();
        assert_eq!(r.status, 200, "{ty}: {}", String::from_utf8_lossy(&r.body));
        let v = r.json();
        shapes::assert_platform(&v, "SendAgentlessOutboundMessageResponse");
        assert_eq!(
            (v["messengerType"].as_str(), v["toAddress"].as_str()),
            (Some(ty), Some(to))
        );
    }
    // Web messaging: an external contact, no toAddress.
    let web = json!({"fromAddress": "demo-deployment", "externalContactId": "ec-1", "toAddressMessengerType": "webmessaging", "textBody": "hello guest"});
    let r = post_json(&emu, &t, AGENTLESS_PATH, &web).await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    shapes::assert_platform(&v, "SendAgentlessOutboundMessageResponse");
    assert!(v.get("toAddress").is_none());
    assert_eq!(v["messengerType"], "webmessaging");
    // SMS by external contact too.
    let sms = json!({"fromAddress": "+1", "externalContactId": "ec-2", "toAddressMessengerType": "sms", "textBody": "x"});
    assert_eq!(
        post_json(&emu, &t, AGENTLESS_PATH, &sms)
            .await
            .unwrap()
            .status,
        200
    );
    let lanes: Vec<String> = emu
        .control()
        .recorded()
        .iter()
        .map(|m| m.lane.clone())
        .collect();
    assert!(
        lanes.contains(&"ec-1".to_owned()) && lanes.contains(&"ec-2".to_owned()),
        "{lanes:?}"
    );

    let no_one = json!({"fromAddress": "f", "toAddressMessengerType": "open", "textBody": "x"});
    expect_bad(&emu, &t, AGENTLESS_PATH, no_one, "toAddress").await;
    let web_to = json!({"fromAddress": "f", "toAddress": "x", "externalContactId": "ec", "toAddressMessengerType": "webmessaging", "textBody": "x"});
    expect_bad(&emu, &t, AGENTLESS_PATH, web_to, "toAddress").await;
    let wa_ec = json!({"fromAddress": "f", "externalContactId": "ec", "toAddressMessengerType": "whatsapp", "textBody": "x"});
    expect_bad(&emu, &t, AGENTLESS_PATH, wa_ec, "externalContactId").await;
    let fax = json!({"fromAddress": "f", "toAddress": "x", "toAddressMessengerType": "fax", "textBody": "x"});
    expect_bad(&emu, &t, AGENTLESS_PATH, fax, "toAddressMessengerType").await;
}

#[tokio::test]
async fn seed_route_takes_to_id_or_conversation_id() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let r = post_json(
        &emu,
        &t,
        SEED_PATH,
        &json!({"to": {"id": "guest-1"}, "text": "one", "externalId": "e-1"}),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200);
    let v = r.json();
    for k in [
        "id",
        "conversationId",
        "text",
        "timestamp",
        "status",
        "externalId",
    ] {
        assert!(v.get(k).is_some(), "{k} missing in {v}");
    }
    let r = post_json(
        &emu,
        &t,
        SEED_PATH,
        &json!({"conversationId": "c-9", "text": "two"}),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["conversationId"], "c-9");
    let rep = emu.control().messages();
    assert!(rep.lane(RouteKind::Seed, "guest-1").is_some());
    assert_eq!(rep.lane(RouteKind::Seed, "c-9").unwrap().texts, ["two"]);
}

#[tokio::test]
async fn success_status_can_be_202() {
    let emu = start_with(|c| c.success_status = 202).await;
    let t = oauth_token(&emu).await;
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("x"))
            .await
            .unwrap()
            .status,
        202
    );
}

// ---------- routes: validation ----------

async fn expect_bad(emu: &Emulator, t: &str, path: &str, body: Value, field: &str) {
    let r = post_json(emu, t, path, &body).await.unwrap();
    let v = assert_error(&r, 400, "bad.request");
    let fields: Vec<&str> = v["details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["fieldName"].as_str())
        .collect();
    assert!(
        fields.contains(&field),
        "expected details to name {field}, got {v}"
    );
}

#[tokio::test]
async fn validation_errors_name_the_field() {
    let emu = start_with(|c| {
        c.text_limits.agent = 10;
        c.text_limits.sms = 5;
    })
    .await;
    let t = oauth_token(&emu).await;
    expect_bad(&emu, &t, AGENT_PATH, json!({}), "textBody").await;
    expect_bad(
        &emu,
        &t,
        AGENT_PATH,
        json!({"textBody": "a", "mediaIds": ["m"]}),
        "mediaIds",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        AGENT_PATH,
        json!({"textBody": "01234567890"}),
        "textBody",
    )
    .await;
    expect_bad(&emu, &t, AGENT_PATH, json!({"textBody": 5}), "textBody").await;
    expect_bad(&emu, &t, AGENT_PATH, json!({"textBody": "   "}), "textBody").await;
    expect_bad(&emu, &t, AGENT_PATH, json!({"mediaIds": []}), "mediaIds").await;
    expect_bad(&emu, &t, AGENT_PATH, json!(["not", "an", "object"]), "body").await;

    let al = |m: Value| {
        let mut b = json!({"fromAddress": "f", "toAddress": "t", "toAddressMessengerType": "sms", "textBody": "hi"});
        for (k, v) in m.as_object().unwrap() {
            if v.is_null() {
                b.as_object_mut().unwrap().remove(k);
            } else {
                b[k] = v.clone();
            }
        }
        b
    };
    expect_bad(
        &emu,
        &t,
        AGENTLESS_PATH,
        al(json!({"toAddress": null})),
        "toAddress",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        AGENTLESS_PATH,
        al(json!({"fromAddress": null})),
        "fromAddress",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        AGENTLESS_PATH,
        al(json!({"toAddressMessengerType": "fax"})),
        "toAddressMessengerType",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        AGENTLESS_PATH,
        al(json!({"textBody": null})),
        "textBody",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        AGENTLESS_PATH,
        al(json!({"textBody": "too long"})),
        "textBody",
    )
    .await;

    let open = |from: Value, time: Value, text: Value| json!({"channel": {"from": from, "time": time}, "text": text});
    let ok_from = json!({"id": "c", "idType": "Phone"});
    expect_bad(
        &emu,
        &t,
        OPEN_PATH,
        open(
            json!({"idType": "Phone"}),
            json!("2024-05-01T12:00:00Z"),
            json!("x"),
        ),
        "channel.from.id",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        OPEN_PATH,
        open(
            json!({"id": "c", "idType": "Fax"}),
            json!("2024-05-01T12:00:00Z"),
            json!("x"),
        ),
        "channel.from.idType",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        OPEN_PATH,
        open(ok_from.clone(), json!("yesterday"), json!("x")),
        "channel.time",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        OPEN_PATH,
        open(ok_from.clone(), Value::Null, json!("x")),
        "channel.time",
    )
    .await;
    expect_bad(
        &emu,
        &t,
        OPEN_PATH,
        open(ok_from, json!("2024-05-01T12:00:00Z"), Value::Null),
        "text",
    )
    .await;
    expect_bad(&emu, &t, OPEN_PATH, json!({"text": "x"}), "channel").await;

    expect_bad(&emu, &t, SEED_PATH, json!({"text": "x"}), "to.id").await;
    expect_bad(&emu, &t, SEED_PATH, json!({"to": {"id": "g"}}), "text").await;

    let a = emu.local_addr();
    let auth = format!("Bearer {t}");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        "{not json",
    )
    .await;
    assert_error(&r, 400, "bad.request");
    assert_eq!(
        emu.control().messages().total,
        0,
        "nothing invalid is recorded"
    );
    let rejected = emu
        .control()
        .requests()
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::Rejected)
        .count();
    assert_eq!(rejected, 21);
}

#[tokio::test]
async fn content_type_size_and_unknown_paths() {
    let emu = start_with(|c| c.max_body_bytes = 1024).await;
    let t = oauth_token(&emu).await;
    let a = emu.local_addr();
    let auth = format!("Bearer {t}");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[("authorization", &auth), ("content-type", "text/plain")],
        r#"{"textBody":"x"}"#,
    )
    .await;
    assert_error(&r, 415, "unsupported.media.type");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[("authorization", &auth)],
        r#"{"textBody":"x"}"#,
    )
    .await;
    assert_error(&r, 415, "unsupported.media.type");
    let big = json!({"textBody": "x".repeat(2000)}).to_string();
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[
            ("authorization", &auth),
            ("content-type", "application/json; charset=utf-8"),
        ],
        &big,
    )
    .await;
    assert_error(&r, 413, "request.entity.too.large");
    let r = call(
        a,
        "POST",
        "/api/v2/conversations/nothing",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_error(&r, 404, "not.found");
    let r = call(a, "GET", AGENT_PATH, &[("authorization", &auth)], "").await;
    assert_error(&r, 404, "not.found");
    let r = call(a, "GET", "/favicon.ico", &[], "").await;
    assert_error(&r, 404, "not.found");
    assert_eq!(emu.control().messages().total, 0);
}

// ---------- rate limits ----------

#[tokio::test]
async fn rate_limit_hits_exactly_at_n_and_honours_retry_after() {
    let emu = start_with(|c| c.rate_limit = 5).await;
    let t = oauth_token(&emu).await;
    let other = oauth_token(&emu).await;
    for i in 1..=5u32 {
        let r = post_json(&emu, &t, AGENT_PATH, &agent_body(&format!("m{i}")))
            .await
            .unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert_eq!(
            r.header("inin-ratelimit-count"),
            Some(i.to_string().as_str())
        );
        assert_eq!(r.header("inin-ratelimit-allowed"), Some("5"));
        let reset: u64 = r.header("inin-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset));
    }
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("m6"))
        .await
        .unwrap();
    let v = assert_error(&r, 429, "too.many.requests.retry.after");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        v["message"],
        format!("Rate limit exceeded the maximum. Retry the request in [{retry}] seconds")
    );
    assert_eq!(r.header("inin-ratelimit-count"), Some("5"));
    assert_eq!(r.header("inin-ratelimit-allowed"), Some("5"));
    assert_eq!(v["limit"]["value"], 5);
    // Limits are per token.
    assert_eq!(
        post_json(&emu, &other, AGENT_PATH, &agent_body("o"))
            .await
            .unwrap()
            .status,
        200
    );
    // One second before Retry-After: still limited; at Retry-After: admitted.
    emu.control().advance_clock(Duration::from_secs(retry - 1));
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("early"))
            .await
            .unwrap()
            .status,
        429
    );
    emu.control().advance_clock(Duration::from_secs(1));
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("m7"))
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let rep = emu.control().messages();
    assert_eq!(
        rep.lane(RouteKind::AgentSend, "conv-1").unwrap().texts,
        ["m1", "m2", "m3", "m4", "m5", "o", "m7"]
    );
    let limited = emu
        .control()
        .requests()
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::RateLimited)
        .count();
    assert_eq!(limited, 2);
}

#[tokio::test]
async fn rate_limit_override_and_daily_limit() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    emu.control()
        .update_faults(|f| f.rate_limit = Some(1))
        .unwrap();
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("a"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("b"))
            .await
            .unwrap()
            .status,
        429
    );
    emu.control()
        .update_faults(|f| {
            f.rate_limit = None;
            f.daily_limit = true;
        })
        .unwrap();
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("c"))
        .await
        .unwrap();
    let v = assert_error(&r, 429, "too.many.requests.retry.after");
    assert_eq!(r.header("retry-after"), Some("14400"));
    assert_eq!(
        r.header("inin-ratelimit-count"),
        Some("1"),
        "the one admitted request"
    );
    assert_eq!(r.header("inin-ratelimit-allowed"), Some("300"));
    assert!(v["message"].as_str().unwrap().contains("[14400]"));
    assert_eq!(emu.control().messages().total, 1);
    assert_eq!(
        emu.control().requests().entries.last().unwrap().outcome,
        Outcome::DailyLimited
    );
}

// ---------- CORS ----------

#[tokio::test]
async fn cors_preflight_and_exposed_headers() {
    let emu = start_with(|c| {
        c.cors = genesys_emulator::CorsPolicy::Origins(vec!["http://127.0.0.1:8080".into()])
    })
    .await;
    let a = emu.local_addr();
    let pre = [
        ("origin", "http://127.0.0.1:8080"),
        ("access-control-request-method", "POST"),
        (
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        ),
    ];
    let r = call(a, "OPTIONS", AGENT_PATH, &pre, "").await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8080")
    );
    let allowed = r
        .header("access-control-allow-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in ["authorization", "content-type", "idempotency-key"] {
        assert!(allowed.contains(h), "{allowed}");
    }
    assert!(
        r.header("access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    let r = call(
        a,
        "OPTIONS",
        AGENT_PATH,
        &[
            ("origin", "http://evil.example"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());

    let t = emu.control().mint_token(None, None).access_token;
    let auth = format!("Bearer {t}");
    let r = call(
        a,
        "POST",
        AGENT_PATH,
        &[
            ("origin", "http://127.0.0.1:8080"),
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"textBody":"x"}"#,
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8080")
    );
    let exposed = r
        .header("access-control-expose-headers")
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "retry-after",
        "inin-ratelimit-count",
        "inin-ratelimit-allowed",
        "inin-ratelimit-reset",
        "inin-correlation-id",
    ] {
        assert!(exposed.contains(h), "{exposed}");
    }
    // Control endpoints are CORS-enabled too (the demo's network switch).
    let r = call(a, "OPTIONS", "/__emulator/faults", &pre, "").await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8080")
    );
    let r = call(
        a,
        "GET",
        "/__emulator/faults",
        &[("origin", "http://127.0.0.1:8080")],
        "",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://127.0.0.1:8080")
    );
}

#[tokio::test]
async fn cors_any_echoes_the_origin() {
    let emu = start().await;
    let r = call(
        emu.local_addr(),
        "OPTIONS",
        SEED_PATH,
        &[
            ("origin", "http://localhost:3000"),
            ("access-control-request-method", "POST"),
        ],
        "",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(
        emu.control().requests().entries[0].outcome,
        Outcome::Preflight
    );
}

// ---------- idempotency ----------

#[tokio::test]
async fn without_idempotency_duplicates_are_recorded_and_counted() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let auth = format!("Bearer {t}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-1"),
    ];
    let a = emu.local_addr();
    let r1 = call(a, "POST", AGENT_PATH, &h, r#"{"textBody":"same"}"#).await;
    let r2 = call(a, "POST", AGENT_PATH, &h, r#"{"textBody":"same"}"#).await;
    assert_ne!(r1.json()["id"], r2.json()["id"]);
    post_json(&emu, &t, AGENT_PATH, &agent_body("same"))
        .await
        .unwrap(); // no key: duplicate by text
    let rep = emu.control().messages();
    let lane = rep.lane(RouteKind::AgentSend, "conv-1").unwrap();
    assert_eq!((lane.count, lane.duplicates), (3, 1));
    assert_eq!(lane.messages[1].duplicate_of, Some(1));
    assert_eq!(lane.messages[1].idempotency_key.as_deref(), Some("k-1"));
    assert_eq!(
        lane.messages[2].duplicate_of, None,
        "a keyless message is compared by text with keyless ones"
    );
    let r3 = post_json(
        &emu,
        &t,
        SEED_PATH,
        &json!({"to": {"id": "g"}, "text": "x", "externalId": "e"}),
    )
    .await
    .unwrap();
    let r4 = post_json(
        &emu,
        &t,
        SEED_PATH,
        &json!({"to": {"id": "g"}, "text": "x", "externalId": "e"}),
    )
    .await
    .unwrap();
    assert_eq!((r3.status, r4.status), (200, 200));
    assert_eq!(emu.control().messages().duplicates, 2);
}

#[tokio::test]
async fn with_idempotency_repeats_replay_or_conflict() {
    let emu = start_with(|c| c.idempotency = true).await;
    let t = oauth_token(&emu).await;
    let auth = format!("Bearer {t}");
    let a = emu.local_addr();
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("idempotency-key", "k-1"),
    ];
    let r1 = call(a, "POST", AGENT_PATH, &h, r#"{"textBody":"once"}"#).await;
    let r2 = call(a, "POST", AGENT_PATH, &h, r#"{"textBody":"once"}"#).await;
    assert_eq!((r1.status, r2.status), (200, 200));
    assert_eq!(r1.body, r2.body, "the first answer is replayed");
    assert_eq!(r2.header("idempotent-replayed"), Some("true"));
    assert_ne!(
        r1.header("inin-correlation-id"),
        r2.header("inin-correlation-id")
    );

    let s = json!({"to": {"id": "g"}, "text": "x", "externalId": "e-1"});
    assert_eq!(
        post_json(&emu, &t, SEED_PATH, &s).await.unwrap().status,
        200
    );
    let dup = post_json(&emu, &t, SEED_PATH, &s).await.unwrap();
    assert_error(&dup, 409, "general.conflict");

    let o = json!({"channel": {"from": {"id": "c", "idType": "Email"}, "time": "2024-05-01T12:00:00Z", "messageId": "pm-1"}, "text": "hi"});
    let o1 = post_json(&emu, &t, OPEN_PATH, &o).await.unwrap();
    let o2 = post_json(&emu, &t, OPEN_PATH, &o).await.unwrap();
    assert_eq!(o1.body, o2.body);

    let rep = emu.control().messages();
    assert_eq!((rep.total, rep.duplicates, rep.replays), (3, 0, 3));
    assert_eq!(rep.lanes[0].messages[0].replays, 1);
    let outcomes: Vec<Outcome> = emu
        .control()
        .requests()
        .entries
        .iter()
        .skip(1)
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Ok,
            Outcome::Replayed,
            Outcome::Ok,
            Outcome::Conflict,
            Outcome::Ok,
            Outcome::Replayed
        ]
    );

    // Switched off at run time over HTTP: repeats are recorded again.
    let r = call(
        a,
        "POST",
        "/__emulator/idempotency",
        &[],
        r#"{"enabled":false}"#,
    )
    .await;
    assert_eq!(r.json()["enabled"], false);
    assert_eq!(
        post_json(&emu, &t, SEED_PATH, &s).await.unwrap().status,
        200
    );
    assert_eq!(emu.control().messages().total, 4);
}

// ---------- inspection ----------

#[tokio::test]
async fn inspection_groups_lanes_in_arrival_order() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let c2 = "/api/v2/conversations/messages/conv-2/communications/x/messages";
    post_json(&emu, &t, AGENT_PATH, &agent_body("a1"))
        .await
        .unwrap();
    post_json(&emu, &t, c2, &agent_body("b1")).await.unwrap();
    post_json(&emu, &t, AGENT_PATH, &agent_body("a2"))
        .await
        .unwrap();
    post_json(&emu, &t, AGENTLESS_PATH, &json!({"fromAddress": "f", "toAddress": "+1", "toAddressMessengerType": "open", "textBody": "c1"})).await.unwrap();
    post_json(&emu, &t, OPEN_PATH, &json!({"channel": {"from": {"id": "u", "idType": "Opaque"}, "time": "2024-05-01T12:00:00Z"}, "text": "d1"})).await.unwrap();
    post_json(
        &emu,
        &t,
        SEED_PATH,
        &json!({"to": {"id": "g"}, "text": "e1"}),
    )
    .await
    .unwrap();

    let r = call(emu.local_addr(), "GET", "/__emulator/messages", &[], "").await;
    assert_eq!(r.status, 200);
    let rep: MessagesReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(rep, emu.control().messages());
    let lanes: Vec<(RouteKind, &str, Vec<String>)> = rep
        .lanes
        .iter()
        .map(|l| (l.route, l.lane.as_str(), l.texts.clone()))
        .collect();
    assert_eq!(
        lanes,
        vec![
            (
                RouteKind::AgentSend,
                "conv-1",
                vec!["a1".into(), "a2".into()]
            ),
            (RouteKind::AgentSend, "conv-2", vec!["b1".into()]),
            (RouteKind::Agentless, "+1", vec!["c1".into()]),
            (RouteKind::OpenInbound, "u", vec!["d1".into()]),
            (RouteKind::Seed, "g", vec!["e1".into()]),
        ]
    );
    let raw = r.json();
    assert_eq!(raw["lanes"][0]["route"], "agent");
    assert_eq!(raw["lanes"][0]["messages"][1]["seq"], 3);

    let r = call(
        emu.local_addr(),
        "GET",
        "/__emulator/requests?since=2",
        &[],
        "",
    )
    .await;
    let log: RequestsReport = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(log.total, 7);
    assert_eq!(log.entries.len(), 5);
    assert_eq!(log.entries[0].seq, 3);
    assert!(
        log.entries
            .iter()
            .all(|e| e.outcome == Outcome::Ok && e.status == Some(200) && e.message_seq.is_some())
    );

    let r = call(emu.local_addr(), "POST", "/__emulator/reset", &[], "").await;
    assert_eq!(r.status, 200);
    assert_eq!(emu.control().messages().total, 0);
    assert_eq!(emu.control().requests().total, 0);
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("after reset"))
            .await
            .unwrap()
            .status,
        200,
        "tokens survive a reset"
    );
}

#[tokio::test]
async fn control_api_reports_errors_as_json() {
    let emu = start().await;
    let a = emu.local_addr();
    let r = call(a, "GET", "/__emulator/nothing", &[], "").await;
    assert_eq!(r.status, 404);
    assert!(r.json()["error"].is_string());
    let r = call(a, "POST", "/__emulator/tokens", &[], "{bad").await;
    assert_eq!(r.status, 400);
    let r = call(a, "GET", "/__emulator/health", &[], "").await;
    assert_eq!(r.json()["ok"], true);
    let r = call(a, "GET", "/__emulator/config", &[], "").await;
    let v = r.json();
    assert_eq!(v["config"]["rateLimit"], 300);
    assert!(
        !r.body.windows(11).any(|w| w == b"demo-secret"),
        "secrets are not shown"
    );
    let r = call(
        a,
        "POST",
        "/__emulator/clock",
        &[],
        r#"{"advanceSeconds":2}"#,
    )
    .await;
    assert!(r.json()["offsetMs"].as_u64().unwrap() >= 2000);
}
