//! Shared helpers for egress integration tests.
pub mod dataplane;
pub mod netns;
pub mod packet;
pub mod metrics;
