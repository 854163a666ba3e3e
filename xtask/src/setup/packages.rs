//! Debian packages the tests, the demo and the bench use; only missing ones are installed.

use std::{
    collections::HashSet,
    io::Write as _,
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, bail};

use crate::cmd::{Runner, describe};

pub const PACKAGES: &[&str] = &[
    "bpftool",
    "xdp-tools",
    "nftables",
    "iptables",
    "iproute2",
    "python3-scapy",
    "prometheus",
    "postfix",
    "swaks",
    "tcpdump",
    "netsniff-ng",
    "libcap2-bin",
    "util-linux",
    // systemd-analyze checks deploy/systemd/egress-agent.service in the tests.
    "systemd",
    // Inbound and audit tests: a real authoritative DNS server for the lab's zones.
    "knot",
    "knot-dnsutils",
    // Audit tests: a Postfix smart relay with SASL (Dovecot's auth) and a test CA.
    "dovecot-core",
    "openssl",
    // Traceability tests: FreeRADIUS's radclient and dictionary, the history on disk.
    "freeradius-utils",
    "sqlite3",
    // Notification tests: the shipped alerts routed by a real Alertmanager.
    "prometheus-alertmanager",
    // Fleet tests: a real etcd cluster; etcd-client needs protoc at build time.
    "etcd-server",
    "etcd-client",
    "protobuf-compiler",
    // the well-known .proto files (descriptor.proto, ...) that etcd-client's build script imports
    "libprotobuf-dev",
    // Kernel tests: Debian 12's kernel booted under TCG with a busybox initramfs.
    "qemu-system-x86",
    "busybox-static",
    "cpio",
    // Package tests: lintian and man for the .deb and its man page.
    "lintian",
    "man-db",
];

/// Without this answer the postfix package would ask interactively, and any other answer
/// configures and starts a system-wide mail server; the demo runs its own instances.
const POSTFIX_PRESEED: &str = "postfix postfix/main_mailer_type select No configuration\n";

pub fn ensure(runner: Runner) -> Result<()> {
    println!("* Debian packages: {}", PACKAGES.join(" "));
    let listed = runner.output(
        Command::new("dpkg-query")
            .args(["-W", "-f=${Package} ${db:Status-Status}\\n"])
            .args(PACKAGES),
    )?;
    // dpkg-query exits 1 when some package is unknown to it, which just means "missing".
    let missing = missing_packages(&String::from_utf8_lossy(&listed.stdout), PACKAGES);
    if missing.is_empty() {
        println!("  all installed");
        return Ok(());
    }
    println!("  missing: {}", missing.join(" "));
    if missing.contains(&"postfix") {
        preseed_postfix(runner)?;
    }
    runner.run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            .args(["-q", "update"]),
    )?;
    runner.run(
        Command::new("apt-get")
            .env("DEBIAN_FRONTEND", "noninteractive")
            // Another apt run (a second checkout's setup) waits instead of failing.
            .args(["-q", "-y", "-o", "DPkg::Lock::Timeout=600"])
            .args(["--no-install-recommends", "install"])
            .args(&missing),
    )
}

fn preseed_postfix(runner: Runner) -> Result<()> {
    let mut cmd = Command::new("debconf-set-selections");
    if runner.echoes() {
        println!("  $ echo '{}' | {}", POSTFIX_PRESEED.trim(), describe(&cmd));
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .spawn()
        .context("cannot start debconf-set-selections")?;
    child
        .stdin
        .take()
        .context("debconf-set-selections has no stdin")?
        .write_all(POSTFIX_PRESEED.as_bytes())
        .context("cannot write to debconf-set-selections")?;
    let status = child
        .wait()
        .context("debconf-set-selections did not finish")?;
    if !status.success() {
        bail!("debconf-set-selections failed ({status})");
    }
    Ok(())
}

/// Packages of `wanted` not reported as `installed` by `dpkg-query -W -f='${Package} ${db:Status-Status}\n'`.
pub fn missing_packages<'a>(dpkg_query: &str, wanted: &[&'a str]) -> Vec<&'a str> {
    let installed: HashSet<&str> = dpkg_query
        .lines()
        .filter_map(|line| line.split_once(' '))
        .filter(|(_, status)| status.trim() == "installed")
        .map(|(name, _)| name)
        .collect();
    wanted
        .iter()
        .copied()
        .filter(|name| !installed.contains(name))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_removed_packages_are_missing() {
        let listed = "bpftool installed\npostfix config-files\nswaks installed\n";
        assert_eq!(
            missing_packages(listed, &["bpftool", "postfix", "swaks", "netsniff-ng"]),
            vec!["postfix", "netsniff-ng"]
        );
    }
}
