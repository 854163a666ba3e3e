//! Metrics, bot detection and dataplane events.
//!
//! CONTRACT (the daemon depends on exactly this surface; the bodies are being written):
//! - `run(ctx)` serves `/metrics` on `config.metrics.listen`, drains the event ring buffer into
//!   rate-limited log lines, and logs flagging / un-flagging. The daemon spawns it once and
//!   aborts and respawns it when `metrics.listen` changes on reload.
//! - `top` and `find` answer the `top` and `subscriber` control requests.

use std::{
    net::IpAddr,
    sync::{Arc, RwLock},
};

use serde::{Deserialize, Serialize};

use crate::{config::Config, paths::PinLayout, status::AgentStatus};

/// Everything telemetry reads. The daemon updates `status` and `config` in place.
#[derive(Clone)]
pub struct TelemetryContext {
    pub pins: PinLayout,
    pub status: Arc<RwLock<AgentStatus>>,
    pub config: Arc<RwLock<Config>>,
}

/// One subscriber as shown by `top`, `subscriber` and their `--json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SubscriberView {
    /// `203.0.113.7` or `2001:db8:1:2::/64`.
    pub subscriber: String,
    pub attempts: u64,
    pub packets: u64,
    pub bytes: u64,
    pub distinct_destinations: u64,
    /// RFC 3339, UTC.
    pub first_seen: String,
    pub last_seen: String,
    pub suspected_bot: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("telemetry is not implemented yet")]
    NotImplemented,
}

pub async fn run(_ctx: TelemetryContext) -> Result<(), TelemetryError> {
    Err(TelemetryError::NotImplemented)
}

/// The `n` subscribers with the most blocked attempts, most first.
pub fn top(_ctx: &TelemetryContext, _n: usize) -> Result<Vec<SubscriberView>, TelemetryError> {
    Err(TelemetryError::NotImplemented)
}

/// The record of the subscriber containing `address` (IPv6 aggregated as configured).
pub fn find(
    _ctx: &TelemetryContext,
    _address: IpAddr,
) -> Result<Option<SubscriberView>, TelemetryError> {
    Err(TelemetryError::NotImplemented)
}
