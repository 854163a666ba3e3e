//! Long-running lab processes (the agent, smtp-sink), stopped when dropped.

use std::{
    fs::File,
    os::unix::process::CommandExt as _,
    path::Path,
    process::{Child, Command, Stdio},
    thread::sleep,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result};

use crate::cmd::{Runner, describe};

const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub struct Daemon {
    name: &'static str,
    child: Child,
}

impl Daemon {
    /// Starts `cmd` with its output going to `log`. It gets its own process group so Ctrl-C
    /// on the terminal reaches only the demo, which then stops everything in order.
    pub fn spawn(
        name: &'static str,
        cmd: &mut Command,
        log: &Path,
        runner: Runner,
    ) -> Result<Daemon> {
        if runner.echoes() {
            println!("  $ {} > {}", describe(cmd), log.display());
        }
        let out = File::create(log).with_context(|| format!("cannot create {}", log.display()))?;
        let err = out
            .try_clone()
            .with_context(|| format!("cannot reopen {}", log.display()))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .with_context(|| format!("cannot start {name}: `{}`", describe(cmd)))?;
        Ok(Daemon { name, child })
    }

    /// Whether it is still running (a daemon that died early explains a failed step).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn signal(&self, signal: i32) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill() with the pid of our own child, which we have not reaped yet.
            unsafe { libc::kill(pid, signal) };
        }
    }

    /// SIGTERM, then SIGKILL if it has not exited within the grace period.
    pub fn stop(&mut self) {
        if !self.is_running() {
            return;
        }
        self.signal(libc::SIGTERM);
        let start = Instant::now();
        while self.is_running() && start.elapsed() < STOP_GRACE {
            sleep(Duration::from_millis(50));
        }
        if self.is_running() {
            eprintln!("warning: {} did not stop on SIGTERM; killing it", self.name);
            self.signal(libc::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}
