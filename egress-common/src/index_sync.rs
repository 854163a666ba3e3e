//! Bringing the kernel's IPv4 source index in line with a [`Plan`] (user space only).
//!
//! The order keeps every packet's verdict right while the index changes: long entries to add
//! or change go in first (invisible until a slot's length bitmap names their length), then
//! the slots are rewritten word by word through a shared mapping of the array (one aligned
//! 8-byte store each, so a packet sees the old or the new word), then long entries no longer
//! wanted are deleted (no slot names their length for them any more, or a longer or equal
//! entry still answers). An address allowed before and after finds a non-zero kind at every
//! step; one allowed neither before nor after finds none. Between the steps the kind of an
//! allowed address may be the old or the new one (relay or exempt counter), never zero.

extern crate std;

use std::{
    borrow::BorrowMut,
    collections::HashMap as StdHashMap,
    os::fd::{AsFd, AsRawFd},
    sync::atomic::{AtomicU64, Ordering},
    vec::Vec,
};

use aya::maps::{HashMap, IterableMap, MapData, MapError};

use crate::{
    allow_kind,
    index::{LongKey, SLOTS_PER_WORD, WORDS, kind_of, lengths_of, slot_in},
    index_plan::{Plan, WINDOW_WORDS},
    names,
};

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("map {map}: {source}")]
    Map { map: &'static str, source: MapError },
    #[error(
        "map {map} has {max_entries} elements of {value_size} bytes; the index needs 4194304 of 8"
    )]
    Shape {
        map: &'static str,
        max_entries: u32,
        value_size: u32,
    },
    #[error("cannot map {map} into memory (is it BPF_F_MMAPABLE?): {source}")]
    Mmap {
        map: &'static str,
        source: std::io::Error,
    },
}

/// What a sync changed. In a sync right after a change of the allowlist these are the
/// change's own effects; in a drift check they are what someone else changed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub words_written: u64,
    pub long_written: u64,
    pub long_removed: u64,
    /// Differences found, by the kind they affected.
    pub relay: u64,
    pub exempt: u64,
}

impl SyncReport {
    pub fn changed(&self) -> bool {
        self.words_written + self.long_written + self.long_removed > 0
    }

    fn count(&mut self, kinds: u32) {
        if kinds & allow_kind::RELAY != 0 {
            self.relay += 1;
        }
        // A difference that names no kind (a stray length bit) is counted as exempt.
        if kinds & allow_kind::EXEMPT != 0 || kinds & (allow_kind::RELAY | allow_kind::EXEMPT) == 0
        {
            self.exempt += 1;
        }
    }
}

/// The long-prefix hash map of the index.
pub type LongMap<T> = HashMap<T, LongKey, u32>;

/// Makes `index` (the mmapable array) and `long` hold exactly what `plan` says.
pub fn sync<T: BorrowMut<MapData>>(
    index: &MapData,
    long: &mut LongMap<T>,
    plan: &Plan,
) -> Result<SyncReport, IndexError> {
    compare(index, long, plan, Mode::Write)
}

/// What [`sync`] would change, without changing anything: a drift check that can run beside
/// the daemon, which repairs only when this finds something.
pub fn check<T: BorrowMut<MapData>>(
    index: &MapData,
    long: &mut LongMap<T>,
    plan: &Plan,
) -> Result<SyncReport, IndexError> {
    compare(index, long, plan, Mode::CheckOnly)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    CheckOnly,
}

fn compare<T: BorrowMut<MapData>>(
    index: &MapData,
    long: &mut LongMap<T>,
    plan: &Plan,
    mode: Mode,
) -> Result<SyncReport, IndexError> {
    check_shape(index)?;
    let long_err = |source| IndexError::Map {
        map: names::SOURCE_LONG_V4,
        source,
    };
    let mut current: StdHashMap<LongKey, u32> = StdHashMap::new();
    let batched = crate::batch::lookup_all(long.map().fd().as_fd(), |key: &LongKey, value| {
        current.insert(*key, *value);
    });
    match batched {
        Ok(_) => {}
        Err(err) if crate::batch::unsupported(&err) => {
            current.clear();
            for item in long.iter() {
                let (key, value) = item.map_err(long_err)?;
                current.insert(key, value);
            }
        }
        Err(io_error) => {
            return Err(long_err(MapError::SyscallError(aya::sys::SyscallError {
                call: "bpf_map_lookup_batch",
                io_error,
            })));
        }
    }
    let mut report = SyncReport::default();
    let in_map = current.len();
    let changed: Vec<(LongKey, u32, Option<u32>)> = plan
        .long_entries()
        .iter()
        .filter_map(|(key, kind)| {
            let have = current.remove(key);
            (have != Some(*kind)).then_some((*key, *kind, have))
        })
        .collect();
    // What is left in `current` is no longer wanted. Adding first needs room for both; when
    // the map is that full, the entries on their way out go first (they only ever narrow
    // what passes), as the tries do.
    if mode == Mode::CheckOnly {
        return check_only(index, plan, &changed, &current);
    }
    let added = changed.iter().filter(|(_, _, have)| have.is_none()).count();
    let capacity = long.map().info().map_err(long_err)?.max_entries() as usize;
    let remove_first = in_map + added > capacity;
    if remove_first {
        remove_stale(long, &current, &mut report)?;
    }
    let keys: Vec<LongKey> = changed.iter().map(|(key, _, _)| *key).collect();
    let kinds: Vec<u32> = changed.iter().map(|(_, kind, _)| *kind).collect();
    let written = crate::batch::update(long.map().fd().as_fd(), &keys, &kinds);
    let applied = written
        .as_ref()
        .map_or_else(|err| err.applied, |()| changed.len());
    for (_, kind, have) in &changed[..applied] {
        report.long_written += 1;
        report.count(have.unwrap_or(0) ^ kind);
    }
    if let Err(err) = written {
        return Err(long_err(MapError::SyscallError(aya::sys::SyscallError {
            call: "bpf_map_update_batch",
            io_error: err.source,
        })));
    }
    compare_words(index, plan, Mode::Write, &mut report)?;
    if !remove_first {
        remove_stale(long, &current, &mut report)?;
    }
    Ok(report)
}

/// Counts what a sync would write and remove: `changed` long entries, the `stale` ones, and
/// every word of the array that differs from the plan.
fn check_only(
    index: &MapData,
    plan: &Plan,
    changed: &[(LongKey, u32, Option<u32>)],
    stale: &StdHashMap<LongKey, u32>,
) -> Result<SyncReport, IndexError> {
    let mut report = SyncReport::default();
    for (_, kind, have) in changed {
        report.long_written += 1;
        report.count(have.unwrap_or(0) ^ kind);
    }
    for value in stale.values() {
        report.long_removed += 1;
        report.count(*value);
    }
    compare_words(index, plan, Mode::CheckOnly, &mut report)?;
    Ok(report)
}

/// Compares the array with the plan one window at a time, counting every word that differs
/// and, with [`Mode::Write`], writing the planned word in its place.
fn compare_words(
    index: &MapData,
    plan: &Plan,
    mode: Mode,
    report: &mut SyncReport,
) -> Result<(), IndexError> {
    let mut expected = std::vec![0u64; WINDOW_WORDS as usize];
    for first_word in (0..WORDS).step_by(WINDOW_WORDS as usize) {
        plan.words(first_word, &mut expected);
        let window = Window::map(index, first_word)?;
        if window.words() == expected.as_slice() {
            continue;
        }
        for (offset, want) in expected.iter().enumerate() {
            let have = window.load(offset);
            if have != *want {
                let first_slot = (first_word + offset as u32) * SLOTS_PER_WORD;
                count_slots(report, plan, first_slot, have, *want);
                if mode == Mode::Write {
                    window.store(offset, *want);
                }
                report.words_written += 1;
            }
        }
    }
    Ok(())
}

fn remove_stale<T: BorrowMut<MapData>>(
    long: &mut LongMap<T>,
    stale: &StdHashMap<LongKey, u32>,
    report: &mut SyncReport,
) -> Result<(), IndexError> {
    for (key, value) in stale {
        long.remove(key).map_err(|source| IndexError::Map {
            map: names::SOURCE_LONG_V4,
            source,
        })?;
        report.long_removed += 1;
        report.count(*value);
    }
    Ok(())
}

fn count_slots(report: &mut SyncReport, plan: &Plan, first_slot: u32, have: u64, want: u64) {
    for slot in first_slot..first_slot + SLOTS_PER_WORD {
        let (h, w) = (slot_in(have, slot), slot_in(want, slot));
        if h == w {
            continue;
        }
        let mut kinds = kind_of(h) ^ kind_of(w);
        if lengths_of(h) != lengths_of(w) {
            kinds |= plan.long_kinds_in(slot);
        }
        report.count(kinds);
    }
}

fn check_shape(index: &MapData) -> Result<(), IndexError> {
    let map = names::SOURCE_INDEX_V4;
    let info = index
        .info()
        .map_err(|source| IndexError::Map { map, source })?;
    if info.max_entries() != WORDS || info.value_size() != 8 {
        return Err(IndexError::Shape {
            map,
            max_entries: info.max_entries(),
            value_size: info.value_size(),
        });
    }
    Ok(())
}

/// `WINDOW_WORDS` elements of the index array mapped into our memory; unmapped on drop, so
/// the agent's resident memory never holds more than one window of the 32 MiB array.
struct Window {
    words: *mut u64,
    len: usize,
}

impl Window {
    fn map(index: &MapData, first_word: u32) -> Result<Window, IndexError> {
        let len = WINDOW_WORDS as usize * 8;
        let offset = libc::off_t::from(first_word) * 8;
        let fd = index.fd().as_fd().as_raw_fd();
        // SAFETY: a fresh shared mapping of a map we hold open; its size was checked against
        // the window and the array's length is a multiple of the window.
        let words = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if words == libc::MAP_FAILED {
            return Err(IndexError::Mmap {
                map: names::SOURCE_INDEX_V4,
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(Window {
            words: words.cast(),
            len,
        })
    }

    fn atomic(&self, offset: usize) -> &AtomicU64 {
        assert!(offset < self.len / 8, "index window offset {offset}");
        // SAFETY: in bounds (checked), 8-byte aligned (page-aligned mapping), and only ever
        // accessed atomically from this side; the kernel reads it with aligned 8-byte loads.
        unsafe { AtomicU64::from_ptr(self.words.add(offset)) }
    }

    /// The whole window, for a quick comparison. Only this process writes the array (the
    /// dataplane reads it), and a word changed by someone else during the comparison is
    /// caught word by word afterwards or by the next check.
    fn words(&self) -> &[u64] {
        // SAFETY: the mapping is `len` bytes, 8-byte aligned, and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.words, self.len / 8) }
    }

    fn load(&self, offset: usize) -> u64 {
        self.atomic(offset).load(Ordering::Relaxed)
    }

    fn store(&self, offset: usize, word: u64) {
        self.atomic(offset).store(word, Ordering::Release);
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the mapping created in `map`.
        unsafe { libc::munmap(self.words.cast(), self.len) };
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

/// Reads every word of the index (for tests and tools): one window at a time.
pub fn read_words(index: &MapData, first_word: u32, count: u32) -> Result<Vec<u64>, IndexError> {
    check_shape(index)?;
    let count = count.min(WORDS.saturating_sub(first_word));
    let mut out = Vec::with_capacity(count as usize);
    let mut word = first_word;
    while word < first_word + count {
        let base = word - word % WINDOW_WORDS;
        let window = Window::map(index, base)?;
        let end = (first_word + count).min(base + WINDOW_WORDS);
        out.extend((word..end).map(|w| window.load((w - base) as usize)));
        word = end;
    }
    Ok(out)
}
