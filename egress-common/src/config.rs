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
