//! Run-time settings the dataplane reads from the single-entry config map.

/// What happens to an SMTP-bound packet that no allowlist admits.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Enforce = 0,
    Monitor = 1,
}

/// The value of the one entry in the config array map.
///
/// All zeros is a safe state: enforce mode, detection disabled.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DataplaneConfig {
    /// `Mode` as u32.
    pub mode: u32,
    /// Length IPv6 subscribers are aggregated to (for display; the mask below does the work).
    pub ipv6_prefix_len: u32,
    /// Mask applied to an IPv6 source to form its subscriber key.
    pub ipv6_mask: [u8; 16],
    /// Detection window in nanoseconds.
    pub window_ns: u64,
    /// Blocked SYNs within the window that flag a subscriber; 0 disables.
    pub attempts_threshold: u64,
    /// Bits set in the window's destination bitmap that flag a subscriber; 0 disables.
    pub destination_bits_threshold: u64,
    /// `allowlist_flags` bits: which lookups the dataplane may take a shortcut for.
    pub allowlist_flags: u32,
    /// Keeps the size a multiple of 8 on both sides; always 0.
    pub reserved: u32,
}

const _: () = assert!(core::mem::offset_of!(DataplaneConfig, ipv6_mask) % 8 == 0);

impl DataplaneConfig {
    /// `ipv6_mask` as two native-endian words, to mask `SmtpPacket::source_words`.
    #[inline(always)]
    pub fn ipv6_mask_words(&self) -> [u64; 2] {
        // SAFETY: 16 initialised bytes at an 8-aligned offset of a struct aligned for its u64s.
        unsafe {
            core::ptr::addr_of!(self.ipv6_mask)
                .cast::<[u64; 2]>()
                .read()
        }
    }
}

/// Bits of `DataplaneConfig::allowlist_flags`. Each one lets the dataplane skip work, so 0 (the
/// state of a new config map) is always correct, only slower: the agent sets a bit once the
/// shortcut is valid and clears it before the shortcut would become wrong.
pub mod allowlist_flags {
    /// Earlier versions' flag for their one-level index. Cleared before the index is rewritten
    /// in the two-level layout, so a program of such a version, still attached during an
    /// upgrade, falls back to the trie rather than misreading it.
    pub const SOURCES_V4_ONE_LEVEL_INDEXED: u32 = 1;
    /// The IPv4 source index (two levels) is complete: look sources up there, not in the trie.
    pub const SOURCES_V4_INDEXED: u32 = 16;
    /// The IPv6 source trie is empty.
    pub const SOURCES_V6_EMPTY: u32 = 2;
    /// The IPv4 destination trie is empty.
    pub const DESTINATIONS_V4_EMPTY: u32 = 4;
    /// The IPv6 destination trie is empty.
    pub const DESTINATIONS_V6_EMPTY: u32 = 8;
    /// The IPv6 source filter (`source_filter`) is complete: a source whose /48 bit is clear
    /// is in no source prefix.
    pub const SOURCES_V6_FILTERED: u32 = 32;
}

impl DataplaneConfig {
    pub const fn monitor(&self) -> bool {
        self.mode == Mode::Monitor as u32
    }
}

/// The IPv6 subscriber mask for a prefix length (0..=128).
pub const fn ipv6_mask(prefix_len: u32) -> [u8; 16] {
    let mut mask = [0u8; 16];
    let mut i = 0;
    while i < 16 {
        let bits = prefix_len as i64 - (i as i64) * 8;
        mask[i] = if bits >= 8 {
            0xff
        } else if bits <= 0 {
            0
        } else {
            0xffu8 << (8 - bits)
        };
        i += 1;
    }
    mask
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for DataplaneConfig {}
