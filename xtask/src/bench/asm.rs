//! Hand-assembling the bench's tiny eBPF programs (the frame generator, the rotator, the
//! floor): one instruction encoder, the opcodes and helper ids they use.

use std::os::fd::{AsRawFd, BorrowedFd};

pub const MOV64_REG: u8 = 0xbf;
pub const MOV64_IMM: u8 = 0xb7;
pub const ADD64_IMM: u8 = 0x07;
pub const AND64_IMM: u8 = 0x57;
pub const XOR64_IMM: u8 = 0xa7;
pub const TO_BE: u8 = 0xdc;
pub const LD_IMM64: u8 = 0x18;
pub const LDX_H: u8 = 0x69;
pub const LDX_W: u8 = 0x61;
pub const LDX_DW: u8 = 0x79;
pub const ST_W: u8 = 0x62;
pub const STX_H: u8 = 0x6b;
pub const STX_W: u8 = 0x63;
pub const STX_DW: u8 = 0x7b;
pub const JEQ_IMM: u8 = 0x15;
pub const JGT_REG: u8 = 0x2d;
pub const CALL: u8 = 0x85;
pub const EXIT: u8 = 0x95;

pub const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
pub const HELPER_GET_PRANDOM_U32: i32 = 7;
pub const HELPER_TAIL_CALL: i32 = 12;
pub const HELPER_REDIRECT: i32 = 23;

/// `src` of an `LD_IMM64` whose immediate is a map fd.
const PSEUDO_MAP_FD: u8 = 1;

/// One eBPF instruction: opcode, registers, offset, immediate.
pub fn insn(op: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut bytes = [0u8; 8];
    bytes[0] = op;
    bytes[1] = (src << 4) | dst;
    bytes[2..4].copy_from_slice(&off.to_le_bytes());
    bytes[4..8].copy_from_slice(&imm.to_le_bytes());
    u64::from_le_bytes(bytes)
}

/// `dst = map` (the two-slot `LD_IMM64`).
pub fn load_map_fd(dst: u8, map: BorrowedFd<'_>) -> [u64; 2] {
    [
        insn(LD_IMM64, dst, PSEUDO_MAP_FD, 0, map.as_raw_fd()),
        insn(0, 0, 0, 0, 0),
    ]
}
