//! The store conformance suite on the in-memory store: one test per case.

#![allow(clippy::unwrap_used, clippy::expect_used)]

outbox_core::store_conformance_tests!(sync, |_case: &'static str| async {
    outbox_core::memory::MemoryStore::new()
});
