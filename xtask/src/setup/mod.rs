//! `cargo xtask setup`: everything building and testing egress needs, installed only when
//! missing, so it is safe to run again and again.

mod packages;
pub mod toolchain;

use std::{fs, process::Command};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{Runner, require_root};

const BPFFS: &str = "/sys/fs/bpf";
const MIN_KERNEL: (u32, u32) = (6, 1);

pub fn run() -> Result<()> {
    require_root(
        "setup",
        "it installs Debian packages, mounts bpffs and loads eBPF programs",
    )?;
    let runner = Runner::echoing();
    println!("==> Checking what egress needs on this machine");
    check_kernel()?;
    toolchain::ensure_rust_src(runner)?;
    toolchain::ensure_bpf_linker(runner)?;
    packages::ensure(runner)?;
    crate::vm::kernel::ensure(runner)?;
    crate::package::ensure_cargo_deb(runner)?;
    ensure_bpffs(runner)?;
    println!("==> Setup complete");
    Ok(())
}

fn check_kernel() -> Result<()> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease")
        .context("cannot read /proc/sys/kernel/osrelease")?;
    let release = release.trim();
    let version = parse_kernel_version(release)
        .with_context(|| format!("cannot read a version out of kernel release {release:?}"))?;
    if version < MIN_KERNEL {
        bail!(
            "Linux {release} is too old: egress needs Linux >= {}.{} (BPF links, ring buffer, XDP test runs)",
            MIN_KERNEL.0,
            MIN_KERNEL.1
        );
    }
    println!(
        "* Linux {release} (>= {}.{} needed): fine",
        MIN_KERNEL.0, MIN_KERNEL.1
    );
    Ok(())
}

/// `6.18.0-1-amd64` → (6, 18).
fn parse_kernel_version(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn ensure_bpffs(runner: Runner) -> Result<()> {
    println!("* bpffs on {BPFFS} (where the agent pins programs and maps)");
    let mounts =
        fs::read_to_string("/proc/self/mounts").context("cannot read /proc/self/mounts")?;
    if bpffs_mounted(&mounts) {
        println!("  already mounted");
        return Ok(());
    }
    runner.run(Command::new("mount").args(["-t", "bpf", "bpf", BPFFS]))
}

fn bpffs_mounted(mounts: &str) -> bool {
    mounts.lines().any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.get(1) == Some(&BPFFS) && fields.get(2) == Some(&"bpf")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kernel_versions() {
        assert_eq!(parse_kernel_version("6.18.0-1-amd64"), Some((6, 18)));
        assert_eq!(parse_kernel_version("6.6.30"), Some((6, 6)));
        assert!(parse_kernel_version("6.1.0").is_some_and(|v| v >= MIN_KERNEL));
        assert!(parse_kernel_version("5.15.0").is_some_and(|v| v < MIN_KERNEL));
        assert_eq!(parse_kernel_version("weird"), None);
    }

    #[test]
    fn finds_bpffs_only_on_its_mount_point() {
        let without = "sysfs /sys sysfs rw 0 0\nnone /sys/fs/bpf/x bpf rw 0 0\n";
        assert!(!bpffs_mounted(without));
        assert!(bpffs_mounted(
            "sysfs /sys sysfs rw 0 0\nbpf /sys/fs/bpf bpf rw 0 0\n"
        ));
    }
}
