//! A SQLite store on a file of its own, removed with the store.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use outbox_core::store::Access;
use outbox_driver::store::Store;
use outbox_sqlite::{SqliteError, SqliteStore, SqliteTx};

/// A store in a temporary directory that lives as long as it does.
pub struct TestStore {
    pub store: SqliteStore,
    pub dir: tempfile::TempDir,
}

impl TestStore {
    /// A fresh store (`case` names its file, for a failing test's message).
    pub fn fresh(case: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = SqliteStore::open(dir.path().join(format!("{case}.db"))).expect("open");
        Self { store, dir }
    }
}

impl Store for TestStore {
    type Error = SqliteError;
    type Tx<'a> = SqliteTx<'a>;

    async fn begin(&self, access: Access, name: &'static str) -> Result<SqliteTx<'_>, SqliteError> {
        self.store.begin(access, name).await
    }

    fn quota_exceeded(error: &SqliteError) -> Option<String> {
        SqliteStore::quota_exceeded(error)
    }
}
