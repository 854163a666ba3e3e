//! `cargo xtask build`: setup, then every crate and target of the workspace.

use anyhow::Result;

use crate::{cargo, cmd::Runner, setup};

pub fn run() -> Result<()> {
    setup::run()?;
    build_workspace()
}

pub(crate) fn build_workspace() -> Result<()> {
    println!("==> Building the workspace (the agent's build script also builds the eBPF object)");
    Runner::echoing().run(cargo().args(["build", "--workspace", "--all-targets"]))
}
