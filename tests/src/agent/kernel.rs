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

/// Element `index` of the pinned `u64` array map at `map`, as its eight bytes, read with
/// bpftool.
pub fn array_element(map: &str, index: u32) -> Vec<u8> {
    let key: Vec<String> = index
        .to_le_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let mut args = vec!["map", "lookup", "pinned", map, "key", "hex"];
    args.extend(key.iter().map(String::as_str));
    let entry = bpftool_json(&args);
    entry["value"]
        .as_array()
        .unwrap_or_else(|| panic!("bpftool printed no value bytes: {entry}"))
        .iter()
        .map(|byte| {
            let text = byte.as_str().unwrap_or_default().trim_start_matches("0x");
            u8::from_str_radix(text, 16).unwrap_or_else(|err| panic!("value byte {byte}: {err}"))
        })
        .collect()
}

/// The header of the pinned host table at `map` (`egress_common::host_table`, element 0), as
/// its eight bytes: size bits, half, seed.
pub fn host_table_header(map: &str) -> Vec<u8> {
    array_element(map, 0)
}

/// Zeroes every slot of the half of the pinned host table at `map` that its header names,
/// with bpftool: the program then finds none of the hosts. Returns the header it saw.
pub fn wipe_host_table(map: &str) -> Vec<u8> {
    let header = host_table_header(map);
    assert_ne!(header[0], 0, "the host table {map} is off: {header:?}");
    let base = 1 + u32::from(header[1] & 1) * egress_common::host_table::HALF;
    for index in base..base + (1 << header[0]) {
        let key: Vec<String> = index
            .to_le_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let mut update = vec!["map", "update", "pinned", map, "key", "hex"];
        update.extend(key.iter().map(String::as_str));
        update.extend([
            "value", "hex", "00", "00", "00", "00", "00", "00", "00", "00",
        ]);
        bpftool_ok(&update);
    }
    header
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
