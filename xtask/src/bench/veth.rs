//! Drop rate across a veth pair inside two namespaces: 64-byte SYNs to port 25 from many
//! sources, dropped at the receiving end by our XDP program (veth native XDP) and then by an
//! nftables netdev-ingress rule holding the same allowlist prefixes.

use std::{
    fmt::Write as _,
    io::Write as _,
    net::{Ipv4Addr, Ipv6Addr},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow, bail};
use aya::programs::XdpMode;
use egress_common::Counter;

use crate::netns::{Netns, veth};

use super::{
    blast::blast,
    dataplane::Dataplane,
    frames::{self, L4},
    lab,
};

/// Packets per second each filter dropped, one figure per round.
pub struct DropRates {
    pub xdp: Vec<f64>,
    pub nftables: Vec<f64>,
}

pub struct Blast {
    pub duration: Duration,
    pub budget: u64,
    pub senders: usize,
    pub sources: usize,
}

pub fn compare(
    dataplane: &mut Dataplane,
    allow_v4: &[(Ipv4Addr, u8)],
    allow_v6: &[(Ipv6Addr, u8)],
    blast: &Blast,
    rounds: usize,
) -> Result<DropRates> {
    let sender = lab::namespace("tx")?;
    let receiver = lab::namespace("rx")?;
    let (tx_if, rx_if) = (
        format!("vt{}", std::process::id()),
        format!("vr{}", std::process::id()),
    );
    veth(&sender, &tx_if, &receiver, &rx_if)?;
    let syns: Vec<Vec<u8>> = (0..blast.sources)
        .map(|i| {
            let source = frames::subscriber_v4(i as u32 * 13 % frames::SUBSCRIBER_V4_COUNT);
            frames::ipv4(
                source,
                frames::destination_v4(i as u32),
                L4::TcpSyn { dst_port: 25 },
            )
        })
        .collect();
    let ruleset = ruleset(&rx_if, allow_v4, allow_v6);
    let mut rates = DropRates {
        xdp: Vec::new(),
        nftables: Vec::new(),
    };
    // Alternating rounds, so machine noise hits both filters alike.
    for _ in 0..rounds {
        rates.xdp.push(xdp_round(
            dataplane, &sender, &tx_if, &receiver, &rx_if, &syns, blast,
        )?);
        rates.nftables.push(nft_round(
            &sender, &tx_if, &receiver, &ruleset, &syns, blast,
        )?);
    }
    Ok(rates)
}

fn xdp_round(
    dataplane: &mut Dataplane,
    sender: &Netns,
    tx_if: &str,
    receiver: &Netns,
    rx_if: &str,
    syns: &[Vec<u8>],
    blast: &Blast,
) -> Result<f64> {
    let before = dataplane.counter(Counter::DroppedV4)?;
    let program = dataplane.xdp()?;
    let link = receiver.within(|| {
        program
            .attach(rx_if, XdpMode::Driver)
            .with_context(|| format!("attaching XDP (native) to {rx_if}"))
    })??;
    let elapsed = send(sender, tx_if, syns, blast);
    let program = dataplane.xdp()?;
    receiver.within(|| {
        program
            .detach(link)
            .with_context(|| format!("detaching XDP from {rx_if}"))
    })??;
    let dropped = dataplane.counter(Counter::DroppedV4)? - before;
    Ok(dropped as f64 / elapsed?.as_secs_f64())
}

fn nft_round(
    sender: &Netns,
    tx_if: &str,
    receiver: &Netns,
    ruleset: &str,
    syns: &[Vec<u8>],
    blast: &Blast,
) -> Result<f64> {
    nft_load(receiver, ruleset)?;
    let elapsed = send(sender, tx_if, syns, blast);
    let dropped = nft_counter(receiver);
    lab::run(receiver, &["nft", "delete", "table", "netdev", TABLE])?;
    Ok(dropped? as f64 / elapsed?.as_secs_f64())
}

/// Blasts from every sender thread at once; returns the wall time they took.
fn send(sender: &Netns, ifname: &str, syns: &[Vec<u8>], blast: &Blast) -> Result<Duration> {
    sender.within(|| {
        let started = Instant::now();
        let until = started + blast.duration;
        let per_sender = blast.budget / blast.senders as u64;
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..blast.senders)
                .map(|n| {
                    let rotated: Vec<Vec<u8>> = syns
                        .iter()
                        .cycle()
                        .skip(n * 997)
                        .take(syns.len())
                        .cloned()
                        .collect();
                    scope.spawn(move || blast_owned(ifname, rotated, until, per_sender))
                })
                .collect();
            for worker in workers {
                worker
                    .join()
                    .map_err(|_| anyhow!("a sender thread panicked"))??;
            }
            Ok(started.elapsed())
        })
    })?
}

fn blast_owned(ifname: &str, frames: Vec<Vec<u8>>, until: Instant, budget: u64) -> Result<u64> {
    blast(ifname, &frames, until, budget)
}

const TABLE: &str = "egress_bench";

fn ruleset(ifname: &str, allow_v4: &[(Ipv4Addr, u8)], allow_v6: &[(Ipv6Addr, u8)]) -> String {
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

fn nft_load(netns: &Netns, rules: &str) -> Result<()> {
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

fn nft_counter(netns: &Netns) -> Result<u64> {
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
