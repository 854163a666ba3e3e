//! The inbound program's pinned maps: its config entry, counters and throttle buckets.

use std::os::fd::AsFd as _;

use aya::maps::{Array, HashMap, IterableMap as _, MapData, PerCpuArray};
use egress_common::{
    SubscriberKey,
    inbound::{InboundConfig, InboundCounter, LIST_CAPACITY, ThrottleBucket, empty, names},
};
use ipnet::IpNet;

use crate::{
    allowlist::{Desired, MapContents},
    dataplane::{
        allowlist_maps::{self, Applied, Direction},
        capacity::CapacityError,
        maps::{MapsError, map_error, open},
    },
    paths::PinLayout,
};

/// Writes the inbound config entry, keeping the empty-list flags the reconcile set.
pub fn write_config(pins: &PinLayout, config: &InboundConfig) -> Result<(), MapsError> {
    let err = map_error(pins, names::CONFIG);
    let mut array: Array<MapData, InboundConfig> =
        Array::try_from(open(pins, names::CONFIG)?).map_err(&err)?;
    let current = array.get(&0, 0).map_err(&err)?;
    array
        .set(
            0,
            InboundConfig {
                flags: current.flags,
                ..*config
            },
            0,
        )
        .map_err(&err)
}

/// The empty-list bits of an inbound list's tries, or `None` for the outbound tries.
const fn empty_bits(direction: Direction) -> Option<(u32, u32)> {
    match direction {
        Direction::ProtectedMx => Some((empty::PROTECTED_V4, empty::PROTECTED_V6)),
        Direction::MxSenders => Some((empty::SENDERS_V4, empty::SENDERS_V6)),
        Direction::Throttled => Some((empty::THROTTLED_V4, empty::THROTTLED_V6)),
        Direction::Sources | Direction::Destinations => None,
    }
}

/// The bits of `direction` for the families that have entries in `desired` (`with_entries`)
/// or that have none.
fn bits_where(direction: Direction, desired: &MapContents, with_entries: bool) -> u32 {
    let Some((v4_bit, v6_bit)) = empty_bits(direction) else {
        return 0;
    };
    let v4 = desired.keys().any(|net| matches!(net, IpNet::V4(_)));
    let v6 = desired.keys().any(|net| matches!(net, IpNet::V6(_)));
    (if v4 == with_entries { v4_bit } else { 0 }) | (if v6 == with_entries { v6_bit } else { 0 })
}

/// Before a reconcile: lookups in a list about to get entries must not be skipped.
pub fn before_reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
) -> Result<(), MapsError> {
    update_flags(pins, 0, bits_where(direction, desired, true))
}

/// After a reconcile: lists now empty can be skipped.
pub fn after_reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
) -> Result<(), MapsError> {
    update_flags(pins, bits_where(direction, desired, false), 0)
}

fn update_flags(pins: &PinLayout, set: u32, clear: u32) -> Result<(), MapsError> {
    if set | clear == 0 {
        return Ok(());
    }
    let err = map_error(pins, names::CONFIG);
    let mut array: Array<MapData, InboundConfig> =
        Array::try_from(open(pins, names::CONFIG)?).map_err(&err)?;
    let mut config = array.get(&0, 0).map_err(&err)?;
    let flags = (config.flags | set) & !clear;
    if flags != config.flags {
        config.flags = flags;
        array.set(0, config, 0).map_err(&err)?;
    }
    Ok(())
}

/// The inbound counters summed over CPUs, in `InboundCounter::ALL` order.
pub fn read_counters(pins: &PinLayout) -> Result<Vec<(InboundCounter, u64)>, MapsError> {
    let err = map_error(pins, names::COUNTERS);
    let array: PerCpuArray<MapData, u64> =
        PerCpuArray::try_from(open(pins, names::COUNTERS)?).map_err(&err)?;
    InboundCounter::ALL
        .iter()
        .map(|counter| {
            let per_cpu = array.get(&(*counter as u32), 0).map_err(&err)?;
            Ok((*counter, per_cpu.iter().sum()))
        })
        .collect()
}

/// Sources whose bucket is empty at `now_ns` (monotonic): the ones being throttled right now.
pub fn throttled_sources(pins: &PinLayout, now_ns: u64) -> Result<u64, MapsError> {
    let tolerance = {
        let err = map_error(pins, names::CONFIG);
        let array: Array<MapData, InboundConfig> =
            Array::try_from(open(pins, names::CONFIG)?).map_err(&err)?;
        array.get(&0, 0).map_err(&err)?.tolerance_ns
    };
    let err = map_error(pins, names::BUCKETS);
    let map: HashMap<MapData, SubscriberKey, ThrottleBucket> =
        HashMap::try_from(open(pins, names::BUCKETS)?).map_err(&err)?;
    let mut throttled = 0u64;
    // In batches (a full map of 262,144 sources in a few dozen syscalls), else one by one.
    let batched = egress_common::batch::lookup_all(
        map.map().fd().as_fd(),
        |_: &SubscriberKey, bucket: &ThrottleBucket| {
            throttled += u64::from(bucket.empty_at(now_ns, tolerance));
        },
    );
    match batched {
        Ok(_) => Ok(throttled),
        Err(io_error) if egress_common::batch::unsupported(&io_error) => Ok(map
            .iter()
            .filter_map(Result::ok)
            .filter(|(_, bucket)| bucket.empty_at(now_ns, tolerance))
            .count()
            as u64),
        Err(io_error) => Err(err(aya::maps::MapError::SyscallError(
            aya::sys::SyscallError {
                call: "bpf_map_lookup_batch",
                io_error,
            },
        ))),
    }
}

/// Makes the inbound tries hold `desired`'s inbound lists, adding before removing in each,
/// and then the IPv4 host table.
/// Each list fits in `LIST_CAPACITY` per family or nothing changes. `held`: what the tries
/// hold, when the caller knows (see `allowlist_maps::reconcile`).
pub fn reconcile(
    pins: &PinLayout,
    desired: &Desired,
    held: Option<&Desired>,
) -> Result<Applied, MapsError> {
    check_capacity(desired)?;
    let mut total = Applied::default();
    let held = held.map(lists);
    for (index, (direction, contents)) in lists(desired).into_iter().enumerate() {
        let held = held.as_ref().map(|lists| lists[index].1);
        let applied = allowlist_maps::reconcile(pins, direction, contents, held, LIST_CAPACITY)?;
        total.inserted += applied.inserted;
        total.removed += applied.removed;
    }
    super::hosts::sync(pins, desired)?;
    Ok(total)
}

/// Fails when an inbound list would not fit in its tries.
pub fn check_capacity(desired: &Desired) -> Result<(), CapacityError> {
    for (direction, contents) in lists(desired) {
        let v4 = contents
            .keys()
            .filter(|n| matches!(n, IpNet::V4(_)))
            .count();
        for (family, wanted) in [(0, v4), (1, contents.len() - v4)] {
            if wanted > LIST_CAPACITY as usize {
                let names = direction_names(direction);
                return Err(CapacityError {
                    map: if family == 0 { names.0 } else { names.1 },
                    wanted,
                    capacity: LIST_CAPACITY,
                });
            }
        }
    }
    Ok(())
}

fn lists(desired: &Desired) -> [(Direction, &MapContents); 3] {
    [
        (Direction::ProtectedMx, &desired.protected_mx),
        (Direction::MxSenders, &desired.mx_senders),
        (Direction::Throttled, &desired.throttled),
    ]
}

const fn direction_names(direction: Direction) -> (&'static str, &'static str) {
    match direction {
        Direction::MxSenders => (names::SENDERS_V4, names::SENDERS_V6),
        Direction::Throttled => (names::THROTTLED_V4, names::THROTTLED_V6),
        _ => (names::PROTECTED_V4, names::PROTECTED_V6),
    }
}
