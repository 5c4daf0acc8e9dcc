//! What the PostgreSQL store adds to the contract for many instances on
//! one queue: a head locked by one claim leaves its whole lane out of
//! another's, a lane's head in flight under a standing lease is nobody
//! else's, a settlement or a send through a lease that passed on is
//! refused, one lane's enqueues commit in `seq` order, the pacing budget is
//! one for all, enqueues wake the other instances, and the schema comes up
//! from empty and from the previous version.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use outbox_core::clock::SplitMix64;
use outbox_core::entry::{Action, EntryState, Head};
use outbox_core::pacer::PacerConfig;
use outbox_core::queue::{Fence, LeaseTerms, QueueLimits, Settlement, planning};
use outbox_core::scheduler::Claim;
use outbox_core::store::{Access, HeadsRead, LastSeqRead, Read, ScheduleRead};
use outbox_driver::conformance::sample_entry;
use outbox_driver::store::{Store, StoreTx};
use outbox_postgres::{PgOptions, PostgresStore, schema};

const T0: u64 = 1_700_000_000_000;
const ORIGIN: &str = "https://api.mypurecloud.ie";

/// Two stores (two instances) on one fresh schema.
async fn two(case: &str) -> (PostgresStore, PostgresStore) {
    let options = common::options(case);
    let a = PostgresStore::open(options.clone()).await.unwrap();
    let b = PostgresStore::open(options).await.unwrap();
    (a, b)
}

fn terms(now: u64) -> LeaseTerms {
    LeaseTerms {
        now,
        until: now + 10_000,
        steal: false,
        survey: false,
    }
}

/// Claims every ready head it is shown; returns the heads shown and the
/// entries leased.
async fn claim(store: &PostgresStore, now: u64) -> (Vec<Head>, Vec<outbox_core::entry::Entry>) {
    let mut seen = Vec::new();
    let claimed = store
        .claim(
            terms(now),
            &mut planning(|_, heads| {
                seen = heads.to_vec();
                let sends = heads
                    .iter()
                    .filter(|h| h.state == EntryState::Pending || matches!(h.state, EntryState::InFlight { lease_until } if lease_until <= now))
                    .map(|h| (h.seq, Claim::Send))
                    .collect();
                (sends, None)
            }),
        )
        .await
        .unwrap();
    seen.sort_by_key(|h| h.seq);
    (seen, claimed.sends)
}

async fn put(store: &PostgresStore, rng: &mut SplitMix64, lane: &str) -> outbox_core::entry::Entry {
    store
        .enqueue(
            sample_entry(rng, lane, ORIGIN, lane.as_bytes()),
            &QueueLimits::default(),
        )
        .await
        .unwrap()
}

#[tokio::test]
async fn a_head_locked_by_one_claim_leaves_its_whole_lane_out_of_another() {
    let (a, b) = two("skip_locked").await;
    let mut rng = SplitMix64::new(1);
    let a1 = put(&a, &mut rng, "a").await;
    let a2 = put(&a, &mut rng, "a").await;
    let b1 = put(&a, &mut rng, "b").await;
    // Instance A's claim is under way: it has read (and locked) the heads.
    let mut open = a.begin(Access::Write, "claim").await.unwrap();
    let found = open
        .read(vec![Read::Heads(HeadsRead { survey: true })])
        .await
        .unwrap();
    assert_eq!(found.len(), 1);
    // Instance B claims meanwhile; it has no pacing rows to wait on yet, so
    // it meets A's row locks: both heads are skipped, and a2 — behind a
    // locked head — is never taken for lane a's head.
    let (seen, sent) = tokio::time::timeout(Duration::from_secs(10), claim(&b, T0))
        .await
        .expect("SKIP LOCKED: the claim does not wait");
    assert!(
        seen.iter().all(|h| h.seq != a2.seq),
        "the entry behind a locked head is not a head: {seen:?}"
    );
    assert!(sent.iter().all(|e| e.seq != a1.seq && e.seq != b1.seq));
    drop(open);
    // Once A's transaction is gone, B sees both lanes' heads. Dropping it
    // closes its connection, and PostgreSQL rolls it back (releasing the
    // row locks) when its backend sees the connection closed: a moment
    // later, longer on a loaded machine. Until then B's claims skip the
    // locked heads, and a claim that is shown nothing changes nothing, so
    // B claims again until the locks are gone.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let (seen, sent) = loop {
        let (seen, sent) = claim(&b, T0).await;
        if !seen.is_empty() || tokio::time::Instant::now() > deadline {
            break (seen, sent);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        seen.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [a1.seq, b1.seq]
    );
    assert_eq!(sent.len(), 2);
}

#[tokio::test]
async fn a_lane_in_flight_is_nobody_elses_until_its_lease_runs_out_and_a_stale_settle_is_refused() {
    let (a, b) = two("fenced").await;
    let mut rng = SplitMix64::new(2);
    let e1 = put(&a, &mut rng, "c1").await;
    let e2 = put(&b, &mut rng, "c1").await;
    let (_, sent) = claim(&a, T0).await;
    assert_eq!(
        sent.iter().map(|e| (e.seq, e.attempts)).collect::<Vec<_>>(),
        [(e1.seq, 1)]
    );
    // B, meanwhile: the lane's head is in flight under A's lease.
    let (_, sent) = claim(&b, T0 + 1).await;
    assert!(
        sent.is_empty(),
        "one head in flight per lane, across instances"
    );
    // A is paused past its lease; B takes the lane over (attempt 2).
    let late = T0 + 10_000;
    let (_, sent) = claim(&b, late).await;
    assert_eq!(
        sent.iter().map(|e| (e.seq, e.attempts)).collect::<Vec<_>>(),
        [(e1.seq, 2)]
    );
    // A wakes up: its fence read says its lease is gone, so it sends
    // nothing …
    let standing = a
        .transact(Fence::new(vec![(e1.seq, 1)], late + 1, 1_000))
        .await
        .unwrap();
    assert!(standing.is_empty(), "A's lease passed to B");
    let still = b
        .transact(Fence::new(vec![(e1.seq, 2)], late + 1, 1_000))
        .await
        .unwrap();
    assert_eq!(still, [e1.seq], "B's stands");
    // … and a settlement under its old lease is refused.
    let delivered = |attempt| Settlement {
        seq: e1.seq,
        attempt,
        action: Action::Delivered {
            status: 200,
            duplicate: false,
        },
    };
    let applied = a
        .settle(late + 2, vec![delivered(1)], &mut |_, _| {})
        .await
        .unwrap();
    assert!(applied.is_empty(), "a stale settlement is skipped");
    assert!(a.get(e1.id).await.unwrap().is_some(), "still queued, B's");
    let applied = b
        .settle(late + 3, vec![delivered(2)], &mut |_, _| {})
        .await
        .unwrap();
    assert_eq!(applied.len(), 1);
    let (seen, _) = claim(&a, late + 4).await;
    assert_eq!(
        seen.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [e2.seq],
        "the lane moves on"
    );
}

#[tokio::test]
async fn one_lanes_enqueues_commit_in_seq_order() {
    let (a, b) = two("lane_order").await;
    // A's enqueue of lane L has its seq but has not committed.
    let mut first = a.begin(Access::Durable, "enqueue").await.unwrap();
    first
        .read(vec![Read::LastSeq(LastSeqRead { lane: "L".into() })])
        .await
        .unwrap();
    // B's enqueue of the same lane waits for it; one of another lane does
    // not.
    let mut rng = SplitMix64::new(3);
    let other = tokio::time::timeout(Duration::from_secs(10), put(&b, &mut rng, "M"))
        .await
        .expect("another lane is not held up");
    let mut rng2 = SplitMix64::new(4);
    let mut same = std::pin::pin!(put(&b, &mut rng2, "L"));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut same)
            .await
            .is_err(),
        "the same lane waits for the first to commit"
    );
    first.commit().await.unwrap();
    let second = same.await;
    assert!(second.seq > other.seq);
}

#[tokio::test]
async fn the_pacing_budget_is_one_for_all_instances() {
    let (a, b) = two("budget").await;
    let pacer = PacerConfig {
        rate_per_minute: 60,
        burst: 3,
        ..PacerConfig::default()
    };
    let mut taken = 0;
    for store in [&a, &b, &a, &b, &a, &b] {
        store
            .update_schedule(&mut |s| {
                if s.try_take(ORIGIN, &pacer, T0).is_ok() {
                    taken += 1;
                }
            })
            .await
            .unwrap();
    }
    assert_eq!(taken, 3, "a burst of 3 between both, not 3 each");
    // Concurrent takes do not lose updates: the rows are locked.
    let taken = Arc::new(AtomicU64::new(0));
    let tasks = (0..20).map(|i| {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        let taken = taken.clone();
        async move {
            store
                .update_schedule(&mut |s| {
                    if s.try_take(ORIGIN, &pacer, T0 + 60_000).is_ok() {
                        taken.fetch_add(1, Ordering::SeqCst);
                    }
                })
                .await
                .unwrap();
        }
    });
    futures_util::future::join_all(tasks).await;
    assert_eq!(
        taken.load(Ordering::SeqCst),
        3,
        "refilled to the burst, once"
    );
    let mut open = a.begin(Access::Read, "schedule").await.unwrap();
    open.read(vec![Read::Schedule(ScheduleRead)]).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enqueue_wakes_the_other_instances() {
    let (a, b) = two("wake").await;
    let woken = Arc::new(AtomicU64::new(0));
    let count = woken.clone();
    let listening = tokio::spawn(outbox_postgres::waker::run(
        a.clone(),
        move || {
            count.fetch_add(1, Ordering::SeqCst);
        },
        Duration::from_secs(30),
        || false,
    ));
    // The waker wakes once when it starts listening.
    wait(|| woken.load(Ordering::SeqCst) >= 1).await;
    let before = woken.load(Ordering::SeqCst);
    let mut rng = SplitMix64::new(5);
    put(&b, &mut rng, "x").await;
    wait(|| woken.load(Ordering::SeqCst) > before).await;
    listening.abort();
}

async fn wait(mut done: impl FnMut() -> bool) {
    tokio::time::timeout(Duration::from_secs(20), async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the condition came about");
}

#[tokio::test]
async fn completed_entries_are_kept_small_and_pruned_after_their_retention() {
    let options = PgOptions {
        retention_ms: 60_000,
        ..common::options("retention")
    };
    let store = PostgresStore::open(options).await.unwrap();
    let mut rng = SplitMix64::new(6);
    let e = put(&store, &mut rng, "r").await;
    let (_, sent) = claim(&store, T0).await;
    assert_eq!(sent.len(), 1);
    store
        .settle(
            T0 + 1,
            vec![Settlement {
                seq: e.seq,
                attempt: 1,
                action: Action::Delivered {
                    status: 200,
                    duplicate: false,
                },
            }],
            &mut |_, _| {},
        )
        .await
        .unwrap();
    assert!(
        store.get(e.id).await.unwrap().is_none(),
        "out of the queue at once"
    );
    let now = outbox_postgres::sql::wall_ms();
    let kept = outbox_postgres::maintain::once(&store, now).await.unwrap();
    assert_eq!(
        (kept.ran, kept.done),
        (true, 0),
        "kept within its retention"
    );
    assert_eq!(kept.lanes, 0, "its lane was unlisted when it emptied");
    let later = outbox_postgres::maintain::once(&store, now + 61_000)
        .await
        .unwrap();
    assert_eq!(later.done, 1, "pruned after it");
}

#[tokio::test]
async fn the_schema_comes_up_from_empty_and_from_the_previous_version() {
    // From empty: every step.
    let options = common::options("migrate");
    let store = PostgresStore::open(options.clone()).await.unwrap();
    let client = store.pool().raw().await.unwrap();
    assert_eq!(
        schema::version(&client, &options.schema).await.unwrap(),
        schema::CURRENT
    );
    // From the previous version, with entries in it.
    let old = common::options("migrate_prev");
    let v1 = PostgresStore::open_at(old.clone(), schema::CURRENT - 1)
        .await
        .unwrap();
    let client = v1.pool().raw().await.unwrap();
    // An entry as version 1 wrote it (its code's statements need only
    // version 1's tables).
    client
        .batch_execute(
            "INSERT INTO queue (seq, id, lane, route, origin, method, url, headers, idem_key, \
             needs_token, created_at, not_before, attempts, failures, auth_failures, auth_since, \
             state, lease_until, error, size) VALUES (nextval('seq'), \
             '6f1b2c3d-4e5f-4a1b-8c2d-3e4f5a6b7c8d', 'm', 'agent-send', 'https://api.mypurecloud.ie', \
             'POST', 'https://api.mypurecloud.ie/x', '[]', 'k', true, 1700000000000, 1700000000000, \
             0, 0, 0, NULL, 'pending', NULL, NULL, 40); \
             INSERT INTO bodies (seq, body) VALUES (currval('seq'), '\\x6869'); \
             INSERT INTO lanes (lane) VALUES ('m'); \
             UPDATE counts SET queued = queued + 1 WHERE stripe = currval('seq') % 16",
        )
        .await
        .unwrap();
    let id: outbox_core::entry::EntryId = "6f1b2c3d-4e5f-4a1b-8c2d-3e4f5a6b7c8d".parse().unwrap();
    let mut rng = SplitMix64::new(7);
    assert_eq!(
        schema::version(&client, &old.schema).await.unwrap(),
        schema::CURRENT - 1
    );
    drop(v1);
    let now = PostgresStore::open(old.clone()).await.unwrap();
    assert_eq!(
        schema::version(&client, &old.schema).await.unwrap(),
        schema::CURRENT
    );
    let kept = now.get(id).await.unwrap().expect("entries survive");
    assert_eq!(
        (kept.lane.as_str(), kept.request.body.as_slice()),
        ("m", &b"hi"[..])
    );
    assert_eq!(now.stats(T0).await.unwrap().queued(), 1, "and are counted");
    let next = put(&now, &mut rng, "m").await;
    assert!(next.seq > kept.seq, "seq goes on");
    // Two instances starting at once migrate once.
    let race = common::options("migrate_race");
    let (x, y) = tokio::join!(
        PostgresStore::open(race.clone()),
        PostgresStore::open(race.clone())
    );
    x.unwrap();
    y.unwrap();
    // A newer database is refused and left alone.
    client
        .execute(
            &format!(
                "UPDATE {}.info SET value = '99' WHERE key = 'version'",
                schema::ident(&old.schema)
            ),
            &[],
        )
        .await
        .unwrap();
    let refused = PostgresStore::open(old.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("newer"), "{refused}");
}
