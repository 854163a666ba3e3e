//! Bringing the kernel's allowlist tries in line with the desired state.
//!
//! Order matters for traffic in flight: every entry to add (or widen) goes in first, then
//! entries to remove go out, so a relay that stays allowed is never briefly blocked and a
//! prefix being removed never lets more through than before. A failed insert (a full map)
//! rolls back what this call inserted: the change is all-or-nothing.

use std::os::fd::AsFd;

use aya::{
    maps::{IterableMap as _, LpmTrie, MapData, MapError, lpm_trie::Key},
    sys::SyscallError,
};
use egress_common::{batch, names};
use ipnet::IpNet;

use super::{
    maps::{MapsError, map_error, open},
    source_index,
};
use crate::{
    allowlist::{MapContents, merge},
    paths::PinLayout,
};

/// An LPM trie key as the kernel lays it out (aya's `Key`, with `Default` for batch buffers).
#[repr(C)]
#[derive(Clone, Copy)]
struct TrieKey<const N: usize> {
    prefix_len: u32,
    data: [u8; N],
}

impl<const N: usize> Default for TrieKey<N> {
    fn default() -> Self {
        TrieKey {
            prefix_len: 0,
            data: [0; N],
        }
    }
}

/// Source (relay, exempt) or destination tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Sources,
    Destinations,
    /// The inbound program's lists.
    ProtectedMx,
    MxSenders,
    Throttled,
}

impl Direction {
    const fn map_names(self) -> (&'static str, &'static str) {
        use egress_common::inbound::names as inbound;
        match self {
            Direction::Sources => (names::SOURCES_V4, names::SOURCES_V6),
            Direction::Destinations => (names::DESTINATIONS_V4, names::DESTINATIONS_V6),
            Direction::ProtectedMx => (inbound::PROTECTED_V4, inbound::PROTECTED_V6),
            Direction::MxSenders => (inbound::SENDERS_V4, inbound::SENDERS_V6),
            Direction::Throttled => (inbound::THROTTLED_V4, inbound::THROTTLED_V6),
        }
    }
}

/// Counts of what a reconcile changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    pub inserted: u64,
    pub removed: u64,
}

struct Tries {
    v4: LpmTrie<MapData, [u8; 4], u32>,
    v6: LpmTrie<MapData, [u8; 16], u32>,
    names: (&'static str, &'static str),
}

impl Tries {
    fn open(pins: &PinLayout, direction: Direction) -> Result<Tries, MapsError> {
        let names = direction.map_names();
        Ok(Tries {
            v4: LpmTrie::try_from(open(pins, names.0)?).map_err(map_error(pins, names.0))?,
            v6: LpmTrie::try_from(open(pins, names.1)?).map_err(map_error(pins, names.1))?,
            names,
        })
    }

    /// Both tries' entries: in batches where the kernel can (a million entries in about a
    /// second instead of two million syscalls), else one by one.
    fn read(&self) -> Result<Vec<(IpNet, u32)>, MapError> {
        let mut contents = Vec::new();
        let batched = batch::lookup_all(self.v4.map().fd().as_fd(), |key: &TrieKey<4>, value| {
            if let Ok(net) = ipnet::Ipv4Net::new(key.data.into(), key.prefix_len as u8) {
                contents.push((IpNet::V4(net), *value));
            }
        })
        .and_then(|_| {
            batch::lookup_all(self.v6.map().fd().as_fd(), |key: &TrieKey<16>, value| {
                if let Ok(net) = ipnet::Ipv6Net::new(key.data.into(), key.prefix_len as u8) {
                    contents.push((IpNet::V6(net), *value));
                }
            })
        });
        match batched {
            Ok(_) => Ok(contents),
            Err(err) if batch::unsupported(&err) => self.read_one_by_one(),
            Err(io_error) => Err(MapError::SyscallError(SyscallError {
                call: "bpf_map_lookup_batch",
                io_error,
            })),
        }
    }

    fn read_one_by_one(&self) -> Result<Vec<(IpNet, u32)>, MapError> {
        let mut contents = Vec::new();
        for item in self.v4.iter() {
            let (key, value) = item?;
            let net = ipnet::Ipv4Net::new(key.data().into(), key.prefix_len() as u8)
                .map_err(|_| MapError::KeyNotFound)?;
            contents.push((IpNet::V4(net), value));
        }
        for item in self.v6.iter() {
            let (key, value) = item?;
            let net = ipnet::Ipv6Net::new(key.data().into(), key.prefix_len() as u8)
                .map_err(|_| MapError::KeyNotFound)?;
            contents.push((IpNet::V6(net), value));
        }
        Ok(contents)
    }

    fn name_of(&self, prefix: &IpNet) -> &'static str {
        match prefix {
            IpNet::V4(_) => self.names.0,
            IpNet::V6(_) => self.names.1,
        }
    }

    fn insert(&mut self, prefix: &IpNet, value: u32) -> Result<(), MapError> {
        match prefix {
            IpNet::V4(net) => self.v4.insert(
                &Key::new(net.prefix_len().into(), net.network().octets()),
                value,
                0,
            ),
            IpNet::V6(net) => self.v6.insert(
                &Key::new(net.prefix_len().into(), net.network().octets()),
                value,
                0,
            ),
        }
    }

    /// Inserts `changes` (IPv4 ones first) a batch of thousands per syscall. On failure:
    /// how many went in, and the error of the next one.
    fn insert_all(
        &mut self,
        changes: &[(IpNet, u32, Option<u32>)],
    ) -> Result<(), (usize, MapError)> {
        let mut keys_v4 = Vec::new();
        let mut keys_v6 = Vec::new();
        let mut values_v4 = Vec::new();
        let mut values_v6 = Vec::new();
        for (prefix, value, _) in changes {
            match prefix {
                IpNet::V4(net) => {
                    keys_v4.push(Key::new(net.prefix_len().into(), net.network().octets()));
                    values_v4.push(*value);
                }
                IpNet::V6(net) => {
                    keys_v6.push(Key::new(net.prefix_len().into(), net.network().octets()));
                    values_v6.push(*value);
                }
            }
        }
        let as_map_error = |err: batch::BatchError, before: usize| {
            let io_error = err.source;
            let source = MapError::SyscallError(SyscallError {
                call: "bpf_map_update_batch",
                io_error,
            });
            (before + err.applied, source)
        };
        batch::update(self.v4.map().fd().as_fd(), &keys_v4, &values_v4)
            .map_err(|err| as_map_error(err, 0))?;
        batch::update(self.v6.map().fd().as_fd(), &keys_v6, &values_v6)
            .map_err(|err| as_map_error(err, keys_v4.len()))
    }

    fn remove(&mut self, prefix: &IpNet) -> Result<(), MapError> {
        match prefix {
            IpNet::V4(net) => self
                .v4
                .remove(&Key::new(net.prefix_len().into(), net.network().octets())),
            IpNet::V6(net) => self
                .v6
                .remove(&Key::new(net.prefix_len().into(), net.network().octets())),
        }
    }
}

/// What the tries of `direction` hold now, sorted by prefix (a trie key appears once): a
/// million entries in 24 MB, where a tree would take half as much again.
pub fn read_sorted(pins: &PinLayout, direction: Direction) -> Result<Vec<(IpNet, u32)>, MapsError> {
    let tries = Tries::open(pins, direction)?;
    let mut contents = tries
        .read()
        .map_err(map_error(pins, direction.map_names().0))?;
    contents.sort_unstable_by_key(|(prefix, _)| *prefix);
    Ok(contents)
}

/// What the tries of `direction` hold now.
pub fn read(pins: &PinLayout, direction: Direction) -> Result<MapContents, MapsError> {
    Ok(read_sorted(pins, direction)?.into_iter().collect())
}

/// Makes the tries of `direction` hold exactly `desired`, which must fit in `capacity`
/// entries per family (see `capacity::check`), then the IPv4 source index and the IPv6
/// source filter (or the IPv4 destinations' host table) and the config map's skip-empty
/// flags follow. `held` is what the tries and the index hold when the
/// caller knows it (the state it applied last): the change is then diffed in memory, and
/// only what differs is written, in the tries and in the index windows it touches; `None`
/// reads the tries first and syncs the whole index (at start, and to repair drift).
pub fn reconcile(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
    held: Option<&MapContents>,
    capacity: u32,
) -> Result<Applied, MapsError> {
    source_index::before_reconcile(pins, direction, desired)?;
    crate::inbound::maps::before_reconcile(pins, direction, desired)?;
    let (applied, touched) = reconcile_tries(pins, direction, desired, held, capacity)?;
    match direction {
        Direction::Sources => {
            match touched {
                Some(touched) => source_index::sync_touched(pins, desired, &touched)?,
                None => source_index::sync(pins, desired)?,
            };
            super::source_filter::sync(pins, desired)?;
            super::source_hosts::sync(pins, desired)?;
        }
        Direction::Destinations => super::host_table::sync_destinations(pins, desired)?,
        Direction::ProtectedMx | Direction::MxSenders | Direction::Throttled => {}
    }
    source_index::after_reconcile(pins, direction, desired)?;
    crate::inbound::maps::after_reconcile(pins, direction, desired)?;
    Ok(applied)
}

fn reconcile_tries(
    pins: &PinLayout,
    direction: Direction,
    desired: &MapContents,
    held: Option<&MapContents>,
    capacity: u32,
) -> Result<(Applied, Option<Vec<IpNet>>), MapsError> {
    let mut tries = Tries::open(pins, direction)?;
    let read;
    let current = match held {
        Some(held) => held,
        None => {
            read = self::read(pins, direction)?;
            &read
        }
    };
    let mut applied = Applied::default();
    let diff = Diff::between(current, desired);
    // Adding first needs room for old and new entries at once; when a map is that full the
    // entries on their way out go first (they only ever narrow what passes).
    let remove_first = !diff.fits_together(capacity);
    if remove_first {
        tracing::warn!(
            map = direction.map_names().0,
            capacity,
            "allowlist map near capacity: removing old entries before adding new ones"
        );
        applied.removed = remove_stale(pins, &mut tries, &diff.stale)?;
    }
    if let Err((done, source)) = tries.insert_all(&diff.changes) {
        roll_back(&mut tries, &diff.changes[..done]);
        let failed = diff.changes[done].0;
        tracing::error!(prefix = %failed, err = %source, "allowlist insert failed; change rolled back");
        return Err(map_error(pins, tries.name_of(&failed))(source));
    }
    applied.inserted = diff.changes.len() as u64;
    if !remove_first {
        applied.removed = remove_stale(pins, &mut tries, &diff.stale)?;
    }
    // What changed, when it is known what the maps (and the index) held before.
    let touched = held.map(|_| {
        let changed = diff.changes.iter().map(|(prefix, _, _)| *prefix);
        changed.chain(diff.stale.iter().copied()).collect()
    });
    Ok((applied, touched))
}

/// What turns `current` into `desired`, from one merge pass over both.
struct Diff {
    /// (prefix, new value, old value) to insert: IPv4 first, then IPv6, the order the batches
    /// go in, so a failure's count says which entries went in.
    changes: Vec<(IpNet, u32, Option<u32>)>,
    /// Prefixes to remove.
    stale: Vec<IpNet>,
    /// Entries per family (IPv4, IPv6) while old and new are both in.
    union: (usize, usize),
}

impl Diff {
    fn between(current: &MapContents, desired: &MapContents) -> Diff {
        let mut diff = Diff {
            changes: Vec::new(),
            stale: Vec::new(),
            union: (0, 0),
        };
        for (prefix, before, after) in merge::join(current.iter(), desired.iter()) {
            match prefix {
                IpNet::V4(_) => diff.union.0 += 1,
                IpNet::V6(_) => diff.union.1 += 1,
            }
            match after {
                Some(value) if before != Some(value) => diff.changes.push((prefix, value, before)),
                Some(_) => {}
                None => diff.stale.push(prefix),
            }
        }
        diff.changes
            .sort_by_key(|(prefix, _, _)| matches!(prefix, IpNet::V6(_)));
        diff
    }

    fn fits_together(&self, capacity: u32) -> bool {
        self.union.0 <= capacity as usize && self.union.1 <= capacity as usize
    }
}

fn remove_stale(pins: &PinLayout, tries: &mut Tries, stale: &[IpNet]) -> Result<u64, MapsError> {
    for prefix in stale {
        let name = tries.name_of(prefix);
        tries.remove(prefix).map_err(map_error(pins, name))?;
    }
    Ok(stale.len() as u64)
}

fn roll_back(tries: &mut Tries, inserted: &[(IpNet, u32, Option<u32>)]) {
    for (prefix, _, before) in inserted.iter().rev() {
        let result = match before {
            Some(value) => tries.insert(prefix, *value),
            None => tries.remove(prefix),
        };
        if let Err(err) = result {
            tracing::error!(%prefix, %err, "cannot roll back allowlist insert");
        }
    }
}
