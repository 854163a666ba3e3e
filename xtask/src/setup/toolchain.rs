//! The Rust side of the toolchain: the nightly's rust-src (for `-Z build-std=core`) and a
//! bpf-linker linked against the same LLVM major as the nightly rustc.

use std::{
    env, fs,
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, Result};

use crate::cmd::Runner;

const NIGHTLY: &str = "nightly";
const BPF_LINKER_VERSION: &str = "0.13.0";

/// The LLVM the nightly rustc is built with, as a shared library in its sysroot.
#[derive(Debug, PartialEq, Eq)]
pub struct NightlyLlvm {
    pub major: u32,
    /// e.g. `libLLVM.so.22.1-rust-1.97.0-nightly`
    pub library: PathBuf,
}

/// What an installed bpf-linker is linked against, from `ldd`.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkedLlvm {
    Major(u32),
    /// The library it was built against is gone (e.g. the nightly was updated).
    Unresolved(String),
    /// No shared libLLVM: statically linked against an LLVM we cannot identify.
    Unknown,
}

pub fn ensure_rust_src(runner: Runner) -> Result<()> {
    println!("* Rust nightly with rust-src (the eBPF crate builds `core` itself)");
    let listed = runner.output(Command::new("rustup").args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        NIGHTLY,
    ]))?;
    if !listed.status.success() {
        println!("  the nightly toolchain is missing: installing it with rust-src");
        return runner.run(Command::new("rustup").args([
            "toolchain",
            "install",
            NIGHTLY,
            "--profile",
            "minimal",
            "--component",
            "rust-src",
        ]));
    }
    let installed = String::from_utf8_lossy(&listed.stdout);
    if installed.lines().any(|line| line.trim() == "rust-src") {
        println!("  already installed");
        return Ok(());
    }
    runner.run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        NIGHTLY,
    ]))
}

pub fn ensure_bpf_linker(runner: Runner) -> Result<()> {
    println!("* bpf-linker linked against the nightly's own LLVM");
    let llvm = nightly_llvm(runner)?;
    println!(
        "  nightly rustc uses LLVM {} ({})",
        llvm.major,
        llvm.library.display()
    );
    match find_on_path("bpf-linker") {
        None => println!("  bpf-linker is not installed: building it (takes about 90 s)"),
        Some(linker) => {
            let ldd = runner.capture(Command::new("ldd").arg(&linker))?;
            match linked_llvm(&ldd) {
                LinkedLlvm::Major(major) if major == llvm.major => {
                    println!("  {} already uses LLVM {major}", linker.display());
                    return Ok(());
                }
                LinkedLlvm::Major(major) => {
                    println!("  {} uses LLVM {major}: rebuilding it", linker.display())
                }
                LinkedLlvm::Unresolved(lib) => {
                    println!(
                        "  {} needs {lib}, which is gone: rebuilding it",
                        linker.display()
                    )
                }
                LinkedLlvm::Unknown => println!(
                    "  {} has no shared libLLVM, so its LLVM cannot be checked: rebuilding it",
                    linker.display()
                ),
            }
        }
    }
    install_bpf_linker(runner, &llvm)
}

fn nightly_llvm(runner: Runner) -> Result<NightlyLlvm> {
    let version = runner.capture(Command::new("rustc").args([&format!("+{NIGHTLY}"), "-vV"]))?;
    let major = parse_llvm_major(&version).with_context(|| {
        format!("no `LLVM version:` line in `rustc +{NIGHTLY} -vV`:\n{version}")
    })?;
    let sysroot = runner.capture(Command::new("rustc").args([
        &format!("+{NIGHTLY}"),
        "--print",
        "sysroot",
    ]))?;
    let lib_dir = Path::new(sysroot.trim()).join("lib");
    let names = fs::read_dir(&lib_dir)
        .with_context(|| format!("cannot list {}", lib_dir.display()))?
        .filter_map(|entry| entry.ok())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    let name = pick_libllvm(&names, major).with_context(|| {
        format!(
            "no libLLVM.so.{major}.* in {} (the nightly's own LLVM)",
            lib_dir.display()
        )
    })?;
    Ok(NightlyLlvm {
        major,
        library: lib_dir.join(name),
    })
}

/// Builds bpf-linker as TOOLCHAIN.md says: a prefix whose lib/ holds the nightly's libLLVM.
fn install_bpf_linker(runner: Runner, llvm: &NightlyLlvm) -> Result<()> {
    let prefix = cargo_home()?
        .join("egress-llvm")
        .join(llvm.major.to_string());
    let lib = prefix.join("lib");
    fs::create_dir_all(&lib).with_context(|| format!("cannot create {}", lib.display()))?;
    let file_name = llvm
        .library
        .file_name()
        .with_context(|| format!("{} has no file name", llvm.library.display()))?;
    for link in [lib.join("libLLVM.so"), lib.join(file_name)] {
        replace_symlink(&llvm.library, &link)?;
    }
    runner.run(
        Command::new("cargo")
            .env("LLVM_PREFIX", &prefix)
            .args([
                "install",
                "bpf-linker",
                "--version",
                BPF_LINKER_VERSION,
                "--force",
            ])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{}", llvm.major)),
    )
}

fn replace_symlink(target: &Path, link: &Path) -> Result<()> {
    if link.symlink_metadata().is_ok() {
        fs::remove_file(link).with_context(|| format!("cannot replace {}", link.display()))?;
    }
    println!("  $ ln -s {} {}", target.display(), link.display());
    symlink(target, link).with_context(|| format!("cannot create symlink {}", link.display()))
}

fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME") {
        return Ok(PathBuf::from(home));
    }
    let home = env::var_os("HOME").context("neither CARGO_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

pub fn find_on_path(program: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = env::var_os("PATH")
        .map(|path| env::split_paths(&path).collect())
        .unwrap_or_default();
    // cargo install puts binaries here even when it is not on PATH (e.g. under sudo).
    if let Ok(home) = cargo_home() {
        dirs.push(home.join("bin"));
    }
    dirs.into_iter()
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

/// `LLVM version: 22.1.4` → 22.
pub fn parse_llvm_major(rustc_version: &str) -> Option<u32> {
    let version = rustc_version
        .lines()
        .find_map(|line| line.trim().strip_prefix("LLVM version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// The shared LLVM library of a given major among a sysroot's lib/ file names.
pub fn pick_libllvm(names: &[String], major: u32) -> Option<&str> {
    let versioned = format!("libLLVM.so.{major}.");
    let dashed = format!("libLLVM-{major}");
    names
        .iter()
        .find(|name| name.starts_with(&versioned))
        .or_else(|| names.iter().find(|name| name.starts_with(&dashed)))
        .map(String::as_str)
}

/// Reads the libLLVM major out of `ldd` output.
pub fn linked_llvm(ldd: &str) -> LinkedLlvm {
    let Some(line) = ldd
        .lines()
        .map(str::trim)
        .find(|line| line.starts_with("libLLVM"))
    else {
        return LinkedLlvm::Unknown;
    };
    let soname = line.split_whitespace().next().unwrap_or(line);
    if line.contains("not found") {
        return LinkedLlvm::Unresolved(soname.to_owned());
    }
    let digits: String = soname
        .trim_start_matches("libLLVM")
        .trim_start_matches(['.', '-'])
        .trim_start_matches("so.")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .map_or(LinkedLlvm::Unknown, LinkedLlvm::Major)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_llvm_major_from_rustc_version() {
        let text = "rustc 1.97.0-nightly (e50aa6fba 2026-05-19)\nhost: x86_64-unknown-linux-gnu\nLLVM version: 22.1.4\n";
        assert_eq!(parse_llvm_major(text), Some(22));
        assert_eq!(parse_llvm_major("rustc 1.95.0\n"), None);
    }

    #[test]
    fn picks_the_shared_library_of_the_right_major() {
        let names = [
            "libLLVM-22-rust-1.97.0-nightly.so",
            "libLLVM.so.22.1-rust-1.97.0-nightly",
            "librustc_driver-b5a965480ee51f9a.so",
        ]
        .map(String::from);
        assert_eq!(
            pick_libllvm(&names, 22),
            Some("libLLVM.so.22.1-rust-1.97.0-nightly")
        );
        assert_eq!(
            pick_libllvm(&names[..1], 22),
            Some("libLLVM-22-rust-1.97.0-nightly.so")
        );
        assert_eq!(pick_libllvm(&names, 21), None);
    }

    #[test]
    fn reads_linked_llvm_from_ldd() {
        let ok = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibLLVM.so.22.1-rust-1.97.0-nightly => /root/.cargo/egress-llvm/22/lib/libLLVM.so.22.1-rust-1.97.0-nightly (0x00007f65)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6\n";
        assert_eq!(linked_llvm(ok), LinkedLlvm::Major(22));
        let debian = "\tlibLLVM-19.so.1 => /lib/x86_64-linux-gnu/libLLVM-19.so.1 (0x1)\n";
        assert_eq!(linked_llvm(debian), LinkedLlvm::Major(19));
        let gone = "\tlibLLVM.so.21.1-rust-1.92.0-nightly => not found\n";
        assert_eq!(
            linked_llvm(gone),
            LinkedLlvm::Unresolved("libLLVM.so.21.1-rust-1.92.0-nightly".into())
        );
        assert_eq!(
            linked_llvm("\tlibc.so.6 => /lib/libc.so.6\n"),
            LinkedLlvm::Unknown
        );
    }
}
