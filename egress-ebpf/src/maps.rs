//! Maps shared by both programs and pinned by the agent. Sizes here are defaults; the agent
//! sets the subscriber and allowlist capacities at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use egress_common::{
    Counter, DEFAULT_ALLOWLIST_CAPACITY, DEFAULT_MAX_TRACKED, DataplaneConfig, EVENTS_RING_BYTES,
    SubscriberKey, SubscriberRecord, host_table, host_table_v6, index, pools::PoolTable,
    source_filter,
};

/// LPM tries must be created without preallocation; the long-prefix hash is too, so an
/// allowlist of a few relays does not cost the memory of two million entries.
const BPF_F_NO_PREALLOC: u32 = 1;
/// Lets the agent write the source index and the host tables through a shared mapping (one
/// store per word).
pub const BPF_F_MMAPABLE: u32 = 1 << 10;

#[map(name = "EGRESS_CONFIG")]
pub static CONFIG: Array<DataplaneConfig> = Array::with_max_entries(1, 0);

#[map(name = "EGRESS_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Source allowlist: value is a set of `allow_kind` bits (relay, exempt).
#[map(name = "EGRESS_SOURCES_V4")]
pub static SOURCES_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

/// The IPv4 source index (`egress_common::index`): four /24 slots per element, 32 MiB.
#[map(name = "EGRESS_SOURCE_INDEX_V4")]
pub static SOURCE_INDEX_V4: Array<u64> = Array::with_max_entries(index::WORDS, BPF_F_MMAPABLE);

/// The index's second level: 8 elements (256 two-bit entries) per block, 2 MiB.
#[map(name = "EGRESS_SOURCE_BLOCKS_V4")]
pub static SOURCE_BLOCKS_V4: Array<u64> =
    Array::with_max_entries(index::BLOCK_WORDS, BPF_F_MMAPABLE);

#[map(name = "EGRESS_SOURCES_V6")]
pub static SOURCES_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

/// The IPv6 source filter (`egress_common::source_filter`): 8 KiB.
#[map(name = "EGRESS_SOURCE_FILTER_V6")]
pub static SOURCE_FILTER_V6: Array<u64> =
    Array::with_max_entries(source_filter::WORDS, BPF_F_MMAPABLE);

/// The /128 IPv6 source entries as a host table (`egress_common::host_table_v6`), read before
/// the trie: 192 KiB, written through a shared mapping.
#[map(name = "EGRESS_SOURCE_HOSTS_V6")]
pub static SOURCE_HOSTS_V6: Array<u64> =
    Array::with_max_entries(host_table_v6::ENTRIES, BPF_F_MMAPABLE);

#[map(name = "EGRESS_DESTS_V4")]
pub static DESTINATIONS_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

/// The IPv4 destinations as a host table (`egress_common::host_table`), read instead of the
/// trie while every IPv4 destination is a host: 1 MiB, written through a shared mapping.
#[map(name = "EGRESS_DEST_HOSTS_V4")]
pub static DEST_HOSTS_V4: Array<u64> = Array::with_max_entries(host_table::ENTRIES, BPF_F_MMAPABLE);

#[map(name = "EGRESS_DESTS_V6")]
pub static DESTINATIONS_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "EGRESS_SUBSCRIBERS")]
pub static SUBSCRIBERS: LruHashMap<SubscriberKey, SubscriberRecord> =
    LruHashMap::with_max_entries(DEFAULT_MAX_TRACKED, 0);

/// The IPv4 subscriber pools' table (`egress_common::pools`), created with their records.
#[map(name = "EGRESS_POOL_TABLE_V4")]
pub static POOL_TABLE_V4: Array<PoolTable> = Array::with_max_entries(1, 0);

/// One record per pool address; the agent sizes it to the pools (1 slot without pools).
#[map(name = "EGRESS_POOL_RECORDS_V4")]
pub static POOL_RECORDS_V4: Array<SubscriberRecord> = Array::with_max_entries(1, BPF_F_MMAPABLE);

#[map(name = "EGRESS_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}
