//! Looking at (and tampering with) the kernel objects behind the agent's back, the way an
//! operator or another tool would: bpftool and ip.

use std::process::Command;

use crate::netns::{Netns, exec_ok};

/// `bpftool -j ARGS`, parsed; panics with bpftool's stderr when it fails.
pub fn bpftool_json(args: &[&str]) -> serde_json::Value {
    let out = bpftool(args);
    assert!(
        out.status.success(),
        "bpftool {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|err| panic!("bpftool {args:?} printed no JSON: {err}"))
}

/// `bpftool -j ARGS` whatever its exit status.
pub fn bpftool(args: &[&str]) -> std::process::Output {
    Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("cannot run bpftool (Debian package bpftool)")
}

/// The id of a pinned bpf_link and of the program it runs.
pub fn pinned_link(pin: &std::path::Path) -> (u64, u64) {
    let path = pin.to_str().expect("utf-8 pin path");
    let info = bpftool_json(&["link", "show", "pinned", path]);
    (
        info["id"].as_u64().expect("link id"),
        info["prog_id"].as_u64().expect("link prog_id"),
    )
}

/// The XDP program on `interface` in `ns`, if any (any mode).
pub fn xdp_prog_id(ns: &Netns, interface: &str) -> Option<u64> {
    let out = exec_ok(ns, &["ip", "-j", "-d", "link", "show", "dev", interface]);
    let links: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("ip -j link show prints JSON");
    let xdp = &links[0]["xdp"];
    xdp["prog"]["id"]
        .as_u64()
        .or_else(|| xdp["attached"][0]["prog"]["id"].as_u64())
}

/// Number of keys in a pinned map.
pub fn map_len(pin: &std::path::Path) -> usize {
    let path = pin.to_str().expect("utf-8 pin path");
    bpftool_json(&["map", "dump", "pinned", path])
        .as_array()
        .map_or(0, Vec::len)
}

/// An LPM-trie key for an IPv4 prefix, as bpftool's `key hex` arguments.
pub fn lpm_v4_key(address: std::net::Ipv4Addr, prefix_len: u32) -> Vec<String> {
    prefix_len
        .to_le_bytes()
        .iter()
        .chain(address.octets().iter())
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Whether the pinned map at `map` holds `key` (bytes as hex words, see [`lpm_v4_key`]).
pub fn has_key(map: &str, key: &[String]) -> bool {
    let mut args = vec!["map", "lookup", "pinned", map, "key", "hex"];
    args.extend(key.iter().map(String::as_str));
    bpftool(&args).status.success()
}

/// Runs bpftool with `args`, panicking with its stderr when it fails.
pub fn bpftool_ok(args: &[&str]) {
    let out = bpftool(args);
    assert!(
        out.status.success(),
        "bpftool {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ids of the programs on the tcx egress hook of `interface` in `ns` (empty where the
/// kernel has no tcx or nothing is attached).
pub fn tcx_egress_programs(ns: &Netns, interface: &str) -> Vec<u32> {
    use aya::programs::{SchedClassifier, TcAttachType};
    crate::netns::in_netns(ns, || {
        SchedClassifier::query_tcx(interface, TcAttachType::Egress)
            .map(|(_, programs)| programs.iter().map(|p| p.id()).collect())
            .unwrap_or_default()
    })
}
