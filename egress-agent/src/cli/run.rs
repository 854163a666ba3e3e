//! `run --config FILE`: the daemon.

use super::{CliError, ConfigArg};
use crate::daemon::{self, DaemonError};

const MAX_SCANS: usize = 4;

pub fn run(arg: &ConfigArg) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        // Subscriber-map scans (scrapes, `top`, `subscriber`, detection) run on the blocking
        // pool; a few at a time keeps a burst of requests from costing a thread each.
        .max_blocking_threads(MAX_SCANS)
        .build()
        .map_err(|err| CliError::Failed(format!("cannot start the async runtime: {err}")))?;
    runtime
        .block_on(daemon::run(&arg.config))
        .map_err(|err| match err {
            DaemonError::Config(err) => CliError::Invalid(err.to_string()),
            other => CliError::Failed(other.to_string()),
        })
}
