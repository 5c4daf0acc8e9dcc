//! The schema, as numbered steps (`PRAGMA user_version` says how many a
//! file has had).
//!
//! A step is only ever appended: a file of version *k* is brought to the
//! current version by running steps *k*+1 … in one transaction, and a
//! file from newer code (a version above [`CURRENT`]) is refused and left
//! untouched. The tests build a file at every earlier version, fill it as
//! that version would, and open it with the current code
//! (`tests/migrations.rs`).
//!
//! | version | what it adds |
//! |---|---|
//! | 1 | `meta` (`last_seq`, `schedule`), `queue` and `dead` (one row per entry, no body; `id` unique; `queue` indexed by lane and by state), `bodies` (each body apart, keyed by `seq`, so that leasing and settling never rewrite one) |
//! | 2 | `lanes` (every lane with queued entries) and `meta.queued` (how many entries are queued), kept as entries are written: a claim reads each lane's head with one index seek per lane and an enqueue checks the limit without counting the queue |

use rusqlite::Connection;

/// The schema version this code writes.
pub const CURRENT: u32 = 2;

/// The steps, in order: `STEPS[k]` brings a file from version `k` to
/// `k + 1`.
pub const STEPS: &[&str] = &[
    // 1: the entries, the dead letters, their bodies, the last seq and the
    // pacing state.
    r#"
    CREATE TABLE meta (key TEXT PRIMARY KEY, value) WITHOUT ROWID;
    CREATE TABLE queue (
        seq INTEGER PRIMARY KEY,
        id BLOB NOT NULL UNIQUE,
        lane TEXT NOT NULL,
        route TEXT NOT NULL,
        origin TEXT NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        needs_token INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        not_before INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        auth_failures INTEGER NOT NULL,
        auth_since INTEGER,
        state TEXT NOT NULL,
        lease_until INTEGER,
        error TEXT,
        size INTEGER NOT NULL
    );
    CREATE INDEX queue_lane ON queue (lane, seq);
    CREATE INDEX queue_state ON queue (state, seq);
    CREATE TABLE dead (
        seq INTEGER PRIMARY KEY,
        id BLOB NOT NULL UNIQUE,
        lane TEXT NOT NULL,
        route TEXT NOT NULL,
        origin TEXT NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        headers TEXT NOT NULL,
        idem_key TEXT NOT NULL,
        needs_token INTEGER NOT NULL,
        created_at INTEGER NOT NULL,
        not_before INTEGER NOT NULL,
        attempts INTEGER NOT NULL,
        failures INTEGER NOT NULL,
        auth_failures INTEGER NOT NULL,
        auth_since INTEGER,
        state TEXT NOT NULL,
        lease_until INTEGER,
        error TEXT,
        size INTEGER NOT NULL,
        dead_at INTEGER NOT NULL
    );
    CREATE TABLE bodies (seq INTEGER PRIMARY KEY, body BLOB NOT NULL);
    "#,
    // 2: the lane list and the queue's count, built from what is there.
    r#"
    CREATE TABLE lanes (lane TEXT PRIMARY KEY) WITHOUT ROWID;
    INSERT INTO lanes (lane) SELECT DISTINCT lane FROM queue;
    INSERT OR REPLACE INTO meta (key, value) VALUES ('queued', (SELECT COUNT(*) FROM queue));
    "#,
];

/// Why a file's schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    /// The file was written by newer code.
    #[error(
        "the file has schema version {found}, newer than this build's {CURRENT}; it was left untouched (run the newer `outbox`)"
    )]
    Newer {
        /// Its version.
        found: u32,
    },
    /// SQLite failed.
    #[error("migrating from version {from}: {source}")]
    Sql {
        /// The version the step started from.
        from: u32,
        /// What SQLite said.
        #[source]
        source: rusqlite::Error,
    },
}

/// The file's schema version.
pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Brings the file to version `to` (at most [`CURRENT`]), every step in one
/// transaction. Returns the version it started from.
pub fn migrate_to(conn: &mut Connection, to: u32) -> Result<u32, SchemaError> {
    let from = version(conn).map_err(|source| SchemaError::Sql { from: 0, source })?;
    if from > CURRENT {
        return Err(SchemaError::Newer { found: from });
    }
    if from >= to {
        return Ok(from);
    }
    let sql = |source| SchemaError::Sql { from, source };
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    for step in &STEPS[from as usize..to as usize] {
        tx.execute_batch(step).map_err(sql)?;
    }
    tx.pragma_update(None, "user_version", to).map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok(from)
}
