//! A frame generator that feeds the receiving veth the way a NIC feeds native XDP: xdp_frames
//! with headroom, no skb. It is what `xdp-trafficgen` does (an XDP program run through
//! `BPF_PROG_TEST_RUN` in live-frames mode, redirecting every frame to an interface), but
//! `xdp-trafficgen` can only send UDP from one source or open real TCP connections; this one
//! sends TCP SYNs to port 25 from 65,536 sources.
//!
//! The program writes a random 16-bit value `x` into the low half of the source address and
//! `!x` into the IP ID and the TCP source port. Both checksums stay valid without being
//! recomputed: each sum gains `x + !x = 0xffff`, which is zero in ones' complement, so the
//! template's checksums (computed with `x = 0`, ID and port `0xffff`) hold for every `x`.

use std::{
    net::Ipv4Addr,
    os::fd::{AsFd, OwnedFd},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};

use super::{
    asm::{
        ADD64_IMM, AND64_IMM, CALL, EXIT, HELPER_GET_PRANDOM_U32, HELPER_REDIRECT, JGT_REG, LDX_W,
        MOV64_IMM, MOV64_REG, STX_H, TO_BE, XOR64_IMM, insn,
    },
    bpf_sys,
    frames::{self, L4},
};

/// Offsets in the Ethernet + IPv4 (IHL 5) + TCP template.
const IP_ID: i16 = 14 + 4;
const SOURCE_LOW_HALF: i16 = 14 + 14;
const TCP_SOURCE_PORT: i16 = 14 + 20;
const TEMPLATE_MIN_LEN: i32 = 54;

/// The generator program: vary the source, redirect to `ifindex`.
fn program(ifindex: u32) -> Vec<u64> {
    vec![
        insn(MOV64_REG, 6, 1, 0, 0), // r6 = ctx
        insn(CALL, 0, 0, 0, HELPER_GET_PRANDOM_U32),
        insn(MOV64_REG, 7, 0, 0, 0),
        insn(AND64_IMM, 7, 0, 0, 0xffff), // r7 = x
        insn(LDX_W, 2, 6, 0, 0),          // r2 = data
        insn(LDX_W, 3, 6, 4, 0),          // r3 = data_end
        insn(MOV64_REG, 4, 2, 0, 0),
        insn(ADD64_IMM, 4, 0, 0, TEMPLATE_MIN_LEN),
        insn(JGT_REG, 4, 3, 12, 0), // too short: to the drop at the end
        insn(MOV64_REG, 8, 7, 0, 0),
        insn(TO_BE, 8, 0, 0, 16),
        insn(STX_H, 2, 8, SOURCE_LOW_HALF, 0),
        insn(MOV64_REG, 9, 7, 0, 0),
        insn(XOR64_IMM, 9, 0, 0, 0xffff),
        insn(TO_BE, 9, 0, 0, 16),
        insn(STX_H, 2, 9, IP_ID, 0),
        insn(STX_H, 2, 9, TCP_SOURCE_PORT, 0),
        insn(MOV64_IMM, 1, 0, 0, ifindex as i32),
        insn(MOV64_IMM, 2, 0, 0, 0),
        insn(CALL, 0, 0, 0, HELPER_REDIRECT),
        insn(EXIT, 0, 0, 0, 0),
        insn(MOV64_IMM, 0, 0, 0, 1), // XDP_DROP
        insn(EXIT, 0, 0, 0, 0),
    ]
}

/// The template: a SYN to port 25 from 100.112.0.0 (a subscriber, never exempt) with the
/// fields the program varies set to their `x = 0` values, checksums computed over them.
fn template() -> Vec<u8> {
    let source = Ipv4Addr::from(frames::SUBSCRIBER_V4_BASE);
    let mut frame = frames::ipv4(
        source,
        frames::destination_v4(0),
        L4::TcpSyn { dst_port: 25 },
    );
    frame[IP_ID as usize..IP_ID as usize + 2].copy_from_slice(&[0xff, 0xff]);
    frame[TCP_SOURCE_PORT as usize..TCP_SOURCE_PORT as usize + 2].copy_from_slice(&[0xff, 0xff]);
    frames::fix_checksums_v4(&mut frame);
    frame
}

/// A loaded generator for one interface (in the namespace it will run in).
pub struct Generator {
    program: OwnedFd,
    template: Vec<u8>,
}

impl Generator {
    pub fn new(ifindex: u32) -> Result<Generator> {
        Ok(Generator {
            program: bpf_sys::load_xdp("egb_gen", &program(ifindex))?,
            template: template(),
        })
    }

    /// Sends until `duration` or `budget` frames, whichever comes first (call it on a thread
    /// inside the sender namespace). Returns the frames handed to the interface.
    pub fn send(&self, duration: Duration, budget: u64) -> Result<u64> {
        const CHUNK: u32 = 1 << 18;
        let until = Instant::now() + duration;
        let mut sent = 0u64;
        while sent < budget && Instant::now() < until {
            let repeat = CHUNK.min((budget - sent).min(u64::from(u32::MAX)) as u32);
            bpf_sys::test_run_live(self.program.as_fd(), &self.template, repeat, 64)?;
            sent += u64::from(repeat);
        }
        if sent == 0 {
            bail!("the frame generator sent nothing (zero duration or budget)");
        }
        Ok(sent)
    }
}
