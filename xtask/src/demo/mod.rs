//! `cargo xtask demo`: the whole story in network namespaces with real mail servers.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct DemoArgs {
    /// No narration: only errors (what the scenario test uses)
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(_args: DemoArgs) -> Result<()> {
    bail!("cargo xtask demo is not implemented yet")
}
