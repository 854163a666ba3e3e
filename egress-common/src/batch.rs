//! `BPF_MAP_UPDATE_BATCH`: thousands of map updates per syscall. A million allowlist entries
//! inserted one syscall each spend a third of their time entering the kernel and copying
//! each key in; a batch copies them in once. Kernels or map types without batch support get
//! one update per entry, transparently.

extern crate std;

use std::{
    io,
    os::fd::{AsRawFd, BorrowedFd},
};

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;
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

/// The error a kernel without batch support for this map type gives.
fn unsupported(err: &io::Error) -> bool {
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
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_UPDATE_BATCH,
            &mut attr as *mut BatchAttr,
            size_of::<BatchAttr>() as u32,
        )
    };
    if rc < 0 {
        let err = io::Error::last_os_error();
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
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_UPDATE_ELEM,
                &mut attr as *mut ElemAttr,
                size_of::<ElemAttr>() as u32,
            )
        };
        if rc < 0 {
            return Err(BatchError {
                applied: index,
                source: io::Error::last_os_error(),
            });
        }
    }
    Ok(())
}
