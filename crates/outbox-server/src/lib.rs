//! `outbox serve`: Outbox as a drop-in proxy for Genesys Cloud.
//!
//! A backend in any language points its Genesys API base URL at the proxy
//! (`http://127.0.0.1:8788` instead of `https://api.mypurecloud.ie`) and
//! changes nothing else: requests on Outbox's routes are made durable when
//! Genesys does not take them, and delivered in order later; everything
//! else is proxied as is. Beside it, an API door for the same queue
//! (submit, status, dead letters, cancel, events, stats), `/metrics` and
//! `/healthz` ([`server`]). The queue is a SQLite file
//! ([`outbox_sqlite`]); the engine is the browser's, driven by the native
//! host ([`outbox_native`]). What it is told: [`settings`].

pub mod server;
pub mod settings;

use std::sync::Arc;

use outbox_native::{Host, HostOptions};
use outbox_sqlite::SqliteStore;
use settings::{Settings, StoreUrl};

/// Why `outbox serve` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] outbox_sqlite::OpenError),
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
pub async fn serve(
    settings: Settings,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let StoreUrl::Sqlite(path) = &settings.store;
    let store = SqliteStore::open(path)?;
    let host = Host::start(
        HostOptions {
            config: settings.config.clone(),
            credentials: settings.credentials.clone(),
            exclusive: true,
            seed: outbox_native::clock::random_seed(),
        },
        store.clone(),
    )?;
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
        store,
        upstream: Arc::from(settings.upstream.as_str()),
        api_key: settings.api_key.clone().map(Arc::new),
        stopping,
    };
    let body_limit = settings.config.core.limits.max_entry_bytes.max(1 << 20) * 4;
    let router = server::router(app, body_limit);
    println!("outbox listening on http://{addr}");
    eprintln!(
        "outbox: store {}, upstream {}, tokens {}",
        path.display(),
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
