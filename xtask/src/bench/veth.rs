//! Drop rate across a veth pair inside two namespaces: 64-byte SYNs to port 25 from many
//! sources, dropped at the receiving end by our XDP program or by an nftables netdev-ingress
//! rule holding the same allowlist prefixes.
//!
//! Two senders, because veth behaves like a NIC only with one of them:
//! - xdp frames ([`xdp_gen`]): redirected xdp_frames reach the receiving veth's native XDP
//!   with headroom and without an skb, as frames from a NIC's driver would. Without an XDP
//!   program of ours, veth only accepts xdp_frames when it has NAPI, so the nftables rounds run
//!   with a pass-all XDP program attached; the frame then becomes an skb and meets the ingress
//!   hook, which is what a NIC without an XDP filter does. This is the headline comparison.
//! - AF_PACKET: skbs. veth's native XDP must copy each into a page with headroom first, so it
//!   measures veth more than the filters; shown with generic (skb) XDP beside it, for context.

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::programs::XdpMode;
use egress_common::Counter;

use crate::netns::{Netns, veth};

use super::{
    blast::blast as af_packet_blast,
    bpf_sys,
    dataplane::Dataplane,
    frames::{self, L4},
    lab, nft,
    xdp_gen::Generator,
};

pub struct Blast {
    pub duration: Duration,
    pub budget: u64,
    pub senders: usize,
    pub sources: usize,
}

/// Packets per second each filter dropped, one figure per round.
#[derive(Default)]
pub struct DropRates {
    /// An XDP program that drops everything: what the sender and veth allow at most.
    pub frames_ceiling: Vec<f64>,
    pub frames_native: Vec<f64>,
    /// Ours with the senders' sources in a subscriber pool (`subscriber_pools`); empty for an
    /// object without pools.
    pub frames_pools: Vec<f64>,
    pub frames_nftables: Vec<f64>,
    pub packet_native: Vec<f64>,
    pub packet_generic: Vec<f64>,
    pub packet_nftables: Vec<f64>,
}

#[derive(Clone, Copy)]
enum Filter<'a> {
    Ours(XdpMode),
    Nftables,
    /// A foreign XDP program; what it dropped is read from the interface's packet count.
    DropAll(&'a PinnedXdp),
}

struct Lab {
    sender: Netns,
    receiver: Netns,
    tx_if: String,
    rx_if: String,
}

pub fn compare(
    dataplane: &mut Dataplane,
    allow_v4: &[(Ipv4Addr, u8)],
    allow_v6: &[(Ipv6Addr, u8)],
    blast: &Blast,
    rounds: usize,
) -> Result<DropRates> {
    let lab = Lab {
        sender: lab::namespace("tx")?,
        receiver: lab::namespace("rx")?,
        tx_if: format!("vt{}", std::process::id()),
        rx_if: format!("vr{}", std::process::id()),
    };
    veth(&lab.sender, &lab.tx_if, &lab.receiver, &lab.rx_if)?;
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
    let ruleset = nft::ruleset(&lab.rx_if, allow_v4, allow_v6);
    let generator = lab
        .sender
        .within(|| Generator::new(ifindex(&lab.tx_if)?))??;
    // Both pinned so `ip link set ... xdpdrv pinned` can attach them.
    let pass_all = PinnedXdp::new("pass-all", bpf_sys::load_empty_xdp()?)?;
    let drop_all = PinnedXdp::new("drop-all", bpf_sys::load_drop_all_xdp()?)?;
    // One generator thread: it and the receiving veth's NAPI share its CPU, so the figure is
    // per core (a second thread only adds contention on veth's one queue).
    let frames = |lab: &Lab| {
        lab.sender
            .within(|| generator.send(blast.duration, blast.budget))?
            .map(drop)
    };
    let packets = |lab: &Lab| send_packets(&lab.sender, &lab.tx_if, &syns, blast).map(|_| ());
    let mut rates = DropRates::default();
    // Alternating rounds, so machine noise hits every filter alike.
    for _ in 0..rounds {
        let ceiling = Filter::DropAll(&drop_all);
        rates
            .frames_ceiling
            .push(round(dataplane, &lab, ceiling, &ruleset, || {
                frames(&lab).map(drop)
            })?);
        let native = Filter::Ours(XdpMode::Driver);
        rates
            .frames_native
            .push(round(dataplane, &lab, native, &ruleset, || {
                frames(&lab).map(drop)
            })?);
        if dataplane.has_pools() {
            dataplane.set_pools(true)?;
            let pooled = round(dataplane, &lab, native, &ruleset, || frames(&lab).map(drop));
            dataplane.set_pools(false)?;
            rates.frames_pools.push(pooled?);
        }
        pass_all.attach(&lab)?;
        let nft = round(dataplane, &lab, Filter::Nftables, &ruleset, || {
            frames(&lab).map(drop)
        });
        pass_all.detach(&lab)?;
        rates.frames_nftables.push(nft?);
        rates
            .packet_native
            .push(round(dataplane, &lab, native, &ruleset, || packets(&lab))?);
        let generic = Filter::Ours(XdpMode::Skb);
        rates
            .packet_generic
            .push(round(dataplane, &lab, generic, &ruleset, || packets(&lab))?);
        rates
            .packet_nftables
            .push(round(dataplane, &lab, Filter::Nftables, &ruleset, || {
                packets(&lab)
            })?);
    }
    Ok(rates)
}

/// One round: install `filter`, `send`, count what the filter dropped per second, remove it.
fn round(
    dataplane: &mut Dataplane,
    lab: &Lab,
    filter: Filter<'_>,
    ruleset: &str,
    send: impl FnOnce() -> Result<()>,
) -> Result<f64> {
    match filter {
        Filter::Ours(mode) => {
            let before = dataplane.counter(Counter::DroppedV4)?;
            let program = dataplane.xdp()?;
            let link = lab.receiver.within(|| {
                program
                    .attach(&lab.rx_if, mode)
                    .with_context(|| format!("attaching XDP ({mode:?}) to {}", lab.rx_if))
            })??;
            let started = Instant::now();
            let sent = send();
            let elapsed = started.elapsed();
            let program = dataplane.xdp()?;
            lab.receiver.within(|| {
                program
                    .detach(link)
                    .with_context(|| format!("detaching XDP from {}", lab.rx_if))
            })??;
            sent?;
            let dropped = dataplane.counter(Counter::DroppedV4)? - before;
            Ok(dropped as f64 / elapsed.as_secs_f64())
        }
        Filter::Nftables => {
            nft::load(&lab.receiver, ruleset)?;
            let started = Instant::now();
            let sent = send();
            let elapsed = started.elapsed();
            let dropped = nft::dropped(&lab.receiver);
            nft::unload(&lab.receiver)?;
            sent?;
            Ok(dropped? as f64 / elapsed.as_secs_f64())
        }
        Filter::DropAll(program) => {
            program.attach(lab)?;
            let before = rx_packets(lab);
            let started = Instant::now();
            let sent = send();
            let elapsed = started.elapsed();
            let after = rx_packets(lab);
            program.detach(lab)?;
            sent?;
            // veth counts every frame its XDP program saw as received.
            Ok((after? - before?) as f64 / elapsed.as_secs_f64())
        }
    }
}

fn rx_packets(lab: &Lab) -> Result<u64> {
    let text = lab::run(
        &lab.receiver,
        &["ip", "-s", "-j", "link", "show", "dev", &lab.rx_if],
    )?;
    let json: serde_json::Value =
        serde_json::from_str(&text).context("parsing `ip -s -j link show`")?;
    json[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .ok_or_else(|| anyhow!("no rx packet count for {}: {text}", lab.rx_if))
}

fn ifindex(name: &str) -> Result<u32> {
    let c_name = std::ffi::CString::new(name).with_context(|| format!("interface {name:?}"))?;
    // SAFETY: a plain lookup with a valid NUL-terminated name.
    match unsafe { libc::if_nametoindex(c_name.as_ptr()) } {
        0 => Err(std::io::Error::last_os_error()).with_context(|| format!("no interface {name}")),
        index => Ok(index),
    }
}

/// A bench XDP program pinned on bpffs, so `ip link set ... xdpdrv pinned` can attach it:
/// the pass-all one gives the receiving veth NAPI (so it accepts xdp_frames) while nftables
/// filters, the drop-all one measures the ceiling.
struct PinnedXdp {
    pin: PathBuf,
}

impl PinnedXdp {
    fn new(role: &str, program: std::os::fd::OwnedFd) -> Result<PinnedXdp> {
        let pin = PathBuf::from(format!("/sys/fs/bpf/egb-{role}-{}", std::process::id()));
        bpf_sys::pin(std::os::fd::AsFd::as_fd(&program), &pin)?;
        Ok(PinnedXdp { pin })
    }

    fn attach(&self, lab: &Lab) -> Result<()> {
        let pin = self.pin.display().to_string();
        // nsenter, not `ip -n`: `ip -n` remounts /sys, which hides the pin.
        let attach = [
            "ip", "link", "set", "dev", &lab.rx_if, "xdpdrv", "pinned", &pin,
        ];
        lab::run(&lab.receiver, &attach).map(drop)
    }

    fn detach(&self, lab: &Lab) -> Result<()> {
        let detach = ["ip", "link", "set", "dev", &lab.rx_if, "xdpdrv", "off"];
        lab::run(&lab.receiver, &detach).map(drop)
    }
}

impl Drop for PinnedXdp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pin);
    }
}

/// Blasts from every AF_PACKET sender thread at once.
fn send_packets(sender: &Netns, ifname: &str, syns: &[Vec<u8>], blast: &Blast) -> Result<u64> {
    sender.within(|| {
        let until = Instant::now() + blast.duration;
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
                    scope.spawn(move || af_packet_blast(ifname, &rotated, until, per_sender))
                })
                .collect();
            let mut sent = 0;
            for worker in workers {
                sent += worker
                    .join()
                    .map_err(|_| anyhow!("a sender thread panicked"))??;
            }
            Ok(sent)
        })
    })?
}
