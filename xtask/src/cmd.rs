//! Running external programs the way every xtask step does: show the command, run it, and
//! turn a failure into an error that names the command. The work is [`egress_lab::command`]'s
//! (the lab namespaces run their commands the same way); this adds xtask's `anyhow` errors.

use std::process::{Command, Output};

use anyhow::{Result, bail};
use egress_lab::{Echo, command};

pub use egress_lab::describe;

/// Runs commands, echoing each one first unless it is quiet (the demo's test mode).
#[derive(Clone, Copy, Debug)]
pub struct Runner {
    echo: Echo,
}

impl Runner {
    pub const fn echoing() -> Runner {
        Runner {
            echo: Echo::Commands,
        }
    }

    pub const fn quiet() -> Runner {
        Runner { echo: Echo::Quiet }
    }

    pub const fn echoes(self) -> bool {
        matches!(self.echo, Echo::Commands)
    }

    /// Runs with inherited stdio (quiet runners hide stdout); fails on a non-zero exit.
    pub fn run(self, cmd: &mut Command) -> Result<()> {
        Ok(command::run(cmd, self.echo)?)
    }

    /// Runs and returns the output whatever the exit status, for commands whose failure is
    /// an answer (probes, expected refusals).
    pub fn output(self, cmd: &mut Command) -> Result<Output> {
        Ok(command::output(cmd, self.echo)?)
    }

    /// Runs, fails on a non-zero exit (with its stderr), and returns stdout as text.
    pub fn capture(self, cmd: &mut Command) -> Result<String> {
        let out = command::checked(cmd, self.echo)?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// Lab namespaces echo their plumbing exactly when the runner that made them does.
impl From<Runner> for Echo {
    fn from(runner: Runner) -> Echo {
        runner.echo
    }
}

/// Whether this process runs as root (needed for packages, bpffs, namespaces and BPF).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Fails with a message that says how to run `what` as root.
pub fn require_root(what: &str, why: &str) -> Result<()> {
    if !is_root() {
        bail!("`cargo xtask {what}` needs root ({why}): run it as `sudo cargo xtask {what}`");
    }
    Ok(())
}
