//! `egress-agent run`: the daemon's event loop. Everything that changes state (requests,
//! reloads, the periodic check) runs on this one loop, so changes never interleave.

mod agent;
mod drift;
mod fleet;
mod requests;
mod trace;
mod watch;

use std::{path::Path, time::Duration};

use tokio::{
    signal::unix::{SignalKind, signal},
    sync::mpsc,
};

pub use agent::{Agent, DaemonError};

use crate::control::server;

/// How often interfaces and links are checked.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the daemon until SIGTERM/SIGINT (enforcement stays) or a `detach` request.
pub async fn run(config_path: &Path) -> Result<(), DaemonError> {
    let mut agent = Agent::start(config_path)?;
    let listener = server::bind(Path::new(&agent.config().control.socket))?;
    let socket_path = agent.config().control.socket.clone();
    tracing::info!(socket = %socket_path, "control socket listening");
    let (tx, mut requests) = mpsc::channel(64);
    let server = tokio::spawn(server::serve(listener, tx));
    agent.spawn_telemetry();
    let _audit = crate::audit::schedule::AuditThread::spawn(
        config_path.to_owned(),
        agent.context.config.clone(),
        agent.context.audit.clone(),
    )
    .inspect_err(|err| tracing::error!(%err, "mail audit disabled: cannot start its thread"));

    let signal_err = |source| DaemonError::Signal { source };
    let mut hangup = signal(SignalKind::hangup()).map_err(signal_err)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_err)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_err)?;
    let mut ticker = tokio::time::interval(CHECK_INTERVAL);
    // After a long reload, one check rather than a burst of the ticks it blocked.
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut until_drift_check = agent.drift_check_ticks();
    let mut fleet_updates = agent.fleet_updates();
    let mut drift_check = None;
    loop {
        tokio::select! {
            _ = hangup.recv() => {
                agent.reload();
                // The reload just made the maps match, and the allowlist's size (which
                // spreads the checks out) may have changed.
                until_drift_check = agent.drift_check_ticks();
            }
            _ = terminate.recv() => {
                tracing::info!("SIGTERM: exiting, programs and maps stay pinned and enforcing");
                break;
            }
            _ = interrupt.recv() => {
                tracing::info!("SIGINT: exiting, programs and maps stay pinned and enforcing");
                break;
            }
            Some((request, reply)) = requests.recv() => {
                if agent.handle(request, reply) {
                    // Let the connection task flush the reply before the process exits.
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    break;
                }
            }
            published = next_fleet_update(&mut fleet_updates) => {
                agent.fleet_update(&published);
            }
            _ = ticker.tick() => {
                agent.check_interfaces();
                until_drift_check = until_drift_check.saturating_sub(1);
                if until_drift_check == 0 && drift_check.is_none() {
                    drift_check = Some(agent.start_drift_check());
                }
            }
            report = next_drift_report(&mut drift_check) => {
                agent.finish_drift_check(report);
                until_drift_check = agent.drift_check_ticks();
            }
        }
    }
    server.abort();
    agent.stop_telemetry();
    if let Err(err) = std::fs::remove_file(&socket_path) {
        tracing::debug!(%err, socket = %socket_path, "cannot remove control socket");
    }
    Ok(())
}

/// The fleet worker's next state; never, without `[fleet]` or once the worker is gone.
async fn next_fleet_update(
    updates: &mut Option<tokio::sync::watch::Receiver<crate::fleet::Published>>,
) -> crate::fleet::Published {
    if let Some(receiver) = updates.as_mut()
        && receiver.changed().await.is_ok()
    {
        return receiver.borrow_and_update().clone();
    }
    *updates = None;
    std::future::pending().await
}

/// The running drift check's report; never, while none runs.
async fn next_drift_report(
    running: &mut Option<tokio::sync::oneshot::Receiver<drift::DriftReport>>,
) -> drift::DriftReport {
    if let Some(receiver) = running.as_mut() {
        let report = receiver.await;
        *running = None;
        if let Ok(report) = report {
            return report;
        }
    }
    std::future::pending().await
}
