//! Streaming every entry of the subscriber map with `BPF_MAP_LOOKUP_BATCH`.
//!
//! Iterating with get-next-key plus lookup costs two syscalls per entry (about 2 s for
//! 1,000,000 subscribers); a batch lookup copies thousands of entries per syscall. Entries are
//! handed to a callback batch by batch, so memory stays bounded whatever the map holds.

use std::{
    io,
    mem::size_of,
    os::fd::{AsFd, AsRawFd},
    path::Path,
};

use aya::maps::{HashMap, Map, MapData};
use egress_common::{SubscriberKey, SubscriberRecord, names};

use super::{TelemetryError, pinned};
use crate::paths::PinLayout;

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
/// Entries per syscall: about 470 KiB of buffers.
const BATCH_ENTRIES: usize = 4096;
/// A hash bucket larger than the batch makes the kernel answer ENOSPC; grow up to this.
const MAX_BATCH_ENTRIES: usize = 1 << 20;

/// The `batch` member of `union bpf_attr` (include/uapi/linux/bpf.h).
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Calls `visit` for every subscriber in the pinned map; returns how many there were.
pub fn for_each_subscriber(
    pins: &PinLayout,
    mut visit: impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::SUBSCRIBERS)?;
    let (Map::LruHashMap(data) | Map::HashMap(data)) = map else {
        return Err(TelemetryError::Syscall {
            path,
            call: "BPF_OBJ_GET",
            source: io::Error::other("the pinned subscriber map is not a hash map"),
        });
    };
    check_layout(&path, &data)?;
    match lookup_batches(&data, &mut visit) {
        Ok(count) => Ok(count),
        // Kernels before 5.6 have no batch operations.
        Err(err) if matches!(err.raw_os_error(), Some(libc::EINVAL | libc::ENOTSUP)) => {
            iterate_one_by_one(&path, data, &mut visit)
        }
        Err(source) => Err(TelemetryError::Syscall {
            path,
            call: "BPF_MAP_LOOKUP_BATCH",
            source,
        }),
    }
}

/// The batch syscall writes `count` keys and values of the map's sizes into our buffers: they
/// must be exactly ours.
fn check_layout(path: &Path, map: &MapData) -> Result<(), TelemetryError> {
    let info = map.info().map_err(|source| TelemetryError::ReadMap {
        path: path.to_owned(),
        source,
    })?;
    let expected = (size_of::<SubscriberKey>(), size_of::<SubscriberRecord>());
    let found = (info.key_size() as usize, info.value_size() as usize);
    if found != expected {
        return Err(TelemetryError::Syscall {
            path: path.to_owned(),
            call: "BPF_OBJ_GET_INFO_BY_FD",
            source: io::Error::other(format!(
                "key/value sizes {found:?} differ from this agent's {expected:?}"
            )),
        });
    }
    Ok(())
}

fn lookup_batches(
    map: &MapData,
    visit: &mut impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> io::Result<u64> {
    let mut capacity = BATCH_ENTRIES;
    let mut keys = vec![SubscriberKey::default(); capacity];
    let mut values = vec![SubscriberRecord::default(); capacity];
    // The kernel's batch cursor for hash maps is a bucket index (u32); give it room anyway.
    let mut cursor = [0u64; 2];
    let mut next_cursor = [0u64; 2];
    let mut first = true;
    let mut total = 0u64;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { cursor.as_ptr() as u64 },
            out_batch: next_cursor.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: capacity as u32,
            map_fd: map.fd().as_fd().as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `capacity` keys and values of the map's sizes
        // (checked by `check_layout`) and at two cursor buffers that outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                size_of::<BatchAttr>() as u32,
            )
        };
        let error = (rc < 0).then(io::Error::last_os_error);
        let done = matches!(&error, Some(err) if err.raw_os_error() == Some(libc::ENOENT));
        if let Some(err) = error.filter(|_| !done) {
            if err.raw_os_error() == Some(libc::ENOSPC) && capacity < MAX_BATCH_ENTRIES {
                capacity *= 2;
                keys.resize(capacity, SubscriberKey::default());
                values.resize(capacity, SubscriberRecord::default());
                continue;
            }
            return Err(err);
        }
        let filled = (attr.count as usize).min(capacity);
        for (key, value) in keys[..filled].iter().zip(&values[..filled]) {
            visit(key, value);
        }
        total += filled as u64;
        if done {
            return Ok(total);
        }
        cursor = next_cursor;
        first = false;
    }
}

fn iterate_one_by_one(
    path: &Path,
    data: MapData,
    visit: &mut impl FnMut(&SubscriberKey, &SubscriberRecord),
) -> Result<u64, TelemetryError> {
    let map = HashMap::<MapData, SubscriberKey, SubscriberRecord>::try_from(Map::LruHashMap(data))
        .map_err(|source| TelemetryError::OpenMap {
            path: path.to_owned(),
            source,
        })?;
    let mut total = 0;
    for entry in map.iter() {
        match entry {
            Ok((key, value)) => {
                visit(&key, &value);
                total += 1;
            }
            // An entry evicted between get-next-key and lookup is simply gone.
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(source) => {
                return Err(TelemetryError::ReadMap {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(total)
}

/// Looks up one subscriber.
pub fn lookup(
    pins: &PinLayout,
    key: &SubscriberKey,
) -> Result<Option<SubscriberRecord>, TelemetryError> {
    let pinned::PinnedMap { path, map } = pinned::open(pins, names::SUBSCRIBERS)?;
    let map =
        HashMap::<MapData, SubscriberKey, SubscriberRecord>::try_from(map).map_err(|source| {
            TelemetryError::OpenMap {
                path: path.clone(),
                source,
            }
        })?;
    match map.get(key, 0) {
        Ok(record) => Ok(Some(record)),
        Err(aya::maps::MapError::KeyNotFound) => Ok(None),
        Err(source) => Err(TelemetryError::ReadMap { path, source }),
    }
}
