//! What Genesys's own Messenger transport does over the Guest WebSocket,
//! answered as Genesys answers it: the deployment configuration, typing and
//! presence events, quick-reply answers, attachments, authenticated
//! sessions, and the agent answering (control API and agent REST route), on
//! the socket and in history. Every frame is checked against the Guest API
//! schema by `Guest::recv`.
#![allow(clippy::unwrap_used)]

mod common;

use common::shapes;
use common::ws::*;
use common::*;
use genesys_emulator::AgentReply;
use serde_json::{Value, json};

fn session(emu: &Emulator, token: &str) -> genesys_emulator::SessionReport {
    emu.control()
        .sessions()
        .into_iter()
        .find(|s| s.token == token)
        .unwrap()
}

async fn jwt(g: &mut Guest, token: &str) -> String {
    g.send(json!({"action": "getJwt", "token": token, "tracingId": "jwt"}))
        .await;
    g.recv().await["body"]["jwt"].as_str().unwrap().to_owned()
}

/// Guest history, checked against `WebMessagingMessageEntityList`.
async fn history(emu: &Emulator, jwt: &str) -> Value {
    let auth = format!("Bearer {jwt}");
    let r = call(
        emu.local_addr(),
        "GET",
        "/api/v2/webmessaging/messages?pageSize=25&pageNumber=1",
        &[("authorization", &auth)],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    shapes::assert_platform(&v, "WebMessagingMessageEntityList");
    v
}

/// Sends a health check and returns the next frame: what came before it on
/// the socket, if anything, comes first.
async fn next_after_echo(g: &mut Guest, token: &str) -> Value {
    g.send(json!({"action": "echo", "token": token, "tracingId": "ping", "message": {"type": "Text", "text": "ping"}}))
        .await;
    g.recv().await
}

#[tokio::test]
async fn deployment_config_is_served_for_known_deployments() {
    let emu = start().await;
    let r = call(
        emu.local_addr(),
        "GET",
        "/webdeployments/v1/deployments/demo-deployment/config.json",
        &[],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    let v = r.json();
    let problems = shapes::schema_problems(shapes::deployment_schema(), &v, "DeploymentConfig");
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(v["id"], "demo-deployment");
    assert_eq!(v["status"], "Active");
    let endpoint = v["messenger"]["apps"]["conversations"]["messagingEndpoint"]
        .as_str()
        .unwrap();
    assert_eq!(endpoint, format!("ws://{}", emu.local_addr()));
    let unknown = call(
        emu.local_addr(),
        "GET",
        "/webdeployments/v1/deployments/nope/config.json",
        &[],
        "",
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn typing_is_accepted_without_an_answer() {
    let emu = start_with(|c| c.guest.message_rate = 100).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("ty").await;
    g.send(json!({"action": "onMessage", "token": "ty", "tracingId": "typing",
        "message": {"type": "Event", "events": [{"eventType": "Typing", "typing": {"type": "On"}}]}}))
        .await;
    // Nothing answers the typing event: the next frame is the health check's.
    let next = next_after_echo(&mut g, "ty").await;
    assert_eq!(next["tracingId"], "ping");
    let s = session(&emu, "ty");
    assert_eq!(s.actions.get("typing"), Some(&1));
    assert!(s.messages.is_empty(), "typing is not a message");
    assert_eq!(emu.control().messages().total, 0);
}

#[tokio::test]
async fn presence_join_is_echoed_as_an_event() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("join").await;
    g.send(json!({"action": "onMessage", "token": "join", "tracingId": "auto",
        "message": {"type": "Event", "events": [{"eventType": "Presence", "presence": {"type": "Join"}}]}}))
        .await;
    let e = g.recv().await;
    assert_eq!(
        (e["class"].as_str(), e["tracingId"].as_str()),
        (Some("StructuredMessage"), Some("auto"))
    );
    assert_eq!(e["body"]["type"], "Event");
    assert_eq!(e["body"]["direction"], "Inbound");
    assert_eq!(e["body"]["events"][0]["presence"]["type"], "Join");
}

#[tokio::test]
async fn presence_clear_answers_session_cleared_and_starts_over() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("clr").await;
    g.message("clr", "forget me", "m1").await;
    g.recv().await;
    let before = session(&emu, "clr").conversation_id;
    g.send(json!({"action": "onMessage", "token": "clr", "tracingId": "clear",
        "message": {"type": "Event", "events": [{"eventType": "Presence", "presence": {"type": "Clear"}}]}}))
        .await;
    assert_eq!(g.recv().await["class"], "SessionClearedEvent");
    assert_eq!(g.recv().await["class"], "ConnectionClosedEvent");
    assert_eq!(g.close_code().await, 1000);
    // Configured again: a new conversation with an empty history.
    let mut g = Guest::connect(&emu).await;
    g.configure("clr").await;
    assert_ne!(session(&emu, "clr").conversation_id, before);
    let jwt = jwt(&mut g, "clr").await;
    assert_eq!(history(&emu, &jwt).await["total"], 0);
}

#[tokio::test]
async fn quick_reply_answers_are_echoed_and_kept_in_history() {
    let emu = start_with(|c| c.guest.message_rate = 100).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("qr").await;
    // The agent offers quick replies.
    let offer = emu
        .control()
        .agent_reply(
            Some("qr"),
            None,
            &AgentReply {
                text: "Pick one".into(),
                quick_replies: vec!["Yes".into(), "No".into()],
            },
        )
        .unwrap();
    let shown = g.recv().await;
    assert_eq!(shown["body"]["direction"], "Outbound");
    assert_eq!(shown["body"]["content"][1]["quickReply"]["text"], "No");
    // The guest answers as Genesys's transport does: Text, empty text, a ButtonResponse.
    g.send(json!({"action": "onMessage", "token": "qr", "tracingId": "answer",
        "message": {"type": "Text", "text": "", "metadata": {"customMessageId": "cm-1"},
            "content": [{"contentType": "ButtonResponse", "buttonResponse": {"type": "QuickReply", "text": "Yes", "payload": "Yes"}}]}}))
        .await;
    let echo = g.recv().await;
    assert_eq!(echo["tracingId"], "answer");
    let br = &echo["body"]["content"][0]["buttonResponse"];
    assert_eq!(
        (br["text"].as_str(), br["originatingMessageId"].as_str()),
        (Some("Yes"), Some(offer.id.as_str()))
    );
    assert_eq!(echo["body"]["metadata"]["customMessageId"], "cm-1");
    let recorded = &emu.control().recorded()[0];
    assert_eq!(
        (recorded.text.as_deref(), recorded.content.as_str()),
        (Some("Yes"), "button-response")
    );
    let jwt = jwt(&mut g, "qr").await;
    let h = history(&emu, &jwt).await;
    assert_eq!(h["total"], 2);
    let newest = &h["entities"][0];
    assert_eq!(newest["direction"], "Inbound");
    assert_eq!(newest["metadata"]["customMessageId"], "cm-1");
    assert_eq!(newest["content"][0]["contentType"], "ButtonResponse");
    assert_eq!(h["entities"][1]["direction"], "Outbound");

    // A button response without its payload is refused.
    g.send(json!({"action": "onMessage", "token": "qr", "tracingId": "bad",
        "message": {"type": "Text", "text": "", "content": [{"contentType": "ButtonResponse", "buttonResponse": {"text": "Yes"}}]}}))
        .await;
    let refused = g.recv().await;
    assert_eq!(
        (refused["class"].as_str(), refused["code"].as_i64()),
        (Some("string"), Some(400))
    );
}

#[tokio::test]
async fn attachments_upload_through_the_presigned_url_then_ride_a_message() {
    let emu = start_with(|c| c.guest.attachment_max_bytes = 1000).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("att").await;
    g.send(
        json!({"action": "onAttachment", "token": "att", "tracingId": "up", "attachmentId": "a-1",
        "fileName": "hello.txt", "fileType": "text/plain", "fileSize": 5, "errorsAsJson": true}),
    )
    .await;
    let p = g.recv().await;
    assert_eq!(
        (p["class"].as_str(), p["tracingId"].as_str()),
        (Some("PresignedUrlResponse"), Some("up"))
    );
    let url = p["body"]["url"].as_str().unwrap().to_owned();
    let path = url.strip_prefix(&emu.base_url()).unwrap().to_owned();
    // A message citing it before the upload is refused (4010).
    let with_attachment = json!({"action": "onMessage", "token": "att", "tracingId": "send",
        "message": {"type": "Text", "text": "see file", "content": [{"contentType": "Attachment", "attachment": {"id": "a-1"}}]}});
    g.send(with_attachment.clone()).await;
    assert_eq!(g.recv().await["code"], 4010);
    // The upload, with the headers the answer gave.
    let ct = p["body"]["headers"]["Content-Type"]
        .as_str()
        .unwrap()
        .to_owned();
    let up = call(
        emu.local_addr(),
        "PUT",
        &path,
        &[("content-type", &ct)],
        "hello",
    )
    .await;
    assert_eq!(up.status, 200);
    let done = g.recv().await;
    assert_eq!(
        (
            done["class"].as_str(),
            done["body"]["attachmentId"].as_str()
        ),
        (Some("UploadSuccessEvent"), Some("a-1"))
    );
    let download = done["body"]["downloadUrl"].as_str().unwrap().to_owned();
    let got = call(
        emu.local_addr(),
        "GET",
        download.strip_prefix(&emu.base_url()).unwrap(),
        &[],
        "",
    )
    .await;
    assert_eq!((got.status, &got.body[..]), (200, &b"hello"[..]));
    // Now the message carries it.
    emu.control()
        .advance_clock(std::time::Duration::from_secs(1));
    g.send(with_attachment).await;
    let echo = g.recv().await;
    let a = &echo["body"]["content"][0]["attachment"];
    assert_eq!(
        (
            a["filename"].as_str(),
            a["fileSize"].as_u64(),
            a["url"].as_str()
        ),
        (Some("hello.txt"), Some(5), Some(download.as_str()))
    );
    assert_eq!(a["mediaType"], "File");
    assert_eq!(emu.control().recorded()[0].content, "attachment");

    // Over the size cap: refused before any upload, and at the upload too.
    g.send(json!({"action": "onAttachment", "token": "att", "attachmentId": "big", "fileName": "big.png", "fileType": "image/png", "fileSize": 5000}))
        .await;
    let refused = g.recv().await;
    assert_eq!(
        (
            refused["class"].as_str(),
            refused["body"]["errorCode"].as_i64()
        ),
        (Some("GenerateUrlError"), Some(4002))
    );
    g.send(json!({"action": "onAttachment", "token": "att", "attachmentId": "liar", "fileName": "l.png", "fileType": "image/png", "fileSize": 10}))
        .await;
    let p2 = g.recv().await;
    let path2 = p2["body"]["url"]
        .as_str()
        .unwrap()
        .strip_prefix(&emu.base_url())
        .unwrap()
        .to_owned();
    let big = "x".repeat(2000);
    let up2 = call(
        emu.local_addr(),
        "PUT",
        &path2,
        &[("content-type", "image/png")],
        &big,
    )
    .await;
    assert_eq!(up2.status, 413);
    let failed = g.recv().await;
    assert_eq!(
        (
            failed["class"].as_str(),
            failed["body"]["errorCode"].as_i64()
        ),
        (Some("UploadFailureEvent"), Some(4002))
    );
    // Deleting one.
    g.send(json!({"action": "deleteAttachment", "token": "att", "attachmentId": "liar", "tracingId": "del"}))
        .await;
    assert_eq!(g.recv().await["class"], "AttachmentDeletedResponse");
}

#[tokio::test]
async fn authenticated_sessions_need_a_code() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.send(json!({"action": "configureAuthenticatedSession", "token": "au", "deploymentId": DEPLOYMENT, "data": {}}))
        .await;
    assert_eq!(g.recv().await["code"], 400);
    g.send(json!({"action": "configureAuthenticatedSession", "token": "au", "deploymentId": DEPLOYMENT, "data": {"code": "oauth-code"}}))
        .await;
    let r = g.recv().await;
    assert_eq!(
        (r["class"].as_str(), r["body"]["connected"].as_bool()),
        (Some("SessionResponse"), Some(true))
    );
    g.message("au", "signed in", "m").await;
    assert_eq!(g.recv().await["body"]["text"], "signed in");
}

#[tokio::test]
async fn the_agent_answers_on_the_socket_and_in_history() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("two-way").await;
    g.message("two-way", "hello?", "m1").await;
    g.recv().await;
    // By control, over HTTP.
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/reply",
        &[],
        &json!({"token": "two-way", "text": "Hi, how can I help?"}).to_string(),
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let m = g.recv().await;
    assert_eq!(m["class"], "StructuredMessage");
    assert!(m.get("tracingId").is_none());
    let b = &m["body"];
    assert_eq!(
        (
            b["direction"].as_str(),
            b["text"].as_str(),
            b["originatingEntity"].as_str()
        ),
        (Some("Outbound"), Some("Hi, how can I help?"), Some("Human"))
    );
    assert_eq!(b["channel"]["from"]["nickname"], "Agent");
    // By the agent REST route, in the session's conversation.
    let conversation = session(&emu, "two-way").conversation_id;
    let token = emu.control().mint_token(None, None).access_token;
    let path =
        format!("/api/v2/conversations/messages/{conversation}/communications/agent-1/messages");
    let sent = post_json(&emu, &token, &path, &json!({"textBody": "Anything else?"}))
        .await
        .unwrap();
    assert_eq!(sent.status, 200);
    let m2 = g.recv().await;
    assert_eq!(
        (m2["body"]["text"].as_str(), m2["body"]["id"].as_str()),
        (Some("Anything else?"), sent.json()["id"].as_str())
    );
    let jwt = jwt(&mut g, "two-way").await;
    let h = history(&emu, &jwt).await;
    let dirs: Vec<(&str, &str)> = h["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["direction"].as_str().unwrap(),
                e["text"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        dirs,
        [
            ("Outbound", "Anything else?"),
            ("Outbound", "Hi, how can I help?"),
            ("Inbound", "hello?")
        ]
    );
    // Unknown session → 404; empty text → 400.
    let none = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/reply",
        &[],
        r#"{"token":"nobody","text":"x"}"#,
    )
    .await;
    assert_eq!(none.status, 404);
    let empty = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/reply",
        &[],
        r#"{"token":"two-way","text":" "}"#,
    )
    .await;
    assert_eq!(empty.status, 400);
}

#[tokio::test]
async fn auto_reply_answers_every_guest_message() {
    let emu = start().await;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/auto-reply",
        &[],
        r#"{"enabled":true,"prefix":"Echo: "}"#,
    )
    .await;
    assert_eq!(r.json(), json!({"enabled": true, "prefix": "Echo: "}));
    let mut g = Guest::connect(&emu).await;
    g.configure("auto").await;
    g.message("auto", "ping", "m1").await;
    let echo = g.recv().await;
    assert_eq!(
        (
            echo["body"]["direction"].as_str(),
            echo["tracingId"].as_str()
        ),
        (Some("Inbound"), Some("m1"))
    );
    let answer = g.recv().await;
    assert_eq!(
        (
            answer["body"]["direction"].as_str(),
            answer["body"]["text"].as_str()
        ),
        (Some("Outbound"), Some("Echo: ping"))
    );
    let off = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/auto-reply",
        &[],
        r#"{"enabled":false}"#,
    )
    .await;
    assert_eq!(off.json()["enabled"], false);
}

#[tokio::test]
async fn the_agent_answers_in_rest_conversations() {
    let emu = start().await;
    let t = oauth_token(&emu).await;
    let open = json!({"channel": {"from": {"id": "carol", "idType": "Opaque"}, "time": "2024-05-01T12:00:00Z"}, "text": "help"});
    let answer = post_json(&emu, &t, OPEN_PATH, &open).await.unwrap().json();
    // By lane.
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/reply",
        &[],
        r#"{"lane":"carol","text":"On it"}"#,
    )
    .await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let reply = &r.json()["reply"];
    assert_eq!(
        (reply["lane"].as_str(), reply["route"].as_str()),
        (Some("carol"), Some("open"))
    );
    assert_eq!(reply["conversationId"], answer["conversationId"]);
    // By conversation id (no guest has it).
    let conv = answer["conversationId"].as_str().unwrap();
    let body = json!({"conversationId": conv, "text": "Done"}).to_string();
    assert_eq!(
        call(
            emu.local_addr(),
            "POST",
            "/__emulator/agent/reply",
            &[],
            &body
        )
        .await
        .status,
        200
    );
    // Automatic answers to customers.
    emu.control().set_auto_reply(Some("Re: ".into()));
    post_json(&emu, &t, OPEN_PATH, &open).await.unwrap();
    let report = emu.control().messages();
    let texts: Vec<&str> = report.replies.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(texts, ["On it", "Done", "Re: help"]);
    assert_eq!(report.total, 2, "replies are not messages received");
    let unknown = call(
        emu.local_addr(),
        "POST",
        "/__emulator/agent/reply",
        &[],
        r#"{"lane":"nobody","text":"x"}"#,
    )
    .await;
    assert_eq!(unknown.status, 404);
}

#[tokio::test]
async fn metadata_keys_can_be_limited_to_custom_message_id() {
    let emu = start_with(|c| c.guest.metadata_keys = Some(vec!["customMessageId".into()])).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("md").await;
    g.send(json!({"action": "onMessage", "token": "md", "tracingId": "t", "message": {"type": "Text", "text": "x",
        "metadata": {"customMessageId": "c-1", "outboxId": "o-1"}}}))
        .await;
    let echo = g.recv().await;
    assert_eq!(echo["body"]["metadata"], json!({"customMessageId": "c-1"}));
    let jwt = jwt(&mut g, "md").await;
    assert_eq!(
        history(&emu, &jwt).await["entities"][0]["metadata"],
        json!({"customMessageId": "c-1"})
    );
}
