//! The blocked destination-port set: a 65,536-bit bitmap, so membership is one load and a shift
//! whatever the number of ports.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSet {
    pub words: [u64; 1024],
}

impl PortSet {
    pub const EMPTY: PortSet = PortSet { words: [0; 1024] };
    /// The spec's default: TCP/25 only.
    pub const DEFAULT: PortSet = PortSet::EMPTY.with(25);

    #[must_use]
    pub const fn with(mut self, port: u16) -> Self {
        self.words[(port >> 6) as usize] |= 1 << (port & 63);
        self
    }

    #[inline(always)]
    pub const fn contains(&self, port: u16) -> bool {
        (self.words[(port >> 6) as usize] >> (port & 63)) & 1 == 1
    }
}

/// Answers "is this TCP destination port blocked?" for the parser. The eBPF side implements it
/// over a read-only global; the host over a [`PortSet`].
pub trait BlockedPorts {
    fn is_blocked(&self, port: u16) -> bool;
}

impl BlockedPorts for PortSet {
    #[inline(always)]
    fn is_blocked(&self, port: u16) -> bool {
        self.contains(port)
    }
}

#[cfg(feature = "user")]
unsafe impl aya::Pod for PortSet {}
