//! `egress_common::batch` against the real kernel, on the map types the agent uses it for (an
//! LPM trie as the allowlists, a hash as the subscriber and inbound tables): every entry of an
//! update lands and reads back whole, and a map that fills up mid-batch reports exactly how
//! many went in.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use aya::maps::lpm_trie::Key;
use egress_common::batch;

const MAP_TYPE_HASH: u32 = 1;
const MAP_TYPE_LPM_TRIE: u32 = 11;
const NO_PREALLOC: u32 = 1;

fn create(map_type: u32, key_size: u32, value_size: u32, entries: u32, flags: u32) -> OwnedFd {
    let mut attr = [0u32; 30];
    attr[..5].copy_from_slice(&[map_type, key_size, value_size, entries, flags]);
    // SAFETY: a zero-padded bpf_attr for BPF_MAP_CREATE.
    let fd = unsafe { libc::syscall(libc::SYS_bpf, 0, attr.as_mut_ptr(), size_of_val(&attr)) };
    assert!(
        fd >= 0,
        "BPF_MAP_CREATE type {map_type}: {} (root?)",
        std::io::Error::last_os_error()
    );
    // SAFETY: a new fd nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

fn lookup<K, V: Default>(map: &OwnedFd, key: &K) -> Option<V> {
    let mut value = V::default();
    let mut attr = [0u64; 4];
    attr[0] = std::os::fd::AsRawFd::as_raw_fd(map) as u64;
    attr[1] = key as *const K as u64;
    attr[2] = &mut value as *mut V as u64;
    // SAFETY: BPF_MAP_LOOKUP_ELEM with a key and a value buffer of the map's sizes.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, 1, attr.as_mut_ptr(), size_of_val(&attr)) };
    (rc == 0).then_some(value)
}

fn host_key(n: u32) -> Key<[u8; 4]> {
    Key::new(32, (0x6440_0000 + n).to_be_bytes()) // 100.64.0.0 + n
}

#[test]
fn every_entry_of_a_multi_batch_update_lands_in_a_trie_and_a_hash() {
    let count = 3 * batch::BATCH_ENTRIES as u32 + 17;
    let trie = create(MAP_TYPE_LPM_TRIE, 8, 4, count, NO_PREALLOC);
    let keys: Vec<Key<[u8; 4]>> = (0..count).map(host_key).collect();
    let values: Vec<u32> = (0..count).map(|n| n % 3 + 1).collect();
    batch::update(trie.as_fd(), &keys, &values).expect("batch insert into an LPM trie");
    for n in [0, 1, 8_191, 8_192, count / 2, count - 1] {
        assert_eq!(
            lookup::<_, u32>(&trie, &host_key(n)),
            Some(n % 3 + 1),
            "entry {n}"
        );
    }

    let hash = create(MAP_TYPE_HASH, 8, 4, count, NO_PREALLOC);
    let long: Vec<HashKey> = (0..count)
        .map(|n| HashKey {
            prefix_len: 32,
            addr: (0x6440_0000 + n).to_be_bytes(),
        })
        .collect();
    batch::update(hash.as_fd(), &long, &values).expect("batch insert into a hash");
    for n in [0, count - 1] {
        assert_eq!(lookup::<_, u32>(&hash, &long[n as usize]), Some(n % 3 + 1));
    }
    let mut total = 0u64;
    let read = batch::lookup_all(hash.as_fd(), |key: &HashKey, value: &u32| {
        let n = u32::from_be_bytes(key.addr) - 0x6440_0000;
        assert_eq!(*value, n % 3 + 1, "{key:?}");
        total += 1;
    })
    .expect("batch lookup of a hash");
    assert_eq!((read, total), (u64::from(count), u64::from(count)));
}

/// A hash key of eight bytes, as the tests write and read it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct HashKey {
    prefix_len: u32,
    addr: [u8; 4],
}

/// The trie key as the kernel lays it out, with `Default` for the batch buffers.
#[expect(dead_code, reason = "only ever filled in by the kernel")]
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct RawKey {
    prefix_len: u32,
    data: [u8; 4],
}

#[test]
fn a_full_map_stops_the_batch_and_says_how_many_went_in() {
    let capacity = batch::BATCH_ENTRIES as u32 + 100;
    let trie = create(MAP_TYPE_LPM_TRIE, 8, 4, capacity, NO_PREALLOC);
    let keys: Vec<Key<[u8; 4]>> = (0..capacity + 50).map(host_key).collect();
    let values = vec![1u32; keys.len()];
    let err = batch::update(trie.as_fd(), &keys, &values)
        .expect_err("inserting past the capacity must fail");
    assert_eq!(err.applied, capacity as usize, "{err:?}");
    assert_eq!(err.source.raw_os_error(), Some(libc::ENOSPC), "{err:?}");
    assert_eq!(lookup::<_, u32>(&trie, &host_key(capacity - 1)), Some(1));
    assert_eq!(lookup::<_, u32>(&trie, &host_key(capacity)), None);
}
