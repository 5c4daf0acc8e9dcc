//! The store conformance suite on the in-memory store: one test per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

outbox_driver::store_conformance_tests!(sync, |_case: &'static str| async {
    outbox_driver::memory::MemoryStore::new()
});
