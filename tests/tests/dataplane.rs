//! The dataplane, packet by packet: one table of cases run through the XDP program, the TC
//! program (both with `BPF_PROG_TEST_RUN` in the real kernel) and the host build of the shared
//! parser. Every row states the verdict and the exact global counter increments.

#[path = "dataplane/frames.rs"]
mod frames;
#[path = "dataplane/ipv4.rs"]
mod ipv4;
#[path = "dataplane/ipv6.rs"]
mod ipv6;
#[path = "dataplane/link.rs"]
mod link;
#[path = "dataplane/nesting.rs"]
mod nesting;
#[path = "dataplane/policy.rs"]
mod policy;
#[path = "dataplane/pools.rs"]
mod pools;
#[path = "dataplane/subscribers.rs"]
mod subscribers;
#[path = "dataplane/tcp.rs"]
mod tcp;

use std::collections::BTreeMap;

use egress_common::{Counter, PortSet};
use tests::dataplane::{Dataplane, Hook, Policy, Verdict, model};

/// One row of the table.
pub struct Case {
    pub name: String,
    pub frame: Vec<u8>,
    pub ports: &'static [u16],
    pub hooks: &'static [Hook],
    pub policy: Policy,
    pub verdict: Verdict,
    pub counters: Vec<Counter>,
}

impl Case {
    pub fn new(name: &str, frame: Vec<u8>, verdict: Verdict, counters: &[Counter]) -> Case {
        Case {
            name: name.to_string(),
            frame,
            ports: &[25],
            hooks: &Hook::BOTH,
            policy: Policy::default(),
            verdict,
            counters: counters.to_vec(),
        }
    }

    pub fn policy(mut self, policy: Policy) -> Case {
        self.policy = policy;
        self
    }

    /// For frames whose IP header is cut short: the kernel refuses to build an skb from them
    /// for a TC test run (and the stack never sends one). Rows behind a VLAN tag cover TC.
    pub fn xdp_only(mut self) -> Case {
        self.hooks = &[Hook::Xdp];
        self
    }

    pub fn ports(mut self, ports: &'static [u16]) -> Case {
        self.ports = ports;
        self
    }
}

/// The whole table.
fn table() -> Vec<Case> {
    [
        link::cases(),
        ipv4::cases(),
        ipv6::cases(),
        tcp::cases(),
        policy::cases(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

fn port_set(ports: &[u16]) -> PortSet {
    ports.iter().fold(PortSet::EMPTY, |set, &p| set.with(p))
}

/// Runs one case everywhere it can run and describes every disagreement with the row.
fn check(dataplane: &mut Dataplane, case: &Case) -> Vec<String> {
    let mut failures = Vec::new();
    let expected_counters: Vec<(Counter, u64)> = case.counters.iter().map(|&c| (c, 1)).collect();
    let host = model::judge(&case.frame, &port_set(case.ports), &case.policy);
    if host.verdict != case.verdict || host.counters != case.counters {
        failures.push(format!(
            "{}: host parser says {:?} {:?}, row says {:?} {:?} (parsed {:?})",
            case.name,
            host.verdict,
            host.counters,
            case.verdict,
            case.counters,
            egress_common::parse(&case.frame[..], &port_set(case.ports)),
        ));
    }
    dataplane.use_policy(&case.policy);
    for &hook in case.hooks {
        let before = dataplane.counters();
        let verdict = match dataplane.try_run(hook, &case.frame) {
            Ok(verdict) => verdict,
            Err(err) => {
                failures.push(format!("{}: {hook:?} test run failed: {err}", case.name));
                continue;
            }
        };
        let delta = dataplane.counters().since(&before);
        if verdict != case.verdict || delta != expected_counters {
            failures.push(format!(
                "{}: {hook:?} gave {verdict:?} {delta:?}, row says {:?} {expected_counters:?}",
                case.name, case.verdict
            ));
        }
    }
    failures
}

#[test]
fn every_case_agrees_in_xdp_tc_and_host_parser() {
    let table = table();
    assert!(table.len() > 60, "the table has only {} rows", table.len());
    let mut by_ports: BTreeMap<&[u16], Vec<&Case>> = BTreeMap::new();
    for case in &table {
        by_ports.entry(case.ports).or_default().push(case);
    }
    let mut failures = Vec::new();
    for (ports, group) in by_ports {
        let mut dataplane = Dataplane::load(ports);
        for case in group {
            failures.extend(check(&mut dataplane, case));
        }
    }
    println!("{} rows x (XDP, TC, host parser)", table.len());
    assert!(
        failures.is_empty(),
        "{} disagreements:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn row_names_are_unique() {
    let table = table();
    let mut names: Vec<&str> = table.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let before = names.len();
    names.dedup();
    assert_eq!(before, names.len(), "duplicate row names in the table");
}

/// The IPv4 destinations' host table, not the trie, decides while its header names it;
/// switched off, the trie does. A destination wider than a host keeps it off.
#[test]
fn the_destinations_host_table_decides_while_it_is_on() {
    let mut dataplane = Dataplane::load(&[25]);
    // From a subscriber to 203.0.113.25, port 25.
    let syn = |dataplane: &mut Dataplane| dataplane.run(Hook::Xdp, &frames::syn4(25));
    let hosts = Policy::default()
        .destination("203.0.113.25")
        .destination("192.0.2.99");
    dataplane.apply(&hosts);
    assert!(
        dataplane.destination_table_on(),
        "every IPv4 destination is a host"
    );
    dataplane.keep_one_destination_store(true);
    assert_eq!(
        syn(&mut dataplane),
        Verdict::Pass,
        "allowed by the host table alone"
    );

    dataplane.apply(&hosts);
    dataplane.keep_one_destination_store(false);
    assert!(!dataplane.destination_table_on());
    assert_eq!(
        syn(&mut dataplane),
        Verdict::Pass,
        "allowed by the trie alone"
    );
    dataplane.keep_one_destination_store(true);
    assert_eq!(syn(&mut dataplane), Verdict::Drop, "neither holds it now");

    dataplane.apply(&hosts.destination("198.51.100.0/24"));
    assert!(
        !dataplane.destination_table_on(),
        "a /24 leaves the table off"
    );
    assert_eq!(syn(&mut dataplane), Verdict::Pass);
}

/// The IPv6 source hosts' table answers for the /128 entries it holds: with the trie emptied
/// an IPv6 relay still passes, and with the table off too it is blocked; an exempt /48 never
/// goes into the table and is judged by the trie.
#[test]
fn the_ipv6_source_hosts_table_decides_for_its_hosts() {
    let mut dataplane = Dataplane::load(&[25]);
    let relay = frames::v6([0x2001, 0xdb8, 0x100, 1, 0, 0, 0, 7]);
    let from = |dataplane: &mut Dataplane, source: [u8; 16]| {
        let frame = tests::packet::Eth::new()
            .ipv6(tests::packet::Ipv6::new(source, frames::MX6).tcp(tests::packet::Tcp::syn(25)));
        dataplane.run(Hook::Xdp, &frame)
    };
    let policy = Policy::default()
        .relay("2001:db8:100:1::7/128")
        .exempt("2001:db8:200::/48");
    dataplane.apply(&policy);
    assert!(dataplane.source_hosts_on(), "one IPv6 /128 entry");
    dataplane.keep_one_v6_source_store(true);
    assert_eq!(
        from(&mut dataplane, relay),
        Verdict::Pass,
        "the table alone"
    );
    let customer = frames::v6([0x2001, 0xdb8, 0x200, 0, 0, 0, 0, 9]);
    assert_eq!(
        from(&mut dataplane, customer),
        Verdict::Drop,
        "the /48 was only in the trie"
    );

    dataplane.apply(&policy);
    dataplane.keep_one_v6_source_store(false);
    assert!(!dataplane.source_hosts_on());
    assert_eq!(from(&mut dataplane, relay), Verdict::Pass, "the trie alone");
    assert_eq!(from(&mut dataplane, customer), Verdict::Pass);
    dataplane.keep_one_v6_source_store(true);
    assert_eq!(
        from(&mut dataplane, relay),
        Verdict::Drop,
        "neither holds it now"
    );

    dataplane.apply(&Policy::default().exempt("2001:db8:200::/48"));
    assert!(
        !dataplane.source_hosts_on(),
        "no /128 entry leaves the table off"
    );
}

/// The IPv6 source filter decides only where its bit is clear: with every bit cleared, a relay
/// the trie holds is blocked like a subscriber; a source prefix shorter than /40 keeps the
/// filter off, and the trie lets the relay through again.
#[test]
fn the_ipv6_source_filter_skips_the_trie_only_where_its_bit_is_clear() {
    use tests::packet::{Eth, Ipv6, Tcp};
    let mut dataplane = Dataplane::load(&[25]);
    let from_relay = Eth::new().ipv6(Ipv6::new(frames::RELAY6, frames::MX6).tcp(Tcp::syn(25)));
    let relay = Policy::default().relay("2001:db8:1::25/128");
    dataplane.apply(&relay);
    assert!(
        dataplane.source_filter_on(),
        "a /128 relay is listed in the filter"
    );
    assert_eq!(dataplane.run(Hook::Xdp, &from_relay), Verdict::Pass);
    dataplane.clear_source_filter();
    assert_eq!(
        dataplane.run(Hook::Xdp, &from_relay),
        Verdict::Drop,
        "a clear bit: judged without the trie"
    );
    dataplane.apply(&relay.exempt("2001:db8::/32"));
    assert!(
        !dataplane.source_filter_on(),
        "a /32 is too wide for the filter"
    );
    dataplane.clear_source_filter();
    assert_eq!(dataplane.run(Hook::Xdp, &from_relay), Verdict::Pass);
}
