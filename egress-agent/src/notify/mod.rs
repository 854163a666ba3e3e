//! Notification of suspected bots: one evidence report per flag transition, stored in the
//! history database before anything else, then delivered to the abuse desk's webhook by a
//! thread of its own (`delivery`). Storing is a short local transaction on the blocking pool;
//! delivery never slows the dataplane, the event loop or the control socket.

pub mod delivery;
pub mod flags;
pub mod metrics;
pub mod queue;
pub mod report;
pub mod samples;

use std::{
    path::PathBuf,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering::Relaxed},
        mpsc::{self, SyncSender},
    },
    thread::JoinHandle,
    time::Duration,
};

use rusqlite::Connection;

pub use report::Report;

use crate::{
    config::Config,
    history::{History, HistoryError, now_ms},
    identity::listener::read_secret,
};

/// `egress_notifications_total{result}` and `egress_notifications_queued`.
#[derive(Debug, Default)]
pub struct NotifyStats {
    pub delivered: AtomicU64,
    pub failed_attempt: AtomicU64,
    pub dropped: AtomicU64,
    pub queued: AtomicU64,
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("cannot read the webhook secret {path} (notify.secret_file): {source}")]
    Secret {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the webhook secret {path} (notify.secret_file) is empty")]
    EmptySecret { path: PathBuf },
    #[error("cannot start the notification thread: {0}")]
    Thread(std::io::Error),
}

/// Stores reports and wakes the delivery thread.
pub struct Notifier {
    history: History,
    writer: Mutex<Connection>,
    pub stats: Arc<NotifyStats>,
    /// Present when a webhook is configured.
    wake: Option<SyncSender<()>>,
    max_queued: u64,
    pub router: String,
}

impl Notifier {
    /// Opens the writer and, with `[notify]`, starts the delivery thread.
    pub fn start(
        config: &Config,
        history: &History,
    ) -> Result<(Notifier, Option<JoinHandle<()>>), NotifyError> {
        let stats = Arc::new(NotifyStats::default());
        let writer = history.connect()?;
        // A transition last seen two windows ago has ended (or can match no flag any more).
        let window_ms =
            i64::try_from(config.detection.window_seconds.saturating_mul(1000)).unwrap_or(i64::MAX);
        flags::prune(
            &writer,
            now_ms().saturating_sub(window_ms.saturating_mul(2)),
        )
        .map_err(|e| history.error(e))?;
        stats.queued.store(
            queue::count_queued(&writer).map_err(|e| history.error(e))?,
            Relaxed,
        );
        let mut notifier = Notifier {
            history: history.clone(),
            writer: Mutex::new(writer),
            stats: Arc::clone(&stats),
            wake: None,
            max_queued: u64::MAX,
            router: report::router_name(),
        };
        let Some(notify) = &config.notify else {
            return Ok((notifier, None));
        };
        let secret = match &notify.secret_file {
            None => None,
            Some(file) => {
                let path = PathBuf::from(file);
                let secret = read_secret(&path).map_err(|source| NotifyError::Secret {
                    path: path.clone(),
                    source,
                })?;
                if secret.is_empty() {
                    return Err(NotifyError::EmptySecret { path });
                }
                Some(secret)
            }
        };
        let (wake, woken) = mpsc::sync_channel(1);
        notifier.wake = Some(wake);
        notifier.max_queued = notify.max_queued;
        let deliverer = delivery::Deliverer {
            url: notify.webhook_url.clone(),
            secret,
            timeout: Duration::from_secs(notify.timeout_seconds),
            retention_ms: i64::from(config.retention_days()) * 86_400_000,
        };
        let thread = delivery::spawn(deliverer, history, stats, woken)?;
        Ok((notifier, Some(thread)))
    }

    /// The report of `subscriber`'s flag transition when the flag seen at `flag_ms` is still
    /// that transition (see `flags`).
    pub fn active_report(
        &self,
        subscriber: &str,
        flag_ms: i64,
        window_ms: i64,
    ) -> Result<Option<String>, HistoryError> {
        let conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        flags::active_report(&conn, subscriber, flag_ms, window_ms)
            .map_err(|e| self.history.error(e))
    }

    /// Records that these transitions were seen active (subscriber, when) and that these
    /// others ended, in one transaction.
    pub fn track_flags(
        &self,
        seen: &[(String, i64)],
        ended: &[String],
    ) -> Result<(), HistoryError> {
        if seen.is_empty() && ended.is_empty() {
            return Ok(());
        }
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        (|| {
            let tx = conn.transaction()?;
            for (subscriber, flag_ms) in seen {
                flags::touch(&tx, subscriber, *flag_ms)?;
            }
            for subscriber in ended {
                flags::clear(&tx, subscriber)?;
            }
            tx.commit()
        })()
        .map_err(|e| self.history.error(e))
    }

    /// Stores new reports (one transaction), queued for delivery when a webhook is
    /// configured, each as its subscriber's active flag transition; returns the ids of those
    /// not stored before.
    pub fn store(&self, reports: &[(Report, i64)]) -> Result<Vec<String>, HistoryError> {
        let state = if self.wake.is_some() {
            queue::QUEUED
        } else {
            queue::STORED
        };
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let now = now_ms();
        let stored = (|| {
            let tx = conn.transaction()?;
            let mut fresh = Vec::new();
            for (report, flagged_ms) in reports {
                let body = serde_json::to_string(report)
                    .map_err(|err| rusqlite::Error::ToSqlConversionFailure(Box::new(err)))?;
                let new = queue::insert(
                    &tx,
                    &report.report_id,
                    &report.subscriber,
                    *flagged_ms,
                    &body,
                    state,
                    now,
                )?;
                flags::mark(&tx, &report.subscriber, &report.report_id, *flagged_ms)?;
                if new {
                    fresh.push(report.report_id.clone());
                }
            }
            let dropped = queue::enforce_bound(&tx, self.max_queued)?;
            let queued = queue::count_queued(&tx)?;
            tx.commit()?;
            Ok::<_, rusqlite::Error>((fresh, dropped, queued))
        })()
        .map_err(|e| self.history.error(e))?;
        let (fresh, dropped, queued) = stored;
        self.stats.queued.store(queued, Relaxed);
        if dropped > 0 {
            self.stats.dropped.fetch_add(dropped, Relaxed);
            tracing::warn!(
                dropped,
                max_queued = self.max_queued,
                "notification queue full: the oldest undelivered reports were dropped"
            );
        }
        if let Some(wake) = &self.wake
            && !fresh.is_empty()
        {
            // A full channel means a wake-up is already pending.
            let _ = wake.try_send(());
        }
        Ok(fresh)
    }
}
