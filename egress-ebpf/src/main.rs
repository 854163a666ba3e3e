//! The egress dataplane: an XDP program for subscriber-facing ingress and a TC program for
//! uplink egress, thin wrappers over one parser (`egress_common::parse`) and one decision
//! function ([`judge::judge`]); and the `inbound` XDP program for uplink ingress, the same
//! parser with the inbound rules ([`inbound::judge`]).
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// An asm barrier keeps packet bounds checks in a shape the verifier understands.
#![cfg_attr(target_arch = "bpf", feature(asm_experimental_arch))]

#[cfg(target_arch = "bpf")]
mod allowlist;
#[cfg(target_arch = "bpf")]
mod frame;
#[cfg(target_arch = "bpf")]
mod host_table;
#[cfg(target_arch = "bpf")]
mod inbound;
#[cfg(target_arch = "bpf")]
mod judge;
#[cfg(target_arch = "bpf")]
mod maps;
#[cfg(target_arch = "bpf")]
mod subscriber;

#[cfg(target_arch = "bpf")]
mod programs {
    use aya_ebpf::{
        bindings::{TC_ACT_SHOT, xdp_action},
        macros::{classifier, xdp},
        programs::{TcContext, XdpContext},
    };

    use crate::{
        frame::Frame,
        judge::{Action, judge},
    };

    /// tcx: hand the packet to the next program (or the stack) unchanged.
    const TCX_NEXT: i32 = -1;

    #[xdp]
    pub fn egress_xdp(ctx: XdpContext) -> u32 {
        match judge(&Frame::xdp(&ctx)) {
            Action::Pass => xdp_action::XDP_PASS,
            Action::Drop => xdp_action::XDP_DROP,
        }
    }

    /// Uplink ingress: only the spam checkers reach the primary MX (`hook = "xdp-inbound"`).
    #[xdp]
    pub fn egress_inbound(ctx: XdpContext) -> u32 {
        match crate::inbound::judge(&Frame::xdp(&ctx)) {
            Action::Pass => xdp_action::XDP_PASS,
            Action::Drop => xdp_action::XDP_DROP,
        }
    }

    #[classifier]
    pub fn egress_tc(ctx: TcContext) -> i32 {
        match judge(&Frame::tc(&ctx)) {
            Action::Pass => TCX_NEXT,
            Action::Drop => TC_ACT_SHOT,
        }
    }

    #[panic_handler]
    fn panic(_info: &core::panic::PanicInfo) -> ! {
        loop {}
    }
}

#[cfg(target_arch = "bpf")]
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";

#[cfg(not(target_arch = "bpf"))]
fn main() {}
