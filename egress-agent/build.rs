//! Builds the eBPF object (egress-ebpf) with the nightly toolchain and bpf-linker, so that it
//! can be embedded in the agent binary. `cargo xtask setup` installs both.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let metadata = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = metadata
        .packages
        .into_iter()
        .find(|package| package.name.as_str() == "egress-ebpf")
        .ok_or_else(|| anyhow!("egress-ebpf package not found in the workspace"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("egress-ebpf manifest has no parent directory"))?
        .as_str()
        .to_owned();
    aya_build::build_ebpf(
        [Package {
            name: "egress-ebpf",
            root_dir: &root_dir,
            ..Default::default()
        }],
        Toolchain::default(),
    )
    .context("building the eBPF object: run `cargo xtask setup` if nightly rust-src or bpf-linker is missing")
}
