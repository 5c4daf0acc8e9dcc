//! Every parser of outside input in `outbox-core`, fuzzed: `OUTBOX_FUZZ_CASES`
//! inputs each (10,000 by default; `cargo xtask fuzz` runs 1,000,000).
//! Each test prints one line: the parser, the inputs fed, the failures.

use outbox_core::classify::{self, ClassifyConfig, Response};
use outbox_core::config::OutboxConfig;
use outbox_core::entry::EntryId;
use outbox_core::guest;
use outbox_core::headers;
use outbox_core::json::{self, JsonError, Kind};
use outbox_core::request::IncomingRequest;
use outbox_core::retry_after::{RateLimitInfo, RetryAfterNote, parse_http_date, parse_retry_after};
use outbox_core::route::{Carrier, LaneSource, PathTemplate, Route, RouteTable, Routing};
use outbox_core::url;
use outbox_fuzz::{Rng, run};

const NOW: u64 = 1_764_000_000_000;

fn text(input: &[u8]) -> String {
    String::from_utf8_lossy(input).into_owned()
}

// ---------------------------------------------------------------- Retry-After

const DAYS: &[&str] = &[
    "Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun", "Sunday", "Xyz", "",
];
const MONTHS: &[&str] = &[
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec", "jan",
    "Foo", "",
];

fn http_date(rng: &mut Rng) -> String {
    let day = rng.pick(DAYS);
    let mon = rng.pick(MONTHS);
    let d = rng.below(40);
    let y = rng.pick(&[1994u64, 2025, 1969, 1970, 9999, 0, 99999, 2100]);
    let (h, m, s) = (rng.below(30), rng.below(70), rng.below(70));
    match rng.below(4) {
        0 => format!("{day}, {d:02} {mon} {y:04} {h:02}:{m:02}:{s:02} GMT"),
        1 => format!(
            "{day}, {d:02}-{mon}-{:02} {h:02}:{m:02}:{s:02} GMT",
            y % 100
        ),
        2 => format!("{day} {mon} {d:>2} {h:02}:{m:02}:{s:02} {y}"),
        _ => format!("{day}, {d} {mon} {y} {h}:{m}:{s} UTC"),
    }
}

#[test]
fn retry_after() {
    let dict = [
        "GMT", ", ", ":", "-", " ", "Sun", "Nov", "1994", "99", "Sunday",
    ];
    run(
        "Retry-After",
        &dict,
        |rng| {
            match rng.below(5) {
                0 => rng.interesting_u64().to_string(),
                1 => rng.below(7_200).to_string(),
                2 => format!("-{}", rng.below(1000)),
                3 => format!(" {} ", rng.number_text()),
                _ => http_date(rng),
            }
            .into_bytes()
        },
        |input| {
            let v = text(input);
            let cap = 3_600_000;
            let r = parse_retry_after(&v, NOW, 5_000, cap);
            if !matches!(
                r.note,
                Some(RetryAfterNote::Unparseable(_) | RetryAfterNote::Negative)
            ) {
                outbox_fuzz::accept();
            }
            if r.delay_ms > cap {
                return Err(format!("delay {} above the cap", r.delay_ms));
            }
            let _ = parse_http_date(&v);
            let _ = r.note.map(|n| n.to_string());
            Ok(())
        },
    );
}

// ---------------------------------------------------------- inin-ratelimit-*

#[test]
fn inin_ratelimit() {
    let names = [
        "inin-ratelimit-count",
        "inin-ratelimit-allowed",
        "inin-ratelimit-reset",
        "ININ-RateLimit-Count",
        "retry-after",
    ];
    run(
        "inin-ratelimit-*",
        &["\n", ": ", "inin-ratelimit-"],
        |rng| {
            // name: value lines, split back below.
            let mut out = String::new();
            for _ in 0..rng.below(5) {
                out.push_str(rng.pick(&names));
                out.push_str(": ");
                out.push_str(&rng.number_text());
                out.push('\n');
            }
            out.into_bytes()
        },
        |input| {
            let t = text(input);
            let pairs: Vec<(&str, &str)> = t
                .lines()
                .map(|l| l.split_once(": ").unwrap_or((l, "")))
                .collect();
            let info = RateLimitInfo::from_headers(pairs.iter().copied());
            if info.allowed == Some(0) {
                return Err("allowed 0 kept".into());
            }
            if info.is_present() {
                outbox_fuzz::accept();
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------- ErrorBody, classify

const ERROR_KEYS: &[&str] = &[
    "code",
    "message",
    "contextId",
    "status",
    "error",
    "error_description",
    "errorMessage",
    "details",
    "messageWithParams",
];

#[test]
fn error_body_and_classify() {
    run(
        "ErrorBody + classify",
        ERROR_KEYS,
        |rng| {
            let status = rng.pick(&[
                200u16, 202, 400, 401, 403, 404, 408, 409, 413, 425, 429, 500, 501, 502, 503, 504,
                0, 999,
            ]);
            let body = match rng.below(4) {
                0 => format!(
                    r#"{{"message":{},"code":{},"status":{status},"contextId":{},"details":[],"errors":[]}}"#,
                    rng.json_string(40),
                    rng.json_string(10),
                    rng.json_string(10)
                ),
                1 => rng.json_value(3, ERROR_KEYS),
                2 => rng.text(80),
                _ => format!("<html><body>{}</body></html>", rng.text(20)),
            };
            let mut head = format!("{status}\n");
            if rng.one_in(2) {
                head.push_str(&format!("retry-after: {}\n", http_date(rng)));
            } else {
                head.push_str(&format!("Retry-After: {}\n", rng.number_text()));
            }
            head.push('\n');
            head.push_str(&body);
            head.into_bytes()
        },
        |input| {
            // "status\nheader: value\n…\n\nbody"
            let t = text(input);
            let (head, body) = t.split_once("\n\n").unwrap_or((&t, ""));
            let mut lines = head.lines();
            let status = lines
                .next()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(500);
            let headers = lines
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            let e = classify::error_from_body(status, body.as_bytes());
            if e.code.is_some() {
                outbox_fuzz::accept();
            }
            if e.message.is_empty() {
                return Err("empty message".into());
            }
            // The raw bytes too (not only valid UTF-8).
            let _ = classify::error_from_body(status, input);
            let response = Response {
                status,
                headers,
                body: input.to_vec(),
            };
            let config = ClassifyConfig::default();
            for conflict in [false, true] {
                let o = classify::classify(&Ok(response.clone()), conflict, NOW, &config);
                let _ = o.pause_ms(1_000);
                let _ = o.error();
            }
            let _ = classify::reason_phrase(status);
            Ok(())
        },
    );
}

// ------------------------------------------------------------- JSON scanner

const JSON_KEYS: &[&str] = &["a", "b", "text", "channel", "from", "id", "", "é", "a\"b"];

fn json_doc(rng: &mut Rng) -> Vec<u8> {
    let mut doc = if rng.one_in(20) {
        // Deep nesting around the limit.
        let depth = json::MAX_DEPTH - 3 + rng.below(8);
        let (open, close) = if rng.one_in(2) {
            ("[", "]")
        } else {
            ("{\"a\":", "}")
        };
        format!("{}1{}", open.repeat(depth), close.repeat(depth))
    } else {
        rng.json_value(4, JSON_KEYS)
    };
    if rng.one_in(8) {
        doc = format!(" \n{doc}\t ");
    }
    doc.into_bytes()
}

fn depth_of(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth_of).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth_of).max().unwrap_or(0),
        _ => 0,
    }
}

#[test]
fn json_scanner() {
    run("json scanner", JSON_KEYS, json_doc, |doc| {
        let ours = json::validate(doc);
        let theirs = serde_json::from_slice::<serde_json::Value>(doc);
        if ours.is_ok() {
            outbox_fuzz::accept();
        }
        match (&ours, &theirs) {
            // serde_json refuses lone surrogates in `\u` escapes; the scanner
            // only checks that four hex digits follow.
            (Ok(()), Err(_)) if doc.windows(2).any(|w| w == b"\\u") => {}
            // serde_json's recursion limit (128) is not ours (64).
            (Ok(()), Err(e)) if e.to_string().contains("recursion") => {}
            // The JSON grammar has no range; serde_json refuses what overflows an f64.
            (Ok(()), Err(e)) if e.to_string().contains("out of range") => {}
            (Ok(()), Err(e)) => {
                return Err(format!("scanner accepts what serde_json refuses: {e}"));
            }
            (Err(JsonError::TooDeep), Ok(_)) => {}
            (Err(e), Ok(v)) if depth_of(v) <= json::MAX_DEPTH => {
                return Err(format!("scanner refuses valid JSON: {e}"));
            }
            _ => {}
        }
        for path in [
            &["a"][..],
            &["a", "b"],
            &["text"],
            &[],
            &["channel", "from", "id"],
        ] {
            let found = json::find(doc, path);
            let got = json::get(doc, path);
            if ours.is_ok() && got.as_ref().ok() != Some(&found) {
                return Err(format!("get and find disagree on {path:?}"));
            }
            if let Some(v) = found {
                let _ = (v.as_str(), v.as_key(), v.as_u64());
                if v.kind == Kind::String && (v.raw.first() != Some(&b'"') || v.raw.len() < 2) {
                    return Err("a string without its quotes".into());
                }
                if ours.is_ok() && json::validate(v.raw).is_err() {
                    return Err(format!("a found value at {path:?} does not validate"));
                }
            }
        }
        if let Some(members) = json::members(doc) {
            for (key, value) in &members {
                if ours.is_ok() && json::find(doc, &[key]).is_none() {
                    return Err(format!("member `{key}` not found again"));
                }
                let _ = value.as_key();
            }
        }
        if let Some(items) = json::items(doc) {
            for item in items {
                let _ = item.as_key();
            }
        }
        Ok(())
    });
}

#[test]
fn json_splicing() {
    run(
        "json splicing",
        JSON_KEYS,
        |rng| {
            // doc \0 path \0 key \0 value
            let doc = json_doc(rng);
            let path: Vec<&str> = (0..rng.below(3)).map(|_| rng.pick(JSON_KEYS)).collect();
            let mut out = doc;
            out.push(0);
            out.extend_from_slice(path.join(".").as_bytes());
            out.push(0);
            out.extend_from_slice(rng.pick(JSON_KEYS).as_bytes());
            out.push(0);
            out.extend_from_slice(rng.text(10).as_bytes());
            out
        },
        |input| {
            let mut parts = input.splitn(4, |b| *b == 0);
            let doc = parts.next().unwrap_or_default();
            let path = text(parts.next().unwrap_or_default());
            let key = text(parts.next().unwrap_or_default());
            let value = text(parts.next().unwrap_or_default());
            let path: Vec<&str> = if path.is_empty() {
                Vec::new()
            } else {
                path.split('.').collect()
            };
            let Ok(out) = json::insert_string(doc, &path, &key, &value) else {
                return Ok(());
            };
            outbox_fuzz::accept();
            json::validate(&out).map_err(|e| format!("spliced document invalid: {e}"))?;
            let mut full = path.clone();
            full.push(&key);
            let got = json::get(&out, &full)
                .map_err(|e| e.to_string())?
                .and_then(|v| v.as_str().map(|s| s.into_owned()));
            if got.as_deref() != Some(value.as_str()) {
                return Err(format!("inserted {value:?} at {full:?}, read back {got:?}"));
            }
            Ok(())
        },
    );
}

// --------------------------------------------- route templates, lane extraction

const ROUTE_TOKENS: &[&str] = &[
    "/", "{", "}", "{id}", "%2F", "?", "#", "//", "..", "http://", ":443",
];

#[test]
fn route_templates_and_urls() {
    run(
        "route templates + URLs",
        ROUTE_TOKENS,
        |rng| {
            let mut template = String::new();
            let mut path = String::new();
            for _ in 0..=rng.below(5) {
                if rng.one_in(3) {
                    template.push_str(&format!("/{{p{}}}", rng.below(3)));
                    path.push('/');
                    path.push_str(&rng.text(5).replace('/', ""));
                } else {
                    let lit = rng.pick(&["api", "v2", "messages", "x", "", "{", "a}b"]);
                    template.push('/');
                    template.push_str(lit);
                    path.push('/');
                    path.push_str(lit);
                }
            }
            let origin = rng.pick(&[
                "https://api.mypurecloud.ie",
                "HTTP://Host:80",
                "http://[::1]:8080",
                "ftp://x",
                "http://u@h",
                "https://",
            ]);
            format!(
                "{template}\n{origin}{path}{}",
                rng.pick(&["", "?q=1", "#f", "/"])
            )
            .into_bytes()
        },
        |input| {
            let t = text(input);
            let (template, url_text) = t.split_once('\n').unwrap_or((&t, ""));
            if let Ok(parts) = url::parse(url_text)
                && !parts.path.starts_with('/')
            {
                return Err("a path without its /".into());
            }
            let _ = url::normalize_origin(url_text);
            if let Ok(tpl) = PathTemplate::parse(template) {
                let path = url::parse(url_text).map(|p| p.path).unwrap_or(url_text);
                if let Some(params) = tpl.matches(path) {
                    outbox_fuzz::accept();
                    if params.iter().any(|(_, v)| v.is_empty() || v.contains('/')) {
                        return Err(format!("odd parameter values {params:?}"));
                    }
                }
            }
            Ok(())
        },
    );
}

fn table() -> RouteTable {
    let mut t = RouteTable::genesys();
    let _ = t.add_origin("http://127.0.0.1:8081");
    let body = |p: &str| p.split('.').map(str::to_owned).collect::<Vec<_>>();
    if let Ok(r) = Route::post(
        "proxy",
        "/chat/{room}/send",
        vec![
            LaneSource::BodyField(body("a.b")),
            LaneSource::PathParam("room".into()),
        ],
    ) {
        t.add_route(
            r.with_carrier(Carrier::BodyField(body("meta.key")))
                .with_carrier(Carrier::Header("Idempotency-Key".into())),
        );
    }
    t.keep_header("X-Trace");
    t
}

const LANE_KEYS: &[&str] = &[
    "a",
    "b",
    "meta",
    "key",
    "channel",
    "from",
    "id",
    "messageId",
    "externalId",
    "textBody",
    "toAddress",
    "text",
];

#[test]
fn lane_extraction() {
    let table = table();
    let urls = [
        "https://api.mypurecloud.ie/api/v2/conversations/messages/c1/communications/m1/messages",
        "https://api.mypurecloud.ie/api/v2/conversations/messages/agentless",
        "https://api.mypurecloud.ie/api/v2/conversations/messages/int-1/inbound/open/message",
        "https://api.mypurecloud.ie/api/v2/conversations/messaging/messages",
        "http://127.0.0.1:8081/chat/r%2F1/send",
        "http://127.0.0.1:8081/chat//send",
    ];
    let header_names = [
        "Authorization",
        "Content-Type",
        "X-Trace",
        "Idempotency-Key",
        "Cookie",
        "X-Api-Key",
        "authorization",
    ];
    run(
        "route prepare (lanes, carriers)",
        LANE_KEYS,
        |rng| {
            // method \n url \n name: value … \n\n body
            let method = if rng.one_in(5) {
                rng.pick(&["PUT", "GET", "pOsT"])
            } else {
                "POST"
            };
            let mut out = format!("{method}\n{}\n", rng.pick(&urls));
            for _ in 0..rng.below(4) {
                let name = rng.pick(&header_names);
                let value = match name {
                    "Authorization" | "authorization" => format!(
                        "{} {}",
                        rng.pick(&["Bearer", "bearer", "Basic", ""]),
                        rng.text(6)
                    ),
                    _ => rng.text(8),
                };
                out.push_str(&format!("{name}: {value}\n"));
            }
            out.push('\n');
            let s = |rng: &mut Rng| {
                if rng.one_in(4) {
                    rng.json_value(1, LANE_KEYS)
                } else {
                    rng.json_string(8)
                }
            };
            let body = match rng.below(6) {
                0 => format!(
                    r#"{{"channel":{{"from":{{"id":{}}},"messageId":{}}},"text":{}}}"#,
                    s(rng),
                    s(rng),
                    s(rng)
                ),
                1 => format!(r#"{{"toAddress":{},"textBody":{}}}"#, s(rng), s(rng)),
                2 => format!(
                    r#"{{"to":{{"id":{}}},"conversationId":{},"externalId":{}}}"#,
                    s(rng),
                    s(rng),
                    s(rng)
                ),
                3 => format!(
                    r#"{{"a":{{"b":{}}},"meta":{}}}"#,
                    s(rng),
                    rng.pick(&["{}", "{\"key\":\"k\"}", "[]", "null"])
                ),
                4 => format!(r#"{{"textBody":{}}}"#, s(rng)),
                _ => rng.json_value(3, LANE_KEYS),
            };
            out.push_str(&body);
            out.into_bytes()
        },
        |input| {
            let t = text(input);
            let (head, body) = t.split_once("\n\n").unwrap_or((&t, ""));
            let mut lines = head.lines();
            let method = lines.next().unwrap_or_default().to_owned();
            let url = lines.next().unwrap_or_default().to_owned();
            let headers: Vec<(String, String)> = lines
                .filter_map(|l| l.split_once(": "))
                .map(|(n, v)| (n.to_owned(), v.to_owned()))
                .collect();
            for (_, v) in &headers {
                let _ = headers::bearer_token(v);
            }
            let request = IncomingRequest {
                method,
                url,
                headers,
                body: body.as_bytes().to_vec(),
            };
            let _ = table.is_candidate(&request.method, &request.url);
            match table.prepare(&request, EntryId::from_bytes([7; 16])) {
                Routing::Matched(p) => {
                    outbox_fuzz::accept();
                    if p.lane.is_empty() {
                        return Err("an empty lane".into());
                    }
                    if let Some((n, _)) = p
                        .request
                        .headers
                        .iter()
                        .find(|(n, _)| headers::is_credential(n))
                    {
                        return Err(format!("credential header `{n}` kept"));
                    }
                    if p.route == "proxy"
                        && json::find(&p.request.body, &["meta", "key"])
                            .and_then(|v| v.as_str().map(|s| s.into_owned()))
                            != Some(p.idempotency_key.clone())
                    {
                        return Err("body carrier does not hold the key".into());
                    }
                }
                Routing::Unroutable { .. } | Routing::Unmatched => {}
            }
            Ok(())
        },
    );
}

// ------------------------------------------------------------- configuration

const CONFIG_KEYS: &[&str] = &[
    "origins",
    "genesysRegions",
    "defaultRoutes",
    "routes",
    "idempotencyHeaders",
    "keepHeaders",
    "tokenUrl",
    "apiBase",
    "region",
    "database",
    "channel",
    "maxEntries",
    "maxEntryBytes",
    "retry",
    "pacer",
    "batchSize",
    "sendTimeoutMs",
    "leaseMs",
    "forwardTimeoutMs",
    "retryAfterCapMs",
    "baseMs",
    "factor",
    "capMs",
    "maxAttempts",
    "maxAgeMs",
    "maxAuthFailures",
    "ratePerMinute",
    "burst",
    "name",
    "path",
    "lane",
    "carriers",
    "method",
    "conflictMeansDelivered",
    "needsToken",
    "onDead",
    "authWindowMs",
];

fn config_value(rng: &mut Rng, key: &str) -> String {
    if rng.one_in(6) {
        return rng.json_value(2, CONFIG_KEYS);
    }
    let s = |v: &str| json::string(v);
    match key {
        "origins" => format!(
            "[{}]",
            s(rng.pick(&[
                "http://127.0.0.1:8081",
                "https://x.example:443",
                "/rel",
                "https://x/y",
                "HTTP://A"
            ]))
        ),
        "genesysRegions" | "defaultRoutes" | "idempotencyHeaders" => {
            rng.pick(&["true", "false", "null", "1"]).to_owned()
        }
        "keepHeaders" => format!(
            "[{}]",
            s(rng.pick(&["X-Trace", "Authorization", "Cookie", "x-api-key", ""]))
        ),
        "tokenUrl" => s(rng.pick(&[
            "/token",
            "http://127.0.0.1:8081/token",
            "https://evil/token",
            "",
            "://",
        ])),
        "apiBase" => s(rng.pick(&[
            "http://127.0.0.1:8081",
            "https://api.mypurecloud.ie",
            "nope",
            "http://x/y",
        ])),
        "region" => s(rng.pick(&["mypurecloud.ie", "mypurecloud.com", "example.com", ""])),
        "database" | "channel" => rng.json_string(8),
        "retry" => {
            let keys = [
                "baseMs",
                "factor",
                "capMs",
                "maxAttempts",
                "maxAgeMs",
                "maxAuthFailures",
                "authWindowMs",
            ];
            let members: Vec<String> = (0..rng.below(4))
                .map(|_| format!("{}:{}", s(rng.pick(&keys)), rng.number_text()))
                .collect();
            format!("{{{}}}", members.join(","))
        }
        "onDead" => format!(
            r#"{{{}:{}}}"#,
            s(rng.pick(&["agentless", "agent-send", "proxy", "nope", ""])),
            s(rng.pick(&["hold", "skip", "drop"]))
        ),
        "pacer" => format!(
            r#"{{"ratePerMinute":{},"burst":{}}}"#,
            rng.number_text(),
            rng.number_text()
        ),
        "routes" => {
            let lane = rng.pick(&["path:room", "body:a.b", "path:nope", "x", "body:", "path:"]);
            let carrier = rng.pick(&["header:Idempotency-Key", "body:meta.id", "nope", "body:"]);
            let path = rng.pick(&["/chat/{room}/send", "/a", "a", "/a//b", "/{}", "/x/{room}"]);
            format!(
                r#"[{{"name":{},"path":{},"lane":[{}],"carriers":[{}],"method":{},"conflictMeansDelivered":{},"needsToken":{}}}]"#,
                rng.json_string(5),
                s(path),
                s(lane),
                s(carrier),
                s(rng.pick(&["post", "PUT", ""])),
                rng.pick(&["true", "false", "0"]),
                rng.pick(&["true", "false", "null"])
            )
        }
        _ => rng.number_text(),
    }
}

#[test]
fn configuration() {
    run(
        "configuration",
        CONFIG_KEYS,
        |rng| {
            let top: Vec<&str> = CONFIG_KEYS[..20]
                .iter()
                .copied()
                .chain(["onDead"])
                .collect();
            let members: Vec<String> = (0..rng.below(8))
                .map(|_| {
                    let key = rng.pick(&top);
                    format!("{}:{}", json::string(key), config_value(rng, key))
                })
                .collect();
            format!("{{{}}}", members.join(",")).into_bytes()
        },
        |input| {
            let t = text(input);
            match OutboxConfig::parse(&t, "http://127.0.0.1:8081") {
                Ok(c) => {
                    outbox_fuzz::accept();
                    if c.core.lease_ms <= c.core.send_timeout_ms {
                        return Err("lease not longer than the send timeout".into());
                    }
                    if c.core.batch_size == 0
                        || c.core.pacer.burst == 0
                        || c.core.pacer.rate_per_minute == 0
                    {
                        return Err("a zero that must be at least 1".into());
                    }
                    if let Some(h) = c.core.routes.routes().iter().find(|r| r.lane.is_empty()) {
                        return Err(format!("route {} without a lane", h.name));
                    }
                }
                Err(e) => {
                    if e.field.is_empty() || e.to_string().is_empty() {
                        return Err("an error without a field".into());
                    }
                }
            }
            Ok(())
        },
    );
}

// -------------------------------------------------------------- guest frames

const FRAME_KEYS: &[&str] = &[
    "class",
    "code",
    "body",
    "tracingId",
    "connected",
    "newSession",
    "readOnly",
    "id",
    "direction",
    "text",
    "jwt",
    "exp",
    "retryAfter",
    "errorMessage",
    "errorCode",
    "message",
    "entities",
    "pageCount",
    "metadata",
    "outboxId",
    "type",
];
const CLASSES: &[&str] = &[
    "SessionResponse",
    "StructuredMessage",
    "JwtResponse",
    "TooManyRequestsErrorMessage",
    "SessionExpiredEvent",
    "SessionClearedEvent",
    "LogoutEvent",
    "ConnectionClosedEvent",
    "string",
    "Error",
    "ErrorMessage",
    "Other",
    "",
];

#[test]
fn guest_frames() {
    run(
        "guest frames + history",
        FRAME_KEYS,
        |rng| {
            if rng.one_in(4) {
                let items: Vec<String> = (0..rng.below(4))
                    .map(|_| {
                        format!(
                            r#"{{"id":{},"direction":{},"text":{},"metadata":{{"outboxId":{}}}}}"#,
                            rng.json_string(6),
                            json::string(rng.pick(&["Inbound", "Outbound"])),
                            rng.json_string(10),
                            rng.json_string(8)
                        )
                    })
                    .collect();
                return format!(
                    r#"{{"entities":[{}],"pageCount":{}}}"#,
                    items.join(","),
                    rng.number_text()
                )
                .into_bytes();
            }
            let class = rng.pick(CLASSES);
            let body = if rng.one_in(4) {
                rng.json_string(10)
            } else {
                rng.json_value(2, FRAME_KEYS)
            };
            format!(
                r#"{{"type":"response","class":{},"code":{},"tracingId":{},"body":{}}}"#,
                json::string(class),
                rng.number_text(),
                rng.json_string(8),
                body
            )
            .into_bytes()
        },
        |input| {
            let t = text(input);
            if let Ok(frame) = guest::parse_frame(&t) {
                if !matches!(frame, guest::Frame::Other { .. }) {
                    outbox_fuzz::accept();
                }
                let _ = frame.tracing_id();
                if let Some(r) = guest::answer(&frame)
                    && !r.body.is_empty()
                    && json::validate(&r.body).is_err()
                {
                    return Err("an answer body that is not JSON".into());
                }
            }
            let _ = guest::parse_history(input);
            let _ = guest::entry_text(input);
            let _ = guest::http_origin(&t);
            Ok(())
        },
    );
}
