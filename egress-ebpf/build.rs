//! Rebuild the eBPF object when bpf-linker changes (it does the final code generation).
use std::{env, path::PathBuf};

fn main() {
    let linker = env::var_os("PATH").and_then(|paths| {
        env::split_paths(&paths)
            .map(|dir| dir.join("bpf-linker"))
            .find(|candidate: &PathBuf| candidate.is_file())
    });
    if let Some(linker) = linker {
        println!("cargo:rerun-if-changed={}", linker.display());
    }
}
