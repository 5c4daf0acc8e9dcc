//! The Guest WebSocket and guest history over real sockets on loopback.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::ws::*;
use common::*;
use futures_util::SinkExt as _;
use genesys_emulator::{EchoState, RouteKind, SessionReport};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn error_code(v: &Value) -> (String, i64) {
    (
        v["class"].as_str().unwrap().to_owned(),
        v["code"].as_i64().unwrap(),
    )
}

fn session(emu: &Emulator, token: &str) -> SessionReport {
    emu.control()
        .sessions()
        .into_iter()
        .find(|s| s.token == token)
        .unwrap()
}

#[tokio::test]
async fn session_and_echo_carry_the_tracing_id() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    let v = g.configure("tok-1").await;
    assert_eq!(v["type"], "response");
    assert_eq!(v["tracingId"], "cfg");
    assert_eq!(
        (
            v["body"]["connected"].as_bool(),
            v["body"]["newSession"].as_bool()
        ),
        (Some(true), Some(true))
    );

    g.message("tok-1", "hello guest", "trace-1").await;
    let e = g.recv().await;
    assert_eq!(
        (e["type"].as_str(), e["class"].as_str(), e["code"].as_i64()),
        (Some("message"), Some("StructuredMessage"), Some(200))
    );
    assert_eq!(e["tracingId"], "trace-1");
    let b = &e["body"];
    assert_eq!(
        (
            b["direction"].as_str(),
            b["type"].as_str(),
            b["text"].as_str()
        ),
        (Some("Inbound"), Some("Text"), Some("hello guest"))
    );
    assert_eq!(b["channel"]["messageId"], b["id"]);
    assert!(b["channel"]["time"].as_str().unwrap().ends_with('Z'));

    // Health check: answered to this socket, not recorded.
    g.send(json!({"action": "echo", "token": "tok-1", "tracingId": "hc", "message": {"type": "Text", "text": "ping"}})).await;
    let h = g.recv().await;
    assert_eq!(
        (
            h["class"].as_str(),
            h["tracingId"].as_str(),
            h["body"]["text"].as_str()
        ),
        (Some("StructuredMessage"), Some("hc"), Some("ping"))
    );

    // A second socket resumes the session; echoes go to every socket.
    let mut g2 = Guest::connect(&emu).await;
    assert_eq!(g2.configure("tok-1").await["body"]["newSession"], false);
    g2.message("tok-1", "from tab 2", "trace-2").await;
    assert_eq!(g2.recv().await["tracingId"], "trace-2");
    assert_eq!(g.recv().await["tracingId"], "trace-2");

    let rep = emu.control().messages();
    let lane = rep.lane(RouteKind::Guest, "tok-1").unwrap();
    assert_eq!(lane.texts, ["hello guest", "from tab 2"]);
    assert_eq!(lane.messages[0].id, b["id"].as_str().unwrap());
    let s = session(&emu, "tok-1");
    assert_eq!(s.connections, 2);
    assert_eq!(
        s.messages.iter().map(|m| m.echo).collect::<Vec<_>>(),
        [EchoState::Sent, EchoState::Sent]
    );
    assert_eq!(s.messages[0].tracing_id.as_deref(), Some("trace-1"));

    let r = call(emu.local_addr(), "GET", "/__emulator/sessions", &[], "").await;
    let sessions: Vec<SessionReport> = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(sessions[0].actions["onMessage"], 2);
    assert_eq!(sessions[0].actions["echo"], 1);
}

#[tokio::test]
async fn message_rate_limit_answers_a_429_frame_and_keeps_the_socket() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("t").await;
    for i in 0..3 {
        g.message("t", &format!("m{i}"), &format!("tr-{i}")).await;
    }
    assert_eq!(g.recv().await["tracingId"], "tr-0");
    assert_eq!(g.recv().await["tracingId"], "tr-1");
    let v = g.recv().await;
    assert_eq!(error_code(&v), ("TooManyRequestsErrorMessage".into(), 429));
    assert_eq!(v["type"], "response");
    assert_eq!(v["tracingId"], "tr-2");
    assert_eq!(v["body"]["retryAfter"], 3);
    assert_eq!(v["body"]["errorCode"], 4029);
    assert_eq!(
        v["body"]["errorMessage"],
        "Message rate too high for this session"
    );
    assert_eq!(
        emu.control().messages().total,
        2,
        "a refused message is not recorded"
    );
    // Still open; a second later the session may send again.
    emu.control().advance_clock(Duration::from_secs(1));
    g.message("t", "again", "tr-3").await;
    assert_eq!(g.recv().await["tracingId"], "tr-3");
}

#[tokio::test]
async fn configurable_message_rate() {
    let emu = start_with(|c| c.guest.message_rate = 5).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("t").await;
    for i in 0..6 {
        g.message("t", &format!("m{i}"), &i.to_string()).await;
    }
    for _ in 0..5 {
        assert_eq!(g.recv().await["class"], "StructuredMessage");
    }
    assert_eq!(g.recv().await["code"], 429);
}

#[tokio::test]
async fn a_fourth_connection_closes_the_oldest() {
    let emu = start().await;
    let mut socks = Vec::new();
    for _ in 0..3 {
        let mut g = Guest::connect(&emu).await;
        g.configure("shared").await;
        socks.push(g);
    }
    let mut fourth = Guest::connect(&emu).await;
    fourth.configure("shared").await;
    let ev = socks[0].recv().await;
    assert_eq!(
        (ev["type"].as_str(), ev["class"].as_str()),
        (Some("message"), Some("ConnectionClosedEvent"))
    );
    assert_eq!(socks[0].close_code().await, 1000);
    assert_eq!(session(&emu, "shared").connections, 3);
    // The others still work.
    socks[1].message("shared", "still here", "x").await;
    assert_eq!(socks[1].recv().await["tracingId"], "x");
    assert_eq!(fourth.recv().await["tracingId"], "x");
}

#[tokio::test]
async fn error_frames_for_bad_requests() {
    let emu = start_with(|c| {
        c.text_limits.guest = 10;
        c.text_limits.guest_attributes_bytes = 20;
    })
    .await;
    let mut g = Guest::connect(&emu).await;
    // Before configureSession: session not found.
    g.message("t", "early", "a").await;
    let v = g.recv().await;
    assert_eq!(error_code(&v), ("string".into(), 4007));
    assert_eq!(v["tracingId"], "a");
    g.configure("t").await;
    g.message("t", "01234567890", "too-long").await;
    let v = g.recv().await;
    assert_eq!(error_code(&v), ("string".into(), 4011));
    assert_eq!(v["tracingId"], "too-long");
    let attrs = json!({"action": "onMessage", "token": "t", "tracingId": "attrs", "message": {"type": "Text", "text": "ok", "channel": {"metadata": {"customAttributes": {"k": "x".repeat(30)}}}}});
    g.send(attrs).await;
    assert_eq!(error_code(&g.recv().await), ("string".into(), 4013));
    g.ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(error_code(&g.recv().await), ("string".into(), 400));
    g.send(json!({"action": "dance", "token": "t"})).await;
    assert_eq!(error_code(&g.recv().await), ("string".into(), 400));
    // Refused messages still count against the session's rate.
    emu.control().advance_clock(Duration::from_secs(1));
    g.send(json!({"action": "onMessage", "token": "t", "message": {"type": "Text"}}))
        .await;
    assert_eq!(error_code(&g.recv().await), ("string".into(), 400));
    // Exactly at the limit is fine.
    g.message("t", "0123456789", "exact").await;
    assert_eq!(g.recv().await["class"], "StructuredMessage");
    assert_eq!(emu.control().messages().total, 1);
    // Unknown deployment.
    let mut other = Guest::connect_to(&emu, "nope").await;
    other
        .send(json!({"action": "configureSession", "deploymentId": "nope", "token": "z"}))
        .await;
    assert_eq!(error_code(&other.recv().await), ("string".into(), 403));
}

#[tokio::test]
async fn expired_sessions_answer_4006() {
    let emu = start_with(|c| c.guest.session_ttl = Duration::from_secs(60)).await;
    let mut g = Guest::connect(&emu).await;
    g.configure("a").await;
    emu.control().advance_clock(Duration::from_secs(61));
    g.message("a", "late", "l").await;
    assert_eq!(error_code(&g.recv().await), ("string".into(), 4006));
    assert!(session(&emu, "a").expired);

    let mut h = Guest::connect(&emu).await;
    h.configure("b").await;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/sessions/expire",
        &[],
        r#"{"token":"b"}"#,
    )
    .await;
    assert_eq!(r.json()["expired"], true);
    let ev = h.recv().await;
    assert_eq!(ev["class"], "SessionExpiredEvent");
    assert_eq!(h.close_code().await, 1000);
    let mut again = Guest::connect(&emu).await;
    again
        .send(json!({"action": "configureSession", "deploymentId": DEPLOYMENT, "token": "b"}))
        .await;
    assert_eq!(error_code(&again.recv().await), ("string".into(), 4006));
}

#[tokio::test]
async fn close_session_closes_this_socket() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("c").await;
    g.send(json!({"action": "closeSession", "token": "c", "closeAllConnections": false, "tracingId": "bye"})).await;
    let ev = g.recv().await;
    assert_eq!(
        (ev["class"].as_str(), ev["tracingId"].as_str()),
        (Some("ConnectionClosedEvent"), Some("bye"))
    );
    assert_eq!(g.close_code().await, 1000);
    assert_eq!(session(&emu, "c").connections, 0);
}

#[tokio::test]
async fn close_all_connections_makes_the_session_read_only_until_start_new() {
    let emu = start_with(|c| c.guest.message_rate = 100).await;
    let mut a = Guest::connect(&emu).await;
    let mut b = Guest::connect(&emu).await;
    a.configure("s").await;
    b.configure("s").await;
    a.message("s", "before", "t-1").await;
    a.recv().await;
    b.recv().await;
    let first_conversation = session(&emu, "s").conversation_id;

    a.send(json!({"action": "closeSession", "token": "s", "closeAllConnections": true, "tracingId": "bye"})).await;
    // This socket: the conversation is over, the socket stays.
    let r = a.recv().await;
    assert_eq!(
        (r["class"].as_str(), r["tracingId"].as_str()),
        (Some("SessionResponse"), Some("bye"))
    );
    assert_eq!(
        (&r["body"]["connected"], &r["body"]["readOnly"]),
        (&json!(false), &json!(true))
    );
    // The others: closed.
    assert_eq!(b.recv().await["class"], "ConnectionClosedEvent");
    assert_eq!(b.close_code().await, 1000);
    // Read-only: messages are refused.
    a.message("s", "too late", "t-2").await;
    let refused = a.recv().await;
    assert_eq!(error_code(&refused), ("string".to_owned(), 400));

    // The transport then reconfigures with startNew: a new conversation.
    a.send(json!({"action": "configureSession", "deploymentId": DEPLOYMENT, "token": "s", "startNew": true})).await;
    let fresh = a.recv().await;
    assert_eq!(fresh["class"], "SessionResponse");
    assert_eq!(
        (
            &fresh["body"]["connected"],
            &fresh["body"]["newSession"],
            &fresh["body"]["readOnly"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    let s = session(&emu, "s");
    assert_ne!(s.conversation_id, first_conversation);
    assert!(!s.read_only);
    a.message("s", "after", "t-3").await;
    assert_eq!(a.recv().await["body"]["text"], "after");
    // History shows the new conversation only.
    a.send(json!({"action": "getJwt", "token": "s"})).await;
    let jwt = a.recv().await["body"]["jwt"].as_str().unwrap().to_owned();
    let h = history(&emu, &jwt, "").await.json();
    let texts: Vec<&str> = h["entities"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(texts, ["after"]);
}

#[tokio::test]
async fn start_new_on_a_live_session_starts_a_new_conversation() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("live").await;
    let before = session(&emu, "live").conversation_id;
    g.send(json!({"action": "configureSession", "deploymentId": DEPLOYMENT, "token": "live", "startNew": true})).await;
    let r = g.recv().await;
    assert_eq!(r["body"]["newSession"], true);
    assert_ne!(session(&emu, "live").conversation_id, before);
}

async fn history(emu: &Emulator, jwt: &str, query: &str) -> Resp {
    let auth = format!("Bearer {jwt}");
    call(
        emu.local_addr(),
        "GET",
        &format!("/api/v2/webmessaging/messages{query}"),
        &[("authorization", &auth)],
        "",
    )
    .await
}

#[tokio::test]
async fn history_pages_newest_first_with_the_guest_jwt() {
    let emu = start_with(|c| {
        c.guest.message_rate = 100;
        c.guest.history_rate = 4;
        c.guest.jwt_ttl = Duration::from_secs(600);
    })
    .await;
    let mut g = Guest::connect(&emu).await;
    g.configure("h").await;
    for i in 1..=5 {
        g.message("h", &format!("m{i}"), &i.to_string()).await;
        g.recv().await;
    }
    g.send(json!({"action": "getJwt", "token": "h", "tracingId": "j"}))
        .await;
    let j = g.recv().await;
    assert_eq!(
        (j["class"].as_str(), j["tracingId"].as_str()),
        (Some("JwtResponse"), Some("j"))
    );
    let jwt = j["body"]["jwt"].as_str().unwrap().to_owned();
    assert_eq!(jwt.split('.').count(), 3);
    assert!(j["body"]["exp"].as_u64().unwrap() > 1_600_000_000);

    let r = history(&emu, &jwt, "?pageSize=2&pageNumber=1").await;
    assert_eq!(r.status, 200);
    let v = r.json();
    assert_model(
        &v,
        "WebMessagingMessageEntityList",
        &["entities", "pageSize", "pageNumber", "total", "pageCount"],
    );
    assert_eq!(
        (
            v["total"].as_u64(),
            v["pageCount"].as_u64(),
            v["pageSize"].as_u64()
        ),
        (Some(5), Some(3), Some(2))
    );
    let texts: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["m5", "m4"]);
    assert!(
        v["entities"][0].get("metadata").is_none(),
        "no metadata was sent"
    );
    for e in v["entities"].as_array().unwrap() {
        assert_model(
            e,
            "WebMessagingMessage",
            &["id", "channel", "type", "text", "direction"],
        );
    }
    assert_eq!(r.header("inin-ratelimit-count"), Some("1"));
    let v = history(&emu, &jwt, "?pageSize=2&pageNumber=3").await.json();
    assert_eq!(v["entities"][0]["text"], "m1");
    let v = history(&emu, &jwt, "").await.json();
    assert_eq!(
        (
            v["pageSize"].as_u64(),
            v["entities"].as_array().unwrap().len()
        ),
        (Some(25), 5)
    );
    assert_error(
        &history(&emu, &jwt, "?pageSize=0").await,
        400,
        "bad.request",
    );
    // Fifth read in the window: limited.
    let r = history(&emu, &jwt, "").await;
    assert_error(&r, 429, "too.many.requests.retry.after");
    assert!(r.header("retry-after").is_some());

    assert_error(&history(&emu, "nope", "").await, 401, "bad.credentials");
    let r = call(
        emu.local_addr(),
        "GET",
        "/api/v2/webmessaging/messages",
        &[],
        "",
    )
    .await;
    assert_error(&r, 401, "authentication.required");
    emu.control().advance_clock(Duration::from_secs(601));
    assert_error(&history(&emu, &jwt, "").await, 401, "credentials.expired");
}

#[tokio::test]
async fn drop_fault_records_then_cuts_the_socket() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("d").await;
    emu.control()
        .update_faults(|f| f.ws_drop_rate = 1.0)
        .unwrap();
    g.message("d", "recorded anyway", "x").await;
    assert!(
        g.ended_abruptly().await,
        "expected an abrupt end (1006), not a close frame"
    );
    assert_eq!(emu.control().messages().total, 1);
    assert_eq!(session(&emu, "d").messages[0].echo, EchoState::Dropped);
}

#[tokio::test]
async fn lost_echo_records_without_echoing() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("l").await;
    emu.control()
        .update_faults(|f| f.ws_lost_echo_rate = 1.0)
        .unwrap();
    g.message("l", "no echo", "x").await;
    g.send(json!({"action": "echo", "token": "l", "tracingId": "hc", "message": {"type": "Text", "text": "ping"}})).await;
    assert_eq!(
        g.recv().await["tracingId"],
        "hc",
        "the message's echo never came"
    );
    assert_eq!(emu.control().messages().total, 1);
    assert_eq!(session(&emu, "l").messages[0].echo, EchoState::Lost);
}

#[tokio::test]
async fn delayed_and_reordered_echoes() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("r").await;
    emu.control()
        .update_faults(|f| f.ws_echo_delay_ms = 150)
        .unwrap();
    let t0 = Instant::now();
    g.message("r", "slow", "s").await;
    assert_eq!(g.recv().await["tracingId"], "s");
    assert!(t0.elapsed() >= Duration::from_millis(150));

    emu.control().advance_clock(Duration::from_secs(1));
    emu.control()
        .update_faults(|f| {
            f.ws_echo_delay_ms = 0;
            f.ws_reorder = true;
        })
        .unwrap();
    g.message("r", "first", "1").await;
    g.message("r", "second", "2").await;
    assert_eq!(g.recv().await["tracingId"], "2");
    assert_eq!(g.recv().await["tracingId"], "1");
    assert_eq!(
        emu.control()
            .messages()
            .lane(RouteKind::Guest, "r")
            .unwrap()
            .texts,
        ["slow", "first", "second"],
        "recorded in arrival order"
    );
    // A lone echo is released after the hold.
    emu.control().advance_clock(Duration::from_secs(1));
    g.message("r", "alone", "3").await;
    assert_eq!(g.recv().await["tracingId"], "3");
}

#[tokio::test]
async fn outage_cuts_open_sockets_and_refuses_new_ones() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("o").await;
    emu.control().update_faults(|f| f.outage = true).unwrap();
    assert!(g.ended_abruptly().await);
    let r = tokio_tungstenite::connect_async(format!("{}?deploymentId={DEPLOYMENT}", emu.ws_url()))
        .await;
    assert!(r.is_err());
    emu.control().clear_faults();
    let mut g = Guest::connect(&emu).await;
    assert_eq!(g.configure("o").await["body"]["newSession"], false);
}

#[tokio::test]
async fn control_can_drop_sockets() {
    let emu = start().await;
    let mut a = Guest::connect(&emu).await;
    a.configure("a").await;
    let mut b = Guest::connect(&emu).await;
    b.configure("b").await;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/sessions/drop",
        &[],
        r#"{"token":"a"}"#,
    )
    .await;
    assert_eq!(r.json()["dropped"], 1);
    assert!(a.ended_abruptly().await);
    b.message("b", "alive", "x").await;
    assert_eq!(b.recv().await["tracingId"], "x");
}

#[tokio::test]
async fn upgrade_needs_a_handshake_and_a_deployment() {
    let emu = start().await;
    let r = call(
        emu.local_addr(),
        "GET",
        "/v1?deploymentId=demo-deployment",
        &[],
        "",
    )
    .await;
    assert_error(&r, 400, "bad.request");
    let r = tokio_tungstenite::connect_async(emu.ws_url()).await;
    assert!(r.is_err(), "no deploymentId");
    let log = emu.control().requests();
    assert!(
        log.entries
            .iter()
            .all(|e| e.outcome == genesys_emulator::Outcome::WsRefused)
    );
}

#[tokio::test]
async fn history_keeps_the_metadata_a_guest_sent() {
    let emu = start().await;
    let mut g = Guest::connect(&emu).await;
    g.configure("md").await;
    g.send(json!({"action": "onMessage", "token": "md", "tracingId": "t1", "time": "2026-01-01T00:00:00Z",
        "message": {"type": "Text", "text": "tagged", "metadata": {"outboxId": "e-1"}}}))
        .await;
    let echo = g.recv().await;
    assert_eq!(
        echo["body"]["metadata"]["outboxId"], "e-1",
        "the echo carries it"
    );
    g.send(json!({"action": "getJwt", "token": "md", "tracingId": "j"}))
        .await;
    let jwt = g.recv().await["body"]["jwt"].as_str().unwrap().to_owned();
    let v = history(&emu, &jwt, "").await.json();
    let e = &v["entities"][0];
    assert_eq!(
        (e["text"].as_str(), e["metadata"]["outboxId"].as_str()),
        (Some("tagged"), Some("e-1"))
    );
    assert_model(
        e,
        "WebMessagingMessage",
        &["id", "channel", "type", "text", "direction"],
    );
}
