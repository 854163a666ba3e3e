//! A harness around the real eBPF object's `inbound` program: load it with aya (no pins), fill
//! its lists and config as [`InboundPolicy`] says, run frames with `BPF_PROG_TEST_RUN`, and read
//! back its counters, the shared parser counters and the throttle's buckets.

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, lpm_trie::Key},
    programs::{TestRun, TestRunOptions, Xdp},
};
use egress_common::{
    Counter, Mode, PortSet, SubscriberKey,
    host_table::Table,
    inbound::{InboundConfig, InboundCounter, ThrottleBucket, empty, names},
};
use ipnet::IpNet;

use crate::dataplane::{Counters, TEST_MAX_TRACKED, Verdict};

/// The inbound lists, mode and throttle settings, as the agent would write them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InboundPolicy {
    pub mode: Mode,
    pub protected_mx: Vec<IpNet>,
    pub mx_senders: Vec<IpNet>,
    pub throttled: Vec<IpNet>,
    pub syn_per_second: u32,
    pub burst: u32,
    /// 0: the kernel's clock; otherwise the time the program sees (see `InboundConfig::clock_ns`).
    pub clock_ns: u64,
    /// Whether [`Inbound::apply`] writes the IPv4 host table where the lists allow it, as the
    /// agent does; off, the tries answer every destination.
    pub host_table: bool,
}

impl Default for InboundPolicy {
    fn default() -> Self {
        InboundPolicy {
            mode: Mode::Enforce,
            protected_mx: Vec::new(),
            mx_senders: Vec::new(),
            throttled: Vec::new(),
            syn_per_second: 10,
            burst: 40,
            clock_ns: 0,
            host_table: true,
        }
    }
}

fn net(cidr: &str) -> IpNet {
    cidr.parse::<IpNet>()
        .or_else(|_| cidr.parse::<std::net::IpAddr>().map(IpNet::from))
        .unwrap_or_else(|err| panic!("bad prefix {cidr:?}: {err}"))
        .trunc()
}

impl InboundPolicy {
    pub fn monitor(mut self) -> Self {
        self.mode = Mode::Monitor;
        self
    }
    pub fn protected(mut self, cidr: &str) -> Self {
        self.protected_mx.push(net(cidr));
        self
    }
    pub fn sender(mut self, cidr: &str) -> Self {
        self.mx_senders.push(net(cidr));
        self
    }
    pub fn throttle(mut self, cidr: &str) -> Self {
        self.throttled.push(net(cidr));
        self
    }
    /// The same lists, with the host table left off.
    pub fn without_host_table(mut self) -> Self {
        self.host_table = false;
        self
    }
    pub fn rate(mut self, syn_per_second: u32, burst: u32) -> Self {
        self.syn_per_second = syn_per_second;
        self.burst = burst;
        self
    }

    /// The host table the agent would write: IPv4 hosts of `protected_mx` and `throttled`,
    /// or `None` when either list has a wider IPv4 prefix (or the table is switched off).
    pub fn host_table(&self) -> Option<Table> {
        if !self.host_table {
            return None;
        }
        egress_agent::inbound::hosts::table_for(&self.protected_mx, &self.throttled)
    }

    /// The config entry, with the empty-list shortcuts the agent would set.
    pub fn config(&self) -> InboundConfig {
        let mut flags = 0;
        for (list, v4, v6) in [
            (&self.protected_mx, empty::PROTECTED_V4, empty::PROTECTED_V6),
            (&self.mx_senders, empty::SENDERS_V4, empty::SENDERS_V6),
            (&self.throttled, empty::THROTTLED_V4, empty::THROTTLED_V6),
        ] {
            if !list.iter().any(|n| matches!(n, IpNet::V4(_))) {
                flags |= v4;
            }
            if !list.iter().any(|n| matches!(n, IpNet::V6(_))) {
                flags |= v6;
            }
        }
        let (interval_ns, tolerance_ns) = InboundConfig::throttle(self.syn_per_second, self.burst);
        InboundConfig {
            mode: self.mode as u32,
            flags,
            interval_ns,
            tolerance_ns,
            clock_ns: self.clock_ns,
        }
    }
}

/// Inbound counter values summed over CPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InboundCounters(pub [u64; InboundCounter::COUNT as usize]);

impl InboundCounters {
    pub fn get(&self, counter: InboundCounter) -> u64 {
        self.0[counter as usize]
    }

    pub fn since(&self, before: &InboundCounters) -> Vec<(InboundCounter, u64)> {
        InboundCounter::ALL
            .iter()
            .filter_map(|&c| {
                let delta = self.get(c) - before.get(c);
                (delta != 0).then_some((c, delta))
            })
            .collect()
    }
}

/// A loaded instance of the object with the inbound program verified.
pub struct Inbound {
    ebpf: Ebpf,
}

impl Inbound {
    /// Loads the object with `ports` as `inbound.ports` and `max_sources` buckets.
    pub fn load(ports: &[u16], max_sources: u32) -> Inbound {
        let ports = ports.iter().fold(PortSet::EMPTY, |set, &p| set.with(p));
        let mut ebpf = EbpfLoader::new()
            .override_global(names::PORTS, &ports, true)
            .map_max_entries(egress_common::names::SUBSCRIBERS, TEST_MAX_TRACKED)
            .map_max_entries(names::BUCKETS, max_sources)
            .load(egress_agent::EBPF_OBJECT)
            .expect("the embedded eBPF object loads (are you root?)");
        let program: &mut Xdp = ebpf
            .program_mut(names::PROGRAM)
            .expect("the object has the inbound program")
            .try_into()
            .expect("the inbound program is XDP");
        program
            .load()
            .expect("the verifier accepts the inbound program");
        let mut inbound = Inbound { ebpf };
        inbound.apply(&InboundPolicy::default());
        inbound
    }

    pub fn program(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(names::PROGRAM)
            .expect("the object has the inbound program")
            .try_into()
            .expect("the inbound program is XDP")
    }

    /// Replaces the lists and the config with `policy`'s.
    pub fn apply(&mut self, policy: &InboundPolicy) {
        for (name, list) in [
            (names::PROTECTED_V4, &policy.protected_mx),
            (names::SENDERS_V4, &policy.mx_senders),
            (names::THROTTLED_V4, &policy.throttled),
        ] {
            let map = LpmTrie::<_, [u8; 4], u32>::try_from(self.map_mut(name))
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            fill(
                map,
                list.iter().filter_map(|n| match n {
                    IpNet::V4(n) => Some((n.addr().octets(), n.prefix_len())),
                    IpNet::V6(_) => None,
                }),
                name,
            );
        }
        for (name, list) in [
            (names::PROTECTED_V6, &policy.protected_mx),
            (names::SENDERS_V6, &policy.mx_senders),
            (names::THROTTLED_V6, &policy.throttled),
        ] {
            let map = LpmTrie::<_, [u8; 16], u32>::try_from(self.map_mut(name))
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            fill(
                map,
                list.iter().filter_map(|n| match n {
                    IpNet::V6(n) => Some((n.addr().octets(), n.prefix_len())),
                    IpNet::V4(_) => None,
                }),
                name,
            );
        }
        self.set_config(&policy.config());
        self.write_host_table(policy.host_table().as_ref());
    }

    /// Writes `table` as the host table; `None` switches it off.
    pub fn write_host_table(&mut self, table: Option<&Table>) {
        crate::dataplane::write_host_table(self.map_mut(names::HOSTS_V4), table);
    }

    /// Whether the program reads the host table (its header names one).
    pub fn host_table_on(&self) -> bool {
        crate::dataplane::host_table_on(self.ebpf.map(names::HOSTS_V4).expect("host table"))
    }

    /// Removes every entry of the IPv4 protected-MX and throttle tries, leaving the host
    /// table as it is (to show which of the two the program reads).
    pub fn empty_ipv4_tries(&mut self) {
        for name in [names::PROTECTED_V4, names::THROTTLED_V4] {
            let map = LpmTrie::<_, [u8; 4], u32>::try_from(self.map_mut(name))
                .unwrap_or_else(|err| panic!("{name}: {err}"));
            fill(map, std::iter::empty(), name);
        }
    }

    pub fn set_config(&mut self, config: &InboundConfig) {
        let mut map: Array<_, InboundConfig> =
            Array::try_from(self.map_mut(names::CONFIG)).expect("inbound config is an array");
        map.set(0, config, 0).expect("write the inbound config");
    }

    /// Sets only the test clock, keeping everything else.
    pub fn set_clock(&mut self, policy: &InboundPolicy, clock_ns: u64) {
        self.set_config(&InboundConfig {
            clock_ns,
            ..policy.config()
        });
    }

    pub fn run(&mut self, frame: &[u8]) -> Verdict {
        let result = self
            .program()
            .test_run(TestRunOptions {
                data_in: Some(frame),
                repeat: 1,
                ..TestRunOptions::default()
            })
            .unwrap_or_else(|err| panic!("BPF_PROG_TEST_RUN of inbound: {err}"));
        Verdict::from_return(crate::dataplane::Hook::Xdp, result.return_value)
    }

    pub fn counters(&self) -> InboundCounters {
        let map: PerCpuArray<_, u64> =
            PerCpuArray::try_from(self.ebpf.map(names::COUNTERS).expect("inbound counters"))
                .expect("inbound counters are a per-CPU array");
        let mut out = [0u64; InboundCounter::COUNT as usize];
        for counter in InboundCounter::ALL {
            out[counter as usize] = map
                .get(&(counter as u32), 0)
                .expect("read an inbound counter")
                .iter()
                .sum();
        }
        InboundCounters(out)
    }

    /// The shared parser counters (malformed, fragments, IPv6 chains).
    pub fn shared_counters(&self) -> Counters {
        let map: PerCpuArray<_, u64> = PerCpuArray::try_from(
            self.ebpf
                .map(egress_common::names::COUNTERS)
                .expect("shared counters"),
        )
        .expect("shared counters are a per-CPU array");
        let mut out = [0u64; Counter::COUNT as usize];
        for counter in Counter::ALL {
            out[counter as usize] = map
                .get(&(counter as u32), 0)
                .expect("read a counter")
                .iter()
                .sum();
        }
        Counters(out)
    }

    pub fn buckets(&self) -> Vec<(SubscriberKey, ThrottleBucket)> {
        let map: HashMap<_, SubscriberKey, ThrottleBucket> =
            HashMap::try_from(self.ebpf.map(names::BUCKETS).expect("throttle buckets"))
                .expect("throttle buckets are a hash map");
        map.iter().filter_map(Result::ok).collect()
    }

    /// Empties the throttle's buckets (between table rows).
    pub fn clear_buckets(&mut self) {
        let mut map: HashMap<_, SubscriberKey, ThrottleBucket> =
            HashMap::try_from(self.map_mut(names::BUCKETS)).expect("throttle buckets");
        let keys: Vec<_> = map.keys().filter_map(Result::ok).collect();
        for key in keys {
            let _ = map.remove(&key);
        }
    }

    fn map_mut(&mut self, name: &str) -> &mut aya::maps::Map {
        self.ebpf
            .map_mut(name)
            .unwrap_or_else(|| panic!("the eBPF object has no map {name}"))
    }
}

fn fill<K: aya::Pod + PartialEq>(
    mut map: LpmTrie<&mut MapData, K, u32>,
    entries: impl Iterator<Item = (K, u8)>,
    name: &str,
) {
    let old: Vec<_> = map.keys().filter_map(Result::ok).collect();
    for key in old {
        map.remove(&key)
            .unwrap_or_else(|err| panic!("remove from {name}: {err}"));
    }
    for (addr, len) in entries {
        map.insert(&Key::new(u32::from(len), addr), 1, 0)
            .unwrap_or_else(|err| panic!("insert into {name}: {err}"));
    }
}
