//! Ctrl-C (and SIGTERM) during the demo: the handler only raises a flag; every wait in the
//! demo checks it and returns an error, so the lab's guards unwind and clean up in order.

use std::{
    sync::atomic::{AtomicBool, Ordering},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, bail};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler (once per process; the scenario test runs without it).
pub fn install() -> Result<()> {
    ctrlc::set_handler(|| {
        if !INTERRUPTED.swap(true, Ordering::SeqCst) {
            eprintln!("\ninterrupted: cleaning up the lab (this takes a few seconds)");
        }
    })
    .context("cannot install the Ctrl-C handler")
}

/// Fails when the demo was interrupted.
pub fn check() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted");
    }
    Ok(())
}

/// Sleeps in small steps, failing early when interrupted.
pub fn sleep(duration: Duration) -> Result<()> {
    let end = Instant::now() + duration;
    while let Some(left) = end.checked_duration_since(Instant::now()) {
        check()?;
        thread::sleep(left.min(Duration::from_millis(100)));
    }
    check()
}

/// Polls `ready` every 100 ms until it says yes, `timeout` passes, or the demo is interrupted.
pub fn wait_until(
    timeout: Duration,
    what: &str,
    mut ready: impl FnMut() -> Result<bool>,
) -> Result<()> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if ready()? {
            return Ok(());
        }
        sleep(Duration::from_millis(100))?;
    }
    bail!("timed out after {timeout:?} waiting for {what}")
}
