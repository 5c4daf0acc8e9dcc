//! The route table: every default route on every region, lane extraction,
//! idempotency carriers, and header stripping.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::clock::SplitMix64;
use outbox_core::entry::EntryId;
use outbox_core::entry::Prepared;
use outbox_core::genesys::REGIONS;
use outbox_core::request::IncomingRequest;
use outbox_core::route::{Carrier, LaneSource, Route, RouteTable, Routing, names};

fn id(seed: u64) -> EntryId {
    EntryId::random(&mut SplitMix64::new(seed))
}

fn post(url: &str, body: &str) -> IncomingRequest {
    IncomingRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![
            ("Content-Type".into(), "application/json".into()),
            ("Authorization".into(), "Bearer secret-token".into()),
            ("Cookie".into(), "session=1".into()),
            ("X-Api-Key".into(), "k".into()),
        ],
        body: body.as_bytes().to_vec(),
    }
}

fn matched(table: &RouteTable, req: &IncomingRequest) -> Prepared {
    match table.prepare(req, id(1)) {
        Routing::Matched(p) => *p,
        other => panic!("expected a match for {}, got {other:?}", req.url),
    }
}

fn body_str(p: &Prepared) -> &str {
    std::str::from_utf8(&p.request.body).unwrap()
}

const AGENT: &str = "/api/v2/conversations/messages/conv-1/communications/comm-9/messages";
const OPEN: &str = "/api/v2/conversations/messages/integ-7/inbound/open/message";
const AGENTLESS: &str = "/api/v2/conversations/messages/agentless";
const SEED: &str = "/api/v2/conversations/messaging/messages";

#[test]
fn every_region_gets_the_four_routes() {
    let table = RouteTable::genesys();
    assert_eq!(REGIONS.len(), 18);
    assert_eq!(table.routes().len(), 4);
    for domain in REGIONS {
        let base = format!("https://api.{domain}");
        let p = matched(
            &table,
            &post(&format!("{base}{AGENT}"), r#"{"textBody":"hi"}"#),
        );
        assert_eq!(
            (p.route.as_str(), p.lane.as_str()),
            (names::AGENT_SEND, "conv-1")
        );
        assert_eq!(p.origin, base);
        let p = matched(
            &table,
            &post(
                &format!("{base}{AGENTLESS}"),
                r#"{"toAddress":"+15551234","textBody":"x"}"#,
            ),
        );
        assert_eq!(
            (p.route.as_str(), p.lane.as_str()),
            (names::AGENTLESS, "+15551234")
        );
        // login. and webmessaging. hosts are not API origins.
        assert!(!table.is_candidate("POST", &format!("https://login.{domain}{AGENT}")));
    }
}

#[test]
fn agent_send_lane_is_the_conversation_and_has_no_carrier() {
    let table = RouteTable::genesys();
    let p = matched(
        &table,
        &post(
            &format!("https://api.mypurecloud.ie{AGENT}"),
            r#"{"textBody":"hi"}"#,
        ),
    );
    assert_eq!(p.lane, "conv-1");
    assert_eq!(
        body_str(&p),
        r#"{"textBody":"hi"}"#,
        "the body is untouched"
    );
    assert!(
        p.request.header("idempotency-key").is_none(),
        "no header added by default"
    );
    assert_eq!(p.idempotency_key, id(1).to_string());
    assert!(!p.conflict_is_delivered);
}

#[test]
fn open_inbound_lane_is_the_sender_and_message_id_carries_the_key() {
    let table = RouteTable::genesys();
    let body = r#"{"channel":{"from":{"id":"cust-42","idType":"Opaque"},"time":"2026-01-01T00:00:00Z"},"text":"hello"}"#;
    let p = matched(
        &table,
        &post(&format!("https://api.mypurecloud.com{OPEN}"), body),
    );
    assert_eq!(
        (p.route.as_str(), p.lane.as_str()),
        (names::OPEN_INBOUND, "cust-42")
    );
    let key = id(1).to_string();
    assert_eq!(
        body_str(&p),
        format!(
            r#"{{"channel":{{"messageId":"{key}","from":{{"id":"cust-42","idType":"Opaque"}},"time":"2026-01-01T00:00:00Z"}},"text":"hello"}}"#
        )
    );
    // An app-supplied messageId is the key, and the body stays as it was.
    let body =
        r#"{"channel":{"from":{"id":"cust-42","idType":"Opaque"},"messageId":"m-1"},"text":"x"}"#;
    let p = matched(
        &table,
        &post(&format!("https://api.mypurecloud.com{OPEN}"), body),
    );
    assert_eq!(p.idempotency_key, "m-1");
    assert_eq!(body_str(&p), body);
}

#[test]
fn seed_route_uses_to_id_then_conversation_id_and_both_carriers() {
    let table = RouteTable::genesys();
    let url = format!("https://api.mypurecloud.de{SEED}");
    let p = matched(&table, &post(&url, r#"{"to":{"id":"guest-1"},"text":"x"}"#));
    assert_eq!(
        (p.route.as_str(), p.lane.as_str()),
        (names::SEED_TUTORIAL, "guest-1")
    );
    let key = id(1).to_string();
    assert_eq!(
        body_str(&p),
        format!(r#"{{"externalId":"{key}","to":{{"id":"guest-1"}},"text":"x"}}"#)
    );
    assert_eq!(p.request.header("Idempotency-Key"), Some(key.as_str()));
    assert!(
        p.conflict_is_delivered,
        "409 means 'already have it' on this route"
    );
    let p = matched(
        &table,
        &post(
            &url,
            r#"{"conversationId":"c-9","text":"x","externalId":"ext-5"}"#,
        ),
    );
    assert_eq!(p.lane, "c-9");
    assert_eq!(
        p.idempotency_key, "ext-5",
        "an existing externalId is the key"
    );
    assert_eq!(p.request.header("idempotency-key"), Some("ext-5"));
    // An Idempotency-Key header from the app wins when the body has none.
    let mut req = post(&url, r#"{"conversationId":"c-9","text":"x"}"#);
    req.headers.push(("Idempotency-Key".into(), "hdr-1".into()));
    let p = matched(&table, &req);
    assert_eq!(p.idempotency_key, "hdr-1");
    assert!(body_str(&p).contains(r#""externalId":"hdr-1""#));
}

#[test]
fn numeric_lane_values_are_keys_too() {
    let table = RouteTable::genesys();
    let p = matched(
        &table,
        &post(
            &format!("https://api.mypurecloud.jp{SEED}"),
            r#"{"to":{"id":12345},"text":"x"}"#,
        ),
    );
    assert_eq!(p.lane, "12345");
}

#[test]
fn credentials_are_stripped_and_the_bearer_kept_aside() {
    let table = RouteTable::genesys();
    let p = matched(
        &table,
        &post(
            &format!("https://api.mypurecloud.ie{AGENT}"),
            r#"{"textBody":"hi"}"#,
        ),
    );
    let names: Vec<&str> = p.request.headers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["content-type"]);
    assert_eq!(p.bearer.as_deref(), Some("secret-token"));
}

#[test]
fn unmatched_requests_are_never_touched() {
    let table = RouteTable::genesys();
    for (method, url) in [
        ("GET", format!("https://api.mypurecloud.ie{AGENT}")),
        ("PUT", format!("https://api.mypurecloud.ie{AGENT}")),
        ("POST", format!("https://api.example.com{AGENT}")),
        (
            "POST",
            "https://api.mypurecloud.ie/api/v2/users/me".to_string(),
        ),
        ("POST", format!("https://api.mypurecloud.ie{AGENT}/extra")),
        (
            "POST",
            "https://api.mypurecloud.ie/api/v2/conversations/messages//communications/x/messages"
                .to_string(),
        ),
        ("POST", "/relative/url".to_string()),
    ] {
        assert!(!table.is_candidate(method, &url), "{method} {url}");
        let mut req = post(&url, "{}");
        req.method = method.into();
        assert_eq!(
            table.prepare(&req, id(2)),
            Routing::Unmatched,
            "{method} {url}"
        );
    }
}

#[test]
fn matched_but_unkeyable_requests_are_reported_not_queued() {
    let table = RouteTable::genesys();
    for body in [
        "not json",
        r#"{"text":"no lane"}"#,
        r#"{"to":{"id":""}}"#,
        r#"{"to":{"id":null}}"#,
        "",
    ] {
        let r = table.prepare(
            &post(&format!("https://api.mypurecloud.ie{SEED}"), body),
            id(3),
        );
        assert!(
            matches!(r, Routing::Unroutable { ref route, .. } if route == names::SEED_TUTORIAL),
            "{body}: {r:?}"
        );
    }
    // A body carrier needs an object where it goes.
    let r = table.prepare(
        &post(
            &format!("https://api.mypurecloud.ie{OPEN}"),
            r#"{"channel":"x","text":"t"}"#,
        ),
        id(3),
    );
    assert!(matches!(r, Routing::Unroutable { .. }), "{r:?}");
    // A body carrier that holds something other than a string can neither
    // give the key nor carry it (found by `cargo xtask fuzz`).
    for held in ["null", "true", "7", "[\"k\"]", "{}"] {
        let r = table.prepare(
            &post(
                &format!("https://api.mypurecloud.ie{OPEN}"),
                &format!(r#"{{"channel":{{"from":{{"id":"u"}},"messageId":{held}}},"text":"t"}}"#),
            ),
            id(3),
        );
        assert!(
            matches!(r, Routing::Unroutable { ref reason, .. } if reason.contains("channel.messageId is not a string")),
            "{held}: {r:?}"
        );
    }
}

#[test]
fn apps_add_origins_routes_and_headers() {
    let mut table = RouteTable::genesys();
    table.add_origin("http://127.0.0.1:8081").unwrap();
    table.add_origin("http://127.0.0.1:8081/").unwrap();
    assert_eq!(
        table
            .origins()
            .iter()
            .filter(|o| o.as_str() == "http://127.0.0.1:8081")
            .count(),
        1
    );
    assert!(table.add_origin("http://127.0.0.1:8081/api").is_err());
    assert!(table.is_candidate("POST", &format!("http://127.0.0.1:8081{AGENT}")));
    let route = Route::post(
        "proxy",
        "/chat/{room}/send",
        vec![LaneSource::PathParam("room".into())],
    )
    .unwrap()
    .with_carrier(Carrier::Header("X-Request-Id".into()));
    table.add_route(route);
    table.keep_header("X-Trace");
    let mut req = post("http://127.0.0.1:8081/chat/r1/send", "plain text body");
    req.headers.push(("X-Trace".into(), "tr".into()));
    let p = matched(&table, &req);
    assert_eq!((p.route.as_str(), p.lane.as_str()), ("proxy", "r1"));
    assert_eq!(
        p.request.header("x-request-id"),
        Some(id(1).to_string().as_str())
    );
    assert_eq!(p.request.header("x-trace"), Some("tr"));
    assert_eq!(
        body_str(&p),
        "plain text body",
        "no JSON needed when no body field is used"
    );
    // Bad templates and unknown lane parameters are refused.
    assert!(Route::post("bad", "no-slash", vec![]).is_err());
    assert!(Route::post("bad", "/a//b", vec![]).is_err());
    assert!(Route::post("bad", "/a/{x", vec![]).is_err());
    assert!(Route::post("bad", "/a/{x}", vec![LaneSource::PathParam("y".into())]).is_err());
}
