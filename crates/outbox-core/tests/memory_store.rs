//! The store conformance suite on the in-memory store.

use outbox_core::conformance;
use outbox_core::memory::MemoryStore;

#[test]
fn memory_store_passes_the_conformance_suite() {
    futures_executor::block_on(conformance::run_all(|_| async { MemoryStore::new() }));
}
