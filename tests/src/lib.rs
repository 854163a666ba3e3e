//! Shared helpers for egress integration tests.
pub mod agent;
pub mod alerting;
pub mod dataplane;
pub mod etcd;
pub mod inbound;
pub mod mail;
pub mod metrics;
pub mod netns;
pub mod notify;
pub mod packet;
pub mod radius;
pub mod tls;
pub mod webhook;
