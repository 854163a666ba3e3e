//! The host-side reference for the dataplane's decision: the shared parser compiled for the
//! host, then the spec's rules (relay or exempt source, allowed destination, mode) applied with
//! a plain longest-prefix match.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use egress_common::{Counter, Family, Mode, Parsed, PortSet, SmtpPacket, Suspect, allow_kind};

use super::{Policy, Verdict};

/// What the dataplane should do with a frame and which global counters it should bump.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub verdict: Verdict,
    pub counters: Vec<Counter>,
}

/// Parses `frame` with the host build of the shared parser and judges it under `policy`.
pub fn judge(frame: &[u8], blocked: &PortSet, policy: &Policy) -> Outcome {
    decide(egress_common::parse(frame, blocked), policy)
}

/// The spec's decision for an already parsed frame.
pub fn decide(parsed: Parsed, policy: &Policy) -> Outcome {
    let closed = if policy.mode == Mode::Monitor {
        Verdict::Pass
    } else {
        Verdict::Drop
    };
    let (verdict, counter) = match parsed {
        Parsed::Pass => (Verdict::Pass, None),
        Parsed::Malformed => (Verdict::Pass, Some(Counter::Malformed)),
        Parsed::Suspect(suspect) => (closed, Some(suspect_counter(suspect))),
        Parsed::Smtp(packet) => smtp(&packet, policy, closed),
    };
    Outcome {
        verdict,
        counters: counter.into_iter().collect(),
    }
}

fn suspect_counter(suspect: Suspect) -> Counter {
    match suspect {
        Suspect::TinyFragment => Counter::TinyFragment,
        Suspect::OverlapFragment => Counter::OverlapFragment,
        Suspect::Ipv6Chain => Counter::Ipv6Chain,
        Suspect::Malformed => Counter::Malformed,
    }
}

fn smtp(packet: &SmtpPacket, policy: &Policy, closed: Verdict) -> (Verdict, Option<Counter>) {
    let v4 = packet.family == Family::Ipv4;
    let pick = |ipv4, ipv6| Some(if v4 { ipv4 } else { ipv6 });
    let source = address(packet.family, &packet.source);
    let source_kind = longest_match_kind(policy, source);
    if source_kind & allow_kind::RELAY != 0 {
        return (
            Verdict::Pass,
            pick(Counter::AllowedRelayV4, Counter::AllowedRelayV6),
        );
    }
    if source_kind & allow_kind::EXEMPT != 0 {
        return (
            Verdict::Pass,
            pick(Counter::AllowedExemptV4, Counter::AllowedExemptV6),
        );
    }
    let destination = address(packet.family, &packet.destination);
    let destination_allowed = policy
        .allow
        .iter()
        .any(|a| a.kind & allow_kind::DESTINATION != 0 && a.prefix.contains(&destination));
    if destination_allowed {
        return (
            Verdict::Pass,
            pick(Counter::AllowedDestinationV4, Counter::AllowedDestinationV6),
        );
    }
    match closed {
        Verdict::Drop => (closed, pick(Counter::DroppedV4, Counter::DroppedV6)),
        Verdict::Pass => (closed, pick(Counter::MonitoredV4, Counter::MonitoredV6)),
    }
}

/// Allow bits of the longest source prefix containing `source` (what an LPM trie returns).
fn longest_match_kind(policy: &Policy, source: IpAddr) -> u32 {
    let sources = policy
        .allow
        .iter()
        .filter(|a| a.kind & allow_kind::DESTINATION == 0 && a.prefix.contains(&source));
    let Some(longest) = sources.clone().map(|a| a.prefix.prefix_len()).max() else {
        return 0;
    };
    sources
        .filter(|a| a.prefix.prefix_len() == longest)
        .fold(0, |kind, a| kind | a.kind)
}

fn address(family: Family, bytes: &[u8; 16]) -> IpAddr {
    match family {
        Family::Ipv4 => IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3])),
        Family::Ipv6 => IpAddr::V6(Ipv6Addr::from(*bytes)),
    }
}
