//! The `inbound` program, packet by packet, in the real kernel (`BPF_PROG_TEST_RUN`): one row
//! per rule and per parsing corner, both families, monitor mode, every TCP flag combination.
//! Every row states the verdict and the exact increments of the inbound and shared counters.

use egress_common::{
    Counter,
    inbound::InboundCounter::{self, *},
};
use tests::{
    dataplane::Verdict,
    inbound::{Inbound, InboundPolicy},
    packet::{Eth, Ext, Ipv4, Ipv6, PROTO_TCP, Tcp, Udp, tpid, truncate},
};

#[path = "dataplane_inbound/ip.rs"]
mod ip;

use ip::{ipv4, ipv6};

const PASS: Verdict = Verdict::Pass;
const DROP: Verdict = Verdict::Drop;

/// The primary MX, the spam checker, a host nobody protects and a sender on the Internet.
const MX4: [u8; 4] = [192, 0, 2, 30];
const CHECKER4: [u8; 4] = [192, 0, 2, 40];
const HOST4: [u8; 4] = [192, 0, 2, 50];
const OTHER4: [u8; 4] = [203, 0, 113, 7];
const MX6: [u8; 16] = v6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x30]);
const CHECKER6: [u8; 16] = v6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x40]);
const HOST6: [u8; 16] = v6([0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x50]);
const OTHER6: [u8; 16] = v6([0x2001, 0xdb8, 0xffff, 0, 0, 0, 0, 7]);
/// `::ffff:192.0.2.40`: the spam checker's IPv4 address dressed as IPv6.
const MAPPED_CHECKER: [u8; 16] = v6([0, 0, 0, 0, 0, 0xffff, 0xc000, 0x0228]);

const fn v6(groups: [u16; 8]) -> [u8; 16] {
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < 8 {
        out[2 * i] = (groups[i] >> 8) as u8;
        out[2 * i + 1] = groups[i] as u8;
        i += 1;
    }
    out
}

/// The spec's example: the primary MX protected, the spam checker its only sender and throttled.
fn isp() -> InboundPolicy {
    InboundPolicy::default()
        .protected("192.0.2.30/32")
        .protected("2001:db8:1::30/128")
        .sender("192.0.2.40/32")
        .sender("2001:db8:1::40/128")
        .throttle("192.0.2.40/32")
        .throttle("2001:db8:1::40/128")
}

struct Row {
    name: String,
    frame: Vec<u8>,
    policy: InboundPolicy,
    verdict: Verdict,
    inbound: Vec<InboundCounter>,
    shared: Vec<Counter>,
}

fn row(name: &str, frame: Vec<u8>, verdict: Verdict, inbound: &[InboundCounter]) -> Row {
    Row {
        name: name.to_string(),
        frame,
        policy: isp(),
        verdict,
        inbound: inbound.to_vec(),
        shared: Vec::new(),
    }
}

impl Row {
    fn shared(mut self, counters: &[Counter]) -> Row {
        self.shared = counters.to_vec();
        self
    }
    fn policy(mut self, policy: InboundPolicy) -> Row {
        self.policy = policy;
        self
    }
}

fn ip4(source: [u8; 4], destination: [u8; 4]) -> Ipv4 {
    Ipv4::new(source, destination)
}
fn ip6(source: [u8; 16], destination: [u8; 16]) -> Ipv6 {
    Ipv6::new(source, destination)
}
fn syn4(source: [u8; 4], destination: [u8; 4], port: u16) -> Vec<u8> {
    Eth::new().ipv4(ip4(source, destination).tcp(Tcp::syn(port)))
}
fn syn6(source: [u8; 16], destination: [u8; 16], port: u16) -> Vec<u8> {
    Eth::new().ipv6(ip6(source, destination).tcp(Tcp::syn(port)))
}

fn rules() -> Vec<Row> {
    vec![
        row(
            "spam checker to the primary MX",
            syn4(CHECKER4, MX4, 25),
            PASS,
            &[AllowedSenderV4],
        ),
        row(
            "IPv6 spam checker to the primary MX",
            syn6(CHECKER6, MX6, 25),
            PASS,
            &[AllowedSenderV6],
        ),
        row(
            "Internet sender to the primary MX",
            syn4(OTHER4, MX4, 25),
            DROP,
            &[DroppedV4],
        ),
        row(
            "IPv6 Internet sender to the primary MX",
            syn6(OTHER6, MX6, 25),
            DROP,
            &[DroppedV6],
        ),
        row(
            "monitor: Internet sender to the primary MX",
            syn4(OTHER4, MX4, 25),
            PASS,
            &[MonitoredV4],
        )
        .policy(isp().monitor()),
        row(
            "monitor: IPv6 Internet sender to the primary MX",
            syn6(OTHER6, MX6, 25),
            PASS,
            &[MonitoredV6],
        )
        .policy(isp().monitor()),
        row(
            "monitor: spam checker to the primary MX",
            syn4(CHECKER4, MX4, 25),
            PASS,
            &[AllowedSenderV4],
        )
        .policy(isp().monitor()),
        row(
            "Internet sender to the primary MX on 587",
            syn4(OTHER4, MX4, 587),
            PASS,
            &[],
        ),
        row(
            "Internet sender to the primary MX on 465",
            syn6(OTHER6, MX6, 465),
            PASS,
            &[],
        ),
        row(
            "Internet sender to the primary MX on 80",
            syn4(OTHER4, MX4, 80),
            PASS,
            &[],
        ),
        row(
            "UDP to the primary MX on 25",
            Eth::new().ipv4(ip4(OTHER4, MX4).udp(Udp::to(25))),
            PASS,
            &[],
        ),
        row(
            "Internet sender to the spam checker (bucket full)",
            syn4(OTHER4, CHECKER4, 25),
            PASS,
            &[],
        ),
        row(
            "IPv6 Internet sender to the spam checker",
            syn6(OTHER6, CHECKER6, 25),
            PASS,
            &[],
        ),
        row(
            "Internet sender to an unprotected host",
            syn4(OTHER4, HOST4, 25),
            PASS,
            &[],
        ),
        row(
            "IPv6 Internet sender to an unprotected host",
            syn6(OTHER6, HOST6, 25),
            PASS,
            &[],
        ),
        row(
            "spam checker to an unprotected host",
            syn4(CHECKER4, HOST4, 25),
            PASS,
            &[],
        ),
        row(
            "nothing configured: to the primary MX",
            syn4(OTHER4, MX4, 25),
            PASS,
            &[],
        )
        .policy(InboundPolicy::default()),
        row(
            "protected /24 holds the primary MX",
            syn4(OTHER4, MX4, 25),
            DROP,
            &[DroppedV4],
        )
        .policy(
            InboundPolicy::default()
                .protected("192.0.2.0/24")
                .sender("203.0.113.128/25"),
        ),
        row(
            "sender /24 holds the Internet sender",
            syn4(OTHER4, MX4, 25),
            PASS,
            &[AllowedSenderV4],
        )
        .policy(isp().sender("203.0.113.0/24")),
        row(
            "protected wins over throttle for the same address",
            syn4(OTHER4, MX4, 25),
            DROP,
            &[DroppedV4],
        )
        .policy(isp().throttle("192.0.2.0/24")),
        row(
            "mapped source claiming to be the spam checker",
            syn6(MAPPED_CHECKER, MX6, 25),
            DROP,
            &[DroppedV6],
        ),
        row(
            "mapped source, the checker listed as an IPv4 /24",
            syn6(MAPPED_CHECKER, MX6, 25),
            DROP,
            &[DroppedV6],
        )
        .policy(isp().sender("192.0.2.0/24")),
        row(
            "IPv4 sender to an IPv6-only protected list",
            syn4(OTHER4, MX4, 25),
            PASS,
            &[],
        )
        .policy(InboundPolicy::default().protected("2001:db8:1::30/128")),
    ]
}

fn link() -> Vec<Row> {
    let to_mx = || ip4(OTHER4, MX4).tcp(Tcp::syn(25));
    let from_checker = || ip4(CHECKER4, MX4).tcp(Tcp::syn(25));
    vec![
        row(
            "802.1Q tag, to the primary MX",
            Eth::new().vlan(tpid::DOT1Q).ipv4(to_mx()),
            DROP,
            &[DroppedV4],
        ),
        row(
            "QinQ, to the primary MX",
            Eth::new().vlan(tpid::QINQ).vlan(tpid::DOT1Q).ipv4(to_mx()),
            DROP,
            &[DroppedV4],
        ),
        row(
            "QinQ, spam checker",
            Eth::new()
                .vlan(tpid::QINQ)
                .vlan(tpid::DOT1Q)
                .ipv4(from_checker()),
            PASS,
            &[AllowedSenderV4],
        ),
        row(
            "four tags, to the primary MX",
            Eth::new().vlans(4).ipv4(to_mx()),
            DROP,
            &[DroppedV4],
        ),
        row(
            "four tags, IPv6 to the primary MX",
            Eth::new().vlans(4).ipv6(ip6(OTHER6, MX6).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        ),
        row(
            "five tags (unparseable)",
            Eth::new().vlans(5).ipv4(to_mx()),
            DROP,
            &[],
        )
        .shared(&[Counter::Malformed]),
        row(
            "monitor: five tags",
            Eth::new().vlans(5).ipv4(to_mx()),
            PASS,
            &[],
        )
        .shared(&[Counter::Malformed])
        .policy(isp().monitor()),
        row(
            "PPPoE, to the primary MX",
            Eth::new().pppoe().ipv4(to_mx()),
            DROP,
            &[DroppedV4],
        ),
        row(
            "PPPoE, spam checker",
            Eth::new().pppoe().ipv4(from_checker()),
            PASS,
            &[AllowedSenderV4],
        ),
        row(
            "PPPoE, IPv6 to the primary MX",
            Eth::new().pppoe().ipv6(ip6(OTHER6, MX6).tcp(Tcp::syn(25))),
            DROP,
            &[DroppedV6],
        ),
        row(
            "tagged PPPoE, IPv6 spam checker",
            Eth::new()
                .vlan(tpid::DOT1Q)
                .pppoe()
                .ipv6(ip6(CHECKER6, MX6).tcp(Tcp::syn(25))),
            PASS,
            &[AllowedSenderV6],
        ),
        row(
            "tag, to port 80 of the primary MX",
            Eth::new()
                .vlan(tpid::DOT1Q)
                .ipv4(ip4(OTHER4, MX4).tcp(Tcp::syn(80))),
            PASS,
            &[],
        ),
    ]
}

fn tcp() -> Vec<Row> {
    let mut rows = vec![
        row(
            "data offset 4, to the primary MX",
            Eth::new().ipv4(ip4(OTHER4, MX4).tcp(Tcp::syn(25).data_offset(4))),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::Malformed]),
        row(
            "data offset 15 past the end, IPv6 to the primary MX",
            Eth::new().ipv6(ip6(OTHER6, MX6).tcp(Tcp::syn(25).data_offset(15))),
            DROP,
            &[DroppedV6],
        )
        .shared(&[Counter::Malformed]),
        row(
            "data offset 4, spam checker",
            Eth::new().ipv4(ip4(CHECKER4, MX4).tcp(Tcp::syn(25).data_offset(4))),
            DROP,
            &[DroppedV4],
        )
        .shared(&[Counter::Malformed]),
        row(
            "data offset 4, to an unprotected host",
            Eth::new().ipv4(ip4(OTHER4, HOST4).tcp(Tcp::syn(25).data_offset(4))),
            PASS,
            &[],
        ),
        row(
            "Fast Open SYN with data, to the primary MX",
            Eth::new().ipv4(ip4(OTHER4, MX4).tcp(Tcp::syn(25).payload(b"EHLO x\r\n"))),
            DROP,
            &[DroppedV4],
        ),
    ];
    for flags in 0..=255u8 {
        rows.push(row(
            &format!("flags {flags:#04x} to the primary MX"),
            Eth::new().ipv4(ip4(OTHER4, MX4).tcp(Tcp::syn(25).flags(flags))),
            DROP,
            &[DroppedV4],
        ));
        rows.push(row(
            &format!("flags {flags:#04x} IPv6 from the spam checker"),
            Eth::new().ipv6(ip6(CHECKER6, MX6).tcp(Tcp::syn(25).flags(flags))),
            PASS,
            &[AllowedSenderV6],
        ));
        // The bucket is full at every row, so a throttled destination passes every flag.
        rows.push(row(
            &format!("flags {flags:#04x} to the spam checker"),
            Eth::new().ipv4(ip4(OTHER4, CHECKER4).tcp(Tcp::syn(25).flags(flags))),
            PASS,
            &[],
        ));
    }
    rows
}

#[test]
fn every_inbound_row_holds_in_the_kernel() {
    let rows: Vec<Row> = [rules(), link(), ipv4(), ipv6(), tcp()]
        .into_iter()
        .flatten()
        .collect();
    let mut names: Vec<&str> = rows.iter().map(|r| r.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), rows.len(), "duplicate row names");

    let mut inbound = Inbound::load(&[25], 4096);
    let mut failures = Vec::new();
    // Every row twice: as the agent writes the lists (the host table where they allow it) and
    // with the tries alone.
    let passes = [("host table", false), ("tries only", true)];
    let runs = passes.iter().flat_map(|&(pass, tries_only)| {
        rows.iter().map(move |row| {
            let policy = if tries_only {
                row.policy.clone().without_host_table()
            } else {
                row.policy.clone()
            };
            (pass, row, policy)
        })
    });
    let mut on_table = 0;
    // Consecutive rows mostly share a policy: rewrite the lists only when it changes.
    let mut applied: Option<InboundPolicy> = None;
    for (pass, row, policy) in runs {
        if applied.as_ref() != Some(&policy) {
            inbound.apply(&policy);
            applied = Some(policy);
        }
        on_table += usize::from(inbound.host_table_on());
        inbound.clear_buckets();
        let (before, shared_before) = (inbound.counters(), inbound.shared_counters());
        let verdict = inbound.run(&row.frame);
        let delta = inbound.counters().since(&before);
        let shared = inbound.shared_counters().since(&shared_before);
        let want: Vec<_> = row.inbound.iter().map(|&c| (c, 1)).collect();
        let want_shared: Vec<_> = row.shared.iter().map(|&c| (c, 1)).collect();
        if verdict != row.verdict || delta != want || shared != want_shared {
            failures.push(format!(
                "{} ({pass}): gave {verdict:?} {delta:?} {shared:?}, row says {:?} {want:?} \
                 {want_shared:?}",
                row.name, row.verdict
            ));
        }
    }
    println!(
        "{} inbound rows, {on_table} of them on the host table",
        rows.len()
    );
    assert!(
        on_table * 2 > rows.len(),
        "most rows' lists are hosts, yet only {on_table} ran on the host table"
    );
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn inbound_ports_are_a_load_time_set() {
    let mut inbound = Inbound::load(&[25, 2525], 4096);
    inbound.apply(&isp());
    assert_eq!(inbound.run(&syn4(OTHER4, MX4, 2525)), DROP);
    assert_eq!(inbound.run(&syn4(OTHER4, MX4, 25)), DROP);
    assert_eq!(inbound.run(&syn4(OTHER4, MX4, 2526)), PASS);
    let mut only_2525 = Inbound::load(&[2525], 4096);
    only_2525.apply(&isp());
    assert_eq!(only_2525.run(&syn4(OTHER4, MX4, 25)), PASS);
    assert_eq!(only_2525.counters().0, [0; InboundCounter::COUNT as usize]);
}

/// The host table, not the tries, decides while its header names it; switched off, the tries
/// do. Also: a host both protected and throttled is protected first.
#[test]
fn the_host_table_decides_while_it_is_on() {
    let mut inbound = Inbound::load(&[25], 4096);
    let policy = isp().protected("192.0.2.41/32").throttle("192.0.2.41/32");
    inbound.apply(&policy);
    assert!(inbound.host_table_on(), "the spec's example is all hosts");
    inbound.empty_ipv4_tries();
    assert_eq!(
        inbound.run(&syn4(OTHER4, MX4, 25)),
        DROP,
        "protected by the table"
    );
    assert_eq!(
        inbound.run(&syn4(CHECKER4, MX4, 25)),
        PASS,
        "the checker may send"
    );
    assert_eq!(inbound.run(&syn4(OTHER4, [192, 0, 2, 41], 25)), DROP);
    assert_eq!(inbound.run(&syn4(OTHER4, HOST4, 25)), PASS);
    let before = inbound.counters();
    inbound.set_clock(&policy, 1);
    // The checker's own bucket: the burst (40) passes, the next SYN is throttled.
    for _ in 0..40 {
        assert_eq!(inbound.run(&syn4(OTHER4, CHECKER4, 25)), PASS);
    }
    assert_eq!(inbound.run(&syn4(OTHER4, CHECKER4, 25)), DROP);
    assert_eq!(
        inbound.counters().since(&before),
        vec![(ThrottledV4, 1)],
        "throttled by the table's class"
    );

    inbound.write_host_table(None);
    assert!(!inbound.host_table_on());
    assert_eq!(
        inbound.run(&syn4(OTHER4, MX4, 25)),
        PASS,
        "the tries are empty now"
    );
    assert_eq!(inbound.run(&syn4(OTHER4, [192, 0, 2, 41], 25)), PASS);
}

/// A list with a prefix wider than a host keeps the table off: the tries answer.
#[test]
fn a_wider_prefix_leaves_the_table_off() {
    let mut inbound = Inbound::load(&[25], 4096);
    inbound.apply(&isp().protected("198.51.100.0/28"));
    assert!(!inbound.host_table_on());
    assert_eq!(inbound.run(&syn4(OTHER4, [198, 51, 100, 9], 25)), DROP);
    assert_eq!(inbound.run(&syn4(OTHER4, MX4, 25)), DROP);
    inbound.apply(&isp());
    assert!(inbound.host_table_on());
}
