//! The subscriber census behind `/metrics`, kept current without making a scrape wait for a
//! scan of a million records.
//!
//! Scanning the subscriber map costs about 0.4 µs per record (the kernel's batch copy walks and
//! locks every bucket): nothing with a few thousand subscribers, 0.4 s with a million. While a
//! scan stays within `SYNC_SCAN_BUDGET`, every scrape scans, so its numbers are the kernel's at
//! that moment. Once a scan takes longer, a scrape serves the newest completed census and starts
//! the next scan in the background (one at a time): what a scrape shows is then at most one
//! scrape interval plus one scan old, and `egress_subscriber_census_age_seconds` says how old.
//! The dataplane counters are read at every scrape either way.

use std::{
    sync::{Arc, Mutex, MutexGuard, OnceLock},
    time::{Duration, Instant},
};

use super::{
    TelemetryContext, TelemetryError, read,
    subscribers::{self, Census, Detector},
};

/// A scan slower than this moves scrapes to the background census.
const SYNC_SCAN_BUDGET: Duration = Duration::from_millis(100);

/// One completed scan.
pub struct Snapshot {
    pub census: Census,
    /// When the scan started: the data is at least this old.
    pub started: Instant,
    pub took: Duration,
    /// The series cap it was taken with (a reload that changes it forces a fresh scan).
    max_series: usize,
    /// The census's families as exposition text, encoded by the background scan that took it
    /// or by the first scrape that shows it: scrapes of the same census only copy the text.
    encoded: OnceLock<String>,
}

impl Snapshot {
    pub fn age(&self) -> Duration {
        self.started.elapsed()
    }

    /// The census's families as text, encoded once per snapshot by `encode`.
    pub fn encoded<E>(&self, encode: impl FnOnce(&Census) -> Result<String, E>) -> Result<&str, E> {
        if let Some(text) = self.encoded.get() {
            return Ok(text);
        }
        let text = encode(&self.census)?;
        Ok(self.encoded.get_or_init(|| text))
    }
}

#[derive(Default)]
struct State {
    latest: Option<Arc<Snapshot>>,
    refreshing: bool,
}

pub struct CensusCache {
    state: Mutex<State>,
    sync_budget: Duration,
}

impl Default for CensusCache {
    fn default() -> Self {
        CensusCache::with_budget(SYNC_SCAN_BUDGET)
    }
}

impl CensusCache {
    pub fn with_budget(sync_budget: Duration) -> CensusCache {
        CensusCache {
            state: Mutex::default(),
            sync_budget,
        }
    }

    /// The census a scrape shows now: scanned now while scans are quick, else the newest one
    /// with the next scan started behind it.
    pub fn current(&self, ctx: &TelemetryContext) -> Result<Arc<Snapshot>, TelemetryError> {
        let max_series = read(&ctx.config).metrics.max_subscriber_series;
        {
            let mut state = self.lock();
            if let Some(latest) = state.latest.clone()
                && latest.took > self.sync_budget
                && latest.max_series == max_series
            {
                if !state.refreshing {
                    state.refreshing = true;
                    drop(state);
                    self.refresh_in_background(ctx, max_series);
                }
                return Ok(latest);
            }
        }
        let snapshot = Arc::new(scan(ctx, max_series)?);
        self.lock().latest = Some(snapshot.clone());
        Ok(snapshot)
    }

    fn refresh_in_background(&self, ctx: &TelemetryContext, max_series: usize) {
        let background = ctx.clone();
        let spawned = std::thread::Builder::new()
            .name("census".into())
            .spawn(move || {
                // Encoded here, off the scrape: with a census this slow every scrape would
                // otherwise see a new snapshot and encode its thousand series itself.
                let result = scan(&background, max_series).inspect(|snapshot| {
                    if let Err(err) = snapshot.encoded(super::collector::encode_census) {
                        tracing::warn!(error = %err, "cannot encode the subscriber census");
                    }
                });
                let mut state = background.census.lock();
                state.refreshing = false;
                match result {
                    Ok(snapshot) => state.latest = Some(Arc::new(snapshot)),
                    Err(err) => tracing::warn!(error = %err, "background subscriber scan failed"),
                }
            });
        if let Err(err) = spawned {
            tracing::warn!(error = %err, "cannot start the background subscriber scan");
            self.lock().refreshing = false;
        }
    }

    /// A panic while holding the lock left valid data behind.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn scan(ctx: &TelemetryContext, max_series: usize) -> Result<Snapshot, TelemetryError> {
    let started = Instant::now();
    let detector = Detector::now(ctx);
    let census = subscribers::census(ctx, max_series, &detector)?;
    Ok(Snapshot {
        census,
        started,
        took: started.elapsed(),
        max_series,
        encoded: OnceLock::new(),
    })
}
