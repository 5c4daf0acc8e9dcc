//! The Outbox engine.
