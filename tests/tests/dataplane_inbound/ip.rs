//! The IPv4 and IPv6 rows of the inbound table: options, fragments, extension chains.

use super::*;

pub(super) fn ipv4() -> Vec<Row> {
    let syn_head = &Tcp::syn(25).bytes()[..8];
    vec![
        row(
            "options, to the primary MX",
            Eth::new().ipv4(ip4(OTHER4, MX4).options(&[1, 1, 1, 1]).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV4],
        ),
        row(
            "tiny first fragment to the primary MX",
            Eth::new().ipv4(
                ip4(OTHER4, MX4)
                    .fragment(0, true)
                    .payload(PROTO_TCP, syn_head),
            ),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::TinyFragment]),
        row(
            "monitor: tiny first fragment to the primary MX",
            Eth::new().ipv4(
                ip4(OTHER4, MX4)
                    .fragment(0, true)
                    .payload(PROTO_TCP, syn_head),
            ),
            PASS,
            &[MonitoredV4],
        )
        .shared(&[Counter::TinyFragment])
        .policy(isp().monitor()),
        row(
            "tiny first fragment to an unprotected host",
            Eth::new().ipv4(
                ip4(OTHER4, HOST4)
                    .fragment(0, true)
                    .payload(PROTO_TCP, syn_head),
            ),
            PASS,
            &[],
        ),
        row(
            "tiny first fragment from the spam checker",
            Eth::new().ipv4(
                ip4(CHECKER4, MX4)
                    .fragment(0, true)
                    .payload(PROTO_TCP, syn_head),
            ),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::TinyFragment]),
        row(
            "overlap fragment to the primary MX",
            Eth::new().ipv4(
                ip4(OTHER4, MX4)
                    .fragment(1, true)
                    .payload(PROTO_TCP, &[0; 16]),
            ),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::OverlapFragment]),
        row(
            "later fragment to the primary MX",
            Eth::new().ipv4(
                ip4(OTHER4, MX4)
                    .fragment(100, false)
                    .payload(PROTO_TCP, &[0; 16]),
            ),
            PASS,
            &[],
        ),
        row(
            "first fragment with the whole TCP header to the primary MX",
            Eth::new().ipv4(
                ip4(OTHER4, MX4)
                    .fragment(0, true)
                    .tcp(Tcp::syn(25).payload(&[0; 64])),
            ),
            DROP,
            &[DroppedV4],
        ),
        row(
            "first fragment from the spam checker",
            Eth::new().ipv4(
                ip4(CHECKER4, MX4)
                    .fragment(0, true)
                    .tcp(Tcp::syn(25).payload(&[0; 64])),
            ),
            PASS,
            &[AllowedSenderV4],
        ),
        row(
            "IHL 4, TCP to the primary MX",
            Eth::new().ipv4(ip4(OTHER4, MX4).ihl(4).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::Malformed]),
        row(
            "IHL 4, TCP to an unprotected host",
            Eth::new().ipv4(ip4(OTHER4, HOST4).ihl(4).tcp(Tcp::syn(25))),
            PASS,
            &[],
        ),
        row(
            "frame truncated inside the TCP header, to the primary MX",
            truncate(syn4(OTHER4, MX4, 25), 14 + 20 + 10),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::Malformed]),
    ]
}

pub(super) fn ipv6() -> Vec<Row> {
    let first = Ext::Fragment {
        offset: 0,
        more: true,
    };
    let chain = |src, dst| {
        ip6(src, dst)
            .ext(Ext::HopByHop)
            .ext(Ext::Routing)
            .ext(Ext::DestinationOptions)
    };
    let long = |src, dst| (0..9).fold(ip6(src, dst), |ip, _| ip.ext(Ext::DestinationOptions));
    let stops_before_tcp = |dst| {
        truncate(
            Eth::new().ipv6(
                ip6(OTHER6, dst)
                    .ext(first)
                    .ext(Ext::DestinationOptions)
                    .payload_len(12)
                    .tcp(Tcp::syn(25)),
            ),
            14 + 40 + 12,
        )
    };
    vec![
        row(
            "chain, to the primary MX",
            Eth::new().ipv6(chain(OTHER6, MX6).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        ),
        row(
            "chain, spam checker",
            Eth::new().ipv6(chain(CHECKER6, MX6).tcp(Tcp::syn(25))),
            PASS,
            &[AllowedSenderV6],
        ),
        row(
            "AH, to the primary MX",
            Eth::new().ipv6(ip6(OTHER6, MX6).ext(Ext::Authentication).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        ),
        row(
            "chain too long, to the primary MX",
            Eth::new().ipv6(long(OTHER6, MX6).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::Ipv6Chain]),
        row(
            "chain too long, spam checker",
            Eth::new().ipv6(long(CHECKER6, MX6).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::Ipv6Chain]),
        row(
            "chain too long, to an unprotected host",
            Eth::new().ipv6(long(OTHER6, HOST6).tcp(Tcp::syn(25))),
            PASS,
            &[],
        ),
        row(
            "first fragment whose chain stops before TCP, to the primary MX",
            stops_before_tcp(MX6),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::Ipv6Chain]),
        row(
            "monitor: first fragment whose chain stops before TCP",
            stops_before_tcp(MX6),
            PASS,
            &[MonitoredV6],
        )
        .shared(&[Counter::Ipv6Chain])
        .policy(isp().monitor()),
        row(
            "first fragment whose chain stops before TCP, unprotected host",
            stops_before_tcp(HOST6),
            PASS,
            &[],
        ),
        row(
            "tiny IPv6 first fragment to the primary MX",
            Eth::new().ipv6(
                ip6(OTHER6, MX6)
                    .ext(first)
                    .payload(PROTO_TCP, &Tcp::syn(25).bytes()[..8]),
            ),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::TinyFragment]),
        row(
            "IPv6 fragment at offset 1 to the primary MX",
            Eth::new().ipv6(
                ip6(OTHER6, MX6)
                    .ext(Ext::Fragment {
                        offset: 1,
                        more: true,
                    })
                    .payload(PROTO_TCP, &[0; 64]),
            ),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::OverlapFragment]),
        row(
            "IPv6 first fragment holding the TCP header, spam checker",
            Eth::new().ipv6(
                ip6(CHECKER6, MX6)
                    .ext(first)
                    .tcp(Tcp::syn(25).payload(&[0; 64])),
            ),
            PASS,
            &[AllowedSenderV6],
        ),
    ]
}
