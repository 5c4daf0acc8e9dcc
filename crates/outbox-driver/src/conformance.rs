//! The store conformance suite: the behaviour every [`Store`] must have.
//! It runs against [`MemoryStore`](crate::memory::MemoryStore) natively and
//! against the IndexedDB store in a real browser, page and service worker.
//!
//! Each case takes a fresh, empty store and panics (with a message) when
//! the store misbehaves. [`store_conformance_tests!`](crate::store_conformance_tests)
//! makes one test per case (so one failure hides no other); [`run_all`]
//! runs every case in one go.

use std::future::Future;

use crate::store::Store;
use outbox_core::classify::LastError;
use outbox_core::clock::{Millis, SplitMix64};
use outbox_core::entry::Action;
use outbox_core::entry::{Entry, EntryId, EntryState, Head, Seq, StoredRequest};
use outbox_core::pacer::{PacerConfig, ScheduleState};
use outbox_core::queue::{
    CancelResult, EnqueueError, LeaseTerms, Planner, QueueLimits, Settlement, planning,
};
use outbox_core::scheduler::Claim;

const T0: Millis = 1_700_000_000_000;
const ORIGIN: &str = "https://api.mypurecloud.ie";
const OTHER: &str = "http://127.0.0.1:8081";

/// Names of the cases, in the order [`run_all`] runs them.
pub const CASES: &[&str] = &[
    "enqueue_round_trips_and_orders",
    "limits_refuse_without_keeping",
    "claim_sees_one_head_per_lane",
    "claim_applies_each_decision",
    "settle_applies_and_skips_stale",
    "expired_lease_counts_a_failure",
    "release_is_per_origin",
    "revive_discard_cancel",
    "purge_clears_everything",
    "stats_and_listings",
    "unanswered_retries_can_be_hurried",
    "holds_persist_and_lift_with_their_dead_letter",
    "auth_backoff_survives_a_token",
    "settle_and_claim_is_one_step",
    "followers_lease_behind_their_head",
    "long_queues_are_read_a_page_at_a_time",
    "a_settled_run_leaves_its_neighbours",
];

/// Runs every case, each on a fresh store from `make(case_name)`.
pub async fn run_all<S, F, Fut>(mut make: F)
where
    S: Store,
    F: FnMut(&'static str) -> Fut,
    Fut: Future<Output = S>,
{
    enqueue_round_trips_and_orders(make(CASES[0]).await).await;
    limits_refuse_without_keeping(make(CASES[1]).await).await;
    claim_sees_one_head_per_lane(make(CASES[2]).await).await;
    claim_applies_each_decision(make(CASES[3]).await).await;
    settle_applies_and_skips_stale(make(CASES[4]).await).await;
    expired_lease_counts_a_failure(make(CASES[5]).await).await;
    release_is_per_origin(make(CASES[6]).await).await;
    revive_discard_cancel(make(CASES[7]).await).await;
    purge_clears_everything(make(CASES[8]).await).await;
    stats_and_listings(make(CASES[9]).await).await;
    unanswered_retries_can_be_hurried(make(CASES[10]).await).await;
    holds_persist_and_lift_with_their_dead_letter(make(CASES[11]).await).await;
    auth_backoff_survives_a_token(make(CASES[12]).await).await;
    settle_and_claim_is_one_step(make(CASES[13]).await).await;
    followers_lease_behind_their_head(make(CASES[14]).await).await;
    long_queues_are_read_a_page_at_a_time(make(CASES[15]).await).await;
    a_settled_run_leaves_its_neighbours(make(CASES[16]).await).await;
}

/// One test per conformance case, each on a fresh store.
///
/// `$make` is a function from the case's name to a future of a fresh
/// store. Natively (`sync`), the future and the case must finish without
/// waiting (a memory store); in the browser (`async #[attr]`), each case
/// is an async test under the given attribute.
///
/// ```
/// mod memory {
///     outbox_driver::store_conformance_tests!(sync, |_case: &'static str| async {
///         outbox_driver::memory::MemoryStore::new()
///     });
/// }
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    (sync, $make:expr) => {
        $crate::store_conformance_tests!(@each [sync, $make]
            enqueue_round_trips_and_orders limits_refuse_without_keeping
            claim_sees_one_head_per_lane claim_applies_each_decision
            settle_applies_and_skips_stale expired_lease_counts_a_failure
            release_is_per_origin revive_discard_cancel purge_clears_everything
            stats_and_listings unanswered_retries_can_be_hurried
            holds_persist_and_lift_with_their_dead_letter auth_backoff_survives_a_token
            settle_and_claim_is_one_step followers_lease_behind_their_head
            long_queues_are_read_a_page_at_a_time a_settled_run_leaves_its_neighbours);
    };
    (async #[$attr:meta], $make:expr) => {
        $crate::store_conformance_tests!(@each [async $attr, $make]
            enqueue_round_trips_and_orders limits_refuse_without_keeping
            claim_sees_one_head_per_lane claim_applies_each_decision
            settle_applies_and_skips_stale expired_lease_counts_a_failure
            release_is_per_origin revive_discard_cancel purge_clears_everything
            stats_and_listings unanswered_retries_can_be_hurried
            holds_persist_and_lift_with_their_dead_letter auth_backoff_survives_a_token
            settle_and_claim_is_one_step followers_lease_behind_their_head
            long_queues_are_read_a_page_at_a_time a_settled_run_leaves_its_neighbours);
    };
    (@each $how:tt $($case:ident)*) => {
        $( $crate::store_conformance_tests!(@case $how $case); )*
    };
    (@case [sync, $make:expr] $case:ident) => {
        #[test]
        fn $case() {
            $crate::conformance::finish(async {
                $crate::conformance::$case(($make)(stringify!($case)).await).await
            });
        }
    };
    (@case [async $attr:meta, $make:expr] $case:ident) => {
        #[$attr]
        async fn $case() {
            $crate::conformance::$case(($make)(stringify!($case)).await).await
        }
    };
}

/// Runs a future that never waits (a memory store's) to its end; panics
/// if it would wait.
pub fn finish<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("a synchronous store's future waited"),
    }
}

/// A dead letter's hold on its lane is kept by the store with the pacing
/// state, survives a reload, and is lifted in the same step that revives
/// or discards the dead letter.
pub async fn holds_persist_and_lift_with_their_dead_letter<S: Store>(store: S) {
    let mut rng = SplitMix64::new(12);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let b1 = put(&store, &mut rng, "b", ORIGIN, b"b1").await;
    put(&store, &mut rng, "b", ORIGIN, b"b2").await;
    // a1 expires at claim and holds lane "a" in that same claim.
    ok(
        store
            .claim(
                terms(T0, T0 + 60_000),
                &mut planning(|s, _| {
                    s.holds.hold("a", a1.id);
                    (
                        vec![
                            (a1.seq, Claim::Expire(LastError::new("x", "y"))),
                            (b1.seq, Claim::Send),
                        ],
                        None,
                    )
                }),
            )
            .await,
        "claim",
    );
    // b1 dies at settle and holds lane "b" in that same settle, told which
    // settlements applied.
    let mut told = Vec::new();
    ok(
        store
            .settle(
                T0 + 1,
                vec![Settlement {
                    seq: b1.seq,
                    attempt: 1,
                    action: Action::Dead {
                        error: LastError::new("forbidden", "403"),
                    },
                }],
                &mut |s, applied| {
                    told = applied.iter().map(|a| a.seq).collect();
                    s.holds.hold("b", b1.id);
                },
            )
            .await,
        "settle",
    );
    assert_eq!(told, vec![b1.seq], "settle names what applied");
    let stats = ok(store.stats(T0 + 2).await, "stats");
    let mut held = stats.held.clone();
    held.sort();
    assert_eq!(held, vec![("a".to_owned(), a1.id), ("b".to_owned(), b1.id)]);
    assert_eq!(
        ok(store.schedule().await, "schedule").holds.holder("a"),
        Some(a1.id),
        "the hold is saved with the schedule"
    );
    // Reviving a1 lifts its hold: a1 is the head of "a" again, before a2.
    ok(store.revive(a1.id, T0 + 3).await, "revive").expect("a1 is a dead letter");
    let schedule = ok(store.schedule().await, "schedule");
    assert!(!schedule.holds.is_held("a"), "revive lifts the hold");
    assert!(schedule.holds.is_held("b"), "other holds stay");
    let (heads, _) = claim_all(&store, T0 + 3).await;
    assert!(heads.iter().any(|h| h.seq == a1.seq) && !heads.iter().any(|h| h.seq == a2.seq));
    // Discarding b1 lifts the last hold.
    ok(store.discard(b1.id).await, "discard").expect("b1 is a dead letter");
    assert!(ok(store.stats(T0 + 4).await, "stats").held.is_empty());
}

/// After a `401`, the entry waits for a token *and* its backoff: a token
/// arriving early releases it with its `not_before` and its run of `401`s
/// intact.
pub async fn auth_backoff_survives_a_token<S: Store>(store: S) {
    let mut rng = SplitMix64::new(13);
    let a = put(&store, &mut rng, "a", ORIGIN, b"a").await;
    let (_, sends) = claim_all(&store, T0).await;
    assert_eq!(sends.len(), 1);
    let mut unauthorized = LastError::new("bad.credentials", "401");
    unauthorized.status = Some(401);
    ok(
        store
            .settle(
                T0 + 10,
                vec![Settlement {
                    seq: a.seq,
                    attempt: 1,
                    action: Action::AwaitToken {
                        auth_failures: 2,
                        since: T0 - 5,
                        not_before: T0 + 4_000,
                        error: unauthorized.clone(),
                    },
                }],
                &mut |_, _| {},
            )
            .await,
        "settle",
    );
    let parked = ok(store.get(a.id).await, "get").expect("a");
    assert_eq!(
        (
            parked.state,
            parked.auth_failures,
            parked.auth_since,
            parked.not_before
        ),
        (EntryState::AwaitingToken, 2, Some(T0 - 5), T0 + 4_000)
    );
    let released = ok(store.release_awaiting_token(ORIGIN).await, "release");
    assert_eq!(released.len(), 1);
    assert_eq!(
        (released[0].state, released[0].not_before),
        (EntryState::Pending, T0 + 4_000),
        "a token does not cut the backoff short"
    );
    let back = ok(store.get(a.id).await, "get").expect("a");
    assert_eq!((back.auth_failures, back.auth_since), (2, Some(T0 - 5)));
}

/// `retry_unreachable_now` makes due exactly the pending entries whose last
/// attempt got no answer.
pub async fn unanswered_retries_can_be_hurried<S: Store>(store: S) {
    let mut rng = SplitMix64::new(11);
    let net = put(&store, &mut rng, "a", ORIGIN, b"net").await;
    let server = put(&store, &mut rng, "b", ORIGIN, b"503").await;
    let timeout = put(&store, &mut rng, "c", ORIGIN, b"timeout").await;
    let (_, sends) = claim_all(&store, T0).await;
    assert_eq!(sends.len(), 3);
    let retry = |seq, error: LastError| Settlement {
        seq,
        attempt: 1,
        action: Action::Retry {
            not_before: T0 + 50_000,
            failures: 0,
            error,
        },
    };
    let mut http = LastError::new("service.unavailable", "down");
    http.status = Some(503);
    ok(
        store
            .settle(
                T0,
                vec![
                    retry(net.seq, LastError::new("network", "Failed to fetch")),
                    retry(server.seq, http),
                    retry(timeout.seq, LastError::new("timeout", "no answer")),
                ],
                &mut |_, _| {},
            )
            .await,
        "settle",
    );
    assert_eq!(ok(store.retry_unreachable_now(T0 + 10).await, "hurry"), 2);
    let due = |e: Option<Entry>| e.map(|e| e.not_before);
    assert_eq!(due(ok(store.get(net.id).await, "get")), Some(T0 + 10));
    assert_eq!(due(ok(store.get(timeout.id).await, "get")), Some(T0 + 10));
    assert_eq!(
        due(ok(store.get(server.id).await, "get")),
        Some(T0 + 50_000),
        "a server's answer keeps its backoff"
    );
    assert_eq!(ok(store.retry_unreachable_now(T0 + 20).await, "hurry"), 0);
}

/// A test entry on `lane`, to `origin`, with a recognisable body.
pub fn sample_entry(rng: &mut SplitMix64, lane: &str, origin: &str, body: &[u8]) -> Entry {
    Entry {
        id: EntryId::random(rng),
        seq: 0,
        lane: lane.to_owned(),
        route: "agent-send".into(),
        origin: origin.to_owned(),
        request: StoredRequest {
            method: "POST".into(),
            url: format!("{origin}/api/v2/conversations/messages/{lane}/communications/c/messages"),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("idempotency-key".into(), "k".into()),
            ],
            body: body.to_vec(),
        },
        idempotency_key: "k".into(),
        needs_token: true,
        created_at: T0,
        attempts: 0,
        failures: 0,
        auth_failures: 0,
        auth_since: None,
        not_before: T0,
        state: EntryState::Pending,
        last_error: None,
    }
}

async fn put<S: Store>(
    store: &S,
    rng: &mut SplitMix64,
    lane: &str,
    origin: &str,
    body: &[u8],
) -> Entry {
    match store
        .enqueue(
            sample_entry(rng, lane, origin, body),
            &QueueLimits::default(),
        )
        .await
    {
        Ok(e) => e,
        Err(e) => panic!("enqueue failed: {e}"),
    }
}

fn ok<T, E: std::fmt::Display>(r: Result<T, E>, what: &str) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what} failed: {e}"),
    }
}

fn terms(now: Millis, until: Millis) -> LeaseTerms {
    LeaseTerms {
        now,
        until,
        steal: false,
        survey: false,
    }
}

/// Claims with a planner that sends every head it is shown but those
/// parked for a token (as if none were in hand), and records them.
async fn claim_all<S: Store>(store: &S, now: Millis) -> (Vec<Head>, Vec<Entry>) {
    let mut seen = Vec::new();
    let claimed = ok(
        store
            .claim(
                terms(now, now + 60_000),
                &mut planning(|_s, heads| {
                    seen = heads.to_vec();
                    let sends = heads
                        .iter()
                        .filter(|h| h.state != EntryState::AwaitingToken)
                        .map(|h| (h.seq, Claim::Send))
                        .collect();
                    (sends, None)
                }),
            )
            .await,
        "claim",
    );
    seen.sort_by_key(|h| h.seq);
    (seen, claimed.sends)
}

/// A planner that sends every head and lets up to `room` entries follow,
/// refusing `refuse`; it records what it was asked to follow, and pauses
/// [`OTHER`] when it accepts one (to show the schedule it wrote is saved).
struct Following {
    room: usize,
    refuse: Option<Seq>,
    asked: Vec<Seq>,
}

impl Planner for Following {
    fn plan(
        &mut self,
        _schedule: &mut ScheduleState,
        heads: &[Head],
    ) -> (Vec<(Seq, Claim)>, Option<Millis>) {
        let mut sends: Vec<(Seq, Claim)> = heads.iter().map(|h| (h.seq, Claim::Send)).collect();
        sends.sort_by_key(|(seq, _)| *seq);
        (sends, None)
    }

    fn follow_room(&self) -> usize {
        self.room
    }

    fn follow(&mut self, schedule: &mut ScheduleState, next: &Head) -> bool {
        self.asked.push(next.seq);
        assert_eq!(
            next.state,
            EntryState::Pending,
            "a follower is read as stored"
        );
        if self.refuse == Some(next.seq) {
            return false;
        }
        self.room -= 1;
        schedule.pause(OTHER, T0 + 999, &PacerConfig::default(), T0);
        true
    }
}

/// A claim leases the entries its planner lets follow the heads it sends:
/// right behind each head, in `seq` order, breadth first (one behind each
/// head per round, so that the room is shared by the lanes), up to the
/// planner's room, a lane stopping at the first it refuses, after the heads
/// in `sends`, with the
/// pacing state the planner wrote saved. An unsent follower settles back
/// to pending with its attempt taken back; a stale one is skipped.
pub async fn followers_lease_behind_their_head<S: Store>(store: S) {
    let mut rng = SplitMix64::new(15);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"1").await;
    let b1 = put(&store, &mut rng, "b", ORIGIN, b"2").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"3").await;
    let a3 = put(&store, &mut rng, "a", ORIGIN, b"4").await;
    let a4 = put(&store, &mut rng, "a", ORIGIN, b"5").await;
    let c1 = put(&store, &mut rng, "c", ORIGIN, b"6").await;
    let c2 = put(&store, &mut rng, "c", ORIGIN, b"7").await;
    let mut planner = Following {
        room: 5,
        refuse: Some(a4.seq),
        asked: Vec::new(),
    };
    let claimed = ok(
        store.claim(terms(T0, T0 + 60_000), &mut planner).await,
        "claim",
    );
    let sent: Vec<Seq> = claimed.sends.iter().map(|e| e.seq).collect();
    assert_eq!(
        sent,
        [a1.seq, b1.seq, c1.seq, a2.seq, c2.seq, a3.seq],
        "heads first; then one follower of each lane per round, in order, up to a refusal"
    );
    assert_eq!(planner.asked, [a2.seq, c2.seq, a3.seq, a4.seq]);
    assert_eq!(planner.room, 2);
    for e in &claimed.sends {
        assert_eq!(e.attempts, 1);
        assert_eq!(
            e.state,
            EntryState::InFlight {
                lease_until: T0 + 60_000
            }
        );
    }
    let a3_sent = &claimed.sends[5];
    assert_eq!(a3_sent.request.body, b"4", "a follower comes with its body");
    let stored = ok(store.get(a2.id).await, "get").expect("a2 is queued");
    assert_eq!(stored.attempts, 1, "a follower's lease is stored");
    let schedule = ok(store.schedule().await, "schedule");
    assert_eq!(
        schedule.paused_until(OTHER, T0),
        Some(T0 + 999),
        "what the planner wrote while following is saved"
    );
    assert_eq!(
        ok(store.get(a4.id).await, "get").map(|e| e.state),
        Some(EntryState::Pending),
        "a refused follower is left as it was"
    );

    // a1 got through, a2 went and failed, a3 never went; c2's settlement is
    // stale (another lease).
    let unsent = |e: &Entry, attempt: u32| Settlement {
        seq: e.seq,
        attempt,
        action: Action::Unsent,
    };
    let applied = ok(
        store
            .settle(
                T0 + 5,
                vec![
                    Settlement {
                        seq: a1.seq,
                        attempt: 1,
                        action: Action::Delivered {
                            status: 200,
                            duplicate: false,
                        },
                    },
                    unsent(&a3, 1),
                    unsent(&c2, 2),
                ],
                &mut |_, _| {},
            )
            .await,
        "settle",
    );
    assert_eq!(
        applied.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [a1.seq, a3.seq]
    );
    let a3_now = ok(store.get(a3.id).await, "get").expect("a3 stays queued");
    assert_eq!(
        (
            a3_now.state,
            a3_now.attempts,
            a3_now.failures,
            a3_now.last_error
        ),
        (EntryState::Pending, 0, 0, None),
        "an unsent follower goes back as it was"
    );
    let c2_now = ok(store.get(c2.id).await, "get").expect("c2 stays queued");
    assert!(matches!(c2_now.state, EntryState::InFlight { .. }));
}

/// A lane's entries usually have consecutive `seq`s, and a store may read
/// and remove such a run at once (IndexedDB: one ranged request): settling
/// one removes exactly the delivered entries and their bodies, and leaves
/// the entries around them (a retried one inside the run of `seq`s, the
/// next lane's, the lane's next) as they were, bodies and all.
pub async fn a_settled_run_leaves_its_neighbours<S: Store>(store: S) {
    let mut rng = SplitMix64::new(17);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let a3 = put(&store, &mut rng, "a", ORIGIN, b"a3").await;
    let a4 = put(&store, &mut rng, "a", ORIGIN, b"a4").await;
    let b1 = put(&store, &mut rng, "b", ORIGIN, b"b1").await;
    let b2 = put(&store, &mut rng, "b", ORIGIN, b"b2").await;
    let a5 = put(&store, &mut rng, "a", ORIGIN, b"a5").await;
    let mut planner = Following {
        room: 10,
        refuse: None,
        asked: Vec::new(),
    };
    let claimed = ok(
        store.claim(terms(T0, T0 + 60_000), &mut planner).await,
        "claim",
    );
    assert_eq!(claimed.sends.len(), 7, "every entry is leased");
    let delivered = |e: &Entry| Settlement {
        seq: e.seq,
        attempt: 1,
        action: Action::Delivered {
            status: 200,
            duplicate: false,
        },
    };
    let err = LastError {
        status: Some(503),
        code: None,
        message: "down".into(),
        context_id: None,
    };
    let applied = ok(
        store
            .settle(
                T0 + 5,
                vec![
                    delivered(&a1),
                    delivered(&b1),
                    delivered(&a2),
                    delivered(&a3),
                    Settlement {
                        seq: a4.seq,
                        attempt: 1,
                        action: Action::Retry {
                            not_before: T0 + 1_000,
                            failures: 1,
                            error: err,
                        },
                    },
                    delivered(&b2),
                    Settlement {
                        seq: a5.seq,
                        attempt: 1,
                        action: Action::Unsent,
                    },
                ],
                &mut |_, _| {},
            )
            .await,
        "settle",
    );
    assert_eq!(applied.len(), 7, "every settlement applies");
    for gone in [&a1, &a2, &a3, &b1, &b2] {
        assert_eq!(
            ok(store.get(gone.id).await, "get"),
            None,
            "delivered entry {} is removed",
            gone.seq
        );
    }
    let a4_now = ok(store.get(a4.id).await, "get").expect("a4 stays queued");
    assert_eq!(
        (
            a4_now.state,
            a4_now.failures,
            a4_now.request.body.as_slice()
        ),
        (EntryState::Pending, 1, b"a4".as_slice()),
        "the retried entry inside the run stays, with its body"
    );
    let a5_now = ok(store.get(a5.id).await, "get").expect("a5 stays queued");
    assert_eq!(
        (
            a5_now.state,
            a5_now.attempts,
            a5_now.request.body.as_slice()
        ),
        (EntryState::Pending, 0, b"a5".as_slice()),
        "the unsent entry stays as it was, with its body"
    );
    let queued: Vec<Seq> = ok(store.queued(10).await, "queued")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        queued,
        [a4.seq, a5.seq],
        "only the two kept entries are queued"
    );
    let (heads, _) = claim_all(&store, T0 + 2_000).await;
    assert_eq!(
        heads.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [a4.seq],
        "lane a's head is its retried entry; lane b is empty"
    );
}

/// Enqueue assigns increasing `seq`, keeps every byte, and `get`/`lane_busy` see it.
pub async fn enqueue_round_trips_and_orders<S: Store>(store: S) {
    let mut rng = SplitMix64::new(1);
    let weird_body = [0u8, 159, 146, 150, 255, b'{', b'"'];
    let a = put(&store, &mut rng, "c1", ORIGIN, &weird_body).await;
    let b = put(&store, &mut rng, "c2", ORIGIN, b"").await;
    let c = put(&store, &mut rng, "c1", OTHER, "héllo ✓".as_bytes()).await;
    assert!(
        a.seq < b.seq && b.seq < c.seq,
        "seq must increase: {} {} {}",
        a.seq,
        b.seq,
        c.seq
    );
    let got = ok(store.get(a.id).await, "get").expect("entry a is stored");
    assert_eq!(got, a, "an entry must round-trip unchanged");
    assert_eq!(got.request.body, weird_body);
    let got = ok(store.get(c.id).await, "get").expect("entry c is stored");
    assert_eq!(got.request.body, "héllo ✓".as_bytes());
    assert!(ok(store.lane_busy("c1").await, "lane_busy"));
    assert!(ok(store.lane_busy("c2").await, "lane_busy"));
    assert!(!ok(store.lane_busy("c3").await, "lane_busy"));
    let pacer = PacerConfig::default();
    ok(
        store
            .update_schedule(&mut |s| s.pause(ORIGIN, T0 + 5, &pacer, T0))
            .await,
        "update_schedule",
    );
    let schedule = ok(store.schedule().await, "schedule");
    assert_eq!(schedule.paused_until(ORIGIN, T0), Some(T0 + 5));
    for (lane, busy) in [("c1", true), ("c3", false)] {
        assert_eq!(
            ok(store.lane_and_schedule(lane).await, "lane_and_schedule"),
            (busy, schedule.clone()),
            "one read sees what the two do"
        );
    }
    let missing = EntryId::random(&mut rng);
    assert_eq!(ok(store.get(missing).await, "get"), None);
}

/// Full, too large and duplicate ids are refused and nothing is kept.
pub async fn limits_refuse_without_keeping<S: Store>(store: S) {
    let mut rng = SplitMix64::new(2);
    let limits = QueueLimits {
        max_entries: 2,
        max_entry_bytes: 1_000,
    };
    let first = ok(
        store
            .enqueue(sample_entry(&mut rng, "a", ORIGIN, b"1"), &limits)
            .await,
        "enqueue",
    );
    let big = sample_entry(&mut rng, "a", ORIGIN, &[b'x'; 2_000]);
    assert!(matches!(
        store.enqueue(big, &limits).await,
        Err(EnqueueError::TooLarge { max: 1_000, .. })
    ));
    let mut dup = sample_entry(&mut rng, "b", ORIGIN, b"2");
    dup.id = first.id;
    assert!(matches!(
        store.enqueue(dup, &limits).await,
        Err(EnqueueError::Duplicate(_))
    ));
    ok(
        store
            .enqueue(sample_entry(&mut rng, "a", ORIGIN, b"2"), &limits)
            .await,
        "enqueue",
    );
    let third = sample_entry(&mut rng, "c", ORIGIN, b"3");
    let third_id = third.id;
    assert!(matches!(
        store.enqueue(third, &limits).await,
        Err(EnqueueError::Full { max_entries: 2 })
    ));
    assert_eq!(
        ok(store.get(third_id).await, "get"),
        None,
        "a refused entry must not be kept"
    );
    assert!(!ok(store.lane_busy("c").await, "lane_busy"));
    let stats = ok(store.stats(T0).await, "stats");
    assert_eq!(stats.queued(), 2, "nothing dropped, nothing extra");
}

/// The planner is shown exactly one head per lane: the lane's oldest entry.
pub async fn claim_sees_one_head_per_lane<S: Store>(store: S) {
    let mut rng = SplitMix64::new(3);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let b1 = put(&store, &mut rng, "b", ORIGIN, b"b1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let c1 = put(&store, &mut rng, "c", OTHER, b"c1").await;
    let (heads, sends) = claim_all(&store, T0).await;
    let seqs: Vec<_> = heads.iter().map(|h| h.seq).collect();
    assert_eq!(
        seqs,
        vec![a1.seq, b1.seq, c1.seq],
        "one head per lane, the oldest"
    );
    assert_eq!(heads[2].origin, OTHER);
    assert_eq!(sends.len(), 3);
    // In flight heads still block their lanes.
    let (heads, sends) = claim_all(&store, T0 + 1).await;
    assert_eq!(
        heads.iter().map(|h| h.seq).collect::<Vec<_>>(),
        vec![a1.seq, b1.seq, c1.seq]
    );
    assert!(
        sends.is_empty(),
        "leased entries must not be sent again before the lease ends"
    );
    let _ = a2;
}

/// Send leases (counting the attempt), AwaitToken parks, Expire buries;
/// the schedule the planner changed is saved; unready entries are not leased.
pub async fn claim_applies_each_decision<S: Store>(store: S) {
    let mut rng = SplitMix64::new(4);
    let a = put(&store, &mut rng, "a", ORIGIN, b"a").await;
    let b = put(&store, &mut rng, "b", ORIGIN, b"b").await;
    let c = put(&store, &mut rng, "c", ORIGIN, b"c").await;
    let mut late = sample_entry(&mut rng, "d", ORIGIN, b"d");
    late.not_before = T0 + 10_000;
    let d = ok(
        store.enqueue(late, &QueueLimits::default()).await,
        "enqueue",
    );
    let error = LastError::new("max-age", "too old");
    let pacer = PacerConfig::default();
    let claimed = ok(
        store
            .claim(
                terms(T0, T0 + 5_000),
                &mut planning(|schedule, _| {
                    schedule.pause(ORIGIN, T0 + 777, &pacer, T0);
                    (
                        vec![
                            (a.seq, Claim::Send),
                            (b.seq, Claim::AwaitToken),
                            (c.seq, Claim::Expire(error.clone())),
                            (d.seq, Claim::Send),
                        ],
                        Some(T0 + 10_000),
                    )
                }),
            )
            .await,
        "claim",
    );
    assert_eq!(claimed.next_wake, Some(T0 + 10_000));
    assert_eq!(
        claimed.sends.len(),
        1,
        "an entry that is not due must not be leased"
    );
    assert_eq!(claimed.sends[0].id, a.id);
    assert_eq!(claimed.sends[0].attempts, 1);
    assert_eq!(
        claimed.sends[0].state,
        EntryState::InFlight {
            lease_until: T0 + 5_000
        }
    );
    assert_eq!(
        claimed
            .awaiting_token
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(
        claimed.expired.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![c.id]
    );
    let stored_a = ok(store.get(a.id).await, "get").expect("a");
    assert_eq!(
        stored_a.state,
        EntryState::InFlight {
            lease_until: T0 + 5_000
        }
    );
    assert_eq!(stored_a.attempts, 1);
    assert_eq!(
        ok(store.get(b.id).await, "get").expect("b").state,
        EntryState::AwaitingToken
    );
    let dead = ok(store.get(c.id).await, "get").expect("an expired entry stays as a dead letter");
    assert!(matches!(dead.state, EntryState::Dead { .. }));
    assert_eq!(dead.last_error, Some(error));
    assert!(
        !ok(store.lane_busy("c").await, "lane_busy"),
        "a dead letter leaves its lane"
    );
    assert_eq!(
        ok(store.get(d.id).await, "get").expect("d").state,
        EntryState::Pending
    );
    let schedule = ok(store.schedule().await, "schedule");
    assert_eq!(
        schedule.paused_until(ORIGIN, T0),
        Some(T0 + 777),
        "the planner's schedule must be saved"
    );
}

/// Settlements apply when they match the lease; stale ones are skipped.
pub async fn settle_applies_and_skips_stale<S: Store>(store: S) {
    let mut rng = SplitMix64::new(5);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let b = put(&store, &mut rng, "b", ORIGIN, b"b").await;
    let c = put(&store, &mut rng, "c", ORIGIN, b"c").await;
    let d = put(&store, &mut rng, "d", ORIGIN, b"d").await;
    let (_, sends) = claim_all(&store, T0).await;
    assert_eq!(sends.len(), 4);
    let err = LastError {
        status: Some(503),
        code: Some("service.unavailable".into()),
        message: "down".into(),
        context_id: Some("ctx".into()),
    };
    let settlements = vec![
        Settlement {
            seq: a1.seq,
            attempt: 1,
            action: Action::Delivered {
                status: 200,
                duplicate: false,
            },
        },
        Settlement {
            seq: b.seq,
            attempt: 1,
            action: Action::Retry {
                not_before: T0 + 3_000,
                failures: 1,
                error: err.clone(),
            },
        },
        Settlement {
            seq: c.seq,
            attempt: 1,
            action: Action::AwaitToken {
                auth_failures: 1,
                since: T0 + 100,
                not_before: T0 + 1_100,
                error: err.clone(),
            },
        },
        Settlement {
            seq: d.seq,
            attempt: 1,
            action: Action::Dead { error: err.clone() },
        },
        // Stale: wrong attempt number.
        Settlement {
            seq: b.seq,
            attempt: 7,
            action: Action::Delivered {
                status: 200,
                duplicate: false,
            },
        },
        // Stale: not in flight.
        Settlement {
            seq: a2.seq,
            attempt: 0,
            action: Action::Delivered {
                status: 200,
                duplicate: false,
            },
        },
    ];
    let pacer = PacerConfig::default();
    let applied = ok(
        store
            .settle(
                T0 + 100,
                settlements,
                &mut |s: &mut ScheduleState, _: &[Settlement]| s.pause(OTHER, T0 + 999, &pacer, T0),
            )
            .await,
        "settle",
    );
    assert_eq!(
        applied.len(),
        4,
        "exactly the four current settlements apply"
    );
    assert_eq!(
        ok(store.get(a1.id).await, "get"),
        None,
        "delivered entries are removed"
    );
    let (heads, _) = claim_all(&store, T0 + 200).await;
    assert!(
        heads.iter().any(|h| h.seq == a2.seq),
        "the next entry becomes its lane's head"
    );
    let rb = ok(store.get(b.id).await, "get").expect("b");
    assert_eq!(
        (rb.state, rb.not_before, rb.failures),
        (EntryState::Pending, T0 + 3_000, 1)
    );
    assert_eq!(rb.last_error.as_ref(), Some(&err));
    let rc = ok(store.get(c.id).await, "get").expect("c");
    assert_eq!((rc.state, rc.auth_failures), (EntryState::AwaitingToken, 1));
    let rd = ok(store.get(d.id).await, "get").expect("d");
    assert_eq!(rd.state, EntryState::Dead { at: T0 + 100 });
    assert_eq!(rd.last_error, Some(err));
    let dead = ok(store.dead_letters(10).await, "dead_letters");
    assert_eq!(dead.iter().map(|e| e.id).collect::<Vec<_>>(), vec![d.id]);
    assert_eq!(
        ok(store.schedule().await, "schedule").paused_until(OTHER, T0),
        Some(T0 + 999)
    );
}

/// Settling one cycle's answers and claiming the next is one step: the
/// claim sees the lane heads the settlements left (a delivered head's
/// successor), the pacing state the settle wrote, and leases by its terms;
/// a stale settlement is skipped as by [`Store::settle`].
pub async fn settle_and_claim_is_one_step<S: Store>(store: S) {
    let mut rng = SplitMix64::new(14);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let b1 = put(&store, &mut rng, "b", ORIGIN, b"b1").await;
    let (_, sends) = claim_all(&store, T0).await;
    assert_eq!(sends.len(), 2);
    let err = LastError::new("service.unavailable", "down");
    let settlements = vec![
        Settlement {
            seq: a1.seq,
            attempt: 1,
            action: Action::Delivered {
                status: 200,
                duplicate: false,
            },
        },
        Settlement {
            seq: b1.seq,
            attempt: 1,
            action: Action::Retry {
                not_before: T0 + 5_000,
                failures: 1,
                error: err.clone(),
            },
        },
        // Stale: a2 was never sent.
        Settlement {
            seq: a2.seq,
            attempt: 3,
            action: Action::Dead { error: err.clone() },
        },
    ];
    let pacer = PacerConfig::default();
    let mut settled = Vec::new();
    let mut seen = Vec::new();
    let mut saw_pause = None;
    let (applied, claimed) = ok(
        store
            .settle_and_claim(
                settlements,
                &mut |s: &mut ScheduleState, applied: &[Settlement]| {
                    settled = applied.iter().map(|s| s.seq).collect();
                    s.pause(OTHER, T0 + 999, &pacer, T0);
                },
                terms(T0 + 100, T0 + 60_100),
                &mut planning(|s, heads| {
                    seen = heads.to_vec();
                    saw_pause = s.paused_until(OTHER, T0 + 100);
                    (heads.iter().map(|h| (h.seq, Claim::Send)).collect(), None)
                }),
            )
            .await,
        "settle_and_claim",
    );
    assert_eq!(
        applied.iter().map(|s| s.seq).collect::<Vec<_>>(),
        [a1.seq, b1.seq]
    );
    assert_eq!(settled, [a1.seq, b1.seq], "the schedule saw what applied");
    assert_eq!(
        saw_pause,
        Some(T0 + 999),
        "the planner saw the settle's schedule"
    );
    seen.sort_by_key(|h| h.seq);
    assert_eq!(
        seen.iter().map(|h| h.seq).collect::<Vec<_>>(),
        [a2.seq, b1.seq],
        "a delivered head's successor is its lane's head in the same step"
    );
    let b_head = seen.iter().find(|h| h.seq == b1.seq).expect("b1");
    assert_eq!(
        (b_head.state, b_head.not_before),
        (EntryState::Pending, T0 + 5_000)
    );
    assert_eq!(
        claimed.sends.iter().map(|e| e.id).collect::<Vec<_>>(),
        [a2.id],
        "only what the terms allow is leased (b1 is not due)"
    );
    assert_eq!(claimed.sends[0].request.body, b"a2");
    assert_eq!(ok(store.get(a1.id).await, "get"), None, "a1 delivered");
    let leased = ok(store.get(a2.id).await, "get").expect("a2");
    assert_eq!(
        leased.state,
        EntryState::InFlight {
            lease_until: T0 + 60_100
        }
    );
    assert_eq!(
        ok(store.schedule().await, "schedule").paused_until(OTHER, T0 + 100),
        Some(T0 + 999)
    );
}

/// A head whose lease ran out is claimable again, and that counts a failure.
pub async fn expired_lease_counts_a_failure<S: Store>(store: S) {
    let mut rng = SplitMix64::new(6);
    let a = put(&store, &mut rng, "a", ORIGIN, b"a").await;
    let (_, sends) = claim_all(&store, T0).await;
    assert_eq!(sends.len(), 1);
    let (_, sends) = claim_all(&store, T0 + 59_999).await;
    assert!(sends.is_empty(), "not before the lease ends");
    let (heads, sends) = claim_all(&store, T0 + 60_000).await;
    assert_eq!(
        heads[0].state,
        EntryState::InFlight {
            lease_until: T0 + 60_000
        }
    );
    assert_eq!(sends.len(), 1);
    assert_eq!(
        (sends[0].id, sends[0].attempts, sends[0].failures),
        (a.id, 2, 1)
    );
    assert!(
        sends[0].last_attempt_unanswered(),
        "the first attempt's outcome is unknown"
    );
    assert_eq!(
        sends[0].last_error.as_ref().and_then(|e| e.code.as_deref()),
        Some(outbox_core::entry::LEASE_EXPIRED)
    );
    // A settlement for the first lease is now stale.
    let applied = ok(
        store
            .settle(
                T0 + 60_001,
                vec![Settlement {
                    seq: a.seq,
                    attempt: 1,
                    action: Action::Delivered {
                        status: 200,
                        duplicate: false,
                    },
                }],
                &mut |_, _| {},
            )
            .await,
        "settle",
    );
    assert!(applied.is_empty());
    assert!(ok(store.get(a.id).await, "get").is_some());
    // A flusher holding the origin-wide lock takes over a standing lease at once.
    let stolen = ok(
        store
            .claim(
                LeaseTerms {
                    now: T0 + 60_001,
                    until: T0 + 200_000,
                    steal: true,
                    survey: false,
                },
                &mut planning(|_, heads| {
                    (heads.iter().map(|h| (h.seq, Claim::Send)).collect(), None)
                }),
            )
            .await,
        "claim",
    );
    assert_eq!(
        stolen.sends.len(),
        1,
        "an unexpired lease is taken over when stealing"
    );
    assert_eq!((stolen.sends[0].attempts, stolen.sends[0].failures), (3, 2));
    assert_eq!(
        stolen.sends[0].state,
        EntryState::InFlight {
            lease_until: T0 + 200_000
        }
    );
}

/// The rules that look at every entry of a state, or of the queue (a
/// token's release, the hurry, stats), read it a page at a time: with
/// pages of two the store answers each page from where the last one
/// stopped, and the results are those of one look at the whole queue.
pub async fn long_queues_are_read_a_page_at_a_time<S: Store>(store: S) {
    use outbox_core::queue::{Hurry, NoHooks, Release, Tally};
    let mut rng = SplitMix64::new(16);
    let mut entries = Vec::new();
    for i in 0..9 {
        let origin = if i % 2 == 0 { ORIGIN } else { OTHER };
        let lane = format!("l{i}");
        entries.push(put(&store, &mut rng, &lane, origin, b"x").await);
    }
    // Every head of ORIGIN parked for a token, every head of OTHER sent.
    let claimed = ok(
        store
            .claim(
                terms(T0, T0 + 60_000),
                &mut planning(|_, heads| {
                    let claims = heads
                        .iter()
                        .map(|h| {
                            let claim = if h.origin == ORIGIN {
                                Claim::AwaitToken
                            } else {
                                Claim::Send
                            };
                            (h.seq, claim)
                        })
                        .collect();
                    (claims, None)
                }),
            )
            .await,
        "claim",
    );
    assert_eq!((claimed.awaiting_token.len(), claimed.sends.len()), (5, 4));
    // Three got no answer, one a 503: only the three are hurried.
    let settlements = claimed
        .sends
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut error = LastError::new("network", "Failed to fetch");
            if i == 0 {
                error = LastError::new("service.unavailable", "down");
                error.status = Some(503);
            }
            Settlement {
                seq: e.seq,
                attempt: 1,
                action: Action::Retry {
                    not_before: T0 + 50_000,
                    failures: 0,
                    error,
                },
            }
        })
        .collect();
    ok(
        store.settle(T0, settlements, &mut |_, _| {}).await,
        "settle",
    );
    let before = ok(store.stats(T0 + 1).await, "stats");
    let mut tally = Tally::in_pages(T0 + 1, 2);
    ok(store.run(&mut tally, &mut NoHooks).await, "paged stats");
    assert_eq!(tally.finish(), before, "stats read in pages of two");
    let mut release = Release::in_pages(ORIGIN, 2);
    ok(store.run(&mut release, &mut NoHooks).await, "release");
    let released: Vec<Seq> = release.finish().iter().map(|h| h.seq).collect();
    let parked: Vec<Seq> = entries
        .iter()
        .filter(|e| e.origin == ORIGIN)
        .map(|e| e.seq)
        .collect();
    assert_eq!(
        released, parked,
        "every parked entry of the origin, in order"
    );
    let mut hurry = Hurry::in_pages(T0 + 10, 2);
    ok(store.run(&mut hurry, &mut NoHooks).await, "hurry");
    assert_eq!(hurry.finish(), 3);
    let after = ok(store.stats(T0 + 10).await, "stats");
    assert_eq!(
        (
            after.pending,
            after.awaiting_token,
            after.in_flight,
            after.lanes
        ),
        (9, 0, 0, 9)
    );
}

/// Releasing tokens wakes only the origin's parked entries.
pub async fn release_is_per_origin<S: Store>(store: S) {
    let mut rng = SplitMix64::new(7);
    let a = put(&store, &mut rng, "a", ORIGIN, b"a").await;
    let b = put(&store, &mut rng, "b", OTHER, b"b").await;
    ok(
        store
            .claim(
                terms(T0, T0 + 1),
                &mut planning(|_, heads| {
                    (
                        heads.iter().map(|h| (h.seq, Claim::AwaitToken)).collect(),
                        None,
                    )
                }),
            )
            .await,
        "claim",
    );
    let released = ok(store.release_awaiting_token(ORIGIN).await, "release");
    let released: Vec<_> = released
        .iter()
        .map(|h| (h.id, h.lane.as_str(), h.state))
        .collect();
    assert_eq!(released, vec![(a.id, "a", EntryState::Pending)]);
    assert_eq!(
        ok(store.get(a.id).await, "get").expect("a").state,
        EntryState::Pending
    );
    assert_eq!(
        ok(store.get(b.id).await, "get").expect("b").state,
        EntryState::AwaitingToken
    );
    assert!(ok(store.release_awaiting_token(ORIGIN).await, "release").is_empty());
    // Once a token is in hand the planner sends a parked head; the store
    // leases it as it stands.
    let claimed = ok(
        store
            .claim(
                terms(T0 + 7, T0 + 60_000),
                &mut planning(|_, _| (vec![(b.seq, Claim::Send)], None)),
            )
            .await,
        "claim",
    );
    assert_eq!(
        claimed.sends.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![b.id]
    );
    assert_eq!(
        claimed.sends[0].state,
        EntryState::InFlight {
            lease_until: T0 + 60_000
        }
    );
}

/// Dead letters can be revived (back at their place) or discarded; queued
/// entries can be cancelled unless in flight.
pub async fn revive_discard_cancel<S: Store>(store: S) {
    let mut rng = SplitMix64::new(8);
    let a1 = put(&store, &mut rng, "a", ORIGIN, b"a1").await;
    let a2 = put(&store, &mut rng, "a", ORIGIN, b"a2").await;
    let b = put(&store, &mut rng, "b", ORIGIN, b"b").await;
    let c = put(&store, &mut rng, "c", ORIGIN, b"c").await;
    let err = LastError::new("x", "y");
    ok(
        store
            .claim(
                terms(T0, T0 + 60_000),
                &mut planning(|_, _| {
                    (
                        vec![
                            (a1.seq, Claim::Expire(err.clone())),
                            (b.seq, Claim::Expire(err.clone())),
                            (c.seq, Claim::Send),
                        ],
                        None,
                    )
                }),
            )
            .await,
        "claim",
    );
    // a2 is now the head of lane a; reviving a1 puts it back in front.
    let revived = ok(store.revive(a1.id, T0 + 10).await, "revive").expect("a1 is a dead letter");
    assert_eq!(
        (revived.seq, revived.state, revived.attempts),
        (a1.seq, EntryState::Pending, 0)
    );
    let (heads, _) = claim_all(&store, T0 + 10).await;
    assert!(heads.iter().any(|h| h.seq == a1.seq) && !heads.iter().any(|h| h.seq == a2.seq));
    assert_eq!(
        ok(store.revive(a1.id, T0 + 11).await, "revive"),
        None,
        "only dead letters revive"
    );
    let discarded = ok(store.discard(b.id).await, "discard").expect("b is a dead letter");
    assert_eq!(discarded.id, b.id);
    assert_eq!(ok(store.get(b.id).await, "get"), None);
    assert_eq!(ok(store.discard(b.id).await, "discard"), None);
    // c is in flight (claimed above, and a1's claim_all re-leased only heads that were due).
    assert_eq!(
        ok(store.cancel(c.id).await, "cancel"),
        CancelResult::InFlight
    );
    assert_eq!(
        ok(store.cancel(a2.id).await, "cancel"),
        CancelResult::Cancelled
    );
    assert_eq!(ok(store.get(a2.id).await, "get"), None);
    assert_eq!(
        ok(store.cancel(a2.id).await, "cancel"),
        CancelResult::NotFound
    );
}

/// Purge removes the queue, dead letters and pacing; `seq` keeps increasing.
pub async fn purge_clears_everything<S: Store>(store: S) {
    let mut rng = SplitMix64::new(9);
    let a = put(&store, &mut rng, "a", ORIGIN, b"a").await;
    put(&store, &mut rng, "b", ORIGIN, b"b").await;
    let pacer = PacerConfig::default();
    ok(
        store
            .claim(
                terms(T0, T0 + 1),
                &mut planning(|s, _| {
                    s.pause(ORIGIN, T0 + 50, &pacer, T0);
                    (vec![(a.seq, Claim::Expire(LastError::new("x", "y")))], None)
                }),
            )
            .await,
        "claim",
    );
    let purged = ok(store.purge().await, "purge");
    assert_eq!((purged.queued, purged.dead), (1, 1));
    let stats = ok(store.stats(T0).await, "stats");
    assert_eq!((stats.queued(), stats.dead, stats.lanes), (0, 0, 0));
    assert!(stats.paused.is_empty());
    assert_eq!(
        ok(store.schedule().await, "schedule"),
        ScheduleState::default()
    );
    let after = put(&store, &mut rng, "a", ORIGIN, b"again").await;
    assert!(after.seq > a.seq, "seq is never reused");
}

/// Stats count each state; listings come in `seq` order and honour limits.
pub async fn stats_and_listings<S: Store>(store: S) {
    let mut rng = SplitMix64::new(10);
    let mut late = sample_entry(&mut rng, "a", ORIGIN, b"12345");
    late.created_at = T0 - 5_000;
    let a = ok(
        store.enqueue(late, &QueueLimits::default()).await,
        "enqueue",
    );
    let b = put(&store, &mut rng, "b", ORIGIN, b"b").await;
    let c = put(&store, &mut rng, "c", ORIGIN, b"c").await;
    let d = put(&store, &mut rng, "c", ORIGIN, b"d").await;
    let pacer = PacerConfig::default();
    ok(
        store
            .claim(
                terms(T0, T0 + 60_000),
                &mut planning(|s, _| {
                    s.pause(OTHER, T0 + 30, &pacer, T0);
                    (
                        vec![
                            (a.seq, Claim::Send),
                            (b.seq, Claim::AwaitToken),
                            (c.seq, Claim::Expire(LastError::new("x", "y"))),
                        ],
                        None,
                    )
                }),
            )
            .await,
        "claim",
    );
    let stats = ok(store.stats(T0).await, "stats");
    assert_eq!(
        (
            stats.pending,
            stats.in_flight,
            stats.awaiting_token,
            stats.dead
        ),
        (1, 1, 1, 1)
    );
    assert_eq!(stats.lanes, 3);
    assert_eq!(stats.oldest_created_at, Some(T0 - 5_000));
    assert_eq!(stats.paused, vec![(OTHER.to_owned(), T0 + 30)]);
    let expected_bytes: usize = [&a, &b, &d].iter().map(|e| e.request.size_bytes()).sum();
    assert_eq!(stats.bytes, expected_bytes);
    let later = ok(store.stats(T0 + 60_000).await, "stats");
    assert_eq!(
        (later.pending, later.in_flight),
        (2, 0),
        "a lease that ran out is in flight no longer: its sender stopped"
    );
    let queued = ok(store.queued(10).await, "queued");
    assert_eq!(
        queued.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![a.id, b.id, d.id]
    );
    assert_eq!(ok(store.queued(2).await, "queued").len(), 2);
    assert_eq!(
        ok(store.dead_letters(10).await, "dead")
            .iter()
            .map(|e| e.id)
            .collect::<Vec<_>>(),
        vec![c.id]
    );
    assert_eq!(ok(store.stats(T0 + 30).await, "stats").paused, vec![]);
}
