//! IPv6: extension-header chains, AH, fragments (RFC 7112), lengths, mapped sources.

use crate::{Case, frames::*};
use egress_common::Counter;
use tests::{
    dataplane::Policy,
    packet::{ETHERTYPE_IPV6, Eth, Ext, Ipv6, PROTO_ICMPV6, PROTO_TCP, Tcp, Udp, truncate},
};

const FIRST_FRAGMENT: Ext = Ext::Fragment {
    offset: 0,
    more: true,
};
const ATOMIC_FRAGMENT: Ext = Ext::Fragment {
    offset: 0,
    more: false,
};

/// `n` destination-options headers in front of the upper layer.
fn options_chain(n: usize) -> Ipv6 {
    (0..n).fold(ip6(), |ip, _| ip.ext(Ext::DestinationOptions))
}

pub fn cases() -> Vec<Case> {
    let chain = &[Counter::Ipv6Chain];
    let full_chain = || {
        ip6()
            .ext(Ext::HopByHop)
            .ext(Ext::Routing)
            .ext(Ext::DestinationOptions)
    };
    let mapped_source = v6([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x020a]); // ::ffff:192.0.2.10
    vec![
        Case::new("IPv6 SYN to 80", syn6(80), PASS, NONE),
        Case::new(
            "hop-by-hop, routing, destination options, SYN to 25",
            Eth::new().ipv6(full_chain().tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "hop-by-hop, routing, destination options, SYN to 80",
            Eth::new().ipv6(full_chain().tcp(Tcp::syn(80))),
            PASS,
            NONE,
        ),
        Case::new(
            "AH, SYN to 25",
            Eth::new().ipv6(ip6().ext(Ext::Authentication).tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "hop-by-hop and AH, SYN to 80",
            Eth::new().ipv6(
                ip6()
                    .ext(Ext::HopByHop)
                    .ext(Ext::Authentication)
                    .tcp(Tcp::syn(80)),
            ),
            PASS,
            NONE,
        ),
        Case::new(
            "first fragment holding the TCP header to 25",
            Eth::new().ipv6(
                ip6()
                    .ext(FIRST_FRAGMENT)
                    .tcp(Tcp::syn(25).payload(&[0; 64])),
            ),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "first fragment whose chain stops before TCP (RFC 7112)",
            truncated_chain_first_fragment(),
            DROP,
            chain,
        ),
        Case::new(
            "first fragment with 8 bytes of TCP",
            Eth::new().ipv6(
                ip6()
                    .ext(FIRST_FRAGMENT)
                    .payload(PROTO_TCP, &Tcp::syn(25).bytes()[..8]),
            ),
            DROP,
            &[Counter::TinyFragment],
        ),
        Case::new(
            "later fragment",
            Eth::new().ipv6(
                ip6()
                    .ext(Ext::Fragment {
                        offset: 100,
                        more: true,
                    })
                    .payload(PROTO_TCP, &[0; 64]),
            ),
            PASS,
            NONE,
        ),
        Case::new(
            "fragment at offset 1",
            Eth::new().ipv6(
                ip6()
                    .ext(Ext::Fragment {
                        offset: 1,
                        more: true,
                    })
                    .payload(PROTO_TCP, &[0; 64]),
            ),
            DROP,
            &[Counter::OverlapFragment],
        ),
        Case::new(
            "atomic fragment, SYN to 25",
            Eth::new().ipv6(ip6().ext(ATOMIC_FRAGMENT).tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "atomic fragment, SYN to 80",
            Eth::new().ipv6(ip6().ext(ATOMIC_FRAGMENT).tcp(Tcp::syn(80))),
            PASS,
            NONE,
        ),
        Case::new(
            "eight extension headers (the walk limit), SYN to 25",
            Eth::new().ipv6(options_chain(8).tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "eight extension headers, UDP",
            Eth::new().ipv6(options_chain(8).udp(Udp::to(25))),
            PASS,
            NONE,
        ),
        Case::new(
            "nine extension headers: too long to walk",
            Eth::new().ipv6(options_chain(9).tcp(Tcp::syn(80))),
            DROP,
            chain,
        ),
        Case::new(
            "extension chain truncated by the frame",
            truncate(
                Eth::new().ipv6(full_chain().tcp(Tcp::syn(25))),
                14 + 40 + 12,
            ),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "payload length past the end of the frame",
            Eth::new().ipv6(ip6().payload_len(400).tcp(Tcp::syn(25))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "payload length past the end, UDP",
            Eth::new().ipv6(ip6().payload_len(400).udp(Udp::to(25))),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "IPv6 header truncated",
            truncate(syn6(25), 14 + 20),
            DROP,
            MALFORMED,
        )
        .xdp_only(),
        Case::new(
            "IPv6 header truncated behind a VLAN tag",
            truncate(
                Eth::new().vlan(0x88a8).ipv6(ip6().tcp(Tcp::syn(25))),
                18 + 20,
            ),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "version 4 in an IPv6 EtherType",
            patch(syn6(25), 14, &[0x40]),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "TCP header truncated",
            truncate(syn6(25), 14 + 40 + 12),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "IPv6 UDP to 25",
            Eth::new().ipv6(ip6().udp(Udp::to(25))),
            PASS,
            NONE,
        ),
        Case::new(
            "ICMPv6 echo",
            Eth::new().ipv6(ip6().payload(PROTO_ICMPV6, &[128, 0, 0, 0, 0, 1, 0, 1])),
            PASS,
            NONE,
        ),
        Case::new(
            "::ffff: source never matches an IPv4 relay",
            Eth::new().ipv6(Ipv6::new(mapped_source, MX6).tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        )
        .policy(Policy::default().relay("192.0.2.10/32")),
        Case::new(
            "no extension header and no upper layer",
            Eth::new().ethertype(ETHERTYPE_IPV6, &ip6().payload(59, &[])),
            PASS,
            NONE,
        ),
    ]
}

/// A first fragment (M=1) followed by a destination-options header that the packet cuts short,
/// so the chain never reaches the upper layer.
fn truncated_chain_first_fragment() -> Vec<u8> {
    let frame = Eth::new().ipv6(
        ip6()
            .ext(FIRST_FRAGMENT)
            .ext(Ext::DestinationOptions)
            .payload_len(12)
            .tcp(Tcp::syn(25)),
    );
    truncate(frame, 14 + 40 + 12)
}
