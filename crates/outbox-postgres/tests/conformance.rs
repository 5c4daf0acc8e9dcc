//! The store conformance suite on PostgreSQL, unchanged: one test per case,
//! each on a fresh schema of the test database.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

outbox_driver::store_conformance_tests!(async #[tokio::test], |case: &'static str| async move {
    common::fresh(case).await
});
