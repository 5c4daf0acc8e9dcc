//! `outbox serve`: Outbox as a drop-in proxy for Genesys Cloud.
//!
//! A backend in any language points its Genesys API base URL at the proxy
//! (`http://127.0.0.1:8788` instead of `https://api.mypurecloud.ie`) and
//! changes nothing else: requests on Outbox's routes are made durable when
//! Genesys does not take them, and delivered in order later; everything
//! else is proxied as is. Beside it, an API door for the same queue
//! (submit, status, dead letters, cancel, events, stats), `/metrics` and
//! `/healthz` ([`server`]). The queue is a SQLite file
//! ([`outbox_sqlite`]) for one instance, or a PostgreSQL database
//! ([`outbox_postgres`]) that any number of instances share; the engine is
//! the browser's, driven by the native host ([`outbox_native`]). What it is
//! told: [`settings`].

pub mod server;
pub mod settings;

use std::sync::Arc;

use outbox_native::{Host, HostOptions};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use outbox_postgres::{PgOptions, PostgresStore};
use outbox_sqlite::SqliteStore;
use settings::{Settings, StoreUrl};

/// Why `outbox serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] outbox_sqlite::OpenError),
    /// The PostgreSQL store could not be opened.
    #[error(transparent)]
    Postgres(#[from] outbox_postgres::OpenError),
    /// The host could not start.
    #[error(transparent)]
    Host(#[from] outbox_native::HostError),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The server failed.
    #[error("server error: {0}")]
    Io(#[from] std::io::Error),
}

/// Runs the proxy until `stop` resolves (SIGTERM, Ctrl-C): stops taking
/// connections, lets the requests under way finish, winds the flush down
/// (what was sent is settled, nothing more leased) and closes the store.
/// Prints `outbox listening on http://ADDR` to standard output once ready.
///
/// On a SQLite file the instance is the file's only writer (`exclusive`:
/// leases a killed predecessor left are taken over at once). On
/// PostgreSQL it is one of a fleet on one queue: its leases are fenced
/// (re-read before each send), a dead instance's run out after `leaseMs`,
/// a `LISTEN` wakes it when another instance enqueues (polling every
/// second while it cannot listen), and it prunes what its retention
/// keeps ([`outbox_postgres::maintain`]) once a minute, taking turns with
/// the others.
pub async fn serve(
    settings: Settings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let options = |exclusive| HostOptions {
        config: settings.config.clone(),
        credentials: settings.credentials.clone(),
        exclusive,
        seed: outbox_native::clock::random_seed(),
    };
    match &settings.store {
        StoreUrl::Sqlite(path) => {
            let store = SqliteStore::open(path)?;
            let host = Host::start(options(true), store.clone())?;
            let store_metrics: server::StoreMetrics = Arc::new(move || {
                let counters = store.counters();
                vec![
                    (
                        "outbox_store_transactions_total",
                        "Store transactions committed.",
                        counters.transactions,
                    ),
                    (
                        "outbox_store_commits_total",
                        "SQLite commits; transactions per commit is what group commit saves.",
                        counters.commits,
                    ),
                    (
                        "outbox_store_syncs_total",
                        "SQLite commits made with synchronous=FULL (one sync each): those that held an enqueue.",
                        counters.syncs,
                    ),
                ]
            });
            let shown = path.display().to_string();
            run(&settings, host, store_metrics, &shown, stop, async {}).await
        }
        StoreUrl::Postgres(pg) => {
            let store = PostgresStore::open(PgOptions {
                schema: pg.schema.clone(),
                retention_ms: pg.retention_ms,
                ..PgOptions::new(&pg.url)
            })
            .await?;
            let host = Host::start(options(false), store.clone())?;
            let stopped = Arc::new(AtomicBool::new(false));
            let waker = {
                let (host, stopped) = (host.clone(), stopped.clone());
                tokio::spawn(outbox_postgres::waker::run(
                    store.clone(),
                    move || host.kick(),
                    Duration::from_secs(1),
                    move || stopped.load(Ordering::Relaxed),
                ))
            };
            let maintenance = {
                let stopped = stopped.clone();
                tokio::spawn(outbox_postgres::maintain::run(
                    store.clone(),
                    Duration::from_secs(60),
                    move || stopped.load(Ordering::Relaxed),
                ))
            };
            let counted = store.clone();
            let store_metrics: server::StoreMetrics = Arc::new(move || {
                let c = counted.counts();
                vec![
                    (
                        "outbox_store_transactions_total",
                        "Store transactions committed by this instance.",
                        c.commits.load(Ordering::Relaxed),
                    ),
                    (
                        "outbox_store_failures_total",
                        "Store transactions of this instance that failed and rolled back.",
                        c.failures.load(Ordering::Relaxed),
                    ),
                    (
                        "outbox_store_fenced_writes_total",
                        "Writes this instance made under a lease that had passed to another instance, refused.",
                        c.fenced.load(Ordering::Relaxed),
                    ),
                ]
            });
            let shown = format!("{} (schema {})", pg.shown(), pg.schema);
            let after = async move {
                stopped.store(true, Ordering::Relaxed);
                waker.abort();
                maintenance.abort();
            };
            run(&settings, host, store_metrics, &shown, stop, after).await
        }
    }
}

/// Serves `host` until `stop`, then shuts it down and runs `after`.
async fn run<S: server::Served>(
    settings: &Settings,
    host: Host<S>,
    store_metrics: server::StoreMetrics,
    shown: &str,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
    after: impl std::future::Future<Output = ()>,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
    let app = server::App {
        host: host.clone(),
        store_metrics,
        upstream: Arc::from(settings.upstream.as_str()),
        api_key: settings.api_key.clone().map(Arc::new),
        stopping,
    };
    let body_limit = settings.config.core.limits.max_entry_bytes.max(1 << 20) * 4;
    let router = server::router(app, body_limit);
    println!("outbox listening on http://{addr}");
    eprintln!(
        "outbox: store {shown}, upstream {}, tokens {}",
        settings.upstream,
        if settings.credentials.is_some() {
            "client credentials"
        } else {
            "callers' bearers"
        }
    );
    let shutdown = async move {
        stop.await;
        eprintln!("outbox: stopping (requests under way finish, the flush winds down)");
        let _ = stopping_tx.send(true);
    };
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    host.shutdown().await;
    after.await;
    eprintln!("outbox: stopped");
    Ok(())
}

/// Resolves on SIGTERM or Ctrl-C (listening from the moment it is called).
pub fn stop_signal() -> impl std::future::Future<Output = ()> + Send {
    use tokio::signal::unix::{SignalKind, signal};
    let listeners = signal(SignalKind::interrupt())
        .and_then(|int| signal(SignalKind::terminate()).map(|term| (int, term)));
    async move {
        match listeners {
            Ok((mut int, mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}
