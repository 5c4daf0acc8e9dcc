//! The Outbox demo server.
//!
//! It serves the demo page (`web/demo/`), the browser bundle (`dist/`) and
//! the test harness page (`web/test/`), and is a **token broker**: it holds
//! the OAuth client credentials and hands same-origin pages a short-lived
//! access token from `GET /token`, so no secret ever reaches the browser.
//! By default the upstream is the embedded Genesys Cloud emulator; with a
//! region it is the real `login.<domain>` / `api.<domain>`.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use outbox_demo::{DemoOptions, DemoServer, Upstream};
//! let upstream = Upstream::emulator("http://127.0.0.1:8081", "demo-client", "demo-secret");
//! let server = DemoServer::start(DemoOptions::new("127.0.0.1:8080".parse()?, upstream)).await?;
//! println!("open {}", server.url());
//! # Ok(()) }
//! ```

mod broker;
mod files;
mod server;

pub use broker::{Broker, BrokerError, Upstream};
pub use server::{DemoOptions, DemoServer};
