//! The store conformance suite on the in-memory store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use outbox_core::conformance;
use outbox_core::memory::MemoryStore;

#[test]
fn memory_store_passes_the_conformance_suite() {
    futures_executor::block_on(conformance::run_all(|_| async { MemoryStore::new() }));
}
