//! What the SQLite store adds to the contract: one writer per file, a
//! schema brought up to date from every earlier version, entries that
//! survive a reopen, concurrent enqueues grouped into shared commits, and
//! poison rows made dead letters instead of wedging a lane.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::clock::SplitMix64;
use outbox_core::entry::EntryState;
use outbox_core::queue::{LeaseTerms, QueueLimits, planning};
use outbox_core::scheduler::Claim;
use outbox_driver::conformance::sample_entry;
use outbox_driver::store::Store;
use outbox_sqlite::{OpenError, SqliteStore, schema};

const T0: u64 = 1_700_000_000_000;
const ORIGIN: &str = "https://api.mypurecloud.ie";

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}

#[test]
fn a_second_opener_of_the_same_file_is_refused_with_the_holders_pid() {
    let dir = dir();
    let path = dir.path().join("outbox.db");
    let first = SqliteStore::open(&path).expect("first open");
    match SqliteStore::open(&path) {
        Err(OpenError::InUse { path: p, pid }) => {
            assert_eq!(p, path);
            assert_eq!(pid, Some(std::process::id()));
        }
        other => panic!("a second writer must be refused, got {other:?}"),
    }
    let message = SqliteStore::open(&path)
        .expect_err("still refused")
        .to_string();
    assert!(message.contains("in use by another process"), "{message}");
    drop(first);
    SqliteStore::open(&path).expect("free again once the first is closed");
}

#[tokio::test]
async fn entries_survive_closing_and_reopening_the_file() {
    let dir = dir();
    let path = dir.path().join("outbox.db");
    let mut rng = SplitMix64::new(3);
    let stored = {
        let store = SqliteStore::open(&path).unwrap();
        let e = sample_entry(&mut rng, "lane-a", ORIGIN, b"{\"text\":\"hello\"}");
        store.enqueue(e, &QueueLimits::default()).await.unwrap()
    };
    let store = SqliteStore::open(&path).unwrap();
    let back = store.get(stored.id).await.unwrap().expect("kept");
    assert_eq!(back, stored, "every field and the body round-trip");
    let next = sample_entry(&mut rng, "lane-a", ORIGIN, b"x");
    let next = store.enqueue(next, &QueueLimits::default()).await.unwrap();
    assert_eq!(next.seq, stored.seq + 1, "seq goes on from the file");
}

#[tokio::test]
async fn concurrent_enqueues_all_land_in_order_of_their_seq() {
    let dir = dir();
    let store = SqliteStore::open(dir.path().join("outbox.db")).unwrap();
    let mut rng = SplitMix64::new(4);
    let entries: Vec<_> = (0..200)
        .map(|i| {
            sample_entry(
                &mut rng,
                &format!("lane-{}", i % 7),
                ORIGIN,
                format!("m{i}").as_bytes(),
            )
        })
        .collect();
    let limits = QueueLimits::default();
    let results = futures_join(entries.into_iter().map(|e| {
        let store = &store;
        async move { store.enqueue(e, &limits).await }
    }))
    .await;
    let mut seqs: Vec<u64> = results.into_iter().map(|r| r.unwrap().seq).collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        (1..=200).collect::<Vec<u64>>(),
        "one seq each, none lost"
    );
    // All 200 were asked for before the first was answered: they share
    // commits (one each would be 200 syncs).
    let counters = store.counters();
    assert_eq!(counters.transactions, 200);
    assert!(counters.commits <= 2, "grouped: {counters:?}");
    let stats = store.stats(T0).await.unwrap();
    assert_eq!((stats.pending, stats.lanes), (200, 7));
}

async fn futures_join<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    outbox_driver::join::join_all(futures).await
}

#[test]
fn a_file_from_newer_code_is_refused_and_left_untouched() {
    let dir = dir();
    let path = dir.path().join("outbox.db");
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.pragma_update(None, "user_version", schema::CURRENT + 1)
            .unwrap();
    }
    let error = SqliteStore::open(&path)
        .expect_err("newer schema")
        .to_string();
    assert!(error.contains("newer than this build"), "{error}");
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(schema::version(&conn).unwrap(), schema::CURRENT + 1);
}

#[tokio::test]
async fn every_earlier_version_is_brought_up_to_date_with_its_entries() {
    for from in 0..schema::CURRENT {
        let dir = dir();
        let path = dir.path().join("outbox.db");
        let mut rng = SplitMix64::new(u64::from(from));
        let mut kept = Vec::new();
        {
            // A file as the code of version `from` left it (version 0: a
            // file that never held an outbox).
            let store = SqliteStore::open_at(&path, from).unwrap();
            if from >= 1 {
                // Version 1 wrote entries with the same statements the
                // current code uses for its version-1 tables; the version-2
                // lane list and count it did not have are dropped again.
                drop(store);
                let store = SqliteStore::open_at(&path, schema::CURRENT).unwrap();
                for i in 0..5 {
                    let e = sample_entry(&mut rng, &format!("l{}", i % 2), ORIGIN, b"b");
                    kept.push(store.enqueue(e, &QueueLimits::default()).await.unwrap());
                }
                drop(store);
                let conn = rusqlite::Connection::open(&path).unwrap();
                conn.execute_batch(
                    "DROP TABLE lanes; DELETE FROM meta WHERE key = 'queued'; PRAGMA user_version = 1;",
                )
                .unwrap();
            }
        }
        let store = SqliteStore::open(&path).unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        assert_eq!(
            schema::version(&conn).unwrap(),
            schema::CURRENT,
            "from {from}"
        );
        let stats = store.stats(T0).await.unwrap();
        assert_eq!(stats.pending, kept.len(), "from {from}: every entry kept");
        assert_eq!(
            stats.lanes,
            if kept.is_empty() { 0 } else { 2 },
            "from {from}"
        );
        // The lane list and the count the migration built are what a claim
        // and an enqueue read: two heads, and the limit counts five.
        let claimed = store
            .claim(
                LeaseTerms {
                    now: T0,
                    until: T0 + 60_000,
                    steal: false,
                    survey: false,
                },
                &mut planning(|_, heads| {
                    (heads.iter().map(|h| (h.seq, Claim::Send)).collect(), None)
                }),
            )
            .await
            .unwrap();
        assert_eq!(claimed.sends.len(), kept.len().min(2), "from {from}");
        let tight = QueueLimits {
            max_entries: kept.len().max(1),
            ..QueueLimits::default()
        };
        let refused = store
            .enqueue(sample_entry(&mut rng, "l9", ORIGIN, b"b"), &tight)
            .await;
        assert_eq!(
            refused.is_err(),
            !kept.is_empty(),
            "from {from}: the count was rebuilt"
        );
    }
}

#[tokio::test]
async fn a_row_that_does_not_read_back_becomes_a_corrupt_dead_letter() {
    let dir = dir();
    let path = dir.path().join("outbox.db");
    let mut rng = SplitMix64::new(5);
    let store = SqliteStore::open(&path).unwrap();
    let bad = store
        .enqueue(
            sample_entry(&mut rng, "lane", ORIGIN, b"1"),
            &QueueLimits::default(),
        )
        .await
        .unwrap();
    let good = store
        .enqueue(
            sample_entry(&mut rng, "other", ORIGIN, b"2"),
            &QueueLimits::default(),
        )
        .await
        .unwrap();
    drop(store);
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE queue SET state = 'sideways' WHERE seq = ?1",
            [bad.seq as i64],
        )
        .unwrap();
    let store = SqliteStore::open(&path).unwrap();
    let mut seen = Vec::new();
    let claimed = store
        .claim(
            LeaseTerms {
                now: T0,
                until: T0 + 60_000,
                steal: false,
                survey: true,
            },
            &mut planning(|_, heads| {
                seen = heads.iter().map(|h| (h.seq, h.corrupt)).collect();
                seen.sort_unstable();
                // What the scheduler does with a corrupt head: bury it.
                let claims = heads
                    .iter()
                    .map(|h| {
                        let claim = if h.corrupt {
                            Claim::Expire(outbox_core::classify::LastError::new(
                                "corrupt",
                                "unreadable",
                            ))
                        } else {
                            Claim::Send
                        };
                        (h.seq, claim)
                    })
                    .collect();
                (claims, None)
            }),
        )
        .await
        .unwrap();
    assert_eq!(seen, vec![(bad.seq, true), (good.seq, false)]);
    assert_eq!(claimed.sends.len(), 1);
    let dead = store.dead_letters(10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, bad.id, "what could be read is kept");
    assert!(matches!(dead[0].state, EntryState::Dead { .. }));
}
