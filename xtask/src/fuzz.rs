//! `cargo xtask fuzz --seconds N`: differential fuzzing of the packet parser (fuzz/) with
//! cargo-fuzz. The time is split between the raw-bytes target and the structure-aware one;
//! a disagreement with the reference decoder fails with the path of the saved input.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
    time::SystemTime,
};

use anyhow::{Context as _, Result, bail};

use crate::{cmd::Runner, setup::toolchain, workspace_root};

/// How long `cargo xtask test` fuzzes.
pub const TEST_RUN_SECONDS: u64 = 30;

/// The raw-bytes target reads the seeds and regressions; the structured one builds its own.
const TARGETS: [(&str, &[&str]); 2] = [
    ("parse_differential", &["seeds", "regressions"]),
    ("parse_structured", &[]),
];

/// Longer than any frame the parser can look into (1024 bytes plus the TCP header).
const MAX_INPUT_LEN: usize = 2048;

pub fn run(seconds: u64) -> Result<()> {
    let runner = Runner::echoing();
    println!("==> Fuzzing the packet parser against the reference decoder ({seconds} s)");
    toolchain::ensure_rust_src(runner)?;
    ensure_cargo_fuzz(runner)?;
    let fuzz_dir = workspace_root().join("fuzz");
    let per_target = (seconds / TARGETS.len() as u64).max(1);
    for (target, extra_corpora) in TARGETS {
        fuzz_target(runner, &fuzz_dir, target, extra_corpora, per_target)?;
    }
    println!("==> The parser and the reference decoder agreed on every input");
    Ok(())
}

fn ensure_cargo_fuzz(runner: Runner) -> Result<()> {
    if toolchain::find_on_path("cargo-fuzz").is_some() {
        return Ok(());
    }
    println!("* cargo-fuzz is missing: installing it with `cargo install cargo-fuzz --locked`");
    runner.run(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))
}

fn fuzz_target(
    runner: Runner,
    fuzz_dir: &Path,
    target: &str,
    extra_corpora: &[&str],
    seconds: u64,
) -> Result<()> {
    // libFuzzer adds what it finds to the first directory; the others are read only.
    let corpus = fuzz_dir.join("corpus").join(target);
    fs::create_dir_all(&corpus)
        .with_context(|| format!("cannot create the corpus directory {}", corpus.display()))?;
    let artifacts = fuzz_dir.join("artifacts").join(target);
    let started = SystemTime::now();
    let mut cmd = Command::new("cargo");
    cmd.current_dir(workspace_root())
        .args(["+nightly", "fuzz", "run", "--fuzz-dir"])
        .arg(fuzz_dir)
        .arg(target)
        .arg(&corpus)
        .args(extra_corpora.iter().map(|dir| fuzz_dir.join(dir)))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-max_len={MAX_INPUT_LEN}"));
    if let Err(err) = runner.run(&mut cmd) {
        return match newest_artifact(&artifacts, started) {
            Some(input) => bail!(
                "fuzz target {target} found a disagreement or crash: input saved at {} \
                 (replay: cargo +nightly fuzz run --fuzz-dir fuzz {target} {}); once fixed, \
                 copy it to fuzz/regressions/ named drop-NAME or pass-NAME after the verdict the \
                 spec demands",
                input.display(),
                input.display()
            ),
            None => Err(err.context(format!("fuzz target {target} failed to build or run"))),
        };
    }
    Ok(())
}

/// The input libFuzzer saved during this run, if any.
fn newest_artifact(dir: &Path, since: SystemTime) -> Option<PathBuf> {
    fs::read_dir(dir)
        .ok()?
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let modified = entry.metadata().ok()?.modified().ok()?;
            (modified >= since).then(|| (modified, entry.path()))
        })
        .max()
        .map(|(_, path)| path)
}
