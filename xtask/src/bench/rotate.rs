//! The spec's method with varied sources: `BPF_PROG_TEST_RUN` with repeat >= 10^6, where every
//! execution meets a different subscriber.
//!
//! A test run reuses one buffer, so a tiny "rotator" program runs first in every execution: it
//! copies one of the case's frames (chosen at random from a power-of-two set kept in an array
//! map) over the packet and tail-calls the program under test. The baseline is the same
//! rotator tail-calling the empty program, so the copy, the random draw and the tail call are
//! subtracted with the rest of the harness.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context as _, Result, bail, ensure};

use super::{
    asm::{
        ADD64_IMM, AND64_IMM, CALL, EXIT, HELPER_GET_PRANDOM_U32, HELPER_MAP_LOOKUP_ELEM,
        HELPER_TAIL_CALL, JEQ_IMM, JGT_REG, LDX_DW, LDX_H, LDX_W, MOV64_IMM, MOV64_REG, STX_DW,
        STX_H, STX_W, insn, load_map_fd,
    },
    bpf_sys::{self, Flavor},
    measure::Stats,
};

const XDP_ABORTED: i32 = 0;

/// Tail-call slots: the program under test and the empty baseline.
const SLOT_PROGRAM: i32 = 0;
const SLOT_EMPTY: i32 = 1;

/// Copy a random frame of `frames` (`count` of `len` bytes) over the packet, tail-call `slot`.
/// Falls through to XDP_ABORTED if anything fails, which the caller's verdict check catches.
fn rotator(
    frames: BorrowedFd<'_>,
    count: u32,
    len: usize,
    programs: BorrowedFd<'_>,
    slot: i32,
) -> Vec<u64> {
    let mut copy = Vec::new();
    let mut offset = 0i16;
    while (offset as usize) + 8 <= len {
        copy.push(insn(LDX_DW, 5, 0, offset, 0));
        copy.push(insn(STX_DW, 2, 5, offset, 0));
        offset += 8;
    }
    while (offset as usize) + 2 <= len {
        copy.push(insn(LDX_H, 5, 0, offset, 0));
        copy.push(insn(STX_H, 2, 5, offset, 0));
        offset += 2;
    }
    // Jump offsets count instructions after the jump: the tail call takes 5 (r1 = ctx, the
    // two-slot map load, r3 = slot, call) and the bounds check 5 more before the copy.
    let over_copy_and_tail_call = copy.len() as i16 + 5;
    let mut insns = vec![
        insn(MOV64_REG, 6, 1, 0, 0), // r6 = ctx
        insn(CALL, 0, 0, 0, HELPER_GET_PRANDOM_U32),
        insn(AND64_IMM, 0, 0, 0, (count - 1) as i32),
        insn(STX_W, 10, 0, -4, 0), // key on the stack
    ];
    insns.extend(load_map_fd(1, frames));
    insns.extend([
        insn(MOV64_REG, 2, 10, 0, 0),
        insn(ADD64_IMM, 2, 0, 0, -4),
        insn(CALL, 0, 0, 0, HELPER_MAP_LOOKUP_ELEM),
        insn(JEQ_IMM, 0, 0, over_copy_and_tail_call + 5, 0),
        insn(LDX_W, 2, 6, 0, 0), // data
        insn(LDX_W, 3, 6, 4, 0), // data_end
        insn(MOV64_REG, 4, 2, 0, 0),
        insn(ADD64_IMM, 4, 0, 0, len as i32),
        insn(JGT_REG, 4, 3, over_copy_and_tail_call, 0),
    ]);
    insns.extend(copy);
    insns.push(insn(MOV64_REG, 1, 6, 0, 0));
    insns.extend(load_map_fd(2, programs));
    insns.extend([
        insn(MOV64_IMM, 3, 0, 0, slot),
        insn(CALL, 0, 0, 0, HELPER_TAIL_CALL),
        insn(MOV64_IMM, 0, 0, 0, XDP_ABORTED),
        insn(EXIT, 0, 0, 0, 0),
    ]);
    insns
}

/// A program under test and the empty baseline, each behind a rotator over one case's frames.
pub struct Rotated {
    _baseline: OwnedFd,
    _frames: OwnedFd,
    _programs: OwnedFd,
    program: OwnedFd,
    empty: OwnedFd,
    first_frame: Vec<u8>,
}

impl Rotated {
    /// `frames` must be a power of two in number (at least 2) and all of one length. The
    /// empty baseline is loaded here, in whichever flavor the kernel lets share the tail-call
    /// map with `program`.
    pub fn new(program: BorrowedFd<'_>, frames: &[Vec<u8>]) -> Result<Rotated> {
        let count = frames.len();
        ensure!(
            count >= 2 && count.is_power_of_two() && count <= 1 << 20,
            "the rotator needs a power-of-two number of frames, got {count}"
        );
        let len = frames[0].len();
        if let Some(odd) = frames.iter().position(|f| f.len() != len) {
            bail!(
                "frame {odd} is {} bytes, frame 0 is {len}",
                frames[odd].len()
            );
        }
        let value_size = len.div_ceil(8) * 8;
        let frame_map =
            bpf_sys::create_map(bpf_sys::MAP_TYPE_ARRAY, 4, value_size as u32, count as u32)?;
        let mut value = vec![0u8; value_size];
        for (index, frame) in frames.iter().enumerate() {
            value[..len].copy_from_slice(frame);
            bpf_sys::update_elem(frame_map.as_fd(), &(index as u32).to_ne_bytes(), &value)?;
        }
        let (programs, empty, flavor) = tail_call_map(program)?;
        let load = |name: &str, slot: i32| {
            bpf_sys::load_xdp_as(
                name,
                &rotator(frame_map.as_fd(), count as u32, len, programs.as_fd(), slot),
                flavor,
            )
        };
        Ok(Rotated {
            program: load("egb_rot_prog", SLOT_PROGRAM)?,
            empty: load("egb_rot_empty", SLOT_EMPTY)?,
            _baseline: empty,
            _frames: frame_map,
            _programs: programs,
            first_frame: frames[0].clone(),
        })
    }

    /// Per run: ns above the empty program, `repeat` executions of each; every run's last
    /// verdict must be `expected`.
    pub fn measure(&self, case: &str, runs: usize, repeat: u32, expected: u32) -> Result<Stats> {
        let mut above = Vec::with_capacity(runs);
        for _ in 0..runs {
            let result = bpf_sys::test_run(self.program.as_fd(), &self.first_frame, repeat)?;
            let reference = bpf_sys::test_run(self.empty.as_fd(), &self.first_frame, repeat)?;
            for (what, retval, want) in [
                ("program", result.retval, expected),
                ("empty program", reference.retval, 2),
            ] {
                ensure!(
                    retval == want,
                    "{case}: the rotated {what} returned {retval} instead of {want} (0 = the rotator could not run it)"
                );
            }
            above.push(f64::from(result.ns_per_run) - f64::from(reference.ns_per_run));
        }
        Ok(Stats::of(above))
    }
}

/// A two-slot tail-call map holding `program` and an empty program of the same flavor.
fn tail_call_map(program: BorrowedFd<'_>) -> Result<(OwnedFd, OwnedFd, Flavor)> {
    let mut refused = Vec::new();
    for flavor in Flavor::XDP_ALL {
        let programs = bpf_sys::create_map(bpf_sys::MAP_TYPE_PROG_ARRAY, 4, 4, 2)?;
        bpf_sys::update_elem(
            programs.as_fd(),
            &(SLOT_PROGRAM as u32).to_ne_bytes(),
            &(program.as_raw_fd() as u32).to_ne_bytes(),
        )
        .context("putting the program under test into the rotator's tail-call map")?;
        let empty = bpf_sys::load_empty_xdp_as(flavor)?;
        match bpf_sys::update_elem(
            programs.as_fd(),
            &(SLOT_EMPTY as u32).to_ne_bytes(),
            &(empty.as_raw_fd() as u32).to_ne_bytes(),
        ) {
            Ok(()) => return Ok((programs, empty, flavor)),
            Err(err) => refused.push(format!("{flavor:?}: {err:#}")),
        }
    }
    bail!(
        "no empty program flavor can share a tail-call map with the program under test:\n  {}",
        refused.join("\n  ")
    )
}
