//! The Outbox page API.
//!
//! ```ts
//! import init, { Outbox } from './outbox_page.js';
//! await init();
//! const outbox = await Outbox.open({
//!   origins: ['http://127.0.0.1:8081'],
//!   apiBase: 'http://127.0.0.1:8081',
//!   tokenUrl: '/token',
//! });
//! await outbox.registerServiceWorker('/sw.js');
//! outbox.on((event) => console.log(event.type, event.id));
//! const { id } = await outbox.sendAgentMessage('conversation-1', 'communication-1', 'Hello');
//! ```
//!
//! `send` is write-through: the message is durable in IndexedDB before
//! the promise resolves, then delivered in order (by this page under the
//! origin-wide flush lock, or by the service worker).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code, unused_imports))]

#[cfg(target_arch = "wasm32")]
mod common;
#[cfg(target_arch = "wasm32")]
mod guest;
#[cfg(target_arch = "wasm32")]
mod guest_outbox;
#[cfg(target_arch = "wasm32")]
mod rest;

#[cfg(target_arch = "wasm32")]
pub use guest_outbox::GuestOutbox;
#[cfg(target_arch = "wasm32")]
pub use rest::Outbox;
