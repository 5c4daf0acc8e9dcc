//! The store conformance suite on SQLite, unchanged: one test per case,
//! each on a fresh file in a directory of its own.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

outbox_driver::store_conformance_tests!(async #[tokio::test], |case: &'static str| async move {
    common::TestStore::fresh(case)
});
