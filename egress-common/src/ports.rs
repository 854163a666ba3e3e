//! The blocked destination-port set: a 65,536-bit bitmap, so membership is one load and a shift
//! whatever the number of ports, and the lowest and highest port in it, so the dataplane turns
//! away the ports outside that range (with the default set, every port but 25) with two
//! compares and no bitmap load.

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSet {
    pub words: [u64; 1024],
    /// The lowest port in the set (`u16::MAX` and `highest` 0 when empty).
    pub lowest: u16,
    pub highest: u16,
    pub _pad: u32,
}

impl PortSet {
    pub const EMPTY: PortSet = PortSet {
        words: [0; 1024],
        lowest: u16::MAX,
        highest: 0,
        _pad: 0,
    };
    /// The spec's default: TCP/25 only.
    pub const DEFAULT: PortSet = PortSet::EMPTY.with(25);

    #[must_use]
    pub const fn with(mut self, port: u16) -> Self {
        self.words[(port >> 6) as usize] |= 1 << (port & 63);
        if port < self.lowest {
            self.lowest = port;
        }
        if port > self.highest {
            self.highest = port;
        }
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

#[cfg(test)]
mod tests {
    use super::PortSet;

    #[test]
    fn bounds_are_the_lowest_and_highest_member() {
        const { assert!(PortSet::EMPTY.lowest > PortSet::EMPTY.highest) };
        let default = PortSet::DEFAULT;
        assert_eq!((default.lowest, default.highest), (25, 25));
        let set = [587u16, 25, 465, 2525]
            .iter()
            .fold(PortSet::EMPTY, |s, &p| s.with(p));
        assert_eq!((set.lowest, set.highest), (25, 2525));
        let edges = PortSet::EMPTY.with(0).with(u16::MAX);
        assert_eq!((edges.lowest, edges.highest), (0, u16::MAX));
        for port in [0, 1, 24, 25, 26, 465, 587, 2524, 2525, 2526, u16::MAX] {
            let in_range = set.lowest <= port && port <= set.highest;
            assert!(
                in_range || !set.contains(port),
                "{port} is blocked outside the bounds"
            );
        }
    }
}
