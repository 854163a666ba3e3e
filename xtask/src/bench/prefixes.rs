//! Exempt prefix sets of mixed lengths, generated deterministically so every run and every
//! machine measures the same trie shape. Nested prefixes occur, as in real allowlists.

use std::{
    collections::HashSet,
    net::{Ipv4Addr, Ipv6Addr},
};

/// xorshift64*: deterministic, fast, good enough to scatter prefixes.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, weighted: &[(T, u64)]) -> T {
        let total: u64 = weighted.iter().map(|(_, weight)| weight).sum();
        let mut roll = self.next() % total;
        for &(value, weight) in weighted {
            if roll < weight {
                return value;
            }
            roll -= weight;
        }
        weighted[0].0
    }
}

/// 100.64.0.0 .. 100.111.255.255: the exempt part of the IPv4 address plan.
const V4_BASE: u32 = u32::from_be_bytes([100, 64, 0, 0]);
const V4_SPAN: u64 = 3 << 20;
const V4_LENGTHS: &[(u8, u64)] = &[
    (32, 55),
    (31, 5),
    (30, 8),
    (29, 8),
    (28, 8),
    (27, 5),
    (26, 4),
    (25, 3),
    (24, 3),
    (22, 1),
];
const V6_LENGTHS: &[(u8, u64)] = &[(128, 20), (64, 35), (56, 25), (48, 15), (40, 5)];

/// `count` distinct IPv4 prefixes inside the exempt range.
pub fn exempt_v4(count: usize) -> Vec<(Ipv4Addr, u8)> {
    let mut rng = Rng::new(0x0e9e_5500_0004);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let offset = (rng.next() % V4_SPAN) as u32;
        let mut len = rng.pick(V4_LENGTHS);
        // Short lengths run out of distinct values in a dense set: fall back to a host route.
        if !seen.insert(key_v4(offset, len)) {
            len = 32;
            if !seen.insert(key_v4(offset, len)) {
                continue;
            }
        }
        out.push((Ipv4Addr::from(mask_v4(V4_BASE + offset, len)), len));
    }
    out
}

fn mask_v4(address: u32, len: u8) -> u32 {
    address & (u32::MAX << (32 - u32::from(len)))
}

fn key_v4(offset: u32, len: u8) -> u64 {
    (u64::from(mask_v4(V4_BASE + offset, len)) << 8) | u64::from(len)
}

/// `count` distinct IPv6 prefixes inside 2001:db8::/33.
pub fn exempt_v6(count: usize) -> Vec<(Ipv6Addr, u8)> {
    let mut rng = Rng::new(0x0e9e_5500_0006);
    let mut seen = HashSet::with_capacity(count);
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        let len = rng.pick(V6_LENGTHS);
        let low_bits = u128::from(rng.next()) << 64 | u128::from(rng.next());
        // 2001:0db8 then a zero bit (the /33), then random bits.
        let address = (0x2001_0db8u128 << 96) | (low_bits >> 33);
        let masked = address & (u128::MAX << (128 - u32::from(len)));
        if seen.insert((masked, len)) {
            out.push((Ipv6Addr::from(masked), len));
        }
    }
    out
}

/// A host inside each of the first `count` prefixes: sources of the exempt case.
pub fn hosts_v4(prefixes: &[(Ipv4Addr, u8)], count: usize) -> Vec<Ipv4Addr> {
    prefixes
        .iter()
        .cycle()
        .take(count)
        .enumerate()
        .map(|(n, &(base, len))| {
            let span = 1u64 << (32 - u32::from(len));
            Ipv4Addr::from(u32::from(base) + (n as u64 % span) as u32)
        })
        .collect()
}
