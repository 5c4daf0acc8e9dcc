//! A PostgreSQL store on a schema of its own, in the test database
//! (`OUTBOX_TEST_DATABASE_URL`, else a throw-away cluster of this test
//! process: `pg_throwaway::shared_url`).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU64, Ordering};

use outbox_postgres::{PgOptions, PostgresStore};

/// The test database's URL; panics with how to get one.
pub fn url() -> String {
    pg_throwaway::shared_url().unwrap_or_else(|e| panic!("no test database: {e}"))
}

/// A fresh schema name for `case` (unique in this process and across runs).
pub fn schema(case: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "t_{}_{}_{}",
        &case[..case.len().min(30)],
        nanos % 1_000_000_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Options for a fresh schema.
pub fn options(case: &str) -> PgOptions {
    PgOptions {
        schema: schema(case),
        max_connections: 4,
        ..PgOptions::new(&url())
    }
}

/// A fresh store.
pub async fn fresh(case: &str) -> PostgresStore {
    PostgresStore::open(options(case)).await.expect("open")
}
