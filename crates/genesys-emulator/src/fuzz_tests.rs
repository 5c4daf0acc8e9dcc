//! The emulator's parsers of request bodies, fuzzed with `outbox-fuzz`
//! (`OUTBOX_FUZZ_CASES` inputs each; 10,000 by default, 1,000,000 under
//! `cargo xtask fuzz`): the REST message routes (path matching, then
//! `routes::parse` on the JSON body, then the success body), the OAuth
//! client-credentials form, and the `/__emulator/faults` patch. A panic or
//! a broken invariant fails the test with the seed and the input.

use hyper::Method;
use outbox_fuzz::{Rng, run};
use serde_json::Value;

use crate::auth::authenticate_client;
use crate::config::{ClientCredentials, TextLimits};
use crate::faults::Faults;
use crate::routes::{match_route, parse, success_body};
use crate::urlencoded::{parse_pairs, percent_decode};

const BODY_KEYS: &[&str] = &[
    "textBody",
    "mediaIds",
    "messagingTemplate",
    "fromAddress",
    "toAddress",
    "toAddressMessengerType",
    "useExistingActiveConversation",
    "channel",
    "from",
    "to",
    "id",
    "idType",
    "messageId",
    "time",
    "type",
    "text",
    "direction",
    "externalId",
    "conversationId",
    "normalizedMessage",
    "media",
    "messengerType",
    "status",
];

const PATHS: &[&str] = &[
    "/api/v2/conversations/messages/c1/communications/m1/messages",
    "/api/v2/conversations/messages/agentless",
    "/api/v2/conversations/messages/int%2D1/inbound/open/message",
    "/api/v2/conversations/messaging/messages",
    "/api/v2/webmessaging/messages",
    "/api/v2/conversations/messages//communications//messages",
    "/api/v2/conversations/messages/%ZZ/communications/%/messages/",
];

fn string(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => serde_json::Value::String(
            "x".repeat(rng.pick(&[764usize, 765, 766, 1999, 2000, 2001, 4000, 4001])),
        )
        .to_string(),
        1 => rng.json_string(12),
        2 => rng.pick(&["1", "null", "[]", "{}", "\"\""]).to_owned(),
        _ => serde_json::Value::String(rng.text(12)).to_string(),
    }
}

/// A path and a body for one of the routes, near-valid: the route's own
/// members with values of the right type most of the time.
fn request(rng: &mut Rng) -> String {
    let kind = rng.below(5);
    let path = if rng.one_in(5) {
        rng.pick(PATHS)
    } else {
        PATHS[kind.min(3)]
    };
    format!("{path}\n{}", body(rng, kind))
}

fn body(rng: &mut Rng, kind: usize) -> String {
    let s = |v: &str| serde_json::Value::String(v.to_owned()).to_string();
    match kind {
        0 => format!(r#"{{"textBody":{}}}"#, string(rng)),
        1 => format!(
            r#"{{"fromAddress":{},"toAddress":{},"toAddressMessengerType":{},"textBody":{},"useExistingActiveConversation":{}}}"#,
            string(rng),
            string(rng),
            s(rng.pick(&["sms", "whatsapp", "open", "email", ""])),
            string(rng),
            rng.pick(&["true", "false", "1"])
        ),
        2 => format!(
            r#"{{"channel":{{"from":{{"id":{},"idType":{}}},"to":{{"id":{}}},"messageId":{},"time":{}}},"text":{},"direction":"Inbound"}}"#,
            string(rng),
            s(rng.pick(&["Email", "Phone", "Opaque", "x"])),
            string(rng),
            string(rng),
            s(rng.pick(&["2025-01-01T00:00:00.000Z", "yesterday", ""])),
            string(rng)
        ),
        3 => format!(
            r#"{{"mediaIds":[{}],"messagingTemplate":{}}}"#,
            string(rng),
            rng.json_value(2, BODY_KEYS)
        ),
        _ => rng.json_value(3, BODY_KEYS),
    }
}

#[test]
fn rest_message_bodies() {
    let limits = TextLimits::default();
    run(
        "emulator REST bodies",
        BODY_KEYS,
        |rng| request(rng).into_bytes(),
        |input| {
            let text = String::from_utf8_lossy(input);
            let (path, body) = text.split_once('\n').unwrap_or((&text, ""));
            let _ = match_route(&Method::GET, path);
            let Some(route) = match_route(&Method::POST, path) else {
                return Ok(());
            };
            let Ok(json) = serde_json::from_slice::<Value>(body.as_bytes()) else {
                return Ok(());
            };
            match parse(&route, &json, &limits) {
                Ok(p) => {
                    outbox_fuzz::accept();
                    let _ = (p.route_kind(), p.lane(), p.text(), p.content_kind());
                    let _ = (p.body_key(), p.given_conversation());
                    let answer = success_body(&p, "id-1", "conv-1", "2025-01-01T00:00:00Z");
                    if !answer.is_object() {
                        return Err("a success body that is not an object".into());
                    }
                }
                Err(e) => {
                    if !(400..600).contains(&e.status) || e.message.is_empty() {
                        return Err(format!("odd error {} {:?}", e.status, e.message));
                    }
                }
            }
            Ok(())
        },
    );
}

#[test]
fn oauth_client_credentials_form() {
    let clients = [ClientCredentials {
        id: "client".into(),
        secret: "s3cret".into(),
    }];
    let keys = [
        "grant_type",
        "client_id",
        "client_secret",
        "scope",
        "=",
        "&",
        "+",
        "%3D",
    ];
    run(
        "emulator OAuth form",
        &keys,
        |rng| {
            let auth = match rng.below(4) {
                0 => "Basic Y2xpZW50OnMzY3JldA==".to_owned(),
                1 => format!(
                    "{} {}",
                    rng.pick(&["Basic", "basic", "Bearer"]),
                    rng.text(12)
                ),
                2 => String::new(),
                _ => "Basic !!notbase64".to_owned(),
            };
            let ct = rng.pick(&[
                "application/x-www-form-urlencoded",
                "application/x-www-form-urlencoded; charset=utf-8",
                "application/json",
                "",
            ]);
            let mut form = vec!["grant_type=client_credentials".to_owned()];
            if rng.one_in(3) {
                form.clear();
            }
            if rng.one_in(2) {
                form.push("client_id=client&client_secret=s3cret".to_owned());
            }
            for _ in 0..rng.below(3) {
                let k = rng.pick(&keys[..4]);
                let v = rng.pick(&[
                    "client_credentials",
                    "client",
                    "s3cret",
                    "%41",
                    "%",
                    "%zz",
                    "a+b",
                ]);
                form.push(format!("{k}={v}"));
            }
            format!("{auth}\n{ct}\n{}", form.join("&")).into_bytes()
        },
        |input| {
            let text = String::from_utf8_lossy(input);
            let mut parts = text.splitn(3, '\n');
            let auth = parts.next().filter(|s| !s.is_empty());
            let ct = parts.next().filter(|s| !s.is_empty());
            let body = parts.next().unwrap_or_default();
            let _ = percent_decode(body, true);
            let _ = parse_pairs(body);
            match authenticate_client(&clients, auth, ct, body.as_bytes()) {
                Ok(id) if id != "client" => Err(format!("unknown client `{id}` accepted")),
                Ok(_) => {
                    outbox_fuzz::accept();
                    Ok(())
                }
                Err(_) => Ok(()),
            }
        },
    );
}

#[test]
fn faults_patch() {
    let keys = [
        "outage",
        "latencyMs",
        "jitterMs",
        "errorRate",
        "errorStatuses",
        "lostAckRate",
        "forceUnauthorized",
        "dailyLimit",
        "rateLimit",
        "wsDropRate",
        "wsLostEchoRate",
        "wsEchoDelayMs",
        "wsReorder",
    ];
    run(
        "emulator faults patch",
        &keys,
        |rng| {
            let members: Vec<String> = (0..rng.below(5))
                .map(|_| {
                    let value = match rng.below(4) {
                        0 => rng.pick(&["true", "false", "null"]).to_owned(),
                        1 => format!("0.{}", rng.below(100)),
                        2 => format!("[{}]", rng.pick(&["500", "503", "200", "999", "-1"])),
                        _ => rng.number_text(),
                    };
                    format!("{}:{value}", Value::String(rng.pick(&keys).into()))
                })
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        },
        |input| {
            let Ok(patch) = serde_json::from_slice::<Value>(input) else {
                return Ok(());
            };
            if let Ok(f) = Faults::default().merged(&patch) {
                outbox_fuzz::accept();
                if f.validate().is_err() {
                    return Err("merged faults that do not validate".into());
                }
            }
            Ok(())
        },
    );
}
