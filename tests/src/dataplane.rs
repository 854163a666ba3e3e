//! A harness around the real eBPF object: load it with aya (no pins), apply a [`Policy`], run
//! frames through the XDP or TC program with `BPF_PROG_TEST_RUN`, and read back counters,
//! subscriber records and ring-buffer events. Used by the dataplane tests, the end-to-end
//! tests, the bench and the fuzz replay.
//!
//! [`model`] is the host-side reference: the shared parser compiled for the host plus a
//! straightforward reading of the spec's decision rules, so tests can check that kernel and
//! host agree on the same bytes.

mod allowlists;
pub mod model;
mod source_hosts;

use std::net::IpAddr;

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray, RingBuf},
    programs::{ProgramError, SchedClassifier, TestRun, TestRunOptions, TestRunResult, Xdp},
};
use egress_agent::allowlist::MapContents;
use egress_common::{
    Counter, DataplaneConfig, Mode, PortSet, SubscriberEvent, SubscriberKey, SubscriberRecord,
    allow_kind,
    config::{allowlist_flags, ipv6_mask},
    host_table::{self, Table},
    index_sync, names,
    pools::PoolTable,
    source_filter,
};
use ipnet::IpNet;

use allowlists::replace_prefixes;

/// Subscriber-map capacity for tests: the real default (1M, preallocated) would cost hundreds
/// of MiB per loaded object.
pub const TEST_MAX_TRACKED: u32 = 4096;

/// The two programs, which share one decision function and all maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    Xdp,
    Tc,
}

impl Hook {
    pub const BOTH: [Hook; 2] = [Hook::Xdp, Hook::Tc];
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Drop,
}

const XDP_DROP: u32 = 1;
const XDP_PASS: u32 = 2;
const TC_ACT_SHOT: u32 = 2;
const TCX_NEXT: u32 = -1i32 as u32;

impl Verdict {
    /// Interprets a program's return value, panicking on anything the dataplane must not return.
    pub fn from_return(hook: Hook, value: u32) -> Verdict {
        match (hook, value) {
            (Hook::Xdp, XDP_PASS) | (Hook::Tc, TCX_NEXT) => Verdict::Pass,
            (Hook::Xdp, XDP_DROP) | (Hook::Tc, TC_ACT_SHOT) => Verdict::Drop,
            _ => panic!("{hook:?} program returned unexpected value {value}"),
        }
    }
}

/// One allowlist entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Allow {
    pub prefix: IpNet,
    /// `allow_kind` bits: RELAY or EXEMPT (source lists) or DESTINATION.
    pub kind: u32,
}

/// Everything user space configures at run time: the config map and the allowlists.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub mode: Mode,
    pub allow: Vec<Allow>,
    pub ipv6_prefix_len: u32,
    pub window_ns: u64,
    pub attempts_threshold: u64,
    pub destination_bits_threshold: u64,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            mode: Mode::Enforce,
            allow: Vec::new(),
            ipv6_prefix_len: 64,
            window_ns: 300_000_000_000,
            attempts_threshold: 0,
            destination_bits_threshold: 0,
        }
    }
}

impl Policy {
    pub fn monitor() -> Policy {
        Policy {
            mode: Mode::Monitor,
            ..Policy::default()
        }
    }

    fn with(mut self, cidr: &str, kind: u32) -> Policy {
        let prefix = cidr
            .parse::<IpNet>()
            .or_else(|_| cidr.parse::<IpAddr>().map(IpNet::from))
            .unwrap_or_else(|err| panic!("bad allowlist prefix {cidr:?}: {err}"));
        self.allow.push(Allow {
            prefix: prefix.trunc(),
            kind,
        });
        self
    }

    pub fn relay(self, cidr: &str) -> Policy {
        self.with(cidr, allow_kind::RELAY)
    }

    pub fn exempt(self, cidr: &str) -> Policy {
        self.with(cidr, allow_kind::EXEMPT)
    }

    pub fn destination(self, cidr: &str) -> Policy {
        self.with(cidr, allow_kind::DESTINATION)
    }

    pub fn config(&self) -> DataplaneConfig {
        DataplaneConfig {
            mode: self.mode as u32,
            ipv6_prefix_len: self.ipv6_prefix_len,
            ipv6_mask: ipv6_mask(self.ipv6_prefix_len),
            window_ns: self.window_ns,
            attempts_threshold: self.attempts_threshold,
            destination_bits_threshold: self.destination_bits_threshold,
            // No lookup shortcuts: right whatever the maps hold. `Dataplane::apply` sets them
            // once the index and the tries are filled.
            allowlist_flags: 0,
            reserved: 0,
        }
    }
}

/// Global counter values summed over CPUs, indexed by `Counter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Counters(pub [u64; Counter::COUNT as usize]);

impl Counters {
    pub fn get(&self, counter: Counter) -> u64 {
        self.0[counter as usize]
    }

    /// The counters that changed since `before`, with their increments.
    pub fn since(&self, before: &Counters) -> Vec<(Counter, u64)> {
        Counter::ALL
            .iter()
            .filter_map(|&c| {
                let delta = self.get(c) - before.get(c);
                (delta != 0).then_some((c, delta))
            })
            .collect()
    }
}

/// A loaded, unattached (or test-attached) instance of the dataplane object.
pub struct Dataplane {
    ebpf: Ebpf,
    events: RingBuf<MapData>,
    /// Taken out of `ebpf` so it can be mapped while the long-prefix map is borrowed.
    source_index: MapData,
    source_blocks: MapData,
    /// The policy `apply` wrote last (the programs never change it).
    applied: Option<Policy>,
}

impl Dataplane {
    /// Loads and verifies both programs with `blocked_ports` as the load-time port set.
    pub fn load(blocked_ports: &[u16]) -> Dataplane {
        Dataplane::load_with_pools(blocked_ports, &PoolTable::default())
    }

    /// Like [`Dataplane::load`], with `pools` as the subscriber pools: their records map
    /// sized to them and their table written, as the agent does at load.
    pub fn load_with_pools(blocked_ports: &[u16], pools: &PoolTable) -> Dataplane {
        let ports = blocked_ports
            .iter()
            .fold(PortSet::EMPTY, |set, &port| set.with(port));
        let mut ebpf = EbpfLoader::new()
            .override_global(names::BLOCKED_PORTS, &ports, true)
            .map_max_entries(names::SUBSCRIBERS, TEST_MAX_TRACKED)
            .map_max_entries(names::POOL_RECORDS_V4, pools.addresses().max(1))
            .load(egress_agent::EBPF_OBJECT)
            .expect("the embedded eBPF object loads (are you root?)");
        ebpf_program::<Xdp>(&mut ebpf, names::XDP_PROGRAM)
            .load()
            .expect("the verifier accepts the XDP program");
        ebpf_program::<SchedClassifier>(&mut ebpf, names::TC_PROGRAM)
            .load()
            .expect("the verifier accepts the TC program");
        let mut table: Array<_, PoolTable> = Array::try_from(
            ebpf.map_mut(names::POOL_TABLE_V4)
                .expect("object has the pool table"),
        )
        .expect("the pool table is an array");
        table.set(0, *pools, 0).expect("write the pool table");
        let events = ebpf
            .take_map(names::EVENTS)
            .map(RingBuf::try_from)
            .expect("object has the events map")
            .expect("events map is a ring buffer");
        let mut array = |name| match ebpf.take_map(name) {
            Some(aya::maps::Map::Array(data)) => data,
            other => panic!("{name} is not an array map: {other:?}"),
        };
        let source_index = array(names::SOURCE_INDEX_V4);
        let source_blocks = array(names::SOURCE_BLOCKS_V4);
        let mut dataplane = Dataplane {
            ebpf,
            events,
            source_index,
            source_blocks,
            applied: None,
        };
        dataplane.apply(&Policy::default());
        dataplane
    }

    pub fn xdp(&mut self) -> &mut Xdp {
        ebpf_program(&mut self.ebpf, names::XDP_PROGRAM)
    }

    pub fn tc(&mut self) -> &mut SchedClassifier {
        ebpf_program(&mut self.ebpf, names::TC_PROGRAM)
    }

    pub fn ebpf(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }

    /// Like [`Dataplane::apply`], but nothing is written when `policy` is the one applied
    /// last: table rows mostly share a policy, and comparing the 32 MiB source index on every
    /// row is what made the table slow under TCG. Only for callers that change the maps
    /// through `apply` alone.
    pub fn use_policy(&mut self, policy: &Policy) {
        if self.applied.as_ref() != Some(policy) {
            self.apply(policy);
        }
    }

    /// Writes the config map and replaces the allowlists with `policy.allow`: the tries and,
    /// with the agent's own code, the IPv4 source index, which the dataplane then uses.
    pub fn apply(&mut self, policy: &Policy) {
        self.applied = Some(policy.clone());
        self.write_config(&policy.config());
        for name in [names::SOURCES_V4, names::DESTINATIONS_V4] {
            replace_prefixes::<[u8; 4]>(self.map_mut(name), &policy.allow, name);
        }
        for name in [names::SOURCES_V6, names::DESTINATIONS_V6] {
            replace_prefixes::<[u8; 16]>(self.map_mut(name), &policy.allow, name);
        }
        let plan = policy.source_index_plan();
        index_sync::sync(&self.source_index, &self.source_blocks, &plan)
            .unwrap_or_else(|err| panic!("filling the IPv4 source index: {err}"));
        let destinations: MapContents = policy
            .allow
            .iter()
            .filter(|allow| allow.kind & allow_kind::DESTINATION != 0)
            .map(|allow| (allow.prefix, allow.kind))
            .collect();
        let table = egress_agent::dataplane::host_table::destinations(&destinations);
        write_host_table(self.map_mut(names::DEST_HOSTS_V4), table.as_ref());
        let sources: MapContents = policy
            .allow
            .iter()
            .filter(|allow| allow.kind & allow_kind::DESTINATION == 0)
            .map(|allow| (allow.prefix, allow.kind))
            .collect();
        let filter = egress_agent::dataplane::source_filter::expected(&sources);
        let filtered = self.write_source_filter(filter.as_deref());
        let v6_hosts = egress_agent::dataplane::source_hosts::expected(&sources);
        self.write_source_hosts(v6_hosts.as_ref());
        self.write_config(&DataplaneConfig {
            allowlist_flags: policy.allowlist_flags() | filtered,
            ..policy.config()
        });
    }

    /// Writes the IPv6 source filter's words; returns the flag that lets the programs use it
    /// (none for `None`).
    fn write_source_filter(&mut self, words: Option<&[u64]>) -> u32 {
        let Some(words) = words else {
            return 0;
        };
        let mut array: Array<_, u64> = self.map_mut(names::SOURCE_FILTER_V6);
        for (index, word) in (0u32..).zip(words) {
            array
                .set(index, word, 0)
                .expect("write an IPv6 source filter word");
        }
        allowlist_flags::SOURCES_V6_FILTERED
    }

    /// Clears every bit of the IPv6 source filter, leaving the trie and the flag as they are:
    /// the programs then judge every IPv6 source by the filter alone.
    pub fn clear_source_filter(&mut self) {
        let zeros = vec![0u64; source_filter::WORDS as usize];
        self.write_source_filter(Some(&zeros));
        self.applied = None;
    }

    /// Whether the programs consult the IPv6 source filter (the config's flag).
    pub fn source_filter_on(&mut self) -> bool {
        let config: Array<_, DataplaneConfig> = self.map_mut(names::CONFIG);
        let flags = config
            .get(&0, 0)
            .expect("read EGRESS_CONFIG[0]")
            .allowlist_flags;
        flags & allowlist_flags::SOURCES_V6_FILTERED != 0
    }

    /// Whether the programs read the IPv4 destinations' host table, not the trie.
    pub fn destination_table_on(&self) -> bool {
        host_table_on(
            self.ebpf
                .map(names::DEST_HOSTS_V4)
                .expect("destination host table"),
        )
    }

    /// Empties the IPv4 destination trie, leaving the host table as it is, or switches the
    /// host table off, leaving the trie: to show which of the two the programs read.
    pub fn keep_one_destination_store(&mut self, keep_table: bool) {
        if keep_table {
            let name = names::DESTINATIONS_V4;
            replace_prefixes::<[u8; 4]>(self.map_mut(name), &[], name);
        } else {
            write_host_table(self.map_mut(names::DEST_HOSTS_V4), None);
        }
        self.applied = None;
    }

    fn write_config(&mut self, value: &DataplaneConfig) {
        let mut config: Array<_, DataplaneConfig> = self.map_mut(names::CONFIG);
        config.set(0, value, 0).expect("write EGRESS_CONFIG[0]");
    }

    /// The IPv4 source index's first-level slot for `addr`.
    pub fn index_slot(&self, addr: [u8; 4]) -> u16 {
        index_sync::slot(&self.source_index, u32::from_be_bytes(addr))
            .unwrap_or_else(|err| panic!("reading the IPv4 source index: {err}"))
    }

    /// Runs one frame through a program and returns its verdict.
    pub fn run(&mut self, hook: Hook, frame: &[u8]) -> Verdict {
        self.try_run(hook, frame).unwrap_or_else(|err| {
            panic!(
                "BPF_PROG_TEST_RUN of {hook:?} on a {}-byte frame: {err}",
                frame.len()
            )
        })
    }

    /// Like [`Dataplane::run`], but returns the kernel's refusal (for example a frame too short
    /// for an skb) instead of panicking.
    pub fn try_run(&mut self, hook: Hook, frame: &[u8]) -> Result<Verdict, ProgramError> {
        let result = self.run_raw(hook, frame, 1)?;
        Ok(Verdict::from_return(hook, result.return_value))
    }

    /// Runs one frame `repeat` times in the kernel (the bench reads `duration`).
    pub fn run_raw(
        &mut self,
        hook: Hook,
        frame: &[u8],
        repeat: u32,
    ) -> Result<TestRunResult, ProgramError> {
        let options = TestRunOptions {
            data_in: Some(frame),
            repeat,
            ..TestRunOptions::default()
        };
        match hook {
            Hook::Xdp => self.xdp().test_run(options),
            Hook::Tc => self.tc().test_run(options),
        }
    }

    pub fn counters(&self) -> Counters {
        let map: PerCpuArray<_, u64> = self.map(names::COUNTERS);
        let mut out = [0u64; Counter::COUNT as usize];
        for counter in Counter::ALL {
            let values = map
                .get(&(counter as u32), 0)
                .unwrap_or_else(|err| panic!("read counter {}: {err}", counter.name()));
            out[counter as usize] = values.iter().sum();
        }
        Counters(out)
    }

    pub fn subscriber(&self, key: &SubscriberKey) -> Option<SubscriberRecord> {
        let map: HashMap<_, SubscriberKey, SubscriberRecord> = self.map(names::SUBSCRIBERS);
        map.get(key, 0).ok()
    }

    /// The record in slot `slot` of the pools' records (all zeros: never used).
    pub fn pool_record(&self, slot: u32) -> SubscriberRecord {
        let map: Array<_, SubscriberRecord> = self.map(names::POOL_RECORDS_V4);
        map.get(&slot, 0).expect("read a pool record")
    }

    pub fn subscribers(&self) -> Vec<(SubscriberKey, SubscriberRecord)> {
        let map: HashMap<_, SubscriberKey, SubscriberRecord> = self.map(names::SUBSCRIBERS);
        map.iter()
            .map(|entry| entry.expect("iterate EGRESS_SUBSCRIBERS"))
            .collect()
    }

    /// Every event waiting in the ring buffer.
    pub fn drain_events(&mut self) -> Vec<SubscriberEvent> {
        let mut out = Vec::new();
        while let Some(item) = self.events.next() {
            assert_eq!(
                item.len(),
                size_of::<SubscriberEvent>(),
                "ring-buffer record size"
            );
            // SAFETY: the length matches and SubscriberEvent is plain old data.
            out.push(unsafe { item.as_ptr().cast::<SubscriberEvent>().read_unaligned() });
        }
        out
    }

    fn map<'a, M>(&'a self, name: &str) -> M
    where
        M: TryFrom<&'a aya::maps::Map>,
        M::Error: std::fmt::Display,
    {
        let map = self
            .ebpf
            .map(name)
            .unwrap_or_else(|| panic!("the eBPF object has no map {name}"));
        M::try_from(map).unwrap_or_else(|err| panic!("map {name} has an unexpected type: {err}"))
    }

    fn map_mut<'a, M>(&'a mut self, name: &str) -> M
    where
        M: TryFrom<&'a mut aya::maps::Map>,
        M::Error: std::fmt::Display,
    {
        let map = self
            .ebpf
            .map_mut(name)
            .unwrap_or_else(|| panic!("the eBPF object has no map {name}"));
        M::try_from(map).unwrap_or_else(|err| panic!("map {name} has an unexpected type: {err}"))
    }
}

/// The subscriber key the dataplane uses for an IPv4 source.
pub fn ipv4_subscriber(address: [u8; 4]) -> SubscriberKey {
    SubscriberKey::ipv4(address)
}

/// The subscriber key for an IPv6 source aggregated to `prefix_len`.
pub fn ipv6_subscriber(address: [u8; 16], prefix_len: u32) -> SubscriberKey {
    SubscriberKey::ipv6(
        address,
        u8::try_from(prefix_len).expect("IPv6 prefix length <= 128"),
    )
}

fn ebpf_program<'a, P>(ebpf: &'a mut Ebpf, name: &str) -> &'a mut P
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program>,
    <&'a mut P as TryFrom<&'a mut aya::programs::Program>>::Error: std::fmt::Display,
{
    let program = ebpf
        .program_mut(name)
        .unwrap_or_else(|| panic!("the eBPF object has no program {name}"));
    program
        .try_into()
        .unwrap_or_else(|err| panic!("program {name} has an unexpected type: {err}"))
}

/// Writes `table` into the first half of a host table (`egress_common::host_table`) and names
/// it in the header, as the agent does; `None` switches the table off.
pub fn write_host_table(map: &mut aya::maps::Map, table: Option<&Table>) {
    let mut array: Array<_, u64> = Array::try_from(map).expect("a host table is an array");
    if let Some(table) = table {
        for (index, slot) in (1u32..).zip(&table.slots) {
            array.set(index, slot, 0).expect("write a host table slot");
        }
    }
    let header = table.map_or(0, |table| table.header(0));
    array
        .set(host_table::HEADER, header, 0)
        .expect("write a host table header");
}

/// Whether a host table's header names a table (the program reads it, not the tries).
pub fn host_table_on(map: &aya::maps::Map) -> bool {
    let array: Array<_, u64> = Array::try_from(map).expect("a host table is an array");
    let header = array
        .get(&host_table::HEADER, 0)
        .expect("read a host table header");
    host_table::bits_of(header) != 0
}
