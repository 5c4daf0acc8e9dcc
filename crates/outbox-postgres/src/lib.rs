//! The Outbox store on PostgreSQL: one queue for many instances.
//!
//! # Design
//!
//! A store decides nothing ([`outbox_core::store`]): every rule of the
//! queue is one of core's transactions, and [`PostgresStore`] only answers
//! its reads and makes its writes ([`sql`]), in one PostgreSQL transaction
//! each, and commits. It passes the same conformance suite as the memory,
//! IndexedDB and SQLite stores (`tests/conformance.rs`). What several
//! instances on one database need, and only the database can give, is
//! here:
//!
//! * **Claims with `FOR UPDATE SKIP LOCKED`, one head in flight per lane
//!   across instances.** A claim locks the pacing rows first (every claim
//!   of the fleet takes its turn on the budget), then reads every lane's
//!   head with `FOR UPDATE SKIP LOCKED` (a head locked by another
//!   transaction leaves its whole lane out, never uncovers the entry
//!   behind it), leases what core's plan says (`state = in-flight`,
//!   `attempts + 1`, `lease_until`), and locks the entries behind each
//!   head it leased before they follow it. Core's own rule does the rest:
//!   a lane whose head is in flight under a lease that stands is not
//!   claimed, by anyone, until the lease is settled or runs out.
//! * **Fenced leases.** An entry's attempt number is its lease's token:
//!   a settlement names the attempt it was sent under, and core applies it
//!   only if the entry still holds that very lease
//!   ([`Entry::holds_lease`](outbox_core::entry::Entry::holds_lease)), so a
//!   settlement from an instance whose lease passed on is refused. Every
//!   write of an entry read in the transaction also carries
//!   `AND attempts = <read>` ([`sql`]). Before it sends, a host on this
//!   store re-reads its leases ([`outbox_core::queue::Fence`], asked by
//!   [`Flush::fenced`](outbox_core::flush::Flush::fenced)) and sends only
//!   those that stand for longer than a send; each request then carries
//!   the time it must leave by (its lease's end less
//!   [`LEASE_MARGIN_MS`](outbox_core::queue::LEASE_MARGIN_MS)), which the
//!   native transport enforces where it leaves (`outbox_native::lease`): a
//!   paused instance that wakes past its lease sends nothing through it
//!   (README, "Outbox for many instances", says what window remains: one
//!   poll).
//! * **Leases of a dead instance** run out after their length (`leaseMs`,
//!   seconds) and are taken by the next claim of any instance, as a crashed
//!   sender's are in every store (counted as a failure: core's rule).
//! * **One pacing budget per OAuth client.** Core's `ScheduleState` lives
//!   in rows (`pacing`: one per origin; `holds`), read `FOR UPDATE` and
//!   written inside the claim that takes from it: N instances take from one
//!   bucket and one herd throttle, so together they stay within the
//!   client's rate.
//! * **Wake-ups.** A transaction that adds or revives entries sends
//!   `NOTIFY` on the schema's channel at its commit; [`waker`] listens and
//!   wakes an idle host at once, and falls back to polling while it cannot
//!   listen.
//! * **Versioned migrations** ([`schema`]), run by every instance at start
//!   under an advisory lock.
//! * **Small completed entries.** A delivered (or cancelled) entry leaves
//!   `queue` and its body at once; a small record of it stays in `done` for
//!   the retention the store is opened with ([`PgOptions::retention_ms`]),
//!   pruned by [`maintain`].
//!
//! Connections come from a small pool of its own ([`pool`]) on
//! `tokio-postgres` (see the crate's README line in `Cargo.toml` for why
//! not `sqlx`); a transaction dropped before its commit closes its
//! connection, so PostgreSQL rolls it back.
//!
//! ```no_run
//! use outbox_driver::store::Store;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let options = outbox_postgres::PgOptions::new("postgres://outbox@127.0.0.1/outbox");
//! let store = outbox_postgres::PostgresStore::open(options).await?;
//! let stats = store.stats(0).await?;
//! assert_eq!(stats.queued(), 0);
//! # Ok(()) }
//! ```

pub mod codec;
pub mod maintain;
pub mod pool;
pub mod schema;
pub mod sql;
pub mod waker;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use outbox_core::store::{Access, Found, Read, Write};
use outbox_driver::store::{Store, StoreTx};

use crate::pool::{Conn, Pool};
use crate::sql::TxState;

/// What kind of failure a [`PgError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The database's disk is full: an enqueue answers it as a full outbox
    /// (`507`).
    Full,
    /// A write found its row changed under the transaction: the lease it
    /// was fenced by passed to another instance. Nothing was written.
    Fenced,
    /// The connection is gone (the database restarted, the network).
    Closed,
    /// Anything else PostgreSQL reports.
    Other,
}

/// A store operation failed: what was being done, and what PostgreSQL
/// said.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("postgres {doing}: {message}")]
pub struct PgError {
    /// The kind.
    pub kind: ErrorKind,
    /// What was being done.
    pub doing: &'static str,
    /// What PostgreSQL (or the store) said.
    pub message: String,
}

impl PgError {
    fn sql(doing: &'static str, e: tokio_postgres::Error) -> Self {
        let kind = if e.is_closed() {
            ErrorKind::Closed
        } else if e.code() == Some(&tokio_postgres::error::SqlState::DISK_FULL) {
            ErrorKind::Full
        } else {
            ErrorKind::Other
        };
        let message = match e.as_db_error() {
            Some(db) => format!("{} ({})", db.message(), db.code().code()),
            None => e.to_string(),
        };
        Self {
            kind,
            doing,
            message,
        }
    }
}

/// How to open a [`PostgresStore`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The connection URL (`postgres://user@host:port/db`, with
    /// `password=`, `sslmode=disable`, … as libpq takes them). The password
    /// may come from `PGPASSWORD` instead.
    pub url: String,
    /// The PostgreSQL schema the outbox's tables live in (default
    /// `outbox`; made if missing).
    pub schema: String,
    /// Most connections this store opens (default 8).
    pub max_connections: usize,
    /// How long a record of a delivered or cancelled entry is kept in
    /// `done` (default 24 h); 0 keeps none.
    pub retention_ms: u64,
}

impl PgOptions {
    /// The defaults for `url`.
    pub fn new(url: &str) -> Self {
        Self {
            url: url.to_owned(),
            schema: "outbox".into(),
            max_connections: 8,
            retention_ms: 24 * 3_600_000,
        }
    }
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The URL does not parse.
    #[error("the PostgreSQL URL does not parse: {0}")]
    Url(String),
    /// The URL asks for TLS, which this build does not speak.
    #[error(
        "the PostgreSQL URL asks for TLS (sslmode={0}); this build connects without TLS: use sslmode=disable on a trusted network, or a local TLS proxy"
    )]
    Tls(String),
    /// The database could not be reached.
    #[error("cannot connect to PostgreSQL: {0}")]
    Connect(#[source] PgError),
    /// The schema could not be brought up to date.
    #[error(transparent)]
    Schema(#[from] schema::SchemaError),
}

/// What the store counted since it opened (this instance's).
#[derive(Debug, Default)]
pub struct Counts {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Transactions that failed (rolled back).
    pub failures: AtomicU64,
    /// Writes refused by their fencing predicate.
    pub fenced: AtomicU64,
}

struct Inner {
    pool: Pool,
    options: PgOptions,
    channel: String,
    counts: Counts,
}

/// The PostgreSQL store. Clones share one pool.
#[derive(Clone)]
pub struct PostgresStore(Arc<Inner>);

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("schema", &self.0.options.schema)
            .finish()
    }
}

impl PostgresStore {
    /// Connects, and brings the schema up to date (see [`schema`]).
    /// Needs a tokio runtime (the connections' tasks are spawned on it).
    pub async fn open(options: PgOptions) -> Result<Self, OpenError> {
        Self::open_at(options, schema::CURRENT).await
    }

    /// [`open`](Self::open), with the schema brought only to `version`:
    /// for the migration tests, which build databases as earlier code did.
    #[doc(hidden)]
    pub async fn open_at(options: PgOptions, version: u32) -> Result<Self, OpenError> {
        let config = pool::config(&options.url)?;
        let pool = Pool::new(config, options.schema.clone(), options.max_connections);
        {
            let mut client = pool.raw().await.map_err(OpenError::Connect)?;
            schema::migrate_to(&mut client, &options.schema, version).await?;
        }
        let channel = format!("outbox_{}", options.schema);
        Ok(Self(Arc::new(Inner {
            pool,
            options,
            channel,
            counts: Counts::default(),
        })))
    }

    /// The options it was opened with.
    pub fn options(&self) -> &PgOptions {
        &self.0.options
    }

    /// The `NOTIFY` channel enqueues wake the other instances on.
    pub fn channel(&self) -> &str {
        &self.0.channel
    }

    /// What this instance's store counted.
    pub fn counts(&self) -> &Counts {
        &self.0.counts
    }

    /// The connection pool.
    pub fn pool(&self) -> &Pool {
        &self.0.pool
    }
}

/// A transaction of a [`PostgresStore`]: one connection, `BEGIN` at the
/// first read or write, `COMMIT` at the end. Writes travel with the next
/// read or the commit. Dropped before its commit, it closes its
/// connection: PostgreSQL rolls it back.
pub struct PgTx<'a> {
    store: &'a PostgresStore,
    access: Access,
    conn: Option<Conn>,
    state: TxState,
    writes: Vec<Write>,
}

impl PgTx<'_> {
    /// The connection, the transaction begun on it.
    async fn open(&mut self) -> Result<&mut Conn, PgError> {
        if self.conn.is_none() {
            let conn = self.store.0.pool.get().await?;
            // Only an enqueue must be on disk before it answers (core's
            // `Access::Durable`, IndexedDB's "strict"): a claim's or a
            // settlement's commit does not wait for the WAL flush, so the
            // pacing rows it locks are free again sooner. A database crash
            // may then forget the last few leases or settlements (never an
            // enqueue): those entries go again, as after a sender's crash.
            let begin = match self.access {
                Access::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                Access::Write => "BEGIN; SET LOCAL synchronous_commit = off",
                Access::Durable => "BEGIN",
            };
            conn.client()
                .batch_execute(begin)
                .await
                .map_err(|e| PgError::sql("beginning a transaction", e))?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(conn) => Ok(conn),
            None => unreachable!("set above"),
        }
    }

    async fn flush_writes(&mut self) -> Result<(), PgError> {
        if self.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.writes);
        self.open().await?;
        let Some(conn) = self.conn.as_ref() else {
            unreachable!("opened above")
        };
        let result = sql::write(conn.client(), conn.statements(), &mut self.state, writes).await;
        if let Err(e) = &result
            && e.kind == ErrorKind::Fenced
        {
            self.store.0.counts.fenced.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    fn failed<T>(&self, r: Result<T, PgError>) -> Result<T, PgError> {
        if r.is_err() {
            self.store.0.counts.failures.fetch_add(1, Ordering::Relaxed);
        }
        r
    }
}

impl Drop for PgTx<'_> {
    fn drop(&mut self) {
        // Not committed: the connection is closed, not pooled, so that
        // PostgreSQL rolls the transaction back.
        if let Some(conn) = self.conn.take() {
            conn.discard();
        }
    }
}

impl StoreTx for PgTx<'_> {
    type Error = PgError;

    async fn read(&mut self, reads: Vec<Read>) -> Result<Vec<Found>, PgError> {
        let r = async {
            self.flush_writes().await?;
            self.open().await?;
            let Some(conn) = self.conn.as_ref() else {
                unreachable!("opened above")
            };
            sql::read(conn.client(), conn.statements(), &mut self.state, reads).await
        }
        .await;
        self.failed(r)
    }

    fn write(&mut self, writes: Vec<Write>) -> Result<(), PgError> {
        self.writes.extend(writes);
        Ok(())
    }

    async fn commit(mut self) -> Result<(), PgError> {
        let r = async {
            self.flush_writes().await?;
            let Some(conn) = self.conn.as_ref() else {
                // Nothing read, nothing written.
                return Ok(());
            };
            sql::finish(
                conn.client(),
                conn.statements(),
                &mut self.state,
                &self.store.0.channel,
            )
            .await?;
            conn.client()
                .batch_execute("COMMIT")
                .await
                .map_err(|e| PgError::sql("committing", e))?;
            if let Some(conn) = self.conn.take() {
                self.store.0.pool.put(conn);
            }
            self.store.0.counts.commits.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        .await;
        self.failed(r)
    }
}

impl Store for PostgresStore {
    type Error = PgError;
    type Tx<'a> = PgTx<'a>;

    async fn begin(&self, access: Access, _name: &'static str) -> Result<PgTx<'_>, PgError> {
        Ok(PgTx {
            store: self,
            access,
            conn: None,
            state: TxState {
                lock: access != Access::Read,
                archive: self.0.options.retention_ms > 0,
                ..TxState::default()
            },
            writes: Vec::new(),
        })
    }

    fn quota_exceeded(error: &PgError) -> Option<String> {
        (error.kind == ErrorKind::Full).then(|| error.message.clone())
    }
}
