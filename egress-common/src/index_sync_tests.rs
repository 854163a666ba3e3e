//! The sync on plain memory: results match a naive longest-prefix match after every change,
//! and every store it makes, replayed one at a time, leaves each address judged by its old
//! or its new kind.

use std::{vec, vec::Vec};

use super::*;
use crate::{
    index::{lookup, mask, slot_of, word_of},
    index_oracle::{Rng, oracle},
    index_plan::SourcePrefix,
};

fn prefix(addr: u32, len: u8, kind: u32) -> SourcePrefix {
    SourcePrefix { addr, len, kind }
}

/// Both levels in memory, and what the trie holds (the prefixes last synced).
struct Index {
    first: Vec<u64>,
    second: Vec<u64>,
    prefixes: Vec<SourcePrefix>,
}

impl Index {
    fn new() -> Index {
        Index {
            first: vec![0; WORDS as usize],
            second: vec![0; BLOCK_WORDS as usize],
            prefixes: Vec::new(),
        }
    }

    fn resolve(&self, addr: u32) -> u32 {
        resolve(&self.first, &self.second, &self.prefixes, addr)
    }

    fn sync(&mut self, prefixes: &[SourcePrefix]) -> SyncReport {
        self.prefixes = prefixes.to_vec();
        let plan = Plan::new(prefixes.iter().copied());
        sync_in(&mut self.first[..], &mut self.second[..], &plan).expect("sync")
    }

    fn check(&mut self) -> SyncReport {
        let plan = Plan::new(self.prefixes.iter().copied());
        check_in(&mut self.first[..], &mut self.second[..], &plan).expect("check")
    }

    fn slot(&self, addr: u32) -> u16 {
        let slot = slot_of(addr);
        slot_in(self.first[word_of(slot) as usize], slot)
    }
}

fn resolve(first: &[u64], second: &[u64], trie: &[SourcePrefix], addr: u32) -> u32 {
    let slot = slot_of(addr);
    let value = slot_in(first[word_of(slot) as usize], slot);
    lookup(
        value,
        addr,
        |n| second.get(n as usize).copied(),
        || oracle(trie, addr),
    )
}

/// Records every store, so they can be replayed one at a time.
struct Recorder<'a> {
    words: &'a mut [u64],
    level: u8,
    log: &'a std::cell::RefCell<Vec<(u8, u32, u64)>>,
}

impl Words for Recorder<'_> {
    fn load(&mut self, index: u32) -> Result<u64, IndexError> {
        self.words.load(index)
    }
    fn store(&mut self, index: u32, word: u64) -> Result<(), IndexError> {
        self.log.borrow_mut().push((self.level, index, word));
        self.words.store(index, word)
    }
}

/// Syncs `index` to `next` and checks every intermediate state on `probes`.
fn sync_step_by_step(index: &mut Index, next: &[SourcePrefix], probes: &[u32]) -> SyncReport {
    let log = std::cell::RefCell::new(Vec::new());
    let (mut first, mut second) = (index.first.clone(), index.second.clone());
    let plan = Plan::new(next.iter().copied());
    let report = sync_in(
        &mut Recorder {
            words: &mut first,
            level: 1,
            log: &log,
        },
        &mut Recorder {
            words: &mut second,
            level: 2,
            log: &log,
        },
        &plan,
    )
    .expect("sync");
    // The trie is synced before the index: intermediate states read the new trie.
    let before: Vec<u32> = probes.iter().map(|a| index.resolve(*a)).collect();
    let after: Vec<u32> = probes.iter().map(|a| oracle(next, *a)).collect();
    index.prefixes = next.to_vec();
    for (step, (level, at, word)) in log.into_inner().into_iter().enumerate() {
        let words = if level == 1 {
            &mut index.first
        } else {
            &mut index.second
        };
        words[at as usize] = word;
        for (n, addr) in probes.iter().enumerate() {
            let now = index.resolve(*addr);
            assert!(
                now == before[n] || now == after[n],
                "store {step}: {addr:#010x} judged {now}, neither {} nor {}",
                before[n],
                after[n]
            );
        }
    }
    assert_eq!((index.first.clone(), index.second.clone()), (first, second));
    report
}

fn probes_of(prefixes: &[SourcePrefix]) -> Vec<u32> {
    prefixes
        .iter()
        .flat_map(|p| {
            let last = p.addr | !mask(u32::from(p.len));
            [p.addr, last, p.addr.wrapping_sub(1), last.wrapping_add(1)]
        })
        .collect()
}

#[test]
fn nested_prefixes_added_and_removed_one_by_one_never_misjudge() {
    // A /16 covering a /24 that holds a /25, a /28 and a /32, each with a different kind.
    let all = [
        prefix(0xC633_0000, 16, allow_kind::EXEMPT),
        prefix(0xC633_6400, 24, allow_kind::RELAY),
        prefix(0xC633_6480, 25, allow_kind::EXEMPT),
        prefix(0xC633_64F0, 28, allow_kind::RELAY),
        prefix(0xC633_64F7, 32, allow_kind::RELAY | allow_kind::EXEMPT),
        prefix(0xC633_6500, 32, allow_kind::RELAY),
    ];
    let probes = probes_of(&all);
    let mut index = Index::new();
    let mut held = Vec::new();
    for p in all {
        held.push(p);
        sync_step_by_step(&mut index, &held, &probes);
    }
    for addr in &probes {
        assert_eq!(index.resolve(*addr), oracle(&all, *addr), "{addr:#010x}");
    }
    assert!(is_indirect(index.slot(0xC633_6401)), "the /24 has a block");
    assert_eq!(index.resolve(0xC633_64F7), 3);
    assert_eq!(index.resolve(0xC633_64F8), 1);
    assert_eq!(index.resolve(0xC633_6481), 2);
    assert_eq!(index.resolve(0xC633_6401), 1);
    assert_eq!(index.resolve(0xC633_6601), 2);
    // Remove each in turn (the /16 first, the /32s last), then put them back the other way.
    for gone in 0..all.len() {
        let held: Vec<SourcePrefix> = all[gone + 1..].to_vec();
        sync_step_by_step(&mut index, &held, &probes);
        for addr in &probes {
            assert_eq!(index.resolve(*addr), oracle(&held, *addr), "{addr:#010x}");
        }
    }
    assert_eq!(index.first.iter().filter(|w| **w != 0).count(), 0);
    assert_eq!(index.check(), SyncReport::default());
}

#[test]
fn random_changes_match_a_naive_longest_prefix_match_at_every_store() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let bases: Vec<u32> = (0..3).map(|_| rng.next() as u32).collect();
    let mut index = Index::new();
    let mut held: Vec<SourcePrefix> = Vec::new();
    for round in 0..6 {
        // Drop about a third, add new ones: nested /8../32, relay inside exempt and back.
        held.retain(|_| rng.below(3) != 0);
        for _ in 0..120 {
            let base = bases[rng.below(3) as usize];
            let len = [6, 8, 16, 20, 23, 24, 25, 26, 28, 30, 31, 32][rng.below(12) as usize];
            let jitter = (rng.next() as u32) & !mask(20);
            held.push(prefix(
                (base ^ jitter) & mask(u32::from(len)),
                len,
                1 + rng.below(3) as u32,
            ));
        }
        let mut probes = probes_of(&held);
        probes.extend((0..300).map(|_| bases[rng.below(3) as usize] ^ (rng.next() as u32 & 0xfff)));
        probes.truncate(1200);
        sync_step_by_step(&mut index, &held, &probes);
        for addr in probes_of(&held) {
            assert_eq!(
                index.resolve(addr),
                oracle(&held, addr),
                "round {round}, {addr:#010x}"
            );
        }
        assert_eq!(
            index.check(),
            SyncReport::default(),
            "round {round}: in line"
        );
    }
}

#[test]
fn a_block_given_up_is_handed_out_again_only_in_a_later_sync() {
    let x = prefix(0xC000_0201, 32, allow_kind::RELAY);
    let y = prefix(0xC633_6401, 32, allow_kind::EXEMPT);
    let z = prefix(0xCB00_7101, 32, allow_kind::EXEMPT);
    let mut index = Index::new();
    index.sync(&[x]);
    let x_block = block_of(index.slot(x.addr));
    index.sync(&[y]);
    assert!(!is_indirect(index.slot(x.addr)));
    assert_ne!(
        block_of(index.slot(y.addr)),
        x_block,
        "not reused in the same sync"
    );
    index.sync(&[y, z]);
    assert_eq!(
        block_of(index.slot(z.addr)),
        x_block,
        "free again a sync later"
    );
    assert_eq!(index.resolve(z.addr), allow_kind::EXEMPT);
}

#[test]
fn drift_in_either_level_is_found_counted_and_repaired() {
    let relay = prefix(0xC000_0201, 32, allow_kind::RELAY);
    let exempt = prefix(0xC633_6410, 28, allow_kind::EXEMPT);
    let mut index = Index::new();
    index.sync(&[relay, exempt]);
    let good = (index.first.clone(), index.second.clone());

    // A block element zeroed: the relay is no longer named.
    let block = block_of(index.slot(relay.addr));
    index.second[(block * WORDS_PER_BLOCK) as usize] = 0;
    let found = index.check();
    assert_eq!(
        (found.block_words_written, found.relay, found.exempt),
        (1, 1, 0)
    );
    assert!(index.sync(&[relay, exempt]).changed());
    assert_eq!((index.first.clone(), index.second.clone()), good);

    // The exempt /24's slot made to name the relay's block: it needs its own again.
    let slot = slot_of(exempt.addr);
    let word = word_of(slot) as usize;
    index.first[word] = with_slot(index.first[word], slot, block_slot(block));
    let found = index.check();
    assert_eq!(found.words_written, 1);
    assert!(found.exempt >= 1 && found.relay >= 1, "{found:?}");
    index.sync(&[relay, exempt]);
    assert_eq!(index.resolve(exempt.addr), allow_kind::EXEMPT);
    assert_eq!(index.resolve(relay.addr), allow_kind::RELAY);
    assert_eq!(index.check(), SyncReport::default());
}

#[test]
fn when_every_block_is_taken_the_rest_go_to_the_trie_and_come_back() {
    // One /32 in each of BLOCKS + 2 different /24s.
    let many: Vec<SourcePrefix> = (0..BLOCKS + 2)
        .map(|n| prefix(0x6440_0001 + (n << 8), 32, allow_kind::EXEMPT))
        .collect();
    let mut index = Index::new();
    let report = index.sync(&many);
    assert_eq!(report.on_trie, 2);
    for p in &many {
        assert_eq!(index.resolve(p.addr), allow_kind::EXEMPT);
        assert_eq!(index.resolve(p.addr + 1), 0);
    }
    assert!(!index.check().changed(), "the trie slots are right");
    // Two /24s fewer: a later sync moves the trie slots onto blocks.
    let fewer = &many[2..];
    index.sync(fewer);
    let report = index.sync(fewer);
    assert_eq!(report.on_trie, 0);
    assert!(fewer.iter().all(|p| index.slot(p.addr) != TRIE));
}

/// A sync of only the windows a change touches leaves the index as a full sync would, and
/// the full check then finds nothing to do.
#[test]
fn a_sync_of_the_touched_windows_equals_a_full_sync() {
    use crate::index_plan::windows_of;
    let mut rng = Rng(0x5eed_0015);
    let random_prefix = |rng: &mut Rng| {
        let len = [0u8, 4, 8, 12, 16, 20, 22, 24, 25, 28, 30, 32][rng.below(12) as usize];
        let addr = (rng.next() as u32) & mask(u32::from(len));
        prefix(addr, len, 1 + rng.below(3) as u32)
    };
    let mut current: Vec<SourcePrefix> = (0..300).map(|_| random_prefix(&mut rng)).collect();
    current.sort_by_key(|p| (p.addr, p.len));
    current.dedup_by_key(|p| (p.addr, p.len));
    let mut windowed = Index::new();
    windowed.sync(&current);
    for round in 0..20 {
        let mut next = current.clone();
        let mut touched = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let change = if next.is_empty() || rng.below(2) == 0 {
                let added = random_prefix(&mut rng);
                next.retain(|p| (p.addr, p.len) != (added.addr, added.len));
                next.push(added);
                added
            } else {
                next.remove(rng.below(next.len() as u64) as usize)
            };
            touched.extend(windows_of(change.addr, change.len));
        }
        touched.sort_unstable();
        touched.dedup();
        let mut full = Index {
            first: windowed.first.clone(),
            second: windowed.second.clone(),
            prefixes: Vec::new(),
        };
        full.sync(&next);
        let plan = Plan::new(next.iter().copied());
        sync_in_windows(
            &mut windowed.first[..],
            &mut windowed.second[..],
            &plan,
            &touched,
        )
        .expect("windowed sync");
        windowed.prefixes = next.clone();
        assert!(
            windowed.first == full.first && windowed.second == full.second,
            "round {round}: windows {touched:?} left the index unlike a full sync"
        );
        assert!(
            !windowed.check().changed(),
            "round {round}: the check finds drift"
        );
        current = next;
    }
}
