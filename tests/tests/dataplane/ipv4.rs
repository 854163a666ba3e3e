//! IPv4: header length and options, lengths, fragments (RFC 1858, RFC 3128).

use crate::{Case, frames::*};
use egress_common::Counter;
use tests::packet::{Eth, Tcp, Udp, truncate};

/// 40 bytes of NOP options: the longest header (IHL 15).
const MAX_OPTIONS: [u8; 40] = [1; 40];
/// Router Alert (RFC 2113): IHL 6.
const ROUTER_ALERT: [u8; 4] = [0x94, 0x04, 0x00, 0x00];

pub fn cases() -> Vec<Case> {
    let tiny = &[Counter::TinyFragment];
    let overlap = &[Counter::OverlapFragment];
    // The first 8 bytes of a SYN to 25: ports and sequence number, no flags or data offset.
    let syn_head = &Tcp::syn(25).bytes()[..8];
    vec![
        Case::new("IHL 5", syn4(25), DROP, DROPPED4),
        Case::new(
            "IHL 6 with Router Alert",
            Eth::new().ipv4(ip4().options(&ROUTER_ALERT).tcp(Tcp::syn(25))),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "IHL 15 with 40 bytes of options",
            Eth::new().ipv4(ip4().options(&MAX_OPTIONS).tcp(Tcp::syn(25))),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "IHL 15 to port 80",
            Eth::new().ipv4(ip4().options(&MAX_OPTIONS).tcp(Tcp::syn(80))),
            PASS,
            NONE,
        ),
        Case::new(
            "IHL 4 on TCP (port unknowable)",
            Eth::new().ipv4(ip4().ihl(4).tcp(Tcp::syn(80))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "IHL 4 on UDP",
            Eth::new().ipv4(ip4().ihl(4).udp(Udp::to(25))),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "IHL 15 claimed, total length shorter than the header",
            Eth::new().ipv4(ip4().ihl(15).tcp(Tcp::syn(25))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "version 6 in an IPv4 EtherType, TCP",
            patch(syn4(25), 14, &[0x65]),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "total length past the end of the frame",
            Eth::new().ipv4(ip4().total_len(200).tcp(Tcp::syn(25))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "total length ends inside the TCP header",
            Eth::new().ipv4(ip4().total_len(30).tcp(Tcp::syn(25))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "frame truncated inside the TCP header",
            truncate(syn4(25), 14 + 20 + 10),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "frame truncated inside the IP header",
            truncate(syn4(25), 14 + 12),
            DROP,
            MALFORMED,
        )
        .xdp_only(),
        Case::new(
            "VLAN frame truncated inside the IP header",
            truncate(
                Eth::new().vlan(0x8100).ipv4(ip4().tcp(Tcp::syn(25))),
                18 + 12,
            ),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "frame truncated before the protocol field",
            truncate(syn4(25), 14 + 8),
            PASS,
            MALFORMED,
        )
        .xdp_only(),
        Case::new(
            "VLAN frame truncated before the protocol field",
            truncate(
                Eth::new().vlan(0x8100).ipv4(ip4().tcp(Tcp::syn(25))),
                18 + 8,
            ),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "Ethernet padding after a SYN to 25",
            padded(syn4(25)),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "Ethernet padding after a SYN to 80",
            padded(syn4(80)),
            PASS,
            NONE,
        ),
        Case::new(
            "tiny first fragment: 8 bytes of TCP",
            Eth::new().ipv4(ip4().fragment(0, true).payload(6, syn_head)),
            DROP,
            tiny,
        ),
        Case::new(
            "tiny first fragment: 16 bytes of TCP to port 80",
            Eth::new().ipv4(
                ip4()
                    .fragment(0, true)
                    .payload(6, &Tcp::syn(80).bytes()[..16]),
            ),
            DROP,
            tiny,
        ),
        Case::new(
            "first fragment with the whole TCP header to 25",
            Eth::new().ipv4(ip4().fragment(0, true).tcp(Tcp::syn(25).payload(&[0; 64]))),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "first fragment with the whole TCP header to 80",
            Eth::new().ipv4(ip4().fragment(0, true).tcp(Tcp::syn(80).payload(&[0; 64]))),
            PASS,
            NONE,
        ),
        Case::new(
            "TCP fragment at offset 1 (overlap)",
            Eth::new().ipv4(ip4().fragment(1, true).payload(6, &[0; 16])),
            DROP,
            overlap,
        ),
        Case::new(
            "last TCP fragment at offset 1",
            Eth::new().ipv4(ip4().fragment(1, false).payload(6, &[0; 16])),
            DROP,
            overlap,
        ),
        Case::new(
            "UDP fragment at offset 1",
            Eth::new().ipv4(ip4().fragment(1, true).payload(17, &[0; 16])),
            PASS,
            NONE,
        ),
        Case::new(
            "later TCP fragment",
            Eth::new().ipv4(ip4().fragment(185, true).payload(6, &[0; 64])),
            PASS,
            NONE,
        ),
        Case::new(
            "last TCP fragment whose bytes look like a SYN to 25",
            Eth::new().ipv4(ip4().fragment(3, false).tcp(Tcp::syn(25))),
            PASS,
            NONE,
        ),
        Case::new(
            "IPv4 UDP to 25",
            Eth::new().ipv4(ip4().udp(Udp::to(25))),
            PASS,
            NONE,
        ),
        Case::new(
            "ICMP echo",
            Eth::new().ipv4(ip4().payload(1, &[8, 0, 0, 0, 0, 1, 0, 1])),
            PASS,
            NONE,
        ),
    ]
}

/// A frame padded to the 60-byte Ethernet minimum (plus some) with zeros after the IP packet.
fn padded(mut frame: Vec<u8>) -> Vec<u8> {
    frame.resize(frame.len() + 18, 0);
    frame
}
