//! Shared helpers for egress integration tests.
pub mod netns;
