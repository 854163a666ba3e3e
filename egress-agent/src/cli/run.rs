//! `run --config FILE`: the daemon.

use super::{CliError, ConfigArg};
use crate::daemon::{self, DaemonError};

pub fn run(arg: &ConfigArg) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::Failed(format!("cannot start the async runtime: {err}")))?;
    runtime
        .block_on(daemon::run(&arg.config))
        .map_err(|err| match err {
            DaemonError::Config(err) => CliError::Invalid(err.to_string()),
            other => CliError::Failed(other.to_string()),
        })
}
