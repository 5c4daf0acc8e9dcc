//! Keeping the database small: what left the queue is pruned after its
//! retention, and lanes left empty are unlisted.
//!
//! [`once`] runs one pass in one transaction, by one instance at a time
//! (the others skip the pass while one holds its advisory lock); [`run`]
//! repeats it. Delivered entries leave `queue` and `bodies` in the
//! transaction that settles them, so the queue itself never holds
//! completed work; what stays is a small record in `done` (no body), kept
//! for [`PgOptions::retention_ms`](crate::PgOptions::retention_ms).

use std::time::Duration;

use crate::{PgError, PostgresStore};

/// What a pass removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pruned {
    /// Records of completed entries past their retention.
    pub done: u64,
    /// Lanes listed with no entry left.
    pub lanes: u64,
    /// Whether this instance ran the pass (another held the lock).
    pub ran: bool,
}

/// One pass at time `now` (ms since the epoch).
pub async fn once(store: &PostgresStore, now: u64) -> Result<Pruned, PgError> {
    let pg = |doing| move |e| PgError::sql(doing, e);
    let mut client = store.pool().raw().await?;
    let tx = client
        .transaction()
        .await
        .map_err(pg("beginning maintenance"))?;
    let key = format!("{}:maintain", store.options().schema);
    let ran: bool = tx
        .query_one("SELECT pg_try_advisory_xact_lock(hashtext($1))", &[&key])
        .await
        .map_err(pg("locking maintenance"))?
        .get(0);
    if !ran {
        return Ok(Pruned::default());
    }
    let before = crate::codec::big(now.saturating_sub(store.options().retention_ms));
    let done = tx
        .execute("DELETE FROM done WHERE done_at < $1", &[&before])
        .await
        .map_err(pg("pruning done"))?;
    let lanes = tx
        .execute(
            "WITH empty AS (SELECT lane, ver FROM lanes l \
             WHERE NOT EXISTS (SELECT 1 FROM queue q WHERE q.lane = l.lane)) \
             DELETE FROM lanes d USING empty e WHERE d.lane = e.lane AND d.ver = e.ver",
            &[],
        )
        .await
        .map_err(pg("pruning lanes"))?;
    tx.commit().await.map_err(pg("committing maintenance"))?;
    Ok(Pruned {
        done,
        lanes,
        ran: true,
    })
}

/// Runs a pass every `every` until `stop` says so.
pub async fn run(store: PostgresStore, every: Duration, stop: impl Fn() -> bool) {
    while !stop() {
        let _ = once(&store, crate::sql::wall_ms()).await;
        tokio::time::sleep(every).await;
    }
}
