//! `outbox serve` against the emulator, over real HTTP: the pass-through
//! door (Genesys's answer as is; `202` when it does not answer; `507`
//! when full), the API door, dead letters, events, metrics, bad input,
//! shutdown, and the file's one writer.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;
use genesys_emulator::{Config, Faults};

/// The retry backoff is shortened (base 100 ms, cap 1 s, instead of 2 s
/// and 60 s) so that a recovery is seen in a test's time; the shipped
/// backoff is core's, tested in `outbox-core/tests/decisions.rs` and
/// through the engine in `outbox-driver/tests`.
const FAST_RETRY: &str = "[retry]\nbaseMs = 100\ncapMs = 1000\n";

const WAIT: Duration = Duration::from_secs(60);

fn bearer(emu: &genesys_emulator::BlockingEmulator) -> String {
    format!(
        "Bearer {}",
        emu.control().mint_token(None, None).access_token
    )
}

#[test]
fn genesys_answers_pass_through_as_they_are() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY));
    let client = Client::new();
    let auth = bearer(&emu);
    let got = client.post(
        &proxy.url(AGENTLESS),
        &[("authorization", &auth)],
        &agentless("+15551", "hi"),
    );
    assert_eq!(got.status, 200, "{}", got.body);
    let body = got.json();
    assert!(body["id"].is_string(), "Genesys's own body: {body}");
    assert!(
        got.headers.contains_key("inin-correlation-id"),
        "its headers too"
    );
    // A real 4xx passes through too, and nothing is kept.
    let bad = client.post(
        &proxy.url(AGENTLESS),
        &[("authorization", &auth)],
        r#"{"toAddress":"+1"}"#,
    );
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["code"], "bad.request");
    let stats = client.get(&proxy.url("/outbox/v1/stats")).json();
    assert_eq!(stats["queued"], 0);
    assert_eq!(emu.control().messages().total, 1);
    // A request on no route is proxied as is.
    let other = client.get(&proxy.url("/api/v2/users/me"));
    assert_eq!(
        other.status, 404,
        "the emulator's own answer: {}",
        other.body
    );
    assert_eq!(other.json()["code"], "not.found");
}

#[test]
fn an_outage_is_answered_202_and_delivered_in_order_when_it_ends() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY));
    let client = Client::new();
    let auth = bearer(&emu);
    emu.control()
        .set_faults(Faults {
            outage: true,
            ..Faults::default()
        })
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..3 {
        let got = client.post(
            &proxy.url(AGENTLESS),
            &[("authorization", &auth)],
            &agentless("+15552", &format!("m{i}")),
        );
        assert_eq!(got.status, 202, "{}", got.body);
        let body = got.json();
        assert_eq!(body["queued"], true);
        assert_eq!(body["lane"], "+15552");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    // Behind the first, the others are queued at once: the lane is busy.
    let status = client
        .get(&proxy.url(&format!("/outbox/v1/messages/{}", ids[2])))
        .json();
    assert_eq!(status["lane"], "+15552");
    assert!(matches!(
        status["state"].as_str(),
        Some("pending" | "in-flight")
    ));
    emu.control().clear_faults();
    let lane = wait_for("the lane delivered", WAIT, || {
        let report = emu.control().messages();
        let lane = report.lanes.iter().find(|l| l.lane == "+15552")?.clone();
        (lane.count >= 3).then_some(lane)
    });
    assert_eq!(lane.texts, ["m0", "m1", "m2"], "in order");
    assert_eq!(lane.duplicates, 0);
    wait_for("an empty queue", WAIT, || {
        (client.get(&proxy.url("/outbox/v1/stats")).json()["queued"] == 0).then_some(())
    });
    let gone = client.get(&proxy.url(&format!("/outbox/v1/messages/{}", ids[0])));
    assert_eq!(gone.status, 404, "delivered entries leave the queue");
}

#[test]
fn a_full_outbox_answers_507_and_keeps_what_it_took() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let toml = format!("maxEntries = 2\n{FAST_RETRY}");
    let proxy = Proxy::start(&ProxyConfig::new(dir.path(), &emu.base_url(), &toml));
    let client = Client::new();
    let auth = bearer(&emu);
    emu.control()
        .set_faults(Faults {
            outage: true,
            ..Faults::default()
        })
        .unwrap();
    for (i, to) in ["+1a", "+1b"].iter().enumerate() {
        let got = client.post(
            &proxy.url(AGENTLESS),
            &[("authorization", &auth)],
            &agentless(to, &format!("k{i}")),
        );
        assert_eq!(got.status, 202, "{}", got.body);
    }
    let full = client.post(
        &proxy.url(AGENTLESS),
        &[("authorization", &auth)],
        &agentless("+1c", "refused"),
    );
    assert_eq!(full.status, 507);
    let body = full.json();
    assert_eq!(
        (body["queued"].as_bool(), body["error"].as_str()),
        (Some(false), Some("outbox-full"))
    );
    // The API door refuses the same way.
    let api = client.post(
        &proxy.url("/outbox/v1/messages"),
        &[],
        &format!(
            r#"{{"path":"{AGENTLESS}","body":{}}}"#,
            agentless("+1d", "x")
        ),
    );
    assert_eq!(api.status, 507);
    emu.control().clear_faults();
    wait_for("the two kept delivered", WAIT, || {
        (emu.control().messages().total == 2).then_some(())
    });
    let texts: Vec<String> = emu
        .control()
        .recorded()
        .into_iter()
        .filter_map(|m| m.text)
        .collect();
    assert!(
        !texts.contains(&"refused".to_owned()),
        "a refused request is the caller's"
    );
}

#[test]
fn bad_input_gets_a_clear_json_error() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY));
    let client = Client::new();
    for (method, path, body, status, code) in [
        (
            "POST",
            "/outbox/v1/messages",
            "not json",
            400,
            "bad-request",
        ),
        (
            "POST",
            "/outbox/v1/messages",
            r#"{"path":"/nowhere","body":{}}"#,
            404,
            "no-route",
        ),
        (
            "POST",
            "/outbox/v1/messages",
            r#"{"path":"api/v2","body":{}}"#,
            400,
            "bad-request",
        ),
        // A route that cannot key the request (no lane value).
        (
            "POST",
            "/outbox/v1/messages",
            &format!(r#"{{"path":"{AGENTLESS}","body":{{"textBody":"x"}}}}"#),
            400,
            "unroutable",
        ),
        ("GET", "/outbox/v1/messages/not-an-id", "", 400, "bad-id"),
        (
            "GET",
            "/outbox/v1/messages/123e4567-e89b-42d3-a456-426614174000",
            "",
            404,
            "not-found",
        ),
        (
            "POST",
            "/outbox/v1/dead/123e4567-e89b-42d3-a456-426614174000/retry",
            "",
            404,
            "not-found",
        ),
        (
            "DELETE",
            "/outbox/v1/dead/123e4567-e89b-42d3-a456-426614174000",
            "",
            404,
            "not-found",
        ),
        (
            "DELETE",
            "/outbox/v1/messages/123e4567-e89b-42d3-a456-426614174000",
            "",
            404,
            "not-found",
        ),
    ] {
        let got = client
            .send(
                method,
                &proxy.url(path),
                &[],
                (!body.is_empty()).then_some(body),
            )
            .unwrap();
        assert_eq!(got.status, status, "{method} {path}: {}", got.body);
        let json = got.json();
        assert_eq!(json["error"], code, "{method} {path}: {json}");
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // A request too large for an entry is refused with 413 (the caller
    // keeps it), whichever door it came in by.
    let big = "x".repeat(300 * 1024);
    let api = client.post(
        &proxy.url("/outbox/v1/messages"),
        &[],
        &format!(
            r#"{{"path":"{AGENTLESS}","body":{}}}"#,
            agentless("+1", &big)
        ),
    );
    assert_eq!(api.status, 413, "{}", api.body);
    assert_eq!(api.json()["error"], "entry-too-large");
}

#[test]
fn the_api_door_dead_letters_events_and_metrics() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let proxy = Proxy::start(&ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY));
    let client = Client::new();
    // Listen to the events before anything happens.
    let events = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let events = events.clone();
        let url = proxy.url("/outbox/v1/events");
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let Ok(mut resp) = reqwest::get(&url).await else {
                    return;
                };
                while let Ok(Some(chunk)) = resp.chunk().await {
                    events
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk));
                }
            });
        });
    }
    wait_for("the event stream", WAIT, || {
        events
            .lock()
            .unwrap()
            .contains("event: ready")
            .then_some(())
    });
    // The first send of this message is refused for good (403): a dead
    // letter, holding its lane.
    emu.control()
        .set_faults(Faults {
            fail_next: 1,
            fail_status: 403,
            ..Faults::default()
        })
        .unwrap();
    let sent = client.post(
        &proxy.url("/outbox/v1/messages"),
        &[],
        &format!(
            r#"{{"path":"{AGENTLESS}","body":{}}}"#,
            agentless("+1dead", "first")
        ),
    );
    assert_eq!(sent.status, 202, "{}", sent.body);
    let sent = sent.json();
    assert_eq!(
        (sent["route"].as_str(), sent["reason"].as_str()),
        (Some("agentless"), Some("write-through"))
    );
    let id = sent["id"].as_str().unwrap().to_owned();
    let dead = wait_for("a dead letter", WAIT, || {
        let list = client.get(&proxy.url("/outbox/v1/dead")).json();
        list.as_array().filter(|l| !l.is_empty()).cloned()
    });
    assert_eq!(dead[0]["id"], id.as_str());
    assert_eq!(dead[0]["lastError"]["status"], 403);
    let stats = client.get(&proxy.url("/outbox/v1/stats")).json();
    assert_eq!(stats["dead"], 1);
    assert_eq!(
        stats["held"][0]["lane"], "+1dead",
        "the lane holds: {stats}"
    );
    // A later message of that lane waits behind it.
    let behind = client.post(
        &proxy.url("/outbox/v1/messages"),
        &[],
        &format!(
            r#"{{"path":"{AGENTLESS}","body":{}}}"#,
            agentless("+1dead", "second")
        ),
    );
    assert_eq!(behind.status, 202);
    // Retry: the dead letter goes first, then the rest, in order.
    let revived = client.post(&proxy.url(&format!("/outbox/v1/dead/{id}/retry")), &[], "");
    assert_eq!(revived.status, 200, "{}", revived.body);
    let lane = wait_for("the lane delivered", WAIT, || {
        let report = emu.control().messages();
        let lane = report.lanes.iter().find(|l| l.lane == "+1dead")?.clone();
        (lane.count >= 2).then_some(lane)
    });
    assert_eq!(lane.texts, ["first", "second"]);
    wait_for("the events told", WAIT, || {
        let text = events.lock().unwrap().clone();
        [
            "event: queued",
            "event: sending",
            "event: dead",
            "event: held",
            "event: revived",
            "event: sent",
        ]
        .iter()
        .all(|e| text.contains(e))
        .then_some(())
    });
    let text = events.lock().unwrap().clone();
    assert!(
        text.contains(&format!("\"id\":\"{id}\"")),
        "core's JSON: {text}"
    );
    // Discard and cancel.
    emu.control()
        .set_faults(Faults {
            fail_next: 1,
            fail_status: 404,
            ..Faults::default()
        })
        .unwrap();
    let doomed = client
        .post(
            &proxy.url("/outbox/v1/messages"),
            &[],
            &format!(
                r#"{{"path":"{AGENTLESS}","body":{}}}"#,
                agentless("+1gone", "x")
            ),
        )
        .json()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_for("the second dead letter", WAIT, || {
        (client.get(&proxy.url("/outbox/v1/stats")).json()["dead"] == 1
            && client
                .get(&proxy.url(&format!("/outbox/v1/messages/{doomed}")))
                .json()["state"]
                == "dead")
            .then_some(())
    });
    let discarded = client
        .send(
            "DELETE",
            &proxy.url(&format!("/outbox/v1/dead/{doomed}")),
            &[],
            None,
        )
        .unwrap();
    assert_eq!(discarded.status, 200);
    assert_eq!(
        client.get(&proxy.url("/outbox/v1/stats")).json()["held"],
        serde_json::json!([])
    );
    // Metrics and health.
    let metrics = client.get(&proxy.url("/metrics"));
    assert_eq!(metrics.status, 200);
    for line in [
        "outbox_queued 0",
        "outbox_dead 0",
        "outbox_held_lanes 0",
        "outbox_sent_total 2",
        "outbox_dead_total 2",
        "outbox_enqueued_total 3",
        "outbox_enqueue_seconds_count 3",
        "outbox_delivery_seconds_count 2",
        "outbox_store_commits_total",
        "# TYPE outbox_throttle_rate_per_minute gauge",
    ] {
        assert!(metrics.body.contains(line), "{line} in\n{}", metrics.body);
    }
    let health = client.get(&proxy.url("/healthz")).json();
    assert_eq!(health["ok"], true);
}

#[test]
fn sigterm_stops_gracefully_and_the_queue_survives_the_restart() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let config = ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY);
    let proxy = Proxy::start(&config);
    let client = Client::new();
    let auth = bearer(&emu);
    emu.control()
        .set_faults(Faults {
            outage: true,
            ..Faults::default()
        })
        .unwrap();
    for i in 0..5 {
        let got = client.post(
            &proxy.url(AGENTLESS),
            &[("authorization", &auth)],
            &agentless("+1term", &format!("t{i}")),
        );
        assert_eq!(got.status, 202);
    }
    // One process per file.
    let second = Proxy::try_start(&config)
        .err()
        .expect("a second process is refused");
    assert!(second.contains("in use by another process"), "{second}");
    let (status, stderr) = proxy.terminate();
    assert!(status.success(), "{status}: {stderr}");
    assert!(stderr.contains("outbox: stopped"), "{stderr}");
    emu.control().clear_faults();
    let proxy = Proxy::start(&config);
    let lane = wait_for("the lane delivered after the restart", WAIT, || {
        let report = emu.control().messages();
        let lane = report.lanes.iter().find(|l| l.lane == "+1term")?.clone();
        (lane.count >= 5).then_some(lane)
    });
    assert_eq!(lane.texts, ["t0", "t1", "t2", "t3", "t4"]);
    drop(proxy);
}

#[test]
fn an_api_key_is_needed_beyond_loopback_and_checked_when_set() {
    let emu = emulator(Config::ephemeral());
    let dir = tempfile::tempdir().unwrap();
    let mut config = ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY);
    config.listen = "0.0.0.0:0".into();
    let refused = Proxy::try_start(&config)
        .err()
        .expect("no key, no wide bind");
    assert!(refused.contains("needs an API key"), "{refused}");
    let mut config = ProxyConfig::new(dir.path(), &emu.base_url(), FAST_RETRY);
    config.env = vec![("OUTBOX_API_KEY".into(), "k3y".into())];
    let proxy = Proxy::start(&config);
    let client = Client::new();
    assert_eq!(client.get(&proxy.url("/outbox/v1/stats")).status, 401);
    assert_eq!(client.get(&proxy.url("/healthz")).status, 200);
    let ok = client
        .send(
            "GET",
            &proxy.url("/outbox/v1/stats"),
            &[("x-outbox-key", "k3y")],
            None,
        )
        .unwrap();
    assert_eq!(ok.status, 200);
    let (_, stderr) = proxy.terminate();
    assert!(
        !stderr.contains("k3y") && !stderr.contains(CLIENT_SECRET),
        "secrets never logged"
    );
}
