//! `run --config FILE`: the daemon.

use super::{CliError, ConfigArg};
use crate::daemon::{self, DaemonError};

const MAX_SCANS: usize = 4;

pub fn run(arg: &ConfigArg) -> Result<(), CliError> {
    return_large_buffers_when_freed();
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

/// glibc raises its mmap threshold each time a large mmapped block is freed (up to 32 MB), so
/// the next reload's config text, lists and sort buffers come from the heap and stay resident
/// once freed: a million-prefix reload would leave its peak behind. A fixed threshold keeps
/// large buffers mmapped, and a freed one goes back to the kernel at once.
fn return_large_buffers_when_freed() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
    }
}
