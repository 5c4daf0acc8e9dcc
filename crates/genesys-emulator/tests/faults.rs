//! Fault injection over real HTTP on loopback, concurrent load, shutdown and
//! the blocking handle.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};

use common::*;
use genesys_emulator::{Faults, Outcome, RouteKind};
use serde_json::json;

#[tokio::test]
async fn outage_drops_new_connections_without_an_answer() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    emu.control()
        .set_faults(Faults {
            outage: true,
            ..Faults::default()
        })
        .unwrap();
    let err = post_json(&emu, &t, AGENT_PATH, &agent_body("lost")).await;
    assert!(err.is_err(), "expected a transport error, got {err:?}");
    let err = send(emu.local_addr(), "POST", "/oauth/token", &[], "").await;
    assert!(err.is_err());
    let err = send(
        emu.local_addr(),
        "OPTIONS",
        AGENT_PATH,
        &[("origin", "http://x")],
        "",
    )
    .await;
    assert!(
        err.is_err(),
        "preflights fail too, as they would when offline"
    );
    // Control endpoints keep working during the outage.
    let r = call(emu.local_addr(), "GET", "/__emulator/faults", &[], "").await;
    assert_eq!(r.json()["outage"], true);
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"outage":false}"#,
    )
    .await;
    assert_eq!(r.json()["outage"], false);
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("back"))
            .await
            .unwrap()
            .status,
        200
    );
    let rep = emu.control().messages();
    assert_eq!(
        rep.lane(RouteKind::AgentSend, "conv-1").unwrap().texts,
        ["back"]
    );
    let outcomes: Vec<_> = emu
        .control()
        .requests()
        .entries
        .iter()
        .map(|e| (e.outcome, e.status))
        .collect();
    assert_eq!(outcomes[..3], [(Outcome::OutageDropped, None); 3]);
}

#[tokio::test]
async fn outage_drops_an_already_open_keep_alive_connection() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    let auth = format!("Bearer {t}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let mut conn = Conn::open(emu.local_addr()).await;
    assert_eq!(
        conn.send("POST", AGENT_PATH, &h, r#"{"textBody":"1"}"#)
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(
        conn.send("POST", AGENT_PATH, &h, r#"{"textBody":"2"}"#)
            .await
            .unwrap()
            .status,
        200
    );
    assert!(!conn.is_closed(), "the connection is kept alive");
    emu.control().update_faults(|f| f.outage = true).unwrap();
    let r = conn
        .send("POST", AGENT_PATH, &h, r#"{"textBody":"3"}"#)
        .await;
    assert!(
        r.is_err(),
        "expected a transport error on the kept-alive connection, got {r:?}"
    );
    assert_eq!(emu.control().messages().total, 2);
}

#[tokio::test]
async fn outage_after_latency_still_drops() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    // The outage is switched on while the request waits out its latency.
    // Either order drops it (on arrival or after the delay); the latency is
    // long so that the switch lands inside it even on a loaded machine.
    emu.control()
        .update_faults(|f| f.latency_ms = 3_000)
        .unwrap();
    let ctl = emu.control();
    let switch = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        ctl.update_faults(|f| f.outage = true).unwrap();
    });
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("in flight")).await;
    switch.await.unwrap();
    assert!(r.is_err());
    assert_eq!(emu.control().messages().total, 0);
}

#[tokio::test]
async fn lost_ack_records_the_message_but_the_client_sees_an_error() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    emu.control()
        .update_faults(|f| f.lost_ack_rate = 1.0)
        .unwrap();
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("processed")).await;
    assert!(r.is_err(), "expected a transport error, got {r:?}");
    let rec = emu.control().recorded();
    assert_eq!(rec.len(), 1);
    assert_eq!(rec[0].text.as_deref(), Some("processed"));
    let last = emu.control().requests().entries.pop().unwrap();
    assert_eq!(
        (last.outcome, last.status, last.message_seq),
        (Outcome::LostAck, None, Some(1))
    );
}

#[tokio::test]
async fn lost_ack_rate_is_seeded_and_disables_keep_alive() {
    let run = || async {
        let emu = start_with(|c| c.seed = 42).await;
        let t = emu.control().mint_token(None, None).access_token;
        emu.control()
            .update_faults(|f| f.lost_ack_rate = 0.5)
            .unwrap();
        let mut pattern = Vec::new();
        for i in 0..20 {
            match post_json(&emu, &t, AGENT_PATH, &agent_body(&i.to_string())).await {
                Ok(r) => {
                    assert_eq!(r.status, 200);
                    assert_eq!(r.header("connection"), Some("close"));
                    pattern.push(true);
                }
                Err(_) => pattern.push(false),
            }
        }
        assert_eq!(
            emu.control().messages().total,
            20,
            "every message is recorded, answered or not"
        );
        pattern
    };
    let a = run().await;
    let b = run().await;
    assert_eq!(a, b, "same seed, same faults");
    assert!(a.contains(&true) && a.contains(&false), "{a:?}");
}

#[tokio::test]
async fn lost_acks_switch_keep_alive_off() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    let auth = format!("Bearer {t}");
    let h = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
    ];
    let mut idle = Conn::open(emu.local_addr()).await;
    let r = idle
        .send("POST", AGENT_PATH, &h, r#"{"textBody":"1"}"#)
        .await
        .unwrap();
    assert_eq!(r.header("connection"), None);
    // Turned on over HTTP: that answer itself closes its connection...
    let mut ctl_conn = Conn::open(emu.local_addr()).await;
    let r = ctl_conn
        .send(
            "POST",
            "/__emulator/faults",
            &[],
            r#"{"lostAckRate":1e-12}"#,
        )
        .await
        .unwrap();
    assert_eq!(r.header("connection"), Some("close"));
    // ...and idle kept-alive connections are closed, so no later request can
    // be lost on a reused connection (which Chromium would silently resend).
    // A condition with a generous bound (a loaded machine is slow, not wrong).
    let deadline = Instant::now() + Duration::from_secs(30);
    while !idle.is_closed() {
        assert!(Instant::now() < deadline, "idle connection not closed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("2"))
        .await
        .unwrap();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    emu.control()
        .update_faults(|f| f.lost_ack_rate = 0.0)
        .unwrap();
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("3"))
        .await
        .unwrap();
    assert_eq!(r.header("connection"), None, "keep-alive is back");
    assert_eq!(emu.control().messages().total, 3);
}

#[tokio::test]
async fn server_errors_have_genesys_codes_and_record_nothing() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    for (status, code) in [
        (500, "internal.server.error"),
        (502, "bad.gateway"),
        (503, "service.unavailable"),
        (504, "request.timeout"),
        (408, "client.timeout"),
    ] {
        emu.control()
            .update_faults(|f| {
                f.error_rate = 1.0;
                f.error_statuses = vec![status];
            })
            .unwrap();
        let r = post_json(&emu, &t, AGENT_PATH, &agent_body("x"))
            .await
            .unwrap();
        assert_error(&r, status, code);
        assert!(r.header("inin-ratelimit-count").is_some());
        if status == 503 {
            assert!(r.header("retry-after").is_some());
        }
    }
    emu.control()
        .update_faults(|f| f.error_statuses.clear())
        .unwrap();
    for _ in 0..10 {
        let r = post_json(&emu, &t, AGENT_PATH, &agent_body("x"))
            .await
            .unwrap();
        assert!([500, 502, 503, 504].contains(&r.status));
    }
    assert_eq!(emu.control().messages().total, 0);
    assert!(
        emu.control()
            .requests()
            .entries
            .iter()
            .all(|e| e.outcome == Outcome::InjectedError)
    );
}

#[tokio::test]
async fn latency_delays_answers() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    emu.control()
        .update_faults(|f| {
            f.latency_ms = 300;
            f.jitter_ms = 50;
        })
        .unwrap();
    let start = Instant::now();
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("slow"))
            .await
            .unwrap()
            .status,
        200
    );
    let took = start.elapsed();
    // A lower bound only: an upper one would fail on a loaded machine.
    assert!(took >= Duration::from_millis(300), "{took:?}");
    // Control endpoints are not delayed: with an hour of latency they still answer.
    emu.control()
        .update_faults(|f| f.latency_ms = 3_600_000)
        .unwrap();
    let r = call(emu.local_addr(), "GET", "/__emulator/messages", &[], "").await;
    assert_eq!(r.status, 200, "control endpoints are not delayed");
}

#[tokio::test]
async fn forced_unauthorized_counts_down() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"forceUnauthorized":2}"#,
    )
    .await;
    assert_eq!(r.json()["forceUnauthorized"], 2);
    for _ in 0..2 {
        assert_error(
            &post_json(&emu, &t, AGENT_PATH, &agent_body("x"))
                .await
                .unwrap(),
            401,
            "credentials.expired",
        );
    }
    assert_eq!(
        post_json(&emu, &t, AGENT_PATH, &agent_body("y"))
            .await
            .unwrap()
            .status,
        200
    );
    assert_eq!(emu.control().faults().force_unauthorized, 0);
    let outcomes: Vec<_> = emu
        .control()
        .requests()
        .entries
        .iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::ForcedUnauthorized,
            Outcome::ForcedUnauthorized,
            Outcome::Ok
        ]
    );
}

#[tokio::test]
async fn fail_next_fails_exactly_n_message_requests_then_accepts() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"failNext":2,"failStatus":503}"#,
    )
    .await;
    assert_eq!(
        (
            r.json()["failNext"].as_u64(),
            r.json()["failStatus"].as_u64()
        ),
        (Some(2), Some(503))
    );
    // Requests that are not accepted messages do not count: a token request,
    // a bad token, an invalid body.
    oauth_token(&emu).await;
    let r = post_json(&emu, "nope", AGENT_PATH, &agent_body("x"))
        .await
        .unwrap();
    assert_eq!(r.status, 401);
    let r = post_json(&emu, &t, AGENT_PATH, &json!({"textBody": 1}))
        .await
        .unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(emu.control().faults().fail_next, 2);
    for i in 0..2 {
        let r = post_json(&emu, &t, AGENT_PATH, &agent_body(&format!("f{i}")))
            .await
            .unwrap();
        assert_error(&r, 503, "service.unavailable");
        assert!(r.header("retry-after").is_some());
        assert_eq!(emu.control().faults().fail_next, 1 - i);
    }
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("ok"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the count is spent");
    assert_eq!(
        emu.control()
            .messages()
            .lane(RouteKind::AgentSend, "conv-1")
            .unwrap()
            .texts,
        ["ok"],
        "a failed request records nothing"
    );
    let injected = emu
        .control()
        .requests()
        .entries
        .iter()
        .filter(|e| e.outcome == Outcome::InjectedError)
        .count();
    assert_eq!(injected, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_after_holds_later_messages_unrecorded_until_cleared() {
    let emu = start().await;
    let t = emu.control().mint_token(None, None).access_token;
    emu.control()
        .update_faults(|f| f.hold_after = Some(1))
        .unwrap();
    let r = post_json(&emu, &t, AGENT_PATH, &agent_body("taken"))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "the first goes through");
    let held = {
        let addr = emu.local_addr();
        let auth = format!("Bearer {t}");
        tokio::spawn(async move {
            send(
                addr,
                "POST",
                AGENT_PATH,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                &agent_body("held").to_string(),
            )
            .await
        })
    };
    // Wait for the condition, not for time: the request is held.
    while emu.control().held_requests() == 0 {
        tokio::task::yield_now().await;
    }
    assert!(!held.is_finished(), "held while holdAfter is spent");
    assert_eq!(emu.control().messages().total, 1);
    emu.control()
        .update_faults(|f| f.hold_after = None)
        .unwrap();
    let r = held.await.unwrap().unwrap();
    assert_error(&r, 503, "service.unavailable");
    assert_eq!(emu.control().held_requests(), 0);
    assert_eq!(
        emu.control()
            .messages()
            .lane(RouteKind::AgentSend, "conv-1")
            .unwrap()
            .texts,
        ["taken"],
        "a held request records nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_decrement_once_per_request_under_concurrency() {
    let emu = start_with(|c| c.rate_limit = 100_000).await;
    let t = emu.control().mint_token(None, None).access_token;
    emu.control()
        .update_faults(|f| {
            f.fail_next = 7;
            f.lose_acks = 5;
        })
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..40 {
        let (addr, t) = (emu.local_addr(), t.clone());
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {t}");
            let body = agent_body(&format!("c{i}")).to_string();
            send(
                addr,
                "POST",
                &format!("/api/v2/conversations/messages/lane-{i}/communications/c/messages"),
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                ],
                &body,
            )
            .await
            .map(|r| r.status)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap());
    }
    let failed = answers.iter().filter(|a| matches!(a, Ok(500))).count();
    let cut = answers.iter().filter(|a| a.is_err()).count();
    let ok = answers.iter().filter(|a| matches!(a, Ok(200))).count();
    assert_eq!((failed, cut, ok), (7, 5, 28), "{answers:?}");
    assert_eq!(emu.control().messages().total, 33, "lost acks are recorded");
    let f = emu.control().faults();
    assert_eq!((f.fail_next, f.lose_acks), (0, 0));
}

#[tokio::test]
async fn lose_acks_counts_down_and_then_restores_keep_alive() {
    let emu = start_with(|c| c.idempotency = true).await;
    let t = emu.control().mint_token(None, None).access_token;
    let r = call(
        emu.local_addr(),
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"loseAcks":2}"#,
    )
    .await;
    assert_eq!(r.json()["loseAcks"], 2);
    assert_eq!(
        r.header("connection"),
        Some("close"),
        "keep-alive is off while a loss is pending"
    );
    // Refused requests do not count.
    let r = post_json(&emu, &t, AGENT_PATH, &json!({})).await.unwrap();
    assert_eq!(r.status, 400);
    let auth = format!("Bearer {t}");
    let keyed = |key: &'static str, text: &'static str| {
        let auth = auth.clone();
        let addr = emu.local_addr();
        async move {
            send(
                addr,
                "POST",
                AGENT_PATH,
                &[
                    ("authorization", &auth),
                    ("content-type", "application/json"),
                    ("idempotency-key", key),
                ],
                &agent_body(text).to_string(),
            )
            .await
        }
    };
    // A first send and its retry with the same key: both acknowledgements lost,
    // the message recorded once (the retry is a replay, which counts too).
    assert!(keyed("k1", "one").await.is_err());
    assert_eq!(emu.control().faults().lose_acks, 1);
    assert!(keyed("k1", "one").await.is_err());
    assert_eq!(emu.control().faults().lose_acks, 0);
    let r = keyed("k1", "one").await.unwrap();
    assert_eq!(
        (r.status, r.header("idempotent-replayed")),
        (200, Some("true"))
    );
    assert_eq!(r.header("connection"), None, "keep-alive is back");
    let outcomes: Vec<_> = emu
        .control()
        .requests()
        .entries
        .iter()
        .map(|e| e.outcome)
        .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Rejected,
            Outcome::LostAck,
            Outcome::LostAck,
            Outcome::Replayed
        ]
    );
    let rep = emu.control().messages();
    assert_eq!((rep.total, rep.replays), (1, 2));
}

#[tokio::test]
async fn faults_endpoint_merges_validates_and_clears() {
    let emu = start().await;
    let a = emu.local_addr();
    call(
        a,
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"latencyMs":5,"errorRate":0.25}"#,
    )
    .await;
    let v = call(
        a,
        "POST",
        "/__emulator/faults",
        &[],
        r#"{"dailyLimit":true}"#,
    )
    .await
    .json();
    assert_eq!(
        (
            v["latencyMs"].clone(),
            v["errorRate"].clone(),
            v["dailyLimit"].clone()
        ),
        (json!(5), json!(0.25), json!(true))
    );
    for bad in [
        r#"{"errorRate":1.5}"#,
        r#"{"nope":1}"#,
        r#"{"errorStatuses":[400]}"#,
        "[1]",
        "{",
    ] {
        let r = call(a, "POST", "/__emulator/faults", &[], bad).await;
        assert_eq!(r.status, 400, "{bad}");
        assert!(r.json()["error"].is_string());
    }
    let v = call(a, "DELETE", "/__emulator/faults", &[], "")
        .await
        .json();
    assert_eq!(
        serde_json::from_value::<Faults>(v).unwrap(),
        Faults::default()
    );
    let r = call(a, "POST", "/__emulator/faults?seed=7", &[], "").await;
    assert_eq!(r.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_load_loses_nothing() {
    let emu = start_with(|c| c.rate_limit = 100_000).await;
    let t = emu.control().mint_token(None, None).access_token;
    let addr = emu.local_addr();
    let mut tasks = Vec::new();
    for task in 0..50 {
        let t = t.clone();
        tasks.push(tokio::spawn(async move {
            let auth = format!("Bearer {t}");
            let h = [
                ("authorization", auth.as_str()),
                ("content-type", "application/json"),
            ];
            let path =
                format!("/api/v2/conversations/messages/lane-{task}/communications/c/messages");
            let mut conn = Conn::open(addr).await;
            for i in 0..40 {
                let body = json!({"textBody": format!("{task}:{i}")}).to_string();
                let r = conn.send("POST", &path, &h, &body).await.unwrap();
                assert_eq!(r.status, 200);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rep = emu.control().messages();
    assert_eq!(rep.total, 2000);
    assert_eq!(rep.lanes.len(), 50);
    for l in &rep.lanes {
        let task = l.lane.trim_start_matches("lane-");
        let expected: Vec<String> = (0..40).map(|i| format!("{task}:{i}")).collect();
        assert_eq!(l.texts, expected, "lane {} out of order", l.lane);
    }
    let log = emu.control().requests();
    assert_eq!(log.total, 2000);
    assert!(log.entries.iter().all(|e| e.outcome == Outcome::Ok));
    let mut seqs: Vec<u64> = log.entries.iter().filter_map(|e| e.message_seq).collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=2000).collect::<Vec<u64>>());
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let emu = start().await;
    let addr = emu.local_addr();
    assert_eq!(
        call(addr, "GET", "/__emulator/health", &[], "")
            .await
            .status,
        200
    );
    emu.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[test]
fn blocking_emulator_runs_on_its_own_thread() {
    let emu = Emulator::start_blocking(Config::ephemeral()).unwrap();
    assert!(emu.base_url().starts_with("http://127.0.0.1:"));
    emu.control().update_faults(|f| f.latency_ms = 1).unwrap();
    let mut s = std::net::TcpStream::connect(emu.local_addr()).unwrap();
    s.write_all(b"GET /__emulator/faults HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(out.contains("\"latencyMs\":1"));
    let addr = emu.local_addr();
    emu.shutdown();
    assert!(std::net::TcpStream::connect(addr).is_err());
}
