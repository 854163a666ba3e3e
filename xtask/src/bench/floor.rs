//! The floor under any per-subscriber accounting kept in a kernel hash map: an XDP program of
//! about 30 instructions that looks the IPv4 source up in an LRU hash of the same capacity as
//! egress's subscriber table (`max_tracked` = 1,048,576 by default), adds one to a counter or
//! two and drops. With our key and record sizes, or with the smallest element there is.
//! Timed on exactly the frames of our blocked cases, it shows how much of the blocked path is
//! the kernel's hash lookup (hash, bucket, element) that the spec's "bounded LRU map" of
//! subscriber records implies, and how much is ours.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd, BorrowedFd, OwnedFd},
};

use anyhow::{Context as _, Result};
use egress_common::{SubscriberKey, SubscriberRecord};

use super::{
    asm::{
        ADD64_IMM, CALL, EXIT, HELPER_MAP_LOOKUP_ELEM, JEQ_IMM, JGT_REG, LDX_DW, LDX_W, MOV64_IMM,
        MOV64_REG, ST_W, STX_DW, STX_W, insn, load_map_fd,
    },
    bpf_sys,
};

const MAP_TYPE_LRU_HASH: u32 = 9;
const IPV4_SOURCE: i16 = 14 + 12;
const XDP_DROP: i32 = 1;

/// The sizes of the floor map's keys and values.
#[derive(Clone, Copy, Debug)]
pub struct Geometry {
    pub key_size: u32,
    pub value_size: u32,
}

impl Geometry {
    /// Our subscriber key and record: with the kernel's 48-byte element header, 168 bytes
    /// (three cache lines).
    pub const OURS: Geometry = Geometry {
        key_size: size_of::<SubscriberKey>() as u32,
        value_size: size_of::<SubscriberRecord>() as u32,
    };
    /// The IPv4 address and one counter: a 64-byte element, one cache line.
    pub const MINIMAL: Geometry = Geometry {
        key_size: 4,
        value_size: 8,
    };

    fn key_of(self, source: Ipv4Addr) -> Vec<u8> {
        if self.key_size == 4 {
            return source.octets().to_vec();
        }
        let key = SubscriberKey::ipv4(source.octets());
        // SAFETY: #[repr(C)] plain data without padding bytes.
        unsafe { as_bytes(&key) }.to_vec()
    }
}

const XDP_PASS: i32 = 2;

/// Looks the source up (laid out as our IPv4 key unless the key is the bare address), adds one
/// to the first and the last counter of the value (both of its cache lines for our record, as
/// our update writes them), drops. A source that is not tracked passes, so the caller's
/// verdict check catches a floor that measures a miss.
fn program(map: BorrowedFd<'_>, geometry: Geometry) -> Vec<u64> {
    let key = -(geometry.key_size as i16 + 4) & !7; // 8-aligned on the stack
    let (address, header) = if geometry.key_size == 4 {
        (key, None)
    } else {
        // family 4, /32, padding
        (key + 4, Some(i32::from_ne_bytes([4, 32, 0, 0])))
    };
    let last = geometry.value_size as i16 - 8;
    let mut insns: Vec<u64> = (0..geometry.key_size as i16 / 4)
        .map(|word| insn(ST_W, 10, 0, key + 4 * word, 0))
        .collect();
    if let Some(header) = header {
        insns.push(insn(ST_W, 10, 0, key, header));
    }
    insns.extend([
        insn(LDX_W, 2, 1, 0, 0), // r2 = data
        insn(LDX_W, 3, 1, 4, 0), // r3 = data_end
        insn(MOV64_REG, 4, 2, 0, 0),
        insn(ADD64_IMM, 4, 0, 0, i32::from(IPV4_SOURCE) + 4),
        insn(JGT_REG, 4, 3, 16, 0),        // short frame: to the pass
        insn(LDX_W, 5, 2, IPV4_SOURCE, 0), // r5 = source address
        insn(STX_W, 10, 5, address, 0),
    ]);
    insns.extend(load_map_fd(1, map));
    insns.extend([
        insn(MOV64_REG, 2, 10, 0, 0),
        insn(ADD64_IMM, 2, 0, 0, i32::from(key)),
        insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        insn(JEQ_IMM, 0, 0, 8, 0), // not tracked: to the pass
        insn(LDX_DW, 1, 0, 0, 0),
        insn(ADD64_IMM, 1, 0, 0, 1),
        insn(STX_DW, 0, 1, 0, 0), // plain stores, as ours
        insn(LDX_DW, 1, 0, last, 0),
        insn(ADD64_IMM, 1, 0, 0, 1),
        insn(STX_DW, 0, 1, last, 0),
        insn(MOV64_IMM, 0, 0, 0, XDP_DROP),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV64_IMM, 0, 0, 0, XDP_PASS),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    insns
}

pub struct Floor {
    map: OwnedFd,
    program: OwnedFd,
    geometry: Geometry,
}

impl Floor {
    pub fn new(capacity: u32, geometry: Geometry) -> Result<Floor> {
        let map = bpf_sys::create_map(
            MAP_TYPE_LRU_HASH,
            geometry.key_size,
            geometry.value_size,
            capacity,
        )
        .context("creating the floor program's LRU hash")?;
        let program = bpf_sys::load_xdp("egb_floor", &program(map.as_fd(), geometry))?;
        Ok(Floor {
            map,
            program,
            geometry,
        })
    }

    /// Gives `sources` a record each, as if each had been seen once.
    pub fn track(&self, sources: impl Iterator<Item = Ipv4Addr>) -> Result<()> {
        let value = vec![0u8; self.geometry.value_size as usize];
        for source in sources {
            bpf_sys::update_elem(self.map.as_fd(), &self.geometry.key_of(source), &value)
                .with_context(|| format!("tracking {source} in the floor program's map"))?;
        }
        Ok(())
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.program.as_fd()
    }
}

/// # Safety
/// `T` must have no padding bytes.
unsafe fn as_bytes<T>(value: &T) -> &[u8] {
    // SAFETY: a shared view of `size_of::<T>()` initialised bytes, per the caller.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}
