//! Maps shared by both programs and pinned by the agent. Sizes here are defaults; the agent
//! sets the subscriber and allowlist capacities at load time.

use aya_ebpf::{
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};
use egress_common::{
    Counter, DEFAULT_ALLOWLIST_CAPACITY, DEFAULT_MAX_TRACKED, DataplaneConfig, EVENTS_RING_BYTES,
    SubscriberKey, SubscriberRecord,
};

/// LPM tries must be created without preallocation.
const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "EGRESS_CONFIG")]
pub static CONFIG: Array<DataplaneConfig> = Array::with_max_entries(1, 0);

#[map(name = "EGRESS_COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(Counter::COUNT, 0);

/// Source allowlist: value is a set of `allow_kind` bits (relay, exempt).
#[map(name = "EGRESS_SOURCES_V4")]
pub static SOURCES_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "EGRESS_SOURCES_V6")]
pub static SOURCES_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "EGRESS_DESTS_V4")]
pub static DESTINATIONS_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "EGRESS_DESTS_V6")]
pub static DESTINATIONS_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(DEFAULT_ALLOWLIST_CAPACITY, BPF_F_NO_PREALLOC);

#[map(name = "EGRESS_SUBSCRIBERS")]
pub static SUBSCRIBERS: LruHashMap<SubscriberKey, SubscriberRecord> =
    LruHashMap::with_max_entries(DEFAULT_MAX_TRACKED, 0);

#[map(name = "EGRESS_EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

#[inline(always)]
pub fn count(counter: Counter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}
