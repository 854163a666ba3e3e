//! Running external programs the way every xtask step does: show the command, run it, and
//! turn a failure into an error that names the command.

use std::{
    ffi::OsStr,
    process::{Command, Output, Stdio},
};

use anyhow::{Context as _, Result, bail};

/// Runs commands, echoing each one first unless it is quiet (the demo's test mode).
#[derive(Clone, Copy, Debug)]
pub struct Runner {
    echo: bool,
}

impl Runner {
    pub const fn echoing() -> Runner {
        Runner { echo: true }
    }

    pub const fn quiet() -> Runner {
        Runner { echo: false }
    }

    pub const fn echoes(self) -> bool {
        self.echo
    }

    fn show(self, cmd: &Command) {
        if self.echo {
            println!("  $ {}", describe(cmd));
        }
    }

    /// Runs with inherited stdio (quiet runners hide stdout); fails on a non-zero exit.
    pub fn run(self, cmd: &mut Command) -> Result<()> {
        self.show(cmd);
        if !self.echo {
            cmd.stdout(Stdio::null());
        }
        let status = cmd
            .status()
            .with_context(|| format!("cannot start `{}`", describe(cmd)))?;
        if !status.success() {
            bail!("`{}` failed ({status})", describe(cmd));
        }
        Ok(())
    }

    /// Runs and returns the output whatever the exit status, for commands whose failure is
    /// an answer (probes, expected refusals).
    pub fn output(self, cmd: &mut Command) -> Result<Output> {
        self.show(cmd);
        cmd.stdin(Stdio::null())
            .output()
            .with_context(|| format!("cannot start `{}`", describe(cmd)))
    }

    /// Runs, fails on a non-zero exit (with its stderr), and returns stdout as text.
    pub fn capture(self, cmd: &mut Command) -> Result<String> {
        let out = self.output(cmd)?;
        if !out.status.success() {
            bail!(
                "`{}` failed ({}): {}",
                describe(cmd),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// `prog arg arg` as a shell user would type it (quotes around arguments with spaces).
pub fn describe(cmd: &Command) -> String {
    let mut words = vec![quote(cmd.get_program())];
    words.extend(cmd.get_args().map(quote));
    words.join(" ")
}

fn quote(word: &OsStr) -> String {
    let text = word.to_string_lossy();
    if text.is_empty() || text.contains(|c: char| c.is_whitespace() || c == '"') {
        format!("'{text}'")
    } else {
        text.into_owned()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_words_with_spaces() {
        let mut cmd = Command::new("egress-agent");
        cmd.args([
            "exempt",
            "add",
            "192.0.2.7",
            "--comment",
            "business customer",
        ]);
        assert_eq!(
            describe(&cmd),
            "egress-agent exempt add 192.0.2.7 --comment 'business customer'"
        );
    }
}
