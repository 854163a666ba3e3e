//! The nftables side of the veth comparison: a netdev-ingress chain that drops TCP port 25
//! unless the source is in an interval set holding the same prefixes as our allowlist.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    process::{Command, Stdio},
};

use anyhow::{Context as _, Result, anyhow, bail};

use crate::netns::Netns;

use super::lab;

const TABLE: &str = "egress_bench";

pub fn ruleset(ifname: &str, allow_v4: &[(Ipv4Addr, u8)], allow_v6: &[(Ipv6Addr, u8)]) -> String {
    let v4: Vec<String> = allow_v4
        .iter()
        .map(|(address, len)| format!("{address}/{len}"))
        .collect();
    let v6: Vec<String> = allow_v6
        .iter()
        .map(|(address, len)| format!("{address}/{len}"))
        .collect();
    let mut rules = String::new();
    let _ = write!(
        rules,
        "table netdev {TABLE} {{\n\
         \tset allow4 {{ type ipv4_addr; flags interval; auto-merge; elements = {{ {} }} }}\n\
         \tset allow6 {{ type ipv6_addr; flags interval; auto-merge; elements = {{ {} }} }}\n\
         \tcounter smtp_drops {{ }}\n\
         \tchain ingress {{\n\
         \t\ttype filter hook ingress device \"{ifname}\" priority 0; policy accept;\n\
         \t\ttcp dport 25 ip saddr != @allow4 counter name \"smtp_drops\" drop\n\
         \t\ttcp dport 25 ip6 saddr != @allow6 counter name \"smtp_drops\" drop\n\
         \t}}\n}}\n",
        v4.join(", "),
        v6.join(", ")
    );
    rules
}

pub fn load(netns: &Netns, rules: &str) -> Result<()> {
    let net = format!("--net={}", netns.path().display());
    let mut child = Command::new("nsenter")
        .args([net.as_str(), "nft", "-f", "-"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting nft (is nftables installed?)")?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow!("nft has no stdin"))?
        .write_all(rules.as_bytes())
        .context("feeding the ruleset to nft")?;
    let out = child.wait_with_output().context("waiting for nft")?;
    if !out.status.success() {
        bail!(
            "nft -f in netns {} failed: {}",
            netns.name(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

pub fn dropped(netns: &Netns) -> Result<u64> {
    let text = lab::run(
        netns,
        &[
            "nft",
            "-j",
            "list",
            "counter",
            "netdev",
            TABLE,
            "smtp_drops",
        ],
    )?;
    let json: serde_json::Value =
        serde_json::from_str(&text).context("parsing `nft -j list counter`")?;
    json["nftables"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find_map(|item| item["counter"]["packets"].as_u64())
        })
        .ok_or_else(|| anyhow!("no packet count in `nft -j list counter`: {text}"))
}

pub fn unload(netns: &Netns) -> Result<()> {
    lab::run(netns, &["nft", "delete", "table", "netdev", TABLE]).map(drop)
}
