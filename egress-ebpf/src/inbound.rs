//! The inbound decision: only the spam checkers may reach the primary MX, and SYNs to the spam
//! checker are throttled per source. Same parser as the outbound programs, with its own port
//! set (`inbound.ports`), so a packet to any other port costs the same handful of instructions
//! and no map lookup.

use aya_ebpf::{
    helpers::bpf_ktime_get_coarse_ns,
    macros::map,
    maps::{Array, LpmTrie, LruHashMap, PerCpuArray, lpm_trie::Key},
};
use egress_common::{
    Family, Packet, Parsed, PortSet, SmtpPacket, SubscriberKey, host_table,
    inbound::{
        DEFAULT_MAX_SOURCES, InboundConfig, InboundCounter, LIST_CAPACITY, ThrottleBucket, empty,
        host_class::{PROTECTED, THROTTLED},
    },
    parse,
};

use crate::{
    judge::{Action, LoadTimePorts, suspect_counter},
    maps::count,
};

/// `inbound.ports`, set by the agent at load time.
#[unsafe(no_mangle)]
static EGRESS_INBOUND_PORTS: PortSet = PortSet::DEFAULT;

const BPF_F_NO_PREALLOC: u32 = 1;

#[map(name = "EGRESS_INBOUND_CONFIG")]
static CONFIG: Array<InboundConfig> = Array::with_max_entries(1, 0);

#[map(name = "EGRESS_INBOUND_COUNTERS")]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(InboundCounter::COUNT, 0);

#[map(name = "EGRESS_PROTECTED_MX_V4")]
static PROTECTED_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);
#[map(name = "EGRESS_PROTECTED_MX_V6")]
static PROTECTED_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);
#[map(name = "EGRESS_MX_SENDERS_V4")]
static SENDERS_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);
#[map(name = "EGRESS_MX_SENDERS_V6")]
static SENDERS_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);
#[map(name = "EGRESS_THROTTLE_DESTS_V4")]
static THROTTLED_V4: LpmTrie<[u8; 4], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);
#[map(name = "EGRESS_THROTTLE_DESTS_V6")]
static THROTTLED_V6: LpmTrie<[u8; 16], u32> =
    LpmTrie::with_max_entries(LIST_CAPACITY, BPF_F_NO_PREALLOC);

/// The IPv4 host table of `protected_mx` and `throttle.destinations` (`host_class` bits), read
/// instead of both tries while their IPv4 entries are all hosts.
#[map(name = "EGRESS_INBOUND_HOSTS_V4")]
static HOSTS_V4: Array<u64> =
    Array::with_max_entries(host_table::ENTRIES, crate::maps::BPF_F_MMAPABLE);

/// Per-source token buckets; the agent sets the capacity (`max_sources`) at load time.
#[map(name = "EGRESS_THROTTLE_SOURCES")]
static BUCKETS: LruHashMap<SubscriberKey, ThrottleBucket> =
    LruHashMap::with_max_entries(DEFAULT_MAX_SOURCES, 0);

/// Enforce mode, every list looked up, no throttle: used only if the array has no slot.
static FALLBACK_CONFIG: InboundConfig = InboundConfig {
    mode: 0,
    flags: 0,
    interval_ns: 0,
    tolerance_ns: 0,
    clock_ns: 0,
};

#[inline(always)]
pub fn judge<P: Packet>(packet: &P) -> Action {
    match parse(
        packet,
        &LoadTimePorts(core::ptr::addr_of!(EGRESS_INBOUND_PORTS)),
    ) {
        Parsed::Pass => Action::Pass,
        Parsed::Smtp(smtp) => judge_smtp(&smtp),
        Parsed::Suspect(suspect) => judge_suspect(packet, suspect),
        Parsed::Malformed => {
            count(egress_common::Counter::Malformed);
            Action::Pass
        }
    }
}

#[inline(always)]
fn judge_smtp(packet: &SmtpPacket) -> Action {
    let config = config();
    let v4 = packet.family == Family::Ipv4;
    let hosts = if v4 {
        host_classes(host_table::host_of_word(packet.destination_words()[0]))
    } else {
        None
    };
    let is_protected = match hosts {
        Some(classes) => classes & PROTECTED != 0,
        None => protected(packet.family, &packet.destination, config.flags),
    };
    if is_protected {
        if sender(packet, config.flags) {
            count_inbound(InboundCounter::of(
                v4,
                InboundCounter::AllowedSenderV4,
                InboundCounter::AllowedSenderV6,
            ));
            return Action::Pass;
        }
        return refuse(config, v4);
    }
    if !packet.is_connection_attempt() {
        return Action::Pass;
    }
    let is_throttled = match hosts {
        Some(classes) => classes & THROTTLED != 0,
        None => throttled_destination(packet, config.flags),
    };
    if is_throttled && !bucket_admits(packet, config) {
        count_inbound(InboundCounter::of(
            v4,
            InboundCounter::ThrottledV4,
            InboundCounter::ThrottledV6,
        ));
        return if config.monitor() {
            Action::Pass
        } else {
            Action::Drop
        };
    }
    Action::Pass
}

#[inline(always)]
fn host_classes(host: u32) -> Option<u32> {
    crate::host_table::classes(&HOSTS_V4, host)
}

/// A frame whose port cannot be read for certain: refused when it is (or may be) headed for a
/// protected destination, passed untouched otherwise.
#[inline(never)]
fn judge_suspect<P: Packet>(packet: &P, suspect: egress_common::Suspect) -> Action {
    let config = config();
    match parse::destination(packet) {
        Some((family, destination)) => {
            let hosts = match family {
                Family::Ipv4 => host_classes(host_table::host_of(narrow(&destination))),
                Family::Ipv6 => None,
            };
            let is_protected = match hosts {
                Some(classes) => classes & PROTECTED != 0,
                None => protected(family, &destination, config.flags),
            };
            if !is_protected {
                return Action::Pass;
            }
            count(suspect_counter(suspect));
            refuse(config, family == Family::Ipv4)
        }
        // No IP header we can reach (too many VLAN tags): it could be for the primary MX.
        None => {
            count(suspect_counter(suspect));
            if config.monitor() {
                Action::Pass
            } else {
                Action::Drop
            }
        }
    }
}

#[inline(always)]
fn refuse(config: &InboundConfig, v4: bool) -> Action {
    if config.monitor() {
        count_inbound(InboundCounter::of(
            v4,
            InboundCounter::MonitoredV4,
            InboundCounter::MonitoredV6,
        ));
        Action::Pass
    } else {
        count_inbound(InboundCounter::of(
            v4,
            InboundCounter::DroppedV4,
            InboundCounter::DroppedV6,
        ));
        Action::Drop
    }
}

#[inline(always)]
fn protected(family: Family, destination: &[u8; 16], flags: u32) -> bool {
    match family {
        Family::Ipv4 if flags & empty::PROTECTED_V4 != 0 => false,
        Family::Ipv4 => PROTECTED_V4
            .get(Key::new(32, narrow(destination)))
            .is_some(),
        Family::Ipv6 if flags & empty::PROTECTED_V6 != 0 => false,
        Family::Ipv6 => PROTECTED_V6.get(Key::new(128, *destination)).is_some(),
    }
}

/// An IPv6 source, IPv4-mapped or not, is looked up only among IPv6 senders: a mapped address
/// on the wire is bogus and never matches an IPv4 entry.
#[inline(always)]
fn sender(packet: &SmtpPacket, flags: u32) -> bool {
    match packet.family {
        Family::Ipv4 if flags & empty::SENDERS_V4 != 0 => false,
        Family::Ipv4 => SENDERS_V4
            .get(Key::new(32, narrow(&packet.source)))
            .is_some(),
        Family::Ipv6 if flags & empty::SENDERS_V6 != 0 => false,
        Family::Ipv6 => SENDERS_V6.get(Key::new(128, packet.source)).is_some(),
    }
}

#[inline(always)]
fn throttled_destination(packet: &SmtpPacket, flags: u32) -> bool {
    match packet.family {
        Family::Ipv4 if flags & empty::THROTTLED_V4 != 0 => false,
        Family::Ipv4 => THROTTLED_V4
            .get(Key::new(32, narrow(&packet.destination)))
            .is_some(),
        Family::Ipv6 if flags & empty::THROTTLED_V6 != 0 => false,
        Family::Ipv6 => THROTTLED_V6
            .get(Key::new(128, packet.destination))
            .is_some(),
    }
}

/// GCRA: a SYN is admitted unless the source's schedule runs more than the burst ahead of now;
/// an admitted SYN moves the schedule one interval on. Out of line: only SYNs to a throttled
/// destination get here.
#[inline(never)]
fn bucket_admits(packet: &SmtpPacket, config: &InboundConfig) -> bool {
    let now = if config.clock_ns != 0 {
        config.clock_ns
    } else {
        // The coarse clock (a tick, 1-10 ms) is a plain read, the precise one a clock-source
        // read per SYN; a bucket's interval is 1 s / syn_per_second, so a tick is close enough.
        // SAFETY: a helper without preconditions.
        unsafe { bpf_ktime_get_coarse_ns() }
    };
    let key = bucket_key(packet);
    match BUCKETS.get_ptr_mut(&key) {
        Some(bucket) => {
            // SAFETY: a pointer into the map value, valid for this program run. Two CPUs racing
            // on one source may both admit a SYN: the bucket is a rate limit, not a ledger.
            let bucket = unsafe { &mut *bucket };
            let next = if bucket.next_ns > now {
                bucket.next_ns
            } else {
                now
            };
            if next - now > config.tolerance_ns {
                bucket.throttled += 1;
                return false;
            }
            bucket.next_ns = next + config.interval_ns;
            true
        }
        None => {
            let fresh = ThrottleBucket {
                next_ns: now + config.interval_ns,
                throttled: 0,
            };
            // A full map evicts the least recently used source; a failed insert admits.
            let _ = BUCKETS.insert(&key, &fresh, 0);
            true
        }
    }
}

/// IPv4 /32 or IPv6 /64.
#[inline(always)]
fn bucket_key(packet: &SmtpPacket) -> SubscriberKey {
    let [high, low] = packet.source_words();
    let (prefix_len, low) = match packet.family {
        Family::Ipv4 => (32, low),
        Family::Ipv6 => (egress_common::inbound::THROTTLE_IPV6_PREFIX_LEN, 0),
    };
    SubscriberKey {
        family: packet.family as u8,
        prefix_len,
        _pad: [0; 2],
        addr: egress_common::parse::address_from_words([high, low]),
    }
}

#[inline(always)]
fn narrow(address: &[u8; 16]) -> [u8; 4] {
    [address[0], address[1], address[2], address[3]]
}

#[inline(always)]
fn count_inbound(counter: InboundCounter) {
    if let Some(slot) = COUNTERS.get_ptr_mut(counter as u32) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *slot += 1 };
    }
}

#[inline(always)]
fn config() -> &'static InboundConfig {
    CONFIG.get(0).unwrap_or(&FALLBACK_CONFIG)
}
