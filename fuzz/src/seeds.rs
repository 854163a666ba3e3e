//! The seed corpus: one frame per corner of SPEC.md "Dataplane rules". Each name starts with the
//! verdict the spec demands under the default configuration (enforce, blocked ports {25}, no
//! allowlists): `drop-` or `pass-`. The replay test checks the kernel against that verdict.

use crate::frames::*;

pub struct Seed {
    pub name: &'static str,
    pub frame: Vec<u8>,
}

fn seed(name: &'static str, frame: Vec<u8>) -> Seed {
    Seed { name, frame }
}

fn v4_frame(tpids: &[u16], packet: &[u8]) -> Vec<u8> {
    join(&[&ethernet(tpids, ETHERTYPE_IPV4), packet])
}

fn v6_frame(tpids: &[u16], packet: &[u8]) -> Vec<u8> {
    join(&[&ethernet(tpids, ETHERTYPE_IPV6), packet])
}

fn pppoe_frame(tpids: &[u16], protocol: u16, compressed: bool, packet: &[u8]) -> Vec<u8> {
    join(&[
        &ethernet(tpids, ETHERTYPE_PPPOE),
        &pppoe(protocol, compressed, packet.len()),
        packet,
    ])
}

fn syn(port: u16) -> Vec<u8> {
    tcp(port, SYN, 5, &[])
}

fn v4_tcp(segment: &[u8]) -> Vec<u8> {
    ipv4(TCP, &[], 0, segment)
}

fn v6_tcp(segment: &[u8]) -> Vec<u8> {
    ipv6(SUBSCRIBER_V6, TCP, segment)
}

/// An extension header: its protocol number and a builder given the next header.
type Layer = (u8, fn(u8) -> Vec<u8>);

/// An IPv6 packet whose chain is `headers` (protocol, bytes without the next-header byte set)
/// followed by `upper`.
fn v6_chain(headers: &[Layer], upper_protocol: u8, upper: &[u8]) -> Vec<u8> {
    let mut next = upper_protocol;
    let mut payload = upper.to_vec();
    for (protocol, build) in headers.iter().rev() {
        payload = join(&[&build(next), &payload]);
        next = *protocol;
    }
    ipv6(SUBSCRIBER_V6, next, &payload)
}

fn hop_by_hop(next: u8) -> Vec<u8> {
    extension(next, 0)
}
fn routing(next: u8) -> Vec<u8> {
    extension(next, 2)
}
fn destination(next: u8) -> Vec<u8> {
    extension(next, 1)
}
fn auth(next: u8) -> Vec<u8> {
    authentication(next, 4)
}
fn first_fragment(next: u8) -> Vec<u8> {
    fragment(next, 0, true)
}
fn overlap_fragment(next: u8) -> Vec<u8> {
    fragment(next, 1, true)
}
fn later_fragment(next: u8) -> Vec<u8> {
    fragment(next, 185, false)
}
fn big_destination(next: u8) -> Vec<u8> {
    extension(next, 15)
}
fn medium_destination(next: u8) -> Vec<u8> {
    extension(next, 7)
}

fn with_byte(mut frame: Vec<u8>, at: usize, value: u8) -> Vec<u8> {
    frame[at] = value;
    frame
}

pub fn all() -> Vec<Seed> {
    let q = [0x8100];
    let four = [0x88a8, 0x8100, 0x9100, 0x8100];
    let five = [0x88a8, 0x8100, 0x9100, 0x8100, 0x8100];
    let mapped: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 10];
    let options = [0x94, 0x04, 0, 0, 0x01, 0x01, 0x01, 0x00];
    let chain_too_long: Vec<Layer> =
        vec![(DESTINATION_OPTIONS, destination as fn(u8) -> Vec<u8>); 9];
    let past_window: Vec<Layer> =
        vec![(DESTINATION_OPTIONS, big_destination as fn(u8) -> Vec<u8>); 8];
    // Seven 128-byte headers and one of 64 put TCP at byte 1014: its flags lie past byte 1024.
    let mut window_edge = past_window[..7].to_vec();
    window_edge.push((DESTINATION_OPTIONS, medium_destination));
    vec![
        seed("drop-v4-syn-25", v4_frame(&[], &v4_tcp(&syn(25)))),
        seed("pass-v4-syn-80", v4_frame(&[], &v4_tcp(&syn(80)))),
        seed("pass-v4-syn-587", v4_frame(&[], &v4_tcp(&syn(587)))),
        seed("pass-v4-syn-465", v4_frame(&[], &v4_tcp(&syn(465)))),
        seed("pass-v4-syn-2525", v4_frame(&[], &v4_tcp(&syn(2525)))),
        seed(
            "pass-v4-udp-25",
            v4_frame(&[], &ipv4(UDP, &[], 0, &udp(25, b"x"))),
        ),
        seed(
            "drop-v4-ack-25",
            v4_frame(&[], &v4_tcp(&tcp(25, ACK, 5, b"EHLO x\r\n"))),
        ),
        seed(
            "drop-v4-rst-25",
            v4_frame(&[], &v4_tcp(&tcp(25, RST, 5, &[]))),
        ),
        seed(
            "drop-v4-fin-ack-25",
            v4_frame(&[], &v4_tcp(&tcp(25, FIN | ACK, 5, &[]))),
        ),
        seed(
            "drop-v4-syn-ece-cwr-25",
            v4_frame(&[], &v4_tcp(&tcp(25, SYN | ECE | CWR, 5, &[]))),
        ),
        seed(
            "drop-v4-tfo-syn-data-25",
            v4_frame(&[], &v4_tcp(&tcp(25, SYN, 8, b"MAIL FROM:<>"))),
        ),
        seed(
            "drop-v4-tcp-options-25",
            v4_frame(&[], &v4_tcp(&tcp(25, SYN, 15, &[]))),
        ),
        seed(
            "drop-v4-ip-options-25",
            v4_frame(&[], &ipv4(TCP, &options, 0, &syn(25))),
        ),
        seed(
            "drop-v4-ip-options-max-25",
            v4_frame(&[], &ipv4(TCP, &[1; 40], 0, &syn(25))),
        ),
        seed("drop-v4-vlan-25", v4_frame(&q, &v4_tcp(&syn(25)))),
        seed("drop-v4-vlan4-25", v4_frame(&four, &v4_tcp(&syn(25)))),
        seed("drop-v4-vlan5-80", v4_frame(&five, &v4_tcp(&syn(80)))),
        seed("pass-v4-vlan4-80", v4_frame(&four, &v4_tcp(&syn(80)))),
        seed(
            "drop-pppoe-v4-25",
            pppoe_frame(&[], PPP_IPV4, false, &v4_tcp(&syn(25))),
        ),
        seed(
            "drop-pppoe-pfc-v4-25",
            pppoe_frame(&[], PPP_IPV4, true, &v4_tcp(&syn(25))),
        ),
        seed(
            "drop-qinq-pppoe-v6-25",
            pppoe_frame(&[0x88a8, 0x8100], PPP_IPV6, false, &v6_tcp(&syn(25))),
        ),
        seed(
            "drop-pppoe-pfc-v6-25",
            pppoe_frame(&[], PPP_IPV6, true, &v6_tcp(&syn(25))),
        ),
        seed(
            "pass-pppoe-v4-80",
            pppoe_frame(&[q[0]], PPP_IPV4, false, &v4_tcp(&syn(80))),
        ),
        seed(
            "pass-pppoe-lcp",
            pppoe_frame(&[], 0xc021, false, &[1, 1, 0, 4]),
        ),
        seed(
            "drop-v4-tiny-fragment",
            v4_frame(&[], &ipv4(TCP, &[], 0x2000, &syn(80)[..8])),
        ),
        seed(
            "drop-v4-first-fragment-16-bytes",
            v4_frame(&[], &ipv4(TCP, &[], 0x2000, &syn(25)[..16])),
        ),
        seed(
            "drop-v4-first-fragment-25",
            v4_frame(&[], &ipv4(TCP, &[], 0x2000, &syn(25))),
        ),
        seed(
            "pass-v4-first-fragment-80",
            v4_frame(&[], &ipv4(TCP, &[], 0x2000, &syn(80))),
        ),
        seed(
            "drop-v4-overlap-fragment",
            v4_frame(&[], &ipv4(TCP, &[], 0x2001, &[0; 16])),
        ),
        seed(
            "pass-v4-later-fragment",
            v4_frame(&[], &ipv4(TCP, &[], 0x0003, &syn(25))),
        ),
        seed(
            "pass-v4-udp-overlap-fragment",
            v4_frame(&[], &ipv4(UDP, &[], 0x2001, &[0; 16])),
        ),
        seed(
            "drop-v4-data-offset-4",
            v4_frame(&[], &v4_tcp(&tcp(80, SYN, 4, &[0; 4]))),
        ),
        seed(
            "drop-v4-data-offset-past-end",
            with_byte(v4_frame(&[], &v4_tcp(&syn(80))), 46, 0xf0),
        ),
        seed(
            "drop-v4-truncated-tcp",
            v4_frame(&[], &v4_tcp(&syn(25)))[..40].to_vec(),
        ),
        seed(
            "drop-v4-ihl-4-tcp",
            with_byte(v4_frame(&[], &v4_tcp(&syn(80))), 14, 0x44),
        ),
        seed(
            "pass-v4-ihl-4-udp",
            with_byte(v4_frame(&[], &ipv4(UDP, &[], 0, &udp(53, b"x"))), 14, 0x44),
        ),
        seed(
            "drop-v4-version-6-tcp",
            with_byte(v4_frame(&[], &v4_tcp(&syn(80))), 14, 0x65),
        ),
        seed("drop-v6-syn-25", v6_frame(&[], &v6_tcp(&syn(25)))),
        seed("pass-v6-syn-443", v6_frame(&[], &v6_tcp(&syn(443)))),
        seed(
            "drop-v6-mapped-source-25",
            v6_frame(&[], &ipv6(mapped, TCP, &syn(25))),
        ),
        seed(
            "drop-v6-hbh-rt-dst-25",
            v6_frame(
                &[],
                &v6_chain(
                    &[
                        (HOP_BY_HOP, hop_by_hop),
                        (ROUTING, routing),
                        (DESTINATION_OPTIONS, destination),
                    ],
                    TCP,
                    &syn(25),
                ),
            ),
        ),
        seed(
            "drop-v6-ah-25",
            v6_frame(&[], &v6_chain(&[(AUTHENTICATION, auth)], TCP, &syn(25))),
        ),
        seed(
            "drop-v6-first-fragment-25",
            v6_frame(&[], &v6_chain(&[(FRAGMENT, first_fragment)], TCP, &syn(25))),
        ),
        seed(
            "pass-v6-first-fragment-80",
            v6_frame(&[], &v6_chain(&[(FRAGMENT, first_fragment)], TCP, &syn(80))),
        ),
        seed(
            "drop-v6-first-fragment-tiny",
            v6_frame(
                &[],
                &v6_chain(&[(FRAGMENT, first_fragment)], TCP, &syn(80)[..12]),
            ),
        ),
        seed(
            "drop-v6-first-fragment-split-chain",
            v6_frame(
                &[],
                &v6_chain(
                    &[(FRAGMENT, first_fragment)],
                    DESTINATION_OPTIONS,
                    &[TCP, 4, 1, 0],
                ),
            ),
        ),
        seed(
            "drop-v6-overlap-fragment",
            v6_frame(
                &[],
                &v6_chain(&[(FRAGMENT, overlap_fragment)], TCP, &[0; 16]),
            ),
        ),
        seed(
            "pass-v6-later-fragment",
            v6_frame(&[], &v6_chain(&[(FRAGMENT, later_fragment)], TCP, &syn(25))),
        ),
        seed(
            "drop-v6-chain-too-long",
            v6_frame(&[], &v6_chain(&chain_too_long, TCP, &syn(80))),
        ),
        seed(
            "drop-v6-chain-past-window",
            v6_frame(&[], &v6_chain(&past_window, TCP, &syn(80))),
        ),
        seed(
            "drop-v6-tcp-at-window-edge",
            v6_frame(&[], &v6_chain(&window_edge, TCP, &syn(80))),
        ),
        seed(
            "pass-v6-no-next-header",
            v6_frame(&[], &v6_chain(&[(HOP_BY_HOP, hop_by_hop)], NO_NEXT, &[])),
        ),
        seed(
            "pass-v6-udp-25",
            v6_frame(&[], &ipv6(SUBSCRIBER_V6, UDP, &udp(25, b"x"))),
        ),
        seed(
            "drop-v6-truncated-chain",
            v6_frame(&[], &v6_chain(&[(ROUTING, routing)], TCP, &syn(25)))[..70].to_vec(),
        ),
        seed("pass-arp", join(&[&ethernet(&[], 0x0806), &[0; 28]])),
        seed("pass-runt", vec![0xff; 13]),
    ]
}
