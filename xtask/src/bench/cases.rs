//! The packet cases timed at every allowlist size: which frames, which verdict they must get,
//! and the rows and targets they feed.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, BorrowedFd},
};

use anyhow::Result;

use super::{
    Scale,
    dataplane::Dataplane,
    frames::{self, L4},
    measure::{Measured, Plan, RunHooks, measure, warm_up},
    prefixes,
};

pub const XDP_DROP: u32 = 1;
pub const XDP_PASS: u32 = 2;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    FastTcp80V4,
    FastUdpV4,
    FastTcp80V6,
    RelayV4,
    RelayV6,
    ExemptV4,
    BlockedTrackedV4,
    BlockedTrackedV6,
    BlockedNewV4,
    BlockedNewV6,
}

impl Case {
    pub const ALL: [Case; 10] = [
        Case::FastTcp80V4,
        Case::FastUdpV4,
        Case::FastTcp80V6,
        Case::RelayV4,
        Case::RelayV6,
        Case::ExemptV4,
        Case::BlockedTrackedV4,
        Case::BlockedTrackedV6,
        Case::BlockedNewV4,
        Case::BlockedNewV6,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Case::FastTcp80V4 => "fast path IPv4 TCP/80",
            Case::FastUdpV4 => "fast path IPv4 UDP/53",
            Case::FastTcp80V6 => "fast path IPv6 TCP/80",
            Case::RelayV4 => "allowed SMTP from relay IPv4",
            Case::RelayV6 => "allowed SMTP from relay IPv6",
            Case::ExemptV4 => "allowed SMTP from exempt IPv4",
            Case::BlockedTrackedV4 => "blocked SYN tracked subscriber IPv4",
            Case::BlockedTrackedV6 => "blocked SYN tracked subscriber IPv6",
            Case::BlockedNewV4 => "blocked SYN new subscriber IPv4",
            Case::BlockedNewV6 => "blocked SYN new subscriber IPv6",
        }
    }

    pub fn is_fast_path(self) -> bool {
        matches!(
            self,
            Case::FastTcp80V4 | Case::FastUdpV4 | Case::FastTcp80V6
        )
    }

    fn expected(self) -> u32 {
        match self {
            Case::BlockedTrackedV4
            | Case::BlockedTrackedV6
            | Case::BlockedNewV4
            | Case::BlockedNewV6 => XDP_DROP,
            _ => XDP_PASS,
        }
    }
}

/// Index of the n-th measured (tracked) IPv4 subscriber: spread over the whole pre-filled
/// table so hash buckets are scattered.
pub fn tracked_index(n: usize) -> u32 {
    (n as u32).wrapping_mul(241) % 1_000_000
}

/// New subscribers come from the part of the subscriber range the pre-fill never uses.
fn new_index(n: usize) -> u32 {
    1_000_000 + n as u32
}

fn smtp() -> L4 {
    L4::TcpSyn { dst_port: 25 }
}

/// Frames of a case. `exempt` is the IPv4 exempt set currently loaded.
pub fn frames(case: Case, scale: &Scale, exempt: &[(Ipv4Addr, u8)]) -> Vec<Vec<u8>> {
    let n = scale.sources;
    let dest4 = |i: usize| frames::destination_v4(i as u32);
    let dest6 = |i: usize| frames::destination_v6(i as u32);
    let sub4 = |i: usize| frames::subscriber_v4(tracked_index(i));
    let sub6 = |i: usize| frames::subscriber_v6(i as u32);
    match case {
        Case::FastTcp80V4 => (0..n)
            .map(|i| frames::ipv4(sub4(i), dest4(i), L4::TcpSyn { dst_port: 80 }))
            .collect(),
        Case::FastUdpV4 => (0..n)
            .map(|i| frames::ipv4(sub4(i), dest4(i), L4::Udp { dst_port: 53 }))
            .collect(),
        Case::FastTcp80V6 => (0..n)
            .map(|i| frames::ipv6(sub6(i), dest6(i), L4::TcpSyn { dst_port: 80 }))
            .collect(),
        Case::RelayV4 => (0..n)
            .map(|i| frames::ipv4(frames::relay_v4(i as u32), dest4(i), smtp()))
            .collect(),
        Case::RelayV6 => (0..n)
            .map(|i| frames::ipv6(frames::relay_v6(i as u32), dest6(i), smtp()))
            .collect(),
        Case::ExemptV4 => prefixes::hosts_v4(exempt, n)
            .into_iter()
            .enumerate()
            .map(|(i, source)| frames::ipv4(source, dest4(i), smtp()))
            .collect(),
        Case::BlockedTrackedV4 => blocked_v4(n),
        Case::BlockedTrackedV6 => (0..n)
            .map(|i| frames::ipv6(sub6(i), dest6(i), smtp()))
            .collect(),
        Case::BlockedNewV4 => new_v4(scale)
            .map(|(i, source)| frames::ipv4(source, dest4(i), smtp()))
            .collect(),
        Case::BlockedNewV6 => new_v6(scale)
            .map(|(i, source)| frames::ipv6(source, dest6(i), smtp()))
            .collect(),
    }
}

/// SMTP SYNs from `count` tracked IPv4 subscribers (the blocked IPv4 case's frames).
pub fn blocked_v4(count: usize) -> Vec<Vec<u8>> {
    (0..count)
        .map(|i| {
            frames::ipv4(
                frames::subscriber_v4(tracked_index(i)),
                frames::destination_v4(i as u32),
                smtp(),
            )
        })
        .collect()
}

fn new_v4(scale: &Scale) -> impl Iterator<Item = (usize, Ipv4Addr)> {
    (0..scale.new_sources).map(|i| (i, frames::subscriber_v4(new_index(i))))
}

fn new_v6(scale: &Scale) -> impl Iterator<Item = (usize, Ipv6Addr)> {
    (0..scale.new_sources).map(|i| (i, frames::subscriber_v6((8192 + i) as u32)))
}

/// Keeps a new-subscriber case honest: the ring buffer is drained as the agent would, and the
/// subscribers are forgotten after each run so the next run's are new again.
struct FreshSubscribers<'a> {
    dataplane: &'a mut Dataplane,
    sources: Vec<IpAddr>,
}

impl RunHooks for FreshSubscribers<'_> {
    fn each_frame(&mut self, index: usize) -> Result<()> {
        if index % 256 == 255 {
            self.dataplane.drain_events();
        }
        Ok(())
    }

    fn after_run(&mut self) -> Result<()> {
        self.dataplane.drain_events();
        let v4 = self.sources.iter().filter_map(|a| match a {
            IpAddr::V4(a) => Some(*a),
            IpAddr::V6(_) => None,
        });
        self.dataplane.forget_v4(v4)?;
        let v6 = self.sources.iter().filter_map(|a| match a {
            IpAddr::V6(a) => Some(*a),
            IpAddr::V4(_) => None,
        });
        self.dataplane.forget_v6(v6)
    }
}

/// Times one case on the dataplane as it is now loaded.
pub fn run(
    case: Case,
    dataplane: &mut Dataplane,
    empty: BorrowedFd<'_>,
    scale: &Scale,
    exempt: &[(Ipv4Addr, u8)],
) -> Result<Measured> {
    let frames = frames(case, scale, exempt);
    let program = dataplane.xdp_fd()?.try_clone_to_owned()?;
    match case {
        Case::BlockedNewV4 | Case::BlockedNewV6 => {
            let sources = match case {
                Case::BlockedNewV4 => new_v4(scale).map(|(_, a)| IpAddr::V4(a)).collect(),
                _ => new_v6(scale).map(|(_, a)| IpAddr::V6(a)).collect(),
            };
            // Each frame once per run: every execution meets a subscriber it has never seen.
            let plan = Plan {
                runs: scale.runs,
                passes: 1,
                hot_repeat: 0,
            };
            let mut hooks = FreshSubscribers { dataplane, sources };
            hooks.after_run()?;
            measure(
                case.name(),
                program.as_fd(),
                empty,
                &frames,
                plan,
                case.expected(),
                &mut hooks,
            )
        }
        _ => {
            warm_up(
                case.name(),
                program.as_fd(),
                empty,
                &frames,
                case.expected(),
            )?;
            measure(
                case.name(),
                program.as_fd(),
                empty,
                &frames,
                scale.steady,
                case.expected(),
                &mut super::measure::NoHooks,
            )
        }
    }
}
