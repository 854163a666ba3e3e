//! The operator's own IPv4 subscriber pools (`subscribers.pools`): each address of a pool has
//! its own slot in an array of records, so a blocked packet from a pool address finds its
//! record by arithmetic (no hash, no bucket walk, no eviction) instead of in the LRU map.
//!
//! The table of pools is the single element of its own array map and is created with the
//! records, so a program always reads a table that matches the records it indexes.

/// Pools a table holds at most (the lookup compares the source with each in turn).
pub const MAX_POOLS: usize = 8;
/// Pool addresses in all at most: a /10 (the shared address space, 100.64.0.0/10), 384 MiB of
/// records.
pub const MAX_ADDRESSES: u32 = 1 << 22;

/// One pool: `size` addresses from `first` (host order), in record slots from `base`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pool {
    pub first: u32,
    pub size: u32,
    pub base: u32,
    /// Always 0.
    pub reserved: u32,
}

/// The value of the pool table map's one element. All zeros: no pools.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolTable {
    /// Pools in use, from the start of `pools`.
    pub count: u32,
    /// Always 0.
    pub reserved: u32,
    pub pools: [Pool; MAX_POOLS],
}

impl PoolTable {
    /// The record slot of an IPv4 source (host order), or None outside every pool.
    #[inline(always)]
    pub fn slot_of(&self, address: u32) -> Option<u32> {
        let count = self.count as usize;
        let mut i = 0;
        while i < MAX_POOLS {
            if i >= count {
                return None;
            }
            let pool = &self.pools[i];
            let offset = address.wrapping_sub(pool.first);
            if offset < pool.size {
                return Some(pool.base + offset);
            }
            i += 1;
        }
        None
    }

    /// The address whose record is in `slot`, or None past the last pool.
    pub fn address_of(&self, slot: u32) -> Option<u32> {
        self.pools[..(self.count as usize).min(MAX_POOLS)]
            .iter()
            .find(|pool| slot.wrapping_sub(pool.base) < pool.size)
            .map(|pool| pool.first + (slot - pool.base))
    }

    /// Record slots the table needs: one per pool address.
    pub fn addresses(&self) -> u32 {
        self.pools[..(self.count as usize).min(MAX_POOLS)]
            .iter()
            .map(|pool| pool.size)
            .sum()
    }

    /// The table of `pools`, given as (first address, prefix length) in host order, slots
    /// assigned in the order given. The caller has checked the limits ([`check`]).
    pub fn of(pools: impl IntoIterator<Item = (u32, u8)>) -> PoolTable {
        let mut table = PoolTable::default();
        let mut base = 0u32;
        for (first, prefix_len) in pools.into_iter().take(MAX_POOLS) {
            let size = 1u32 << (32 - u32::from(prefix_len.clamp(10, 32)));
            table.pools[table.count as usize] = Pool {
                first,
                size,
                base,
                reserved: 0,
            };
            table.count += 1;
            base += size;
        }
        table
    }
}

/// Why a list of pools cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolProblem {
    TooMany,
    /// Wider than MAX_ADDRESSES, alone or together.
    TooLarge,
    /// Pools `.0` and `.1` (indices) share addresses.
    Overlap(usize, usize),
}

/// Checks pools given as (first address, prefix length), host order, network addresses.
pub fn check(pools: &[(u32, u8)]) -> Result<(), PoolProblem> {
    if pools.len() > MAX_POOLS {
        return Err(PoolProblem::TooMany);
    }
    let size = |prefix_len: u8| 1u64 << (32 - u32::from(prefix_len.min(32)));
    let total: u64 = pools.iter().map(|&(_, len)| size(len)).sum();
    if total > u64::from(MAX_ADDRESSES) {
        return Err(PoolProblem::TooLarge);
    }
    for (i, &(a, a_len)) in pools.iter().enumerate() {
        for (j, &(b, b_len)) in pools.iter().enumerate().skip(i + 1) {
            let (a, b) = (u64::from(a), u64::from(b));
            if a < b + size(b_len) && b < a + size(a_len) {
                return Err(PoolProblem::Overlap(i, j));
            }
        }
    }
    Ok(())
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PoolTable {}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: u32 = 0x6440_0000; // 100.64.0.0
    const DOC: u32 = 0xc000_0200; // 192.0.2.0

    #[test]
    fn every_pool_address_has_its_own_slot_and_maps_back() {
        let table = PoolTable::of([(SHARED, 16), (DOC, 24)]);
        assert_eq!(table.addresses(), 65_536 + 256);
        assert_eq!(table.slot_of(SHARED), Some(0));
        assert_eq!(table.slot_of(SHARED + 65_535), Some(65_535));
        assert_eq!(table.slot_of(DOC), Some(65_536));
        assert_eq!(table.slot_of(DOC + 255), Some(65_536 + 255));
        for address in [SHARED, SHARED + 4_321, DOC + 7, DOC + 255] {
            let slot = table.slot_of(address).expect("in a pool");
            assert_eq!(table.address_of(slot), Some(address));
        }
        assert_eq!(table.address_of(65_536 + 256), None);
    }

    #[test]
    fn addresses_next_to_a_pool_are_outside_it() {
        let table = PoolTable::of([(SHARED, 16), (DOC, 24)]);
        for outside in [SHARED - 1, SHARED + 65_536, DOC - 1, DOC + 256, 0, u32::MAX] {
            assert_eq!(table.slot_of(outside), None, "{outside:#x}");
        }
        assert_eq!(PoolTable::default().slot_of(SHARED), None);
    }

    #[test]
    fn the_limits_are_checked() {
        assert_eq!(check(&[(SHARED, 10)]), Ok(()));
        assert_eq!(check(&[(SHARED, 9)]), Err(PoolProblem::TooLarge));
        assert_eq!(
            check(&[(SHARED, 10), (DOC, 24)]),
            Err(PoolProblem::TooLarge)
        );
        assert_eq!(
            check(&[(SHARED, 16), (DOC, 24), (SHARED + 256, 24)]),
            Err(PoolProblem::Overlap(0, 2))
        );
        let nine: [(u32, u8); 9] = core::array::from_fn(|i| (DOC + i as u32, 32));
        assert_eq!(check(&nine), Err(PoolProblem::TooMany));
        assert_eq!(check(&nine[..8]), Ok(()));
    }
}
