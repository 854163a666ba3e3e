//! Ethernet, stacked VLAN tags with mixed TPIDs, PPPoE session and discovery frames.

use crate::{Case, frames::*};
use egress_common::Counter;
use tests::packet::{
    ETHERTYPE_ARP, ETHERTYPE_IPV4, ETHERTYPE_PPPOE_DISCOVERY, ETHERTYPE_PPPOE_SESSION, Eth,
    PPP_LCP, Tcp, pppoe_padi, tpid, truncate,
};

pub fn cases() -> Vec<Case> {
    let syn = || ip4().tcp(Tcp::syn(25));
    let lcp_echo = [0x09, 0x01, 0x00, 0x08, 0xde, 0xad, 0xbe, 0xef];
    vec![
        Case::new("untagged IPv4 SYN to 25", syn4(25), DROP, DROPPED4),
        Case::new("untagged IPv6 SYN to 25", syn6(25), DROP, DROPPED6),
        Case::new(
            "one 802.1Q tag",
            Eth::new().vlan(tpid::DOT1Q).ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "one 0x9100 tag",
            Eth::new().vlan(tpid::LEGACY_QINQ).ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "two tags, 802.1ad outer and 802.1Q inner",
            Eth::new().vlan(tpid::QINQ).vlan(tpid::DOT1Q).ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "two tags to port 80",
            Eth::new().vlans(2).ipv4(ip4().tcp(Tcp::syn(80))),
            PASS,
            NONE,
        ),
        Case::new(
            "four tags in mixed order",
            Eth::new()
                .vlan(tpid::LEGACY_QINQ)
                .vlan(tpid::QINQ)
                .vlan(tpid::DOT1Q)
                .vlan(tpid::LEGACY_QINQ)
                .ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "four tags, IPv6",
            Eth::new().vlans(4).ipv6(ip6().tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "five tags cannot be parsed (could be SMTP)",
            Eth::new().vlans(5).ipv4(syn()),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "five tags hiding port 80 are still unparseable",
            Eth::new().vlans(5).ipv4(ip4().tcp(Tcp::syn(80))),
            DROP,
            MALFORMED,
        ),
        Case::new(
            "frame ends inside a VLAN tag",
            truncate(Eth::new().vlan(tpid::DOT1Q).ipv4(syn()), 16),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "bare Ethernet header, IPv4 EtherType, no IP header",
            Eth::new().ethertype(ETHERTYPE_IPV4, &[]),
            PASS,
            MALFORMED,
        )
        .xdp_only(),
        Case::new(
            "VLAN tag, IPv4 EtherType, no IP header",
            Eth::new().vlan(tpid::DOT1Q).ethertype(ETHERTYPE_IPV4, &[]),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "ARP passes untouched",
            Eth::new().ethertype(ETHERTYPE_ARP, &[0; 28]),
            PASS,
            NONE,
        ),
        Case::new(
            "PPPoE session, IPv4 SYN to 25",
            Eth::new().pppoe().ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "PPPoE session, IPv6 SYN to 25",
            Eth::new().pppoe().ipv6(ip6().tcp(Tcp::syn(25))),
            DROP,
            DROPPED6,
        ),
        Case::new(
            "PPPoE session, IPv4 to 587",
            Eth::new().pppoe().ipv4(ip4().tcp(Tcp::syn(587))),
            PASS,
            NONE,
        ),
        Case::new(
            "PPPoE inside two VLAN tags",
            Eth::new().vlans(2).pppoe().ipv4(syn()),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "PPPoE session, compressed PPP protocol field",
            compressed_ppp_ipv4(),
            DROP,
            DROPPED4,
        ),
        Case::new(
            "PPPoE session, LCP",
            Eth::new().pppoe().ppp(PPP_LCP, &lcp_echo),
            PASS,
            NONE,
        ),
        Case::new(
            "PPPoE discovery PADI",
            Eth::new().ethertype(ETHERTYPE_PPPOE_DISCOVERY, &pppoe_padi()),
            PASS,
            NONE,
        ),
        Case::new(
            "PPPoE session header truncated",
            Eth::new().ethertype(ETHERTYPE_PPPOE_SESSION, &[0x11]),
            PASS,
            MALFORMED,
        ),
        Case::new(
            "PPPoE session with a bad version",
            patch(Eth::new().pppoe().ipv4(syn()), 14, &[0x22]),
            PASS,
            &[Counter::Malformed],
        ),
    ]
}

/// PPP with protocol-field compression: a single 0x21 byte means IPv4.
fn compressed_ppp_ipv4() -> Vec<u8> {
    let ip = ip4().tcp(Tcp::syn(25));
    let mut session = vec![0x11, 0x00, 0x12, 0x34];
    session.extend(u16::try_from(ip.len() + 1).expect("short").to_be_bytes());
    session.push(0x21);
    session.extend(ip);
    Eth::new().ethertype(ETHERTYPE_PPPOE_SESSION, &session)
}
