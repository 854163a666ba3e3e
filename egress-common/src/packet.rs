//! Bounds-checked access to frame bytes, implemented by each program context and by byte slices.

/// Parsing never reads past this offset. It keeps every offset provably bounded for the
/// verifier; a header chain reaching past it is "too long to walk".
pub const MAX_PARSE_OFFSET: usize = 1024;

pub trait Packet {
    /// Reads a `T` (a plain byte array) at `offset`, or `None` past the end of the frame or past
    /// [`MAX_PARSE_OFFSET`].
    fn read<T: Copy>(&self, offset: usize) -> Option<T>;

    /// The first `N` bytes of the frame after one bounds check, or `None` if it is shorter: the
    /// fast path reads every field of a common frame from them. On eBPF the bytes start at an even
    /// address, so a 16-bit field at an even offset can be read with one load.
    fn head<const N: usize>(&self) -> Option<&[u8; N]>;

    /// Frame length in bytes as seen by the parser.
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Returns `offset` unchanged. The eBPF frame hides the value from the verifier and keeps
    /// only its bounds, so the link-layer paths (each VLAN and PPPoE variant ends at another
    /// constant offset) reach the network layer as one verifier state instead of a dozen, each
    /// of which it would otherwise walk through the whole IP parser again.
    #[inline(always)]
    fn merge_offset(&self, offset: usize) -> usize {
        offset
    }

    #[inline(always)]
    fn u8_at(&self, offset: usize) -> Option<u8> {
        self.read::<[u8; 1]>(offset).map(|b| b[0])
    }

    #[inline(always)]
    fn u16_at(&self, offset: usize) -> Option<u16> {
        self.read::<[u8; 2]>(offset).map(u16::from_be_bytes)
    }
}

impl Packet for [u8] {
    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        let size = core::mem::size_of::<T>();
        if offset > MAX_PARSE_OFFSET || offset.checked_add(size)? > <[u8]>::len(self) {
            return None;
        }
        // SAFETY: bounds checked above; T is a plain byte array read unaligned.
        Some(unsafe { self.as_ptr().add(offset).cast::<T>().read_unaligned() })
    }

    #[inline(always)]
    fn head<const N: usize>(&self) -> Option<&[u8; N]> {
        self.get(..N)?.try_into().ok()
    }

    fn len(&self) -> usize {
        <[u8]>::len(self)
    }
}
