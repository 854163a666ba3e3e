//! The egress eBPF object loaded for measuring: unpinned maps (nothing outlives the bench),
//! the spec's default settings, and helpers to grow the allowlists and the subscriber table.
//! The IPv4 source index and the IPv6 source filter are kept in step with the tries by the
//! agent's own code (`egress_common::index_sync`, `source_filter`), so the bench measures the
//! lookups the agent sets up. The IPv4 subscriber pools (`subscribers.pools`) can be sized at
//! load and switched on and off by writing their table (`load_with_pools`, `set_pools`).

use std::{
    net::{Ipv4Addr, Ipv6Addr},
    os::fd::{AsFd, BorrowedFd},
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context as _, Result, anyhow};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, HashMap, LpmTrie, MapData, PerCpuArray, RingBuf, lpm_trie::Key},
    programs::Xdp,
};
use egress_common::{
    Counter, DataplaneConfig, Mode, PortSet, SubscriberKey, SubscriberRecord, allow_kind,
    config::{allowlist_flags, ipv6_mask},
    host_table, host_table_v6,
    index_plan::{Plan, SourcePrefix},
    index_sync, names,
    pools::{self, PoolTable},
    source_filter,
};

use super::frames;

pub struct Dataplane {
    pub ebpf: Ebpf,
    events: RingBuf<MapData>,
    source_index: MapData,
    source_blocks: MapData,
    /// Every IPv4 source prefix in the trie, for the index.
    sources_v4: Vec<SourcePrefix>,
    /// Every IPv6 source prefix in the trie with its allow bits, for the filter and the IPv6
    /// source hosts' table.
    sources_v6: Vec<([u8; 16], u8, u32)>,
    /// Whether `sync_source_index` lets the programs use that table.
    use_source_hosts: bool,
    /// Whether `sync_source_index` lets the programs use the IPv6 source filter.
    use_source_filter: bool,
    /// Prefixes per family currently in the source allowlists (relays included).
    pub prefixes: usize,
    /// The pool table the records map was sized for, written by `set_pools(true)`; None when
    /// loaded without pools or from an object that predates them.
    pools: Option<PoolTable>,
}

impl Dataplane {
    pub fn load(object_path: &Path) -> Result<Dataplane> {
        Dataplane::load_with_pools(object_path, &[])
    }

    /// As `load`, with one record slot per address of `subscriber_pools` (network address, prefix
    /// length), as the agent sizes them for `subscribers.pools`. The pool table stays empty
    /// (no pools) until `set_pools(true)`, so the same program and maps measure both paths.
    /// An object without the pool maps loads as with `load` (`has_pools` is then false).
    pub fn load_with_pools(
        object_path: &Path,
        subscriber_pools: &[(Ipv4Addr, u8)],
    ) -> Result<Dataplane> {
        let object = std::fs::read(object_path)
            .with_context(|| format!("reading the eBPF object {}", object_path.display()))?;
        let ranges: Vec<(u32, u8)> = subscriber_pools
            .iter()
            .map(|&(network, len)| (u32::from(network), len))
            .collect();
        pools::check(&ranges)
            .map_err(|problem| anyhow!("subscriber pools {subscriber_pools:?}: {problem:?}"))?;
        let table = PoolTable::of(ranges);
        let ports = PortSet::DEFAULT;
        let mut ebpf = EbpfLoader::new()
            .override_global(names::BLOCKED_PORTS, &ports, true)
            // An array map has at least one slot; an object without the map ignores this.
            .map_max_entries(names::POOL_RECORDS_V4, table.addresses().max(1))
            .load(&object)
            .with_context(|| format!("loading {}", object_path.display()))?;
        let pools = (table.count > 0 && ebpf.map(names::POOL_TABLE_V4).is_some()).then_some(table);
        let program: &mut Xdp = ebpf
            .program_mut(names::XDP_PROGRAM)
            .ok_or_else(|| {
                anyhow!(
                    "{} has no program {}",
                    object_path.display(),
                    names::XDP_PROGRAM
                )
            })?
            .try_into()?;
        program.load().context("verifying the XDP program")?;
        let mut config_map: Array<_, DataplaneConfig> =
            Array::try_from(map(&mut ebpf, names::CONFIG)?)?;
        config_map
            .set(0, spec_defaults(), 0)
            .context("writing EGRESS_CONFIG")?;
        let events = RingBuf::try_from(
            ebpf.take_map(names::EVENTS)
                .ok_or_else(|| anyhow!("no map {}", names::EVENTS))?,
        )?;
        let mut array = |name| match ebpf.take_map(name) {
            Some(aya::maps::Map::Array(data)) => Ok(data),
            _ => Err(anyhow!("no array map {name}")),
        };
        let source_index = array(names::SOURCE_INDEX_V4)?;
        let source_blocks = array(names::SOURCE_BLOCKS_V4)?;
        let mut dataplane = Dataplane {
            ebpf,
            events,
            source_index,
            source_blocks,
            sources_v4: Vec::new(),
            sources_v6: Vec::new(),
            use_source_hosts: true,
            use_source_filter: true,
            prefixes: 0,
            pools,
        };
        dataplane.allow_v4(&[frames::RELAY_PREFIX_V4], allow_kind::RELAY)?;
        dataplane.allow_v6(&[frames::RELAY_PREFIX_V6], allow_kind::RELAY)?;
        dataplane.sync_source_index()?;
        dataplane.prefixes = 1;
        Ok(dataplane)
    }

    pub fn xdp(&mut self) -> Result<&mut Xdp> {
        Ok(self
            .ebpf
            .program_mut(names::XDP_PROGRAM)
            .ok_or_else(|| anyhow!("no program {}", names::XDP_PROGRAM))?
            .try_into()?)
    }

    pub fn xdp_fd(&self) -> Result<BorrowedFd<'_>> {
        let program: &Xdp = self
            .ebpf
            .program(names::XDP_PROGRAM)
            .ok_or_else(|| anyhow!("no program {}", names::XDP_PROGRAM))?
            .try_into()?;
        Ok(program.fd()?.as_fd())
    }

    pub fn allow_v4(&mut self, prefixes: &[(Ipv4Addr, u8)], kind: u32) -> Result<()> {
        let mut trie: LpmTrie<_, [u8; 4], u32> =
            LpmTrie::try_from(map(&mut self.ebpf, names::SOURCES_V4)?)?;
        for &(address, len) in prefixes {
            retry_enomem(|| trie.insert(&Key::new(u32::from(len), address.octets()), kind, 0))
                .with_context(|| format!("inserting {address}/{len} into {}", names::SOURCES_V4))?;
            self.sources_v4.push(SourcePrefix {
                addr: u32::from(address),
                len,
                kind,
            });
        }
        Ok(())
    }

    /// Brings the IPv4 source index in line with the trie, as the agent does after every
    /// allowlist change, and lets the dataplane use it (IPv6 sources are never empty here).
    pub fn sync_source_index(&mut self) -> Result<()> {
        let plan = Plan::new(self.sources_v4.iter().copied());
        index_sync::sync(&self.source_index, &self.source_blocks, &plan)
            .context("filling the IPv4 source index")?;
        let filtered = self.sync_source_filter(self.use_source_filter)?;
        self.sync_source_hosts()?;
        let mut config_map: Array<_, DataplaneConfig> =
            Array::try_from(map(&mut self.ebpf, names::CONFIG)?)?;
        let config = DataplaneConfig {
            allowlist_flags: index_sync::flags(true, false, false) | filtered,
            ..spec_defaults()
        };
        config_map
            .set(0, config, 0)
            .context("writing EGRESS_CONFIG")?;
        Ok(())
    }

    /// Allows SMTP to the IPv4 hosts `destinations` (`allow.destinations`), in the trie and,
    /// when `host_table`, in the destinations' host table as the agent writes it; without,
    /// the table stays off and the programs ask the trie.
    pub fn allow_destination_hosts(
        &mut self,
        destinations: &[Ipv4Addr],
        host_table: bool,
    ) -> Result<()> {
        let mut trie: LpmTrie<_, [u8; 4], u32> =
            LpmTrie::try_from(map(&mut self.ebpf, names::DESTINATIONS_V4)?)?;
        for address in destinations {
            trie.insert(&Key::new(32, address.octets()), allow_kind::DESTINATION, 0)
                .with_context(|| format!("inserting {address} into {}", names::DESTINATIONS_V4))?;
        }
        let mut table_map: Array<_, u64> =
            Array::try_from(map(&mut self.ebpf, names::DEST_HOSTS_V4)?)?;
        let header = if host_table {
            let hosts: Vec<(u32, u32)> = destinations
                .iter()
                .map(|address| (host_table::host_of(address.octets()), 1))
                .collect();
            let table = host_table::build(&hosts).ok_or_else(|| anyhow!("no host table"))?;
            for (index, slot) in (1u32..).zip(&table.slots) {
                table_map.set(index, slot, 0)?;
            }
            table.header(0)
        } else {
            0
        };
        table_map.set(host_table::HEADER, header, 0)?;
        let mut config_map: Array<_, DataplaneConfig> =
            Array::try_from(map(&mut self.ebpf, names::CONFIG)?)?;
        let config = DataplaneConfig {
            allowlist_flags: index_sync::flags(true, true, false),
            ..spec_defaults()
        };
        config_map
            .set(0, config, 0)
            .context("writing EGRESS_CONFIG")?;
        Ok(())
    }

    pub fn allow_v6(&mut self, prefixes: &[(Ipv6Addr, u8)], kind: u32) -> Result<()> {
        let mut trie: LpmTrie<_, [u8; 16], u32> =
            LpmTrie::try_from(map(&mut self.ebpf, names::SOURCES_V6)?)?;
        for &(address, len) in prefixes {
            retry_enomem(|| trie.insert(&Key::new(u32::from(len), address.octets()), kind, 0))
                .with_context(|| format!("inserting {address}/{len} into {}", names::SOURCES_V6))?;
            self.sources_v6.push((address.octets(), len, kind));
        }
        Ok(())
    }

    /// Writes the IPv6 source hosts' table of the long entries as the agent does, or switches
    /// it off when they do not fit or `use_source_hosts` is false (nothing for an object from
    /// before the table).
    fn sync_source_hosts(&mut self) -> Result<()> {
        let Some(table_map) = self.ebpf.map_mut(names::SOURCE_HOSTS_V6) else {
            return Ok(());
        };
        let mut array: Array<_, u64> = Array::try_from(table_map)?;
        let table = if self.use_source_hosts {
            let hosts = host_table_v6::hosts_of(self.sources_v6.iter().copied());
            hosts.and_then(|hosts| host_table_v6::build(&hosts))
        } else {
            None
        };
        if let Some(table) = &table {
            for (slot, words) in (0u32..).zip(&table.slots) {
                for (offset, word) in (0u32..).zip(words) {
                    array.set(1 + slot * host_table_v6::SLOT_WORDS + offset, word, 0)?;
                }
            }
        }
        let header = table.as_ref().map_or(0, |table| table.header(0));
        array.set(host_table_v6::HEADER, header, 0)?;
        Ok(())
    }

    /// Stops the programs using the IPv6 source hosts' table: every IPv6 source walks the trie.
    pub fn without_source_hosts(&mut self) -> Result<()> {
        self.use_source_hosts = false;
        self.sync_source_index()
    }

    /// Writes the IPv6 source filter for the IPv6 source prefixes, as the agent does; the
    /// flag that lets the programs use it, or 0 when a prefix is too short for it or
    /// `use_filter` is false (or the object predates the filter).
    fn sync_source_filter(&mut self, use_filter: bool) -> Result<u32> {
        let words = source_filter::words(
            self.sources_v6
                .iter()
                .map(|&(address, len, _)| (address, len)),
        );
        let (Some(words), true) = (words, use_filter) else {
            return Ok(0);
        };
        let Some(filter) = self.ebpf.map_mut(names::SOURCE_FILTER_V6) else {
            return Ok(0);
        };
        let mut filter: Array<_, u64> = Array::try_from(filter)?;
        for (index, word) in (0u32..).zip(&words) {
            filter.set(index, word, 0)?;
        }
        Ok(allowlist_flags::SOURCES_V6_FILTERED)
    }

    /// Stops the programs using the IPv6 source filter: every IPv6 source walks the trie.
    pub fn without_source_filter(&mut self) -> Result<()> {
        self.use_source_filter = false;
        self.sync_source_index()
    }

    /// Records for IPv4 subscribers `0..count`, as if each had been blocked once.
    pub fn track_v4(&mut self, count: u32) -> Result<Duration> {
        let started = Instant::now();
        let mut table = self.subscribers()?;
        for n in 0..count {
            table
                .insert(
                    SubscriberKey::ipv4(frames::subscriber_v4(n).octets()),
                    blocked_once(),
                    0,
                )
                .with_context(|| format!("pre-filling {} at entry {n}", names::SUBSCRIBERS))?;
        }
        Ok(started.elapsed())
    }

    /// Whether the pools can be switched on (loaded with pools, from an object that has them).
    pub fn has_pools(&self) -> bool {
        self.pools.is_some()
    }

    /// Writes the pool table the dataplane was loaded for (`on`), or the empty one: without
    /// pools every source's record is in the LRU map. The records stay either way.
    pub fn set_pools(&mut self, on: bool) -> Result<()> {
        let table = self
            .pools
            .ok_or_else(|| anyhow!("the dataplane was loaded without subscriber pools"))?;
        let mut map: Array<_, PoolTable> =
            Array::try_from(map(&mut self.ebpf, names::POOL_TABLE_V4)?)?;
        let table = if on { table } else { PoolTable::default() };
        map.set(0, table, 0)
            .with_context(|| format!("writing {}", names::POOL_TABLE_V4))
    }

    /// The pool records of IPv4 subscribers `0..count`, as if each had been blocked once
    /// (`track_v4` for the pools: a slot with `packets == 0` is a subscriber never seen).
    pub fn track_pool_v4(&mut self, count: u32) -> Result<Duration> {
        let started = Instant::now();
        let (table, mut records) = self.pool_records()?;
        for n in 0..count {
            let slot = slot_of(&table, frames::subscriber_v4(n))?;
            records.set(slot, blocked_once(), 0).with_context(|| {
                format!("pre-filling {} at slot {slot}", names::POOL_RECORDS_V4)
            })?;
        }
        Ok(started.elapsed())
    }

    /// Packets counted in the pool records of `sources`, all of which must lie in the pools.
    pub fn pool_packets(&mut self, sources: &[Ipv4Addr]) -> Result<u64> {
        let (table, records) = self.pool_records()?;
        let mut packets = 0;
        for &source in sources {
            let slot = slot_of(&table, source)?;
            packets += records.get(&slot, 0)?.packets;
        }
        Ok(packets)
    }

    /// Packets counted in the LRU records of IPv4 `sources` (0 for a source without one).
    pub fn lru_packets(&mut self, sources: &[Ipv4Addr]) -> Result<u64> {
        let table = self.subscribers()?;
        let mut packets = 0;
        for source in sources {
            packets += match table.get(&SubscriberKey::ipv4(source.octets()), 0) {
                Ok(record) => record.packets,
                Err(aya::maps::MapError::KeyNotFound) => 0,
                Err(err) => return Err(err.into()),
            };
        }
        Ok(packets)
    }

    fn pool_records(&mut self) -> Result<(PoolTable, Array<&mut MapData, SubscriberRecord>)> {
        let table = self
            .pools
            .ok_or_else(|| anyhow!("the dataplane was loaded without subscriber pools"))?;
        let records = Array::try_from(map(&mut self.ebpf, names::POOL_RECORDS_V4)?)?;
        Ok((table, records))
    }

    pub fn forget_v4(&mut self, addresses: impl Iterator<Item = Ipv4Addr>) -> Result<()> {
        let mut table = self.subscribers()?;
        for address in addresses {
            // Absent means the LRU already evicted it: nothing to forget.
            let _ = table.remove(&SubscriberKey::ipv4(address.octets()));
        }
        Ok(())
    }

    pub fn forget_v6(&mut self, addresses: impl Iterator<Item = Ipv6Addr>) -> Result<()> {
        let mut table = self.subscribers()?;
        for address in addresses {
            let _ = table.remove(&SubscriberKey::ipv6(address.octets(), 64));
        }
        Ok(())
    }

    fn subscribers(&mut self) -> Result<HashMap<&mut MapData, SubscriberKey, SubscriberRecord>> {
        Ok(HashMap::try_from(map(&mut self.ebpf, names::SUBSCRIBERS)?)?)
    }

    /// Empties the event ring so first-seen events keep being written, as the agent would.
    pub fn drain_events(&mut self) {
        while self.events.next().is_some() {}
    }

    /// Sum over CPUs of one global counter.
    pub fn counter(&mut self, counter: Counter) -> Result<u64> {
        let counters: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map(&mut self.ebpf, names::COUNTERS)?)?;
        Ok(counters.get(&(counter as u32), 0)?.iter().sum())
    }
}

/// The LPM trie allocates its nodes without waiting (GFP_NOWAIT, per-CPU caches refilled
/// asynchronously), so a burst of a million inserts on a machine whose free memory is all page
/// cache can get a transient ENOMEM. Waiting a little lets the cache refill.
fn retry_enomem(
    mut insert: impl FnMut() -> Result<(), aya::maps::MapError>,
) -> Result<(), aya::maps::MapError> {
    let mut waits = 0;
    loop {
        match insert() {
            Err(aya::maps::MapError::SyscallError(err))
                if err.io_error.raw_os_error() == Some(libc::ENOMEM) && waits < 100 =>
            {
                waits += 1;
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// What the pre-fill writes for a subscriber: one blocked SYN, long enough ago that the next
/// packet opens a new detection window.
fn blocked_once() -> SubscriberRecord {
    SubscriberRecord {
        attempts: 1,
        packets: 1,
        bytes: 60,
        ..Default::default()
    }
}

fn slot_of(table: &PoolTable, source: Ipv4Addr) -> Result<u32> {
    table
        .slot_of(u32::from(source))
        .ok_or_else(|| anyhow!("{source} is in none of the subscriber pools"))
}

fn map<'a>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut aya::maps::Map> {
    ebpf.map_mut(name)
        .ok_or_else(|| anyhow!("the eBPF object has no map {name}"))
}

fn spec_defaults() -> DataplaneConfig {
    DataplaneConfig {
        mode: Mode::Enforce as u32,
        ipv6_prefix_len: 64,
        ipv6_mask: ipv6_mask(64),
        window_ns: 300_000_000_000,
        attempts_threshold: 20,
        destination_bits_threshold: 5,
        allowlist_flags: 0,
        reserved: 0,
    }
}
