//! Batch map operations: thousands of entries per syscall.
//!
//! `update`: a million allowlist entries inserted one syscall each spend a large part of
//! their time entering the kernel and copying each key in; a batch copies them in once.
//! Kernels or map types without batch support get one update per entry, transparently.
//!
//! `lookup_all`: reading a map with get-next-key plus lookup costs two syscalls per entry
//! (seconds for a million); a batch lookup copies thousands per syscall, handed to a callback
//! batch by batch so memory stays bounded whatever the map holds.

extern crate std;

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
/// Entries per lookup syscall to start with.
const LOOKUP_ENTRIES: usize = 4096;
/// A hash bucket larger than the batch makes the kernel answer ENOSPC; grow up to this.
const MAX_LOOKUP_ENTRIES: usize = 1 << 20;
/// Entries per syscall: bounded so a failing batch leaves a small tail to report.
pub const BATCH_ENTRIES: usize = 8_192;
const ENOTSUPP: i32 = 524;

/// `struct bpf_attr` for the batch commands (`in_batch` .. `flags`).
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

/// Why a batch stopped: how many of its entries were applied, and the error of the next one.
#[derive(Debug)]
pub struct BatchError {
    pub applied: usize,
    pub source: io::Error,
}

/// Updates (inserts or overwrites) `keys[i]` with `values[i]` in `map`, in order. `K` and `V`
/// must be plain data with exactly the map's key and value sizes. On error, the entries
/// before `applied` are in the map and the rest are not.
pub fn update<K: Copy, V: Copy>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> Result<(), BatchError> {
    assert_eq!(keys.len(), values.len(), "one value per key");
    let mut applied = 0;
    while applied < keys.len() {
        let end = (applied + BATCH_ENTRIES).min(keys.len());
        let (chunk_keys, chunk_values) = (&keys[applied..end], &values[applied..end]);
        match update_chunk(map, chunk_keys, chunk_values) {
            Ok(()) => applied = end,
            Err((done, err)) if done == 0 && unsupported(&err) => {
                return one_by_one(map, keys, values, applied);
            }
            Err((done, source)) => {
                return Err(BatchError {
                    applied: applied + done,
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Calls `visit` for every entry of `map`; returns how many there were. `K` and `V` must be
/// plain data with exactly the map's key and value sizes. An error for which `unsupported`
/// holds means this kernel cannot batch this map type: iterate one by one instead.
pub fn lookup_all<K: Copy + Default, V: Copy + Default>(
    map: BorrowedFd<'_>,
    mut visit: impl FnMut(&K, &V),
) -> io::Result<u64> {
    let mut capacity = LOOKUP_ENTRIES;
    let mut keys = std::vec![K::default(); capacity];
    let mut values = std::vec![V::default(); capacity];
    // The cursor is a bucket index for hash maps and a key for the generic implementation
    // (tries): room for either.
    let cursor_words = size_of::<K>().div_ceil(8).max(2);
    let mut cursor = std::vec![0u64; cursor_words];
    let mut next_cursor = std::vec![0u64; cursor_words];
    let mut first = true;
    let mut total = 0u64;
    loop {
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { cursor.as_ptr() as u64 },
            out_batch: next_cursor.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: capacity as u32,
            map_fd: map.as_raw_fd() as u32,
            ..BatchAttr::default()
        };
        // SAFETY: `attr` points at buffers of `capacity` keys and values of the map's sizes
        // (the caller's contract) and at two cursor buffers that outlive the call.
        let error = unsafe { bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) }.err();
        let done = matches!(&error, Some(err) if err.raw_os_error() == Some(libc::ENOENT));
        if let Some(err) = error.filter(|_| !done) {
            if err.raw_os_error() == Some(libc::ENOSPC) && capacity < MAX_LOOKUP_ENTRIES {
                capacity *= 2;
                keys.resize(capacity, K::default());
                values.resize(capacity, V::default());
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
        core::mem::swap(&mut cursor, &mut next_cursor);
        first = false;
    }
}

/// The error a kernel without batch support for this map type gives.
pub fn unsupported(err: &io::Error) -> bool {
    matches!(
        err.raw_os_error(),
        Some(libc::EINVAL | libc::EOPNOTSUPP | ENOTSUPP)
    )
}

fn update_chunk<K, V>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> Result<(), (usize, io::Error)> {
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: map.as_raw_fd() as u32,
        ..BatchAttr::default()
    };
    // SAFETY: `attr` points at `count` keys and values laid out as the map expects (the
    // caller's contract) that outlive the call; the kernel writes back only `count`.
    if let Err(err) = unsafe { bpf(BPF_MAP_UPDATE_BATCH, &mut attr) } {
        return Err(((attr.count as usize).min(keys.len()), err));
    }
    Ok(())
}

/// The fallback: `BPF_MAP_UPDATE_ELEM` per entry from `start`.
fn one_by_one<K, V>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
    start: usize,
) -> Result<(), BatchError> {
    const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
    #[repr(C)]
    struct ElemAttr {
        map_fd: u32,
        _pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    for (index, (key, value)) in keys.iter().zip(values).enumerate().skip(start) {
        let mut attr = ElemAttr {
            map_fd: map.as_raw_fd() as u32,
            _pad: 0,
            key: key as *const K as u64,
            value: value as *const V as u64,
            flags: 0,
        };
        // SAFETY: `attr` points at one key and one value of the map's sizes.
        if let Err(source) = unsafe { bpf(BPF_MAP_UPDATE_ELEM, &mut attr) } {
            return Err(BatchError {
                applied: index,
                source,
            });
        }
    }
    Ok(())
}

/// `bpf(cmd, attr, sizeof attr)`.
///
/// # Safety
/// `attr` must be the `bpf_attr` member `cmd` expects, and every pointer in it must be valid
/// for what the kernel reads and writes through it.
unsafe fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<()> {
    // SAFETY: per the caller.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr as *mut A, size_of::<A>() as u32) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
