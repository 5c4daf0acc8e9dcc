//! Both decision tables of the design (§6): what the service worker does
//! with an intercepted request, and what each replay answer means — plus
//! tolerant reading of Genesys error bodies and the retry policy.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::classify::LastError;
use outbox_core::classify::{
    ClassifyConfig, FailureKind, Outcome, Response, TransportError, classify, error_from_body,
};
use outbox_core::clock::SplitMix64;
use outbox_core::entry::Action;
use outbox_core::entry::{Entry, EntryId, EntryState, StoredRequest};
use outbox_core::intercept::{
    AfterForward, BeforeForward, QueueReason, after_forward, before_forward,
};
use outbox_core::retry::RetryPolicy;

const NOW: u64 = 1_700_000_000_000;

fn answer(status: u16) -> Result<Response, TransportError> {
    Ok(Response {
        status,
        headers: vec![],
        body: vec![],
    })
}

fn genesys(status: u16, code: &str, message: &str) -> Result<Response, TransportError> {
    Ok(Response {
        status,
        headers: vec![("Content-Type".into(), "application/json".into())],
        body: format!(
            r#"{{"message":"{message}","code":"{code}","status":{status},"messageWithParams":"m","messageParams":{{}},"contextId":"ctx-{status}","details":[],"errors":[]}}"#
        )
        .into_bytes(),
    })
}

fn failure(kind: FailureKind) -> Result<Response, TransportError> {
    Err(TransportError {
        kind,
        message: "boom".into(),
    })
}

fn outcome(result: &Result<Response, TransportError>, conflict_ok: bool) -> Outcome {
    classify(result, conflict_ok, NOW, &ClassifyConfig::default())
}

// ---- Intercept (first list of §6) ----

#[test]
fn intercept_queues_behind_a_busy_lane_or_a_paused_origin() {
    assert_eq!(
        before_forward(true, false, None, NOW),
        BeforeForward::Queue(QueueReason::LaneBusy)
    );
    assert_eq!(
        before_forward(false, false, Some(NOW + 5), NOW),
        BeforeForward::Queue(QueueReason::OriginPaused { until: NOW + 5 })
    );
    assert_eq!(
        before_forward(false, false, Some(NOW), NOW),
        BeforeForward::Forward,
        "a pause that ended"
    );
    assert_eq!(
        before_forward(false, false, None, NOW),
        BeforeForward::Forward
    );
    assert_eq!(
        before_forward(true, true, Some(NOW + 5), NOW),
        BeforeForward::Queue(QueueReason::LaneHeld)
    );
}

#[test]
fn intercept_passes_2xx_through() {
    for status in [200, 201, 202, 204] {
        assert_eq!(
            after_forward(&outcome(&answer(status), false)),
            AfterForward::PassThrough,
            "{status}"
        );
    }
}

#[test]
fn intercept_queues_transient_failures() {
    let cases = [
        failure(FailureKind::Network),
        failure(FailureKind::Timeout),
        answer(408),
        answer(429),
        answer(500),
        answer(502),
        answer(503),
        answer(504),
    ];
    for case in cases {
        match after_forward(&outcome(&case, false)) {
            AfterForward::Queue {
                awaiting_token: false,
                ..
            } => {}
            other => panic!("{case:?} → {other:?}"),
        }
    }
}

#[test]
fn intercept_queues_401_as_awaiting_token() {
    match after_forward(&outcome(
        &genesys(401, "credentials.expired", "expired"),
        false,
    )) {
        AfterForward::Queue {
            awaiting_token: true,
            error,
        } => {
            assert_eq!(error.code.as_deref(), Some("credentials.expired"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn intercept_passes_other_4xx_through_untouched() {
    for status in [400, 403, 404, 409, 413, 415, 422] {
        assert_eq!(
            after_forward(&outcome(&answer(status), false)),
            AfterForward::PassThrough,
            "{status}"
        );
    }
}

// ---- Replay (the table of §6) ----

#[test]
fn replay_2xx_is_delivered() {
    for status in [200, 202, 204, 299] {
        assert_eq!(
            outcome(&answer(status), false),
            Outcome::Delivered { status }
        );
    }
}

#[test]
fn replay_409_is_delivered_only_where_the_carrier_says_so() {
    assert_eq!(
        outcome(&answer(409), true),
        Outcome::AlreadyDelivered { status: 409 }
    );
    assert!(matches!(
        outcome(&answer(409), false),
        Outcome::Permanent { .. }
    ));
}

#[test]
fn replay_429_reads_retry_after_in_both_forms() {
    let mut r = genesys(
        429,
        "too.many.requests.retry.after",
        "Rate limit exceeded the maximum. Retry the request in [3] seconds",
    );
    r.as_mut()
        .unwrap()
        .headers
        .push(("Retry-After".into(), "3".into()));
    match outcome(&r, false) {
        Outcome::RateLimited {
            retry_after: Some(ra),
            error,
        } => {
            assert_eq!(ra.delay_ms, 3_000);
            assert_eq!(error.code.as_deref(), Some("too.many.requests.retry.after"));
        }
        other => panic!("{other:?}"),
    }
    // An HTTP-date 30 s from now.
    let mut r = answer(429);
    r.as_mut()
        .unwrap()
        .headers
        .push(("retry-after".into(), "Tue, 14 Nov 2023 22:13:50 GMT".into()));
    match outcome(&r, false) {
        Outcome::RateLimited {
            retry_after: Some(ra),
            ..
        } => assert_eq!(ra.delay_ms, 30_000),
        other => panic!("{other:?}"),
    }
    // Absurd: capped, and the reason is in the error.
    let mut r = answer(429);
    r.as_mut()
        .unwrap()
        .headers
        .push(("retry-after".into(), "999999".into()));
    match outcome(&r, false) {
        Outcome::RateLimited {
            retry_after: Some(ra),
            error,
        } => {
            assert_eq!(ra.delay_ms, ClassifyConfig::default().retry_after_cap_ms);
            assert!(error.message.contains("capped"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    // Missing header.
    assert!(matches!(
        outcome(&answer(429), false),
        Outcome::RateLimited {
            retry_after: None,
            ..
        }
    ));
}

#[test]
fn replay_401_wants_a_token() {
    assert!(matches!(
        outcome(&answer(401), false),
        Outcome::Unauthorized { .. }
    ));
}

#[test]
fn replay_transient_failures_are_retryable() {
    for status in [408, 500, 502, 503, 504, 507, 511, 520] {
        assert!(
            matches!(
                outcome(&answer(status), false),
                Outcome::Retryable {
                    server_failure: true,
                    ..
                }
            ),
            "{status}"
        );
    }
    for kind in [FailureKind::Network, FailureKind::Timeout] {
        assert!(matches!(
            outcome(&failure(kind), false),
            Outcome::Retryable {
                server_failure: false,
                ..
            }
        ));
    }
}

#[test]
fn server_failures_back_off_by_server_failures_not_by_outage_attempts() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(8);
    let mut e = entry();
    e.attempts = 40; // a long outage of network failures
    e.failures = 0;
    let server = Outcome::Retryable {
        error: LastError::new("x", "503"),
        server_failure: true,
        retry_after: None,
    };
    let network = Outcome::Retryable {
        error: LastError::new("network", "offline"),
        server_failure: false,
        retry_after: None,
    };
    let mut worst_server = 0;
    let mut worst_network = 0;
    for _ in 0..500 {
        if let Action::Retry { not_before, .. } = p.decide(&e, &server, NOW, 0, &mut rng) {
            worst_server = worst_server.max(not_before - NOW);
        }
        if let Action::Retry { not_before, .. } = p.decide(&e, &network, NOW, 0, &mut rng) {
            worst_network = worst_network.max(not_before - NOW);
        }
    }
    assert!(
        worst_server <= 2_000,
        "first server failure: ≤ 2 s, got {worst_server}"
    );
    assert!(
        worst_network > 30_000,
        "offline: the capped backoff, got {worst_network}"
    );
}

#[test]
fn replay_503_honours_its_retry_after() {
    let mut r = genesys(503, "service.unavailable", "down for maintenance");
    r.as_mut()
        .unwrap()
        .headers
        .push(("Retry-After".into(), "45".into()));
    match outcome(&r, false) {
        Outcome::Retryable {
            retry_after: Some(ra),
            server_failure: true,
            ..
        } => assert_eq!(ra.delay_ms, 45_000),
        other => panic!("{other:?}"),
    }
    // Only 503 carries that meaning; a 500's header is ignored.
    let mut r = answer(500);
    r.as_mut()
        .unwrap()
        .headers
        .push(("Retry-After".into(), "45".into()));
    assert!(matches!(
        outcome(&r, false),
        Outcome::Retryable {
            retry_after: None,
            ..
        }
    ));
    // The policy waits at least that long.
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(4);
    let o = Outcome::Retryable {
        error: LastError::new("x", "y"),
        server_failure: true,
        retry_after: None,
    };
    match p.decide(&entry(), &o, NOW, 45_000, &mut rng) {
        Action::Retry { not_before, .. } => assert!(not_before >= NOW + 45_000),
        other => panic!("{other:?}"),
    }
}

#[test]
fn replay_other_4xx_and_hopeless_5xx_are_dead_letters_with_the_genesys_body() {
    for (status, code) in [
        (403, "not.authorized"),
        (404, "not.found"),
        (413, "request.entity.too.large"),
        (400, "bad.request"),
        (415, "unsupported.media.type"),
    ] {
        match outcome(&genesys(status, code, "nope"), false) {
            Outcome::Permanent { error } => {
                assert_eq!(error.status, Some(status));
                assert_eq!(error.code.as_deref(), Some(code));
                assert_eq!(error.context_id, Some(format!("ctx-{status}")));
                assert_eq!(error.message, "nope");
            }
            other => panic!("{status}: {other:?}"),
        }
    }
    assert!(matches!(
        outcome(&answer(501), false),
        Outcome::Permanent { .. }
    ));
    assert!(matches!(
        outcome(&answer(302), false),
        Outcome::Permanent { .. }
    ));
}

// ---- Error bodies ----

#[test]
fn error_bodies_are_read_tolerantly() {
    let e = error_from_body(502, b"<html><body>Bad gateway</body></html>");
    assert_eq!((e.status, e.code.as_deref()), (Some(502), None));
    assert_eq!(e.message, "<html><body>Bad gateway</body></html>");
    // Truncated JSON: fields that arrived whole are still read.
    let e = error_from_body(
        503,
        br#"{"message":"down","code":"service.unavailable","contextId":"c1","details":[{"errorCo"#,
    );
    assert_eq!(
        (
            e.code.as_deref(),
            e.message.as_str(),
            e.context_id.as_deref()
        ),
        (Some("service.unavailable"), "down", Some("c1"))
    );
    // Broken JSON without a message: a reason phrase.
    assert_eq!(error_from_body(404, b"{\"code\":").message, "Not Found");
    assert_eq!(error_from_body(500, b"").message, "Internal Server Error");
    // Huge bodies are clipped.
    let huge = "x".repeat(1_000_000);
    let e = error_from_body(500, huge.as_bytes());
    assert!(e.message.chars().count() <= 301, "{}", e.message.len());
    // OAuth errors use other names.
    let e = error_from_body(
        400,
        br#"{"error":"unauthorized_client","error_description":"bad client"}"#,
    );
    assert_eq!(
        (e.code.as_deref(), e.message.as_str()),
        (Some("unauthorized_client"), "bad client")
    );
    // Invalid UTF-8 does not panic.
    let e = error_from_body(500, &[0xff, 0xfe, b'a']);
    assert!(e.message.ends_with('a'));
}

// ---- Retry policy ----

fn entry() -> Entry {
    Entry {
        id: EntryId::random(&mut SplitMix64::new(1)),
        seq: 1,
        lane: "l".into(),
        route: "agent-send".into(),
        origin: "https://api.mypurecloud.ie".into(),
        request: StoredRequest {
            method: "POST".into(),
            url: "https://api.mypurecloud.ie/x".into(),
            headers: vec![],
            body: vec![],
        },
        idempotency_key: "k".into(),
        needs_token: true,
        created_at: NOW,
        attempts: 1,
        failures: 0,
        auth_failures: 0,
        auth_since: None,
        not_before: NOW,
        state: EntryState::InFlight {
            lease_until: NOW + 60_000,
        },
        last_error: None,
    }
}

#[test]
fn backoff_ceiling_doubles_from_2s_to_a_60s_cap() {
    let p = RetryPolicy::default();
    let ceilings: Vec<u64> = (1..=8).map(|a| p.ceiling_ms(a)).collect();
    assert_eq!(
        ceilings,
        [2_000, 4_000, 8_000, 16_000, 32_000, 60_000, 60_000, 60_000]
    );
    assert_eq!(p.ceiling_ms(u32::MAX), 60_000, "no overflow");
}

#[test]
fn backoff_is_full_jitter() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(9);
    let samples: Vec<u64> = (0..20_000).map(|_| p.backoff_ms(3, &mut rng)).collect();
    assert!(samples.iter().all(|s| *s <= 8_000));
    let mean = samples.iter().sum::<u64>() as f64 / samples.len() as f64;
    assert!(
        (3_800.0..4_200.0).contains(&mean),
        "uniform on 0..=8000 has mean 4000, got {mean}"
    );
    assert!(
        samples.iter().any(|s| *s < 400) && samples.iter().any(|s| *s > 7_600),
        "spread over the whole range"
    );
    let mut a = SplitMix64::new(5);
    let mut b = SplitMix64::new(5);
    assert_eq!(
        p.backoff_ms(4, &mut a),
        p.backoff_ms(4, &mut b),
        "deterministic for a seed"
    );
}

#[test]
fn decisions_follow_the_table() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(1);
    let e = entry();
    assert_eq!(
        p.decide(&e, &Outcome::Delivered { status: 200 }, NOW, 0, &mut rng),
        Action::Delivered {
            status: 200,
            duplicate: false
        }
    );
    assert_eq!(
        p.decide(
            &e,
            &Outcome::AlreadyDelivered { status: 409 },
            NOW,
            0,
            &mut rng
        ),
        Action::Delivered {
            status: 409,
            duplicate: true
        }
    );
    let err = LastError::new("x", "y");
    // 429: at least the Retry-After, and at least the backoff.
    for _ in 0..100 {
        match p.decide(
            &e,
            &Outcome::RateLimited {
                retry_after: None,
                error: err.clone(),
            },
            NOW,
            7_000,
            &mut rng,
        ) {
            Action::Retry {
                not_before,
                failures: 0,
                ..
            } => assert!(not_before >= NOW + 7_000),
            other => panic!("{other:?}"),
        }
    }
    // 5xx counts a failure, network does not.
    match p.decide(
        &e,
        &Outcome::Retryable {
            error: err.clone(),
            server_failure: true,
            retry_after: None,
        },
        NOW,
        0,
        &mut rng,
    ) {
        Action::Retry {
            failures: 1,
            not_before,
            ..
        } => assert!(not_before <= NOW + 2_000),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        p.decide(
            &e,
            &Outcome::Retryable {
                error: err.clone(),
                server_failure: false,
                retry_after: None,
            },
            NOW,
            0,
            &mut rng
        ),
        Action::Retry { failures: 0, .. }
    ));
    assert_eq!(
        p.decide(
            &e,
            &Outcome::Permanent { error: err.clone() },
            NOW,
            0,
            &mut rng
        ),
        Action::Dead { error: err.clone() }
    );
}

#[test]
fn limits_make_dead_letters_never_drops() {
    let p = RetryPolicy::default();
    let mut rng = SplitMix64::new(1);
    let err = LastError {
        status: Some(500),
        code: Some("internal.server.error".into()),
        message: "down".into(),
        context_id: Some("c".into()),
    };
    let mut e = entry();
    e.failures = p.max_attempts - 1;
    match p.decide(
        &e,
        &Outcome::Retryable {
            error: err.clone(),
            server_failure: true,
            retry_after: None,
        },
        NOW,
        0,
        &mut rng,
    ) {
        Action::Dead { error } => {
            assert_eq!(error.code.as_deref(), Some("max-attempts"));
            assert_eq!(error.status, Some(500), "the last cause is kept");
            assert!(error.message.contains("down"));
        }
        other => panic!("{other:?}"),
    }
    // A busy server (503, 408) is never the last straw: the message goes
    // on retrying, its count one short of the limit, until a failure that
    // may be its own, or its age.
    for status in [503, 408] {
        let busy = LastError {
            status: Some(status),
            ..err.clone()
        };
        match p.decide(
            &e,
            &Outcome::Retryable {
                error: busy,
                server_failure: true,
                retry_after: None,
            },
            NOW,
            0,
            &mut rng,
        ) {
            Action::Retry { failures, .. } => assert_eq!(failures, p.max_attempts - 1),
            other => panic!("{status}: {other:?}"),
        }
    }
    let mut e = entry();
    e.created_at = NOW - p.max_age_ms;
    match p.decide(
        &e,
        &Outcome::Retryable {
            error: err.clone(),
            server_failure: false,
            retry_after: None,
        },
        NOW,
        0,
        &mut rng,
    ) {
        Action::Dead { error } => assert_eq!(error.code.as_deref(), Some("max-age")),
        other => panic!("{other:?}"),
    }
    // 401: a burst is a blip. Any number of 401s inside the window park the
    // entry: the first only until a fresh token, later ones with a growing
    // backoff (never at once); the run dies only once it has both
    // `max_auth_failures` answers and spans `auth_window_ms`, on the clock
    // and in the backoff schedule (8 answers with the defaults).
    let needed = (1..)
        .find(|n| p.auth_schedule_ms(*n) >= p.auth_window_ms)
        .unwrap();
    assert!(needed > p.max_auth_failures);
    let mut e = entry();
    let mut now = NOW;
    for expected in 1..needed {
        match p.decide(
            &e,
            &Outcome::Unauthorized { error: err.clone() },
            now,
            0,
            &mut rng,
        ) {
            Action::AwaitToken {
                auth_failures,
                since,
                not_before,
                ..
            } => {
                assert_eq!(auth_failures, expected);
                assert_eq!(since, NOW, "the run starts at its first 401");
                if expected == 1 {
                    assert_eq!(not_before, now, "the first 401 waits only for a token");
                } else {
                    let ceiling = p.ceiling_ms(expected - 1);
                    assert!(
                        not_before >= now + ceiling / 2 && not_before <= now + ceiling,
                        "401 number {expected}: backoff {} outside [{}, {ceiling}]",
                        not_before - now,
                        ceiling / 2
                    );
                }
                e.auth_failures = auth_failures;
                e.auth_since = Some(since);
            }
            other => panic!("401 number {expected} within the window: {other:?}"),
        }
        now += 100; // a burst: 100 ms apart
    }
    // Past the window with enough failures: a dead letter that says so.
    now = NOW + p.auth_window_ms;
    let mut short = e.clone();
    short.auth_failures = needed - 2;
    assert!(
        matches!(
            p.decide(
                &short,
                &Outcome::Unauthorized { error: err.clone() },
                now,
                0,
                &mut rng
            ),
            Action::AwaitToken { .. }
        ),
        "past the window on the clock, but fewer 401s than the schedule makes in it"
    );
    match p.decide(
        &e,
        &Outcome::Unauthorized { error: err.clone() },
        now,
        0,
        &mut rng,
    ) {
        Action::Dead { error } => {
            assert_eq!(error.code.as_deref(), Some("auth-failed"));
            assert!(error.message.contains("over 60 s"), "{}", error.message);
        }
        other => panic!("{other:?}"),
    }
    // A long time but too few 401s is not enough either.
    let mut few = entry();
    few.auth_failures = p.max_auth_failures - 2;
    few.auth_since = Some(NOW);
    assert!(matches!(
        p.decide(
            &few,
            &Outcome::Unauthorized { error: err.clone() },
            NOW + 10 * p.auth_window_ms,
            0,
            &mut rng
        ),
        Action::AwaitToken { .. }
    ));
    // Any other answer ends the run.
    let mut ok_after = e.clone();
    ok_after.attempts = 1;
    match p.decide(
        &ok_after,
        &Outcome::Retryable {
            error: err,
            server_failure: true,
            retry_after: None,
        },
        now,
        0,
        &mut rng,
    ) {
        Action::Retry { .. } => {}
        other => panic!("{other:?}"),
    }
}

/// Runs `count` `401`s, each `gap_ms` after the one before, through the
/// policy; returns the action the last one decided.
fn run_of_401s(p: &RetryPolicy, count: u32, gap_ms: u64) -> Action {
    let mut rng = SplitMix64::new(4);
    let mut e = entry();
    let unauthorized = Outcome::Unauthorized {
        error: LastError::new("credentials.expired", "expired"),
    };
    let mut last = None;
    for n in 0..count {
        let now = NOW + u64::from(n) * gap_ms;
        let action = p.decide(&e, &unauthorized, now, 0, &mut rng);
        if let Action::AwaitToken {
            auth_failures,
            since,
            ..
        } = &action
        {
            e.auth_failures = *auth_failures;
            e.auth_since = Some(*since);
        }
        last = Some(action);
    }
    last.expect("at least one 401")
}

#[test]
fn a_few_401s_met_by_a_slowed_sender_are_no_verdict() {
    // The crawl of issue 22: four 401s, each with a fresh token, one every
    // 25 s because the sender was slowed: 75 s on the clock, but only what
    // a sender at the backoff's pace meets in about 4 s.
    let p = RetryPolicy::default();
    assert!(
        matches!(
            run_of_401s(&p, 4, 25_000),
            Action::AwaitToken {
                auth_failures: 4,
                ..
            }
        ),
        "four 401s over 75 s are a blip"
    );
    // The schedule's own span: nothing before the second 401, then half of
    // each ceiling (2, 4, 8, 16, 32, 60 s).
    let spans: Vec<u64> = (1..=8).map(|n| p.auth_schedule_ms(n)).collect();
    assert_eq!(spans, [0, 0, 1_000, 3_000, 7_000, 15_000, 31_000, 61_000]);
}

#[test]
fn a_permanent_401_dies_at_any_pace() {
    let p = RetryPolicy::default();
    // Slowed to one attempt every 25 s: the eighth 401 (175 s) is the verdict.
    assert!(matches!(
        run_of_401s(&p, 7, 25_000),
        Action::AwaitToken { .. }
    ));
    match run_of_401s(&p, 8, 25_000) {
        Action::Dead { error } => assert_eq!(error.code.as_deref(), Some("auth-failed")),
        other => panic!("{other:?}"),
    }
    // At the backoff's own pace (≥ half of each ceiling apart) it dies as
    // soon as the run spans the window on the clock too.
    match run_of_401s(&p, 8, 9_000) {
        Action::Dead { .. } => {}
        other => panic!("eight 401s over 63 s: {other:?}"),
    }
    // A fast burst never dies, however many: the clock's window holds.
    assert!(matches!(
        run_of_401s(&p, 20, 100),
        Action::AwaitToken { .. }
    ));
}

/// What a front door answers when the queue refuses a request (the
/// caller keeps it): the status and body are core's, for every host.
#[test]
fn refusals_answer_507_413_409_500_with_a_json_body() {
    use outbox_core::queue::{EnqueueError, Refusal};
    let full: Refusal = EnqueueError::Full { max_entries: 3 };
    assert_eq!((full.status(), full.code()), (507, "outbox-full"));
    let body: serde_json::Value = serde_json::from_str(&full.body()).unwrap();
    assert_eq!(body["queued"], false);
    assert_eq!(body["error"], "outbox-full");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("full (3 entries)")
    );
    let quota: Refusal = EnqueueError::QuotaExceeded("disk".into());
    assert_eq!(quota.status(), 507);
    let large: Refusal = EnqueueError::TooLarge { size: 9, max: 1 };
    assert_eq!((large.status(), large.code()), (413, "entry-too-large"));
    let taken: Refusal = EnqueueError::Duplicate(outbox_core::entry::EntryId::from_bytes([1; 16]));
    assert_eq!(taken.status(), 409);
}
