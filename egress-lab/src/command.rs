//! Running external programs: optionally show the command first (the demo narrates its
//! plumbing), run it, and turn a failure into an error that names the command.

use std::{
    ffi::OsStr,
    process::{Command, Output, Stdio},
};

use crate::LabError;

/// Whether commands are shown (`  $ ip -n ... link add ...`) before they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    Commands,
    /// Also hides the commands' stdout (their stderr still shows, it explains failures).
    Quiet,
}

impl Echo {
    fn show(self, cmd: &Command) {
        if self == Echo::Commands {
            println!("  $ {}", describe(cmd));
        }
    }
}

/// Runs with inherited stdio (quiet hides stdout); fails on a non-zero exit.
pub fn run(cmd: &mut Command, echo: Echo) -> Result<(), LabError> {
    echo.show(cmd);
    if echo == Echo::Quiet {
        cmd.stdout(Stdio::null());
    }
    let status = cmd.status().map_err(|source| LabError::Start {
        command: describe(cmd),
        source,
    })?;
    if !status.success() {
        return Err(LabError::Failed {
            command: describe(cmd),
            status,
            stderr: String::new(),
        });
    }
    Ok(())
}

/// Runs and returns the output whatever the exit status, for commands whose failure is an
/// answer (probes, expected refusals).
pub fn output(cmd: &mut Command, echo: Echo) -> Result<Output, LabError> {
    echo.show(cmd);
    cmd.stdin(Stdio::null())
        .output()
        .map_err(|source| LabError::Start {
            command: describe(cmd),
            source,
        })
}

/// Runs, fails on a non-zero exit (with its stderr), and returns the output.
pub fn checked(cmd: &mut Command, echo: Echo) -> Result<Output, LabError> {
    let out = output(cmd, echo)?;
    if !out.status.success() {
        return Err(LabError::Failed {
            command: describe(cmd),
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
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

    #[test]
    fn a_failing_command_is_named_with_its_stderr() {
        let err = checked(
            Command::new("sh").args(["-c", "echo nope >&2; exit 3"]),
            Echo::Quiet,
        )
        .expect_err("exit 3 is a failure");
        let text = err.to_string();
        assert!(
            text.starts_with("`sh -c 'echo nope >&2; exit 3'` failed ("),
            "{text}"
        );
        assert!(text.ends_with(": nope"), "{text}");
    }
}
