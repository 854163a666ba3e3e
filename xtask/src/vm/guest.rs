//! The guest: a busybox initramfs of our own that loads the virtio and 9p modules, mounts the
//! host's root read-only over 9p, chroots into it and runs the test script; a second,
//! writable 9p share carries progress, logs and exit codes out. Module auto-loading (veth,
//! sch_ingress, cls_bpf) runs busybox modprobe from the initramfs root, which sees the
//! package's module tree through a symlink into the host root.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, Result, bail};

use super::kernel::Kernel;

/// Loaded by hand, in this order, before the host root can be mounted.
const BOOT_MODULES: &[&str] = &[
    "drivers/virtio/virtio_ring",
    "drivers/virtio/virtio",
    "drivers/virtio/virtio_pci_modern_dev",
    "drivers/virtio/virtio_pci_legacy_dev",
    "drivers/virtio/virtio_pci",
    "fs/netfs/netfs",
    "fs/fscache/fscache",
    "net/9p/9pnet",
    "net/9p/9pnet_virtio",
    "fs/9p/9p",
];

/// Where the writable share appears inside the chroot.
pub const SHARE: &str = "/tmp/egress-vm";

const INIT: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "egress-vm: insmod $m failed"; done
ln -sf /bin/busybox /sbin/modprobe
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288 hostroot /newroot || { echo "egress-vm: cannot mount the host root"; poweroff -f; }
for d in proc sys dev; do mount --rbind /$d /newroot/$d; done
mount -t tmpfs tmp /newroot/tmp; mount -t tmpfs run /newroot/run
mount -t bpf bpf /newroot/sys/fs/bpf
mkdir -p /newroot/tmp/egress-vm
mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288 out /newroot/tmp/egress-vm || { echo "egress-vm: cannot mount the results share"; poweroff -f; }
echo booted > /newroot/tmp/egress-vm/progress
chroot /newroot /bin/sh /tmp/egress-vm/run.sh
echo $? > /newroot/tmp/egress-vm/exit-code
sync
poweroff -f
"#;

/// Builds the initramfs (uncompressed cpio) for `kernel` at `out`.
pub fn build_initramfs(kernel: &Kernel, work: &Path, out: &Path) -> Result<()> {
    let tree = work.join("initramfs");
    if tree.exists() {
        fs::remove_dir_all(&tree).with_context(|| format!("cannot clear {}", tree.display()))?;
    }
    for dir in [
        "bin",
        "sbin",
        "proc",
        "sys",
        "dev",
        "newroot",
        "modules",
        "lib/modules",
    ] {
        fs::create_dir_all(tree.join(dir))
            .with_context(|| format!("cannot create {}", tree.join(dir).display()))?;
    }
    fs::copy("/usr/bin/busybox", tree.join("bin/busybox"))
        .context("cannot copy /usr/bin/busybox (Debian package busybox-static)")?;
    let mut order = String::new();
    for module in BOOT_MODULES {
        let from = kernel.modules().join("kernel").join(format!("{module}.ko"));
        let name = module.rsplit('/').next().unwrap_or(module);
        fs::copy(&from, tree.join("modules").join(format!("{name}.ko")))
            .with_context(|| format!("cannot copy module {}", from.display()))?;
        order += name;
        order += "\n";
    }
    fs::write(tree.join("modules/order"), order).context("cannot write modules/order")?;
    // modprobe in the initramfs finds the package's modules through the host root.
    let modules = Path::new("/newroot").join(
        kernel
            .modules()
            .strip_prefix("/")
            .context("the kernel cache path is not absolute")?,
    );
    std::os::unix::fs::symlink(&modules, tree.join("lib/modules").join(&kernel.release))
        .context("cannot link the module tree")?;
    let init = tree.join("init");
    fs::write(&init, INIT).context("cannot write init")?;
    fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .context("cannot make init executable")?;
    let status = Command::new("sh")
        .current_dir(&tree)
        .arg("-c")
        .arg(format!(
            "find . | cpio -o -H newc --quiet > '{}'",
            out.display()
        ))
        .status()
        .context("cannot run cpio (Debian package cpio)")?;
    if !status.success() {
        bail!("cpio failed building {}", out.display());
    }
    Ok(())
}

/// The qemu command line: TCG (KVM is software-nested here), the decompressed kernel, the
/// host root read-only and `share` writable over 9p, the serial console on stdout.
pub fn qemu(kernel: &Kernel, initramfs: &Path, share: &Path) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args([
        "-accel",
        "tcg,thread=multi",
        "-cpu",
        "max",
        "-m",
        "2G",
        "-smp",
        "2",
    ])
    .args([
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
        "-serial",
        "stdio",
    ])
    .arg("-kernel")
    .arg(&kernel.vmlinux)
    .arg("-initrd")
    .arg(initramfs)
    .args([
        "-append",
        "console=ttyS0 quiet loglevel=0 panic=-1 rdinit=/init",
        "-fsdev",
        "local,id=root,path=/,readonly=on,security_model=none,multidevs=remap",
        "-device",
        "virtio-9p-pci,fsdev=root,mount_tag=hostroot",
        "-fsdev",
    ])
    .arg(format!(
        "local,id=out,path={},security_model=none",
        share.display()
    ))
    .args(["-device", "virtio-9p-pci,fsdev=out,mount_tag=out"]);
    cmd
}
