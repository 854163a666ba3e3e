//! Direct packet access for both program types, behind the parser's [`Packet`] trait.

use aya_ebpf::programs::{TcContext, XdpContext};
use egress_common::packet::{MAX_PARSE_OFFSET, Packet};

/// Headers we may need, pulled into the linear area of a non-linear skb.
const TC_PULL_LEN: u32 = (MAX_PARSE_OFFSET + 64) as u32;

pub struct Frame {
    start: usize,
    end: usize,
    /// Whole frame length; for an skb it may exceed the linear bytes between `start` and `end`.
    len: usize,
}

impl Frame {
    #[inline(always)]
    pub fn xdp(ctx: &XdpContext) -> Self {
        let (start, end) = (ctx.data(), ctx.data_end());
        Frame {
            start,
            end,
            len: end - start,
        }
    }

    #[inline(always)]
    pub fn tc(ctx: &TcContext) -> Self {
        let len = ctx.len();
        let wanted = if len < TC_PULL_LEN { len } else { TC_PULL_LEN };
        if ctx.data_end() - ctx.data() < wanted as usize {
            // Best effort: on failure the parser sees fewer bytes and treats a TCP header it
            // cannot read as suspect, which fails closed.
            let _ = ctx.pull_data(wanted);
        }
        Frame {
            start: ctx.data(),
            end: ctx.data_end(),
            len: len as usize,
        }
    }
}

/// Always zero. It lives in `.bss`, a writable map, so the verifier cannot know its value: see
/// [`Packet::merge_offset`].
#[unsafe(no_mangle)]
static mut EGRESS_OPAQUE_ZERO: usize = 0;

impl Packet for Frame {
    #[inline(always)]
    fn merge_offset(&self, offset: usize) -> usize {
        // SAFETY: a plain read of a word nothing writes.
        let zero = unsafe { core::ptr::read_volatile(core::ptr::addr_of!(EGRESS_OPAQUE_ZERO)) };
        let mut merged = offset.wrapping_add(zero);
        // SAFETY: a register move onto itself; keeps LLVM from dropping the bound below.
        unsafe { core::arch::asm!("{0} = {0}", inout(reg) merged) };
        // Bounds the value for the verifier; reads past the limit fail anyway.
        if merged > MAX_PARSE_OFFSET {
            MAX_PARSE_OFFSET + 1
        } else {
            merged
        }
    }

    #[inline(always)]
    fn read<T: Copy>(&self, offset: usize) -> Option<T> {
        if offset > MAX_PARSE_OFFSET {
            return None;
        }
        let at = self.start + offset;
        let mut last = at + core::mem::size_of::<T>();
        // Hide `last` from the optimiser: it would otherwise rewrite `at + 1 > end` as
        // `end > at`, a form the verifier draws no packet range from.
        // SAFETY: a register move onto itself.
        unsafe { core::arch::asm!("{0} = {0}", inout(reg) last) };
        if last > self.end {
            return None;
        }
        // SAFETY: the verifier-visible check above keeps the read inside the packet.
        Some(unsafe { (at as *const T).read_unaligned() })
    }

    #[inline(always)]
    fn head<const N: usize>(&self) -> Option<&[u8; N]> {
        let mut last = self.start + N;
        // SAFETY: a register move onto itself; see `read`.
        unsafe { core::arch::asm!("{0} = {0}", inout(reg) last) };
        if last > self.end {
            return None;
        }
        // SAFETY: the verifier-visible check above keeps every byte of the array in the packet.
        // The packet pointer is never null, and the assumption that it is even only lets LLVM
        // read a 16-bit field at an even offset with one load instead of two byte loads and a
        // shift: the JITs of the architectures we run on (x86-64, arm64) permit unaligned packet
        // loads, and the verifier checks alignment only where it assumes a 2-aligned IP header.
        unsafe {
            core::hint::assert_unchecked(self.start != 0 && self.start % 2 == 0);
            Some(&*(self.start as *const [u8; N]))
        }
    }

    #[inline(always)]
    fn len(&self) -> usize {
        self.len
    }
}
