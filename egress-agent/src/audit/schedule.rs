//! The daemon's periodic audit: a thread of its own with its own runtime (DNS and SMTP probes
//! take seconds, and the daemon's loop is single-threaded), reading the current config at
//! each round, so a reload's `[mail]` takes effect without a restart. Results replace the
//! previous report that `/metrics` exports.

use std::{
    path::PathBuf,
    sync::{Arc, RwLock, mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use super::{AuditInputs, Report};
use crate::{allowlist::store::Store, config::Config, paths::StateLayout};

/// How often the thread looks at the config and the stop signal.
const POLL: Duration = Duration::from_secs(1);

/// Stops the audit thread when dropped: at its next poll, or when a run in progress ends
/// (bounded by the probes' timeouts). Not joined, so SIGTERM never waits for a probe.
pub struct AuditThread {
    stop: Option<mpsc::Sender<()>>,
    _thread: JoinHandle<()>,
}

impl AuditThread {
    pub fn spawn(
        config_path: PathBuf,
        config: Arc<RwLock<Config>>,
        results: Arc<RwLock<Option<Report>>>,
    ) -> std::io::Result<AuditThread> {
        let (stop, stopped) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("egress-audit".into())
            .spawn(move || run_forever(&config_path, &config, &results, &stopped))?;
        Ok(AuditThread {
            stop: Some(stop),
            _thread: thread,
        })
    }
}

impl Drop for AuditThread {
    fn drop(&mut self) {
        drop(self.stop.take());
    }
}

fn run_forever(
    config_path: &std::path::Path,
    config: &RwLock<Config>,
    results: &RwLock<Option<Report>>,
    stopped: &mpsc::Receiver<()>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            tracing::error!(%err, "mail audit disabled: cannot start its runtime");
            return;
        }
    };
    let mut last_run: Option<Instant> = None;
    loop {
        let config = config.read().unwrap_or_else(|p| p.into_inner()).clone();
        let interval = config
            .mail
            .as_ref()
            .map(|mail| mail.audit_interval_seconds)
            .filter(|seconds| *seconds > 0)
            .map(Duration::from_secs);
        if let Some(interval) = interval
            && last_run.is_none_or(|at| at.elapsed() >= interval)
        {
            last_run = Some(Instant::now());
            match inputs(&config, config_path) {
                Ok(inputs) => match runtime.block_on(super::run(&inputs)) {
                    Ok(report) => {
                        let failed = report
                            .rows
                            .iter()
                            .filter(|r| r.result == super::Outcome::Fail)
                            .count();
                        tracing::info!(checks = report.rows.len(), failed, "mail audit finished");
                        *results.write().unwrap_or_else(|p| p.into_inner()) = Some(report);
                    }
                    Err(err) => tracing::warn!(%err, "mail audit could not run"),
                },
                Err(err) => tracing::warn!(%err, "mail audit could not run"),
            }
        }
        match stopped.recv_timeout(POLL) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
    }
}

fn inputs(config: &Config, config_path: &std::path::Path) -> Result<AuditInputs, String> {
    let store = Store::load(&StateLayout::new(&config.state_dir)).map_err(|e| e.to_string())?;
    AuditInputs::from_config(config, config_path, store.entries()).map_err(|e| e.to_string())
}
