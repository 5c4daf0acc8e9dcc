//! The writer thread: the store's one connection, and group commit.
//!
//! Core's transactions are interactive — read, decide, write, read again —
//! and the engine decides between the steps, on its own thread. So a
//! transaction here is a conversation: the engine sends a step (the
//! writes it made since the last one, and its next reads) and awaits the
//! answers; the writer thread runs each step on the connection and
//! answers. One logical transaction runs at a time; the next waits
//! until the one before has committed (or given up).
//!
//! **Group commit**: a logical transaction's commit does not end the SQLite
//! transaction. The writer thread opens one (`BEGIN IMMEDIATE`), runs each
//! logical transaction inside it under a `SAVEPOINT` (released at its
//! commit, rolled back alone if it fails or is dropped), and while more
//! logical transactions are waiting it runs them too; only when none is
//! waiting (or [`MAX_GROUP`] have run) does it `COMMIT` — one `fsync` for
//! the whole group — and only then answers every commit of the group. So
//! nothing is answered "committed" before it is on disk, and senders that
//! arrive while a commit is syncing share the next one. A failed `COMMIT`
//! fails every transaction of its group (none was answered).
//!
//! Reads of a later transaction of a group see the writes of earlier ones
//! (one connection, one SQLite transaction), as they would after a commit;
//! nothing they read is answered before the group is on disk.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};

use outbox_core::store::{Access, Found, Read, Write};
use rusqlite::Connection;
use tokio::sync::oneshot;

use crate::SqliteError;
use crate::db;

/// Most logical transactions one `COMMIT` carries: bounds how long the
/// first of a group waits for its answer.
pub const MAX_GROUP: usize = 256;

/// A message from a transaction to the writer thread.
pub enum Msg {
    /// Make `writes`, then answer `reads`. `open`: the transaction's first
    /// message.
    Step {
        /// The transaction.
        tx: u64,
        /// Set on the transaction's first message: how it uses the store.
        open: Option<Access>,
        /// Writes made since the last step, in order.
        writes: Vec<Write>,
        /// Reads to answer.
        reads: Vec<Read>,
        /// Where the answers go.
        reply: oneshot::Sender<Result<Vec<Found>, SqliteError>>,
    },
    /// Make `writes` and commit.
    Commit {
        /// The transaction.
        tx: u64,
        /// Set when it opens the transaction (one that read nothing).
        open: Option<Access>,
        /// Writes made since the last step.
        writes: Vec<Write>,
        /// Answered once the transaction's group is on disk.
        reply: oneshot::Sender<Result<(), SqliteError>>,
    },
    /// The transaction was dropped without a commit: undo it.
    Abort {
        /// The transaction.
        tx: u64,
    },
    /// Commit what is open and stop.
    Close,
}

impl Msg {
    fn opens(&self) -> Option<(u64, Access)> {
        match self {
            Msg::Step {
                tx,
                open: Some(access),
                ..
            }
            | Msg::Commit {
                tx,
                open: Some(access),
                ..
            } => Some((*tx, *access)),
            _ => None,
        }
    }
}

/// What the writer thread counts (read by [`crate::SqliteStore::counters`]).
#[derive(Debug, Default)]
pub struct Counts {
    /// Logical transactions committed.
    pub transactions: AtomicU64,
    /// SQLite commits of groups that held a transaction.
    pub commits: AtomicU64,
    /// Those of them made with `synchronous=FULL` (one sync of the log
    /// each): the groups that held a durable transaction (an enqueue).
    pub syncs: AtomicU64,
}

/// The writer thread's state.
struct Writer {
    conn: Connection,
    counts: Arc<Counts>,
    /// The SQLite transaction is open.
    group_open: bool,
    /// It commits with `synchronous=FULL` (it holds a durable transaction).
    group_durable: bool,
    /// The connection's `synchronous` setting now (`FULL` or `NORMAL`).
    sync_full: bool,
    /// Commits answered once the group is on disk.
    group: Vec<oneshot::Sender<Result<(), SqliteError>>>,
    /// The logical transaction running now.
    current: Option<u64>,
    /// Transactions waiting for their turn (their first message).
    waiting: VecDeque<Msg>,
}

/// Runs the writer thread until [`Msg::Close`] or every sender is gone.
pub fn run(conn: Connection, inbox: Receiver<Msg>, counts: Arc<Counts>) {
    let mut w = Writer {
        conn,
        counts,
        group_open: false,
        group_durable: false,
        sync_full: true,
        group: Vec::new(),
        current: None,
        waiting: VecDeque::new(),
    };
    loop {
        if w.current.is_none() {
            if w.group.len() >= MAX_GROUP {
                w.commit_group();
            }
            // A waiting transaction's turn, else whatever came meanwhile.
            if let Some(m) = w.waiting.pop_front() {
                w.handle(m);
                continue;
            }
            match inbox.try_recv() {
                Ok(Msg::Close) | Err(TryRecvError::Disconnected) => break,
                Ok(m) => {
                    w.handle(m);
                    continue;
                }
                // Nothing to run: the group goes to disk before the
                // thread waits.
                Err(TryRecvError::Empty) => w.commit_group(),
            }
        }
        match inbox.recv() {
            Ok(Msg::Close) | Err(_) => break,
            Ok(m) => w.handle(m),
        }
    }
    if let Some(tx) = w.current.take() {
        w.undo(tx);
    }
    w.commit_group();
}

impl Writer {
    fn handle(&mut self, msg: Msg) {
        if let Some((tx, access)) = msg.opens() {
            if self.current.is_some() || self.group.len() >= MAX_GROUP {
                self.waiting.push_back(msg);
                return;
            }
            if let Err(e) = self.start(tx, access) {
                fail(msg, e);
                return;
            }
        }
        match msg {
            Msg::Step {
                tx,
                writes,
                reads,
                reply,
                ..
            } => {
                if self.current != Some(tx) {
                    let _ = reply.send(Err(SqliteError::gone()));
                    return;
                }
                match self.step(writes, reads) {
                    Ok(found) => {
                        if reply.send(Ok(found)).is_err() {
                            // Nobody waits for it any more: it is dropped,
                            // and its Abort follows.
                        }
                    }
                    Err(e) => {
                        self.undo(tx);
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Msg::Commit {
                tx, writes, reply, ..
            } => {
                if self.current != Some(tx) {
                    let _ = reply.send(Err(SqliteError::gone()));
                    return;
                }
                let done = self.step(writes, Vec::new()).and_then(|_| {
                    self.conn
                        .execute_batch("RELEASE tx")
                        .map_err(|e| SqliteError::sql("commit", e))
                });
                match done {
                    Ok(()) => {
                        self.current = None;
                        self.group.push(reply);
                    }
                    Err(e) => {
                        self.undo(tx);
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Msg::Abort { tx } => {
                if self.current == Some(tx) {
                    self.undo(tx);
                } else {
                    self.waiting.retain(|m| m.opens().map(|o| o.0) != Some(tx));
                }
            }
            Msg::Close => {}
        }
    }

    /// Opens logical transaction `tx`: the group's SQLite transaction if
    /// none is open, then a savepoint.
    ///
    /// A group commits with `synchronous=FULL` when it holds a durable
    /// transaction ([`Access::Durable`]: an enqueue, answered only once on
    /// disk), else with `NORMAL` (the log is synced at the next durable
    /// commit or checkpoint: what core's other transactions ask, as
    /// IndexedDB's relaxed durability gives them in the browser). SQLite
    /// sets this per transaction, before it begins; so a durable
    /// transaction that finds a `NORMAL` group open commits that group
    /// first (no sync) and opens a `FULL` one. A later `FULL` commit syncs
    /// everything written before it.
    fn start(&mut self, tx: u64, access: Access) -> Result<(), SqliteError> {
        let durable = access == Access::Durable;
        if self.group_open && durable && !self.group_durable {
            self.commit_group();
        }
        if !self.group_open {
            if self.sync_full != durable {
                let level = if durable { "FULL" } else { "NORMAL" };
                self.conn
                    .pragma_update(None, "synchronous", level)
                    .map_err(|e| SqliteError::sql("begin", e))?;
                self.sync_full = durable;
            }
            self.group_durable = durable;
            self.conn
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(|e| SqliteError::sql("begin", e))?;
            self.group_open = true;
        }
        self.conn
            .execute_batch("SAVEPOINT tx")
            .map_err(|e| SqliteError::sql("begin", e))?;
        self.current = Some(tx);
        Ok(())
    }

    fn step(&mut self, writes: Vec<Write>, reads: Vec<Read>) -> Result<Vec<Found>, SqliteError> {
        for write in writes {
            db::write(&self.conn, write).map_err(|e| SqliteError::sql("write", e))?;
        }
        reads
            .into_iter()
            .map(|read| db::read(&self.conn, read).map_err(|e| SqliteError::sql("read", e)))
            .collect()
    }

    /// Undoes the running transaction alone; the rest of the group stays.
    fn undo(&mut self, tx: u64) {
        if self.current == Some(tx) {
            self.current = None;
            if self
                .conn
                .execute_batch("ROLLBACK TO tx; RELEASE tx")
                .is_err()
            {
                // The savepoint is gone with the whole transaction (SQLite
                // rolls back by itself on some errors): so is the group.
                self.abandon_group(SqliteError::other("the transaction was rolled back"));
            }
        }
    }

    /// Commits the open group and answers its commits.
    fn commit_group(&mut self) {
        if !self.group_open {
            return;
        }
        self.group_open = false;
        let wrote = !self.group.is_empty();
        match self.conn.execute_batch("COMMIT") {
            Ok(()) => {
                if wrote {
                    self.counts.commits.fetch_add(1, Ordering::Relaxed);
                    if self.group_durable {
                        self.counts.syncs.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.counts
                    .transactions
                    .fetch_add(self.group.len() as u64, Ordering::Relaxed);
                for reply in self.group.drain(..) {
                    let _ = reply.send(Ok(()));
                }
            }
            Err(e) => {
                let error = SqliteError::sql("commit", e);
                let _ = self.conn.execute_batch("ROLLBACK");
                for reply in self.group.drain(..) {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn abandon_group(&mut self, error: SqliteError) {
        let _ = self.conn.execute_batch("ROLLBACK");
        self.group_open = false;
        for reply in self.group.drain(..) {
            let _ = reply.send(Err(error.clone()));
        }
    }
}

/// Answers a message that could not start with `e`.
fn fail(msg: Msg, e: SqliteError) {
    match msg {
        Msg::Step { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Msg::Commit { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        Msg::Abort { .. } | Msg::Close => {}
    }
}
