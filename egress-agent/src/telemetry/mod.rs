//! Metrics, bot detection and dataplane events.
//!
//! CONTRACT (the daemon depends on exactly this surface):
//! - `run(ctx)` serves `/metrics` on `config.metrics.listen`, drains the event ring buffer into
//!   rate-limited log lines, and logs flagging / un-flagging. The daemon spawns it once and
//!   aborts and respawns it when `metrics.listen` changes on reload.
//! - `top` and `find` answer the `top` and `subscriber` control requests.
//!
//! Everything is read from the pinned maps when asked for (a scrape, a control request), never
//! copied by a polling loop, so the numbers are those of the kernel at that moment. One
//! exception keeps scrapes fast: once a scan of the subscriber map takes longer than 100 ms
//! (hundreds of thousands of subscribers), `/metrics` shows the newest completed scan and starts
//! the next one (`census_cache.rs`); `top` and `subscriber` still read the map when asked.

mod census_cache;
pub mod collector;
mod detection;
mod events;
pub mod exposition;
pub mod http;
pub mod limiter;
mod pinned;
mod pool_records;
pub mod program_stats;
pub mod scan;
pub mod subscribers;

use std::{
    net::{IpAddr, SocketAddr},
    path::PathBuf,
    sync::{Arc, RwLock, RwLockReadGuard},
};

use serde::{Deserialize, Serialize};
use tokio::{net::TcpListener, task::JoinHandle};

use crate::{config::Config, paths::PinLayout, status::AgentStatus};

/// Everything telemetry reads. The daemon updates `status` and `config` in place.
#[derive(Clone)]
pub struct TelemetryContext {
    pub pins: PinLayout,
    pub status: Arc<RwLock<AgentStatus>>,
    pub config: Arc<RwLock<Config>>,
    census: Arc<census_cache::CensusCache>,
    /// The last mail set-up audit's report (`audit::schedule` writes it).
    pub audit: Arc<RwLock<Option<crate::audit::Report>>>,
    /// Identity and notification, when configured.
    pub traceability: Option<Arc<crate::traceability::Traceability>>,
    /// Rung by the event drain when the dataplane reports a flag, so the detection scan runs
    /// at once instead of at its next tick (reports reach the abuse desk sooner).
    pub flag_wake: Arc<tokio::sync::Notify>,
}

impl TelemetryContext {
    pub fn new(pins: PinLayout, status: AgentStatus, config: Config) -> TelemetryContext {
        TelemetryContext {
            pins,
            status: Arc::new(RwLock::new(status)),
            config: Arc::new(RwLock::new(config)),
            census: Arc::default(),
            audit: Arc::default(),
            traceability: None,
            flag_wake: Arc::default(),
        }
    }

    #[must_use]
    pub fn with_traceability(
        mut self,
        traceability: Option<Arc<crate::traceability::Traceability>>,
    ) -> TelemetryContext {
        self.traceability = traceability;
        self
    }

    /// Moves `/metrics` to the background census once a scan takes longer than `budget`
    /// (default 100 ms); tests set 0 to reach that mode without a million subscribers.
    #[must_use]
    pub fn with_sync_scan_budget(mut self, budget: std::time::Duration) -> TelemetryContext {
        self.census = Arc::new(census_cache::CensusCache::with_budget(budget));
        self
    }
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
    /// Blocked connection attempts in the current detection window.
    #[serde(default)]
    pub window_attempts: u64,
    /// Distinct destinations estimated in the current detection window.
    #[serde(default)]
    pub window_distinct_destinations: u64,
    /// The RADIUS session that held the address when flagged (when not flagged: now).
    #[serde(default)]
    pub identity: Option<crate::identity::Session>,
    /// The session holding it now, when a different one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_now: Option<crate::identity::Session>,
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("cannot open pinned map {path}: {source}")]
    OpenMap {
        path: PathBuf,
        source: aya::maps::MapError,
    },
    #[error("cannot read map {path}: {source}")]
    ReadMap {
        path: PathBuf,
        source: aya::maps::MapError,
    },
    #[error("cannot scan map {path} ({call}): {source}")]
    Syscall {
        path: PathBuf,
        call: &'static str,
        source: std::io::Error,
    },
    #[error("cannot listen for metrics on {addr} (metrics.listen): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot watch the event ring buffer {path}: {source}")]
    Events {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the metrics: {0}")]
    Encode(String),
    #[error("a metrics worker failed: {0}")]
    Worker(String),
}

/// Serves `/metrics`, drains events and watches for flagging until aborted or the listener
/// cannot be bound.
pub async fn run(ctx: TelemetryContext) -> Result<(), TelemetryError> {
    let addr = read(&ctx.config).metrics.listen;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| TelemetryError::Bind { addr, source })?;
    tracing::info!(listen = %addr, "serving Prometheus metrics at /metrics");
    run_with_listener(listener, ctx).await
}

/// `run` on a listener the caller bound (tests bind port 0).
pub async fn run_with_listener(
    listener: TcpListener,
    ctx: TelemetryContext,
) -> Result<(), TelemetryError> {
    // Aborting `run` (reload with a new address) must also stop these.
    let _workers = AbortOnDrop(vec![
        tokio::spawn(events::drain_forever(ctx.clone())),
        tokio::spawn(detection::watch_forever(ctx.clone())),
    ]);
    http::serve(listener, ctx).await
}

/// Tracked subscribers as the census counted them: scanned now while scans are quick, else the
/// newest background scan's count (at most one scan old; a million records take 0.4 s to
/// count, which `status` must not wait for).
pub fn tracked_subscribers(ctx: &TelemetryContext) -> Result<u64, TelemetryError> {
    Ok(ctx.census.current(ctx)?.census.tracked)
}

/// The agent's status as the daemon last wrote it.
pub fn status_snapshot(ctx: &TelemetryContext) -> AgentStatus {
    read(&ctx.status).clone()
}

/// The `n` subscribers with the most blocked attempts, most first.
pub fn top(ctx: &TelemetryContext, n: usize) -> Result<Vec<SubscriberView>, TelemetryError> {
    subscribers::top(ctx, n)
}

/// The record of the subscriber containing `address` (IPv6 aggregated as configured).
pub fn find(
    ctx: &TelemetryContext,
    address: IpAddr,
) -> Result<Option<SubscriberView>, TelemetryError> {
    subscribers::find(ctx, address)
}

/// Reads a lock shared with the daemon; a writer that panicked left valid data behind.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

struct AbortOnDrop(Vec<JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}
