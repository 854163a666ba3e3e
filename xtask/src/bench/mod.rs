//! `cargo xtask bench`: placeholder until the benchmark lands.

use anyhow::{Result, bail};
use clap::Args;

#[derive(Args, Debug, Default)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> Result<()> {
    bail!("cargo xtask bench is not implemented yet")
}
