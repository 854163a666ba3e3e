//! The blocked IPv4 path with subscriber pools (issue 15 item 2): a source in the operator's
//! pools (`subscribers.pools`) has its record in a direct-indexed array, found by arithmetic,
//! instead of in the LRU hash.
//!
//! The bench's dataplane is loaded with one pool covering exactly the subscriber range the
//! frames come from (100.112.0.0/12: 1,048,576 addresses, 96 MiB of records) and switches it
//! on only around the pools measurements, by writing the pool table (empty: no pools). So the
//! LRU rows and the pools rows run the same program with the same allowlists, maps and frames,
//! and only the table differs. Every pools measurement is checked to have taken the pool path.

use std::{net::Ipv4Addr, os::fd::BorrowedFd};

use anyhow::{Result, ensure};
use egress_common::Counter;

use super::{
    Scale,
    cases::{self, Case},
    dataplane::Dataplane,
    frames,
    report::{Row, Target},
};

/// The pool: the bench's whole IPv4 subscriber range, which holds every tracked, measured and
/// new subscriber (`frames::subscriber_v4` wraps inside it).
pub fn pool() -> (Ipv4Addr, u8) {
    let host_bits = frames::SUBSCRIBER_V4_COUNT.trailing_zeros();
    (
        Ipv4Addr::from(frames::SUBSCRIBER_V4_BASE),
        (32 - host_bits) as u8,
    )
}

/// The sources of the blocked IPv4 frames over `count` subscribers (`cases::blocked_v4`).
pub fn sources(count: usize) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|n| frames::subscriber_v4(cases::tracked_index(n)))
        .collect()
}

/// Runs `measure` with the pools on and switches them off again, whatever it returns, so no
/// other row ever runs with them.
pub fn with_pools<T>(
    dataplane: &mut Dataplane,
    measure: impl FnOnce(&mut Dataplane) -> Result<T>,
) -> Result<T> {
    dataplane.set_pools(true)?;
    let measured = measure(dataplane);
    dataplane.set_pools(false)?;
    measured
}

/// Watches the pool records of the measured sources between measurements. Every blocked
/// packet adds one to the packets of exactly one record, its source's in the pool or in the
/// LRU map, so what the pool records gained says which path the executions took.
pub struct PoolPath {
    sources: Vec<Ipv4Addr>,
    packets: u64,
    outside: u64,
}

impl PoolPath {
    pub fn watch(dataplane: &mut Dataplane, sources: Vec<Ipv4Addr>) -> Result<PoolPath> {
        Ok(PoolPath {
            packets: dataplane.pool_packets(&sources)?,
            outside: dataplane.counter(Counter::OutsidePools)?,
            sources,
        })
    }

    /// Packets the watched pool records gained since the last look. None of the sources lies
    /// outside the pool, so a packet counted there means the table is not what the bench wrote.
    pub fn gained(&mut self, dataplane: &mut Dataplane, case: &str) -> Result<u64> {
        let packets = dataplane.pool_packets(&self.sources)?;
        let outside = dataplane.counter(Counter::OutsidePools)?;
        ensure!(
            outside == self.outside,
            "{case}: {} packets counted outside the pools, but every source is inside",
            outside.wrapping_sub(self.outside)
        );
        ensure!(
            packets >= self.packets,
            "{case}: the pool records lost packets ({} -> {packets}) while watched",
            self.packets
        );
        let gained = packets - self.packets;
        self.packets = packets;
        Ok(gained)
    }
}

/// The main blocked IPv4 row with the pools on ("blocked SYN tracked subscriber IPv4 with
/// pools [label]"): the LRU row's frames and measurement, the sources' records in the pool.
/// None when the dataplane has no pools (an object from before them).
pub fn blocked_row(
    dataplane: &mut Dataplane,
    empty: BorrowedFd<'_>,
    scale: &Scale,
    label: &str,
    target: Target,
) -> Result<Option<Row>> {
    if !dataplane.has_pools() {
        return Ok(None);
    }
    let case = Case::BlockedTrackedV4;
    let name = format!("{} with pools", case.name());
    let sources = sources(scale.sources);
    let lru_before = dataplane.lru_packets(&sources)?;
    let mut path = PoolPath::watch(dataplane, sources.clone())?;
    let measured = with_pools(dataplane, |dataplane| {
        cases::run(case, dataplane, empty, scale, &[])
    })?;
    // The rotated runs alone execute this many; the cold and one-frame parts add more.
    let rotated = scale.steady.runs as u64 * u64::from(scale.steady.hot_repeat);
    let gained = path.gained(dataplane, &name)?;
    ensure!(
        gained >= rotated,
        "{name}: the pool records gained {gained} packets in at least {rotated} executions: the packets did not take the pool path"
    );
    let lru_after = dataplane.lru_packets(&sources)?;
    ensure!(
        lru_after == lru_before,
        "{name}: the sources' LRU records gained {} packets with the pools on",
        lru_after.wrapping_sub(lru_before)
    );
    let row = Row::measured(
        format!("{name} [{label}]"),
        measured.headline(),
        "ns",
        target,
    );
    Ok(Some(row.with_context(&measured)))
}
