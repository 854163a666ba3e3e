//! Checks and writes the seed corpus: `cargo run --manifest-path fuzz/Cargo.toml --bin gen_seeds -- DIR`.

use std::{fs, path::PathBuf};

fn main() -> std::io::Result<()> {
    let dir: PathBuf = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/seeds")));
    fs::create_dir_all(&dir)?;
    let ports = egress_fuzz::blocked_port_set();
    for seed in egress_fuzz::seeds::all() {
        // A seed the two decoders already disagree on is a finding, not a seed.
        egress_fuzz::check(&seed.frame, &ports);
        fs::write(dir.join(seed.name), &seed.frame)?;
    }
    Ok(())
}
