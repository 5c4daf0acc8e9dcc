//! The Outbox store on SQLite, for native hosts: one file, durable,
//! shared by nobody else.
//!
//! # Design
//!
//! A store decides nothing ([`outbox_core::store`]): every rule of the
//! queue is one of core's transactions, and [`SqliteStore`] only answers
//! its reads and makes its writes ([`db`]), in SQL, and commits. It
//! implements [`Store::begin`] and a [`StoreTx`], and passes the same
//! conformance suite as the memory and IndexedDB stores
//! (`tests/conformance.rs`).
//!
//! * **One file, one writer.** The database is one file (plus SQLite's
//!   `-wal` and `-shm`); a lock file beside it (`<file>.lock`, holding the
//!   owner's process id) is locked for as long as the store is open, so a
//!   second process that opens the same file for writing gets
//!   [`OpenError::InUse`] at once, naming the holder, instead of two
//!   senders that would each believe they own the leases. The kernel
//!   drops the lock when the process dies, even by `SIGKILL`.
//! * **Durable.** Write-ahead logging with `synchronous=FULL` for every
//!   commit that holds a durable transaction (core's [`Access::Durable`]:
//!   an enqueue): it returns once the log is synced, so an enqueue
//!   answered `202` survives a power cut. Core's other transactions (a
//!   flush cycle's settle and claim, the admin calls) ask for less, as
//!   IndexedDB's relaxed durability gives them in the browser: they commit
//!   with `synchronous=NORMAL` (safe against a crash of the process; a
//!   power cut may undo the last of them, which at worst sends a message
//!   again with its key), and the next durable commit syncs them too.
//! * **Group commit.** The connection lives on its own thread
//!   ([`writer`]); concurrent transactions run one after another inside
//!   one SQLite transaction, each under a savepoint, and share one
//!   `COMMIT` (one sync): 32 senders pay about one sync per round, not 32.
//!   Nothing is answered as committed before its group is on disk.
//! * **Versioned schema** ([`schema`]): numbered steps, appended only, run
//!   in one transaction on open; a file from newer code is refused and left
//!   untouched.
//! * **Poison records**: a row that does not read back (a hand edit, a
//!   bug) is salvaged and becomes a `corrupt` dead letter when it reaches
//!   the head of its lane ([`codec`]), as in the browser.
//!
//! The store's futures need no runtime: they await `tokio::sync::oneshot`
//! answers from the writer thread, which any executor can poll.
//!
//! ```no_run
//! use outbox_driver::store::Store;
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let store = outbox_sqlite::SqliteStore::open("outbox.db")?;
//! let stats = store.stats(0).await?;
//! assert_eq!(stats.queued(), 0);
//! # Ok(()) }
//! ```

pub mod codec;
pub mod db;
pub mod schema;
pub mod writer;

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, mpsc};

use outbox_core::store::{Access, Found, Read, Write};
use outbox_driver::store::{Store, StoreTx};
use tokio::sync::oneshot;

use crate::writer::Msg;

/// What kind of failure a [`SqliteError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The disk (or the file's size limit) is full: an enqueue answers it
    /// as a full outbox (`507`).
    Full,
    /// The store was closed, or its writer thread is gone.
    Closed,
    /// Anything else SQLite reports.
    Other,
}

/// A store operation failed. Carries what was being done and SQLite's
/// message; cheap to clone (a group's failed commit fails each of its
/// transactions with the same error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("sqlite {doing}: {message}")]
pub struct SqliteError {
    /// The kind.
    pub kind: ErrorKind,
    /// What was being done (`read`, `write`, `commit`, …).
    pub doing: &'static str,
    /// What SQLite (or the store) said.
    pub message: String,
}

impl SqliteError {
    fn sql(doing: &'static str, e: rusqlite::Error) -> Self {
        let kind = match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => ErrorKind::Full,
            _ => ErrorKind::Other,
        };
        Self {
            kind,
            doing,
            message: e.to_string(),
        }
    }

    fn other(message: &str) -> Self {
        Self {
            kind: ErrorKind::Other,
            doing: "transaction",
            message: message.to_owned(),
        }
    }

    fn gone() -> Self {
        Self {
            kind: ErrorKind::Closed,
            doing: "transaction",
            message: "the transaction is no longer open (it failed, or the store closed)".into(),
        }
    }

    fn closed() -> Self {
        Self {
            kind: ErrorKind::Closed,
            doing: "transaction",
            message: "the store is closed".into(),
        }
    }
}

/// What the store's writer thread counted since it opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    /// Logical transactions committed (each of core's transactions).
    pub transactions: u64,
    /// SQLite commits.
    pub commits: u64,
    /// Those made with `synchronous=FULL` (one sync of the write-ahead log
    /// each): the groups that held an enqueue.
    pub syncs: u64,
}

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another process has the file open for writing.
    #[error(
        "{path} is in use by another process{}: one outbox file has one writer (stop it, or give this one another file)",
        match pid { Some(p) => format!(" (pid {p})"), None => String::new() }
    )]
    InUse {
        /// The database file.
        path: PathBuf,
        /// The holder's process id, as its lock file says.
        pid: Option<u32>,
    },
    /// The lock file could not be made or locked.
    #[error("cannot lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// SQLite could not open or set up the file.
    #[error("cannot open {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: rusqlite::Error,
    },
    /// The schema could not be brought up to date.
    #[error("cannot open {path}: {source}")]
    Schema {
        /// The database file.
        path: PathBuf,
        /// Why.
        #[source]
        source: schema::SchemaError,
    },
    /// The writer thread could not be started.
    #[error("cannot start the store's writer thread: {0}")]
    Thread(#[source] std::io::Error),
}

struct Inner {
    counts: Arc<writer::Counts>,
    inbox: Mutex<mpsc::Sender<Msg>>,
    next_tx: AtomicU64,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    path: PathBuf,
    /// Held (locked) while the store is open.
    _lock: File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(inbox) = self.inbox.lock() {
            let _ = inbox.send(Msg::Close);
        }
        if let Some(thread) = self.thread.lock().ok().and_then(|mut t| t.take()) {
            let _ = thread.join();
        }
    }
}

/// The SQLite store. Clones share one connection and one writer thread;
/// the last one dropped commits what is open and closes the file.
#[derive(Clone)]
pub struct SqliteStore(Arc<Inner>);

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.0.path)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path`: takes the file's
    /// lock, sets WAL and `synchronous=FULL`, brings the schema up to date
    /// and starts the writer thread. Blocking.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_at(path.as_ref(), schema::CURRENT)
    }

    /// [`open`](Self::open), with the schema brought only to `version`:
    /// for the migration tests, which build files as earlier code did.
    #[doc(hidden)]
    pub fn open_at(path: &Path, version: u32) -> Result<Self, OpenError> {
        let path = path.to_path_buf();
        let lock = lock(&path)?;
        let sqlite = |source| OpenError::Sqlite {
            path: path.clone(),
            source,
        };
        let mut conn = rusqlite::Connection::open(&path).map_err(sqlite)?;
        // Only this process writes (the lock above): a busy database is a
        // bug elsewhere, reported rather than waited for long.
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sqlite)?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))
            .map_err(sqlite)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(sqlite(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, not wal"
            ))));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sqlite)?;
        conn.set_prepared_statement_cache_capacity(64);
        schema::migrate_to(&mut conn, version).map_err(|source| OpenError::Schema {
            path: path.clone(),
            source,
        })?;
        let (inbox, rx) = mpsc::channel();
        let counts = Arc::new(writer::Counts::default());
        let thread_counts = counts.clone();
        let thread = std::thread::Builder::new()
            .name("outbox-sqlite".into())
            .spawn(move || writer::run(conn, rx, thread_counts))
            .map_err(OpenError::Thread)?;
        Ok(Self(Arc::new(Inner {
            counts,
            inbox: Mutex::new(inbox),
            next_tx: AtomicU64::new(1),
            thread: Mutex::new(Some(thread)),
            path,
            _lock: lock,
        })))
    }

    /// How many transactions have committed, and in how many SQLite
    /// commits: their ratio is what group commit saved.
    pub fn counters(&self) -> Counters {
        Counters {
            transactions: self.0.counts.transactions.load(Ordering::Relaxed),
            commits: self.0.counts.commits.load(Ordering::Relaxed),
            syncs: self.0.counts.syncs.load(Ordering::Relaxed),
        }
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.0.path
    }

    fn send(&self, msg: Msg) -> Result<(), SqliteError> {
        self.0
            .inbox
            .lock()
            .map_err(|_| SqliteError::closed())?
            .send(msg)
            .map_err(|_| SqliteError::closed())
    }
}

/// The lock file of `db`, locked, with this process's id in it.
fn lock(db: &Path) -> Result<File, OpenError> {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let lock_error = |source| OpenError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_error)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            return Err(OpenError::InUse {
                path: db.to_path_buf(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
    }
    file.set_len(0).map_err(lock_error)?;
    file.rewind().map_err(lock_error)?;
    write!(file, "{}", std::process::id()).map_err(lock_error)?;
    Ok(file)
}

/// A transaction of a [`SqliteStore`]: a conversation with the writer
/// thread ([`writer`]). Its first message opens it there; writes travel
/// with the next read or the commit.
pub struct SqliteTx<'a> {
    store: &'a SqliteStore,
    id: u64,
    access: Access,
    opened: bool,
    finished: bool,
    writes: Vec<Write>,
}

impl Drop for SqliteTx<'_> {
    fn drop(&mut self) {
        if self.opened && !self.finished {
            let _ = self.store.send(Msg::Abort { tx: self.id });
        }
    }
}

impl StoreTx for SqliteTx<'_> {
    type Error = SqliteError;

    async fn read(&mut self, reads: Vec<Read>) -> Result<Vec<Found>, SqliteError> {
        let (reply, answer) = oneshot::channel();
        let open = (!self.opened).then_some(self.access);
        self.opened = true;
        self.store.send(Msg::Step {
            tx: self.id,
            open,
            writes: std::mem::take(&mut self.writes),
            reads,
            reply,
        })?;
        answer.await.map_err(|_| SqliteError::closed())?
    }

    fn write(&mut self, writes: Vec<Write>) -> Result<(), SqliteError> {
        self.writes.extend(writes);
        Ok(())
    }

    async fn commit(mut self) -> Result<(), SqliteError> {
        if !self.opened && self.writes.is_empty() {
            // Nothing read, nothing written: nothing to do.
            self.finished = true;
            return Ok(());
        }
        let (reply, answer) = oneshot::channel();
        let open = (!self.opened).then_some(self.access);
        self.opened = true;
        self.finished = true;
        self.store.send(Msg::Commit {
            tx: self.id,
            open,
            writes: std::mem::take(&mut self.writes),
            reply,
        })?;
        answer.await.map_err(|_| SqliteError::closed())?
    }
}

impl Store for SqliteStore {
    type Error = SqliteError;
    type Tx<'a> = SqliteTx<'a>;

    async fn begin(
        &self,
        access: Access,
        _name: &'static str,
    ) -> Result<SqliteTx<'_>, SqliteError> {
        Ok(SqliteTx {
            store: self,
            id: self.0.next_tx.fetch_add(1, Ordering::Relaxed),
            access,
            opened: false,
            finished: false,
            writes: Vec::new(),
        })
    }

    fn quota_exceeded(error: &SqliteError) -> Option<String> {
        (error.kind == ErrorKind::Full).then(|| error.message.clone())
    }
}
