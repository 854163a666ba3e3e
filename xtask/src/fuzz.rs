//! `cargo xtask fuzz`: placeholder until the parser fuzzer lands.

use anyhow::{Result, bail};

pub fn run(_seconds: u64) -> Result<()> {
    bail!("cargo xtask fuzz is not implemented yet")
}
