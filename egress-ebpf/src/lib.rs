//! Host-side stub so the workspace builds; the programs live in `main.rs`, built for
//! `bpfel-unknown-none` by egress-agent's build script.
#![no_std]
