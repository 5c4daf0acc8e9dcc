#![allow(missing_docs)] // `criterion_group!` generates an undocumented function
//! Engine micro-benchmarks (Criterion): the classifier, scheduler planning
//! over 10,000 lanes, backoff, and `Retry-After` parsing. Each sits in a
//! group beside a reference measured in the same run (`outbox <case>` and
//! `reference <case>`), so the report can give a ratio rather than a bare
//! time:
//!
//! | group | Outbox | reference |
//! |---|---|---|
//! | `classify` | `classify` of a Genesys `429` / `503` / `200` | `serde_json` parsing the same body into a `Value` |
//! | `plan` | `scheduler::plan` over 10,000 lane heads | sorting the 10,000 heads by `seq` (planning's floor) |
//! | `backoff` | `RetryPolicy::backoff_ms` | one `SplitMix64` draw |
//! | `retry_after` | `parse_retry_after` (seconds, HTTP-date) | `str::parse::<u64>`, `httpdate::parse_http_date` |
//!
//! Run: `cargo bench -p outbox-bench --bench engine` (add
//! `-- --warm-up-time 0.3 --measurement-time 1` for a quick pass).

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use outbox_core::classify::{ClassifyConfig, Response, classify};
use outbox_core::clock::{Random, SplitMix64};
use outbox_core::entry::{EntryId, EntryState, Head};
use outbox_core::pacer::{PacerConfig, ScheduleState};
use outbox_core::retry::RetryPolicy;
use outbox_core::retry_after::parse_retry_after;
use outbox_core::scheduler::{PlanContext, plan};

const NOW: u64 = 1_700_000_000_000;

fn genesys_error(status: u16, code: &str) -> Vec<u8> {
    format!(
        r#"{{"message":"Rate limit exceeded the maximum. Retry the request in [30] seconds","code":"{code}","status":{status},"messageWithParams":"Rate limit exceeded the maximum. Retry the request in [{{seconds}}] seconds","messageParams":{{"seconds":"30"}},"contextId":"0b0c3f47-8f4a-4a5e-9d0f-2c6a8f1e7d21","details":[],"errors":[]}}"#
    )
    .into_bytes()
}

fn classifier(c: &mut Criterion) {
    let config = ClassifyConfig::default();
    let too_many = Response {
        status: 429,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("retry-after".into(), "30".into()),
            ("inin-ratelimit-count".into(), "300".into()),
            ("inin-ratelimit-allowed".into(), "300".into()),
            ("inin-ratelimit-reset".into(), "30".into()),
        ],
        body: genesys_error(429, "too.many.requests.retry.after"),
    };
    let unavailable = Response {
        status: 503,
        headers: vec![("content-type".into(), "application/json".into())],
        body: genesys_error(503, "service.unavailable"),
    };
    let ok = Response {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: br#"{"id":"m1","status":"queued"}"#.to_vec(),
    };
    let mut g = c.benchmark_group("classify");
    g.bench_function("outbox 429", |b| {
        let r = Ok(too_many.clone());
        b.iter(|| classify(black_box(&r), false, NOW, &config))
    });
    g.bench_function("outbox 503", |b| {
        let r = Ok(unavailable.clone());
        b.iter(|| classify(black_box(&r), false, NOW, &config))
    });
    g.bench_function("outbox 200", |b| {
        let r = Ok(ok.clone());
        b.iter(|| classify(black_box(&r), false, NOW, &config))
    });
    for (case, body) in [
        ("429", &too_many.body),
        ("503", &unavailable.body),
        ("200", &ok.body),
    ] {
        g.bench_function(format!("reference {case}"), |b| {
            b.iter(|| serde_json::from_slice::<serde_json::Value>(black_box(body)))
        });
    }
    g.finish();
}

fn heads(n: usize) -> Vec<Head> {
    let mut rng = SplitMix64::new(3);
    (0..n)
        .map(|i| {
            let backing_off = rng.below_or_eq(3) == 0;
            Head {
                seq: rng.next_u64() >> 20,
                id: EntryId::random(&mut rng),
                lane: format!("conversation-{i}"),
                route: "agent-send".into(),
                origin: "https://api.mypurecloud.ie".into(),
                corrupt: false,
                needs_token: true,
                created_at: NOW - 60_000,
                attempts: 1,
                failures: 0,
                not_before: if backing_off { NOW + 5_000 } else { NOW - 1 },
                state: EntryState::Pending,
            }
        })
        .collect()
}

fn scheduler(c: &mut Criterion) {
    let heads = heads(10_000);
    let policy = RetryPolicy::default();
    let pacer = PacerConfig::default();
    let has_token = |_: &str| true;
    let ctx = PlanContext {
        now: NOW,
        batch_size: 8,
        policy: &policy,
        pacer: &pacer,
        has_token: &has_token,
        steal_leases: false,
        on_dead: &|_: &str| outbox_core::hold::OnDead::Hold,
    };
    let mut g = c.benchmark_group("plan");
    g.bench_function("outbox 10000 lanes", |b| {
        b.iter_batched_ref(
            ScheduleState::default,
            |schedule| plan(black_box(&heads), schedule, &ctx),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("reference 10000 lanes", |b| {
        b.iter_batched_ref(
            || heads.iter().collect::<Vec<&Head>>(),
            |v| v.sort_unstable_by_key(|h| h.seq),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn backoff(c: &mut Criterion) {
    let policy = RetryPolicy::default();
    let mut g = c.benchmark_group("backoff");
    g.bench_function("outbox attempt 7", |b| {
        let mut rng = SplitMix64::new(9);
        b.iter(|| policy.backoff_ms(black_box(7), &mut rng))
    });
    g.bench_function("reference attempt 7", |b| {
        let mut rng = SplitMix64::new(9);
        b.iter(|| black_box(rng.next_u64()))
    });
    g.finish();
}

fn retry_after(c: &mut Criterion) {
    let date = "Wed, 15 Nov 2023 22:14:20 GMT";
    let mut g = c.benchmark_group("retry_after");
    g.bench_function("outbox seconds", |b| {
        b.iter(|| parse_retry_after(black_box("120"), NOW, 10_000, 21_600_000))
    });
    g.bench_function("outbox http-date", |b| {
        b.iter(|| parse_retry_after(black_box(date), NOW, 10_000, 21_600_000))
    });
    g.bench_function("reference seconds", |b| {
        b.iter(|| black_box("120").parse::<u64>().map(|s| s * 1000))
    });
    g.bench_function("reference http-date", |b| {
        b.iter(|| httpdate::parse_http_date(black_box(date)))
    });
    g.finish();
}

criterion_group!(benches, classifier, scheduler, backoff, retry_after);
criterion_main!(benches);
