//! # genesys-emulator
//!
//! A local Genesys Cloud for development, the demo and every test of Outbox:
//! OAuth client credentials, the REST message routes with bearer checks and
//! Genesys `ErrorBody` errors, per-token rate limits with `Retry-After` and
//! `inin-ratelimit-*` headers, CORS for a page on another origin, optional
//! idempotency, the Web Messaging deployment configuration and Guest
//! WebSocket (`/v1`: messages, quick-reply answers, typing and presence
//! events, attachments with their upload URL) with guest history, an agent
//! that answers (control API, auto-reply, or the agent route into a guest's
//! conversation),
//! fault injection by rate or by count (outage, latency, server errors, lost acknowledgements,
//! forced 401, daily limit; dropped, lost, delayed and reordered guest echoes)
//! and an inspection API.
//!
//! It speaks real HTTP on a real socket: tests talk to it over loopback.
//!
//! ```no_run
//! use genesys_emulator::{Config, Emulator, Faults};
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let emu = Emulator::start(Config::ephemeral()).await?;
//! println!("Genesys Cloud at {}", emu.base_url()); // http://127.0.0.1:PORT
//!
//! // A token without the OAuth round trip (or POST /oauth/token).
//! let token = emu.control().mint_token(None, None).access_token;
//!
//! // Simulate "offline": connections to /api, /oauth and /v1 are dropped.
//! emu.control().set_faults(Faults { outage: true, ..Faults::default() })?;
//!
//! // What arrived, per lane, in order.
//! let report = emu.control().messages();
//! println!("{} messages in {} lanes", report.total, report.lanes.len());
//! # let _ = token;
//! emu.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! From blocking code (browser end-to-end tests), [`Emulator::start_blocking`]
//! runs the emulator on its own runtime thread.
//!
//! The HTTP control API under `/__emulator/` offers the same operations as
//! [`Control`]; the crate's `README.md` documents its JSON.

mod api;
mod auth;
mod clock;
mod config;
mod control;
mod cors;
mod errors;
mod faults;
#[cfg(test)]
mod fuzz_tests;
mod guest;
mod ids;
mod inspect;
mod ratelimit;
mod response;
mod routes;
mod server;
mod state;
mod sync;
mod urlencoded;

use std::net::SocketAddr;
use std::sync::Arc;

pub use api::{IDEMPOTENCY_HEADER, REPLAYED_HEADER};
pub use auth::{OAuthError, TokenGrant};
pub use config::{ClientCredentials, Config, CorsPolicy, GuestConfig, TextLimits};
pub use control::{CONTROL_PREFIX, Control};
pub use cors::{ALLOWED_HEADERS, ALLOWED_METHODS, EXPOSED_HEADERS};
pub use errors::{Detail, EmulatorError, ErrorBody, Limit};
pub use faults::{DEFAULT_ERROR_STATUSES, DEFAULT_FAIL_STATUS, Faults, FaultsError};
pub use guest::{AgentReply, EchoState, GuestMessageReport, ReplyError, SessionReport};
pub use inspect::{
    AgentReplyRecord, LaneReport, MessagesReport, Outcome, RecordedMessage, RequestLogEntry,
    RequestsReport, RouteKind,
};

use state::Shared;

/// A running emulator. Dropping it stops it too (without waiting).
#[derive(Debug)]
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Emulator {
    /// Binds `config.bind` and starts serving on the current Tokio runtime.
    pub async fn start(config: Config) -> Result<Emulator, EmulatorError> {
        config.validate()?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let addr = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.bind,
                source,
            })?;
        let shared = Arc::new(Shared::new(config));
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Emulator { shared, addr, task })
    }

    /// Starts the emulator on a background thread with its own runtime, for
    /// blocking callers.
    pub fn start_blocking(config: Config) -> Result<BlockingEmulator, EmulatorError> {
        BlockingEmulator::start(config)
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, the base of every REST and control URL.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://IP:PORT/v1`, the Guest WebSocket URL (add `?deploymentId=…`).
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// The control handle.
    pub fn control(&self) -> Control {
        Control::new(self.shared.clone())
    }

    /// Stops accepting, closes connections (1 s grace) and waits for the end.
    pub async fn shutdown(mut self) {
        self.shared.shutdown.send_replace(true);
        let _ = (&mut self.task).await;
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        self.shared.shutdown.send_replace(true);
    }
}

/// An emulator running on its own thread and runtime; see [`Emulator::start_blocking`].
/// Dropping it shuts it down and joins the thread.
#[derive(Debug)]
pub struct BlockingEmulator {
    addr: SocketAddr,
    control: Control,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlockingEmulator {
    fn start(config: Config) -> Result<Self, EmulatorError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("genesys-emulator")
            .enable_all()
            .build()
            .map_err(EmulatorError::Runtime)?;
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("genesys-emulator".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    match Emulator::start(config).await {
                        Ok(emu) => {
                            let _ = ready_tx.send(Ok((emu.local_addr(), emu.control())));
                            let _ = stop_rx.await;
                            emu.shutdown().await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(EmulatorError::Runtime)?;
        let (addr, control) = ready_rx.recv().map_err(|_| EmulatorError::ThreadGone)??;
        Ok(Self {
            addr,
            control,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `ws://IP:PORT/v1`.
    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1", self.addr)
    }

    /// The control handle (its methods do not block on the runtime).
    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops the emulator and joins its thread.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for BlockingEmulator {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Listens for Ctrl-C (SIGINT) or, on Unix, SIGTERM from the moment it is
/// called, and resolves on the first: how the emulator's and the demo
/// server's binaries know to stop. Call it (inside the Tokio runtime)
/// *before* telling anyone how to stop: a signal that comes between the
/// two is not lost, and does not kill the process unannounced.
pub fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
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
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
