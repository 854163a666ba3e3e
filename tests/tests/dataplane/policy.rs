//! Allowlists (relay, exempt, destination; both families; prefixes), monitor mode, and
//! non-default blocked ports.

use crate::{Case, frames::*};
use egress_common::Counter::*;
use tests::{
    dataplane::Policy,
    packet::{Eth, Ipv4, Ipv6, Tcp},
};

fn from4(source: [u8; 4], port: u16) -> Vec<u8> {
    Eth::new().ipv4(Ipv4::new(source, MX4).tcp(Tcp::syn(port)))
}

fn from6(source: [u8; 16], port: u16) -> Vec<u8> {
    Eth::new().ipv6(Ipv6::new(source, MX6).tcp(Tcp::syn(port)))
}

/// The spec's example allowlists.
fn isp() -> Policy {
    Policy::default()
        .relay("192.0.2.10/32")
        .relay("2001:db8:1::25/128")
        .exempt("198.51.100.64/26")
        .exempt("2001:db8:200::/48")
}

pub fn cases() -> Vec<Case> {
    let mut rows = allowlists();
    rows.extend(monitor());
    rows.extend(other_ports());
    rows
}

fn allowlists() -> Vec<Case> {
    vec![
        Case::new("IPv4 relay", from4(RELAY4, 25), PASS, &[AllowedRelayV4]).policy(isp()),
        Case::new("IPv6 relay", from6(RELAY6, 25), PASS, &[AllowedRelayV6]).policy(isp()),
        Case::new(
            "IPv4 relay ACK",
            Eth::new().ipv4(Ipv4::new(RELAY4, MX4).tcp(Tcp::syn(25).flags(0x10))),
            PASS,
            &[AllowedRelayV4],
        )
        .policy(isp()),
        Case::new(
            "IPv4 relay given as a /29",
            from4([192, 0, 2, 13], 25),
            PASS,
            &[AllowedRelayV4],
        )
        .policy(Policy::default().relay("192.0.2.8/29")),
        Case::new(
            "IPv4 exempt /26",
            from4(BUSINESS4, 25),
            PASS,
            &[AllowedExemptV4],
        )
        .policy(isp()),
        Case::new(
            "IPv6 exempt /48",
            from6(BUSINESS6, 25),
            PASS,
            &[AllowedExemptV6],
        )
        .policy(isp()),
        Case::new(
            "/8 exempt containing the source",
            syn4(25),
            PASS,
            &[AllowedExemptV4],
        )
        .policy(Policy::default().exempt("100.0.0.0/8")),
        Case::new(
            "subscriber outside every allowlist",
            syn4(25),
            DROP,
            DROPPED4,
        )
        .policy(isp()),
        Case::new(
            "IPv6 subscriber outside every allowlist",
            syn6(25),
            DROP,
            DROPPED6,
        )
        .policy(isp()),
        Case::new(
            "address next to the relay",
            from4([192, 0, 2, 11], 25),
            DROP,
            DROPPED4,
        )
        .policy(isp()),
        Case::new(
            "address just outside the exempt /26",
            from4([198, 51, 100, 128], 25),
            DROP,
            DROPPED4,
        )
        .policy(isp()),
        Case::new(
            "IPv4 destination allowed",
            syn4(25),
            PASS,
            &[AllowedDestinationV4],
        )
        .policy(Policy::default().destination("203.0.113.0/24")),
        Case::new(
            "IPv4 destination host allowed (host table)",
            syn4(25),
            PASS,
            &[AllowedDestinationV4],
        )
        .policy(Policy::default().destination("203.0.113.25")),
        Case::new(
            "IPv4 destination host beside the allowed one",
            syn4(25),
            DROP,
            DROPPED4,
        )
        .policy(Policy::default().destination("203.0.113.26")),
        Case::new(
            "IPv6 destination allowed",
            syn6(25),
            PASS,
            &[AllowedDestinationV6],
        )
        .policy(Policy::default().destination("2001:db8:ffff::/48")),
        Case::new(
            "relay counted before destination",
            from4(RELAY4, 25),
            PASS,
            &[AllowedRelayV4],
        )
        .policy(isp().destination("203.0.113.25")),
        Case::new(
            "prefix both relay and exempt counts as relay",
            syn4(25),
            PASS,
            &[AllowedRelayV4],
        )
        .policy(
            Policy::default()
                .relay("100.64.1.0/24")
                .exempt("100.64.1.0/24"),
        ),
        Case::new(
            "longest prefix wins: exempt /32 inside a relay /16",
            syn4(25),
            PASS,
            &[AllowedExemptV4],
        )
        .policy(
            Policy::default()
                .relay("100.64.0.0/16")
                .exempt("100.64.1.7"),
        ),
        Case::new(
            "an IPv6 relay does not admit IPv4",
            syn4(25),
            DROP,
            DROPPED4,
        )
        .policy(Policy::default().relay("::/0")),
        Case::new(
            "an IPv4 /0 relay does not admit IPv6",
            syn6(25),
            DROP,
            DROPPED6,
        )
        .policy(Policy::default().relay("0.0.0.0/0")),
        Case::new(
            "a destination entry is not a source entry",
            syn4(25),
            DROP,
            DROPPED4,
        )
        .policy(Policy::default().destination("100.64.1.7")),
        Case::new(
            "five tags from a relay are still unparseable",
            Eth::new()
                .vlans(5)
                .ipv4(Ipv4::new(RELAY4, MX4).tcp(Tcp::syn(25))),
            DROP,
            MALFORMED,
        )
        .policy(isp()),
    ]
}

fn monitor() -> Vec<Case> {
    let m = Policy::monitor;
    vec![
        Case::new("monitor: IPv4 SYN", syn4(25), PASS, &[MonitoredV4]).policy(m()),
        Case::new("monitor: IPv6 SYN", syn6(25), PASS, &[MonitoredV6]).policy(m()),
        Case::new(
            "monitor: relay still counted as allowed",
            from4(RELAY4, 25),
            PASS,
            &[AllowedRelayV4],
        )
        .policy(Policy {
            mode: egress_common::Mode::Monitor,
            ..isp()
        }),
        Case::new(
            "monitor: five tags",
            Eth::new().vlans(5).ipv4(ip4().tcp(Tcp::syn(25))),
            PASS,
            MALFORMED,
        )
        .policy(m()),
        Case::new(
            "monitor: tiny fragment",
            Eth::new().ipv4(ip4().fragment(0, true).payload(6, &[0; 8])),
            PASS,
            &[TinyFragment],
        )
        .policy(m()),
        Case::new("monitor: port 80", syn4(80), PASS, NONE).policy(m()),
    ]
}

fn other_ports() -> Vec<Case> {
    const SUBMISSION_BLOCKED_TOO: &[u16] = &[25, 2525];
    const ONLY_2525: &[u16] = &[2525];
    vec![
        Case::new("[25, 2525]: SYN to 2525", syn4(2525), DROP, DROPPED4)
            .ports(SUBMISSION_BLOCKED_TOO),
        Case::new("[25, 2525]: SYN to 25", syn4(25), DROP, DROPPED4).ports(SUBMISSION_BLOCKED_TOO),
        Case::new("[25, 2525]: IPv6 SYN to 2525", syn6(2525), DROP, DROPPED6)
            .ports(SUBMISSION_BLOCKED_TOO),
        Case::new("[25, 2525]: SYN to 587", syn4(587), PASS, NONE).ports(SUBMISSION_BLOCKED_TOO),
        Case::new("[25, 2525]: SYN to 2526", syn4(2526), PASS, NONE).ports(SUBMISSION_BLOCKED_TOO),
        Case::new(
            "[25, 2525]: relay to 2525",
            from4(RELAY4, 2525),
            PASS,
            &[AllowedRelayV4],
        )
        .ports(SUBMISSION_BLOCKED_TOO)
        .policy(isp()),
        Case::new("[2525]: SYN to 25 passes", syn4(25), PASS, NONE).ports(ONLY_2525),
        Case::new("[2525]: SYN to 2525", syn4(2525), DROP, DROPPED4).ports(ONLY_2525),
    ]
}
