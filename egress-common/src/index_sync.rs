//! Bringing the IPv4 source index (both levels) in line with a [`Plan`] (user space only).
//!
//! The index keeps no state in the agent: block ownership is read from the first level at the
//! start of every sync. The order keeps every packet's verdict right while the index changes:
//!
//! - a /24 that keeps its block has the block rewritten in place, one aligned 8-byte store per
//!   element, so each address sees its old or its new entry;
//! - a /24 that needs a block gets a free one, filled before its slot names it;
//! - a block given up in this sync is not handed out again before the next one, so a packet
//!   that read the old slot never finds another /24's entries in it;
//! - first-level words are stored whole (four slots at once), after their blocks are ready.
//!
//! The source trie is synced first and stays complete, so a /24 left on [`TRIE`] (all blocks
//! taken) is judged right too. Both arrays are written through shared mappings, one window
//! of the first level at a time, so the agent never holds the 32 MiB in its own memory.

extern crate std;

use std::{
    os::fd::{AsFd, AsRawFd},
    sync::atomic::{AtomicU64, Ordering},
    vec::Vec,
};

use aya::maps::{MapData, MapError};

use crate::{
    allow_kind,
    index::{
        BLOCK_WORDS, BLOCKS, Block, SLOTS, TRIE, WORDS, WORDS_PER_BLOCK, block_of, block_slot,
        is_indirect, kind_of, slot_in, with_slot,
    },
    index_plan::{Plan, WINDOW_SLOTS, WINDOW_WORDS},
    names,
};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(
        "map {map} has {max_entries} elements of {value_size} bytes; it must have \
         {wanted} of 8"
    )]
    Shape {
        map: &'static str,
        max_entries: u32,
        value_size: u32,
        wanted: u32,
    },
    #[error("cannot map {map} into memory (is it BPF_F_MMAPABLE?): {source}")]
    Mmap {
        map: &'static str,
        source: std::io::Error,
    },
    #[error("element {index} is outside the index array {map}")]
    Range { map: &'static str, index: u32 },
}

/// What a sync changed. In a sync right after a change of the allowlist these are the
/// change's own effects; in a drift check they are what someone else changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    /// First-level elements (four slots each).
    pub words_written: u64,
    /// Second-level elements (32 addresses each).
    pub block_words_written: u64,
    /// /24s left to the trie because every block was taken.
    pub on_trie: u64,
    /// Differences found, by the kind they affected.
    pub relay: u64,
    pub exempt: u64,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        self.words_written + self.block_words_written > 0
    }

    fn count(&mut self, kinds: u32) {
        if kinds & allow_kind::RELAY != 0 {
            self.relay += 1;
        }
        // A difference that names no kind (a slot moved to another block) counts as exempt.
        if kinds & allow_kind::EXEMPT != 0 || kinds & (allow_kind::RELAY | allow_kind::EXEMPT) == 0
        {
            self.exempt += 1;
        }
    }
}

/// A `u64` array holding one level of the index.
pub trait Words {
    fn load(&mut self, index: u32) -> Result<u64, IndexError>;
    fn store(&mut self, index: u32, word: u64) -> Result<(), IndexError>;
}

/// Plain memory, for tests and tools.
impl Words for [u64] {
    fn load(&mut self, index: u32) -> Result<u64, IndexError> {
        let map = "memory";
        self.get(index as usize)
            .copied()
            .ok_or(IndexError::Range { map, index })
    }

    fn store(&mut self, index: u32, word: u64) -> Result<(), IndexError> {
        let map = "memory";
        *self
            .get_mut(index as usize)
            .ok_or(IndexError::Range { map, index })? = word;
        Ok(())
    }
}

/// Makes the pinned index maps (first level `index`, second level `blocks`) hold what `plan`
/// says.
pub fn sync(index: &MapData, blocks: &MapData, plan: &Plan) -> Result<SyncReport, IndexError> {
    let (mut first, mut second) = mapped(index, blocks)?;
    sync_in(&mut first, &mut second, plan)
}

/// [`sync`] limited to the first-level windows `windows` (numbers below
/// [`WINDOWS`](crate::index_plan::WINDOWS)): after a change whose prefixes lie there, when
/// the index held the plan before the change, the other windows already hold theirs.
pub fn sync_windows(
    index: &MapData,
    blocks: &MapData,
    plan: &Plan,
    windows: &[u32],
) -> Result<SyncReport, IndexError> {
    let (mut first, mut second) = mapped(index, blocks)?;
    sync_in_windows(&mut first, &mut second, plan, windows)
}

/// [`sync_windows`] on any two arrays of [`WORDS`] and [`BLOCK_WORDS`] elements. While some
/// /24 is left to the trie (every block was taken), every window is synced, so it gets a
/// block back as soon as one is free.
pub fn sync_in_windows<F: Words + ?Sized, S: Words + ?Sized>(
    first: &mut F,
    second: &mut S,
    plan: &Plan,
    windows: &[u32],
) -> Result<SyncReport, IndexError> {
    let sync = Sync::new(first, second, Mode::Write)?;
    if sync.any_on_trie {
        sync.run(plan)
    } else {
        sync.run_windows(plan, windows.iter().copied())
    }
}

/// What [`sync`] would change, without changing anything: a drift check that can run beside
/// the daemon, which repairs only when this finds something.
pub fn check(index: &MapData, blocks: &MapData, plan: &Plan) -> Result<SyncReport, IndexError> {
    let (mut first, mut second) = mapped(index, blocks)?;
    check_in(&mut first, &mut second, plan)
}

/// [`sync`] on any two arrays of [`WORDS`] and [`BLOCK_WORDS`] elements.
pub fn sync_in<F: Words + ?Sized, S: Words + ?Sized>(
    first: &mut F,
    second: &mut S,
    plan: &Plan,
) -> Result<SyncReport, IndexError> {
    Sync::new(first, second, Mode::Write)?.run(plan)
}

/// [`check`] on any two arrays of [`WORDS`] and [`BLOCK_WORDS`] elements.
pub fn check_in<F: Words + ?Sized, S: Words + ?Sized>(
    first: &mut F,
    second: &mut S,
    plan: &Plan,
) -> Result<SyncReport, IndexError> {
    Sync::new(first, second, Mode::CheckOnly)?.run(plan)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    CheckOnly,
}

const NO_OWNER: u32 = u32::MAX;
/// The [`BLOCK_FLAG`](crate::index::BLOCK_FLAG) bit of each of a word's four slots.
const INDIRECT_BITS: u64 = 0x8000_8000_8000_8000;

struct Sync<'a, F: Words + ?Sized, S: Words + ?Sized> {
    first: &'a mut F,
    second: &'a mut S,
    mode: Mode,
    /// The slot each block belongs to; a block two slots name belongs to the first.
    owner: Vec<u32>,
    /// Blocks no slot named when the sync began, lowest last (handed out lowest first).
    free: Vec<u32>,
    /// Whether some slot was [`TRIE`] when the sync began.
    any_on_trie: bool,
    report: SyncReport,
}

impl<'a, F: Words + ?Sized, S: Words + ?Sized> Sync<'a, F, S> {
    fn new(first: &'a mut F, second: &'a mut S, mode: Mode) -> Result<Self, IndexError> {
        let mut owner = std::vec![NO_OWNER; BLOCKS as usize];
        let mut any_on_trie = false;
        for word_index in 0..WORDS {
            let word = first.load(word_index)?;
            if word & INDIRECT_BITS == 0 {
                continue;
            }
            for slot in word_index * 4..word_index * 4 + 4 {
                let value = slot_in(word, slot);
                any_on_trie |= value == TRIE;
                if is_indirect(value) && value != TRIE {
                    let owner = &mut owner[block_of(value) as usize];
                    if *owner == NO_OWNER {
                        *owner = slot;
                    }
                }
            }
        }
        let free = (0..BLOCKS)
            .rev()
            .filter(|block| owner[*block as usize] == NO_OWNER)
            .collect();
        Ok(Sync {
            first,
            second,
            mode,
            owner,
            free,
            any_on_trie,
            report: SyncReport::default(),
        })
    }

    fn run(self, plan: &Plan) -> Result<SyncReport, IndexError> {
        self.run_windows(plan, 0..SLOTS / WINDOW_SLOTS)
    }

    fn run_windows(
        mut self,
        plan: &Plan,
        windows: impl Iterator<Item = u32>,
    ) -> Result<SyncReport, IndexError> {
        let mut slots = std::vec![0u16; WINDOW_SLOTS as usize];
        let mut blocks: Vec<(u32, Block)> = Vec::new();
        for first_slot in windows.map(|window| window * WINDOW_SLOTS) {
            plan.window(first_slot, &mut slots, &mut blocks);
            let mut planned_blocks = blocks.iter();
            for (n, four) in slots.chunks_exact(4).enumerate() {
                let word_index = first_slot / 4 + n as u32;
                let have = self.first.load(word_index)?;
                let planned = four
                    .iter()
                    .rev()
                    .fold(0u64, |w, slot| (w << 16) | u64::from(*slot));
                if planned == have && planned & INDIRECT_BITS == 0 {
                    continue;
                }
                let mut want = have;
                let mut changes = false;
                for (i, planned) in four.iter().enumerate() {
                    let slot = first_slot + (n * 4 + i) as u32;
                    let block = if is_indirect(*planned) {
                        planned_blocks.next().map(|(_, block)| block)
                    } else {
                        None
                    };
                    let (value, slot_changes) =
                        self.settle(slot, slot_in(have, slot), *planned, block)?;
                    want = with_slot(want, slot, value);
                    changes |= slot_changes;
                }
                if changes {
                    if self.mode == Mode::Write {
                        self.first.store(word_index, want)?;
                    }
                    self.report.words_written += 1;
                }
            }
            debug_assert!(
                planned_blocks.next().is_none(),
                "every planned block placed"
            );
        }
        Ok(self.report)
    }

    /// The value `slot` gets (now `current`), writing its block when it needs one, and whether
    /// the slot's value changes (or, in a check, would). A difference in the entries the slot
    /// leads to is counted by kind either way.
    fn settle(
        &mut self,
        slot: u32,
        current: u16,
        planned: u16,
        block: Option<&Block>,
    ) -> Result<(u16, bool), IndexError> {
        let want = block.copied().unwrap_or_else(|| filled(kind_of(planned)));
        let have = self.entries(current)?;
        let kinds = have.map_or(0, |have| kinds_between(&have, &want));
        let (value, changes) = match block {
            None => (planned, current != planned),
            Some(block) => match self.owned(slot, current) {
                Some(number) => {
                    self.rewrite(number, have.as_ref(), block)?;
                    (current, false)
                }
                None if current == TRIE
                    && (self.mode == Mode::CheckOnly || self.free.is_empty()) =>
                {
                    self.report.on_trie += 1;
                    (TRIE, false)
                }
                // Another slot's block, or no block yet: this slot needs one of its own.
                None if self.mode == Mode::CheckOnly => (current, true),
                None => match self.free.pop() {
                    Some(number) => {
                        self.rewrite(number, None, block)?;
                        self.owner[number as usize] = slot;
                        (block_slot(number), true)
                    }
                    None => {
                        self.report.on_trie += 1;
                        (TRIE, true)
                    }
                },
            },
        };
        if changes || kinds != 0 {
            self.report.count(kinds);
        }
        Ok((value, changes))
    }

    /// The block `current` names when it belongs to `slot`.
    fn owned(&self, slot: u32, current: u16) -> Option<u32> {
        (is_indirect(current) && current != TRIE && self.owner[block_of(current) as usize] == slot)
            .then(|| block_of(current))
    }

    /// What a packet finds for each address of a /24 whose slot holds `value` (None: the trie
    /// answers, which is right by construction).
    fn entries(&mut self, value: u16) -> Result<Option<Block>, IndexError> {
        if !is_indirect(value) {
            return Ok(Some(filled(kind_of(value))));
        }
        if value == TRIE {
            return Ok(None);
        }
        let mut block = [0u64; WORDS_PER_BLOCK as usize];
        let base = block_of(value) * WORDS_PER_BLOCK;
        for (n, word) in block.iter_mut().enumerate() {
            *word = self.second.load(base + n as u32)?;
        }
        Ok(Some(block))
    }

    /// Writes the elements of block `number` that differ from `want` (all when `have` is None).
    fn rewrite(
        &mut self,
        number: u32,
        have: Option<&Block>,
        want: &Block,
    ) -> Result<(), IndexError> {
        let base = number * WORDS_PER_BLOCK;
        for (n, word) in want.iter().enumerate() {
            if have.is_some_and(|have| have[n] == *word) {
                continue;
            }
            if self.mode == Mode::Write {
                self.second.store(base + n as u32, *word)?;
            }
            self.report.block_words_written += 1;
        }
        Ok(())
    }
}

/// A block whose every address has `kind`.
fn filled(kind: u32) -> Block {
    [u64::from(kind) * 0x5555_5555_5555_5555; WORDS_PER_BLOCK as usize]
}

/// The kind bits that differ for at least one address between two blocks.
fn kinds_between(a: &Block, b: &Block) -> u32 {
    let mut x = a.iter().zip(b).fold(0, |x, (a, b)| x | (a ^ b));
    for shift in [32, 16, 8, 4, 2] {
        x |= x >> shift;
    }
    (x & 0b11) as u32
}

/// The first-level slot of `addr` (host order) in the index map (for tests and tools).
pub fn slot(index: &MapData, addr: u32) -> Result<u16, IndexError> {
    let slot = crate::index::slot_of(addr);
    let mut first = MappedArray::new(index, names::SOURCE_INDEX_V4, WORDS, WINDOW_WORDS)?;
    Ok(slot_in(first.load(crate::index::word_of(slot))?, slot))
}

fn mapped<'a>(
    index: &'a MapData,
    blocks: &'a MapData,
) -> Result<(MappedArray<'a>, MappedArray<'a>), IndexError> {
    Ok((
        MappedArray::new(index, names::SOURCE_INDEX_V4, WORDS, WINDOW_WORDS)?,
        MappedArray::new(blocks, names::SOURCE_BLOCKS_V4, BLOCK_WORDS, BLOCK_WORDS)?,
    ))
}

/// An mmapable array map of `u64` seen through one shared mapping of `window_words` elements
/// at a time, so the agent's resident memory never holds more than one window of it. Every
/// store is one aligned 8-byte store, which a program reading the element sees whole (a map
/// update by syscall copies the value with `memcpy`, which may not). The host tables
/// (`host_table`) are written through it too.
pub struct MappedArray<'a> {
    data: &'a MapData,
    map: &'static str,
    len: u32,
    window_words: u32,
    window: Option<(u32, Window)>,
}

impl<'a> MappedArray<'a> {
    /// `data`, named `map` in errors, which must have `len` elements of 8 bytes;
    /// `window_words` divides `len`, or equals it to map the whole array at once.
    pub fn new(
        data: &'a MapData,
        map: &'static str,
        len: u32,
        window_words: u32,
    ) -> Result<Self, IndexError> {
        let info = data
            .info()
            .map_err(|source| IndexError::Map { map, source })?;
        if info.max_entries() != len || info.value_size() != 8 {
            return Err(IndexError::Shape {
                map,
                max_entries: info.max_entries(),
                value_size: info.value_size(),
                wanted: len,
            });
        }
        Ok(MappedArray {
            data,
            map,
            len,
            window_words,
            window: None,
        })
    }

    fn at(&mut self, index: u32) -> Result<&AtomicU64, IndexError> {
        if index >= self.len {
            return Err(IndexError::Range {
                map: self.map,
                index,
            });
        }
        let base = index - index % self.window_words;
        if self.window.as_ref().is_none_or(|(b, _)| *b != base) {
            self.window = None;
            self.window = Some((
                base,
                Window::map(self.data, self.map, base, self.window_words)?,
            ));
        }
        let (base, window) = self.window.as_ref().ok_or(IndexError::Range {
            map: self.map,
            index,
        })?;
        Ok(window.atomic((index - base) as usize))
    }
}

impl Words for MappedArray<'_> {
    fn load(&mut self, index: u32) -> Result<u64, IndexError> {
        Ok(self.at(index)?.load(Ordering::Relaxed))
    }

    fn store(&mut self, index: u32, word: u64) -> Result<(), IndexError> {
        self.at(index)?.store(word, Ordering::Release);
        Ok(())
    }
}

/// `len` elements of an array map, from `first_word`, mapped into our memory; unmapped on drop.
struct Window {
    words: *mut u64,
    len: usize,
}

impl Window {
    fn map(
        data: &MapData,
        map: &'static str,
        first_word: u32,
        len: u32,
    ) -> Result<Window, IndexError> {
        let bytes = len as usize * 8;
        let offset = libc::off_t::from(first_word) * 8;
        let fd = data.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of a map we hold open; its size was checked against
        // the array's, which is a multiple of the window.
        let words = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if words == libc::MAP_FAILED {
            return Err(IndexError::Mmap {
                map,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Window {
            words: words.cast(),
            len: len as usize,
        })
    }

    fn atomic(&self, offset: usize) -> &AtomicU64 {
        assert!(offset < self.len, "index window offset {offset}");
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping), and only ever
        // accessed atomically from this side; the kernel reads it with aligned 8-byte loads.
        unsafe { AtomicU64::from_ptr(self.words.add(offset)) }
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`.
        unsafe { libc::munmap(self.words.cast(), self.len * 8) };
    }
}

/// Bits of `allowlist_flags` for a complete index and the given empty lists.
pub fn flags(sources_v6: bool, destinations_v4: bool, destinations_v6: bool) -> u32 {
    use crate::config::allowlist_flags as f;
    let mut flags = f::SOURCES_V4_INDEXED;
    for (present, empty) in [
        (sources_v6, f::SOURCES_V6_EMPTY),
        (destinations_v4, f::DESTINATIONS_V4_EMPTY),
        (destinations_v6, f::DESTINATIONS_V6_EMPTY),
    ] {
        if !present {
            flags |= empty;
        }
    }
    flags
}

#[cfg(test)]
#[path = "index_sync_tests.rs"]
mod tests;
